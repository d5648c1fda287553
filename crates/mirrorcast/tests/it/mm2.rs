//! Genuine MirrorMaker 2 (Apache Kafka's `connect-mirror`, dedicated mode) next to mirrorcast
//! on Apache Kafka, with the same properties file: each continues from the progress the other
//! stored, MM2's own client code reads mirrorcast's checkpoints and heartbeats, and both write
//! the same remote topics, configs, offset syncs and checkpoints for the same input.
//! The two hand-over tests exercise the migration runbook in docs/migrating-from-mm2.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use localcluster::{Clusters, MirrorMaker, Storage};

const TOPIC: &str = "LH.ORDERS";

/// One properties file for both replicators: every internal topic at replication factor 1
/// (single-node clusters), progress flushed every second (Connect's default is 60 s).
pub(crate) fn mm2_config(
    clusters: &Clusters,
    targets: &[&str],
    policy: &str,
    extra: &str,
) -> String {
    let mut text = format!(
        "clusters = europe, {}\n\
         europe.bootstrap.servers = {}\n\
         replication.policy.class = org.apache.kafka.connect.mirror.{policy}\n\
         replication.factor = 1\n\
         offset-syncs.topic.replication.factor = 1\n\
         checkpoints.topic.replication.factor = 1\n\
         heartbeats.topic.replication.factor = 1\n\
         offset.storage.replication.factor = 1\n\
         config.storage.replication.factor = 1\n\
         status.storage.replication.factor = 1\n\
         offset.flush.interval.ms = 1000\n\
         emit.checkpoints.interval.seconds = 1\n\
         refresh.topics.interval.seconds = 5\n\
         refresh.groups.interval.seconds = 5\n",
        targets.join(", "),
        clusters.bootstrap("europe"),
    );
    for target in targets {
        text.push_str(&format!(
            "{target}.bootstrap.servers = {}\neurope->{target}.enabled = true\n",
            clusters.bootstrap(target)
        ));
    }
    text.push_str(extra);
    text
}

pub(crate) fn start_mm2(config: &Path, target: &str) -> MirrorMaker {
    let log = config.with_extension(format!("mm2-{target}.log"));
    MirrorMaker::start(config, &[target], &log).unwrap_or_else(|e| panic!("cannot start MM2: {e}"))
}

/// Europe and North America, `LH.ORDERS` with `backlog` records over two partitions, and one
/// properties file for both replicators.
fn handoff_setup(backlog: usize) -> (Clusters, tempfile::TempDir, PathBuf) {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, TOPIC, 2, &[]);
    produce(&europe, TOPIC, &numbered_records("backlog", 2, 0, backlog));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &mm2_config(
            &clusters,
            &["northamerica"],
            "IdentityReplicationPolicy",
            "topics = LH.*\n",
        ),
    );
    (clusters, dir, config)
}

#[test]
fn mirrorcast_continues_from_the_progress_mm2_stored() {
    let (clusters, _dir, config) = handoff_setup(40_000);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");

    // Records keep arriving while MM2 copies, so that it is stopped in mid-copy (paced: about
    // 10,000 a second, not a backlog of millions while its JVM starts).
    let writer =
        BackgroundProducer::start_paced(&europe, TOPIC, 2, 40_000, Duration::from_millis(50));
    let mut mm2 = start_mm2(&config, "northamerica");
    assert!(
        wait_until(Duration::from_secs(120), || {
            let (_, stored) = copied_and_stored(&north, "europe", TOPIC);
            stored.len() == 2
        }),
        "MM2 stored no progress for both partitions\n{}",
        mm2.log()
    );
    // A crash: whatever MM2 copied after its last offset flush is not in its progress.
    mm2.kill();
    let written = writer.stop();
    let (by_mm2, stored) = copied_and_stored(&north, "europe", TOPIC);
    println!("MM2 copied {by_mm2:?}, stored progress {stored:?}");
    let mut expected_recopies = 0;
    for (p, copied) in &by_mm2 {
        let resume = stored[p] + 1;
        assert!(
            *copied >= resume,
            "MM2 stored progress beyond what it copied"
        );
        expected_recopies += copied - resume;
    }
    // More records while nobody replicates.
    produce(
        &europe,
        TOPIC,
        &numbered_records("after", 2, written, 2_000),
    );
    assert!(
        total_records(&europe, TOPIC) > by_mm2.values().sum::<i64>(),
        "MM2 should have been stopped before the end"
    );

    // The runbook's step 1: the same file validates.
    let mirrorcast = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "mirrorcast {args:?}: {text}{said}");
        text
    };
    let file = config.to_str().unwrap();
    mirrorcast(&["validate", file, "--clusters", "northamerica"]);
    // Step 3: `offsets list` shows where MM2 stopped, which is where mirrorcast starts.
    let listed = mirrorcast(&[
        "offsets",
        "list",
        file,
        "--source",
        "europe",
        "--target",
        "northamerica",
    ]);
    for (p, last) in &stored {
        let row = format!("{TOPIC:<40} {p:>9} {:>12}", last + 1);
        assert!(listed.contains(&row), "no `{row}` in\n{listed}");
    }

    // Step 4: mirrorcast with the same file.
    let replicator = Replicator::start(&config, &["--clusters", "northamerica"]);
    let ends = end_offsets(&europe, TOPIC);
    assert!(
        wait_until(Duration::from_secs(120), || progress_reached(
            &north, "europe", TOPIC, &ends
        )),
        "mirrorcast did not finish\n{}",
        replicator.log()
    );
    // Step 5: complete, in order, and re-copying only what MM2 copied after its last flush.
    let duplicates =
        assert_complete_in_order(&read_all(&europe, TOPIC), &read_all(&north, TOPIC), TOPIC);
    println!(
        "re-copied {duplicates} record(s); MM2 copied {expected_recopies} after its last flush"
    );
    assert_eq!(
        duplicates as i64, expected_recopies,
        "mirrorcast must resume exactly after the offset MM2 stored"
    );
}

#[test]
fn mm2_continues_from_the_progress_mirrorcast_stored() {
    let (clusters, _dir, config) = handoff_setup(20_000);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    let mut replicator = Replicator::start(&config, &["--clusters", "northamerica"]);
    assert!(
        wait_until(Duration::from_secs(60), || total_records(&north, TOPIC) > 0),
        "{}",
        replicator.log()
    );
    replicator.terminate_cleanly(Duration::from_secs(30));
    let (copied, stored) = copied_and_stored(&north, "europe", TOPIC);
    println!("mirrorcast copied {copied:?}, stored progress {stored:?}");
    for (p, count) in &copied {
        if *count > 0 {
            assert_eq!(
                stored.get(p),
                Some(&(count - 1)),
                "progress stored at SIGTERM"
            );
        }
    }
    produce(
        &europe,
        TOPIC,
        &numbered_records("second", 2, 20_000, 2_000),
    );

    let mm2 = start_mm2(&config, "northamerica");
    let source_total = total_records(&europe, TOPIC);
    assert!(
        wait_until(Duration::from_secs(180), || total_records(&north, TOPIC)
            >= source_total),
        "MM2 did not catch up: {} of {source_total}\n{}",
        total_records(&north, TOPIC),
        mm2.log()
    );
    let duplicates =
        assert_complete_in_order(&read_all(&europe, TOPIC), &read_all(&north, TOPIC), TOPIC);
    assert_eq!(
        duplicates, 0,
        "MM2 must resume right after mirrorcast's stored progress"
    );
}

/// Compiles `tests/mm2/Mm2ClientCheck.java` against Kafka's jars and runs it on `bootstrap`.
fn mm2_client_check(bootstrap: &str, source_alias: &str, group: &str) -> String {
    let kafka = localcluster::find_kafka().unwrap_or_else(|e| panic!("{e}"));
    let classes = tempfile::tempdir().unwrap();
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mm2/Mm2ClientCheck.java");
    let javac = Command::new("javac")
        .args(["-cp", &kafka.classpath(), "-d"])
        .arg(classes.path())
        .arg(&source)
        .output()
        .expect("javac (a JDK) is needed for this test");
    assert!(
        javac.status.success(),
        "{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let classpath = format!("{}:{}", classes.path().display(), kafka.classpath());
    let run = Command::new("java")
        .args([
            "-cp",
            &classpath,
            "Mm2ClientCheck",
            bootstrap,
            source_alias,
            group,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

#[test]
fn mm2_client_code_reads_mirrorcast_checkpoints_and_heartbeats_and_agrees_on_translation() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "orders", 2, &[]);
    produce(&europe, "orders", &numbered_records("orders", 2, 0, 1_000));
    commit(&europe, "shop", "orders", &[(0, 230), (1, 377)]);
    let dir = tempfile::tempdir().unwrap();
    // One flow; as MM2's heartbeat connector, mirrorcast also writes heartbeats for the pair
    // without a flow (northamerica->europe) into europe, whose `heartbeats` topic the flow
    // replicates whatever `topics` says: `europe.heartbeats` on North America tells
    // MirrorClient where its data comes from.
    let config = write_config(
        dir.path(),
        &format!(
            "{}topics = orders\n\
             emit.heartbeats.interval.seconds = 1\n",
            mm2_config(&clusters, &["northamerica"], "DefaultReplicationPolicy", "")
        ),
    );
    let replicator = Replicator::start(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(60), || try_translate_offsets(
            &config,
            "europe",
            "northamerica",
            "shop",
            "orders"
        )
        .is_ok_and(|t| t.len() == 2)),
        "no checkpoints for shop\n{}",
        replicator.log()
    );
    assert!(
        wait_until(Duration::from_secs(60), || topic_partitions(
            &north,
            "europe.heartbeats"
        )
        .is_some()
            && total_records(&north, "europe.heartbeats") > 0),
        "europe's heartbeats were not replicated\n{}",
        replicator.log()
    );
    let ours = translate_offsets(&config, "europe", "northamerica", "shop", "orders");
    let check = mm2_client_check(&north, "europe", "shop");
    println!("{check}");
    let theirs: BTreeMap<i32, i64> = check
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"translate") && f.get(1) == Some(&"europe.orders"))
                .then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .collect();
    assert_eq!(
        theirs, ours,
        "RemoteClusterUtils.translateOffsets disagrees"
    );
    assert!(
        check.lines().any(|l| l == "upstream europe 1"),
        "MirrorClient should see europe one hop upstream"
    );
    let now = now_ms();
    let heartbeats: Vec<i64> = check
        .lines()
        .filter_map(|l| l.strip_prefix("heartbeat europe northamerica "))
        .map(|ts| ts.parse().unwrap())
        .collect();
    assert!(!heartbeats.is_empty(), "MM2's Heartbeat class read none");
    assert!(
        heartbeats.iter().all(|ts| (now - ts).abs() < 120_000),
        "heartbeat timestamps are not recent: {heartbeats:?}"
    );
    let checkpoints: BTreeSet<(i32, i64, i64)> = check
        .lines()
        .filter_map(|l| l.strip_prefix("checkpoint shop europe.orders "))
        .map(|rest| {
            let f: Vec<i64> = rest.split(' ').map(|n| n.parse().unwrap()).collect();
            (f[0] as i32, f[1], f[2])
        })
        .collect();
    for (partition, upstream) in [(0, 230), (1, 377)] {
        assert!(
            checkpoints.contains(&(partition, upstream, ours[&partition])),
            "MM2's Checkpoint class read {checkpoints:?}"
        );
    }
}

#[test]
fn mm2_and_mirrorcast_write_the_same_topics_configs_offset_syncs_and_checkpoints_for_the_same_input(
) {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    create_topic(
        &europe,
        TOPIC,
        3,
        &[
            ("retention.ms", "3600000"),
            ("max.message.bytes", "200000"),
            ("min.insync.replicas", "1"),
        ],
    );
    produce(&europe, TOPIC, &numbered_records("same", 3, 0, 3_000));
    commit(&europe, "shop", TOPIC, &[(0, 500), (1, 777), (2, 1_000)]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &mm2_config(
            &clusters,
            &["northamerica", "southamerica"],
            "DefaultReplicationPolicy",
            // A custom separator: remote and internal topic names follow it (KIP-690).
            "topics = LH.*\nreplication.policy.separator = _\n",
        ),
    );
    // The same file: MM2 replicates to North America, mirrorcast to South America.
    let mm2 = start_mm2(&config, "northamerica");
    let replicator = Replicator::start(&config, &["--clusters", "southamerica"]);
    let remote = format!("europe_{TOPIC}");
    let source = read_all(&europe, TOPIC);
    for (target, log) in [
        ("northamerica", mm2.log()),
        ("southamerica", replicator.log()),
    ] {
        let bootstrap = clusters.bootstrap(target);
        assert!(
            wait_until(Duration::from_secs(180), || total_records(
                &bootstrap, &remote
            ) >= 3_000),
            "{target} did not get the records\n{log}"
        );
    }
    let north = clusters.bootstrap("northamerica");
    let south = clusters.bootstrap("southamerica");
    assert_eq!(read_all(&north, &remote), source, "MM2's copy");
    assert_eq!(read_all(&south, &remote), source, "mirrorcast's copy");
    assert_eq!(
        topic_overrides(&north, &remote),
        topic_overrides(&south, &remote),
        "remote topic configs"
    );

    // The same topics on both targets, named by the same separator rules, but Connect's own:
    // config and status topics, and the offsets topic of the worker that runs only the
    // heartbeats of the pair from the other target (mirrorcast runs no Connect worker, and its
    // heartbeats store no progress).
    let topics = |bootstrap: &str| -> BTreeSet<String> {
        let admin = admin_client(bootstrap);
        let metadata = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .filter(|t| !t.starts_with("mm2-configs.") && !t.starts_with("mm2-status."))
            .filter(|t| !t.starts_with("mm2-offsets.") || t == "mm2-offsets.europe.internal")
            .filter(|t| !t.starts_with("__"))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(60), || topics(&north) == topics(&south)),
        "topics: MM2 made {:?}, mirrorcast {:?}",
        topics(&north),
        topics(&south)
    );
    println!("topics on both targets: {:?}", topics(&south));

    // Heartbeats: MM2's heartbeat connector runs for every pair into the clusters it was
    // started for, flow or not; each target has those of its flow and of the other target.
    let heartbeat_pairs = |bootstrap: &str| -> BTreeSet<(String, String)> {
        read_raw(bootstrap, "heartbeats")
            .iter()
            .filter_map(|(k, v)| mirrorcast::offsets::codec::Heartbeat::decode(k, v).ok())
            .map(|h| (h.source_alias, h.target_alias))
            .collect()
    };
    let pairs = |a: &str, b: &str| -> BTreeSet<(String, String)> {
        [("europe", a), (b, a)]
            .iter()
            .map(|(s, t)| (s.to_string(), t.to_string()))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(30), || heartbeat_pairs(&north)
            == pairs("northamerica", "southamerica")
            && heartbeat_pairs(&south) == pairs("southamerica", "northamerica")),
        "heartbeats: MM2 wrote {:?}, mirrorcast {:?}",
        heartbeat_pairs(&north),
        heartbeat_pairs(&south)
    );

    // Offset syncs, on the source, in the same bytes: both write one for the first copy and
    // once the downstream offset moved offset.lag.max, and at an offset flush one for the
    // newest copy that got none. Flushes fall at different moments of the two copies, so the
    // rule's points are compared and every other sync must map a record to its copy. The
    // final record's sync is mirrorcast's at the next flush; MM2 writes it only when the
    // record's acknowledgement came before its last offset flush with anything to commit (seen
    // both ways here), so for MM2 it is optional.
    let syncs = |target: &str| -> BTreeSet<(Vec<u8>, Vec<u8>)> {
        read_raw(&europe, &format!("mm2-offset-syncs_{target}_internal"))
            .into_iter()
            .collect()
    };
    let rule_points: BTreeSet<(i32, i64, i64)> = source
        .iter()
        .flat_map(|(p, records)| {
            (0..records.len() as i64)
                .step_by(101)
                .map(move |o| (*p, o, o))
        })
        .collect();
    let final_points: BTreeSet<(i32, i64, i64)> = source
        .iter()
        .map(|(p, records)| (*p, records.len() as i64 - 1, records.len() as i64 - 1))
        .collect();
    let at_rule_points = |target: &str| -> BTreeSet<(i32, i64, i64)> {
        let all = decode_syncs(&syncs(target));
        assert!(
            all.iter().all(|(_, up, down)| up == down),
            "{target}: a sync maps a record elsewhere: {all:?}"
        );
        all.into_iter()
            .filter(|s| rule_points.contains(s) || final_points.contains(s))
            .collect()
    };
    let with_final: BTreeSet<_> = rule_points.union(&final_points).copied().collect();
    assert!(
        wait_until(Duration::from_secs(30), || {
            let theirs = at_rule_points("northamerica");
            (theirs == rule_points || theirs == with_final)
                && at_rule_points("southamerica") == with_final
        }),
        "offset syncs differ from the rule's {with_final:?}:\nMM2 {:?}\nmirrorcast {:?}",
        decode_syncs(&syncs("northamerica")),
        decode_syncs(&syncs("southamerica"))
    );
    println!("MM2's syncs: {:?}", decode_syncs(&syncs("northamerica")));
    println!(
        "mirrorcast's syncs: {:?}",
        decode_syncs(&syncs("southamerica"))
    );

    // Checkpoints: the same keys (group, remote topic, partition) and bytes layout. Values: MM2's
    // rule (the newest sync at or below the committed offset, plus one unless exactly at it);
    // mirrorcast applies it to every sync in the topic, MM2 to the sparse set its
    // OffsetSyncStore keeps in memory (fewer, the older the offset), so MM2's checkpoint may
    // come from an older sync: mirrorcast's is never behind MM2's, and neither is ahead of the
    // truth (here downstream = upstream).
    let checkpoints = |bootstrap: &str| -> BTreeMap<i32, i64> {
        read_raw(bootstrap, "europe_checkpoints_internal")
            .iter()
            .filter_map(|(k, v)| mirrorcast::offsets::codec::Checkpoint::decode(k, v).ok())
            .filter(|c| c.group == "shop" && c.topic == remote)
            .map(|c| {
                assert_eq!(c.metadata, "");
                (c.partition, c.downstream_offset)
            })
            .collect()
    };
    let committed: BTreeMap<i32, i64> = [(0, 500), (1, 777), (2, 1_000)].into();
    let our_syncs: Vec<_> = offset_syncs(&europe, "mm2-offset-syncs_southamerica_internal", TOPIC);
    let expected: BTreeMap<i32, i64> = committed
        .iter()
        .map(|(p, g)| (*p, mm2_translation(&our_syncs, *p, *g)))
        .collect();
    // Partition 2's group is at its end, 1,000, and the topic is quiet from then on: only the
    // sync held back and written at the next offset flush (MM2's delayed-sync promotion) lets
    // its checkpoint reach the end rather than stay up to offset.lag.max behind.
    assert_eq!(expected[&2], 1_000, "syncs {our_syncs:?}");
    assert!(
        wait_until(Duration::from_secs(60), || checkpoints(&south) == expected),
        "mirrorcast's checkpoints {:?}, by MM2's rule {expected:?}\n{}",
        checkpoints(&south),
        replicator.log()
    );
    assert!(
        wait_until(Duration::from_secs(60), || checkpoints(&north).len() == 3),
        "MM2 wrote no checkpoints for shop\n{}",
        mm2.log()
    );
    let theirs = checkpoints(&north);
    for (p, g) in &committed {
        assert!(
            theirs[p] <= *g,
            "MM2 translated {g} past the truth: {}",
            theirs[p]
        );
    }
    println!("checkpoints of shop: MM2 {theirs:?}, mirrorcast {expected:?}");
}

/// MM2's translation (3.5+): the newest sync at or below the committed offset; one past its
/// downstream offset unless the committed offset is exactly its upstream one.
fn mm2_translation(
    syncs: &[mirrorcast::offsets::codec::OffsetSync],
    partition: i32,
    committed: i64,
) -> i64 {
    syncs
        .iter()
        .filter(|s| s.partition == partition && s.upstream_offset <= committed)
        .max_by_key(|s| s.upstream_offset)
        .map_or(-1, |s| {
            s.downstream_offset + i64::from(s.upstream_offset != committed)
        })
}

fn decode_syncs(raw: &BTreeSet<(Vec<u8>, Vec<u8>)>) -> Vec<(i32, i64, i64)> {
    raw.iter()
        .filter_map(|(k, v)| mirrorcast::offsets::codec::OffsetSync::decode(k, v).ok())
        .map(|s| (s.partition, s.upstream_offset, s.downstream_offset))
        .collect()
}
