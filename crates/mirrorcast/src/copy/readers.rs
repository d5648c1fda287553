//! The readers of one source: the shared reader every lane reads through while it keeps up,
//! each lane's own reader for catching up, and where the shared reader stands on every
//! partition ([`Cursors`], built on [`super::fanout::SharedCursor`]).
//!
//! Invariant: a partition is assigned on the shared reader exactly while at least one lane
//! reads it there, at the offset [`super::fanout`] decided; a failed reassignment leaves no
//! lane listed there.

use rdkafka::error::KafkaError;
use rdkafka::Offset;
use tracing::warn;

use super::fanout::{Join, SharedCursor};
use super::io::Reader;
use super::partitions::{Mode, PartitionIndex};

/// The readers of a source, used through `&` so that a borrowed record can be forwarded while
/// the bookkeeping changes.
pub(crate) struct Readers<R> {
    pub shared: R,
    /// Each lane's own reader, by lane index.
    pub own: Vec<R>,
}

impl<R: Reader> Readers<R> {
    /// The end of a partition as the reader that has it assigned last saw it: lane `lane`'s own
    /// reader while it catches up, else the shared reader while it reads the partition (for
    /// this lane or others); `None` when neither has it. Only such a reader is asked: librdkafka
    /// keeps a partition a client was asked about as wanted until it is unassigned, and once
    /// its topic is deleted queues an error for it every second that nothing reads (memory
    /// grew by about 100 KiB per deleted partition every ten minutes).
    pub fn end_seen(
        &self,
        lane: usize,
        mode: Mode,
        shared_reads_it: bool,
        topic: &str,
        partition: i32,
    ) -> Option<i64> {
        match mode {
            Mode::CatchingUp => self.own[lane].high_watermark(topic, partition),
            _ if shared_reads_it => self.shared.high_watermark(topic, partition),
            _ => None,
        }
    }
}

/// Where the shared reader stands on every source partition any lane copies.
#[derive(Default)]
pub(crate) struct Cursors {
    list: Vec<(String, i32, SharedCursor)>,
    index: PartitionIndex,
    /// A takeover displaced lanes that have not moved yet (saves a scan per round).
    any_displaced: bool,
}

impl Cursors {
    pub fn find(&self, topic: &str, partition: i32) -> Option<usize> {
        self.index.get(topic, partition)
    }

    pub fn find_or_add(&mut self, topic: &str, partition: i32) -> usize {
        let cursor = self.list.len();
        if self.index.insert(topic, partition, cursor) {
            self.list
                .push((topic.to_string(), partition, SharedCursor::default()));
            return cursor;
        }
        self.index.get(topic, partition).unwrap_or(cursor)
    }

    pub fn get(&self, cursor: usize) -> &SharedCursor {
        &self.list[cursor].2
    }

    pub fn get_mut(&mut self, cursor: usize) -> &mut SharedCursor {
        &mut self.list[cursor].2
    }

    /// Lane `lane` (slot `slot`) wants to read partition `cursor` from `from` through the
    /// shared reader. Returns whether it now does (false: it must catch up on its own).
    pub fn join(
        &mut self,
        reader: &impl Reader,
        cursor: usize,
        lane: usize,
        slot: usize,
        from: Offset,
    ) -> Result<bool, KafkaError> {
        let (topic, partition, shared) = &mut self.list[cursor];
        let join = shared.join(lane, from);
        match join {
            Join::CatchUp => return Ok(false),
            Join::Share => {}
            Join::Assign(offset) | Join::TakeOver(offset) => {
                if shared.is_assigned() {
                    reader.unassign(topic, *partition)?;
                    shared.unassigned();
                }
                if let Err(e) = reader.assign(&[(topic.as_str(), *partition, offset)]) {
                    // Nobody reads the partition here now: the lanes that did continue on their
                    // own readers rather than wait for records that will not come.
                    shared.displace_all_but(lane);
                    self.any_displaced |= shared.has_displaced();
                    return Err(e);
                }
                shared.assigned(offset);
                if let Join::TakeOver(_) = join {
                    shared.displace_all_but(lane);
                    self.any_displaced = true;
                }
            }
        }
        shared.add(lane, slot);
        Ok(true)
    }

    /// The slots of lane `lane` that another lane's takeover moved off the shared reader.
    pub fn take_displaced(&mut self, lane: usize) -> Vec<usize> {
        if !self.any_displaced {
            return Vec::new();
        }
        let mut slots = Vec::new();
        let mut left_for_others = false;
        for (_, _, shared) in &mut self.list {
            slots.extend(shared.take_displaced(lane));
            left_for_others |= shared.has_displaced();
        }
        self.any_displaced = left_for_others;
        slots
    }

    /// Lane `lane` stops reading partition `cursor` through the shared reader.
    /// Lane `lane`'s slots were renumbered (`renumbered[old]`).
    pub fn renumber_lane(&mut self, lane: usize, renumbered: &[Option<usize>]) {
        for (_, _, shared) in &mut self.list {
            shared.renumber(lane, renumbered);
        }
    }

    pub fn leave(&mut self, reader: &impl Reader, cursor: usize, lane: usize) {
        let (topic, partition, shared) = &mut self.list[cursor];
        if shared.remove(lane) {
            if let Err(e) = reader.unassign(topic, *partition) {
                warn!("pausing {topic}[{partition}]: {e}");
            }
            shared.unassigned();
        }
    }
}

/// The readers and the shared cursors together, as a lane's transitions need them.
pub(crate) struct Reading<'a, R> {
    pub readers: &'a Readers<R>,
    pub cursors: &'a mut Cursors,
}
