//! The command line's arguments (clap): what every subcommand takes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Cross-cluster Kafka replication, MirrorMaker 2 compatible.
#[derive(Parser)]
#[command(name = "mirrorcast", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Commands,
    /// Log lines as text for people, or JSON for log pipelines (level: RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Commands {
    /// Replicate every enabled flow of a config until SIGINT/SIGTERM.
    Run(ConfigArgs),
    /// Check a config and print the resolved flows and settings (secrets redacted).
    Validate(ConfigArgs),
    /// Produce the scenario's retail events (Loosehanger Jeans) to a cluster.
    Datagen(DatagenArgs),
    /// Print the events of a topic pattern on one cluster, as the scenario's consumers do.
    Consume(ConsumeArgs),
    /// The broadcast scenario on this machine, in one command.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// A group's committed offsets on the source translated to the target (MM2's
    /// RemoteClusterUtils.translateOffsets); with --apply, written into the target group.
    TranslateOffsets(TranslateArgs),
    /// A flow's stored progress, where its copy resumes (on the target, in MM2's format):
    /// list it, or move it while the flow is stopped.
    #[command(subcommand)]
    Offsets(OffsetsCommand),
}

#[derive(Subcommand)]
pub(crate) enum OffsetsCommand {
    /// Each partition's stored position (the next source offset to copy) beside the
    /// source's log.
    List(OffsetsListArgs),
    /// Move the chosen partitions to the earliest, the latest, an offset or a time (a dry
    /// run unless --execute).
    Reset(OffsetsResetArgs),
    /// Move partitions each to its own position (a dry run unless --execute).
    Alter(OffsetsAlterArgs),
}

#[derive(clap::Args)]
pub(crate) struct FlowArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    #[arg(long)]
    pub(crate) source: String,
    #[arg(long)]
    pub(crate) target: String,
}

#[derive(clap::Args)]
pub(crate) struct OffsetsListArgs {
    #[command(flatten)]
    pub(crate) flow: FlowArgs,
    /// Only this topic, or TOPIC:P,Q for some of its partitions (repeatable; default: every
    /// partition with stored progress).
    #[arg(long = "topic", value_name = "TOPIC[:PARTITIONS]")]
    pub(crate) topics: Vec<String>,
}

/// Writing moved progress: only once the flow is seen stopped.
#[derive(clap::Args)]
pub(crate) struct WriteArgs {
    /// Write the moved progress (without it: print what would move, write nothing).
    #[arg(long)]
    pub(crate) execute: bool,
    /// Write even though whether the flow runs cannot be told (heartbeats and the instances
    /// group both off): you stopped every process of it.
    #[arg(long)]
    pub(crate) assume_stopped: bool,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("partitions").required(true)))]
#[command(group(clap::ArgGroup::new("destination").required(true)))]
pub(crate) struct OffsetsResetArgs {
    #[command(flatten)]
    pub(crate) flow: FlowArgs,
    /// A topic, or TOPIC:P,Q for some of its partitions (repeatable).
    #[arg(
        long = "topic",
        value_name = "TOPIC[:PARTITIONS]",
        group = "partitions"
    )]
    pub(crate) topics: Vec<String>,
    /// Every partition of every topic with stored progress.
    #[arg(long, group = "partitions")]
    pub(crate) all_topics: bool,
    /// The first offset the source still has.
    #[arg(long, group = "destination")]
    pub(crate) to_earliest: bool,
    /// The source's end: what it holds now is never copied.
    #[arg(long, group = "destination")]
    pub(crate) to_latest: bool,
    /// This next offset to copy.
    #[arg(long, value_name = "OFFSET", group = "destination")]
    pub(crate) to_offset: Option<i64>,
    /// The first record at or after this time (RFC 3339, e.g. 2026-12-01T08:00:00Z).
    #[arg(long, value_name = "TIME", group = "destination")]
    pub(crate) to_datetime: Option<String>,
    /// Nothing stored: the copy starts as a new one (auto.offset.reset).
    #[arg(long, group = "destination")]
    pub(crate) forget: bool,
    #[command(flatten)]
    pub(crate) write: WriteArgs,
}

#[derive(clap::Args)]
pub(crate) struct OffsetsAlterArgs {
    #[command(flatten)]
    pub(crate) flow: FlowArgs,
    /// TOPIC:PARTITION=OFFSET, the next offset to copy (a number, earliest, latest, or none
    /// for nothing stored); repeatable.
    #[arg(long = "set", value_name = "TOPIC:PARTITION=OFFSET", required = true)]
    pub(crate) assignments: Vec<String>,
    #[command(flatten)]
    pub(crate) write: WriteArgs,
}

#[derive(clap::Args)]
pub(crate) struct TranslateArgs {
    #[command(flatten)]
    pub(crate) flow: FlowArgs,
    #[arg(long)]
    pub(crate) group: String,
    /// Commit the translated offsets into the group on the target (only if it has no active
    /// members there, and never backwards).
    #[arg(long)]
    pub(crate) apply: bool,
}

#[derive(clap::Args)]
pub(crate) struct ClientArgs {
    #[arg(long)]
    pub(crate) bootstrap_server: String,
    /// A client setting, KEY=VALUE, in Java or librdkafka names (repeatable), e.g.
    /// security.protocol=SASL_SSL.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub(crate) properties: Vec<String>,
}

#[derive(clap::Args)]
pub(crate) struct DatagenArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// Topic of one kind of event, KIND=TOPIC (kinds: orders, cancellations, doors, stock,
    /// customers, sensors).
    #[arg(long = "topic", value_name = "KIND=TOPIC")]
    pub(crate) topics: Vec<String>,
    /// Seconds between two events of one kind, KIND=SECONDS (defaults: 10, stock 60).
    #[arg(long = "interval", value_name = "KIND=SECONDS")]
    pub(crate) intervals: Vec<String>,
    /// Every interval is divided by this.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) rate: f64,
    /// Seed of the generator: the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Stop after this many seconds.
    #[arg(long)]
    pub(crate) duration: Option<u64>,
}

#[derive(clap::Args)]
pub(crate) struct ConsumeArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// A regular expression matching whole topic names.
    #[arg(long, default_value = r"LH\..*")]
    pub(crate) topics: String,
    #[arg(long, default_value = "mirrorcast-consume")]
    pub(crate) group: String,
    /// Written before every line, e.g. a region name.
    #[arg(long)]
    pub(crate) label: Option<String>,
}

#[cfg(feature = "demo")]
#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    #[command(subcommand)]
    pub(crate) control: Option<DemoControl>,
    /// Stop by itself after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub(crate) duration: Option<u64>,
    /// Keep the demo's data directory after exit.
    #[arg(long)]
    pub(crate) keep: bool,
    /// Event rate multiplier of the producer (1 = the scenario's pace, an order every 10 s).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) rate: f64,
    /// Seconds between topic config syncs.
    #[arg(long, default_value_t = 5)]
    pub(crate) config_sync_seconds: u64,
}

#[cfg(feature = "demo")]
#[derive(Subcommand)]
pub(crate) enum DemoControl {
    /// Change a topic's config in a region (e.g. europe): it then follows in the others.
    TopicConfig {
        #[arg(long)]
        region: String,
        #[arg(long)]
        topic: String,
        /// KEY=VALUE settings.
        #[arg(required = true)]
        settings: Vec<String>,
    },
    /// Each topic of a region with its partitions, end offsets and configs.
    Describe {
        #[arg(long)]
        region: String,
    },
    /// Take a region's cluster down.
    StopRegion { region: String },
    /// Bring a region's cluster back up.
    StartRegion { region: String },
    /// Remove what an interrupted demo left behind.
    Cleanup,
}

#[derive(clap::Args)]
pub(crate) struct ConfigArgs {
    /// MM2 dedicated-mode properties file (connect-mirror-maker.properties), or a
    /// KafkaMirrorMaker2 resource (.yaml/.yml).
    pub(crate) config: PathBuf,
    /// Only the flows whose target is one of these aliases (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub(crate) clusters: Vec<String>,
    /// Where a resource's Kubernetes secrets are mounted, as `<secretName>/<key>` files.
    #[arg(long, default_value = mirrorcast::config::resource::DEFAULT_SECRETS_DIR)]
    pub(crate) secrets_dir: PathBuf,
    /// Point a cluster at other brokers: ALIAS=HOST:PORT (repeatable), e.g. to run a
    /// production file against local clusters.
    #[arg(long = "bootstrap", value_name = "ALIAS=SERVERS")]
    pub(crate) bootstraps: Vec<String>,
    /// Drop every TLS and SASL setting (for local plaintext clusters).
    #[arg(long)]
    pub(crate) strip_security: bool,
    /// Serve the page, /metrics, /api/status, /api/regions, /healthz and /readyz on this
    /// address (run only). See --http-token-file before binding anything but 127.0.0.1.
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<std::net::SocketAddr>,
    /// Also serve the latest records of the topics this process replicates (on the page and
    /// at /api/regions/{alias}/topics/{topic}/events), read with mirrorcast's credentials.
    /// Off by default.
    #[arg(long, requires = "http")]
    pub(crate) http_browse: bool,
    /// Require `Authorization: Bearer <token>` for everything but /, /healthz and /readyz; the
    /// token is the file's first line. The page asks for it once.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub(crate) http_token_file: Option<PathBuf>,
    /// Also serve MM2's metrics as Strimzi's Prometheus exporter names them
    /// (kafka_connect_mirror_*, the Connect worker's connector counts and statuses), for
    /// dashboards and alerts written for Strimzi's MirrorMaker 2.
    #[arg(long, requires = "http")]
    pub(crate) mm2_metrics: bool,
    /// A host name the HTTP side answers to besides IP addresses and localhost (repeatable;
    /// `*` for any): requests naming another host are refused, against DNS rebinding.
    #[arg(long, value_name = "NAME", requires = "http")]
    pub(crate) http_allow_host: Vec<String>,
}
