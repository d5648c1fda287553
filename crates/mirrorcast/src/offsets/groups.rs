//! Consumer groups across clusters, as MM2's checkpoint connector does it: read the offset
//! syncs, translate the committed offsets of the source's groups, write checkpoints to
//! `<source>.checkpoints.internal` on the target, and (with `sync.group.offsets.enabled`) commit
//! the translated offsets into the same group on the target, only while that group has no
//! active members there and never backwards. `translate-offsets` uses the same functions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::codec::Checkpoint;
use super::sync_store::{Histories, OffsetSyncStore};
use crate::config::FlowConfig;
use crate::health::Health;
use crate::kafka::clients::ClientLog;
use crate::kafka::log_reader::LogReadError;
use crate::shutdown::Shutdown;
use crate::topics::replicated_topics;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong translating consumer group offsets and writing checkpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupsError {
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Read(#[from] LogReadError),
    #[error("offset syncs are off for this flow (emit.offset-syncs.enabled = false): nothing to translate with")]
    NoSyncs,
    #[error("checkpoints are off for this flow")]
    NoCheckpoints,
    #[error("cannot create the checkpoint producer: {0}")]
    Producer(#[source] rdkafka::error::KafkaError),
}

/// A translation that pointed past the end of its remote partition (a forged or stale offset
/// sync) and was brought back to that end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clamped {
    pub remote_topic: String,
    pub partition: i32,
    pub translated: i64,
    pub end: i64,
}

/// Brings every translation to at most its remote partition's end offset (`ends`), so that
/// no consumer resumes past records the target has. Returns what it changed.
pub fn clamp_to_ends(
    translations: &mut [Translation],
    ends: &HashMap<(String, i32), i64>,
) -> Vec<Clamped> {
    let mut clamped = Vec::new();
    for t in translations.iter_mut() {
        let (Some(downstream), Some(&end)) = (
            t.downstream,
            ends.get(&(t.remote_topic.clone(), t.partition)),
        ) else {
            continue;
        };
        if downstream > end {
            clamped.push(Clamped {
                remote_topic: t.remote_topic.clone(),
                partition: t.partition,
                translated: downstream,
                end,
            });
            t.downstream = Some(end);
        }
    }
    clamped
}

/// The end offsets of the remote partitions of `translations` on the target.
fn remote_ends(
    target_consumer: &ClientConfig,
    translations: &[Translation],
) -> Result<HashMap<(String, i32), i64>, GroupsError> {
    let reader = consumer(
        target_consumer,
        "mirrorcast-remote-ends",
        "remote end reader",
    )?;
    let mut ends = HashMap::new();
    for t in translations.iter().filter(|t| t.downstream.is_some()) {
        let (_, high) = reader.fetch_watermarks(&t.remote_topic, t.partition, TIMEOUT)?;
        ends.insert((t.remote_topic.clone(), t.partition), high);
    }
    Ok(ends)
}

/// One partition of a group, translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub topic: String,
    pub remote_topic: String,
    pub partition: i32,
    /// Committed on the source.
    pub upstream: i64,
    /// The target offset to resume from; `None` when no sync is old enough.
    pub downstream: Option<i64>,
    /// The metadata the group committed with its offset (carried in the checkpoint, as MM2).
    pub metadata: String,
}

fn consumer(
    config: &ClientConfig,
    group: &str,
    label: &str,
) -> Result<BaseConsumer<ClientLog>, GroupsError> {
    let mut config = config.clone();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    Ok(config.create_with_context(ClientLog::new(label.to_string()).trusting(&config))?)
}

/// The source groups the flow checkpoints: listed on the source, filtered by `groups`.
pub fn source_groups(
    flow: &FlowConfig,
    source_consumer: &ClientConfig,
) -> Result<Vec<String>, GroupsError> {
    let lister = consumer(source_consumer, "mirrorcast-group-lister", "group lister")?;
    let groups = lister.fetch_group_list(None, TIMEOUT)?;
    Ok(groups
        .groups()
        .iter()
        .map(|g| g.name().to_string())
        .filter(|g| flow.groups.filter.accepts(g))
        .collect())
}

/// The committed offsets of `group` on the source for the partitions the flow replicates,
/// translated to the target and clamped to the remote partitions' ends (what was clamped is
/// returned too).
pub fn translate_group(
    flow: &FlowConfig,
    source_consumer: &ClientConfig,
    target_consumer: &ClientConfig,
    syncs: &Histories,
    group: &str,
) -> Result<(Vec<Translation>, Vec<Clamped>), GroupsError> {
    let mut translations = translate_committed(flow, source_consumer, syncs, group)?;
    let ends = remote_ends(target_consumer, &translations)?;
    let clamped = clamp_to_ends(&mut translations, &ends);
    Ok((translations, clamped))
}

fn translate_committed(
    flow: &FlowConfig,
    source_consumer: &ClientConfig,
    syncs: &Histories,
    group: &str,
) -> Result<Vec<Translation>, GroupsError> {
    let reader = consumer(source_consumer, group, "group offsets reader")?;
    let metadata = reader.fetch_metadata(None, TIMEOUT)?;
    let topics: BTreeMap<String, i32> = metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect();
    let routes = replicated_topics(flow, &topics);
    let mut list = TopicPartitionList::new();
    for route in &routes {
        for p in 0..route.partitions {
            list.add_partition(&route.source_topic, p);
        }
    }
    if list.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = reader.committed_offsets(list, TIMEOUT)?;
    let mut translations = Vec::new();
    for element in committed.elements() {
        let Offset::Offset(upstream) = element.offset() else {
            continue; // nothing committed
        };
        let Some(route) = routes.iter().find(|r| r.source_topic == element.topic()) else {
            continue;
        };
        let downstream = syncs
            .get(&(element.topic().to_string(), element.partition()))
            .and_then(|h| h.translate(upstream));
        translations.push(Translation {
            topic: element.topic().to_string(),
            remote_topic: route.remote_topic.clone(),
            partition: element.partition(),
            upstream,
            downstream,
            metadata: element.metadata().to_string(),
        });
    }
    Ok(translations)
}

/// What applying translations to a target group did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub written: usize,
    /// The group has active members on the target: nothing written.
    pub group_active: bool,
    /// Partitions whose target offset is already at or past the translation.
    pub not_backwards: usize,
}

/// Commits translated offsets into `group` on the target, if it has no active members there
/// (classic members as listed, or members on the new consumer protocol, whose coordinator
/// refuses the commit), never moving an offset backwards.
pub fn apply_to_target(
    target_consumer: &ClientConfig,
    group: &str,
    translations: &[Translation],
) -> Result<Applied, GroupsError> {
    let client = consumer(target_consumer, group, "group offsets writer")?;
    let listed = client.fetch_group_list(Some(group), TIMEOUT)?;
    if listed
        .groups()
        .iter()
        .any(|g| g.name() == group && !g.members().is_empty())
    {
        return Ok(Applied {
            group_active: true,
            ..Applied::default()
        });
    }
    let mut query = TopicPartitionList::new();
    for t in translations.iter().filter(|t| t.downstream.is_some()) {
        query.add_partition(&t.remote_topic, t.partition);
    }
    if query.count() == 0 {
        return Ok(Applied::default());
    }
    let current = client.committed_offsets(query, TIMEOUT)?;
    let mut commit = TopicPartitionList::new();
    let mut applied = Applied::default();
    for t in translations {
        let Some(downstream) = t.downstream else {
            continue;
        };
        let existing = current
            .find_partition(&t.remote_topic, t.partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        if existing.is_some_and(|o| o >= downstream) {
            applied.not_backwards += 1;
            continue;
        }
        commit.add_partition_offset(&t.remote_topic, t.partition, Offset::Offset(downstream))?;
        applied.written += 1;
    }
    if commit.count() > 0 {
        if let Err(e) = client.commit(&commit, CommitMode::Sync) {
            // A group on the new consumer protocol (KIP-848) has members the classic listing
            // above does not show; its coordinator refuses a commit from outside the group.
            if refused_as_active(&e) {
                return Ok(Applied {
                    group_active: true,
                    ..Applied::default()
                });
            }
            return Err(e.into());
        }
    }
    Ok(applied)
}

/// Whether a commit was refused because the group has members (and we are not one of them).
fn refused_as_active(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    matches!(
        error.rdkafka_error_code(),
        Some(UnknownMemberId | IllegalGeneration | StaleMemberEpoch | RebalanceInProgress)
    )
}

/// The checkpoint task of one flow.
pub struct CheckpointTask {
    pub flow: FlowConfig,
    /// With instances sharing the source, only the leading one checkpoints.
    pub standing: crate::ownership::Standing,
    /// `mirrorcast_checkpoint_rounds_total` of the flow.
    pub rounds: prometheus_client::metrics::counter::Counter,
    pub source_consumer: ClientConfig,
    pub target_consumer: ClientConfig,
    pub target_producer: ClientConfig,
    /// A consumer of the cluster the offset syncs are on.
    pub syncs_consumer: ClientConfig,
    pub shutdown: Shutdown,
}

/// What the checkpoint task remembers between rounds.
#[derive(Default)]
struct RoundState {
    /// Last checkpoint per (group, remote topic, partition): written only when it moved.
    last: HashMap<(String, String, i32), (i64, i64)>,
    /// Per group, whether its round fails (logged once per change).
    groups: HashMap<String, Health>,
    /// Translations already reported as clamped (once each).
    clamped: HashSet<(String, String, i32)>,
}

impl CheckpointTask {
    /// One group of a round: checkpoints that moved, and (when due) the target group's offsets.
    fn group_round(
        &self,
        group: &str,
        histories: &Histories,
        producer: &BaseProducer<ClientLog>,
        sync_groups: bool,
        state: &mut RoundState,
    ) -> Result<usize, GroupsError> {
        let name = self.flow.name();
        let (translations, clamped) = translate_group(
            &self.flow,
            &self.source_consumer,
            &self.target_consumer,
            histories,
            group,
        )?;
        for c in clamped {
            if state
                .clamped
                .insert((group.to_string(), c.remote_topic.clone(), c.partition))
            {
                warn!(
                    flow = %name, group,
                    "an offset sync translates to {} in {}[{}], past its end {}: using the end (a \
                     forged or stale sync in {}?)",
                    c.translated, c.remote_topic, c.partition, c.end,
                    self.flow.offset_syncs.as_ref().map_or("", |s| s.topic.as_str())
                );
            }
        }
        let mut written = 0;
        for t in &translations {
            let Some(downstream) = t.downstream else {
                continue;
            };
            let id = (group.to_string(), t.remote_topic.clone(), t.partition);
            let moved = match state.last.get(&id) {
                None => true,
                Some((up, down)) => downstream > *down || t.upstream < *up,
            };
            if !moved {
                continue;
            }
            let checkpoint = Checkpoint {
                group: group.to_string(),
                topic: t.remote_topic.clone(),
                partition: t.partition,
                upstream_offset: t.upstream,
                downstream_offset: downstream,
                metadata: t.metadata.clone(),
            };
            let (key, value) = (checkpoint.key(), checkpoint.value());
            let record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&self.flow.groups.checkpoints_topic)
                    .partition(0)
                    .key(&key[..])
                    .payload(&value[..]);
            if producer.send(record).is_ok() {
                state.last.insert(id, (t.upstream, downstream));
                written += 1;
            }
        }
        if sync_groups {
            let applied = apply_to_target(&self.target_consumer, group, &translations)?;
            if applied.written > 0 {
                info!(flow = %name, group, "synced {} offset(s) to the target group", applied.written);
            }
        }
        Ok(written)
    }

    /// The checkpoints already in the checkpoints topic, newest per (group, topic, partition):
    /// after a restart nothing is emitted again unless it moved, and never backwards (as MM2
    /// reloads its checkpoints since 3.7). An unreadable topic starts afresh, said once.
    fn emitted_checkpoints(&self) -> HashMap<(String, String, i32), (i64, i64)> {
        let mut last = HashMap::new();
        let topic = &self.flow.groups.checkpoints_topic;
        let read = crate::kafka::log_reader::read_to_end(
            &self.target_consumer,
            "mirrorcast-checkpoints-reader",
            topic,
            |message| {
                let (Some(key), Some(value)) = (message.key(), message.payload()) else {
                    return;
                };
                if let Ok(c) = Checkpoint::decode(key, value) {
                    let id = (c.group, c.topic, c.partition);
                    last.insert(id, (c.upstream_offset, c.downstream_offset));
                }
            },
        );
        match read {
            Ok(()) => {}
            Err(crate::kafka::log_reader::LogReadError::Missing(_)) => {}
            Err(e) => warn!(
                flow = %self.flow.name(),
                "reading the checkpoints already in {topic}: {e}; each group's next checkpoint \
                 is written again"
            ),
        }
        last
    }

    /// Writes checkpoints every interval until shutdown; `Err` when it cannot start.
    pub fn run(self) -> Result<(), GroupsError> {
        let name = self.flow.name();
        let Some(checkpoint_every) = self.flow.groups.checkpoint_interval else {
            return Err(GroupsError::NoCheckpoints);
        };
        let Some(syncs) = self.flow.offset_syncs.clone() else {
            return Err(GroupsError::NoSyncs);
        };
        let producer: BaseProducer<ClientLog> = match self.target_producer.create_with_context(
            ClientLog::new(format!("{name} checkpoints")).trusting(&self.target_producer),
        ) {
            Ok(p) => p,
            Err(e) => return Err(GroupsError::Producer(e)),
        };
        let mut store = OffsetSyncStore::new(&self.syncs_consumer, &syncs.topic);
        let mut state = RoundState {
            last: self.emitted_checkpoints(),
            ..RoundState::default()
        };
        let mut health = Health::default();
        let mut last_group_sync = None::<Instant>;
        // The first round waits one interval, so that the copy has written syncs.
        while !self.shutdown.sleep(checkpoint_every) {
            if !self.standing.leads() {
                continue; // another instance of the replicator checkpoints
            }
            let sync_groups = self.flow.groups.sync_interval.is_some_and(|every| {
                last_group_sync.is_none_or(|at: Instant| at.elapsed() >= every)
            });
            self.rounds.inc();
            let round = (|| -> Result<usize, GroupsError> {
                // Read to the topic's end as of now: no checkpoint is made from a partial view.
                let histories = store.update()?;
                let mut written = 0;
                for group in source_groups(&self.flow, &self.source_consumer)? {
                    // One group's trouble is that group's: the others go on.
                    let done =
                        self.group_round(&group, histories, &producer, sync_groups, &mut state);
                    let group_health = state.groups.entry(group.clone()).or_default();
                    match done {
                        Ok(n) => {
                            written += n;
                            if group_health.recovered() {
                                info!(flow = %name, group, "checkpoints of the group: working again");
                            }
                        }
                        Err(e) => {
                            if group_health.failed() {
                                warn!(flow = %name, group, "checkpoints of the group: {e}; retrying next interval");
                            }
                        }
                    }
                }
                producer.flush(TIMEOUT)?;
                Ok(written)
            })();
            if sync_groups {
                last_group_sync = Some(Instant::now());
            }
            match round {
                Ok(_) => {
                    if health.recovered() {
                        info!(flow = %name, "checkpoints: working again");
                    }
                }
                Err(e) => {
                    if health.failed() {
                        warn!(flow = %name, "checkpoints: {e}; retrying next interval");
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translation(partition: i32, downstream: Option<i64>) -> Translation {
        Translation {
            topic: "orders".into(),
            remote_topic: "europe.orders".into(),
            partition,
            upstream: 7,
            downstream,
            metadata: String::new(),
        }
    }

    #[test]
    fn translations_past_the_remote_end_are_brought_back_to_it() {
        let mut translations = vec![
            translation(0, Some(1_000_000)),
            translation(1, Some(40)),
            translation(2, None),
            translation(3, Some(9)),
        ];
        let ends = HashMap::from([
            (("europe.orders".to_string(), 0), 100),
            (("europe.orders".to_string(), 1), 40),
            (("europe.orders".to_string(), 2), 5),
        ]);
        let clamped = clamp_to_ends(&mut translations, &ends);
        let downstream: Vec<_> = translations.iter().map(|t| t.downstream).collect();
        // At the end is fine; no end known leaves it alone (nothing to compare with).
        assert_eq!(downstream, [Some(100), Some(40), None, Some(9)]);
        assert_eq!(
            clamped,
            [Clamped {
                remote_topic: "europe.orders".into(),
                partition: 0,
                translated: 1_000_000,
                end: 100
            }]
        );
    }
}
