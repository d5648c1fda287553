//! The resolved configuration: clusters with their client settings, and the enabled flows with
//! every MM2 setting that shapes them. Plain data; [`super::resolve`] builds it and checks it.

use super::ConfigError;
use std::path::PathBuf;
use std::time::Duration;

use super::client::ClientSettings;
use crate::filter::TopicFilter;
use crate::policy::ReplicationPolicy;
use crate::topic_configs::ConfigFilter;

/// The Connect connector name dedicated-mode MM2 stores source offsets under. (Under Strimzi
/// the connector is named `<source>-><target>.MirrorSourceConnector`.)
pub const DEDICATED_MODE_CONNECTOR: &str = "MirrorSourceConnector";

/// Which of a cluster's clients a setting is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
    Consumer,
    Producer,
    Admin,
}

impl ClientRole {
    pub(super) const ALL: [ClientRole; 3] = [
        ClientRole::Consumer,
        ClientRole::Producer,
        ClientRole::Admin,
    ];

    pub(super) fn prefix(self) -> &'static str {
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
    /// Heartbeats topics are replicated even when `topics` does not list them
    /// (`heartbeats.replication.enabled`, Kafka 4.0's KIP-1089; default true).
    pub replicate_heartbeats: bool,
    /// Where and how often the copy's progress is stored.
    pub progress: ProgressConfig,
    /// Offset syncs (`emit.offset-syncs.enabled`), or `None`.
    pub offset_syncs: Option<OffsetSyncsConfig>,
    /// Heartbeats (`emit.heartbeats.enabled`), or `None`.
    pub heartbeats: Option<HeartbeatsConfig>,
    /// Consumer group checkpoints and group offset sync.
    pub groups: GroupsConfig,
    /// What becomes of a record the target refuses for good.
    pub errors: ErrorsConfig,
    /// `auto.offset.reset = latest` in the source's consumer settings: partitions without
    /// progress start at their end (MM2's consumer honours it too).
    pub start_at_end: bool,
    /// The settings of this flow's clients.
    pub clients: FlowClients,
    /// `tasks.max`: copier threads for the source (the most any of its flows asks for);
    /// `None`: one per core.
    pub tasks_max: Option<usize>,
    /// `instances.group.enabled` (beyond MM2; on by default, as the processes of MM2's
    /// dedicated mode share their tasks): the processes of this replicator share the source's
    /// partitions through a consumer group on the source, with the id of `instances.group.id`
    /// if set (`crate::instances`). `None` (`false`): this process copies every partition.
    pub instances_group: Option<Option<String>>,
    /// `exactly.once.source.support = enabled` for the target (MM2's worker key, set per target
    /// cluster): records and their progress are committed in transactions on the target
    /// (`crate::copy::transaction`). `None`: at least once, idempotent producer.
    pub exactly_once: Option<ExactlyOnceConfig>,
    /// `data.plane` (beyond MM2): how records travel from source to target.
    pub data_plane: DataPlane,
}

/// How a flow's records travel (`data.plane`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataPlane {
    /// `records` (the default): each record read by librdkafka's consumer and produced again.
    #[default]
    Records,
    /// `batch`: whole record batches fetched and produced as they are (`crate::copy::batches`).
    Batch,
}

/// How a flow copies exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactlyOnceConfig {
    /// `transaction.boundary.interval.ms`: how long a transaction stays open at most, so how
    /// long a `read_committed` consumer on the target waits for a copied record.
    pub commit_interval: Duration,
}

/// The clients of one flow on its source and on its target: each cluster's settings with the
/// flow's own client keys (`<src>-><tgt>.consumer.*`, `.source.admin.*`, ...) in MM2's
/// precedence ([`super::precedence`]).
#[derive(Debug, Clone)]
pub struct FlowClients {
    pub source: ClusterConfig,
    pub target: ClusterConfig,
}

/// A record the target refuses for good (too large, invalid timestamp, invalid record), by Kafka
/// Connect's `errors.*` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorsConfig {
    /// `errors.tolerance=none` (the default): its partition stops there, visibly.
    StopPartition,
    /// `errors.tolerance=all` without a dead-letter topic: counted, logged and passed over.
    Skip,
    /// `errors.tolerance=all` with `errors.deadletterqueue.topic.name`: written there on the
    /// target, with headers saying where it came from and why, then passed over.
    DeadLetter {
        topic: String,
        /// `errors.deadletterqueue.topic.replication.factor` (Connect's default 3).
        replication_factor: i32,
    },
}

/// The copy's progress: the Connect offsets topic of MM2 on the target.
#[derive(Debug, Clone)]
pub struct ProgressConfig {
    /// How often acknowledged progress is written (`offset.flush.interval.ms`).
    pub interval: Duration,
    /// `offset.storage.topic` (dedicated mode: `mm2-offsets.<source>.internal`).
    pub topic: String,
    /// The Connect connector name progress is stored under: `MirrorSourceConnector` in MM2's
    /// dedicated mode, `<source>-><target>.MirrorSourceConnector` under Strimzi.
    pub connector: String,
    /// Partitions and replication factor of the topic when we create it.
    pub partitions: i32,
    pub replication_factor: i32,
}

/// MM2's heartbeat connector settings of a flow.
#[derive(Debug, Clone)]
pub struct HeartbeatsConfig {
    /// `emit.heartbeats.interval.seconds`
    pub interval: Duration,
    /// Of the target's `heartbeats` topic when we create it.
    pub replication_factor: i32,
}

/// MM2's heartbeat connector on a pair of clusters that no enabled flow covers: MM2 emits
/// heartbeats for every pair (`<src>-><tgt>.enabled = false` included) unless
/// `emit.heartbeats.enabled` is false for it.
#[derive(Debug, Clone)]
pub struct HeartbeatPair {
    pub source: String,
    pub target: String,
    pub heartbeats: HeartbeatsConfig,
    /// The pair's clients on the target, in MM2's precedence for that pair.
    pub target_clients: ClusterConfig,
}

impl HeartbeatPair {
    pub fn name(&self) -> String {
        format!("{}->{}", self.source, self.target)
    }
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
        self.progress.topic.clone()
    }

    /// The transactional id of copy unit `unit` of this flow (exactly once): stable across
    /// restarts, so a process starting with it fences its predecessor's open transaction.
    pub fn transactional_id(&self, unit: usize) -> String {
        format!("{}{unit}", self.transactional_id_prefix())
    }

    /// What every transactional id of this flow starts with (for a prefixed ACL).
    pub fn transactional_id_prefix(&self) -> String {
        format!("mirrorcast.{}.", self.name())
    }
}

/// A resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub clusters: Vec<ClusterConfig>,
    pub flows: Vec<FlowConfig>,
    /// Pairs of clusters with heartbeats and no enabled flow.
    pub heartbeat_pairs: Vec<HeartbeatPair>,
    /// Keys that have no effect here or that nobody knows ([`super::keys`]): said once when
    /// the file is loaded.
    pub warnings: Vec<ConfigError>,
}
