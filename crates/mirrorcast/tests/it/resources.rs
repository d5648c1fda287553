//! The scenario's two per-region KafkaMirrorMaker2 resources (europe→northamerica and
//! europe→southamerica: LH.*, identity policy, offset syncs on the target, ACL sync off, config
//! sync on, SCRAM + TLS with secrets in a mounted directory) validate to the same flows as the
//! equivalent properties files, and run against local clusters with `--strip-security`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

const REGIONS: [(&str, &str); 2] = [("northamerica", "na"), ("southamerica", "sa")];

fn resource(target: &str, short: &str, europe: &str, target_bootstrap: &str) -> String {
    format!(
        r#"kind: KafkaMirrorMaker2
apiVersion: eventstreams.ibm.com/v1beta2
metadata:
  name: mm2-{short}
spec:
  connectCluster: {target}
  mirrors:
    - sourceCluster: europe
      targetCluster: {target}
      topicsPattern: LH.*
      sourceConnector:
        config:
          refresh.topics.interval.seconds: 2
          refresh.topics.enabled: true
          replication.factor: 1
          replication.policy.class: "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
          offset-syncs.topic.location: target
          offset-syncs.topic.replication.factor: 1
          offset.lag.max: 100
          sync.topic.acls.enabled: false
          sync.topic.configs.enabled: true
          sync.topic.configs.interval.seconds: 2
      # Single-node clusters: Apache Kafka refuses a replication factor above the broker count
      # (nisshi accepted MM2's default of 3).
      checkpointConnector:
        config:
          checkpoints.topic.replication.factor: 1
      heartbeatConnector:
        config:
          heartbeats.topic.replication.factor: 1
  clusters:
    - alias: europe
      bootstrapServers: {europe}
      authentication:
        username: mm2-europe
        passwordSecret:
          password: password
          secretName: mm2-europe
        type: scram-sha-512
      tls:
        trustedCertificates:
          - certificate: ca.crt
            secretName: eu-cluster-ca-cert
    - alias: {target}
      bootstrapServers: {target_bootstrap}
      authentication:
        username: mm2-{target}
        passwordSecret:
          password: password
          secretName: mm2-{target}
        type: scram-sha-512
      config:
        group.id: mm2-{short}
        offset.storage.topic: __mm2_{short}_offsets
        offset.storage.replication.factor: 1
        key.converter: org.apache.kafka.connect.converters.ByteArrayConverter
      tls:
        trustedCertificates:
          - certificate: ca.crt
            secretName: {short}-cluster-ca-cert
  replicas: 1
  resources:
    requests:
      cpu: 2000m
  template:
    pod:
      metadata:
        annotations:
          productName: example
"#
    )
}

/// The same, written the MM2 dedicated-mode way (one process alone, as `replicas: 1` says).
fn properties(
    target: &str,
    short: &str,
    europe: &str,
    target_bootstrap: &str,
    secrets: &Path,
) -> String {
    let s = secrets.display();
    format!(
        "clusters = europe, {target}\n\
         europe.bootstrap.servers = {europe}\n\
         europe.security.protocol = SASL_SSL\n\
         europe.sasl.mechanism = SCRAM-SHA-512\n\
         europe.sasl.username = mm2-europe\n\
         europe.sasl.password = ${{file:{s}/europe.properties:password}}\n\
         europe.ssl.truststore.type = PEM\n\
         europe.ssl.truststore.location = {s}/eu-cluster-ca-cert/ca.crt\n\
         {target}.bootstrap.servers = {target_bootstrap}\n\
         {target}.security.protocol = SASL_SSL\n\
         {target}.sasl.mechanism = SCRAM-SHA-512\n\
         {target}.sasl.username = mm2-{target}\n\
         {target}.sasl.password = ${{env:MM2_TARGET_PASSWORD}}\n\
         {target}.ssl.truststore.type = PEM\n\
         {target}.ssl.truststore.location = {s}/{short}-cluster-ca-cert/ca.crt\n\
         {target}.offset.storage.topic = __mm2_{short}_offsets\n\
         offset.storage.replication.factor = 1\n\
         europe->{target}.enabled = true\n\
         europe->{target}.topics = LH.*\n\
         replication.policy.class = IdentityReplicationPolicy\n\
         replication.factor = 1\n\
         refresh.topics.interval.seconds = 2\n\
         offset-syncs.topic.location = target\n\
         sync.topic.acls.enabled = false\n\
         sync.topic.configs.interval.seconds = 2\n\
         checkpoints.topic.replication.factor = 1\n\
         heartbeats.topic.replication.factor = 1\n\
         instances.group.enabled = false\n"
    )
}

fn write_secrets(dir: &Path) {
    for (secret, key, value) in [
        ("mm2-europe", "password", "eu-pass"),
        ("mm2-northamerica", "password", "na-pass"),
        ("mm2-southamerica", "password", "sa-pass"),
        (
            "eu-cluster-ca-cert",
            "ca.crt",
            "-----BEGIN CERTIFICATE-----\n",
        ),
        (
            "na-cluster-ca-cert",
            "ca.crt",
            "-----BEGIN CERTIFICATE-----\n",
        ),
        (
            "sa-cluster-ca-cert",
            "ca.crt",
            "-----BEGIN CERTIFICATE-----\n",
        ),
    ] {
        std::fs::create_dir_all(dir.join(secret)).unwrap();
        std::fs::write(dir.join(secret).join(key), value).unwrap();
    }
    std::fs::write(dir.join("europe.properties"), "password = eu-pass\n").unwrap();
}

fn validate(args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .arg("validate")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "validate {args:?} failed:\n{stderr}");
    // The first line names the file; everything after it is the resolved configuration.
    let resolved = stdout.lines().skip(1).collect::<Vec<_>>().join("\n");
    (resolved, stderr)
}

#[test]
fn scenario_resources_resolve_to_the_same_flows_as_the_properties_files() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    write_secrets(&secrets);
    for (target, short) in REGIONS {
        let yaml = dir.path().join(format!("mm2-{short}.yaml"));
        std::fs::write(
            &yaml,
            resource(target, short, "eu:9098", &format!("{short}:9098")),
        )
        .unwrap();
        let props = dir.path().join(format!("mm2-{short}.properties"));
        std::fs::write(
            &props,
            properties(target, short, "eu:9098", &format!("{short}:9098"), &secrets),
        )
        .unwrap();
        let password = format!("{short}-pass");
        let secrets_arg = format!("--secrets-dir={}", secrets.display());
        let (from_yaml, notes) = validate(&[yaml.to_str().unwrap(), &secrets_arg], &[]);
        // `--clusters`, as a replicator per region runs: only the heartbeats into its region,
        // as Strimzi's connectors for the resource's mirrors.
        let (from_props, _) = validate(
            &[props.to_str().unwrap(), "--clusters", target],
            &[("MM2_TARGET_PASSWORD", &password)],
        );
        assert_eq!(
            from_yaml, from_props,
            "{target}: the resource and the properties file differ"
        );
        assert!(
            from_yaml.contains(&format!("europe->{target}")),
            "{from_yaml}"
        );
        assert!(
            from_yaml.contains(&format!("__mm2_{short}_offsets")),
            "{from_yaml}"
        );
        assert!(from_yaml.contains("sync.topic.acls: off"), "{from_yaml}");
        for secret in ["eu-pass", "na-pass", "sa-pass"] {
            assert!(
                !from_yaml.contains(secret) && !notes.contains(secret),
                "a secret was shown"
            );
        }
        for ignored in ["spec.resources", "spec.template", "group.id"] {
            assert!(
                notes.contains(ignored),
                "{ignored} should be reported as ignored: {notes}"
            );
        }
        assert_eq!(
            notes.matches("ignored").count(),
            1,
            "reported once: {notes}"
        );
    }
}

#[test]
fn scenario_resources_run_against_local_clusters_one_replicator_per_region() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, "LH.ORDERS", 3, &[("retention.bytes", "100000000")]);
    produce(&europe, "LH.ORDERS", &numbered_records("orders", 3, 0, 300));
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    write_secrets(&secrets);
    let mut replicators = Vec::new();
    for (target, short) in REGIONS {
        let yaml = dir.path().join(format!("mm2-{short}.yaml"));
        std::fs::write(
            &yaml,
            resource(target, short, &europe, &clusters.bootstrap(target)),
        )
        .unwrap();
        let secrets_arg = format!("--secrets-dir={}", secrets.display());
        replicators.push(Replicator::start(
            &yaml,
            &[&secrets_arg, "--strip-security"],
        ));
    }
    let source = read_all(&europe, "LH.ORDERS");
    for ((target, short), replicator) in REGIONS.iter().zip(&replicators) {
        let bootstrap = clusters.bootstrap(target);
        assert!(
            wait_until(Duration::from_secs(60), || read_all(
                &bootstrap,
                "LH.ORDERS"
            ) == source),
            "{target}: LH.ORDERS not copied\n{}",
            replicator.log()
        );
        // Progress is kept where Strimzi's MM2 keeps it, under its connector name.
        let progress_topic = format!("__mm2_{short}_offsets");
        let connector = format!("europe->{target}.MirrorSourceConnector");
        let ends = end_offsets(&europe, "LH.ORDERS");
        let stored = || {
            let mut config = rdkafka::ClientConfig::new();
            config.set("bootstrap.servers", &bootstrap);
            mirrorcast::progress::load(&config, &progress_topic, &connector, "europe")
                .map(|p| {
                    ends.iter().all(|(part, end)| {
                        p.get(&("LH.ORDERS".to_string(), *part)).map(|s| s.offset) == Some(end - 1)
                    })
                })
                .unwrap_or(false)
        };
        assert!(
            wait_until(Duration::from_secs(30), stored),
            "{target}: progress not in {progress_topic}\n{}",
            replicator.log()
        );
    }
}

#[test]
fn the_scenario_resource_runs_over_scram_sha_512_and_tls_with_its_secrets() {
    // Every cluster as the seed's Event Streams listeners are: SCRAM-SHA-512 over TLS, with a CA
    // of its own; the resource reads the passwords and CA certificates from mounted secrets.
    let users = vec![
        ("mm2-europe".to_string(), "eu-pass".to_string()),
        ("mm2-northamerica".to_string(), "na-pass".to_string()),
    ];
    let options = localcluster::KafkaOptions {
        security: localcluster::Security::SaslSsl { users },
        ..localcluster::KafkaOptions::default()
    };
    let clusters = start_kafka_clusters(&["europe", "northamerica"], &options);
    let europe = clusters.get("europe");
    let north = clusters.get("northamerica");
    // Fixtures use each cluster's internal plaintext listener; mirrorcast only the SASL_SSL one.
    create_topic(&europe.plaintext_bootstrap(), "LH.ORDERS", 3, &[]);
    produce(
        &europe.plaintext_bootstrap(),
        "LH.ORDERS",
        &numbered_records("secure", 3, 0, 300),
    );
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    write_secrets(&secrets);
    for (secret, cluster) in [
        ("eu-cluster-ca-cert", europe),
        ("na-cluster-ca-cert", north),
    ] {
        let ca = cluster
            .ca_certificate()
            .expect("a SASL_SSL cluster has a CA");
        std::fs::copy(ca, secrets.join(secret).join("ca.crt")).unwrap();
    }
    let yaml = dir.path().join("mm2-na.yaml");
    std::fs::write(
        &yaml,
        resource(
            "northamerica",
            "na",
            &europe.bootstrap(),
            &north.bootstrap(),
        ),
    )
    .unwrap();
    let secrets_arg = format!("--secrets-dir={}", secrets.display());
    let replicator = Replicator::start(&yaml, &[&secrets_arg]);
    let source = read_all(&europe.plaintext_bootstrap(), "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(60), || read_all(
            &north.plaintext_bootstrap(),
            "LH.ORDERS"
        ) == source),
        "LH.ORDERS not copied over SASL_SSL\n{}",
        replicator.log()
    );
    let log = replicator.log();
    for secret in ["eu-pass", "na-pass"] {
        assert!(!log.contains(secret), "a password in the log:\n{log}");
    }
}

/// A Strimzi 1.x (`kafka.strimzi.io/v1`) resource, as its examples write it: `spec.target` and
/// `spec.mirrors[].source`, mutual TLS (`authentication.type: tls` with `certificateAndKey`)
/// on both clusters, and the source's CAs as a `pattern` over its mounted secret.
fn v1_resource(europe: &str, north: &str) -> String {
    format!(
        r#"apiVersion: kafka.strimzi.io/v1
kind: KafkaMirrorMaker2
metadata:
  name: mm2-na
spec:
  version: 4.3.1
  replicas: 1
  target:
    alias: northamerica
    bootstrapServers: {north}
    groupId: mm2-na-group
    configStorageTopic: mm2-na-configs
    offsetStorageTopic: mm2-na-offsets
    statusStorageTopic: mm2-na-status
    tls:
      trustedCertificates:
        - secretName: na-cluster-ca-cert
          certificate: ca.crt
    authentication:
      type: tls
      certificateAndKey:
        secretName: mm2-na-user
        certificate: user.crt
        key: user.key
    config:
      offset.storage.replication.factor: 1
  mirrors:
    - source:
        alias: europe
        bootstrapServers: {europe}
        tls:
          trustedCertificates:
            - secretName: eu-cluster-ca-cert
              pattern: "*.crt"
        authentication:
          type: tls
          certificateAndKey:
            secretName: mm2-eu-user
            certificate: user.crt
            key: user.key
      topicsPattern: "LH.*"
      sourceConnector:
        config:
          replication.factor: 1
          offset-syncs.topic.replication.factor: 1
          replication.policy.class: org.apache.kafka.connect.mirror.IdentityReplicationPolicy
          sync.topic.acls.enabled: false
          # v1 has no heartbeat connector.
          heartbeats.topic.replication.factor: 1
      checkpointConnector:
        config:
          checkpoints.topic.replication.factor: 1
"#
    )
}

#[test]
fn a_strimzi_v1_resource_with_pattern_cas_and_mutual_tls_replicates() {
    let options = localcluster::KafkaOptions {
        security: localcluster::Security::MutualTls,
        ..localcluster::KafkaOptions::default()
    };
    let clusters = start_kafka_clusters(&["europe", "northamerica"], &options);
    let europe = clusters.get("europe");
    let north = clusters.get("northamerica");
    create_topic(&europe.plaintext_bootstrap(), "LH.ORDERS", 3, &[]);
    produce(
        &europe.plaintext_bootstrap(),
        "LH.ORDERS",
        &numbered_records("v1", 3, 0, 300),
    );
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    for (ca_secret, user_secret, cluster) in [
        ("eu-cluster-ca-cert", "mm2-eu-user", europe),
        ("na-cluster-ca-cert", "mm2-na-user", north),
    ] {
        std::fs::create_dir_all(secrets.join(ca_secret)).unwrap();
        let ca = cluster.ca_certificate().expect("a TLS cluster has a CA");
        std::fs::copy(ca, secrets.join(ca_secret).join("ca.crt")).unwrap();
        let user = secrets.join(user_secret);
        std::fs::create_dir_all(&user).unwrap();
        let (key, certificate) = cluster.client_certificate("mm2", &user).unwrap();
        std::fs::rename(key, user.join("user.key")).unwrap();
        std::fs::rename(certificate, user.join("user.crt")).unwrap();
    }
    // The pattern takes every CA of the secret (here also North America's, as after a CA
    // renewal), and leaves other files alone.
    let eu_cas = secrets.join("eu-cluster-ca-cert");
    std::fs::copy(north.ca_certificate().unwrap(), eu_cas.join("ca-2026.crt")).unwrap();
    std::fs::write(eu_cas.join("ca.password"), "not a certificate").unwrap();
    let yaml = dir.path().join("mm2-na.yaml");
    std::fs::write(&yaml, v1_resource(&europe.bootstrap(), &north.bootstrap())).unwrap();
    let secrets_arg = format!("--secrets-dir={}", secrets.display());

    let (resolved, _) = validate(&[&yaml.display().to_string(), &secrets_arg], &[]);
    assert!(
        resolved.contains("ssl.ca.pem=[2 certificate(s)")
            && resolved.contains("ssl.key.pem=[redacted]"),
        "{resolved}"
    );
    assert!(
        !resolved.contains("PRIVATE KEY"),
        "a key shown:\n{resolved}"
    );
    let replicator = Replicator::start(&yaml, &[&secrets_arg]);
    let source = read_all(&europe.plaintext_bootstrap(), "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(60), || read_all(
            &north.plaintext_bootstrap(),
            "LH.ORDERS"
        ) == source),
        "LH.ORDERS not copied over mutual TLS\n{}",
        replicator.log()
    );
}
