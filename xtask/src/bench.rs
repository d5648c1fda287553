//! `cargo xtask bench`: measures, on local memory-storage clusters, what the brokers themselves
//! accept and serve (a plain producer into the target, a plain consumer from the source) and
//! what mirrorcast replicates, for a backlog to one and to two targets (with how often it read
//! each source record), the same backlog copied by a Python confluent-kafka loop as a peer,
//! end-to-end latency at a fixed rate on fresh clusters, CPU seconds per GB and peak memory.
//! Prints a table and writes JSON.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use localcluster::{Broker, Clusters, MirrorMaker, Storage};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 8;
/// MM2's maximum heap here. Its script's 2 GiB ran out on this backlog: with 8 tasks and its
/// default fetch and producer buffers, two flows threw OutOfMemoryError at 1 GiB, and one flow
/// of 100 B records stopped copying (garbage collection) at 2 GiB.
const MM2_HEAP: &str = "4g";
const TOPIC: &str = "bench";

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

fn create_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create()?;
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    let rt = tokio_free(admin.create_topics([&new], &AdminOptions::new()))?;
    for r in rt {
        if let Err((t, e)) = r {
            bail!("creating {t}: {e}");
        }
    }
    Ok(())
}

fn tokio_free<F: std::future::Future>(f: F) -> F::Output {
    // rdkafka's admin futures are completed by the admin client's own thread.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Produces `count` records of `size` bytes; returns the seconds it took until all were acked.
fn produce(bootstrap: &str, topic: &str, count: u64, size: usize) -> Result<f64> {
    let producer: BaseProducer = client(bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .create()?;
    let payload = vec![b'x'; size];
    let started = Instant::now();
    for n in 0..count {
        // As users' records are: a key, a trace id and an event type besides the value.
        let key = format!("customer-{:06}", n % 100_000);
        let trace_id = format!("{:032x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: "trace-id",
                value: Some(trace_id.as_bytes()),
            })
            .insert(Header {
                key: "event-type",
                value: Some(&b"OrderPlaced"[..]),
            });
        let mut record = BaseRecord::to(topic)
            .key(&key)
            .payload(&payload[..])
            .headers(headers)
            .partition((n % PARTITIONS as u64) as i32);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(600))?;
    Ok(started.elapsed().as_secs_f64())
}

/// Reads every record of `topic`; returns the seconds it took.
fn consume_all(bootstrap: &str, topic: &str, count: u64) -> Result<f64> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "bench-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        // As mirrorcast does: librdkafka's 1 s default pauses fetching whenever the reader
        // falls behind its read-ahead.
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let started = Instant::now();
    let mut seen = 0u64;
    while seen < count {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            seen += 1;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("reading {topic} took over 10 minutes");
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

fn total_records(bootstrap: &str, topic: &str) -> i64 {
    let Ok(consumer) = client(bootstrap).create::<BaseConsumer>() else {
        return 0;
    };
    (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .map_or(0, |(_, h)| h)
        })
        .sum()
}

/// CPU seconds and peak resident memory of a process, from /proc.
fn cpu_and_peak(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    (cpu, peak_kb * 1024)
}

/// CPU seconds the brokers of these clusters used so far.
fn brokers_cpu(clusters: &Clusters, names: &[&str]) -> f64 {
    names
        .iter()
        .filter_map(|n| clusters.get(n).pid())
        .map(|pid| cpu_and_peak(pid).0)
        .sum()
}

struct Replicator(Child);

impl Drop for Replicator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The replication config both replicators run: `europe` to each target (alias = bootstrap).
fn replication_config(
    dir: &Path,
    name: &str,
    source: &str,
    targets: &[(&str, String)],
    extra: &str,
) -> Result<std::path::PathBuf> {
    let aliases: Vec<&str> = targets.iter().map(|(alias, _)| *alias).collect();
    let mut text = format!(
        "clusters = europe, {}\neurope.bootstrap.servers = {source}\n",
        aliases.join(", ")
    );
    for (alias, bootstrap) in targets {
        text +=
            &format!("{alias}.bootstrap.servers = {bootstrap}\neurope->{alias}.enabled = true\n");
    }
    text += "replication.factor = 1\noffset.storage.replication.factor = 1\nheartbeats.topic.replication.factor = 1\n\
             offset-syncs.topic.replication.factor = 1\ncheckpoints.topic.replication.factor = 1\n\
             config.storage.replication.factor = 1\nstatus.storage.replication.factor = 1\n\
             replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy\n\
             sync.topic.acls.enabled = false\nrefresh.topics.interval.seconds = 1\n";
    text += extra;
    let config = dir.join(format!("{name}-{}.properties", targets.len()));
    std::fs::write(&config, text)?;
    Ok(config)
}

fn start_replicator(
    binary: &Path,
    dir: &Path,
    source: &str,
    clusters: &Clusters,
    targets: &[&str],
    extra: &str,
    http_port: u16,
) -> Result<Replicator> {
    let targets: Vec<(&str, String)> = targets
        .iter()
        .map(|t| (*t, clusters.bootstrap(t)))
        .collect();
    let config = replication_config(dir, "mirrorcast", source, &targets, extra)?;
    let child = Command::new(binary)
        .arg("run")
        .arg(&config)
        .arg("--http")
        .arg(format!("127.0.0.1:{http_port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting mirrorcast")?;
    Ok(Replicator(child))
}

/// What turns exactly once on for every target.
const EXACTLY_ONCE: &str = "exactly.once.source.support = enabled\n";

/// mirrorcast's copy of the `count` records (`mb` MB) of europe (in `source`) to `targets` (in
/// `clusters`) with `threads` copier threads (`None`: its default) in each of `instances`
/// processes (sharing the source through a group when more than one), exactly once or not,
/// into `row`. (Exactly once, the targets' end offsets also count a commit marker per
/// partition and commit: about one per 100 ms, next to thousands of records.)
#[allow(clippy::too_many_arguments)]
fn measure_mirrorcast(
    binary: &Path,
    out_dir: &Path,
    source: &Clusters,
    clusters: &Clusters,
    targets: &[&str],
    (threads, instances, exactly_once): (Option<usize>, usize, bool),
    (count, mb): (u64, f64),
    row: &mut serde_json::Value,
) -> Result<()> {
    let mut extra = threads.map_or(String::new(), |n| format!("tasks.max = {n}\n"));
    if exactly_once {
        extra += EXACTLY_ONCE;
    }
    if instances > 1 {
        extra += "instances.group.enabled = true\n";
    }
    let europe = source.bootstrap("europe");
    let mut ports = Vec::new();
    let mut replicators = Vec::new();
    for _ in 0..instances.max(1) {
        let port = localcluster::free_port()?;
        replicators.push(start_replicator(
            binary, out_dir, &europe, clusters, targets, &extra, port,
        )?);
        ports.push(port);
    }
    let cpu_and_peak_all = || {
        replicators
            .iter()
            .map(|r| cpu_and_peak(r.0.id()))
            .fold((0.0, 0), |(cpu, peak), (c, p)| (cpu + c, peak.max(p)))
    };
    let brokers_now = || brokers_cpu(source, &["europe"]) + brokers_cpu(clusters, targets);
    // From the first record on every target to the last, as for MM2 below.
    let first_copied = Instant::now();
    while targets
        .iter()
        .any(|t| total_records(&clusters.bootstrap(t), TOPIC) == 0)
    {
        if first_copied.elapsed() > Duration::from_secs(120) {
            bail!("mirrorcast copied nothing in 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let brokers_before = brokers_now();
    let (cpu_before, _) = cpu_and_peak_all();
    let started = Instant::now();
    loop {
        let done = targets
            .iter()
            .all(|t| total_records(&clusters.bootstrap(t), TOPIC) >= count as i64);
        if done {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("replication did not finish in 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_after, peak) = cpu_and_peak_all();
    let cpu = cpu_after - cpu_before;
    let brokers = brokers_now() - brokers_before;
    row["replication_brokers_cpu_s_per_gb"] = (brokers / (mb / 1000.0)).into();
    row["replication_cores_busy"] = ((brokers + cpu) / seconds).into();
    row["mirrorcast_cores_busy"] = (cpu / seconds).into();
    row["replication_seconds"] = seconds.into();
    row["replication_mb_s"] = (mb / seconds).into();
    row["replication_records_s"] = (count as f64 / seconds).into();
    row["cpu_seconds_per_gb"] = (cpu / (mb * targets.len() as f64 / 1000.0)).into();
    row["peak_rss_mib"] = (peak as f64 / 1048576.0).into();
    let reads: Option<Vec<f64>> = ports.iter().map(|&p| source_records_read(p)).collect();
    if let Some(reads) = reads {
        row["source_reads_per_record"] = (reads.iter().sum::<f64>() / count as f64).into();
    }
    if let (Some(raw), Some(rep)) = (
        row["raw_producer_target_mb_s"].as_f64(),
        row["replication_mb_s"].as_f64(),
    ) {
        row["replication_over_raw_producer"] = (rep / raw).into();
    }
    Ok(())
}

/// Records read from the source by every reader of the replicator, from its `/metrics`.
fn source_records_read(port: u16) -> Option<f64> {
    metric_sum(port, "mirrorcast_source_records_read_total{")
}

/// The sum of every sample of the replicator's `/metrics` whose line starts with `prefix`.
fn metric_sum(port: u16, prefix: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let total = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Some(total)
}

/// The pinned confluent-kafka (its wheel bundles librdkafka) in a virtualenv under
/// `target/bench`, made on first use.
fn python_env(out_dir: &Path) -> Result<std::path::PathBuf> {
    const CONFLUENT_KAFKA: &str = "confluent-kafka==2.12.1";
    let venv = out_dir.join("venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import confluent_kafka"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ready {
        return Ok(python);
    }
    println!("installing {CONFLUENT_KAFKA} into {}", venv.display());
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("python3 -m venv (the Python peer needs CPython 3 with venv)")?;
    if !made.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", CONFLUENT_KAFKA])
        .status()
        .context("pip install confluent-kafka")?;
    if !installed.success() {
        bail!("pip install {CONFLUENT_KAFKA} failed");
    }
    Ok(python)
}

/// The Python peer copies `count` records of `topic` from `source` into `target_topic` on
/// `target`; returns the seconds it took.
fn python_copy(
    python: &Path,
    root: &Path,
    source: &str,
    target: &str,
    topic: &str,
    target_topic: &str,
    count: u64,
) -> Result<f64> {
    let output = Command::new(python)
        .arg(root.join("xtask/bench/python_copy.py"))
        .args([source, target, topic, target_topic, &count.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("running the Python peer")?;
    if !output.status.success() {
        bail!("the Python peer failed ({})", output.status);
    }
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "Python peer output: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    result["seconds"]
        .as_f64()
        .context("the Python peer printed no seconds")
}

/// Genuine MirrorMaker 2 (dedicated mode, `tasks.max` = the partition count, otherwise its
/// defaults) copies the backlog of `source` to fresh clusters; returns its figures over the
/// interval from the first record on a target to the last (the JVM and Connect start-up, about
/// 10-20 s, is left out, as it would be in a long-running deployment).
fn mm2_copy(
    broker: Broker,
    out_dir: &Path,
    source: &str,
    targets: usize,
    count: u64,
    mb: f64,
) -> Result<serde_json::Value> {
    let aliases = ["northamerica", "southamerica"];
    let fresh = Clusters::start_on(broker, &aliases[..targets], Storage::Memory)?;
    let target_list: Vec<(&str, String)> = aliases[..targets]
        .iter()
        .map(|a| (*a, fresh.bootstrap(a)))
        .collect();
    let extra = format!("tasks.max = {PARTITIONS}\n");
    let config = replication_config(out_dir, "mm2", source, &target_list, &extra)?;
    let log = out_dir.join(format!("mm2-{targets}.log"));
    let mut mm2 = MirrorMaker::start_with_heap(&config, &[], &log, MM2_HEAP)?;
    let pid = mm2.pid().context("MM2 did not start")?;
    let copied = || -> i64 {
        target_list
            .iter()
            .map(|(_, b)| total_records(b, TOPIC))
            .min()
            .unwrap_or(0)
    };
    let started = Instant::now();
    while copied() == 0 {
        if !mm2.is_running() || started.elapsed() > Duration::from_secs(300) {
            bail!("MM2 copied nothing; its log is {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = Instant::now();
    let brokers_before = brokers_cpu(&fresh, &aliases[..targets]);
    let (cpu_before, _) = cpu_and_peak(pid);
    // A JVM out of memory keeps running with dead threads: a copy that stops moving is a failure.
    let (mut last, mut last_moved) = (0, Instant::now());
    loop {
        let now = copied();
        if now >= count as i64 {
            break;
        }
        if now > last {
            (last, last_moved) = (now, Instant::now());
        }
        if !mm2.is_running() || last_moved.elapsed() > Duration::from_secs(60) {
            bail!(
                "MM2 stopped copying at {now} of {count} records; its log is {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let seconds = first.elapsed().as_secs_f64();
    let (cpu, peak) = cpu_and_peak(pid);
    let target_brokers = brokers_cpu(&fresh, &aliases[..targets]) - brokers_before;
    mm2.stop(Duration::from_secs(5));
    // Records copied before `first` are few (one fetch); count the whole backlog.
    Ok(serde_json::json!({
        "mb_s": mb / seconds,
        "records_s": count as f64 / seconds,
        "cpu_seconds_per_gb": (cpu - cpu_before) / (mb * targets as f64 / 1000.0),
        "target_brokers_cpu_s_per_gb": target_brokers / (mb / 1000.0),
        "peak_rss_mib": peak as f64 / 1048576.0,
    }))
}

pub struct Options {
    pub megabytes: u64,
    pub sizes: Vec<usize>,
    pub broker: Broker,
    /// Every figure is measured this many times; the table shows the median and the spread.
    pub runs: usize,
    /// Target counts of the backlog runs (1: northamerica, 2: and southamerica).
    pub targets: Vec<usize>,
    /// Whether genuine MirrorMaker 2 is measured too (on Apache Kafka).
    pub mm2: bool,
    /// mirrorcast is measured with each of these `tasks.max` (empty: once, its default).
    pub copier_threads: Vec<usize>,
    /// ... and as each of these numbers of processes in one group (empty: one process).
    pub instances: Vec<usize>,
    /// ... each also with exactly once, and its latency too.
    pub exactly_once: bool,
}

pub fn run(options: &Options, root: &Path) -> Result<()> {
    match options.broker {
        Broker::Nisshi => drop(localcluster::ensure_nisshi()?),
        Broker::Kafka => drop(localcluster::ensure_kafka()?),
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--package",
            "mirrorcast",
            "--bin",
            "mirrorcast",
        ])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building mirrorcast failed");
    }
    let binary = root.join("target/release/mirrorcast");
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let python = python_env(&out_dir)?;
    let runs: Vec<Run> = (1..=options.runs)
        .map(|n| {
            println!("=== run {n} of {}", options.runs);
            run_once(options, &binary, &out_dir, &python, root)
        })
        .collect::<Result<_>>()?;
    let summary = summarize(&runs);
    print_table(&summary);
    let path = out_dir.join("results.json");
    let json = serde_json::json!({ "broker": options.broker.name(), "median_and_spread": summary, "runs": runs.iter().map(|r| serde_json::json!({"backlog": r.backlog, "latency_ms": r.latency})).collect::<Vec<_>>() });
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// One run's figures: a row per record size and target count, and the latencies.
struct Run {
    backlog: Vec<serde_json::Value>,
    latency: serde_json::Value,
}

fn run_once(
    options: &Options,
    binary: &Path,
    out_dir: &Path,
    python: &Path,
    root: &Path,
) -> Result<Run> {
    let broker = options.broker;
    let mut results = Vec::new();
    // `--megabytes 0`: the latency part only.
    let sizes = if options.megabytes == 0 {
        &[][..]
    } else {
        &options.sizes[..]
    };
    for &size in sizes {
        let count = options.megabytes * 1024 * 1024 / size as u64;
        let mb = (count * size as u64) as f64 / 1e6;
        println!("== {size} B records: {count} records, {mb:.0} MB backlog");
        let target_sets = [vec!["northamerica"], vec!["northamerica", "southamerica"]];
        for targets in target_sets
            .into_iter()
            .filter(|t| options.targets.contains(&t.len()))
        {
            let mut names = vec!["europe"];
            names.extend(targets.iter().copied());
            let clusters = Clusters::start_on(broker, &names, Storage::Memory)?;
            let europe = clusters.bootstrap("europe");
            create_topic(&europe, TOPIC)?;
            let produce_source = produce(&europe, TOPIC, count, size)?;
            let mut row = serde_json::json!({ "record_bytes": size, "records": count, "megabytes": mb, "targets": targets.len() });
            if targets.len() == 1 {
                let consume = consume_all(&europe, TOPIC, count)?;
                // Every measurement writes into an empty cluster of its own: this broker gets
                // slower as it holds more, which would favour whichever ran first.
                let fresh = Clusters::start_on(broker, &["raw"], Storage::Memory)?;
                let target = fresh.bootstrap("raw");
                create_topic(&target, "raw")?;
                let broker = brokers_cpu(&fresh, &["raw"]);
                let client = cpu_and_peak(std::process::id()).0;
                let produce_target = produce(&target, "raw", count, size)?;
                let gb = mb / 1000.0;
                row["raw_producer_broker_cpu_s_per_gb"] =
                    ((brokers_cpu(&fresh, &["raw"]) - broker) / gb).into();
                drop(fresh);
                row["raw_producer_client_cpu_s_per_gb"] =
                    ((cpu_and_peak(std::process::id()).0 - client) / gb).into();
                row["raw_producer_source_mb_s"] = (mb / produce_source).into();
                row["raw_producer_target_mb_s"] = (mb / produce_target).into();
                row["raw_consumer_mb_s"] = (mb / consume).into();
            }
            // One row per copier-thread count (`tasks.max`), each into targets of its own;
            // MM2 and Python once, with the first.
            let thread_counts: Vec<Option<usize>> = if options.copier_threads.is_empty() {
                vec![None]
            } else {
                options.copier_threads.iter().copied().map(Some).collect()
            };
            let process_counts = if options.instances.is_empty() {
                vec![1]
            } else {
                options.instances.clone()
            };
            let modes = if options.exactly_once {
                &[false, true][..]
            } else {
                &[false][..]
            };
            let variants: Vec<(Option<usize>, usize, bool)> = process_counts
                .iter()
                .flat_map(|&n| thread_counts.iter().map(move |&t| (t, n)))
                .flat_map(|(t, n)| modes.iter().map(move |&eos| (t, n, eos)))
                .collect();
            let base = row;
            for (variant, (threads, instances, exactly_once)) in variants.into_iter().enumerate() {
                let mut row = base.clone();
                if let Some(threads) = threads {
                    row["copier_threads"] = threads.into();
                }
                row["instances"] = instances.into();
                row["exactly_once"] = u8::from(exactly_once).into();
                let fresh_targets;
                let into = if variant == 0 {
                    &clusters
                } else {
                    fresh_targets = Clusters::start_on(broker, &targets, Storage::Memory)?;
                    &fresh_targets
                };
                let sizes = (count, mb);
                measure_mirrorcast(
                    binary,
                    out_dir,
                    &clusters,
                    into,
                    &targets,
                    (threads, instances, exactly_once),
                    sizes,
                    &mut row,
                )?;
                if variant == 0 {
                    let seconds = row["replication_seconds"].as_f64().unwrap_or(f64::NAN);
                    if broker == Broker::Kafka && options.mm2 {
                        // A copy MM2 could not finish is a result too: say where it stopped.
                        let mm2 = mm2_copy(broker, out_dir, &europe, targets.len(), count, mb)
                            .unwrap_or_else(|e| {
                                println!("MM2: {e:#}");
                                serde_json::json!({ "failed": format!("{e:#}") })
                            });
                        let (ours, theirs) =
                            (&row["cpu_seconds_per_gb"], &mm2["cpu_seconds_per_gb"]);
                        if let (Some(ours), Some(theirs)) = (ours.as_f64(), theirs.as_f64()) {
                            // MB per replicator CPU-second, mirrorcast's over MM2's.
                            row["mb_per_cpu_s_over_mm2"] = (theirs / ours).into();
                        }
                        if let (Some(ours), Some(theirs)) =
                            (row["peak_rss_mib"].as_f64(), mm2["peak_rss_mib"].as_f64())
                        {
                            row["rss_over_mm2"] = (ours / theirs).into();
                        }
                        row["mm2"] = mm2;
                    }
                    if targets.len() == 1 {
                        let fresh = Clusters::start_on(broker, &["python"], Storage::Memory)?;
                        let target = fresh.bootstrap("python");
                        create_topic(&target, "python")?;
                        let python_seconds =
                            python_copy(python, root, &europe, &target, TOPIC, "python", count)?;
                        row["python_mb_s"] = (mb / python_seconds).into();
                        row["mirrorcast_over_python"] = (python_seconds / seconds).into();
                    }
                }
                println!("{}", serde_json::to_string(&row)?);
                results.push(row);
            }
        }
    }
    let latency = latency(broker, options.mm2, options.exactly_once, binary, out_dir)?;
    println!("latency: {latency}");
    Ok(Run {
        backlog: results,
        latency,
    })
}

/// Median and spread (min, max) of every number over the runs, row by row: the same shape as a
/// run, each number replaced by `{"median", "min", "max"}`.
fn summarize(runs: &[Run]) -> serde_json::Value {
    fn combine(values: &[&serde_json::Value]) -> serde_json::Value {
        match values.first() {
            Some(serde_json::Value::Object(first)) => first
                .keys()
                .map(|k| {
                    let inner: Vec<&serde_json::Value> =
                        values.iter().filter_map(|v| v.get(k)).collect();
                    (k.clone(), combine(&inner))
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
            Some(serde_json::Value::Number(_)) => {
                let mut numbers: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                numbers.sort_by(f64::total_cmp);
                let median = numbers[numbers.len() / 2];
                serde_json::json!({ "median": median, "min": numbers[0], "max": numbers[numbers.len() - 1] })
            }
            // Text (e.g. why MM2 failed): every run's, without repeats.
            Some(serde_json::Value::String(_)) => {
                let mut texts: Vec<&str> = values.iter().filter_map(|v| v.as_str()).collect();
                texts.dedup();
                texts.join("; ").into()
            }
            Some(other) => (*other).clone(),
            None => serde_json::Value::Null,
        }
    }
    let rows = runs.first().map_or(0, |r| r.backlog.len());
    let backlog: Vec<serde_json::Value> = (0..rows)
        .map(|i| combine(&runs.iter().map(|r| &r.backlog[i]).collect::<Vec<_>>()))
        .collect();
    let latency = combine(&runs.iter().map(|r| &r.latency).collect::<Vec<_>>());
    serde_json::json!({ "backlog": backlog, "latency_ms": latency })
}

/// End-to-end latency at 5,000 records/s (10 s measured once the path is warm), on fresh
/// clusters each time (nisshi's fetch slows down as a partition grows, so every figure starts
/// from empty logs):
/// first the broker's own produce-to-consume latency on one cluster, then produce on the
/// source to availability on the target through mirrorcast. One clock: both ends run here.
fn latency(
    broker: Broker,
    mm2: bool,
    exactly_once: bool,
    binary: &Path,
    out_dir: &Path,
) -> Result<serde_json::Value> {
    let broker_alone = {
        let clusters = Clusters::start_on(broker, &["europe"], Storage::Memory)?;
        let europe = clusters.bootstrap("europe");
        create_topic(&europe, "latency")?;
        measure_latency(&europe, &europe)?
    };
    let mut result = serde_json::json!({
        "broker": broker_alone,
        "mirrorcast": mirrorcast_latency(broker, binary, out_dir, "")?,
    });
    if exactly_once {
        // Read `read_committed`, as the latency consumer reads: until the commit.
        result["mirrorcast_exactly_once"] =
            mirrorcast_latency(broker, binary, out_dir, EXACTLY_ONCE)?;
    }
    if broker == Broker::Kafka && mm2 {
        result["mm2"] = mm2_latency(out_dir)?;
    }
    Ok(result)
}

/// The latency through mirrorcast (with `extra` settings) on fresh clusters.
fn mirrorcast_latency(
    broker: Broker,
    binary: &Path,
    out_dir: &Path,
    extra: &str,
) -> Result<serde_json::Value> {
    let clusters = Clusters::start_on(broker, &["europe", "northamerica"], Storage::Memory)?;
    let port = localcluster::free_port()?;
    let source = clusters.bootstrap("europe");
    let _replicator = start_replicator(
        binary,
        out_dir,
        &source,
        &clusters,
        &["northamerica"],
        extra,
        port,
    )?;
    let europe = clusters.bootstrap("europe");
    let target = clusters.bootstrap("northamerica");
    create_topic(&europe, "latency")?;
    // Wait until the replicator has created the remote topic and reads it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while total_records(&target, "latency") == 0 && Instant::now() < deadline {
        produce(&europe, "latency", 8, 100)?;
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut replicated = measure_latency(&europe, &target)?;
    // mirrorcast's own view over the whole 20 s: how old records were when read, and when
    // acknowledged.
    let mean = |name: &str| {
        let sum = metric_sum(port, &format!("{name}_sum"))?;
        let count = metric_sum(port, &format!("{name}_count"))?;
        Some(1000.0 * sum / count)
    };
    replicated["mean_age_when_read"] = mean("mirrorcast_record_age_seconds").into();
    replicated["mean_age_when_acknowledged"] =
        mean("mirrorcast_replication_latency_seconds").into();
    drop(_replicator);
    drop(clusters);
    Ok(replicated)
}

/// The same latency measurement through genuine MirrorMaker 2 on fresh clusters.
fn mm2_latency(out_dir: &Path) -> Result<serde_json::Value> {
    let clusters = Clusters::start_on(Broker::Kafka, &["europe", "northamerica"], Storage::Memory)?;
    let europe = clusters.bootstrap("europe");
    let target = clusters.bootstrap("northamerica");
    create_topic(&europe, "latency")?;
    let config = replication_config(
        out_dir,
        "mm2-latency",
        &europe,
        &[("northamerica", target.clone())],
        &format!("tasks.max = {PARTITIONS}\n"),
    )?;
    let log = out_dir.join("mm2-latency.log");
    let _mm2 = MirrorMaker::start_with_heap(&config, &[], &log, MM2_HEAP)?;
    let deadline = Instant::now() + Duration::from_secs(180);
    while total_records(&target, "latency") == 0 {
        if Instant::now() > deadline {
            bail!(
                "MM2 copied nothing in 3 minutes; its log is {}",
                log.display()
            );
        }
        produce(&europe, "latency", 8, 100)?;
        std::thread::sleep(Duration::from_millis(500));
    }
    measure_latency(&europe, &target)
}

/// Produces 100 B records at 5,000/s to `source` and measures, once the path is warm, how long
/// each record of 10 s takes to be readable on `target`, in ms. Warm means at least 10 s of
/// traffic and a second in which no record took more than [`WARM_LATENCY_MS`]: fresh JVM brokers
/// compile their hot code first, and with two clusters and a replicator on 2 cores the path ran
/// about 2 s behind for its first 15 s or so (records read 2 s after they were written), which
/// a fixed 10 s warm-up measured half the time. The warm-up gives up after 60 s and measures
/// anyway; how long it took is part of the result.
fn measure_latency(source: &str, target: &str) -> Result<serde_json::Value> {
    const MIN_WARM_UP: Duration = Duration::from_secs(10);
    const MAX_WARM_UP: Duration = Duration::from_secs(60);
    const MEASURED: i64 = 10_000;
    let consumer: BaseConsumer = client(target)
        .set("group.id", "bench-latency")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset("latency", p, Offset::End)?;
    }
    consumer.assign(&list)?;
    // Kafka 4's default linger: with none, this broker cannot take 5,000 single-record
    // requests a second and records would wait in the producer.
    let producer: BaseProducer = client(source).set("linger.ms", "5").create()?;
    let rate = 5000u64;
    let start = Instant::now();
    let mut latencies = Vec::with_capacity((rate * 10) as usize);
    let mut sent = 0u64;
    let now_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    };
    // Records written from this time on are measured, once the path is warm.
    let mut measured_from: Option<i64> = None;
    let mut warm_up = Duration::ZERO;
    let (mut second, mut worst_this_second) = (0u64, 0i64);
    let mut last_received = Instant::now();
    loop {
        let now = now_ms();
        let stop_sending = measured_from.is_some_and(|from| now >= from + MEASURED);
        // Records sent before the consumer resolved its end offsets are never seen: stop once all
        // are sent and nothing more came for a second.
        if stop_sending && last_received.elapsed() >= Duration::from_secs(1) {
            break;
        }
        if !stop_sending {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let payload = [b'l'; 100];
                let _ = producer.send(
                    BaseRecord::<[u8], [u8]>::to("latency")
                        .payload(&payload[..])
                        .timestamp(now_ms())
                        .partition((sent % PARTITIONS as u64) as i32),
                );
                sent += 1;
            }
        }
        producer.poll(Duration::ZERO);
        while let Some(Ok(m)) = consumer.poll(Duration::ZERO) {
            let Some(ts) = m.timestamp().to_millis() else {
                continue;
            };
            last_received = Instant::now();
            let latency = now_ms() - ts;
            worst_this_second = worst_this_second.max(latency);
            if measured_from.is_some_and(|from| ts >= from && ts < from + MEASURED) {
                latencies.push(latency);
            }
        }
        if measured_from.is_none() && start.elapsed().as_secs() > second {
            second = start.elapsed().as_secs();
            let warm = worst_this_second > 0 && worst_this_second < WARM_LATENCY_MS;
            if start.elapsed() >= MAX_WARM_UP || (warm && start.elapsed() >= MIN_WARM_UP) {
                warm_up = start.elapsed();
                measured_from = Some(now_ms());
            }
            worst_this_second = 0;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(-1)
    };
    Ok(serde_json::json!({
        "rate": rate, "received": latencies.len(), "warm_up_seconds": warm_up.as_secs(),
        "p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0),
    }))
}

/// Warm when no record of a second took longer than this (ms).
const WARM_LATENCY_MS: i64 = 500;

/// Prints the medians, with the spread (min-max over the runs) of the figures that vary most.
fn print_table(summary: &serde_json::Value) {
    let median = |v: &serde_json::Value| v["median"].as_f64();
    let num = |v: &serde_json::Value, digits: usize| {
        median(v).map_or("-".to_string(), |m| format!("{m:.digits$}"))
    };
    let spread = |v: &serde_json::Value| match (median(v), v["min"].as_f64(), v["max"].as_f64()) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.1} ({lo:.1}-{hi:.1})"),
        _ => "-".to_string(),
    };
    println!("\nMedian of the runs; (min-max) where shown.\n");
    println!("| record | targets | processes | copier threads | exactly once | raw producer MB/s | raw consumer MB/s | mirrorcast MB/s | records/s | ÷ raw producer | source reads/record | mirrorcast CPU s/GB | mirrorcast cores busy | all cores busy | brokers' CPU s/GB | peak RSS MiB | MM2 MB/s | MM2 CPU s/GB | MM2 peak RSS MiB | MB per CPU-s ÷ MM2 | RSS ÷ MM2 | Python MB/s |");
    println!(
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in summary["backlog"].as_array().into_iter().flatten() {
        println!(
            "| {} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["record_bytes"]["median"],
            r["targets"]["median"],
            median(&r["instances"]).map_or("1".to_string(), |n| n.to_string()),
            median(&r["copier_threads"]).map_or("default".to_string(), |n| n.to_string()),
            if median(&r["exactly_once"]) == Some(1.0) { "yes" } else { "no" },
            num(&r["raw_producer_target_mb_s"], 1),
            num(&r["raw_consumer_mb_s"], 1),
            spread(&r["replication_mb_s"]),
            num(&r["replication_records_s"], 0),
            num(&r["replication_over_raw_producer"], 2),
            num(&r["source_reads_per_record"], 2),
            spread(&r["cpu_seconds_per_gb"]),
            num(&r["mirrorcast_cores_busy"], 2),
            num(&r["replication_cores_busy"], 2),
            num(&r["replication_brokers_cpu_s_per_gb"], 1),
            num(&r["peak_rss_mib"], 0),
            spread(&r["mm2"]["mb_s"]),
            spread(&r["mm2"]["cpu_seconds_per_gb"]),
            num(&r["mm2"]["peak_rss_mib"], 0),
            num(&r["mb_per_cpu_s_over_mm2"], 2),
            num(&r["rss_over_mm2"], 2),
            num(&r["python_mb_s"], 1),
        );
    }
    for r in summary["backlog"].as_array().into_iter().flatten() {
        if let Some(failed) = r["mm2"]["failed"].as_str() {
            println!(
                "\nMM2, {} B, {} target(s), did not finish in some run: {failed}",
                r["record_bytes"]["median"], r["targets"]["median"]
            );
        }
    }
    let latency = &summary["latency_ms"];
    println!(
        "\nlatency at 5,000 records/s, 100 B, fresh clusters, 10 s once warm (see warm_up_seconds in results.json), ms, median (min-max) of the runs:"
    );
    for (what, l) in [
        (
            "broker alone (produce -> consume, one cluster)",
            &latency["broker"],
        ),
        ("mirrorcast (source -> target)", &latency["mirrorcast"]),
        (
            "mirrorcast exactly once (source -> target, read_committed)",
            &latency["mirrorcast_exactly_once"],
        ),
        ("MM2 (source -> target)", &latency["mm2"]),
    ] {
        if l.is_null() {
            continue;
        }
        println!(
            "  {what}: p50 {}, p99 {}, max {}",
            spread(&l["p50"]),
            spread(&l["p99"]),
            spread(&l["max"])
        );
    }
}
