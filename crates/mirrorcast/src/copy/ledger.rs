//! The bookkeeping of one copied partition, apart from any I/O: which source offset the target
//! last acknowledged, what is stored as progress, and the epoch that tells current delivery
//! reports from those of records sent before a rewind. The copier's correctness rests here:
//! progress never passes an unacknowledged record, and a failure always resumes right after
//! the last acknowledged one.

use rdkafka::Offset;

#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLedger {
    /// Where copying began, for a rewind before anything was acknowledged.
    start: Offset,
    acked: Option<i64>,
    /// What the progress topic holds (or is being sent).
    stored: Option<i64>,
    epoch: u32,
}

impl PartitionLedger {
    /// A partition whose stored progress (last copied source offset) is `stored`, if any.
    pub fn new(stored: Option<i64>) -> Self {
        PartitionLedger {
            start: stored.map_or(Offset::Beginning, |o| Offset::Offset(o + 1)),
            acked: stored,
            stored,
            epoch: 0,
        }
    }

    /// A partition without progress whose copy starts at `offset` (`auto.offset.reset =
    /// latest`): everything before it counts as handled, and that is stored as progress at the
    /// next flush, so a restart does not move the start again.
    pub fn starting_at(offset: i64) -> Self {
        PartitionLedger {
            start: Offset::Offset(offset),
            acked: Some(offset - 1),
            stored: None,
            epoch: 0,
        }
    }

    /// The epoch to tag records with now.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Where reading must (re)start: right after the last acknowledged record.
    pub fn resume_offset(&self) -> Offset {
        self.acked.map_or(self.start, |o| Offset::Offset(o + 1))
    }

    pub fn acked(&self) -> Option<i64> {
        self.acked
    }

    /// The target acknowledged the record at `offset` sent in `epoch`. Returns whether it
    /// counts (reports of records sent before a rewind do not).
    pub fn acknowledged(&mut self, epoch: u32, offset: i64) -> bool {
        if epoch != self.epoch {
            return false;
        }
        self.acked = Some(offset);
        true
    }

    /// A record sent in `epoch` failed. Returns whether the partition must be rewound (false
    /// when a rewind already happened since that record was sent).
    pub fn delivery_failed(&mut self, epoch: u32) -> bool {
        if epoch != self.epoch {
            return false;
        }
        self.rewind();
        true
    }

    /// The source's offsets went back (or jumped): copying goes on from `offset`, with a new
    /// epoch; what was acknowledged before means nothing for the new offsets. The stored
    /// progress is kept until an acknowledgement replaces it.
    pub fn restart_at(&mut self, offset: i64) {
        self.rewind();
        self.start = Offset::Offset(offset);
        self.acked = None;
    }

    /// The source topic was created again: copying starts over from its beginning, with a new
    /// epoch. What is stored is of the old topic: the first acknowledgement is stored whatever
    /// its offset.
    pub fn restart_from_beginning(&mut self) {
        self.rewind();
        self.start = Offset::Beginning;
        self.acked = None;
        self.stored = None;
    }

    /// A progress record handed to the producer may have been purged unreported: the
    /// acknowledged offset is stored again at the next flush.
    pub fn store_again(&mut self) {
        self.stored = None;
    }

    /// Starts a new epoch: every report of what is in flight is stale from now on.
    pub fn rewind(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// The offset to store as progress, if it moved since the last store.
    /// A transaction holding this partition's records up to `offset` committed (exactly
    /// once): they are acknowledged, and their progress stored with them.
    pub fn committed(&mut self, offset: i64) {
        self.acked = Some(offset);
        self.stored = Some(offset);
    }

    pub fn progress_to_store(&self) -> Option<i64> {
        self.acked.filter(|acked| self.stored != Some(*acked))
    }

    /// A progress record for `offset` was handed to the producer.
    pub fn progress_sent(&mut self, offset: i64) {
        self.stored = Some(offset);
    }

    /// Storing `offset` failed: store again at the next opportunity.
    pub fn progress_failed(&mut self, offset: i64) {
        if self.stored == Some(offset) {
            self.stored = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_partition_starts_at_the_beginning_and_a_resumed_one_after_its_progress() {
        assert_eq!(
            PartitionLedger::new(None).resume_offset(),
            Offset::Beginning
        );
        let resumed = PartitionLedger::new(Some(41));
        assert_eq!(resumed.resume_offset(), Offset::Offset(42));
        assert_eq!(resumed.progress_to_store(), None, "nothing new to store");
    }

    #[test]
    fn acknowledgements_move_the_resume_point_and_the_progress() {
        let mut ledger = PartitionLedger::new(None);
        assert!(ledger.acknowledged(0, 0));
        assert!(ledger.acknowledged(0, 1));
        assert_eq!(ledger.resume_offset(), Offset::Offset(2));
        assert_eq!(ledger.progress_to_store(), Some(1));
        ledger.progress_sent(1);
        assert_eq!(ledger.progress_to_store(), None);
    }

    #[test]
    fn a_failure_rewinds_to_after_the_last_acknowledged_record_and_ignores_stale_reports() {
        let mut ledger = PartitionLedger::new(Some(9));
        assert!(ledger.acknowledged(0, 10));
        // 11 fails; 12 and 13 were in flight behind it.
        assert!(ledger.delivery_failed(0));
        assert_eq!(ledger.resume_offset(), Offset::Offset(11));
        assert!(
            !ledger.acknowledged(0, 12),
            "a stale success must not skip 11"
        );
        assert!(!ledger.delivery_failed(0), "one rewind per failure burst");
        assert_eq!(ledger.resume_offset(), Offset::Offset(11));
        // The copy again from 11 is acknowledged in the new epoch.
        assert!(ledger.acknowledged(1, 11));
        assert_eq!(ledger.resume_offset(), Offset::Offset(12));
    }

    #[test]
    fn a_failure_before_any_acknowledgement_rewinds_to_the_start() {
        let mut ledger = PartitionLedger::new(None);
        assert!(ledger.delivery_failed(0));
        assert_eq!(ledger.resume_offset(), Offset::Beginning);
        assert_eq!(ledger.progress_to_store(), None);
    }

    #[test]
    fn a_failed_progress_write_is_retried() {
        let mut ledger = PartitionLedger::new(None);
        ledger.acknowledged(0, 5);
        ledger.progress_sent(5);
        ledger.progress_failed(5);
        assert_eq!(ledger.progress_to_store(), Some(5));
        // A late failure report of an older value does not undo a newer store.
        ledger.acknowledged(0, 6);
        ledger.progress_sent(6);
        ledger.progress_failed(5);
        assert_eq!(ledger.progress_to_store(), None);
    }
}
