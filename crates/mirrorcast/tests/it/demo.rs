//! `mirrorcast demo --duration 40` end to end (no browser): events of every kind are produced
//! in Europe and arrive byte-identical in both other regions, both regional consumers print
//! them in the scenario's format, a config change made with `demo topic-config` reaches both
//! targets, and after exit no broker, replicator or demo file remains.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use mirrorcast::kafka::admin::TopicAdmin;
use mirrorcast::topics::ClusterAdmin;

const TOPICS: [&str; 6] = [
    "LH.ORDERS",
    "LH.CANCELLATIONS",
    "LH.DOORS",
    "LH.STOCK",
    "LH.CUSTOMERS",
    "LH.SENSORS",
];

fn state(dir: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("demo.json")).ok()?).ok()
}

fn bootstrap(state: &serde_json::Value, region: &str) -> String {
    let port = state["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == region)
        .map(|r| r["port"].as_u64().unwrap())
        .unwrap();
    format!("127.0.0.1:{port}")
}

fn retention_ms(bootstrap: &str) -> Option<String> {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    let admin = TopicAdmin::new(&config, "test").ok()?;
    let configs = admin.describe_configs(&["LH.ORDERS"]).ok()?;
    configs
        .get("LH.ORDERS")?
        .iter()
        .find(|e| e.name == "retention.ms")?
        .value
        .clone()
}

#[test]
fn the_demo_broadcasts_every_kind_of_event_and_cleans_up() {
    localcluster::find_nisshi().unwrap_or_else(|e| panic!("{e}"));
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("demo");
    let output = temp.path().join("demo.out");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .args(["demo", "--duration", "40", "--rate", "10"])
        .env("MIRRORCAST_DEMO_DIR", &dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let log = || std::fs::read_to_string(&output).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || state(&dir).is_some()),
        "no demo state\n{}",
        log()
    );
    let state = state(&dir).unwrap();
    let europe = bootstrap(&state, "europe");
    let targets = [
        bootstrap(&state, "north-america"),
        bootstrap(&state, "south-america"),
    ];

    // Every kind of event in Europe (cancellations follow some orders after a delay).
    assert!(
        wait_until(Duration::from_secs(30), || TOPICS
            .iter()
            .all(|t| total_records(&europe, t) > 0)),
        "not every kind was produced in europe\n{}",
        log()
    );

    // A config change in Europe reaches both targets.
    let status = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .args([
            "demo",
            "topic-config",
            "--region",
            "europe",
            "--topic",
            "LH.ORDERS",
            "retention.ms=3600000",
        ])
        .env("MIRRORCAST_DEMO_DIR", &dir)
        .status()
        .unwrap();
    assert!(status.success());
    for target in &targets {
        assert!(
            wait_until(Duration::from_secs(20), || retention_ms(target).as_deref()
                == Some("3600000")),
            "retention.ms did not reach {target}"
        );
    }

    // The same events, byte for byte, in both targets: each target partition is a prefix of
    // the source partition (the producer keeps going), and holds every kind.
    for target in &targets {
        for topic in TOPICS {
            let ends = end_offsets(&europe, topic);
            assert!(
                wait_until(Duration::from_secs(20), || {
                    let copied = end_offsets(target, topic);
                    ends.iter()
                        .all(|(p, end)| copied.get(p).copied().unwrap_or(0) >= *end)
                }),
                "{topic} did not reach {target}"
            );
            let source = read_all(&europe, topic);
            let copied = read_all(target, topic);
            for (partition, records) in &copied {
                // Read one after the other while the producer goes on: compare what both have.
                let n = records.len().min(source[partition].len());
                assert_eq!(
                    records[..n],
                    source[partition][..n],
                    "{target} {topic}[{partition}]"
                );
            }
            assert!(
                copied.values().map(Vec::len).sum::<usize>() > 0,
                "{target}: no {topic}"
            );
        }
    }

    let deadline = started + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop after --duration 40"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "{}", log());
    let out = log();
    for region in ["north-america", "south-america"] {
        let prefix = format!("[{region}] Topic: LH.");
        let line = out
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {region} events printed\n{out}"));
        assert!(
            line.contains("  /  Partition: ")
                && line.contains("  /  Offset: ")
                && line.contains("  /  Timestamp: ")
                && line.contains("  /  Data: {"),
            "{line}"
        );
    }
    // Nothing left behind: the brokers are gone, and so is the demo directory.
    for region in state["regions"].as_array().unwrap() {
        let pid = region["broker_pid"].as_u64().unwrap();
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "broker {pid} still runs"
        );
    }
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

#[test]
fn demo_cleanup_removes_what_a_killed_demo_left_behind() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("demo");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .args(["demo", "--duration", "120"])
        .env("MIRRORCAST_DEMO_DIR", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || state(&dir)
        .is_some_and(|s| s["regions"].as_array().unwrap().len() == 3)));
    let state = state(&dir).unwrap();
    // Killed without a chance to clean up: its brokers (in process groups of their own) stay.
    demo.kill().unwrap();
    demo.wait().unwrap();
    let pids: Vec<u64> = state["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["broker_pid"].as_u64().unwrap())
        .collect();
    assert!(
        pids.iter()
            .all(|pid| Path::new(&format!("/proc/{pid}")).exists()),
        "brokers should outlive a killed demo"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .args(["demo", "cleanup"])
        .env("MIRRORCAST_DEMO_DIR", &dir)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        wait_until(Duration::from_secs(10), || pids.iter().all(
            |pid| !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        )),
        "brokers left running"
    );
    assert!(!dir.exists());
}
