//! The flows (`source->target`) at run time: per flow a topic manager thread that keeps remote
//! topics in place and tells the copier what to copy, and a checkpoint thread; per source one
//! copier thread that reads the source once for all its flows. A stalled or unreachable target
//! only ever holds back its own flow: its lane leaves the shared reader (see `copy`).

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::config::{ClientRole, ClusterConfig, Config, FlowConfig};
use crate::copy::{self, CopierSetup};
use crate::kafka::clients::client_config;
use crate::observe::Observability;
use crate::offsets::groups::CheckpointTask;
use crate::shutdown::Shutdown;
use crate::topics::manager::TopicManager;

/// The running flows, and the copier threads to wait for at shutdown.
pub struct Running {
    pub flows: Vec<String>,
    copiers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until every copier has flushed and stored its progress after shutdown. The topic
    /// managers are not waited for: they hold no state, and one may be inside a metadata
    /// request to an unreachable cluster.
    pub fn join(self) {
        for copier in self.copiers {
            let _ = copier.join();
        }
    }
}

/// Starts every flow of `config`, one copier per source cluster.
pub fn start_all(
    config: &Config,
    shutdown: &Shutdown,
    observe: &Observability,
) -> std::io::Result<Running> {
    let mut by_source: Vec<(String, Vec<CopierSetup>)> = Vec::new();
    let mut flows = Vec::new();
    for flow in &config.flows {
        let (Some(source), Some(target)) =
            (config.cluster(&flow.source), config.cluster(&flow.target))
        else {
            continue; // resolve() guarantees both exist
        };
        flows.push(flow.name());
        let setup = start(
            flow.clone(),
            source,
            target,
            shutdown.clone(),
            observe.clone(),
        )?;
        match by_source.iter_mut().find(|(s, _)| *s == flow.source) {
            Some((_, setups)) => setups.push(setup),
            None => by_source.push((flow.source.clone(), vec![setup])),
        }
    }
    let mut copiers = Vec::new();
    for (source, setups) in by_source {
        let Some(cluster) = config.cluster(&source) else {
            continue;
        };
        let reader = client_config(
            cluster,
            ClientRole::Consumer,
            &format!("mirrorcast-{source}"),
        );
        let (observe, shutdown) = (observe.clone(), shutdown.clone());
        copiers.push(
            std::thread::Builder::new()
                .name(format!("copy {source}"))
                .spawn(move || copy::run(&source, reader, setups, &observe, shutdown))?,
        );
    }
    Ok(Running { flows, copiers })
}

/// Starts a flow's topic manager and checkpoint threads; returns what its copier lane needs.
pub fn start(
    flow: FlowConfig,
    source: &ClusterConfig,
    target: &ClusterConfig,
    shutdown: Shutdown,
    observe: Observability,
) -> std::io::Result<CopierSetup> {
    let name = flow.name();
    let client_id = format!("mirrorcast-{}", name.replace("->", "-to-"));
    let (commands, receiver) = mpsc::channel();
    let setup = CopierSetup {
        flow: flow.clone(),
        source_consumer: client_config(source, ClientRole::Consumer, &client_id),
        target_producer: client_config(target, ClientRole::Producer, &client_id),
        source_producer: client_config(source, ClientRole::Producer, &client_id),
        observe: observe.clone(),
        commands: receiver,
    };
    let checkpoints = CheckpointTask {
        flow: flow.clone(),
        source_consumer: client_config(source, ClientRole::Consumer, &client_id),
        target_consumer: client_config(target, ClientRole::Consumer, &client_id),
        target_producer: client_config(target, ClientRole::Producer, &client_id),
        syncs_consumer: rdkafka::ClientConfig::new(),
        shutdown: shutdown.clone(),
    };
    let manager = TopicManager {
        source_admin: client_config(source, ClientRole::Admin, &client_id),
        target_admin: client_config(target, ClientRole::Admin, &client_id),
        target_consumer: client_config(target, ClientRole::Consumer, &client_id),
        target_producer: client_config(target, ClientRole::Producer, &client_id),
        flow,
        commands,
        shutdown,
        observe,
    };
    std::thread::Builder::new()
        .name(format!("topics {name}"))
        .spawn(move || manager.run())?;
    // Checkpoints hold no state worth waiting for at shutdown: each round flushes its own.
    let syncs_on_source = checkpoints
        .flow
        .offset_syncs
        .as_ref()
        .is_some_and(|s| s.on_source);
    let checkpoints = CheckpointTask {
        syncs_consumer: if syncs_on_source {
            checkpoints.source_consumer.clone()
        } else {
            checkpoints.target_consumer.clone()
        },
        ..checkpoints
    };
    std::thread::Builder::new()
        .name(format!("checkpoints {name}"))
        .spawn(move || checkpoints.run())?;
    Ok(setup)
}
