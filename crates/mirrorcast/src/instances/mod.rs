//! Several processes of one replicator share a source's partitions through a consumer group
//! on the source (`instances.group.enabled`): Kafka's group protocol hands the partitions out
//! (cooperative, incremental), detects members that died and takes their partitions away.
//! [`membership`] runs the group member and turns its rebalances into the copier's
//! `Acquire` / `Release` / `Abandon`; [`lease`] decides when a member may write. With exactly
//! once the group hands out whole copy units instead ([`units`]), each fenced on the targets
//! before its progress is read.
//!
//! Invariant: a process writes records, progress or once-per-flow output for a partition only
//! while the group gives it the partition and its lease holds; it stores the progress of a
//! partition it hands over before the group may give it to another member. The flows' duties
//! (topic creation and sync, checkpoints, heartbeats) belong to the member that owns partition
//! 0 of the first subscribed topic ([`leader_partition`]), or with exactly once unit 0.

mod fencing;
pub mod lease;
pub mod membership;
pub mod units;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What this process may do for a source's flows, shared by its threads.
#[derive(Debug, Clone)]
pub struct Standing(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    grouped: bool,
    base: Instant,
    /// Milliseconds after `base` plus one until which the lease holds; 0: no lease.
    lease_until: AtomicU64,
    leads: AtomicBool,
}

impl Standing {
    /// The only process of its replicator: it may always write and has every duty.
    pub fn alone() -> Self {
        Self::new(false)
    }

    /// A member of a group: nothing until the membership says so.
    pub fn in_group() -> Self {
        Self::new(true)
    }

    fn new(grouped: bool) -> Self {
        Standing(Arc::new(Inner {
            grouped,
            base: Instant::now(),
            lease_until: AtomicU64::new(0),
            leads: AtomicBool::new(false),
        }))
    }

    pub fn is_grouped(&self) -> bool {
        self.0.grouped
    }

    /// Whether records and progress may be written now.
    pub fn may_write(&self) -> bool {
        if !self.0.grouped {
            return true;
        }
        let until = self.0.lease_until.load(Ordering::Acquire);
        until > 0 && self.millis(Instant::now()) + 1 < until
    }

    /// Whether the flows' once-per-flow duties run here now.
    pub fn leads(&self) -> bool {
        !self.0.grouped || (self.0.leads.load(Ordering::Acquire) && self.may_write())
    }

    pub(crate) fn set_lease(&self, until: Option<Instant>) {
        let value = until.map_or(0, |at| self.millis(at) + 1);
        self.0.lease_until.store(value, Ordering::Release);
    }

    pub(crate) fn set_leads(&self, leads: bool) {
        self.0.leads.store(leads, Ordering::Release);
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.0.base).as_millis()).unwrap_or(u64::MAX)
    }
}

/// The partition whose owner leads the flows: partition 0 of the first subscribed topic. It
/// moves with that partition (a member that dies, a topic that sorts first appears).
pub fn leader_partition(subscribed: &BTreeSet<String>) -> Option<(String, i32)> {
    subscribed.first().map(|topic| (topic.clone(), 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn alone_may_always_write_and_lead() {
        let standing = Standing::alone();
        assert!(standing.may_write() && standing.leads());
    }

    #[test]
    fn a_member_writes_only_under_its_lease_and_leads_only_with_it() {
        let standing = Standing::in_group();
        assert!(!standing.may_write() && !standing.leads());
        standing.set_leads(true);
        assert!(!standing.leads(), "no lease yet");
        standing.set_lease(Some(Instant::now() + Duration::from_secs(5)));
        assert!(standing.may_write() && standing.leads());
        standing.set_leads(false);
        assert!(standing.may_write() && !standing.leads());
        standing.set_lease(Some(Instant::now()));
        assert!(!standing.may_write(), "expired");
        standing.set_lease(None);
        assert!(!standing.may_write());
    }

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
