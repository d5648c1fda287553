//! What becomes of each fetched batch on the way to one target's partition: passed whole,
//! re-encoded (and why), dropped (and why), or already copied. Pure: the copier
//! (`super::copier`) feeds it batches in source order with the partition's next offset.
//!
//! Invariant: every record at or after `next` that a consumer of the source would see (under
//! the flow's isolation level) is in what comes out, once, in source order; nothing before
//! `next` is.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::kafka::record_batch::{self as format, Batch, Codec, FormatError, Sequence};

/// Why a batch is re-encoded rather than passed whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reencode {
    /// The copy resumes inside it: only its tail is copied.
    StartsMidBatch,
    /// Compaction removed records from inside it (its offsets have gaps).
    Gaps,
    /// Its timestamps are the source's append time.
    LogAppendTime,
    /// It is larger than the target topic's `max.message.bytes`: split.
    TooLarge,
    /// The target topic's `compression.type` names another codec.
    Compression,
}

impl Reencode {
    pub fn label(self) -> &'static str {
        match self {
            Reencode::StartsMidBatch => "starts_mid_batch",
            Reencode::Gaps => "offset_gaps",
            Reencode::LogAppendTime => "log_append_time",
            Reencode::TooLarge => "too_large",
            Reencode::Compression => "compression",
        }
    }
}

/// Why a batch is not copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Everything in it is before the partition's next offset.
    Copied,
    /// A transaction marker: consumers never see it.
    Control,
    /// Part of an aborted transaction, read committed.
    Aborted,
    /// Compaction removed all its records.
    Empty,
}

/// The target topic's limits a batch must fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetTopic {
    /// `max.message.bytes` (`None`: not known, nothing is split).
    pub max_batch_bytes: Option<usize>,
    /// `compression.type` as a codec (`None`: `producer`, the batch's own is kept).
    pub codec: Option<Codec>,
}

/// What to do with one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Drop(Dropped),
    Whole,
    Reencode(Reencode),
}

/// Transactions aborted in a partition, from a `read_committed` fetch's list: which
/// producers' batches to drop from where, until their abort marker.
#[derive(Debug, Default)]
pub struct Aborted {
    /// (producer id, first offset), by first offset.
    upcoming: VecDeque<(i64, i64)>,
    /// Producers whose batches are dropped until their abort marker.
    open: HashMap<i64, ()>,
}

impl Aborted {
    /// A fetch's aborted transactions (it may repeat ones already known).
    pub fn learn(&mut self, mut list: Vec<(i64, i64)>) {
        list.sort_by_key(|(_, first)| *first);
        for entry in list {
            if !self.upcoming.contains(&entry) {
                self.upcoming.push_back(entry);
            }
        }
    }

    /// Whether `batch` is part of an aborted transaction (its marker included), and keeps
    /// track of which transactions end with it. Called once per batch, in order.
    pub fn drops(&mut self, batch: &Batch) -> bool {
        while let Some(&(producer, first)) = self.upcoming.front() {
            if first > batch.last_offset() {
                break;
            }
            self.upcoming.pop_front();
            self.open.insert(producer, ());
        }
        if !batch.transactional() {
            return false;
        }
        let producer = batch.producer_id();
        if !self.open.contains_key(&producer) {
            return false;
        }
        if batch.aborts() == Some(true) {
            self.open.remove(&producer);
        }
        true
    }
}

/// Decides a batch's fate for a partition whose next offset to copy is `next`; `aborted`:
/// [`Aborted::drops`] said so (reading committed records only).
pub fn verdict(
    batch: &Batch,
    next: i64,
    aborted: bool,
    target: TargetTopic,
) -> Result<Verdict, FormatError> {
    if batch.last_offset() < next {
        return Ok(Verdict::Drop(Dropped::Copied));
    }
    if batch.control() {
        return Ok(Verdict::Drop(Dropped::Control));
    }
    if aborted {
        return Ok(Verdict::Drop(Dropped::Aborted));
    }
    if batch.record_count() == 0 {
        return Ok(Verdict::Drop(Dropped::Empty));
    }
    let codec = batch.codec()?;
    Ok(if batch.base_offset() < next {
        Verdict::Reencode(Reencode::StartsMidBatch)
    } else if batch.has_gaps() {
        Verdict::Reencode(Reencode::Gaps)
    } else if batch.log_append_time() {
        Verdict::Reencode(Reencode::LogAppendTime)
    } else if target.codec.is_some_and(|c| c != codec) {
        Verdict::Reencode(Reencode::Compression)
    } else if target.max_batch_bytes.is_some_and(|max| batch.len() > max) {
        Verdict::Reencode(Reencode::TooLarge)
    } else {
        Verdict::Whole
    })
}

/// A batch ready for the target, with what its acknowledgement means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub bytes: Bytes,
    /// Source offsets of its first and last record.
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: i32,
    /// The newest timestamp of its records (replication latency).
    pub max_timestamp: i64,
}

/// A record alone larger than the target allows: refused for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub offset: i64,
    pub bytes: usize,
    pub max: usize,
}

/// What re-encoding a batch can come to.
#[derive(Debug, thiserror::Error)]
pub enum ReencodeError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("the record at offset {} is {} bytes as a batch, above the target's max.message.bytes ({})", .0.offset, .0.bytes, .0.max)]
    TooLarge(TooLarge),
}

/// The records of `batch` from `next` on, as batches for the target: in the target's codec
/// (else the batch's own), each within `max_batch_bytes`. Sequences are given later by the
/// sender (`with_sequence`), so these carry none.
pub fn reencode(
    batch: &Batch,
    next: i64,
    target: TargetTopic,
) -> Result<Vec<Outgoing>, ReencodeError> {
    let records: Vec<_> = batch
        .records()?
        .into_iter()
        .filter(|r| r.offset >= next)
        .collect();
    let codec = target.codec.unwrap_or(batch.codec()?);
    let mut out = Vec::new();
    let mut queue = VecDeque::from([records]);
    while let Some(chunk) = queue.pop_front() {
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
            continue;
        };
        let bytes = format::encode(&chunk, codec, None)?;
        if let Some(max) = target.max_batch_bytes.filter(|max| bytes.len() > *max) {
            if chunk.len() == 1 {
                return Err(ReencodeError::TooLarge(TooLarge {
                    offset: first.offset,
                    bytes: bytes.len(),
                    max,
                }));
            }
            // Halves, in order, before anything after them.
            let mut chunk = chunk;
            let tail = chunk.split_off(chunk.len() / 2);
            queue.push_front(tail);
            queue.push_front(chunk);
            continue;
        }
        out.push(Outgoing {
            first_offset: first.offset,
            last_offset: last.offset,
            records: chunk.len() as i32,
            max_timestamp: chunk.iter().map(|r| r.timestamp).max().unwrap_or(-1),
            bytes,
        });
    }
    Ok(out)
}

/// `batch` as it passes whole (its sequence given by the sender).
pub fn whole(batch: &Batch) -> Outgoing {
    Outgoing {
        bytes: batch.bytes().clone(),
        first_offset: batch.base_offset(),
        last_offset: batch.last_offset(),
        records: batch.record_count(),
        max_timestamp: batch.max_timestamp(),
    }
}

/// The idempotent producer's sequence of each target partition: the next batch's base
/// sequence, moved on by each batch's record count (wrapping as Kafka's does).
#[derive(Debug, Default)]
pub struct Sequences {
    next: HashMap<(String, i32), i32>,
}

impl Sequences {
    /// The base sequence for a batch of `records` to `topic[partition]`, counted as sent.
    pub fn take(&mut self, topic: &str, partition: i32, records: i32) -> i32 {
        let next = self.next.entry((topic.to_string(), partition)).or_insert(0);
        let base = *next;
        *next = if i32::MAX - base < records {
            records - (i32::MAX - base) - 1
        } else {
            base + records
        };
        base
    }

    /// Gives back what `take` counted for batches that were not appended (sent again later).
    pub fn set(&mut self, topic: &str, partition: i32, next: i32) {
        self.next.insert((topic.to_string(), partition), next);
    }

    #[cfg(test)]
    pub fn peek(&self, topic: &str, partition: i32) -> i32 {
        self.next
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
    }

    /// A new producer id: every partition starts at 0.
    pub fn reset(&mut self) {
        self.next.clear();
    }
}

/// The batch's bytes with the producer's id, epoch and base sequence, for a whole batch
/// (re-writing its header) or a re-encoded one (whose header is ours).
pub fn with_sequence(
    outgoing: &Outgoing,
    producer: Option<Sequence>,
) -> Result<Bytes, FormatError> {
    Ok(Batch::from_bytes(outgoing.bytes.clone())?.for_producer(producer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::record_batch::{encode, RawRecord};
    use bytes::BytesMut;

    fn batch_at(base: i64, n: i64, producer: i64, transactional: bool) -> Batch {
        let records: Vec<_> = (base..base + n)
            .map(|o| RawRecord::new(o, 1000 + o, Some(b"k"), Some(&[b'v'; 100]), &[]))
            .collect();
        let seq = Sequence {
            id: producer,
            epoch: 0,
            base: 0,
        };
        let mut bytes = BytesMut::from(&encode(&records, Codec::None, Some(seq)).unwrap()[..]);
        bytes[..8].copy_from_slice(&base.to_be_bytes());
        if transactional {
            bytes[22] |= 0x10;
        }
        fix_crc(bytes)
    }

    fn fix_crc(mut bytes: BytesMut) -> Batch {
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        Batch::from_bytes(bytes.freeze()).unwrap()
    }

    fn marker(offset: i64, producer: i64, abort: bool) -> Batch {
        let kind: &[u8] = if abort { &[0, 0, 0, 0] } else { &[0, 0, 0, 1] };
        let record = RawRecord::new(offset, 0, Some(kind), Some(&[0; 6]), &[]);
        let seq = Sequence {
            id: producer,
            epoch: 0,
            base: -1,
        };
        let mut bytes = BytesMut::from(&encode(&[record], Codec::None, Some(seq)).unwrap()[..]);
        bytes[..8].copy_from_slice(&offset.to_be_bytes());
        bytes[22] |= 0x30;
        fix_crc(bytes)
    }

    #[test]
    fn batches_pass_whole_unless_something_must_change() {
        let open = TargetTopic::default();
        let b = batch_at(10, 5, 1, false);
        assert_eq!(verdict(&b, 10, false, open).unwrap(), Verdict::Whole);
        assert_eq!(
            verdict(&b, 15, false, open).unwrap(),
            Verdict::Drop(Dropped::Copied)
        );
        assert_eq!(
            verdict(&b, 12, false, open).unwrap(),
            Verdict::Reencode(Reencode::StartsMidBatch)
        );
        let small = TargetTopic {
            max_batch_bytes: Some(200),
            codec: None,
        };
        assert_eq!(
            verdict(&b, 10, false, small).unwrap(),
            Verdict::Reencode(Reencode::TooLarge)
        );
        let zstd = TargetTopic {
            max_batch_bytes: None,
            codec: Some(Codec::Zstd),
        };
        assert_eq!(
            verdict(&b, 10, false, zstd).unwrap(),
            Verdict::Reencode(Reencode::Compression)
        );
        assert_eq!(
            verdict(&marker(20, 1, false), 0, false, open).unwrap(),
            Verdict::Drop(Dropped::Control)
        );
    }

    #[test]
    fn read_committed_drops_aborted_transactions_up_to_their_marker_only() {
        let mut aborted = Aborted::default();
        aborted.learn(vec![(7, 3)]);
        let log = [
            (batch_at(0, 3, 5, false), Verdict::Whole),
            (batch_at(3, 2, 7, true), Verdict::Drop(Dropped::Aborted)),
            (batch_at(5, 2, 8, true), Verdict::Whole),
            (batch_at(7, 1, 7, true), Verdict::Drop(Dropped::Aborted)),
            (marker(8, 7, true), Verdict::Drop(Dropped::Control)),
            (marker(9, 8, false), Verdict::Drop(Dropped::Control)),
            (batch_at(10, 2, 7, true), Verdict::Whole),
        ];
        for (batch, want) in log {
            let dropped = aborted.drops(&batch);
            let got = verdict(&batch, 0, dropped, TargetTopic::default()).unwrap();
            assert_eq!(got, want, "batch at {}", batch.base_offset());
        }
    }

    #[test]
    fn a_re_encoded_tail_fits_the_target_in_order() {
        let b = batch_at(100, 10, 1, false);
        let target = TargetTopic {
            max_batch_bytes: Some(400),
            codec: None,
        };
        let out = reencode(&b, 103, target).unwrap();
        assert!(out.len() > 1);
        assert_eq!(out.first().unwrap().first_offset, 103);
        assert_eq!(out.last().unwrap().last_offset, 109);
        let mut expected = 103;
        for o in &out {
            assert!(o.bytes.len() <= 400);
            assert_eq!(o.first_offset, expected);
            expected = o.last_offset + 1;
            let batch = Batch::from_bytes(o.bytes.clone()).unwrap();
            assert_eq!(
                i64::from(batch.record_count()),
                o.last_offset - o.first_offset + 1
            );
        }
        let tiny = TargetTopic {
            max_batch_bytes: Some(100),
            codec: None,
        };
        assert!(matches!(
            reencode(&b, 100, tiny),
            Err(ReencodeError::TooLarge(TooLarge { offset: 100, .. }))
        ));
    }

    #[test]
    fn sequences_move_by_records_and_wrap() {
        let mut s = Sequences::default();
        assert_eq!(s.take("t", 0, 5), 0);
        assert_eq!(s.take("t", 0, 3), 5);
        assert_eq!(s.take("t", 1, 1), 0);
        s.set("t", 0, i32::MAX - 1);
        assert_eq!(s.take("t", 0, 4), i32::MAX - 1);
        assert_eq!(s.peek("t", 0), 2);
    }
}
