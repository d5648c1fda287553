//! A regional outage: one target cluster is down for 20 s in the middle of a run. The other
//! target keeps going without waiting; the stopped one catches up on its own once it is back,
//! even though its deliveries time out while it is down (the test sets a delivery timeout far
//! shorter than the outage, so failed deliveries must turn into retries, not gaps). Once both
//! are back in step they share one reader of the source again.

use std::time::{Duration, Instant};

use crate::common::*;
use localcluster::{StopSignal, Storage};

const BATCH: usize = 3_000;

#[test]
fn a_target_down_for_20s_catches_up_and_the_other_never_waits() {
    let mut clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Sqlite);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    let south = clusters.bootstrap("southamerica");
    create_topic(&europe, "events", 3, &[]);
    produce(&europe, "events", &numbered_records("outage", 3, 0, BATCH));

    let dir = tempfile::tempdir().unwrap();
    let extra = "northamerica.producer.delivery.timeout.ms = 4000\n\
                 southamerica.producer.delivery.timeout.ms = 4000\n";
    let config = write_config(
        dir.path(),
        &broadcast_config(&clusters, "IdentityReplicationPolicy", extra),
    );
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    let replicator = Replicator::start(&config, &["--http", &http]);
    let first_ends = end_offsets(&europe, "events");
    for target in [&north, &south] {
        assert!(
            wait_until(Duration::from_secs(90), || progress_reached(
                target,
                "europe",
                "events",
                &first_ends
            )),
            "first batch not copied\n{}",
            replicator.log()
        );
    }

    clusters
        .get_mut("northamerica")
        .stop(StopSignal::Kill)
        .unwrap();
    let stopped_at = Instant::now();
    // Records keep arriving in Europe while North America is down.
    for i in 1..=3 {
        produce(
            &europe,
            "events",
            &numbered_records("outage", 3, i * BATCH, BATCH),
        );
    }
    let all_ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(60), || progress_reached(
            &south, "europe", "events", &all_ends
        )),
        "southamerica waited for northamerica\n{}",
        replicator.log()
    );
    let south_done_after = stopped_at.elapsed();
    assert!(
        south_done_after < Duration::from_secs(20),
        "southamerica finished only after {south_done_after:?}, while northamerica was still down"
    );

    // The outage itself is the scenario: North America stays down for 20 s in all, longer
    // than the delivery timeout, whatever the other checks took.
    std::thread::sleep(Duration::from_secs(20).saturating_sub(stopped_at.elapsed()));
    clusters.get_mut("northamerica").restart().unwrap();
    assert!(
        wait_until(Duration::from_secs(120), || progress_reached(
            &north, "europe", "events", &all_ends
        )),
        "northamerica did not catch up after its restart\n{}",
        replicator.log()
    );

    let source = read_all(&europe, "events");
    for (name, bootstrap) in [("northamerica", &north), ("southamerica", &south)] {
        let duplicates = assert_complete_in_order(&source, &read_all(bootstrap, "events"), name);
        println!("{name}: complete after the outage, {duplicates} duplicate(s)");
    }

    // Back in step: the next records are read once for both targets.
    let before = europe_records_read(port, None).expect("metrics are served");
    produce(
        &europe,
        "events",
        &numbered_records("outage", 3, 4 * BATCH, BATCH),
    );
    let final_ends = end_offsets(&europe, "events");
    for target in [&north, &south] {
        assert!(
            wait_until(Duration::from_secs(60), || progress_reached(
                target,
                "europe",
                "events",
                &final_ends
            )),
            "last batch not copied\n{}",
            replicator.log()
        );
    }
    let read_after = europe_records_read(port, None).unwrap() - before;
    println!("after the outage: {BATCH} records copied to both targets, {read_after} read");
    assert_eq!(
        read_after,
        BATCH as f64,
        "both targets share the source reader again\n{}",
        replicator.log()
    );

    let log = replicator.log();
    assert!(
        log.contains("delivery to the target failed"),
        "the outage should be logged once:\n{log}"
    );
    assert_eq!(
        log.matches("delivery to the target failed").count(),
        1,
        "logged once per state change:\n{log}"
    );
}
