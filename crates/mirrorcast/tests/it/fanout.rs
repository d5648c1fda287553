//! Read-once fan-out: two flows of one source share its reader, so while both targets keep up
//! every source record is fetched once, not once per target (what MM2 does). Counted by
//! `mirrorcast_source_records_read_total`, over every reader of the source. A slow target
//! leaves the shared reader and catches up on its own, so it never holds the other back.

use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

const RECORDS: usize = 20_000;

#[test]
fn two_targets_that_keep_up_read_each_source_record_once() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let (north, south) = (
        clusters.bootstrap("northamerica"),
        clusters.bootstrap("southamerica"),
    );
    create_topic(&europe, "orders", 4, &[]);
    produce(&europe, "orders", &numbered_records("warm-up", 4, 0, 100));

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broadcast_config(&clusters, "IdentityReplicationPolicy", ""),
    );
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    // As deployed: the process serves the targets (no heartbeats into Europe to copy back).
    let replicator = Replicator::start(
        &config,
        &["--clusters", "northamerica,southamerica", "--http", &http],
    );
    let warm_up_ends = end_offsets(&europe, "orders");
    for target in [&north, &south] {
        assert!(
            wait_until(Duration::from_secs(60), || progress_reached(
                target,
                "europe",
                "orders",
                &warm_up_ends
            )),
            "warm-up not copied\n{}",
            replicator.log()
        );
    }
    let before = europe_records_read(port, None).expect("metrics are served");

    produce(
        &europe,
        "orders",
        &numbered_records("fanout", 4, 100, RECORDS),
    );
    let ends = end_offsets(&europe, "orders");
    for target in [&north, &south] {
        assert!(
            wait_until(Duration::from_secs(90), || progress_reached(
                target, "europe", "orders", &ends
            )),
            "not copied\n{}",
            replicator.log()
        );
    }
    let read = europe_records_read(port, None).unwrap() - before;
    let shared = europe_records_read(port, Some("shared")).unwrap();
    println!("{RECORDS} records copied to two targets; {read} read from the source");
    assert_eq!(
        read,
        RECORDS as f64,
        "each record read once for both targets (shared reader total {shared})\n{}",
        replicator.log()
    );
    let source = read_all(&europe, "orders");
    for (name, bootstrap) in [("northamerica", &north), ("southamerica", &south)] {
        assert_complete_in_order(&source, &read_all(bootstrap, "orders"), name);
    }
}

#[test]
fn a_slow_target_leaves_the_shared_reader_and_never_holds_the_other_back() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let (north, south) = (
        clusters.bootstrap("northamerica"),
        clusters.bootstrap("southamerica"),
    );
    create_topic(&europe, "orders", 2, &[]);
    const BACKLOG: usize = 3_000;
    produce(&europe, "orders", &numbered_records("slow", 2, 0, BACKLOG));

    // South America takes at most 10 records at a time and waits 100 ms to send them (tens of
    // seconds for the backlog, so that a loaded machine cannot make North America look as slow):
    // its queue is full nearly all the time, so it must leave the shared reader.
    let dir = tempfile::tempdir().unwrap();
    // One copier thread: each thread has its own producer, which would make the slow target
    // as many times faster.
    let slow = "southamerica.producer.queue.buffering.max.messages = 10\n\
                southamerica.producer.linger.ms = 100\n\
                tasks.max = 1\n";
    let config = write_config(
        dir.path(),
        &broadcast_config(&clusters, "IdentityReplicationPolicy", slow),
    );
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    // As deployed: the process serves the targets (no heartbeats into Europe to copy back).
    let replicator = Replicator::start(
        &config,
        &["--clusters", "northamerica,southamerica", "--http", &http],
    );
    let ends = end_offsets(&europe, "orders");
    assert!(
        wait_until(Duration::from_secs(60), || progress_reached(
            &north, "europe", "orders", &ends
        )),
        "northamerica was held back\n{}",
        replicator.log()
    );
    let south_done = progress_reached(&south, "europe", "orders", &ends);
    assert!(
        !south_done,
        "the slow target should still be copying when the other is done\n{}",
        replicator.log()
    );
    assert!(
        europe_records_read(port, Some("catch-up southamerica")).unwrap_or(0.0) > 0.0,
        "the slow target reads on its own\n{}",
        replicator.log()
    );
    assert!(
        wait_until(Duration::from_secs(240), || progress_reached(
            &south, "europe", "orders", &ends
        )),
        "southamerica did not finish\n{}",
        replicator.log()
    );
    let source = read_all(&europe, "orders");
    for (name, bootstrap) in [("northamerica", &north), ("southamerica", &south)] {
        assert_complete_in_order(&source, &read_all(bootstrap, "orders"), name);
    }
    assert!(replicator.log().contains("catch up on their own reader"));
}
