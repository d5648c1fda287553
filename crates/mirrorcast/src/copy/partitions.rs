//! The copier's per-partition state, apart from any I/O: the lookup from a source partition to
//! its slot, which reader a lane takes the partition's records from ([`Mode`]), and the next
//! offset to send.
//!
//! Invariant: a slot, once given, names the same source partition for the lane's lifetime (a
//! partition whose topic is gone is retired, never reused), so delivery reports tagged with a
//! slot always find their partition.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Offset;

use super::ledger::PartitionLedger;
use super::refused::Refusal;
use super::report::PartitionMeters;
use crate::backoff::Backoff;
use crate::kafka::cluster::TopicId;
use crate::offsets::translate::SyncEmitter;

/// Source topic → partition → slot.
#[derive(Debug, Default)]
pub(crate) struct PartitionIndex {
    by_topic: HashMap<String, HashMap<i32, usize>>,
}

impl PartitionIndex {
    pub fn get(&self, topic: &str, partition: i32) -> Option<usize> {
        self.by_topic.get(topic)?.get(&partition).copied()
    }

    /// Records `slot` for a partition not known yet; returns false (and changes nothing) for a
    /// known one.
    pub fn insert(&mut self, topic: &str, partition: i32, slot: usize) -> bool {
        let partitions = self.by_topic.entry(topic.to_string()).or_default();
        if partitions.contains_key(&partition) {
            return false;
        }
        partitions.insert(partition, slot);
        true
    }

    /// Forgets one partition; returns its slot.
    pub fn remove(&mut self, topic: &str, partition: i32) -> Option<usize> {
        let partitions = self.by_topic.get_mut(topic)?;
        let slot = partitions.remove(&partition);
        if partitions.is_empty() {
            self.by_topic.remove(topic);
        }
        slot
    }

    /// The slots of a topic's partitions.
    pub fn slots_of(&self, topic: &str) -> Vec<usize> {
        self.by_topic
            .get(topic)
            .map(|partitions| partitions.values().copied().collect())
            .unwrap_or_default()
    }

    /// Forgets a topic; returns its partitions and their slots.
    pub fn remove_topic(&mut self, topic: &str) -> Option<HashMap<i32, usize>> {
        self.by_topic.remove(topic)
    }

    pub fn topic_count(&self) -> usize {
        self.by_topic.len()
    }
}

/// Which reader a lane takes a partition's records from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The source's shared reader.
    Shared,
    /// The lane's own reader, until it reaches the shared position.
    CatchingUp,
    /// Taken away after a failure; read again from the last acknowledged offset at this time.
    Waiting(Instant),
    /// Stopped at a record the target refused for good (`errors.tolerance = none`).
    Stopped,
}

/// One partition a lane copies.
pub(crate) struct PartitionState {
    pub source_topic: String,
    pub remote_topic: Arc<str>,
    pub partition: i32,
    pub ledger: PartitionLedger,
    pub mode: Mode,
    /// The next source offset to send: records before it were sent already in this epoch.
    pub next: Offset,
    /// The partition's place in the shared reader's cursors.
    pub cursor: usize,
    pub backoff: Backoff,
    /// Its source topic is gone: nothing more to copy or store.
    pub retired: bool,
    pub meters: PartitionMeters,
    /// Decides when a copied record deserves an offset sync (when they are on).
    pub sync_emitter: Option<SyncEmitter>,
    /// Records of this partition the producer holds, of any epoch: a rewind re-sends only once
    /// none is left, so an old attempt never races the new one and each failure re-sends a
    /// record at most once.
    pub in_flight: u32,
    /// Since when (as the once-a-second check saw it) records are in flight with no report.
    pub unreported_since: Option<Instant>,
    /// A record the target refused for good, until it is dealt with.
    pub refusal: Option<Refusal>,
    /// A record sent only with nothing else of the partition in flight, and nothing after it
    /// until it is reported: a refused record, or the suspect of a batch refused as too large.
    pub alone: Option<i64>,
    /// The largest record (offset, bytes) of a batch the target refused as too large.
    largest_too_large: Option<(i64, u32)>,
    /// The ID of the source topic being copied (stored with the progress), once known.
    pub topic_id: Option<TopicId>,
    /// The remote topic's `max.message.bytes`, when known.
    pub limit: Option<u32>,
    /// The partition's end at the source as a reader of it last saw it (kept while none has
    /// it: waiting, stopped).
    pub source_end: Option<i64>,
}

impl PartitionState {
    /// Starts a partition without progress at `offset` instead of its beginning.
    pub fn start_at(&mut self, offset: i64) {
        self.ledger = PartitionLedger::starting_at(offset);
        self.next = self.ledger.resume_offset();
    }

    /// A partition to be read (at once, `now`) from right after its stored progress.
    #[allow(clippy::too_many_arguments)] // each is a distinct fact of a new partition
    pub fn new(
        source_topic: &str,
        remote_topic: Arc<str>,
        partition: i32,
        stored: Option<i64>,
        cursor: usize,
        meters: PartitionMeters,
        sync_emitter: Option<SyncEmitter>,
        now: Instant,
    ) -> Self {
        let ledger = PartitionLedger::new(stored);
        PartitionState {
            source_topic: source_topic.to_string(),
            remote_topic,
            partition,
            next: ledger.resume_offset(),
            ledger,
            mode: Mode::Waiting(now),
            cursor,
            backoff: Backoff::default(),
            retired: false,
            meters,
            sync_emitter,
            in_flight: 0,
            unreported_since: None,
            refusal: None,
            alone: None,
            largest_too_large: None,
            topic_id: None,
            limit: None,
            source_end: None,
        }
    }

    /// The source topic was deleted and created again (it has ID `id` now): copying starts
    /// over from the new topic's beginning, in a new epoch (reports of what was sent before
    /// count for nothing).
    /// With `start_at` (`auto.offset.reset = latest`: the new topic's end now), from there.
    /// A partition stopped at a refused record of the old topic goes on.
    pub fn topic_created_again(&mut self, id: TopicId, start_at: Option<i64>, now: Instant) {
        self.ledger.restart_from_beginning();
        if let Some(offset) = start_at {
            self.ledger.restart_at(offset);
        }
        self.next = self.ledger.resume_offset();
        self.topic_id = Some(id);
        self.source_end = None;
        self.meters.recreations.inc();
        // A refusal was of a record of the old topic.
        if self.mode == Mode::Stopped && self.refusal.is_some() {
            self.mode = Mode::Waiting(now);
            self.meters.stopped.set(0);
        }
        self.refusal = None;
        self.alone = None;
        self.largest_too_large = None;
    }

    /// A record of a batch refused as too large: remember the largest.
    pub fn note_too_large(&mut self, offset: i64, bytes: u32) {
        if self
            .largest_too_large
            .is_none_or(|(_, largest)| bytes > largest)
        {
            self.largest_too_large = Some((offset, bytes));
        }
    }

    /// Resuming after a batch was refused as too large: its largest record goes alone (unless a
    /// refused record is still to be dealt with, which goes alone first).
    pub fn arm_suspect(&mut self) {
        if let Some((offset, _)) = self.largest_too_large.take() {
            self.alone = self.alone.or(Some(offset));
        }
    }

    /// Whether the record at `offset` is the refused one still to be dealt with.
    pub fn refused_at(&self, offset: i64) -> bool {
        self.refusal.as_ref().is_some_and(|r| r.offset == offset)
    }

    /// Whether the record at `offset` must wait until nothing of the partition is in flight.
    pub fn must_wait(&self, offset: i64) -> bool {
        self.alone.is_some_and(|alone| offset >= alone) && self.in_flight > 0
    }

    /// The producer took a record of this partition.
    pub fn sent(&mut self, offset: i64) {
        self.next = Offset::Offset(offset + 1);
        self.in_flight += 1;
    }

    /// The target reported on a record of this partition (acknowledged or failed, any epoch).
    /// A transaction holding this partition's records up to `last` committed. A partition
    /// rewound while it committed continues after it, not from the commit before.
    pub fn committed(&mut self, last: i64) {
        self.ledger.committed(last);
        match self.next {
            Offset::Offset(next) if next > last => {}
            _ => self.next = Offset::Offset(last + 1),
        }
    }

    pub fn reported(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.unreported_since = None;
    }

    /// Whether records have been in flight with no report for `timeout` (seen at `now`, a check
    /// made about once a second).
    pub fn stalled(&mut self, now: Instant, timeout: Duration) -> bool {
        if self.in_flight == 0 {
            self.unreported_since = None;
            return false;
        }
        let since = *self.unreported_since.get_or_insert(now);
        !timeout.is_zero() && now.saturating_duration_since(since) >= timeout
    }

    /// Whether a waiting partition may be read again at `now`: its backoff is over and nothing
    /// of an earlier attempt is still in flight.
    pub fn due(&self, now: Instant) -> bool {
        matches!(self.mode, Mode::Waiting(at) if at <= now) && self.in_flight == 0
    }

    /// Whether the record at `offset` is still to be sent (not sent before in this epoch).
    pub fn wants(&self, offset: i64) -> bool {
        super::fanout::wants(self.next, offset)
    }

    /// Schedules the partition to be read again, after a backoff, from right after its last
    /// acknowledged record.
    pub fn wait_and_resume(&mut self, now: Instant) {
        self.next = self.ledger.resume_offset();
        if self.mode == Mode::Stopped {
            return;
        }
        self.mode = Mode::Waiting(now + self.backoff.next_delay());
    }

    /// Where nothing is left to copy of a partition whose reader moved past offsets without
    /// records for the lane (transaction markers, aborted records): only when everything the
    /// lane sent is acknowledged.
    pub fn read_through(&self, reader_position: Option<i64>) -> Option<i64> {
        let Offset::Offset(next) = self.next else {
            return None;
        };
        let all_acknowledged = self
            .ledger
            .acked()
            .map_or(next == 0, |acked| acked + 1 == next);
        match reader_position {
            Some(position) if all_acknowledged && position > next => Some(position),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Observability;

    fn state(stored: Option<i64>) -> PartitionState {
        let reporter = super::super::report::FlowReporter::new(Observability::new(), "a", "b");
        PartitionState::new(
            "t",
            Arc::from("a.t"),
            0,
            stored,
            0,
            reporter.partition("t", "t", 0),
            None,
            Instant::now(),
        )
    }

    #[test]
    fn the_index_gives_each_partition_one_slot() {
        let mut index = PartitionIndex::default();
        assert!(index.insert("t", 0, 0));
        assert!(index.insert("t", 1, 1));
        assert!(!index.insert("t", 0, 7));
        assert_eq!(index.get("t", 0), Some(0));
        assert_eq!(index.get("u", 0), None);
        assert_eq!(index.remove_topic("t").map(|p| p.len()), Some(2));
        assert_eq!(index.topic_count(), 0);
    }

    #[test]
    fn a_new_partition_resumes_after_its_stored_progress_or_from_the_beginning() {
        assert_eq!(state(Some(41)).next, Offset::Offset(42));
        assert_eq!(state(None).next, Offset::Beginning);
        assert!(!state(Some(41)).wants(41));
        assert!(state(Some(41)).wants(42));
    }

    #[test]
    fn read_through_only_once_everything_sent_is_acknowledged() {
        let mut s = state(Some(9));
        // Sent 10 and 11, acknowledged 10 only: the reader's position past markers must wait.
        s.next = Offset::Offset(12);
        s.ledger.acknowledged(0, 10);
        assert_eq!(s.read_through(Some(14)), None);
        s.ledger.acknowledged(0, 11);
        assert_eq!(s.read_through(Some(14)), Some(14));
        assert_eq!(s.read_through(Some(12)), None);
        assert_eq!(s.read_through(None), None);
    }
}
