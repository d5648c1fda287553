//! Configuration: an MM2 dedicated-mode properties file resolved into clusters and flows.
//!
//! Two stages, as in MM2: [`properties`] reads keys with their line numbers; [`Config::resolve`]
//! applies MM2's precedence (top level < `<alias>.` < `<alias>.<client>.`, and `<src>-><tgt>.`
//! over everything for that flow) and defaults, and checks everything that can be checked
//! without a network. Every error names the file, the line when there is one, and the key.

pub mod client;
pub mod properties;
pub mod providers;
pub mod resource;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::filter::{PatternList, TopicFilter};
use crate::policy::ReplicationPolicy;
use crate::topics::config_sync::ConfigFilter;
pub use client::{ClientSettings, Setting};
pub use properties::RawProperties;

const DEFAULT_TOPICS: &str = ".*";
const DEFAULT_TOPICS_EXCLUDE: &str = r".*[\-\.]internal, .*\.replica, __.*";
const DEFAULT_POLICY: &str = "org.apache.kafka.connect.mirror.DefaultReplicationPolicy";
const DEFAULT_CONFIG_EXCLUDE: &str = r"follower\.replication\.throttled\.replicas, leader\.replication\.throttled\.replicas, message\.timestamp\.difference\.max\.ms, message\.timestamp\.type, unclean\.leader\.election\.enable, min\.insync\.replicas";

/// A configuration mistake, located in the user's file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": `{}`: {}", self.key, self.message)
        }
    }
}

/// Every mistake found in one file, so the user can fix them in one go.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Which of a cluster's clients a setting is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
    Consumer,
    Producer,
    Admin,
}

impl ClientRole {
    const ALL: [ClientRole; 3] = [
        ClientRole::Consumer,
        ClientRole::Producer,
        ClientRole::Admin,
    ];

    fn prefix(self) -> &'static str {
        match self {
            ClientRole::Consumer => "consumer.",
            ClientRole::Producer => "producer.",
            ClientRole::Admin => "admin.",
        }
    }
}

/// One Kafka cluster of the file.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub alias: String,
    pub consumer: ClientSettings,
    pub producer: ClientSettings,
    pub admin: ClientSettings,
}

impl ClusterConfig {
    pub fn bootstrap_servers(&self) -> &str {
        self.admin.get("bootstrap.servers").unwrap_or_default()
    }

    pub fn client(&self, role: ClientRole) -> &ClientSettings {
        match role {
            ClientRole::Consumer => &self.consumer,
            ClientRole::Producer => &self.producer,
            ClientRole::Admin => &self.admin,
        }
    }
}

/// One enabled `source->target` replication.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    pub source: String,
    pub target: String,
    pub topics: TopicFilter,
    pub policy: ReplicationPolicy,
    /// Replication factor of the remote topics this flow creates.
    pub replication_factor: i32,
    /// How often new source topics are looked for; `None` when `refresh.topics.enabled=false`.
    pub refresh_topics_interval: Option<Duration>,
    /// How often topic configs are synced; `None` when `sync.topic.configs.enabled=false`.
    pub config_sync_interval: Option<Duration>,
    /// Which topic configs follow the source (`config.properties.exclude`, `use.defaults.from`).
    pub config_filter: ConfigFilter,
    /// How often topic ACLs are synced; `None` when `sync.topic.acls.enabled=false`.
    pub acl_sync_interval: Option<Duration>,
    /// `sync.topic.deletions.enabled` (beyond MM2): delete a remote topic this flow created once
    /// its source topic has been gone for two refreshes.
    pub sync_deletions: bool,
    /// How often acknowledged progress is written to `mm2-offsets.<source>.internal`.
    pub progress_interval: Duration,
    /// The Connect offsets topic on the target (`offset.storage.topic`).
    pub progress_topic: String,
    /// The Connect connector name progress is stored under: `MirrorSourceConnector` in MM2's
    /// dedicated mode, `<source>-><target>.MirrorSourceConnector` under Strimzi.
    pub progress_connector: String,
    /// Partitions and replication factor of `mm2-offsets.<source>.internal` when we create it.
    pub progress_topic_partitions: i32,
    pub progress_topic_replication_factor: i32,
    /// Offset syncs (`emit.offset-syncs.enabled`), or `None`.
    pub offset_syncs: Option<OffsetSyncsConfig>,
    /// How often a heartbeat is written to the target's `heartbeats` topic, or `None`.
    pub heartbeat_interval: Option<Duration>,
    pub heartbeats_replication_factor: i32,
    /// Consumer group checkpoints and group offset sync.
    pub groups: GroupsConfig,
}

/// MM2's checkpoint connector settings of a flow.
#[derive(Debug, Clone)]
pub struct GroupsConfig {
    /// `groups` minus `groups.exclude`.
    pub filter: TopicFilter,
    /// `emit.checkpoints.interval.seconds`, or `None` when checkpoints are off.
    pub checkpoint_interval: Option<Duration>,
    /// `sync.group.offsets.interval.seconds`, or `None` when group offset sync is off.
    pub sync_interval: Option<Duration>,
    /// `<source>.checkpoints.internal` on the target.
    pub checkpoints_topic: String,
    pub checkpoints_replication_factor: i32,
}

/// Where and how often offset syncs are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetSyncsConfig {
    /// `offset-syncs.topic.location = source` (MM2's default) or `target`.
    pub on_source: bool,
    /// `mm2-offset-syncs.<alias>.internal` (the target alias on the source, the source alias on
    /// the target).
    pub topic: String,
    /// `offset.lag.max`
    pub lag_max: i64,
    pub replication_factor: i32,
}

impl FlowConfig {
    pub fn name(&self) -> String {
        format!("{}->{}", self.source, self.target)
    }

    /// Where the copy's progress lives on the target: the Connect offsets topic of MM2
    /// (dedicated mode: `mm2-offsets.<source>.internal`, dots whatever the separator).
    pub fn progress_topic(&self) -> String {
        self.progress_topic.clone()
    }
}

/// A resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub clusters: Vec<ClusterConfig>,
    pub flows: Vec<FlowConfig>,
}

impl Config {
    /// Reads and resolves a properties file, or a `KafkaMirrorMaker2` resource (`.yaml`,
    /// `.yml`) with its secrets under [`resource::DEFAULT_SECRETS_DIR`].
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::load_with(path, Path::new(resource::DEFAULT_SECRETS_DIR), false).map(|(c, _)| c)
    }

    /// As [`Config::load`], with the secrets of a resource under `secrets_dir`, and without any
    /// TLS or SASL setting if `strip_security`. Also returns the fields of a resource that were
    /// ignored.
    pub fn load_with(
        path: &Path,
        secrets_dir: &Path,
        strip_security: bool,
    ) -> Result<(Self, Vec<String>), ConfigErrors> {
        if !resource::is_resource_file(path) {
            let raw = RawProperties::read(path).map_err(|e| ConfigErrors(vec![e]))?;
            let mut config = Self::resolve(&raw)?;
            if strip_security {
                config.strip_security();
            }
            return Ok((config, Vec::new()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        let translated = resource::translate(path, &text, secrets_dir, strip_security)
            .map_err(|e| ConfigErrors(vec![e]))?;
        let mut config = Self::resolve(&translated.raw)?;
        // Strimzi runs each mirror's source connector under its own name.
        for flow in &mut config.flows {
            flow.progress_connector =
                format!("{}->{}.MirrorSourceConnector", flow.source, flow.target);
        }
        Ok((config, translated.ignored))
    }

    /// Drops every security setting (`security.protocol`, `ssl.*`, `sasl.*`) of every cluster:
    /// for running a production file against local plaintext clusters.
    pub fn strip_security(&mut self) {
        for cluster in &mut self.clusters {
            for settings in [
                &mut cluster.consumer,
                &mut cluster.producer,
                &mut cluster.admin,
            ] {
                settings.retain(|key| !client::is_security_key(key));
            }
        }
    }

    /// Points cluster `alias` at other brokers (`--bootstrap ALIAS=HOST:PORT`).
    pub fn override_bootstrap(&mut self, alias: &str, servers: &str) -> Result<(), ConfigErrors> {
        let Some(cluster) = self.clusters.iter_mut().find(|c| c.alias == alias) else {
            return Err(ConfigErrors(vec![ConfigError {
                file: self.file.clone(),
                line: None,
                key: "--bootstrap".into(),
                message: format!("`{alias}` is not one of the file's clusters"),
            }]));
        };
        for settings in [
            &mut cluster.consumer,
            &mut cluster.producer,
            &mut cluster.admin,
        ] {
            let setting = Setting {
                value: servers.to_string(),
                origin: "--bootstrap".into(),
                line: None,
                reference: None,
            };
            settings.set("bootstrap.servers", setting);
        }
        Ok(())
    }

    pub fn cluster(&self, alias: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.alias == alias)
    }

    /// Keeps only the flows whose target is one of `targets` (`--clusters`).
    pub fn retain_targets(&mut self, targets: &[String]) -> Result<(), ConfigErrors> {
        let unknown: Vec<ConfigError> = targets
            .iter()
            .filter(|t| self.cluster(t).is_none())
            .map(|t| ConfigError {
                file: self.file.clone(),
                line: None,
                key: "--clusters".into(),
                message: format!("`{t}` is not one of the file's `clusters`"),
            })
            .collect();
        if !unknown.is_empty() {
            return Err(ConfigErrors(unknown));
        }
        self.flows.retain(|f| targets.contains(&f.target));
        if self.flows.is_empty() {
            return Err(ConfigErrors(vec![ConfigError {
                file: self.file.clone(),
                line: None,
                key: "--clusters".into(),
                message: format!("no enabled flow has {} as its target", targets.join(" or ")),
            }]));
        }
        Ok(())
    }

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
        if errors.is_empty() && flows.is_empty() {
            errors.push(raw.error(
                "clusters",
                "no flow is enabled: add e.g. `europe->northamerica.enabled = true`",
            ));
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line.unwrap_or(0));
            errors.dedup();
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            file: raw.file.clone(),
            clusters,
            flows,
        })
    }
}

/// Client settings of one cluster, lowest precedence first: top-level connection keys,
/// `<alias>.` connection keys, `<alias>.<client>.` keys.
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
    let cluster_prefix = format!("{alias}.");
    let mut clients = Vec::new();
    for role in ClientRole::ALL {
        // Java names first, keyed by the Java name, remembering which user key set each.
        let mut java: BTreeMap<String, (&properties::Entry, String)> = BTreeMap::new();
        for (key, entry) in raw.iter().filter(|(k, _)| client::is_connection_key(k)) {
            java.insert(key.into(), (entry, key.into()));
        }
        for (key, entry) in raw.with_prefix(&cluster_prefix) {
            if client::is_connection_key(key) {
                java.insert(key.into(), (entry, format!("{cluster_prefix}{key}")));
            }
        }
        let role_prefix = format!("{cluster_prefix}{}", role.prefix());
        for (key, entry) in raw.with_prefix(&role_prefix) {
            java.insert(key.into(), (entry, format!("{role_prefix}{key}")));
        }
        let values: BTreeMap<String, String> = java
            .iter()
            .map(|(k, (entry, _))| (k.clone(), entry.value.clone()))
            .collect();
        let mut settings = ClientSettings::default();
        for (key, (entry, origin)) in &java {
            match client::map_java_setting(key, &entry.value, &values) {
                Ok(client::Mapped::Set(pairs)) => {
                    for (k, v) in pairs {
                        let setting = Setting {
                            value: v,
                            origin: origin.clone(),
                            line: entry.line,
                            reference: entry.reference.clone(),
                        };
                        settings.set(&k, setting);
                    }
                }
                Ok(client::Mapped::Nothing) => {}
                Err(message) => errors.push(ConfigError {
                    file: raw.file.clone(),
                    line: entry.line,
                    key: origin.clone(),
                    message,
                }),
            }
        }
        // librdkafka itself knows which names and values it accepts; ask it now, without
        // connecting, so a typo is reported against the user's line.
        for (key, setting) in settings.iter() {
            let mut probe = rdkafka::ClientConfig::new();
            probe.set(key, &setting.value);
            if let Err(e) = probe.create_native_config() {
                errors.push(ConfigError {
                    file: raw.file.clone(),
                    line: setting.line,
                    key: setting.origin.clone(),
                    message: format!("not accepted by librdkafka as `{key}`: {e}"),
                });
            }
        }
        clients.push(settings);
    }
    let mut clients = clients.into_iter();
    Some(ClusterConfig {
        alias: alias.to_string(),
        consumer: clients.next().unwrap_or_default(),
        producer: clients.next().unwrap_or_default(),
        admin: clients.next().unwrap_or_default(),
    })
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
        exclude: look.patterns("topics.exclude", DEFAULT_TOPICS_EXCLUDE, errors),
    };
    let (_, separator) = look.string("replication.policy.separator", ".");
    let (policy_key, class) = look.string("replication.policy.class", DEFAULT_POLICY);
    let policy = ReplicationPolicy::from_class_name(&class, &separator);
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
    let replication_factor = look.positive("replication.factor", 2i32, errors);
    let refresh_enabled = look.bool("refresh.topics.enabled", true, errors);
    let refresh_secs = look.positive("refresh.topics.interval.seconds", 600u64, errors);
    let progress_ms = look.positive("offset.flush.interval.ms", 1000u64, errors);
    let config_sync_enabled = look.bool("sync.topic.configs.enabled", true, errors);
    let config_sync_secs = look.positive("sync.topic.configs.interval.seconds", 600u64, errors);
    // MM2 before 3.0 called the exclude list a blacklist; honour the old name too.
    let exclude_key = if look.get("config.properties.exclude").is_none()
        && look.get("config.properties.blacklist").is_some()
    {
        "config.properties.blacklist"
    } else {
        "config.properties.exclude"
    };
    let config_exclude = look.patterns(exclude_key, DEFAULT_CONFIG_EXCLUDE, errors);
    let (defaults_key, defaults_from) = look.string("use.defaults.from", "target");
    let defaults_from_source = match defaults_from.trim() {
        "source" => true,
        "target" => false,
        other => {
            errors.push(raw.error(
                &defaults_key,
                format!("`{other}` is neither `source` nor `target`"),
            ));
            false
        }
    };
    let sync_deletions = look.bool("sync.topic.deletions.enabled", false, errors);
    let offset_syncs_enabled = look.bool("emit.offset-syncs.enabled", true, errors);
    let (location_key, location) = look.string("offset-syncs.topic.location", "source");
    let on_source = match location.trim() {
        "source" => true,
        "target" => false,
        other => {
            errors.push(raw.error(
                &location_key,
                format!("`{other}` is neither `source` nor `target`"),
            ));
            true
        }
    };
    let lag_max = look.parse("offset.lag.max", 100i64, "a whole number", errors);
    let offset_syncs_rf = look.positive("offset-syncs.topic.replication.factor", 3i32, errors);
    let groups_filter = TopicFilter {
        include: look.patterns("groups", ".*", errors),
        exclude: look.patterns(
            "groups.exclude",
            "console-consumer-.*, connect-.*, __.*",
            errors,
        ),
    };
    let checkpoints_enabled = look.bool("emit.checkpoints.enabled", true, errors);
    let checkpoint_secs = look.parse(
        "emit.checkpoints.interval.seconds",
        60u64,
        "a whole number",
        errors,
    );
    let group_sync_enabled = look.bool("sync.group.offsets.enabled", false, errors);
    let group_sync_secs = look.parse(
        "sync.group.offsets.interval.seconds",
        60u64,
        "a whole number",
        errors,
    );
    let checkpoints_rf = look.positive("checkpoints.topic.replication.factor", 3i32, errors);
    let heartbeats_enabled = look.bool("emit.heartbeats.enabled", true, errors);
    let heartbeat_secs = look.parse(
        "emit.heartbeats.interval.seconds",
        1u64,
        "a whole number",
        errors,
    );
    let heartbeats_replication_factor =
        look.positive("heartbeats.topic.replication.factor", 3i32, errors);
    let acl_sync_enabled = look.bool("sync.topic.acls.enabled", true, errors);
    let acl_sync_secs = look.positive("sync.topic.acls.interval.seconds", 600u64, errors);
    let progress_topic_partitions = look.positive("offset.storage.partitions", 25i32, errors);
    // As MM2's worker config: the top-level key wins over the target cluster's.
    let progress_topic = raw
        .get("offset.storage.topic")
        .or_else(|| raw.get(&format!("{target}.offset.storage.topic")))
        .map(|e| e.value.clone())
        .unwrap_or_else(|| format!("mm2-offsets.{source}.internal"));
    let progress_topic_replication_factor =
        look.positive("offset.storage.replication.factor", 3i32, errors);
    if errors.len() > before {
        return None;
    }
    Some(FlowConfig {
        source: source.to_string(),
        target: target.to_string(),
        topics,
        policy: policy?,
        replication_factor,
        refresh_topics_interval: refresh_enabled.then(|| Duration::from_secs(refresh_secs)),
        config_sync_interval: config_sync_enabled.then(|| Duration::from_secs(config_sync_secs)),
        config_filter: ConfigFilter {
            exclude: config_exclude,
            defaults_from_source,
        },
        sync_deletions,
        acl_sync_interval: acl_sync_enabled.then(|| Duration::from_secs(acl_sync_secs)),
        progress_interval: Duration::from_millis(progress_ms),
        progress_topic,
        progress_connector: crate::progress::codec::DEDICATED_MODE_CONNECTOR.to_string(),
        progress_topic_partitions,
        progress_topic_replication_factor,
        offset_syncs: offset_syncs_enabled.then(|| OffsetSyncsConfig {
            on_source,
            topic: {
                let alias = if on_source { target } else { source };
                let sep = &separator;
                format!("mm2-offset-syncs{sep}{alias}{sep}internal")
            },
            lag_max,
            replication_factor: offset_syncs_rf,
        }),
        heartbeat_interval: (heartbeats_enabled && heartbeat_secs > 0)
            .then(|| Duration::from_secs(heartbeat_secs)),
        heartbeats_replication_factor,
        groups: GroupsConfig {
            filter: groups_filter,
            checkpoint_interval: (checkpoints_enabled && checkpoint_secs > 0)
                .then(|| Duration::from_secs(checkpoint_secs)),
            sync_interval: (group_sync_enabled && group_sync_secs > 0)
                .then(|| Duration::from_secs(group_sync_secs)),
            checkpoints_topic: format!("{source}{separator}checkpoints{separator}internal"),
            checkpoints_replication_factor: checkpoints_rf,
        },
    })
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A human-readable account of a resolved configuration, secrets redacted (`validate`).
pub fn describe(config: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "config: {}", config.file.display());
    let _ = writeln!(out, "clusters:");
    for cluster in &config.clusters {
        let _ = writeln!(out, "  {} ({})", cluster.alias, cluster.bootstrap_servers());
        for role in ClientRole::ALL {
            let settings = cluster.client(role).redacted();
            let shown: Vec<String> = settings
                .iter()
                .filter(|(k, _)| k != "bootstrap.servers")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if !shown.is_empty() {
                let _ = writeln!(out, "    {:?}: {}", role, shown.join(", "));
            }
        }
    }
    let _ = writeln!(out, "flows:");
    for flow in &config.flows {
        let _ = writeln!(out, "  {}", flow.name());
        let _ = writeln!(out, "    topics: {}", flow.topics.include.as_str());
        let _ = writeln!(out, "    topics.exclude: {}", flow.topics.exclude.as_str());
        let _ = writeln!(out, "    replication.policy: {}", flow.policy);
        let _ = writeln!(out, "    replication.factor: {}", flow.replication_factor);
        let refresh = match flow.refresh_topics_interval {
            Some(d) => format!("every {}s", d.as_secs()),
            None => "off".to_string(),
        };
        let _ = writeln!(out, "    refresh.topics: {refresh}");
        let config_sync = match flow.config_sync_interval {
            Some(d) => format!("every {}s", d.as_secs()),
            None => "off".to_string(),
        };
        let _ = writeln!(out, "    sync.topic.configs: {config_sync}");
        let _ = writeln!(
            out,
            "    config.properties.exclude: {}",
            flow.config_filter.exclude.as_str()
        );
        let defaults = if flow.config_filter.defaults_from_source {
            "source"
        } else {
            "target"
        };
        let _ = writeln!(out, "    use.defaults.from: {defaults}");
        let acl_sync = match flow.acl_sync_interval {
            Some(d) => format!("every {}s", d.as_secs()),
            None => "off".to_string(),
        };
        let _ = writeln!(out, "    sync.topic.acls: {acl_sync}");
        let _ = writeln!(out, "    sync.topic.deletions: {}", flow.sync_deletions);
        let _ = writeln!(
            out,
            "    progress: {} every {}ms",
            flow.progress_topic(),
            flow.progress_interval.as_millis()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyKind;

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
    fn disabled_flows_are_not_run() {
        let text = BROADCAST.replace(
            "europe->southamerica.enabled = true",
            "europe->southamerica.enabled = false",
        );
        assert_eq!(resolve(&text).unwrap().flows.len(), 1);
    }
}
