//! Helpers shared by the integration tests: real nisshi clusters (via `localcluster`), a
//! `mirrorcast` process, and rdkafka clients to write and read records byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use localcluster::{Clusters, Storage};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Starts clusters on the broker `MIRRORCAST_TEST_BROKER` names (Apache Kafka unless it says
/// `nisshi`); fails the test loudly when that broker is not installed.
pub fn start_clusters(names: &[&str], storage: Storage) -> Clusters {
    match Clusters::start(names, storage) {
        Ok(c) => c,
        Err(e) => panic!("cannot start local clusters: {e}"),
    }
}

/// Starts nisshi clusters, for what the demo's broker must do whatever the suite runs on.
pub fn start_nisshi_clusters(names: &[&str], storage: Storage) -> Clusters {
    match Clusters::start_on(localcluster::Broker::Nisshi, names, storage) {
        Ok(c) => c,
        Err(e) => panic!("cannot start local nisshi clusters: {e}"),
    }
}

/// Starts Apache Kafka clusters with the given security or authorizer.
pub fn start_kafka_clusters(names: &[&str], options: &localcluster::KafkaOptions) -> Clusters {
    match Clusters::start_kafka(names, options) {
        Ok(c) => c,
        Err(e) => panic!("cannot start local Apache Kafka clusters: {e}"),
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    poll_until(timeout, Duration::from_millis(200), condition)
}

/// [`wait_until`] with a chosen polling step, for conditions that pass quickly.
pub fn poll_until(timeout: Duration, step: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(step);
    }
}

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

/// A record as the tests compare it: everything MM2 promises to copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TestRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Keys as bytes: Kafka's header keys need not be UTF-8.
    pub headers: mirrorcast::kafka::ffi::RawHeaders,
    pub timestamp: i64,
}

impl TestRecord {
    /// What a consumed message holds of a record.
    pub fn of(message: &BorrowedMessage<'_>) -> Self {
        TestRecord {
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: mirrorcast::kafka::ffi::raw_headers(message),
            timestamp: message.timestamp().to_millis().unwrap_or(-1),
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produces records to the given partitions, waiting for every acknowledgement.
pub fn produce(bootstrap: &str, topic: &str, records: &[(i32, TestRecord)]) {
    TestProducer::new(bootstrap).send_all(topic, records);
}

/// An idempotent producer for test data, kept across batches.
pub struct TestProducer(BaseProducer);

impl TestProducer {
    pub fn new(bootstrap: &str) -> Self {
        let producer = client(bootstrap)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        TestProducer(producer)
    }

    /// Sends `records` and waits until every one is acknowledged.
    pub fn send_all(&self, topic: &str, records: &[(i32, TestRecord)]) {
        let producer = &self.0;
        for (partition, record) in records {
            let pairs: Vec<(&[u8], Option<&[u8]>)> = record
                .headers
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect();
            let headers = mirrorcast::kafka::ffi::raw_owned_headers(&pairs);
            let mut base: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
                .partition(*partition)
                .timestamp(record.timestamp)
                .headers(headers);
            if let Some(k) = &record.key {
                base = base.key(k);
            }
            if let Some(v) = &record.value {
                base = base.payload(v);
            }
            loop {
                match producer.send(base) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        base = back;
                        producer.poll(Duration::from_millis(50));
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
    }
}

/// Last offset + 1 of every partition of `topic`.
pub fn end_offsets(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let Some(partitions) = topic_partitions(bootstrap, topic) else {
        return BTreeMap::new();
    };
    (0..partitions)
        .filter_map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .ok()
                .map(|(_, high)| (p, high))
        })
        .collect()
}

/// Every record of every partition of `topic`, in offset order.
pub fn read_all(bootstrap: &str, topic: &str) -> BTreeMap<i32, Vec<TestRecord>> {
    let ends = end_offsets(bootstrap, topic);
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    let mut out: BTreeMap<i32, Vec<TestRecord>> = BTreeMap::new();
    let mut remaining = BTreeMap::new();
    for (p, high) in &ends {
        out.insert(*p, Vec::new());
        if *high > 0 {
            list.add_partition_offset(topic, *p, Offset::Beginning)
                .unwrap();
            remaining.insert(*p, *high);
        }
    }
    if remaining.is_empty() {
        return out;
    }
    consumer.assign(&list).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !remaining.is_empty() {
        assert!(
            Instant::now() < deadline,
            "reading {topic} timed out; left {remaining:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("fetch");
        out.entry(message.partition())
            .or_default()
            .push(TestRecord::of(&message));
        if remaining
            .get(&message.partition())
            .is_some_and(|h| message.offset() + 1 >= *h)
        {
            remaining.remove(&message.partition());
        }
    }
    out
}

/// A `mirrorcast` process, killed on drop; its log goes to a file for failure messages.
pub struct Replicator {
    child: Option<Child>,
    log: PathBuf,
}

impl Replicator {
    pub fn start(config: &Path, args: &[&str]) -> Self {
        Self::start_logging(config, args, "info")
    }

    /// [`Replicator::start`] with `RUST_LOG` set to `filter`.
    pub fn start_logging(config: &Path, args: &[&str], filter: &str) -> Self {
        Self::start_with_env(config, args, &[("RUST_LOG", filter)])
    }

    /// [`Replicator::start`] with these environment variables (`RUST_LOG` is `info` unless
    /// given).
    pub fn start_with_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        // Unique even for processes started in the same millisecond.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = config.with_extension(format!("{}-{n}.log", now_ms()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
            .arg("run")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start mirrorcast");
        Replicator {
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time (user + system, in clock ticks) of each of the process's threads, by name.
    pub fn thread_cpu(&self) -> BTreeMap<String, u64> {
        let mut threads = BTreeMap::new();
        let Some(pid) = self.pid() else {
            return threads;
        };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return threads;
        };
        for task in tasks.flatten() {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // After the name in parentheses: state is field 3, utime 14, stime 15.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
                *threads.entry(name.trim().to_string()).or_default() += user + system;
            }
        }
        threads
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): the process freezes, every thread of it, as in a
    /// long garbage-collection pause or a VM stall, and later goes on.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen {
            rustix::process::Signal::STOP
        } else {
            rustix::process::Signal::CONT
        };
        let pid = self
            .pid()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(rustix::process::Pid::from_raw)
            .expect("a running replicator");
        rustix::process::kill_process(pid, signal).expect("signal the replicator");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Replicator {
    /// Waits up to `timeout` for the process to exit by itself; its exit status.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, asserting an exit with status 0 within `timeout`; returns the log.
    pub fn terminate_cleanly(&mut self, timeout: Duration) -> String {
        let status = self.terminate(timeout);
        let log = self.log();
        assert!(
            status.is_some_and(|s| s.success()),
            "exit status {status:?}\n{log}"
        );
        log
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A config with one flow, `europe` → `northamerica` on `clusters`: identity policy, every topic
/// mirrorcast creates at replication factor 1 (single-broker clusters), then `extra`.
pub fn one_flow_config(clusters: &Clusters, extra: &str) -> String {
    format!(
        "clusters = europe, northamerica\n\
         europe.bootstrap.servers = {}\n\
         northamerica.bootstrap.servers = {}\n\
         europe->northamerica.enabled = true\n\
         replication.policy.class = IdentityReplicationPolicy\n\
         replication.factor = 1\n\
         offset.storage.replication.factor = 1\n\
         offset-syncs.topic.replication.factor = 1\n\
         heartbeats.topic.replication.factor = 1\n\
         checkpoints.topic.replication.factor = 1\n{extra}",
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica")
    )
}

/// A broadcast config for `europe` → `northamerica`, `southamerica` on the given clusters, with
/// every topic mirrorcast creates at replication factor 1 (single-broker clusters).
pub fn broadcast_config(clusters: &Clusters, policy: &str, extra: &str) -> String {
    format!(
        "clusters = europe, northamerica, southamerica\n\
         europe.bootstrap.servers = {}\n\
         northamerica.bootstrap.servers = {}\n\
         southamerica.bootstrap.servers = {}\n\
         europe->northamerica.enabled = true\n\
         europe->southamerica.enabled = true\n\
         replication.policy.class = {policy}\n\
         replication.factor = 1\n\
         offset.storage.replication.factor = 1\n\
         offset-syncs.topic.replication.factor = 1\n\
         checkpoints.topic.replication.factor = 1\n\
         heartbeats.topic.replication.factor = 1\n\
         {extra}",
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
        clusters.bootstrap("southamerica"),
    )
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("mm2.properties");
    std::fs::write(&path, text).unwrap();
    path
}

/// `count` records spread over `partitions`, each value unique (`<run>-<n>` plus padding), with
/// current timestamps.
pub fn numbered_records(
    run: &str,
    partitions: i32,
    first: usize,
    count: usize,
) -> Vec<(i32, TestRecord)> {
    let now = now_ms();
    (first..first + count)
        .map(|n| {
            let partition = (n % partitions as usize) as i32;
            let value = format!("{run}-{n:08}-{}", "x".repeat(64)).into_bytes();
            let record = TestRecord {
                key: Some(format!("k{}", n % 1000).into_bytes()),
                value: Some(value),
                headers: vec![("n".into(), Some(n.to_be_bytes().to_vec()))],
                timestamp: now,
            };
            (partition, record)
        })
        .collect()
}

/// Checks that every source record of every partition is on the target, in source order, where
/// a record may appear again only as part of a re-copied run (at-least-once after a crash).
/// Returns the number of duplicates.
pub fn assert_complete_in_order(
    source: &BTreeMap<i32, Vec<TestRecord>>,
    target: &BTreeMap<i32, Vec<TestRecord>>,
    what: &str,
) -> usize {
    let mut duplicates = 0;
    for (partition, records) in source {
        let index: std::collections::HashMap<&TestRecord, usize> =
            records.iter().enumerate().map(|(i, r)| (r, i)).collect();
        let copied = target.get(partition).map(Vec::as_slice).unwrap_or_default();
        let mut highest: Option<usize> = None;
        let mut previous: Option<usize> = None;
        for (offset, record) in copied.iter().enumerate() {
            let i = *index.get(record).unwrap_or_else(|| {
                panic!(
                    "{what}[{partition}] offset {offset} holds a record the source does not have"
                )
            });
            let next_new = highest.map_or(0, |h| h + 1);
            if i > next_new {
                panic!("{what}[{partition}]: records {next_new}..{i} of the source are missing before target offset {offset}");
            }
            if i < next_new {
                duplicates += 1;
                // A re-copied run continues in order from where it restarted.
                if let Some(p) = previous {
                    assert!(
                        i == p + 1 || i <= p,
                        "{what}[{partition}] offset {offset}: out of order"
                    );
                }
            } else {
                highest = Some(i);
            }
            previous = Some(i);
        }
        assert_eq!(
            highest.map_or(0, |h| h + 1),
            records.len(),
            "{what}[{partition}]: {} of {} source records arrived",
            highest.map_or(0, |h| h + 1),
            records.len()
        );
    }
    duplicates
}

/// Total records over all partitions of `topic`.
pub fn total_records(bootstrap: &str, topic: &str) -> i64 {
    end_offsets(bootstrap, topic).values().sum()
}

/// The copy progress stored on `target` (`mm2-offsets.<source>.internal`, MM2's dedicated-mode
/// connector): the last copied source offset per (topic, partition); `None` while unreadable.
pub fn stored_progress(target: &str, source_alias: &str) -> Option<mirrorcast::progress::Progress> {
    let mut config = client(target);
    config.set("group.id", "test-progress-reader");
    let progress_topic = format!("mm2-offsets.{source_alias}.internal");
    mirrorcast::progress::load(
        &config,
        &progress_topic,
        mirrorcast::progress::codec::DEDICATED_MODE_CONNECTOR,
        source_alias,
    )
    .ok()
}

/// Whether the replicator's stored progress on `target` says every record of `topic` up to
/// `source_ends` is copied and acknowledged (or more, while records keep arriving).
pub fn progress_reached(
    target: &str,
    source_alias: &str,
    topic: &str,
    source_ends: &BTreeMap<i32, i64>,
) -> bool {
    let Some(progress) = stored_progress(target, source_alias) else {
        return false;
    };
    source_ends.iter().all(|(p, end)| {
        *end == 0
            || progress
                .get(&(topic.to_string(), *p))
                .is_some_and(|stored| *stored >= end - 1)
    })
}

/// A plain HTTP/1.1 GET: (status code, body), or `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Ok::<_, ()>((code, body.to_string())).ok()
}

/// Key and value bytes of every record of a topic, in order (records without either skipped).
pub fn read_raw(bootstrap: &str, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    read_all(bootstrap, topic)
        .into_values()
        .flatten()
        .filter_map(|r| Some((r.key?, r.value?)))
        .collect()
}

/// `/metrics` of a replicator started with `--http`, parsed.
pub fn scrape(port: u16) -> Option<prometheus_parse::Scrape> {
    let (code, body) = http_get(port, "/metrics")?;
    assert_eq!(code, 200);
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).ok()
}

/// The value of a sample, summed over every label set matching `labels`.
pub fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// `mirrorcast_source_records_read_total` of source `europe`, over every reader or for one.
pub fn europe_records_read(port: u16, reader: Option<&str>) -> Option<f64> {
    let scrape = scrape(port)?;
    let mut labels = vec![("source", "europe")];
    if let Some(reader) = reader {
        labels.push(("reader", reader));
    }
    Some(value(
        &scrape,
        "mirrorcast_source_records_read_total",
        &labels,
    ))
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

/// Every record of `topic` with its offset, as a consumer with `isolation.level` sees it, up to
/// the end of each partition (control markers and aborted or compacted records leave gaps).
pub fn read_with_offsets(
    bootstrap: &str,
    topic: &str,
    isolation_level: &str,
) -> BTreeMap<i32, Vec<(i64, TestRecord)>> {
    let partitions = topic_partitions(bootstrap, topic).unwrap_or(0);
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "test-offset-reader")
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation_level)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    let mut out: BTreeMap<i32, Vec<(i64, TestRecord)>> = BTreeMap::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
        out.insert(p, Vec::new());
    }
    consumer.assign(&list).unwrap();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while at_end.len() < partitions as usize {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                out.entry(message.partition())
                    .or_default()
                    .push((message.offset(), TestRecord::of(&message)));
            }
        }
    }
    out
}

/// Runs `mirrorcast translate-offsets` and returns, per partition of `topic`, the translated
/// downstream offset of `group`.
pub fn translate_offsets(
    config: &Path,
    source: &str,
    target: &str,
    group: &str,
    topic: &str,
) -> BTreeMap<i32, i64> {
    try_translate_offsets(config, source, target, group, topic).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the mirrorcast binary to its end.
pub fn mirrorcast_command(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .args(args)
        .output()
        .unwrap()
}

/// [`translate_offsets`], or the command's output when it fails (e.g. no checkpoints yet).
pub fn try_translate_offsets(
    config: &Path,
    source: &str,
    target: &str,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .arg("translate-offsets")
        .arg(config)
        .args(["--source", source, "--target", target, "--group", group])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
    }
    // Lines read `TOPIC [P] UPSTREAM -> REMOTE [P] DOWNSTREAM`.
    Ok(stdout
        .lines()
        .filter_map(|line| {
            let (from, to) = line.split_once(" -> ")?;
            let mut from = from.split_whitespace();
            (from.next()? == topic).then_some(())?;
            let partition = from.next()?.trim_matches(['[', ']']).parse().ok()?;
            let downstream = to.split_whitespace().nth(2)?.parse().ok()?;
            Some((partition, downstream))
        })
        .collect())
}

/// The offset syncs of `topic` in an `mm2-offset-syncs.*` topic, in the order written.
pub fn offset_syncs(
    bootstrap: &str,
    syncs_topic: &str,
    topic: &str,
) -> Vec<mirrorcast::offsets::codec::OffsetSync> {
    read_raw(bootstrap, syncs_topic)
        .iter()
        .filter_map(|(k, v)| mirrorcast::offsets::codec::OffsetSync::decode(k, v).ok())
        .filter(|s| s.topic == topic)
        .collect()
}

/// Writes numbered records to `topic` in chunks until stopped, so that a replicator running
/// meanwhile is always in the middle of a copy, whatever the brokers' speed.
pub struct BackgroundProducer {
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    writer: Option<std::thread::JoinHandle<usize>>,
}

impl BackgroundProducer {
    /// Starts writing records numbered from `first` over `partitions` partitions, as fast as
    /// the broker takes them.
    pub fn start(bootstrap: &str, topic: &str, partitions: i32, first: usize) -> Self {
        Self::start_paced(bootstrap, topic, partitions, first, Duration::ZERO)
    }

    /// [`BackgroundProducer::start`], with a pause after each chunk of 500 records: steady
    /// traffic a replicator can keep up with on a shared machine.
    pub fn start_paced(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        first: usize,
        pause: Duration,
    ) -> Self {
        const CHUNK: usize = 500;
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = {
            let (running, bootstrap, topic) =
                (running.clone(), bootstrap.to_string(), topic.to_string());
            std::thread::spawn(move || {
                let producer = TestProducer::new(&bootstrap);
                let mut next = first;
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    producer.send_all(&topic, &numbered_records("during", partitions, next, CHUNK));
                    next += CHUNK;
                    std::thread::sleep(pause);
                }
                next
            })
        };
        BackgroundProducer {
            running,
            writer: Some(writer),
        }
    }

    /// Stops writing; returns the number after the last record written.
    pub fn stop(mut self) -> usize {
        self.running
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.writer
            .take()
            .map(|w| w.join().expect("background producer"))
            .unwrap_or(0)
    }
}

impl Drop for BackgroundProducer {
    fn drop(&mut self) {
        self.running
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Per partition of `topic` on `target`: the records there, and the last source offset stored
/// as progress, read once the writes of a replicator that was just killed have landed.
pub fn copied_and_stored(
    target: &str,
    source_alias: &str,
    topic: &str,
) -> (BTreeMap<i32, i64>, BTreeMap<i32, i64>) {
    let mut copied = end_offsets(target, topic);
    // Produce requests the killed process had sent may still be appended: wait until stable.
    poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let again = end_offsets(target, topic);
        std::mem::replace(&mut copied, again.clone()) == again
    });
    let stored = stored_progress(target, source_alias)
        .unwrap_or_default()
        .into_iter()
        .filter(|((t, _), _)| t == topic)
        .map(|((_, p), offset)| (p, offset))
        .collect();
    (copied, stored)
}
