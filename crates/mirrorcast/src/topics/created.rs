//! Which remote topics a flow created, remembered across restarts so that opt-in deletion
//! (`sync.topic.deletions.enabled`) never touches a topic mirrorcast did not create, even after
//! a restart. The marks are records in the flow's progress topic under a connector name of their
//! own, the way Connect keeps each connector's offsets apart: MM2 ignores them.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use super::TopicError;
use crate::progress::{self, codec};

/// The connector name the marks are stored under.
pub const CREATED_TOPICS_CONNECTOR: &str = "mirrorcast.CreatedTopics";

/// A mark is a topic-level record: no partition.
const TOPIC_LEVEL: i32 = -1;

pub struct CreatedTopicsStore {
    producer: BaseProducer,
    topic: String,
    source: String,
}

impl CreatedTopicsStore {
    /// Opens the store in `progress_topic` on the target and reads the marks of `source`.
    pub fn open(
        consumer: &ClientConfig,
        producer: &ClientConfig,
        progress_topic: &str,
        source: &str,
    ) -> Result<(Self, HashSet<String>), TopicError> {
        let marks = progress::load(consumer, progress_topic, CREATED_TOPICS_CONNECTOR, source)
            .map_err(|e| TopicError::Store(e.to_string()))?;
        let created = marks.into_keys().map(|(topic, _)| topic).collect();
        let store = CreatedTopicsStore {
            producer: producer.create()?,
            topic: progress_topic.to_string(),
            source: source.to_string(),
        };
        Ok((store, created))
    }

    /// Remembers that the flow created `remote_topic`.
    pub fn record(&self, remote_topic: &str) -> Result<(), TopicError> {
        self.write(remote_topic, Some(codec::encode_value(0, None)))
    }

    /// Forgets `remote_topic` (it was deleted).
    pub fn forget(&self, remote_topic: &str) -> Result<(), TopicError> {
        self.write(remote_topic, None)
    }

    fn write(&self, remote_topic: &str, value: Option<Vec<u8>>) -> Result<(), TopicError> {
        let key = codec::encode_key(
            CREATED_TOPICS_CONNECTOR,
            &self.source,
            remote_topic,
            TOPIC_LEVEL,
        );
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic).key(&key[..]);
        if let Some(value) = &value {
            record = record.payload(&value[..]);
        }
        self.producer.send(record).map_err(|(e, _)| e)?;
        self.producer.flush(Duration::from_secs(10))?;
        Ok(())
    }
}
