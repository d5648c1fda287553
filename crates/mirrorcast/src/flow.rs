//! One flow (`source->target`) at run time: a topic manager thread that keeps remote topics in
//! place and tells the copier what to copy, and the copier thread itself. Flows share nothing,
//! so a stalled or unreachable cluster only ever holds back the flows that use it.

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::clients::client_config;
use crate::config::{ClientRole, ClusterConfig, Config, FlowConfig};
use crate::copy::{self, CopierSetup};
use crate::observe::Observability;
use crate::offsets::groups::CheckpointTask;
use crate::shutdown::Shutdown;
use crate::topics::manager::TopicManager;

/// A running flow.
pub struct RunningFlow {
    pub name: String,
    copier: JoinHandle<()>,
}

impl RunningFlow {
    /// Waits until the copier has flushed and stored its progress after shutdown. The topic
    /// manager is not waited for: it holds no state, and it may be inside a metadata request
    /// to an unreachable cluster.
    pub fn join(self) {
        let _ = self.copier.join();
    }
}

/// Starts every flow of `config`.
pub fn start_all(
    config: &Config,
    shutdown: &Shutdown,
    observe: &Observability,
) -> std::io::Result<Vec<RunningFlow>> {
    let mut running = Vec::new();
    for flow in &config.flows {
        let (Some(source), Some(target)) =
            (config.cluster(&flow.source), config.cluster(&flow.target))
        else {
            continue; // resolve() guarantees both exist
        };
        running.push(start(
            flow.clone(),
            source,
            target,
            shutdown.clone(),
            observe.clone(),
        )?);
    }
    Ok(running)
}

pub fn start(
    flow: FlowConfig,
    source: &ClusterConfig,
    target: &ClusterConfig,
    shutdown: Shutdown,
    observe: Observability,
) -> std::io::Result<RunningFlow> {
    let name = flow.name();
    let client_id = format!("mirrorcast-{}", name.replace("->", "-to-"));
    let (commands, receiver) = mpsc::channel();
    let setup = CopierSetup {
        flow: flow.clone(),
        source_consumer: client_config(source, ClientRole::Consumer, &client_id),
        target_producer: client_config(target, ClientRole::Producer, &client_id),
        target_consumer: client_config(target, ClientRole::Consumer, &client_id),
        source_producer: client_config(source, ClientRole::Producer, &client_id),
        observe: observe.clone(),
    };
    let copier_shutdown = shutdown.clone();
    let copier = std::thread::Builder::new()
        .name(format!("copy {name}"))
        .spawn(move || copy::run(setup, receiver, copier_shutdown))?;
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
    Ok(RunningFlow { name, copier })
}
