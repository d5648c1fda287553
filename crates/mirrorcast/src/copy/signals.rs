//! What a lane has said about its source and target: each condition is logged once when it
//! begins and once when it ends ([`crate::health::Health`]). (What its transactions said is
//! the transaction driver's.)
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
}

impl Signals {
    /// Whether the lane's flow is degraded by what this lane sees.
    pub fn failing(&self) -> bool {
        self.target.is_failing() || self.source.is_failing() || self.stall.is_failing()
    }
}
