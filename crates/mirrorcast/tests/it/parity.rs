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
