//! A lane's chores besides copying: where progress, offset syncs and metrics go, and when each
//! of its timed chores (progress, publishing, heartbeats) is due on the lane's clock.
//!
//! Invariant: a chore is due only once its interval has passed since it last ran.

use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use super::report::FlowReporter;
use super::syncs::SyncWriter;

/// How often offsets, lag and state are published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// A lane's chores besides copying: where progress, offset syncs and metrics go, and when
/// each timed chore is due.
pub(crate) struct Housekeeper {
    /// Where offset syncs go, when they are on.
    pub syncs: Option<SyncWriter>,
    pub reporter: FlowReporter,
    /// Counts the records of the lane's own reader.
    pub read_own: Counter,
    last_progress_write: Instant,
    last_publish: Instant,
    last_heartbeat: Option<Instant>,
    /// The target refused a heartbeat for good (e.g. no Write ACL on `heartbeats`): none is
    /// written any more (each would fail the gapless producer and rewind every partition).
    heartbeats_refused: bool,
}

impl Housekeeper {
    pub fn new(
        reporter: FlowReporter,
        syncs: Option<SyncWriter>,
        read_own: Counter,
        now: Instant,
    ) -> Self {
        Housekeeper {
            syncs,
            reporter,
            read_own,
            last_progress_write: now,
            last_publish: now,
            last_heartbeat: None,
            heartbeats_refused: false,
        }
    }

    /// Whether progress is due at `now`, every `interval`.
    pub fn progress_due(&self, interval: Duration, now: Instant) -> bool {
        now.saturating_duration_since(self.last_progress_write) >= interval
    }

    /// Progress was written (or tried) at `now`.
    pub fn progress_written(&mut self, now: Instant) {
        self.last_progress_write = now;
    }

    /// Whether offsets, lag and state are due to be published at `now`.
    pub fn publish_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_publish) >= PUBLISH_EVERY
    }

    pub fn published(&mut self, now: Instant) {
        self.last_publish = now;
    }

    /// Whether a heartbeat is due at `now`, every `interval` (the first at once); if so, it
    /// counts as written.
    /// The target refused a heartbeat for good: returns whether that is news.
    pub fn heartbeats_refused(&mut self) -> bool {
        !std::mem::replace(&mut self.heartbeats_refused, true)
    }

    pub fn heartbeat_now(&mut self, interval: Duration, now: Instant) -> bool {
        if self.heartbeats_refused {
            return false;
        }
        let due = self
            .last_heartbeat
            .is_none_or(|at| now.saturating_duration_since(at) >= interval);
        if due {
            self.last_heartbeat = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Observability;

    fn housekeeper(now: Instant) -> Housekeeper {
        let reporter = FlowReporter::new(Observability::new(), "eu", "na");
        Housekeeper::new(reporter, None, Counter::default(), now)
    }

    #[test]
    fn each_chore_is_due_once_its_interval_passed_since_it_last_ran() {
        let t0 = Instant::now();
        let mut house = housekeeper(t0);
        let every = Duration::from_secs(5);
        assert!(!house.progress_due(every, t0 + every - Duration::from_millis(1)));
        assert!(house.progress_due(every, t0 + every));
        house.progress_written(t0 + every);
        assert!(!house.progress_due(every, t0 + every * 2 - Duration::from_millis(1)));
        assert!(!house.publish_due(t0));
        assert!(house.publish_due(t0 + PUBLISH_EVERY));
        house.published(t0 + PUBLISH_EVERY);
        assert!(!house.publish_due(t0 + PUBLISH_EVERY));
    }

    #[test]
    fn the_first_heartbeat_goes_at_once_then_one_per_interval() {
        let t0 = Instant::now();
        let mut house = housekeeper(t0);
        let every = Duration::from_secs(1);
        assert!(house.heartbeat_now(every, t0));
        assert!(!house.heartbeat_now(every, t0 + Duration::from_millis(999)));
        assert!(house.heartbeat_now(every, t0 + every));
        assert!(!house.heartbeat_now(every, t0 + every));
    }
}
