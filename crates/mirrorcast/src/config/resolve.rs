//! Raw properties resolved into a [`Config`] by MM2's precedence (top level < `<alias>.` <
//! `<alias>.<client>.`, and `<src>-><tgt>.` over everything for that flow) and defaults,
//! checking everything that can be checked without a network.
//!
//! Invariant: every mistake of the file is collected (not only the first), each naming its
//! line and key.

use std::collections::BTreeSet;
use std::time::Duration;

use super::precedence::{self, Side};
use super::properties::RawProperties;
use super::{ClusterConfig, Config, ConfigError, ConfigErrors, FlowClients, FlowConfig};
use super::{ErrorsConfig, GroupsConfig, HeartbeatPair, HeartbeatsConfig};
use super::{ExactlyOnceConfig, OffsetSyncsConfig, ProgressConfig};

/// `transaction.boundary.interval.ms` when unset: Kafka Streams' commit interval under exactly
/// once. A `read_committed` consumer sees a copied record up to this much later; shorter costs
/// a commit (a round trip to the transaction coordinator) more often.
const DEFAULT_COMMIT_INTERVAL_MS: u64 = 100;
use crate::filter::{PatternList, TopicFilter};
use crate::policy::ReplicationPolicy;
use crate::topic_configs::ConfigFilter;

const DEFAULT_TOPICS: &str = ".*";
const DEFAULT_TOPICS_EXCLUDE: &str = r".*[\-\.]internal, .*\.replica, __.*";
const DEFAULT_POLICY: &str = "org.apache.kafka.connect.mirror.DefaultReplicationPolicy";
const DEFAULT_CONFIG_EXCLUDE: &str = r"follower\.replication\.throttled\.replicas, leader\.replication\.throttled\.replicas, message\.timestamp\.difference\.max\.ms, message\.timestamp\.type, unclean\.leader\.election\.enable, min\.insync\.replicas";

impl Config {
    pub fn resolve(raw: &RawProperties) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let aliases = match raw.get("clusters") {
            None => {
                errors.push(raw.error(
                    "clusters",
                    "missing: list the cluster aliases, e.g. `clusters = europe, northamerica`",
                ));
                Vec::new()
            }
            Some(entry) => {
                let aliases: Vec<String> = entry
                    .value
                    .split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect();
                if aliases.is_empty() {
                    errors.push(raw.error("clusters", "lists no cluster alias"));
                }
                aliases
            }
        };

        let (refused, warnings) = super::keys::check(raw, &aliases);
        errors.extend(refused);

        let clusters: Vec<ClusterConfig> = aliases
            .iter()
            .filter_map(|alias| resolve_cluster(raw, alias, &mut errors))
            .collect();

        let mut flows = Vec::new();
        let mut seen_pairs = BTreeSet::new();
        for (key, entry) in raw.iter() {
            // `<src>-><tgt>.enabled` turns a flow on; `<src>-><tgt>.sync.topic.acls.enabled` and
            // the like are settings of that flow.
            let Some((source, rest)) = key.split_once("->") else {
                continue;
            };
            let Some((target, "enabled")) = rest.split_once('.') else {
                continue;
            };
            let (source, target) = (source.trim(), target.trim());
            for alias in [source, target] {
                if !aliases.iter().any(|a| a == alias) {
                    errors.push(raw.error(
                        key,
                        format!(
                            "`{alias}` is not one of the aliases in `clusters` ({})",
                            aliases.join(", ")
                        ),
                    ));
                }
            }
            if source == target {
                errors.push(raw.error(key, "a cluster cannot replicate to itself"));
            }
            match parse_bool(&entry.value) {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    errors.push(raw.error(key, format!("`{}` is not true or false", entry.value)));
                    continue;
                }
            }
            if seen_pairs.insert((source.to_string(), target.to_string())) {
                if let Some(flow) = resolve_flow(raw, source, target, &mut errors) {
                    flows.push(flow);
                }
            }
        }
        let mut warnings = warnings;
        warnings.extend(without_syncs(raw, &flows));
        warnings.extend(group_id_without_group(raw, &flows));
        let mut seen = BTreeSet::new();
        warnings.retain(|w| seen.insert(w.to_string()));
        let mut heartbeat_pairs = Vec::new();
        for source in &aliases {
            for target in aliases.iter().filter(|t| *t != source) {
                if flows
                    .iter()
                    .any(|f: &FlowConfig| f.source == *source && f.target == *target)
                {
                    continue; // its copier emits them
                }
                let look = FlowLookup {
                    raw,
                    prefix: format!("{source}->{target}."),
                };
                if let Some(heartbeats) = look.heartbeats(&mut errors) {
                    let side = Side::Target;
                    heartbeat_pairs.push(HeartbeatPair {
                        source: source.clone(),
                        target: target.clone(),
                        heartbeats,
                        target_clients: precedence::flow_side(
                            raw,
                            (source, target),
                            side,
                            &mut errors,
                        ),
                    });
                }
            }
        }
        if errors.is_empty() && flows.is_empty() {
            errors.push(raw.error(
                "clusters",
                "no flow is enabled: add e.g. `europe->northamerica.enabled = true`",
            ));
        }
        if !errors.is_empty() {
            // A cluster's key is read again for each flow's clients: said once.
            let mut seen = BTreeSet::new();
            errors.retain(|e| seen.insert(e.to_string()));
            errors.sort_by_key(|e| e.line.unwrap_or(0));
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            file: raw.file.clone(),
            clusters,
            flows,
            heartbeat_pairs,
            warnings,
        })
    }
}

/// What `emit.offset-syncs.enabled = false` turns off beyond the syncs, said rather than
/// ignored: checkpoints and group offset sync (made from syncs; MM2's checkpoint connector
/// refuses to start), and the syncs topic's own settings (with which MM2's source connector
/// refuses to start at all: mirrorcast copies anyway).
/// `instances.group.id` only names the group `instances.group.enabled` turns on: alone it
/// would be ignored.
fn group_id_without_group(raw: &RawProperties, flows: &[FlowConfig]) -> Vec<ConfigError> {
    flows
        .iter()
        .filter(|f| f.instances_group.is_none())
        .filter_map(|flow| {
            let look = FlowLookup {
                raw,
                prefix: format!("{}.", flow.name()),
            };
            let (key, _) = look.get("instances.group.id")?;
            Some(raw.error(
                &key,
                format!(
                    "has no effect for {} without `instances.group.enabled = true`: this \
                     process copies every partition itself",
                    flow.name()
                ),
            ))
        })
        .collect()
}

fn without_syncs(raw: &RawProperties, flows: &[FlowConfig]) -> Vec<ConfigError> {
    let mut warnings = Vec::new();
    for flow in flows.iter().filter(|f| f.offset_syncs.is_none()) {
        let look = FlowLookup {
            raw,
            prefix: format!("{}.", flow.name()),
        };
        for key in [
            "offset-syncs.topic.location",
            "offset-syncs.topic.replication.factor",
        ] {
            if let Some((key, _)) = look.get(key) {
                warnings.push(raw.error(
                    &key,
                    "has no effect with `emit.offset-syncs.enabled = false` (MM2 does not \
                     start its source connector with both: nothing would be copied)",
                ));
            }
        }
        let explicitly_on = |key: &str| {
            look.get(key)
                .filter(|(_, v)| parse_bool(v) == Some(true))
                .map(|(k, _)| k)
        };
        let checkpoints = explicitly_on("emit.checkpoints.enabled");
        let group_sync = explicitly_on("sync.group.offsets.enabled");
        let (key, what) = match (checkpoints, group_sync) {
            (_, Some(key)) => (key, "group offsets are not synced"),
            (Some(key), None) => (key, "no checkpoints are written"),
            // Checkpoints are on by default: said against the key that turned the syncs off,
            // unless checkpoints are off too.
            (None, None) => match look.get("emit.offset-syncs.enabled") {
                Some((key, _)) if flow.groups.checkpoint_interval.is_some() => {
                    (key, "no checkpoints are written")
                }
                _ => continue,
            },
        };
        warnings.push(raw.error(
            &key,
            format!(
                "{what} for {}: they are made from offset syncs, which \
                 `emit.offset-syncs.enabled = false` turns off (MM2's checkpoint connector does \
                 not start either)",
                flow.name()
            ),
        ));
    }
    warnings
}

/// The clients of cluster `alias` ([`precedence`]), which must have brokers to connect to.
fn resolve_cluster(
    raw: &RawProperties,
    alias: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<ClusterConfig> {
    let bootstrap_key = format!("{alias}.bootstrap.servers");
    if raw.get(&bootstrap_key).is_none() && raw.get("bootstrap.servers").is_none() {
        errors.push(raw.error(
            &bootstrap_key,
            format!("missing: cluster `{alias}` needs `{bootstrap_key} = host:port`"),
        ));
        return None;
    }
    Some(precedence::cluster(raw, alias, errors))
}

/// Looks a flow setting up: `<src>-><tgt>.<key>`, else the top-level `<key>`.
struct FlowLookup<'a> {
    raw: &'a RawProperties,
    prefix: String,
}

impl FlowLookup<'_> {
    fn get(&self, key: &str) -> Option<(String, String)> {
        let flow_key = format!("{}{key}", self.prefix);
        if let Some(e) = self.raw.get(&flow_key) {
            return Some((flow_key, e.value.clone()));
        }
        self.raw
            .get(key)
            .map(|e| (key.to_string(), e.value.clone()))
    }

    fn string(&self, key: &str, default: &str) -> (String, String) {
        self.get(key)
            .unwrap_or_else(|| (key.to_string(), default.to_string()))
    }

    fn parse<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
        what: &str,
        errors: &mut Vec<ConfigError>,
    ) -> T {
        match self.get(key) {
            None => default,
            Some((k, v)) => v.parse().unwrap_or_else(|_| {
                errors.push(self.raw.error(&k, format!("`{v}` is not {what}")));
                default
            }),
        }
    }

    /// A replication factor: at least 1, or -1 for the broker's `default.replication.factor`
    /// (KIP-464, as MM2 and the Strimzi and Event Streams examples write it).
    fn replication_factor(&self, key: &str, default: i32, errors: &mut Vec<ConfigError>) -> i32 {
        let what = "a replication factor (a positive whole number, or -1 for the broker's default)";
        let value = self.parse(key, default, what, errors);
        if value == 0 || value < -1 {
            let (k, v) = self.string(key, "");
            errors.push(self.raw.error(&k, format!("`{v}` is not {what}")));
            return default;
        }
        value
    }

    /// A whole number of at least 1.
    fn positive<T>(&self, key: &str, default: T, errors: &mut Vec<ConfigError>) -> T
    where
        T: std::str::FromStr + PartialOrd + Default + Copy,
    {
        let what = "a positive whole number";
        let value = self.parse(key, default, what, errors);
        if value <= T::default() {
            let (k, v) = self.string(key, "");
            errors.push(self.raw.error(&k, format!("`{v}` is not {what}")));
            return default;
        }
        value
    }

    fn bool(&self, key: &str, default: bool, errors: &mut Vec<ConfigError>) -> bool {
        match self.get(key) {
            None => default,
            Some((k, v)) => parse_bool(&v).unwrap_or_else(|| {
                errors.push(self.raw.error(&k, format!("`{v}` is not true or false")));
                default
            }),
        }
    }

    fn patterns(&self, key: &str, default: &str, errors: &mut Vec<ConfigError>) -> PatternList {
        let (k, v) = self.string(key, default);
        PatternList::parse(&v).unwrap_or_else(|message| {
            errors.push(self.raw.error(&k, message));
            PatternList::parse("").unwrap_or_else(|_| unreachable!("an empty list always parses"))
        })
    }
}

fn resolve_flow(
    raw: &RawProperties,
    source: &str,
    target: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<FlowConfig> {
    let look = FlowLookup {
        raw,
        prefix: format!("{source}->{target}."),
    };
    let before = errors.len();
    let topics = TopicFilter {
        include: look.patterns("topics", DEFAULT_TOPICS, errors),
        exclude: look.patterns(
            look.key_or_old_name("topics.exclude", "topics.blacklist"),
            DEFAULT_TOPICS_EXCLUDE,
            errors,
        ),
    };
    let (_, separator) = look.string("replication.policy.separator", ".");
    let (policy_key, class) = look.string("replication.policy.class", DEFAULT_POLICY);
    // MM2 names its internal topics with the separator unless told not to (KIP-690).
    let separator_in_internal_topics = look.bool(
        "replication.policy.internal.topic.separator.enabled",
        true,
        errors,
    );
    let internal_separator = if separator_in_internal_topics {
        separator.clone()
    } else {
        ".".to_string()
    };
    let policy = ReplicationPolicy::from_class_name(&class, &separator).map(|p| {
        if separator_in_internal_topics {
            p
        } else {
            p.with_dot_in_internal_topics()
        }
    });
    if policy.is_none() {
        errors.push(raw.error(
            &policy_key,
            format!(
                "unknown replication policy `{class}`: use \
                 org.apache.kafka.connect.mirror.DefaultReplicationPolicy or \
                 org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
            ),
        ));
    }
    let interval = |enabled: &str, seconds: &str, errors: &mut Vec<ConfigError>| {
        let enabled = look.bool(enabled, true, errors);
        let seconds = look.positive(seconds, 600u64, errors);
        enabled.then(|| Duration::from_secs(seconds))
    };
    let clients = FlowClients {
        source: precedence::flow_side(raw, (source, target), Side::Source, errors),
        target: precedence::flow_side(raw, (source, target), Side::Target, errors),
    };
    let flow = FlowConfig {
        source: source.to_string(),
        target: target.to_string(),
        topics,
        replication_factor: look.replication_factor("replication.factor", 2i32, errors),
        refresh_topics_interval: interval(
            "refresh.topics.enabled",
            "refresh.topics.interval.seconds",
            errors,
        ),
        config_sync_interval: interval(
            "sync.topic.configs.enabled",
            "sync.topic.configs.interval.seconds",
            errors,
        ),
        config_filter: look.config_filter(errors),
        acl_sync_interval: interval(
            "sync.topic.acls.enabled",
            "sync.topic.acls.interval.seconds",
            errors,
        ),
        sync_deletions: look.bool("sync.topic.deletions.enabled", false, errors),
        progress: look.progress(source, target, errors),
        offset_syncs: look.offset_syncs(source, target, &internal_separator, errors),
        heartbeats: look.heartbeats(errors),
        groups: look.groups(source, &internal_separator, errors),
        errors: look.errors(errors),
        start_at_end: clients
            .source
            .consumer
            .get("auto.offset.reset")
            .is_some_and(|r| matches!(r.trim(), "latest" | "largest" | "end")),
        clients: clients.clone(),
        tasks_max: look
            .get("tasks.max")
            .map(|_| look.positive("tasks.max", 1usize, errors)),
        instances_group: look
            .bool("instances.group.enabled", false, errors)
            .then(|| {
                look.get("instances.group.id")
                    .map(|(_, id)| id.trim().to_string())
                    .filter(|id| !id.is_empty())
            }),
        exactly_once: look.exactly_once(target, &clients, errors),
        // Last: every other key is checked (and its mistakes collected) before this returns.
        policy: policy?,
    };
    (errors.len() == before).then_some(flow)
}

/// The settings of one part of a flow, each from its MM2 keys and defaults.
impl FlowLookup<'_> {
    fn either(&self, key: &str, a: &str, b: &str, errors: &mut Vec<ConfigError>) -> bool {
        let (key, value) = self.string(key, a);
        match value.trim() {
            v if v == a => true,
            v if v == b => false,
            other => {
                errors.push(
                    self.raw
                        .error(&key, format!("`{other}` is neither `{a}` nor `{b}`")),
                );
                true
            }
        }
    }

    /// Every interval of `*.interval.seconds` that can be 0 to turn the job off.
    fn seconds_or_off(&self, key: &str, errors: &mut Vec<ConfigError>) -> Option<Duration> {
        let seconds = self.parse(key, 60u64, "a whole number", errors);
        (seconds > 0).then(|| Duration::from_secs(seconds))
    }

    /// `new`, or MM2's name for it before 3.0 (`*.blacklist`) when only that is set.
    fn key_or_old_name<'k>(&self, new: &'k str, old: &'k str) -> &'k str {
        if self.get(new).is_none() && self.get(old).is_some() {
            old
        } else {
            new
        }
    }

    fn config_filter(&self, errors: &mut Vec<ConfigError>) -> ConfigFilter {
        let exclude_key =
            self.key_or_old_name("config.properties.exclude", "config.properties.blacklist");
        ConfigFilter {
            exclude: self.patterns(exclude_key, DEFAULT_CONFIG_EXCLUDE, errors),
            // `use.defaults.from` is `target` unless it says `source`.
            defaults_from_source: !self.either("use.defaults.from", "target", "source", errors),
        }
    }

    /// MM2 reads `exactly.once.source.support` per target cluster (`<target>.`, a worker key);
    /// the flow's own and a top-level one count too (MM2 would ignore those silently).
    fn exactly_once(
        &self,
        target: &str,
        clients: &FlowClients,
        errors: &mut Vec<ConfigError>,
    ) -> Option<ExactlyOnceConfig> {
        const KEY: &str = "exactly.once.source.support";
        let found = [
            format!("{}{KEY}", self.prefix),
            format!("{target}.{KEY}"),
            KEY.to_string(),
        ]
        .into_iter()
        .find_map(|key| self.raw.get(&key).map(|e| (key, e.value.clone())));
        let enabled = match &found {
            None => false,
            Some((key, value)) => match value.trim() {
                "enabled" => true,
                // `preparing` readies Connect workers for a rolling switch; nothing to ready here.
                "disabled" | "preparing" => false,
                other => {
                    errors.push(self.raw.error(
                        key,
                        format!("`{other}` is not one of enabled, preparing, disabled"),
                    ));
                    false
                }
            },
        };
        let support = self.get("exactly.once.support");
        if let Some((key, value)) = &support {
            match value.trim() {
                "requested" => {}
                "required" if !enabled => errors.push(self.raw.error(
                    key,
                    format!(
                        "requires `{target}.{KEY} = enabled` (as Connect refuses a connector \
                         requiring exactly once on a worker without it)"
                    ),
                )),
                "required" => {
                    let committed = clients
                        .source
                        .consumer
                        .get("isolation.level")
                        .is_some_and(|l| l.trim() == "read_committed");
                    if !committed {
                        errors.push(self.raw.error(
                            key,
                            format!(
                                "exactly once can only be guaranteed when the source consumer \
                                 reads committed records: set `{}.consumer.isolation.level = \
                                 read_committed` (otherwise records of aborted and open \
                                 transactions on the source are copied, as MM2 says)",
                                clients.source.alias
                            ),
                        ));
                    }
                }
                other => errors.push(self.raw.error(
                    key,
                    format!("`{other}` is neither `requested` nor `required`"),
                )),
            }
        }
        if !enabled {
            return None;
        }
        let interval = self.positive(
            "transaction.boundary.interval.ms",
            DEFAULT_COMMIT_INTERVAL_MS,
            errors,
        );
        // The coordinator aborts a transaction open longer than this (librdkafka's default).
        let timeout = clients
            .target
            .producer
            .get("transaction.timeout.ms")
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(60_000);
        if interval >= timeout {
            if let Some((key, _)) = self.get("transaction.boundary.interval.ms") {
                errors.push(self.raw.error(
                    &key,
                    format!(
                        "must be below the target producer's `transaction.timeout.ms` \
                         ({timeout}): the target would abort every transaction before its commit"
                    ),
                ));
            }
        }
        Some(ExactlyOnceConfig {
            commit_interval: Duration::from_millis(interval),
        })
    }

    fn progress(
        &self,
        source: &str,
        target: &str,
        errors: &mut Vec<ConfigError>,
    ) -> ProgressConfig {
        ProgressConfig {
            interval: Duration::from_millis(self.positive(
                "offset.flush.interval.ms",
                1000u64,
                errors,
            )),
            // As MM2's worker config: the top-level key wins over the target cluster's.
            topic: self
                .raw
                .get("offset.storage.topic")
                .or_else(|| self.raw.get(&format!("{target}.offset.storage.topic")))
                .map(|e| e.value.clone())
                .unwrap_or_else(|| format!("mm2-offsets.{source}.internal")),
            connector: super::DEDICATED_MODE_CONNECTOR.to_string(),
            partitions: self.positive("offset.storage.partitions", 25i32, errors),
            replication_factor: self.replication_factor(
                "offset.storage.replication.factor",
                3i32,
                errors,
            ),
        }
    }

    fn offset_syncs(
        &self,
        source: &str,
        target: &str,
        separator: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<OffsetSyncsConfig> {
        let enabled = self.bool("emit.offset-syncs.enabled", true, errors);
        let on_source = self.either("offset-syncs.topic.location", "source", "target", errors);
        let alias = if on_source { target } else { source };
        let syncs = OffsetSyncsConfig {
            on_source,
            topic: format!("mm2-offset-syncs{separator}{alias}{separator}internal"),
            lag_max: self.parse("offset.lag.max", 100i64, "a whole number", errors),
            replication_factor: self.replication_factor(
                "offset-syncs.topic.replication.factor",
                3i32,
                errors,
            ),
        };
        enabled.then_some(syncs)
    }

    fn errors(&self, errors: &mut Vec<ConfigError>) -> ErrorsConfig {
        let (tolerance_key, tolerance) = self.string("errors.tolerance", "none");
        let dead_letter = self
            .get("errors.deadletterqueue.topic.name")
            .filter(|(_, topic)| !topic.trim().is_empty());
        let replication_factor = self.replication_factor(
            "errors.deadletterqueue.topic.replication.factor",
            3i32,
            errors,
        );
        match (tolerance.trim(), dead_letter) {
            ("none", None) => ErrorsConfig::StopPartition,
            ("none", Some((key, _))) => {
                errors.push(
                    self.raw.error(
                        &key,
                        "a dead-letter topic is only written with `errors.tolerance = all`; set \
                     that too, or remove this key"
                            .to_string(),
                    ),
                );
                ErrorsConfig::StopPartition
            }
            ("all", None) => ErrorsConfig::Skip,
            ("all", Some((_, topic))) => ErrorsConfig::DeadLetter {
                topic: topic.trim().to_string(),
                replication_factor,
            },
            (other, _) => {
                errors.push(
                    self.raw
                        .error(&tolerance_key, format!("`{other}` is not `none` or `all`")),
                );
                ErrorsConfig::StopPartition
            }
        }
    }

    fn heartbeats(&self, errors: &mut Vec<ConfigError>) -> Option<HeartbeatsConfig> {
        let enabled = self.bool("emit.heartbeats.enabled", true, errors);
        let interval = self.parse(
            "emit.heartbeats.interval.seconds",
            1u64,
            "a whole number",
            errors,
        );
        let replication_factor =
            self.replication_factor("heartbeats.topic.replication.factor", 3i32, errors);
        (enabled && interval > 0).then(|| HeartbeatsConfig {
            interval: Duration::from_secs(interval),
            replication_factor,
        })
    }

    fn groups(&self, source: &str, separator: &str, errors: &mut Vec<ConfigError>) -> GroupsConfig {
        let filter = TopicFilter {
            include: self.patterns("groups", ".*", errors),
            exclude: self.patterns(
                self.key_or_old_name("groups.exclude", "groups.blacklist"),
                "console-consumer-.*, connect-.*, __.*",
                errors,
            ),
        };
        let checkpoints = self.bool("emit.checkpoints.enabled", true, errors);
        let checkpoint_interval = self.seconds_or_off("emit.checkpoints.interval.seconds", errors);
        let group_sync = self.bool("sync.group.offsets.enabled", false, errors);
        let sync_interval = self.seconds_or_off("sync.group.offsets.interval.seconds", errors);
        GroupsConfig {
            filter,
            checkpoint_interval: checkpoint_interval.filter(|_| checkpoints),
            sync_interval: sync_interval.filter(|_| group_sync),
            checkpoints_topic: format!("{source}{separator}checkpoints{separator}internal"),
            checkpoints_replication_factor: self.replication_factor(
                "checkpoints.topic.replication.factor",
                3i32,
                errors,
            ),
        }
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::describe;
    use crate::policy::PolicyKind;
    use std::path::Path;

    fn resolve(text: &str) -> Result<Config, ConfigErrors> {
        let raw = RawProperties::parse(Path::new("mm2.properties"), text.as_bytes()).unwrap();
        Config::resolve(&raw)
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        resolve(text).unwrap_err().0
    }

    const BROADCAST: &str = "\
clusters = europe, northamerica, southamerica
europe.bootstrap.servers = 127.0.0.1:1
northamerica.bootstrap.servers = 127.0.0.1:2
southamerica.bootstrap.servers = 127.0.0.1:3
europe->northamerica.enabled = true
europe->southamerica.enabled = true
europe->northamerica.topics = LH.*
replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy
replication.factor = 1
";

    #[test]
    fn broadcast_file_resolves_with_mm2_defaults() {
        let config = resolve(BROADCAST).unwrap();
        assert_eq!(config.flows.len(), 2);
        let na = &config.flows[0];
        assert_eq!(na.name(), "europe->northamerica");
        assert!(na.topics.accepts("LH.ORDERS") && !na.topics.accepts("other"));
        assert_eq!(na.policy.kind, PolicyKind::Identity);
        assert_eq!(na.replication_factor, 1);
        assert_eq!(na.refresh_topics_interval, Some(Duration::from_secs(600)));
        assert_eq!(na.progress_topic(), "mm2-offsets.europe.internal");
        let text = format!("{BROADCAST}replication.policy.separator = _\n");
        let underscore = resolve(&text).unwrap();
        assert_eq!(
            underscore.flows[0].progress_topic(),
            "mm2-offsets.europe.internal"
        );
        let sa = &config.flows[1];
        assert!(sa.topics.accepts("other"), "topics defaults to .*");
        assert!(!sa.topics.accepts("x.internal"));
    }

    #[test]
    fn mm2s_old_blacklist_names_are_honoured_when_the_new_ones_are_absent() {
        let text = format!("{BROADCAST}topics.blacklist = secret.*\ngroups.blacklist = batch-.*\n");
        let config = resolve(&text).unwrap();
        let sa = &config.flows[1];
        assert!(!sa.topics.accepts("secret.payroll") && sa.topics.accepts("orders"));
        assert!(!sa.groups.filter.accepts("batch-7") && sa.groups.filter.accepts("shop"));
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let both = format!("{text}topics.exclude = other\n");
        let config = resolve(&both).unwrap();
        assert!(
            config.flows[1].topics.accepts("secret.payroll"),
            "the new name wins"
        );
    }

    #[test]
    fn flow_keys_override_top_level_keys() {
        let text = format!(
            "{BROADCAST}europe->southamerica.replication.factor = 3\nrefresh.topics.enabled = false\n"
        );
        let config = resolve(&text).unwrap();
        assert_eq!(config.flows[0].replication_factor, 1);
        assert_eq!(config.flows[1].replication_factor, 3);
        assert_eq!(config.flows[1].refresh_topics_interval, None);
    }

    #[test]
    fn client_settings_follow_mm2_precedence() {
        let text = format!(
            "{BROADCAST}security.protocol = SASL_PLAINTEXT\nsasl.mechanism = SCRAM-SHA-512\n\
             europe.security.protocol = PLAINTEXT\neurope.producer.linger.ms = 7\n\
             northamerica.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule required username=\"u\" password=\"p\";\n"
        );
        let config = resolve(&text).unwrap();
        let europe = config.cluster("europe").unwrap();
        assert_eq!(europe.producer.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(europe.producer.get("linger.ms"), Some("7"));
        assert_eq!(europe.consumer.get("linger.ms"), None);
        let na = config.cluster("northamerica").unwrap();
        assert_eq!(na.admin.get("security.protocol"), Some("SASL_PLAINTEXT"));
        assert_eq!(na.admin.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(na.consumer.get("sasl.password"), Some("p"));
        assert!(!describe(&config).contains("password=p"));
    }

    #[test]
    fn a_flows_client_keys_follow_mm2s_connector_precedence() {
        let text = format!(
            "{BROADCAST}europe->northamerica.consumer.fetch.min.bytes = 7\n\
             europe.consumer.fetch.min.bytes = 3\n\
             europe->northamerica.consumer.fetch.wait.max.ms = 70\n\
             europe->northamerica.source.consumer.check.crcs = true\n\
             northamerica.producer.linger.ms = 10\n\
             europe->northamerica.producer.linger.ms = 50\n\
             europe->northamerica.admin.request.timeout.ms = 4000\n\
             northamerica.admin.request.timeout.ms = 5000\n\
             europe->northamerica.target.admin.retries = 4\n\
             europe->northamerica.source.cluster.security.protocol = SSL\n"
        );
        let config = resolve(&text).unwrap();
        let flow = &config.flows[0];
        let (source, target) = (&flow.clients.source, &flow.clients.target);
        // MM2's `source.consumer.` (the cluster's keys) wins over the flow's `consumer.`.
        assert_eq!(source.consumer.get("fetch.min.bytes"), Some("3"));
        assert_eq!(source.consumer.get("fetch.wait.max.ms"), Some("70"));
        assert_eq!(source.consumer.get("check.crcs"), Some("true"));
        assert_eq!(target.consumer.get("fetch.min.bytes"), Some("7"));
        assert_eq!(target.consumer.get("check.crcs"), None, "source side only");
        // The records' producer is the Connect worker's: the flow's keys win.
        assert_eq!(target.producer.get("linger.ms"), Some("50"));
        assert_eq!(source.producer.get("linger.ms"), Some("50"));
        assert_eq!(target.admin.get("request.timeout.ms"), Some("5000"));
        assert_eq!(source.admin.get("request.timeout.ms"), Some("4000"));
        assert_eq!(target.admin.get("retries"), Some("4"));
        assert_eq!(source.consumer.get("security.protocol"), Some("SSL"));
        assert_eq!(target.consumer.get("security.protocol"), None);
        // The other flow and the clusters themselves are untouched.
        let other = &config.flows[1].clients.source;
        assert_eq!(other.consumer.get("fetch.wait.max.ms"), None);
        assert_eq!(
            config
                .cluster("europe")
                .unwrap()
                .admin
                .get("request.timeout.ms"),
            None
        );
    }

    #[test]
    fn flows_reading_one_source_must_agree_on_its_consumer_unless_run_apart() {
        let text = format!("{BROADCAST}europe->southamerica.consumer.fetch.min.bytes = 7\n");
        let config = resolve(&text).unwrap();
        let refused = config.check_shared_readers().unwrap_err().0;
        assert_eq!(refused.len(), 1);
        let message = refused[0].to_string();
        assert!(
            message.contains("mm2.properties:")
                && message.contains("`europe->southamerica.consumer.fetch.min.bytes`")
                && message.contains("read europe once"),
            "{message}"
        );
        let mut apart = config.clone();
        apart.retain_targets(&["southamerica".into()]).unwrap();
        assert!(apart.check_shared_readers().is_ok());
        let same = format!(
            "{BROADCAST}europe->southamerica.consumer.fetch.min.bytes = 7\n\
             europe->northamerica.consumer.fetch.min.bytes = 7\n"
        );
        assert!(resolve(&same).unwrap().check_shared_readers().is_ok());
    }

    #[test]
    fn provider_references_resolve_and_are_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("mm2-secrets.properties");
        std::fs::write(&secrets, "password = p4ssw0rd\nuser = mm2user\n").unwrap();
        let s = secrets.display();
        let text = format!(
            "{BROADCAST}config.providers = file\n\
             config.providers.file.class = org.apache.kafka.common.config.provider.FileConfigProvider\n\
             northamerica.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"${{file:{s}:user}}\" password=\"${{file:{s}:password}}\";\n"
        );
        let config = resolve(&text).unwrap();
        let na = config.cluster("northamerica").unwrap();
        assert_eq!(na.producer.get("sasl.username"), Some("mm2user"));
        assert_eq!(na.producer.get("sasl.password"), Some("p4ssw0rd"));
        let shown = describe(&config);
        assert!(
            !shown.contains("p4ssw0rd") && !shown.contains("mm2user"),
            "{shown}"
        );
    }

    #[test]
    fn a_refused_setting_never_echoes_a_secret_or_a_resolved_value() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("mm2-secrets.properties");
        std::fs::write(&secrets, "info = user:s3cr3t-value\n").unwrap();
        let s = secrets.display();
        let text = format!(
            "{BROADCAST}config.providers = file\n\
             config.providers.file.class = org.apache.kafka.common.config.provider.FileConfigProvider\n\
             europe.consumer.basic.auth.user.info = ${{file:{s}:info}}\n\
             europe.consumer.schema.registry.basic.auth.user.info = plain:l1teral-secret\n"
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 2, "{errs:?}");
        let shown = format!("{errs:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("l1teral"),
            "{shown}"
        );
        assert!(shown.contains("[redacted]"), "{shown}");
        assert_eq!(errs[0].key, "europe.consumer.basic.auth.user.info");
    }

    #[test]
    fn a_broken_reference_names_its_key_and_line() {
        let text =
            format!("{BROADCAST}europe.sasl.password = ${{file:/nonexistent.properties:pw}}\n");
        let err = RawProperties::parse(Path::new("mm2.properties"), text.as_bytes()).unwrap_err();
        assert_eq!(err.key, "europe.sasl.password");
        assert_eq!(err.line, Some(10));
        assert!(err.message.contains("/nonexistent.properties"));
    }

    #[test]
    fn missing_clusters_is_named() {
        let errs = errors("europe.bootstrap.servers = h:1\n");
        assert_eq!(errs[0].key, "clusters");
    }

    #[test]
    fn unknown_alias_in_a_flow_is_named_with_its_line() {
        let errs = errors(&format!("{BROADCAST}europe->asia.enabled = true\n"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "europe->asia.enabled");
        assert_eq!(errs[0].line, Some(10));
        assert!(errs[0]
            .to_string()
            .starts_with("mm2.properties:10: `europe->asia.enabled`"));
    }

    #[test]
    fn invalid_regex_is_named() {
        let errs = errors(&format!("{BROADCAST}europe->northamerica.topics = LH.(*\n"));
        assert_eq!(errs[0].key, "europe->northamerica.topics");
    }

    #[test]
    fn cluster_without_bootstrap_servers_is_named() {
        let text = BROADCAST.replace("southamerica.bootstrap.servers = 127.0.0.1:3\n", "");
        let errs = errors(&text);
        assert_eq!(errs[0].key, "southamerica.bootstrap.servers");
    }

    #[test]
    fn unknown_policy_is_named() {
        let text = BROADCAST.replace("IdentityReplicationPolicy", "FancyPolicy");
        let errs = errors(&text);
        assert_eq!(errs[0].key, "replication.policy.class");
        assert!(errs[0].message.contains("IdentityReplicationPolicy"));
    }

    #[test]
    fn errors_tolerance_follows_kafka_connect() {
        let flow = |extra: &str| resolve(&format!("{BROADCAST}{extra}")).unwrap().flows[0].clone();
        assert_eq!(flow("").errors, ErrorsConfig::StopPartition);
        assert_eq!(flow("errors.tolerance = all\n").errors, ErrorsConfig::Skip);
        assert_eq!(
            flow("errors.tolerance = all\nerrors.deadletterqueue.topic.name = dlq\n").errors,
            ErrorsConfig::DeadLetter {
                topic: "dlq".into(),
                replication_factor: 3
            }
        );
        let errs = errors(&format!("{BROADCAST}errors.tolerance = some\n"));
        assert_eq!(errs[0].key, "errors.tolerance");
        let errs = errors(&format!(
            "{BROADCAST}europe->northamerica.errors.deadletterqueue.topic.name = dlq\n"
        ));
        assert_eq!(
            errs[0].key,
            "europe->northamerica.errors.deadletterqueue.topic.name"
        );
        assert!(errs[0].message.contains("errors.tolerance = all"));
    }

    #[test]
    fn a_replication_factor_of_minus_one_means_the_brokers_default() {
        let text = format!(
            "{BROADCAST}replication.factor = -1\noffset.storage.replication.factor = -1\n\
             heartbeats.topic.replication.factor = -1\ncheckpoints.topic.replication.factor = -1\n\
             offset-syncs.topic.replication.factor = -1\n"
        );
        let config = resolve(&text).unwrap();
        assert_eq!(config.flows[0].replication_factor, -1);
        assert_eq!(config.flows[0].progress.replication_factor, -1);
        for bad in ["-2", "0"] {
            let errs = errors(&format!("{BROADCAST}replication.factor = {bad}\n"));
            assert!(
                errs[0].message.contains("-1 for the broker's default"),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn auto_offset_reset_latest_on_the_source_consumer_starts_new_partitions_at_their_end() {
        let config = resolve(BROADCAST).unwrap();
        assert!(
            !config.flows[0].start_at_end,
            "earliest, as MM2, unless said"
        );
        let text = format!("{BROADCAST}europe.consumer.auto.offset.reset = latest\n");
        let config = resolve(&text).unwrap();
        assert!(config.flows.iter().all(|f| f.start_at_end));
        let text = format!("{BROADCAST}northamerica.consumer.auto.offset.reset = latest\n");
        assert!(
            !resolve(&text).unwrap().flows[0].start_at_end,
            "the source's, not the target's"
        );
    }

    #[test]
    fn internal_topics_use_the_separator_unless_told_not_to_as_in_mm2() {
        let text = format!("{BROADCAST}replication.policy.separator = _\n");
        let config = resolve(&text).unwrap();
        let na = &config.flows[0];
        assert_eq!(na.groups.checkpoints_topic, "europe_checkpoints_internal");
        let syncs = na.offset_syncs.as_ref().unwrap();
        assert_eq!(syncs.topic, "mm2-offset-syncs_northamerica_internal");
        assert!(na.policy.is_internal_topic("europe_checkpoints_internal"));
        let text = format!("{text}replication.policy.internal.topic.separator.enabled = false\n");
        let config = resolve(&text).unwrap();
        let na = &config.flows[0];
        assert_eq!(na.groups.checkpoints_topic, "europe.checkpoints.internal");
        let syncs = na.offset_syncs.as_ref().unwrap();
        assert_eq!(syncs.topic, "mm2-offset-syncs.northamerica.internal");
    }

    #[test]
    fn counts_must_be_positive() {
        for key in [
            "replication.factor",
            "heartbeats.topic.replication.factor",
            "offset.flush.interval.ms",
        ] {
            let errs = errors(&format!("{BROADCAST}europe->northamerica.{key} = 0\n"));
            assert_eq!(
                errs[0].key,
                format!("europe->northamerica.{key}"),
                "{errs:?}"
            );
            assert!(errs[0].message.contains("positive"));
        }
    }

    #[test]
    fn unknown_librdkafka_setting_is_named() {
        let errs = errors(&format!("{BROADCAST}europe.consumer.no.such.setting = 1\n"));
        assert_eq!(errs[0].key, "europe.consumer.no.such.setting");
    }

    #[test]
    fn java_only_setting_is_rejected_with_the_fix() {
        let errs = errors(&format!(
            "{BROADCAST}europe.ssl.truststore.location = /ts.jks\n"
        ));
        assert!(errs
            .iter()
            .all(|e| e.key == "europe.ssl.truststore.location"));
        assert!(errs[0].message.contains("ssl.ca.location"));
    }

    #[test]
    fn clusters_option_keeps_flows_to_that_target() {
        let mut config = resolve(BROADCAST).unwrap();
        config.retain_targets(&["southamerica".into()]).unwrap();
        assert_eq!(config.flows.len(), 1);
        assert_eq!(config.flows[0].target, "southamerica");
        assert!(config.retain_targets(&["asia".into()]).is_err());
    }

    #[test]
    fn a_group_id_without_the_group_is_said_and_with_it_used() {
        let alone = resolve(&format!("{BROADCAST}instances.group.id = regional\n")).unwrap();
        let said: Vec<String> = alone.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), 2, "one per flow: {said:?}");
        assert!(said[0].contains("`instances.group.id`: has no effect for europe->"));
        assert!(alone.flows.iter().all(|f| f.instances_group.is_none()));
        let grouped = resolve(&format!(
            "{BROADCAST}instances.group.id = regional\ninstances.group.enabled = true\n"
        ))
        .unwrap();
        assert!(grouped.warnings.is_empty(), "{:?}", grouped.warnings);
        assert!(grouped
            .flows
            .iter()
            .all(|f| f.instances_group == Some(Some("regional".to_string()))));
    }

    #[test]
    fn what_turning_offset_syncs_off_turns_off_too_is_said() {
        let said = |extra: &str| -> Vec<String> {
            let config = resolve(&format!("{BROADCAST}{extra}")).unwrap();
            config.warnings.iter().map(ToString::to_string).collect()
        };
        let warnings =
            said("emit.offset-syncs.enabled = false\noffset-syncs.topic.replication.factor = 1\n");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("`offset-syncs.topic.replication.factor`: has no effect"));
        assert!(warnings.iter().any(|w| w.contains(
            "`emit.offset-syncs.enabled`: no checkpoints are written for europe->northamerica"
        )));
        let group_sync = said(
            "europe->southamerica.emit.offset-syncs.enabled = false\n\
             sync.group.offsets.enabled = true\n",
        );
        assert_eq!(group_sync.len(), 1, "{group_sync:?}");
        assert!(group_sync[0].contains(
            "`sync.group.offsets.enabled`: group offsets are not synced for europe->southamerica"
        ));
        assert!(
            !group_sync[0].contains("  "),
            "one sentence: {group_sync:?}"
        );
        let quiet = said("emit.offset-syncs.enabled = false\nemit.checkpoints.enabled = false\n");
        assert!(quiet.is_empty(), "{quiet:?}");
    }

    #[test]
    fn heartbeats_go_to_every_pair_without_a_flow_unless_turned_off_as_in_mm2() {
        let pairs = |config: &Config| -> Vec<String> {
            config.heartbeat_pairs.iter().map(|p| p.name()).collect()
        };
        let config = resolve(&format!(
            "{BROADCAST}northamerica->europe.enabled = false\n\
             southamerica->northamerica.emit.heartbeats.enabled = false\n\
             northamerica->southamerica.emit.heartbeats.interval.seconds = 7\n"
        ))
        .unwrap();
        // europe->northamerica and europe->southamerica are flows: their copiers write them.
        assert_eq!(
            pairs(&config),
            [
                "northamerica->europe",
                "northamerica->southamerica",
                "southamerica->europe"
            ]
        );
        assert_eq!(
            config.heartbeat_pairs[1].heartbeats.interval,
            Duration::from_secs(7)
        );
        let off = resolve(&format!(
            "{BROADCAST}emit.heartbeats.enabled = false\n\
             southamerica->europe.emit.heartbeats.enabled = true\n"
        ))
        .unwrap();
        assert_eq!(pairs(&off), ["southamerica->europe"]);
        // `--clusters europe`: a process that only writes heartbeats into europe.
        let mut into_europe = config.clone();
        into_europe.retain_targets(&["europe".into()]).unwrap();
        assert!(into_europe.flows.is_empty());
        assert_eq!(
            pairs(&into_europe),
            ["northamerica->europe", "southamerica->europe"]
        );
        let mut nothing = off.clone();
        assert!(nothing.retain_targets(&["northamerica".into()]).is_ok());
        let mut none_at_all =
            resolve(&format!("{BROADCAST}emit.heartbeats.enabled = false\n")).unwrap();
        assert!(none_at_all.retain_targets(&["europe".into()]).is_err());
    }

    #[test]
    fn flow_settings_ending_in_enabled_are_not_flows() {
        let text = format!(
            "{BROADCAST}europe->northamerica.sync.topic.acls.enabled = false\n\
             europe->northamerica.refresh.topics.enabled = false\n"
        );
        let config = resolve(&text).unwrap();
        assert_eq!(config.flows.len(), 2);
        assert_eq!(config.flows[0].acl_sync_interval, None);
        assert_eq!(config.flows[0].refresh_topics_interval, None);
        assert!(config.flows[1].acl_sync_interval.is_some());
    }

    #[test]
    fn exactly_once_is_read_per_target_cluster_as_mm2_does() {
        let text = format!(
            "{BROADCAST}northamerica.exactly.once.source.support = enabled\n\
             transaction.boundary.interval.ms = 250\n"
        );
        let config = resolve(&text).unwrap();
        let by_target = |t: &str| config.flows.iter().find(|f| f.target == t).unwrap();
        assert_eq!(
            by_target("northamerica").exactly_once,
            Some(ExactlyOnceConfig {
                commit_interval: Duration::from_millis(250)
            })
        );
        assert_eq!(by_target("southamerica").exactly_once, None);
        assert_eq!(
            by_target("northamerica").transactional_id(3),
            "mirrorcast.europe->northamerica.3"
        );
        let everywhere = resolve(&format!(
            "{BROADCAST}exactly.once.source.support = enabled\n"
        ));
        let everywhere = everywhere.unwrap();
        assert!(everywhere.flows.iter().all(|f| f.exactly_once
            == Some(ExactlyOnceConfig {
                commit_interval: Duration::from_millis(DEFAULT_COMMIT_INTERVAL_MS)
            })));
        let off = format!(
            "{BROADCAST}exactly.once.source.support = enabled\n\
             southamerica.exactly.once.source.support = preparing\n"
        );
        let off = resolve(&off).unwrap();
        assert!(off.flows.iter().any(|f| f.exactly_once.is_none()));
    }

    #[test]
    fn exactly_once_mistakes_name_their_key() {
        let bad_value = errors(&format!(
            "{BROADCAST}northamerica.exactly.once.source.support = yes\n"
        ));
        assert!(bad_value[0]
            .to_string()
            .contains("northamerica.exactly.once.source.support"));
        let required_off = errors(&format!("{BROADCAST}exactly.once.support = required\n"));
        assert!(required_off[0]
            .to_string()
            .contains("exactly.once.source.support = enabled"));
        let required_uncommitted = errors(&format!(
            "{BROADCAST}exactly.once.source.support = enabled\n\
             exactly.once.support = required\n"
        ));
        assert!(required_uncommitted[0]
            .to_string()
            .contains("europe.consumer.isolation.level = read_committed"));
        resolve(&format!(
            "{BROADCAST}exactly.once.source.support = enabled\n\
             exactly.once.support = required\n\
             europe.consumer.isolation.level = read_committed\n"
        ))
        .unwrap();
        resolve(&format!(
            "{BROADCAST}exactly.once.source.support = enabled\n\
             instances.group.enabled = true\n"
        ))
        .unwrap();
        let too_long = errors(&format!(
            "{BROADCAST}exactly.once.source.support = enabled\n\
             transaction.boundary.interval.ms = 60000\n"
        ));
        assert!(too_long[0].to_string().contains("transaction.timeout.ms"));
    }

    #[test]
    fn disabled_flows_are_not_run() {
        let text = BROADCAST.replace(
            "europe->southamerica.enabled = true",
            "europe->southamerica.enabled = false",
        );
        assert_eq!(resolve(&text).unwrap().flows.len(), 1);
    }
}
