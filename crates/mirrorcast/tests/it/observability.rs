//! `run --http`: /metrics parsed with a Prometheus text parser during a replication run —
//! counters increase, lag drops to 0 when the copy completes and grows while the target is
//! stopped — and /api/status shows the last error of the flow whose target is down.

use std::time::Duration;

use crate::common::*;
use localcluster::{StopSignal, Storage};

#[test]
fn metrics_show_copying_lag_and_an_outage_and_status_shows_its_error() {
    let mut clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Sqlite);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, "events", 2, &[]);
    let producer = TestProducer::new(&europe);
    producer.send_all("events", &numbered_records("obs", 2, 0, 1000));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broadcast_config(
            &clusters,
            "IdentityReplicationPolicy",
            "sync.topic.acls.enabled = false\nemit.checkpoints.interval.seconds = 1\n",
        ),
    );
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    let replicator = Replicator::start(
        &config,
        &[
            "--clusters",
            "northamerica",
            "--http",
            &http,
            "--mm2-metrics",
        ],
    );
    let flow = [("source", "europe"), ("target", "northamerica")];

    assert!(wait_until(Duration::from_secs(30), || http_get(
        port, "/healthz"
    )
    .is_some_and(|(c, _)| c == 200)));
    assert!(
        wait_until(Duration::from_secs(60), || http_get(port, "/readyz")
            .is_some_and(|(c, _)| c == 200)),
        "{}",
        replicator.log()
    );
    // Counters reach the record count and the lag drops to 0.
    let caught_up = |records: f64| {
        move || {
            scrape(port).is_some_and(|s| {
                value(&s, "mirrorcast_records_total", &flow) == records
                    && value(&s, "mirrorcast_flow_offset_lag_records", &flow) == 0.0
                    && value(
                        &s,
                        "mirrorcast_flow_state",
                        &[flow[0], flow[1], ("state", "running")],
                    ) == 1.0
            })
        }
    };
    assert!(
        wait_until(Duration::from_secs(60), caught_up(1000.0)),
        "{}",
        replicator.log()
    );
    let first = scrape(port).unwrap();
    assert!(value(&first, "mirrorcast_copied_bytes_total", &flow) > 0.0);
    assert!(
        value(
            &first,
            "mirrorcast_replication_latency_seconds_count",
            &flow
        ) >= 1000.0
    );
    assert!(value(&first, "process_resident_memory_bytes", &[]) > 0.0);
    // MM2's metrics under Strimzi's names (--mm2-metrics), per remote topic and partition.
    for partition in ["0", "1"] {
        let labels = [
            flow[0],
            flow[1],
            ("topic", "events"),
            ("partition", partition),
        ];
        let mm2 = |name: &str| {
            let name = format!("kafka_connect_mirror_mirrorsourceconnector_{name}");
            value(&first, &name, &labels)
        };
        assert_eq!(mm2("record_count"), 500.0, "{}", replicator.log());
        assert!(mm2("byte_count") > 0.0);
        // Min, max and average exist once records were copied (absent, not 0, without).
        for stat in ["replication_latency_ms_max", "record_age_ms_avg"] {
            let name = format!("kafka_connect_mirror_mirrorsourceconnector_{stat}");
            assert!(
                first
                    .samples
                    .iter()
                    .any(|s| s.metric == name && s.labels.get("partition") == Some(partition)),
                "no {name} for partition {partition}"
            );
        }
    }
    assert_eq!(
        value(&first, "kafka_connect_worker_connector_count", &[]),
        3.0
    );
    // A group with committed offsets is checkpointed: its latency is measured.
    commit(&europe, "orders-service", "events", &[(0, 400), (1, 400)]);
    let mm2_checkpoint = "kafka_connect_mirror_mirrorcheckpointconnector_checkpoint_latency_ms";
    assert!(
        wait_until(Duration::from_secs(60), || scrape(port).is_some_and(|s| {
            value(&s, "mirrorcast_checkpoint_latency_seconds_count", &flow) > 0.0
                && s.samples.iter().any(|x| {
                    x.metric == mm2_checkpoint
                        && x.labels.get("group") == Some("orders-service")
                        && x.labels.get("topic") == Some("events")
                })
        })),
        "no checkpoint latency\n{}",
        replicator.log()
    );
    for partition in ["0", "1"] {
        let labels = [
            flow[0],
            flow[1],
            ("topic", "events"),
            ("partition", partition),
        ];
        assert_eq!(value(&first, "mirrorcast_offset_lag_records", &labels), 0.0);
        assert_eq!(value(&first, "mirrorcast_records_total", &labels), 500.0);
    }

    // The target goes down: the lag grows with what Europe keeps receiving.
    clusters
        .get_mut("northamerica")
        .stop(StopSignal::Kill)
        .unwrap();
    producer.send_all("events", &numbered_records("obs", 2, 1000, 500));
    assert!(
        wait_until(Duration::from_secs(30), || scrape(port).is_some_and(
            |s| value(&s, "mirrorcast_flow_offset_lag_records", &flow) == 500.0
        )),
        "lag did not grow\n{}",
        replicator.log()
    );
    assert!(
        wait_until(Duration::from_secs(30), || http_get(port, "/api/status")
            .is_some_and(|(_, body)| {
                let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                status["flows"][0]["last_error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            })),
        "no last error for the flow whose target is down: {:?}",
        http_get(port, "/api/status")
    );

    // Back up: everything arrives, counters go on, lag is 0 again.
    clusters.get_mut("northamerica").restart().unwrap();
    assert!(
        wait_until(Duration::from_secs(90), caught_up(1500.0)),
        "{}",
        replicator.log()
    );
    let (_, body) = http_get(port, "/api/status").unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let partitions = status["flows"][0]["partitions"].as_array().unwrap();
    assert!(
        partitions.iter().all(|p| p["lag_records"] == 0
            && p["source_end_offset"] == 750
            && p["replicated_offset"] == 750),
        "{body}"
    );
}
