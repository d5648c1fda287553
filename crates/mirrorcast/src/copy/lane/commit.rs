//! A lane's transactions on its target (exactly once), step by step and never blocking the
//! copier thread for long: registering the transactional id, committing each transaction with
//! the progress of what it holds, aborting one that cannot commit and copying its records
//! again, and what the target's refusals mean. The driver that decides each step is
//! [`crate::copy::transaction`]; this file carries its decisions out against the target.
//!
//! Invariant: every step waits at most the time it is given, so a target that is down keeps
//! only its own lane waiting: the other targets of the source commit on their own clock.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::{debug, error, info, warn};

use super::Lane;
use crate::copy::io::Tag;
use crate::copy::io::{Outgoing, Reader, Target, TxnFatal, TxnOutcome};
use crate::copy::partitions::Mode;
use crate::copy::readers::Reading;
use crate::copy::transaction::{
    Covered, Finish, Transactions, TxnStep, TxnView, COORDINATOR_PATIENCE, REFUSED_RETRY,
};
use crate::progress::codec;

impl<T: Target> Lane<T> {
    /// One step of the lane's transactions, waiting at most `wait`.
    pub(super) fn advance_transaction<R: Reader>(
        &mut self,
        wait: Duration,
        io: &mut Reading<'_, R>,
    ) {
        self.transaction_step(wait, io);
        self.settle_fence();
    }

    fn transaction_step<R: Reader>(&mut self, wait: Duration, io: &mut Reading<'_, R>) {
        let Some(transactions) = &mut self.transactions else {
            return;
        };
        let now = self.ctx.clock.now();
        let view = TxnView {
            open_since: self.target.transaction_open_since(),
            may_write: self.ctx.standing.may_write(),
            grouped: self.ctx.standing.is_grouped(),
        };
        match transactions.step(now, view) {
            TxnStep::Wait => {}
            TxnStep::Register { since, said } => self.register(since, said, wait, io),
            TxnStep::Discard => {
                transactions.ended(); // nothing went out
            }
            TxnStep::Commit => self.begin_commit(wait, io),
            TxnStep::ContinueCommit { since } => self.commit_step(since, wait, io),
            TxnStep::Abort { since } => self.abort_step(since, wait, io),
            // The refused producer is unusable: a new one registers again.
            TxnStep::AskAgain => match self.target.replace() {
                Ok(()) => transactions.register_from(now),
                Err(e) => {
                    warn!(flow = %self.ctx.flow_name, "cannot create a new target producer: {e}");
                    transactions.retry_later(now);
                }
            },
        }
    }

    /// Whether this lane's open transaction is due to end.
    pub fn transaction_due(&self) -> bool {
        self.transactions
            .as_ref()
            .is_some_and(|t| t.due(self.target.transaction_open_since(), self.ctx.clock.now()))
    }

    /// Ends the open transaction now (another lane of the thread commits).
    pub(in crate::copy) fn commit_now<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        let ready = self
            .transactions
            .as_ref()
            .is_some_and(Transactions::is_ready);
        if ready && self.target.transaction_open_since().is_some() {
            self.begin_commit(Duration::ZERO, io);
        }
    }

    /// Registers the transactional id; said once when the target has no coordinator for it.
    fn register<R: Reader>(
        &mut self,
        since: Instant,
        said: bool,
        wait: Duration,
        io: &mut Reading<'_, R>,
    ) {
        let id = self.transactional_id();
        let Some(transactions) = &mut self.transactions else {
            return;
        };
        match self.target.init_transactions(wait) {
            TxnOutcome::Done => {
                if transactions.refusal_ended() || said {
                    self.house.reporter.recovered();
                }
                transactions.registered_now();
                info!(flow = %self.ctx.flow_name, "copying exactly once: transactions on {} as {id}", self.ctx.flow.target);
            }
            TxnOutcome::Pending | TxnOutcome::Abortable(_) => {
                if Transactions::coordinator_silent(since, said, self.ctx.clock.now()) {
                    let message = format!(
                        "{} has not registered transactional id {} for {:?}: it has no \
                         transaction coordinator (a cluster with fewer brokers than \
                         `transaction.state.log.replication.factor`, or below \
                         `transaction.state.log.min.isr`, has none); nothing of this flow is \
                         copied until it answers",
                        self.ctx.flow.target, id, COORDINATOR_PATIENCE
                    );
                    error!(flow = %self.ctx.flow_name, "{message}");
                    self.house.reporter.failed(&message);
                    transactions.silence_said(since);
                }
            }
            TxnOutcome::Fatal(fatal) => self.transactions_fatal(fatal, io),
        }
    }

    pub(in crate::copy) fn transactional_id(&self) -> String {
        self.ctx.flow.transactional_id(self.book.shard().index)
    }

    /// Ends the open transaction: adds the progress of every partition it holds, then commits;
    /// aborts instead when it is doomed.
    fn begin_commit<R: Reader>(&mut self, wait: Duration, io: &mut Reading<'_, R>) {
        if self.prepare_commit() {
            self.commit_step(self.ctx.clock.now(), wait, io);
        } else {
            self.abort_step(self.ctx.clock.now(), wait, io);
        }
    }

    /// Adds the progress records to the open transaction and moves to committing; false when it
    /// must abort instead (doomed, a partition rewound, a progress record refused).
    fn prepare_commit(&mut self) -> bool {
        let Some(transactions) = &mut self.transactions else {
            return false;
        };
        let partitions = &self.book;
        if let Some(slot) = transactions.rewound_since(|slot| {
            partitions
                .get(slot)
                .filter(|s| !s.retired)
                .map(|s| s.ledger.epoch())
        }) {
            let state = &partitions[slot];
            transactions.doom(format!(
                "{}[{}] was rewound in it",
                state.source_topic, state.partition
            ));
        }
        if let Some(reason) = transactions.doomed().map(str::to_string) {
            transactions.aborting(reason, self.ctx.clock.now());
            return false;
        }
        let topic = self.ctx.flow.progress_topic();
        let covered: Vec<(usize, i64)> = transactions.covered().map(|(s, c)| (s, c.last)).collect();
        for (slot, last) in covered {
            let state = &self.book[slot];
            if state.retired {
                continue; // no longer this lane's: its progress is not ours to write
            }
            let key = self.ctx.progress_key(&state.source_topic, state.partition);
            let value = codec::encode_value(last, state.topic_id.as_ref());
            let tag = Tag::Progress {
                slot,
                offset: Some(last),
            };
            let mut record = Outgoing::internal(&topic, &key, Some(&value), tag);
            // The queue may be full of this transaction's records: they go out meanwhile.
            let deadline = self.ctx.clock.now() + self.flight.delivery_timeout();
            loop {
                match self.target.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if self.ctx.clock.now() < deadline =>
                    {
                        record = back;
                        self.target.serve(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        transactions.aborting(
                            format!("its progress record was refused: {e}"),
                            self.ctx.clock.now(),
                        );
                        return false;
                    }
                }
            }
        }
        transactions.committing(self.ctx.clock.now());
        true
    }

    fn commit_step<R: Reader>(&mut self, since: Instant, wait: Duration, io: &mut Reading<'_, R>) {
        match self.target.commit(wait) {
            TxnOutcome::Done => {
                self.handle_deliveries(io);
                self.committed();
            }
            TxnOutcome::Pending => {
                let (now, timeout) = (self.ctx.clock.now(), self.flight.delivery_timeout());
                let overdue = self
                    .transactions
                    .as_mut()
                    .is_some_and(|t| t.end_overdue(since, now, timeout));
                if overdue {
                    let message = format!(
                        "{} has not completed a commit for {:?}; the transaction stays open and \
                         commits once it answers",
                        self.ctx.flow.target,
                        self.ctx.clock.since(since)
                    );
                    warn!(flow = %self.ctx.flow_name, "{message}");
                    self.house.reporter.error(&message);
                }
            }
            TxnOutcome::Abortable(reason) => {
                let now = self.ctx.clock.now();
                if let Some(transactions) = &mut self.transactions {
                    transactions.aborting(reason, now);
                }
                self.abort_step(now, wait, io);
            }
            TxnOutcome::Fatal(fatal) => self.transactions_fatal(fatal, io),
        }
    }

    /// The transaction committed: what it held is acknowledged and stored, and the offset
    /// syncs of its records are written.
    fn committed(&mut self) {
        let Some(transactions) = &mut self.transactions else {
            return;
        };
        let (covered, syncs) = transactions.concluded();
        for (slot, held) in covered {
            let state = &mut self.book[slot];
            if state.retired {
                continue;
            }
            state.committed(held.last);
            debug!(flow = %self.ctx.flow_name, "{}[{}] committed up to {}", state.source_topic, state.partition, held.last);
            let Covered {
                records,
                bytes,
                first_timestamp_ms,
                last_timestamp_ms,
                ..
            } = held;
            self.house.reporter.committed(
                &mut state.meters,
                records,
                bytes,
                [first_timestamp_ms, last_timestamp_ms],
            );
        }
        if let Some(writer) = &mut self.house.syncs {
            for sync in &syncs {
                writer.emit(sync, &self.target);
            }
        }
        self.house.reporter.transaction_ended("committed");
        if transactions.commit_completed() {
            info!(flow = %self.ctx.flow_name, "{} commits again", self.ctx.flow.target);
        }
    }

    fn abort_step<R: Reader>(&mut self, since: Instant, wait: Duration, io: &mut Reading<'_, R>) {
        match self.target.abort(wait) {
            TxnOutcome::Done => self.aborted(io),
            TxnOutcome::Pending | TxnOutcome::Abortable(_) => {
                let (now, timeout) = (self.ctx.clock.now(), self.flight.delivery_timeout());
                let Some(transactions) = &mut self.transactions else {
                    return;
                };
                if transactions.end_overdue(since, now, timeout) {
                    let message = format!(
                        "{} has not completed an abort for {:?} ({}); the transaction stays \
                         open, and its records are copied again once it answers",
                        self.ctx.flow.target,
                        self.ctx.clock.since(since),
                        transactions.doomed().unwrap_or("it could not commit"),
                    );
                    warn!(flow = %self.ctx.flow_name, "{message}");
                    self.house.reporter.error(&message);
                }
                if Transactions::abort_given_up(since, now) {
                    let unit = self.book.shard().index;
                    warn!(
                        flow = %self.ctx.flow_name,
                        "{} has not completed an abort for {:?}: copy unit {unit} drops its \
                         producer and registers again, and its partitions go on from the \
                         progress stored",
                        self.ctx.flow.target,
                        self.ctx.clock.since(since)
                    );
                    self.drop_unit(io);
                    self.ctx.lost.report(unit);
                }
            }
            TxnOutcome::Fatal(fatal) => self.transactions_fatal(fatal, io),
        }
    }

    /// The transaction aborted: every partition it held is copied again from right after its
    /// last committed record.
    fn aborted<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        let Some(transactions) = &mut self.transactions else {
            return;
        };
        let reason = transactions.doomed().unwrap_or("").to_string();
        let (covered, _) = transactions.concluded();
        // The first of a run of aborts (until a commit); all are counted.
        let first = transactions.abort_completed();
        let mut again = 0;
        for slot in covered.into_keys() {
            if !self.book[slot].retired && self.book[slot].mode != Mode::Stopped {
                // Before the purged records' reports come: they are of an older epoch then.
                self.rewind(slot, io);
                again += 1;
            }
        }
        self.house.reporter.transaction_ended("aborted");
        if first {
            warn!(
                flow = %self.ctx.flow_name,
                "aborted a transaction on {} ({reason}); its {again} partition(s) are copied \
                 again from their last commit",
                self.ctx.flow.target
            );
        }
    }

    /// The producer cannot go on: fenced (stop), refused (failed, asked again later), or
    /// broken (a new producer registers again and everything uncommitted is copied again).
    pub(super) fn transactions_fatal<R: Reader>(
        &mut self,
        fatal: TxnFatal,
        io: &mut Reading<'_, R>,
    ) {
        let Some(transactions) = &self.transactions else {
            return;
        };
        if transactions.gave_up() {
            // Known: the producer keeps saying so until it is replaced. librdkafka's own error
            // line for it reaches the status too: the flow's last error stays the one that
            // says what to do.
            if let Some(message) = transactions.failure() {
                self.house.reporter.failed(message);
            }
            return;
        }
        let id = self.transactional_id();
        match fatal {
            TxnFatal::Fenced(reason) => {
                // Another process registered the id (it took the unit over), or the target's
                // coordinator ended a transaction that outlived its timeout and bumped the
                // id's epoch. Either way nothing held here may commit: the partitions are
                // dropped without a write, and whoever gives units decides (the unit is
                // fenced again and its progress read afterwards, unless it was taken over).
                let unit = self.book.shard().index;
                warn!(
                    flow = %self.ctx.flow_name,
                    "copy unit {unit} lost transactional id {id} on {} (this producer was \
                     fenced: {reason}); its partitions are dropped here without writing until \
                     the unit is fenced again, unless another process took it over",
                    self.ctx.flow.target
                );
                self.drop_unit(io);
                self.ctx.lost.report(unit);
            }
            TxnFatal::Refused(reason) => {
                let message = format!(
                    "{} refuses transactions to {} ({reason}): its principal needs WRITE and \
                     DESCRIBE on the transactional ids starting with `{}` (a prefixed \
                     TransactionalId ACL) and WRITE on the copied topics; nothing is copied \
                     until it has them (asked again every {REFUSED_RETRY:?})",
                    self.ctx.flow.target,
                    self.ctx.flow_name,
                    self.ctx.flow.transactional_id_prefix()
                );
                self.house.reporter.failed(&message);
                self.abandon_transaction(io);
                let now = self.ctx.clock.now();
                if let Some(transactions) = &mut self.transactions {
                    // Once, until transactions work again: it is asked again every so often.
                    if transactions.refusal_is_news() {
                        error!(flow = %self.ctx.flow_name, "{message}");
                    }
                    transactions.refused(message, now);
                }
            }
            TxnFatal::Broken(reason) => {
                self.replace_producer(RDKafkaErrorCode::Fatal, &reason, io);
            }
        }
    }

    /// What the open transaction held will never commit: copied again when it can be.
    pub(super) fn abandon_transaction<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        let Some(transactions) = &mut self.transactions else {
            return;
        };
        let (covered, _) = transactions.ended();
        for slot in covered.into_keys() {
            if !self.book[slot].retired {
                self.rewind(slot, io);
            }
        }
    }

    /// Commits the open transaction before `deadline` (shutdown, a release), or aborts it.
    /// Returns whether no transaction is left open.
    pub(super) fn finish_transaction<R: Reader>(
        &mut self,
        deadline: Instant,
        io: &mut Reading<'_, R>,
    ) -> bool {
        loop {
            let Some(transactions) = &self.transactions else {
                return true;
            };
            let open = self.target.transaction_open_since().is_some();
            let left = deadline.saturating_duration_since(self.ctx.clock.now());
            match transactions.finish(open) {
                Finish::Done { left_open } => return !left_open,
                Finish::Commit => {
                    if !self.prepare_commit() {
                        continue;
                    }
                }
                Finish::ContinueCommit { since } => self.commit_step(since, left, io),
                Finish::Abort { since } => self.abort_step(since, left, io),
            }
            if left.is_zero() {
                warn!(flow = %self.ctx.flow_name, "the last transaction on {} did not end in time: the target aborts it; its records are copied again", self.ctx.flow.target);
                return false;
            }
        }
    }
}
