//! What is in flight from a lane to its target: how much more the producer queue may take
//! ([`super::backpressure`]), after how long silence counts as failing, and the buffer delivery
//! reports come back in.
//!
//! Invariant: the queue's account is credited for every record sent and debited for every
//! report, so a lane never waits on a queue the producer has already emptied.

use std::time::Duration;

use super::backpressure::Backpressure;
use super::io::Delivery;

/// What is in flight to a lane's target: the producer queue's room, when silence counts as
/// failing, and the report buffer handed back and forth with the target.
pub(crate) struct InFlight {
    pub queue: Backpressure,
    /// After this long with records in flight and no report, the target counts as failing
    /// (the producer itself never gives a record up: see `connect_lane`).
    pub delivery_timeout: Duration,
    pub spare_reports: Vec<Delivery>,
}

impl InFlight {
    pub fn new(queue: Backpressure, delivery_timeout: Duration) -> Self {
        InFlight {
            queue,
            delivery_timeout,
            spare_reports: Vec::new(),
        }
    }
}
