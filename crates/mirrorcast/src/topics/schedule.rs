//! When the topic manager's jobs run: periodic jobs ([`Every`]) and set-up steps retried until
//! they succeed ([`Retry`]). Time is passed in, so the rules are tested without waiting.
//!
//! Invariant: a job with no interval never becomes due again once done, and a failed step is
//! retried with backoff until it succeeds or shutdown comes.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::health::Health;
use crate::shutdown::Shutdown;

/// A job run every `interval` (or once, without one) from the moment it is started.
#[derive(Debug, Clone)]
pub(crate) struct Every {
    interval: Option<Duration>,
    next: Option<Instant>,
}

impl Every {
    /// Not due until [`Every::start`].
    pub fn new(interval: Option<Duration>) -> Self {
        Every {
            interval,
            next: None,
        }
    }

    /// Due at once; a job without an interval runs this once.
    pub fn due_now(interval: Option<Duration>, now: Instant) -> Self {
        Every {
            interval,
            next: Some(now),
        }
    }

    /// Makes a periodic job due now, unless it is started already.
    pub fn start(&mut self, now: Instant) {
        if self.interval.is_some() {
            self.next.get_or_insert(now);
        }
    }

    pub fn is_due(&self, now: Instant) -> bool {
        self.next.is_some_and(|next| now >= next)
    }

    /// The job ran at `now`: due again one interval later.
    pub fn done(&mut self, now: Instant) {
        self.next = self.interval.map(|interval| now + interval);
    }

    /// The job failed: due again after `delay`.
    pub fn retry_after(&mut self, now: Instant, delay: Duration) {
        self.next = Some(now + delay);
    }

    pub fn next(&self) -> Option<Instant> {
        self.next
    }
}

/// Retries set-up steps of one flow with backoff, logging each failing step once.
pub(crate) struct Retry<'a> {
    pub flow: &'a str,
    pub shutdown: &'a Shutdown,
    pub backoff: &'a mut Backoff,
    pub health: &'a mut Health,
    /// Told of every failure (`what: error`), e.g. to show it in the flow's status.
    pub on_failure: &'a dyn Fn(&str),
}

impl Retry<'_> {
    /// Calls `attempt` until it succeeds; `None` when shutdown came first.
    pub fn until<T, E: Display>(
        &mut self,
        what: &str,
        mut attempt: impl FnMut() -> Result<T, E>,
    ) -> Option<T> {
        loop {
            match attempt() {
                Ok(value) => return Some(value),
                Err(e) => {
                    self.health.warn_failed(self.flow, what, &e);
                    (self.on_failure)(&format!("{what}: {e}"));
                    if self.shutdown.sleep(self.backoff.next_delay()) {
                        return None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_periodic_job_runs_from_its_start_every_interval() {
        let t0 = Instant::now();
        let mut job = Every::new(Some(Duration::from_secs(10)));
        assert!(!job.is_due(t0 + Duration::from_secs(100)), "not started");
        job.start(t0);
        assert!(job.is_due(t0));
        job.done(t0);
        assert!(!job.is_due(t0 + Duration::from_secs(9)));
        job.start(t0 + Duration::from_secs(1));
        assert_eq!(
            job.next(),
            Some(t0 + Duration::from_secs(10)),
            "start keeps the plan"
        );
        job.retry_after(t0, Duration::from_secs(2));
        assert!(job.is_due(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn a_job_without_interval_runs_once() {
        let t0 = Instant::now();
        let mut job = Every::due_now(None, t0);
        assert!(job.is_due(t0));
        job.done(t0);
        assert_eq!(job.next(), None);
        job.start(t0);
        assert_eq!(job.next(), None, "an off job stays off");
    }

    #[test]
    fn a_step_is_retried_until_it_succeeds_and_shutdown_ends_it() {
        let shutdown = Shutdown::new();
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let mut health = Health::default();
        let mut retry = Retry {
            flow: "a->b",
            shutdown: &shutdown,
            backoff: &mut backoff,
            health: &mut health,
            on_failure: &|_| {},
        };
        let mut attempts = 0;
        let value = retry.until("step", || {
            attempts += 1;
            if attempts < 3 {
                Err("refused")
            } else {
                Ok(attempts)
            }
        });
        assert_eq!(value, Some(3));
        assert!(retry.health.is_failing(), "recovery is the caller's to say");
        shutdown.trigger();
        assert_eq!(retry.until("step", || Err::<(), _>("refused")), None);
    }
}
