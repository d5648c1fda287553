//! The lane dealing with a failed delivery: retried from the last acknowledged record, or,
//! refused for good ([`crate::copy::refused`] tells which), the refused record of a batch found
//! and dealt with by Kafka Connect's `errors.tolerance`: its partition stops there (`none`), or
//! it is written to the dead-letter topic or passed over (`all`).
//!
//! Invariant: a refused record is never passed over unseen (it is counted, logged and shown),
//! and nothing after it counts as acknowledged until it is dealt with: it is sent or skipped
//! only when nothing else of its partition is in flight, and nothing after it is sent until its
//! fate is known.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::{debug, error, warn};

use super::{Lane, Sent};
use crate::config::ErrorsConfig;
use crate::copy::io::{Outgoing, Reader, RecordTag, SourceRecord, Tag, Target};
use crate::copy::partitions::Mode;
use crate::copy::readers::Reading;
use crate::copy::refused::{dead_letter_headers, exception_class, judge, Refusal, Verdict};

impl<T: Target> Lane<T> {
    /// A delivery of `record` failed with `error` (`local`: refused by librdkafka before
    /// sending): retried from the last acknowledged record, or, refused for good, dealt with by
    /// `errors.tolerance`.
    pub(super) fn judge_failure<R: Reader>(
        &mut self,
        record: &RecordTag,
        error: &KafkaError,
        local: bool,
        io: &mut Reading<'_, R>,
    ) {
        let state = &mut self.book[record.slot];
        let current = record.epoch == state.ledger.epoch();
        debug!(flow = %self.ctx.flow_name, "{}[{}] record {} of epoch {} failed ({error}; current epoch {})", state.source_topic, state.partition, record.offset, record.epoch, state.ledger.epoch());
        let verdict = match judge(error, local) {
            // Sent alone and still too large: it is the one.
            Verdict::BatchTooLarge if state.alone == Some(record.offset) => Verdict::Refused,
            verdict => verdict,
        };
        if record.dead_letter && verdict != Verdict::Retry {
            let reason = format!(
                "{}; the dead-letter topic refused it too: {error}",
                state.refusal.as_ref().map_or("", |r| r.reason.as_str())
            );
            return self.stop_partition(record.slot, record.offset, reason, error, io);
        }
        match verdict {
            // Even of an attempt already given up (its batch's earlier records failed first, as
            // bystanders): the record itself is refused, and would be again.
            Verdict::Refused => self.refused(record.slot, record.offset, current, error, io),
            Verdict::BatchTooLarge => {
                state.note_too_large(record.offset, record.bytes);
                if state.ledger.delivery_failed(record.epoch) {
                    // librdkafka never splits a refused batch: later ones are made smaller.
                    let current = self.target.batch_bytes();
                    let smaller = self.flight.batches.shrink(current, record.bytes);
                    let message = format!(
                        "{}[{}]: the target refused a batch as too large ({error}); sending its \
                         largest record alone to find out whether it is the cause{}",
                        state.remote_topic,
                        state.partition,
                        smaller.map_or(String::new(), |bytes| format!(
                            ", and batches of at most {bytes} bytes from now on"
                        ))
                    );
                    warn!(flow = %self.ctx.flow_name, "{message}");
                    self.house.reporter.error(&message);
                    self.take_away(record.slot, io);
                }
            }
            Verdict::Retry => {
                if state.ledger.delivery_failed(record.epoch) {
                    self.report_failure(record.slot, error);
                    self.take_away(record.slot, io);
                }
            }
        }
    }

    /// The record at `offset` of `slot` will never be taken: count it, then stop the partition
    /// there, or deal with it (dead letter, skip) when it is read again. `current`: it was sent
    /// in the partition's current attempt (else that attempt is already given up).
    fn refused<R: Reader>(
        &mut self,
        slot: usize,
        offset: i64,
        current: bool,
        error: &KafkaError,
        io: &mut Reading<'_, R>,
    ) {
        let state = &mut self.book[slot];
        let known = state.refused_at(offset);
        let alone = state.alone == Some(offset);
        match (&self.ctx.flow.errors, known) {
            // Sent alone (nothing before it unacknowledged): the partition stops right there.
            (ErrorsConfig::StopPartition, _) if alone => {
                let reason = error.to_string();
                if !known {
                    self.count_refusal(slot, offset, &reason);
                }
                return self.stop_partition(slot, offset, reason, error, io);
            }
            // Dealt with when it is read again.
            (_, true) => return,
            _ => {}
        }
        let reason = error.to_string();
        self.count_refusal(slot, offset, &reason);
        let state = &mut self.book[slot];
        let refusal = Refusal {
            offset,
            reason: reason.clone(),
            exception: exception_class(error),
        };
        let what = match &self.ctx.flow.errors {
            ErrorsConfig::StopPartition => None,
            ErrorsConfig::DeadLetter { topic, .. } => Some(format!("written to {topic}")),
            _ => Some("skipped (errors.tolerance = all)".to_string()),
        };
        if let Some(what) = what {
            warn!(
                flow = %self.ctx.flow_name,
                "{}[{}] offset {offset}: the target refused the record for good ({reason}); \
                 it is {what}",
                state.source_topic, state.partition
            );
        }
        // Whatever the policy, the records before it (its batch failed with it) are copied
        // first; then it goes alone, and is dealt with (`errors.tolerance = none`: the
        // partition stops right there).
        state.refusal = Some(refusal);
        state.alone = Some(offset);
        if current {
            state.ledger.rewind();
            self.take_away(slot, io);
        }
    }

    /// A record refused for good, counted once; the flow shows degraded while records are
    /// refused (whatever the policy, they are not copied).
    fn count_refusal(&mut self, slot: usize, offset: i64, reason: &str) {
        let state = &mut self.book[slot];
        state.meters.refused.inc();
        self.flight.refused(self.ctx.clock.now());
        self.house.reporter.error(&format!(
            "{}[{}] offset {offset}: the target refused the record for good ({reason})",
            state.source_topic, state.partition
        ));
    }

    /// `errors.tolerance = none`: the partition stops at `offset` (its progress stays before
    /// it) and says so, while every other partition goes on.
    fn stop_partition<R: Reader>(
        &mut self,
        slot: usize,
        offset: i64,
        reason: String,
        error: &KafkaError,
        io: &mut Reading<'_, R>,
    ) {
        if !matches!(self.book[slot].mode, Mode::Waiting(_) | Mode::Stopped) {
            self.stop_reading(slot, io);
        }
        let state = &mut self.book[slot];
        state.ledger.rewind();
        state.mode = Mode::Stopped;
        state.meters.stopped.set(1);
        let message = format!(
            "{}[{}] stopped at offset {offset}: the target refused the record for good ({reason}); \
             the other partitions go on. Fix the target (e.g. the topic's max.message.bytes) and \
             restart, or set errors.tolerance = all (with errors.deadletterqueue.topic.name)",
            state.source_topic, state.partition
        );
        error!(flow = %self.ctx.flow_name, "{message}");
        self.house.reporter.error(&message);
        state.refusal = Some(Refusal {
            offset,
            reason,
            exception: exception_class(error),
        });
    }

    /// Sends the refused record at `offset` where `errors.tolerance = all` says, once nothing
    /// else of its partition is in flight.
    pub(super) fn deal_with_refused(&mut self, slot: usize, message: &impl SourceRecord) -> Sent {
        let state = &mut self.book[slot];
        let Some(refusal) = state.refusal.clone() else {
            return Sent::Done;
        };
        match &self.ctx.flow.errors {
            ErrorsConfig::DeadLetter { topic, .. } => {
                let headers = dead_letter_headers(
                    message.headers(),
                    &self.ctx.flow.progress.connector,
                    &state.source_topic,
                    state.partition,
                    &refusal,
                );
                let record = Outgoing {
                    topic,
                    partition: None,
                    key: message.key(),
                    payload: message.payload(),
                    // Written now, as Connect writes dead letters (the record's own timestamp
                    // may be why it was refused).
                    timestamp_ms: None,
                    headers: Some(headers),
                    tag: Tag::Record(RecordTag {
                        slot,
                        epoch: state.ledger.epoch(),
                        offset: refusal.offset,
                        bytes: 0,
                        timestamp_ms: None,
                        dead_letter: true,
                    }),
                };
                match self.target.send(record) {
                    Ok(()) => {
                        if let Some(transactions) = &mut self.transactions {
                            let epoch = state.ledger.epoch();
                            transactions.sent(slot, epoch, refusal.offset, 0, None);
                        }
                        state.sent(refusal.offset);
                        Sent::Done
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        Sent::Full
                    }
                    Err((e, _)) => Sent::Failed(e),
                }
            }
            _ => {
                // Passed over: nothing of the partition is in flight, so it is acknowledged in
                // order.
                state.next = rdkafka::Offset::Offset(refusal.offset + 1);
                match &mut self.transactions {
                    // Passed over with the transaction: were it aborted, the records before
                    // would be copied again, and this one passed over again.
                    Some(transactions) => {
                        let epoch = state.ledger.epoch();
                        transactions.sent(slot, epoch, refusal.offset, 0, None);
                    }
                    None => {
                        state
                            .ledger
                            .acknowledged(state.ledger.epoch(), refusal.offset);
                    }
                }
                state.refusal = None;
                state.alone = None;
                Sent::Done
            }
        }
    }
}
