//! The fake source: partitions whose records any number of [`FakeReader`]s read, each with its
//! own assignment.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::OwnedHeaders;
use rdkafka::Offset;

use crate::copy::io::{Reader, SourceRecord};

#[derive(Debug, Clone, PartialEq)]
pub struct FakeRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

impl SourceRecord for FakeRecord {
    fn topic(&self) -> &str {
        &self.topic
    }
    fn partition(&self) -> i32 {
        self.partition
    }
    fn offset(&self) -> i64 {
        self.offset
    }
    fn key(&self) -> Option<&[u8]> {
        None
    }
    fn payload(&self) -> Option<&[u8]> {
        Some(&self.payload)
    }
    fn timestamp_ms(&self) -> Option<i64> {
        Some(1_700_000_000_000 + self.offset)
    }
    fn headers(&self) -> Option<OwnedHeaders> {
        None
    }
}

/// The source cluster's partitions; payloads are `topic/partition/offset` (with a generation
/// suffix after a re-creation). A reader whose position is out of range resets to the log's
/// start, as `auto.offset.reset=earliest` does.
#[derive(Default)]
pub struct FakeSource {
    logs: RefCell<BTreeMap<(String, i32), Vec<FakeRecord>>>,
    /// Where each log starts (records below were deleted).
    starts: RefCell<BTreeMap<(String, i32), i64>>,
    generation: RefCell<u32>,
}

impl FakeSource {
    pub fn produce(&self, topic: &str, partition: i32, count: usize) {
        let mut logs = self.logs.borrow_mut();
        let log = logs.entry((topic.to_string(), partition)).or_default();
        for _ in 0..count {
            let offset = log.len() as i64;
            let generation = *self.generation.borrow();
            let suffix = if generation == 0 {
                String::new()
            } else {
                format!("#{generation}")
            };
            log.push(FakeRecord {
                topic: topic.to_string(),
                partition,
                offset,
                payload: format!("{topic}/{partition}/{offset}{suffix}").into_bytes(),
            });
        }
    }

    /// Appends one record with this payload.
    pub fn produce_payload(&self, topic: &str, partition: i32, payload: &[u8]) {
        let mut logs = self.logs.borrow_mut();
        let log = logs.entry((topic.to_string(), partition)).or_default();
        let offset = log.len() as i64;
        log.push(FakeRecord {
            topic: topic.to_string(),
            partition,
            offset,
            payload: payload.to_vec(),
        });
    }

    /// The topic is deleted and created again: its offsets start over at 0.
    pub fn recreate(&self, topic: &str, partition: i32) {
        *self.generation.borrow_mut() += 1;
        let key = (topic.to_string(), partition);
        self.logs.borrow_mut().insert(key.clone(), Vec::new());
        self.starts.borrow_mut().insert(key, 0);
    }

    /// The topic's ID: `t-1` in its first life, `t-2` once created again, and so on.
    pub fn topic_id(&self, topic: &str) -> crate::kafka::cluster::TopicId {
        crate::kafka::cluster::TopicId(format!("{topic}-{}", *self.generation.borrow() + 1))
    }

    /// Retention deletes the records below `offset`.
    pub fn delete_before(&self, topic: &str, partition: i32, offset: i64) {
        self.starts
            .borrow_mut()
            .insert((topic.to_string(), partition), offset);
    }

    pub fn start(&self, topic: &str, partition: i32) -> i64 {
        self.starts
            .borrow()
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
    }

    pub fn end(&self, topic: &str, partition: i32) -> i64 {
        self.logs
            .borrow()
            .get(&(topic.to_string(), partition))
            .map_or(0, |l| l.len() as i64)
    }
}

/// A reader of a [`FakeSource`]; records what it was told, and how many records it handed out.
pub struct FakeReader {
    source: Rc<FakeSource>,
    /// Assigned partitions and the offset handed out next.
    assigned: RefCell<BTreeMap<(String, i32), i64>>,
    pub calls: RefCell<Vec<String>>,
    pub handed_out: RefCell<usize>,
    /// How many of the next `assign` calls fail.
    pub failing_assigns: RefCell<u32>,
    /// Partitions whose end was asked while not assigned (librdkafka then keeps them wanted
    /// for good).
    pub asked_unassigned: RefCell<Vec<(String, i32)>>,
}

impl FakeReader {
    pub fn new(source: &Rc<FakeSource>) -> Self {
        FakeReader {
            source: source.clone(),
            assigned: RefCell::default(),
            calls: RefCell::default(),
            handed_out: RefCell::new(0),
            failing_assigns: RefCell::new(0),
            asked_unassigned: RefCell::default(),
        }
    }

    /// Where the reader stands on a partition, if it is assigned.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.assigned
            .borrow()
            .get(&(topic.to_string(), partition))
            .copied()
    }
}

impl Reader for FakeReader {
    type Record<'a> = FakeRecord;

    fn assign(&self, partitions: &[(&str, i32, Offset)]) -> KafkaResult<()> {
        let mut failing = self.failing_assigns.borrow_mut();
        if *failing > 0 {
            *failing -= 1;
            return Err(KafkaError::Subscription("assign refused (test)".into()));
        }
        for (topic, partition, offset) in partitions {
            let at = match offset {
                Offset::Offset(o) => *o,
                Offset::Beginning => 0,
                _ => self.source.end(topic, *partition),
            };
            self.calls
                .borrow_mut()
                .push(format!("assign {topic}[{partition}]@{at}"));
            self.assigned
                .borrow_mut()
                .insert((topic.to_string(), *partition), at);
        }
        Ok(())
    }

    fn unassign(&self, topic: &str, partition: i32) -> KafkaResult<()> {
        self.calls
            .borrow_mut()
            .push(format!("unassign {topic}[{partition}]"));
        self.assigned
            .borrow_mut()
            .remove(&(topic.to_string(), partition));
        Ok(())
    }

    fn poll(&self, timeout: Duration) -> Option<KafkaResult<FakeRecord>> {
        let mut assigned = self.assigned.borrow_mut();
        let logs = self.source.logs.borrow();
        for (key, next) in assigned.iter_mut() {
            let (start, end) = (
                self.source.start(&key.0, key.1),
                self.source.end(&key.0, key.1),
            );
            if *next < start || *next > end {
                *next = start; // out of range: auto.offset.reset=earliest
            }
            if let Some(record) = logs.get(key).and_then(|l| l.get(*next as usize)) {
                *next += 1;
                *self.handed_out.borrow_mut() += 1;
                return Some(Ok(record.clone()));
            }
        }
        std::thread::sleep(timeout.min(Duration::from_millis(1)));
        None
    }

    fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        let key = (topic.to_string(), partition);
        if !self.assigned.borrow().contains_key(&key) {
            self.asked_unassigned.borrow_mut().push(key);
        }
        Some(self.source.end(topic, partition))
    }

    fn low_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        Some(self.source.start(topic, partition))
    }

    fn positions(&self) -> HashMap<(String, i32), i64> {
        self.assigned.borrow().clone().into_iter().collect()
    }

    fn end_offset(&self, topic: &str, partition: i32) -> rdkafka::error::KafkaResult<i64> {
        Ok(self.source.end(topic, partition))
    }

    fn topic_id(
        &self,
        topic: &str,
    ) -> Result<Option<crate::kafka::cluster::TopicId>, crate::kafka::ffi::AdminExtError> {
        Ok(Some(self.source.topic_id(topic)))
    }
}
