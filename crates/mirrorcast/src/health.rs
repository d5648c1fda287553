//! Whether one activity (reading a source, delivering to a target, syncing configs, writing
//! offset syncs…) works, so that a failure is logged once when it starts and once when it ends,
//! never once per attempt.
//!
//! Invariant: [`Health::failed`] is true only on the first failure after success, and
//! [`Health::recovered`] only on the first success after failure.

use std::fmt::Display;

use tracing::{info, warn};

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Health {
    failing: bool,
}

impl Health {
    /// Records a failure; true if the activity worked until now (say so).
    pub fn failed(&mut self) -> bool {
        !std::mem::replace(&mut self.failing, true)
    }

    /// Records a success; true if the activity was failing until now (say so).
    pub fn recovered(&mut self) -> bool {
        std::mem::take(&mut self.failing)
    }

    pub fn is_failing(&self) -> bool {
        self.failing
    }

    /// [`Health::failed`], with the usual warning for a retried activity of `flow`.
    pub fn warn_failed(&mut self, flow: &str, what: &str, error: &dyn Display) {
        if self.failed() {
            warn!(flow, "{what}: {error}; retrying with backoff");
        }
    }

    /// [`Health::recovered`], with the usual line for an activity of `flow`.
    pub fn say_recovered(&mut self, flow: &str, what: &str) {
        if self.recovered() {
            info!(flow, "{what}: working again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transitions_are_reported() {
        let mut health = Health::default();
        assert!(!health.recovered(), "working from the start");
        assert!(health.failed());
        assert!(!health.failed(), "still failing: nothing new");
        assert!(health.is_failing());
        assert!(health.recovered());
        assert!(!health.recovered());
        assert!(health.failed(), "a new failure is news again");
    }
}
