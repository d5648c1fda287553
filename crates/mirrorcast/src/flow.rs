//! One flow (`source->target`) at run time: a topic manager thread that keeps remote topics in
//! place and tells the copier what to copy, and the copier thread itself. Flows share nothing,
//! so a stalled or unreachable cluster only ever holds back the flows that use it.

use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::clients::client_config;
use crate::config::{ClientRole, ClusterConfig, Config, FlowConfig};
use crate::copy::{self, Command, CopierSetup, CopyStats};
use crate::shutdown::Shutdown;
use crate::topics::{replicated_topics, Route, TopicAdmin, TopicError};

/// A running flow.
pub struct RunningFlow {
    pub name: String,
    pub stats: Arc<CopyStats>,
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
pub fn start_all(config: &Config, shutdown: &Shutdown) -> std::io::Result<Vec<RunningFlow>> {
    let mut running = Vec::new();
    for flow in &config.flows {
        let (Some(source), Some(target)) =
            (config.cluster(&flow.source), config.cluster(&flow.target))
        else {
            continue; // resolve() guarantees both exist
        };
        running.push(start(flow.clone(), source, target, shutdown.clone())?);
    }
    Ok(running)
}

pub fn start(
    flow: FlowConfig,
    source: &ClusterConfig,
    target: &ClusterConfig,
    shutdown: Shutdown,
) -> std::io::Result<RunningFlow> {
    let name = flow.name();
    let client_id = format!("mirrorcast-{}", name.replace("->", "-to-"));
    let stats = Arc::new(CopyStats::default());
    let (commands, receiver) = mpsc::channel();
    let setup = CopierSetup {
        flow: flow.clone(),
        source_consumer: client_config(source, ClientRole::Consumer, &client_id),
        target_producer: client_config(target, ClientRole::Producer, &client_id),
        target_consumer: client_config(target, ClientRole::Consumer, &client_id),
        stats: stats.clone(),
    };
    let copier_shutdown = shutdown.clone();
    let copier = std::thread::Builder::new()
        .name(format!("copy {name}"))
        .spawn(move || copy::run(setup, receiver, copier_shutdown))?;
    let manager = TopicManager {
        source_admin: client_config(source, ClientRole::Admin, &client_id),
        target_admin: client_config(target, ClientRole::Admin, &client_id),
        flow,
        commands,
        shutdown,
    };
    std::thread::Builder::new()
        .name(format!("topics {name}"))
        .spawn(move || manager.run())?;
    Ok(RunningFlow {
        name,
        stats,
        copier,
    })
}

struct TopicManager {
    flow: FlowConfig,
    source_admin: rdkafka::ClientConfig,
    target_admin: rdkafka::ClientConfig,
    commands: Sender<Command>,
    shutdown: Shutdown,
}

/// Reachability of one side, logged only when it changes.
#[derive(Default)]
struct Health {
    failing: Option<String>,
}

impl Health {
    fn failed(&mut self, flow: &str, what: &str, error: &TopicError) {
        if self.failing.is_none() {
            warn!(flow, "{what}: {error}; retrying with backoff");
        }
        self.failing = Some(error.to_string());
    }

    fn ok(&mut self, flow: &str, what: &str) {
        if self.failing.take().is_some() {
            info!(flow, "{what}: working again");
        }
    }
}

impl TopicManager {
    fn run(self) {
        let name = self.flow.name();
        let mut health = Health::default();
        let mut backoff = Backoff::default();
        // Admin clients are created once; librdkafka reconnects them by itself.
        let admins = loop {
            let source = TopicAdmin::new(&self.source_admin, &format!("{name} source admin"));
            let target = TopicAdmin::new(&self.target_admin, &format!("{name} target admin"));
            match (source, target) {
                (Ok(source), Ok(target)) => break (source, target),
                (Err(e), _) | (_, Err(e)) => {
                    health.failed(&name, "creating admin clients", &e);
                    if self.shutdown.sleep(backoff.next_delay()) {
                        return;
                    }
                }
            }
        };
        let (source, target) = admins;
        // The copier reads its progress first, so the progress topic must exist before any route.
        while let Err(e) = self.ensure_progress_topic(&target) {
            health.failed(&name, "creating the progress topic", &e);
            if self.shutdown.sleep(backoff.next_delay()) {
                return;
            }
        }
        loop {
            let pause = match self.refresh(&source, &target) {
                Ok(routes) => {
                    health.ok(&name, "topic management");
                    backoff.reset();
                    if !routes.is_empty() && self.commands.send(Command::Routes(routes)).is_err() {
                        return; // the copier is gone
                    }
                    match self.flow.refresh_topics_interval {
                        Some(interval) => interval,
                        None => {
                            // Topics were found once; nothing more to do until shutdown.
                            while !self.shutdown.sleep(Duration::from_secs(3600)) {}
                            return;
                        }
                    }
                }
                Err(e) => {
                    health.failed(&name, "topic management", &e);
                    backoff.next_delay()
                }
            };
            if self.shutdown.sleep(pause) {
                return;
            }
        }
    }

    /// `mm2-offsets.<source>.internal` must exist before the copier reads or writes it.
    fn ensure_progress_topic(&self, target: &TopicAdmin) -> Result<(), TopicError> {
        target.ensure_topic(
            &self.flow.progress_topic(),
            self.flow.progress_topic_partitions,
            self.flow.progress_topic_replication_factor,
            &[("cleanup.policy", "compact")],
        )?;
        Ok(())
    }

    /// Lists the source, creates missing remote topics, and returns what to copy.
    fn refresh(&self, source: &TopicAdmin, target: &TopicAdmin) -> Result<Vec<Route>, TopicError> {
        let source_topics = source.list_topics()?;
        let target_topics = target.list_topics()?;
        let mut routes = Vec::new();
        for mut route in replicated_topics(&self.flow, &source_topics) {
            let remote_partitions = match target_topics.get(&route.remote_topic) {
                Some(count) => *count,
                None => {
                    let count = target.ensure_topic(
                        &route.remote_topic,
                        route.partitions,
                        self.flow.replication_factor,
                        &[],
                    )?;
                    info!(
                        flow = %self.flow.name(),
                        "created {} with {count} partition(s)",
                        route.remote_topic
                    );
                    count
                }
            };
            if remote_partitions < route.partitions {
                warn!(
                    flow = %self.flow.name(),
                    "{} has {} partition(s) on the source but {} on the target; copying the first {}",
                    route.source_topic, route.partitions, remote_partitions, remote_partitions
                );
                route.partitions = remote_partitions;
            }
            routes.push(route);
        }
        Ok(routes)
    }
}
