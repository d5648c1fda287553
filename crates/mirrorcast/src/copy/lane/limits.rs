//! The target's limits, as they shape what a lane sends: the producer's batches fit the
//! smallest `max.message.bytes` of the lane's remote topics (librdkafka has one batch size per
//! producer and never splits a refused batch), and a record that alone is larger than its
//! remote topic allows is refused for good before it is sent.
//!
//! Invariant: the producer is started anew with another batch size only with nothing in
//! flight and no transaction open, so no record is purged unreported.

use tracing::{info, warn};

use super::Lane;
use crate::copy::io::{Reader, SourceRecord, Target};
use crate::copy::readers::Reading;
use crate::copy::refused::lone_batch_bytes;
use crate::kafka::ffi::owned_raw_headers;
use crate::plan::Route;

impl<T: Target> Lane<T> {
    /// The routes' limits for the lane's partitions, and the batch size they call for.
    pub(super) fn take_limits(&mut self, routes: &[Route]) {
        for route in routes {
            for slot in self.book.live_slots_of(&route.source_topic) {
                self.book[slot].limit = route.max_message_bytes;
            }
        }
        let limits = self
            .book
            .live()
            .filter_map(|s| Some((&*s.remote_topic, s.limit?)));
        let Some(sized) = self
            .flight
            .batches
            .follow(self.target.batch_bytes(), limits)
        else {
            return;
        };
        match sized.by {
            Some(topic) => info!(
                flow = %self.ctx.flow_name,
                "batches to {} hold at most {} bytes from now on: {topic}'s max.message.bytes",
                self.ctx.flow.target,
                sized.bytes
            ),
            None => info!(
                flow = %self.ctx.flow_name,
                "batches to {} hold up to {} bytes again (batch.size)",
                self.ctx.flow.target,
                sized.bytes
            ),
        }
    }

    /// Starts the producer anew with the batch size waiting, once nothing is in flight and no
    /// transaction is open; until then the lane sends nothing more.
    pub(super) fn resize_batches_when_idle<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        let Some(bytes) = self.flight.batches.pending() else {
            return;
        };
        if self.target.in_flight() > 0 || self.target.transaction_open_since().is_some() {
            return;
        }
        // Reports the old producer still holds (an abort flushes into it) count first.
        self.handle_deliveries(io);
        if let Err(e) = self.target.resize_batches(bytes) {
            return warn!(flow = %self.ctx.flow_name, "cannot start a target producer with {bytes}-byte batches: {e}; trying again");
        }
        self.flight.batches.applied();
        self.producer_replaced();
        if let Some(transactions) = &mut self.transactions {
            transactions.ended();
            transactions.register_from(self.ctx.clock.now());
        }
    }

    /// Whether a batch size change waits for the producer to empty.
    pub(super) fn resizing(&self) -> bool {
        self.flight.batches.pending().is_some()
    }

    /// Whether the record is larger than the remote topic of `slot` allows, even alone (only
    /// uncompressed records can be told before sending).
    pub(super) fn too_large_for_target(&self, slot: usize, message: &impl SourceRecord) -> bool {
        let Some(limit) = self.book[slot].limit else {
            return false;
        };
        let (key, value) = (message.key(), message.payload());
        let bytes = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        // Far below the limit: no need to count the headers' bytes.
        if bytes.saturating_mul(2) < limit as usize || self.target.compresses() {
            return false;
        }
        let headers = message
            .headers()
            .map(|h| owned_raw_headers(&h))
            .unwrap_or_default();
        lone_batch_bytes(key, value, &headers) > limit as usize
    }
}
