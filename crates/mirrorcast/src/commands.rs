//! What each subcommand does: thin glue between the arguments and the library.

use std::process::ExitCode;

use mirrorcast::config::{self, Config, ConfigErrors};
use mirrorcast::flow;
use mirrorcast::observe::Observability;
use mirrorcast::serve::access::{AccessPolicy, Token};
use mirrorcast::shutdown::Shutdown;
use signal_hook::consts::{SIGINT, SIGTERM};
use tracing::{info, warn};

use crate::cli::{ConfigArgs, ConsumeArgs, DatagenArgs, TranslateArgs};
#[cfg(feature = "demo")]
use crate::cli::{DemoArgs, DemoControl};

/// Exit code for configuration mistakes, as for a usage error.
pub(crate) const EXIT_CONFIG: u8 = 2;

pub(crate) fn exit_with(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mirrorcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A shutdown that SIGINT/SIGTERM trigger, for the commands that run until stopped.
pub(crate) fn shutdown_on_signal() -> Shutdown {
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    let signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]);
    match signals {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                let mut received = signals.forever();
                if received.next().is_some() {
                    trigger.trigger();
                    // A second signal while stopping means "now".
                    if received.next().is_some() {
                        std::process::exit(130);
                    }
                }
            });
        }
        Err(e) => warn!("cannot handle SIGINT and SIGTERM ({e}): stopping will not be graceful"),
    }
    shutdown
}

pub(crate) fn stop_after(shutdown: &Shutdown, seconds: Option<u64>) {
    if let Some(seconds) = seconds {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            shutdown.sleep(std::time::Duration::from_secs(seconds));
            shutdown.trigger();
        });
    }
}

pub(crate) fn datagen(args: &DatagenArgs) -> anyhow::Result<()> {
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

pub(crate) fn consume(args: &ConsumeArgs) -> anyhow::Result<()> {
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

#[cfg(feature = "demo")]
pub(crate) fn demo(args: &DemoArgs) -> anyhow::Result<()> {
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

pub(crate) fn translate_offsets(config: Config, args: &TranslateArgs) -> anyhow::Result<()> {
    use mirrorcast::config::ClientRole;
    use mirrorcast::kafka::clients::client_config;
    use mirrorcast::offsets::groups;
    let flow = crate::stored_progress::find_flow(&config, &args.flow.source, &args.flow.target)?;
    let syncs = flow
        .offset_syncs
        .as_ref()
        .ok_or(groups::GroupsError::NoSyncs)?;
    let (source, target) = (&flow.clients.source, &flow.clients.target);
    let source_consumer = client_config(source, ClientRole::Consumer, "mirrorcast-translate");
    let target_consumer = client_config(target, ClientRole::Consumer, "mirrorcast-translate");
    let syncs_consumer = if syncs.on_source {
        &source_consumer
    } else {
        &target_consumer
    };
    let histories = mirrorcast::offsets::sync_store::load(syncs_consumer, &syncs.topic)?;
    let (translations, clamped) = groups::translate_group(
        flow,
        &source_consumer,
        &target_consumer,
        &histories,
        &args.group,
    )?;
    for c in &clamped {
        warn!(
            "an offset sync translates to {} in {}[{}], past its end {}: using the end (a forged \
             or stale sync in {}?)",
            c.translated, c.remote_topic, c.partition, c.end, syncs.topic
        );
    }
    println!("group {}: {} -> {}", args.group, flow.source, flow.target);
    for t in &translations {
        let downstream = t
            .downstream
            .map_or("no offset sync old enough".to_string(), |o| o.to_string());
        println!(
            "  {} [{}] {} -> {} [{}] {}",
            t.topic, t.partition, t.upstream, t.remote_topic, t.partition, downstream
        );
    }
    if args.apply {
        let applied = groups::apply_to_target(
            &source_consumer,
            &target_consumer,
            &args.group,
            &translations,
        )?;
        if applied.group_active {
            anyhow::bail!(
                "group {} has active members on {}: nothing written",
                args.group,
                flow.target
            );
        }
        println!(
            "wrote {} offset(s); {} left as they were (already at or past the translation)",
            applied.written, applied.not_backwards
        );
    }
    Ok(())
}

pub(crate) fn load(args: &ConfigArgs) -> Result<Config, ConfigErrors> {
    let (mut config, ignored) =
        Config::load_with(&args.config, &args.secrets_dir, args.strip_security)?;
    for warning in &config.warnings {
        warn!("{warning}");
    }
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

/// [`load`], and whatever else `run` would refuse before starting (`validate` says the same).
pub(crate) fn load_to_run(args: &ConfigArgs) -> Result<Config, ConfigErrors> {
    let config = load(args)?;
    config.check_shared_readers()?;
    Ok(config)
}

/// Who may use `--http`: the token of `--http-token-file`, the allowed host names and
/// `--http-browse`. A token file that cannot be read or is empty is a config error.
pub(crate) fn http_access(args: &ConfigArgs) -> Result<AccessPolicy, ConfigErrors> {
    let token = match &args.http_token_file {
        None => None,
        Some(file) => {
            let refused = |message: String| {
                ConfigErrors(vec![config::ConfigError {
                    file: file.clone(),
                    line: None,
                    key: "--http-token-file".into(),
                    message,
                }])
            };
            let text = std::fs::read_to_string(file)
                .map_err(|e| refused(format!("cannot read the token file: {e}")))?;
            Some(Token::from_file_text(&text).ok_or_else(|| {
                refused("the token file's first line is empty: it should hold the token".into())
            })?)
        }
    };
    Ok(AccessPolicy {
        token,
        allowed_hosts: args
            .http_allow_host
            .iter()
            .map(|host| host.to_ascii_lowercase())
            .collect(),
        browse: args.http_browse,
    })
}

pub(crate) fn config_failure(errors: &ConfigErrors) -> ExitCode {
    for error in &errors.0 {
        eprintln!("mirrorcast: {error}");
    }
    ExitCode::from(EXIT_CONFIG)
}

pub(crate) fn run(
    config: Config,
    http: Option<(std::net::SocketAddr, AccessPolicy)>,
    mm2_metrics: bool,
) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    let observe = if mm2_metrics {
        Observability::with_mm2_metrics()
    } else {
        Observability::new()
    };
    let flows = flow::start_all(&config, &shutdown, &observe)?;
    for name in &flows.flows {
        info!(flow = %name, "started");
    }
    if let Some((addr, access)) = http {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("--http {addr}: {e}"))?;
        let explorer = std::sync::Arc::new(mirrorcast::serve::explore::Explorer::new(&config));
        let guarded = if access.token.is_some() {
            "token required"
        } else {
            "no token"
        };
        let browsing = if access.browse { "on" } else { "off" };
        mirrorcast::serve::http::serve(
            listener,
            observe,
            Some(explorer),
            access,
            mirrorcast::serve::http::Limits::default(),
            &shutdown,
        )?;
        info!(
            "serving the page, /metrics, /api/status, /healthz and /readyz on http://{addr} \
             ({guarded}; browsing records {browsing})"
        );
    }
    shutdown.wait();
    info!("stopping: flushing what is in flight and storing progress");
    flows.join().map_err(anyhow::Error::msg)
}
