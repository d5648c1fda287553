//! Internal topics written by someone else cannot make the copy skip records: a negative
//! progress offset in `mm2-offsets.*` (which no copy writes) or one that cannot be read is
//! ignored with a warning, and the partition is copied from the beginning. (Before, -2 was taken as stored progress: the copy
//! resumed at librdkafka's logical offset -1, the end, and skipped every record.)

use std::time::Duration;

use crate::common::*;
use localcluster::Storage;
use mirrorcast::progress::codec;

#[test]
fn a_negative_stored_progress_is_ignored_with_a_warning_and_nothing_is_skipped() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "orders", 1, &[]);
    produce(&europe, "orders", &numbered_records("hostile", 1, 0, 20));
    let progress_topic = "mm2-offsets.europe.internal";
    create_topic(&north, progress_topic, 1, &[("cleanup.policy", "compact")]);
    let forged = TestRecord {
        key: Some(codec::encode_key(
            codec::DEDICATED_MODE_CONNECTOR,
            "europe",
            "orders",
            0,
        )),
        value: Some(codec::encode_value(-2, None)),
        headers: vec![],
        timestamp: now_ms(),
    };
    let mut unreadable = forged.clone();
    unreadable.key = Some(codec::encode_key(
        codec::DEDICATED_MODE_CONNECTOR,
        "europe",
        "orders",
        1,
    ));
    unreadable.value = Some(br#"{"offset":"soon"}"#.to_vec());
    produce(&north, progress_topic, &[(0, forged), (0, unreadable)]);

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &one_flow_config(&clusters, ""));
    let replicator = Replicator::start(&config, &[]);
    let source = read_all(&europe, "orders");
    let copied = wait_until(Duration::from_secs(60), || {
        end_offsets(&north, "orders").get(&0) == Some(&20)
    });
    assert!(copied, "{}", replicator.log());
    assert_complete_in_order(&source, &read_all(&north, "orders"), "northamerica");
    let log = replicator.log();
    assert!(
        log.contains("ignoring stored progress -2 of orders[0]"),
        "{log}"
    );
    assert!(
        log.contains("ignoring a progress record of MirrorSourceConnector that cannot be read"),
        "{log}"
    );
}
