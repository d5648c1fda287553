//! The `mirrorcast` command line: parse arguments, run, print errors with the program's name.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mirrorcast::config::{self, Config, ConfigErrors};
use mirrorcast::flow;
use mirrorcast::shutdown::Shutdown;
use tracing::{info, warn};

/// Cross-cluster Kafka replication, MirrorMaker 2 compatible.
#[derive(Parser)]
#[command(name = "mirrorcast", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Replicate every enabled flow of a config until SIGINT/SIGTERM.
    Run(ConfigArgs),
    /// Check a config and print the resolved flows and settings (secrets redacted).
    Validate(ConfigArgs),
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
}

/// Exit code for configuration mistakes, as for a usage error.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Commands::Validate(args) => match load(&args) {
            Ok(config) => {
                print!("{}", config::describe(&config));
                ExitCode::SUCCESS
            }
            Err(errors) => config_failure(&errors),
        },
        Commands::Run(args) => match load(&args) {
            Ok(config) => match run(config) {
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

fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    let flows = flow::start_all(&config, &shutdown)?;
    for f in &flows {
        info!(flow = %f.name, "started");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(wait_for_signal())?;
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
