//! SCRAM-SHA-512 over TLS on Apache Kafka, the way the seed's regions listen, written as an MM2
//! properties file (`sasl.jaas.config`, a PEM truststore; the KafkaMirrorMaker2 resource is in
//! `resources`), and what a user sees when it is wrong: a wrong password, a CA that did not sign
//! the broker's certificate, an expired certificate. Each is one clear error naming the cluster
//! and the cause, never the secret; the flow is shown degraded; and clients back off rather
//! than reconnect in a tight loop.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use localcluster::{Clusters, KafkaOptions, LocalCluster, Security};

const EU_PASSWORD: &str = "eu-Pa55word";
const NA_PASSWORD: &str = "na-Pa55word";

fn sasl_ssl(users: &[(&str, &str)], expired_certificate: bool) -> KafkaOptions {
    KafkaOptions {
        security: Security::SaslSsl {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        },
        expired_certificate,
        ..KafkaOptions::default()
    }
}

/// `alias`'s client settings: SCRAM through `sasl.jaas.config` with the password from the
/// environment, the CA as a PEM truststore.
fn cluster_keys(alias: &str, cluster: &LocalCluster, user: &str, ca: &Path) -> String {
    let variable = format!("MM2_{}_PASSWORD", alias.to_uppercase());
    format!(
        "{alias}.bootstrap.servers = {}\n\
         {alias}.security.protocol = SASL_SSL\n\
         {alias}.sasl.mechanism = SCRAM-SHA-512\n\
         {alias}.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule \
         required username=\"{user}\" password=\"${{env:{variable}}}\";\n\
         {alias}.ssl.truststore.type = PEM\n\
         {alias}.ssl.truststore.location = {}\n",
        cluster.bootstrap(),
        ca.display()
    )
}

fn config(source: String, target_alias: &str, target: String) -> String {
    format!(
        "clusters = europe, {target_alias}\n{source}{target}{}",
        europe_lh_flow(target_alias)
    )
}

fn run(dir: &Path, name: &str, text: &str, passwords: &[(&str, &str)]) -> (Replicator, u16) {
    let path = dir.join(format!("{name}.properties"));
    std::fs::write(&path, text).unwrap();
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    (
        Replicator::start_with_env(&path, &["--http", &http], passwords),
        port,
    )
}

fn flow_of(port: u16) -> Option<serde_json::Value> {
    let (200, body) = http_get(port, "/api/status")? else {
        return None;
    };
    let status: serde_json::Value = serde_json::from_str(&body).ok()?;
    status["flows"].get(0).cloned()
}

/// Waits until the flow is degraded with an error containing `cause`; then, 20 s into the
/// run, checks the log says it at most a few times, names `cluster` and shows no password.
fn assert_reported_once(
    replicator: &Replicator,
    port: u16,
    started: Instant,
    cluster: &str,
    cause: &str,
) {
    let mut flow = None;
    let reported = wait_until(Duration::from_secs(60), || {
        flow = flow_of(port);
        flow.as_ref().is_some_and(|f| {
            f["state"] != "running"
                && f["last_error"]["message"]
                    .as_str()
                    .is_some_and(|e| e.to_lowercase().contains(cause))
        })
    });
    assert!(
        reported,
        "the flow does not show `{cause}`: {flow:?}\n{}",
        replicator.log()
    );
    std::thread::sleep(Duration::from_secs(20).saturating_sub(started.elapsed()));
    let log = replicator.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains(cause))
        .collect();
    println!(
        "{cluster}: {cause}: {} line(s) in 20 s:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(!lines.is_empty(), "the log does not say `{cause}`:\n{log}");
    assert!(
        lines.iter().any(|l| l.contains(cluster)),
        "no line names `{cluster}`:\n{log}"
    );
    assert!(
        lines.len() <= 6,
        "said {} times in 20 s: a tight loop, or a message not logged once\n{log}",
        lines.len()
    );
    for secret in [EU_PASSWORD, NA_PASSWORD, "wrong-Pa55word"] {
        assert!(!log.contains(secret), "a password in the log:\n{log}");
        let status = http_get(port, "/api/status")
            .map(|(_, b)| b)
            .unwrap_or_default();
        assert!(
            !status.contains(secret),
            "a password in the status: {status}"
        );
    }
}

#[test]
fn a_properties_file_replicates_over_scram_and_tls_and_each_mistake_is_reported_once() {
    let users = [
        ("mm2-europe", EU_PASSWORD),
        ("mm2-northamerica", NA_PASSWORD),
    ];
    let clusters =
        match Clusters::start_kafka(&["europe", "northamerica"], &sasl_ssl(&users, false)) {
            Ok(c) => c,
            Err(e) => panic!("cannot start SASL_SSL Kafka clusters: {e}"),
        };
    let expired = match Clusters::start_kafka(&["southamerica"], &sasl_ssl(&users[1..], true)) {
        Ok(c) => c,
        Err(e) => panic!("cannot start a SASL_SSL Kafka cluster with an expired certificate: {e}"),
    };
    let europe = clusters.get("europe");
    let north = clusters.get("northamerica");
    let south = expired.get("southamerica");
    let europe_ca = europe.ca_certificate().unwrap();
    let north_ca = north.ca_certificate().unwrap();
    let south_ca = south.ca_certificate().unwrap();
    create_topic(&europe.plaintext_bootstrap(), "LH.ORDERS", 3, &[]);
    produce(
        &europe.plaintext_bootstrap(),
        "LH.ORDERS",
        &numbered_records("secure", 3, 0, 300),
    );
    let source_keys = cluster_keys("europe", europe, "mm2-europe", &europe_ca);
    let dir = tempfile::tempdir().unwrap();
    let good = [
        ("MM2_EUROPE_PASSWORD", EU_PASSWORD),
        ("MM2_NORTHAMERICA_PASSWORD", NA_PASSWORD),
        ("MM2_SOUTHAMERICA_PASSWORD", NA_PASSWORD),
    ];

    // All right: every record arrives.
    let text = config(
        source_keys.clone(),
        "northamerica",
        cluster_keys("northamerica", north, "mm2-northamerica", &north_ca),
    );
    let (mut replicator, _) = run(dir.path(), "good", &text, &good);
    let source = read_all(&europe.plaintext_bootstrap(), "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(90), || read_all(
            &north.plaintext_bootstrap(),
            "LH.ORDERS"
        ) == source),
        "LH.ORDERS not copied over SASL_SSL\n{}",
        replicator.log()
    );
    replicator.terminate_cleanly(Duration::from_secs(30));
    for secret in [EU_PASSWORD, NA_PASSWORD] {
        assert!(!replicator.log().contains(secret));
    }

    // Three mistakes at once (each is watched for 20 s): a wrong password for the target, the
    // target's certificate checked against another cluster's CA, and a target whose
    // certificate has expired (its own CA, trusted).
    let started = Instant::now();
    let wrong_password = run(
        dir.path(),
        "wrong-password",
        &text,
        &[
            ("MM2_EUROPE_PASSWORD", EU_PASSWORD),
            ("MM2_NORTHAMERICA_PASSWORD", "wrong-Pa55word"),
        ],
    );
    let unknown_ca = config(
        source_keys.clone(),
        "northamerica",
        cluster_keys("northamerica", north, "mm2-northamerica", &europe_ca),
    );
    let unknown_ca = run(dir.path(), "unknown-ca", &unknown_ca, &good);
    let expired = config(
        source_keys,
        "southamerica",
        cluster_keys("southamerica", south, "mm2-northamerica", &south_ca),
    );
    let expired = run(dir.path(), "expired", &expired, &good);
    for ((replicator, port), cluster, cause) in [
        (&wrong_password, "northamerica", "authentication"),
        (
            &unknown_ca,
            "northamerica",
            "unable to get local issuer certificate",
        ),
        (&expired, "southamerica", "certificate has expired"),
    ] {
        assert_reported_once(replicator, *port, started, cluster, cause);
    }
}
