//! A record the target refuses for good in the middle of a partition, among many batches in
//! flight, keeps the partition in order: nothing after it reaches the target before it is dealt
//! with, and nothing lands twice. The poison is one a broker alone can tell: a record without a
//! key, for a remote topic that is compacted (`INVALID_RECORD`). (Before: librdkafka's
//! idempotent producer re-sent the batches after the refused one by itself, and the lane's
//! rewind sent them again: thousands of records twice, out of order.)

use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

const BEFORE: usize = 3_000;
const AFTER: usize = 3_000;

/// `events` on the source: one partition of keyed 1 kB records with one record without a key
/// at offset [`BEFORE`]; the remote topic exists compacted (kept out of the config sync).
fn setup(
    extra: &str,
) -> (
    localcluster::Clusters,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, "events", 1, &[]);
    create_topic(
        &clusters.bootstrap("northamerica"),
        "events",
        1,
        &[("cleanup.policy", "compact")],
    );
    let kilobyte = |(partition, mut record): (i32, TestRecord)| {
        if let Some(value) = &mut record.value {
            value.resize(1_000, b'.');
        }
        (partition, record)
    };
    let mut records: Vec<_> = numbered_records("before", 1, 0, BEFORE)
        .into_iter()
        .map(kilobyte)
        .collect();
    let mut poison = numbered_records("poison", 1, 0, 1);
    poison[0].1.key = None;
    records.extend(poison);
    records.extend(
        numbered_records("after", 1, 0, AFTER)
            .into_iter()
            .map(kilobyte),
    );
    produce(&europe, "events", &records);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &one_flow_config(
            &clusters,
            &format!("config.properties.exclude = cleanup\\.policy\n{extra}"),
        ),
    );
    (clusters, dir, config)
}

/// Waits until the target holds `count` records of `events` and stays there a little; returns
/// them.
fn settled(north: &str, count: usize, replicator: &Replicator) -> Vec<TestRecord> {
    let reached = wait_until(Duration::from_secs(120), || {
        end_offsets(north, "events").get(&0).copied().unwrap_or(0) >= count as i64
    });
    assert!(
        reached,
        "the target has {:?} of {count}\n{}",
        end_offsets(north, "events"),
        replicator.log()
    );
    read_all(north, "events").remove(&0).unwrap_or_default()
}

/// The source's records without the poison, in order.
fn without_poison(europe: &str) -> (Vec<TestRecord>, TestRecord) {
    let mut source = read_all(europe, "events").remove(&0).unwrap_or_default();
    let poison = source.remove(BEFORE);
    assert!(poison.key.is_none());
    (source, poison)
}

/// Runs the replicator until its progress passes the poison; asserts that the target holds
/// every other record once, in order. Returns the replicator and the poison.
fn copied_past_the_poison(
    clusters: &localcluster::Clusters,
    config: &std::path::Path,
) -> (Replicator, TestRecord) {
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    let replicator = Replicator::start(config, &[]);
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(120), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "the copy did not pass the refused record\n{}",
        replicator.log()
    );
    let copied = settled(&north, BEFORE + AFTER, &replicator);
    let (source, poison) = without_poison(&europe);
    assert_eq!(copied.len(), source.len(), "no record twice");
    assert!(copied == source, "in order, without the refused record");
    (replicator, poison)
}

#[test]
fn a_refused_record_among_many_batches_is_passed_over_in_order_with_errors_tolerance_all() {
    let (clusters, _dir, config) = setup("errors.tolerance = all\n");
    let (replicator, _) = copied_past_the_poison(&clusters, &config);
    let log = replicator.log();
    assert!(log.contains("skipped (errors.tolerance = all)"), "{log}");
}

#[test]
fn a_refused_record_among_many_batches_goes_to_the_dead_letter_topic_in_order() {
    let (clusters, _dir, config) = setup(
        "errors.tolerance = all\n\
         errors.deadletterqueue.topic.name = mirrorcast-dlq\n\
         errors.deadletterqueue.topic.replication.factor = 1\n",
    );
    let (_replicator, poison) = copied_past_the_poison(&clusters, &config);
    let dead: Vec<_> = read_all(&clusters.bootstrap("northamerica"), "mirrorcast-dlq")
        .into_values()
        .flatten()
        .collect();
    assert_eq!(dead.len(), 1, "one dead letter");
    assert_eq!(dead[0].value, poison.value);
}

#[test]
fn a_refused_record_among_many_batches_stops_its_partition_right_before_it() {
    let (clusters, _dir, config) = setup("");
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    let replicator = Replicator::start(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(120), || replicator
            .log()
            .contains(&format!("events[0] stopped at offset {BEFORE}"))),
        "the partition did not stop at the refused record\n{}",
        replicator.log()
    );
    let copied = settled(&north, BEFORE, &replicator);
    let (source, _) = without_poison(&europe);
    assert_eq!(
        copied.len(),
        BEFORE,
        "nothing after the refused record, nothing twice"
    );
    assert!(copied[..] == source[..BEFORE], "in order");
    let stored = stored_progress(&north, "europe").unwrap_or_default();
    assert_eq!(
        stored.get(&("events".to_string(), 0)).map(|s| s.offset),
        Some(BEFORE as i64 - 1),
        "progress stops right before it"
    );
}
