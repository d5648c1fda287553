//! Several processes of one replicator share a source's partitions through a consumer group
//! on the source (`instances.group.enabled`): Kafka's group protocol hands the partitions out
//! (cooperative, incremental), detects members that died and takes their partitions away.
//! [`membership`] runs the group member and turns its rebalances into the copier's
//! `Acquire` / `Release` / `Abandon`; [`lease`] decides when a member may write, renewed by
//! the process's own clock and by the group's coordinator ([`coordinator`]). With exactly
//! once the group hands out whole copy units instead ([`units`]), each fenced on the targets
//! before its progress is read.
//!
//! Invariant: a process writes records, progress or once-per-flow output for a partition only
//! while the group gives it the partition and its lease holds; it stores the progress of a
//! partition it hands over before the group may give it to another member. The flows' duties
//! (topic creation and sync, checkpoints, heartbeats) belong to the member that owns partition
//! 0 of the first subscribed topic ([`leader_partition`]), or with exactly once unit 0; while
//! there is no topic to subscribe to, to every member (what is left to do is idempotent).

mod acquisition;
mod coordinator;
mod fencing;
pub mod lease;
pub mod membership;
pub mod units;

use std::collections::BTreeSet;

use rdkafka::ClientConfig;

use crate::config::FlowConfig;
pub use crate::ownership::Standing;
use crate::plan::Commands;

/// One flow of the source, as the membership sees it.
pub struct MemberFlow {
    pub flow: FlowConfig,
    pub commands: Commands,
    /// Reads the flow's progress topic on its target.
    pub target_consumer: ClientConfig,
    /// Exactly once: units fenced from under their lane, to fence again while the group
    /// still gives them.
    pub lost: crate::plan::LostUnits,
}

/// The partition whose owner leads the flows: partition 0 of the first subscribed topic. It
/// moves with that partition (a member that dies, a topic that sorts first appears).
pub fn leader_partition(subscribed: &BTreeSet<String>) -> Option<(String, i32)> {
    subscribed.first().map(|topic| (topic.clone(), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_partition_is_the_first_topic_s_first() {
        let topics: BTreeSet<String> = ["LH.STOCK", "LH.ORDERS"].map(String::from).into();
        assert_eq!(
            leader_partition(&topics),
            Some(("LH.ORDERS".to_string(), 0))
        );
        assert_eq!(leader_partition(&BTreeSet::new()), None);
    }
}
