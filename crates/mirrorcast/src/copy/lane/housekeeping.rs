//! Everything a lane does besides copying, on its own clock: handling delivery reports,
//! storing progress, writing heartbeats and held-back offset syncs, publishing offsets and lag,
//! and the final flush at shutdown.
//!
//! Invariant: the progress stored for a partition is always an offset the target acknowledged.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::{debug, info, warn};

use super::Lane;
use crate::copy::in_flight::StallNews;
use crate::copy::io::{Outgoing, Reader, Tag, Target};
use crate::copy::partitions::Mode;
use crate::copy::readers::{Cursors, Readers, Reading};
use crate::copy::report::{CopyHealth, PartitionView};
use crate::offsets::codec::{Heartbeat, OffsetSync};
use crate::offsets::translate::SyncEmitter;
use crate::policy::HEARTBEATS_TOPIC;
use crate::progress::codec;

/// How long shutdown waits for the target to acknowledge what is in flight.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);
/// How long a round waits for a transaction step (registering, committing, aborting): the
/// step goes on in librdkafka meanwhile, and the next round looks again.
const TRANSACTION_STEP: Duration = Duration::from_millis(1);

impl<T: Target> Lane<T> {
    /// Deliveries, progress, metrics, heartbeats and offset syncs: everything but copying.
    pub fn housekeeping<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        if !self.book.resumed() {
            // The internal topics may not exist yet. Exactly once, the unit registers first:
            // the topic manager reads the progress only once it has.
            self.advance_transaction(TRANSACTION_STEP, io);
            return;
        }
        self.serve_target_events();
        self.handle_deliveries(io);
        // Right after the reports were handled: none waits that could name an old slot.
        self.compact_retired(io);
        self.advance_transaction(TRANSACTION_STEP, io);
        self.purge_when_lease_lapsed(io);
        self.resize_batches_when_idle(io);
        let now = self.ctx.clock.now();
        if self
            .house
            .progress_due(self.ctx.flow.progress.interval, now)
        {
            self.write_progress();
        }
        if self.house.publish_due(now) {
            self.check_stalled();
            self.publish(io.readers, io.cursors, false);
        }
        self.heartbeat();
        if let Some(syncs) = &self.house.syncs {
            syncs.poll();
        }
    }

    /// Drops retired slots (partitions handed over, forgotten or restarted) once they pile up,
    /// at a moment no report or transaction can name one (called right after the reports were
    /// handled): the book stays as large as what the lane copies, however often partitions
    /// move.
    fn compact_retired<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        let transaction_holds = self
            .transactions
            .as_ref()
            .is_some_and(|t| !t.holds_nothing());
        if self.target.in_flight() > 0
            || self.target.transaction_open_since().is_some()
            || transaction_holds
        {
            return;
        }
        if let Some(renumbered) = self.book.compact() {
            io.cursors.renumber_lane(self.ctx.index, &renumbered);
            let dropped = renumbered.iter().filter(|s| s.is_none()).count();
            debug!(flow = %self.ctx.flow_name, "dropped {dropped} retired partition slot(s)");
        }
    }

    /// Stores the last acknowledged offset of every partition that moved since the last write,
    /// and (as MM2 does at each offset flush) writes the offset syncs held back since.
    pub(super) fn write_progress(&mut self) {
        if self.transactions.is_some() {
            return; // stored in each transaction, with what it covers
        }
        // Checked right before writing: a process frozen in the middle of a round must not
        // go on to store progress that another instance has moved on from meanwhile.
        if self.ctx.standing.may_write() {
            self.store_progress();
        }
    }

    /// [`Lane::write_progress`] whatever the lease says: for a release, which the group
    /// asked for (so this process is still a member).
    pub(super) fn store_progress(&mut self) {
        self.house.progress_written(self.ctx.clock.now());
        if let Some(syncs) = &mut self.house.syncs {
            for state in self.book.iter_mut().filter(|s| !s.retired) {
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
                syncs.emit(&sync, &self.target);
            }
        }
        let topic = self.ctx.flow.progress_topic();
        for (slot, state) in self.book.iter_mut().enumerate() {
            if state.retired {
                continue;
            }
            let Some(acked) = state.ledger.progress_to_store() else {
                continue;
            };
            let key = self.ctx.progress_key(&state.source_topic, state.partition);
            let value = codec::encode_value(acked, state.topic_id.as_ref());
            let tag = Tag::Progress {
                slot,
                offset: Some(acked),
            };
            match self
                .target
                .send(Outgoing::internal(&topic, &key, Some(&value), tag))
            {
                Ok(()) => state.ledger.progress_sent(acked),
                // Backpressure: the rest waits for the next interval.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => return,
                Err((e, _)) => {
                    warn!(flow = %self.ctx.flow_name, "cannot store progress now: {e}");
                    return;
                }
            }
        }
    }

    /// A target that takes records but never answers (down, black-holed, its partition
    /// leaderless) is said once, and again when it answers. Its records stay queued: the
    /// producer delivers them in order when it can, which a re-send could not promise.
    fn check_stalled(&mut self) {
        let now = self.ctx.clock.now();
        match self.flight.check_stalls(self.book.iter_mut(), now) {
            StallNews::Quiet => {}
            // Said for the flow when its last stalled copier thread sees it answer.
            StallNews::Ended => {
                if self.house.reporter.stall_ended() {
                    info!(flow = %self.ctx.flow_name, "the target acknowledges records again");
                }
            }
            // Said for the flow by the first of its copier threads to see it.
            StallNews::Began {
                topic,
                partition,
                others,
            } => {
                if !self.house.reporter.stall_began() {
                    return;
                }
                let message = format!(
                    "{} has acknowledged nothing of {topic}[{partition}]{} for over {:?}; \
                     the records stay queued and are delivered in order once it answers",
                    self.ctx.flow.target,
                    match others {
                        0 => String::new(),
                        n => format!(" and {n} other partition(s)"),
                    },
                    self.flight.delivery_timeout(),
                );
                warn!(flow = %self.ctx.flow_name, "{message}");
                self.house.reporter.error(&message);
            }
        }
    }

    /// Shutdown: wait (bounded) for what is in flight, then store the final progress (exactly
    /// once: commit the last transaction).
    pub fn stop<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        let deadline = self.ctx.clock.now() + SHUTDOWN_FLUSH;
        if self.transactions.is_some() {
            self.finish_transaction(deadline, io);
            self.handle_deliveries_after_stop();
            if let Some(syncs) = &self.house.syncs {
                syncs.flush(Duration::from_secs(1));
            }
            let copied = self.house.reporter.records_copied();
            info!(flow = %self.ctx.flow_name, "stopped after {copied} committed record(s)");
            return;
        }
        self.target.flush(SHUTDOWN_FLUSH);
        self.handle_deliveries_after_stop();
        // Not when a member's lease lapsed: it may have lost its partitions already, and their
        // new owner's progress must not be overwritten with older.
        self.write_progress();
        self.target.flush(
            deadline
                .saturating_duration_since(self.ctx.clock.now())
                .max(Duration::from_secs(1)),
        );
        self.handle_deliveries_after_stop();
        if let Some(syncs) = &self.house.syncs {
            syncs.flush(Duration::from_secs(1));
        }
        let acked = self.house.reporter.records_copied();
        info!(flow = %self.ctx.flow_name, "stopped after {acked} acknowledged record(s)");
    }

    /// Writes MM2's heartbeat to the target's `heartbeats` topic when one is due.
    fn heartbeat(&mut self) {
        let Some(interval) = self.ctx.flow.heartbeats.as_ref().map(|h| h.interval) else {
            return;
        };
        if !self.ctx.standing.leads() {
            return; // another instance of the replicator writes them
        }
        if !self.takes_records() {
            return; // between transactions: the next round will do
        }
        if !self.house.heartbeat_now(interval, self.ctx.clock.now()) {
            return;
        }
        let heartbeat = Heartbeat {
            source_alias: self.ctx.flow.source.clone(),
            target_alias: self.ctx.flow.target.clone(),
            timestamp_ms: crate::observe::status::now_ms(),
        };
        let (key, value) = (heartbeat.key(), heartbeat.value());
        let record = Outgoing::internal(HEARTBEATS_TOPIC, &key, Some(&value), Tag::Heartbeat)
            .in_partition(0);
        // A full queue or a target that is down: the next one will do.
        let _ = self.target.send(record);
    }

    /// Offsets, lag and state of every partition, for metrics and `/api/status`.
    pub fn publish<R: Reader>(&mut self, readers: &Readers<R>, cursors: &Cursors, stopped: bool) {
        let now = self.ctx.clock.now();
        self.house.published(now);
        let lane = self.ctx.index;
        let any_stopped = self.book.iter().any(|s| s.mode == Mode::Stopped);
        for s in self.book.iter_mut().filter(|s| !s.retired) {
            let shared_reads_it = cursors.get(s.cursor).is_assigned();
            if let Some(end) =
                readers.end_seen(lane, s.mode, shared_reads_it, &s.source_topic, s.partition)
            {
                s.source_end = Some(end);
            }
        }
        let shared_positions = readers.shared.positions();
        let own_positions = readers.own[lane].positions();
        let views = self.book.iter().filter(|s| !s.retired).map(|s| {
            let key = (s.source_topic.clone(), s.partition);
            let reader_position = match s.mode {
                Mode::Shared => shared_positions.get(&key),
                Mode::CatchingUp => own_positions.get(&key),
                Mode::Waiting(_) | Mode::Stopped => None,
            };
            PartitionView {
                topic: &s.source_topic,
                remote_topic: &s.remote_topic,
                partition: s.partition,
                source_end: s.source_end,
                last_acked: s.ledger.acked(),
                read_through: s.read_through(reader_position.copied()),
                stopped_at: (s.mode == Mode::Stopped)
                    .then_some(s.refusal.as_ref())
                    .flatten()
                    .map(|r| (r.offset, r.reason.as_str())),
                meters: &s.meters,
            }
        });
        let needs_attention = self.flight.refusing() || any_stopped;
        let health = CopyHealth {
            failing: self.signals.source.is_failing() || self.flight.failing() || needs_attention,
            needs_attention,
        };
        self.house.reporter.publish(views, health, stopped, now);
    }
}
