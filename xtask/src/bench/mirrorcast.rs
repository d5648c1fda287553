//! Running mirrorcast: starting its processes on the benchmark's clusters, measuring a backlog
//! copy, and reading its `/metrics`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use localcluster::Clusters;

use super::clients::total_records;
use super::cpu::{brokers_cpu, cpu_and_peak};
use super::{replication_config, EXACTLY_ONCE, TOPIC};

pub(super) struct Replicator(Child);

impl Replicator {
    pub(super) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn start_replicator(
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
    // A profiler to run it under (e.g. `heaptrack`), for a look at where memory goes; the
    // figures then measure the wrapper, not mirrorcast.
    let mut command = match std::env::var("MIRRORCAST_BENCH_WRAPPER") {
        Ok(wrapper) if !wrapper.trim().is_empty() => {
            let mut words = wrapper.split_whitespace();
            let mut command = Command::new(words.next().unwrap_or_default());
            command.args(words).arg(binary);
            command
        }
        _ => Command::new(binary),
    };
    let child = command
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

/// mirrorcast's copy of the `count` records (`mb` MB) of europe (in `source`) to `targets` (in
/// `clusters`) with `threads` copier threads (`None`: its default) in each of `instances`
/// processes (sharing the source through a group when more than one), exactly once or not,
/// into `row`. (Exactly once, the targets' end offsets also count a commit marker per
/// partition and commit: about one per 100 ms, next to thousands of records.)
#[allow(clippy::too_many_arguments)]
pub(super) fn measure_mirrorcast(
    binary: &Path,
    out_dir: &Path,
    source: &Clusters,
    clusters: &Clusters,
    targets: &[&str],
    (threads, instances, exactly_once, plane): (Option<usize>, usize, bool, &str),
    (count, mb): (u64, f64),
    row: &mut serde_json::Value,
) -> Result<()> {
    let mut extra = threads.map_or(String::new(), |n| format!("tasks.max = {n}\n"));
    if exactly_once {
        extra += EXACTLY_ONCE;
    }
    extra += &format!("data.plane = {plane}\n");
    // One process or several, the file is the same: the group (on by default) shares it.
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
    // The target's log against the source's: what crossing the WAN and storing the copy cost.
    let source_bytes = topic_log_bytes(source, "europe", TOPIC);
    let target_bytes: u64 = targets
        .iter()
        .map(|t| topic_log_bytes(clusters, t, TOPIC))
        .sum();
    row["source_log_over_record_bytes"] = (source_bytes as f64 / (mb * 1e6)).into();
    if source_bytes > 0 {
        row["target_over_source_bytes"] =
            (target_bytes as f64 / targets.len() as f64 / source_bytes as f64).into();
    }
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

/// The replicator's `/metrics` response (headers included).
pub(super) fn metrics_text(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The sum of every sample of the replicator's `/metrics` whose line starts with `prefix`.
pub(super) fn metric_sum(port: u16, prefix: &str) -> Option<f64> {
    let text = metrics_text(port)?;
    let total = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Some(total)
}

/// The bytes of `topic`'s log segments on cluster `name`'s broker (its data directory).
pub(super) fn topic_log_bytes(clusters: &Clusters, name: &str, topic: &str) -> u64 {
    fn walk(dir: &Path, topic: &str, inside: bool) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|entry| {
                let path = entry.path();
                let file_name = entry.file_name().to_string_lossy().to_string();
                if path.is_dir() {
                    let partition_dir = file_name
                        .rsplit_once('-')
                        .is_some_and(|(t, p)| t == topic && p.parse::<u32>().is_ok());
                    walk(&path, topic, partition_dir)
                } else if inside && file_name.ends_with(".log") {
                    entry.metadata().map_or(0, |m| m.len())
                } else {
                    0
                }
            })
            .sum()
    }
    walk(clusters.get(name).data_dir(), topic, false)
}
