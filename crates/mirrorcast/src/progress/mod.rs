//! Copy progress on the target: `mm2-offsets.<source>.internal`, in MM2's format ([`codec`]).
//! Only offsets the target has acknowledged are written (by the copier); this module reads
//! them back when a flow starts.

pub mod codec;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::clients::ClientLog;

/// Last replicated source offset per (source topic, partition).
pub type Progress = HashMap<(String, i32), i64>;

const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("progress topic `{0}` does not exist on the target")]
    Missing(String),
    #[error("reading progress topic `{topic}` did not reach its end within {READ_TIMEOUT:?}")]
    Timeout { topic: String },
}

/// Reads every record of `topic` on the target and keeps the newest offset per source
/// partition of `source_alias`. Blocking.
pub fn load(
    consumer_config: &ClientConfig,
    topic: &str,
    connector: &str,
    source_alias: &str,
) -> Result<Progress, ProgressError> {
    let mut config = consumer_config.clone();
    if config.get("group.id").is_none() {
        // librdkafka's assign() wants one; nothing is joined or committed.
        config.set("group.id", format!("mirrorcast.progress.{source_alias}"));
    }
    let label = format!("{topic} reader");
    let consumer: BaseConsumer<ClientLog> = config.create_with_context(ClientLog::new(label))?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .ok_or_else(|| ProgressError::Missing(topic.to_string()))?;

    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        if high > low {
            remaining.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        }
    }
    let mut progress = Progress::new();
    if remaining.is_empty() {
        return Ok(progress);
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + READ_TIMEOUT;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(ProgressError::Timeout {
                topic: topic.to_string(),
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            // The end can be a gap (compaction, control records): ask where the reader is.
            for element in consumer.position()?.elements() {
                if let Offset::Offset(position) = element.offset() {
                    if remaining
                        .get(&element.partition())
                        .is_some_and(|high| position >= *high)
                    {
                        remaining.remove(&element.partition());
                    }
                }
            }
            continue;
        };
        let message = message?;
        if let Some(key) = message.key() {
            if let Some((source, offset)) = codec::decode(connector, key, message.payload()) {
                if source.cluster == source_alias {
                    let id = (source.topic, source.partition);
                    match offset {
                        Some(offset) => progress.insert(id, offset),
                        None => progress.remove(&id),
                    };
                }
            }
        }
        if remaining
            .get(&message.partition())
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&message.partition());
        }
    }
    Ok(progress)
}
