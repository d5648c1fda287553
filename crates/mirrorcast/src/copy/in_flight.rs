//! What is in flight from a lane to its target, and what it says about the target: how much
//! more the producer queue may take ([`super::backpressure`]), how long the lane made the
//! others wait, whether deliveries fail or go unanswered past the delivery timeout (a stall),
//! and the buffer delivery reports come back in. It decides what is news; the lane says it.
//!
//! Invariant: the queue's account is credited for every record sent and debited for every
//! report, so a lane never waits on a queue the producer has already emptied; a failing or
//! stalled target is news once when it begins and once when it ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backpressure::Backpressure;
use super::batch_size::BatchSize;
use super::io::Delivery;
use super::partitions::PartitionState;
use crate::health::Health;

/// What the once-a-second stall check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StallNews {
    /// Nothing changed.
    Quiet,
    /// The target began to leave `topic[partition]` (and `others` partitions) unanswered.
    Began {
        topic: Arc<str>,
        partition: i32,
        others: usize,
    },
    /// Every record in flight is answered again.
    Ended,
}

/// A lane's deliveries to its target.
pub(crate) struct InFlight {
    queue: Backpressure,
    /// After this long with records in flight and no report, the target counts as failing
    /// (the producer itself never gives a record up: see `connect_lane`).
    delivery_timeout: Duration,
    /// The buffer delivery reports are taken into, handed back and forth with the target.
    spare_reports: Vec<Delivery>,
    /// Deliveries to the target fail.
    failing: Health,
    /// Records in flight with no report for longer than the delivery timeout.
    stall: Health,
    /// How large the producer's batches may be.
    pub batches: BatchSize,
    /// When the target last refused a record for good: the flow shows degraded for
    /// [`REFUSING_FOR`] after each.
    last_refusal: Option<Instant>,
    refusing: Health,
}

/// How long a refused record keeps the flow degraded.
pub(crate) const REFUSING_FOR: Duration = Duration::from_secs(60);

impl InFlight {
    pub fn new(queue: Backpressure, delivery_timeout: Duration) -> Self {
        InFlight {
            queue,
            delivery_timeout,
            spare_reports: Vec::new(),
            failing: Health::default(),
            stall: Health::default(),
            batches: BatchSize::default(),
            last_refusal: None,
            refusing: Health::default(),
        }
    }

    /// The target refused a record for good at `now`: whether that is news (the first since
    /// [`REFUSING_FOR`] passed without one).
    pub fn refused(&mut self, now: Instant) -> bool {
        self.last_refusal = Some(now);
        self.refusing.failed()
    }

    /// Whether the target refused a record within [`REFUSING_FOR`] (as of the last check).
    pub fn refusing(&self) -> bool {
        self.refusing.is_failing()
    }

    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }

    /// Whether the producer can take a batch more; `in_flight`: the records it holds.
    pub fn has_room(&self, in_flight: u64) -> bool {
        self.queue.has_room(in_flight)
    }

    /// The producer took a record of `bytes`.
    pub fn sent(&mut self, bytes: u32) {
        self.queue.sent(bytes);
    }

    /// A record of `bytes` was reported on (acknowledged or failed).
    pub fn reported(&mut self, bytes: u32) {
        self.queue.reported(bytes);
    }

    /// The producer refused a record: its queue is full.
    pub fn queue_filled(&mut self) {
        self.queue.full = true;
    }

    /// Whether the producer's queue was full at the last send.
    pub fn queue_full(&self) -> bool {
        self.queue.full
    }

    /// The producer was dropped with everything it held.
    pub fn emptied(&mut self) {
        self.queue.emptied();
    }

    /// The lane made the others wait from `since` until `now`.
    pub fn waited(&mut self, since: Instant, now: Instant) {
        self.queue.waited(since, now);
    }

    /// Whether the lane has made the others wait long enough to leave the shared reader.
    pub fn out_of_patience(&self) -> bool {
        self.queue.out_of_patience()
    }

    /// The lane left the shared reader: its patience starts over.
    pub fn left_shared_reader(&mut self) {
        self.queue.left();
    }

    /// An empty buffer to take reports into.
    pub fn report_buffer(&mut self) -> Vec<Delivery> {
        let mut buffer = std::mem::take(&mut self.spare_reports);
        buffer.clear();
        buffer
    }

    /// The buffer back, for the next reports.
    pub fn return_buffer(&mut self, buffer: Vec<Delivery>) {
        self.spare_reports = buffer;
    }

    /// A delivery failed: whether that is news (the first since the target last acknowledged).
    pub fn failure_is_news(&mut self) -> bool {
        self.failing.failed()
    }

    /// A record was acknowledged: whether that is news (the target failed before).
    pub fn acknowledged_is_news(&mut self) -> bool {
        self.failing.recovered()
    }

    /// Whether the target fails or stalls, as this lane sees it.
    pub fn failing(&self) -> bool {
        self.failing.is_failing() || self.stall.is_failing() || self.refusing.is_failing()
    }

    /// Whether records stay unanswered past the delivery timeout.
    #[cfg(test)]
    pub fn stalled(&self) -> bool {
        self.stall.is_failing()
    }

    /// The once-a-second check at `now` of the lane's live `partitions`: whether the target
    /// began to leave records unanswered past the delivery timeout, or ended doing so.
    pub fn check_stalls<'a>(
        &mut self,
        partitions: impl Iterator<Item = &'a mut PartitionState>,
        now: Instant,
    ) -> StallNews {
        if self
            .last_refusal
            .is_some_and(|at| now.saturating_duration_since(at) >= REFUSING_FOR)
        {
            self.last_refusal = None;
            self.refusing.recovered();
        }
        let timeout = self.delivery_timeout;
        let mut stalled = partitions.filter(|s| !s.retired).filter_map(|s| {
            s.stalled(now, timeout)
                .then(|| (s.remote_topic.clone(), s.partition))
        });
        let Some((topic, partition)) = stalled.next() else {
            return if self.stall.recovered() {
                StallNews::Ended
            } else {
                StallNews::Quiet
            };
        };
        // Every partition is checked: each starts counting its own silence now.
        let others = stalled.count();
        if self.stall.failed() {
            StallNews::Began {
                topic,
                partition,
                others,
            }
        } else {
            StallNews::Quiet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::report::FlowReporter;
    use crate::observe::Observability;

    fn partition(number: i32, now: Instant) -> PartitionState {
        let reporter = FlowReporter::new(Observability::new(), "eu", "na");
        PartitionState::new(
            "t",
            Arc::from("t"),
            number,
            None,
            0,
            reporter.partition("t", "t", number),
            None,
            now,
        )
    }

    #[test]
    fn a_stall_is_news_once_the_timeout_passed_and_once_when_it_ends() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(120);
        let mut flight = InFlight::new(Backpressure::new(1 << 20, 1000), timeout);
        let mut partitions = vec![partition(0, t0), partition(1, t0), partition(2, t0)];
        partitions[0].sent(0);
        partitions[1].sent(0);
        let check = |flight: &mut InFlight, partitions: &mut Vec<PartitionState>, at| {
            flight.check_stalls(partitions.iter_mut(), at)
        };
        assert_eq!(check(&mut flight, &mut partitions, t0), StallNews::Quiet);
        let almost = t0 + timeout - Duration::from_millis(1);
        assert_eq!(
            check(&mut flight, &mut partitions, almost),
            StallNews::Quiet
        );
        let began = StallNews::Began {
            topic: Arc::from("t"),
            partition: 0,
            others: 1,
        };
        assert_eq!(check(&mut flight, &mut partitions, t0 + timeout), began);
        assert!(flight.stalled() && flight.failing());
        let later = t0 + timeout * 2;
        assert_eq!(
            check(&mut flight, &mut partitions, later),
            StallNews::Quiet,
            "once"
        );
        partitions[0].reported();
        partitions[1].reported();
        assert_eq!(check(&mut flight, &mut partitions, later), StallNews::Ended);
        assert_eq!(check(&mut flight, &mut partitions, later), StallNews::Quiet);
        assert!(!flight.failing());
    }

    #[test]
    fn failed_deliveries_are_news_once_until_an_acknowledgement() {
        let mut flight = InFlight::new(Backpressure::new(1 << 20, 1000), Duration::ZERO);
        assert!(!flight.acknowledged_is_news());
        assert!(flight.failure_is_news() && !flight.failure_is_news());
        assert!(flight.failing());
        assert!(flight.acknowledged_is_news() && !flight.acknowledged_is_news());
        let mut partitions = [partition(0, Instant::now())];
        partitions[0].sent(0);
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(
            flight.check_stalls(partitions.iter_mut(), far),
            StallNews::Quiet,
            "a zero timeout never stalls"
        );
    }

    #[test]
    fn the_queue_account_and_the_report_buffer() {
        let mut flight = InFlight::new(Backpressure::new(1000, 100), Duration::ZERO);
        flight.sent(750);
        assert!(!flight.has_room(0));
        flight.reported(750);
        assert!(flight.has_room(0));
        flight.queue_filled();
        assert!(flight.queue_full());
        flight.emptied();
        assert!(!flight.queue_full());
        let mut buffer = flight.report_buffer();
        buffer.reserve(8);
        let capacity = buffer.capacity();
        flight.return_buffer(buffer);
        assert_eq!(flight.report_buffer().capacity(), capacity, "reused");
    }
}
