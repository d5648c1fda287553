//! The stop signal every long-running thread watches: set once (SIGINT/SIGTERM, or a test),
//! seen by all, and usable as an interruptible sleep. A [`Shutdown::child`] also stops when
//! its parent does: one attempt of a supervised unit can be stopped alone.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Signal {
    stopped: Mutex<bool>,
    condvar: Condvar,
    children: Mutex<Vec<Weak<Signal>>>,
}

impl Signal {
    fn trigger(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.condvar.notify_all();
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for child in children.iter().filter_map(Weak::upgrade) {
            child.trigger();
        }
    }
}

#[derive(Clone, Default)]
pub struct Shutdown(Arc<Signal>);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A signal triggered by its own [`Shutdown::trigger`] or by this one's.
    pub fn child(&self) -> Shutdown {
        let child = Shutdown::new();
        let mut children = self.0.children.lock().unwrap_or_else(|e| e.into_inner());
        children.retain(|c| c.strong_count() > 0);
        children.push(Arc::downgrade(&child.0));
        drop(children);
        if self.is_triggered() {
            child.trigger();
        }
        child
    }

    pub fn trigger(&self) {
        self.0.trigger();
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until shutdown.
    pub fn wait(&self) {
        while !self.sleep(Duration::from_secs(3600)) {}
    }

    /// Sleeps for `duration` or until shutdown; returns whether shutdown was triggered.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut stopped = self.0.stopped.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            stopped = self
                .0
                .condvar
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

    #[test]
    fn a_child_stops_with_its_parent_but_not_the_other_way_round() {
        let parent = Shutdown::new();
        let (first, second) = (parent.child(), parent.child());
        first.trigger();
        assert!(!parent.is_triggered() && !second.is_triggered());
        let waiting = second.clone();
        let handle = std::thread::spawn(move || waiting.sleep(Duration::from_secs(60)));
        parent.trigger();
        assert!(handle.join().unwrap(), "a sleeping child wakes up");
        assert!(
            parent.child().is_triggered(),
            "born stopped after the parent stopped"
        );
    }
}
