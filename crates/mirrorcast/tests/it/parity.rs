//! MM2's rules where mirrorcast used to differ (issue "MM2 parity"), each on Apache Kafka.

use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

/// `-1` is the broker's `default.replication.factor` (KIP-464), as the Strimzi and Event
/// Streams examples write it: mirrorcast used to refuse the file. Every topic it creates, the
/// remote one and its internal ones, is then made by the broker's default.
#[test]
fn a_replication_factor_of_minus_one_creates_every_topic_with_the_brokers_default() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "events", 2, &[]);
    produce(&europe, "events", &numbered_records("rf", 2, 0, 200));
    let dir = tempfile::tempdir().unwrap();
    let extra = "replication.factor = -1\n\
                 offset.storage.replication.factor = -1\n\
                 offset-syncs.topic.replication.factor = -1\n\
                 heartbeats.topic.replication.factor = -1\n\
                 checkpoints.topic.replication.factor = -1\n";
    let config = write_config(dir.path(), &one_flow_config(&clusters, extra));
    let replicator = Replicator::start(&config, &[]);
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(90), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "not copied with replication factors of -1\n{}",
        replicator.log()
    );
    for topic in ["events", "mm2-offsets.europe.internal", "heartbeats"] {
        assert!(
            topic_partitions(&north, topic).is_some(),
            "`{topic}` not created on the target\n{}",
            replicator.log()
        );
    }
    assert!(!replicator.log().contains("ERROR"), "{}", replicator.log());
}

/// The record numbers of `topic` on `bootstrap`, per partition, in order.
fn numbers(bootstrap: &str, topic: &str) -> std::collections::BTreeMap<i32, Vec<usize>> {
    read_all(bootstrap, topic)
        .into_iter()
        .map(|(p, records)| {
            let numbers = records
                .iter()
                .filter_map(|r| {
                    let value = String::from_utf8(r.value.clone()?).ok()?;
                    value.split('-').nth(1)?.parse().ok()
                })
                .collect();
            (p, numbers)
        })
        .collect()
}

/// `auto.offset.reset = latest` in the source's consumer settings, on genuine MM2 and on
/// mirrorcast side by side (one properties file, one target each): neither copies the records
/// that were there before it started, and each copies everything from where it started, with
/// no gap. mirrorcast used to force `earliest` and copy the whole backlog.
#[test]
fn auto_offset_reset_latest_skips_the_backlog_as_mm2_does() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, "LH.ORDERS", 2, &[]);
    produce(&europe, "LH.ORDERS", &numbered_records("old", 2, 0, 100));
    let dir = tempfile::tempdir().unwrap();
    let text = crate::mm2::mm2_config(
        &clusters,
        &["northamerica", "southamerica"],
        "IdentityReplicationPolicy",
        "topics = LH.*\neurope.consumer.auto.offset.reset = latest\n",
    );
    let config = write_config(dir.path(), &text);
    let _mm2 = crate::mm2::start_mm2(&config, "northamerica");
    let replicator = Replicator::start(&config, &["--clusters", "southamerica"]);
    // New records until both have copied some: then both are past their start.
    let mut next = 100;
    let both_copy = wait_until(Duration::from_secs(180), || {
        produce(&europe, "LH.ORDERS", &numbered_records("new", 2, next, 10));
        next += 10;
        ["northamerica", "southamerica"]
            .iter()
            .all(|t| total_records(&clusters.bootstrap(t), "LH.ORDERS") > 0)
    });
    assert!(both_copy, "not both copying\n{}", replicator.log());
    produce(&europe, "LH.ORDERS", &numbered_records("new", 2, next, 100));
    let last = numbers(&europe, "LH.ORDERS");
    for target in ["northamerica", "southamerica"] {
        let bootstrap = clusters.bootstrap(target);
        assert!(
            wait_until(Duration::from_secs(60), || numbers(&bootstrap, "LH.ORDERS")
                .iter()
                .all(|(p, n)| n.last() == last[p].last())),
            "{target} did not catch up\n{}",
            replicator.log()
        );
        for (partition, copied) in numbers(&bootstrap, "LH.ORDERS") {
            let source = &last[&partition];
            let first = copied[0];
            assert!(
                first >= 100,
                "{target}[{partition}] copied the backlog: starts at {first}"
            );
            let start = source.iter().position(|&n| n == first).unwrap();
            assert_eq!(
                &source[start..],
                &copied[..],
                "{target}[{partition}]: a gap or a duplicate"
            );
        }
    }
}

/// A topic config the source topic inherits from its broker (here a dynamic broker config,
/// `log.retention.ms` on node 1) is not the topic's own: Kafka reports it as not default, and
/// mirrorcast used to pin it on the remote topic as an override. Only real topic overrides
/// travel (MM2 checks the config source too).
#[test]
fn configs_a_topic_inherits_from_its_broker_are_not_copied_as_overrides() {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    let broker = ResourceSpecifier::Broker(1);
    let altered = block_on(admin_client(&europe).alter_configs(
        [&AlterConfig::new(broker).set("log.retention.ms", "3600000")],
        &rdkafka::admin::AdminOptions::new(),
    ))
    .expect("alter the broker's config");
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    create_topic(&europe, "events", 1, &[("max.message.bytes", "200000")]);
    produce(&europe, "events", &numbered_records("cfg", 1, 0, 10));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &one_flow_config(&clusters, ""));
    let replicator = Replicator::start(&config, &[]);
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(90), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "{}",
        replicator.log()
    );
    let remote = topic_overrides(&north, "events");
    assert_eq!(
        remote.get("max.message.bytes").map(String::as_str),
        Some("200000"),
        "the topic's own override travels: {remote:?}"
    );
    assert!(
        !remote.contains_key("retention.ms"),
        "the source broker's retention was pinned on the remote topic: {remote:?}"
    );
}

/// The checkpoints of `group` in the target's checkpoints topic, in order.
fn checkpoints_of(bootstrap: &str, group: &str) -> Vec<mirrorcast::offsets::codec::Checkpoint> {
    read_raw(bootstrap, "europe.checkpoints.internal")
        .into_iter()
        .filter_map(|(k, v)| mirrorcast::offsets::codec::Checkpoint::decode(&k, &v).ok())
        .filter(|c| c.group == group)
        .collect()
}

fn commit_with_metadata(bootstrap: &str, group: &str, offset: i64, metadata: &str) {
    use rdkafka::consumer::{CommitMode, Consumer};
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset("events", 0, rdkafka::Offset::Offset(offset))
        .unwrap();
    list.find_partition("events", 0)
        .unwrap()
        .set_metadata(metadata);
    group_client(bootstrap, group)
        .commit(&list, CommitMode::Sync)
        .unwrap();
}

/// As MM2 (since 3.7), checkpoints are read back from the checkpoints topic after a restart:
/// nothing that did not move is written again (mirrorcast re-emitted every group's checkpoint
/// at each start), and the group's commit metadata travels in the checkpoint (it was empty).
#[test]
fn checkpoints_carry_the_commit_metadata_and_are_not_emitted_again_after_a_restart() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "events", 1, &[]);
    produce(&europe, "events", &numbered_records("cp", 1, 0, 100));
    commit_with_metadata(&europe, "shop", 60, "session=42");
    let dir = tempfile::tempdir().unwrap();
    let extra = "emit.checkpoints.interval.seconds = 1\n";
    let config = write_config(dir.path(), &one_flow_config(&clusters, extra));
    let mut replicator = Replicator::start(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(90), || !checkpoints_of(&north, "shop")
            .is_empty()),
        "no checkpoint\n{}",
        replicator.log()
    );
    let first = checkpoints_of(&north, "shop");
    assert_eq!(first[0].upstream_offset, 60);
    assert_eq!(first[0].metadata, "session=42", "{first:?}");
    replicator.terminate_cleanly(Duration::from_secs(30));

    let replicator = Replicator::start(&config, &[]);
    // A group committed after the restart shows that checkpoint rounds ran.
    commit_with_metadata(&europe, "other", 70, "");
    assert!(
        wait_until(Duration::from_secs(90), || !checkpoints_of(&north, "other")
            .is_empty()),
        "no checkpoint after the restart\n{}",
        replicator.log()
    );
    assert_eq!(
        checkpoints_of(&north, "shop"),
        first,
        "a checkpoint that did not move was written again\n{}",
        replicator.log()
    );
}
