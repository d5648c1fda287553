//! `cargo xtask bench`: measures, on local memory-storage clusters, what the brokers themselves
//! accept and serve (a plain producer into the target, a plain consumer from the source) and
//! what mirrorcast replicates, for a backlog to one and to two targets (with how often it read
//! each source record), the same backlog copied by a Python confluent-kafka loop as a peer,
//! end-to-end latency at a fixed rate on fresh clusters, CPU seconds per GB and peak memory.
//! Prints a table and writes JSON. `--churn-minutes` measures instead whether its state stays
//! bounded while topics and groups come and go ([`churn`]).
//!
//! This file owns the options, the runs and what the parts share (constants, the replication
//! config); `backlog` measures one run, `latency` the latencies, `report` sums up and prints.

mod backlog;
mod churn;
mod clients;
mod cpu;
mod latency;
mod mirrorcast;
mod mm2;
mod python;
mod report;

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};
use localcluster::Broker;

use backlog::run_once;
use python::python_env;
use report::{print_table, summarize};

const PARTITIONS: i32 = 8;
/// MM2's maximum heap here. Its script's 2 GiB ran out on this backlog: with 8 tasks and its
/// default fetch and producer buffers, two flows threw OutOfMemoryError at 1 GiB, and one flow
/// of 100 B records stopped copying (garbage collection) at 2 GiB.
const MM2_HEAP: &str = "4g";
const TOPIC: &str = "bench";

/// What turns exactly once on for every target.
const EXACTLY_ONCE: &str = "exactly.once.source.support = enabled\n";

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
    /// ... on each of these data planes (`data.plane`).
    pub data_planes: Vec<String>,
    /// The source producer's `compression.type`.
    pub source_compression: String,
    /// Instead of all that: topics and groups churned this long, printing the replicator's
    /// memory and metric series after a warm-up and at the end.
    pub churn_minutes: Option<u64>,
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
    if let Some(minutes) = options.churn_minutes {
        return churn::run_churn(options.broker, minutes, &binary, &out_dir);
    }
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
