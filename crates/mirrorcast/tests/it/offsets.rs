//! MM2's offset syncs and heartbeats on real brokers: written where they are configured, in
//! MM2's bytes, at the rules' offsets and the configured interval.

use std::time::Duration;

use crate::common::*;
use localcluster::Storage;
use mirrorcast::offsets::codec::{Heartbeat, OffsetSync};

#[test]
fn offset_syncs_follow_offset_lag_max_and_heartbeats_arrive_at_their_interval() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, "orders", 1, &[]);
    produce(&europe, "orders", &numbered_records("sync", 1, 0, 250));
    let dir = tempfile::tempdir().unwrap();
    // North America keeps its syncs on the target (the scenario's choice); South America on the
    // source (MM2's default).
    let extra = "offset.lag.max = 100\n\
                 emit.heartbeats.interval.seconds = 1\n\
                 europe->northamerica.offset-syncs.topic.location = target\n";
    let config = write_config(
        dir.path(),
        &broadcast_config(&clusters, "IdentityReplicationPolicy", extra),
    );
    // As deployed: the process serves the targets (no heartbeats into Europe to copy back).
    let replicator = Replicator::start(&config, &["--clusters", "northamerica,southamerica"]);
    let north = clusters.bootstrap("northamerica");
    let south = clusters.bootstrap("southamerica");
    let ends = end_offsets(&europe, "orders");
    for target in [&north, &south] {
        assert!(
            wait_until(Duration::from_secs(60), || progress_reached(
                target, "europe", "orders", &ends
            )),
            "{}",
            replicator.log()
        );
    }

    let syncs = |bootstrap: &str, topic: &str| -> Vec<OffsetSync> {
        read_raw(bootstrap, topic)
            .iter()
            .map(|(k, v)| OffsetSync::decode(k, v).expect("MM2 offset sync bytes"))
            .collect()
    };
    // The first copy of the run, then every offset.lag.max, and (at the next offset flush, as
    // MM2 does) the last copy that got none: upstream = downstream here.
    let expected: Vec<(i64, i64)> = vec![(0, 0), (101, 101), (202, 202), (249, 249)];
    for (bootstrap, topic) in [
        (&north, "mm2-offset-syncs.europe.internal"),
        (&europe, "mm2-offset-syncs.southamerica.internal"),
    ] {
        assert!(
            wait_until(Duration::from_secs(20), || syncs(bootstrap, topic).len()
                >= 4),
            "{topic}: {:?}\n{}",
            syncs(bootstrap, topic),
            replicator.log()
        );
        let got: Vec<(i64, i64)> = syncs(bootstrap, topic)
            .iter()
            .map(|s| (s.upstream_offset, s.downstream_offset))
            .collect();
        assert_eq!(got, expected, "{topic}");
        assert!(syncs(bootstrap, topic)
            .iter()
            .all(|s| s.topic == "orders" && s.partition == 0));
    }
    assert_eq!(
        topic_partitions(&north, "mm2-offset-syncs.europe.internal"),
        Some(1)
    );

    // Heartbeats: MM2's bytes, about one a second.
    assert!(wait_until(Duration::from_secs(20), || read_raw(
        &north,
        "heartbeats"
    )
    .len()
        >= 4));
    let all: Vec<Heartbeat> = read_raw(&north, "heartbeats")
        .iter()
        .map(|(k, v)| Heartbeat::decode(k, v).expect("MM2 heartbeat bytes"))
        .collect();
    // The flow's, and (as MM2's heartbeat connector) those of the pair without a flow.
    let pairs: std::collections::BTreeSet<(&str, &str)> = all
        .iter()
        .map(|b| (b.source_alias.as_str(), b.target_alias.as_str()))
        .collect();
    assert!(
        pairs.is_subset(&[("europe", "northamerica"), ("southamerica", "northamerica")].into()),
        "{pairs:?}"
    );
    let beats: Vec<&Heartbeat> = all.iter().filter(|b| b.source_alias == "europe").collect();
    let gaps: Vec<i64> = beats
        .windows(2)
        .map(|w| w[1].timestamp_ms - w[0].timestamp_ms)
        .collect();
    assert!(
        gaps.iter().all(|g| (800..=2500).contains(g)),
        "heartbeat gaps {gaps:?} ms"
    );
    assert_eq!(topic_partitions(&north, "heartbeats"), Some(1));
}
