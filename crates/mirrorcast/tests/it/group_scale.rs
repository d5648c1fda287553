//! Many consumer groups: every checkpoint round reads all of them over one pair of clients (one
//! metadata fetch, their committed offsets in flight together, the remote ends in one request),
//! so hundreds of groups committed on the source all reach the target within a few rounds, each
//! at its translated offset. (Before, each group cost new clients and a full metadata fetch: 300
//! groups, synced every second, had 152 on the target after 80 s.)

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use crate::common::*;
use localcluster::Storage;

const GROUPS: usize = 300;
const PARTITIONS: i32 = 3;

fn group(i: usize) -> String {
    format!("scale-{i:03}")
}

/// The groups on `bootstrap` whose name starts with `scale-`.
fn scale_groups(bootstrap: &str) -> usize {
    let lister = group_client(bootstrap, "mirrorcast-test-lister");
    lister
        .fetch_group_list(None, Duration::from_secs(10))
        .map_or(0, |list| {
            list.groups()
                .iter()
                .filter(|g| g.name().starts_with("scale-"))
                .count()
        })
}

#[test]
fn hundreds_of_groups_reach_the_target_within_a_few_rounds() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    create_topic(&europe, "orders", PARTITIONS, &[]);
    produce(
        &europe,
        "orders",
        &numbered_records("scale", PARTITIONS, 0, 600),
    );
    // Each group at its own place: group i at i % 200 on every partition.
    let all: Vec<usize> = (0..GROUPS).collect();
    std::thread::scope(|scope| {
        for chunk in all.chunks(GROUPS / 4) {
            let europe = &europe;
            scope.spawn(move || {
                for &i in chunk {
                    let at = (i % 200) as i64;
                    let offsets: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, at)).collect();
                    commit(europe, &group(i), "orders", &offsets);
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &one_flow_config(
            &clusters,
            "sync.group.offsets.enabled = true\n\
             sync.group.offsets.interval.seconds = 1\n\
             emit.checkpoints.interval.seconds = 1\n\
             offset.lag.max = 1\n",
        ),
    );
    let replicator = Replicator::start(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(60), || total_records(&north, "orders")
            == 600),
        "the records were not copied\n{}",
        replicator.log()
    );
    let copied = Instant::now();
    let mut seen = 0;
    assert!(
        wait_until(Duration::from_secs(60), || {
            seen = scale_groups(&north);
            seen == GROUPS
        }),
        "{seen} of {GROUPS} groups reached the target in 60 s\n{}",
        replicator.log()
    );
    println!(
        "{GROUPS} groups on the target {:.1?} after the records",
        copied.elapsed()
    );
    // Each at a translated place on every partition: never past where it was on the source
    // (identity policy: the same offsets), so a consumer skips nothing.
    for i in [0, 1, 99, 199, 200, 299] {
        let want = (i % 200) as i64;
        let mut list = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            list.add_partition("orders", p);
        }
        let mut offsets = Vec::new();
        assert!(
            wait_until(Duration::from_secs(30), || {
                offsets = group_client(&north, &group(i))
                    .committed_offsets(list.clone(), Duration::from_secs(10))
                    .map(|l| l.elements().iter().map(|e| e.offset()).collect())
                    .unwrap_or_default();
                offsets.len() == PARTITIONS as usize
                    && offsets
                        .iter()
                        .all(|o| matches!(o, Offset::Offset(o) if *o <= want))
            }),
            "{}: {offsets:?}, not at or before {want} on every partition",
            group(i)
        );
    }
}
