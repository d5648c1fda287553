//! When a lane's target is too slow, apart from any I/O: how full its producer queue is, and
//! how long it has made the shared reader wait. A full queue is the one backpressure signal;
//! the lane waits on it while it shares the reader, or stops reading ahead while it catches up.
//!
//! Invariant: a lane leaves the shared reader only after it made the others wait
//! [`FANOUT_PATIENCE`] within one [`WAIT_WINDOW`], so a brief stall never splits the reads.

use std::time::{Duration, Instant};

/// How long, within [`WAIT_WINDOW`], a lane whose target queue is full may make the others
/// wait while another lane keeps up, before it leaves to catch up on its own reader. Counting
/// the waits (not one wait) catches a target that is slow, not only one that stalls.
pub(crate) const FANOUT_PATIENCE: Duration = Duration::from_millis(500);
pub(crate) const WAIT_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Backpressure {
    /// The target's queue was full at the last send.
    pub full: bool,
    /// How long the lane made the others wait since `wait_window` began.
    waited: Duration,
    wait_window: Instant,
    /// Bytes of copied records sent and not yet reported, against the producer's limit.
    outstanding_bytes: u64,
    limit_bytes: u64,
    limit_messages: u64,
}

impl Backpressure {
    /// Limits of the producer's queue (`queue.buffering.max.kbytes`, `.max.messages`).
    pub fn new(limit_bytes: u64, limit_messages: u64) -> Self {
        Backpressure {
            full: false,
            waited: Duration::ZERO,
            wait_window: Instant::now(),
            outstanding_bytes: 0,
            limit_bytes,
            limit_messages,
        }
    }

    /// Whether the queue can take a batch more (reading ahead of a full queue would only make
    /// the lane's own reader fetch it again). `in_flight`: records the producer holds.
    pub fn has_room(&self, in_flight: u64) -> bool {
        in_flight < self.limit_messages * 3 / 4 && self.outstanding_bytes < self.limit_bytes * 3 / 4
    }

    pub fn sent(&mut self, bytes: u32) {
        self.full = false;
        self.outstanding_bytes += u64::from(bytes);
    }

    pub fn reported(&mut self, bytes: u32) {
        self.outstanding_bytes = self.outstanding_bytes.saturating_sub(u64::from(bytes));
    }

    /// The producer was dropped with everything it held.
    pub fn emptied(&mut self) {
        self.outstanding_bytes = 0;
        self.full = false;
    }

    /// The lane made the others wait from `since` until now.
    pub fn waited(&mut self, since: Instant) {
        if self.wait_window.elapsed() >= WAIT_WINDOW {
            self.wait_window = since;
            self.waited = Duration::ZERO;
        }
        self.waited += since.elapsed();
    }

    /// Whether the lane has made the others wait long enough to leave the shared reader.
    pub fn out_of_patience(&self) -> bool {
        self.waited >= FANOUT_PATIENCE
    }

    /// The lane left the shared reader: its patience starts over.
    pub fn left(&mut self) {
        self.waited = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ends_at_three_quarters_of_either_limit() {
        let mut queue = Backpressure::new(1000, 100);
        assert!(queue.has_room(74));
        assert!(!queue.has_room(75));
        queue.sent(750);
        assert!(!queue.has_room(0));
        queue.reported(1);
        assert!(queue.has_room(0));
        queue.emptied();
        assert!(queue.has_room(0) && !queue.full);
    }

    #[test]
    fn patience_counts_waits_within_the_window() {
        let mut queue = Backpressure::new(1000, 100);
        let long_ago = Instant::now() - FANOUT_PATIENCE;
        assert!(!queue.out_of_patience());
        queue.waited(long_ago);
        assert!(queue.out_of_patience());
        queue.left();
        assert!(!queue.out_of_patience());
    }
}
