//! Telling a record the target refuses for good (too large, invalid timestamp, invalid record)
//! from a target that is down or busy, and what Kafka Connect writes with a dead letter. Pure:
//! the lane's `refusal` acts on these verdicts.
//!
//! Invariant: only an error that names this very record as unacceptable is a refusal; every
//! other failure is a retry.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};

/// What a failed delivery says about its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The target may take it later (down, busy, a leader moving): send it again.
    Retry,
    /// This very record will never be taken.
    Refused,
    /// The broker refused the whole batch as too large: one of its records may be the cause.
    BatchTooLarge,
}

/// Judges a delivery error; `local`: librdkafka refused the record before sending it (its own
/// size check is of the record alone).
pub(crate) fn judge(error: &KafkaError, local: bool) -> Verdict {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) if local => Verdict::Refused,
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge) => {
            Verdict::BatchTooLarge
        }
        // The broker names the refused records of a batch (KIP-467); the others of the batch
        // fail with `InvalidDifferentRecord` and are sent again.
        Some(
            RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidTimestamp
            | RDKafkaErrorCode::InvalidMessage,
        ) => Verdict::Refused,
        _ => Verdict::Retry,
    }
}

/// A record batch's fixed header (Kafka's `RECORD_BATCH_OVERHEAD`, log overhead included):
/// what a broker counts against `max.message.bytes` besides the records.
const RECORD_BATCH_OVERHEAD: usize = 61;

/// The bytes of a batch holding only this record (uncompressed, format v2): a broker whose
/// `max.message.bytes` is below it refuses the record whatever it is batched with.
pub(crate) fn lone_batch_bytes(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(Vec<u8>, Option<Vec<u8>>)],
) -> usize {
    fn varint(n: i64) -> usize {
        let mut zigzag = ((n << 1) ^ (n >> 63)) as u64;
        let mut bytes = 1;
        while zigzag >= 0x80 {
            zigzag >>= 7;
            bytes += 1;
        }
        bytes
    }
    fn field(bytes: Option<&[u8]>) -> usize {
        bytes.map_or(varint(-1), |b| varint(b.len() as i64) + b.len())
    }
    // attributes, timestamp delta 0, offset delta 0
    let mut record = 1 + 1 + 1 + field(key) + field(value) + varint(headers.len() as i64);
    for (name, value) in headers {
        record += field(Some(name)) + field(value.as_deref());
    }
    RECORD_BATCH_OVERHEAD + varint(record as i64) + record
}

/// The Java exception Kafka Connect would name for the error (its dead-letter header).
pub(crate) fn exception_class(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge) => {
            "org.apache.kafka.common.errors.RecordTooLargeException"
        }
        Some(RDKafkaErrorCode::InvalidTimestamp) => {
            "org.apache.kafka.common.errors.InvalidTimestampException"
        }
        Some(RDKafkaErrorCode::InvalidMessage) => {
            "org.apache.kafka.common.errors.CorruptRecordException"
        }
        _ => "org.apache.kafka.common.InvalidRecordException",
    }
}

/// A record of a partition the target refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub offset: i64,
    pub reason: String,
    pub exception: &'static str,
}

/// Kafka Connect's dead-letter context headers (`errors.deadletterqueue.context.headers.enable`),
/// after the record's own headers.
pub(crate) fn dead_letter_headers(
    own: Option<OwnedHeaders>,
    connector: &str,
    topic: &str,
    partition: i32,
    refusal: &Refusal,
) -> OwnedHeaders {
    let context = [
        ("__connect.errors.topic", topic.to_string()),
        ("__connect.errors.partition", partition.to_string()),
        ("__connect.errors.offset", refusal.offset.to_string()),
        ("__connect.errors.connector.name", connector.to_string()),
        ("__connect.errors.task.id", "0".to_string()),
        ("__connect.errors.stage", "KAFKA_PRODUCE".to_string()),
        (
            "__connect.errors.exception.class.name",
            refusal.exception.to_string(),
        ),
        ("__connect.errors.exception.message", refusal.reason.clone()),
    ];
    context
        .iter()
        .fold(own.unwrap_or_default(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        })
}
