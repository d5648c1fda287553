//! The record as the tests compare it, test data made of numbered records, and the check that
//! a copy is complete and in order.

use std::collections::BTreeMap;

use rdkafka::message::BorrowedMessage;
use rdkafka::Message;

/// A record as the tests compare it: everything MM2 promises to copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TestRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Keys as bytes: Kafka's header keys need not be UTF-8.
    pub headers: mirrorcast::kafka::ffi::RawHeaders,
    pub timestamp: i64,
}

impl TestRecord {
    /// What a consumed message holds of a record.
    pub fn of(message: &BorrowedMessage<'_>) -> Self {
        TestRecord {
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: mirrorcast::kafka::ffi::raw_headers(message),
            timestamp: message.timestamp().to_millis().unwrap_or(-1),
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `count` records spread over `partitions`, each value unique (`<run>-<n>` plus padding), with
/// current timestamps.
pub fn numbered_records(
    run: &str,
    partitions: i32,
    first: usize,
    count: usize,
) -> Vec<(i32, TestRecord)> {
    let now = now_ms();
    (first..first + count)
        .map(|n| {
            let partition = (n % partitions as usize) as i32;
            let value = format!("{run}-{n:08}-{}", "x".repeat(64)).into_bytes();
            let record = TestRecord {
                key: Some(format!("k{}", n % 1000).into_bytes()),
                value: Some(value),
                headers: vec![("n".into(), Some(n.to_be_bytes().to_vec()))],
                timestamp: now,
            };
            (partition, record)
        })
        .collect()
}

/// Checks that every source record of every partition is on the target, in source order, where
/// a record may appear again only as part of a re-copied run (at-least-once after a crash).
/// Returns the number of duplicates.
pub fn assert_complete_in_order(
    source: &BTreeMap<i32, Vec<TestRecord>>,
    target: &BTreeMap<i32, Vec<TestRecord>>,
    what: &str,
) -> usize {
    let mut duplicates = 0;
    for (partition, records) in source {
        let index: std::collections::HashMap<&TestRecord, usize> =
            records.iter().enumerate().map(|(i, r)| (r, i)).collect();
        let copied = target.get(partition).map(Vec::as_slice).unwrap_or_default();
        let mut highest: Option<usize> = None;
        let mut previous: Option<usize> = None;
        for (offset, record) in copied.iter().enumerate() {
            let i = *index.get(record).unwrap_or_else(|| {
                panic!(
                    "{what}[{partition}] offset {offset} holds a record the source does not have: {record:?}"
                )
            });
            let next_new = highest.map_or(0, |h| h + 1);
            if i > next_new {
                panic!("{what}[{partition}]: records {next_new}..{i} of the source are missing before target offset {offset}");
            }
            if i < next_new {
                duplicates += 1;
                // A re-copied run continues in order from where it restarted.
                if let Some(p) = previous {
                    assert!(
                        i == p + 1 || i <= p,
                        "{what}[{partition}] offset {offset}: out of order"
                    );
                }
            } else {
                highest = Some(i);
            }
            previous = Some(i);
        }
        assert_eq!(
            highest.map_or(0, |h| h + 1),
            records.len(),
            "{what}[{partition}]: {} of {} source records arrived",
            highest.map_or(0, |h| h + 1),
            records.len()
        );
    }
    duplicates
}
