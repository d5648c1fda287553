//! Consumer groups across clusters, as MM2's checkpoint connector does it: translate the
//! committed offsets of the source's groups with the offset syncs, and (with
//! `sync.group.offsets.enabled`) commit them into the same groups on the target, only while a
//! group has no active members there and never backwards. The checkpoint task
//! ([`super::checkpoints`]) and `translate-offsets` use the same functions.
//!
//! A round reads everything for all its groups over one pair of clients: one metadata fetch,
//! every group's committed offsets at once (admin requests in flight together), the remote
//! partitions' ends in one ListOffsets; so a round over thousands of groups takes seconds, not
//! a client and a metadata fetch per group.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::sync_store::Histories;
use crate::config::FlowConfig;
use crate::kafka::clients::ClientLog;
use crate::kafka::ffi::{self, AdminExtError, CommittedOffset};
use crate::kafka::log_reader::LogReadError;
use crate::plan::Route;
use crate::topics::replicated_topics;

pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

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
    #[error(transparent)]
    Admin(#[from] AdminExtError),
    #[error("the end of {0}[{1}] on the target is not known now (no leader?): nothing of the group is written this round")]
    NoEnd(String, i32),
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

/// What applying translations to a target group did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub written: usize,
    /// The group has active members on the target: nothing written.
    pub group_active: bool,
    /// Partitions whose target offset is already at or past the translation.
    pub not_backwards: usize,
}

/// Whether a commit was refused because the group has members (and we are not one of them).
fn refused_as_active(error: &AdminExtError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    matches!(
        error,
        AdminExtError::Broker {
            code: UnknownMemberId | IllegalGeneration | StaleMemberEpoch | RebalanceInProgress,
            ..
        }
    )
}

/// The translations of one group's committed offsets on the source, for the partitions of
/// `routes` (a partition with no sync old enough has no downstream offset).
pub fn translate_committed(
    routes: &[Route],
    committed: &[CommittedOffset],
    syncs: &Histories,
) -> Vec<Translation> {
    let remote: HashMap<&str, &Route> = routes
        .iter()
        .map(|r| (r.source_topic.as_str(), r))
        .collect();
    committed
        .iter()
        .filter_map(|c| {
            let route = remote.get(c.topic.as_str())?;
            if c.offset < 0 || c.partition >= route.partitions {
                return None;
            }
            let downstream = syncs
                .get(&(c.topic.clone(), c.partition))
                .and_then(|h| h.translate(c.offset));
            Some(Translation {
                topic: c.topic.clone(),
                remote_topic: route.remote_topic.clone(),
                partition: c.partition,
                upstream: c.offset,
                downstream,
                metadata: c.metadata.clone(),
            })
        })
        .collect()
}

/// What to commit into a target group given what it has committed (`current`): the
/// translations that move an offset forward, never back.
pub fn forward_commits(
    translations: &[Translation],
    current: &[CommittedOffset],
) -> (Vec<(String, i32, i64)>, Applied) {
    let existing: HashMap<(&str, i32), i64> = current
        .iter()
        .map(|c| ((c.topic.as_str(), c.partition), c.offset))
        .collect();
    let mut applied = Applied::default();
    let mut commits = Vec::new();
    for t in translations {
        let Some(downstream) = t.downstream else {
            continue;
        };
        if existing
            .get(&(t.remote_topic.as_str(), t.partition))
            .is_some_and(|&o| o >= downstream)
        {
            applied.not_backwards += 1;
            continue;
        }
        commits.push((t.remote_topic.clone(), t.partition, downstream));
        applied.written += 1;
    }
    (commits, applied)
}

/// A group's translations, and those brought back to their remote partition's end.
pub type Translated = (Vec<Translation>, Vec<Clamped>);

/// Per group, its own outcome: one group that fails leaves the others.
pub type PerGroup<T> = Vec<(String, Result<T, GroupsError>)>;

/// The clients a round reads and writes groups with: one on the source, one on the target,
/// kept for as long as the task runs.
pub struct GroupClients {
    source: BaseConsumer<ClientLog>,
    target: BaseConsumer<ClientLog>,
}

impl GroupClients {
    pub fn new(
        source_consumer: &ClientConfig,
        target_consumer: &ClientConfig,
    ) -> Result<Self, GroupsError> {
        let client = |config: &ClientConfig, label: &str| {
            let mut config = config.clone();
            config
                .set("group.id", "mirrorcast-group-offsets")
                .set("enable.auto.commit", "false");
            config.create_with_context(ClientLog::new(label.to_string()).trusting(&config))
        };
        Ok(GroupClients {
            source: client(source_consumer, "source groups")?,
            target: client(target_consumer, "target groups")?,
        })
    }

    /// The source groups the flow checkpoints: listed on the source, filtered by `groups`.
    pub fn source_groups(&self, flow: &FlowConfig) -> Result<Vec<String>, GroupsError> {
        // Nothing is consumed, but librdkafka queues its events (a broker connection that
        // failed, say) for the consumer's poll: served here once a round, not kept for good.
        for client in [&self.source, &self.target] {
            crate::kafka::clients::serve_events(client);
        }
        let groups = self.source.fetch_group_list(None, TIMEOUT)?;
        Ok(groups
            .groups()
            .iter()
            .map(|g| g.name().to_string())
            .filter(|g| flow.groups.filter.accepts(g))
            .collect())
    }

    /// Every group's committed offsets on the source for the partitions the flow replicates,
    /// translated and clamped to the remote partitions' ends; per group, as a group that fails
    /// leaves the others.
    pub fn translate(
        &self,
        flow: &FlowConfig,
        syncs: &Histories,
        groups: &[String],
    ) -> Result<PerGroup<Translated>, GroupsError> {
        let metadata = self.source.fetch_metadata(None, TIMEOUT)?;
        let topics: BTreeMap<String, i32> = metadata
            .topics()
            .iter()
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect();
        let routes = replicated_topics(flow, &topics);
        let translated: PerGroup<Vec<Translation>> =
            ffi::list_group_offsets(self.source.client(), groups, TIMEOUT)
                .into_iter()
                .map(|(group, committed)| {
                    let translations = committed
                        .map(|c| translate_committed(&routes, &c, syncs))
                        .map_err(GroupsError::from);
                    (group, translations)
                })
                .collect();
        let wanted: Vec<&Translation> = translated
            .iter()
            .filter_map(|(_, t)| t.as_ref().ok())
            .flatten()
            .filter(|t| t.downstream.is_some())
            .collect();
        let ends = self.remote_ends(&wanted)?;
        Ok(translated
            .into_iter()
            .map(|(group, translations)| {
                let clamped = translations.and_then(|mut translations| {
                    // Unclamped, a translation could point past the remote end.
                    if let Some(t) = translations.iter().find(|t| {
                        t.downstream.is_some()
                            && !ends.contains_key(&(t.remote_topic.clone(), t.partition))
                    }) {
                        return Err(GroupsError::NoEnd(t.remote_topic.clone(), t.partition));
                    }
                    let clamped = clamp_to_ends(&mut translations, &ends);
                    Ok((translations, clamped))
                });
                (group, clamped)
            })
            .collect())
    }

    /// The end offsets of the remote partitions of `translations` on the target, in one
    /// ListOffsets (per leader).
    fn remote_ends(
        &self,
        translations: &[&Translation],
    ) -> Result<HashMap<(String, i32), i64>, GroupsError> {
        let mut query = TopicPartitionList::new();
        let mut seen = HashSet::new();
        for t in translations {
            if seen.insert((t.remote_topic.as_str(), t.partition)) {
                query.add_partition_offset(&t.remote_topic, t.partition, Offset::End)?;
            }
        }
        if query.count() == 0 {
            return Ok(HashMap::new());
        }
        // Timestamp -1 (`Offset::End`) asks for the latest offset.
        let ends = self.target.offsets_for_times(query, TIMEOUT)?;
        Ok(ends
            .elements()
            .iter()
            .filter_map(|e| match (e.error(), e.offset()) {
                (Ok(()), Offset::Offset(end)) => {
                    Some(((e.topic().to_string(), e.partition()), end))
                }
                _ => None,
            })
            .collect())
    }

    /// Commits each group's translations into the same group on the target, if it has no
    /// active members there (classic members as listed, or members on the new consumer
    /// protocol, whose coordinator refuses the commit), never moving an offset backwards.
    pub fn apply(
        &self,
        groups: &[(String, Vec<Translation>)],
    ) -> Result<PerGroup<Applied>, GroupsError> {
        let listed = self.target.fetch_group_list(None, TIMEOUT)?;
        let active: HashSet<&str> = listed
            .groups()
            .iter()
            .filter(|g| !g.members().is_empty())
            .map(|g| g.name())
            .collect();
        let mut answers: PerGroup<Applied> = Vec::new();
        let candidates: Vec<String> = groups
            .iter()
            .filter(|(group, translations)| {
                let idle = !active.contains(group.as_str());
                if !idle {
                    let applied = Applied {
                        group_active: true,
                        ..Applied::default()
                    };
                    answers.push((group.clone(), Ok(applied)));
                }
                idle && translations.iter().any(|t| t.downstream.is_some())
            })
            .map(|(group, _)| group.clone())
            .collect();
        let current: HashMap<String, Result<Vec<CommittedOffset>, AdminExtError>> =
            ffi::list_group_offsets(self.target.client(), &candidates, TIMEOUT)
                .into_iter()
                .collect();
        let mut commits = Vec::new();
        let mut planned = HashMap::new();
        for (group, translations) in groups {
            match current.get(group) {
                None => {}
                Some(Err(e)) => answers.push((group.clone(), Err(GroupsError::Admin(e.clone())))),
                Some(Ok(current)) => {
                    let (offsets, applied) = forward_commits(translations, current);
                    if offsets.is_empty() {
                        answers.push((group.clone(), Ok(applied)));
                    } else {
                        commits.push((group.clone(), offsets));
                        planned.insert(group.clone(), applied);
                    }
                }
            }
        }
        for (group, done) in ffi::alter_group_offsets(self.target.client(), &commits, TIMEOUT) {
            let applied = planned.remove(&group).unwrap_or_default();
            answers.push(match done {
                Ok(()) => (group, Ok(applied)),
                // A group on the new consumer protocol (KIP-848) has members the classic
                // listing does not show; its coordinator refuses a commit from outside it.
                Err(e) if refused_as_active(&e) => (
                    group,
                    Ok(Applied {
                        group_active: true,
                        ..Applied::default()
                    }),
                ),
                Err(e) => (group, Err(e.into())),
            });
        }
        Ok(answers)
    }
}

/// The committed offsets of `group` on the source for the partitions the flow replicates,
/// translated to the target and clamped to the remote partitions' ends (what was clamped is
/// returned too). For one group (`translate-offsets`).
pub fn translate_group(
    flow: &FlowConfig,
    source_consumer: &ClientConfig,
    target_consumer: &ClientConfig,
    syncs: &Histories,
    group: &str,
) -> Result<Translated, GroupsError> {
    let clients = GroupClients::new(source_consumer, target_consumer)?;
    let groups = [group.to_string()];
    match clients.translate(flow, syncs, &groups)?.pop() {
        Some((_, translated)) => translated,
        None => Ok((Vec::new(), Vec::new())),
    }
}

/// Commits translated offsets into `group` on the target (see [`GroupClients::apply`]). For
/// one group (`translate-offsets --apply`).
pub fn apply_to_target(
    source_consumer: &ClientConfig,
    target_consumer: &ClientConfig,
    group: &str,
    translations: &[Translation],
) -> Result<Applied, GroupsError> {
    let clients = GroupClients::new(source_consumer, target_consumer)?;
    let groups = [(group.to_string(), translations.to_vec())];
    match clients.apply(&groups)?.pop() {
        Some((_, applied)) => applied,
        None => Ok(Applied::default()),
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

    fn committed(topic: &str, partition: i32, offset: i64) -> CommittedOffset {
        CommittedOffset {
            topic: topic.into(),
            partition,
            offset,
            metadata: "m".into(),
        }
    }

    #[test]
    fn committed_offsets_of_replicated_partitions_translate_through_their_syncs() {
        let routes = [Route {
            source_topic: "orders".into(),
            remote_topic: "europe.orders".into(),
            partitions: 2,
            topic_id: None,
            max_message_bytes: None,
        }];
        let mut history = crate::offsets::translate::SyncHistory::default();
        history.add(&crate::offsets::codec::OffsetSync {
            topic: "orders".into(),
            partition: 0,
            upstream_offset: 100,
            downstream_offset: 40,
        });
        let syncs: Histories = [(("orders".to_string(), 0), history)].into();
        let translations = translate_committed(
            &routes,
            &[
                committed("orders", 0, 150),
                committed("orders", 1, 7),
                committed("orders", 5, 7),
                committed("other", 0, 7),
            ],
            &syncs,
        );
        assert_eq!(
            translations.len(),
            2,
            "not replicated or not routed: left out"
        );
        assert_eq!(translations[0].remote_topic, "europe.orders");
        assert_eq!(
            (translations[0].upstream, translations[0].metadata.as_str()),
            (150, "m")
        );
        assert!(translations[0].downstream.is_some());
        assert_eq!(translations[1].downstream, None, "no sync for partition 1");
    }

    #[test]
    fn a_target_group_offset_only_moves_forward() {
        let translations = [
            translation(0, Some(50)),
            translation(1, Some(40)),
            translation(2, None),
            translation(3, Some(9)),
        ];
        let current = [
            committed("europe.orders", 0, 60),
            committed("europe.orders", 1, 10),
        ];
        let (commits, applied) = forward_commits(&translations, &current);
        assert_eq!(
            commits,
            [
                ("europe.orders".to_string(), 1, 40),
                ("europe.orders".to_string(), 3, 9)
            ]
        );
        assert_eq!((applied.written, applied.not_backwards), (2, 1));
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
