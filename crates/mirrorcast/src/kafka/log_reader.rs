//! Reads a topic up to the end it has when asked: how progress, created-topic marks and offset
//! syncs (compacted topics) are loaded, once at start or again and again as they grow.
//!
//! Invariant: a read ends only when every partition's position reached the end offset taken
//! when it began, also when the last offsets hold no record (compaction, transaction markers),
//! or fails; it never returns a partial view as complete. There is no deadline on a read that
//! moves (a large topic takes what it takes, with a progress line every few seconds); it fails
//! only when nothing moved for [`STALL_TIMEOUT`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tracing::info;

use super::clients::ClientLog;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// A read that has not moved for this long fails (the cluster is unreachable, or the topic's
/// leader gone): the caller retries.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a long read says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How often positions are asked while records keep coming.
const POSITION_CHECK: Duration = Duration::from_millis(200);

/// What can go wrong reading a topic to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogReadError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("topic `{0}` does not exist")]
    Missing(String),
    #[error("reading `{topic}` made no progress for {timeout:?} ({read} record(s) read)")]
    Stalled {
        topic: String,
        timeout: Duration,
        read: u64,
    },
    #[error("`{0}` ends before where it was read up to (deleted and created again?): read again from its start")]
    Truncated(String),
    #[error("reading `{topic}` waited {waited:?} at {partitions} for a transaction open on it to end (or for its leader): read again later; `kafka-transactions.sh` lists transactions that hang")]
    Unsettled {
        topic: String,
        waited: Duration,
        /// `partition at position, end` for each partition not read to its end.
        partitions: String,
    },
}

/// How long a read that waits for open transactions to end ([`LogReader::open_settled`]) waits
/// without moving: a transaction normally ends within its commit interval; one whose writer
/// died ends only when the coordinator times it out (`transaction.timeout.ms`, a minute by
/// default), and the caller must not be held that long (a group member must go on polling).
pub const SETTLE_PATIENCE: Duration = Duration::from_secs(15);

/// A reader of every partition of one topic, from its start; each [`LogReader::read_to_end`]
/// continues where the previous one stopped.
pub struct LogReader {
    consumer: BaseConsumer<ClientLog>,
    /// With [`LogReader::open_settled`]: asks where each partition ends with open transactions
    /// included, so a read waits for them to end rather than stop before them.
    settled: Option<BaseConsumer<ClientLog>>,
    topic: String,
    partitions: Vec<i32>,
    /// The next offset to read per partition (its start until something is read).
    positions: HashMap<i32, i64>,
}

impl LogReader {
    /// Opens `topic` at its start. `group_id` is only for librdkafka's `assign` (nothing is
    /// joined or committed) unless the settings have one.
    pub fn open(
        consumer_config: &ClientConfig,
        group_id: &str,
        topic: &str,
    ) -> Result<Self, LogReadError> {
        let mut config = consumer_config.clone();
        if config.get("group.id").is_none() {
            config.set("group.id", group_id);
        }
        config.set("enable.auto.commit", "false");
        // What was committed only (also the end asked is then the last stable offset): progress
        // written in transactions (exactly once, ours or MM2's) counts once they commit, and
        // never from an aborted one.
        config.set("isolation.level", "read_committed");
        let consumer: BaseConsumer<ClientLog> = config
            .create_with_context(ClientLog::new(format!("{topic} reader")).trusting(&config))?;
        let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .ok_or_else(|| LogReadError::Missing(topic.to_string()))?;
        let mut assignment = TopicPartitionList::new();
        for &partition in &partitions {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        Ok(LogReader {
            consumer,
            settled: None,
            topic: topic.to_string(),
            partitions,
            positions: HashMap::new(),
        })
    }

    /// [`LogReader::open`], where a read goes on until every transaction open when it starts has
    /// ended (committed records read, aborted ones skipped): a read_committed reader alone
    /// stops at the first open transaction and misses what was committed after it (progress
    /// of another copy unit committing meanwhile, when a unit resumes from what is stored).
    /// The wait normally lasts one commit interval; a read that does not move for
    /// [`SETTLE_PATIENCE`] fails with [`LogReadError::Unsettled`] (its position kept: the next
    /// read goes on from there).
    pub fn open_settled(
        consumer_config: &ClientConfig,
        group_id: &str,
        topic: &str,
    ) -> Result<Self, LogReadError> {
        let mut reader = Self::open(consumer_config, group_id, topic)?;
        let mut config = consumer_config.clone();
        config.set("isolation.level", "read_uncommitted");
        reader.settled = Some(
            config
                .create_with_context(ClientLog::new(format!("{topic} ends")).trusting(&config))?,
        );
        Ok(reader)
    }

    /// Every partition's (start, end) in two requests per broker (ListOffsets for the earliest
    /// and the latest), where asking partition by partition takes a round trip each: seconds
    /// for a 25-partition progress topic on a busy broker. Partitions missing from the answer
    /// are asked one by one.
    fn all_ends(&self) -> HashMap<i32, (i64, i64)> {
        let ask = |at: Offset| -> HashMap<i32, i64> {
            let mut list = TopicPartitionList::new();
            for &partition in &self.partitions {
                if list
                    .add_partition_offset(&self.topic, partition, at)
                    .is_err()
                {
                    return HashMap::new();
                }
            }
            // The end counting open transactions, when settled (its start is the same).
            let asked = match (&self.settled, at) {
                (Some(settled), Offset::End) => settled,
                _ => &self.consumer,
            };
            match asked.offsets_for_times(list, METADATA_TIMEOUT) {
                Ok(found) => found
                    .elements()
                    .iter()
                    .filter(|e| e.error().is_ok())
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(offset) if offset >= 0 => Some((e.partition(), offset)),
                        _ => None,
                    })
                    .collect(),
                Err(_) => HashMap::new(),
            }
        };
        if let Some(settled) = &self.settled {
            // Only asked, never read from: its events (a failed connection, logged by its
            // context) are served here, not queued for good.
            crate::kafka::clients::serve_events(settled);
        }
        let (starts, ends) = (ask(Offset::Beginning), ask(Offset::End));
        starts
            .into_iter()
            .filter_map(|(partition, start)| Some((partition, (start, *ends.get(&partition)?))))
            .collect()
    }

    /// Hands every record from where the last read stopped to the end each partition has now to
    /// `visit`, partition by partition in offset order. Blocking; returns how many it read.
    pub fn read_to_end(
        &mut self,
        mut visit: impl FnMut(&BorrowedMessage<'_>),
    ) -> Result<u64, LogReadError> {
        let mut remaining: HashMap<i32, i64> = HashMap::new();
        let mut total = 0;
        let ends = self.all_ends();
        for &partition in &self.partitions {
            let (low, high) = match ends.get(&partition) {
                Some(&ends) => ends,
                None => self
                    .settled
                    .as_ref()
                    .unwrap_or(&self.consumer)
                    .fetch_watermarks(&self.topic, partition, METADATA_TIMEOUT)?,
            };
            let read_up_to = self.positions.get(&partition).copied();
            if read_up_to.is_some_and(|position| position > high) {
                return Err(LogReadError::Truncated(self.topic.clone()));
            }
            let next = read_up_to.unwrap_or(low).max(low);
            if high > next {
                remaining.insert(partition, high);
                total += high - next;
            }
        }
        let started = Instant::now();
        let (mut read, mut moved_at, mut said_at) = (0u64, Instant::now(), Instant::now());
        let (mut checked_at, mut idle) = (Instant::now(), false);
        while !remaining.is_empty() {
            if self.settled.is_some() && moved_at.elapsed() > SETTLE_PATIENCE {
                let mut partitions: Vec<String> = remaining
                    .iter()
                    .map(|(partition, end)| {
                        let at = self.positions.get(partition).copied().unwrap_or(-1);
                        format!("[{partition}] {at} of {end}")
                    })
                    .collect();
                partitions.sort();
                return Err(LogReadError::Unsettled {
                    topic: self.topic.clone(),
                    waited: SETTLE_PATIENCE,
                    partitions: partitions.join(", "),
                });
            }
            if moved_at.elapsed() > STALL_TIMEOUT {
                return Err(LogReadError::Stalled {
                    topic: self.topic.clone(),
                    timeout: STALL_TIMEOUT,
                    read,
                });
            }
            if said_at.elapsed() >= PROGRESS_EVERY {
                said_at = Instant::now();
                let waiting = if self.settled.is_some() && idle {
                    " (waiting for transactions open on it to end)"
                } else {
                    ""
                };
                info!(
                    topic = %self.topic,
                    "still reading: {read} of about {total} record(s) in {:.0?}{waiting}",
                    started.elapsed()
                );
            }
            // The end can be a gap (compaction, transaction markers): where the reader is tells.
            // Asked when nothing came, and every so often while records come: on a busy topic
            // (other instances committing progress) a partition whose last offset is a marker
            // would otherwise never be seen done.
            if idle || checked_at.elapsed() >= POSITION_CHECK {
                checked_at = Instant::now();
                if self.positions_reached(&mut remaining)? {
                    moved_at = Instant::now();
                }
                if remaining.is_empty() {
                    break;
                }
            }
            let Some(message) = self.consumer.poll(Duration::from_millis(200)) else {
                idle = true;
                continue;
            };
            idle = false;
            let message = match message {
                Ok(message) => message,
                // librdkafka looks for the coordinator of the `group.id` that `assign` needs;
                // a cluster that grants this principal no group says so, but the read uses no
                // group (it failed at a restart on a locked-down target).
                Err(KafkaError::MessageConsumption(RDKafkaErrorCode::GroupAuthorizationFailed)) => {
                    continue
                }
                Err(e) => return Err(e.into()),
            };
            visit(&message);
            read += 1;
            let (partition, next) = (message.partition(), message.offset() + 1);
            // Only a partition still to finish counts as moving: one done keeps receiving
            // records on a busy topic while another waits.
            if remaining.contains_key(&partition) {
                moved_at = Instant::now();
            }
            self.positions.insert(partition, next);
            if remaining.get(&partition).is_some_and(|high| next >= *high) {
                remaining.remove(&partition);
            }
        }
        Ok(read)
    }

    /// Takes the reader's positions, and drops from `remaining` the partitions they reached.
    /// Returns whether a position moved.
    fn positions_reached(&mut self, remaining: &mut HashMap<i32, i64>) -> Result<bool, KafkaError> {
        let mut moved = false;
        for element in self.consumer.position()?.elements() {
            let Offset::Offset(position) = element.offset() else {
                continue;
            };
            let partition = element.partition();
            if self.positions.get(&partition) != Some(&position) {
                moved |= remaining.contains_key(&partition);
                self.positions.insert(partition, position);
            }
            if remaining
                .get(&partition)
                .is_some_and(|high| position >= *high)
            {
                remaining.remove(&partition);
            }
        }
        Ok(moved)
    }
}

/// Hands every record of `topic` to `visit`, partition by partition in offset order, until the
/// end each partition had when called. Blocking.
pub fn read_to_end(
    consumer_config: &ClientConfig,
    group_id: &str,
    topic: &str,
    visit: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), LogReadError> {
    LogReader::open(consumer_config, group_id, topic)?.read_to_end(visit)?;
    Ok(())
}
