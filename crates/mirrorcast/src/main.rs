//! The `mirrorcast` command line: parse arguments, run, print errors with the program's name.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mirrorcast::config::{self, Config, ConfigErrors};
use mirrorcast::flow;
use mirrorcast::observe::Observability;
use mirrorcast::shutdown::Shutdown;
use tracing::{info, warn};

/// Cross-cluster Kafka replication, MirrorMaker 2 compatible.
#[derive(Parser)]
#[command(name = "mirrorcast", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
    /// Log lines as text for people, or JSON for log pipelines (level: RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Commands {
    /// Replicate every enabled flow of a config until SIGINT/SIGTERM.
    Run(ConfigArgs),
    /// Check a config and print the resolved flows and settings (secrets redacted).
    Validate(ConfigArgs),
    /// Produce the scenario's retail events (Loosehanger Jeans) to a cluster.
    Datagen(DatagenArgs),
    /// Print the events of a topic pattern on one cluster, as the scenario's consumers do.
    Consume(ConsumeArgs),
    /// The broadcast scenario on this machine, in one command.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct ClientArgs {
    #[arg(long)]
    bootstrap_server: String,
    /// A client setting, KEY=VALUE, in Java or librdkafka names (repeatable), e.g.
    /// security.protocol=SASL_SSL.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
}

#[derive(clap::Args)]
struct DatagenArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Topic of one kind of event, KIND=TOPIC (kinds: orders, cancellations, doors, stock,
    /// customers, sensors).
    #[arg(long = "topic", value_name = "KIND=TOPIC")]
    topics: Vec<String>,
    /// Seconds between two events of one kind, KIND=SECONDS (defaults: 10, stock 60).
    #[arg(long = "interval", value_name = "KIND=SECONDS")]
    intervals: Vec<String>,
    /// Every interval is divided by this.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Seed of the generator: the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
}

#[derive(clap::Args)]
struct ConsumeArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// A regular expression matching whole topic names.
    #[arg(long, default_value = r"LH\..*")]
    topics: String,
    #[arg(long, default_value = "mirrorcast-consume")]
    group: String,
    /// Written before every line, e.g. a region name.
    #[arg(long)]
    label: Option<String>,
}

#[derive(clap::Args)]
struct DemoArgs {
    #[command(subcommand)]
    control: Option<DemoControl>,
    /// Stop by itself after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Keep the demo's data directory after exit.
    #[arg(long)]
    keep: bool,
    /// Event rate multiplier of the producer (1 = the scenario's pace, an order every 10 s).
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Seconds between topic config syncs.
    #[arg(long, default_value_t = 5)]
    config_sync_seconds: u64,
}

#[derive(Subcommand)]
enum DemoControl {
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
struct ConfigArgs {
    /// MM2 dedicated-mode properties file (connect-mirror-maker.properties), or a
    /// KafkaMirrorMaker2 resource (.yaml/.yml).
    config: PathBuf,
    /// Only the flows whose target is one of these aliases (comma separated).
    #[arg(long, value_delimiter = ',')]
    clusters: Vec<String>,
    /// Where a resource's Kubernetes secrets are mounted, as `<secretName>/<key>` files.
    #[arg(long, default_value = mirrorcast::config::resource::DEFAULT_SECRETS_DIR)]
    secrets_dir: PathBuf,
    /// Point a cluster at other brokers: ALIAS=HOST:PORT (repeatable), e.g. to run a
    /// production file against local clusters.
    #[arg(long = "bootstrap", value_name = "ALIAS=SERVERS")]
    bootstraps: Vec<String>,
    /// Drop every TLS and SASL setting (for local plaintext clusters).
    #[arg(long)]
    strip_security: bool,
    /// Serve /metrics, /api/status, /healthz and /readyz on this address (run only).
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
}

/// Exit code for configuration mistakes, as for a usage error.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's screen belongs to the regional consumers: only warnings unless asked.
    let default_level = if matches!(cli.command, Commands::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    match cli.command {
        Commands::Validate(args) => match load(&args) {
            Ok(config) => {
                print!("{}", config::describe(&config));
                ExitCode::SUCCESS
            }
            Err(errors) => config_failure(&errors),
        },
        Commands::Datagen(args) => exit_with(datagen(&args)),
        Commands::Consume(args) => exit_with(consume(&args)),
        Commands::Demo(args) => exit_with(demo(&args)),
        Commands::Run(args) => match load(&args) {
            Ok(config) => match run(config, args.http) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mirrorcast: {e:#}");
                    ExitCode::FAILURE
                }
            },
            Err(errors) => config_failure(&errors),
        },
    }
}

fn exit_with(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mirrorcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A shutdown that SIGINT/SIGTERM trigger, for the commands that run until stopped.
fn shutdown_on_signal() -> Shutdown {
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            if rt.block_on(wait_for_signal()).is_ok() {
                trigger.trigger();
                // A second signal while stopping means "now".
                let _ = rt.block_on(wait_for_signal());
                std::process::exit(130);
            }
        }
    });
    shutdown
}

fn stop_after(shutdown: &Shutdown, seconds: Option<u64>) {
    if let Some(seconds) = seconds {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            shutdown.sleep(std::time::Duration::from_secs(seconds));
            shutdown.trigger();
        });
    }
}

fn datagen(args: &DatagenArgs) -> anyhow::Result<()> {
    use mirrorcast::demo::{datagen, events::Kind};
    let config = mirrorcast::config::client::tool_client_config(
        &args.client.bootstrap_server,
        &args.client.properties,
    )
    .map_err(anyhow::Error::msg)?;
    let mut options = datagen::DatagenOptions {
        rate: args.rate,
        seed: args.seed,
        ..Default::default()
    };
    let kind = |name: &str| {
        Kind::from_name(name).ok_or_else(|| anyhow::anyhow!("unknown event kind `{name}` (orders, cancellations, doors, stock, customers, sensors)"))
    };
    for pair in &args.topics {
        let (name, topic) = pair
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("`{pair}` is not KIND=TOPIC"))?;
        options.topics.insert(kind(name)?.name(), topic.to_string());
    }
    for pair in &args.intervals {
        let (name, secs) = pair
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("`{pair}` is not KIND=SECONDS"))?;
        let secs: f64 = secs
            .parse()
            .map_err(|_| anyhow::anyhow!("`{secs}` is not a number of seconds"))?;
        options
            .intervals
            .insert(kind(name)?.name(), std::time::Duration::from_secs_f64(secs));
    }
    let shutdown = shutdown_on_signal();
    stop_after(&shutdown, args.duration);
    let sent = datagen::run(&config, &options, &shutdown, |topic, event| {
        println!("{topic} {} {}", event.key, event.value);
    })?;
    eprintln!("produced {sent} event(s)");
    Ok(())
}

fn consume(args: &ConsumeArgs) -> anyhow::Result<()> {
    let config = mirrorcast::config::client::tool_client_config(
        &args.client.bootstrap_server,
        &args.client.properties,
    )
    .map_err(anyhow::Error::msg)?;
    let shutdown = shutdown_on_signal();
    let mut out = std::io::stdout();
    mirrorcast::demo::consume::run(
        &config,
        &args.topics,
        &args.group,
        args.label.as_deref(),
        &shutdown,
        &mut out,
    )?;
    Ok(())
}

fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    use mirrorcast::demo::{control, scenario};
    let dir = scenario::demo_dir();
    match &args.control {
        Some(DemoControl::TopicConfig {
            region,
            topic,
            settings,
        }) => control::topic_config(&dir, region, topic, settings)?,
        Some(DemoControl::Describe { region }) => control::describe(&dir, region)?,
        Some(DemoControl::StopRegion { region }) => control::region_up_down(&dir, region, false)?,
        Some(DemoControl::StartRegion { region }) => control::region_up_down(&dir, region, true)?,
        Some(DemoControl::Cleanup) => control::cleanup(&dir)?,
        None => {
            let options = scenario::DemoOptions {
                dir,
                duration: args.duration.map(std::time::Duration::from_secs),
                keep: args.keep,
                rate: args.rate,
                config_sync: std::time::Duration::from_secs(args.config_sync_seconds),
            };
            scenario::run(&options, &shutdown_on_signal())?;
        }
    }
    Ok(())
}

fn load(args: &ConfigArgs) -> Result<Config, ConfigErrors> {
    let (mut config, ignored) =
        Config::load_with(&args.config, &args.secrets_dir, args.strip_security)?;
    if !ignored.is_empty() {
        warn!(
            "{}: ignored (no meaning outside Kubernetes, or not used by mirrorcast): {}",
            args.config.display(),
            ignored.join(", ")
        );
    }
    for pair in &args.bootstraps {
        let Some((alias, servers)) = pair.split_once('=') else {
            return Err(ConfigErrors(vec![config::ConfigError {
                file: args.config.clone(),
                line: None,
                key: "--bootstrap".into(),
                message: format!("`{pair}` is not ALIAS=HOST:PORT"),
            }]));
        };
        config.override_bootstrap(alias, servers)?;
    }
    if !args.clusters.is_empty() {
        config.retain_targets(&args.clusters)?;
    }
    Ok(config)
}

fn config_failure(errors: &ConfigErrors) -> ExitCode {
    for error in &errors.0 {
        eprintln!("mirrorcast: {error}");
    }
    ExitCode::from(EXIT_CONFIG)
}

fn run(config: Config, http: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    let observe = Observability::new();
    let flows = flow::start_all(&config, &shutdown, &observe)?;
    for f in &flows {
        info!(flow = %f.name, "started");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if let Some(addr) = http {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("--http {addr}: {e}"))?;
            info!("serving the page, /metrics, /api/status, /healthz and /readyz on http://{addr}");
            let explorer =
                std::sync::Arc::new(mirrorcast::observe::explore::Explorer::new(&config));
            let app = mirrorcast::observe::http::router(observe, Some(explorer));
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        wait_for_signal().await.map_err(anyhow::Error::from)
    })?;
    info!("stopping: flushing what is in flight and storing progress");
    shutdown.trigger();
    // A second signal while stopping means "now".
    std::thread::spawn(|| {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            let _ = rt.block_on(wait_for_signal());
            std::process::exit(130);
        }
    });
    for f in flows {
        f.join();
    }
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
