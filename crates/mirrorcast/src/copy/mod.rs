//! The copy loop of the flows of one source: read source partitions once, produce each record to
//! the same partition of its remote topic on every target, and record progress only for what
//! each target acknowledged.
//!
//! Runs on its own thread with librdkafka's blocking clients. Each flow is a lane with its own
//! producer and per-partition bookkeeping; the lanes share one reader of the source
//! ([`fanout`] decides who reads where), so targets that keep up cost one read between them. A
//! lane whose target is slow leaves the shared reader after a short wait and catches up on a
//! reader of its own, so it never holds the others back. Per partition a lane keeps the last
//! acknowledged source offset; a failed delivery takes the partition away and hands it back,
//! after a backoff, at the offset after the last acknowledged one, so a failure becomes a
//! retry, never a gap. Each such rewind starts a new epoch, and delivery reports of older
//! epochs are ignored.

pub mod fanout;
pub mod ledger;
pub mod report;
pub mod source;
pub mod syncs;

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message, Offset};
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::clients::ClientLog;
use crate::config::FlowConfig;
use crate::observe::metrics::ReaderLabels;
use crate::observe::status::StatusBoard;
use crate::observe::Observability;
use crate::offsets::codec::{Heartbeat, OffsetSync};
use crate::offsets::translate::SyncEmitter;
use crate::policy::HEARTBEATS_TOPIC;
use crate::progress::{codec, Progress};
use crate::shutdown::Shutdown;
use crate::topics::Route;
use fanout::{Join, SharedCursor};
use ledger::PartitionLedger;
use report::{FlowReporter, PartitionMeters, PartitionView};
use source::SourceReader;
use syncs::SyncWriter;

/// How long shutdown waits for the target to acknowledge what is in flight.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);
/// How long the copy thread waits for a target's metadata after new partitions appear.
const METADATA_REFRESH_TIMEOUT: Duration = Duration::from_secs(2);
/// Records forwarded between two looks at deliveries, commands and progress.
const BATCH: usize = 1024;
/// How often offsets, lag and state are published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How long, within [`WAIT_WINDOW`], a lane whose target queue is full may make the group wait
/// while another lane keeps up, before it leaves to catch up on its own reader. Counting the
/// waits (not one wait) catches a target that is slow, not only one that stalls.
const FANOUT_PATIENCE: Duration = Duration::from_millis(500);
const WAIT_WINDOW: Duration = Duration::from_secs(1);

/// What the topic manager tells the copier.
#[derive(Debug)]
pub enum Command {
    /// The stored progress, read from the target before the first routes.
    Resume(Progress),
    /// The remote topics exist; copy these partitions (new ones are added, known ones kept).
    Routes(Vec<Route>),
    /// These source topics are gone for good: stop copying them and drop their progress, so
    /// that a topic created again under the same name starts from its beginning.
    Forget(Vec<String>),
}

/// Everything one flow's lane needs to start.
pub struct CopierSetup {
    pub flow: FlowConfig,
    /// For the lane's own reader, when it catches up.
    pub source_consumer: ClientConfig,
    pub target_producer: ClientConfig,
    /// For offset syncs kept on the source.
    pub source_producer: ClientConfig,
    pub observe: Observability,
    pub commands: Receiver<Command>,
}

/// Runs the copy of every flow of source `source` until `shutdown`, then flushes and stores
/// progress. `reader_config` is the source consumer the lanes share.
pub fn run(
    source: &str,
    reader_config: ClientConfig,
    setups: Vec<CopierSetup>,
    observe: &Observability,
    shutdown: Shutdown,
) {
    let group_id = format!("mirrorcast.{source}");
    let mut reader_log = ClientLog::new(format!("{source} reader"));
    for setup in &setups {
        reader_log = reader_log.reporting_to(
            observe.status.clone(),
            &setup.flow.source,
            &setup.flow.target,
        );
    }
    let shared_reader = match SourceReader::new(reader_config, &group_id, reader_log) {
        Ok(r) => r,
        Err(e) => return error!(source, "cannot create the source reader: {e}"),
    };
    let mut lanes = Vec::new();
    let mut own_readers = Vec::new();
    for setup in setups {
        let index = lanes.len();
        match Lane::new(setup, index, shutdown.clone()) {
            Ok((lane, reader)) => {
                lanes.push(lane);
                own_readers.push(reader);
            }
            Err(e) => error!(source, "{e}"),
        }
    }
    let readers = Readers {
        shared: shared_reader,
        own: own_readers,
    };
    let metrics = &observe.metrics;
    let mut group = Group {
        read_shared: metrics
            .source_records_read
            .get_or_create_owned(&ReaderLabels {
                source: source.to_string(),
                reader: "shared".to_string(),
            }),
        source: source.to_string(),
        lanes,
        cursors: Cursors::default(),
        source_failing: false,
        shutdown,
        scratch: Vec::new(),
    };
    group.run(&readers);
}

/// The librdkafka readers of a group: used through `&` (assign, unassign and poll take `&`), so
/// a borrowed record can be forwarded while the bookkeeping changes.
struct Readers {
    shared: SourceReader,
    /// Each lane's own reader, by lane index, for catching up.
    own: Vec<SourceReader>,
}

impl Readers {
    fn high_watermark(&self, lane: usize, topic: &str, partition: i32) -> Option<i64> {
        let shared = self.shared.high_watermark(topic, partition);
        let own = self.own[lane].high_watermark(topic, partition);
        shared.max(own)
    }
}

/// Where the shared reader stands on every source partition any lane copies.
#[derive(Default)]
struct Cursors {
    list: Vec<(String, i32, SharedCursor)>,
    /// Source topic → partition → index in `list`.
    index: HashMap<String, HashMap<i32, usize>>,
}

impl Cursors {
    fn find(&self, topic: &str, partition: i32) -> Option<usize> {
        self.index.get(topic)?.get(&partition).copied()
    }

    fn find_or_add(&mut self, topic: &str, partition: i32) -> usize {
        if let Some(found) = self.find(topic, partition) {
            return found;
        }
        let index = self.list.len();
        self.list
            .push((topic.to_string(), partition, SharedCursor::default()));
        self.index
            .entry(topic.to_string())
            .or_default()
            .insert(partition, index);
        index
    }

    /// Lane `lane` (slot `slot`) wants to read partition `cursor` from `from` through the
    /// shared reader. Returns whether it now does (false: it must catch up on its own).
    fn join(
        &mut self,
        reader: &SourceReader,
        cursor: usize,
        lane: usize,
        slot: usize,
        from: Offset,
    ) -> Result<bool, KafkaError> {
        let (topic, partition, shared) = &mut self.list[cursor];
        match shared.join(lane, from) {
            Join::CatchUp => return Ok(false),
            Join::Share => {}
            Join::Assign(offset) => {
                if shared.is_assigned() {
                    reader.unassign(topic, *partition)?;
                    shared.unassigned();
                }
                reader.assign(&[(topic.as_str(), *partition, offset)])?;
                shared.assigned(offset);
            }
        }
        shared.add(lane, slot);
        Ok(true)
    }

    /// Lane `lane` stops reading partition `cursor` through the shared reader.
    fn leave(&mut self, reader: &SourceReader, cursor: usize, lane: usize) {
        let (topic, partition, shared) = &mut self.list[cursor];
        if shared.remove(lane) {
            if let Err(e) = reader.unassign(topic, *partition) {
                warn!("pausing {topic}[{partition}]: {e}");
            }
            shared.unassigned();
        }
    }
}

/// The flows of one source, and their shared reader's bookkeeping.
struct Group {
    source: String,
    lanes: Vec<Lane>,
    cursors: Cursors,
    source_failing: bool,
    shutdown: Shutdown,
    /// Records handed out by the shared reader.
    read_shared: Counter,
    /// Reused per record: the lanes a shared record goes to.
    scratch: Vec<(usize, usize)>,
}

impl Group {
    fn run(&mut self, readers: &Readers) {
        while !self.shutdown.is_triggered() {
            for lane in &mut self.lanes {
                lane.apply_commands(readers, &mut self.cursors);
            }
            if self.lanes.iter().all(|l| l.partitions.is_empty()) {
                // Nothing to copy yet. Heartbeats go on, once the internal topics exist.
                for lane in &mut self.lanes {
                    lane.housekeeping(readers, &mut self.cursors);
                }
                if self.lanes.iter().all(|l| l.disconnected) {
                    break;
                }
                self.shutdown.sleep(Duration::from_millis(100));
                continue;
            }
            for lane in &mut self.lanes {
                lane.resume_due_partitions(readers, &mut self.cursors);
            }
            let catching_up = self.lanes.iter().any(Lane::can_catch_up);
            // With lanes catching up, the shared reader must not make them wait.
            let wait = if catching_up {
                Duration::ZERO
            } else {
                Duration::from_millis(50)
            };
            let shared = self.forward_shared_batch(readers, wait);
            let mut caught_up = 0;
            for index in 0..self.lanes.len() {
                caught_up += self.forward_catch_up_batch(index, readers);
            }
            for lane in &mut self.lanes {
                lane.housekeeping(readers, &mut self.cursors);
            }
            if catching_up && shared + caught_up == 0 {
                // Every reader is empty for now: do not spin.
                self.shutdown.sleep(Duration::from_millis(5));
            }
        }
        for lane in &mut self.lanes {
            lane.stop();
            lane.publish(readers, true);
        }
    }

    /// Forwards up to a batch of records from the shared reader; returns how many it read.
    fn forward_shared_batch(&mut self, readers: &Readers, wait: Duration) -> usize {
        for lane in &mut self.lanes {
            lane.reporter.tick();
        }
        for read in 0..BATCH {
            let timeout = if read == 0 { wait } else { Duration::ZERO };
            match readers.shared.poll(timeout) {
                None => return read,
                Some(Ok(message)) => {
                    if self.source_failing {
                        self.source_failing = false;
                        info!(source = %self.source, "reading the source works again");
                    }
                    self.read_shared.inc();
                    self.forward_shared(&message, readers);
                }
                Some(Err(e)) => {
                    // librdkafka reconnects by itself: say so once, keep going.
                    if !self.source_failing {
                        self.source_failing = true;
                        warn!(source = %self.source, "reading the source: {e}; retrying");
                    }
                    for lane in &mut self.lanes {
                        lane.source_failing = true;
                    }
                    return read;
                }
            }
            if self.shutdown.is_triggered() {
                return read + 1;
            }
        }
        BATCH
    }

    /// Sends a record of the shared reader to every lane reading its partition there.
    fn forward_shared(&mut self, message: &BorrowedMessage<'_>, readers: &Readers) {
        let Some(cursor) = self.cursors.find(message.topic(), message.partition()) else {
            return;
        };
        let shared = &mut self.cursors.list[cursor].2;
        shared.handed(message.offset());
        let mut lanes = std::mem::take(&mut self.scratch);
        lanes.clear();
        lanes.extend_from_slice(shared.sharing());
        // Any lane of the group counts: one still starting must not wait for a slow one.
        let keeping_up = self.lanes.iter().filter(|l| !l.full).count();
        for &(index, slot) in &lanes {
            let lane = &mut self.lanes[index];
            lane.source_failing = false;
            if lane.partitions[slot].mode != Mode::Shared {
                continue; // left during this record (a failure while another lane waited)
            }
            let others_keep_up = keeping_up > usize::from(!lane.full);
            let outcome = lane.send(slot, message, others_keep_up, readers, &mut self.cursors);
            if outcome == Sent::Detach {
                lane.leave_shared_reader(readers, &mut self.cursors);
            }
        }
        self.scratch = lanes;
    }

    /// Forwards up to a batch from lane `index`'s own reader while its target has room;
    /// returns how many records it read.
    fn forward_catch_up_batch(&mut self, index: usize, readers: &Readers) -> usize {
        let lane = &mut self.lanes[index];
        if !lane.can_catch_up() {
            return 0;
        }
        let reader = &readers.own[index];
        lane.reporter.tick();
        for read in 0..BATCH {
            if read % 64 == 0 && !lane.has_room() {
                return read;
            }
            match reader.poll(Duration::ZERO) {
                None => return read,
                Some(Ok(message)) => {
                    lane.read_own.inc();
                    lane.forward_own(&message, readers, &mut self.cursors);
                }
                Some(Err(e)) => {
                    if !lane.source_failing {
                        lane.source_failing = true;
                        warn!(flow = %lane.flow_name, "reading the source: {e}; retrying");
                    }
                    return read;
                }
            }
            if lane.catching_up == 0 {
                return read + 1;
            }
        }
        BATCH
    }
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

/// Which reader a lane takes a partition's records from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The group's shared reader.
    Shared,
    /// The lane's own reader, until it reaches the shared position.
    CatchingUp,
    /// Taken away after a failure; read again from the last acknowledged offset at this time.
    Waiting(Instant),
}

struct PartitionState {
    source_topic: String,
    remote_topic: Arc<str>,
    partition: i32,
    ledger: PartitionLedger,
    mode: Mode,
    /// The next source offset to send: records before it were sent already in this epoch.
    next: Offset,
    /// The partition's place in the group's [`Cursors`].
    cursor: usize,
    backoff: Backoff,
    /// Its source topic is gone ([`Command::Forget`]): nothing more to copy or store.
    retired: bool,
    meters: PartitionMeters,
    /// Decides when a copied record deserves an offset sync (when they are on).
    sync_emitter: Option<SyncEmitter>,
}

/// What became of a record handed to a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Sent, skipped (sent before), or given up after a rewind that will read it again.
    Done,
    /// The lane made the group wait too long while another lane keeps up: leave the shared
    /// reader.
    Detach,
    /// The target's queue is full (catching up: read this record again later).
    Full,
}

/// One flow: its target producer and the bookkeeping of every partition it copies.
struct Lane {
    index: usize,
    commands: Receiver<Command>,
    /// The topic manager is gone (shutdown).
    disconnected: bool,
    /// Partitions read on the lane's own reader.
    catching_up: usize,
    /// The target's queue was full at the last send.
    full: bool,
    /// How long the lane made the group wait for its target since `wait_window` began.
    waited: Duration,
    wait_window: Instant,
    /// Bytes of copied records sent and not yet reported, against the producer's limit.
    outstanding_bytes: u64,
    queue_limit_bytes: u64,
    queue_limit_messages: u64,
    read_own: Counter,
    source_failing: bool,
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
    partitions: Vec<PartitionState>,
    /// Source topic → partition → slot in `partitions`.
    index_of: HashMap<String, HashMap<i32, usize>>,
    progress: Option<Progress>,
    /// The delivery report buffer handed back and forth with the producer's context.
    spare_reports: Vec<Delivery>,
    /// Routes that came before the progress (never, with the topic manager's order).
    pending_routes: Vec<Route>,
    last_progress_write: Instant,
    target_failing: bool,
    shutdown: Shutdown,
}

impl Lane {
    fn new(
        setup: CopierSetup,
        index: usize,
        shutdown: Shutdown,
    ) -> Result<(Lane, SourceReader), String> {
        let flow_name = setup.flow.name();
        let board = setup.observe.status.clone();
        let (source, target) = (setup.flow.source.clone(), setup.flow.target.clone());
        let reader_log = ClientLog::new(format!("{flow_name} source")).reporting_to(
            board.clone(),
            &source,
            &target,
        );
        let reader = SourceReader::new(
            setup.source_consumer,
            &format!("mirrorcast.{flow_name}"),
            reader_log,
        )
        .map_err(|e| format!("{flow_name}: cannot create the source reader: {e}"))?;
        let producer =
            create_producer(&setup.target_producer, &flow_name, &board, &source, &target)
                .map_err(|e| format!("{flow_name}: cannot create the target producer: {e}"))?;
        let syncs = match &setup.flow.offset_syncs {
            None => None,
            Some(config) => Some(
                SyncWriter::new(config, &setup.source_producer, &flow_name).map_err(|e| {
                    format!("{flow_name}: cannot create the offset sync producer: {e}")
                })?,
            ),
        };
        let limit = |key: &str, default: u64| {
            setup
                .target_producer
                .get(key)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        let lane = Lane {
            index,
            commands: setup.commands,
            disconnected: false,
            catching_up: 0,
            full: false,
            waited: Duration::ZERO,
            wait_window: Instant::now(),
            outstanding_bytes: 0,
            queue_limit_bytes: limit("queue.buffering.max.kbytes", 1_048_576) * 1024,
            queue_limit_messages: limit("queue.buffering.max.messages", 100_000),
            read_own: setup
                .observe
                .metrics
                .source_records_read
                .get_or_create_owned(&ReaderLabels {
                    source: source.clone(),
                    reader: format!("catch-up {target}"),
                }),
            source_failing: false,
            syncs,
            last_heartbeat: None,
            reporter: FlowReporter::new(setup.observe.clone(), &source, &target),
            board,
            last_publish: Instant::now(),
            flow: setup.flow,
            flow_name,
            producer,
            producer_config: setup.target_producer,
            partitions: Vec::new(),
            index_of: HashMap::new(),
            progress: None,
            spare_reports: Vec::new(),
            pending_routes: Vec::new(),
            last_progress_write: Instant::now(),
            target_failing: false,
            shutdown,
        };
        Ok((lane, reader))
    }

    fn can_catch_up(&self) -> bool {
        self.catching_up > 0 && self.has_room()
    }

    /// Whether the target's queue can take a batch more (reading ahead of a full queue would
    /// only make the lane's own reader fetch it again).
    fn has_room(&self) -> bool {
        let messages = self.producer.in_flight_count().max(0) as u64;
        messages < self.queue_limit_messages * 3 / 4
            && self.outstanding_bytes < self.queue_limit_bytes * 3 / 4
    }

    fn apply_commands(&mut self, readers: &Readers, cursors: &mut Cursors) {
        loop {
            match self.commands.try_recv() {
                Ok(command) => self.apply(command, readers, cursors),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.disconnected = true;
                    return;
                }
            }
        }
    }

    fn apply(&mut self, command: Command, readers: &Readers, cursors: &mut Cursors) {
        match command {
            Command::Resume(progress) => {
                info!(flow = %self.flow_name, "resuming {} partition(s) from {}", progress.len(), self.flow.progress_topic());
                self.progress = Some(progress);
                let pending = std::mem::take(&mut self.pending_routes);
                self.add_routes(pending, readers, cursors);
            }
            Command::Routes(routes) => self.add_routes(routes, readers, cursors),
            Command::Forget(topics) => {
                for topic in topics {
                    self.forget(&topic, readers, cursors);
                }
            }
        }
    }

    /// Starts copying partitions not seen before, from the stored progress.
    fn add_routes(&mut self, routes: Vec<Route>, readers: &Readers, cursors: &mut Cursors) {
        let Some(progress) = &self.progress else {
            self.pending_routes.extend(routes);
            return;
        };
        let mut added = Vec::new();
        for route in routes {
            for partition in 0..route.partitions {
                let known = self.index_of.entry(route.source_topic.clone()).or_default();
                if known.contains_key(&partition) {
                    continue;
                }
                let stored = progress
                    .get(&(route.source_topic.clone(), partition))
                    .copied();
                let ledger = PartitionLedger::new(stored);
                let slot = self.partitions.len();
                known.insert(partition, slot);
                self.partitions.push(PartitionState {
                    source_topic: route.source_topic.clone(),
                    remote_topic: Arc::from(route.remote_topic.as_str()),
                    partition,
                    next: ledger.resume_offset(),
                    ledger,
                    mode: Mode::Waiting(Instant::now()),
                    cursor: cursors.find_or_add(&route.source_topic, partition),
                    backoff: Backoff::default(),
                    retired: false,
                    meters: self.reporter.partition(&route.source_topic, partition),
                    sync_emitter: self
                        .flow
                        .offset_syncs
                        .as_ref()
                        .map(|c| SyncEmitter::new(c.lag_max)),
                });
                added.push(slot);
            }
        }
        if added.is_empty() {
            return;
        }
        // The topic manager has just created or grown these remote topics; librdkafka's
        // producer would refuse the new partitions as unknown until its next metadata refresh
        // (5 minutes by default): ask for the topics' metadata now.
        let remote_topics: std::collections::BTreeSet<Arc<str>> = added
            .iter()
            .map(|&slot| self.partitions[slot].remote_topic.clone())
            .collect();
        for topic in remote_topics {
            if let Err(e) = self
                .producer
                .client()
                .fetch_metadata(Some(&topic), METADATA_REFRESH_TIMEOUT)
            {
                debug!(flow = %self.flow_name, "metadata of {topic} not refreshed ({e}); a failed delivery retries");
            }
        }
        for &slot in &added {
            self.start_reading(slot, readers, cursors);
        }
        info!(
            flow = %self.flow_name,
            "copying {} new partition(s) of {} topic(s)",
            added.len(),
            self.index_of.len()
        );
    }

    /// Reads a waiting partition again from where it must continue: through the shared reader
    /// if it can, else on the lane's own reader.
    fn start_reading(&mut self, slot: usize, readers: &Readers, cursors: &mut Cursors) {
        let state = &mut self.partitions[slot];
        match cursors.join(&readers.shared, state.cursor, self.index, slot, state.next) {
            Ok(true) => state.mode = Mode::Shared,
            Ok(false) => {
                self.read_on_own(slot, readers);
            }
            Err(e) => {
                warn!(flow = %self.flow_name, "reading {}[{}]: {e}; retrying", state.source_topic, state.partition);
                state.mode = Mode::Waiting(Instant::now() + state.backoff.next_delay());
            }
        }
    }

    /// Reads a partition no reader has on the lane's own reader, from where the lane is.
    /// Returns whether it does (else it waits for a retry).
    fn read_on_own(&mut self, slot: usize, readers: &Readers) -> bool {
        let state = &mut self.partitions[slot];
        let assigned =
            readers.own[self.index].assign(&[(&state.source_topic, state.partition, state.next)]);
        match assigned {
            Ok(()) => {
                state.mode = Mode::CatchingUp;
                self.catching_up += 1;
                true
            }
            Err(e) => {
                warn!(flow = %self.flow_name, "reading {}[{}]: {e}; retrying", state.source_topic, state.partition);
                state.mode = Mode::Waiting(Instant::now() + state.backoff.next_delay());
                false
            }
        }
    }

    /// Stops reading a partition wherever it is read.
    fn stop_reading(&mut self, slot: usize, readers: &Readers, cursors: &mut Cursors) {
        let state = &mut self.partitions[slot];
        match state.mode {
            Mode::Shared => cursors.leave(&readers.shared, state.cursor, self.index),
            Mode::CatchingUp => {
                self.catching_up -= 1;
                if let Err(e) =
                    readers.own[self.index].unassign(&state.source_topic, state.partition)
                {
                    warn!(flow = %self.flow_name, "pausing {}[{}]: {e}", state.source_topic, state.partition);
                }
            }
            Mode::Waiting(_) => {}
        }
    }

    /// The target fell behind: every partition read through the shared reader continues on the
    /// lane's own reader from where the lane is.
    fn leave_shared_reader(&mut self, readers: &Readers, cursors: &mut Cursors) {
        self.waited = Duration::ZERO;
        let mut moved = 0;
        for slot in 0..self.partitions.len() {
            if self.partitions[slot].mode != Mode::Shared {
                continue;
            }
            self.stop_reading(slot, readers, cursors);
            if self.read_on_own(slot, readers) {
                moved += 1;
            }
        }
        info!(
            flow = %self.flow_name,
            "the target is slower than the other targets of {}: {moved} partition(s) catch up on their own reader",
            self.flow.source
        );
    }

    /// A record from the lane's own reader.
    fn forward_own(
        &mut self,
        message: &BorrowedMessage<'_>,
        readers: &Readers,
        cursors: &mut Cursors,
    ) {
        self.source_failing = false;
        let Some(slot) = self.slot(message.topic(), message.partition()) else {
            return;
        };
        if self.partitions[slot].mode != Mode::CatchingUp {
            return; // fetched before the partition moved
        }
        match self.send(slot, message, false, readers, cursors) {
            Sent::Done | Sent::Detach => {}
            Sent::Full => {
                // Read it again (from `next`, this record) once the queue has room.
                self.stop_reading(slot, readers, cursors);
                self.read_on_own(slot, readers);
                return;
            }
        }
        // Caught up with the shared reader: read there again.
        let state = &self.partitions[slot];
        if state.mode == Mode::CatchingUp {
            let shared = &cursors.list[state.cursor].2;
            if shared.is_assigned() && shared.join(self.index, state.next) == Join::Share {
                self.stop_reading(slot, readers, cursors);
                self.start_reading(slot, readers, cursors);
            }
        }
    }

    fn slot(&self, topic: &str, partition: i32) -> Option<usize> {
        self.index_of.get(topic)?.get(&partition).copied()
    }

    fn forget(&mut self, topic: &str, readers: &Readers, cursors: &mut Cursors) {
        let Some(partitions) = self.index_of.remove(topic) else {
            return;
        };
        if let Some(progress) = &mut self.progress {
            progress.retain(|(t, _), _| t != topic);
        }
        let progress_topic = self.flow.progress_topic();
        for (partition, slot) in partitions {
            self.stop_reading(slot, readers, cursors);
            let state = &mut self.partitions[slot];
            state.retired = true;
            state.mode = Mode::Waiting(Instant::now());
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

    /// Produces one source record to the target, unless this lane sent it before. Waits while
    /// the target's queue is full, unless the lane may leave the shared reader (`may_detach`:
    /// other lanes keep up) or reads on its own.
    fn send(
        &mut self,
        slot: usize,
        message: &BorrowedMessage<'_>,
        may_detach: bool,
        readers: &Readers,
        cursors: &mut Cursors,
    ) -> Sent {
        let (topic, epoch, shared) = {
            let state = &self.partitions[slot];
            if !fanout::wants(state.next, message.offset()) {
                return Sent::Done;
            }
            (
                state.remote_topic.clone(),
                state.ledger.epoch(),
                state.mode == Mode::Shared,
            )
        };
        let bytes = message.payload_len() + message.key().map_or(0, <[u8]>::len);
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let timestamp_ms = message.timestamp().to_millis();
        let tag = Tag {
            slot,
            epoch,
            offset: message.offset(),
            bytes,
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
        if let Some(timestamp) = timestamp_ms {
            record = record.timestamp(timestamp);
        }
        if let Some(headers) = message.headers() {
            record = record.headers(copy_headers(headers));
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.full = false;
                    self.outstanding_bytes += u64::from(bytes);
                    self.partitions[slot].next = Offset::Offset(message.offset() + 1);
                    self.reporter.read(timestamp_ms);
                    return Sent::Done;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.full = true;
                    if !shared {
                        return Sent::Full;
                    }
                    if may_detach && self.waited >= FANOUT_PATIENCE {
                        return Sent::Detach;
                    }
                    // Backpressure: the target is slower than the source. Wait for it here
                    // rather than buffer; the reader's bounded read-ahead stops fetching.
                    record = back;
                    let waiting = Instant::now();
                    self.producer.poll(Duration::from_millis(20));
                    if self.wait_window.elapsed() >= WAIT_WINDOW {
                        self.wait_window = waiting;
                        self.waited = Duration::ZERO;
                    }
                    self.waited += waiting.elapsed();
                    self.handle_deliveries(readers, cursors);
                    // A slow target must not widen the window re-copied after a crash.
                    if self.last_progress_write.elapsed() >= self.flow.progress_interval {
                        self.write_progress();
                    }
                    if self.partitions[slot].ledger.epoch() != epoch {
                        return Sent::Done; // rewound meanwhile: the record will be read again
                    }
                    if self.shutdown.is_triggered() {
                        // Dropping this record leaves a gap unless later ones are dropped too.
                        self.rewind(slot, readers, cursors);
                        return Sent::Done;
                    }
                }
                Err((e, _)) => {
                    self.report_failure(slot, &e);
                    self.rewind(slot, readers, cursors);
                    return Sent::Done;
                }
            }
        }
    }

    /// Deliveries, progress, metrics, heartbeats and offset syncs: everything but copying.
    fn housekeeping(&mut self, readers: &Readers, cursors: &mut Cursors) {
        if self.progress.is_none() {
            return; // the internal topics may not exist yet
        }
        self.serve_producer_events();
        self.handle_deliveries(readers, cursors);
        if self.last_progress_write.elapsed() >= self.flow.progress_interval {
            self.write_progress();
        }
        if self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish(readers, false);
        }
        self.heartbeat();
        if let Some(syncs) = &self.syncs {
            syncs.poll();
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

    /// The delivery reports collected so far, swapped with the emptied buffer of the previous
    /// call (no allocation per round).
    fn take_reports(&mut self) -> Vec<Delivery> {
        let mut taken = std::mem::take(&mut self.spare_reports);
        taken.clear();
        let reports = self.producer.context().reports.lock();
        std::mem::swap(&mut *reports.unwrap_or_else(|e| e.into_inner()), &mut taken);
        taken
    }

    fn handle_deliveries(&mut self, readers: &Readers, cursors: &mut Cursors) {
        let mut reports = self.take_reports();
        if !reports.is_empty() {
            self.reporter.tick();
        }
        for Delivery {
            tag,
            error,
            downstream_offset,
        } in reports.drain(..)
        {
            match tag.kind {
                TagKind::Heartbeat => {
                    if error.is_none() {
                        self.reporter.heartbeat_delivered();
                    }
                    continue;
                }
                TagKind::OffsetSync => continue,
                TagKind::Record => {
                    self.outstanding_bytes =
                        self.outstanding_bytes.saturating_sub(u64::from(tag.bytes));
                }
                TagKind::Progress => {}
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
                        self.take_away(tag.slot, readers, cursors);
                    }
                }
            }
        }
        self.spare_reports = reports;
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            self.replace_producer(code, &reason, readers, cursors);
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

    /// Starts a new epoch for the partition and takes it away from its reader.
    fn rewind(&mut self, slot: usize, readers: &Readers, cursors: &mut Cursors) {
        self.partitions[slot].ledger.rewind();
        self.take_away(slot, readers, cursors);
    }

    /// Stops reading the partition and schedules it to be read again, after a backoff, from
    /// right after its last acknowledged record.
    fn take_away(&mut self, slot: usize, readers: &Readers, cursors: &mut Cursors) {
        if !matches!(self.partitions[slot].mode, Mode::Waiting(_)) {
            self.stop_reading(slot, readers, cursors);
        }
        let state = &mut self.partitions[slot];
        state.next = state.ledger.resume_offset();
        state.mode = Mode::Waiting(Instant::now() + state.backoff.next_delay());
    }

    /// Hands due partitions back to a reader; moves partitions that caught up back to the
    /// shared reader.
    fn resume_due_partitions(&mut self, readers: &Readers, cursors: &mut Cursors) {
        let now = Instant::now();
        for slot in 0..self.partitions.len() {
            let state = &self.partitions[slot];
            if state.retired {
                continue;
            }
            let due = match state.mode {
                Mode::Waiting(at) => at <= now,
                // Level with the shared reader; or, when nobody reads there, at the end.
                Mode::CatchingUp => {
                    let shared = &cursors.list[state.cursor].2;
                    // Only when level: moving the shared reader back for a lane that fell
                    // behind would hold the others back again.
                    if shared.is_assigned() {
                        shared.join(self.index, state.next) == Join::Share
                    } else {
                        let end = readers.own[self.index]
                            .high_watermark(&state.source_topic, state.partition);
                        matches!((state.next, end), (Offset::Offset(n), Some(end)) if n >= end)
                    }
                }
                Mode::Shared => false,
            };
            if due {
                self.stop_reading(slot, readers, cursors);
                self.start_reading(slot, readers, cursors);
            }
        }
    }

    /// An idempotent producer that hit a fatal error (e.g. the target lost its producer state)
    /// cannot be used again: start a new one and copy everything unacknowledged again.
    fn replace_producer(
        &mut self,
        code: RDKafkaErrorCode,
        reason: &str,
        readers: &Readers,
        cursors: &mut Cursors,
    ) {
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
                self.outstanding_bytes = 0;
                self.full = false;
            }
            Err(e) => {
                error!(flow = %self.flow_name, "cannot create a new target producer: {e}");
                return;
            }
        }
        for slot in 0..self.partitions.len() {
            if !self.partitions[slot].retired {
                self.rewind(slot, readers, cursors);
            }
        }
    }

    /// Stores the last acknowledged offset of every partition that moved since the last write,
    /// and (as MM2 does at each offset flush) writes the offset syncs held back since.
    fn write_progress(&mut self) {
        self.last_progress_write = Instant::now();
        if let Some(syncs) = &mut self.syncs {
            for state in self.partitions.iter_mut().filter(|s| !s.retired) {
                let Some((upstream, downstream)) = state
                    .sync_emitter
                    .as_mut()
                    .and_then(SyncEmitter::take_delayed)
                else {
                    continue;
                };
                let sync = OffsetSync {
                    topic: state.source_topic.clone(),
                    partition: state.partition,
                    upstream_offset: upstream,
                    downstream_offset: downstream,
                };
                syncs.emit(&sync, &self.producer);
            }
        }
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
        self.reporter.tick();
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
    fn publish(&mut self, readers: &Readers, stopped: bool) {
        self.last_publish = Instant::now();
        let lane = self.index;
        let shared_positions = readers.shared.positions();
        let own_positions = readers.own[lane].positions();
        let views = self.partitions.iter().filter(|s| !s.retired).map(|s| {
            let key = (s.source_topic.clone(), s.partition);
            let reader_position = match s.mode {
                Mode::Shared => shared_positions.get(&key),
                Mode::CatchingUp => own_positions.get(&key),
                Mode::Waiting(_) => None,
            };
            PartitionView {
                topic: &s.source_topic,
                remote_topic: &s.remote_topic,
                partition: s.partition,
                source_end: readers.high_watermark(lane, &s.source_topic, s.partition),
                last_acked: s.ledger.acked(),
                read_through: read_through(s, reader_position.copied()),
                meters: &s.meters,
            }
        });
        self.reporter
            .publish(views, self.target_failing || self.source_failing, stopped);
    }
}

/// Where nothing is left to copy of a partition whose reader moved past offsets without
/// records for the lane: only when everything the lane sent is acknowledged.
fn read_through(state: &PartitionState, reader_position: Option<i64>) -> Option<i64> {
    let Offset::Offset(next) = state.next else {
        return None;
    };
    let all_acknowledged = state
        .ledger
        .acked()
        .map_or(next == 0, |acked| acked + 1 == next);
    match reader_position {
        Some(position) if all_acknowledged && position > next => Some(position),
        _ => None,
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
