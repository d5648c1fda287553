//! Exactly once without a group: which process last took a flow's transactional ids over, and
//! how many ids any process ever used for it. Kept in the flow's progress topic under a
//! connector name of its own (MM2 reads past it, as past any other connector's offsets).
//!
//! A process that starts writes its record, then fences every id an earlier process could
//! hold (also when it runs fewer copier threads than that one), and only then reads the
//! progress. A process whose id is fenced later reads here whether a newer process took the
//! flow over (it stops) or not (a transaction outlived its timeout: it registers again).
//!
//! Invariant: a process writes its record before it fences any id, so a process fenced by a
//! newer one always finds the newer one's record.

use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message};
use serde::{Deserialize, Serialize};

use super::codec;
use crate::kafka::log_reader::{read_to_end, LogReadError};

/// The connector name the records are stored under.
pub const WRITERS_CONNECTOR: &str = "mirrorcast.TransactionalWriters";

/// The key's topic and partition: one record per flow, not per partition.
const KEY_TOPIC: &str = "transactional.ids";
const KEY_PARTITION: i32 = -1;

/// One process's claim on a flow's transactional ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    /// Ids `0..ids` may be held by this process or an earlier one.
    pub ids: usize,
    /// Who wrote it ([`this_process`]).
    pub process: String,
}

/// What the records say, read in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writers {
    /// The most ids any record claimed: every one of them may be held by a live process.
    pub ids: usize,
    /// The process of the newest record.
    pub latest: Option<String>,
}

impl Writers {
    fn saw(&mut self, writer: Writer) {
        self.ids = self.ids.max(writer.ids);
        self.latest = Some(writer.process);
    }

    /// Whether a process other than this one wrote the newest record.
    pub fn taken_over(&self) -> bool {
        self.latest.as_deref().is_some_and(|p| p != this_process())
    }
}

/// This process, as its records name it: host, process id and start time, so that a restart
/// on the same host is another process.
pub fn this_process() -> &'static str {
    static PROCESS: OnceLock<String> = OnceLock::new();
    PROCESS.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".to_string());
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{host}/pid {}/started {started}", std::process::id())
    })
}

pub fn key(source_alias: &str) -> Vec<u8> {
    codec::encode_key(WRITERS_CONNECTOR, source_alias, KEY_TOPIC, KEY_PARTITION)
}

pub fn encode(writer: &Writer) -> Vec<u8> {
    // A struct of a number and a string always serializes.
    serde_json::to_vec(writer).unwrap_or_default()
}

/// A writer record of `source_alias`'s flow; `None` for any other record.
pub fn decode(source_alias: &str, key: &[u8], value: Option<&[u8]>) -> Option<Writer> {
    if key != self::key(source_alias).as_slice() {
        return None;
    }
    serde_json::from_slice(value?).ok()
}

/// Reads every writer record of `source_alias`'s flow in `topic`. Blocking.
pub fn read(
    consumer_config: &ClientConfig,
    topic: &str,
    source_alias: &str,
) -> Result<Writers, LogReadError> {
    let mut writers = Writers::default();
    let group_id = format!("mirrorcast.writers.{source_alias}");
    read_to_end(consumer_config, &group_id, topic, |message| {
        if let Some(key) = message.key() {
            if let Some(writer) = decode(source_alias, key, message.payload()) {
                writers.saw(writer);
            }
        }
    })?;
    Ok(writers)
}

/// Why this process could not claim the ids.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("cannot write to {topic}: {source}")]
    Write {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot read {topic}: {0}", topic = .1)]
    Read(LogReadError, String),
    #[error("this process's record did not reach {0}")]
    NotWritten(String),
}

/// Claims ids `0..ids` of `source_alias`'s flow for this process (`ids`: the most any
/// process used, this one's included) and returns what the records say afterwards.
pub fn claim(
    consumer_config: &ClientConfig,
    producer_config: &ClientConfig,
    topic: &str,
    source_alias: &str,
    ids: usize,
) -> Result<Writers, ClaimError> {
    let write_error = |source| ClaimError::Write {
        topic: topic.to_string(),
        source,
    };
    let producer: BaseProducer = producer_config.create().map_err(write_error)?;
    let (key, value) = (
        key(source_alias),
        encode(&Writer {
            ids,
            process: this_process().to_string(),
        }),
    );
    let record: BaseRecord<'_, [u8], [u8]> =
        BaseRecord::to(topic).key(&key[..]).payload(&value[..]);
    producer.send(record).map_err(|(e, _)| write_error(e))?;
    producer
        .flush(Duration::from_secs(30))
        .map_err(write_error)?;
    // A delivery failure is only reported to a callback: reading it back proves it.
    let writers = read(consumer_config, topic, source_alias)
        .map_err(|e| ClaimError::Read(e, topic.to_string()))?;
    if writers.ids < ids || writers.latest.is_none() {
        return Err(ClaimError::NotWritten(topic.to_string()));
    }
    Ok(writers)
}

/// Fences transactional ids `ids` on the target: registering each with a producer of its own
/// bumps its epoch, so whoever held it can commit nothing more, and its open transaction is
/// aborted first. Each registration may take up to `wait` (the coordinator ends the open
/// transaction before it answers).
pub fn fence_ids(
    producer_config: &ClientConfig,
    ids: &[String],
    wait: Duration,
) -> Result<(), rdkafka::error::KafkaError> {
    for id in ids {
        let mut config = producer_config.clone();
        config.set("transactional.id", id);
        // It sends nothing; librdkafka wants records to give up before a transaction does.
        config.set("message.timeout.ms", "5000");
        let producer: BaseProducer = config.create()?;
        producer.init_transactions(wait)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_record_is_a_connect_offset_of_its_own_connector_that_mm2_reads_past() {
        assert_eq!(
            key("europe"),
            br#"["mirrorcast.TransactionalWriters",{"cluster":"europe","partition":-1,"topic":"transactional.ids"}]"#
        );
        let writer = Writer {
            ids: 4,
            process: "h/pid 1/started 2".into(),
        };
        let value = encode(&writer);
        assert_eq!(decode("europe", &key("europe"), Some(&value)), Some(writer));
        assert_eq!(decode("asia", &key("europe"), Some(&value)), None);
        assert_eq!(decode("europe", &key("europe"), None), None);
        // Not a progress record of MM2's connector.
        assert!(codec::decode(
            codec::DEDICATED_MODE_CONNECTOR,
            &key("europe"),
            Some(&value)
        )
        .is_none());
    }

    #[test]
    fn the_most_ids_ever_claimed_count_and_the_newest_process_is_the_writer() {
        let mut writers = Writers::default();
        writers.saw(Writer {
            ids: 4,
            process: "a".into(),
        });
        writers.saw(Writer {
            ids: 2,
            process: "b".into(),
        });
        assert_eq!(
            writers.ids, 4,
            "a process with fewer threads leaves the others fenced"
        );
        assert_eq!(writers.latest.as_deref(), Some("b"));
        assert!(writers.taken_over(), "b is not this process");
        writers.saw(Writer {
            ids: 2,
            process: this_process().into(),
        });
        assert!(!writers.taken_over());
    }
}
