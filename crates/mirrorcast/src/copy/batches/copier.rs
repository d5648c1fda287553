//! The batch plane's copy of one copier thread's flows of a source: each flow on a thread of
//! its own, their fetches shared through a [`ReadCache`], every batch produced whole.
//!
//! A flow's round: hear the control plane's commands; take what it needs at each partition's
//! next offset from the cache, or fetch it (a flow that keeps up with the others reads
//! nothing itself; one that fell behind reads on its own and holds no one back); send the
//! batches, one per partition per request, and take the target's answers (acks = all,
//! idempotent); then store progress, write heartbeats and offset syncs, and publish.
//!
//! Invariant: a partition's next offset moves only past batches its target acknowledged, and a
//! failed or unanswered send leaves it where it was (with the producer sequence it had), so a
//! failure becomes a retry of the same batches, never a gap; the target's idempotence makes
//! the retry of an appended batch a duplicate it drops. A position that moves without an
//! acknowledgement (the source's log moved, the topic was made again, the group handed the
//! partition over) takes a new producer id, so no later batch is sent under a sequence the
//! target may already hold.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, ProduceRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tracing::{info, warn};

use super::cache::{Fetched, Partition, ReadCache};
use super::plan::{self, Aborted, Dropped, Outgoing, Sequences, TargetTopic, Verdict};
use crate::clock::Clock;
use crate::config::FlowConfig;
use crate::copy::report::{CopyHealth, FlowReporter, PartitionMeters, PartitionView};
use crate::copy::{CopierSetup, CopyError};
use crate::health::Health;
use crate::kafka::clients::ClientLog;
use crate::kafka::cluster::TopicId;
use crate::kafka::record_batch::{self as format, Batch, Sequence};
use crate::kafka::wire::{error_name, versions, Cluster, WireConfig, WireError};
use crate::observe::metrics::ReaderLabels;
use crate::offsets::codec::{Heartbeat, OffsetSync};
use crate::offsets::translate::SyncEmitter;
use crate::ownership::{Shard, Standing};
use crate::plan::{Command, GroupCommand, Route, ToCopier};
use crate::policy::HEARTBEATS_TOPIC;
use crate::progress::{codec, Progress};
use crate::shutdown::Shutdown;
use prometheus_client::metrics::counter::Counter;

/// Codes after which a partition's leader is asked for again.
const LEADER_CHANGED: &[i16] = &[3, 5, 6, 74, 75, 100];
/// Codes after which the idempotent producer starts over with a new id.
const PRODUCER_LOST: &[i16] = &[45, 47, 59];
/// Codes by which the target refuses a batch for good.
const REFUSED: &[i16] = &[2, 10, 18, 32, 87];
const DUPLICATE_SEQUENCE: i16 = 46;
const MESSAGE_TOO_LARGE: i16 = 10;
const RECORD_LIST_TOO_LARGE: i16 = 18;
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// How the source is read.
struct SourceSide {
    alias: String,
    cluster: Cluster,
    read_committed: bool,
    wait_ms: i32,
    partition_bytes: i32,
    fetch_bytes: i32,
    health: Health,
    /// Fetches made, to turn the partitions' order.
    round: usize,
}

/// One partition of a flow.
struct Part {
    remote_topic: String,
    topic_id: Option<TopicId>,
    target: TargetTopic,
    /// The next source offset to copy (`None`: not known yet).
    next: Option<i64>,
    last_acked: Option<i64>,
    /// The acknowledged offset stored last.
    stored: Option<i64>,
    source_end: Option<i64>,
    stopped: Option<(i64, String)>,
    sync: Option<SyncEmitter>,
    meters: PartitionMeters,
}

/// One flow on this thread: its target, its partitions and its chores.
struct FlowLane {
    /// Its place among its copier thread's flows (in the read cache).
    index: usize,
    flow: FlowConfig,
    name: String,
    shard: Shard,
    standing: Standing,
    commands: Receiver<ToCopier>,
    target: Cluster,
    producer: Option<(i64, i16)>,
    sequences: Sequences,
    parts: BTreeMap<(String, i32), Part>,
    routes: HashMap<String, Route>,
    resume: Progress,
    /// In a group: the partitions it gave this process (`None`: alone, every one of the shard).
    given: Option<HashSet<(String, i32)>>,
    /// Writes progress, heartbeats and (on the target) offset syncs.
    writer: BaseProducer<ClientLog>,
    /// Offset syncs kept on the source.
    source_writer: Option<BaseProducer<ClientLog>>,
    reporter: FlowReporter,
    failing_until: Option<Instant>,
    health: Health,
    last_progress: Instant,
    last_heartbeat: Option<Instant>,
    last_publish: Instant,
    timeout: Duration,
    /// `delivery.timeout.ms`: after this long without an acknowledgement the target counts as
    /// stalled, said once (as on the record plane).
    delivery_timeout: Duration,
    /// Since when the target has acknowledged nothing of what it was sent, which partition
    /// first, and whether that was said.
    stalled: Option<(Instant, Partition, bool)>,
    /// Partitions whose position moved without an acknowledgement since the last commands.
    jumped: Vec<Partition>,
    /// The process's clock: the stall's patience, the failing target's pause, the chores.
    clock: Clock,
    /// Whether offset syncs can be written (a failure is said once).
    sync_health: std::cell::Cell<Health>,
}

fn wire_config(config: &ClientConfig, client_id: &str) -> WireConfig {
    let timeout = config
        .get("request.timeout.ms")
        .or(config.get("socket.timeout.ms"))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(30_000);
    WireConfig {
        bootstrap: config
            .get("bootstrap.servers")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        client_id: client_id.to_string(),
        timeout: Duration::from_millis(timeout),
    }
}

fn number(config: &ClientConfig, key: &str, default: i32) -> i32 {
    config
        .get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Runs the batch plane's copy of `setups` (flows of source `source` on one copier thread):
/// each flow on a thread of its own, sharing what they fetch ([`ReadCache`]), until
/// `shutdown`; then each stores its progress.
pub fn run(source: &str, setups: Vec<CopierSetup>, shutdown: Shutdown) -> Result<(), CopyError> {
    let Some(first) = setups.first() else {
        return Ok(());
    };
    let reader = first.source_consumer.clone();
    let first_observe = first.observe.clone();
    // Every record fetched counts as read, whichever flows it serves.
    let read = first
        .observe
        .metrics
        .source_records_read
        .get_or_create_owned(&ReaderLabels {
            source: source.to_string(),
            reader: "shared".to_string(),
        });
    let mut lanes = Vec::new();
    for (index, setup) in setups.into_iter().enumerate() {
        lanes.push(FlowLane::new(setup, index)?);
    }
    // Room for a few fetches of every flow: beyond it a flow that fell behind reads itself.
    let fetch_bytes = usize::try_from(number(&reader, "fetch.max.bytes", 52_428_800)).unwrap_or(0);
    let cache = ReadCache::new(fetch_bytes.clamp(8 << 20, 64 << 20) * 2);
    info!(source, flows = lanes.len(), "copying whole record batches");
    std::thread::scope(|scope| {
        for lane in lanes {
            // What a flow reads that another already read past: it catches up on its own.
            let catch_up = first_observe
                .metrics
                .source_records_read
                .get_or_create_owned(&ReaderLabels {
                    source: source.to_string(),
                    reader: format!("catch-up {}", lane.flow.target),
                });
            let (cache, read, shutdown, reader) = (&cache, &read, &shutdown, &reader);
            let name = format!("batches {}", lane.flow.target);
            let spawned = std::thread::Builder::new()
                .name(name.chars().take(15).collect())
                .spawn_scoped(scope, move || {
                    let source_side = SourceSide::new(source, reader);
                    run_lane(lane, source_side, cache, (read, &catch_up), shutdown);
                });
            if let Err(e) = spawned {
                warn!(source, "cannot start a flow's thread: {e}");
                shutdown.trigger();
            }
        }
    });
    Ok(())
}

/// One flow's loop: hear commands, fetch (or take from the cache) what it needs, copy it,
/// chores; at the end, its progress.
fn run_lane(
    mut lane: FlowLane,
    mut source: SourceSide,
    cache: &ReadCache,
    (read, catch_up): (&Counter, &Counter),
    shutdown: &Shutdown,
) {
    while !shutdown.is_triggered() {
        lane.hear(cache);
        lane.find_starts(&mut source);
        let wanted = lane.wanted();
        if wanted.is_empty() {
            lane.chores(false);
            shutdown.sleep(Duration::from_millis(100));
            continue;
        }
        let lookup = cache.lookup(lane.index, &wanted, Duration::from_millis(500));
        let mut fetched = lookup.found;
        if !lookup.fetch.is_empty() {
            let asked: BTreeMap<Partition, i64> = lookup.fetch.iter().cloned().collect();
            let own: HashMap<Partition, Arc<Fetched>> = source
                .fetch(&asked)
                .into_iter()
                .map(|(k, v)| (k, Arc::new(v)))
                .collect();
            for (partition, chunk) in &own {
                let records: i64 = chunk
                    .batches
                    .iter()
                    .filter(|b| !b.control())
                    .map(|b| i64::from(b.record_count()))
                    .sum();
                let counter = match lookup.behind.contains(partition) {
                    true => catch_up,
                    false => read,
                };
                counter.inc_by(u64::try_from(records).unwrap_or(0));
            }
            cache.fetched(&lookup.fetch, &own);
            fetched.extend(own);
        }
        lane.copy(&fetched, cache);
        lane.chores(false);
        if fetched.is_empty() && source.health.is_failing() {
            shutdown.sleep(Duration::from_millis(500));
        }
    }
    lane.chores(true);
}

impl SourceSide {
    fn new(source: &str, reader: &ClientConfig) -> Self {
        SourceSide {
            alias: source.to_string(),
            cluster: Cluster::new(wire_config(reader, &format!("mirrorcast-{source}-batches"))),
            read_committed: reader.get("isolation.level") == Some("read_committed"),
            wait_ms: number(reader, "fetch.wait.max.ms", 20),
            partition_bytes: number(reader, "max.partition.fetch.bytes", 1_048_576).max(1),
            fetch_bytes: number(reader, "fetch.max.bytes", 52_428_800).max(1),
            health: Health::default(),
            round: 0,
        }
    }

    /// Fetches every wanted partition once, from its leader.
    fn fetch(&mut self, wanted: &BTreeMap<(String, i32), i64>) -> HashMap<(String, i32), Fetched> {
        let mut out = HashMap::new();
        let topics: Vec<String> = wanted
            .keys()
            .map(|(t, _)| t.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if wanted
            .keys()
            .any(|(t, p)| self.cluster.leader(t, *p).is_none())
        {
            if let Err(e) = self.cluster.refresh(&topics) {
                self.failed(&format!("cannot read the source's metadata: {e}"));
                return out;
            }
        }
        let mut by_leader: BTreeMap<i32, Vec<(&String, i32, i64)>> = BTreeMap::new();
        for ((topic, partition), offset) in wanted {
            if let Some(leader) = self.cluster.leader(topic, *partition) {
                by_leader
                    .entry(leader.broker)
                    .or_default()
                    .push((topic, *partition, *offset));
            }
        }
        self.round = self.round.wrapping_add(1);
        for (broker, mut partitions) in by_leader {
            let mut failed = false;
            // A different partition first each time: the broker gives a batch larger than
            // the partition's fetch size whole only to the first partition with data.
            let turn = self.round % partitions.len().max(1);
            partitions.rotate_left(turn);
            let mut topics: Vec<(&String, Vec<FetchPartition>)> = Vec::new();
            for (topic, partition, offset) in &partitions {
                let i = match topics.iter().position(|(t, _)| t == topic) {
                    Some(i) => i,
                    None => {
                        topics.push((topic, Vec::new()));
                        topics.len() - 1
                    }
                };
                topics[i].1.push(
                    FetchPartition::default()
                        .with_partition(*partition)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(*offset)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(self.partition_bytes),
                );
            }
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(self.wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(self.fetch_bytes)
                .with_isolation_level(i8::from(self.read_committed))
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(topic, partitions)| {
                            FetchTopic::default()
                                .with_topic(topic_name(topic))
                                .with_partitions(partitions)
                        })
                        .collect(),
                );
            let response = match self
                .cluster
                .call(broker, &request, "Fetch", versions::FETCH)
            {
                Ok(r) => r,
                Err(e) => {
                    self.failed(&format!("cannot fetch from the source: {e}"));
                    for (topic, partition, _) in partitions {
                        self.cluster.leader_moved(topic, partition);
                    }
                    continue;
                }
            };
            for topic in response.responses {
                let name = topic.topic.0.to_string();
                for data in topic.partitions {
                    let key = (name.clone(), data.partition_index);
                    let Some(offset) = wanted.get(&key).copied() else {
                        continue;
                    };
                    match data.error_code {
                        0 => {}
                        OFFSET_OUT_OF_RANGE => {
                            // On from the log's start, as the record plane's consumer
                            // (`auto.offset.reset = earliest`): below it, retention deleted
                            // what was not copied; past the end, the log was cut back or the
                            // topic made again, and copying its start again loses nothing.
                            let moved = self.list_offset(&name, data.partition_index, -2);
                            match moved {
                                Ok(to) => {
                                    let nothing = Fetched::nothing(offset, data.high_watermark);
                                    out.insert(
                                        key,
                                        Fetched {
                                            moved_to: Some(to),
                                            ..nothing
                                        },
                                    );
                                }
                                Err(e) => {
                                    failed = true;
                                    self.failed(&format!(
                                        "{name}[{}]: offset {offset} is out of range and the \
                                         log's bounds are not known: {e}",
                                        data.partition_index
                                    ));
                                }
                            }
                            continue;
                        }
                        code => {
                            failed = true;
                            if LEADER_CHANGED.contains(&code) {
                                self.cluster.leader_moved(&name, data.partition_index);
                            }
                            self.failed(&format!(
                                "fetching {name}[{}]: {}",
                                data.partition_index,
                                error_name(code)
                            ));
                            continue;
                        }
                    }
                    let records = data.records.unwrap_or_default();
                    let batches = match format::split(&records)
                        .and_then(|b| b.batches.iter().try_for_each(Batch::check_crc).map(|()| b))
                    {
                        Ok(b) => b.batches,
                        Err(e) => {
                            // For good: the partition stops there (the lane says so).
                            let nothing = Fetched::nothing(offset, data.high_watermark);
                            out.insert(
                                key,
                                Fetched {
                                    refused: Some(e.to_string()),
                                    ..nothing
                                },
                            );
                            continue;
                        }
                    };
                    let aborted = self.aborted_flags(&batches, &data.aborted_transactions);
                    out.insert(
                        key,
                        Fetched {
                            from: offset,
                            batches,
                            aborted,
                            high_watermark: data.high_watermark,
                            moved_to: None,
                            refused: None,
                        },
                    );
                }
            }
            if !failed {
                self.recovered();
            }
        }
        out
    }

    /// Which of a read committed fetch's batches are of aborted transactions. The fetch's
    /// list names every aborted transaction its range overlaps, so each fetch is read on its
    /// own (whichever flow fetched it, from wherever).
    fn aborted_flags(
        &self,
        batches: &[Batch],
        list: &Option<Vec<kafka_protocol::messages::fetch_response::AbortedTransaction>>,
    ) -> Vec<bool> {
        if !self.read_committed {
            return vec![false; batches.len()];
        }
        let mut tracker = Aborted::default();
        if let Some(list) = list {
            tracker.learn(
                list.iter()
                    .map(|a| (a.producer_id.0, a.first_offset))
                    .collect(),
            );
        }
        batches.iter().map(|b| tracker.drops(b)).collect()
    }

    fn failed(&mut self, message: &str) {
        if self.health.failed() {
            warn!(source = %self.alias, "{message}; retrying");
        }
    }

    fn recovered(&mut self) {
        if self.health.recovered() {
            info!(source = %self.alias, "reading the source again");
        }
    }

    /// The earliest (-2) or latest (-1) offset of a partition, from its leader.
    fn list_offset(&mut self, topic: &str, partition: i32, which: i64) -> Result<i64, WireError> {
        if self.cluster.leader(topic, partition).is_none() {
            self.cluster.refresh(&[topic.to_string()])?;
        }
        let leader = self
            .cluster
            .leader(topic, partition)
            .ok_or_else(|| WireError::Broker(format!("{topic}[{partition}] has no leader")))?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(i8::from(self.read_committed))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(which)])]);
        let response = self.cluster.call(
            leader.broker,
            &request,
            "ListOffsets",
            versions::LIST_OFFSETS,
        )?;
        let answer = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| WireError::Broker(format!("{topic}[{partition}]: no answer")))?;
        if answer.error_code != 0 {
            self.cluster.leader_moved(topic, partition);
            return Err(WireError::Broker(format!(
                "{topic}[{partition}]: {}",
                error_name(answer.error_code)
            )));
        }
        Ok(answer.offset)
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// The batches of one partition for one flow, in order.
struct Queue {
    key: (String, i32),
    batches: std::collections::VecDeque<Outgoing>,
}

impl FlowLane {
    fn new(setup: CopierSetup, index: usize) -> Result<Self, CopyError> {
        let name = setup.flow.name();
        let client_error = |client: &'static str| {
            let flow = name.clone();
            move |error| CopyError::Client {
                flow,
                client,
                error,
            }
        };
        let writer: BaseProducer<ClientLog> = setup
            .target_producer
            .create_with_context(
                ClientLog::new(format!("{name} progress")).trusting(&setup.target_producer),
            )
            .map_err(client_error("progress producer"))?;
        let source_writer = match &setup.flow.offset_syncs {
            Some(syncs) if syncs.on_source => Some(
                setup
                    .source_producer
                    .create_with_context(
                        ClientLog::new(format!("{name} offset syncs"))
                            .trusting(&setup.source_producer),
                    )
                    .map_err(client_error("offset sync producer"))?,
            ),
            _ => None,
        };
        let reporter = FlowReporter::for_thread(
            setup.observe.clone(),
            &setup.flow.source,
            &setup.flow.target,
            setup.shards,
            setup.shard.index,
        );
        // A request unanswered this long fails (and is sent again): the request timeout, or
        // the delivery timeout when shorter, so a silent target is seen as the user set it.
        let millis = |key: &str, default: u64| {
            setup
                .target_producer
                .get(key)
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .unwrap_or(default)
        };
        let timeout = Duration::from_millis(
            millis("request.timeout.ms", 30_000).min(millis("message.timeout.ms", 120_000)),
        );
        let mut wire = wire_config(
            &setup.target_producer,
            &format!("mirrorcast-{}-batches", name.replace("->", "-to-")),
        );
        wire.timeout = timeout;
        let target = Cluster::new(wire);
        if let Some(codec) = setup
            .target_producer
            .get("compression.type")
            .filter(|c| !matches!(c.trim(), "none" | ""))
        {
            // A setting without effect here is said, not ignored.
            warn!(flow = %name, "{}.producer.compression.type = {codec} has no effect with data.plane = batch: batches keep the source's compression (re-encoded ones too)", setup.flow.target);
        }
        let clock = setup.clock.clone();
        let now = clock.now();
        Ok(FlowLane {
            clock,
            index,
            given: setup.standing.is_grouped().then(HashSet::new),
            name,
            shard: setup.shard,
            standing: setup.standing,
            commands: setup.commands,
            flow: setup.flow,
            target,
            producer: None,
            sequences: Sequences::default(),
            parts: BTreeMap::new(),
            routes: HashMap::new(),
            resume: Progress::new(),
            writer,
            source_writer,
            reporter,
            failing_until: None,
            health: Health::default(),
            last_progress: now,
            last_heartbeat: None,
            last_publish: now,
            timeout,
            delivery_timeout: Duration::from_millis(millis("message.timeout.ms", 120_000)),
            stalled: None,
            jumped: Vec::new(),
            sync_health: std::cell::Cell::new(Health::default()),
        })
    }

    /// Applies every command waiting.
    /// Applies every command waiting; the partitions it no longer copies leave the cache's
    /// reckoning.
    fn hear(&mut self, cache: &ReadCache) {
        let before: Vec<Partition> = self.parts.keys().cloned().collect();
        loop {
            match self.commands.try_recv() {
                Ok(ToCopier::Topics(command)) => self.apply(command),
                Ok(ToCopier::Group(command)) => self.apply_group(command),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        for key in before {
            if !self.parts.contains_key(&key) {
                cache.forget(self.index, &key);
            }
        }
        // A partition whose position moved without an acknowledgement: what is cached may be
        // of an earlier log, and the producer's sequences of batches never acknowledged (a
        // later batch sent under one of them would be taken for a duplicate): a new producer.
        for key in std::mem::take(&mut self.jumped) {
            cache.invalidate(&key);
            self.producer = None;
        }
    }

    /// The partitions to read now, at their next offsets (none while the target fails or the
    /// lease lapsed).
    fn wanted(&self) -> Vec<(Partition, i64)> {
        let now = self.clock.now();
        if self.failing_until.is_some_and(|until| until > now) || !self.standing.may_write() {
            return Vec::new();
        }
        self.parts
            .iter()
            .filter(|(_, part)| part.stopped.is_none())
            .filter_map(|(key, part)| Some((key.clone(), part.next?)))
            .collect()
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Resume(progress) => self.resume.extend(progress),
            Command::Routes(routes) => {
                for route in routes {
                    self.routes.insert(route.source_topic.clone(), route);
                }
                self.add_parts();
            }
            Command::Forget(topics) => {
                for topic in topics {
                    self.routes.remove(&topic);
                    let keys: Vec<_> = self
                        .parts
                        .keys()
                        .filter(|(t, _)| *t == topic)
                        .cloned()
                        .collect();
                    for key in keys {
                        if let Some(part) = self.parts.remove(&key) {
                            part.meters.forget();
                        }
                        let progress_key = self.progress_key(&key.0, key.1);
                        let record: BaseRecord<'_, [u8], [u8]> =
                            BaseRecord::to(&self.flow.progress.topic).key(&progress_key[..]);
                        let _ = self.writer.send(record);
                        self.resume.remove(&key);
                    }
                }
            }
            // Exactly once is refused with the batch plane (config): nothing to fence.
            Command::Refenced { .. } => {}
        }
    }

    fn apply_group(&mut self, command: GroupCommand) {
        match command {
            GroupCommand::Acquire {
                partitions,
                progress,
            } => {
                self.resume.extend(progress);
                let given = self.given.get_or_insert_with(HashSet::new);
                for key in partitions {
                    if let Some(part) = self.parts.get_mut(&key) {
                        // Read again from the progress the group's hand-over stored.
                        part.next = None;
                        self.jumped.push(key.clone());
                    }
                    given.insert(key);
                }
                self.add_parts();
            }
            GroupCommand::Release { partitions, done } => {
                self.store_progress(Some(&partitions));
                let _ = self.writer.flush(self.timeout);
                for key in &partitions {
                    self.drop_part(key);
                }
                done.send(());
            }
            GroupCommand::Abandon(partitions) => {
                for key in &partitions {
                    self.drop_part(key);
                }
            }
            GroupCommand::Fence { units, done } => {
                for unit in units {
                    done.send((unit, Ok(())));
                }
            }
            GroupCommand::Yield(_) => {}
        }
    }

    fn drop_part(&mut self, key: &(String, i32)) {
        if let Some(given) = &mut self.given {
            given.remove(key);
        }
        if let Some(part) = self.parts.remove(key) {
            part.meters.forget();
        }
        self.resume.remove(key);
    }

    /// Starts copying the partitions of the routes that are this thread's (and the group's).
    fn add_parts(&mut self) {
        let mut remade = Vec::new();
        for route in self.routes.values() {
            for partition in 0..route.partitions {
                let key = (route.source_topic.clone(), partition);
                if !self.shard.owns(&key.0, partition)
                    || self.given.as_ref().is_some_and(|g| !g.contains(&key))
                {
                    continue;
                }
                if let Some(part) = self.parts.get_mut(&key) {
                    // The remote topic's limit, as the topic manager last learnt it.
                    if let Some(max) = route.max_message_bytes {
                        part.target.max_batch_bytes = Some(max as usize);
                    }
                    // The source topic was made again under its name: copied from its start.
                    if let (Some(known), Some(now)) = (&part.topic_id, &route.topic_id) {
                        if known != now {
                            info!(flow = %self.name, "{}[{partition}] was made again on the source; copying it from its start", key.0);
                            part.meters.recreations.inc();
                            part.topic_id = Some(now.clone());
                            part.next = None;
                            part.last_acked = None;
                            part.stored = None;
                            self.resume.remove(&key);
                            remade.push(key.clone());
                        }
                    }
                    continue;
                }
                let meters =
                    self.reporter
                        .partition(&route.source_topic, &route.remote_topic, partition);
                let codec = None;
                self.parts.insert(
                    key,
                    Part {
                        remote_topic: route.remote_topic.clone(),
                        topic_id: route.topic_id.clone(),
                        target: TargetTopic {
                            max_batch_bytes: route.max_message_bytes.map(|b| b as usize),
                            codec,
                        },
                        next: None,
                        last_acked: None,
                        stored: None,
                        source_end: None,
                        stopped: None,
                        sync: self
                            .flow
                            .offset_syncs
                            .as_ref()
                            .map(|s| SyncEmitter::new(s.lag_max)),
                        meters,
                    },
                );
            }
        }
        self.jumped.extend(remade);
    }

    /// Where each new partition starts: after its stored progress, else at the source's start
    /// (or end, with `auto.offset.reset = latest`).
    fn find_starts(&mut self, source: &mut SourceSide) {
        for ((topic, partition), part) in &mut self.parts {
            if part.next.is_some() {
                continue;
            }
            let stored = self.resume.get(&(topic.clone(), *partition));
            let of_this_topic = stored
                .filter(|s| !matches!((&s.topic_id, &part.topic_id), (Some(a), Some(b)) if a != b));
            if stored.is_some() && of_this_topic.is_none() {
                part.meters.recreations.inc();
                info!(flow = %self.name, "{topic}[{partition}]: its progress is of an earlier topic of the same name; copying from the start");
            }
            if let Some(s) = of_this_topic {
                part.next = Some(s.offset + 1);
                part.last_acked = Some(s.offset);
                part.stored = Some(s.offset);
                continue;
            }
            let which = if self.flow.start_at_end { -1 } else { -2 };
            match source.list_offset(topic, *partition, which) {
                Ok(offset) => part.next = Some(offset),
                Err(e) => source.failed(&format!(
                    "cannot find where {topic}[{partition}] starts: {e}"
                )),
            }
        }
    }

    fn progress_key(&self, topic: &str, partition: i32) -> Vec<u8> {
        codec::encode_key(
            &self.flow.progress.connector,
            &self.flow.source,
            topic,
            partition,
        )
    }

    /// The target's producer id, asked for when there is none.
    fn producer(&mut self) -> Result<(i64, i16), WireError> {
        if let Some(p) = self.producer {
            return Ok(p);
        }
        let broker = self.target.any_broker()?;
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let response = self.target.call(
            broker,
            &request,
            "InitProducerId",
            versions::INIT_PRODUCER_ID,
        )?;
        if response.error_code != 0 {
            return Err(WireError::Broker(format!(
                "no producer id: {}",
                error_name(response.error_code)
            )));
        }
        let p = (response.producer_id.0, response.producer_epoch);
        self.producer = Some(p);
        self.sequences.reset();
        Ok(p)
    }

    /// Copies what the round fetched that this flow needs.
    fn copy(&mut self, fetched: &HashMap<Partition, Arc<Fetched>>, cache: &ReadCache) {
        let now = self.clock.now();
        if self.failing_until.is_some_and(|until| until > now) || !self.standing.may_write() {
            return;
        }
        self.reporter.tick(now);
        let mut queues = Vec::new();
        let mut moved = false;
        for (key, part) in &mut self.parts {
            let (Some(next), None) = (part.next, &part.stopped) else {
                continue;
            };
            let Some(data) = fetched.get(key) else {
                continue;
            };
            if let Some(why) = &data.refused {
                stop(&self.name, &self.reporter, part, next, why);
                continue;
            }
            if let Some(to) = data.moved_to {
                source_moved(&self.name, key, part, next, to);
                // What is cached is of the log as it was; the producer's sequences were of
                // batches that may never be acknowledged now.
                cache.invalidate(key);
                moved = true;
                continue;
            }
            part.source_end = Some(data.high_watermark);
            let mut queue = Queue {
                key: key.clone(),
                batches: Default::default(),
            };
            let mut at = next;
            for (batch, aborted) in data.batches.iter().zip(&data.aborted) {
                match plan::verdict(batch, at, *aborted, part.target) {
                    Ok(Verdict::Whole) => queue.batches.push_back(plan::whole(batch)),
                    Ok(Verdict::Reencode(why)) => match plan::reencode(batch, at, part.target) {
                        Ok(out) if out.is_empty() => {
                            // Compaction removed its records from `at` on: nothing left in it.
                            if queue.batches.is_empty() {
                                part.next = Some(batch.last_offset() + 1);
                            }
                        }
                        Ok(out) => {
                            tracing::debug!(flow = %self.name, "{}[{}] at {}: re-encoded ({})", key.0, key.1, batch.base_offset(), why.label());
                            queue.batches.extend(out);
                        }
                        Err(e) => {
                            // What comes before it is copied first; the partition stops there.
                            stop(
                                &self.name,
                                &self.reporter,
                                part,
                                batch.base_offset().max(at),
                                &e.to_string(),
                            );
                            break;
                        }
                    },
                    Ok(Verdict::Drop(Dropped::Copied)) => {}
                    Ok(Verdict::Drop(_)) => {
                        // Nothing in it to copy: skipped over, as a consumer skips it.
                        if queue.batches.is_empty() && at <= batch.last_offset() {
                            part.next = Some(batch.last_offset() + 1);
                        }
                    }
                    Err(e) => {
                        stop(
                            &self.name,
                            &self.reporter,
                            part,
                            batch.base_offset(),
                            &e.to_string(),
                        );
                        break;
                    }
                }
                if let Some(ts) = (batch.max_timestamp() >= 0).then(|| batch.max_timestamp()) {
                    self.reporter.read(&part.meters, Some(ts));
                }
                at = at.max(batch.last_offset() + 1);
            }
            if !queue.batches.is_empty() {
                queues.push(queue);
            }
        }
        if moved {
            self.producer = None;
        }
        if queues.is_empty() {
            return;
        }
        let first = queues[0].key.clone();
        if let Err(e) = self.send(queues) {
            self.stalled.get_or_insert((now, first, false));
            self.fail(&format!("cannot write to the target: {e}"));
        }
    }

    /// Says once that the target has acknowledged nothing for longer than the delivery timeout.
    fn check_stalled(&mut self, now: Instant) {
        let Some((since, (topic, partition), said)) = &mut self.stalled else {
            return;
        };
        if *said || now.duration_since(*since) < self.delivery_timeout {
            return;
        }
        *said = true;
        if !self.reporter.stall_began() {
            return;
        }
        let message = format!(
            "{} has acknowledged nothing of {topic}[{partition}] for over {:?}; the batches \
             are sent again, in order, once it answers",
            self.flow.target, self.delivery_timeout,
        );
        warn!(flow = %self.name, "{message}");
        self.reporter.error(&message);
    }

    /// Sends the queues' batches, the first of each partition in one request per leader, until
    /// every queue is empty or stopped.
    fn send(&mut self, mut queues: Vec<Queue>) -> Result<(), WireError> {
        let topics: Vec<String> = self
            .routes
            .values()
            .map(|r| r.remote_topic.clone())
            .collect();
        while !queues.is_empty() {
            let (id, epoch) = self.producer()?;
            let missing = queues.iter().any(|q| {
                let remote = &self.parts[&q.key].remote_topic;
                self.target.leader(remote, q.key.1).is_none()
            });
            if missing {
                self.target.refresh(&topics)?;
            }
            let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
            for (i, q) in queues.iter().enumerate() {
                let remote = &self.parts[&q.key].remote_topic;
                match self.target.leader(remote, q.key.1) {
                    Some(leader) => by_leader.entry(leader.broker).or_default().push(i),
                    None => {
                        return Err(WireError::Broker(format!(
                            "{remote}[{}] has no leader on the target",
                            q.key.1
                        )))
                    }
                }
            }
            let mut done = vec![false; queues.len()];
            for (broker, members) in by_leader {
                let mut topics: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
                let mut sent: Vec<(usize, String, i32)> = Vec::new();
                for &i in &members {
                    let q = &queues[i];
                    let Some(batch) = q.batches.front() else {
                        continue;
                    };
                    let remote = self.parts[&q.key].remote_topic.clone();
                    let base = self.sequences.take(&remote, q.key.1, batch.records);
                    let bytes = match plan::with_sequence(batch, Some(Sequence { id, epoch, base }))
                    {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            self.sequences.set(&remote, q.key.1, base);
                            let earlier: &[(usize, String, i32)] = &sent;
                            for (j, remote, base) in earlier {
                                self.sequences.set(remote, queues[*j].key.1, *base);
                            }
                            return Err(WireError::Broker(e.to_string()));
                        }
                    };
                    topics.entry(remote.clone()).or_default().push(
                        PartitionProduceData::default()
                            .with_index(q.key.1)
                            .with_records(Some(bytes)),
                    );
                    sent.push((i, remote, base));
                }
                let request = ProduceRequest::default()
                    .with_transactional_id(None)
                    .with_acks(-1)
                    .with_timeout_ms(self.timeout.as_millis().min(i32::MAX as u128) as i32)
                    .with_topic_data(
                        topics
                            .into_iter()
                            .map(|(name, partitions)| {
                                TopicProduceData::default()
                                    .with_name(topic_name(&name))
                                    .with_partition_data(partitions)
                            })
                            .collect(),
                    );
                let response =
                    match self
                        .target
                        .call(broker, &request, "Produce", versions::PRODUCE)
                    {
                        Ok(r) => r,
                        Err(e) => {
                            // Unanswered: sent again with the same sequences (deduplicated if the
                            // target appended them).
                            for (i, remote, base) in sent {
                                self.sequences.set(&remote, queues[i].key.1, base);
                                self.target.leader_moved(&remote, queues[i].key.1);
                            }
                            return Err(e);
                        }
                    };
                let mut answers = HashMap::new();
                for topic in &response.responses {
                    for p in &topic.partition_responses {
                        answers.insert((topic.name.0.to_string(), p.index), p.clone());
                    }
                }
                // Every answer is taken (what was appended is acknowledged); the first failure
                // is returned after them, each failed partition set back to its sequence.
                let mut failure = None;
                for (i, remote, base) in sent {
                    let partition = queues[i].key.1;
                    let Some(answer) = answers.remove(&(remote.clone(), partition)) else {
                        self.sequences.set(&remote, partition, base);
                        failure.get_or_insert(WireError::Broker(format!(
                            "no answer for {remote}[{partition}]"
                        )));
                        continue;
                    };
                    match answer.error_code {
                        0 | DUPLICATE_SEQUENCE => {
                            let batch = queues[i].batches.pop_front();
                            if let Some(batch) = batch {
                                self.acknowledged(&queues[i].key, &batch, answer.base_offset);
                            }
                            done[i] = queues[i].batches.is_empty();
                        }
                        code if PRODUCER_LOST.contains(&code) => {
                            warn!(flow = %self.name, "{remote}[{partition}]: {}; starting over with a new producer id", error_name(code));
                            self.producer = None;
                            failure.get_or_insert(WireError::Broker(error_name(code)));
                        }
                        code if REFUSED.contains(&code) => {
                            self.sequences.set(&remote, partition, base);
                            done[i] = true;
                            let message = answer
                                .error_message
                                .as_ref()
                                .map(|m| m.to_string())
                                .unwrap_or_default();
                            let Some(batch) = queues[i].batches.front().cloned() else {
                                continue;
                            };
                            let Some(part) = self.parts.get_mut(&queues[i].key) else {
                                continue;
                            };
                            if matches!(code, MESSAGE_TOO_LARGE | RECORD_LIST_TOO_LARGE)
                                && batch.records > 1
                            {
                                // The target's limit is lower than known: split from now on
                                // (read again, re-encoded in halves until each fits).
                                let half = batch.bytes.len() / 2;
                                let max = part.target.max_batch_bytes.map_or(half, |m| m.min(half));
                                part.target.max_batch_bytes = Some(max);
                                info!(flow = %self.name, "{remote}[{partition}]: a batch of {} bytes is too large for the target; splitting batches to {max} bytes", batch.bytes.len());
                                continue;
                            }
                            let why = format!("{} {message}", error_name(code));
                            stop(&self.name, &self.reporter, part, batch.first_offset, &why);
                        }
                        code => {
                            self.sequences.set(&remote, partition, base);
                            if LEADER_CHANGED.contains(&code) {
                                self.target.leader_moved(&remote, partition);
                            }
                            failure.get_or_insert(WireError::Broker(format!(
                                "{remote}[{partition}]: {}",
                                error_name(code)
                            )));
                        }
                    }
                }
                if let Some(failure) = failure {
                    return Err(failure);
                }
            }
            let mut i = 0;
            queues.retain(|_| {
                let keep = !done[i];
                i += 1;
                keep
            });
        }
        if self.health.recovered() {
            info!(flow = %self.name, "writing to the target again");
        }
        if let Some((_, _, true)) = self.stalled.take() {
            if self.reporter.stall_ended() {
                info!(flow = %self.name, "the target acknowledges records again");
            }
        }
        self.failing_until = None;
        Ok(())
    }

    /// The target appended `batch` at `base_offset`.
    fn acknowledged(&mut self, key: &(String, i32), batch: &Outgoing, base_offset: i64) {
        let Some(part) = self.parts.get_mut(key) else {
            return;
        };
        part.next = Some(batch.last_offset + 1);
        part.last_acked = Some(batch.last_offset);
        let timestamp = (batch.max_timestamp >= 0).then_some(batch.max_timestamp);
        self.reporter.committed(
            &mut part.meters,
            u64::try_from(batch.records).unwrap_or(0),
            batch.bytes.len() as u64,
            [timestamp, timestamp],
        );
        // (A duplicate the target had appended before answers without its offset: no sync.)
        let (Some(emitter), true) = (&mut part.sync, base_offset >= 0) else {
            return;
        };
        let records = i64::from(batch.records);
        let last_downstream = base_offset + records - 1;
        let syncs = if batch.last_offset - batch.first_offset + 1 == records {
            emitter.copied_run(batch.first_offset, base_offset, records)
        } else {
            // Compaction left gaps inside it (re-encoded): its records' offsets are not known
            // here past the first and the last; each end says where it is.
            let mut syncs = Vec::new();
            if emitter.copied(batch.first_offset, base_offset) {
                syncs.push((batch.first_offset, base_offset));
            }
            if records > 1 && emitter.copied(batch.last_offset, last_downstream) {
                syncs.push((batch.last_offset, last_downstream));
            }
            syncs
        };
        for (upstream, downstream) in syncs {
            self.emit_sync(&key.0, key.1, upstream, downstream);
        }
    }

    fn emit_sync(&self, topic: &str, partition: i32, upstream: i64, downstream: i64) {
        let Some(config) = &self.flow.offset_syncs else {
            return;
        };
        let sync = OffsetSync {
            topic: topic.to_string(),
            partition,
            upstream_offset: upstream,
            downstream_offset: downstream,
        };
        let (key, value) = (sync.key(), sync.value());
        let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&config.topic)
            .partition(0)
            .key(&key[..])
            .payload(&value[..]);
        let sent = match &self.source_writer {
            Some(producer) => producer.send(record).map_err(|(e, _)| e),
            None => self.writer.send(record).map_err(|(e, _)| e),
        };
        // Best effort, as in MM2 (translation stays correct, less precise), but said once.
        let mut health = self.sync_health.get();
        match sent {
            Err(e) if health.failed() => {
                warn!(flow = %self.name, topic = %config.topic, "cannot write an offset sync now ({e}); skipping until it works");
            }
            Err(_) => {}
            Ok(()) => {
                health.recovered();
            }
        }
        self.sync_health.set(health);
    }

    fn fail(&mut self, message: &str) {
        if self.health.failed() {
            warn!(flow = %self.name, "{message}; retrying");
        }
        self.reporter.error(message);
        self.failing_until = Some(self.clock.now() + Duration::from_millis(500));
    }

    /// Progress, heartbeats and publishing when due (all of them, and flushed, at the end).
    fn chores(&mut self, last: bool) {
        let now = self.clock.now();
        self.check_stalled(now);
        self.writer.poll(Duration::ZERO);
        if let Some(w) = &self.source_writer {
            w.poll(Duration::ZERO);
        }
        if last || now.duration_since(self.last_progress) >= self.flow.progress.interval {
            self.last_progress = now;
            if self.standing.may_write() || last {
                self.store_progress(None);
            }
        }
        if let Some(heartbeats) = &self.flow.heartbeats {
            let due = self
                .last_heartbeat
                .is_none_or(|at| now.duration_since(at) >= heartbeats.interval);
            if due && self.shard.is_first() && self.standing.leads() && !last {
                self.last_heartbeat = Some(now);
                let heartbeat = Heartbeat {
                    source_alias: self.flow.source.clone(),
                    target_alias: self.flow.target.clone(),
                    timestamp_ms: crate::observe::status::now_ms(),
                };
                let (key, value) = (heartbeat.key(), heartbeat.value());
                let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(HEARTBEATS_TOPIC)
                    .partition(0)
                    .key(&key[..])
                    .payload(&value[..]);
                if self.writer.send(record).is_ok() {
                    self.reporter.heartbeat_delivered();
                }
            }
        }
        if last || now.duration_since(self.last_publish) >= Duration::from_secs(1) {
            self.last_publish = now;
            self.publish(last, now);
        }
        if last {
            let _ = self.writer.flush(self.timeout);
            if let Some(w) = &self.source_writer {
                let _ = w.flush(self.timeout);
            }
            info!(flow = %self.name, "stopped after {} acknowledged record(s)", self.reporter.records_copied());
        }
    }

    /// Writes the acknowledged progress of every partition (or of `only`) that moved.
    fn store_progress(&mut self, only: Option<&[(String, i32)]>) {
        // Syncs held back (MM2's delayed ones) go out with the progress they go with.
        let mut delayed = Vec::new();
        for (key, part) in &mut self.parts {
            if only.is_some_and(|o| !o.contains(key)) {
                continue;
            }
            let Some(acked) = part.last_acked else {
                continue;
            };
            if part.stored == Some(acked) {
                continue;
            }
            if let Some((upstream, downstream)) =
                part.sync.as_mut().and_then(SyncEmitter::take_delayed)
            {
                delayed.push((key.clone(), upstream, downstream));
            }
            let progress_key = codec::encode_key(
                &self.flow.progress.connector,
                &self.flow.source,
                &key.0,
                key.1,
            );
            let value = codec::encode_value(acked, part.topic_id.as_ref());
            let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.flow.progress.topic)
                .key(&progress_key[..])
                .payload(&value[..]);
            match self.writer.send(record) {
                Ok(()) => part.stored = Some(acked),
                Err((e, _)) => warn!(flow = %self.name, "cannot store progress now: {e}"),
            }
        }
        for ((topic, partition), upstream, downstream) in delayed {
            self.emit_sync(&topic, partition, upstream, downstream);
        }
    }

    fn publish(&self, stopped: bool, now: Instant) {
        let views = self
            .parts
            .iter()
            .map(|((topic, partition), part)| PartitionView {
                topic,
                remote_topic: &part.remote_topic,
                partition: *partition,
                source_end: part.source_end,
                last_acked: part.last_acked,
                read_through: part.next,
                stopped_at: part.stopped.as_ref().map(|(o, why)| (*o, why.as_str())),
                meters: &part.meters,
            });
        let needs_attention = self.parts.values().any(|p| p.stopped.is_some());
        let health = CopyHealth {
            failing: self.health.is_failing() || needs_attention,
            needs_attention,
        };
        self.reporter.publish(views, health, stopped, now);
    }
}

/// A partition's position is no longer in the source's log: it goes on from `to`, and the
/// records it never copied (if the log's start passed it) are counted and said.
fn source_moved(flow: &str, key: &(String, i32), part: &mut Part, from: i64, to: i64) {
    part.meters.resets.inc();
    if to > from {
        part.meters
            .lost_at_source
            .inc_by(u64::try_from(to - from).unwrap_or(0));
        warn!(flow, "{}[{}]: offsets {from} to {} were deleted from the source before they were copied; going on from {to}", key.0, key.1, to - 1);
    } else {
        warn!(flow, "{}[{}]: offset {from} is past the source's end (its log was cut back, or the topic made again); copying again from its start, {to}", key.0, key.1);
    }
    part.next = Some(to);
}

/// The partition stops at `offset`, refused for good (errors.tolerance = none): seen on the
/// status, the metrics and the log.
fn stop(flow: &str, reporter: &FlowReporter, part: &mut Part, offset: i64, why: &str) {
    warn!(flow, "partition stopped at offset {offset}: {why}");
    reporter.error(&format!("stopped at offset {offset}: {why}"));
    part.meters.refused.inc();
    part.meters.stopped.set(1);
    part.stopped = Some((offset, why.to_string()));
    part.next = Some(offset);
}
