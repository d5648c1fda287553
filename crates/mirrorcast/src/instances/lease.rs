//! The lease that lets a member of the group write: records, progress and the once-per-flow
//! duties. It holds while two things stay recent:
//! - the process runs: a clock thread ticks every 100 ms; the lease lasts half the session
//!   timeout from the last tick, so a process that stopped running (frozen, paused, starved)
//!   stops writing before the broker can hand its partitions to another member;
//! - the group's coordinator answers: a probe asks it for the group's members every heartbeat
//!   interval (at least three times a term), and the lease lasts half the session timeout from
//!   when the last probe that found this member was sent. A member cut off from the
//!   coordinator (whose heartbeats do not reach it either) stops writing at most half a
//!   session after its last heartbeat could have landed, while the coordinator waits a whole
//!   session (minus one heartbeat interval, below half a session) before it gives the
//!   member's partitions to another. This assumes
//!   the probe and the heartbeats reach the coordinator alike (the same broker, on two
//!   connections); when only the heartbeats fail, the member learns it at the end of the
//!   session from librdkafka's own check (a loss), as it did before the probe.
//!
//! After a gap in the ticks, and after a loss, the lease is withheld for a probation of two
//! heartbeat intervals: time for the broker to say the membership was lost, and for the copier
//! to drop what it lost, before anything is written again.
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
    /// Half a session after the last tick (`None`: on probation, or no tick yet).
    running_until: Option<Instant>,
    /// Half a session after the last probe the coordinator answered with this member.
    confirmed_until: Option<Instant>,
    /// When the group last took the partitions away: a probe sent before found a membership
    /// that ended since.
    lost_at: Option<Instant>,
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
            running_until: None,
            confirmed_until: None,
            lost_at: None,
            probation_until: None,
        }
    }

    /// The process ran at `now`.
    pub fn polled(&mut self, now: Instant) -> Poll {
        let seen = match self.last_poll {
            Some(last) if now.saturating_duration_since(last) > GAP => {
                self.running_until = None;
                self.probation_until = Some(now + self.probation);
                Poll::AfterGap(now.saturating_duration_since(last))
            }
            _ => Poll::Steady,
        };
        self.last_poll = Some(now);
        if self.probation_until.is_none_or(|end| now >= end) {
            self.probation_until = None;
            self.running_until = Some(now + self.term);
        }
        seen
    }

    /// The coordinator answered a probe sent at `sent_at` and listed this member.
    pub fn confirmed(&mut self, sent_at: Instant) {
        if self.lost_at.is_some_and(|lost| sent_at < lost) {
            return;
        }
        let until = sent_at + self.term;
        if self.confirmed_until.is_none_or(|known| until > known) {
            self.confirmed_until = Some(until);
        }
    }

    /// Whether the process runs but the coordinator's last confirmation is too old (or none
    /// came yet): what keeps the member from writing is the coordinator's silence.
    pub fn unconfirmed(&self, now: Instant) -> bool {
        self.running_until.is_some_and(|until| now < until)
            && self.confirmed_until.is_none_or(|until| now >= until)
    }

    /// The group took the partitions away without asking (session expired): nothing is
    /// written during a probation, while the copier drops them.
    pub fn lost(&mut self, now: Instant) {
        self.running_until = None;
        self.confirmed_until = None;
        self.lost_at = Some(now);
        self.probation_until = Some(now + self.probation);
    }

    /// Until when writes are allowed.
    pub fn valid_until(&self) -> Option<Instant> {
        Some(self.running_until?.min(self.confirmed_until?))
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

    /// The process runs and the coordinator confirms the member at `now`.
    fn steady(lease: &mut Lease, now: Instant) -> Poll {
        lease.confirmed(now);
        lease.polled(now)
    }

    #[test]
    fn steady_polling_keeps_the_lease_for_half_a_session() {
        let start = Instant::now();
        let mut lease = Lease::new(SESSION, HEARTBEAT);
        assert!(!valid(&lease, start), "nothing before the first poll");
        for step in 0..50 {
            let now = start + Duration::from_millis(100 * step);
            assert_eq!(steady(&mut lease, now), Poll::Steady);
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
        steady(&mut lease, start);
        let resumed = start + Duration::from_secs(10);
        steady(&mut lease, start + Duration::from_millis(100));
        assert!(!valid(&lease, resumed), "expired during the pause");
        assert_eq!(
            steady(&mut lease, resumed),
            Poll::AfterGap(Duration::from_millis(9900))
        );
        for step in 1..20 {
            let now = resumed + Duration::from_millis(100 * step);
            assert_eq!(steady(&mut lease, now), Poll::Steady);
            assert!(!valid(&lease, now), "on probation at {step}");
        }
        let after = resumed + HEARTBEAT * 2;
        steady(&mut lease, after);
        assert!(valid(&lease, after));
    }

    #[test]
    fn a_gap_over_two_seconds_starts_probation_and_a_loss_ends_the_lease_with_one() {
        let start = Instant::now();
        let mut lease = Lease::new(SESSION, HEARTBEAT);
        steady(&mut lease, start);
        assert_eq!(
            steady(&mut lease, start + Duration::from_millis(1900)),
            Poll::Steady
        );
        assert!(matches!(
            steady(&mut lease, start + Duration::from_millis(4000)),
            Poll::AfterGap(_)
        ));
        assert!(!valid(&lease, start + Duration::from_millis(4000)));
        for step in 41..=60 {
            steady(&mut lease, start + Duration::from_millis(100 * step));
        }
        let later = start + Duration::from_secs(6);
        assert!(valid(&lease, later));
        lease.lost(later);
        assert!(!valid(&lease, later));
        steady(&mut lease, later + Duration::from_millis(100));
        assert!(
            !valid(&lease, later + Duration::from_millis(100)),
            "probation"
        );
        for step in 2..=20 {
            steady(&mut lease, later + Duration::from_millis(100 * step));
        }
        assert!(valid(&lease, later + Duration::from_secs(2)));
    }

    #[test]
    fn a_running_process_the_coordinator_stops_confirming_stops_writing_half_a_session_later() {
        let start = Instant::now();
        let mut lease = Lease::new(SESSION, HEARTBEAT);
        lease.polled(start);
        assert!(
            !valid(&lease, start),
            "not before the coordinator confirmed"
        );
        assert!(lease.unconfirmed(start));
        lease.confirmed(start);
        assert!(valid(&lease, start) && !lease.unconfirmed(start));
        // Cut off from the coordinator: the process keeps running, no probe is answered.
        for step in 1..=40 {
            let now = start + Duration::from_millis(100 * step);
            assert_eq!(lease.polled(now), Poll::Steady);
            assert_eq!(valid(&lease, now), step < 30, "at {now:?}");
            assert_eq!(lease.unconfirmed(now), step >= 30, "at {now:?}");
        }
        // A late answer to a probe sent before counts from when it was sent.
        lease.confirmed(start + Duration::from_millis(500));
        assert!(!valid(&lease, start + Duration::from_millis(3500)));
        let answered = start + Duration::from_secs(4);
        lease.confirmed(answered);
        assert!(valid(&lease, answered) && !lease.unconfirmed(answered));
    }

    #[test]
    fn a_probe_sent_before_a_loss_does_not_renew_the_lease() {
        let start = Instant::now();
        let mut lease = Lease::new(SESSION, HEARTBEAT);
        steady(&mut lease, start);
        let lost = start + Duration::from_millis(100);
        lease.lost(lost);
        for step in 2..=30 {
            lease.polled(start + Duration::from_millis(100 * step));
        }
        let after_probation = start + Duration::from_secs(3);
        lease.confirmed(start + Duration::from_millis(50));
        assert!(
            !valid(&lease, after_probation),
            "confirmed a membership that ended"
        );
        lease.confirmed(after_probation);
        assert!(valid(&lease, after_probation));
    }
}
