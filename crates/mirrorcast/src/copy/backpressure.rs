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
    /// `None` before the first wait.
    wait_window: Option<Instant>,
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
            wait_window: None,
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

    /// The lane made the others wait from `since` until `now`.
    pub fn waited(&mut self, since: Instant, now: Instant) {
        let window_over = self
            .wait_window
            .is_none_or(|window| now.saturating_duration_since(window) >= WAIT_WINDOW);
        if window_over {
            self.wait_window = Some(since);
            self.waited = Duration::ZERO;
        }
        self.waited += now.saturating_duration_since(since);
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
    use crate::clock::ManualClock;

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
        let clock = ManualClock::new();
        let mut queue = Backpressure::new(1000, 100);
        assert!(!queue.out_of_patience());
        let since = clock.now();
        clock.advance(FANOUT_PATIENCE);
        queue.waited(since, clock.now());
        assert!(queue.out_of_patience());
        queue.left();
        assert!(!queue.out_of_patience());
    }

    #[test]
    fn short_waits_add_up_within_a_window_and_start_over_after_it() {
        let clock = ManualClock::new();
        let mut queue = Backpressure::new(1000, 100);
        let wait = |queue: &mut Backpressure, millis: u64| {
            let since = clock.now();
            clock.advance(Duration::from_millis(millis));
            queue.waited(since, clock.now());
        };
        for _ in 0..4 {
            wait(&mut queue, 100);
        }
        assert!(!queue.out_of_patience(), "400 ms of 500");
        clock.advance(WAIT_WINDOW);
        wait(&mut queue, 100);
        assert!(!queue.out_of_patience(), "a new window: 100 ms");
        for _ in 0..4 {
            wait(&mut queue, 100);
        }
        assert!(queue.out_of_patience(), "500 ms within one window");
    }
}
