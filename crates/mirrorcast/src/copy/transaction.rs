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

use crate::health::Health;
use crate::offsets::codec::OffsetSync;
use crate::plan::{FenceAnswer, Reply};

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
    /// The open transaction cannot commit; its abort is asked from `since`.
    Aborting {
        since: Instant,
    },
    /// The target refuses transactions: tried again at `retry_at`, with a new producer.
    Refused {
        retry_at: Instant,
    },
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

/// A lane's transaction driver: the phase, what the open transaction holds, the fence under
/// way, and what was said about commits, refusals and aborts. It decides ([`Self::step`]); the
/// lane carries the decisions out against its target and reports each outcome back.
pub(crate) struct Transactions {
    /// `transaction.boundary.interval.ms`
    interval: Duration,
    phase: Phase,
    covered: HashMap<usize, Covered>,
    /// Why the open transaction cannot commit, once known.
    doomed: Option<String>,
    /// Offset syncs of records it holds, written once it commits.
    syncs: Vec<OffsetSync>,
    /// In a group: the fence the membership asked for, while the id registers.
    fence: Option<Fencing>,
    /// Why the lane copies nothing until someone acts (refused, fenced).
    failure: Option<String>,
    /// Commits that take longer than the delivery timeout.
    slow_ends: Health,
    /// The target refusing transactions to this principal.
    refusals: Health,
    /// Transactions aborted since the last commit.
    aborts: Health,
}

/// A fence the lane is carrying out: registering its unit's id since `since`.
pub(crate) struct Fencing {
    pub since: Instant,
    pub done: Reply<FenceAnswer>,
}

/// What to do when a transaction must end before a deadline (shutdown, a release).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Nothing is open, or nothing more can be done about it.
    Done {
        left_open: bool,
    },
    Commit,
    ContinueCommit {
        since: Instant,
    },
    Abort {
        since: Instant,
    },
}

/// What the lane sees of its target when its transactions take a step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxnView {
    /// Since when a transaction is open on the target (`None`: none is).
    pub open_since: Option<Instant>,
    /// Whether this process may write now (a replaced producer registers again then; in a
    /// group a unit registers otherwise only when given, by a fence).
    pub may_write: bool,
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
    /// Ask the abort under way since `since` again.
    Abort {
        since: Instant,
    },
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
/// How long an abort may stay unanswered before the lane gives its unit up: the producer is
/// dropped and the unit registers again with a new one, from the progress stored (an abort
/// librdkafka cannot finish, e.g. after the coordinator bumped the id's epoch meanwhile, would
/// otherwise hold the unit's partitions for good).
pub(crate) const ABORT_PATIENCE: Duration = Duration::from_secs(45);
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
            fence: None,
            failure: None,
            slow_ends: Health::default(),
            refusals: Health::default(),
            aborts: Health::default(),
        }
    }

    /// The next step at `now`: a pure decision on the phase, the open transaction and the
    /// clock.
    pub fn step(&self, now: Instant, view: TxnView) -> TxnStep {
        match self.phase {
            Phase::Unready { since, said } if view.may_write || self.fence.is_some() => {
                TxnStep::Register { since, said }
            }
            Phase::Ready if view.open_since.is_none() && self.doomed.is_some() => TxnStep::Discard,
            Phase::Ready if self.due(view.open_since, now) => TxnStep::Commit,
            Phase::Committing { since } => TxnStep::ContinueCommit { since },
            Phase::Aborting { since } => TxnStep::Abort { since },
            Phase::Refused { retry_at } if now >= retry_at && !view.grouped => TxnStep::AskAgain,
            _ => TxnStep::Wait,
        }
    }

    /// Registering since `since` got no answer: whether to say now that the target has no
    /// coordinator (once, after [`COORDINATOR_PATIENCE`]).
    pub fn coordinator_silent(since: Instant, said: bool, now: Instant) -> bool {
        !said && now.saturating_duration_since(since) >= COORDINATOR_PATIENCE
    }

    /// A commit or an abort under way since `since` is still pending at `now`: whether to say
    /// now that it takes longer than `timeout` (once, until a transaction ends).
    pub fn end_overdue(&mut self, since: Instant, now: Instant, timeout: Duration) -> bool {
        now.saturating_duration_since(since) >= timeout && self.slow_ends.failed()
    }

    /// A transaction committed: whether to say that commits complete again (after a slow one).
    pub fn commit_completed(&mut self) -> bool {
        self.aborts.recovered();
        self.slow_ends.recovered()
    }

    /// An abort under way since `since`: whether to give the unit up at `now`
    /// ([`ABORT_PATIENCE`]).
    pub fn abort_given_up(since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(since) >= ABORT_PATIENCE
    }

    /// A transaction aborted: whether it is the first of a run (said; all are counted).
    pub fn abort_completed(&mut self) -> bool {
        // A slow abort is over: the abort's own line says the target answered.
        self.slow_ends.recovered();
        self.aborts.failed()
    }

    /// The target refused transactions: whether to say so now (once, until they work again).
    pub fn refusal_is_news(&mut self) -> bool {
        self.refusals.failed()
    }

    /// The id registered: whether a refusal had been said (and its end is news).
    pub fn refusal_ended(&mut self) -> bool {
        self.refusals.recovered()
    }

    /// Where the fence under way stands at `now` (`None`: none is). In a group it times out
    /// after [`FENCE_WAIT`] (the membership asks again); alone it waits as long as the
    /// coordinator does not answer (said after [`COORDINATOR_PATIENCE`]).
    pub fn fence_state(&self, now: Instant, grouped: bool) -> Option<FenceState> {
        let since = self.fence.as_ref()?.since;
        Some(match self.phase {
            Phase::Ready => FenceState::Fenced,
            Phase::Unready { .. }
                if !grouped || now.saturating_duration_since(since) < FENCE_WAIT =>
            {
                FenceState::Pending
            }
            Phase::Unready { .. } => FenceState::TimedOut,
            _ => FenceState::Refused,
        })
    }

    /// Whether the target refused transactions so recently that a fence is refused at once.
    pub fn refused_recently(&self, now: Instant) -> bool {
        matches!(self.phase, Phase::Refused { retry_at } if now < retry_at)
    }

    /// What to do with the open transaction (`open`) before a deadline.
    pub fn finish(&self, open: bool) -> Finish {
        match self.phase {
            Phase::Ready if !open => Finish::Done { left_open: false },
            Phase::Ready => Finish::Commit,
            Phase::Committing { since } => Finish::ContinueCommit { since },
            Phase::Aborting { since } => Finish::Abort { since },
            Phase::Unready { .. } | Phase::Refused { .. } | Phase::Standby => {
                Finish::Done { left_open: open }
            }
        }
    }

    /// Whether records may go into a transaction (`Ready`: not registering, committing or
    /// aborting).
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Whether the lane gave up until someone acts (refused): the producer keeps saying so
    /// until it is replaced.
    pub fn gave_up(&self) -> bool {
        matches!(self.phase, Phase::Refused { .. })
    }

    /// Why the lane copies nothing, when it gave up.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Registers the id with a new producer from `now` (after a fatal error, a refusal's retry,
    /// or a fence).
    pub fn register_from(&mut self, now: Instant) {
        self.phase = Phase::Unready {
            since: now,
            said: false,
        };
    }

    /// The coordinator's silence since `since` was said.
    pub fn silence_said(&mut self, since: Instant) {
        self.phase = Phase::Unready { since, said: true };
    }

    /// The id is registered: records may go.
    pub fn registered_now(&mut self) {
        self.failure = None;
        self.phase = Phase::Ready;
    }

    /// The progress records are in: the commit is asked from `now`.
    pub fn committing(&mut self, now: Instant) {
        self.phase = Phase::Committing { since: now };
    }

    /// Whether the open transaction holds nothing (no partition covered, no sync held back),
    /// so no slot is named by it.
    pub fn holds_nothing(&self) -> bool {
        self.covered.is_empty() && self.syncs.is_empty()
    }

    /// The open transaction cannot commit, for `reason`: it is aborted from `now`.
    pub fn aborting(&mut self, reason: impl Into<String>, now: Instant) {
        self.doom(reason);
        self.phase = Phase::Aborting { since: now };
    }

    /// The transaction ended (committed or aborted): what it held, and its held-back syncs;
    /// the next one may start.
    pub fn concluded(&mut self) -> (HashMap<usize, Covered>, Vec<OffsetSync>) {
        self.phase = Phase::Ready;
        self.ended()
    }

    /// The target refuses transactions (`why` says what to do): asked again after
    /// [`REFUSED_RETRY`].
    pub fn refused(&mut self, why: String, now: Instant) {
        self.failure = Some(why);
        self.phase = Phase::Refused {
            retry_at: now + REFUSED_RETRY,
        };
    }

    /// Asking again could not start (no new producer): asked again after [`REFUSED_RETRY`],
    /// the refusal's explanation kept.
    pub fn retry_later(&mut self, now: Instant) {
        self.phase = Phase::Refused {
            retry_at: now + REFUSED_RETRY,
        };
    }

    /// The lane's unit is not this process's: nothing registers until a fence.
    pub fn stand_by(&mut self) {
        self.phase = Phase::Standby;
    }

    /// A fence begins at `now`: the id registers with a new producer; nothing of the unit is
    /// held here.
    pub fn begin_fence(&mut self, fencing: Fencing) {
        self.ended();
        self.register_from(fencing.since);
        self.fence = Some(fencing);
    }

    /// The fence under way, to answer.
    pub fn take_fence(&mut self) -> Option<Fencing> {
        self.fence.take()
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
            Phase::Ready | Phase::Committing { .. } | Phase::Aborting { .. }
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

    fn view(open_since: Option<Instant>, may_write: bool) -> TxnView {
        TxnView {
            open_since,
            may_write,
            grouped: false,
        }
    }

    #[test]
    fn the_id_registers_only_while_this_process_may_write_or_a_fence_asks() {
        let t0 = Instant::now();
        let mut t = Transactions::new(Duration::from_millis(100), t0);
        assert_eq!(t.step(t0, view(None, false)), TxnStep::Wait);
        let register = TxnStep::Register {
            since: t0,
            said: false,
        };
        assert_eq!(t.step(t0, view(None, true)), register);
        t.stand_by();
        assert_eq!(t.step(t0, view(None, true)), TxnStep::Wait, "standing by");
        let (done, _answers) = Reply::channel();
        t.begin_fence(Fencing { since: t0, done });
        assert_eq!(t.step(t0, view(None, false)), register, "a fence registers");
        t.silence_said(t0);
        let said = TxnStep::Register {
            since: t0,
            said: true,
        };
        assert_eq!(t.step(t0, view(None, false)), said);
        assert!(Transactions::coordinator_silent(
            t0,
            false,
            t0 + COORDINATOR_PATIENCE
        ));
        assert!(!Transactions::coordinator_silent(
            t0,
            true,
            t0 + COORDINATOR_PATIENCE
        ));
    }

    #[test]
    fn a_ready_transaction_commits_after_its_interval_and_a_doomed_empty_one_is_discarded() {
        let t0 = Instant::now();
        let mut t = ready();
        assert_eq!(t.step(t0, view(None, true)), TxnStep::Wait, "nothing open");
        let open = Some(t0);
        assert_eq!(t.step(t0, view(open, true)), TxnStep::Wait);
        let later = t0 + Duration::from_millis(100);
        assert_eq!(t.step(later, view(open, true)), TxnStep::Commit);
        t.committing(later);
        assert_eq!(
            t.step(later, view(open, true)),
            TxnStep::ContinueCommit { since: later }
        );
        t.concluded();
        t.doom("a record failed");
        assert_eq!(t.step(t0, view(None, true)), TxnStep::Discard);
        assert_eq!(
            t.step(t0, view(open, true)),
            TxnStep::Commit,
            "doomed: at once"
        );
        t.aborting("a record failed", later);
        assert_eq!(
            t.step(t0, view(open, true)),
            TxnStep::Abort { since: later }
        );
    }

    #[test]
    fn a_slow_commit_or_abort_is_said_once_until_a_transaction_ends() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(3);
        let mut t = ready();
        t.aborting("the commit failed", t0);
        assert!(!t.end_overdue(t0, t0 + timeout / 2, timeout), "not yet");
        assert!(t.end_overdue(t0, t0 + timeout, timeout), "said");
        assert!(!t.end_overdue(t0, t0 + timeout * 2, timeout), "once");
        t.abort_completed();
        t.committing(t0);
        assert!(
            t.end_overdue(t0, t0 + timeout, timeout),
            "a later slow commit is said again"
        );
        assert!(t.commit_completed(), "and its end");
    }

    #[test]
    fn a_refusal_is_asked_again_after_its_retry_by_the_lane_alone_not_in_a_group() {
        let t0 = Instant::now();
        let mut t = ready();
        t.refused("no ACL".to_string(), t0);
        assert!(t.gave_up() && t.refused_recently(t0));
        assert_eq!(t.failure(), Some("no ACL"));
        assert_eq!(t.step(t0, view(None, true)), TxnStep::Wait);
        let retry = t0 + REFUSED_RETRY;
        assert!(!t.refused_recently(retry));
        assert_eq!(t.step(retry, view(None, true)), TxnStep::AskAgain);
        let grouped = TxnView {
            grouped: true,
            ..view(None, true)
        };
        assert_eq!(t.step(retry, grouped), TxnStep::Wait, "the membership asks");
        t.register_from(retry);
        t.registered_now();
        assert!(!t.gave_up() && t.failure().is_none());
    }

    #[test]
    fn a_fence_is_pending_until_registered_refused_or_timed_out() {
        let t0 = Instant::now();
        let mut t = Transactions::new(Duration::from_millis(100), t0).standing_by();
        assert_eq!(t.fence_state(t0, true), None);
        let (done, _answers) = Reply::channel();
        t.begin_fence(Fencing { since: t0, done });
        let just_before = t0 + FENCE_WAIT - Duration::from_millis(1);
        assert_eq!(t.fence_state(just_before, true), Some(FenceState::Pending));
        assert_eq!(
            t.fence_state(t0 + FENCE_WAIT, true),
            Some(FenceState::TimedOut)
        );
        assert_eq!(
            t.fence_state(t0 + FENCE_WAIT, false),
            Some(FenceState::Pending),
            "alone, a fence waits for the coordinator"
        );
        t.registered_now();
        assert_eq!(
            t.fence_state(t0 + FENCE_WAIT, true),
            Some(FenceState::Fenced)
        );
        t.refused("no ACL".to_string(), t0);
        assert_eq!(t.fence_state(t0, true), Some(FenceState::Refused));
        assert!(t.take_fence().is_some() && t.fence_state(t0, true).is_none());
    }

    #[test]
    fn finishing_before_a_deadline_commits_what_is_open_and_leaves_the_rest() {
        let t0 = Instant::now();
        let mut t = ready();
        assert_eq!(t.finish(false), Finish::Done { left_open: false });
        assert_eq!(t.finish(true), Finish::Commit);
        t.committing(t0);
        assert_eq!(t.finish(true), Finish::ContinueCommit { since: t0 });
        t.aborting("x", Instant::now());
        assert!(matches!(t.finish(true), Finish::Abort { .. }));
        t.refused("y".to_string(), t0);
        assert_eq!(t.finish(true), Finish::Done { left_open: true });
    }

    #[test]
    fn a_slow_commit_is_said_once_when_it_becomes_slow_and_its_end_once() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(120);
        let mut t = ready();
        assert!(!t.end_overdue(t0, t0, timeout), "pending, not slow");
        assert!(!t.end_overdue(t0, t0 + Duration::from_secs(60), timeout));
        assert!(t.end_overdue(t0, t0 + timeout, timeout), "said when slow");
        assert!(!t.end_overdue(t0, t0 + timeout * 2, timeout), "once");
        assert!(t.commit_completed(), "its end is said");
        assert!(
            !t.commit_completed(),
            "a commit that was never slow says nothing"
        );
    }

    #[test]
    fn refusals_and_aborts_are_said_at_the_first_of_a_run() {
        let t0 = Instant::now();
        let mut t = ready();
        assert!(t.abort_completed() && !t.abort_completed());
        t.commit_completed();
        assert!(t.abort_completed(), "a new run after a commit");
        assert!(t.refusal_is_news() && !t.refusal_is_news());
        t.refused("no ACL on the transactional ids".to_string(), t0);
        t.retry_later(t0 + REFUSED_RETRY);
        assert_eq!(t.failure(), Some("no ACL on the transactional ids"), "kept");
        assert!(t.refused_recently(t0 + REFUSED_RETRY));
        assert!(t.refusal_ended() && !t.refusal_ended());
    }
}
