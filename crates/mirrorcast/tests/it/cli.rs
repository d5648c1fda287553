//! The command line as a user meets it: broken configs exit 2 with a message naming the file,
//! line and key; `validate` prints resolved flows with secrets redacted; SIGTERM stops a run
//! cleanly with its progress stored.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

const GOOD: &str = "\
clusters = europe, northamerica
europe.bootstrap.servers = 127.0.0.1:9
northamerica.bootstrap.servers = 127.0.0.1:10
europe->northamerica.enabled = true
europe->northamerica.topics = LH.*
replication.policy.class = IdentityReplicationPolicy
northamerica.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule required username=\"mm2\" password=\"topsecret\";
northamerica.security.protocol = SASL_SSL
northamerica.sasl.mechanism = SCRAM-SHA-512
";

fn mirrorcast(args: &[&str], config_text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), config_text);
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .args(args)
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_config_error(text: &str, key: &str, line: Option<usize>) {
    for command in ["run", "validate"] {
        let (code, _, stderr) = mirrorcast(&[command], text);
        assert_eq!(code, 2, "{command}: {stderr}");
        assert!(
            stderr.contains(&format!("`{key}`")),
            "{command} should name `{key}`: {stderr}"
        );
        assert!(
            stderr.contains("mm2.properties"),
            "{command} should name the file: {stderr}"
        );
        if let Some(line) = line {
            assert!(
                stderr.contains(&format!("mm2.properties:{line}:")),
                "{command} should name line {line}: {stderr}"
            );
        }
    }
}

#[test]
fn missing_clusters_exits_2_naming_the_key() {
    assert_config_error(
        &GOOD.replace("clusters = europe, northamerica\n", ""),
        "clusters",
        None,
    );
}

/// No key is ignored silently: a misspelt key is warned about with the nearest known one (and
/// the file is still valid), a custom filter class is refused (MM2 would load it; a fallback
/// to `topics = .*` would replicate everything).
#[test]
fn unknown_keys_are_warned_about_and_custom_classes_refused() {
    let text = format!(
        "{GOOD}refresh.topic.interval.seconds = 5\nconsumer.poll.timeout.ms = 4\ntasks.max = 4\n"
    );
    let (code, _, stderr) = mirrorcast(&["validate"], &text);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("`refresh.topic.interval.seconds`")
            && stderr.contains("did you mean `refresh.topics.interval.seconds`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`consumer.poll.timeout.ms`: has no effect"),
        "{stderr}"
    );
    assert!(!stderr.contains("`tasks.max`"), "honoured: {stderr}");
    let text = format!("{GOOD}topic.filter.class = com.example.OnlyMine\n");
    let line = GOOD.lines().count() + 1;
    assert_config_error(&text, "topic.filter.class", Some(line));
}

/// librdkafka reads a CA file only when a client starts; `validate` must not pass a file that
/// is not there.
#[test]
fn a_ca_file_that_cannot_be_read_exits_2_naming_the_key_and_line() {
    let text = format!(
        "{GOOD}europe.security.protocol = SSL\n\
         europe.ssl.truststore.type = PEM\n\
         europe.ssl.truststore.location = /nonexistent/ca.pem\n"
    );
    let line = GOOD.lines().count() + 3;
    assert_config_error(&text, "europe.ssl.truststore.location", Some(line));
}

#[test]
fn unknown_alias_in_a_flow_exits_2_naming_the_key_and_line() {
    assert_config_error(
        &format!("{GOOD}europe->asia.enabled = true\n"),
        "europe->asia.enabled",
        Some(10),
    );
}

#[test]
fn invalid_regex_exits_2_naming_the_key() {
    assert_config_error(
        &GOOD.replace("LH.*", "LH.(*"),
        "europe->northamerica.topics",
        Some(5),
    );
}

#[test]
fn cluster_without_bootstrap_servers_exits_2_naming_the_key() {
    assert_config_error(
        &GOOD.replace("northamerica.bootstrap.servers = 127.0.0.1:10\n", ""),
        "northamerica.bootstrap.servers",
        None,
    );
}

#[test]
fn unknown_policy_class_exits_2_naming_the_key() {
    assert_config_error(
        &GOOD.replace("IdentityReplicationPolicy", "com.acme.CustomPolicy"),
        "replication.policy.class",
        Some(6),
    );
}

#[test]
fn a_java_truststore_that_cannot_be_read_exits_2_naming_it() {
    let text = format!("{GOOD}northamerica.ssl.truststore.location = /etc/kafka/truststore.jks\n");
    let (code, _, stderr) = mirrorcast(&["validate"], &text);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("northamerica.ssl.truststore.location")
            && stderr.contains("cannot read `/etc/kafka/truststore.jks`"),
        "{stderr}"
    );
}

#[test]
fn validate_prints_flows_and_redacts_secrets() {
    let (code, stdout, stderr) = mirrorcast(&["validate"], GOOD);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("europe->northamerica"), "{stdout}");
    assert!(stdout.contains("IdentityReplicationPolicy"), "{stdout}");
    assert!(stdout.contains("sasl.username=mm2"), "{stdout}");
    assert!(stdout.contains("sasl.password=[redacted]"), "{stdout}");
    assert!(!stdout.contains("topsecret") && !stderr.contains("topsecret"));
}

/// librdkafka's "not accepted" errors repeat the value: a secret, or a value a config provider
/// resolved, is masked in them. (Before: `validate` printed the environment variable's value.)
#[test]
fn a_refused_setting_is_named_without_its_secret_value() {
    let text = format!(
        "{GOOD}europe.consumer.basic.auth.user.info = ${{env:MIRRORCAST_TEST_SECRET}}\n\
         northamerica.producer.schema.registry.basic.auth.user.info = user:l1teral\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &text);
    for command in ["validate", "run"] {
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
            .arg(command)
            .arg(&path)
            .env("MIRRORCAST_TEST_SECRET", "user:s3cr3t")
            .output()
            .unwrap();
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{shown}");
        assert!(
            shown.contains("`europe.consumer.basic.auth.user.info`"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("l1teral"),
            "{shown}"
        );
    }
}

/// The HTTP side's options are checked before anything starts: a token file that cannot be
/// read or holds no token, or an --http-* option without --http, exits 2 naming what is wrong.
#[test]
fn a_bad_http_token_file_or_a_lone_http_option_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let missing = dir.path().join("no-such-token");
    for (file, says) in [(&empty, "first line is empty"), (&missing, "cannot read")] {
        let file = file.to_str().unwrap();
        let args = ["run", "--http", "127.0.0.1:0", "--http-token-file", file];
        let (code, _, stderr) = mirrorcast(&args, GOOD);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(file), "names the file: {stderr}");
        assert!(stderr.contains("`--http-token-file`"), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let (code, _, stderr) = mirrorcast(&["run", "--http-browse"], GOOD);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--http"), "{stderr}");
}

#[test]
fn clusters_option_with_an_unknown_alias_exits_2() {
    let (code, _, stderr) = mirrorcast(&["validate", "--clusters", "asia"], GOOD);
    assert_eq!(code, 2);
    assert!(stderr.contains("asia"), "{stderr}");
}

#[test]
fn sigterm_flushes_stores_progress_and_exits_0_within_seconds() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, "events", 2, &[]);
    produce(&europe, "events", &numbered_records("term", 2, 0, 2_000));
    let dir = tempfile::tempdir().unwrap();
    // Progress is stored only every minute while running: what is found after exit was
    // stored by the shutdown itself.
    let config = write_config(
        dir.path(),
        &broadcast_config(
            &clusters,
            "IdentityReplicationPolicy",
            "offset.flush.interval.ms = 60000\n",
        ),
    );
    let mut replicator = Replicator::start(&config, &["--clusters", "northamerica"]);
    let north = clusters.bootstrap("northamerica");
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(60), || end_offsets(&north, "events")
            == ends),
        "{}",
        replicator.log()
    );
    let log = replicator.terminate_cleanly(Duration::from_secs(10));
    assert!(
        progress_reached(&north, "europe", "events", &ends),
        "progress not stored at shutdown\n{log}"
    );
    // --clusters northamerica: nothing was sent to South America.
    let south = clusters.bootstrap("southamerica");
    assert_eq!(topic_partitions(&south, "events"), None);
}

#[test]
fn unreachable_clusters_are_retried_logged_once_and_sigterm_still_exits_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let closed = |_| format!("127.0.0.1:{}", localcluster::free_port().unwrap());
    let text = GOOD
        .replace("127.0.0.1:9", &closed(0))
        .replace("127.0.0.1:10", &closed(1))
        .replace("SASL_SSL", "SASL_PLAINTEXT");
    let config = write_config(dir.path(), &text);
    let mut replicator = Replicator::start(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(30), || replicator
            .log()
            .contains("retrying with backoff")),
        "{}",
        replicator.log()
    );
    let started = std::time::Instant::now();
    let log = replicator.terminate_cleanly(Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        log.matches("retrying with backoff").count(),
        1,
        "one line per state change:\n{log}"
    );
}

#[test]
fn the_example_configs_validate() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (file, extra) in [
        ("broadcast.properties", None),
        ("mm2-na.yaml", Some("--strip-security")),
        ("mm2-sa.yaml", Some("--strip-security")),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
            .arg("validate")
            .arg(examples.join(file))
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}: {stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("europe->"),
            "{file}"
        );
    }
}
