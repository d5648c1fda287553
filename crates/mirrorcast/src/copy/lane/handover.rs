//! Partitions moving between instances of one replicator (`crate::instances`): the group
//! gives a lane partitions (`Acquire`, with progress read after the assignment), asks for them
//! back (`Release`), or takes them away (`Abandon`, the session expired). Exactly once, the
//! group hands out whole copy units (`crate::instances::units`): a lane registers its unit's
//! transactional id when the group gives the unit (`Fence`), before its progress is read, and
//! stands by once the unit is gone (`Yield`).
//!
//! Invariant: a released partition's acknowledged progress is handed to the target producer
//! and flushed (exactly once: committed) before the lane answers, and nothing is written for it
//! afterwards; an abandoned partition gets no write at all, so a member that lost its
//! partitions never moves their stored progress back; a transaction of a unit this process no
//! longer has never commits. Records of partitions let go, or sent before the lease lapsed,
//! that the target has not acknowledged are purged with the producer: none reaches the target
//! after the next owner's copies.

use std::time::Duration;

use tracing::{debug, error, info, warn};

use super::Lane;
use crate::copy::io::{Reader, Target};
use crate::copy::readers::Reading;
use crate::copy::transaction::{FenceState, Fencing, FENCE_WAIT};
use crate::plan::{FenceAnswer, FenceRefused, Reply};
use crate::progress::Progress;

/// How long a release waits for the target to acknowledge what is in flight. Bounded well
/// below a session timeout: a target that is down must not hold the group's rebalance.
const RELEASE_FLUSH: Duration = Duration::from_secs(5);
impl<T: Target> Lane<T> {
    /// The group gave this process `partitions`; `progress` was read after the assignment,
    /// so it includes what the previous owner stored when it let them go.
    pub(in crate::copy) fn acquire<R: Reader>(
        &mut self,
        partitions: Vec<(String, i32)>,
        progress: Progress,
        io: &mut Reading<'_, R>,
    ) {
        let Some(ours) = self.book.acquire(&partitions, &progress) else {
            return; // not in a group: every partition is ours already
        };
        if ours > 0 {
            debug!(flow = %self.ctx.flow_name, "the group gave this process {ours} partition(s) of this copier thread");
        }
        self.learn_recreated_topics(io);
        let routes = self.book.known_routes();
        self.add_routes(routes, io);
    }

    /// Progress read afresh may be stored under another topic ID than its route's: the topic
    /// may have been created again since the route was given (this process or the previous
    /// owner stored progress of the new one). Judged by the route alone, it would be copied
    /// again from its start: the source says which topic is there now.
    fn learn_recreated_topics<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        for topic in self.book.routes_with_other_stored_ids() {
            match io.readers.shared.topic_id(&topic) {
                // No ID now (the topic is gone again): the route's stands, so progress of
                // another topic is never taken for this one's.
                Ok(None) => {}
                Ok(id) => self.book.learn_topic_id(&topic, id),
                Err(e) => {
                    debug!(flow = %self.ctx.flow_name, "the ID of {topic} cannot be read ({e}): its route's stands")
                }
            }
        }
    }

    /// Hands `partitions` back to the group: stops reading them, waits (bounded) for what is
    /// in flight, stores their acknowledged progress and forgets them.
    pub(super) fn release<R: Reader>(
        &mut self,
        partitions: &[(String, i32)],
        io: &mut Reading<'_, R>,
    ) {
        let slots = self.take_back(partitions, io);
        if slots.is_empty() {
            return;
        }
        let started = self.ctx.clock.now();
        if self.transactions.is_some() {
            // Committed with the rest of the open transaction, progress included.
            self.finish_transaction(started + RELEASE_FLUSH, io);
            self.retire(&slots);
            return;
        }
        self.target.flush(RELEASE_FLUSH);
        // The partitions kept go on: their failures must rewind them as usual.
        self.handle_deliveries(io);
        // The group asked: this process is still a member, whatever its lease says.
        self.store_progress();
        self.target.flush(
            RELEASE_FLUSH
                .saturating_sub(self.ctx.clock.since(started))
                .max(Duration::from_secs(1)),
        );
        self.handle_deliveries(io);
        let unacknowledged: usize = slots
            .iter()
            .filter(|&&slot| self.book[slot].in_flight > 0)
            .count();
        self.retire(&slots);
        if unacknowledged > 0 {
            warn!(
                flow = %self.ctx.flow_name,
                "handed over {unacknowledged} partition(s) with records the target has not \
                 acknowledged yet: they are purged (the next owner copies them again from the \
                 stored progress), and this lane's other partitions go on from their last \
                 acknowledged record"
            );
            self.purge_unacknowledged(io);
        }
        info!(
            flow = %self.ctx.flow_name,
            "handed {} partition(s) over to another instance after storing their progress ({} ms)",
            slots.len(),
            self.ctx.clock.since(started).as_millis()
        );
    }

    /// The group took `partitions` away: stop at once and store nothing for them.
    pub(super) fn abandon<R: Reader>(
        &mut self,
        partitions: &[(String, i32)],
        io: &mut Reading<'_, R>,
    ) {
        let slots = self.take_back(partitions, io);
        if slots.is_empty() {
            return;
        }
        let unacknowledged = slots.iter().any(|&slot| self.book[slot].in_flight > 0);
        self.retire(&slots);
        warn!(
            flow = %self.ctx.flow_name,
            "lost {} partition(s) to the group (its session expired): stopped copying them \
             without storing progress; another instance continues from the progress stored \
             before{}",
            slots.len(),
            if unacknowledged { "; their records not acknowledged yet are purged" } else { "" }
        );
        if unacknowledged && self.transactions.is_none() {
            self.purge_unacknowledged(io);
        }
    }

    /// The lease lapsed (the group may have given this process's partitions to another
    /// member): what the producer still holds is purged, so nothing sent before the lapse
    /// reaches the target after the next owner's copies; the partitions go on from their last
    /// acknowledged record once the lease is renewed.
    pub(super) fn purge_when_lease_lapsed<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        if self.ctx.standing.may_write()
            || self.transactions.is_some()
            || self.target.in_flight() == 0
        {
            return;
        }
        warn!(
            flow = %self.ctx.flow_name,
            "the lease on this process's partitions lapsed with {} record(s) not acknowledged \
             by {}: they are purged, and copied again from the last acknowledged record once \
             the lease is renewed",
            self.target.in_flight(),
            self.ctx.flow.target
        );
        self.purge_unacknowledged(io);
    }

    /// Replaces the producer, purging what it holds unacknowledged (librdkafka purges a whole
    /// producer, not a partition), and rewinds every partition kept to its last acknowledged
    /// record. (Not with exactly once: there a unit's transaction is what never commits.)
    fn purge_unacknowledged<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        if let Err(e) = self.forget_producer() {
            return error!(flow = %self.ctx.flow_name, "cannot create a new target producer: {e}");
        }
        for slot in self.book.slots() {
            if !self.book[slot].retired {
                self.rewind(slot, io);
            }
        }
    }

    /// Exactly once in a group: the group gave this process `units`. When the lane's is one,
    /// it starts registering the unit's transactional id with a new producer, which fences the
    /// unit's previous owner: the coordinator ends that one's open transaction first, so the
    /// progress read afterwards is the last committed one, and the old owner can commit
    /// nothing more. The answer goes on `done` once registered, refused or timed out
    /// ([`Lane::settle_fence`]); the copier thread never waits for it.
    pub(super) fn fence<R: Reader>(
        &mut self,
        units: &[usize],
        done: Reply<FenceAnswer>,
        io: &mut Reading<'_, R>,
    ) {
        let unit = self.book.shard().index;
        let Some(transactions) = &self.transactions else {
            done.send((unit, Ok(())));
            return;
        };
        if !units.contains(&unit) {
            done.send((unit, Ok(())));
            return;
        }
        if transactions.refused_recently(self.ctx.clock.now()) {
            let refused = transactions.failure().map_or_else(
                || format!("{} refused transactions a moment ago", self.ctx.flow.target),
                str::to_string,
            );
            done.send((unit, Err(FenceRefused(refused))));
            return;
        }
        // Fenced again while copying (a stale report of a lost unit): what the open
        // transaction holds never commits, and the partitions go on from the progress read
        // after this fence, not from what the lane remembers.
        if self.book.live().next().is_some() {
            self.abandon_transaction(io);
            let ours = self.book.live_partitions();
            let slots = self.take_back(&ours, io);
            self.retire(&slots);
            self.book.unassign_unit();
        }
        // The old producer's registration, if any, was fenced by whoever had the unit since.
        if let Err(e) = self.forget_producer() {
            let refused = FenceRefused(format!("cannot create a target producer: {e}"));
            done.send((unit, Err(refused)));
            return;
        }
        let since = self.ctx.clock.now();
        if let Some(transactions) = &mut self.transactions {
            // Nothing of the unit is held here (it left, or was never here): nothing to copy
            // again.
            transactions.begin_fence(Fencing { since, done });
        }
    }

    /// Answers a fence in progress once its registration ended one way or the other.
    pub(super) fn settle_fence(&mut self) {
        let (now, grouped) = (self.ctx.clock.now(), self.ctx.standing.is_grouped());
        let Some(transactions) = &mut self.transactions else {
            return;
        };
        let Some(state) = transactions.fence_state(now, grouped) else {
            return;
        };
        let id = self.ctx.flow.transactional_id(self.book.shard().index);
        let answer = match state {
            FenceState::Pending => return,
            FenceState::Fenced => Ok(()),
            FenceState::TimedOut => {
                transactions.stand_by();
                Err(FenceRefused(format!(
                    "{} did not register transactional id {id} within {FENCE_WAIT:?}",
                    self.ctx.flow.target,
                )))
            }
            FenceState::Refused => Err(FenceRefused(transactions.failure().map_or_else(
                || format!("{} refused transactional id {id}", self.ctx.flow.target),
                str::to_string,
            ))),
        };
        if let Some(fencing) = transactions.take_fence() {
            let unit = self.book.shard().index;
            let waited = now.saturating_duration_since(fencing.since).as_millis();
            debug!(flow = %self.ctx.flow_name, "copy unit {unit}: fence answered after {waited} ms: {answer:?}");
            fencing.done.send((unit, answer));
        }
    }

    /// Exactly once in a group: `units` are no longer this process's. What the lane's open
    /// transaction still holds never commits here (its producer is dropped, the target aborts
    /// it), and the lane registers nothing until the group gives the unit again.
    pub(super) fn yield_units(&mut self, units: &[usize]) {
        if self.transactions.is_none() || !units.contains(&self.book.shard().index) {
            return;
        }
        // Also a registration still going on in the old producer's background stops here.
        if let Err(e) = self.forget_producer() {
            warn!(flow = %self.ctx.flow_name, "cannot create a new target producer: {e}");
        }
        let Some(transactions) = &mut self.transactions else {
            return;
        };
        transactions.ended();
        transactions.stand_by();
        if let Some(fencing) = transactions.take_fence() {
            let left = FenceRefused("the unit left meanwhile".to_string());
            fencing.done.send((self.book.shard().index, Err(left)));
        }
    }

    /// The unit went to another instance without this process being asked (its producer was
    /// fenced): its partitions are let go without a write, as an abandon.
    pub(super) fn drop_unit<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        let ours = self.book.live_partitions();
        let slots = self.take_back(&ours, io);
        self.retire(&slots);
        self.book.unassign_unit();
        self.yield_units(&[self.book.shard().index]);
    }

    /// Exactly once without a group: the lane's unit registered its id again after it was
    /// fenced from under it, and `progress` was read afterwards: its partitions go on from
    /// there (what the dropped transaction held is copied again).
    pub(super) fn refenced<R: Reader>(
        &mut self,
        unit: usize,
        progress: &Progress,
        io: &mut Reading<'_, R>,
    ) {
        if unit != self.book.shard().index || self.transactions.is_none() {
            return;
        }
        // Partitions still here (never dropped) restart from this progress too.
        let ours = self.book.live_partitions();
        let slots = self.take_back(&ours, io);
        self.retire(&slots);
        let stored = self.book.refenced(progress);
        info!(
            flow = %self.ctx.flow_name,
            "copy unit {unit} registered its transactional id on {} again: its partitions go \
             on from the progress read afterwards ({stored} stored)",
            self.ctx.flow.target
        );
        self.learn_recreated_topics(io);
        let routes = self.book.known_routes();
        self.add_routes(routes, io);
    }

    /// Replaces the target producer, dropping what the old one held without reports.
    pub(super) fn forget_producer(&mut self) -> rdkafka::error::KafkaResult<()> {
        self.target.replace()?;
        self.producer_replaced();
        Ok(())
    }

    /// The producer was replaced: nothing is in flight any more, and progress records it held
    /// may never have been written.
    pub(super) fn producer_replaced(&mut self) {
        self.flight.emptied();
        for state in self.book.iter_mut() {
            state.in_flight = 0;
            state.ledger.store_again();
        }
    }

    /// Stops reading the lane's slots among `partitions`, which are no longer this
    /// process's, and returns them.
    fn take_back<R: Reader>(
        &mut self,
        partitions: &[(String, i32)],
        io: &mut Reading<'_, R>,
    ) -> Vec<usize> {
        let slots = self.book.take_back(partitions);
        for &slot in &slots {
            self.stop_reading(slot, io);
        }
        slots
    }

    /// Slots that are no longer copied: no progress, status or metrics from them.
    fn retire(&mut self, slots: &[usize]) {
        let now = self.ctx.clock.now();
        for &slot in slots {
            self.book.retire(slot, now);
        }
    }
}
