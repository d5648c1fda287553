//! The stop signal every long-running thread watches: set once (SIGINT/SIGTERM, or a test),
//! seen by all, and usable as an interruptible sleep.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct Shutdown(Arc<(Mutex<bool>, Condvar)>);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn trigger(&self) {
        let (flag, condvar) = &*self.0;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        condvar.notify_all();
    }

    pub fn is_triggered(&self) -> bool {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until shutdown.
    pub fn wait(&self) {
        while !self.sleep(Duration::from_secs(3600)) {}
    }

    /// Sleeps for `duration` or until shutdown; returns whether shutdown was triggered.
    pub fn sleep(&self, duration: Duration) -> bool {
        let (flag, condvar) = &*self.0;
        let deadline = Instant::now() + duration;
        let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            stopped = condvar
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_ends_early_on_trigger() {
        let shutdown = Shutdown::new();
        let other = shutdown.clone();
        let handle = std::thread::spawn(move || other.sleep(Duration::from_secs(60)));
        shutdown.trigger();
        assert!(handle.join().unwrap());
        assert!(shutdown.is_triggered());
    }

    #[test]
    fn sleep_times_out_without_trigger() {
        assert!(!Shutdown::new().sleep(Duration::from_millis(10)));
    }
}
