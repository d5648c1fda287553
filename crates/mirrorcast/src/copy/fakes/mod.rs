//! In-memory stand-ins for the copier's [`Reader`] and [`Target`], for unit tests of its
//! transitions without a broker. One [`FakeSource`] log is read by any number of readers, each
//! with its own assignment; a [`FakeTarget`] holds what is sent in flight until the test lets
//! it acknowledge (or fail) and appends acknowledged records to per-partition logs.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::clock::Clock;

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

use crate::copy::io::{Delivery, Tag};
use crate::copy::io::{Outgoing, Target, TxnFatal, TxnOutcome};

mod source;

pub use source::{FakeReader, FakeSource};

/// A record the target holds in flight.
struct InFlight {
    topic: String,
    partition: i32,
    /// When the producer took it, by the fake's clock.
    sent_at: Instant,
    payload: Option<Vec<u8>>,
    tag: Tag,
}

/// The target cluster and its producer, as a test sees and steers them.
#[derive(Default)]
pub struct TargetState {
    pub clock: Clock,
    /// Records the producer holds at most (then `QueueFull`).
    pub capacity: usize,
    /// Whether serving the producer acknowledges what is in flight.
    pub acknowledging: bool,
    /// Fail the deliveries of these remote partitions at the next acknowledgement.
    pub fail_next: Vec<(String, i32)>,
    /// At the next acknowledgement, fail the first record in flight of these remote partitions
    /// and hold the rest (as librdkafka may, when a record times out with later ones queued).
    pub fail_head: Vec<(String, i32)>,
    /// Remote partitions whose records stay in flight, neither acknowledged nor failed.
    pub held: Vec<(String, i32)>,
    /// Like a broker's `max.message.bytes`: a partition's records in flight together (a batch)
    /// all fail as too large when together they are larger.
    pub max_batch_bytes: Option<usize>,
    /// Payloads refused as invalid in topic `t` (KIP-467: the others of their batch fail as
    /// bystanders).
    pub invalid: Vec<Vec<u8>>,
    /// As librdkafka's `message.timeout.ms`: a record in flight this long fails with
    /// `MessageTimedOut` (`None`: never, as the at-least-once copy's producer).
    pub message_timeout: Option<Duration>,
    /// Report a fatal error until the producer is replaced.
    pub fatal: bool,
    /// As librdkafka's `enable.gapless.guarantee`: a refused batch fails the producer fatally,
    /// and no later batch of its partition is appended.
    pub gapless: bool,
    /// The producer's `batch.size`: a partition's records in flight go in batches of at most
    /// this many payload bytes (a record larger alone is a batch of its own).
    pub batch_bytes: usize,
    /// The producer's batch sizes, in the order set.
    pub resized: Vec<u32>,
    /// Batches refused as too large so far.
    pub too_large_batches: usize,
    /// Topics this principal may not write: their records fail (`TopicAuthorizationFailed`).
    pub denied_topics: Vec<String>,
    /// Records sent to each topic so far.
    pub sent_to: BTreeMap<String, usize>,
    pub replaced: usize,
    in_flight: Vec<InFlight>,
    reports: Vec<Delivery>,
    /// Acknowledged payloads per remote partition, in order.
    pub logs: BTreeMap<(String, i32), Vec<Vec<u8>>>,
    /// Every progress record acknowledged: (slot, stored offset or tombstone).
    pub progress: Vec<(usize, Option<i64>)>,
    /// Exactly once: records are delivered into a transaction, and reach `logs` (what a
    /// `read_committed` consumer sees) only when it commits.
    pub transaction: FakeTransactions,
}

/// A record delivered in the open transaction: its remote partition, payload, and what it
/// stores if it is a progress record.
type Uncommitted = ((String, i32), Vec<u8>, Option<(usize, Option<i64>)>);

/// The transactions of a transactional fake producer, as a test sees and steers them.
#[derive(Default)]
pub struct FakeTransactions {
    pub enabled: bool,
    pub registered: bool,
    pub open_since: Option<Instant>,
    /// Delivered in the open transaction.
    uncommitted: Vec<Uncommitted>,
    /// A record of the open transaction failed: it cannot commit.
    failed: bool,
    /// The next commit is refused (abortable), once.
    pub refuse_next_commit: bool,
    /// The coordinator is gone: an abort stays pending.
    pub abort_unanswered: bool,
    /// A newer producer with the same id exists.
    pub fenced: bool,
    /// The target refuses this principal transactions (no ACL).
    pub refused: bool,
    /// The target has no transaction coordinator: registering never ends.
    pub no_coordinator: bool,
    pub commits: usize,
    pub aborts: usize,
}

impl TargetState {
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// Records delivered into the open transaction, not committed yet.
    pub fn uncommitted_len(&self) -> usize {
        self.transaction.uncommitted.len()
    }
}

#[derive(Clone)]
pub struct FakeTarget(pub Rc<RefCell<TargetState>>);

impl FakeTarget {
    /// A target whose producer holds at most `capacity` records, telling time by `clock`.
    pub fn new(capacity: usize, clock: Clock) -> Self {
        FakeTarget(Rc::new(RefCell::new(TargetState {
            capacity,
            clock,
            acknowledging: true,
            batch_bytes: 1_000_000,
            ..TargetState::default()
        })))
    }

    pub fn state(&self) -> std::cell::RefMut<'_, TargetState> {
        self.0.borrow_mut()
    }

    /// The payloads the target holds for a partition, as text.
    pub fn log(&self, topic: &str, partition: i32) -> Vec<String> {
        self.0
            .borrow()
            .logs
            .get(&(topic.to_string(), partition))
            .map(|l| {
                l.iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails the records in flight past the message timeout, as librdkafka does.
    fn expire(state: &mut TargetState) {
        let Some(timeout) = state.message_timeout else {
            return;
        };
        let now = state.clock.now();
        let (expired, kept) = std::mem::take(&mut state.in_flight)
            .into_iter()
            .partition(|r| now.saturating_duration_since(r.sent_at) >= timeout);
        state.in_flight = kept;
        for record in expired {
            state.transaction.failed = true;
            state.reports.push(Delivery {
                tag: record.tag,
                error: Some(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut,
                )),
                downstream_offset: None,
            });
        }
    }

    fn acknowledge(state: &mut TargetState) {
        for key in std::mem::take(&mut state.fail_head) {
            let head = state
                .in_flight
                .iter()
                .position(|r| r.topic == key.0 && r.partition == key.1);
            if let Some(head) = head {
                let record = state.in_flight.remove(head);
                state.reports.push(Delivery {
                    tag: record.tag,
                    error: Some(KafkaError::MessageProduction(
                        RDKafkaErrorCode::MessageTimedOut,
                    )),
                    downstream_offset: None,
                });
            }
            state.held.push(key);
        }
        let fail = std::mem::take(&mut state.fail_next);
        // Each record's batch: consecutive records of a remote partition, up to the producer's
        // batch size.
        let mut batches: Vec<((String, i32), usize)> = Vec::new();
        let mut filling: HashMap<(String, i32), (usize, usize)> = HashMap::new();
        let mut batch_bytes: HashMap<((String, i32), usize), usize> = HashMap::new();
        for record in &state.in_flight {
            let key = (record.topic.clone(), record.partition);
            let size = record.payload.as_ref().map_or(0, Vec::len);
            let (index, bytes) = filling.entry(key.clone()).or_default();
            if *bytes > 0 && *bytes + size > state.batch_bytes {
                *index += 1;
                *bytes = 0;
            }
            *bytes += size;
            *batch_bytes.entry((key.clone(), *index)).or_default() += size;
            batches.push((key, *index));
        }
        // Per batch, what it is refused for, if anything.
        let mut batch_errors: HashMap<((String, i32), usize), RDKafkaErrorCode> = HashMap::new();
        for (record, batch) in state.in_flight.iter().zip(&batches) {
            if state.denied_topics.contains(&record.topic) {
                batch_errors.insert(batch.clone(), RDKafkaErrorCode::TopicAuthorizationFailed);
            } else if state
                .max_batch_bytes
                .is_some_and(|max| batch_bytes[batch] > max)
            {
                batch_errors.insert(batch.clone(), RDKafkaErrorCode::MessageSizeTooLarge);
            } else if record.topic == "t"
                && record
                    .payload
                    .as_ref()
                    .is_some_and(|p| state.invalid.contains(p))
            {
                batch_errors
                    .entry(batch.clone())
                    .or_insert(RDKafkaErrorCode::InvalidRecord);
            }
        }
        state.too_large_batches += batch_errors
            .values()
            .filter(|&&code| code == RDKafkaErrorCode::MessageSizeTooLarge)
            .count();
        // The first refused batch of each partition: with gapless delivery, nothing after it is
        // appended (the producer fails fatally and purges the rest); without, librdkafka bumps
        // its epoch and sends the later batches anyway.
        let mut first_refused: HashMap<(String, i32), usize> = HashMap::new();
        for (key, index) in batch_errors.keys() {
            let first = first_refused.entry(key.clone()).or_insert(*index);
            *first = (*first).min(*index);
        }
        if state.gapless && !first_refused.is_empty() {
            state.fatal = true;
        }
        for (record, batch) in std::mem::take(&mut state.in_flight)
            .into_iter()
            .zip(batches)
        {
            let key = (record.topic.clone(), record.partition);
            if state.held.contains(&key) {
                state.in_flight.push(record);
                continue;
            }
            if state.gapless
                && first_refused
                    .get(&key)
                    .is_some_and(|&first| batch.1 > first)
            {
                state.transaction.failed = true;
                state.reports.push(Delivery {
                    tag: record.tag,
                    error: Some(KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue)),
                    downstream_offset: None,
                });
                continue;
            }
            if let Some(&code) = batch_errors.get(&batch) {
                state.transaction.failed = true;
                let own_fault = code == RDKafkaErrorCode::MessageSizeTooLarge
                    || code == RDKafkaErrorCode::TopicAuthorizationFailed
                    || record
                        .payload
                        .as_ref()
                        .is_some_and(|p| state.invalid.contains(p));
                let code = if own_fault {
                    code
                } else {
                    RDKafkaErrorCode::InvalidDifferentRecord
                };
                state.reports.push(Delivery {
                    tag: record.tag,
                    error: Some(KafkaError::MessageProduction(code)),
                    downstream_offset: None,
                });
                continue;
            }
            let failed = fail.contains(&key);
            let mut downstream_offset = None;
            if failed {
                state.transaction.failed = true;
            } else if state.transaction.enabled {
                let progress = match record.tag {
                    Tag::Progress { slot, offset } => Some((slot, offset)),
                    _ => None,
                };
                let pending = state.transaction.uncommitted.len();
                let log = state.logs.get(&key).map_or(0, Vec::len);
                downstream_offset = Some((log + pending) as i64);
                let payload = record.payload.unwrap_or_default();
                state.transaction.uncommitted.push((key, payload, progress));
            } else {
                let log = state.logs.entry(key).or_default();
                downstream_offset = Some(log.len() as i64);
                log.push(record.payload.unwrap_or_default());
                if let Tag::Progress { slot, offset } = record.tag {
                    state.progress.push((slot, offset));
                }
            }
            state.reports.push(Delivery {
                tag: record.tag,
                error: failed.then(|| {
                    KafkaError::MessageProduction(RDKafkaErrorCode::NotLeaderForPartition)
                }),
                downstream_offset,
            });
        }
    }
}

impl Target for FakeTarget {
    fn send<'a>(&self, record: Outgoing<'a>) -> Result<(), (KafkaError, Outgoing<'a>)> {
        let mut state = self.0.borrow_mut();
        if state.transaction.enabled {
            if !state.transaction.registered {
                let refused = KafkaError::MessageProduction(RDKafkaErrorCode::State);
                return Err((refused, record));
            }
            let now = state.clock.now();
            state.transaction.open_since.get_or_insert(now);
        }
        if state.in_flight.len() >= state.capacity {
            let full = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
            return Err((full, record));
        }
        let sent_at = state.clock.now();
        *state.sent_to.entry(record.topic.to_string()).or_default() += 1;
        state.in_flight.push(InFlight {
            topic: record.topic.to_string(),
            partition: record.partition.unwrap_or(0),
            sent_at,
            payload: record.payload.map(<[u8]>::to_vec),
            tag: record.tag,
        });
        Ok(())
    }

    fn serve(&self, timeout: Duration) {
        let mut state = self.0.borrow_mut();
        Self::expire(&mut state);
        if state.acknowledging {
            Self::acknowledge(&mut state);
        } else {
            drop(state);
            std::thread::sleep(timeout);
        }
    }

    fn reports_waiting(&self) -> usize {
        self.0.borrow().reports.len()
    }

    fn take_reports(&self, into: &mut Vec<Delivery>) {
        std::mem::swap(&mut self.0.borrow_mut().reports, into);
    }

    fn in_flight(&self) -> u64 {
        self.0.borrow().in_flight.len() as u64
    }

    fn fatal_error(&self) -> Option<(RDKafkaErrorCode, String)> {
        let state = self.0.borrow();
        state.fatal.then(|| match state.gapless {
            true => (
                RDKafkaErrorCode::GaplessGuarantee,
                "a batch was refused for good: nothing after it is sent".to_string(),
            ),
            false => (
                RDKafkaErrorCode::OutOfOrderSequenceNumber,
                "the broker lost the producer's sequence".to_string(),
            ),
        })
    }

    fn flush(&self, _timeout: Duration) {
        self.serve(Duration::ZERO);
    }

    fn refresh_metadata(&self, _topic: &str) -> KafkaResult<()> {
        Ok(())
    }

    fn batch_bytes(&self) -> u32 {
        self.0.borrow().batch_bytes as u32
    }

    fn compresses(&self) -> bool {
        false
    }

    fn resize_batches(&mut self, bytes: u32) -> KafkaResult<()> {
        {
            let mut state = self.0.borrow_mut();
            state.batch_bytes = bytes as usize;
            state.resized.push(bytes);
        }
        self.replace()
    }

    fn replace(&mut self) -> KafkaResult<()> {
        let mut state = self.0.borrow_mut();
        state.in_flight.clear();
        state.reports.clear();
        state.fatal = false;
        state.replaced += 1;
        let transaction = &mut state.transaction;
        transaction.registered = false;
        transaction.open_since = None;
        transaction.uncommitted.clear();
        transaction.failed = false;
        Ok(())
    }

    fn transaction_open_since(&self) -> Option<Instant> {
        self.0.borrow().transaction.open_since
    }

    fn init_transactions(&self, _timeout: Duration) -> TxnOutcome {
        let mut state = self.0.borrow_mut();
        if state.transaction.refused {
            let refused = "Broker: Transactional Id authorization failed".to_string();
            return TxnOutcome::Fatal(TxnFatal::Refused(refused));
        }
        if state.transaction.no_coordinator {
            return TxnOutcome::Pending;
        }
        state.transaction.registered = true;
        // The newest epoch of the id: whoever had it is fenced, not this producer.
        state.transaction.fenced = false;
        TxnOutcome::Done
    }

    fn commit(&self, timeout: Duration) -> TxnOutcome {
        let mut state = self.0.borrow_mut();
        Self::expire(&mut state);
        if state.transaction.fenced {
            let fenced = "Broker: Producer fenced".to_string();
            return TxnOutcome::Fatal(TxnFatal::Fenced(fenced));
        }
        // A commit flushes first.
        if state.acknowledging {
            Self::acknowledge(&mut state);
        }
        if !state.in_flight.is_empty() {
            // As librdkafka: waits for the deliveries the time it is given.
            drop(state);
            std::thread::sleep(timeout);
            return TxnOutcome::Pending;
        }
        if state.transaction.failed || std::mem::take(&mut state.transaction.refuse_next_commit) {
            return TxnOutcome::Abortable("a record of the transaction failed".to_string());
        }
        for (key, payload, progress) in std::mem::take(&mut state.transaction.uncommitted) {
            state.logs.entry(key).or_default().push(payload);
            if let Some(progress) = progress {
                state.progress.push(progress);
            }
        }
        state.transaction.open_since = None;
        state.transaction.commits += 1;
        TxnOutcome::Done
    }

    fn abort(&self, _timeout: Duration) -> TxnOutcome {
        let mut state = self.0.borrow_mut();
        if state.transaction.abort_unanswered {
            return TxnOutcome::Pending;
        }
        for record in std::mem::take(&mut state.in_flight) {
            state.reports.push(Delivery {
                tag: record.tag,
                error: Some(KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue)),
                downstream_offset: None,
            });
        }
        state.held.clear();
        let transaction = &mut state.transaction;
        transaction.uncommitted.clear();
        transaction.failed = false;
        transaction.open_since = None;
        transaction.aborts += 1;
        TxnOutcome::Done
    }
}
