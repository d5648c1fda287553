//! The clusters' side of `mirrorcast offsets`: whether anything runs a flow now (members of
//! its instances group on the source, a heartbeat of the pair its target took recently: from
//! mirrorcast or from MM2), what the source's logs hold, and writing moved progress.
//!
//! Invariant: moved progress is written only after the flow was seen stopped, and is reported
//! written only once every in-sync replica of the progress topic has it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::edit::SourceLog;
use super::Progress;
use crate::config::FlowConfig;
use crate::kafka::cluster::TopicId;
use crate::kafka::ffi::{self, AdminExtError};
use crate::kafka::log_reader::LogReadError;
use crate::offsets::codec::Heartbeat;
use crate::policy::HEARTBEATS_TOPIC;

const TIMEOUT: Duration = Duration::from_secs(15);

/// Heartbeats read back from the end of each partition of the target's `heartbeats` topic:
/// far more than the newest of every pair that writes there.
const HEARTBEATS_TAIL: i64 = 2_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Admin(#[from] AdminExtError),
    #[error("reading {0}: {1}")]
    Read(String, #[source] LogReadError),
    #[error("{0}")]
    Unread(String),
    #[error("topic {0} does not exist on the source")]
    NoTopic(String),
    #[error("{topic}[{partition}] on the source: {message}")]
    Partition {
        topic: String,
        partition: i32,
        message: String,
    },
    #[error("{0} of {1} progress record(s) were not written: {2}")]
    NotWritten(usize, usize, String),
}

/// The flow's progress as stored now; `None` while its progress topic does not exist (it
/// never ran).
pub fn stored(
    flow: &FlowConfig,
    target_consumer: &ClientConfig,
) -> Result<Option<Progress>, StoreError> {
    let topic = &flow.progress.topic;
    match super::load(
        target_consumer,
        topic,
        &flow.progress.connector,
        &flow.source,
    ) {
        Ok(stored) => Ok(Some(stored)),
        Err(LogReadError::Missing(_)) => Ok(None),
        Err(e) => Err(StoreError::Read(format!("{topic} on {}", flow.target), e)),
    }
}

/// Why the flow looks like it runs now (empty: nothing says so). Asks the source for the
/// members of every instances group of the flow (its configured id, and each default id —
/// `group_prefix` then `+`-joined targets — naming its target), and reads the newest heartbeats of the pair on the target, which
/// every running replicator of the flow writes (mirrorcast's copier, MM2's heartbeat
/// connector) unless `emit.heartbeats.enabled = false`.
pub fn running_evidence(
    flow: &FlowConfig,
    group_prefix: &str,
    source_consumer: &ClientConfig,
    target_consumer: &ClientConfig,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let mut evidence = Vec::new();
    let source: BaseConsumer = source_consumer.create()?;
    let listed = source.fetch_group_list(None, TIMEOUT)?;
    let prefix = group_prefix;
    let mut groups: Vec<String> = listed
        .groups()
        .iter()
        .map(|g| g.name().to_string())
        .filter(|name| {
            name.strip_prefix(prefix)
                .is_some_and(|targets| targets.split('+').any(|t| t == flow.target))
        })
        .collect();
    if let Some(Some(configured)) = &flow.instances_group {
        groups.push(configured.clone());
    }
    groups.sort();
    groups.dedup();
    for group in groups {
        match ffi::group_members(source.client(), &group, TIMEOUT) {
            Ok(members) if !members.is_empty() => evidence.push(format!(
                "the instances group {group} has {} member(s) on {}",
                members.len(),
                flow.source
            )),
            Ok(_) => {}
            // A configured group that was never created has no members.
            Err(AdminExtError::Broker {
                code: rdkafka::types::RDKafkaErrorCode::GroupIdNotFound,
                ..
            }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let window_ms = flow
        .heartbeats
        .as_ref()
        .map_or(10_000, |h| (3 * h.interval.as_millis() as i64).max(10_000));
    if let Some(at) = newest_heartbeat(target_consumer, &flow.source, &flow.target)? {
        let age_ms = now_ms - at;
        if age_ms < window_ms {
            evidence.push(format!(
                "{} took a heartbeat {}->{} {:.1} s ago (mirrorcast and MM2 write one every \
                 emit.heartbeats.interval.seconds while they run the flow)",
                flow.target,
                flow.source,
                flow.target,
                age_ms.max(0) as f64 / 1000.0
            ));
        }
    }
    Ok(evidence)
}

/// The time (epoch ms) of the newest heartbeat `source`->`target` among the last records of
/// the target's heartbeats topic, if any.
fn newest_heartbeat(
    target_consumer: &ClientConfig,
    source: &str,
    target: &str,
) -> Result<Option<i64>, StoreError> {
    let mut config = target_consumer.clone();
    config
        .set("group.id", "mirrorcast.offsets-tool")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(HEARTBEATS_TOPIC), TIMEOUT)?;
    let Some(topic) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == HEARTBEATS_TOPIC && t.error().is_none())
    else {
        return Ok(None);
    };
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for partition in topic.partitions() {
        let (low, high) = consumer.fetch_watermarks(HEARTBEATS_TOPIC, partition.id(), TIMEOUT)?;
        if high > low {
            let from = (high - HEARTBEATS_TAIL).max(low);
            assignment.add_partition_offset(
                HEARTBEATS_TOPIC,
                partition.id(),
                Offset::Offset(from),
            )?;
            ends.insert(partition.id(), high);
        }
    }
    if ends.is_empty() {
        return Ok(None);
    }
    consumer.assign(&assignment)?;
    let mut newest = None;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !ends.is_empty() {
        // A tail not read to its end could hide the newest heartbeat: the flow would pass
        // for stopped.
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::Unread(format!(
                "{HEARTBEATS_TOPIC} on {target}: not read to its end within {TIMEOUT:?}"
            )));
        }
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message?;
            if let (Some(key), Some(value)) = (message.key(), message.payload()) {
                if let Ok(beat) = Heartbeat::decode(key, value) {
                    if beat.source_alias == source && beat.target_alias == target {
                        newest = newest.max(Some(beat.timestamp_ms));
                    }
                }
            }
        }
        // By the consumer's position, not the last record's offset: compaction and markers
        // leave offsets without a record.
        for element in consumer.position()?.elements() {
            if let Offset::Offset(next) = element.offset() {
                if ends
                    .get(&element.partition())
                    .is_some_and(|end| next >= *end)
                {
                    ends.remove(&element.partition());
                }
            }
        }
    }
    Ok(newest)
}

/// The partitions of `topic` on the source.
pub fn partitions(source_consumer: &ClientConfig, topic: &str) -> Result<Vec<i32>, StoreError> {
    topic_partitions(&source_consumer.create()?, topic)
}

fn topic_partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, StoreError> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .ok_or_else(|| StoreError::NoTopic(topic.to_string()))
}

/// What the source's log of each of `chosen` holds now (and, with `time`, where its first
/// record at or after `time` is). Partitions the source does not have are left out.
pub fn source_logs(
    source_consumer: &ClientConfig,
    chosen: &[(String, i32)],
    time: Option<i64>,
) -> Result<BTreeMap<(String, i32), SourceLog>, StoreError> {
    let consumer: BaseConsumer = source_consumer.create()?;
    let mut logs = BTreeMap::new();
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in chosen {
        by_topic.entry(topic).or_default().push(*partition);
    }
    for (topic, wanted) in by_topic {
        let existing = match topic_partitions(&consumer, topic) {
            Ok(existing) => existing,
            Err(StoreError::NoTopic(_)) => continue,
            Err(e) => return Err(e),
        };
        for partition in wanted.into_iter().filter(|p| existing.contains(p)) {
            let (start, end) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
            let at_time = match time {
                None => None,
                Some(ms) => {
                    let mut asked = TopicPartitionList::new();
                    asked.add_partition_offset(topic, partition, Offset::Offset(ms))?;
                    let found = consumer.offsets_for_times(asked, TIMEOUT)?;
                    let element = found.find_partition(topic, partition);
                    match element.map(|e| (e.error(), e.offset())) {
                        Some((Ok(()), Offset::Offset(offset))) if offset >= 0 => Some(offset),
                        Some((Ok(()), _)) | None => None,
                        Some((Err(e), _)) => {
                            return Err(StoreError::Partition {
                                topic: topic.to_string(),
                                partition,
                                message: e.to_string(),
                            })
                        }
                    }
                }
            };
            logs.insert(
                (topic.to_string(), partition),
                SourceLog {
                    start,
                    end,
                    at_time,
                },
            );
        }
    }
    Ok(logs)
}

/// The source topic IDs of `topics` (the ones the source has now and can name).
pub fn topic_ids(
    source_admin: &ClientConfig,
    topics: &[&str],
) -> Result<HashMap<String, TopicId>, StoreError> {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        source_admin.create()?;
    Ok(ffi::describe_topic_ids(admin.inner(), topics, TIMEOUT)?
        .into_iter()
        .map(|(topic, id)| (topic, TopicId(id)))
        .collect())
}

/// Writes `records` (key, value or tombstone) to `topic` on the target, in order, and waits
/// until every in-sync replica has each of them.
pub fn write(
    target_producer: &ClientConfig,
    topic: &str,
    records: &[(Vec<u8>, Option<Vec<u8>>)],
) -> Result<(), StoreError> {
    let mut config = target_producer.clone();
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .remove("transactional.id");
    let failures = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let producer: ThreadedProducer<Deliveries> = config.create_with_context(Deliveries {
        failures: failures.clone(),
    })?;
    for (key, value) in records {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).key(key.as_slice());
        if let Some(value) = value {
            record = record.payload(value.as_slice());
        }
        producer.send(record).map_err(|(e, _)| e)?;
    }
    producer.flush(TIMEOUT)?;
    let failed = failures.lock().map(|f| f.clone()).unwrap_or_default();
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(StoreError::NotWritten(
            failed.len(),
            records.len(),
            first.clone(),
        )),
    }
}

/// Collects the delivery errors of [`write`].
struct Deliveries {
    failures: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut failures) = self.failures.lock() {
                failures.push(e.to_string());
            }
        }
    }
}
