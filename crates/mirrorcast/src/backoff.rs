//! Retry pacing for everything that talks to a cluster: exponential backoff with jitter and a
//! cap. Hand-written because it is a plain value shared by blocking threads and async tasks;
//! the crates for it wrap the retried call, which does not fit a loop that also watches for
//! shutdown.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// The delay before the next attempt: doubles each time up to the cap, with ±20 % jitter so
    /// that many flows retrying one cluster do not do it in step.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = rand::random_range(0.8..1.2);
        base.mul_f64(jitter)
    }

    /// Back to the initial delay after a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let delays: Vec<f64> = (0..5).map(|_| b.next_delay().as_secs_f64()).collect();
        for (delay, base) in delays.iter().zip([1.0, 2.0, 4.0, 4.0, 4.0]) {
            assert!(*delay >= base * 0.8 && *delay <= base * 1.2, "{delays:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }
}
