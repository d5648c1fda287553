//! An in-memory cluster behind [`ClusterAdmin`], and a topic manager over it, for unit tests of
//! topic management without a broker.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;

use super::manager::TopicManager;
use super::{ClusterAdmin, TopicError};
use crate::acls::{AclOperation, AclPermission, TopicAcl};
use crate::clock::Clock;
use crate::config::{Config, RawProperties};
use crate::kafka::cluster::TopicId;
use crate::observe::Observability;
use crate::plan::{Commands, ToCopier};
use crate::shutdown::Shutdown;
use crate::topic_configs::{ConfigOp, ConfigValue};

/// Partition count and explicitly set configs of a fake topic.
type FakeTopic = (i32, BTreeMap<String, String>);
/// name, partitions, configs
type TopicSpec<'a> = (&'a str, i32, &'a [(&'a str, &'a str)]);

/// An in-memory cluster: topics with partition counts and explicitly set configs.
#[derive(Default)]
pub(crate) struct FakeCluster {
    pub topics: RefCell<BTreeMap<String, FakeTopic>>,
    pub refuse_partitions: RefCell<bool>,
    /// Topics whose creation is refused (a policy violation, as a broker's create policy would).
    pub refuse_creating: RefCell<std::collections::BTreeSet<String>>,
    /// Topics this client is not authorized to create.
    pub deny_creating: RefCell<std::collections::BTreeSet<String>>,
    pub acls: RefCell<Vec<TopicAcl>>,
    pub no_authorizer: bool,
    /// Listing fails as with the cluster down.
    pub unreachable: RefCell<bool>,
    /// Each topic's ID: a topic created again gets a new one.
    pub ids: RefCell<BTreeMap<String, TopicId>>,
    pub created_topics: std::cell::Cell<u32>,
}

impl FakeCluster {
    pub fn with(topics: &[TopicSpec<'_>]) -> Self {
        let cluster = FakeCluster::default();
        for (name, partitions, configs) in topics {
            cluster.add(name, *partitions, configs);
        }
        cluster
    }

    pub fn add(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let configs = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.topics
            .borrow_mut()
            .insert(name.into(), (partitions, configs));
        if !self.ids.borrow().contains_key(name) {
            let created = self.created_topics.get() + 1;
            self.created_topics.set(created);
            let id = TopicId(format!("{name}-{created}"));
            self.ids.borrow_mut().insert(name.into(), id);
        }
    }

    /// Deletes `name` and creates it again (a new ID, no configs).
    pub fn recreate(&self, name: &str, partitions: i32) {
        let _ = self.delete_topic(name);
        self.add(name, partitions, &[]);
    }

    pub fn id(&self, name: &str) -> Option<TopicId> {
        self.ids.borrow().get(name).cloned()
    }

    pub fn partitions(&self, name: &str) -> Option<i32> {
        self.topics.borrow().get(name).map(|(p, _)| *p)
    }

    pub fn config(&self, name: &str, key: &str) -> Option<String> {
        self.topics.borrow().get(name)?.1.get(key).cloned()
    }
}

impl ClusterAdmin for FakeCluster {
    fn list_topics(&self) -> Result<BTreeMap<String, i32>, TopicError> {
        if *self.unreachable.borrow() {
            return Err(TopicError::Kafka(
                rdkafka::error::KafkaError::MetadataFetch(
                    rdkafka::error::RDKafkaErrorCode::BrokerTransportFailure,
                ),
            ));
        }
        Ok(self
            .topics
            .borrow()
            .iter()
            .map(|(k, (p, _))| (k.clone(), *p))
            .collect())
    }

    fn topic_ids(&self, topics: &[&str]) -> Result<BTreeMap<String, TopicId>, TopicError> {
        let ids = self.ids.borrow();
        Ok(topics
            .iter()
            .filter_map(|t| ids.get(*t).map(|id| (t.to_string(), id.clone())))
            .collect())
    }

    fn describe_configs(
        &self,
        topics: &[&str],
    ) -> Result<BTreeMap<String, Vec<ConfigValue>>, TopicError> {
        let all = self.topics.borrow();
        Ok(topics
            .iter()
            .filter_map(|t| all.get(*t).map(|(_, c)| (t.to_string(), c)))
            .map(|(t, c)| {
                let entries = c
                    .iter()
                    .map(|(k, v)| ConfigValue {
                        name: k.clone(),
                        value: Some(v.clone()),
                        is_default: false,
                        read_only: false,
                        sensitive: false,
                    })
                    .collect();
                (t, entries)
            })
            .collect())
    }

    fn alter_configs(&self, topic: &str, ops: &[ConfigOp]) -> Result<(), TopicError> {
        let mut all = self.topics.borrow_mut();
        let Some((_, configs)) = all.get_mut(topic) else {
            return Ok(());
        };
        for op in ops {
            match op {
                ConfigOp::Set { name, value } => configs.insert(name.clone(), value.clone()),
                ConfigOp::Delete { name } => configs.remove(name),
            };
        }
        Ok(())
    }

    fn create_partitions(&self, topic: &str, partitions: i32) -> Result<(), TopicError> {
        if *self.refuse_partitions.borrow() {
            return Err(TopicError::Refused {
                operation: "adding partitions to",
                topic: topic.into(),
                code: rdkafka::error::RDKafkaErrorCode::UnsupportedVersion,
            });
        }
        if let Some((p, _)) = self.topics.borrow_mut().get_mut(topic) {
            *p = (*p).max(partitions);
        }
        Ok(())
    }

    fn delete_topic(&self, topic: &str) -> Result<(), TopicError> {
        self.topics.borrow_mut().remove(topic);
        self.ids.borrow_mut().remove(topic);
        Ok(())
    }

    fn describe_topic_acls(&self) -> Result<Vec<TopicAcl>, TopicError> {
        if self.no_authorizer {
            return Err(security_disabled());
        }
        Ok(self.acls.borrow().clone())
    }

    fn create_topic_acls(&self, acls: &[TopicAcl]) -> Result<(), TopicError> {
        if self.no_authorizer {
            return Err(security_disabled());
        }
        self.acls.borrow_mut().extend_from_slice(acls);
        Ok(())
    }

    fn ensure_topic(
        &self,
        topic: &str,
        partitions: i32,
        _rf: i32,
        configs: &[(String, String)],
    ) -> Result<i32, TopicError> {
        if let Some(p) = self.partitions(topic) {
            return Ok(p);
        }
        if self.deny_creating.borrow().contains(topic) {
            return Err(TopicError::Create {
                topic: topic.into(),
                code: rdkafka::error::RDKafkaErrorCode::TopicAuthorizationFailed,
            });
        }
        if self.refuse_creating.borrow().contains(topic) {
            return Err(TopicError::Create {
                topic: topic.into(),
                code: rdkafka::error::RDKafkaErrorCode::PolicyViolation,
            });
        }
        let configs: Vec<(&str, &str)> = configs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.add(topic, partitions, &configs);
        Ok(partitions)
    }
}

pub(super) fn security_disabled() -> TopicError {
    TopicError::Admin(crate::kafka::ffi::AdminExtError::Broker {
        code: rdkafka::error::RDKafkaErrorCode::SecurityDisabled,
        message: "no authorizer".into(),
    })
}

pub(super) fn acl(topic: &str, operation: AclOperation, permission: AclPermission) -> TopicAcl {
    TopicAcl {
        topic: topic.into(),
        principal: "User:app".into(),
        host: "*".into(),
        operation,
        permission,
    }
}

pub(super) fn manager(extra: &str) -> (TopicManager, Receiver<ToCopier>) {
    let text = format!(
        "clusters = europe, na\neurope.bootstrap.servers = h:1\nna.bootstrap.servers = h:2\n\
         europe->na.enabled = true\nreplication.policy.class = IdentityReplicationPolicy\n{extra}"
    );
    let raw = RawProperties::parse(std::path::Path::new("t"), text.as_bytes()).unwrap();
    let flow = Config::resolve(&raw).unwrap().flows.remove(0);
    let (commands, mut receivers) = Commands::to_threads(1);
    let receiver = receivers.remove(0);
    let manager = TopicManager {
        flow,
        source_admin: rdkafka::ClientConfig::new(),
        target_admin: rdkafka::ClientConfig::new(),
        target_consumer: rdkafka::ClientConfig::new(),
        target_producer: rdkafka::ClientConfig::new(),
        commands,
        standing: crate::ownership::Standing::alone(),
        shutdown: Shutdown::new(),
        observe: Observability::new(),
        clock: Clock::system(),
        lost: Default::default(),
        taken_over: Default::default(),
    };
    (manager, receiver)
}
