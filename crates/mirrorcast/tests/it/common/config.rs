//! Replication configs for the usual flows, and writing them to a file.

use std::path::{Path, PathBuf};

use localcluster::Clusters;

/// A config with one flow, `europe` → `northamerica` on `clusters`: identity policy, every topic
/// mirrorcast creates at replication factor 1 (single-broker clusters), then `extra`.
pub fn one_flow_config(clusters: &Clusters, extra: &str) -> String {
    format!(
        "clusters = europe, northamerica\n\
         europe.bootstrap.servers = {}\n\
         northamerica.bootstrap.servers = {}\n\
         europe->northamerica.enabled = true\n\
         replication.policy.class = IdentityReplicationPolicy\n\
         replication.factor = 1\n\
         offset.storage.replication.factor = 1\n\
         offset-syncs.topic.replication.factor = 1\n\
         heartbeats.topic.replication.factor = 1\n\
         checkpoints.topic.replication.factor = 1\n{}{extra}",
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
        data_plane(),
    )
}

/// A broadcast config for `europe` → `northamerica`, `southamerica` on the given clusters, with
/// every topic mirrorcast creates at replication factor 1 (single-broker clusters).
pub fn broadcast_config(clusters: &Clusters, policy: &str, extra: &str) -> String {
    format!(
        "clusters = europe, northamerica, southamerica\n\
         europe.bootstrap.servers = {}\n\
         northamerica.bootstrap.servers = {}\n\
         southamerica.bootstrap.servers = {}\n\
         europe->northamerica.enabled = true\n\
         europe->southamerica.enabled = true\n\
         replication.policy.class = {policy}\n\
         replication.factor = 1\n\
         offset.storage.replication.factor = 1\n\
         offset-syncs.topic.replication.factor = 1\n\
         checkpoints.topic.replication.factor = 1\n\
         heartbeats.topic.replication.factor = 1\n\
         {}{extra}",
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
        clusters.bootstrap("southamerica"),
        data_plane(),
    )
}

/// The keys of the flow `europe` → `target` of LH.* topics on single-broker clusters (identity
/// policy, replication factors of 1, no ACL sync), to follow the clusters' own keys.
pub fn europe_lh_flow(target: &str) -> String {
    format!(
        "europe->{target}.enabled = true\n\
         europe->{target}.topics = LH.*\n\
         replication.policy.class = IdentityReplicationPolicy\n\
         replication.factor = 1\n\
         offset.storage.replication.factor = 1\n\
         offset-syncs.topic.replication.factor = 1\n\
         checkpoints.topic.replication.factor = 1\n\
         heartbeats.topic.replication.factor = 1\n\
         sync.topic.acls.enabled = false\n{}",
        data_plane()
    )
}

/// `data.plane = <plane>` when `MIRRORCAST_TEST_DATA_PLANE` names one: the copy tests run on
/// either data plane (`cargo xtask test` runs a set of them on the batch plane too).
pub fn data_plane() -> String {
    match std::env::var("MIRRORCAST_TEST_DATA_PLANE") {
        Ok(plane) if !plane.is_empty() => format!("data.plane = {plane}\n"),
        _ => String::new(),
    }
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("mm2.properties");
    std::fs::write(&path, text).unwrap();
    path
}
