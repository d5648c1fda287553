//! A record the target refuses for good (here: larger than the remote topic's
//! `max.message.bytes`) stops only its partition, visibly (`errors.tolerance = none`, Kafka
//! Connect's default), or goes to a dead-letter topic on the target with headers saying where it
//! came from and why (`errors.tolerance = all`); every other record keeps flowing. (Before: the
//! partition was re-sent forever, unseen, the flow `running`.)

use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

const LIMIT: &str = "10000";

/// `events` on the source: partition 0 holds ten small records, one of 50 kB, ten small ones;
/// partition 1 twenty small ones. The remote topic exists with a 10 kB record limit, which the
/// config keeps out of the config sync.
fn setup(
    extra: &str,
) -> (
    localcluster::Clusters,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Sqlite);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, "events", 2, &[]);
    create_topic(
        &clusters.bootstrap("northamerica"),
        "events",
        2,
        &[("max.message.bytes", LIMIT)],
    );
    let mut records = numbered_records("small", 1, 0, 10);
    let mut large = numbered_records("large", 1, 0, 1);
    large[0].1.value = Some(vec![b'x'; 50_000]);
    records.extend(large);
    records.extend(numbered_records("small", 1, 10, 10));
    records.extend(
        numbered_records("other", 1, 0, 20)
            .into_iter()
            .map(|(_, r)| (1, r)),
    );
    produce(&europe, "events", &records);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &one_flow_config(
            &clusters,
            &format!("config.properties.exclude = max\\.message\\.bytes\n{extra}"),
        ),
    );
    (clusters, dir, config)
}

fn status_of_partition(port: u16, partition: i64) -> Option<serde_json::Value> {
    let (_, body) = http_get(port, "/api/status")?;
    let status: serde_json::Value = serde_json::from_str(&body).ok()?;
    let flow = status["flows"].as_array()?.first()?.clone();
    let found = flow["partitions"]
        .as_array()?
        .iter()
        .find(|p| p["partition"] == partition)?
        .clone();
    Some(serde_json::json!({"flow": flow["state"], "partition": found}))
}

#[test]
fn a_record_the_target_refuses_stops_only_its_partition_visibly() {
    let (clusters, _dir, config) = setup("");
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    let port = localcluster::free_port().unwrap();
    let replicator = Replicator::start(&config, &["--http", &format!("127.0.0.1:{port}")]);

    let stopped = wait_until(Duration::from_secs(90), || {
        status_of_partition(port, 0)
            .is_some_and(|s| s["partition"]["stopped_at_offset"] == 10 && s["flow"] == "degraded")
    });
    assert!(
        stopped,
        "partition 0 not shown stopped at offset 10: {:?}\n{}",
        status_of_partition(port, 0),
        replicator.log()
    );
    let status = status_of_partition(port, 0).unwrap();
    let reason = status["partition"]["stop_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("too large"), "reason: {reason}");
    // Not ready: the data needs a person (before: 200, the flow shown as if it copied).
    let (code, body) = http_get(port, "/readyz").unwrap_or_default();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("europe->northamerica: the target refuses records"),
        "{body}"
    );

    // The other partition keeps copying, before and after.
    produce(
        &europe,
        "events",
        &numbered_records("other", 1, 20, 10)
            .into_iter()
            .map(|(_, r)| (1, r))
            .collect::<Vec<_>>(),
    );
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(60), || end_offsets(&north, "events")
            .get(&1)
            == ends.get(&1)),
        "partition 1 stopped too\n{}",
        replicator.log()
    );
    let source = read_all(&europe, "events");
    let target = read_all(&north, "events");
    assert_eq!(
        target.get(&0).map(Vec::len),
        Some(10),
        "only the records before it"
    );
    assert_eq!(target[&0][..], source[&0][..10]);
    assert_eq!(target[&1], source[&1]);
    let progress = stored_progress(&north, "europe").unwrap_or_default();
    assert_eq!(
        progress.get(&("events".to_string(), 0)).map(|s| s.offset),
        Some(9)
    );

    let scrape = scrape(port).expect("metrics");
    let labels = [("topic", "events"), ("partition", "0")];
    assert_eq!(
        value(&scrape, "mirrorcast_records_refused_total", &labels),
        1.0
    );
    assert_eq!(value(&scrape, "mirrorcast_partition_stopped", &labels), 1.0);
    let log = replicator.log();
    assert_eq!(
        log.matches("stopped at offset 10").count(),
        1,
        "logged once:\n{log}"
    );
}

#[test]
fn with_errors_tolerance_all_a_refused_record_goes_to_the_dead_letter_topic() {
    let (clusters, _dir, config) = setup(
        "errors.tolerance = all\n\
         errors.deadletterqueue.topic.name = mirrorcast-dlq\n\
         errors.deadletterqueue.topic.replication.factor = 1\n",
    );
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    let replicator = Replicator::start(&config, &[]);
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(90), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "the copy did not pass the refused record\n{}",
        replicator.log()
    );
    let source = read_all(&europe, "events");
    let target = read_all(&north, "events");
    let mut without_large = source[&0].clone();
    let large = without_large.remove(10);
    assert_eq!(
        target[&0], without_large,
        "in order, without the refused record"
    );
    assert_eq!(target[&1], source[&1]);

    let dead = read_all(&north, "mirrorcast-dlq");
    let dead: Vec<_> = dead.into_values().flatten().collect();
    assert_eq!(dead.len(), 1, "one dead letter");
    assert_eq!(dead[0].key, large.key);
    assert_eq!(dead[0].value, large.value);
    let header = |name: &str| {
        dead[0]
            .headers
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    assert_eq!(header("__connect.errors.topic").as_deref(), Some("events"));
    assert_eq!(header("__connect.errors.partition").as_deref(), Some("0"));
    assert_eq!(header("__connect.errors.offset").as_deref(), Some("10"));
    assert_eq!(
        header("__connect.errors.exception.class.name").as_deref(),
        Some("org.apache.kafka.common.errors.RecordTooLargeException")
    );
    assert!(header("__connect.errors.exception.message").is_some_and(|m| m.contains("too large")));
    // The record's own headers come first, unchanged.
    assert_eq!(dead[0].headers[..large.headers.len()], large.headers[..]);
    let log = replicator.log();
    assert!(log.contains("written to mirrorcast-dlq"), "{log}");
}
