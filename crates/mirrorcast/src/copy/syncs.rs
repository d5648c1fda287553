//! Writes the offset syncs a flow emits (see [`crate::offsets::translate::SyncEmitter`]) to
//! `mm2-offset-syncs.<alias>.internal`: on the target through the copy's own producer, or on the
//! source (`offset-syncs.topic.location = source`, MM2's default) through a producer of its own.
//! Best effort, as in MM2: a sync that cannot be sent now is skipped, and translation stays
//! correct (only less precise) until the next one.

use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tracing::warn;

use super::io::Tag;
use super::io::{Outgoing, Target};
use crate::config::OffsetSyncsConfig;
use crate::health::Health;
use crate::kafka::clients::ClientLog;
use crate::offsets::codec::OffsetSync;

pub struct SyncWriter {
    topic: String,
    /// Set when the syncs live on the source cluster.
    source_producer: Option<BaseProducer<ClientLog>>,
    health: Health,
}

impl SyncWriter {
    pub fn new(
        config: &OffsetSyncsConfig,
        source_producer: &ClientConfig,
        label: &str,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let source_producer = if config.on_source {
            Some(source_producer.create_with_context(
                ClientLog::new(format!("{label} offset syncs")).trusting(source_producer),
            )?)
        } else {
            None
        };
        Ok(SyncWriter {
            topic: config.topic.clone(),
            source_producer,
            health: Health::default(),
        })
    }

    pub(super) fn emit(&mut self, sync: &OffsetSync, target: &impl Target) {
        let (key, value) = (sync.key(), sync.value());
        let sent = match &self.source_producer {
            Some(producer) => {
                let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic)
                    .partition(0)
                    .key(&key[..])
                    .payload(&value[..]);
                producer.send(record).map_err(|(e, _)| e)
            }
            None => {
                let record = Outgoing::internal(&self.topic, &key, Some(&value), Tag::OffsetSync)
                    .in_partition(0);
                target.send(record).map_err(|(e, _)| e)
            }
        };
        match sent {
            Ok(()) => {
                self.health.recovered();
            }
            Err(e) => {
                if self.health.failed() {
                    warn!(topic = %self.topic, "cannot write an offset sync now ({e}); skipping until it works");
                }
            }
        }
    }

    /// Serves the source producer's delivery reports.
    pub fn poll(&self) {
        if let Some(producer) = &self.source_producer {
            producer.poll(Duration::ZERO);
        }
    }

    pub fn flush(&self, timeout: Duration) {
        if let Some(producer) = &self.source_producer {
            let _ = producer.flush(timeout);
        }
    }
}
