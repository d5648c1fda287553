//! What a lane has said about its source and target: each condition is logged once when it
//! begins and once when it ends ([`crate::health::Health`]), and why the lane copies nothing
//! until someone acts, when it does not.
//!
//! Invariant: a condition is said once per change, never once per record.

use crate::health::Health;

#[derive(Default)]
pub(crate) struct Signals {
    /// Reading the source, as this lane sees it (its own reader, or the shared one).
    pub source: Health,
    /// Deliveries to the target.
    pub target: Health,
    /// Joining the shared reader.
    pub shared_join: Health,
    /// Records in flight with no report for longer than the delivery timeout.
    pub stall: Health,
    /// Commits that take longer than the delivery timeout.
    pub commit: Health,
    /// The target refusing transactions to this principal.
    pub refusal: Health,
    /// Transactions aborted since the last commit.
    pub abort: Health,
    /// Why the lane copies nothing until someone acts (transactions refused, fenced).
    pub failure: Option<String>,
}

impl Signals {
    /// Whether the lane's flow is degraded by what this lane sees.
    pub fn failing(&self) -> bool {
        self.target.is_failing() || self.source.is_failing() || self.stall.is_failing()
    }
}
