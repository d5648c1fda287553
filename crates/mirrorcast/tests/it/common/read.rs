//! Reading topics back: end offsets, every record (in order, with offsets, or raw bytes).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{client, topic_partitions, TestRecord};

/// Last offset + 1 of every partition of `topic`.
pub fn end_offsets(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let Some(partitions) = topic_partitions(bootstrap, topic) else {
        return BTreeMap::new();
    };
    (0..partitions)
        .filter_map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .ok()
                .map(|(_, high)| (p, high))
        })
        .collect()
}

/// Every record of every partition of `topic`, in offset order.
pub fn read_all(bootstrap: &str, topic: &str) -> BTreeMap<i32, Vec<TestRecord>> {
    let ends = end_offsets(bootstrap, topic);
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    let mut out: BTreeMap<i32, Vec<TestRecord>> = BTreeMap::new();
    let mut remaining = BTreeMap::new();
    for (p, high) in &ends {
        out.insert(*p, Vec::new());
        if *high > 0 {
            list.add_partition_offset(topic, *p, Offset::Beginning)
                .unwrap();
            remaining.insert(*p, *high);
        }
    }
    if remaining.is_empty() {
        return out;
    }
    consumer.assign(&list).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !remaining.is_empty() {
        assert!(
            Instant::now() < deadline,
            "reading {topic} timed out; left {remaining:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("fetch");
        out.entry(message.partition())
            .or_default()
            .push(TestRecord::of(&message));
        if remaining
            .get(&message.partition())
            .is_some_and(|h| message.offset() + 1 >= *h)
        {
            remaining.remove(&message.partition());
        }
    }
    out
}

/// Total records over all partitions of `topic`.
pub fn total_records(bootstrap: &str, topic: &str) -> i64 {
    end_offsets(bootstrap, topic).values().sum()
}

/// Key and value bytes of every record of a topic, in order (records without either skipped).
pub fn read_raw(bootstrap: &str, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    read_all(bootstrap, topic)
        .into_values()
        .flatten()
        .filter_map(|r| Some((r.key?, r.value?)))
        .collect()
}

/// Every record of `topic` with its offset, as a consumer with `isolation.level` sees it, up to
/// the end of each partition (control markers and aborted or compacted records leave gaps).
pub fn read_with_offsets(
    bootstrap: &str,
    topic: &str,
    isolation_level: &str,
) -> BTreeMap<i32, Vec<(i64, TestRecord)>> {
    let partitions = topic_partitions(bootstrap, topic).unwrap_or(0);
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "test-offset-reader")
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation_level)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    let mut out: BTreeMap<i32, Vec<(i64, TestRecord)>> = BTreeMap::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
        out.insert(p, Vec::new());
    }
    consumer.assign(&list).unwrap();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while at_end.len() < partitions as usize {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                out.entry(message.partition())
                    .or_default()
                    .push((message.offset(), TestRecord::of(&message)));
            }
        }
    }
    out
}
