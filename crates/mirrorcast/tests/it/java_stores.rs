//! Mutual TLS on Apache Kafka with the stores MM2 users have: keytool-made JKS and PKCS12
//! truststores and keystores with Java's TLS protocol keys, written in an MM2 properties file
//! as they are. `validate` shows what librdkafka gets (whose certificates, the key redacted)
//! without a password or key material; the copy runs over listeners that refuse a client
//! without a certificate; a wrong store password is named with its key and exits 2.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use localcluster::{Clusters, KafkaOptions, LocalCluster, Security};

const TRUST_PASSWORD: &str = "trust-Pa55";
const KEY_PASSWORD: &str = "key-Pa55word";

fn run_tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (installed with Java 17): {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A truststore of `type` holding the cluster's CA, made by keytool.
fn truststore(cluster: &LocalCluster, dir: &Path, kind: &str) -> PathBuf {
    let path = dir.join(format!("{}-trust.{}", cluster.name(), kind.to_lowercase()));
    let ca = cluster.ca_certificate().unwrap();
    run_tool(
        "keytool",
        &[
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            &ca.display().to_string(),
            "-keystore",
            &path.display().to_string(),
            "-storetype",
            kind,
            "-storepass",
            TRUST_PASSWORD,
        ],
    );
    path
}

/// A keystore of `type` with a client certificate signed by the cluster's CA: openssl makes
/// the key pair as PKCS12, keytool converts it as users do (`-importkeystore`).
fn keystore(cluster: &LocalCluster, dir: &Path, kind: &str) -> PathBuf {
    let (key, cert) = cluster.client_certificate("mirrorcast", dir).unwrap();
    let exported = dir.join(format!("{}-openssl.p12", cluster.name()));
    run_tool(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-in",
            &cert.display().to_string(),
            "-inkey",
            &key.display().to_string(),
            "-name",
            "mirrorcast",
            "-out",
            &exported.display().to_string(),
            "-passout",
            &format!("pass:{KEY_PASSWORD}"),
        ],
    );
    let path = dir.join(format!("{}-key.{}", cluster.name(), kind.to_lowercase()));
    run_tool(
        "keytool",
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            &exported.display().to_string(),
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass",
            KEY_PASSWORD,
            "-destkeystore",
            &path.display().to_string(),
            "-deststoretype",
            kind,
            "-deststorepass",
            KEY_PASSWORD,
        ],
    );
    // The client's files other than the store are gone, as on a user's host.
    for file in [key, cert, exported] {
        std::fs::remove_file(file).unwrap();
    }
    path
}

fn cluster_keys(
    alias: &str,
    cluster: &LocalCluster,
    (trust_type, trust): (&str, &Path),
    (key_type, key): (&str, &Path),
) -> String {
    format!(
        "{alias}.bootstrap.servers = {}\n\
         {alias}.security.protocol = SSL\n\
         {alias}.ssl.protocol = TLSv1.3\n\
         {alias}.ssl.enabled.protocols = TLSv1.2,TLSv1.3\n\
         {alias}.ssl.endpoint.identification.algorithm = https\n\
         {alias}.ssl.truststore.type = {trust_type}\n\
         {alias}.ssl.truststore.location = {}\n\
         {alias}.ssl.truststore.password = {TRUST_PASSWORD}\n\
         {alias}.ssl.keystore.type = {key_type}\n\
         {alias}.ssl.keystore.location = {}\n\
         {alias}.ssl.keystore.password = {KEY_PASSWORD}\n\
         {alias}.ssl.key.password = {KEY_PASSWORD}\n\
         {alias}.ssl.keymanager.algorithm = SunX509\n\
         {alias}.ssl.trustmanager.algorithm = PKIX\n",
        cluster.bootstrap(),
        trust.display(),
        key.display(),
    )
}

#[test]
fn java_key_and_trust_stores_replicate_over_mutual_tls_as_written_for_mm2() {
    let options = KafkaOptions {
        security: Security::MutualTls,
        ..KafkaOptions::default()
    };
    let clusters = match Clusters::start_kafka(&["europe", "northamerica"], &options) {
        Ok(c) => c,
        Err(e) => panic!("cannot start mutual-TLS Kafka clusters: {e}"),
    };
    let europe = clusters.get("europe");
    let north = clusters.get("northamerica");
    let dir = tempfile::tempdir().unwrap();
    // Europe: a JKS truststore with a PKCS12 keystore; North America the other way round.
    let europe_keys = cluster_keys(
        "europe",
        europe,
        ("JKS", &truststore(europe, dir.path(), "JKS")),
        ("PKCS12", &keystore(europe, dir.path(), "PKCS12")),
    );
    let north_keys = cluster_keys(
        "northamerica",
        north,
        ("PKCS12", &truststore(north, dir.path(), "PKCS12")),
        ("JKS", &keystore(north, dir.path(), "JKS")),
    );
    let text = format!(
        "clusters = europe, northamerica\n{europe_keys}{north_keys}{}",
        europe_lh_flow("northamerica")
    );
    let config = write_config(dir.path(), &text);

    let (valid, shown) = validate(&config);
    assert!(valid, "validate refused the stores:\n{shown}");
    println!("{shown}");
    for (cluster, ca) in [
        ("europe", "europe-test-ca"),
        ("northamerica", "northamerica-test-ca"),
    ] {
        assert!(
            shown.contains(&format!("ssl.ca.pem=[1 certificate(s): CN={ca}]")),
            "{cluster}'s CA not shown as librdkafka gets it:\n{shown}"
        );
    }
    assert!(
        shown.contains("ssl.certificate.pem=[1 certificate(s): CN=mirrorcast]"),
        "{shown}"
    );
    assert!(shown.contains("ssl.key.pem=[redacted]"), "{shown}");
    for secret in [
        TRUST_PASSWORD,
        KEY_PASSWORD,
        "PRIVATE KEY",
        "BEGIN CERTIFICATE",
    ] {
        assert!(!shown.contains(secret), "`{secret}` shown:\n{shown}");
    }

    create_topic(&europe.plaintext_bootstrap(), "LH.ORDERS", 3, &[]);
    produce(
        &europe.plaintext_bootstrap(),
        "LH.ORDERS",
        &numbered_records("mtls", 3, 0, 300),
    );
    let mut replicator = Replicator::start(&config, &[]);
    let source = read_all(&europe.plaintext_bootstrap(), "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(90), || read_all(
            &north.plaintext_bootstrap(),
            "LH.ORDERS"
        ) == source),
        "LH.ORDERS not copied over mutual TLS\n{}",
        replicator.log()
    );
    replicator.terminate_cleanly(Duration::from_secs(30));
    let log = replicator.log();
    for secret in [TRUST_PASSWORD, KEY_PASSWORD, "PRIVATE KEY"] {
        assert!(!log.contains(secret), "`{secret}` in the log:\n{log}");
    }

    // A wrong store password: named with its key and line, never shown, exit 2.
    let wrong = write_config(
        dir.path(),
        &text.replace(
            &format!("europe.ssl.truststore.password = {TRUST_PASSWORD}"),
            "europe.ssl.truststore.password = not-the-Pa55",
        ),
    );
    let out = mirrorcast_command(&["validate", &wrong.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("europe.ssl.truststore.location")
            && stderr.contains("does not open with its password"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-Pa55"), "{stderr}");
}
