//! Consumer offsets follow the data: a group that consumed part of a topic in Europe finds its
//! translated position in the checkpoints on the target, and (with group offset sync) resumes
//! there without skipping a record, re-reading at most offset.lag.max per partition. A target
//! offset is never moved backwards, and `translate-offsets` agrees with the checkpoints.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use localcluster::Storage;
use mirrorcast::offsets::codec::Checkpoint;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let offsets = group_client(bootstrap, group)
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    offsets
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

#[test]
fn groups_resume_on_the_target_without_skipping_and_never_go_backwards() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "orders", 2, &[]);
    produce(&europe, "orders", &numbered_records("groups", 2, 0, 1000));
    // "shop" consumed part of each partition in Europe; "ahead" is further on the target already.
    commit(&europe, "shop", "orders", &[(0, 230), (1, 377)]);
    commit(&europe, "ahead", "orders", &[(0, 230), (1, 377)]);
    create_topic(&north, "orders", 2, &[]);
    commit(&north, "ahead", "orders", &[(0, 450), (1, 450)]);

    let dir = tempfile::tempdir().unwrap();
    let extra = "offset.lag.max = 100\n\
                 offset-syncs.topic.location = target\n\
                 emit.checkpoints.interval.seconds = 2\n\
                 sync.group.offsets.enabled = true\n\
                 sync.group.offsets.interval.seconds = 2\n";
    let config = write_config(
        dir.path(),
        &broadcast_config(&clusters, "IdentityReplicationPolicy", extra),
    );
    let replicator = Replicator::start(&config, &["--clusters", "northamerica"]);

    // Checkpoints of "shop" for both partitions, translated by MM2's rule: syncs at 0, 101,
    // 202, 303, 404 (upstream = downstream here), so 230 -> 203 and 377 -> 304.
    let checkpoints = || -> BTreeMap<i32, Checkpoint> {
        read_raw(&north, "europe.checkpoints.internal")
            .iter()
            .filter_map(|(k, v)| Checkpoint::decode(k, v).ok())
            .filter(|c| c.group == "shop")
            .map(|c| (c.partition, c))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(30), || checkpoints().len() == 2),
        "{}",
        replicator.log()
    );
    let found = checkpoints();
    assert_eq!(
        (found[&0].upstream_offset, found[&0].downstream_offset),
        (230, 203)
    );
    assert_eq!(
        (found[&1].upstream_offset, found[&1].downstream_offset),
        (377, 304)
    );
    assert_eq!(found[&0].topic, "orders");

    // Group offset sync wrote them into "shop" on the target; "ahead" was not moved back.
    assert!(
        wait_until(Duration::from_secs(30), || committed(
            &north, "shop", "orders", 2
        ) == BTreeMap::from([
            (0, 203),
            (1, 304)
        ])),
        "{:?}\n{}",
        committed(&north, "shop", "orders", 2),
        replicator.log()
    );
    assert_eq!(
        committed(&north, "ahead", "orders", 2),
        BTreeMap::from([(0, 450), (1, 450)])
    );

    // A consumer of "shop" on the target reads every record it had not consumed in Europe.
    let source = read_all(&europe, "orders");
    let consumer = group_client(&north, "shop");
    let mut list = TopicPartitionList::new();
    let resume = committed(&north, "shop", "orders", 2);
    for (p, o) in &resume {
        list.add_partition_offset("orders", *p, Offset::Offset(*o))
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut read: BTreeMap<i32, Vec<Vec<u8>>> = BTreeMap::new();
    assert!(wait_until(Duration::from_secs(30), || {
        while let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            read.entry(m.partition())
                .or_default()
                .push(m.payload().unwrap_or_default().to_vec());
        }
        read.values().map(Vec::len).sum::<usize>() >= 1000 - 203 - 304
    }));
    for (p, consumed_in_europe) in [(0, 230usize), (1, 377)] {
        let expected: Vec<Vec<u8>> = source[&p][consumed_in_europe..]
            .iter()
            .map(|r| r.value.clone().unwrap())
            .collect();
        let got = &read[&p];
        assert!(
            got.ends_with(&expected),
            "partition {p}: records were skipped"
        );
        let reread = got.len() - expected.len();
        println!("partition {p}: re-read {reread} record(s) after moving to the target");
        assert!(reread <= 100, "re-read {reread} > offset.lag.max");
    }

    // translate-offsets agrees with the checkpoints.
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .args(["translate-offsets"])
        .arg(&config)
        .args([
            "--source",
            "europe",
            "--target",
            "northamerica",
            "--group",
            "shop",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("orders [0] 230 -> orders [0] 203"),
        "{stdout}"
    );
    assert!(
        stdout.contains("orders [1] 377 -> orders [1] 304"),
        "{stdout}"
    );
}

#[test]
fn a_group_with_active_members_on_the_target_is_never_overwritten() {
    active_target_group_is_never_overwritten("classic");
}

/// The same with the target's consumer on the new group protocol (KIP-848), which the classic
/// group listing does not show with members.
#[test]
fn a_group_on_the_new_consumer_protocol_with_members_is_never_overwritten() {
    active_target_group_is_never_overwritten("consumer");
}

fn active_target_group_is_never_overwritten(protocol: &str) {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "orders", 1, &[]);
    produce(&europe, "orders", &numbered_records("live", 1, 0, 300));
    commit(&europe, "live", "orders", &[(0, 250)]);
    create_topic(&north, "orders", 1, &[]);
    // A consumer of "live" is at work on the target: subscribed, polling, committing nothing.
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let assigned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let member = {
        let (running, assigned) = (running.clone(), assigned.clone());
        let (north, protocol) = (north.clone(), protocol.to_string());
        std::thread::spawn(move || {
            let consumer: BaseConsumer = client(&north)
                .set("group.id", "live")
                .set("group.protocol", &protocol)
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            consumer.subscribe(&["orders"]).unwrap();
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = consumer.poll(Duration::from_millis(100));
                let has_partitions = consumer.assignment().is_ok_and(|a| a.count() > 0);
                assigned.store(has_partitions, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let has_members = || assigned.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        wait_until(Duration::from_secs(30), has_members),
        "the target group never became active"
    );

    let dir = tempfile::tempdir().unwrap();
    let extra = "offset-syncs.topic.location = target\n\
                 emit.checkpoints.interval.seconds = 1\n\
                 sync.group.offsets.enabled = true\n\
                 sync.group.offsets.interval.seconds = 1\n";
    let config = write_config(
        dir.path(),
        &broadcast_config(&clusters, "IdentityReplicationPolicy", extra),
    );
    let replicator = Replicator::start(&config, &["--clusters", "northamerica"]);
    // Checkpoints for "live" are written (so group sync has had its chance) ...
    assert!(
        wait_until(Duration::from_secs(30), || read_raw(
            &north,
            "europe.checkpoints.internal"
        )
        .iter()
        .filter_map(|(k, v)| Checkpoint::decode(k, v).ok())
        .any(|c| c.group == "live")),
        "{}",
        replicator.log()
    );
    // ... and for several more sync intervals the active group keeps its own (no) offsets.
    assert!(!wait_until(Duration::from_secs(4), || !committed(
        &north, "live", "orders", 1
    )
    .is_empty()));
    assert!(has_members());
    let log = replicator.log();
    assert!(
        !log.contains("checkpoints of the group"),
        "an active group is skipped, not an error:\n{log}"
    );
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    member.join().unwrap();
}

/// A forged (or stale) offset sync pointing far past what the target holds must not make a
/// group skip data: the translation stops at the remote partition's end. (Before, it was taken
/// as it was: `translate-offsets` printed 1000000 and `--apply` committed it.)
#[test]
fn a_translation_never_points_past_the_end_of_the_remote_partition() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "orders", 1, &[]);
    produce(&europe, "orders", &numbered_records("forged", 1, 0, 100));
    create_topic(&north, "orders", 1, &[]);
    produce(&north, "orders", &numbered_records("forged", 1, 0, 100));
    commit(&europe, "shop", "orders", &[(0, 100)]);
    // The syncs topic on the source (MM2's default location), with one genuine and one forged
    // sync.
    let syncs_topic = "mm2-offset-syncs.northamerica.internal";
    create_topic(&europe, syncs_topic, 1, &[("cleanup.policy", "compact")]);
    let producer = TestProducer::new(&europe);
    for (upstream, downstream) in [(50, 50), (100, 1_000_000)] {
        let sync = mirrorcast::offsets::codec::OffsetSync {
            topic: "orders".into(),
            partition: 0,
            upstream_offset: upstream,
            downstream_offset: downstream,
        };
        let record = TestRecord {
            key: Some(sync.key()),
            value: Some(sync.value()),
            headers: vec![],
            timestamp: now_ms(),
        };
        producer.send_all(syncs_topic, &[(0, record)]);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &one_flow_config(&clusters, ""));
    let translated = translate_offsets(&config, "europe", "northamerica", "shop", "orders");
    assert_eq!(translated, BTreeMap::from([(0, 100)]));

    let out = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .arg("translate-offsets")
        .arg(&config)
        .args([
            "--source",
            "europe",
            "--target",
            "northamerica",
            "--group",
            "shop",
            "--apply",
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("past its end 100"), "{log}");
    assert_eq!(
        committed(&north, "shop", "orders", 1),
        BTreeMap::from([(0, 100)])
    );
}
