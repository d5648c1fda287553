//! What a lane has said about reading its source: each condition is logged once when it
//! begins and once when it ends ([`crate::health::Health`]). (What it said of its target is
//! [`super::in_flight`]'s, of its transactions the transaction driver's.)
//!
//! Invariant: a condition is said once per change, never once per record.

use crate::health::Health;

#[derive(Default)]
pub(crate) struct Signals {
    /// Reading the source, as this lane sees it (its own reader, or the shared one).
    pub source: Health,
    /// Joining the shared reader.
    pub shared_join: Health,
}
