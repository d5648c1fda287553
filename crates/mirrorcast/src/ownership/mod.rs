//! Who copies what: whether this process may write for a source's flows and leads them
//! ([`Standing`], set by the group membership of `crate::instances`), and which copier thread
//! (copy unit) of a source a partition belongs to ([`shard`]). The copier, the topic manager,
//! the offsets and the instances depend on this module rather than on each other.
//!
//! Invariant: a partition belongs to exactly one copier thread of its source, the same in every
//! process; a member of a group writes only while its lease holds.

pub mod shard;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::clock::Clock;

pub use shard::{thread_of, Shard};

/// What this process may do for a source's flows, shared by its threads.
#[derive(Debug, Clone)]
pub struct Standing(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    grouped: bool,
    /// What the lease is measured by.
    clock: Clock,
    base: Instant,
    /// Milliseconds after `base` plus one until which the lease holds; 0: no lease.
    lease_until: AtomicU64,
    leads: AtomicBool,
    /// A member of a group with nothing to share (no replicated topic at the source).
    idle: AtomicBool,
}

impl Standing {
    /// The only process of its replicator: it may always write and has every duty.
    pub fn alone() -> Self {
        Self::new(false, Clock::system())
    }

    /// A member of a group: nothing until the membership says so.
    pub fn in_group() -> Self {
        Self::in_group_on(Clock::system())
    }

    /// A member of a group whose lease is measured by `clock`.
    pub fn in_group_on(clock: Clock) -> Self {
        Self::new(true, clock)
    }

    fn new(grouped: bool, clock: Clock) -> Self {
        Standing(Arc::new(Inner {
            grouped,
            base: clock.now(),
            clock,
            lease_until: AtomicU64::new(0),
            leads: AtomicBool::new(false),
            idle: AtomicBool::new(false),
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
        until > 0 && self.millis(self.0.clock.now()) + 1 < until
    }

    /// Whether the flows' once-per-flow duties run here now: alone, always; in a group, with
    /// the leader partition under a lease, or in every member while the group has nothing
    /// to share (no partition leads then, and what is left to do is idempotent).
    pub fn leads(&self) -> bool {
        !self.0.grouped
            || self.0.idle.load(Ordering::Acquire)
            || (self.0.leads.load(Ordering::Acquire) && self.may_write())
    }

    pub(crate) fn set_lease(&self, until: Option<Instant>) {
        let value = until.map_or(0, |at| self.millis(at) + 1);
        self.0.lease_until.store(value, Ordering::Release);
    }

    pub(crate) fn set_leads(&self, leads: bool) {
        self.0.leads.store(leads, Ordering::Release);
    }

    pub(crate) fn set_idle(&self, idle: bool) {
        self.0.idle.store(idle, Ordering::Release);
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.0.base).as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
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
    fn every_member_leads_while_the_group_has_nothing_to_share() {
        let standing = Standing::in_group();
        standing.set_idle(true);
        assert!(standing.leads() && !standing.may_write());
        standing.set_idle(false);
        assert!(!standing.leads());
    }

    #[test]
    fn a_lease_lapses_on_the_clock_it_is_measured_by() {
        let clock = ManualClock::new();
        let standing = Standing::in_group_on(clock.clock());
        standing.set_leads(true);
        standing.set_lease(Some(clock.now() + Duration::from_secs(5)));
        clock.advance(Duration::from_millis(4_998));
        assert!(standing.may_write() && standing.leads());
        clock.advance(Duration::from_millis(2));
        assert!(
            !standing.may_write() && !standing.leads(),
            "lapsed at its end"
        );
        standing.set_lease(Some(clock.now() + Duration::from_secs(5)));
        assert!(standing.may_write(), "renewed");
    }
}
