//! Looks into the clusters of a config for the web page: each region's topics with partitions,
//! end offsets and configs, and the latest events of a topic. Blocking Kafka calls, made on
//! demand (the HTTP handlers run them on blocking threads) with one admin and one consumer per
//! cluster, kept; the regions' view is reused for a second.
//!
//! Invariants: client settings are never shown; records are read only from topics a flow of
//! the config replicates (on its source, or their remote names on its target), never from an
//! internal topic; a response holds at most [`MAX_EVENTS_BYTES`] of record text.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::{ClientRole, Config, FlowConfig};
use crate::kafka::admin::TopicAdmin;
use crate::kafka::clients::{client_config, ClientLog};
use crate::topics::{replicates, ClusterAdmin};

const TIMEOUT: Duration = Duration::from_secs(5);
/// How long the regions' view is reused: the page asks every 2 s per open tab.
const REGIONS_FRESH_FOR: Duration = Duration::from_secs(1);
/// Longest text shown of one key, value or header; the rest is left out and said so.
const MAX_FIELD_CHARS: usize = 4096;
/// Most record text in one response: events past it are left out.
pub const MAX_EVENTS_BYTES: usize = 1 << 20;

/// Why the records of a topic are not shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowseError {
    /// No cluster by that alias in the config.
    UnknownCluster(String),
    /// Not a topic this process replicates there (or an internal one).
    NotReplicated { alias: String, topic: String },
    /// Kafka did not answer as hoped.
    Kafka(String),
}

impl std::fmt::Display for BrowseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrowseError::UnknownCluster(alias) => write!(f, "no cluster `{alias}`"),
            BrowseError::NotReplicated { alias, topic } => write!(
                f,
                "`{topic}` is not a topic this process replicates from or to `{alias}`: only \
                 those can be browsed"
            ),
            BrowseError::Kafka(error) => f.write_str(error),
        }
    }
}

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

/// Text as it is, anything else as hex (binary keys and headers), cut at [`MAX_FIELD_CHARS`].
fn readable(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(MAX_FIELD_CHARS)];
    let mut text = readable_whole(shown);
    if shown.len() < bytes.len() {
        text.push_str(&format!(" ... ({} bytes in all)", bytes.len()));
    }
    text
}

fn readable_whole(bytes: &[u8]) -> String {
    // A cut can split a character: the valid prefix is still text.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&bytes[..e.valid_up_to()]),
        Err(e) => Err(e),
    };
    match text {
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

impl EventView {
    fn text_bytes(&self) -> usize {
        let field = |text: &Option<String>| text.as_ref().map_or(0, String::len);
        field(&self.key)
            + field(&self.value)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + field(v))
                .sum::<usize>()
    }
}

pub struct Explorer {
    clusters: BTreeMap<String, ClusterClients>,
    flows: Vec<FlowConfig>,
    admins: Mutex<HashMap<String, Arc<TopicAdmin>>>,
    /// One per cluster, locked for the whole of a request (assignments are per consumer).
    consumers: Mutex<HashMap<String, Arc<Mutex<BaseConsumer<ClientLog>>>>>,
    /// The last regions' view and when it was made; locked while one is made, so requests
    /// that arrive meanwhile wait for it instead of asking the clusters again.
    regions: Mutex<Option<(Instant, Vec<RegionView>)>>,
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
            flows: config.flows.clone(),
            admins: Mutex::new(HashMap::new()),
            consumers: Mutex::new(HashMap::new()),
            regions: Mutex::new(None),
        }
    }

    /// Kafka's and MM2's internal topics, by the config's own replication policies (custom
    /// separators included).
    fn is_internal(&self, topic: &str) -> bool {
        self.flows.iter().any(|f| f.policy.is_internal_topic(topic))
            || topic.starts_with("__")
            || topic.ends_with(".internal")
    }

    /// Whether the records of `topic` on `alias` may be shown: a topic a flow replicates from
    /// that cluster, or the remote name of one on a flow's target.
    pub fn browsable(&self, alias: &str, topic: &str) -> Result<(), BrowseError> {
        if !self.clusters.contains_key(alias) {
            return Err(BrowseError::UnknownCluster(alias.to_string()));
        }
        if self.is_internal(topic) {
            return Err(BrowseError::NotReplicated {
                alias: alias.to_string(),
                topic: topic.to_string(),
            });
        }
        let replicated = self.flows.iter().any(|flow| {
            let from_source = flow.source == alias && replicates(flow, topic);
            let on_target = flow.target == alias
                && flow
                    .policy
                    .source_topic_of(&flow.source, topic)
                    .is_some_and(|source_topic| replicates(flow, &source_topic));
            from_source || on_target
        });
        if replicated {
            Ok(())
        } else {
            Err(BrowseError::NotReplicated {
                alias: alias.to_string(),
                topic: topic.to_string(),
            })
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

    fn consumer(&self, alias: &str) -> Result<Arc<Mutex<BaseConsumer<ClientLog>>>, String> {
        let mut consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(consumer) = consumers.get(alias) {
            return Ok(consumer.clone());
        }
        let clients = self
            .clusters
            .get(alias)
            .ok_or_else(|| format!("no cluster `{alias}`"))?;
        let mut config = clients.consumer.clone();
        // Assigned, never subscribed, never committing: the group id only satisfies librdkafka.
        config.set("group.id", "mirrorcast-explorer");
        config.set("enable.auto.commit", "false");
        let consumer: BaseConsumer<ClientLog> = config
            .create_with_context(ClientLog::new(format!("explorer {alias}")).trusting(&config))
            .map_err(|e| e.to_string())?;
        let consumer = Arc::new(Mutex::new(consumer));
        consumers.insert(alias.to_string(), consumer.clone());
        Ok(consumer)
    }

    /// Every cluster with its topics (Kafka and MM2 internals left out), at most a second old.
    pub fn regions(&self) -> Vec<RegionView> {
        let mut cached = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made, regions)) = cached.as_ref() {
            if made.elapsed() < REGIONS_FRESH_FOR {
                return regions.clone();
            }
        }
        let regions = self.regions_now();
        *cached = Some((Instant::now(), regions.clone()));
        regions
    }

    fn regions_now(&self) -> Vec<RegionView> {
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
            .filter(|t| !self.is_internal(t) && !t.starts_with("mirrormaker2-"))
            .collect();
        let configs = admin.describe_configs(&names).map_err(|e| e.to_string())?;
        let consumer = self.consumer(alias)?;
        let consumer = consumer.lock().unwrap_or_else(|e| e.into_inner());
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

    /// The last `limit` events of `topic` on `alias`, newest first, if it may be browsed.
    pub fn latest_events(
        &self,
        alias: &str,
        topic: &str,
        limit: i64,
    ) -> Result<Vec<EventView>, BrowseError> {
        self.browsable(alias, topic)?;
        let consumer = self.consumer(alias).map_err(BrowseError::Kafka)?;
        let consumer = consumer.lock().unwrap_or_else(|e| e.into_inner());
        let events = read_latest(&consumer, topic, limit).map_err(BrowseError::Kafka);
        // The next request assigns its own partitions; nothing is fetched meanwhile.
        let _ = consumer.unassign();
        events
    }
}

/// The last `limit` records of each partition of `topic`, newest first, `limit` in all, and no
/// more than [`MAX_EVENTS_BYTES`] of text.
fn read_latest(
    consumer: &BaseConsumer<ClientLog>,
    topic: &str,
    limit: i64,
) -> Result<Vec<EventView>, String> {
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
    let mut text_bytes = 0;
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
        let event = EventView {
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            key: text(message.key()),
            headers: crate::kafka::ffi::raw_headers(&message)
                .into_iter()
                .map(|(key, value)| (readable(&key), value.as_deref().map(readable)))
                .collect(),
            value: text(message.payload()),
        };
        text_bytes += event.text_bytes();
        if text_bytes > MAX_EVENTS_BYTES {
            break;
        }
        events.push(event);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawProperties;

    fn explorer() -> Explorer {
        let text = "clusters = europe, na\n\
                    europe.bootstrap.servers = 127.0.0.1:1\n\
                    na.bootstrap.servers = 127.0.0.1:1\n\
                    europe->na.enabled = true\n\
                    europe->na.topics = LH.*, __.*, mm2.*\n";
        let raw = RawProperties::parse(std::path::Path::new("t"), text.as_bytes()).unwrap();
        Explorer::new(&Config::resolve(&raw).unwrap())
    }

    #[test]
    fn only_replicated_topics_can_be_browsed_never_internal_ones() {
        let explorer = explorer();
        assert_eq!(explorer.browsable("europe", "LH.ORDERS"), Ok(()));
        assert_eq!(explorer.browsable("na", "europe.LH.ORDERS"), Ok(()));
        for (alias, topic) in [
            ("na", "LH.ORDERS"),
            ("europe", "payments"),
            // Matched by the filter, still internal.
            ("europe", "__consumer_offsets"),
            ("europe", "mm2-offsets.na.internal"),
            ("na", "europe.checkpoints.internal"),
            ("na", "mm2-configs.europe.internal"),
        ] {
            assert!(
                matches!(
                    explorer.browsable(alias, topic),
                    Err(BrowseError::NotReplicated { .. })
                ),
                "{alias} {topic}"
            );
        }
        assert_eq!(
            explorer.browsable("asia", "LH.ORDERS"),
            Err(BrowseError::UnknownCluster("asia".into()))
        );
    }

    #[test]
    fn long_fields_are_cut_and_say_how_long_they_were() {
        assert_eq!(readable(b"short"), "short");
        let long = vec![b'x'; MAX_FIELD_CHARS * 3];
        let shown = readable(&long);
        assert!(shown.starts_with(&"x".repeat(MAX_FIELD_CHARS)));
        assert!(shown.ends_with(&format!(" ... ({} bytes in all)", MAX_FIELD_CHARS * 3)));
        // A cut inside a character keeps the text before it as text.
        let mut accented = vec![b'a'; MAX_FIELD_CHARS - 1];
        accented.extend("é and more".as_bytes());
        assert!(readable(&accented).starts_with("aaa"));
        assert_eq!(readable(&[0, 159, 146, 150]), "0x009f9296");
    }
}
