//! A remote topic whose `max.message.bytes` is below librdkafka's 1 MB batches: the copy's
//! batches follow the limit, so every record arrives, in order, none refused, the flow
//! running. (Before: every batch was refused as too large and the copy crawled through
//! one-record probes: 120 of 20,000 records in 90 s, the flow shown running.)

use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

const RECORDS: usize = 20_000;

#[test]
fn a_remote_topic_limited_below_librdkafkas_batches_is_copied_whole_and_in_order() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    // Synced to the remote topic when it is created.
    create_topic(&europe, "events", 2, &[("max.message.bytes", "100000")]);
    let records: Vec<_> = numbered_records("limited", 2, 0, RECORDS)
        .into_iter()
        .map(|(partition, mut record)| {
            if let Some(value) = &mut record.value {
                value.resize(1_500, b'.');
            }
            (partition, record)
        })
        .collect();
    // Written as a Java producer writes them: 16 kB batches.
    TestProducer::with(&europe, &[("batch.size", "16384")]).send_all("events", &records);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &one_flow_config(&clusters, ""));
    let port = localcluster::free_port().unwrap();
    let replicator = Replicator::start(&config, &["--http", &format!("127.0.0.1:{port}")]);

    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(90), || end_offsets(&north, "events")
            == ends),
        "copied {:?} of {ends:?}\n{}",
        end_offsets(&north, "events"),
        replicator.log()
    );
    assert!(
        read_all(&north, "events") == read_all(&europe, "events"),
        "in order, once"
    );
    let log = replicator.log();
    assert!(
        log.contains("hold at most 100000 bytes from now on: events's max.message.bytes"),
        "{log}"
    );
    assert!(!log.contains("too large"), "no batch refused:\n{log}");
    let scrape = scrape(port).expect("metrics");
    for partition in ["0", "1"] {
        let labels = [("topic", "events"), ("partition", partition)];
        assert_eq!(
            value(&scrape, "mirrorcast_records_refused_total", &labels),
            0.0
        );
    }
}
