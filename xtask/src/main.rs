//! Project automation that is not the product: install the test broker, run the whole test
//! suite, and run the quickstart (three local clusters, a producer in Europe, the replicator).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use localcluster::{Clusters, Storage};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the test broker (nisshi 0.8.1) unless it is already installed.
    InstallBroker,
    /// The whole test suite: broker install, formatting, clippy, every test.
    Test,
    /// Three local clusters, a producer in Europe and `mirrorcast run examples/broadcast.properties`.
    Quickstart {
        /// Stop by itself after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::InstallBroker => localcluster::ensure_nisshi()
            .map(|path| {
                println!(
                    "nisshi {} at {}",
                    localcluster::NISSHI_VERSION,
                    path.display()
                )
            })
            .map_err(Into::into),
        Task::Test => test(),
        Task::Quickstart { duration } => quickstart(duration.map(Duration::from_secs)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn test() -> Result<()> {
    let broker = localcluster::ensure_nisshi()?;
    println!("test broker: {}", broker.display());
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo_test(&["test", "--workspace", "--locked"])
}

/// Runs `cargo test`, passing its output through, and ends with one line that sums up every
/// test binary (cargo's own last line is that of the last doc-test binary, often "0 passed").
fn cargo_test(args: &[&str]) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("$ cargo {}", args.join(" "));
    let mut child = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                passed += count_before(rest, " passed");
                failed += count_before(rest, " failed");
            }
        }
    }
    let status = child.wait()?;
    println!("summary: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The number just before `label` in a cargo "test result" line.
fn count_before(line: &str, label: &str) -> u64 {
    line.find(label)
        .and_then(|end| line[..end].rsplit([' ', '.']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Ports of `examples/broadcast.properties`.
const REGIONS: [(&str, u16); 3] = [
    ("europe", 19092),
    ("northamerica", 19093),
    ("southamerica", 19094),
];
/// The scenario's topics and partition counts.
const TOPICS: [(&str, i32); 6] = [
    ("LH.ORDERS", 3),
    ("LH.CANCELLATIONS", 3),
    ("LH.DOORS", 1),
    ("LH.STOCK", 2),
    ("LH.CUSTOMERS", 3),
    ("LH.SENSORS", 2),
];

fn quickstart(duration: Option<Duration>) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    localcluster::ensure_nisshi()?;
    cargo(&["build", "--package", "mirrorcast", "--bin", "mirrorcast"])?;
    let root = workspace_root();
    let data = root.join("target").join("quickstart");
    let _ = std::fs::remove_dir_all(&data);
    let names: Vec<&str> = REGIONS.iter().map(|(n, _)| *n).collect();
    let ports: Vec<Option<u16>> = REGIONS.iter().map(|(_, p)| Some(*p)).collect();
    println!(
        "starting clusters {} on ports {:?}",
        names.join(", "),
        REGIONS.map(|(_, p)| p)
    );
    let clusters = Clusters::start_in(&data, &names, &ports, Storage::Memory)
        .context("starting the local clusters (are ports 19092-19094 free?)")?;
    let europe = clusters.bootstrap("europe");
    create_topics(&europe)?;

    let config = root.join("examples").join("broadcast.properties");
    let binary = root.join("target").join("debug").join("mirrorcast");
    println!("$ {} run {}", binary.display(), config.display());
    let mut replicator = Command::new(&binary)
        .arg("run")
        .arg(&config)
        .spawn()
        .context("starting mirrorcast")?;

    let result = produce_and_report(&clusters, &stop, duration);
    stop_replicator(&mut replicator);
    drop(clusters);
    let _ = std::fs::remove_dir_all(&data);
    println!(
        "stopped mirrorcast and the clusters, removed {}",
        data.display()
    );
    result
}

fn create_topics(bootstrap: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create()?;
    let topics: Vec<NewTopic> = TOPICS
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = block_on(admin.create_topics(&topics, &AdminOptions::new()))?;
    for result in results {
        if let Err((topic, code)) = result {
            bail!("creating {topic} in europe: {code}");
        }
    }
    Ok(())
}

/// Produces a few events a second to every LH topic in Europe and prints, every five seconds,
/// how many records each region holds.
fn produce_and_report(
    clusters: &Clusters,
    stop: &AtomicBool,
    duration: Option<Duration>,
) -> Result<()> {
    let europe = clusters.bootstrap("europe");
    let producer: BaseProducer = client(&europe).set("linger.ms", "5").create()?;
    let readers: Vec<(String, BaseConsumer)> = REGIONS
        .iter()
        .map(|(name, _)| {
            let consumer = client(&clusters.bootstrap(name))
                .set("allow.auto.create.topics", "false")
                .create()?;
            Ok((name.to_string(), consumer))
        })
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut sequence: u64 = 0;
    println!("producing to LH.* in europe; Ctrl-C stops everything");
    while !stop.load(Ordering::SeqCst) && duration.is_none_or(|d| started.elapsed() < d) {
        for (topic, _) in TOPICS {
            sequence += 1;
            let key = format!("{topic}-{}", sequence % 17);
            let value = format!(
                r#"{{"id":{sequence},"topic":"{topic}","region":"EU","at_ms":{}}}"#,
                started.elapsed().as_millis()
            );
            let _ = producer.send(BaseRecord::to(topic).key(&key).payload(&value));
        }
        producer.poll(Duration::from_millis(200));
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let counts: Vec<String> = readers
                .iter()
                .map(|(name, reader)| format!("{name}: {}", region_total(reader)))
                .collect();
            println!("records in LH.* — {}", counts.join(" | "));
        }
    }
    producer.flush(Duration::from_secs(5))?;
    Ok(())
}

fn region_total(reader: &BaseConsumer) -> String {
    let mut total = 0;
    for (topic, partitions) in TOPICS {
        for partition in 0..partitions {
            match reader.fetch_watermarks(topic, partition, Duration::from_secs(2)) {
                Ok((_, high)) => total += high,
                Err(_) => return "-".into(),
            }
        }
    }
    total.to_string()
}

fn stop_replicator(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signalling our own child, which we have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// rdkafka's admin futures complete on the admin client's own thread; a tiny runtime drives them.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_executor::block_on(future)
}
