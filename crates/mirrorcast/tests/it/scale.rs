//! One process using several cores: `tasks.max` copier threads per source, each with some of
//! its partitions (and its own readers and producers), read once for every target.

use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

#[test]
fn copier_threads_split_a_source_and_every_target_gets_every_record_once_in_order() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let topics = [("LH.ORDERS", 6), ("LH.STOCK", 3)];
    for (topic, partitions) in topics {
        create_topic(&europe, topic, partitions, &[]);
        produce(
            &europe,
            topic,
            &numbered_records(topic, partitions, 0, 3_000),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broadcast_config(
            &clusters,
            "IdentityReplicationPolicy",
            "topics = LH.*\ntasks.max = 2\n",
        ),
    );
    let port = localcluster::free_port().unwrap();
    let replicator = Replicator::start(&config, &["--http", &format!("127.0.0.1:{port}")]);
    for (topic, _) in topics {
        let source = read_all(&europe, topic);
        for target in ["northamerica", "southamerica"] {
            let bootstrap = clusters.bootstrap(target);
            assert!(
                wait_until(Duration::from_secs(90), || read_all(&bootstrap, topic)
                    == source),
                "{target}: {topic} not copied exactly once, in order\n{}",
                replicator.log()
            );
        }
    }
    // Both threads copied: each has its own partitions, and used the CPU for them.
    let threads = replicator.thread_cpu();
    for name in ["copier0 europe", "copier1 europe"] {
        assert!(
            threads.get(name).is_some_and(|&ticks| ticks > 0),
            "{name} did no work: {threads:?}"
        );
    }
    println!("CPU ticks per thread: {threads:?}");
    // The flow is shown whole: every partition, whichever thread copies it.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let Some((200, body)) = http_get(port, "/api/status") else {
                return false;
            };
            let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            status["flows"].as_array().is_some_and(|flows| {
                flows.len() == 2
                    && flows.iter().all(|f| {
                        // Europe's heartbeats (from the other regions' pairs) travel too.
                        let ours = f["partitions"].as_array().map(|p| {
                            p.iter()
                                .filter(|p| {
                                    p["topic"].as_str().is_some_and(|t| t.starts_with("LH."))
                                })
                                .count()
                        });
                        ours == Some(9) && f["records_copied"].as_u64() >= Some(2 * 3_000)
                    })
            })
        }),
        "{:?}",
        http_get(port, "/api/status")
    );
}
