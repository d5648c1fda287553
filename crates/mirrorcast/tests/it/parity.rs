//! MM2's rules where mirrorcast used to differ (issue "MM2 parity"), each on Apache Kafka.

use std::time::Duration;

use crate::common::*;
use localcluster::{Clusters, KafkaOptions, Security, Storage};
use mirrorcast::acls::{AclOperation, AclPermission, TopicAcl};
use mirrorcast::kafka::ffi;

const PASSWORD: &str = "mirror-Pa55word";

/// `-1` is the broker's `default.replication.factor` (KIP-464), as the Strimzi and Event
/// Streams examples write it: mirrorcast used to refuse the file. Every topic it creates, the
/// remote one and its internal ones, is then made by the broker's default.
#[test]
fn a_replication_factor_of_minus_one_creates_every_topic_with_the_brokers_default() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "events", 2, &[]);
    produce(&europe, "events", &numbered_records("rf", 2, 0, 200));
    let dir = tempfile::tempdir().unwrap();
    let extra = "replication.factor = -1\n\
                 offset.storage.replication.factor = -1\n\
                 offset-syncs.topic.replication.factor = -1\n\
                 heartbeats.topic.replication.factor = -1\n\
                 checkpoints.topic.replication.factor = -1\n";
    let config = write_config(dir.path(), &one_flow_config(&clusters, extra));
    let replicator = Replicator::start(&config, &[]);
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(90), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "not copied with replication factors of -1\n{}",
        replicator.log()
    );
    for topic in ["events", "mm2-offsets.europe.internal", "heartbeats"] {
        assert!(
            topic_partitions(&north, topic).is_some(),
            "`{topic}` not created on the target\n{}",
            replicator.log()
        );
    }
    assert!(!replicator.log().contains("ERROR"), "{}", replicator.log());
}

/// The record numbers of `topic` on `bootstrap`, per partition, in order.
fn numbers(bootstrap: &str, topic: &str) -> std::collections::BTreeMap<i32, Vec<usize>> {
    read_all(bootstrap, topic)
        .into_iter()
        .map(|(p, records)| {
            let numbers = records
                .iter()
                .filter_map(|r| {
                    let value = String::from_utf8(r.value.clone()?).ok()?;
                    value.split('-').nth(1)?.parse().ok()
                })
                .collect();
            (p, numbers)
        })
        .collect()
}

/// `auto.offset.reset = latest` in the source's consumer settings, on genuine MM2 and on
/// mirrorcast side by side (one properties file, one target each): neither copies the records
/// that were there before it started, and each copies everything from where it started, with
/// no gap. mirrorcast used to force `earliest` and copy the whole backlog. The same run turns
/// offset syncs off: neither writes a syncs topic, nor a checkpoints topic (nothing to make
/// checkpoints from).
#[test]
fn auto_offset_reset_latest_skips_the_backlog_and_without_syncs_no_checkpoints_as_mm2() {
    let clusters = start_clusters(&["europe", "northamerica", "southamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, "LH.ORDERS", 2, &[]);
    produce(&europe, "LH.ORDERS", &numbered_records("old", 2, 0, 100));
    let dir = tempfile::tempdir().unwrap();
    // Without the syncs topic's settings, with which MM2's source connector would refuse to
    // start (mirrorcast says they have no effect).
    let text = crate::mm2::mm2_config(
        &clusters,
        &["northamerica", "southamerica"],
        "IdentityReplicationPolicy",
        "topics = LH.*\neurope.consumer.auto.offset.reset = latest\n\
         emit.offset-syncs.enabled = false\n",
    )
    .replace("offset-syncs.topic.replication.factor = 1\n", "");
    let config = write_config(dir.path(), &text);
    let mm2 = crate::mm2::start_mm2(&config, "northamerica");
    let replicator = Replicator::start(&config, &["--clusters", "southamerica"]);
    // New records until both have copied some: then both are past their start.
    let mut next = 100;
    let both_copy = wait_until(Duration::from_secs(180), || {
        produce(&europe, "LH.ORDERS", &numbered_records("new", 2, next, 10));
        next += 10;
        ["northamerica", "southamerica"]
            .iter()
            .all(|t| total_records(&clusters.bootstrap(t), "LH.ORDERS") > 0)
    });
    assert!(
        both_copy,
        "not both copying\nMM2:\n{}\nmirrorcast:\n{}",
        mm2.log(),
        replicator.log()
    );
    produce(&europe, "LH.ORDERS", &numbered_records("new", 2, next, 100));
    let last = numbers(&europe, "LH.ORDERS");
    for target in ["northamerica", "southamerica"] {
        let bootstrap = clusters.bootstrap(target);
        assert!(
            wait_until(Duration::from_secs(60), || numbers(&bootstrap, "LH.ORDERS")
                .iter()
                .all(|(p, n)| n.last() == last[p].last())),
            "{target} did not catch up\n{}",
            replicator.log()
        );
        for (partition, copied) in numbers(&bootstrap, "LH.ORDERS") {
            let source = &last[&partition];
            let first = copied[0];
            assert!(
                first >= 100,
                "{target}[{partition}] copied the backlog: starts at {first}"
            );
            let start = source.iter().position(|&n| n == first).unwrap();
            assert_eq!(
                &source[start..],
                &copied[..],
                "{target}[{partition}]: a gap or a duplicate"
            );
        }
        assert_eq!(
            topic_partitions(&europe, &format!("mm2-offset-syncs.{target}.internal")),
            None
        );
        assert_eq!(
            topic_partitions(&bootstrap, "europe.checkpoints.internal"),
            None,
            "{target}"
        );
        assert!(topic_partitions(&bootstrap, "heartbeats").is_some());
    }
    assert!(
        replicator
            .log()
            .contains("no checkpoints are written for europe->southamerica"),
        "{}",
        replicator.log()
    );
}

/// A topic config the source topic inherits from its broker (here a dynamic broker config,
/// `log.retention.ms` on node 1) is not the topic's own: Kafka reports it as not default, and
/// mirrorcast used to pin it on the remote topic as an override. Only real topic overrides
/// travel (MM2 checks the config source too).
#[test]
fn configs_a_topic_inherits_from_its_broker_are_not_copied_as_overrides() {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    let broker = ResourceSpecifier::Broker(1);
    let altered = block_on(admin_client(&europe).alter_configs(
        [&AlterConfig::new(broker).set("log.retention.ms", "3600000")],
        &rdkafka::admin::AdminOptions::new(),
    ))
    .expect("alter the broker's config");
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    create_topic(&europe, "events", 1, &[("max.message.bytes", "200000")]);
    produce(&europe, "events", &numbered_records("cfg", 1, 0, 10));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &one_flow_config(&clusters, ""));
    let replicator = Replicator::start(&config, &[]);
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(90), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "{}",
        replicator.log()
    );
    let remote = topic_overrides(&north, "events");
    assert_eq!(
        remote.get("max.message.bytes").map(String::as_str),
        Some("200000"),
        "the topic's own override travels: {remote:?}"
    );
    assert!(
        !remote.contains_key("retention.ms"),
        "the source broker's retention was pinned on the remote topic: {remote:?}"
    );
}

/// The checkpoints of `group` in the target's checkpoints topic, in order.
fn checkpoints_of(bootstrap: &str, group: &str) -> Vec<mirrorcast::offsets::codec::Checkpoint> {
    read_raw(bootstrap, "europe.checkpoints.internal")
        .into_iter()
        .filter_map(|(k, v)| mirrorcast::offsets::codec::Checkpoint::decode(&k, &v).ok())
        .filter(|c| c.group == group)
        .collect()
}

fn commit_with_metadata(bootstrap: &str, group: &str, offset: i64, metadata: &str) {
    use rdkafka::consumer::{CommitMode, Consumer};
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset("events", 0, rdkafka::Offset::Offset(offset))
        .unwrap();
    list.find_partition("events", 0)
        .unwrap()
        .set_metadata(metadata);
    group_client(bootstrap, group)
        .commit(&list, CommitMode::Sync)
        .unwrap();
}

/// As MM2 (since 3.7), checkpoints are read back from the checkpoints topic after a restart:
/// nothing that did not move is written again (mirrorcast re-emitted every group's checkpoint
/// at each start), and the group's commit metadata travels in the checkpoint (it was empty).
#[test]
fn checkpoints_carry_the_commit_metadata_and_are_not_emitted_again_after_a_restart() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "events", 1, &[]);
    produce(&europe, "events", &numbered_records("cp", 1, 0, 100));
    commit_with_metadata(&europe, "shop", 60, "session=42");
    let dir = tempfile::tempdir().unwrap();
    let extra = "emit.checkpoints.interval.seconds = 1\n";
    let config = write_config(dir.path(), &one_flow_config(&clusters, extra));
    let mut replicator = Replicator::start(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(90), || !checkpoints_of(&north, "shop")
            .is_empty()),
        "no checkpoint\n{}",
        replicator.log()
    );
    let first = checkpoints_of(&north, "shop");
    assert_eq!(first[0].upstream_offset, 60);
    assert_eq!(first[0].metadata, "session=42", "{first:?}");
    replicator.terminate_cleanly(Duration::from_secs(30));

    let replicator = Replicator::start(&config, &[]);
    // A group committed after the restart shows that checkpoint rounds ran.
    commit_with_metadata(&europe, "other", 70, "");
    assert!(
        wait_until(Duration::from_secs(90), || !checkpoints_of(&north, "other")
            .is_empty()),
        "no checkpoint after the restart\n{}",
        replicator.log()
    );
    assert_eq!(
        checkpoints_of(&north, "shop"),
        first,
        "a checkpoint that did not move was written again\n{}",
        replicator.log()
    );
}

/// Creates compacted topics on `bootstrap`, as an operator of a locked-down cluster would.
fn create_compacted(bootstrap: &str, topics: &[(&str, i32)]) {
    for (topic, partitions) in topics {
        create_topic(
            bootstrap,
            topic,
            *partitions,
            &[("cleanup.policy", "compact")],
        );
    }
}

fn allow(bootstrap: &str, principal: &str, topics: &[&str], operations: &[AclOperation]) {
    let acls: Vec<TopicAcl> = topics
        .iter()
        .flat_map(|topic| {
            operations.iter().map(|operation| TopicAcl {
                topic: topic.to_string(),
                principal: principal.into(),
                host: "*".into(),
                operation: *operation,
                permission: AclPermission::Allow,
            })
        })
        .collect();
    let admin = admin_client(bootstrap);
    ffi::create_topic_acls(admin.inner(), &acls, Duration::from_secs(10)).unwrap();
}

/// A target whose ACLs let the replicator write `LH.ORDERS` and the internal topics the
/// operator made, but create neither them nor `SECRET.PLANS`: as MM2 (`MirrorUtils`, and
/// `MirrorSourceConnector` logging a topic it could not create), the internal topics are taken
/// to exist, the refused topic is said once and left, the others are copied; once allowed, the
/// next refresh creates and copies it. Then exactly once without a transactional id ACL: the
/// refusal is said with the ACL to add, the flow is failed, nothing is written; once allowed,
/// everything is committed once.
#[test]
fn a_locked_down_target_gets_the_rest_of_refused_creations_and_transactions_once_allowed() {
    use AclOperation::*;
    let europe_cluster = match Clusters::start_kafka(&["europe"], &KafkaOptions::default()) {
        Ok(c) => c,
        Err(e) => panic!("cannot start Kafka: {e}"),
    };
    let locked = KafkaOptions {
        security: Security::SaslSsl {
            users: vec![("mirror".into(), PASSWORD.into())],
        },
        authorizer: Some(vec![]),
        ..KafkaOptions::default()
    };
    let north_cluster = match Clusters::start_kafka(&["northamerica"], &locked) {
        Ok(c) => c,
        Err(e) => panic!("cannot start a SASL_SSL Kafka cluster with an authorizer: {e}"),
    };
    let europe = europe_cluster.bootstrap("europe");
    let north_node = north_cluster.get("northamerica");
    // The test's own clients use the node's plaintext listener, a super user.
    let north = north_node.plaintext_bootstrap();
    create_topic(&europe, "LH.ORDERS", 2, &[]);
    create_topic(&europe, "SECRET.PLANS", 1, &[]);
    produce(&europe, "LH.ORDERS", &numbered_records("orders", 2, 0, 400));
    produce(
        &europe,
        "SECRET.PLANS",
        &numbered_records("plans", 1, 0, 50),
    );
    // The operator made two of the internal topics and let the replicator use them; the
    // checkpoints topic neither exists nor may be created (there are no groups to checkpoint).
    let internal = ["mm2-offsets.europe.internal", "heartbeats"];
    create_compacted(&north, &[(internal[0], 5), (internal[1], 1)]);
    let principal = "User:mirror";
    allow(
        &north,
        principal,
        &internal,
        &[Read, Write, Describe, DescribeConfigs],
    );
    let copy = [Create, Read, Write, Describe, DescribeConfigs, AlterConfigs];
    allow(&north, principal, &["LH.ORDERS"], &copy);

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "clusters = europe, northamerica\n\
             europe.bootstrap.servers = {europe}\n\
             northamerica.bootstrap.servers = {}\n\
             northamerica.security.protocol = SASL_SSL\n\
             northamerica.sasl.mechanism = SCRAM-SHA-512\n\
             northamerica.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule \
             required username=\"mirror\" password=\"{PASSWORD}\";\n\
             northamerica.ssl.truststore.type = PEM\n\
             northamerica.ssl.truststore.location = {}\n\
             europe->northamerica.enabled = true\n\
             topics = LH.*, SECRET.*\n\
             replication.policy.class = IdentityReplicationPolicy\n\
             refresh.topics.interval.seconds = 1\n\
             sync.topic.acls.enabled = false\n\
             replication.factor = 1\n\
             offset-syncs.topic.replication.factor = 1\n",
            north_node.bootstrap(),
            north_node.ca_certificate().unwrap().display()
        ),
    );
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    let start = || Replicator::start(&config, &["--clusters", "northamerica", "--http", &http]);
    let replicator = start();
    let orders = read_all(&europe, "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(90), || read_all(&north, "LH.ORDERS")
            == orders),
        "LH.ORDERS was not copied beside the refused topic\n{}",
        replicator.log()
    );
    let refusals = |log: &str| {
        log.lines()
            .filter(|l| l.contains("refused to create SECRET.PLANS"))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(30), || refusals(&replicator.log()) == 1),
        "the refused creation is not said\n{}",
        replicator.log()
    );
    // Refreshes come every second: a few of them, and still said once.
    assert!(
        !poll_until(Duration::from_secs(5), Duration::from_millis(250), || {
            refusals(&replicator.log()) > 1
        }),
        "said at every refresh\n{}",
        replicator.log()
    );
    // Topics it can see are used as they are; one it may not create is taken to exist, once.
    let log = replicator.log();
    let assumed = |topic: &str| {
        let warning = format!("not allowed to create the internal topic {topic} ");
        log.lines().filter(|l| l.contains(&warning)).count()
    };
    assert_eq!(assumed("europe.checkpoints.internal"), 1, "{log}");
    assert_eq!(assumed(internal[0]) + assumed(internal[1]), 0, "{log}");
    // The replicator's consumers join no group: a cluster that grants none is no problem.
    assert!(!log.contains("GroupAuthorizationFailed"), "{log}");
    let status = http_get(port, "/api/status")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(status.contains("\"running\""), "{status}");
    assert_eq!(topic_partitions(&north, "SECRET.PLANS"), None);

    allow(&north, principal, &["SECRET.PLANS"], &copy);
    let plans = read_all(&europe, "SECRET.PLANS");
    assert!(
        wait_until(Duration::from_secs(60), || read_all(&north, "SECRET.PLANS")
            == plans),
        "SECRET.PLANS was not created and copied once allowed\n{}",
        replicator.log()
    );
    assert!(!replicator.log().contains(PASSWORD));

    // Exactly once on a target that grants no transactional id: said, naming the cluster and
    // the ACL; the flow failed; nothing copied, not even half a transaction; then allowed.
    let mut replicator = replicator;
    replicator.kill();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}exactly.once.source.support = enabled\n"),
    )
    .unwrap();
    let copied = read_with_offsets(&north, "LH.ORDERS", "read_uncommitted");
    produce(
        &europe,
        "LH.ORDERS",
        &numbered_records("orders", 2, 400, 200),
    );
    let replicator = start();
    let refused = "northamerica refuses transactions to europe->northamerica";
    assert!(
        wait_until(Duration::from_secs(60), || replicator
            .log()
            .contains(refused)),
        "the refusal is not said\n{}",
        replicator.log()
    );
    let log = replicator.log();
    assert!(
        log.contains("TransactionalId ACL") && log.contains("`mirrorcast.europe->northamerica.`"),
        "{log}"
    );
    let status = http_get(port, "/api/status")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(
        status.contains("\"failed\"") && status.contains(refused),
        "{status}"
    );
    assert_eq!(
        read_with_offsets(&north, "LH.ORDERS", "read_uncommitted"),
        copied,
        "something was written without a transaction"
    );
    allow_transactional_ids(&north, principal, "mirrorcast.europe->northamerica.");
    let orders = read_all(&europe, "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(90), || {
            read_with_offsets(&north, "LH.ORDERS", "read_committed")
                .values()
                .map(Vec::len)
                .sum::<usize>()
                == orders.values().map(Vec::len).sum::<usize>()
        }),
        "not copied once allowed\n{}",
        replicator.log()
    );
    let committed = read_with_offsets(&north, "LH.ORDERS", "read_committed");
    for (partition, records) in &orders {
        let copied: Vec<&TestRecord> = committed[partition].iter().map(|(_, r)| r).collect();
        assert_eq!(
            copied,
            records.iter().collect::<Vec<_>>(),
            "LH.ORDERS[{partition}]"
        );
    }
    assert!(
        replicator.log().contains("copying exactly once"),
        "{}",
        replicator.log()
    );
}

/// WRITE and DESCRIBE on the transactional ids starting with `prefix`, with Kafka's own
/// `kafka-acls` (`AclCommand`) on the node's plaintext listener, as an operator would.
fn allow_transactional_ids(bootstrap: &str, principal: &str, prefix: &str) {
    let kafka = localcluster::find_kafka().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let log4j = dir.path().join("log4j2.properties");
    std::fs::write(&log4j, "rootLogger.level = ERROR\n").unwrap();
    let output = kafka
        .java(&["-Xmx128m"], &log4j)
        .args([
            "org.apache.kafka.tools.AclCommand",
            "--bootstrap-server",
            bootstrap,
        ])
        .args(["--add", "--allow-principal", principal])
        .args(["--operation", "Write", "--operation", "Describe"])
        .args([
            "--transactional-id",
            prefix,
            "--resource-pattern-type",
            "prefixed",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kafka-acls failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Instances share a source through a group on it; a source that refuses the group (the
/// principal may read the topics but not the group) makes the process say so, with the fix,
/// and stop: it never copies everything beside the other processes of its file.
#[test]
fn a_source_refusing_the_instances_group_stops_the_process_saying_why() {
    use AclOperation::*;
    let locked = KafkaOptions {
        security: Security::SaslSsl {
            users: vec![("mirror".into(), PASSWORD.into())],
        },
        authorizer: Some(vec![]),
        ..KafkaOptions::default()
    };
    let europe_cluster = match Clusters::start_kafka(&["europe"], &locked) {
        Ok(c) => c,
        Err(e) => panic!("cannot start a SASL_SSL Kafka cluster with an authorizer: {e}"),
    };
    let north_cluster = start_kafka_clusters(&["northamerica"], &KafkaOptions::default());
    let europe_node = europe_cluster.get("europe");
    let europe = europe_node.plaintext_bootstrap();
    let north = north_cluster.bootstrap("northamerica");
    create_topic(&europe, "LH.ORDERS", 2, &[]);
    produce(&europe, "LH.ORDERS", &numbered_records("orders", 2, 0, 100));
    allow(
        &europe,
        "User:mirror",
        &["LH.ORDERS"],
        &[Read, Describe, DescribeConfigs],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "clusters = europe, northamerica\n\
             europe.bootstrap.servers = {}\n\
             europe.security.protocol = SASL_SSL\n\
             europe.sasl.mechanism = SCRAM-SHA-512\n\
             europe.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule \
             required username=\"mirror\" password=\"{PASSWORD}\";\n\
             europe.ssl.truststore.type = PEM\n\
             europe.ssl.truststore.location = {}\n\
             northamerica.bootstrap.servers = {north}\n\
             europe->northamerica.enabled = true\n\
             topics = LH.*\n\
             replication.policy.class = IdentityReplicationPolicy\n\
             offset-syncs.topic.location = target\n\
             emit.heartbeats.enabled = false\n\
             emit.checkpoints.enabled = false\n\
             sync.topic.acls.enabled = false\n\
             replication.factor = 1\n\
             offset.storage.replication.factor = 1\n\
             offset-syncs.topic.replication.factor = 1\n",
            europe_node.bootstrap(),
            europe_node.ca_certificate().unwrap().display()
        ),
    );
    let mut replicator = Replicator::start(&config, &[]);
    let status = replicator.exit_within(Duration::from_secs(120));
    let log = replicator.log();
    assert!(
        status.is_some_and(|s| !s.success()),
        "the process did not stop ({status:?})\n{log}"
    );
    assert!(
        log.contains("refuses group mirrorcast.europe.northamerica")
            && log.contains("set `instances.group.enabled = false`"),
        "the refusal is not said with its fix\n{log}"
    );
    assert_eq!(
        total_records(&north, "LH.ORDERS"),
        0,
        "records copied without the group\n{log}"
    );
    assert!(!log.contains(PASSWORD), "a password in the log");
}
