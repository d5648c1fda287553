//! Looks into the clusters of a config for the web page: each region's topics with partitions,
//! end offsets and configs, and the latest events of a topic. Blocking Kafka calls, made on
//! demand (the HTTP handlers run them on blocking threads); client settings are never shown.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::{ClientRole, Config};
use crate::kafka::admin::TopicAdmin;
use crate::kafka::clients::{client_config, ClientLog};
use crate::topics::ClusterAdmin;

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct RegionView {
    pub alias: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub topics: Vec<TopicView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicView {
    pub name: String,
    /// End offset of each partition, in partition order.
    pub end_offsets: Vec<Option<i64>>,
    /// Configs set on the topic.
    pub configs: BTreeMap<String, String>,
}

/// Text as it is, anything else as hex (binary keys and headers).
fn readable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t') =>
        {
            text.to_string()
        }
        _ => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<String>,
    pub headers: Vec<(String, Option<String>)>,
    pub value: Option<String>,
}

struct ClusterClients {
    admin: ClientConfig,
    consumer: ClientConfig,
}

pub struct Explorer {
    clusters: BTreeMap<String, ClusterClients>,
    admins: Mutex<HashMap<String, Arc<TopicAdmin>>>,
}

impl Explorer {
    pub fn new(config: &Config) -> Self {
        let clusters = config
            .clusters
            .iter()
            .map(|c| {
                let clients = ClusterClients {
                    admin: client_config(c, ClientRole::Admin, "mirrorcast-explorer"),
                    consumer: client_config(c, ClientRole::Consumer, "mirrorcast-explorer"),
                };
                (c.alias.clone(), clients)
            })
            .collect();
        Explorer {
            clusters,
            admins: Mutex::new(HashMap::new()),
        }
    }

    fn admin(&self, alias: &str) -> Result<Arc<TopicAdmin>, String> {
        let mut admins = self.admins.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(admin) = admins.get(alias) {
            return Ok(admin.clone());
        }
        let clients = self
            .clusters
            .get(alias)
            .ok_or_else(|| format!("no cluster `{alias}`"))?;
        let admin =
            TopicAdmin::with_log(&clients.admin, ClientLog::new(format!("explorer {alias}")))
                .map_err(|e| e.to_string())?;
        let admin = Arc::new(admin);
        admins.insert(alias.to_string(), admin.clone());
        Ok(admin)
    }

    fn consumer(&self, alias: &str) -> Result<BaseConsumer<ClientLog>, String> {
        let clients = self
            .clusters
            .get(alias)
            .ok_or_else(|| format!("no cluster `{alias}`"))?;
        let mut config = clients.consumer.clone();
        config.set("group.id", "mirrorcast-explorer");
        config
            .create_with_context(ClientLog::new(format!("explorer {alias}")))
            .map_err(|e| e.to_string())
    }

    /// Every cluster with its topics (Kafka and MM2 internals left out).
    pub fn regions(&self) -> Vec<RegionView> {
        self.clusters
            .keys()
            .map(|alias| match self.region(alias) {
                Ok(topics) => RegionView {
                    alias: alias.clone(),
                    reachable: true,
                    error: None,
                    topics,
                },
                Err(error) => RegionView {
                    alias: alias.clone(),
                    reachable: false,
                    error: Some(error),
                    topics: Vec::new(),
                },
            })
            .collect()
    }

    fn region(&self, alias: &str) -> Result<Vec<TopicView>, String> {
        let admin = self.admin(alias)?;
        let topics = admin.list_topics().map_err(|e| e.to_string())?;
        let names: Vec<&str> = topics
            .keys()
            .map(String::as_str)
            .filter(|t| {
                !t.starts_with("__") && !t.ends_with(".internal") && !t.starts_with("mirrormaker2-")
            })
            .collect();
        let configs = admin.describe_configs(&names).map_err(|e| e.to_string())?;
        let consumer = self.consumer(alias)?;
        Ok(names
            .iter()
            .map(|name| {
                let partitions = topics.get(*name).copied().unwrap_or(0);
                let end_offsets = (0..partitions)
                    .map(|p| {
                        consumer
                            .fetch_watermarks(name, p, TIMEOUT)
                            .ok()
                            .map(|(_, high)| high)
                    })
                    .collect();
                let configs = configs
                    .get(*name)
                    .map(|entries| {
                        entries
                            .iter()
                            .filter(|e| !e.is_default && !e.sensitive)
                            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                TopicView {
                    name: name.to_string(),
                    end_offsets,
                    configs,
                }
            })
            .collect())
    }

    /// The last `limit` events of each partition of `topic`, newest first.
    pub fn latest_events(
        &self,
        alias: &str,
        topic: &str,
        limit: i64,
    ) -> Result<Vec<EventView>, String> {
        let consumer = self.consumer(alias)?;
        // All topics: asking for one by name would create it on brokers that auto-create.
        let metadata = consumer
            .fetch_metadata(None, TIMEOUT)
            .map_err(|e| e.to_string())?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        let mut list = TopicPartitionList::new();
        let mut remaining = HashMap::new();
        for p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, TIMEOUT)
                .map_err(|e| e.to_string())?;
            if high > low {
                let start = (high - limit).max(low);
                list.add_partition_offset(topic, p, Offset::Offset(start))
                    .map_err(|e| e.to_string())?;
                remaining.insert(p, high);
            }
        }
        let mut events = Vec::new();
        if remaining.is_empty() {
            return Ok(events);
        }
        consumer.assign(&list).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + TIMEOUT;
        while !remaining.is_empty() && Instant::now() < deadline {
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let text = |bytes: Option<&[u8]>| bytes.map(readable);
            events.push(EventView {
                partition: message.partition(),
                offset: message.offset(),
                timestamp_ms: message.timestamp().to_millis(),
                key: text(message.key()),
                headers: crate::kafka::ffi::raw_headers(&message)
                    .into_iter()
                    .map(|(key, value)| (readable(&key), value.as_deref().map(readable)))
                    .collect(),
                value: text(message.payload()),
            });
            if remaining
                .get(&message.partition())
                .is_some_and(|high| message.offset() + 1 >= *high)
            {
                remaining.remove(&message.partition());
            }
        }
        events.sort_by(|a, b| {
            b.timestamp_ms
                .cmp(&a.timestamp_ms)
                .then(b.offset.cmp(&a.offset))
        });
        events.truncate(usize::try_from(limit).unwrap_or(20));
        Ok(events)
    }
}
