//! Source logs whose offsets have gaps, on Apache Kafka: a transactional topic (control markers,
//! committed and aborted transactions) and a compacted topic. The targets get exactly what a
//! consumer of the configured isolation level sees, never a marker; lag reaches 0; every offset
//! sync maps a source record to its own copy; translated group offsets never skip a record.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use localcluster::{Broker, Storage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const TOPIC: &str = "LH.PAYMENTS";
const PARTITIONS: i32 = 2;

type Log = BTreeMap<i32, Vec<(i64, TestRecord)>>;

fn records_only(log: &Log) -> BTreeMap<i32, Vec<TestRecord>> {
    log.iter()
        .map(|(p, records)| (*p, records.iter().map(|(_, r)| r.clone()).collect()))
        .collect()
}

/// Sends `count` records per partition in one transaction, committed or aborted.
fn transaction(producer: &BaseProducer, label: &str, count: usize, commit: bool) {
    producer.begin_transaction().unwrap();
    for n in 0..count {
        for partition in 0..PARTITIONS {
            let key = format!("{label}-{partition}-{n}");
            let value = format!("{label} payment {n} of partition {partition}");
            producer
                .send(
                    BaseRecord::to(TOPIC)
                        .partition(partition)
                        .key(&key)
                        .payload(&value),
                )
                .unwrap();
        }
    }
    // Aborting wants every record delivered first (librdkafka polls for their reports).
    producer.flush(Duration::from_secs(30)).unwrap();
    if commit {
        producer
            .commit_transaction(Duration::from_secs(30))
            .unwrap();
    } else {
        producer.abort_transaction(Duration::from_secs(30)).unwrap();
    }
}

/// Every offset sync of the flow maps a source offset to the target offset of that same record.
fn assert_syncs_map_records_to_their_copies(
    syncs: &[mirrorcast::offsets::codec::OffsetSync],
    source: &Log,
    target: &Log,
    what: &str,
) {
    assert!(!syncs.is_empty(), "{what}: no offset syncs");
    for sync in syncs {
        let upstream = source[&sync.partition]
            .iter()
            .find(|(o, _)| *o == sync.upstream_offset)
            .unwrap_or_else(|| panic!("{what}: sync {sync:?} names no source record"));
        let downstream = target[&sync.partition]
            .iter()
            .find(|(o, _)| *o == sync.downstream_offset)
            .unwrap_or_else(|| panic!("{what}: sync {sync:?} names no target record"));
        assert_eq!(
            upstream.1, downstream.1,
            "{what}: sync {sync:?} maps two different records"
        );
    }
}

/// A group that committed `committed` on the source, moved to the translated offset on the
/// target, re-reads but never skips: every target record before the translated offset is a copy
/// of a source record before the committed one.
fn assert_translation_never_skips(
    source: &Log,
    target: &Log,
    committed: &BTreeMap<i32, i64>,
    translated: &BTreeMap<i32, i64>,
    what: &str,
) {
    for (partition, upstream) in committed {
        let downstream = *translated
            .get(partition)
            .unwrap_or_else(|| panic!("{what}: partition {partition} not translated"));
        let source_offset_of = |record: &TestRecord| {
            source[partition]
                .iter()
                .find(|(_, r)| r == record)
                .map(|(o, _)| *o)
                .unwrap()
        };
        for (offset, record) in &target[partition] {
            if *offset < downstream {
                assert!(
                    source_offset_of(record) < *upstream,
                    "{what}[{partition}]: committed {upstream} translated to {downstream} skips the record at target offset {offset}"
                );
            }
        }
        println!("{what}[{partition}]: committed {upstream} -> {downstream}");
    }
}

fn flow_lag(port: u16, target: &str) -> Option<f64> {
    let scrape = scrape(port)?;
    Some(value(
        &scrape,
        "mirrorcast_flow_offset_lag_records",
        &[("source", "europe"), ("target", target)],
    ))
}

#[test]
fn transactional_source_copies_what_each_isolation_level_sees_and_lag_reaches_zero() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    assert_eq!(clusters.broker(), Some(Broker::Kafka), "needs transactions");
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, TOPIC, PARTITIONS, &[]);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &europe)
        .set("transactional.id", "payments-writer")
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    transaction(&producer, "first", 5, true);
    transaction(&producer, "aborted", 5, false);
    transaction(&producer, "second", 5, true);
    // A group on the source: one at the end of the log (past the last commit marker), one just
    // after the aborted transaction's marker.
    let uncommitted = read_with_offsets(&europe, TOPIC, "read_uncommitted");
    let committed_view = read_with_offsets(&europe, TOPIC, "read_committed");
    let ends = end_offsets(&europe, TOPIC);
    for p in 0..PARTITIONS {
        assert_eq!(uncommitted[&p].len(), 15);
        assert_eq!(committed_view[&p].len(), 10);
        assert_eq!(ends[&p], 18, "15 records and 3 control markers");
    }
    commit(&europe, "at-end", TOPIC, &[(0, 18), (1, 18)]);
    commit(&europe, "after-abort", TOPIC, &[(0, 12), (1, 12)]);

    // One file, as MM2 users write it: the flow to South America reads committed records only
    // (a flow-level consumer key, MM2's `<src>-><tgt>.consumer.*`), the other MM2's default.
    let dir = tempfile::tempdir().unwrap();
    let extra = "topics = LH.*\nemit.checkpoints.interval.seconds = 1\n\
                 europe->southamerica.consumer.isolation.level = read_committed\n";
    let config = write_config(
        dir.path(),
        &broadcast_config(&clusters, "IdentityReplicationPolicy", extra),
    );
    // Both flows in one process would read europe once with two isolation levels: refused.
    let refused = mirrorcast_command(&["validate", config.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("`europe->southamerica.consumer.isolation.level`"),
        "{refused:?}"
    );
    let (default_config, committed_config) = (&config, &config);
    let (north_port, south_port) = (
        localcluster::free_port().unwrap(),
        localcluster::free_port().unwrap(),
    );
    // MM2's default (read_uncommitted) into North America, read_committed into South America.
    let north_replicator = Replicator::start(
        default_config,
        &[
            "--clusters",
            "northamerica",
            "--http",
            &format!("127.0.0.1:{north_port}"),
        ],
    );
    let south_replicator = Replicator::start(
        committed_config,
        &[
            "--clusters",
            "southamerica",
            "--http",
            &format!("127.0.0.1:{south_port}"),
        ],
    );

    for (target, expected, replicator, port, config) in [
        (
            "northamerica",
            &uncommitted,
            &north_replicator,
            north_port,
            default_config,
        ),
        (
            "southamerica",
            &committed_view,
            &south_replicator,
            south_port,
            committed_config,
        ),
    ] {
        let bootstrap = clusters.bootstrap(target);
        let expected_records = records_only(expected);
        assert!(
            wait_until(Duration::from_secs(60), || read_all(&bootstrap, TOPIC)
                == expected_records),
            "{target}: got {:?}\n{}",
            read_all(&bootstrap, TOPIC)
                .values()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            replicator.log()
        );
        // Markers are not records: the target's offsets are dense.
        let target_log = read_with_offsets(&bootstrap, TOPIC, "read_uncommitted");
        for (p, records) in &target_log {
            let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
            assert_eq!(
                offsets,
                (0..expected[p].len() as i64).collect::<Vec<_>>(),
                "{target}[{p}]"
            );
        }
        assert!(
            wait_until(Duration::from_secs(30), || flow_lag(port, target)
                == Some(0.0)),
            "{target}: lag stays at {:?} records once everything is copied\n{}",
            flow_lag(port, target),
            replicator.log()
        );
        let syncs = offset_syncs(
            &europe,
            &format!("mm2-offset-syncs.{target}.internal"),
            TOPIC,
        );
        assert_syncs_map_records_to_their_copies(&syncs, expected, &target_log, target);
        for group in ["at-end", "after-abort"] {
            let committed: BTreeMap<i32, i64> = if group == "at-end" {
                [(0, 18), (1, 18)].into()
            } else {
                [(0, 12), (1, 12)].into()
            };
            let translated = translate_offsets(config, "europe", target, group, TOPIC);
            assert_translation_never_skips(
                expected,
                &target_log,
                &committed,
                &translated,
                &format!("{target} {group}"),
            );
        }
    }
}

#[test]
fn compacted_source_is_copied_synced_and_translated_across_its_gaps() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    assert_eq!(
        clusters.broker(),
        Some(Broker::Kafka),
        "needs log compaction"
    );
    let europe = clusters.bootstrap("europe");
    create_topic(
        &europe,
        "LH.CUSTOMERS",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.001"),
            ("min.compaction.lag.ms", "0"),
            ("delete.retention.ms", "100"),
        ],
    );
    // Ten customers written once, ten updated twenty times each, five more written once half
    // way: compaction leaves the single writes and the latest updates, with gaps between.
    // Later writes roll segments so that the cleaner compacts the earlier ones.
    let producer = TestProducer::new(&europe);
    // Current timestamps: Kafka rolls a segment by `segment.ms` measured on record timestamps.
    let customer = |round: usize, n: usize| TestRecord {
        key: Some(format!("customer-{n}").into_bytes()),
        value: Some(format!("profile v{round} of customer {n}").into_bytes()),
        headers: vec![],
        timestamp: now_ms(),
    };
    let once = |n: usize| (0, customer(0, 1_000 + n));
    producer.send_all("LH.CUSTOMERS", &(0..10).map(once).collect::<Vec<_>>());
    for round in 0..20 {
        let batch: Vec<(i32, TestRecord)> = (0..10).map(|n| (0, customer(round, n))).collect();
        producer.send_all("LH.CUSTOMERS", &batch);
        if round == 10 {
            producer.send_all("LH.CUSTOMERS", &(10..15).map(once).collect::<Vec<_>>());
        }
    }
    let mut round = 20;
    let compacted = wait_until(Duration::from_secs(90), || {
        producer.send_all("LH.CUSTOMERS", &[(0, customer(round, round % 10))]);
        round += 1;
        let log = read_with_offsets(&europe, "LH.CUSTOMERS", "read_uncommitted");
        (log[&0].len() as i64) < end_offsets(&europe, "LH.CUSTOMERS")[&0] / 2
    });
    assert!(compacted, "the source was not compacted in time");
    let source = read_with_offsets(&europe, "LH.CUSTOMERS", "read_uncommitted");
    let end = end_offsets(&europe, "LH.CUSTOMERS")[&0];
    println!(
        "compacted source: {} records left of {end} offsets",
        source[&0].len()
    );
    // Groups committed inside the compacted range, at a surviving record, and at the end.
    let inside_gap = source[&0]
        .windows(2)
        .find(|w| w[1].0 > w[0].0 + 1)
        .map(|w| w[0].0 + 1)
        .expect("a gap");
    let at_record = source[&0][source[&0].len() / 2].0;
    commit(&europe, "in-gap", "LH.CUSTOMERS", &[(0, inside_gap)]);
    commit(&europe, "at-record", "LH.CUSTOMERS", &[(0, at_record)]);
    commit(&europe, "at-end", "LH.CUSTOMERS", &[(0, end)]);

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broadcast_config(
            &clusters,
            "IdentityReplicationPolicy",
            // The target's copy is left uncompacted while the test compares it: its cleaner
            // would otherwise remove older updates as soon as the copy rolls a segment.
            "topics = LH.*\noffset.lag.max = 5\n\
             config.properties.exclude = segment.ms, min.cleanable.dirty.ratio, min.compaction.lag.ms\n",
        ),
    );
    let replicator = Replicator::start(&config, &["--clusters", "northamerica"]);
    let north = clusters.bootstrap("northamerica");
    let expected = records_only(&source);
    assert!(
        wait_until(Duration::from_secs(60), || read_all(&north, "LH.CUSTOMERS")
            == expected),
        "the compacted log was not copied as it is\n{}",
        replicator.log()
    );
    let target = read_with_offsets(&north, "LH.CUSTOMERS", "read_uncommitted");
    let syncs = offset_syncs(
        &europe,
        "mm2-offset-syncs.northamerica.internal",
        "LH.CUSTOMERS",
    );
    assert!(
        wait_until(Duration::from_secs(10), || offset_syncs(
            &europe,
            "mm2-offset-syncs.northamerica.internal",
            "LH.CUSTOMERS"
        )
        .len()
            > 1),
        "a sync at every gap is expected"
    );
    assert_syncs_map_records_to_their_copies(&syncs, &source, &target, "compacted");
    for (group, upstream) in [
        ("in-gap", inside_gap),
        ("at-record", at_record),
        ("at-end", end),
    ] {
        let translated =
            translate_offsets(&config, "europe", "northamerica", group, "LH.CUSTOMERS");
        assert_translation_never_skips(
            &source,
            &target,
            &[(0, upstream)].into(),
            &translated,
            group,
        );
    }
}
