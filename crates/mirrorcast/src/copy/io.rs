//! The copier's only contact with Kafka: a [`Reader`] of source partitions, a [`Target`]
//! producer and the [`SourceRecord`]s between them. The copy logic is generic over these
//! traits, so its state machine runs against fakes in unit tests; production uses
//! [`super::source::SourceReader`] and [`super::target::KafkaTarget`].

use crate::kafka::cluster::TopicId;
use crate::kafka::ffi::AdminExtError;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, OwnedHeaders};
use rdkafka::{Message, Offset};

/// A record read from a source partition.
pub(crate) trait SourceRecord {
    fn topic(&self) -> &str;
    fn partition(&self) -> i32;
    fn offset(&self) -> i64;
    fn key(&self) -> Option<&[u8]>;
    fn payload(&self) -> Option<&[u8]>;
    fn timestamp_ms(&self) -> Option<i64>;
    /// The headers in order, duplicates and null values included.
    fn headers(&self) -> Option<OwnedHeaders>;
}

/// A reader of source partitions that can be handed partitions (at an offset) and have them
/// taken away at any time. Takes `&self` throughout, so a borrowed record can be forwarded
/// while the bookkeeping changes.
pub(crate) trait Reader {
    type Record<'a>: SourceRecord
    where
        Self: 'a;

    fn assign(&self, partitions: &[(&str, i32, Offset)]) -> KafkaResult<()>;
    /// Stops reading a partition; records already fetched for it are discarded.
    fn unassign(&self, topic: &str, partition: i32) -> KafkaResult<()>;
    fn poll(&self, timeout: Duration) -> Option<KafkaResult<Self::Record<'_>>>;
    /// The partition's end offset as the reader last saw it (no request is made).
    fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64>;
    /// Where the partition's log starts, as the reader last saw it (no request is made).
    fn low_watermark(&self, topic: &str, partition: i32) -> Option<i64>;
    /// Where the reader stands on each assigned partition (past records it never hands out).
    fn positions(&self) -> HashMap<(String, i32), i64>;
    /// The partition's end offset now (a request to the broker).
    fn end_offset(&self, topic: &str, partition: i32) -> KafkaResult<i64>;
    /// The topic's ID now (a request to the broker); `None` if it has none.
    fn topic_id(&self, topic: &str) -> Result<Option<TopicId>, AdminExtError>;
}

/// A record for the target, with what its delivery report must say.
pub(crate) struct Outgoing<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub timestamp_ms: Option<i64>,
    pub headers: Option<OwnedHeaders>,
    pub tag: Tag,
}

impl<'a> Outgoing<'a> {
    /// A record of our own (progress, heartbeat, offset sync): key and value, no headers.
    pub fn internal(topic: &'a str, key: &'a [u8], value: Option<&'a [u8]>, tag: Tag) -> Self {
        Outgoing {
            topic,
            partition: None,
            key: Some(key),
            payload: value,
            timestamp_ms: None,
            headers: None,
            tag,
        }
    }

    pub fn in_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
}

/// What a call about a transaction came to (exactly once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxnOutcome {
    Done,
    /// Not finished in the time given: call the same again (librdkafka resumes it).
    Pending,
    /// The transaction cannot commit (a record failed): abort it and copy what it held again.
    Abortable(String),
    /// The producer cannot go on.
    Fatal(TxnFatal),
}

/// Why a transactional producer cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxnFatal {
    /// A newer producer with the same transactional id exists: another process copies this.
    Fenced(String),
    /// The target refuses transactions to this principal (an ACL is missing).
    Refused(String),
    /// Anything else: a new producer may go on.
    Broken(String),
}

impl TxnFatal {
    /// What a fatal error with `code` means for the lane, said with `message`.
    pub fn of(code: RDKafkaErrorCode, message: String) -> Self {
        match code {
            RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::Fenced => TxnFatal::Fenced(message),
            RDKafkaErrorCode::TransactionalIdAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed => TxnFatal::Refused(message),
            _ => TxnFatal::Broken(message),
        }
    }
}

/// The producer of one flow's target, with its delivery reports.
pub(crate) trait Target {
    /// Queues a record; a full queue is `QueueFull`, and the record comes back.
    #[allow(clippy::result_large_err)]
    fn send<'a>(&self, record: Outgoing<'a>) -> Result<(), (KafkaError, Outgoing<'a>)>;
    /// Serves the producer's events (delivery reports) for up to `timeout`.
    fn serve(&self, timeout: Duration);
    /// Delivery reports collected and not yet taken.
    fn reports_waiting(&self) -> usize;
    /// Swaps the collected reports into `into` (which must be empty).
    fn take_reports(&self, into: &mut Vec<Delivery>);
    /// Records queued or in flight.
    fn in_flight(&self) -> u64;
    /// A fatal error (e.g. the idempotent producer lost its state): the producer is unusable.
    fn fatal_error(&self) -> Option<(RDKafkaErrorCode, String)>;
    fn flush(&self, timeout: Duration);
    /// Asks for a topic's metadata now (librdkafka would wait for its next refresh).
    fn refresh_metadata(&self, topic: &str) -> KafkaResult<()>;
    /// Drops the producer (purging what it held, without reports) and starts a new one.
    fn replace(&mut self) -> KafkaResult<()>;
    /// The most bytes the producer puts in one batch (librdkafka's `batch.size`).
    fn batch_bytes(&self) -> u32;
    /// Whether records are compressed on the way (their size at the broker is then not known
    /// before they are sent).
    fn compresses(&self) -> bool;
    /// Starts a new producer whose batches hold at most `bytes` (only with nothing in flight:
    /// what the old one held is purged without reports).
    fn resize_batches(&mut self, bytes: u32) -> KafkaResult<()>;
    /// When the open transaction began (exactly once: `send` opens one when none is) (`None`: none is open).
    fn transaction_open_since(&self) -> Option<Instant>;
    /// Registers the transactional id with the target's coordinator, fencing any older
    /// producer with the same id and aborting what it left open.
    fn init_transactions(&self, timeout: Duration) -> TxnOutcome;
    /// Commits the open transaction (flushing what it holds first).
    fn commit(&self, timeout: Duration) -> TxnOutcome;
    /// Aborts the open transaction; what it held is purged.
    fn abort(&self, timeout: Duration) -> TxnOutcome;
}

impl SourceRecord for BorrowedMessage<'_> {
    fn topic(&self) -> &str {
        Message::topic(self)
    }

    fn partition(&self) -> i32 {
        Message::partition(self)
    }

    fn offset(&self) -> i64 {
        Message::offset(self)
    }

    fn key(&self) -> Option<&[u8]> {
        Message::key(self)
    }

    fn payload(&self) -> Option<&[u8]> {
        Message::payload(self)
    }

    fn timestamp_ms(&self) -> Option<i64> {
        Message::timestamp(self).to_millis()
    }

    fn headers(&self) -> Option<OwnedHeaders> {
        // The whole list, copied by librdkafka: keys stay bytes (rust-rdkafka's per-header
        // accessors would panic on a key that is not UTF-8 and kill the copier).
        Message::headers(self).map(BorrowedHeaders::detach)
    }
}

/// A copied record, for its delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordTag {
    pub slot: usize,
    pub epoch: u32,
    /// Its source offset.
    pub offset: i64,
    pub bytes: u32,
    /// The record's timestamp, for the replication latency.
    pub timestamp_ms: Option<i64>,
    /// Written to the dead-letter topic, the target having refused it.
    pub dead_letter: bool,
}

/// What a produced record is, for its delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    Record(RecordTag),
    /// A progress record (`mm2-offsets`) storing `offset` for partition `slot`, or a tombstone
    /// dropping its progress (`None`).
    Progress {
        slot: usize,
        offset: Option<i64>,
    },
    Heartbeat,
    /// An offset sync written to the target.
    OffsetSync,
}

/// A delivery report.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub tag: Tag,
    pub error: Option<KafkaError>,
    /// Where the record landed on the target.
    pub downstream_offset: Option<i64>,
}
