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
use localcluster::{Broker, Clusters, Storage};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 8;
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
        let key = (n % 1000).to_string();
        let mut record = BaseRecord::to(topic)
            .key(&key)
            .payload(&payload[..])
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

fn start_replicator(
    binary: &Path,
    dir: &Path,
    clusters: &Clusters,
    targets: &[&str],
    http_port: u16,
) -> Result<Replicator> {
    let mut text = format!(
        "clusters = europe, {}\neurope.bootstrap.servers = {}\n",
        targets.join(", "),
        clusters.bootstrap("europe")
    );
    for t in targets {
        text += &format!(
            "{t}.bootstrap.servers = {}\neurope->{t}.enabled = true\n",
            clusters.bootstrap(t)
        );
    }
    text += "replication.factor = 1\noffset.storage.replication.factor = 1\nheartbeats.topic.replication.factor = 1\n\
             offset-syncs.topic.replication.factor = 1\ncheckpoints.topic.replication.factor = 1\n\
             replication.policy.class = IdentityReplicationPolicy\nsync.topic.acls.enabled = false\nrefresh.topics.interval.seconds = 1\n";
    let config = dir.join(format!("bench-{}.properties", targets.len()));
    std::fs::write(&config, text)?;
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

pub struct Options {
    pub megabytes: u64,
    pub sizes: Vec<usize>,
    pub broker: Broker,
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
        for targets in [vec!["northamerica"], vec!["northamerica", "southamerica"]] {
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
            let port = localcluster::free_port()?;
            let brokers_before = brokers_cpu(&clusters, &names);
            let replicator = start_replicator(&binary, &out_dir, &clusters, &targets, port)?;
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
            let (cpu, peak) = cpu_and_peak(replicator.0.id());
            let brokers = brokers_cpu(&clusters, &names) - brokers_before;
            row["replication_brokers_cpu_s_per_gb"] = (brokers / (mb / 1000.0)).into();
            row["replication_cores_busy"] = ((brokers + cpu) / seconds).into();
            row["replication_seconds"] = seconds.into();
            row["replication_mb_s"] = (mb / seconds).into();
            row["replication_records_s"] = (count as f64 / seconds).into();
            row["cpu_seconds_per_gb"] = (cpu / (mb * targets.len() as f64 / 1000.0)).into();
            row["peak_rss_mib"] = (peak as f64 / 1048576.0).into();
            if let Some(read) = source_records_read(port) {
                row["source_reads_per_record"] = (read / count as f64).into();
            }
            if let (Some(raw), Some(rep)) = (
                row["raw_producer_target_mb_s"].as_f64(),
                row["replication_mb_s"].as_f64(),
            ) {
                row["replication_over_raw_producer"] = (rep / raw).into();
            }
            drop(replicator);
            if targets.len() == 1 {
                let fresh = Clusters::start_on(broker, &["python"], Storage::Memory)?;
                let target = fresh.bootstrap("python");
                create_topic(&target, "python")?;
                let python_seconds =
                    python_copy(&python, root, &europe, &target, TOPIC, "python", count)?;
                row["python_mb_s"] = (mb / python_seconds).into();
                row["mirrorcast_over_python"] = (python_seconds / seconds).into();
            }
            println!("{}", serde_json::to_string(&row)?);
            results.push(row);
        }
    }
    let latency = latency(broker, &binary, &out_dir)?;
    println!("latency: {latency}");
    print_table(&results, &latency);
    let path = out_dir.join("results.json");
    let json = serde_json::json!({ "backlog": results, "latency_ms": latency });
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// End-to-end latency at 5,000 records/s for 10 s, on fresh clusters each time (the test
/// broker's fetch slows down as a partition grows, so both figures start from empty logs):
/// first the broker's own produce-to-consume latency on one cluster, then produce on the
/// source to availability on the target through mirrorcast. One clock: both ends run here.
fn latency(broker: Broker, binary: &Path, out_dir: &Path) -> Result<serde_json::Value> {
    let broker_alone = {
        let clusters = Clusters::start_on(broker, &["europe"], Storage::Memory)?;
        let europe = clusters.bootstrap("europe");
        create_topic(&europe, "latency")?;
        measure_latency(&europe, &europe)?
    };
    let clusters = Clusters::start_on(broker, &["europe", "northamerica"], Storage::Memory)?;
    let port = localcluster::free_port()?;
    let _replicator = start_replicator(binary, out_dir, &clusters, &["northamerica"], port)?;
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
    // mirrorcast's own view: how old records were when read, and when acknowledged.
    let mean = |name: &str| {
        let sum = metric_sum(port, &format!("{name}_sum"))?;
        let count = metric_sum(port, &format!("{name}_count"))?;
        Some(1000.0 * sum / count)
    };
    replicated["mean_age_when_read"] = mean("mirrorcast_record_age_seconds").into();
    replicated["mean_age_when_acknowledged"] =
        mean("mirrorcast_replication_latency_seconds").into();
    Ok(serde_json::json!({ "broker": broker_alone, "mirrorcast": replicated }))
}

/// Produces 100 B records at 5,000/s for 10 s to `source` and measures how long each takes to
/// be readable on `target`, in ms.
fn measure_latency(source: &str, target: &str) -> Result<serde_json::Value> {
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
    let total = rate * 10;
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(total as usize);
    let mut sent = 0u64;
    let now_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    };
    // Records sent before the consumer resolved its end offsets are never seen: stop once all
    // are sent and nothing more came for a second.
    let mut last_received = Instant::now();
    while (latencies.len() as u64) < total
        && (sent < total || last_received.elapsed() < Duration::from_secs(1))
    {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due.min(total) {
            let ts = now_ms();
            let payload = [b'l'; 100];
            let _ = producer.send(
                BaseRecord::<[u8], [u8]>::to("latency")
                    .payload(&payload[..])
                    .timestamp(ts)
                    .partition((sent % PARTITIONS as u64) as i32),
            );
            sent += 1;
        }
        producer.poll(Duration::ZERO);
        while let Some(Ok(m)) = consumer.poll(Duration::ZERO) {
            if let Some(ts) = m.timestamp().to_millis() {
                latencies.push(now_ms() - ts);
                last_received = Instant::now();
            }
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
        "rate": rate, "received": latencies.len(),
        "p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0),
    }))
}

fn print_table(results: &[serde_json::Value], latency: &serde_json::Value) {
    println!("\n| record | targets | raw producer (target) MB/s | raw consumer MB/s | mirrorcast MB/s | records/s | ÷ raw producer | source reads per record | CPU s/GB | brokers' CPU s/GB | cores busy | peak RSS MiB | Python loop MB/s | mirrorcast ÷ Python |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let ratio = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for r in results {
        let f = |k: &str| r[k].as_f64().map_or("-".to_string(), |v| format!("{v:.1}"));
        println!(
            "| {} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["record_bytes"],
            r["targets"],
            f("raw_producer_target_mb_s"),
            f("raw_consumer_mb_s"),
            f("replication_mb_s"),
            f("replication_records_s"),
            ratio(r["replication_over_raw_producer"].as_f64()),
            ratio(r["source_reads_per_record"].as_f64()),
            f("cpu_seconds_per_gb"),
            f("replication_brokers_cpu_s_per_gb"),
            ratio(r["replication_cores_busy"].as_f64()),
            f("peak_rss_mib"),
            f("python_mb_s"),
            ratio(r["mirrorcast_over_python"].as_f64()),
        );
    }
    println!("\nlatency at 5,000 records/s, 100 B, fresh clusters:");
    for (what, l) in [
        (
            "broker alone (produce -> consume, one cluster)",
            &latency["broker"],
        ),
        ("mirrorcast (source -> target)", &latency["mirrorcast"]),
    ] {
        println!(
            "  {what}: p50 {} ms, p99 {} ms, max {} ms ({} records)",
            l["p50"], l["p99"], l["max"], l["received"]
        );
    }
}
