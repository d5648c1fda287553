//! The checkpoint task of a flow, as MM2's checkpoint connector: every interval, translate the
//! committed offsets of the source's groups with the offset syncs, write the checkpoints that
//! moved to `<source>.checkpoints.internal` on the target, and (with
//! `sync.group.offsets.enabled`, every its interval) commit them into the target's groups.
//!
//! Invariant: a checkpoint is written only from a complete read of the offset syncs, and
//! never again unless it moved; what the task remembers covers only the groups listed in its
//! last round, so it stays bounded as groups come and go.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message};
use tracing::{info, warn};

use super::codec::Checkpoint;
use super::groups::{GroupClients, GroupsError, Translation, TIMEOUT};
use super::sync_store::OffsetSyncStore;
use crate::config::FlowConfig;
use crate::health::Health;
use crate::kafka::clients::ClientLog;
use crate::observe::metrics::{FlowLabels, GroupLabels, Metrics};
use crate::shutdown::Shutdown;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// The checkpoint task of one flow.
pub struct CheckpointTask {
    pub flow: FlowConfig,
    /// With instances sharing the source, only the leading one checkpoints.
    pub standing: crate::ownership::Standing,
    pub meters: CheckpointMeters,
    pub source_consumer: ClientConfig,
    pub target_consumer: ClientConfig,
    pub target_producer: ClientConfig,
    /// A consumer of the cluster the offset syncs are on.
    pub syncs_consumer: ClientConfig,
    /// A newer process took the flow over: it checkpoints, not this one.
    pub taken_over: crate::plan::TakenOver,
    pub shutdown: Shutdown,
}

/// The checkpoint task's metrics.
pub struct CheckpointMeters {
    pub flow: FlowLabels,
    /// `mirrorcast_checkpoint_rounds_total` of the flow.
    pub rounds: Counter,
    /// `mirrorcast_checkpoint_latency_seconds` of the flow.
    pub latency: Histogram,
    /// `mirrorcast_checkpoint_group_failures_total`, per group of the flow's source.
    pub group_failures: Family<GroupLabels, Counter>,
    /// MM2's per-group checkpoint latency, with `--mm2-metrics`.
    pub mm2: Option<std::sync::Arc<crate::observe::mm2_family::Mm2Family>>,
}

impl CheckpointMeters {
    pub fn new(metrics: &Metrics, flow: FlowLabels) -> Self {
        CheckpointMeters {
            rounds: metrics.checkpoint_rounds.get_or_create(&flow).clone(),
            latency: metrics.checkpoint_latency.get_or_create(&flow).clone(),
            group_failures: metrics.checkpoint_group_failures.clone(),
            mm2: metrics.mm2.clone(),
            flow,
        }
    }

    fn group(&self, group: &str) -> GroupLabels {
        GroupLabels {
            source: self.flow.source.clone(),
            target: self.flow.target.clone(),
            group: group.to_string(),
        }
    }

    fn failed(&self, group: &str) {
        self.group_failures.get_or_create(&self.group(group)).inc();
    }

    /// A group no longer listed: its series go with it.
    fn forget(&self, group: &str) {
        self.group_failures.remove(&self.group(group));
        if let Some(mm2) = &self.mm2 {
            mm2.remove_group(&self.group(group));
        }
    }

    /// The checkpoints of `written` (group, remote topic, partition) were acknowledged
    /// `latency` after their offsets were read.
    fn checkpointed(&self, written: &[(String, String, i32)], latency: Duration) {
        if written.is_empty() {
            return;
        }
        self.latency.observe(latency.as_secs_f64());
        if let Some(mm2) = &self.mm2 {
            for (group, topic, partition) in written {
                let ms = latency.as_secs_f64() * 1000.0;
                mm2.checkpointed(&self.group(group), topic, *partition, ms);
            }
        }
    }
}

/// What the checkpoint task remembers between rounds, for the groups of the last round.
#[derive(Default)]
struct RoundState {
    /// Last checkpoint per (group, remote topic, partition): written only when it moved.
    last: HashMap<(String, String, i32), (i64, i64)>,
    /// Per group, whether its checkpoints fail (logged once per change).
    groups: HashMap<String, Health>,
    /// Per group, whether syncing its offsets to the target fails (apart: a group whose
    /// checkpoints work but whose sync fails is said once, not at every round).
    synced: HashMap<String, Health>,
    /// Translations already reported as clamped (once each).
    clamped: HashSet<(String, String, i32)>,
    /// Whether rounds take longer than their interval (said once per change).
    overrun: Health,
}

impl RoundState {
    /// Forgets every group not listed now (deleted, or no longer accepted by the filter).
    fn keep_only(&mut self, listed: &[String]) {
        let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
        self.last
            .retain(|(group, _, _), _| listed.contains(group.as_str()));
        self.clamped
            .retain(|(group, _, _)| listed.contains(group.as_str()));
        self.groups
            .retain(|group, _| listed.contains(group.as_str()));
        self.synced
            .retain(|group, _| listed.contains(group.as_str()));
    }

    /// A group's checkpoints (`sync`: its offset sync) ended with `outcome`: said once per
    /// change.
    fn group_outcome<T>(
        &mut self,
        flow: &str,
        group: &str,
        sync: bool,
        outcome: &Result<T, GroupsError>,
    ) {
        let (health, what) = if sync {
            (
                self.synced.entry(group.to_string()).or_default(),
                "offset sync of the group",
            )
        } else {
            (
                self.groups.entry(group.to_string()).or_default(),
                "checkpoints of the group",
            )
        };
        match outcome {
            Ok(_) if health.recovered() => info!(flow, group, "{what}: working again"),
            Err(e) if health.failed() => warn!(flow, group, "{what}: {e}; retrying next interval"),
            _ => {}
        }
    }
}

impl CheckpointTask {
    /// The checkpoints of one group that moved since they were last written; adds each one
    /// sent (group, remote topic, partition) to `written`.
    fn write_checkpoints(
        &self,
        group: &str,
        translations: &[Translation],
        producer: &BaseProducer<ClientLog>,
        state: &mut RoundState,
        written: &mut Vec<(String, String, i32)>,
    ) {
        for t in translations {
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
                written.push((group.to_string(), t.remote_topic.clone(), t.partition));
            }
        }
    }

    /// One round over every group; returns how many groups it covered.
    fn round(
        &self,
        clients: &GroupClients,
        store: &mut OffsetSyncStore,
        producer: &BaseProducer<ClientLog>,
        sync_groups: bool,
        state: &mut RoundState,
    ) -> Result<usize, GroupsError> {
        let name = self.flow.name();
        // Read to the topic's end as of now: no checkpoint is made from a partial view.
        let histories = store.update()?;
        let groups = clients.source_groups(&self.flow)?;
        for gone in state.groups.keys().filter(|g| !groups.contains(g)) {
            self.meters.forget(gone);
        }
        state.keep_only(&groups);
        let mut to_apply = Vec::new();
        let mut written = Vec::new();
        let translated_at = Instant::now();
        for (group, translated) in clients.translate(&self.flow, histories, &groups)? {
            // One group's trouble is that group's: the others go on.
            state.group_outcome(&name, &group, false, &translated);
            let Ok((translations, clamped)) = translated else {
                self.meters.failed(&group);
                continue;
            };
            for c in clamped {
                if state
                    .clamped
                    .insert((group.clone(), c.remote_topic.clone(), c.partition))
                {
                    warn!(
                        flow = %name, group,
                        "an offset sync translates to {} in {}[{}], past its end {}: using the \
                         end (a forged or stale sync in {}?)",
                        c.translated, c.remote_topic, c.partition, c.end,
                        self.flow.offset_syncs.as_ref().map_or("", |s| s.topic.as_str())
                    );
                }
            }
            self.write_checkpoints(&group, &translations, producer, state, &mut written);
            if sync_groups {
                to_apply.push((group, translations));
            }
        }
        if !to_apply.is_empty() {
            for (group, applied) in clients.apply(&to_apply)? {
                state.group_outcome(&name, &group, true, &applied);
                if applied.is_err() {
                    self.meters.failed(&group);
                }
                if let Ok(applied) = applied {
                    if applied.written > 0 {
                        info!(flow = %name, group, "synced {} offset(s) to the target group", applied.written);
                    }
                }
            }
        }
        producer.flush(TIMEOUT)?;
        // Every checkpoint of the round is acknowledged now.
        self.meters.checkpointed(&written, translated_at.elapsed());
        Ok(groups.len())
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
        let clients = GroupClients::new(&self.source_consumer, &self.target_consumer)?;
        let mut store = OffsetSyncStore::new(&self.syncs_consumer, &syncs.topic);
        let mut state = RoundState {
            last: self.emitted_checkpoints(),
            ..RoundState::default()
        };
        let mut health = Health::default();
        let mut last_group_sync = None::<Instant>;
        let mut pause = checkpoint_every;
        // The first round waits one interval, so that the copy has written syncs.
        while !self.shutdown.sleep(pause) {
            if !self.standing.leads() || self.taken_over.is_marked() {
                pause = checkpoint_every;
                continue; // another instance, or a newer process, checkpoints
            }
            let sync_groups = self.flow.groups.sync_interval.is_some_and(|every| {
                last_group_sync.is_none_or(|at: Instant| at.elapsed() >= every)
            });
            self.meters.rounds.inc();
            let started = Instant::now();
            let round = self.round(&clients, &mut store, &producer, sync_groups, &mut state);
            if sync_groups {
                last_group_sync = Some(Instant::now());
            }
            let took = started.elapsed();
            match round {
                Ok(groups) => {
                    if health.recovered() {
                        info!(flow = %name, "checkpoints: working again");
                    }
                    say_overrun(&name, &mut state.overrun, groups, took, checkpoint_every);
                }
                Err(e) => {
                    if health.failed() {
                        warn!(flow = %name, "checkpoints: {e}; retrying next interval");
                    }
                }
            }
            // The next round starts one interval after this one started, or at once.
            pause = checkpoint_every.saturating_sub(took);
        }
        Ok(())
    }
}

/// A round over `groups` that took `took` against its `interval`: said once when rounds start
/// to overrun their interval (checkpoints then lag behind), and once when they fit again.
fn say_overrun(
    flow: &str,
    overrun: &mut Health,
    groups: usize,
    took: Duration,
    interval: Duration,
) {
    if took > interval {
        if overrun.failed() {
            warn!(
                flow,
                "a checkpoint round over {groups} group(s) took {took:.1?}, longer than its \
                 interval ({interval:?}): checkpoints and synced group offsets are that late"
            );
        }
    } else if took <= interval * 3 / 4 && overrun.recovered() {
        info!(
            flow,
            "checkpoint rounds fit their interval again ({groups} group(s) in {took:.1?})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_groups_still_listed_are_remembered() {
        let mut state = RoundState::default();
        for group in ["a", "b"] {
            state.last.insert((group.into(), "t".into(), 0), (1, 1));
            state.clamped.insert((group.into(), "t".into(), 0));
            state.groups.insert(group.into(), Health::default());
            state.synced.insert(group.into(), Health::default());
        }
        state.keep_only(&["b".to_string()]);
        assert_eq!(state.last.len(), 1);
        assert!(state.last.contains_key(&("b".into(), "t".into(), 0)));
        assert_eq!(state.clamped.len(), 1);
        assert_eq!(state.groups.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(state.synced.keys().collect::<Vec<_>>(), ["b"]);
    }
}
