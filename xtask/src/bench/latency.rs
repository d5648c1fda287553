//! End-to-end latency at a fixed rate on fresh clusters: the broker alone, through mirrorcast
//! (and exactly once) and through MM2.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use localcluster::{Broker, Clusters, MirrorMaker, Storage};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::clients::{client, create_topic, produce, total_records};
use super::mirrorcast::{metric_sum, start_replicator};
use super::{replication_config, EXACTLY_ONCE, MM2_HEAP, PARTITIONS};

/// End-to-end latency at 5,000 records/s (10 s measured once the path is warm), on fresh
/// clusters each time (nisshi's fetch slows down as a partition grows, so every figure starts
/// from empty logs):
/// first the broker's own produce-to-consume latency on one cluster, then produce on the
/// source to availability on the target through mirrorcast. One clock: both ends run here.
pub(super) fn latency(
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
        produce(&europe, "latency", 8, 100, "none")?;
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
        produce(&europe, "latency", 8, 100, "none")?;
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
