//! The lease that lets a member of the group write: records, progress and the once-per-flow
//! duties. A clock thread of the process ticks every 100 ms; the lease lasts half the session
//! timeout from the last tick, so a process that stopped running (frozen, paused, starved)
//! stops writing before the broker can hand its partitions to another member. After a gap in
//! the ticks, and after a loss, the lease is withheld for a probation of two heartbeat
//! intervals: time for the broker to say the membership was lost, and for the copier to drop
//! what it lost, before anything is written again.
//!
//! Pure: the caller passes the clock.

use std::time::{Duration, Instant};

/// Ticks further apart than this count as a gap (the clock ticks every 100 ms).
pub const GAP: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Lease {
    /// Half the session timeout.
    term: Duration,
    /// Two heartbeat intervals.
    probation: Duration,
    last_poll: Option<Instant>,
    valid_until: Option<Instant>,
    probation_until: Option<Instant>,
}

/// What [`Lease::polled`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    Steady,
    /// The membership had not polled for this long: the lease is withheld for a while.
    AfterGap(Duration),
}

impl Lease {
    pub fn new(session_timeout: Duration, heartbeat_interval: Duration) -> Self {
        Lease {
            term: session_timeout / 2,
            probation: heartbeat_interval * 2,
            last_poll: None,
            valid_until: None,
            probation_until: None,
        }
    }

    /// The process ran at `now`.
    pub fn polled(&mut self, now: Instant) -> Poll {
        let seen = match self.last_poll {
            Some(last) if now.saturating_duration_since(last) > GAP => {
                self.valid_until = None;
                self.probation_until = Some(now + self.probation);
                Poll::AfterGap(now.saturating_duration_since(last))
            }
            _ => Poll::Steady,
        };
        self.last_poll = Some(now);
        if self.probation_until.is_none_or(|end| now >= end) {
            self.probation_until = None;
            self.valid_until = Some(now + self.term);
        }
        seen
    }

    /// The group took the partitions away without asking (session expired): nothing is
    /// written during a probation, while the copier drops them.
    pub fn lost(&mut self, now: Instant) {
        self.valid_until = None;
        self.probation_until = Some(now + self.probation);
    }

    /// Until when writes are allowed.
    pub fn valid_until(&self) -> Option<Instant> {
        self.valid_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_secs(6);
    const HEARTBEAT: Duration = Duration::from_secs(1);

    fn valid(lease: &Lease, at: Instant) -> bool {
        lease.valid_until().is_some_and(|until| at < until)
    }

    #[test]
    fn steady_polling_keeps_the_lease_for_half_a_session() {
        let start = Instant::now();
        let mut lease = Lease::new(SESSION, HEARTBEAT);
        assert!(!valid(&lease, start), "nothing before the first poll");
        for step in 0..50 {
            let now = start + Duration::from_millis(100 * step);
            assert_eq!(lease.polled(now), Poll::Steady);
            assert!(valid(&lease, now));
        }
        let last = start + Duration::from_millis(4900);
        assert!(valid(&lease, last + Duration::from_millis(2900)));
        assert!(
            !valid(&lease, last + Duration::from_secs(3)),
            "expires unpolled"
        );
    }

    #[test]
    fn after_a_pause_writes_wait_two_heartbeats_even_though_polling_resumed() {
        let start = Instant::now();
        let mut lease = Lease::new(SESSION, HEARTBEAT);
        lease.polled(start);
        let resumed = start + Duration::from_secs(10);
        lease.polled(start + Duration::from_millis(100));
        assert!(!valid(&lease, resumed), "expired during the pause");
        assert_eq!(
            lease.polled(resumed),
            Poll::AfterGap(Duration::from_millis(9900))
        );
        for step in 1..20 {
            let now = resumed + Duration::from_millis(100 * step);
            assert_eq!(lease.polled(now), Poll::Steady);
            assert!(!valid(&lease, now), "on probation at {step}");
        }
        let after = resumed + HEARTBEAT * 2;
        lease.polled(after);
        assert!(valid(&lease, after));
    }

    #[test]
    fn a_gap_over_two_seconds_starts_probation_and_a_loss_ends_the_lease_with_one() {
        let start = Instant::now();
        let mut lease = Lease::new(SESSION, HEARTBEAT);
        lease.polled(start);
        assert_eq!(
            lease.polled(start + Duration::from_millis(1900)),
            Poll::Steady
        );
        assert!(matches!(
            lease.polled(start + Duration::from_millis(4000)),
            Poll::AfterGap(_)
        ));
        assert!(!valid(&lease, start + Duration::from_millis(4000)));
        for step in 41..=60 {
            lease.polled(start + Duration::from_millis(100 * step));
        }
        let later = start + Duration::from_secs(6);
        assert!(valid(&lease, later));
        lease.lost(later);
        assert!(!valid(&lease, later));
        lease.polled(later + Duration::from_millis(100));
        assert!(
            !valid(&lease, later + Duration::from_millis(100)),
            "probation"
        );
        for step in 2..=20 {
            lease.polled(later + Duration::from_millis(100 * step));
        }
        assert!(valid(&lease, later + Duration::from_secs(2)));
    }
}
