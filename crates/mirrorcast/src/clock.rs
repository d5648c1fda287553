//! Time as a dependency. Everything that decides by time (patience windows, delivery and fence
//! timeouts, leases, schedules, backoffs) asks a [`Clock`] instead of `Instant::now()`, so unit
//! tests move time forward with a [`ManualClock`] instead of sleeping.
//!
//! Invariant: a clock never goes backwards; every handle cloned from one clock reads the same
//! time.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where the present comes from.
trait TimeSource: Send + Sync {
    fn now(&self) -> Instant;
}

struct SystemTime;

impl TimeSource for SystemTime {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A handle on the present; cheap to clone, shared by the threads of a process.
#[derive(Clone)]
pub struct Clock(Arc<dyn TimeSource>);

impl Clock {
    /// The machine's monotonic clock.
    pub fn system() -> Self {
        Clock(Arc::new(SystemTime))
    }

    pub fn now(&self) -> Instant {
        self.0.now()
    }

    /// How long since `earlier` (zero if `earlier` is in the future).
    pub fn since(&self, earlier: Instant) -> Duration {
        self.now().saturating_duration_since(earlier)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// A clock that moves only when told: tests fast-forward timeouts with it.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<Instant>>);

impl TimeSource for Mutex<Instant> {
    fn now(&self) -> Instant {
        *self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ManualClock {
    /// Starts at the machine's present (an `Instant` cannot be made otherwise).
    pub fn new() -> Self {
        ManualClock(Arc::new(Mutex::new(Instant::now())))
    }

    /// The clock to hand to the code under test.
    pub fn clock(&self) -> Clock {
        Clock(self.0.clone())
    }

    pub fn now(&self) -> Instant {
        self.0.now()
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_every_handle_sees_it() {
        let manual = ManualClock::new();
        let (a, b) = (manual.clock(), manual.clock());
        let start = a.now();
        assert_eq!(b.now(), start);
        manual.advance(Duration::from_secs(90));
        assert_eq!(a.now(), start + Duration::from_secs(90));
        assert_eq!(b.since(start), Duration::from_secs(90));
        assert_eq!(b.since(start + Duration::from_secs(100)), Duration::ZERO);
    }

    #[test]
    fn the_system_clock_does_not_go_back() {
        let clock = Clock::system();
        let first = clock.now();
        assert!(clock.now() >= first);
    }
}
