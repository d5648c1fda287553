//! Broadcast replication on real brokers: europe → northamerica and southamerica, every record
//! byte-identical in key, value, headers and timestamp, in the same partition and order.

use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

const TARGETS: [&str; 2] = ["northamerica", "southamerica"];

/// Keyed and unkeyed records, null and empty values, binary headers with repeated keys, null
/// values and keys that are not UTF-8 (which once killed the copier), explicit timestamps days
/// in the past (inside the default 7-day retention).
fn records_for(partitions: i32, per_partition: usize) -> Vec<(i32, TestRecord)> {
    let base = now_ms() - 3 * 24 * 3600 * 1000;
    let mut records = Vec::new();
    for i in 0..per_partition {
        for p in 0..partitions {
            let n = i * partitions as usize + p as usize;
            let key = match n % 3 {
                0 => None,
                1 => Some(format!("key-{n}").into_bytes()),
                _ => Some(vec![0u8, 0xff, n as u8, 0x80]),
            };
            let value = match n % 5 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some((0..(n % 300)).map(|b| (b * 7 + n) as u8).collect()),
            };
            let headers = match n % 4 {
                0 => vec![],
                1 => vec![("trace".into(), Some(vec![1, 2, 3]))],
                2 => vec![
                    (vec![0xff, 0xfe, b'k'], Some(vec![n as u8])),
                    (vec![0xc3, 0x28], None),
                ],
                _ => vec![
                    ("dup".into(), Some(vec![0xde, 0xad])),
                    ("nil".into(), None),
                    ("dup".into(), Some(vec![0xbe, 0xef, n as u8])),
                ],
            };
            records.push((
                p,
                TestRecord {
                    key,
                    value,
                    headers,
                    timestamp: base + n as i64 * 1000,
                },
            ));
        }
    }
    records
}

fn replicates_byte_for_byte(policy: &str, remote: fn(&str) -> String) {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let topics = [("orders", 1), ("stock", 3), ("sensors", 5)];
    for (topic, partitions) in topics {
        create_topic(&europe, topic, partitions, &[]);
        produce(&europe, topic, &records_for(partitions, 40));
    }
    create_topic(&europe, "skip.internal", 2, &[]);
    produce(&europe, "skip.internal", &records_for(2, 1));

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broadcast_config(&clusters, policy, "refresh.topics.interval.seconds = 2\n"),
    );
    let replicator = Replicator::start(&config, &[]);

    // A topic created while running is picked up within the refresh interval.
    create_topic(&europe, "late", 3, &[]);
    produce(&europe, "late", &records_for(3, 10));

    let all_topics = [("orders", 1), ("stock", 3), ("sensors", 5), ("late", 3)];
    for target in TARGETS {
        let bootstrap = clusters.bootstrap(target);
        for (topic, partitions) in all_topics {
            let remote_topic = remote(topic);
            let source_ends = end_offsets(&europe, topic);
            let done = wait_until(Duration::from_secs(90), || {
                end_offsets(&bootstrap, &remote_topic) == source_ends
            });
            assert!(
                done,
                "{target}/{remote_topic} did not catch up with {source_ends:?}\n{}",
                replicator.log()
            );
            assert_eq!(
                topic_partitions(&bootstrap, &remote_topic),
                Some(partitions),
                "{target}/{remote_topic}"
            );
            let source = read_all(&europe, topic);
            let copied = read_all(&bootstrap, &remote_topic);
            assert_eq!(source.len(), copied.len());
            for (p, records) in &source {
                assert_eq!(
                    records, &copied[p],
                    "{target}/{remote_topic}[{p}] differs from the source"
                );
            }
        }
        assert_eq!(
            topic_partitions(&bootstrap, &remote("skip.internal")),
            None,
            "internal topics are not copied"
        );
    }
}

#[test]
fn default_policy_copies_every_record_byte_for_byte_to_both_targets() {
    replicates_byte_for_byte(
        "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
        |t| format!("europe.{t}"),
    );
}

#[test]
fn identity_policy_copies_every_record_byte_for_byte_to_both_targets() {
    replicates_byte_for_byte(
        "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
        |t| t.to_string(),
    );
}

#[test]
fn default_policy_never_sends_a_topic_back_to_its_source_region() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    // Came from northamerica once already.
    create_topic(&europe, "northamerica.orders", 2, &[]);
    produce(&europe, "northamerica.orders", &records_for(2, 5));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broadcast_config(&clusters, "DefaultReplicationPolicy", ""),
    );
    let replicator = Replicator::start(&config, &[]);
    let south = clusters.bootstrap("southamerica");
    let ends = end_offsets(&europe, "northamerica.orders");
    assert!(
        wait_until(Duration::from_secs(60), || end_offsets(
            &south,
            "europe.northamerica.orders"
        ) == ends),
        "southamerica should get europe.northamerica.orders\n{}",
        replicator.log()
    );
    let north = clusters.bootstrap("northamerica");
    assert_eq!(topic_partitions(&north, "europe.northamerica.orders"), None);
}
