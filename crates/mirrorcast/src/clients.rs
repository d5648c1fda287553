//! Building librdkafka clients for a cluster: the user's settings (already mapped from Java
//! names) between our defaults and the few settings correctness depends on.

use rdkafka::ClientConfig;

use crate::config::{ClientRole, ClusterConfig};

/// Defaults the user may override.
fn defaults(role: ClientRole) -> &'static [(&'static str, &'static str)] {
    match role {
        ClientRole::Consumer => &[
            // Latency: hand over what a fetch has after at most 20 ms.
            ("fetch.wait.max.ms", "20"),
            // Bounded read-ahead: memory stays flat whatever the backlog.
            ("queued.max.messages.kbytes", "32768"),
        ],
        ClientRole::Producer => &[("linger.ms", "5"), ("queue.buffering.max.kbytes", "65536")],
        ClientRole::Admin => &[],
    }
}

/// Settings the copy depends on for correctness; they win over the user's.
fn forced(role: ClientRole) -> &'static [(&'static str, &'static str)] {
    match role {
        ClientRole::Consumer => &[
            // Progress is ours (mm2-offsets on the target), never a group commit.
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "false"),
            // Looking at a topic must never create it (the test broker would).
            ("allow.auto.create.topics", "false"),
            // A stored position below the log start (retention) resumes at the start.
            ("auto.offset.reset", "earliest"),
        ],
        ClientRole::Producer => &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            // Java's partitioner for keyed records, so progress records land on the partition
            // of mm2-offsets that MM2 itself would use.
            ("partitioner", "murmur2_random"),
        ],
        ClientRole::Admin => &[],
    }
}

/// A client config for `role` on `cluster`, with `client.id` naming the flow for the brokers'
/// logs.
pub fn client_config(cluster: &ClusterConfig, role: ClientRole, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("client.id", client_id);
    for (k, v) in defaults(role) {
        config.set(*k, *v);
    }
    for (k, s) in cluster.client(role).iter() {
        config.set(k, &s.value);
    }
    for (k, v) in forced(role) {
        config.set(*k, *v);
    }
    config
}
