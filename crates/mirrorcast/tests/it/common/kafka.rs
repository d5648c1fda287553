//! Client settings and admin set-up: topics (create, grow, describe) and consumer groups.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::wait_until;

/// Settings of a client of `bootstrap`, to add to.
pub fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

pub fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin_client(bootstrap);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results =
        block_on(admin.create_topics([&topic], &AdminOptions::new())).expect("create topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
    assert!(
        wait_until(Duration::from_secs(10), || topic_partitions(
            bootstrap, name
        ) == Some(partitions)),
        "topic {name} did not appear"
    );
}

/// Creates a topic if the broker lets it now (not while a deletion of the same name is under
/// way); whether it then exists with `partitions` partitions.
pub fn try_create_topic(bootstrap: &str, name: &str, partitions: i32) -> bool {
    let admin = admin_client(bootstrap);
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let Ok(results) = block_on(admin.create_topics([&topic], &AdminOptions::new())) else {
        return false;
    };
    results.iter().all(Result::is_ok)
        && wait_until(Duration::from_secs(10), || {
            topic_partitions(bootstrap, name) == Some(partitions)
        })
}

/// An admin client for test set-up.
pub fn admin_client(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client(bootstrap).create().expect("admin client")
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Configs set on `topic` itself (not the broker's defaults, which Apache Kafka describes too).
pub fn topic_overrides(bootstrap: &str, topic: &str) -> BTreeMap<String, String> {
    use rdkafka::admin::{ConfigSource, ResourceSpecifier};
    let admin = admin_client(bootstrap);
    let results =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()))
            .expect("describe configs");
    results
        .into_iter()
        .filter_map(Result::ok)
        .flat_map(|r| r.entries)
        .filter(|e| matches!(e.source, ConfigSource::DynamicTopic))
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

/// Grows `topic` to `total` partitions (CreatePartitions) and waits until it shows.
pub fn add_partitions(bootstrap: &str, topic: &str, total: usize) {
    let admin = admin_client(bootstrap);
    let results = block_on(admin.create_partitions(
        [&rdkafka::admin::NewPartitions::new(topic, total)],
        &AdminOptions::new(),
    ))
    .expect("create partitions");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("add partitions to {t}: {e}"));
    }
    assert!(
        wait_until(Duration::from_secs(10), || topic_partitions(
            bootstrap, topic
        ) == Some(total as i32)),
        "{topic} did not grow"
    );
}

/// Partition count of `topic`, without creating it.
pub fn topic_partitions(bootstrap: &str, topic: &str) -> Option<i32> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("allow.auto.create.topics", "false")
        .create()
        .ok()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(5)).ok()?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
}

/// A consumer of `group` that commits only when told to.
pub fn group_client(bootstrap: &str, group: &str) -> BaseConsumer {
    client(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap()
}

/// Commits `offsets` of `topic` for `group` (a group without members).
pub fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let mut list = TopicPartitionList::new();
    for (p, o) in offsets {
        list.add_partition_offset(topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    group_client(bootstrap, group)
        .commit(&list, CommitMode::Sync)
        .unwrap();
}
