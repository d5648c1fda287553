//! Acquiring what the group gives: each flow's progress is read on its own thread, so a slow
//! or unreachable target delays only its own flow's partitions, never another flow's.
//! [`Pending`] keeps, per flow, what waits for a read and what a read under way is for; the
//! member's thread starts reads, takes their answers and hands partitions to the copier.
//!
//! Invariant: a partition is acquired only with progress whose read started after the group
//! last gave it, and only while the group still gives it (a revocation during a read drops it
//! from that read; given again, it waits for the next).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::MemberFlow;
use crate::health::Health;
use crate::kafka::log_reader::LogReadError;
use crate::plan::GroupCommand;
use crate::progress::{Progress, ProgressStore};

type Partition = (String, i32);

/// After a failed read, how long a flow waits before it reads again.
const RETRY: Duration = Duration::from_secs(1);
/// How long after start a missing progress topic is expected (being created), not a problem.
const QUIET_START: Duration = Duration::from_secs(60);

/// What the group gave and is not acquired yet, per flow (by index in the membership).
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Waiting for the flow's next read.
    waiting: BTreeMap<usize, Vec<Partition>>,
    /// The read under way was started after the group gave these.
    reading: BTreeMap<usize, Vec<Partition>>,
}

impl Pending {
    /// The group gave `partitions` for `flow`.
    pub fn given(&mut self, flow: usize, partitions: Vec<Partition>) {
        let waiting = self.waiting.entry(flow).or_default();
        for partition in partitions {
            if !waiting.contains(&partition) {
                waiting.push(partition);
            }
        }
    }

    /// The group took `partitions` back: no read of any flow acquires them.
    pub fn taken(&mut self, partitions: &[Partition]) {
        let flows: BTreeSet<usize> = self
            .waiting
            .keys()
            .chain(self.reading.keys())
            .copied()
            .collect();
        for flow in flows {
            self.taken_from(flow, partitions);
        }
    }

    /// Flow `flow` no longer has `partitions` (taken back, or their copy unit is fenced again):
    /// no read under way or waiting acquires them for it.
    pub fn taken_from(&mut self, flow: usize, partitions: &[Partition]) {
        let taken: HashSet<&Partition> = partitions.iter().collect();
        for map in [&mut self.waiting, &mut self.reading] {
            if let Some(list) = map.get_mut(&flow) {
                list.retain(|p| !taken.contains(p));
            }
        }
    }

    /// Starts a read for `flow` when something waits and no read is under way.
    fn start_read(&mut self, flow: usize) -> bool {
        if self.reading.contains_key(&flow) {
            return false;
        }
        match self.waiting.remove(&flow) {
            Some(waiting) if !waiting.is_empty() => {
                self.reading.insert(flow, waiting);
                true
            }
            _ => false,
        }
    }

    /// The read of `flow` ended: what it was for and the group still gives.
    fn read_done(&mut self, flow: usize) -> Vec<Partition> {
        self.reading.remove(&flow).unwrap_or_default()
    }

    /// The read of `flow` failed: its partitions wait for the next.
    fn read_failed(&mut self, flow: usize) {
        let partitions = self.read_done(flow);
        self.given(flow, partitions);
    }
}

/// The reading threads of the member's flows.
pub(super) struct Acquisitions {
    flows: Vec<FlowReads>,
    started: Instant,
}

struct FlowReads {
    name: String,
    topic: String,
    /// Asks the flow's thread for a read, started at the given time.
    ask: Sender<Instant>,
    answers: Receiver<Result<Progress, LogReadError>>,
    busy: bool,
    not_before: Option<Instant>,
    health: Health,
}

impl Acquisitions {
    /// One reading thread per flow, each ending when this is dropped (after a read under way).
    pub fn start(flows: &[MemberFlow], started: Instant) -> std::io::Result<Self> {
        let mut reads = Vec::with_capacity(flows.len());
        for member in flows {
            let flow = &member.flow;
            let mut store = ProgressStore::new(
                &member.target_consumer,
                &flow.progress_topic(),
                &flow.progress.connector,
                &flow.source,
            );
            let (ask, asked) = mpsc::channel::<Instant>();
            let (answer, answers) = mpsc::channel();
            // Not scoped: a read blocked on an unreachable target must not hold up shutdown.
            std::thread::Builder::new()
                .name(format!("progress {}", flow.name()))
                .spawn(move || {
                    for now in asked {
                        let read = store.update(now).cloned();
                        if answer.send(read).is_err() {
                            return;
                        }
                    }
                })?;
            reads.push(FlowReads {
                name: flow.name(),
                topic: flow.progress_topic(),
                ask,
                answers,
                busy: false,
                not_before: None,
                health: Health::default(),
            });
        }
        Ok(Acquisitions {
            flows: reads,
            started,
        })
    }

    /// Takes the answers of reads that ended, hands what they were for to the copier, and
    /// starts the reads that wait. `Err` names a flow whose reading thread stopped (it
    /// panicked): the membership starts again rather than never acquire for that flow.
    pub fn step(
        &mut self,
        flows: &[MemberFlow],
        pending: &mut Pending,
        now: Instant,
    ) -> Result<(), ReaderStopped> {
        for (index, (reads, member)) in self.flows.iter_mut().zip(flows).enumerate() {
            if reads.busy {
                match reads.answers.try_recv() {
                    Err(TryRecvError::Empty) => continue,
                    Ok(Ok(stored)) => {
                        reads.busy = false;
                        let partitions = pending.read_done(index);
                        if reads.health.recovered() {
                            info!(flow = %reads.name, "reading progress works again");
                        }
                        if !partitions.is_empty() {
                            let progress = of(&stored, &partitions);
                            let _ = member.commands.send(GroupCommand::Acquire {
                                partitions,
                                progress,
                            });
                        }
                    }
                    Ok(Err(e)) => {
                        reads.busy = false;
                        pending.read_failed(index);
                        reads.not_before = Some(now + RETRY);
                        if being_created(&e)
                            && now.saturating_duration_since(self.started) < QUIET_START
                        {
                            // At a first start the member can be quicker than the topic
                            // manager that creates the progress topic, or its leader.
                            debug!(flow = %reads.name, "{} is not there yet ({e}); waiting for it", reads.topic);
                        } else if reads.health.failed() {
                            warn!(flow = %reads.name, "the group gave this process partitions, but their progress cannot be read from {} ({e}); they are copied once it can", reads.topic);
                        }
                    }
                    Err(TryRecvError::Disconnected) => {
                        return Err(ReaderStopped {
                            flow: reads.name.clone(),
                            topic: reads.topic.clone(),
                        })
                    }
                }
            }
            if reads.not_before.is_some_and(|at| now < at) || !pending.start_read(index) {
                continue;
            }
            // A thread that is gone answers `Disconnected` at the next step.
            let _ = reads.ask.send(now);
            reads.busy = true;
        }
        Ok(())
    }
}

/// Whether a read failed as it does while the progress topic is being created: not there yet,
/// or its partitions without a leader yet.
fn being_created(error: &LogReadError) -> bool {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    match error {
        LogReadError::Missing(_) => true,
        LogReadError::Kafka(KafkaError::MetadataFetch(code)) => matches!(
            code,
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition
        ),
        _ => false,
    }
}

/// A flow's progress reading thread stopped.
#[derive(Debug, thiserror::Error)]
#[error("the thread reading the progress of {flow} from {topic} stopped")]
pub struct ReaderStopped {
    flow: String,
    topic: String,
}

/// The stored progress of `partitions` (one without any is absent: it starts as the source's
/// reset says).
fn of(stored: &Progress, partitions: &[Partition]) -> Progress {
    partitions
        .iter()
        .filter_map(|p| stored.get(p).map(|s| (p.clone(), s.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_topic_without_its_leader_yet_is_one_being_created() {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        let metadata = |code| LogReadError::Kafka(KafkaError::MetadataFetch(code));
        assert!(being_created(&LogReadError::Missing("mm2-offsets".into())));
        assert!(being_created(&metadata(
            RDKafkaErrorCode::NotLeaderForPartition
        )));
        assert!(!being_created(&metadata(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
    }

    fn p(partition: i32) -> Partition {
        ("orders".to_string(), partition)
    }

    #[test]
    fn a_read_is_for_what_was_given_before_it_started() {
        let mut pending = Pending::default();
        pending.given(0, vec![p(0), p(1)]);
        assert!(pending.start_read(0));
        assert!(!pending.start_read(0), "one read at a time per flow");
        pending.given(0, vec![p(2)]);
        assert_eq!(pending.read_done(0), vec![p(0), p(1)]);
        assert!(
            pending.start_read(0),
            "what came during the read waits for the next"
        );
        assert_eq!(pending.read_done(0), vec![p(2)]);
        assert!(!pending.start_read(0));
    }

    #[test]
    fn a_partition_taken_during_a_read_is_not_acquired_by_it_and_given_again_waits_for_the_next() {
        let mut pending = Pending::default();
        pending.given(0, vec![p(0), p(1)]);
        pending.given(1, vec![p(0), p(1)]);
        assert!(pending.start_read(0));
        pending.taken(&[p(0)]);
        pending.given(0, vec![p(0)]);
        assert_eq!(pending.read_done(0), vec![p(1)]);
        assert!(pending.start_read(0));
        assert_eq!(pending.read_done(0), vec![p(0)]);
        assert!(pending.start_read(1), "flows read apart");
        assert_eq!(pending.read_done(1), vec![p(1)]);
    }

    #[test]
    fn partitions_a_flow_lost_are_not_acquired_by_a_read_under_way() {
        let mut pending = Pending::default();
        pending.given(0, vec![p(0), p(1)]);
        pending.given(1, vec![p(0)]);
        assert!(pending.start_read(0));
        pending.taken_from(0, &[p(0)]);
        assert_eq!(pending.read_done(0), vec![p(1)]);
        assert!(pending.start_read(1), "the other flow keeps them");
        assert_eq!(pending.read_done(1), vec![p(0)]);
    }

    #[test]
    fn a_failed_read_leaves_its_partitions_waiting() {
        let mut pending = Pending::default();
        pending.given(0, vec![p(0)]);
        assert!(pending.start_read(0));
        pending.given(0, vec![p(1), p(0)]);
        pending.read_failed(0);
        assert!(pending.start_read(0));
        assert_eq!(pending.read_done(0), vec![p(1), p(0)]);
    }
}
