//! What the target says about what a lane produced: each record carries a [`Tag`], and its
//! delivery report acknowledges a copied record (moving the ledger and emitting offset syncs),
//! rewinds its partition on a failure, or confirms a progress record or a heartbeat.
//!
//! Invariant: a report only counts for the epoch its record was sent in; after a rewind, the
//! reports of what was in flight before change nothing.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::{error, info, warn};

use super::Lane;
use crate::copy::io::{Delivery, Reader, Tag, Target, TxnFatal};
use crate::copy::readers::Reading;
use crate::offsets::codec::OffsetSync;

/// An error that will come again whenever the record is sent (the gapless producer fails
/// fatally on it): no permission, or a record the broker will not take.
fn refused_for_good(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::PolicyViolation
        )
    )
}

impl<T: Target> Lane<T> {
    /// The target's events: rdkafka's `poll(ZERO)` serves one event (one produce response's
    /// reports); serve all that are ready so acknowledgements never fall behind the copy.
    pub(super) fn serve_target_events(&mut self) {
        for _ in 0..10_000 {
            let before = self.target.reports_waiting();
            self.target.serve(Duration::ZERO);
            if self.target.reports_waiting() == before {
                return;
            }
        }
    }

    /// The delivery reports collected so far, swapped with the emptied buffer of the previous
    /// call (no allocation per round).
    fn take_reports(&mut self) -> Vec<Delivery> {
        let mut taken = self.flight.report_buffer();
        self.target.take_reports(&mut taken);
        taken
    }

    pub(super) fn handle_deliveries<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        self.handle_reports(io);
        if let Some((code, reason)) = self.target.fatal_error() {
            if self.transactions.is_some() {
                let fatal = TxnFatal::of(code, format!("{code}: {reason}"));
                return self.transactions_fatal(fatal, io);
            }
            if code == RDKafkaErrorCode::GaplessGuarantee {
                self.drain_after_refused_batch(io);
            }
            self.replace_producer(code, &reason, io);
        }
    }

    /// A batch was refused for good and the producer stopped (gapless delivery): its reports
    /// come after the fatal error, and say which record was refused. They are awaited (a
    /// little: records the producer holds back may never be reported) before the producer is
    /// replaced, which drops whatever is still unreported.
    fn drain_after_refused_batch<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        const QUIET_SERVES: u32 = 10;
        const MOST_SERVES: u32 = 200;
        let mut quiet = 0;
        for _ in 0..MOST_SERVES {
            if self.target.in_flight() == 0 || quiet >= QUIET_SERVES {
                break;
            }
            self.target.serve(Duration::from_millis(10));
            if self.target.reports_waiting() == 0 {
                quiet += 1;
                continue;
            }
            quiet = 0;
            self.handle_reports(io);
        }
    }

    fn handle_reports<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        let mut reports = self.take_reports();
        if !reports.is_empty() {
            self.house.reporter.tick(self.ctx.clock.now());
        }
        for Delivery {
            tag,
            error,
            downstream_offset,
        } in reports.drain(..)
        {
            let record = match tag {
                Tag::Heartbeat => {
                    match error {
                        None => self.house.reporter.heartbeat_delivered(),
                        Some(e) if refused_for_good(&e) && self.house.heartbeats_refused() => {
                            let message = format!(
                                "{} refused a heartbeat for good ({e}): this flow writes no more \
                                 heartbeats until it restarts (give its principal Write on \
                                 `heartbeats`, or set emit.heartbeats.enabled = false)",
                                self.ctx.flow.target
                            );
                            error!(flow = %self.ctx.flow_name, "{message}");
                            self.house.reporter.error(&message);
                        }
                        Some(_) => {}
                    }
                    continue;
                }
                Tag::OffsetSync => continue,
                Tag::Progress { slot, offset } => {
                    if let Some(e) = error {
                        let purged = matches!(
                            e.rdkafka_error_code(),
                            Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
                        );
                        // (Purged: of a transaction aborted already.)
                        if let (Some(transactions), false) = (&mut self.transactions, purged) {
                            transactions.doom(format!("a progress record failed: {e}"));
                        }
                        self.progress_failed(slot, offset, &e);
                    }
                    continue;
                }
                Tag::Record(record) => record,
            };
            self.flight.reported(record.bytes);
            let Some(state) = self.book.get_mut(record.slot) else {
                continue;
            };
            state.reported();
            let Some(e) = error else {
                // Exactly once: acknowledged when its transaction commits, not before.
                let acknowledged = if self.transactions.is_some() {
                    record.epoch == state.ledger.epoch()
                } else {
                    state.ledger.acknowledged(record.epoch, record.offset)
                };
                if !acknowledged {
                    continue;
                }
                if state.alone == Some(record.offset) {
                    state.alone = None;
                }
                if record.dead_letter {
                    state.refusal = None;
                    continue;
                }
                state.backoff.reset();
                if self.transactions.is_none() {
                    self.house.reporter.acknowledged(
                        &mut state.meters,
                        record.bytes,
                        record.timestamp_ms,
                    );
                }
                if let (Some(downstream), Some(emitter)) =
                    (downstream_offset, state.sync_emitter.as_mut())
                {
                    if emitter.copied(record.offset, downstream) {
                        let sync = OffsetSync {
                            topic: state.source_topic.clone(),
                            partition: state.partition,
                            upstream_offset: record.offset,
                            downstream_offset: downstream,
                        };
                        match (&mut self.transactions, &mut self.house.syncs) {
                            // Written once the record it points at is committed.
                            (Some(transactions), _) => transactions.hold_sync(sync),
                            (None, Some(syncs)) => syncs.emit(&sync, &self.target),
                            (None, None) => {}
                        }
                    }
                }
                if self.flight.acknowledged_is_news() {
                    info!(flow = %self.ctx.flow_name, "the target acknowledges records again");
                }
                continue;
            };
            if let Some(transactions) = &mut self.transactions {
                // librdkafka will not commit a transaction with a failed record in it.
                if record.epoch == state.ledger.epoch() {
                    transactions.doom(format!("a record failed: {e}"));
                }
            }
            self.judge_failure(&record, &e, false, io);
        }
        self.flight.return_buffer(reports);
    }

    fn progress_failed(&mut self, slot: usize, offset: Option<i64>, error: &KafkaError) {
        let Some(state) = self.book.get_mut(slot) else {
            return;
        };
        match offset {
            Some(offset) => {
                if self.transactions.is_some() {
                    // librdkafka will not commit a transaction with a failed record in it.
                    warn!(flow = %self.ctx.flow_name, "storing progress failed: {error}; its transaction cannot commit: it is aborted and its records are copied again");
                } else {
                    warn!(flow = %self.ctx.flow_name, "storing progress failed: {error}; will store it again");
                }
                state.ledger.progress_failed(offset);
            }
            None => warn!(
                flow = %self.ctx.flow_name,
                "dropping the progress of {}[{}] failed: {error}",
                state.source_topic, state.partition
            ),
        }
    }

    /// Delivery reports at shutdown: acknowledgements still count, failures need no rewind.
    pub(super) fn handle_deliveries_after_stop(&mut self) {
        let reports = self.take_reports();
        self.house.reporter.tick(self.ctx.clock.now());
        for Delivery { tag, error, .. } in reports {
            let Tag::Record(record) = tag else {
                continue;
            };
            let Some(state) = self.book.get_mut(record.slot) else {
                continue;
            };
            state.reported();
            match error {
                // Exactly once: only a commit acknowledges.
                None if self.transactions.is_some() => {}
                None => {
                    if state.ledger.acknowledged(record.epoch, record.offset) {
                        self.house.reporter.acknowledged(
                            &mut state.meters,
                            record.bytes,
                            record.timestamp_ms,
                        );
                    }
                }
                // Nothing after a failed record may count as acknowledged.
                Some(_) => {
                    state.ledger.delivery_failed(record.epoch);
                }
            }
        }
    }

    /// Says once, when the target starts failing, that records will be copied again.
    pub(super) fn report_failure(&mut self, slot: usize, error: &KafkaError) {
        self.house.reporter.error(&format!(
            "delivery to {} failed: {error}",
            self.ctx.flow.target
        ));
        if self.flight.failure_is_news() {
            let state = &self.book[slot];
            warn!(
                flow = %self.ctx.flow_name,
                "delivery to the target failed ({error}); {}[{}] and any other failing partition \
                 will be copied again from the last acknowledged offset",
                state.remote_topic, state.partition
            );
        }
    }

    /// An idempotent producer that hit a fatal error (e.g. the target lost its producer state)
    /// cannot be used again: start a new one and copy everything unacknowledged again.
    pub(super) fn replace_producer<R: Reader>(
        &mut self,
        code: RDKafkaErrorCode,
        reason: &str,
        io: &mut Reading<'_, R>,
    ) {
        if code == RDKafkaErrorCode::GaplessGuarantee {
            warn!(flow = %self.ctx.flow_name, "the target refused a batch for good, and nothing after it was sent ({reason}); starting a new producer: every partition goes on from its last acknowledged record");
        } else {
            error!(flow = %self.ctx.flow_name, "the target producer failed ({code}: {reason}); starting a new one");
        }
        // What the old producer held is gone: its reports are stale once every partition is
        // rewound below.
        if let Err(e) = self.forget_producer() {
            return error!(flow = %self.ctx.flow_name, "cannot create a new target producer: {e}");
        }
        let now = self.ctx.clock.now();
        if let Some(transactions) = &mut self.transactions {
            transactions.ended();
            transactions.register_from(now);
        }
        for slot in self.book.slots() {
            if !self.book[slot].retired {
                self.rewind(slot, io);
            }
        }
    }
}
