//! Where the copier's records come from: a reader of source partitions that can be handed
//! partitions (at an offset) and have them taken away at any time. Each source has one shared
//! reader for all its flows, and each flow one of its own for catching up ([`super::fanout`]).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::io::Reader;
use crate::kafka::clients::ClientLog;
use crate::kafka::cluster::TopicId;
use crate::kafka::ffi::AdminExtError;

pub struct SourceReader {
    consumer: BaseConsumer<ClientLog>,
}

impl SourceReader {
    /// A reader with manual assignment. librdkafka wants a `group.id` for `assign` even though
    /// this reader never joins the group nor commits to it.
    pub fn new(mut config: ClientConfig, group_id: &str, log: ClientLog) -> KafkaResult<Self> {
        if config.get("group.id").is_none() {
            config.set("group.id", group_id);
        }
        Ok(SourceReader {
            consumer: config.create_with_context(log)?,
        })
    }
}

impl Reader for SourceReader {
    type Record<'a> = BorrowedMessage<'a>;

    /// The partition's end offset as the reader last saw it (no request is made).
    fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        crate::kafka::ffi::cached_watermarks(self.consumer.client(), topic, partition)?.1
    }

    fn low_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        crate::kafka::ffi::cached_watermarks(self.consumer.client(), topic, partition)?.0
    }

    fn topic_id(&self, topic: &str) -> Result<Option<TopicId>, AdminExtError> {
        let ids = crate::kafka::ffi::describe_topic_ids(
            self.consumer.client(),
            &[topic],
            Duration::from_secs(10),
        )?;
        Ok(ids.into_iter().next().map(|(_, id)| TopicId(id)))
    }

    fn end_offset(&self, topic: &str, partition: i32) -> KafkaResult<i64> {
        let (_, high) =
            self.consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        Ok(high)
    }

    /// Where the reader stands on each assigned partition: the offset after the last record it
    /// handed out, moved past records it never hands out (transaction markers, and aborted
    /// records when reading committed only). One call for all partitions, no request.
    fn positions(&self) -> HashMap<(String, i32), i64> {
        let Ok(list) = self.consumer.position() else {
            return HashMap::new();
        };
        list.elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                _ => None,
            })
            .collect()
    }

    /// Starts reading these partitions at the given offsets.
    fn assign(&self, partitions: &[(&str, i32, Offset)]) -> KafkaResult<()> {
        let mut list = TopicPartitionList::with_capacity(partitions.len());
        for (topic, partition, offset) in partitions {
            list.add_partition_offset(topic, *partition, *offset)?;
        }
        self.consumer.incremental_assign(&list)
    }

    /// Stops reading a partition; records already fetched for it are discarded.
    fn unassign(&self, topic: &str, partition: i32) -> KafkaResult<()> {
        let mut list = TopicPartitionList::with_capacity(1);
        list.add_partition(topic, partition);
        self.consumer.incremental_unassign(&list)
    }

    fn poll(&self, timeout: Duration) -> Option<KafkaResult<BorrowedMessage<'_>>> {
        self.consumer.poll(timeout)
    }
}
