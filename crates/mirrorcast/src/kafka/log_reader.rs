//! Reads a topic from its start to the end it had when the read began: how progress,
//! created-topic marks and offset syncs (compacted topics) are loaded.
//!
//! Invariant: the read ends only when every partition's position reached the end offset taken
//! at the start, also when the last offsets hold no record (compaction, transaction markers),
//! or fails with a timeout; it never returns a partial view as complete.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::clients::ClientLog;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong reading a topic to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogReadError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("topic `{0}` does not exist")]
    Missing(String),
    #[error("reading `{topic}` did not reach its end within {timeout:?}")]
    Timeout { topic: String, timeout: Duration },
}

/// Hands every record of `topic` to `visit`, partition by partition in offset order, until the
/// end each partition had when called. `group_id` is only for librdkafka's `assign` (nothing is
/// joined or committed) unless the settings have one. Blocking, for at most `timeout`.
pub fn read_to_end(
    consumer_config: &ClientConfig,
    group_id: &str,
    topic: &str,
    timeout: Duration,
    mut visit: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), LogReadError> {
    let mut config = consumer_config.clone();
    if config.get("group.id").is_none() {
        config.set("group.id", group_id);
    }
    config.set("enable.auto.commit", "false");
    let consumer: BaseConsumer<ClientLog> =
        config.create_with_context(ClientLog::new(format!("{topic} reader")))?;
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .ok_or_else(|| LogReadError::Missing(topic.to_string()))?;

    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT)?;
        if high > low {
            remaining.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        }
    }
    if remaining.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + timeout;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(LogReadError::Timeout {
                topic: topic.to_string(),
                timeout,
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
        visit(&message);
        if remaining
            .get(&message.partition())
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&message.partition());
        }
    }
    Ok(())
}
