//! The real [`ClusterAdmin`]: rust-rdkafka's admin client, plus the calls it does not wrap
//! ([`super::ffi`]). Each call is bounded by a timeout; errors keep the broker's code.
//!
//! Blocking, like every Kafka call outside the HTTP server: rust-rdkafka's admin futures are
//! completed by librdkafka's own thread, so waiting for one (`futures_executor::block_on`) needs
//! no scheduler, and the callers are plain threads.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use super::clients::ClientLog;
use super::cluster::{ClusterAdmin, TopicError, TopicId};
use super::ffi;
use crate::acls::TopicAcl;
use crate::topic_configs::{ConfigOp, ConfigValue};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Admin access to one cluster.
pub struct TopicAdmin {
    admin: AdminClient<ClientLog>,
}

/// Whether a topic's config entry is an override of that topic. A value the topic inherits
/// from the broker (its static `server.properties` or a dynamic broker config) is not, though
/// Kafka reports it as not default: copied, it would pin the source broker's setting on the
/// target as a topic override. Brokers too old to say where a value comes from: their flag.
fn set_on_topic(source: &ConfigSource, is_default: bool) -> bool {
    match source {
        ConfigSource::DynamicTopic => true,
        ConfigSource::Unknown => !is_default,
        _ => false,
    }
}

/// Serves the admin client's log and error events when a call ends, whatever its outcome:
/// rust-rdkafka's admin client leaves them unserved (see [`ffi::serve_main_queue`]).
struct ServeEventsAfter<'a>(&'a AdminClient<ClientLog>);

impl Drop for ServeEventsAfter<'_> {
    fn drop(&mut self) {
        ffi::serve_main_queue(self.0.inner());
    }
}

impl TopicAdmin {
    fn serve_events_after(&self) -> ServeEventsAfter<'_> {
        ServeEventsAfter(&self.admin)
    }

    /// `label` names the client in librdkafka's log lines.
    pub fn new(config: &ClientConfig, label: &str) -> Result<Self, TopicError> {
        Self::with_log(config, ClientLog::new(label))
    }

    pub fn with_log(config: &ClientConfig, log: ClientLog) -> Result<Self, TopicError> {
        Ok(TopicAdmin {
            admin: config.create_with_context(log.trusting(config))?,
        })
    }
}

impl ClusterAdmin for TopicAdmin {
    /// Every topic with its partition count. Blocking. Asks for all topics, which never
    /// auto-creates one.
    fn list_topics(&self) -> Result<BTreeMap<String, i32>, TopicError> {
        let _events = self.serve_events_after();
        let metadata = self.admin.inner().fetch_metadata(None, METADATA_TIMEOUT)?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect())
    }

    fn topic_ids(&self, topics: &[&str]) -> Result<BTreeMap<String, TopicId>, TopicError> {
        let _events = self.serve_events_after();
        Ok(
            ffi::describe_topic_ids(self.admin.inner(), topics, METADATA_TIMEOUT)?
                .into_iter()
                .map(|(name, id)| (name, TopicId(id)))
                .collect(),
        )
    }

    /// The configs of each topic (DescribeConfigs). Topics the broker cannot describe are
    /// left out. Blocking.
    fn describe_configs(
        &self,
        topics: &[&str],
    ) -> Result<BTreeMap<String, Vec<ConfigValue>>, TopicError> {
        let _events = self.serve_events_after();
        let specifiers: Vec<ResourceSpecifier<'_>> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let options = AdminOptions::new().request_timeout(Some(METADATA_TIMEOUT));
        let results =
            futures_executor::block_on(self.admin.describe_configs(&specifiers, &options))?;
        let mut configs = BTreeMap::new();
        for (topic, result) in topics.iter().zip(results) {
            if let Ok(resource) = result {
                let entries = resource
                    .entries
                    .into_iter()
                    .map(|e| ConfigValue {
                        is_default: !set_on_topic(&e.source, e.is_default),
                        name: e.name,
                        value: e.value,
                        read_only: e.is_read_only,
                        sensitive: e.is_sensitive,
                    })
                    .collect();
                configs.insert(topic.to_string(), entries);
            }
        }
        Ok(configs)
    }

    /// Applies config changes to one topic (IncrementalAlterConfigs). Blocking.
    fn alter_configs(&self, topic: &str, ops: &[ConfigOp]) -> Result<(), TopicError> {
        let _events = self.serve_events_after();
        ffi::incremental_alter_topic_configs(self.admin.inner(), topic, ops, METADATA_TIMEOUT)?;
        Ok(())
    }

    /// Grows `topic` to `partitions` partitions (CreatePartitions). Blocking.
    fn create_partitions(&self, topic: &str, partitions: i32) -> Result<(), TopicError> {
        let _events = self.serve_events_after();
        let new = NewPartitions::new(topic, usize::try_from(partitions).unwrap_or(0));
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = futures_executor::block_on(self.admin.create_partitions([&new], &options))?;
        for result in results {
            if let Err((topic, code)) = result {
                return Err(TopicError::Refused {
                    operation: "adding partitions to",
                    topic,
                    code,
                });
            }
        }
        Ok(())
    }

    fn describe_topic_acls(&self) -> Result<Vec<TopicAcl>, TopicError> {
        let _events = self.serve_events_after();
        Ok(ffi::describe_topic_acls(
            self.admin.inner(),
            METADATA_TIMEOUT,
        )?)
    }

    fn create_topic_acls(&self, acls: &[TopicAcl]) -> Result<(), TopicError> {
        let _events = self.serve_events_after();
        Ok(ffi::create_topic_acls(
            self.admin.inner(),
            acls,
            METADATA_TIMEOUT,
        )?)
    }

    /// Deletes `topic`. Blocking.
    fn delete_topic(&self, topic: &str) -> Result<(), TopicError> {
        let _events = self.serve_events_after();
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = futures_executor::block_on(self.admin.delete_topics(&[topic], &options))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => {
                    return Err(TopicError::Refused {
                        operation: "deleting",
                        topic,
                        code,
                    })
                }
            }
        }
        Ok(())
    }

    /// Creates `topic` unless it exists, then waits until metadata shows it. Returns its
    /// partition count (which may differ from `partitions` when it already existed). Blocking.
    fn ensure_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &[(String, String)],
    ) -> Result<i32, TopicError> {
        let _events = self.serve_events_after();
        if let Some(existing) = self.list_topics()?.get(topic) {
            return Ok(*existing);
        }
        let mut new_topic = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(replication_factor),
        );
        for (k, v) in configs {
            new_topic = new_topic.set(k, v);
        }
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        // rdkafka's admin futures are completed by the admin client's own thread: no runtime needed.
        let results = futures_executor::block_on(self.admin.create_topics([&new_topic], &options))?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(TopicError::Create { topic, code }),
            }
        }
        let started = Instant::now();
        loop {
            if let Some(count) = self.list_topics()?.get(topic) {
                return Ok(*count);
            }
            if started.elapsed() > METADATA_TIMEOUT {
                return Err(TopicError::NotVisible {
                    topic: topic.to_string(),
                    waited: METADATA_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_topic_overrides_count_as_set_on_the_topic() {
        assert!(set_on_topic(&ConfigSource::DynamicTopic, false));
        for inherited in [
            ConfigSource::StaticBroker,
            ConfigSource::DynamicBroker,
            ConfigSource::DynamicDefaultBroker,
            ConfigSource::Default,
        ] {
            assert!(!set_on_topic(&inherited, false), "{inherited:?}");
        }
        assert!(set_on_topic(&ConfigSource::Unknown, false));
        assert!(!set_on_topic(&ConfigSource::Unknown, true));
    }
}
