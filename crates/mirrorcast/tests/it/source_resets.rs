//! A source position that no longer exists is never skipped over: a topic deleted and created
//! again (while mirrorcast runs, and while it is stopped, also when the new topic's offsets
//! pass the old position: told by the topic ID stored with the progress) is copied from its
//! new start, and
//! records deleted at the source before they were copied are logged and counted as lost.
//! (Before: the copy dropped every record below the old position, with no line in the log and
//! the flow `running`.)

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use futures_executor::block_on;
use localcluster::Storage;
use rdkafka::admin::AdminOptions;
use rdkafka::{Offset, TopicPartitionList};

fn config(clusters: &localcluster::Clusters, dir: &std::path::Path) -> std::path::PathBuf {
    write_config(dir, &one_flow_config(clusters, ""))
}

/// Deletes `topic` and creates it again with `partitions` partitions, once the broker lets it.
fn recreate(bootstrap: &str, topic: &str, partitions: i32) {
    let admin = admin_client(bootstrap);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    block_on(admin.delete_topics(&[topic], &options)).unwrap();
    let created = wait_until(Duration::from_secs(60), || {
        try_create_topic(bootstrap, topic, partitions)
    });
    assert!(created, "{topic} could not be created again");
}

fn wait_for_ends(target: &str, ends: &[(i32, i64)], replicator: &Replicator) {
    let want: BTreeMap<i32, i64> = ends.iter().copied().collect();
    let reached = wait_until(Duration::from_secs(90), || {
        end_offsets(target, "events") == want
    });
    assert!(
        reached,
        "target ends {:?}, want {want:?}\n{}",
        end_offsets(target, "events"),
        replicator.log()
    );
}

/// The last `count` records of each partition of the target are the source's, in order.
fn assert_tail_is(target: &str, source: &str, count: usize) {
    let (copied, source) = (read_all(target, "events"), read_all(source, "events"));
    for (partition, records) in &source {
        let tail = &copied[partition][copied[partition].len() - count..];
        assert_eq!(tail, &records[..], "partition {partition}");
    }
}

#[test]
fn a_topic_created_again_is_copied_from_its_new_start_while_running_and_while_stopped() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    create_topic(&europe, "events", 2, &[]);
    produce(&europe, "events", &numbered_records("first", 2, 0, 100));
    let dir = tempfile::tempdir().unwrap();
    let config = config(&clusters, dir.path());
    let mut replicator = Replicator::start(&config, &[]);
    wait_for_ends(&north, &[(0, 50), (1, 50)], &replicator);

    recreate(&europe, "events", 2);
    produce(&europe, "events", &numbered_records("second", 2, 0, 50));
    wait_for_ends(&north, &[(0, 75), (1, 75)], &replicator);
    assert_tail_is(&north, &europe, 25);
    let log = replicator.terminate_cleanly(Duration::from_secs(30));
    // Seen either way, whichever comes first: its offsets going back, or its new topic ID.
    assert!(
        log.contains("the source's offsets went back from 50 to 0")
            || log.contains("events was deleted and created again"),
        "{log}"
    );

    recreate(&europe, "events", 2);
    produce(&europe, "events", &numbered_records("third", 2, 0, 30));
    let mut replicator = Replicator::start(&config, &[]);
    wait_for_ends(&north, &[(0, 90), (1, 90)], &replicator);
    assert_tail_is(&north, &europe, 15);
    // The progress stored in the second life names its topic ID: the third is told by it.
    let log = replicator.terminate_cleanly(Duration::from_secs(30));
    assert!(
        log.contains("events was deleted and created again while it was not copied here"),
        "{log}"
    );

    // Created again while stopped and filled past the old position (15): no offset goes back,
    // only the topic ID stored with the progress tells.
    let stored = stored_progress(&north, "europe").unwrap_or_default();
    let old_id = stored[&("events".to_string(), 0)].topic_id.clone();
    assert!(
        old_id.is_some(),
        "progress is stored with the topic ID: {stored:?}"
    );
    recreate(&europe, "events", 2);
    produce(&europe, "events", &numbered_records("fourth", 2, 0, 80));
    let replicator = Replicator::start(&config, &[]);
    wait_for_ends(&north, &[(0, 130), (1, 130)], &replicator);
    assert_tail_is(&north, &europe, 40);
    let log = replicator.log();
    assert!(
        log.contains("events was deleted and created again while it was not copied here"),
        "{log}"
    );
    let stored = stored_progress(&north, "europe").unwrap_or_default();
    let new_id = stored[&("events".to_string(), 0)].topic_id.clone();
    assert!(
        new_id.is_some() && new_id != old_id,
        "{old_id:?} → {new_id:?}"
    );
}

#[test]
fn records_deleted_at_the_source_before_they_were_copied_are_logged_and_counted() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    create_topic(&europe, "events", 2, &[]);
    produce(&europe, "events", &numbered_records("kept", 2, 0, 100));
    let dir = tempfile::tempdir().unwrap();
    let config = config(&clusters, dir.path());
    let mut replicator = Replicator::start(&config, &[]);
    wait_for_ends(&north, &[(0, 50), (1, 50)], &replicator);
    replicator.terminate_cleanly(Duration::from_secs(30));

    // While stopped: 25 more per partition, of which retention takes the first 20.
    produce(&europe, "events", &numbered_records("late", 2, 100, 50));
    let mut before = TopicPartitionList::new();
    for partition in 0..2 {
        before
            .add_partition_offset("events", partition, Offset::Offset(70))
            .unwrap();
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    block_on(admin_client(&europe).delete_records(&before, &options)).unwrap();

    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    let replicator = Replicator::start(&config, &["--http", &http]);
    wait_for_ends(&north, &[(0, 55), (1, 55)], &replicator);
    assert_tail_is(&north, &europe, 5);
    let log = replicator.log();
    assert!(
        log.contains("20 record(s) at offsets 50..70 were deleted at the source"),
        "{log}"
    );
    let counted = wait_until(Duration::from_secs(10), || {
        scrape(port).is_some_and(|s| {
            (0..2).all(|p| {
                value(
                    &s,
                    "mirrorcast_records_lost_at_source_total",
                    &[("topic", "events"), ("partition", &p.to_string())],
                ) == 20.0
            })
        })
    });
    assert!(counted, "{:?}", http_get(port, "/metrics"));
}
