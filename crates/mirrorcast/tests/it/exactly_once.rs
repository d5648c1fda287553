//! Exactly once (`exactly.once.source.support = enabled`) on Apache Kafka, under continuous
//! production to a broadcast's source: the replicator SIGKILLed in the middle of transactions
//! several times, one target's broker stopped past the delivery timeout (the other target goes
//! on committing meanwhile; the failed transaction is aborted and copied again once it is back)
//! and started, the source's broker restarted. Afterwards a `read_committed` consumer on each
//! target sees every source record once, in order, with its key, value, headers and timestamp;
//! the stored progress ends at the source's end, and every offset sync points at the copy of
//! its record.

use std::collections::BTreeMap;
use std::time::Duration;

use localcluster::{KafkaOptions, StopSignal};

use crate::common::*;

const TOPIC: &str = "events";
const PARTITIONS: i32 = 3;
const TARGETS: [&str; 2] = ["northamerica", "southamerica"];

/// The last offset stored as progress for each partition of [`TOPIC`] on `target`.
fn stored(target: &str) -> BTreeMap<i32, i64> {
    stored_offsets(target, TOPIC)
}

/// Waits until `target`'s stored progress moved past `before` on every partition (commits go
/// on).
fn progress_moves(target: &str, before: &BTreeMap<i32, i64>, replicator: &Replicator) {
    progress_moves_past(target, TOPIC, PARTITIONS, before, || replicator.log());
}

#[test]
fn exactly_once_through_kills_and_broker_restarts_each_record_lands_once() {
    // Not on 4.3: its brokers lose committed transactions across a restart (KAFKA-20734).
    let mut clusters = start_kafka_clusters(
        &["europe", "northamerica", "southamerica"],
        &KafkaOptions {
            release: localcluster::release_for_exactly_once_through_failures(),
            ..KafkaOptions::default()
        },
    );
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, TOPIC, PARTITIONS, &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broadcast_config(
            &clusters,
            "IdentityReplicationPolicy",
            "exactly.once.source.support = enabled\n\
             emit.checkpoints.enabled = false\n\
             northamerica.producer.delivery.timeout.ms = 3000\n",
        ),
    );
    let targets: Vec<String> = TARGETS.iter().map(|t| clusters.bootstrap(t)).collect();
    let pace = Duration::from_millis(40);
    let mut producer = BackgroundProducer::start_paced(&europe, TOPIC, PARTITIONS, 0, pace);

    // Killed three times, each time while transactions are open (records arrive all the time
    // and one commits every 100 ms): their records must never be seen.
    let mut replicator = Replicator::start(&config, &[]);
    let mut logs = String::new();
    for kill in 0..3 {
        for target in &targets {
            let before = stored(target);
            progress_moves(target, &before, &replicator);
        }
        replicator.kill();
        logs.push_str(&replicator.log());
        println!("kill {kill} done");
        replicator = Replicator::start(&config, &[]);
    }

    // One target down: the other goes on committing; then it comes back.
    let (north, south) = (&targets[0], &targets[1]);
    progress_moves(north, &stored(north), &replicator);
    clusters
        .get_mut("northamerica")
        .stop(StopSignal::Term)
        .unwrap();
    let south_before = stored(south);
    progress_moves(south, &south_before, &replicator);
    // Down past its delivery timeout. Either records of the open transaction fail, which must
    // abort it (once the target is back) and copy them again; or the outage began after they
    // were acknowledged, while the commit was under way: then the commit stays open, is said to
    // be late, and completes once the target answers again (or the producer is replaced); or
    // the commit itself failed, and the abort is said to be late until the target is back.
    let mut failed_deliveries = false;
    assert!(
        wait_until(Duration::from_secs(60), || {
            let log = replicator.log();
            let north_lines = || log.lines().filter(|l| l.contains("europe->northamerica"));
            failed_deliveries = north_lines().any(|l| l.contains("delivery to the target failed"));
            failed_deliveries
                || north_lines().any(|l| {
                    l.contains("northamerica has not completed a commit")
                        || l.contains("northamerica has not completed an abort")
                        || l.contains("northamerica has acknowledged nothing")
                        || l.contains("the target producer failed")
                })
        }),
        "the stopped target was never said to fail (no failed delivery, no late commit)\n{}",
        replicator.log()
    );
    progress_moves(south, &stored(south), &replicator);
    clusters.get_mut("northamerica").start().unwrap();
    progress_moves(north, &stored(north), &replicator);
    // Aborted, or (librdkafka's answer to a transaction the broker timed out meanwhile) the
    // producer replaced: either way it never commits and its records are copied again. A late
    // commit may also just complete.
    assert!(
        wait_until(Duration::from_secs(60), || {
            let log = replicator.log();
            log.contains("aborted a transaction on northamerica")
                || log.lines().any(|l| {
                    l.contains("the target producer failed") && l.contains("europe->northamerica")
                })
                || (!failed_deliveries && log.contains("northamerica commits again"))
        }),
        "the failed transaction was neither aborted nor its producer replaced, nor did a late \
         commit complete\n{}",
        replicator.log()
    );
    println!("target restarted");

    // The source restarts (the test's producer pauses meanwhile).
    let written = producer.stop();
    clusters.get_mut("europe").restart().unwrap();
    producer = BackgroundProducer::start_paced(&europe, TOPIC, PARTITIONS, written, pace);
    for target in &targets {
        progress_moves(target, &stored(target), &replicator);
    }
    println!("source restarted");
    producer.stop();

    let source = read_all(&europe, TOPIC);
    let source_ends = end_offsets(&europe, TOPIC);
    for target in &targets {
        assert!(
            wait_until(Duration::from_secs(120), || progress_reached(
                target,
                "europe",
                TOPIC,
                &source_ends
            )),
            "{target} did not commit everything\n{}",
            replicator.log()
        );
        let committed = read_with_offsets(target, TOPIC, "read_committed");
        for (partition, records) in &source {
            let copied: Vec<&TestRecord> = committed[partition].iter().map(|(_, r)| r).collect();
            let expected: Vec<&TestRecord> = records.iter().collect();
            if copied != expected {
                let first_wrong = copied
                    .iter()
                    .zip(&expected)
                    .position(|(a, b)| a != b)
                    .unwrap_or(copied.len().min(expected.len()));
                panic!(
                    "{target}[{partition}]: {} committed record(s) for {} at the source; first \
                     difference at {first_wrong}\n{logs}{}",
                    copied.len(),
                    expected.len(),
                    replicator.log()
                );
            }
        }
        // Progress ends at the source's end; every offset sync points at the copy of its
        // record (no sync of an aborted record).
        let stored_now = stored(target);
        for (partition, end) in &source_ends {
            assert_eq!(
                stored_now.get(partition),
                Some(&(end - 1)),
                "{target}[{partition}]"
            );
        }
        let alias = TARGETS[targets.iter().position(|t| t == target).unwrap()];
        let syncs = offset_syncs(
            &europe,
            &format!("mm2-offset-syncs.{alias}.internal"),
            TOPIC,
        );
        assert!(!syncs.is_empty(), "no offset syncs for {alias}");
        let source_at = read_with_offsets(&europe, TOPIC, "read_uncommitted");
        for sync in &syncs {
            let upstream = source_at[&sync.partition]
                .iter()
                .find(|(offset, _)| *offset == sync.upstream_offset)
                .map(|(_, r)| r);
            let downstream = committed[&sync.partition]
                .iter()
                .find(|(offset, _)| *offset == sync.downstream_offset)
                .map(|(_, r)| r);
            assert!(
                upstream.is_some() && upstream == downstream,
                "{alias}: sync {sync:?} points at {downstream:?}, not at the copy of {upstream:?}"
            );
        }
    }
    logs.push_str(&replicator.log());
    let said = |what: &str| logs.lines().filter(|l| l.contains(what)).count();
    println!(
        "{} source records; {} aborted transaction(s) said, {} fenced",
        source.values().map(Vec::len).sum::<usize>(),
        said("aborted a transaction"),
        said("took europe->")
    );
    assert!(
        logs.contains("copying exactly once: transactions on northamerica as mirrorcast.europe->northamerica."),
        "{logs}"
    );
    assert!(!logs.contains("took europe->"), "{logs}");
}
