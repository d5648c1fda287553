//! The copy loop of one flow: read source partitions, produce each record to the same partition
//! of its remote topic, and record progress only for what the target acknowledged.
//!
//! Runs on its own thread with librdkafka's blocking clients, so that one flow's stalled target
//! can only ever stall that flow. Per partition it keeps the last acknowledged source offset;
//! a failed delivery takes the partition away from the reader and hands it back, after a
//! backoff, at the offset after the last acknowledged one, so a failure becomes a retry, never a
//! gap. Each such rewind starts a new epoch, and delivery reports of older epochs are ignored.

pub mod ledger;
pub mod report;
pub mod source;
pub mod syncs;

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message, Offset};
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::clients::ClientLog;
use crate::config::FlowConfig;
use crate::observe::status::StatusBoard;
use crate::observe::Observability;
use crate::offsets::codec::{Heartbeat, OffsetSync};
use crate::offsets::translate::SyncEmitter;
use crate::policy::HEARTBEATS_TOPIC;
use crate::progress::{self, codec, Progress};
use crate::shutdown::Shutdown;
use crate::topics::Route;
use ledger::PartitionLedger;
use report::{FlowReporter, PartitionMeters, PartitionView};
use source::SourceReader;
use syncs::SyncWriter;

/// How long shutdown waits for the target to acknowledge what is in flight.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);
/// Records forwarded between two looks at deliveries, commands and progress.
const BATCH: usize = 1024;
/// How often offsets, lag and state are published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// What the topic manager tells the copier.
#[derive(Debug)]
pub enum Command {
    /// The remote topics exist; copy these partitions (new ones are added, known ones kept).
    Routes(Vec<Route>),
    /// These source topics are gone for good: stop copying them and drop their progress, so
    /// that a topic created again under the same name starts from its beginning.
    Forget(Vec<String>),
}

/// Everything a copier needs to start.
pub struct CopierSetup {
    pub flow: FlowConfig,
    pub source_consumer: ClientConfig,
    pub target_producer: ClientConfig,
    pub target_consumer: ClientConfig,
    /// For offset syncs kept on the source.
    pub source_producer: ClientConfig,
    pub observe: Observability,
}

/// Runs the copy of one flow until `shutdown`, then flushes and stores progress.
pub fn run(setup: CopierSetup, commands: Receiver<Command>, shutdown: Shutdown) {
    let flow_name = setup.flow.name();
    let group_id = format!("mirrorcast.{flow_name}");
    let board = setup.observe.status.clone();
    let (source, target) = (setup.flow.source.clone(), setup.flow.target.clone());
    let reader_log =
        ClientLog::new(format!("{flow_name} source")).reporting_to(board.clone(), &source, &target);
    let reader = match SourceReader::new(setup.source_consumer.clone(), &group_id, reader_log) {
        Ok(r) => r,
        Err(e) => return error!(flow = %flow_name, "cannot create the source reader: {e}"),
    };
    let producer =
        match create_producer(&setup.target_producer, &flow_name, &board, &source, &target) {
            Ok(p) => p,
            Err(e) => return error!(flow = %flow_name, "cannot create the target producer: {e}"),
        };
    let reporter = FlowReporter::new(setup.observe.clone(), &source, &target);
    let syncs = match &setup.flow.offset_syncs {
        None => None,
        Some(config) => match SyncWriter::new(config, &setup.source_producer, &flow_name) {
            Ok(writer) => Some(writer),
            Err(e) => {
                return error!(flow = %flow_name, "cannot create the offset sync producer: {e}")
            }
        },
    };
    let mut state = CopyState {
        syncs,
        last_heartbeat: None,
        reporter,
        board,
        last_publish: Instant::now(),
        flow: setup.flow,
        flow_name,
        producer,
        producer_config: setup.target_producer,
        target_consumer: setup.target_consumer,
        partitions: Vec::new(),
        index: HashMap::new(),
        progress: None,
        last_progress_write: Instant::now(),
        target_failing: false,
        source_failing: false,
        shutdown,
    };
    state.run(&reader, &commands);
}

/// Identifies a produced record in its delivery report.
#[derive(Debug, Clone, Copy)]
struct Tag {
    slot: usize,
    epoch: u32,
    /// Source offset of a copied record, or the offset a progress record stores.
    offset: i64,
    bytes: u32,
    /// The record's timestamp, for the replication latency.
    timestamp_ms: Option<i64>,
    kind: TagKind,
}

/// What a produced record is, for its delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagKind {
    /// A copied record.
    Record,
    /// A progress record (`mm2-offsets`).
    Progress,
    Heartbeat,
    /// An offset sync written to the target.
    OffsetSync,
}

impl Tag {
    fn progress(slot: usize, offset: i64) -> Self {
        Tag {
            slot,
            epoch: 0,
            offset,
            bytes: 0,
            timestamp_ms: None,
            kind: TagKind::Progress,
        }
    }
}

struct Delivery {
    tag: Tag,
    error: Option<KafkaError>,
    /// Where the record landed on the target.
    downstream_offset: Option<i64>,
}

/// Collects delivery reports; they are handled on the copier thread right after `poll`.
struct DeliveryContext {
    reports: Mutex<Vec<Delivery>>,
    log: ClientLog,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.log.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Tag>;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: Box<Tag>) {
        let error = result.as_ref().err().map(|(e, _)| e.clone());
        let downstream_offset = result.as_ref().ok().map(|m| m.offset());
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports.push(Delivery {
            tag: *tag,
            error,
            downstream_offset,
        });
    }
}

type TargetProducer = BaseProducer<DeliveryContext>;

fn create_producer(
    config: &ClientConfig,
    flow_name: &str,
    board: &Arc<StatusBoard>,
    source: &str,
    target: &str,
) -> Result<TargetProducer, KafkaError> {
    config.create_with_context(DeliveryContext {
        reports: Mutex::new(Vec::new()),
        log: ClientLog::new(format!("{flow_name} target")).reporting_to(
            board.clone(),
            source,
            target,
        ),
    })
}

struct PartitionState {
    source_topic: String,
    remote_topic: Arc<str>,
    partition: i32,
    ledger: PartitionLedger,
    /// Taken from the reader after a failure; handed back at this time.
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// Its source topic is gone ([`Command::Forget`]): nothing more to copy or store.
    retired: bool,
    meters: PartitionMeters,
    /// Decides when a copied record deserves an offset sync (when they are on).
    sync_emitter: Option<SyncEmitter>,
}

struct CopyState {
    /// Where offset syncs go, when they are on.
    syncs: Option<SyncWriter>,
    last_heartbeat: Option<Instant>,
    reporter: FlowReporter,
    board: Arc<StatusBoard>,
    last_publish: Instant,
    flow: FlowConfig,
    flow_name: String,
    producer: TargetProducer,
    producer_config: ClientConfig,
    target_consumer: ClientConfig,
    partitions: Vec<PartitionState>,
    /// Source topic → partition → slot in `partitions`.
    index: HashMap<String, HashMap<i32, usize>>,
    progress: Option<Progress>,
    last_progress_write: Instant,
    target_failing: bool,
    source_failing: bool,
    shutdown: Shutdown,
}

impl CopyState {
    fn run(&mut self, reader: &SourceReader, commands: &Receiver<Command>) {
        while !self.shutdown.is_triggered() {
            if self.partitions.is_empty() {
                // Nothing to copy yet: wait for the topic manager.
                match commands.recv_timeout(Duration::from_millis(200)) {
                    Ok(command) => self.apply(command, reader),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                // Heartbeats go on with nothing to copy, once the internal topics exist.
                if self.progress.is_some() {
                    self.heartbeat();
                    self.serve_producer_events();
                    self.handle_deliveries(reader);
                }
                continue;
            }
            while let Ok(command) = commands.try_recv() {
                self.apply(command, reader);
            }
            self.resume_due_partitions(reader);
            self.forward_batch(reader);
            self.serve_producer_events();
            self.handle_deliveries(reader);
            if self.last_progress_write.elapsed() >= self.flow.progress_interval {
                self.write_progress();
            }
            if self.last_publish.elapsed() >= PUBLISH_EVERY {
                self.publish(reader, false);
            }
            self.heartbeat();
            if let Some(syncs) = &self.syncs {
                syncs.poll();
            }
        }
        self.stop();
        self.publish(reader, true);
    }

    fn forward_batch(&mut self, reader: &SourceReader) {
        for i in 0..BATCH {
            let timeout = if i == 0 {
                Duration::from_millis(50)
            } else {
                Duration::ZERO
            };
            match reader.poll(timeout) {
                None => return,
                Some(Ok(message)) => {
                    if self.source_failing {
                        self.source_failing = false;
                        info!(flow = %self.flow_name, "reading the source works again");
                    }
                    self.forward(&message, reader);
                }
                Some(Err(e)) => {
                    // librdkafka reconnects by itself: say so once, keep going.
                    if !self.source_failing {
                        self.source_failing = true;
                        warn!(flow = %self.flow_name, "reading the source: {e}; retrying");
                    }
                    return;
                }
            }
            if self.shutdown.is_triggered() {
                return;
            }
        }
    }

    fn apply(&mut self, command: Command, reader: &SourceReader) {
        match command {
            Command::Routes(routes) => self.add_routes(routes, reader),
            Command::Forget(topics) => {
                for topic in topics {
                    self.forget(&topic, reader);
                }
            }
        }
    }

    /// Starts copying partitions not seen before, from the stored progress.
    fn add_routes(&mut self, routes: Vec<Route>, reader: &SourceReader) {
        if self.progress.is_none() {
            self.progress = self.load_progress();
        }
        let Some(progress) = &self.progress else {
            return; // shutdown while loading
        };
        let mut assigned = Vec::new();
        for route in routes {
            for partition in 0..route.partitions {
                let known = self.index.entry(route.source_topic.clone()).or_default();
                if known.contains_key(&partition) {
                    continue;
                }
                let stored = progress
                    .get(&(route.source_topic.clone(), partition))
                    .copied();
                let ledger = PartitionLedger::new(stored);
                let start = ledger.resume_offset();
                known.insert(partition, self.partitions.len());
                self.partitions.push(PartitionState {
                    source_topic: route.source_topic.clone(),
                    remote_topic: Arc::from(route.remote_topic.as_str()),
                    partition,
                    ledger,
                    retry_at: None,
                    backoff: Backoff::default(),
                    retired: false,
                    meters: self.reporter.partition(&route.source_topic, partition),
                    sync_emitter: self
                        .flow
                        .offset_syncs
                        .as_ref()
                        .map(|c| SyncEmitter::new(c.lag_max)),
                });
                assigned.push((route.source_topic.clone(), partition, start));
            }
        }
        if assigned.is_empty() {
            return;
        }
        let list: Vec<(&str, i32, Offset)> = assigned
            .iter()
            .map(|(t, p, o)| (t.as_str(), *p, *o))
            .collect();
        match reader.assign(&list) {
            Ok(()) => info!(
                flow = %self.flow_name,
                "copying {} new partition(s) of {} topic(s)",
                assigned.len(),
                self.index.len()
            ),
            Err(e) => {
                error!(flow = %self.flow_name, "cannot read new source partitions: {e}");
                for (topic, partition, _) in &assigned {
                    if let Some(slot) = self.slot(topic, *partition) {
                        self.schedule_retry(slot);
                    }
                }
            }
        }
    }

    /// Reads the stored progress, retrying until it succeeds or shutdown.
    fn load_progress(&self) -> Option<Progress> {
        let topic = self.flow.progress_topic();
        let mut backoff = Backoff::default();
        let mut failing = false;
        loop {
            match progress::load(
                &self.target_consumer,
                &topic,
                &self.flow.progress_connector,
                &self.flow.source,
            ) {
                Ok(progress) => {
                    info!(
                        flow = %self.flow_name,
                        "resuming {} partition(s) from {topic}",
                        progress.len()
                    );
                    return Some(progress);
                }
                Err(e) => {
                    if !failing {
                        warn!(flow = %self.flow_name, "cannot read progress from {topic} yet: {e}; retrying");
                        failing = true;
                    }
                    if self.shutdown.sleep(backoff.next_delay()) {
                        return None;
                    }
                }
            }
        }
    }

    fn forget(&mut self, topic: &str, reader: &SourceReader) {
        let Some(partitions) = self.index.remove(topic) else {
            return;
        };
        if let Some(progress) = &mut self.progress {
            progress.retain(|(t, _), _| t != topic);
        }
        let progress_topic = self.flow.progress_topic();
        for (partition, slot) in partitions {
            let state = &mut self.partitions[slot];
            state.retired = true;
            if state.retry_at.is_none() {
                let _ = reader.unassign(topic, partition);
            }
            let key = codec::encode_key(
                &self.flow.progress_connector,
                &self.flow.source,
                topic,
                partition,
            );
            let tombstone: BaseRecord<'_, [u8], [u8], Box<Tag>> =
                BaseRecord::with_opaque_to(&progress_topic, Box::new(Tag::progress(slot, -1)))
                    .key(&key[..]);
            if let Err((e, _)) = self.producer.send(tombstone) {
                warn!(flow = %self.flow_name, "cannot drop the progress of {topic}[{partition}]: {e}");
            }
        }
        info!(flow = %self.flow_name, "stopped copying {topic}, which is gone from the source");
    }

    fn slot(&self, topic: &str, partition: i32) -> Option<usize> {
        self.index.get(topic)?.get(&partition).copied()
    }

    fn forward(&mut self, message: &BorrowedMessage<'_>, reader: &SourceReader) {
        let Some(slot) = self.slot(message.topic(), message.partition()) else {
            return;
        };
        let (topic, epoch) = {
            let state = &self.partitions[slot];
            if state.retry_at.is_some() {
                return; // fetched before the partition was taken away
            }
            (state.remote_topic.clone(), state.ledger.epoch())
        };
        let bytes = message.payload_len() + message.key().map_or(0, <[u8]>::len);
        let timestamp_ms = message.timestamp().to_millis();
        self.reporter.read(timestamp_ms);
        let tag = Tag {
            slot,
            epoch,
            offset: message.offset(),
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
            timestamp_ms,
            kind: TagKind::Record,
        };
        let mut record: BaseRecord<'_, [u8], [u8], Box<Tag>> =
            BaseRecord::with_opaque_to(&topic, Box::new(tag)).partition(message.partition());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        if let Some(timestamp) = message.timestamp().to_millis() {
            record = record.timestamp(timestamp);
        }
        if let Some(headers) = message.headers() {
            record = record.headers(copy_headers(headers));
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Backpressure: the target is slower than the source. Wait for it here
                    // rather than buffer; the reader's bounded read-ahead stops fetching.
                    record = back;
                    self.producer.poll(Duration::from_millis(20));
                    self.handle_deliveries(reader);
                    // A slow target must not widen the window re-copied after a crash.
                    if self.last_progress_write.elapsed() >= self.flow.progress_interval {
                        self.write_progress();
                    }
                    if self.partitions[slot].ledger.epoch() != epoch {
                        return; // rewound meanwhile: the record will be read again
                    }
                    if self.shutdown.is_triggered() {
                        // Dropping this record leaves a gap unless later ones are dropped too.
                        self.rewind(slot, reader);
                        return;
                    }
                }
                Err((e, _)) => {
                    self.report_failure(slot, &e);
                    self.rewind(slot, reader);
                    return;
                }
            }
        }
    }

    /// rdkafka's `poll(ZERO)` serves one event (one produce response's reports); serve all
    /// that are ready so acknowledgements never fall behind the copy.
    fn serve_producer_events(&mut self) {
        for _ in 0..10_000 {
            let before = self.reports_waiting();
            self.producer.poll(Duration::ZERO);
            if self.reports_waiting() == before {
                return;
            }
        }
    }

    fn reports_waiting(&self) -> usize {
        let reports = self.producer.context().reports.lock();
        reports.unwrap_or_else(|e| e.into_inner()).len()
    }

    fn take_reports(&self) -> Vec<Delivery> {
        let reports = self.producer.context().reports.lock();
        std::mem::take(&mut *reports.unwrap_or_else(|e| e.into_inner()))
    }

    fn handle_deliveries(&mut self, reader: &SourceReader) {
        let reports = self.take_reports();
        for Delivery {
            tag,
            error,
            downstream_offset,
        } in reports
        {
            match tag.kind {
                TagKind::Heartbeat => {
                    if error.is_none() {
                        self.reporter.heartbeat_delivered();
                    }
                    continue;
                }
                TagKind::OffsetSync => continue,
                TagKind::Record | TagKind::Progress => {}
            }
            let Some(state) = self.partitions.get_mut(tag.slot) else {
                continue;
            };
            if tag.kind == TagKind::Progress {
                if let Some(e) = error {
                    warn!(flow = %self.flow_name, "storing progress failed: {e}; will store it again");
                    state.ledger.progress_failed(tag.offset);
                }
                continue;
            }
            match error {
                None => {
                    if !state.ledger.acknowledged(tag.epoch, tag.offset) {
                        continue;
                    }
                    state.backoff.reset();
                    self.reporter
                        .acknowledged(&mut state.meters, tag.bytes, tag.timestamp_ms);
                    if let (Some(downstream), Some(emitter)) =
                        (downstream_offset, state.sync_emitter.as_mut())
                    {
                        if emitter.copied(tag.offset, downstream) {
                            let sync = OffsetSync {
                                topic: state.source_topic.clone(),
                                partition: state.partition,
                                upstream_offset: tag.offset,
                                downstream_offset: downstream,
                            };
                            if let Some(syncs) = &mut self.syncs {
                                syncs.emit(&sync, &self.producer);
                            }
                        }
                    }
                    if self.target_failing {
                        self.target_failing = false;
                        info!(flow = %self.flow_name, "the target acknowledges records again");
                    }
                }
                Some(e) => {
                    if state.ledger.delivery_failed(tag.epoch) {
                        self.report_failure(tag.slot, &e);
                        self.take_away(tag.slot, reader);
                    }
                }
            }
        }
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            self.replace_producer(code, &reason, reader);
        }
    }

    /// Says once, when the target starts failing, that records will be copied again.
    fn report_failure(&mut self, slot: usize, error: &KafkaError) {
        self.reporter
            .error(&format!("delivery to {} failed: {error}", self.flow.target));
        if !self.target_failing {
            self.target_failing = true;
            let state = &self.partitions[slot];
            warn!(
                flow = %self.flow_name,
                "delivery to the target failed ({error}); {}[{}] and any other failing partition \
                 will be copied again from the last acknowledged offset",
                state.remote_topic, state.partition
            );
        }
    }

    /// Starts a new epoch for the partition and takes it away from the reader.
    fn rewind(&mut self, slot: usize, reader: &SourceReader) {
        self.partitions[slot].ledger.rewind();
        self.take_away(slot, reader);
    }

    /// Stops reading the partition and schedules it to be read again, after a backoff, from
    /// right after its last acknowledged record.
    fn take_away(&mut self, slot: usize, reader: &SourceReader) {
        let state = &mut self.partitions[slot];
        if state.retry_at.is_none() {
            if let Err(e) = reader.unassign(&state.source_topic, state.partition) {
                warn!(flow = %self.flow_name, "pausing {}[{}]: {e}", state.source_topic, state.partition);
            }
        }
        self.schedule_retry(slot);
    }

    fn schedule_retry(&mut self, slot: usize) {
        let state = &mut self.partitions[slot];
        state.retry_at = Some(Instant::now() + state.backoff.next_delay());
    }

    fn resume_due_partitions(&mut self, reader: &SourceReader) {
        let now = Instant::now();
        for state in self.partitions.iter_mut().filter(|s| !s.retired) {
            if state.retry_at.is_some_and(|at| at <= now) {
                let offset = state.ledger.resume_offset();
                match reader.assign(&[(&state.source_topic, state.partition, offset)]) {
                    Ok(()) => state.retry_at = None,
                    Err(e) => {
                        warn!(flow = %self.flow_name, "resuming {}[{}]: {e}", state.source_topic, state.partition);
                        state.retry_at = Some(now + state.backoff.next_delay());
                    }
                }
            }
        }
    }

    /// An idempotent producer that hit a fatal error (e.g. the target lost its producer state)
    /// cannot be used again: start a new one and copy everything unacknowledged again.
    fn replace_producer(&mut self, code: RDKafkaErrorCode, reason: &str, reader: &SourceReader) {
        error!(flow = %self.flow_name, "the target producer failed ({code}: {reason}); starting a new one");
        match create_producer(
            &self.producer_config,
            &self.flow_name,
            &self.board,
            &self.flow.source,
            &self.flow.target,
        ) {
            Ok(producer) => {
                // Dropping the old producer purges what it still held; those reports are stale
                // once every partition is rewound below.
                drop(std::mem::replace(&mut self.producer, producer));
            }
            Err(e) => {
                error!(flow = %self.flow_name, "cannot create a new target producer: {e}");
                return;
            }
        }
        for slot in 0..self.partitions.len() {
            self.rewind(slot, reader);
        }
    }

    /// Stores the last acknowledged offset of every partition that moved since the last write.
    fn write_progress(&mut self) {
        self.last_progress_write = Instant::now();
        let topic = self.flow.progress_topic();
        for (slot, state) in self.partitions.iter_mut().enumerate() {
            if state.retired {
                continue;
            }
            let Some(acked) = state.ledger.progress_to_store() else {
                continue;
            };
            let key = codec::encode_key(
                &self.flow.progress_connector,
                &self.flow.source,
                &state.source_topic,
                state.partition,
            );
            let value = codec::encode_value(acked);
            let tag = Tag::progress(slot, acked);
            let record = BaseRecord::with_opaque_to(&topic, Box::new(tag))
                .key(&key[..])
                .payload(&value[..]);
            match self.producer.send(record) {
                Ok(()) => state.ledger.progress_sent(acked),
                // Backpressure: the rest waits for the next interval.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => return,
                Err((e, _)) => {
                    warn!(flow = %self.flow_name, "cannot store progress now: {e}");
                    return;
                }
            }
        }
    }

    /// Shutdown: wait (bounded) for what is in flight, then store the final progress.
    fn stop(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        let _ = self.producer.flush(SHUTDOWN_FLUSH);
        self.handle_deliveries_after_stop();
        self.write_progress();
        let _ = self.producer.flush(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
        );
        self.handle_deliveries_after_stop();
        if let Some(syncs) = &self.syncs {
            syncs.flush(Duration::from_secs(1));
        }
        let acked = self.reporter.records_copied();
        info!(flow = %self.flow_name, "stopped after {acked} acknowledged record(s)");
    }

    /// Delivery reports at shutdown: acknowledgements still count, failures need no rewind.
    fn handle_deliveries_after_stop(&mut self) {
        let reports = self.take_reports();
        for Delivery { tag, error, .. } in reports {
            if tag.kind != TagKind::Record {
                continue;
            }
            let Some(state) = self.partitions.get_mut(tag.slot) else {
                continue;
            };
            match error {
                None => {
                    if state.ledger.acknowledged(tag.epoch, tag.offset) {
                        self.reporter
                            .acknowledged(&mut state.meters, tag.bytes, tag.timestamp_ms);
                    }
                }
                // Nothing after a failed record may count as acknowledged.
                Some(_) => {
                    state.ledger.delivery_failed(tag.epoch);
                }
            }
        }
    }
}

impl CopyState {
    /// Writes MM2's heartbeat to the target's `heartbeats` topic when one is due.
    fn heartbeat(&mut self) {
        let Some(interval) = self.flow.heartbeat_interval else {
            return;
        };
        if self
            .last_heartbeat
            .is_some_and(|at| at.elapsed() < interval)
        {
            return;
        }
        self.last_heartbeat = Some(Instant::now());
        let heartbeat = Heartbeat {
            source_alias: self.flow.source.clone(),
            target_alias: self.flow.target.clone(),
            timestamp_ms: crate::observe::status::now_ms(),
        };
        let (key, value) = (heartbeat.key(), heartbeat.value());
        let tag = Tag {
            slot: usize::MAX,
            epoch: 0,
            offset: heartbeat.timestamp_ms,
            bytes: 0,
            timestamp_ms: None,
            kind: TagKind::Heartbeat,
        };
        let record = BaseRecord::with_opaque_to(HEARTBEATS_TOPIC, Box::new(tag))
            .partition(0)
            .key(&key[..])
            .payload(&value[..]);
        // A full queue or a target that is down: the next one will do.
        let _ = self.producer.send(record);
    }

    /// Offsets, lag and state of every partition, for metrics and `/api/status`.
    fn publish(&mut self, reader: &SourceReader, stopped: bool) {
        self.last_publish = Instant::now();
        let views = self
            .partitions
            .iter()
            .filter(|s| !s.retired)
            .map(|s| PartitionView {
                topic: &s.source_topic,
                remote_topic: &s.remote_topic,
                partition: s.partition,
                source_end: reader.high_watermark(&s.source_topic, s.partition),
                last_acked: s.ledger.acked(),
                meters: &s.meters,
            });
        self.reporter
            .publish(views, self.target_failing || self.source_failing, stopped);
    }
}

/// The source record's headers, in order, duplicates and null values included.
fn copy_headers(headers: &rdkafka::message::BorrowedHeaders) -> OwnedHeaders {
    let mut copy = OwnedHeaders::new_with_capacity(headers.count());
    for header in headers.iter() {
        copy = copy.insert(Header {
            key: header.key,
            value: header.value,
        });
    }
    copy
}
