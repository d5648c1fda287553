//! Topic management: which source topics a flow replicates, and making sure each remote topic
//! exists on the target with the source's partition count before anything is produced to it
//! (a broker that auto-creates topics would otherwise pick its own count).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;

use crate::acls::TopicAcl;
use crate::admin_ext::{self, AdminExtError};
use crate::clients::ClientLog;
use crate::config::FlowConfig;
use crate::plan::Route;
use config_sync::ConfigOp;
use config_sync::ConfigValue;

mod acl_round;
mod config_round;
pub mod config_sync;
pub mod created;
#[cfg(test)]
mod fake;
pub mod manager;
mod schedule;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("creating topic `{topic}` failed: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("topic `{topic}` was created but is not visible in metadata after {waited:?}")]
    NotVisible { topic: String, waited: Duration },
    #[error("{operation} `{topic}` failed: {code}")]
    Refused {
        operation: &'static str,
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error(transparent)]
    Admin(#[from] AdminExtError),
    #[error("reading the marks of created topics: {0}")]
    Store(String),
}

/// The source topics `flow` replicates, with their remote names: MM2's
/// `shouldReplicateTopic` (filter, not internal, no cycle).
pub fn replicated_topics(flow: &FlowConfig, source_topics: &BTreeMap<String, i32>) -> Vec<Route> {
    source_topics
        .iter()
        .filter(|(topic, _)| {
            flow.topics.accepts(topic)
                && !flow.policy.is_internal_topic(topic)
                && !flow.policy.is_cycle(topic, &flow.target)
        })
        .map(|(topic, partitions)| Route {
            source_topic: topic.clone(),
            remote_topic: flow.policy.remote_topic(&flow.source, topic),
            partitions: *partitions,
        })
        .collect()
}

/// What topic management needs from a cluster; [`TopicAdmin`] does it over the Kafka
/// protocol, unit tests with an in-memory cluster.
pub trait ClusterAdmin {
    /// Every topic with its partition count.
    fn list_topics(&self) -> Result<BTreeMap<String, i32>, TopicError>;
    fn describe_configs(
        &self,
        topics: &[&str],
    ) -> Result<BTreeMap<String, Vec<ConfigValue>>, TopicError>;
    fn alter_configs(&self, topic: &str, ops: &[ConfigOp]) -> Result<(), TopicError>;
    fn create_partitions(&self, topic: &str, partitions: i32) -> Result<(), TopicError>;
    fn delete_topic(&self, topic: &str) -> Result<(), TopicError>;
    /// Creates `topic` unless it exists; returns its partition count.
    fn ensure_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &[(String, String)],
    ) -> Result<i32, TopicError>;
    /// Literal ACLs on named topics.
    fn describe_topic_acls(&self) -> Result<Vec<TopicAcl>, TopicError>;
    fn create_topic_acls(&self, acls: &[TopicAcl]) -> Result<(), TopicError>;
}

impl TopicError {
    /// The cluster has no authorizer: ACLs cannot be read or written there.
    pub fn is_security_disabled(&self) -> bool {
        matches!(
            self,
            TopicError::Admin(AdminExtError::Broker {
                code: RDKafkaErrorCode::SecurityDisabled,
                ..
            })
        )
    }
}

/// Admin access to one cluster.
pub struct TopicAdmin {
    admin: AdminClient<ClientLog>,
}

impl TopicAdmin {
    /// `label` names the client in librdkafka's log lines.
    pub fn new(config: &ClientConfig, label: &str) -> Result<Self, TopicError> {
        Self::with_log(config, ClientLog::new(label))
    }

    pub fn with_log(config: &ClientConfig, log: ClientLog) -> Result<Self, TopicError> {
        Ok(TopicAdmin {
            admin: config.create_with_context(log)?,
        })
    }
}

impl ClusterAdmin for TopicAdmin {
    /// Every topic with its partition count. Blocking. Asks for all topics, which never
    /// auto-creates one.
    fn list_topics(&self) -> Result<BTreeMap<String, i32>, TopicError> {
        let metadata = self.admin.inner().fetch_metadata(None, METADATA_TIMEOUT)?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect())
    }

    /// The configs of each topic (DescribeConfigs). Topics the broker cannot describe are
    /// left out. Blocking.
    fn describe_configs(
        &self,
        topics: &[&str],
    ) -> Result<BTreeMap<String, Vec<ConfigValue>>, TopicError> {
        let specifiers: Vec<ResourceSpecifier> =
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
                        name: e.name,
                        value: e.value,
                        is_default: e.is_default,
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
        admin_ext::incremental_alter_topic_configs(
            self.admin.inner(),
            topic,
            ops,
            METADATA_TIMEOUT,
        )?;
        Ok(())
    }

    /// Grows `topic` to `partitions` partitions (CreatePartitions). Blocking.
    fn create_partitions(&self, topic: &str, partitions: i32) -> Result<(), TopicError> {
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
        Ok(admin_ext::describe_topic_acls(
            self.admin.inner(),
            METADATA_TIMEOUT,
        )?)
    }

    fn create_topic_acls(&self, acls: &[TopicAcl]) -> Result<(), TopicError> {
        Ok(admin_ext::create_topic_acls(
            self.admin.inner(),
            acls,
            METADATA_TIMEOUT,
        )?)
    }

    /// Deletes `topic`. Blocking.
    fn delete_topic(&self, topic: &str) -> Result<(), TopicError> {
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
    use crate::config::{Config, RawProperties};

    fn flow(extra: &str) -> FlowConfig {
        let text = format!(
            "clusters = europe, na\neurope.bootstrap.servers = h:1\nna.bootstrap.servers = h:2\n\
             europe->na.enabled = true\n{extra}"
        );
        let raw = RawProperties::parse(std::path::Path::new("t"), text.as_bytes()).unwrap();
        Config::resolve(&raw).unwrap().flows.remove(0)
    }

    fn topics(names: &[(&str, i32)]) -> BTreeMap<String, i32> {
        names.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    #[test]
    fn default_policy_skips_internals_and_cycles() {
        let routes = replicated_topics(
            &flow(""),
            &topics(&[
                ("orders", 3),
                ("na.orders", 1),
                ("__consumer_offsets", 50),
                ("mm2-offsets.na.internal", 25),
            ]),
        );
        assert_eq!(
            routes,
            vec![Route {
                source_topic: "orders".into(),
                remote_topic: "europe.orders".into(),
                partitions: 3
            }]
        );
    }

    #[test]
    fn identity_policy_with_a_pattern() {
        let f = flow("topics = LH.*\nreplication.policy.class = IdentityReplicationPolicy\n");
        let routes = replicated_topics(
            &f,
            &topics(&[("LH.ORDERS", 3), ("other", 1), ("LH.DOORS", 1)]),
        );
        let names: Vec<_> = routes
            .iter()
            .map(|r| (r.source_topic.as_str(), r.remote_topic.as_str()))
            .collect();
        assert_eq!(
            names,
            [("LH.DOORS", "LH.DOORS"), ("LH.ORDERS", "LH.ORDERS")]
        );
    }
}
