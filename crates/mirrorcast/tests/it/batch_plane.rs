//! The batch data plane (`data.plane = batch`) on Apache Kafka: an lz4-compressed source
//! arrives as the same batches, their bodies byte for byte (only the header's producer fields,
//! offsets and checksum differ), the target's log as large as the source's; a LogAppendTime
//! topic arrives re-encoded with the source's append times; progress is stored in MM2's format.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use localcluster::Storage;
use mirrorcast::kafka::record_batch::{self, Batch, Codec};
use mirrorcast::kafka::wire::{versions, Cluster, WireConfig};

const EVENTS: &str = "LH.EVENTS";
const APPENDED: &str = "LH.APPENDED";
const PARTITIONS: i32 = 3;

/// Every batch of `topic[partition]`, as the broker stores it.
fn stored_batches(bootstrap: &str, topic: &str, partition: i32) -> Vec<Batch> {
    let mut cluster = Cluster::new(WireConfig {
        bootstrap: vec![bootstrap.to_string()],
        client_id: "batch-plane-test".to_string(),
        timeout: Duration::from_secs(10),
    });
    cluster.refresh(&[topic.to_string()]).unwrap();
    let leader = cluster.leader(topic, partition).unwrap();
    let (mut batches, mut offset) = (Vec::new(), 0);
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(10)
            .with_min_bytes(1)
            .with_max_bytes(8 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(4 << 20)])]);
        let response = cluster
            .call(leader.broker, &request, "Fetch", versions::FETCH)
            .unwrap();
        let data = &response.responses[0].partitions[0];
        assert_eq!(data.error_code, 0, "{topic}[{partition}] at {offset}");
        let cut = record_batch::split(&data.records.clone().unwrap_or_default()).unwrap();
        let Some(last) = cut.batches.last() else {
            return batches;
        };
        offset = last.last_offset() + 1;
        batches.extend(cut.batches);
        if offset >= data.high_watermark {
            return batches;
        }
    }
}

/// The records with a header key twice (once without a value) and a key that is not UTF-8.
fn with_duplicate_headers(records: Vec<(i32, TestRecord)>) -> Vec<(i32, TestRecord)> {
    records
        .into_iter()
        .map(|(p, mut r)| {
            r.headers.push(("trace-id".into(), Some(b"a".to_vec())));
            r.headers.push(("trace-id".into(), None));
            r.headers
                .push((vec![0xff, 0xfe], Some(b"not utf-8".to_vec())));
            (p, r)
        })
        .collect()
}

#[test]
fn whole_batches_arrive_with_their_bodies_byte_for_byte_and_appended_ones_re_encoded() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    create_topic(&europe, EVENTS, PARTITIONS, &[]);
    create_topic(
        &europe,
        APPENDED,
        PARTITIONS,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let lz4 = TestProducer::with(
        &europe,
        &[
            ("compression.type", "lz4"),
            ("linger.ms", "20"),
            ("batch.size", "16384"),
        ],
    );
    lz4.send_all(
        EVENTS,
        &with_duplicate_headers(numbered_records("events", PARTITIONS, 0, 6000)),
    );
    TestProducer::new(&europe)
        .send_all(APPENDED, &numbered_records("appended", PARTITIONS, 0, 900));

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &one_flow_config(
            &clusters,
            "topics = LH.*\nsync.topic.acls.enabled = false\ndata.plane = batch\n",
        ),
    );
    let port = localcluster::free_port().unwrap();
    let replicator = Replicator::start(&config, &["--http", &format!("127.0.0.1:{port}")]);
    for topic in [EVENTS, APPENDED] {
        let source = read_all(&europe, topic);
        assert!(
            wait_until(Duration::from_secs(90), || read_all(&north, topic)
                == source),
            "{topic}: {:?} of {:?}\n{}",
            read_all(&north, topic)
                .values()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            source.values().map(Vec::len).collect::<Vec<_>>(),
            replicator.log()
        );
    }

    let (mut source_bytes, mut target_bytes) = (0usize, 0usize);
    for partition in 0..PARTITIONS {
        let source = stored_batches(&europe, EVENTS, partition);
        let target = stored_batches(&north, EVENTS, partition);
        assert!(source.len() > 1, "several batches per partition");
        assert_eq!(
            source.len(),
            target.len(),
            "{EVENTS}[{partition}]: one batch per batch"
        );
        for (s, t) in source.iter().zip(&target) {
            t.check_crc().unwrap();
            assert_eq!(t.codec().unwrap(), Codec::Lz4);
            assert_eq!(s.record_count(), t.record_count());
            assert_eq!(s.base_timestamp(), t.base_timestamp());
            assert_eq!(
                s.body(),
                t.body(),
                "{EVENTS}[{partition}] batch at {}: body differs",
                s.base_offset()
            );
            source_bytes += s.len();
            target_bytes += t.len();
        }
        // LogAppendTime batches cannot keep their attributes: re-encoded, with the source's
        // append time as each record's timestamp (what the consumer above compared).
        for t in stored_batches(&north, APPENDED, partition) {
            assert!(!t.log_append_time());
        }
    }
    assert_eq!(source_bytes, target_bytes);
    println!(
        "{EVENTS}: {source_bytes} bytes in the source's batches, {target_bytes} in the target's"
    );

    // Progress in MM2's format: the last copied offset of each partition.
    let ends = end_offsets(&europe, EVENTS);
    let expected: BTreeMap<i32, i64> = ends.iter().map(|(p, end)| (*p, end - 1)).collect();
    assert!(
        wait_until(Duration::from_secs(90), || stored_offsets(&north, EVENTS)
            == expected),
        "stored {:?}, expected {expected:?}\n{}",
        stored_offsets(&north, EVENTS),
        replicator.log()
    );
    let scrape = scrape(port).unwrap();
    let copied = value(
        &scrape,
        "mirrorcast_records_total",
        &[("topic", EVENTS), ("partition", "0")],
    );
    assert_eq!(copied, 2000.0, "records counted from the batch headers");
}
