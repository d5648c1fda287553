//! A regional outage: one target cluster is down for 20 s in the middle of a run, while records
//! keep arriving. The other target keeps going without waiting; the stopped one catches up on its
//! own once it is back. The test sets a delivery timeout far shorter than the outage: the target
//! is reported failing once it passes, and its records, kept queued, arrive in order with no gap
//! and no duplicate (a re-send after a timeout could land behind later records). Once both are
//! back in step they share one reader of the source again.

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
    // As deployed: the process serves the targets (no heartbeats into Europe to copy back).
    let replicator = Replicator::start(
        &config,
        &["--clusters", "northamerica,southamerica", "--http", &http],
    );
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
    // About 2,000 records a second.
    let background =
        BackgroundProducer::start_paced(&europe, "events", 3, 0, Duration::from_millis(250));
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
        "southamerica waited for northamerica\n{}\nstatus: {:?}",
        replicator.log(),
        http_get(port, "/api/status")
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
        "northamerica did not catch up after its restart\n{}\nstatus: {:?}",
        replicator.log(),
        http_get(port, "/api/status")
    );
    let during = background.stop();
    let all_ends = end_offsets(&europe, "events");
    for target in [&north, &south] {
        assert!(
            wait_until(Duration::from_secs(120), || progress_reached(
                target, "europe", "events", &all_ends
            )),
            "the records written during the outage were not all copied\n{}",
            replicator.log()
        );
    }
    println!("{during} records written during the outage");

    let source = read_all(&europe, "events");
    for (name, bootstrap) in [("northamerica", &north), ("southamerica", &south)] {
        let duplicates = assert_complete_in_order(&source, &read_all(bootstrap, "events"), name);
        println!("{name}: complete after the outage, {duplicates} duplicate(s)");
        assert_eq!(
            duplicates,
            0,
            "{name}: nothing failed for good, so nothing is sent twice\n{}",
            replicator.log()
        );
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
    assert_eq!(
        log.matches("northamerica has acknowledged nothing of")
            .count(),
        1,
        "the outage is logged once, when it passes the delivery timeout:\n{log}"
    );
    assert!(
        log.contains("the target acknowledges records again"),
        "and its end:\n{log}"
    );
    assert!(
        !log.contains("delivery to the target failed"),
        "no record was given up:\n{log}"
    );
}

/// Sends `signal` to the broker process of `cluster`.
fn signal_broker(
    clusters: &localcluster::Clusters,
    cluster: &str,
    signal: rustix::process::Signal,
) {
    let pid = clusters
        .get(cluster)
        .pid()
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(rustix::process::Pid::from_raw)
        .expect("the broker runs");
    rustix::process::kill_process(pid, signal).expect("the broker takes the signal");
}

/// A target that takes requests and never answers (its broker frozen with SIGSTOP) for longer
/// than the delivery timeout, under steady traffic. Records the producer had sent are written
/// when the broker wakes, after the producer reported them timed out: a re-send then duplicates
/// them, and after a sequence reset can land behind later records. The target must get every
/// record exactly once, in order, and the silence is reported once.
#[test]
fn a_target_frozen_longer_than_the_delivery_timeout_gets_every_record_once_in_order() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Sqlite);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "events", 3, &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &one_flow_config(
            &clusters,
            "northamerica.producer.delivery.timeout.ms = 2000\n\
             northamerica.producer.debug = eos,broker,topic\n",
        ),
    );
    // With librdkafka's own account of the producer, for a failure message.
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    let replicator = Replicator::start_logging(
        &config,
        &["--http", &http],
        "info,mirrorcast::kafka::clients=debug",
    );
    let writer =
        BackgroundProducer::start_paced(&europe, "events", 3, 0, Duration::from_millis(100));
    assert!(
        wait_until(Duration::from_secs(60), || total_records(&north, "events")
            > 5_000),
        "the copy did not start\n{}",
        replicator.log()
    );

    signal_broker(&clusters, "northamerica", rustix::process::Signal::STOP);
    let frozen_at = Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || replicator
            .log()
            .contains("northamerica has acknowledged nothing of")),
        "the silence was not reported\n{}",
        replicator.log()
    );
    // Frozen 7 s in all: past the delivery timeout, short of the broker's own KRaft session
    // (9 s), past which the single-node cluster fences itself when it wakes (another test).
    std::thread::sleep(Duration::from_secs(7).saturating_sub(frozen_at.elapsed()));
    signal_broker(&clusters, "northamerica", rustix::process::Signal::CONT);

    // Some more traffic after the thaw, then all of it must arrive.
    assert!(wait_until(Duration::from_secs(60), || replicator
        .log()
        .contains("the target acknowledges records again")));
    let written = writer.stop();
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(120), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "not everything was copied after the thaw\n{}\nstatus: {:?}",
        replicator.log(),
        http_get(port, "/api/status")
    );
    let duplicates = assert_complete_in_order(
        &read_all(&europe, "events"),
        &read_all(&north, "events"),
        "northamerica",
    );
    println!("{written} records written, {duplicates} duplicate(s) on the target");
    let log = replicator.log();
    assert_eq!(
        duplicates, 0,
        "nothing was given up, so nothing is sent twice\n{log}"
    );
    assert_eq!(
        log.matches("northamerica has acknowledged nothing of")
            .count(),
        1,
        "reported once\n{log}"
    );
}

/// A pod started (a rollout, a reschedule) while a region is down copies to the other regions
/// and is ready, as a pod already running when the region went down is: readiness must not hold
/// a rollout during an outage no pod can fix. The region's flow shows degraded, then catches up.
#[test]
fn a_process_started_during_an_outage_is_ready_and_catches_up_when_the_region_returns() {
    let mut clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Sqlite);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    let south = clusters.bootstrap("southamerica");
    create_topic(&europe, "events", 3, &[]);
    produce(&europe, "events", &numbered_records("outage", 3, 0, BATCH));
    clusters
        .get_mut("northamerica")
        .stop(StopSignal::Kill)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broadcast_config(&clusters, "IdentityReplicationPolicy", ""),
    );
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    let replicator = Replicator::start(
        &config,
        &["--clusters", "northamerica,southamerica", "--http", &http],
    );
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(90), || progress_reached(
            &south, "europe", "events", &ends
        )),
        "southamerica waited for northamerica\n{}",
        replicator.log()
    );
    let north_state = || {
        let (_, body) = http_get(port, "/api/status")?;
        let flows: serde_json::Value = serde_json::from_str(&body).ok()?;
        let flow = flows["flows"]
            .as_array()?
            .iter()
            .find(|f| f["name"] == "europe->northamerica")?;
        flow["state"].as_str().map(str::to_string)
    };
    assert!(
        wait_until(Duration::from_secs(60), || {
            http_get(port, "/readyz").is_some_and(|(code, _)| code == 200)
                && north_state().as_deref() == Some("degraded")
        }),
        "not ready, or the region's flow not degraded, while northamerica is down: {:?} {:?}\n{}",
        http_get(port, "/readyz"),
        north_state(),
        replicator.log()
    );

    clusters.get_mut("northamerica").restart().unwrap();
    assert!(
        wait_until(Duration::from_secs(120), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "northamerica did not catch up once back\n{}\nstatus: {:?}",
        replicator.log(),
        http_get(port, "/api/status")
    );
    let source = read_all(&europe, "events");
    assert_complete_in_order(&source, &read_all(&north, "events"), "northamerica");
    assert!(
        wait_until(Duration::from_secs(60), || north_state().as_deref()
            == Some("running")),
        "the flow does not show running again: {:?}",
        north_state()
    );
}
