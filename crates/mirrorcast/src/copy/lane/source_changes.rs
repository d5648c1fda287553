//! The lane when its source changes under it: a topic deleted and created again (told by its
//! topic ID at a start or a refresh, or by offsets going back), and records deleted at the
//! source before they were copied.
//!
//! Invariant: no record of a new topic is skipped because an earlier topic of the same name
//! was copied up to a higher offset; each change is logged once and counted.

use rdkafka::Offset;
use tracing::{debug, warn};

use super::Lane;
use crate::copy::io::{Reader, Target};
use crate::copy::readers::Reading;
use crate::plan::Route;

impl<T: Target> Lane<T> {
    /// The source topic of `route` has another ID than its partitions here were read from: it
    /// was deleted and created again meanwhile (offsets of the new topic may even be past the
    /// old position, so nothing else tells). Its partitions start over from the new topic's
    /// beginning (its end with `auto.offset.reset = latest`); an open transaction holding
    /// their records aborts.
    pub(super) fn restart_topic_created_again<R: Reader>(
        &mut self,
        route: &Route,
        io: &mut Reading<'_, R>,
    ) {
        let Some(id) = &route.topic_id else {
            return;
        };
        let mut restarted = Vec::new();
        for slot in self.book.live_slots_of(&route.source_topic) {
            let state = &mut self.book[slot];
            match &state.topic_id {
                Some(known) if known != id => restarted.push((slot, known.clone())),
                Some(_) => {}
                // Resumed from progress stored without an ID (by MM2, or before topic IDs).
                None => state.topic_id = Some(id.clone()),
            }
        }
        let Some((_, earlier)) = restarted.first().cloned() else {
            return;
        };
        warn!(
            flow = %self.ctx.flow_name,
            "{} was deleted and created again (topic ID {earlier} is {id} now): its {} \
             partition(s) here are copied again from the new topic's {}",
            route.source_topic,
            restarted.len(),
            if self.ctx.flow.start_at_end { "end (auto.offset.reset = latest)" } else { "beginning" }
        );
        if let Some(transactions) = &mut self.transactions {
            transactions.doom(format!("{} was created again", route.source_topic));
        }
        for (slot, _) in restarted {
            let state = &self.book[slot];
            let start_at = self
                .ctx
                .flow
                .start_at_end
                .then(|| io.readers.shared.end_offset(&state.source_topic, state.partition))
                .and_then(|end| {
                    end.inspect_err(|e| warn!(flow = %self.ctx.flow_name, "the end of {}[{}] cannot be read ({e}): copying from its beginning instead", state.source_topic, state.partition)).ok()
                });
            let now = self.ctx.clock.now();
            self.book[slot].topic_created_again(id.clone(), start_at, now);
            self.take_away(slot, io);
        }
    }

    /// The reader of partition `slot` handed out `offset` where `expected` was next. Back: the
    /// source's offsets went back (topic re-created or truncated, cluster rebuilt), and copying
    /// goes on from `offset` rather than skipping every record up to the old position. Forward,
    /// past the log's start `low`: records were deleted at the source before they were copied.
    /// Either is logged and counted, never hidden.
    pub fn source_moved(
        &mut self,
        slot: usize,
        expected: i64,
        offset: i64,
        low: Option<i64>,
        reader: &impl Reader,
    ) {
        let state = &mut self.book[slot];
        debug!(flow = %self.ctx.flow_name, "{}[{}]: the reader handed out {offset} where {expected} was next (log start {low:?}, lane at {:?})", state.source_topic, state.partition, state.next);
        if offset < expected {
            // Copying starts over on whatever topic is there now: its ID is the one to store,
            // and a route that brings it later is no second re-creation.
            state.topic_id = match reader.topic_id(&state.source_topic) {
                Ok(id) => id,
                Err(e) => {
                    debug!(flow = %self.ctx.flow_name, "the ID of {} cannot be read ({e}); the next refresh brings it", state.source_topic);
                    None
                }
            };
            // Partitions of it given later (a rebalance) are judged by the new ID too.
            let (topic, id) = (state.source_topic.clone(), state.topic_id.clone());
            if id.is_some() {
                self.book.learn_topic_id(&topic, id);
            }
            let state = &mut self.book[slot];
            warn!(
                flow = %self.ctx.flow_name,
                "{}[{}]: the source's offsets went back from {expected} to {offset} (the topic \
                 was re-created or truncated, or the cluster rebuilt); copying from {offset}",
                state.source_topic, state.partition
            );
            state.meters.resets.inc();
            state.ledger.restart_at(offset);
            state.next = Offset::Offset(offset);
            return;
        }
        let from = match state.next {
            Offset::Offset(next) => next.max(expected),
            _ => expected,
        };
        let Some(until) = low.map(|low| low.min(offset)).filter(|&until| until > from) else {
            return; // a gap the log has (compaction, transaction markers)
        };
        warn!(
            flow = %self.ctx.flow_name,
            "{}[{}]: {} record(s) at offsets {from}..{until} were deleted at the source (retention \
             or DeleteRecords) before they were copied",
            state.source_topic,
            state.partition,
            until - from
        );
        state.meters.lost_at_source.inc_by((until - from) as u64);
    }
}
