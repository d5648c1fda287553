//! `cargo xtask bench --churn-minutes N`: whether mirrorcast's state stays bounded while topics
//! and consumer groups come and go for a long time. Every step creates a topic, writes to it,
//! commits a group on it, and deletes the topic and group of a few steps before (the flow syncs
//! deletions, so their partitions are forgotten too); the replicator's resident memory and its
//! number of metric series are printed after a warm-up and at the end.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use localcluster::{Broker, Clusters, Storage};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::clients::{client, create_topic, produce, tokio_free};
use super::cpu::status_kb;
use super::mirrorcast::{metrics_text, start_replicator};
use super::PARTITIONS;

/// How long a step takes at least.
const STEP: Duration = Duration::from_secs(2);
/// Topics and groups alive at once.
const ALIVE: usize = 5;
/// Before the first sample: the flows started and the first topics are copied.
const WARM_UP: Duration = Duration::from_secs(30);

const EXTRA: &str = "sync.topic.deletions.enabled = true\n\
                     emit.checkpoints.interval.seconds = 1\n\
                     sync.group.offsets.enabled = true\n\
                     sync.group.offsets.interval.seconds = 1\n\
                     refresh.groups.interval.seconds = 1\n\
                     topics = churn-.*\n";

/// What is sampled of the replicator.
#[derive(Debug)]
struct Sample {
    at: Duration,
    steps: usize,
    rss_mib: f64,
    series: usize,
}

fn sample(pid: u32, port: u16, started: Instant, steps: usize) -> Sample {
    let rss_kb = status_kb(pid, "VmRSS") as f64;
    let series = metrics_text(port)
        .map(|text| {
            let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
            body.lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .count()
        })
        .unwrap_or(0);
    Sample {
        at: started.elapsed(),
        steps,
        rss_mib: rss_kb / 1024.0,
        series,
    }
}

pub(super) fn run_churn(
    broker: Broker,
    minutes: u64,
    binary: &std::path::Path,
    out_dir: &std::path::Path,
) -> Result<()> {
    let clusters = Clusters::start_on(broker, &["europe", "northamerica"], Storage::Memory)?;
    let europe = clusters.bootstrap("europe");
    let port = localcluster::free_port()?;
    let replicator = start_replicator(
        binary,
        out_dir,
        &europe,
        &clusters,
        &["northamerica"],
        EXTRA,
        port,
    )?;
    let pid = replicator.pid();
    let admin: AdminClient<DefaultClientContext> = client(&europe).create()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(minutes * 60);
    let mut first = None;
    let mut step = 0;
    while Instant::now() < deadline {
        let began = Instant::now();
        let topic = format!("churn-{step}");
        let group = format!("churn-group-{step}");
        create_topic(&europe, &topic)?;
        produce(&europe, &topic, 1000, 100, "none")?;
        let member: BaseConsumer = client(&europe)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut offsets = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            offsets.add_partition_offset(&topic, p, Offset::Offset(10))?;
        }
        member
            .commit(&offsets, CommitMode::Sync)
            .context("committing a group")?;
        drop(member);
        if step >= ALIVE {
            let old = step - ALIVE;
            let options = AdminOptions::new();
            tokio_free(admin.delete_topics(&[&format!("churn-{old}")], &options))?;
            tokio_free(admin.delete_groups(&[&format!("churn-group-{old}")], &options))?;
        }
        step += 1;
        if first.is_none() && started.elapsed() >= WARM_UP {
            let s = sample(pid, port, started, step);
            println!("after warm-up: {s:?}");
            first = Some(s);
        }
        std::thread::sleep(STEP.saturating_sub(began.elapsed()));
    }
    let last = sample(pid, port, started, step);
    println!(
        "churn: {step} topics and groups created, {} deleted",
        step.saturating_sub(ALIVE)
    );
    if let Some(first) = &first {
        println!(
            "replicator RSS {:.1} MiB -> {:.1} MiB, metric series {} -> {} ({:?} -> {:?}, {} -> {} steps)",
            first.rss_mib, last.rss_mib, first.series, last.series, first.at, last.at, first.steps, last.steps
        );
    } else {
        println!("too short for a warm-up sample; at the end: {last:?}");
    }
    Ok(())
}
