//! Helpers shared by the integration tests: real nisshi clusters (via `localcluster`), a
//! `mirrorcast` process, and rdkafka clients to write and read records byte for byte.
//!
//! This file owns starting the clusters and waiting for conditions; the rest is split by
//! concept below and re-exported here, so the tests reach everything as `common::name`.

mod config;
mod kafka;
mod metrics;
mod produce;
mod progress;
mod read;
mod records;
mod replicator;

pub use config::*;
pub use kafka::*;
pub use metrics::*;
pub use produce::*;
pub use progress::*;
pub use read::*;
pub use records::*;
pub use replicator::*;

use std::time::{Duration, Instant};

use localcluster::{Clusters, Storage};

/// Starts clusters on the broker `MIRRORCAST_TEST_BROKER` names (Apache Kafka unless it says
/// `nisshi`); fails the test loudly when that broker is not installed.
pub fn start_clusters(names: &[&str], storage: Storage) -> Clusters {
    match Clusters::start(names, storage) {
        Ok(c) => c,
        Err(e) => panic!("cannot start local clusters: {e}"),
    }
}

/// Starts nisshi clusters, for what the demo's broker must do whatever the suite runs on.
pub fn start_nisshi_clusters(names: &[&str], storage: Storage) -> Clusters {
    match Clusters::start_on(localcluster::Broker::Nisshi, names, storage) {
        Ok(c) => c,
        Err(e) => panic!("cannot start local nisshi clusters: {e}"),
    }
}

/// Starts Apache Kafka clusters with the given security or authorizer.
pub fn start_kafka_clusters(names: &[&str], options: &localcluster::KafkaOptions) -> Clusters {
    match Clusters::start_kafka(names, options) {
        Ok(c) => c,
        Err(e) => panic!("cannot start local Apache Kafka clusters: {e}"),
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    poll_until(timeout, Duration::from_millis(200), condition)
}

/// [`wait_until`] with a chosen polling step, for conditions that pass quickly.
pub fn poll_until(timeout: Duration, step: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(step);
    }
}
