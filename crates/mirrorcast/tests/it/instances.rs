//! Several processes of one replicator, started with the same file and no key of ours
//! (`instances.group.enabled` is on by default), share Europe's partitions through a consumer
//! group on Europe, under continuous production: one is SIGKILLed, another joins, one is
//! frozen (SIGSTOP) past its session timeout and then goes on. Every record ends on both
//! targets in order, the stored progress never goes back, duplicates only come from where a
//! partition moved, and the flows' duties run on one instance at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use localcluster::Storage;
use mirrorcast::progress::codec::{decode, DEDICATED_MODE_CONNECTOR};

const TOPICS: [(&str, i32); 2] = [("LH.ORDERS", 6), ("LH.STOCK", 3)];
const PARTITIONS: f64 = 9.0;
const TARGETS: [&str; 2] = ["northamerica", "southamerica"];

/// One process of the replicator, with its HTTP port.
struct Instance {
    name: &'static str,
    port: u16,
    replicator: Replicator,
}

impl Instance {
    fn start(name: &'static str, config: &std::path::Path) -> Self {
        let port = localcluster::free_port().unwrap();
        let replicator = Replicator::start_logging(
            config,
            &[
                "--clusters",
                "northamerica,southamerica",
                "--http",
                &format!("127.0.0.1:{port}"),
            ],
            "info,mirrorcast::copy::lane=debug,mirrorcast::instances=debug",
        );
        Instance {
            name,
            port,
            replicator,
        }
    }

    /// Europe's partitions the group gives it, whether it leads, and the records it copied.
    fn standing(&self) -> Option<(f64, f64, f64)> {
        let scrape = scrape(self.port)?;
        let europe = [("source", "europe")];
        Some((
            value(&scrape, "mirrorcast_group_partitions", &europe),
            value(&scrape, "mirrorcast_group_leads", &europe),
            value(&scrape, "mirrorcast_records_total", &europe),
        ))
    }
}

/// The instances that are up (not killed, not frozen), shared with the sampler.
type Live = Arc<Mutex<Vec<(&'static str, u16)>>>;

/// Samples every live instance's `mirrorcast_group_leads`, config sync and checkpoint rounds
/// until stopped. Returns the violations: two instances that said they lead in two rounds in a
/// row (one round may straddle a handover), an instance whose config syncs or checkpoints went
/// on while it did not lead on either side; and last, who led.
fn sample_leaders(live: Live, running: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut violations = Vec::new();
        let mut previous: Vec<&str> = Vec::new();
        let mut leaders_seen = BTreeSet::new();
        // Per instance: whether it led, and its config sync and checkpoint rounds, at the
        // last sample.
        let mut last: BTreeMap<&str, (bool, [f64; 2])> = BTreeMap::new();
        while running.load(Ordering::Relaxed) {
            let instances = live.lock().unwrap().clone();
            let mut leaders = Vec::new();
            for (name, port) in instances {
                let Some(scrape) = scrape(port) else {
                    continue;
                };
                let leads = value(&scrape, "mirrorcast_group_leads", &[("source", "europe")]) > 0.0;
                let rounds = [
                    "mirrorcast_topic_config_sync_runs_total",
                    "mirrorcast_checkpoint_rounds_total",
                ]
                .map(|metric| value(&scrape, metric, &[("source", "europe")]));
                if let Some((led, before)) = last.insert(name, (leads, rounds)) {
                    for (duty, (now, then)) in ["synced configs", "checkpointed"]
                        .iter()
                        .zip(rounds.iter().zip(before))
                    {
                        if !led && !leads && *now > then {
                            violations.push(format!("{name} {duty} while not leading"));
                        }
                    }
                }
                if leads {
                    leaders.push(name);
                }
            }
            leaders_seen.extend(leaders.iter().copied());
            if leaders.len() > 1 && previous.len() > 1 {
                violations.push(format!("{previous:?} then {leaders:?}"));
            }
            previous = leaders;
            std::thread::sleep(Duration::from_millis(100));
        }
        violations.push(format!("leaders seen: {leaders_seen:?}"));
        violations
    })
}

/// Waits until the instances named own all of Europe's partitions between them, none of them
/// idle, one of them leading.
fn wait_for_balance(instances: &[&Instance], what: &str) {
    let mut last = Vec::new();
    let balanced = wait_until(Duration::from_secs(60), || {
        last = instances.iter().map(|i| (i.name, i.standing())).collect();
        let standings: Vec<(f64, f64, f64)> = last.iter().filter_map(|(_, s)| *s).collect();
        standings.len() == instances.len()
            && standings.iter().map(|s| s.0).sum::<f64>() == PARTITIONS
            && standings.iter().all(|s| s.0 > 0.0)
            && standings.iter().filter(|s| s.1 > 0.0).count() == 1
    });
    let logs: String = instances
        .iter()
        .map(|i| format!("--- {}\n{}", i.name, i.replicator.log()))
        .collect();
    assert!(balanced, "{what}: not balanced: {last:?}\n{logs}");
}

fn leader<'a>(instances: &[&'a Instance]) -> &'a Instance {
    let mut found = None;
    wait_until(Duration::from_secs(30), || {
        found = instances
            .iter()
            .find(|i| i.standing().is_some_and(|s| s.1 > 0.0));
        found.is_some()
    });
    found.unwrap_or_else(|| {
        let logs: String = instances
            .iter()
            .map(|i| format!("--- {} {:?}\n{}", i.name, i.standing(), i.replicator.log()))
            .collect();
        panic!("no leader\n{logs}")
    })
}

/// The source partitions an instance copies now, per its `/api/status`.
fn copied_partitions(port: u16) -> BTreeSet<(String, i32)> {
    let (_, body) = http_get(port, "/api/status").expect("status");
    let status: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    status["flows"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|flow| flow["partitions"].as_array().into_iter().flatten())
        .filter_map(|p| {
            Some((
                p["topic"].as_str()?.to_string(),
                p["partition"].as_i64()? as i32,
            ))
        })
        .collect()
}

/// The source partitions an instance's per-partition series name (every one of them).
fn metric_partitions(port: u16) -> BTreeSet<(String, i32)> {
    let Some(scrape) = scrape(port) else {
        return BTreeSet::new();
    };
    scrape
        .samples
        .iter()
        .filter(|s| s.metric.starts_with("mirrorcast_"))
        .filter_map(|s| {
            Some((
                s.labels.get("topic")?.to_string(),
                s.labels.get("partition")?.parse().ok()?,
            ))
        })
        .collect()
}

/// The history of the progress stored on `target`: per source partition, every offset in
/// the order written (one key always lands on one partition of the progress topic).
fn progress_history(target: &str) -> BTreeMap<(String, i32), Vec<i64>> {
    let mut history: BTreeMap<(String, i32), Vec<i64>> = BTreeMap::new();
    for (key, value) in read_raw(target, "mm2-offsets.europe.internal") {
        if let Some((source, Some(offset))) = decode(DEDICATED_MODE_CONNECTOR, &key, Some(&value)) {
            history
                .entry((source.topic, source.partition))
                .or_default()
                .push(offset.offset);
        }
    }
    history
}

/// Where the lanes copying `topic[partition]` to `target` rewound to, as their debug lines say
/// (`LH.ORDERS[1] rewound to Offset(3683) (epoch 2) flow=europe->southamerica`).
fn rewinds(logs: &[String], target: &str, topic: &str, partition: i32) -> BTreeSet<i64> {
    let (prefix, flow) = (
        format!("{topic}[{partition}] rewound to Offset("),
        format!("flow=europe->{target}"),
    );
    logs.iter()
        .flat_map(|log| log.lines())
        .filter(|line| line.contains(&flow))
        .filter_map(|line| {
            let after = &line[line.find(&prefix)? + prefix.len()..];
            after[..after.find(')')?].parse().ok()
        })
        .collect()
}

/// Waits until the progress stored on both targets reaches Europe's end on every topic (as it
/// is when asked: production may go on); `logs` says why not.
fn wait_for_everything_stored(clusters: &localcluster::Clusters, logs: impl Fn() -> String) {
    let europe = clusters.bootstrap("europe");
    for target in TARGETS {
        let bootstrap = clusters.bootstrap(target);
        for (topic, _) in TOPICS {
            let ends = end_offsets(&europe, topic);
            assert!(
                wait_until(Duration::from_secs(90), || progress_reached(
                    &bootstrap, "europe", topic, &ends
                )),
                "{target}: {topic} not all copied\n{}",
                logs()
            );
        }
    }
}

/// The clusters, the config's directory and file, and the producers writing to Europe.
type Scenario = (
    localcluster::Clusters,
    tempfile::TempDir,
    std::path::PathBuf,
    Vec<BackgroundProducer>,
);

/// Three clusters, Europe's topics, a config of instances sharing Europe in a group
/// (`tasks.max` copier threads each) plus `extra`, and producers writing to every topic until
/// stopped.
fn scenario(tasks: usize, extra: &str) -> Scenario {
    with_config(&format!("tasks.max = {tasks}\n{extra}"))
}

/// [`scenario`] with Europe's LH topics and only `extra` in the file.
fn with_config(extra: &str) -> Scenario {
    with_config_on(extra, None)
}

/// [`with_config`] on Kafka `release` (`None`: the line's, or the broker the tests run on).
fn with_config_on(extra: &str, release: Option<String>) -> Scenario {
    let names = ["europe", "northamerica", "southamerica"];
    let clusters = match release {
        Some(release) => start_kafka_clusters(
            &names,
            &localcluster::KafkaOptions {
                release: Some(release),
                ..localcluster::KafkaOptions::default()
            },
        ),
        None => start_clusters(&names, Storage::Memory),
    };
    let europe = clusters.bootstrap("europe");
    for (topic, partitions) in TOPICS {
        create_topic(&europe, topic, partitions, &[]);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broadcast_config(
            &clusters,
            "IdentityReplicationPolicy",
            &format!("topics = LH.*\n{extra}"),
        ),
    );
    let producers = TOPICS
        .iter()
        .map(|(topic, partitions)| {
            BackgroundProducer::start_paced(
                &europe,
                topic,
                *partitions,
                0,
                Duration::from_millis(250),
            )
        })
        .collect();
    (clusters, dir, config, producers)
}

#[test]
fn instances_share_the_source_through_a_group_and_survive_kill_join_and_freeze() {
    let (clusters, _dir, config, producers) = scenario(
        1,
        "europe.consumer.session.timeout.ms = 6000\n\
         europe.consumer.heartbeat.interval.ms = 1000\n\
         emit.heartbeats.interval.seconds = 1\n\
         sync.topic.configs.interval.seconds = 1\n\
         emit.checkpoints.interval.seconds = 1\n\
         refresh.topics.interval.seconds = 2\n",
    );
    let europe = clusters.bootstrap("europe");
    let a = Instance::start("a", &config);
    let b = Instance::start("b", &config);
    let c = Instance::start("c", &config);
    let live: Live = Arc::new(Mutex::new(vec![
        (a.name, a.port),
        (b.name, b.port),
        (c.name, c.port),
    ]));
    let running = Arc::new(AtomicBool::new(true));
    let sampler = sample_leaders(live.clone(), running.clone());
    wait_for_balance(&[&a, &b, &c], "three instances");
    let mut copied_by = BTreeMap::new();
    let settle = Instant::now() + Duration::from_secs(3);
    for instance in [&a, &b, &c] {
        // Each copies its share: records show up on its own counters.
        assert!(
            wait_until(Duration::from_secs(30), || instance
                .standing()
                .is_some_and(|s| s.2 > 0.0)),
            "{} copied nothing\n{}",
            instance.name,
            instance.replicator.log()
        );
    }
    std::thread::sleep(settle.saturating_duration_since(Instant::now()));

    // The leader dies without a word: its partitions and duties move after its session.
    let mut instances = vec![a, b, c];
    let killed = leader(&instances.iter().collect::<Vec<_>>()).name;
    let mut dead = instances.remove(instances.iter().position(|i| i.name == killed).unwrap());
    copied_by.insert(dead.name, dead.standing().map(|s| s.2).unwrap_or(0.0));
    live.lock().unwrap().retain(|(name, _)| *name != killed);
    dead.replicator.kill();
    wait_for_balance(&instances.iter().collect::<Vec<_>>(), "after the kill");

    // A fourth joins and takes a share.
    let d = Instance::start("d", &config);
    live.lock().unwrap().push((d.name, d.port));
    instances.push(d);
    wait_for_balance(&instances.iter().collect::<Vec<_>>(), "after the join");

    // The leader freezes past its session timeout, then goes on.
    let frozen = leader(&instances.iter().collect::<Vec<_>>()).name;
    let frozen_at = instances.iter().position(|i| i.name == frozen).unwrap();
    let frozen_partitions = copied_partitions(instances[frozen_at].port);
    live.lock().unwrap().retain(|(name, _)| *name != frozen);
    instances[frozen_at].replicator.freeze(true);
    let others: Vec<&Instance> = instances.iter().filter(|i| i.name != frozen).collect();
    wait_for_balance(&others, "while one is frozen");
    instances[frozen_at].replicator.freeze(false);
    let resumed = Instant::now();
    live.lock()
        .unwrap()
        .push((instances[frozen_at].name, instances[frozen_at].port));
    wait_for_balance(&instances.iter().collect::<Vec<_>>(), "after the thaw");
    let thawed_log = instances[frozen_at].replicator.log();
    assert!(
        thawed_log.contains("did not run for") && thawed_log.contains("session expired"),
        "the frozen instance did not see its pause and its loss:\n{thawed_log}"
    );
    println!("rejoined {:?} after the thaw", resumed.elapsed());

    // Production stops; everything arrives.
    for producer in producers {
        producer.stop();
    }
    let sources: Vec<(&str, BTreeMap<i32, Vec<TestRecord>>)> = TOPICS
        .iter()
        .map(|(topic, _)| (*topic, read_all(&europe, topic)))
        .collect();
    wait_for_everything_stored(&clusters, String::new);
    running.store(false, Ordering::Relaxed);
    let sampled = sampler.join().unwrap();
    for instance in &instances {
        copied_by.insert(
            instance.name,
            instance.standing().map(|s| s.2).unwrap_or(0.0),
        );
    }
    println!("records copied per instance: {copied_by:?}; leadership: {sampled:?}");
    assert!(
        copied_by.values().all(|&n| n > 0.0),
        "every instance copies: {copied_by:?}"
    );
    assert_eq!(
        sampled.len(),
        1,
        "two instances led at once, or one synced or checkpointed while another led: {sampled:?}"
    );

    // What each process said about moving partitions, for a failure's message.
    let diagnostics = || -> String {
        std::iter::once(&dead)
            .chain(instances.iter())
            .map(|i| {
                let said: Vec<String> = i
                    .replicator
                    .log()
                    .lines()
                    .filter(|l| {
                        [
                            "WARN", "ERROR", "handed", "lost", "copying", "resuming", "leads",
                            "gave", "rewound",
                        ]
                        .iter()
                        .any(|w| l.contains(w))
                    })
                    .map(String::from)
                    .collect();
                format!("--- {}\n{}\n", i.name, said.join("\n"))
            })
            .collect()
    };
    for i in std::iter::once(&dead).chain(instances.iter()) {
        let log = i.replicator.log();
        println!(
            "{}: {} handover(s), {} loss(es), {} pause(s) seen",
            i.name,
            log.matches("handed").count(),
            log.matches("session expired").count(),
            log.matches("did not run for").count()
        );
    }
    let logs: Vec<String> = std::iter::once(&dead)
        .chain(instances.iter())
        .map(|i| i.replicator.log())
        .collect();
    for target in TARGETS {
        let bootstrap = clusters.bootstrap(target);
        let history = progress_history(&bootstrap);
        for (partition, offsets) in &history {
            assert!(
                offsets.windows(2).all(|w| w[0] <= w[1]),
                "{target}: the progress of {partition:?} went back: {offsets:?}\n{}",
                diagnostics()
            );
        }
        for (topic, source) in &sources {
            let copied = read_all(&bootstrap, topic);
            let duplicates =
                assert_complete_in_order(source, &copied, &format!("{target} {topic}"));
            let produced: usize = source.values().map(Vec::len).sum();
            println!("{target} {topic}: {produced} records, {duplicates} duplicate(s)");
            // Re-copied runs start right after a progress the previous owner stored (or at the
            // start, when it had stored none), or where a lane rewound to its last acknowledged
            // record (its producer purged, or a delivery failed: what it had sent may land too).
            for (partition, records) in &copied {
                let stored: BTreeSet<i64> = history
                    .get(&(topic.to_string(), *partition))
                    .into_iter()
                    .flatten()
                    .copied()
                    .collect();
                let rewound = rewinds(&logs, target, topic, *partition);
                let index: std::collections::HashMap<&TestRecord, i64> = source[partition]
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r, i as i64))
                    .collect();
                let (mut highest, mut previous, mut late_runs) = (-1, -1, 0);
                for record in records {
                    let offset = index[record];
                    let restarts = offset <= highest && offset != previous + 1;
                    // From the start: moved before any progress was stored for it.
                    if restarts
                        && offset > 0
                        && !stored.contains(&(offset - 1))
                        && !rewound.contains(&offset)
                    {
                        // What the frozen instance had queued before its pause, sent when it
                        // went on: one run, on a partition it copied then.
                        late_runs += 1;
                        assert!(
                            late_runs == 1
                                && frozen_partitions.contains(&(topic.to_string(), *partition)),
                            "{target} {topic}[{partition}]: a re-copied run starts at {offset}, \
                             after no stored progress ({stored:?}) nor at a rewind \
                             ({rewound:?})\n{}",
                            diagnostics()
                        );
                    }
                    highest = highest.max(offset);
                    previous = offset;
                }
            }
        }
    }
    // Heartbeats of the flow come from one instance at a time: no steady double rate.
    let heartbeats: Vec<i64> = {
        let mut stamps: Vec<i64> = read_raw(&clusters.bootstrap("northamerica"), "heartbeats")
            .into_iter()
            .filter_map(|(k, v)| mirrorcast::offsets::codec::Heartbeat::decode(&k, &v).ok())
            .filter(|h| h.source_alias == "europe")
            .map(|h| h.timestamp_ms)
            .collect();
        stamps.sort_unstable();
        stamps
    };
    let close = heartbeats.windows(2).filter(|w| w[1] - w[0] < 500).count();
    println!(
        "{} heartbeats of europe on northamerica, {close} less than 0.5 s apart",
        heartbeats.len()
    );
    assert!(heartbeats.len() > 10 && close <= 4, "{heartbeats:?}");
    for instance in &mut instances {
        instance
            .replicator
            .terminate_cleanly(Duration::from_secs(30));
    }
}

/// The check, as a user scales MM2's dedicated mode: the same file, without a key of
/// ours, on two hosts; one is killed and a third joins. Everything arrives in order, and the
/// kill costs fewer duplicates than one second of copying.
#[test]
fn the_same_file_on_two_hosts_shares_the_work_and_a_kill_costs_less_than_a_second_of_copying() {
    let (clusters, _dir, config, producers) = with_config("");
    let europe = clusters.bootstrap("europe");
    let production = Instant::now();
    let a = Instance::start("a", &config);
    let b = Instance::start("b", &config);
    wait_for_balance(&[&a, &b], "two instances of one file");
    let copying = |i: &Instance| {
        wait_until(Duration::from_secs(30), || {
            i.standing().is_some_and(|s| s.2 > 0.0)
        })
    };
    assert!(
        copying(&a) && copying(&b),
        "{}\n{}",
        a.replicator.log(),
        b.replicator.log()
    );
    // Each copies its own share.
    let (of_a, of_b) = (copied_partitions(a.port), copied_partitions(b.port));
    assert!(
        of_a.is_disjoint(&of_b),
        "both copy {:?}",
        of_a.intersection(&of_b)
    );
    // Killed in a steady copy, as a host is lost, not while the backlog of the start is copied,
    // at any moment of the progress interval (1 s), not just after a store.
    wait_for_everything_stored(&clusters, || {
        format!("{}\n{}", a.replicator.log(), b.replicator.log())
    });
    let moment = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    std::thread::sleep(Duration::from_millis(u64::from(moment)));
    let mut instances = vec![a, b];
    let mut dead = instances.remove(0);
    dead.replicator.kill();
    wait_for_balance(&[&instances[0]], "after the kill");
    let c = Instance::start("c", &config);
    wait_for_balance(&[&instances[0], &c], "after the join");
    assert!(copying(&c), "{}", c.replicator.log());
    // The partitions b handed to c left b's /metrics with it: no frozen lag, no count that a
    // sum over the pods would add twice.
    let kept = &instances[0];
    let mut seen = (BTreeSet::new(), BTreeSet::new());
    assert!(
        wait_until(Duration::from_secs(30), || {
            seen = (copied_partitions(kept.port), metric_partitions(kept.port));
            seen.0 == seen.1
        }),
        "after the hand-over, {} shows series of partitions it no longer copies: {:?}",
        kept.name,
        seen.1.difference(&seen.0).collect::<Vec<_>>()
    );
    instances.push(c);
    let produced: usize = producers.into_iter().map(BackgroundProducer::stop).sum();
    let per_second = produced as f64 / production.elapsed().as_secs_f64();
    wait_for_everything_stored(&clusters, || {
        instances.iter().map(|i| i.replicator.log()).collect()
    });
    for target in TARGETS {
        let bootstrap = clusters.bootstrap(target);
        let mut duplicates = 0;
        for (topic, _) in TOPICS {
            let source = read_all(&europe, topic);
            let copied = read_all(&bootstrap, topic);
            duplicates += assert_complete_in_order(&source, &copied, &format!("{target} {topic}"));
        }
        println!("{target}: {produced} records at {per_second:.0}/s, {duplicates} duplicate(s)");
        assert!(
            (duplicates as f64) < per_second,
            "{target}: {duplicates} duplicates, more than one second of copying ({per_second:.0})\n{}",
            dead.replicator.log()
        );
    }
    for instance in &mut instances {
        instance
            .replicator
            .terminate_cleanly(Duration::from_secs(30));
    }
}

/// KIP-848's group protocol (`group.protocol = consumer`, broker-side assignment) and a
/// graceful handover: an instance stopped with SIGTERM stores its progress before the group
/// hands its partitions on, so the other continues right after it, without one duplicate.
#[test]
fn with_kip_848_a_stopped_instance_hands_its_partitions_over_without_a_duplicate() {
    let (clusters, _dir, config, producers) = scenario(
        1,
        "instances.group.id = regional-replicator\n\
         europe.consumer.group.protocol = consumer\n\
         europe.consumer.session.timeout.ms = 6000\n",
    );
    let europe = clusters.bootstrap("europe");
    let a = Instance::start("a", &config);
    let mut b = Instance::start("b", &config);
    wait_for_balance(&[&a, &b], "two instances on KIP-848");
    assert!(
        wait_until(Duration::from_secs(30), || b
            .standing()
            .is_some_and(|s| s.2 > 0.0)),
        "b copied nothing: {:?}\n{}",
        b.standing(),
        b.replicator.log()
    );
    b.replicator.terminate_cleanly(Duration::from_secs(30));
    assert!(
        wait_until(Duration::from_secs(60), || a
            .standing()
            .is_some_and(|s| s.0 == PARTITIONS && s.1 > 0.0)),
        "a did not take everything over: {:?}\n{}",
        a.standing(),
        a.replicator.log()
    );
    // Copying goes on after the handover.
    let before = a.standing().map_or(0.0, |s| s.2);
    assert!(
        wait_until(Duration::from_secs(30), || a
            .standing()
            .is_some_and(|s| s.2 > before)),
        "a copies nothing after the handover\n{}",
        a.replicator.log()
    );
    for producer in producers {
        producer.stop();
    }
    wait_for_everything_stored(&clusters, || a.replicator.log());
    for target in TARGETS {
        let bootstrap = clusters.bootstrap(target);
        for (topic, _) in TOPICS {
            let source = read_all(&europe, topic);
            let duplicates =
                assert_complete_in_order(&source, &read_all(&bootstrap, topic), target);
            assert_eq!(
                duplicates, 0,
                "{target} {topic}: a graceful handover re-copies nothing"
            );
        }
        for (partition, offsets) in progress_history(&bootstrap) {
            assert!(
                offsets.windows(2).all(|w| w[0] <= w[1]),
                "{target}: the progress of {partition:?} went back: {offsets:?}"
            );
        }
    }
    let log = a.replicator.log();
    assert!(log.contains("regional-replicator"), "{log}");
}

/// Exactly once with instances: the group hands out whole copy units (four, the units topic's
/// partitions), each with its transactional ids. Under continuous production the leader is
/// SIGKILLed mid-transaction, a fourth instance joins, one is frozen past its session timeout
/// and goes on: every move fences the unit's previous owner before its progress is read, so a
/// `read_committed` consumer on each target sees every source record exactly once, in order.
#[test]
fn exactly_once_instances_move_whole_units_and_each_record_is_committed_once() {
    // Not on 4.3: librdkafka aborts on its coordinator's answer as units move (see
    // `localcluster::MARKER_SAFE_KAFKA_VERSION`).
    let (clusters, _dir, config, producers) = with_config_on(
        "tasks.max = 4\n\
         exactly.once.source.support = enabled\n\
         europe.consumer.session.timeout.ms = 6000\n\
         europe.consumer.heartbeat.interval.ms = 1000\n\
         emit.checkpoints.enabled = false\n\
         refresh.topics.interval.seconds = 2\n",
        localcluster::release_for_exactly_once_through_failures(),
    );
    let europe = clusters.bootstrap("europe");
    let a = Instance::start("a", &config);
    let b = Instance::start("b", &config);
    let c = Instance::start("c", &config);
    wait_for_balance(&[&a, &b, &c], "three instances");
    let units_topic = "mirrorcast-units.mirrorcast.europe.northamerica-southamerica.internal";
    let units = end_offsets(&europe, units_topic);
    assert_eq!(units.len(), 4, "one partition per copy unit: {units:?}");
    let mut instances = vec![a, b, c];
    let copies = |instances: &[Instance]| {
        let before: Vec<f64> = instances
            .iter()
            .map(|i| i.standing().map_or(0.0, |s| s.2))
            .collect();
        let moved = wait_until(Duration::from_secs(60), || {
            instances
                .iter()
                .zip(&before)
                .all(|(i, b)| i.standing().is_some_and(|s| s.2 > *b))
        });
        let logs: String = instances
            .iter()
            .map(|i| format!("--- {}\n{}", i.name, i.replicator.log()))
            .collect();
        assert!(moved, "an instance commits nothing\n{logs}");
    };
    copies(&instances);

    // The leader dies in the middle of its transactions.
    let killed = leader(&instances.iter().collect::<Vec<_>>()).name;
    let mut dead = instances.remove(instances.iter().position(|i| i.name == killed).unwrap());
    dead.replicator.kill();
    wait_for_balance(&instances.iter().collect::<Vec<_>>(), "after the kill");
    copies(&instances);

    // A fourth joins: each has one unit.
    instances.push(Instance::start("d", &config));
    wait_for_balance(&instances.iter().collect::<Vec<_>>(), "after the join");
    copies(&instances);

    // One freezes past its session timeout; its units are fenced elsewhere; it goes on.
    let frozen = instances[0].name;
    instances[0].replicator.freeze(true);
    wait_for_balance(
        &instances[1..].iter().collect::<Vec<_>>(),
        "while one is frozen",
    );
    instances[0].replicator.freeze(false);
    wait_for_balance(&instances.iter().collect::<Vec<_>>(), "after the thaw");
    copies(&instances);

    for producer in producers {
        producer.stop();
    }
    let logs = || -> String {
        std::iter::once(&dead)
            .chain(instances.iter())
            .map(|i| format!("--- {}\n{}", i.name, i.replicator.log()))
            .collect()
    };
    wait_for_everything_stored(&clusters, logs);
    for target in TARGETS {
        let bootstrap = clusters.bootstrap(target);
        for (topic, _) in TOPICS {
            let source = read_all(&europe, topic);
            let committed = read_with_offsets(&bootstrap, topic, "read_committed");
            for (partition, records) in &source {
                let copied: Vec<&TestRecord> = committed
                    .get(partition)
                    .into_iter()
                    .flatten()
                    .map(|(_, r)| r)
                    .collect();
                assert!(
                    copied == records.iter().collect::<Vec<_>>(),
                    "{target} {topic}[{partition}]: {} committed record(s) for {} at the \
                     source\n{}",
                    copied.len(),
                    records.len(),
                    logs()
                );
            }
            println!(
                "{target} {topic}: {} records, each committed once",
                source.values().map(Vec::len).sum::<usize>()
            );
        }
    }
    let thawed = instances[0].replicator.log();
    assert!(
        thawed.contains("session expired") || thawed.contains("another instance took copy unit"),
        "{frozen} did not see its units go:\n{thawed}"
    );
    let all = logs();
    println!(
        "{} unit lane(s) fenced on taking a unit over, {} fenced by a successor, {} abort(s)",
        all.matches("fenced in").count(),
        all.matches("another instance took copy unit").count(),
        all.matches("aborted a transaction").count()
    );

    // A partition added to the units topic: every instance says so and starts again with the
    // new count (instances that disagreed on it could copy one partition twice).
    add_partitions(&europe, units_topic, 5);
    for instance in &instances {
        assert!(
            wait_until(Duration::from_secs(60), || {
                let log = instance.replicator.log();
                log.contains("has 5 partition(s) now, but this process runs 4 copy unit(s)")
                    && log.contains("sharing the 5 copy units of europe")
            }),
            "{} did not start again with 5 units:\n{}",
            instance.name,
            instance.replicator.log()
        );
    }
    for instance in &mut instances {
        instance
            .replicator
            .terminate_cleanly(Duration::from_secs(30));
    }
}
