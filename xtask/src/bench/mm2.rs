//! Running genuine MirrorMaker 2 on the same backlog, for comparison.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use localcluster::{Broker, Clusters, MirrorMaker, Storage};

use super::clients::total_records;
use super::cpu::{brokers_cpu, cpu_and_peak};
use super::{replication_config, MM2_HEAP, PARTITIONS, TOPIC};

/// Genuine MirrorMaker 2 (dedicated mode, `tasks.max` = the partition count, otherwise its
/// defaults) copies the backlog of `source` to fresh clusters; returns its figures over the
/// interval from the first record on a target to the last (the JVM and Connect start-up, about
/// 10-20 s, is left out, as it would be in a long-running deployment).
pub(super) fn mm2_copy(
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
