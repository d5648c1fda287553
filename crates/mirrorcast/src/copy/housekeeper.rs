//! A lane's chores besides copying, as data: where progress, offset syncs and metrics go, and
//! when each of its timed chores (progress, publishing, heartbeats) is due on the lane's clock.
//!
//! Invariant: a chore is due only once its interval has passed since it last ran.

use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use super::report::FlowReporter;
use super::syncs::SyncWriter;

/// How often offsets, lag and state are published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// When a lane last did each of its timed chores.
pub(crate) struct Timers {
    pub last_progress_write: Instant,
    pub last_publish: Instant,
    pub last_heartbeat: Option<Instant>,
}

impl Timers {
    pub fn new(now: Instant) -> Self {
        Timers {
            last_progress_write: now,
            last_publish: now,
            last_heartbeat: None,
        }
    }

    pub fn progress_due(&self, interval: Duration, now: Instant) -> bool {
        now.saturating_duration_since(self.last_progress_write) >= interval
    }

    pub fn publish_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_publish) >= PUBLISH_EVERY
    }

    pub fn heartbeat_due(&self, interval: Duration, now: Instant) -> bool {
        self.last_heartbeat
            .is_none_or(|at| now.saturating_duration_since(at) >= interval)
    }
}

/// A lane's chores besides copying: where progress, offset syncs and metrics go, and when.
pub(crate) struct Housekeeper {
    pub timers: Timers,
    /// Where offset syncs go, when they are on.
    pub syncs: Option<SyncWriter>,
    pub reporter: FlowReporter,
    /// Counts the records of the lane's own reader.
    pub read_own: Counter,
}

impl Housekeeper {
    pub fn new(
        reporter: FlowReporter,
        syncs: Option<SyncWriter>,
        read_own: Counter,
        now: Instant,
    ) -> Self {
        Housekeeper {
            timers: Timers::new(now),
            syncs,
            reporter,
            read_own,
        }
    }
}
