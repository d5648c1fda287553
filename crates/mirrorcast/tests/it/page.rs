//! The web page in a real headless Chromium (Debian's `chromium`, driven by Playwright) during a
//! replication run: it shows the three regions and the flows, the throughput and lag numbers
//! change, graphs of throughput and lag draw a line per flow, and a topic's latest events are
//! visible; a screenshot is saved as a test artifact
//! (`target/test-artifacts/page.png`); with a target down, the page shows that flow's last
//! error. The test fails, not skips, when the browser is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[test]
fn the_page_shows_regions_flows_changing_lag_and_latest_events_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no browser at {chromium}: `cargo xtask test` installs Debian's chromium"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: `cargo xtask test` runs npm ci in {}",
        browser_dir().display()
    );

    // The page is what the demo shows: on the demo's broker.
    let mut clusters =
        start_nisshi_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, "LH.ORDERS", 3, &[("retention.bytes", "100000000")]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broadcast_config(
            &clusters,
            "IdentityReplicationPolicy",
            // nisshi lists no group members: one process, alone.
            "sync.topic.acls.enabled = false\ninstances.group.enabled = false\n",
        ),
    );
    let port = localcluster::free_port().unwrap();
    // Locked down as a user exposing it would: a token, and browsing records asked for.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "page-test-token\n").unwrap();
    let replicator = Replicator::start(
        &config,
        &[
            "--http",
            &format!("127.0.0.1:{port}"),
            "--http-browse",
            "--http-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    // Records keep coming while the browser looks.
    let running = Arc::new(AtomicBool::new(true));
    let producer = {
        let (running, europe) = (running.clone(), europe.clone());
        std::thread::spawn(move || {
            let producer = TestProducer::new(&europe);
            let mut n = 0;
            while running.load(Ordering::Relaxed) {
                producer.send_all("LH.ORDERS", &numbered_records("page", 3, n, 50));
                n += 50;
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), || http_get(port, "/readyz")
            .is_some_and(|(c, _)| c == 200)),
        "{}",
        replicator.log()
    );

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("page.png");
    let check = |args: &[&str]| {
        let output = Command::new("node")
            .arg(browser_dir().join("check-page.mjs"))
            .args(args)
            .env("CHROMIUM", &chromium)
            .env("MIRRORCAST_TOKEN", "page-test-token")
            .output()
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the page check {args:?} failed:\n{stdout}\n{stderr}\n{}",
            replicator.log()
        );
        println!("{stdout}");
        assert!(
            stdout.contains("asked for the token 1 time(s)"),
            "the page asks for the token once: {stdout}"
        );
        stdout
    };
    let url = format!("http://127.0.0.1:{port}/");
    let stdout = check(&[
        "overview",
        &url,
        screenshot.to_str().unwrap(),
        "northamerica",
        "LH.ORDERS",
    ]);
    assert!(
        stdout.contains("regions: europe, northamerica, southamerica"),
        "{stdout}"
    );
    assert!(
        stdout.contains("europe->northamerica") && stdout.contains("europe->southamerica"),
        "{stdout}"
    );
    for chart in ["throughput", "lag_records", "lag_seconds"] {
        assert!(
            stdout.contains(&format!("{chart} 2 line(s)")),
            "the {chart} chart has no line per flow: {stdout}"
        );
    }
    assert!(
        screenshot.metadata().is_ok_and(|m| m.len() > 10_000),
        "no screenshot"
    );

    // South America goes down: the page shows that flow's last error.
    clusters
        .get_mut("southamerica")
        .stop(localcluster::StopSignal::Kill)
        .unwrap();
    let down = artifacts.join("page-target-down.png");
    let stdout = check(&[
        "error",
        &url,
        down.to_str().unwrap(),
        "europe->southamerica",
    ]);
    assert!(
        stdout.contains("error shown for europe->southamerica (state degraded)"),
        "{stdout}"
    );
    running.store(false, Ordering::Relaxed);
    producer.join().unwrap();
}
