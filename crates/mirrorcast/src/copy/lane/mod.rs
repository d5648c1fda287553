//! One flow's lane: the partitions it copies to its target, and the transitions between its
//! readers. A partition is read through the shared reader while the lane keeps up, on the
//! lane's own reader while it catches up, or waits after a failure to be read again from right
//! after its last acknowledged record.
//!
//! Invariant: every record is sent at most once per epoch, in source order, and a partition
//! is only ever read again from right after its last acknowledged record, so a failure becomes
//! a retry, never a gap. Records below the lane's position (re-read by the shared reader for
//! another lane) are skipped.

mod commands;
mod commit;
mod deliveries;
mod handover;
mod housekeeping;
mod limits;
mod refusal;
mod source_changes;

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::Offset;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::config::{ErrorsConfig, FlowConfig};
use crate::copy::backpressure::Backpressure;
use crate::copy::book::PartitionBook;
use crate::copy::fanout::Join;
use crate::copy::housekeeper::Housekeeper;
use crate::copy::in_flight::InFlight;
use crate::copy::inbox::Inbox;
use crate::copy::io::{Outgoing, Reader, RecordTag, SourceRecord, Tag, Target};
use crate::copy::partitions::{Mode, PartitionState};
use crate::copy::readers::Reading;
use crate::copy::report::FlowReporter;
use crate::copy::signals::Signals;
use crate::copy::syncs::SyncWriter;
use crate::copy::transaction::Transactions;
use crate::offsets::translate::SyncEmitter;
use crate::ownership::{Shard, Standing};
use crate::plan::{LostUnits, Route, ToCopier};
use crate::progress::codec;
use crate::shutdown::Shutdown;

/// What became of a record handed to [`Lane::send`].
#[derive(Debug)]
pub(crate) enum Sent {
    /// Sent, or skipped because the lane sent it before.
    Done,
    /// The target's queue is full: nothing was sent.
    Full,
    /// The producer refused it for another reason.
    Failed(KafkaError),
    /// Exactly once: the target has no usable transactional producer (not registered yet,
    /// refused, fenced): the partition waits unread until it has.
    NotReady,
}

/// What a lane is made of.
pub(crate) struct LaneSetup<T> {
    pub index: usize,
    /// The partitions of the flow this lane copies: its copier thread's.
    pub shard: Shard,
    pub flow: FlowConfig,
    pub commands: Receiver<ToCopier>,
    pub target: T,
    /// Where offset syncs go, when they are on.
    pub syncs: Option<SyncWriter>,
    pub reporter: FlowReporter,
    /// Counts the records of the lane's own reader.
    pub read_own: Counter,
    pub queue: Backpressure,
    /// After this long with records in flight and no report, the target counts as failing
    /// (the producer itself never gives a record up: see `connect_lane`).
    pub delivery_timeout: Duration,
    /// Whether this process may write, and leads the flow (instances sharing a group).
    pub standing: Standing,
    /// Exactly once: the lane's transactions (`None`: at least once).
    pub transactions: Option<Transactions>,
    pub shutdown: Shutdown,
    pub clock: Clock,
    pub lost: LostUnits,
}

/// Who a lane is: its place, its flow and what it answers to. Set at start, never changed.
pub(crate) struct LaneContext {
    /// The lane's place among its copier thread's lanes (its own reader's index).
    pub index: usize,
    pub flow: FlowConfig,
    pub flow_name: String,
    /// Whether this process may write, and leads the flow (instances sharing a group).
    pub standing: Standing,
    pub shutdown: Shutdown,
    /// Where time comes from: every patience window, timeout and backoff of the lane.
    pub clock: Clock,
    /// Exactly once: where the lane says its unit was fenced from under it.
    pub lost: LostUnits,
}

impl LaneContext {
    /// The key of a partition's record in the flow's progress topic (MM2's bytes).
    pub fn progress_key(&self, topic: &str, partition: i32) -> Vec<u8> {
        codec::encode_key(
            &self.flow.progress.connector,
            &self.flow.source,
            topic,
            partition,
        )
    }
}

/// One flow: its target and the bookkeeping of every partition it copies. A coordinator: each
/// part owns one concern, the lane carries their decisions out against the reader and target.
pub(crate) struct Lane<T> {
    pub(super) ctx: LaneContext,
    /// What the topic manager and the group say, and the fence answer still owed.
    pub(super) inbox: Inbox,
    pub(super) target: T,
    /// Which partitions the lane copies, their routes, progress and per-partition state.
    pub(super) book: PartitionBook,
    /// What is in flight to the target, and how much more it may take.
    pub(super) flight: InFlight,
    /// What the lane has said about its source and target, each once per change.
    pub(super) signals: Signals,
    /// Exactly once: the lane's transactions (`None`: at least once).
    pub(super) transactions: Option<Transactions>,
    /// Progress, heartbeats, offset syncs, metrics and their timers.
    pub(super) house: Housekeeper,
}

impl<T: Target> Lane<T> {
    pub fn new(setup: LaneSetup<T>) -> Self {
        let now = setup.clock.now();
        Lane {
            book: PartitionBook::new(setup.shard, setup.standing.is_grouped()),
            ctx: LaneContext {
                index: setup.index,
                flow_name: setup.flow.name(),
                flow: setup.flow,
                standing: setup.standing,
                shutdown: setup.shutdown,
                clock: setup.clock,
                lost: setup.lost,
            },
            inbox: Inbox::new(setup.commands),
            target: setup.target,
            flight: InFlight::new(setup.queue, setup.delivery_timeout),
            signals: Signals::default(),
            transactions: setup.transactions,
            house: Housekeeper::new(setup.reporter, setup.syncs, setup.read_own, now),
        }
    }

    pub fn is_idle(&self) -> bool {
        self.book.is_empty()
    }

    pub fn can_catch_up(&self) -> bool {
        self.book.catching_up() > 0 && self.has_room()
    }

    /// Whether the target's queue can take a batch more (and, exactly once, a transaction is
    /// ready for it).
    pub fn has_room(&self) -> bool {
        self.flight.has_room(self.target.in_flight()) && self.takes_records() && !self.resizing()
    }

    /// Exactly once: whether a copied record may go into a transaction now.
    pub(super) fn takes_records(&self) -> bool {
        self.transactions
            .as_ref()
            .is_none_or(Transactions::accepts_records)
    }

    /// Starts copying partitions not seen before, from the stored progress.
    pub(super) fn add_routes<R: Reader>(&mut self, routes: Vec<Route>, io: &mut Reading<'_, R>) {
        let Some(routes) = self.book.take_routes(routes) else {
            return; // they wait for the progress
        };
        let (mut added, mut without_progress) = (Vec::new(), Vec::new());
        let now = self.ctx.clock.now();
        for route in &routes {
            self.restart_topic_created_again(route, io);
            let remote_topic: Arc<str> = Arc::from(route.remote_topic.as_str());
            let (flow, reporter) = (&self.ctx.flow, &self.house.reporter);
            let mut earlier_topic = None;
            let slots = self.book.add_route(route, |new| {
                if new.stored.is_none() && flow.start_at_end {
                    without_progress.push(new.slot);
                }
                let mut state = PartitionState::new(
                    &route.source_topic,
                    remote_topic.clone(),
                    new.partition,
                    new.stored,
                    io.cursors.find_or_add(&route.source_topic, new.partition),
                    reporter.partition(&route.source_topic, &remote_topic, new.partition),
                    flow.offset_syncs
                        .as_ref()
                        .map(|c| SyncEmitter::new(c.lag_max)),
                    now,
                );
                state.topic_id = route.topic_id.clone();
                if new.earlier_topic.is_some() {
                    state.meters.recreations.inc();
                    earlier_topic = new.earlier_topic.map(|id| (id, new.partition));
                }
                state
            });
            if let (Some((earlier, _)), Some(id)) = (&earlier_topic, &route.topic_id) {
                warn!(
                    flow = %self.ctx.flow_name,
                    "{} was deleted and created again while it was not copied here (progress was \
                     stored for topic ID {earlier}, the topic's ID is {id} now): its partitions \
                     here are copied from the new topic's {} instead of the stored offsets",
                    route.source_topic,
                    if flow.start_at_end { "end (auto.offset.reset = latest)" } else { "beginning" }
                );
            }
            added.extend(slots);
        }
        self.take_limits(&routes);
        for slot in without_progress {
            self.start_at_end(slot, &io.readers.shared);
        }
        if added.is_empty() {
            return;
        }
        // The topic manager has just created or grown these remote topics; librdkafka's
        // producer would refuse the new partitions as unknown until its next metadata refresh
        // (5 minutes by default): ask for the topics' metadata now.
        let remote_topics: std::collections::BTreeSet<Arc<str>> = added
            .iter()
            .map(|&slot| self.book[slot].remote_topic.clone())
            .collect();
        for topic in remote_topics {
            if let Err(e) = self.target.refresh_metadata(&topic) {
                debug!(flow = %self.ctx.flow_name, "metadata of {topic} not refreshed ({e}); a failed delivery retries");
            }
        }
        for &slot in &added {
            self.start_reading(slot, io);
        }
        info!(
            flow = %self.ctx.flow_name,
            "copying {} new partition(s) of {} topic(s)",
            added.len(),
            self.book.topic_count()
        );
    }

    /// `auto.offset.reset = latest`: a partition without progress starts at its end now, as
    /// MM2's consumer does; its earlier records are not copied.
    fn start_at_end(&mut self, slot: usize, reader: &impl Reader) {
        let state = &mut self.book[slot];
        match reader.end_offset(&state.source_topic, state.partition) {
            Ok(0) => {}
            Ok(end) => {
                info!(
                    flow = %self.ctx.flow_name,
                    "{}[{}] has no progress and auto.offset.reset = latest: copying from its end \
                     ({end}); the {end} record(s) before are not copied",
                    state.source_topic,
                    state.partition
                );
                state.start_at(end);
            }
            Err(e) => warn!(
                flow = %self.ctx.flow_name,
                "{}[{}] has no progress and auto.offset.reset = latest, but its end cannot be \
                 read ({e}): copying from its beginning instead",
                state.source_topic,
                state.partition
            ),
        }
    }

    pub(super) fn forget<R: Reader>(&mut self, topic: &str, io: &mut Reading<'_, R>) {
        let partitions = self.book.forget_topic(topic);
        if partitions.is_empty() {
            return;
        }
        let progress_topic = self.ctx.flow.progress_topic();
        for (partition, slot) in partitions {
            self.stop_reading(slot, io);
            self.book.retire(slot, self.ctx.clock.now());
            let key = self.ctx.progress_key(topic, partition);
            let tag = Tag::Progress { slot, offset: None };
            let tombstone = Outgoing::internal(&progress_topic, &key, None, tag);
            if let Err((e, _)) = self.target.send(tombstone) {
                warn!(flow = %self.ctx.flow_name, "cannot drop the progress of {topic}[{partition}]: {e}");
            }
        }
        info!(flow = %self.ctx.flow_name, "stopped copying {topic}, which is gone from the source");
    }

    /// Reads a waiting partition again from where it must continue: through the shared reader
    /// if it can, else on the lane's own reader.
    fn start_reading<R: Reader>(&mut self, slot: usize, io: &mut Reading<'_, R>) {
        let state = &mut self.book[slot];
        if !self
            .transactions
            .as_ref()
            .is_none_or(Transactions::registered)
        {
            state.mode = Mode::Waiting(self.ctx.clock.now());
            return;
        }
        let joined = io.cursors.join(
            &io.readers.shared,
            state.cursor,
            self.ctx.index,
            slot,
            state.next,
        );
        debug!(flow = %self.ctx.flow_name, "{}[{}] reads from {:?} ({})", state.source_topic, state.partition, state.next, if matches!(joined, Ok(true)) { "shared" } else { "own" });
        match joined {
            Ok(true) => {
                state.mode = Mode::Shared;
                if self.signals.shared_join.recovered() {
                    info!(flow = %self.ctx.flow_name, "the shared reader takes partitions again");
                }
            }
            Ok(false) => {
                self.read_on_own(slot, io);
            }
            Err(e) => {
                // The partition is not lost for lack of the shared reader: read it alone.
                if self.signals.shared_join.failed() {
                    warn!(flow = %self.ctx.flow_name, "reading {}[{}] through the shared reader: {e}; reading it on the lane's own reader", state.source_topic, state.partition);
                }
                self.read_on_own(slot, io);
            }
        }
    }

    /// Reads a partition on the lane's own reader, from where the lane is. Returns whether it
    /// does (else it waits for a retry).
    fn read_on_own<R: Reader>(&mut self, slot: usize, io: &mut Reading<'_, R>) -> bool {
        let state = &mut self.book[slot];
        let assigned = io.readers.own[self.ctx.index].assign(&[(
            &state.source_topic,
            state.partition,
            state.next,
        )]);
        match assigned {
            Ok(()) => {
                self.book.read_on_own(slot);
                true
            }
            Err(e) => {
                warn!(flow = %self.ctx.flow_name, "reading {}[{}]: {e}; retrying", state.source_topic, state.partition);
                state.mode = Mode::Waiting(self.ctx.clock.now() + state.backoff.next_delay());
                false
            }
        }
    }

    /// Stops reading a partition wherever it is read.
    pub(super) fn stop_reading<R: Reader>(&mut self, slot: usize, io: &mut Reading<'_, R>) {
        let state = &self.book[slot];
        match state.mode {
            Mode::Shared => io
                .cursors
                .leave(&io.readers.shared, state.cursor, self.ctx.index),
            Mode::CatchingUp => {
                let own = &io.readers.own[self.ctx.index];
                if let Err(e) = own.unassign(&state.source_topic, state.partition) {
                    warn!(flow = %self.ctx.flow_name, "pausing {}[{}]: {e}", state.source_topic, state.partition);
                }
                self.book.left_own();
            }
            Mode::Waiting(_) | Mode::Stopped => {}
        }
    }

    /// The target fell behind: every partition read through the shared reader continues on the
    /// lane's own reader from where the lane is.
    pub fn leave_shared_reader<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        self.flight.left_shared_reader();
        let mut moved = 0;
        for slot in self.book.slots() {
            if self.book[slot].mode != Mode::Shared {
                continue;
            }
            self.stop_reading(slot, io);
            if self.read_on_own(slot, io) {
                moved += 1;
            }
        }
        info!(
            flow = %self.ctx.flow_name,
            "the target is slower than the other targets of {}: {moved} partition(s) catch up on their own reader",
            self.ctx.flow.source
        );
    }

    /// A record of the shared reader for partition `slot`. Waits while the target's queue is
    /// full, unless the lane may leave the shared reader (`may_detach`: other lanes keep up)
    /// and has made them wait long enough.
    pub fn forward_shared<R: Reader>(
        &mut self,
        slot: usize,
        message: &impl SourceRecord,
        may_detach: bool,
        io: &mut Reading<'_, R>,
    ) {
        self.signals.source.recovered();
        if self.book[slot].mode != Mode::Shared {
            return; // left during this record (a failure while another lane waited)
        }
        let epoch = self.book[slot].ledger.epoch();
        loop {
            match self.send(slot, message) {
                Sent::Done => return,
                Sent::NotReady => return self.take_away(slot, io),
                Sent::Failed(e) => {
                    self.send_failed(slot, message.offset(), &e, io);
                    return;
                }
                Sent::Full if may_detach && self.flight.out_of_patience() => {
                    self.leave_shared_reader(io);
                    return;
                }
                // Backpressure: the target is slower than the source. Wait for it here rather
                // than buffer; the reader's bounded read-ahead stops fetching.
                Sent::Full => {
                    if !self.wait_for_room(slot, epoch, io) {
                        return;
                    }
                }
            }
        }
    }

    /// Waits a moment for the target, handling its deliveries meanwhile. Returns whether the
    /// record of `slot` sent in `epoch` is still to be sent (false: the partition was rewound,
    /// and will read it again).
    fn wait_for_room<R: Reader>(
        &mut self,
        slot: usize,
        epoch: u32,
        io: &mut Reading<'_, R>,
    ) -> bool {
        let waiting = self.ctx.clock.now();
        // (Exactly once, a batch resize also waits for the transaction to end.)
        let for_transaction =
            self.transactions.is_some() && (!self.takes_records() || self.resizing());
        if !for_transaction {
            self.target.serve(Duration::from_millis(20));
        } else {
            // Waiting for the transaction to end, not for the queue: as soon as it has.
            self.advance_transaction(Duration::from_millis(20), io);
        }
        self.flight.waited(waiting, self.ctx.clock.now());
        self.handle_deliveries(io);
        self.resize_batches_when_idle(io);
        // A slow target must not widen the window re-copied after a crash.
        if self
            .house
            .progress_due(self.ctx.flow.progress.interval, self.ctx.clock.now())
        {
            self.write_progress();
        }
        if self.book[slot].ledger.epoch() != epoch {
            return false;
        }
        if self.ctx.shutdown.is_triggered() {
            // Dropping this record leaves a gap unless later ones are dropped too.
            self.rewind(slot, io);
            return false;
        }
        true
    }

    /// A record from the lane's own reader.
    pub fn forward_own<R: Reader>(&mut self, message: &impl SourceRecord, io: &mut Reading<'_, R>) {
        self.signals.source.recovered();
        let Some(slot) = self.book.slot_of(message.topic(), message.partition()) else {
            return;
        };
        if self.book[slot].mode != Mode::CatchingUp {
            return; // fetched before the partition moved
        }
        if let Offset::Offset(expected) = self.book[slot].next {
            if expected != message.offset() {
                let own = &io.readers.own[self.ctx.index];
                let low = own.low_watermark(message.topic(), message.partition());
                self.source_moved(slot, expected, message.offset(), low, own);
            }
        }
        match self.send(slot, message) {
            Sent::Done => {}
            Sent::NotReady => return self.take_away(slot, io),
            Sent::Failed(e) => {
                self.send_failed(slot, message.offset(), &e, io);
                return;
            }
            Sent::Full => {
                // Read it again (from `next`, this record) once the queue has room.
                self.stop_reading(slot, io);
                self.read_on_own(slot, io);
                return;
            }
        }
        // Caught up with the shared reader: read there again.
        let state = &self.book[slot];
        let shared = io.cursors.get(state.cursor);
        if shared.is_assigned() && shared.join(self.ctx.index, state.next) == Join::Share {
            self.stop_reading(slot, io);
            self.start_reading(slot, io);
        }
    }

    /// Produces one source record to the target, unless this lane sent it before.
    pub fn send(&mut self, slot: usize, message: &impl SourceRecord) -> Sent {
        let resizing = self.resizing();
        let state = &mut self.book[slot];
        if !state.wants(message.offset()) {
            return Sent::Done;
        }
        if state.must_wait(message.offset()) || resizing {
            return Sent::Full;
        }
        // A lapsed lease: the group may have given the partition to another member already.
        // (Exactly once, the unit's fence keeps a zombie's transaction from committing.)
        if self.transactions.is_none() && !self.ctx.standing.may_write() {
            return Sent::NotReady;
        }
        if let Some(transactions) = &self.transactions {
            if !transactions.registered() {
                return Sent::NotReady;
            }
            if !transactions.accepts_records() {
                return Sent::Full;
            }
        }
        // (With `errors.tolerance = none` it is sent again, alone: refused then, its partition
        // stops right there.)
        if state.refused_at(message.offset())
            && !matches!(self.ctx.flow.errors, ErrorsConfig::StopPartition)
        {
            return self.deal_with_refused(slot, message);
        }
        if self.too_large_for_target(slot, message) {
            // Refused for good once what is before it is acknowledged (it is then read again
            // and dealt with, with nothing else of its partition in flight).
            return match self.book[slot].in_flight {
                0 => Sent::Failed(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageSizeTooLarge,
                )),
                _ => Sent::Full,
            };
        }
        let state = &mut self.book[slot];
        let bytes = message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len);
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let timestamp_ms = message.timestamp_ms();
        let record = Outgoing {
            topic: &state.remote_topic,
            partition: Some(message.partition()),
            key: message.key(),
            payload: message.payload(),
            timestamp_ms,
            headers: message.headers(),
            tag: Tag::Record(RecordTag {
                slot,
                epoch: state.ledger.epoch(),
                offset: message.offset(),
                bytes,
                timestamp_ms,
                dead_letter: false,
            }),
        };
        match self.target.send(record) {
            Ok(()) => {
                self.flight.sent(bytes);
                if let Some(transactions) = &mut self.transactions {
                    let epoch = state.ledger.epoch();
                    transactions.sent(slot, epoch, message.offset(), bytes, timestamp_ms);
                }
                state.sent(message.offset());
                self.house.reporter.read(&state.meters, timestamp_ms);
                Sent::Done
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                self.flight.queue_filled();
                Sent::Full
            }
            Err((e, _)) => Sent::Failed(e),
        }
    }

    /// The producer refused a record of `slot` before sending it.
    fn send_failed<R: Reader>(
        &mut self,
        slot: usize,
        offset: i64,
        error: &KafkaError,
        io: &mut Reading<'_, R>,
    ) {
        let state = &self.book[slot];
        let tag = RecordTag {
            slot,
            epoch: state.ledger.epoch(),
            offset,
            bytes: 0,
            timestamp_ms: None,
            dead_letter: state.refused_at(offset)
                && matches!(self.ctx.flow.errors, ErrorsConfig::DeadLetter { .. }),
        };
        self.judge_failure(&tag, error, true, io);
    }

    /// Starts a new epoch for the partition and takes it away from its reader.
    pub(super) fn rewind<R: Reader>(&mut self, slot: usize, io: &mut Reading<'_, R>) {
        self.book[slot].ledger.rewind();
        self.take_away(slot, io);
        let state = &self.book[slot];
        debug!(flow = %self.ctx.flow_name, "{}[{}] rewound to {:?} (epoch {})", state.source_topic, state.partition, state.next, state.ledger.epoch());
    }

    /// Stops reading the partition and schedules it to be read again, after a backoff, from
    /// right after its last acknowledged record.
    pub(super) fn take_away<R: Reader>(&mut self, slot: usize, io: &mut Reading<'_, R>) {
        if !matches!(self.book[slot].mode, Mode::Waiting(_)) {
            self.stop_reading(slot, io);
        }
        self.book[slot].wait_and_resume(self.ctx.clock.now());
    }

    /// Hands due partitions back to a reader; moves partitions that caught up back to the
    /// shared reader.
    pub fn resume_due_partitions<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        self.move_displaced(io);
        let now = self.ctx.clock.now();
        for slot in self.book.slots() {
            let state = &self.book[slot];
            if state.retired {
                continue;
            }
            let due = match state.mode {
                Mode::Waiting(_) => state.due(now),
                // Level with the shared reader; or, when nobody reads there, at the end.
                Mode::CatchingUp => {
                    let shared = io.cursors.get(state.cursor);
                    // Only when level: moving the shared reader back for a lane that fell
                    // behind would hold the others back again.
                    if shared.is_assigned() {
                        shared.join(self.ctx.index, state.next) == Join::Share
                    } else {
                        let end = io.readers.own[self.ctx.index]
                            .high_watermark(&state.source_topic, state.partition);
                        matches!((state.next, end), (Offset::Offset(n), Some(end)) if n >= end)
                    }
                }
                Mode::Shared | Mode::Stopped => false,
            };
            if due {
                self.book[slot].arm_suspect();
                self.stop_reading(slot, io);
                self.start_reading(slot, io);
            }
        }
    }

    /// Partitions another lane took the shared reader over from, far ahead of this lane (which
    /// was backfilling): they continue on the lane's own reader from where the lane is.
    fn move_displaced<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        let mut moved = 0;
        for slot in io.cursors.take_displaced(self.ctx.index) {
            if self.book[slot].mode == Mode::Shared && self.read_on_own(slot, io) {
                moved += 1;
            }
        }
        if moved > 0 {
            info!(
                flow = %self.ctx.flow_name,
                "{moved} partition(s) are far behind where the other targets of {} read: they \
                 catch up on their own reader, and the others no longer wait for them",
                self.ctx.flow.source
            );
        }
    }
}
