//! `mirrorcast demo`: three local clusters (europe, north-america, south-america), the LH.*
//! topics in Europe, the retail producer there, replication to the two other regions as the
//! scenario configures it, a consumer per target region, and on exit the removal of all of it.
//!
//! A running demo is described by `demo.json` in its directory, which the demo controls
//! (`demo describe`, `topic-config`, `stop-region`, ...) of a second terminal read. Requests to
//! stop or start a region are files in `requests/`, carried out by the demo, which owns the
//! broker processes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use localcluster::{Clusters, StopSignal, Storage};
use serde::{Deserialize, Serialize};

use super::datagen::{self, DatagenOptions};
use super::events::Kind;
use super::{consume, DemoError};
use crate::config::Config;
use crate::flow;
use crate::kafka::admin::TopicAdmin;
use crate::observe::Observability;
use crate::serve::access::AccessPolicy;
use crate::serve::explore::Explorer;
use crate::serve::http;
use crate::shutdown::Shutdown;
use crate::topics::ClusterAdmin;
use std::net::SocketAddr;

/// The regions: (region name, MM2 alias).
pub const REGIONS: [(&str, &str); 3] = [
    ("europe", "europe"),
    ("north-america", "northamerica"),
    ("south-america", "southamerica"),
];

/// The scenario's topics in Europe: (topic, partitions).
pub const TOPICS: [(&str, i32); 6] = [
    ("LH.ORDERS", 3),
    ("LH.CANCELLATIONS", 3),
    ("LH.DOORS", 1),
    ("LH.STOCK", 2),
    ("LH.CUSTOMERS", 3),
    ("LH.SENSORS", 2),
];

/// The configs every LH topic gets in Europe.
pub const TOPIC_CONFIGS: [(&str, &str); 2] = [
    ("min.insync.replicas", "1"),
    ("retention.bytes", "100000000"),
];

const STATE_FILE: &str = "demo.json";
const REQUESTS: &str = "requests";

/// What a second terminal needs to know about a running demo.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoState {
    /// The demo process.
    pub pid: u32,
    pub regions: Vec<RegionState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionState {
    pub name: String,
    pub alias: String,
    pub port: u16,
    /// The broker process, while the region is up.
    pub broker_pid: Option<u32>,
}

impl DemoState {
    pub fn read(dir: &Path) -> Result<Self, DemoError> {
        let text = std::fs::read_to_string(dir.join(STATE_FILE)).map_err(|_| {
            DemoError::Other(format!(
                "no demo is running (no {} in {})",
                STATE_FILE,
                dir.display()
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| DemoError::Other(format!("{STATE_FILE}: {e}")))
    }

    fn write(&self, dir: &Path) -> Result<(), DemoError> {
        let text =
            serde_json::to_string_pretty(self).map_err(|e| DemoError::Other(e.to_string()))?;
        // Write then rename, so that a reader never sees half a file.
        let temp = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&temp, text)?;
        std::fs::rename(temp, dir.join(STATE_FILE))?;
        Ok(())
    }

    /// The region named `name` (either `north-america` or the alias `northamerica`).
    pub fn region(&self, name: &str) -> Result<&RegionState, DemoError> {
        self.regions
            .iter()
            .find(|r| r.name == name || r.alias == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
                DemoError::Other(format!(
                    "no region `{name}`: the regions are {}",
                    names.join(", ")
                ))
            })
    }
}

/// Where the demo keeps its files: `$MIRRORCAST_DEMO_DIR`, else `<temp dir>/mirrorcast-demo`.
pub fn demo_dir() -> PathBuf {
    std::env::var_os("MIRRORCAST_DEMO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("mirrorcast-demo"))
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub dir: PathBuf,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    /// Keep the data directory after exit.
    pub keep: bool,
    /// Event rate multiplier of the producer.
    pub rate: f64,
    /// Topic config sync interval (the scenario's 600 s is too long to watch).
    pub config_sync: Duration,
}

/// A step of the start-up display.
struct Steps {
    bar: ProgressBar,
}

impl Steps {
    fn new(count: u64) -> Self {
        let bar = ProgressBar::new(count);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Steps { bar }
    }

    fn start(&self, message: &str) {
        self.bar.set_message(message.to_string());
        if self.bar.is_hidden() {
            println!(
                "[{}/{}] {message}",
                self.bar.position() + 1,
                self.bar.length().unwrap_or(0)
            );
        }
    }

    fn done(&self) {
        self.bar.inc(1);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Runs the demo until `shutdown` or the duration, then removes everything it started.
pub fn run(options: &DemoOptions, shutdown: &Shutdown) -> Result<(), DemoError> {
    let dir = &options.dir;
    if let Ok(state) = DemoState::read(dir) {
        if process_alive(state.pid) && state.pid != std::process::id() {
            return Err(DemoError::Other(format!(
                "a demo is already running (pid {}); stop it, or remove a stale one with `{} demo cleanup`",
                state.pid,
                super::program()
            )));
        }
        super::control::cleanup(dir)?;
    }
    std::fs::create_dir_all(dir.join(REQUESTS))?;
    let result = run_in(options, shutdown);
    if !options.keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn run_in(options: &DemoOptions, shutdown: &Shutdown) -> Result<(), DemoError> {
    let dir = &options.dir;
    let steps = Steps::new(6);
    steps.start("the test broker (nisshi): installing it the first time takes about 14 minutes");
    // cargo's own progress shows while it installs; the spinner waits.
    steps.bar.suspend(localcluster::ensure_nisshi)?;
    steps.done();

    steps.start("starting the europe, north-america and south-america clusters");
    let names: Vec<&str> = REGIONS.iter().map(|(name, _)| *name).collect();
    let mut clusters = Clusters::start_detached(
        &dir.join("clusters"),
        &names,
        &[None, None, None],
        Storage::Sqlite,
    )?;
    let mut state = DemoState {
        pid: std::process::id(),
        regions: REGIONS
            .iter()
            .map(|(name, alias)| {
                let cluster = clusters.get(name);
                RegionState {
                    name: name.to_string(),
                    alias: alias.to_string(),
                    port: cluster.port(),
                    broker_pid: cluster.pid(),
                }
            })
            .collect(),
    };
    state.write(dir)?;
    steps.done();

    steps.start("creating the LH topics in europe");
    let europe = clusters.bootstrap("europe");
    let admin = TopicAdmin::new(&bootstrap_config(&europe), "demo admin")?;
    let configs: Vec<(String, String)> = TOPIC_CONFIGS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (topic, partitions) in TOPICS {
        admin.ensure_topic(topic, partitions, 1, &configs)?;
    }
    steps.done();

    steps.start("starting replication europe->northamerica and europe->southamerica");
    let config_path = dir.join("mm2.properties");
    std::fs::write(
        &config_path,
        replication_config(&state, options.config_sync),
    )?;
    let config = Config::load(&config_path).map_err(DemoError::Config)?;
    let observe = Observability::new();
    let flows = flow::start_all(&config, shutdown, &observe)?;
    let explorer = std::sync::Arc::new(Explorer::new(&config));
    let http = start_http(observe, explorer, shutdown)?;
    steps.done();

    steps.start("starting the producer in europe");
    let producer_config = bootstrap_config(&europe);
    let datagen_options = DatagenOptions {
        rate: options.rate,
        ..DatagenOptions::default()
    };
    let producer_shutdown = shutdown.clone();
    let producer = std::thread::Builder::new()
        .name("demo producer".into())
        .spawn(move || {
            datagen::run(
                &producer_config,
                &datagen_options,
                &producer_shutdown,
                |_, _| {},
            )
        })?;
    steps.done();

    steps.start("starting a consumer in north-america and in south-america");
    let mut consumers = Vec::new();
    for (name, _) in &REGIONS[1..] {
        let config = bootstrap_config(&clusters.bootstrap(name));
        let consumer_shutdown = shutdown.clone();
        let label = name.to_string();
        consumers.push(
            std::thread::Builder::new()
                .name(format!("consumer {name}"))
                .spawn(move || {
                    let mut out = std::io::stdout();
                    consume::run(
                        &config,
                        r"LH\..*",
                        &format!("demo-{label}"),
                        Some(&label),
                        &consumer_shutdown,
                        &mut out,
                    )
                })?,
        );
    }
    steps.done();
    steps.finish();
    print_guide(&state, dir, options, http);

    let started = Instant::now();
    while !shutdown.sleep(Duration::from_millis(200)) {
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        serve_requests(dir, &mut clusters, &mut state)?;
    }
    println!("stopping the demo: producer, consumers, replication, clusters");
    shutdown.trigger();
    let _ = producer.join();
    for consumer in consumers {
        let _ = consumer.join();
    }
    if let Err(e) = flows.join() {
        eprintln!("mirrorcast: {e}");
    }
    for (name, _) in REGIONS {
        let _ = clusters.get_mut(name).stop(StopSignal::Term);
    }
    drop(clusters);
    if options.keep {
        println!(
            "kept {} (`{} demo cleanup` removes it)",
            dir.display(),
            super::program()
        );
    } else {
        println!("removed {}", dir.display());
    }
    Ok(())
}

fn bootstrap_config(bootstrap: &str) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// The scenario's replication, as an MM2 properties file (written to the demo directory, so
/// the user can read it and run it by hand).
fn replication_config(state: &DemoState, config_sync: Duration) -> String {
    let mut text = String::from("# mirrorcast demo: the broadcast scenario's replication\n");
    let aliases: Vec<&str> = state.regions.iter().map(|r| r.alias.as_str()).collect();
    text += &format!("clusters = {}\n", aliases.join(", "));
    for region in &state.regions {
        text += &format!(
            "{}.bootstrap.servers = 127.0.0.1:{}\n",
            region.alias, region.port
        );
    }
    text += &format!(
        "europe->northamerica.enabled = true\n\
         europe->southamerica.enabled = true\n\
         topics = LH.*\n\
         replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy\n\
         replication.factor = 1\n\
         offset.storage.replication.factor = 1\n\
         offset-syncs.topic.location = target\n\
         offset.lag.max = 100\n\
         sync.topic.acls.enabled = false\n\
         sync.topic.configs.enabled = true\n\
         sync.topic.configs.interval.seconds = {}\n\
         refresh.topics.enabled = true\n\
         refresh.topics.interval.seconds = 10\n\
         # One process copies everything (nisshi does not list a group's members, which\n\
         # instances sharing the work through a group need).\n\
         instances.group.enabled = false\n",
        config_sync.as_secs().max(1)
    );
    text
}

/// Serves metrics and status on a free local port until shutdown.
fn start_http(
    observe: Observability,
    explorer: std::sync::Arc<Explorer>,
    shutdown: &Shutdown,
) -> Result<SocketAddr, DemoError> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    // The demo's own local clusters: their records are the point, and only this machine
    // reaches the port.
    let access = AccessPolicy {
        browse: true,
        ..AccessPolicy::default()
    };
    http::serve(
        listener,
        observe,
        Some(explorer),
        access,
        http::Limits::default(),
        shutdown,
    )?;
    Ok(addr)
}

fn print_guide(state: &DemoState, dir: &Path, options: &DemoOptions, http: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nThe broadcast demo is running ({}).", dir.display());
    let _ = writeln!(
        out,
        "Watch every region in a browser: http://{http}/   (metrics: http://{http}/metrics)"
    );
    let _ = writeln!(
        out,
        "Events are produced in europe and replicated to north-america and south-america.\n"
    );
    let program = super::program();
    for region in &state.regions {
        let _ = writeln!(
            out,
            "  {:<14} 127.0.0.1:{}   watch it: {program} consume --bootstrap-server 127.0.0.1:{} --topics 'LH\\..*' --group watcher",
            region.name, region.port, region.port
        );
    }
    let _ = writeln!(
        out,
        "\nFrom another terminal:\n  {program} demo describe --region north-america\n  {program} demo topic-config --region europe --topic LH.ORDERS retention.ms=3600000   (reaches the other regions within {} s)\n  {program} demo stop-region south-america   /   {program} demo start-region south-america",
        options.config_sync.as_secs()
    );
    let ending = match options.duration {
        Some(d) => format!("stops by itself after {} s", d.as_secs()),
        None => "Ctrl-C stops it".into(),
    };
    let _ = writeln!(out, "The demo {ending} and removes everything it created. Events from the two regional consumers follow:\n");
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.default_topic()).collect();
    let _ = writeln!(out, "(topics: {})\n", kinds.join(", "));
}

/// Carries out the stop/start requests of `mirrorcast demo stop-region` / `start-region`.
fn serve_requests(
    dir: &Path,
    clusters: &mut Clusters,
    state: &mut DemoState,
) -> Result<(), DemoError> {
    let Ok(entries) = std::fs::read_dir(dir.join(REQUESTS)) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let request = entry.file_name().to_string_lossy().into_owned();
        let _ = std::fs::remove_file(entry.path());
        let (action, region) = match request.split_once(' ') {
            Some(pair) => pair,
            None => continue,
        };
        let Some(index) = state.regions.iter().position(|r| r.name == region) else {
            continue;
        };
        let cluster = clusters.get_mut(region);
        match action {
            "stop" => {
                cluster.stop(StopSignal::Kill)?;
                println!("[demo] {region} is down");
            }
            "start" => {
                if !cluster.is_running() {
                    cluster.restart()?;
                }
                println!("[demo] {region} is up again");
            }
            _ => continue,
        }
        state.regions[index].broker_pid = cluster.pid();
        state.write(dir)?;
    }
    Ok(())
}

/// Asks the running demo to stop or start a region's cluster.
pub fn request(dir: &Path, action: &str, region: &str) -> Result<(), DemoError> {
    std::fs::write(dir.join(REQUESTS).join(format!("{action} {region}")), b"")?;
    Ok(())
}

/// Whether a process with this PID exists.
pub fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
