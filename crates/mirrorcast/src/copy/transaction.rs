//! Exactly once (`exactly.once.source.support = enabled`): a lane copies in transactions on its
//! target, one open at a time, each holding the copied records and the progress records that
//! cover them; what a transaction holds becomes acknowledged only when it commits.
//!
//! A lane's producer has a transactional id per flow and copier thread
//! ([`crate::config::FlowConfig::transactional_id`]): a process starting with it fences its
//! predecessor, whose open transaction the target aborts. With instances sharing a source the
//! copier thread is a copy unit the group hands out whole, and its id moves with it
//! (`crate::instances::units`). A `read_committed` consumer, the
//! progress (loaded `read_committed`), the offset syncs (written only for committed records)
//! and so the checkpoints agree on what was copied.
//!
//! Invariant: a partition's acknowledged offset and stored progress move only when a
//! transaction covering them commits, and then to the last record it holds; an aborted
//! transaction sends every partition it covered back to right after its last committed record;
//! a partition rewound while a transaction holds its records dooms that transaction (its
//! records would otherwise be committed twice).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::offsets::codec::OffsetSync;

/// Where the lane's transactions are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The transactional id is not registered with the target's coordinator yet.
    Unready {
        since: Instant,
        said: bool,
    },
    /// Records may be sent (a transaction opens with the first).
    Ready,
    Committing {
        since: Instant,
    },
    Aborting,
    /// The target refuses transactions: tried again at `retry_at`, with a new producer.
    Refused {
        retry_at: Instant,
    },
    /// Another process has the transactional id: this lane copies nothing more.
    Fenced,
    /// In a group (`crate::instances::units`): the lane's copy unit is not this process's.
    /// Its id is registered only when the group gives the unit, which fences the unit's owner.
    Standby,
}

/// What the open transaction holds of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Covered {
    /// The partition's epoch when it sent its first record in this transaction.
    pub epoch: u32,
    /// Its last source offset sent in this transaction.
    pub last: i64,
    pub records: u64,
    pub bytes: u64,
    /// Timestamps of its first and last record, for the replication latency at commit.
    pub first_timestamp_ms: Option<i64>,
    pub last_timestamp_ms: Option<i64>,
}

/// A lane's transactions: the phase, and what the open one holds.
#[derive(Debug)]
pub(crate) struct Transactions {
    /// `transaction.boundary.interval.ms`
    pub interval: Duration,
    pub phase: Phase,
    covered: HashMap<usize, Covered>,
    /// Why the open transaction cannot commit, once known.
    doomed: Option<String>,
    /// Offset syncs of records it holds, written once it commits.
    syncs: Vec<OffsetSync>,
}

/// What the lane sees of its target when its transactions take a step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxnView {
    /// Since when a transaction is open on the target (`None`: none is).
    pub open_since: Option<Instant>,
    /// Whether the id may be registered now: the group gave the unit (a fence is under way) or
    /// this process may write (a replaced producer).
    pub may_register: bool,
    /// In a group the membership asks a refusing target again, not the lane.
    pub grouped: bool,
}

/// The next thing a lane does with its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnStep {
    Wait,
    /// Register the transactional id (again); `said`: its silence was said already.
    Register {
        since: Instant,
        said: bool,
    },
    /// A doomed transaction that sent nothing: it ends here, nothing to abort.
    Discard,
    /// Add the progress records and commit.
    Commit,
    /// Ask the commit under way since `since` again.
    ContinueCommit {
        since: Instant,
    },
    Abort,
    /// The target refused transactions a while ago: ask again with a new producer.
    AskAgain,
}

/// Where a fence under way stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FenceState {
    /// Still registering.
    Pending,
    /// Registered: the unit's previous owner is fenced.
    Fenced,
    /// Not registered within [`FENCE_WAIT`]: the unit stands by; the membership asks again.
    TimedOut,
    /// Refused or fenced itself.
    Refused,
}

/// After this long without a coordinator answering, the target is said to refuse transactions.
pub(crate) const COORDINATOR_PATIENCE: Duration = Duration::from_secs(30);
/// How often a target that refused transactions is asked again.
pub(crate) const REFUSED_RETRY: Duration = Duration::from_secs(30);
/// How long a lane given a unit tries to register its transactional id (the coordinator first
/// ends the previous owner's open transaction). The membership asks again after that.
pub(crate) const FENCE_WAIT: Duration = Duration::from_secs(20);

impl Transactions {
    pub fn new(interval: Duration, now: Instant) -> Self {
        Transactions {
            interval,
            phase: Phase::Unready {
                since: now,
                said: false,
            },
            covered: HashMap::new(),
            doomed: None,
            syncs: Vec::new(),
        }
    }

    /// The next step at `now`: a pure decision on the phase, the open transaction and the
    /// clock.
    pub fn step(&self, now: Instant, view: TxnView) -> TxnStep {
        match self.phase {
            Phase::Unready { since, said } if view.may_register => {
                TxnStep::Register { since, said }
            }
            Phase::Ready if view.open_since.is_none() && self.doomed.is_some() => TxnStep::Discard,
            Phase::Ready if self.due(view.open_since, now) => TxnStep::Commit,
            Phase::Committing { since } => TxnStep::ContinueCommit { since },
            Phase::Aborting => TxnStep::Abort,
            Phase::Refused { retry_at } if now >= retry_at && !view.grouped => TxnStep::AskAgain,
            _ => TxnStep::Wait,
        }
    }

    /// Registering since `since` got no answer: whether to say now that the target has no
    /// coordinator (once, after [`COORDINATOR_PATIENCE`]).
    pub fn coordinator_silent(since: Instant, said: bool, now: Instant) -> bool {
        !said && now.saturating_duration_since(since) >= COORDINATOR_PATIENCE
    }

    /// A commit under way since `since` takes longer than `timeout`.
    pub fn commit_slow(since: Instant, now: Instant, timeout: Duration) -> bool {
        now.saturating_duration_since(since) >= timeout
    }

    /// Where a fence begun at `since` stands at `now`.
    pub fn fence_state(&self, since: Instant, now: Instant) -> FenceState {
        match self.phase {
            Phase::Ready => FenceState::Fenced,
            Phase::Unready { .. } if now.saturating_duration_since(since) < FENCE_WAIT => {
                FenceState::Pending
            }
            Phase::Unready { .. } => FenceState::TimedOut,
            _ => FenceState::Refused,
        }
    }

    /// Whether the target refused transactions so recently that a fence is refused at once.
    pub fn refused_recently(&self, now: Instant) -> bool {
        matches!(self.phase, Phase::Refused { retry_at } if now < retry_at)
    }

    /// Instances sharing a group: nothing registers until the group gives the lane's unit.
    pub fn standing_by(mut self) -> Self {
        self.phase = Phase::Standby;
        self
    }

    /// Whether the transactional id is registered and usable (else partitions wait unread).
    pub fn registered(&self) -> bool {
        matches!(
            self.phase,
            Phase::Ready | Phase::Committing { .. } | Phase::Aborting
        )
    }

    /// Whether a copied record may be sent now.
    pub fn accepts_records(&self) -> bool {
        self.phase == Phase::Ready && self.doomed.is_none()
    }

    /// A record of `slot` at `offset` went into the open transaction.
    pub fn sent(&mut self, slot: usize, epoch: u32, offset: i64, bytes: u32, ts: Option<i64>) {
        let entry = self.covered.entry(slot).or_insert(Covered {
            epoch,
            last: offset,
            records: 0,
            bytes: 0,
            first_timestamp_ms: ts,
            last_timestamp_ms: ts,
        });
        if entry.epoch != epoch {
            // Its earlier records here would be committed next to their copies.
            self.doomed
                .get_or_insert_with(|| "a partition was rewound in the transaction".to_string());
        }
        entry.last = offset;
        entry.records += 1;
        entry.bytes += u64::from(bytes);
        entry.last_timestamp_ms = ts;
    }

    /// The open transaction cannot commit.
    pub fn doom(&mut self, reason: impl Into<String>) {
        self.doomed.get_or_insert_with(|| reason.into());
    }

    pub fn doomed(&self) -> Option<&str> {
        self.doomed.as_deref()
    }

    /// An offset sync to write once the records it points at are committed.
    pub fn hold_sync(&mut self, sync: OffsetSync) {
        self.syncs.push(sync);
    }

    /// Whether the transaction open since `open_since` should end now: its interval is over,
    /// or it is doomed.
    pub fn due(&self, open_since: Option<Instant>, now: Instant) -> bool {
        self.phase == Phase::Ready
            && open_since.is_some_and(|since| {
                self.doomed.is_some() || now.duration_since(since) >= self.interval
            })
    }

    /// Which covered partitions were rewound since they sent into the transaction, by their
    /// current epoch (`epoch_of`): the transaction must abort if any was.
    pub fn rewound_since(&self, epoch_of: impl Fn(usize) -> Option<u32>) -> Option<usize> {
        self.covered
            .iter()
            .find(|(&slot, covered)| epoch_of(slot).is_some_and(|e| e != covered.epoch))
            .map(|(&slot, _)| slot)
    }

    pub fn covered(&self) -> impl Iterator<Item = (usize, &Covered)> {
        self.covered.iter().map(|(&slot, c)| (slot, c))
    }

    /// The transaction ended (committed or aborted): what it held, and its held-back syncs.
    pub fn ended(&mut self) -> (HashMap<usize, Covered>, Vec<OffsetSync>) {
        self.doomed = None;
        (
            std::mem::take(&mut self.covered),
            std::mem::take(&mut self.syncs),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Transactions {
        let mut t = Transactions::new(Duration::from_millis(100), Instant::now());
        t.phase = Phase::Ready;
        t
    }

    #[test]
    fn records_are_taken_only_when_ready_and_not_doomed() {
        let mut t = Transactions::new(Duration::from_millis(100), Instant::now());
        assert!(!t.accepts_records(), "not before the id is registered");
        t.phase = Phase::Ready;
        assert!(t.accepts_records());
        t.doom("a record failed");
        assert!(!t.accepts_records());
        assert_eq!(t.doomed(), Some("a record failed"));
        t.ended();
        assert!(t.accepts_records());
    }

    #[test]
    fn a_transaction_is_due_after_its_interval_or_at_once_when_doomed() {
        let mut t = ready();
        let now = Instant::now();
        assert!(!t.due(None, now), "nothing open");
        assert!(!t.due(Some(now), now));
        assert!(t.due(Some(now), now + Duration::from_millis(100)));
        t.doom("x");
        assert!(t.due(Some(now), now));
        t.phase = Phase::Committing { since: now };
        assert!(!t.due(Some(now), now + Duration::from_secs(1)));
    }

    #[test]
    fn what_a_transaction_covers_per_partition() {
        let mut t = ready();
        t.sent(0, 3, 10, 100, Some(1));
        t.sent(0, 3, 11, 50, Some(2));
        t.sent(4, 0, 7, 1, None);
        let covered: HashMap<usize, Covered> = t.covered().map(|(s, c)| (s, *c)).collect();
        assert_eq!(covered[&0].last, 11);
        assert_eq!(covered[&0].records, 2);
        assert_eq!(covered[&0].bytes, 150);
        assert_eq!(
            (
                covered[&0].first_timestamp_ms,
                covered[&0].last_timestamp_ms
            ),
            (Some(1), Some(2))
        );
        assert_eq!(t.rewound_since(|_| Some(3)), Some(4));
        assert_eq!(t.rewound_since(|s| Some(if s == 0 { 3 } else { 0 })), None);
        let (ended, syncs) = t.ended();
        assert_eq!(ended.len(), 2);
        assert!(syncs.is_empty());
        assert_eq!(t.covered().count(), 0);
    }

    #[test]
    fn a_partition_rewound_inside_a_transaction_dooms_it() {
        let mut t = ready();
        t.sent(0, 0, 10, 1, None);
        t.sent(0, 1, 10, 1, None);
        assert!(t.doomed().is_some(), "10 would be committed twice");
    }
}
