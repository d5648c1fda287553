//! The seam between topic management and a cluster: what the topic manager, the units topic
//! and the lag view need from a cluster's admin API. [`super::admin::TopicAdmin`] does it over
//! the Kafka protocol; unit tests use an in-memory cluster (`crate::topics::fake`).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::ffi::AdminExtError;
use crate::acls::TopicAcl;
use crate::topic_configs::{ConfigOp, ConfigValue};

/// What can go wrong managing topics on a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

/// A topic's ID (base64, as Kafka's tools print it): a topic deleted and created again under
/// the same name has a new one, and its offsets start over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicId(pub String);

impl std::fmt::Display for TopicId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What topic management needs from a cluster; [`super::admin::TopicAdmin`] does it over the Kafka
/// protocol, unit tests with an in-memory cluster.
pub trait ClusterAdmin {
    /// Every topic with its partition count.
    fn list_topics(&self) -> Result<BTreeMap<String, i32>, TopicError>;
    /// The ID of each of `topics` the cluster knows (none from a broker without topic IDs).
    fn topic_ids(&self, topics: &[&str]) -> Result<BTreeMap<String, TopicId>, TopicError>;
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
