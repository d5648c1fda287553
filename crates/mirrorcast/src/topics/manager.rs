//! The slow loop of a flow: every refresh interval it lists the source, creates missing remote
//! topics (with the source's partition count and configs), grows remote topics whose source
//! gained partitions, deletes remote topics whose source is gone (only when asked to, and only
//! topics this flow created), and tells the copier what to copy. Every config-sync interval it
//! brings remote topic configs in line with the source.
//!
//! Failures are retried with backoff and logged once per state change; a topic whose config or
//! partitions cannot be changed is reported and skipped, never a reason to stop the flow. The
//! config and ACL rounds are in [`super::config_round`] and [`super::acl_round`], the timers in
//! [`super::schedule`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::created::CreatedTopicsStore;
use super::schedule::{Every, Retry};
use super::{replicated_topics, ClusterAdmin, TopicError};
use crate::acls::TopicAcl;
use crate::backoff::Backoff;
use crate::config::FlowConfig;
use crate::health::Health;
use crate::kafka::admin::TopicAdmin;
use crate::kafka::clients::ClientLog;
use crate::observe::Observability;
use crate::ownership::Standing;
use crate::plan::{Command, Commands, Route};
use crate::progress;
use crate::shutdown::Shutdown;

/// How many refreshes in a row a source topic must be missing before its remote topic is
/// deleted (with `sync.topic.deletions.enabled`): one missing listing may be a glitch.
const DELETE_AFTER_MISSING_REFRESHES: u32 = 2;
/// The longest sleep of a manager with nothing due (all jobs off).
const IDLE_WAKE: Duration = Duration::from_secs(3600);
/// With instances sharing the source: how often leadership changes and topics the leader is
/// to create are looked at.
const LEADER_WAKE: Duration = Duration::from_secs(1);

pub struct TopicManager {
    pub flow: FlowConfig,
    pub source_admin: rdkafka::ClientConfig,
    pub target_admin: rdkafka::ClientConfig,
    /// For the marks of created topics, kept in the progress topic.
    pub target_consumer: rdkafka::ClientConfig,
    pub target_producer: rdkafka::ClientConfig,
    pub commands: Commands,
    /// With instances sharing the source: only the leading one creates, grows, syncs and
    /// deletes; every instance routes what exists.
    pub standing: Standing,
    pub shutdown: Shutdown,
    pub observe: Observability,
}

/// What the manager remembers between rounds.
#[derive(Default)]
pub(super) struct Known {
    /// Source topic → route, as last sent to the copier.
    pub(super) routes: BTreeMap<String, Route>,
    /// Remote topics this flow created (the only ones it may ever delete).
    pub(super) created: HashSet<String>,
    /// Where `created` survives restarts (with `sync.topic.deletions.enabled`).
    pub(super) created_store: Option<CreatedTopicsStore>,
    /// Source topic → consecutive refreshes it was missing from the listing.
    pub(super) missing: HashMap<String, u32>,
    /// Topics whose partition growth failed (warned once until it works).
    pub(super) growth_refused: HashSet<String>,
    /// Remote topics the target refused to create, for a reason of their own (warned once
    /// until it works; the other topics go on).
    pub(super) creation_refused: HashSet<String>,
    /// Topics whose config sync failed, with the error last reported.
    pub(super) config_failures: HashMap<String, String>,
    /// ACLs created on the target (add-only: never created twice, never removed).
    pub(super) acls_created: HashSet<TopicAcl>,
    /// A cluster of this flow has no authorizer: ACL sync is off.
    pub(super) acls_unsupported: bool,
    /// "No ACLs on the source" was said (and not contradicted since).
    pub(super) acls_none_reported: bool,
    pub(super) acl_health: Health,
    /// With instances sharing the source: topics left for the leading instance to create or
    /// grow (looked at again soon, not a refresh interval later).
    pub(super) awaiting_leader: bool,
}

impl TopicManager {
    pub fn run(self) {
        let name = self.flow.name();
        let mut health = Health::default();
        let mut backoff = Backoff::default();
        let (source_log, target_log) = (
            self.client_log("source admin"),
            self.client_log("target admin"),
        );
        let causes = [
            ("source", source_log.problems()),
            ("target", target_log.problems()),
        ];
        // Before the first round the flow is not running yet: its status says why, with
        // librdkafka's cause (a request only fails with "transport failure").
        let show_failure = |message: &str| {
            let mut message = message.to_string();
            for (side, cause) in &causes {
                if let Some(cause) = cause.recent(std::time::Duration::from_secs(60)) {
                    message.push_str(&format!("; {side}: {cause}"));
                }
            }
            let status = &self.observe.status;
            status.error(&self.flow.source, &self.flow.target, &message);
            status.update(&self.flow.source, &self.flow.target, |s| {
                s.topics_failing = true;
            });
        };
        let mut retry = Retry {
            flow: &name,
            shutdown: &self.shutdown,
            backoff: &mut backoff,
            health: &mut health,
            on_failure: &show_failure,
        };
        // Admin clients are created once; librdkafka reconnects them by itself.
        let mut logs = Some((source_log, target_log));
        let Some((source, target)) = retry.until("creating admin clients", || {
            let (source_log, target_log) = match logs.take() {
                Some(logs) => logs,
                None => (
                    self.client_log("source admin"),
                    self.client_log("target admin"),
                ),
            };
            let source = TopicAdmin::with_log(&self.source_admin, source_log)?;
            let target = TopicAdmin::with_log(&self.target_admin, target_log)?;
            Ok::<_, TopicError>((source, target))
        }) else {
            return;
        };
        // The copier reads its progress first, so the progress topic must exist before any route.
        let created = retry.until("creating the internal topics", || {
            self.ensure_internal_topics(&source, &target)
        });
        if created.is_none() {
            return;
        }
        // The copier starts each partition from the stored progress: it comes before any route.
        let progress_topic = self.flow.progress_topic();
        let Some(progress) =
            retry.until(&format!("reading progress from {progress_topic}"), || {
                progress::load(
                    &self.target_consumer,
                    &progress_topic,
                    &self.flow.progress.connector,
                    &self.flow.source,
                )
            })
        else {
            return;
        };
        if self.commands.send(Command::Resume(progress)).is_err() {
            return; // the copier is gone
        }
        let mut known = Known::default();
        if self.flow.sync_deletions {
            let Some((store, created)) =
                retry.until("reading which topics mirrorcast created", || {
                    CreatedTopicsStore::open(
                        &self.target_consumer,
                        &self.target_producer,
                        &progress_topic,
                        &self.flow.source,
                    )
                })
            else {
                return;
            };
            known.created = created;
            known.created_store = Some(store);
        }
        let mut refresh = Every::due_now(self.flow.refresh_topics_interval, Instant::now());
        let mut config_sync = Every::new(self.flow.config_sync_interval);
        let mut acl_sync = Every::new(self.flow.acl_sync_interval);
        // Alone, this process always leads.
        let mut led = !self.standing.is_grouped();
        let mut took_over = false;
        loop {
            let now = Instant::now();
            let leads = self.standing.leads();
            if leads && !led {
                // Taking over: create what is missing, then repair drift, at once.
                refresh.retry_after(now, Duration::ZERO);
                took_over = true;
            }
            led = leads;
            if refresh.is_due(now) {
                match self.refresh(&source, &target, &mut known) {
                    Ok(()) => {
                        health.say_recovered(&name, "topic management");
                        self.observe
                            .status
                            .update(&self.flow.source, &self.flow.target, |s| {
                                s.source_reachable = true;
                                s.target_reachable = true;
                                s.topics_failing = false;
                                s.last_reached_at_ms = Some(crate::observe::status::now_ms());
                            });
                        backoff.reset();
                        if known.awaiting_leader {
                            refresh.retry_after(now, LEADER_WAKE);
                        } else {
                            refresh.done(now);
                        }
                        // The first syncs right away: a restart repairs drift at once.
                        config_sync.start(now);
                        acl_sync.start(now);
                        if std::mem::take(&mut took_over) {
                            if self.flow.config_sync_interval.is_some() {
                                config_sync.retry_after(now, Duration::ZERO);
                            }
                            if self.flow.acl_sync_interval.is_some() && !known.acls_unsupported {
                                acl_sync.retry_after(now, Duration::ZERO);
                            }
                        }
                    }
                    Err(e) => {
                        health.warn_failed(&name, "topic management", &e);
                        self.observe.status.error(
                            &self.flow.source,
                            &self.flow.target,
                            &e.to_string(),
                        );
                        self.observe
                            .status
                            .update(&self.flow.source, &self.flow.target, |s| {
                                s.topics_failing = true;
                            });
                        refresh.retry_after(now, backoff.next_delay());
                    }
                }
                if self.commands.send(self.routes_command(&known)).is_err() {
                    return; // the copier is gone
                }
            }
            if config_sync.is_due(now) {
                if self.standing.leads() {
                    self.sync_configs(&source, &target, &mut known);
                }
                config_sync.done(now);
            }
            if acl_sync.is_due(now) {
                if self.standing.leads() {
                    self.sync_acls(&source, &target, &mut known);
                }
                acl_sync.done(now);
                if known.acls_unsupported {
                    acl_sync = Every::new(None);
                }
            }
            let wake = [refresh.next(), config_sync.next(), acl_sync.next()]
                .into_iter()
                .flatten()
                .min();
            let pause = wake.map_or(IDLE_WAKE, |at| at.saturating_duration_since(Instant::now()));
            let most = if self.standing.is_grouped() {
                LEADER_WAKE
            } else {
                IDLE_WAKE
            };
            if self.shutdown.sleep(pause.min(most)) {
                return;
            }
        }
    }

    fn client_log(&self, role: &str) -> ClientLog {
        ClientLog::new(format!("{} {role}", self.flow.name())).reporting_to(
            self.observe.status.clone(),
            &self.flow.source,
            &self.flow.target,
        )
    }

    fn routes_command(&self, known: &Known) -> Command {
        Command::Routes(known.routes.values().cloned().collect())
    }

    /// The internal topics must exist before the copier writes to them: the progress topic on
    /// the target, the heartbeats topic on the target, the dead-letter topic if there is one,
    /// and the offset-syncs topic where it is configured (MM2 creates them compacted, with one partition but the progress topic).
    fn ensure_internal_topics(
        &self,
        source: &impl ClusterAdmin,
        target: &impl ClusterAdmin,
    ) -> Result<(), TopicError> {
        let compact = [("cleanup.policy".to_string(), "compact".to_string())];
        let ensure = |admin: &dyn ClusterAdmin, topic: &str, partitions, factor, configs: &[_]| {
            self.ensure_internal_topic(admin, topic, partitions, factor, configs)
        };
        ensure(
            target,
            &self.flow.progress_topic(),
            self.flow.progress.partitions,
            self.flow.progress.replication_factor,
            &compact,
        )?;
        if let Some(heartbeats) = &self.flow.heartbeats {
            ensure(
                target,
                crate::policy::HEARTBEATS_TOPIC,
                1,
                heartbeats.replication_factor,
                &compact,
            )?;
        }
        // Checkpoints are made from offset syncs: without them (`emit.offset-syncs.enabled =
        // false`) there are none, and no checkpoints topic, as in MM2.
        if self.flow.groups.checkpoint_interval.is_some() && self.flow.offset_syncs.is_some() {
            ensure(
                target,
                &self.flow.groups.checkpoints_topic,
                1,
                self.flow.groups.checkpoints_replication_factor,
                &compact,
            )?;
        }
        if let crate::config::ErrorsConfig::DeadLetter {
            topic,
            replication_factor,
        } = &self.flow.errors
        {
            // As Kafka Connect creates its dead-letter topic: one partition, not compacted.
            ensure(target, topic, 1, *replication_factor, &[])?;
        }
        if let Some(syncs) = &self.flow.offset_syncs {
            let cluster: &dyn ClusterAdmin = if syncs.on_source { source } else { target };
            ensure(cluster, &syncs.topic, 1, syncs.replication_factor, &compact)?;
        }
        Ok(())
    }

    fn ensure_internal_topic(
        &self,
        admin: &dyn ClusterAdmin,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &[(String, String)],
    ) -> Result<(), TopicError> {
        let spec = (partitions, replication_factor, configs);
        ensure_internal_topic(admin, &self.flow.name(), topic, spec)
    }

    /// Lists the source, creates or grows remote topics, deletes orphaned ones if asked to.
    pub(super) fn refresh(
        &self,
        source: &impl ClusterAdmin,
        target: &impl ClusterAdmin,
        known: &mut Known,
    ) -> Result<(), TopicError> {
        let flow = self.flow.name();
        let source_topics = source.list_topics()?;
        let target_topics = target.list_topics()?;
        known.awaiting_leader = false;
        for mut route in replicated_topics(&self.flow, &source_topics) {
            known.missing.remove(&route.source_topic);
            let leads = self.standing.leads();
            let remote_partitions = match target_topics.get(&route.remote_topic) {
                Some(count) => *count,
                // The leading instance creates it; copied here once it exists.
                None if !leads => {
                    known.awaiting_leader = true;
                    continue;
                }
                None => match self.create_remote_topic(source, target, &route, known) {
                    Ok(count) => {
                        known.creation_refused.remove(&route.remote_topic);
                        count
                    }
                    // MM2 logs it and creates the others: so do we; the topic is not copied
                    // (nothing may be produced into a topic the broker would make its own way)
                    // and creating it is tried again at each refresh.
                    Err(e) if refused_for_itself(&e) => {
                        if known.creation_refused.insert(route.remote_topic.clone()) {
                            warn!(
                                flow,
                                "the target refused to create {} ({e}): {} is not copied; the \
                                 other topics go on, and creating it is tried again at each \
                                 refresh",
                                route.remote_topic,
                                route.source_topic
                            );
                        }
                        known.routes.remove(&route.source_topic);
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            if remote_partitions < route.partitions && !leads {
                known.awaiting_leader = true;
                route.partitions = remote_partitions;
            } else if remote_partitions < route.partitions {
                match target.create_partitions(&route.remote_topic, route.partitions) {
                    Ok(()) => {
                        info!(
                            flow,
                            "grew {} from {remote_partitions} to {} partition(s)",
                            route.remote_topic,
                            route.partitions
                        );
                        known.growth_refused.remove(&route.remote_topic);
                    }
                    Err(e) => {
                        if known.growth_refused.insert(route.remote_topic.clone()) {
                            warn!(
                                flow,
                                "{} has {} partition(s) on the source but {remote_partitions} on \
                                 the target, and the target refused to add more ({e}); copying \
                                 the first {remote_partitions} and trying again at the next refresh",
                                route.source_topic,
                                route.partitions
                            );
                        }
                        route.partitions = remote_partitions;
                    }
                }
            }
            known.routes.insert(route.source_topic.clone(), route);
        }
        self.forget_vanished_topics(&source_topics, target, known)
    }

    /// Creates the remote topic with the source's partition count and replicated configs.
    /// (A refusal is [`refused_for_itself`] or a failure of the whole round.)
    fn create_remote_topic(
        &self,
        source: &impl ClusterAdmin,
        target: &impl ClusterAdmin,
        route: &Route,
        known: &mut Known,
    ) -> Result<i32, TopicError> {
        let source_configs = source.describe_configs(&[&route.source_topic])?;
        let configs = source_configs
            .get(&route.source_topic)
            .map(|entries| self.flow.config_filter.creation_configs(entries))
            .unwrap_or_default();
        let count = target.ensure_topic(
            &route.remote_topic,
            route.partitions,
            self.flow.replication_factor,
            &configs,
        )?;
        known.created.insert(route.remote_topic.clone());
        if let Some(store) = &known.created_store {
            if let Err(e) = store.record(&route.remote_topic) {
                warn!(
                    flow = %self.flow.name(),
                    "cannot remember that {} was created here ({e}): after a restart it will \
                     not be deleted with its source",
                    route.remote_topic
                );
            }
        }
        let shown: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        info!(
            flow = %self.flow.name(),
            "created {} with {count} partition(s) and configs [{}]",
            route.remote_topic,
            shown.join(", ")
        );
        Ok(count)
    }

    /// Source topics no longer listed: with `sync.topic.deletions.enabled`, their remote topic
    /// goes after [`DELETE_AFTER_MISSING_REFRESHES`] refreshes, if this flow created it.
    fn forget_vanished_topics(
        &self,
        source_topics: &BTreeMap<String, i32>,
        target: &impl ClusterAdmin,
        known: &mut Known,
    ) -> Result<(), TopicError> {
        if !self.flow.sync_deletions {
            return Ok(());
        }
        // Topics being copied, and topics created before a restart whose source may have gone
        // while mirrorcast was not running.
        let mut candidates: BTreeMap<String, String> = known
            .routes
            .iter()
            .map(|(source, route)| (source.clone(), route.remote_topic.clone()))
            .collect();
        for remote in &known.created {
            if let Some(source) = self.flow.policy.source_topic_of(&self.flow.source, remote) {
                candidates.entry(source).or_insert_with(|| remote.clone());
            }
        }
        for (topic, remote_topic) in candidates {
            if source_topics.contains_key(&topic) {
                continue;
            }
            let missing = known.missing.entry(topic.clone()).or_insert(0);
            *missing += 1;
            if *missing < DELETE_AFTER_MISSING_REFRESHES {
                continue;
            }
            known.missing.remove(&topic);
            if known.routes.remove(&topic).is_some() {
                let _ = self.commands.send(Command::Forget(vec![topic.clone()]));
            }
            if !self.standing.leads() {
                continue; // the leading instance deletes
            }
            if known.created.remove(&remote_topic) {
                target.delete_topic(&remote_topic)?;
                if let Some(store) = &known.created_store {
                    let _ = store.forget(&remote_topic);
                }
                info!(
                    flow = %self.flow.name(),
                    "deleted {remote_topic} because {topic} is gone from the source"
                );
            } else {
                info!(
                    flow = %self.flow.name(),
                    "{topic} is gone from the source; keeping {remote_topic} (not created by mirrorcast)"
                );
            }
        }
        Ok(())
    }
}

/// Whether the target refused a topic for a reason of that topic (its name, configs,
/// replication factor, a policy, an ACL), so other topics may still be created; anything else
/// (the cluster unreachable, a timeout) fails the whole round, which is retried with backoff.
fn refused_for_itself(error: &TopicError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as Code;
    matches!(
        error,
        TopicError::Create { code, .. } if matches!(
            code,
            Code::PolicyViolation
                | Code::InvalidConfig
                | Code::InvalidReplicationFactor
                | Code::InvalidPartitions
                | Code::InvalidReplicaAssignment
                | Code::InvalidTopic
                | Code::TopicAuthorizationFailed
                | Code::ClusterAuthorizationFailed
                | Code::InvalidRequest
        )
    )
}

/// Creates an internal topic (with `(partitions, replication factor, configs)`) unless it
/// exists. Not being allowed to create it is taken to mean someone else did (or the broker
/// will): MM2's `MirrorUtils` does the same, so a locked-down cluster whose operator made the
/// topics works; one warning says so.
pub(crate) fn ensure_internal_topic(
    admin: &dyn ClusterAdmin,
    flow: &str,
    topic: &str,
    (partitions, replication_factor, configs): (i32, i32, &[(String, String)]),
) -> Result<(), TopicError> {
    use rdkafka::error::RDKafkaErrorCode as Code;
    match admin.ensure_topic(topic, partitions, replication_factor, configs) {
        Ok(_) => Ok(()),
        Err(TopicError::Create {
            code: code @ (Code::TopicAuthorizationFailed | Code::ClusterAuthorizationFailed),
            ..
        }) => {
            warn!(
                flow,
                "not allowed to create the internal topic {topic} ({code}): assuming it \
                 exists or that the broker creates it"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{manager, FakeCluster};
    use super::*;

    #[test]
    fn remote_topics_get_the_source_partition_count_and_non_excluded_configs() {
        let (manager, _) = manager("");
        let source = FakeCluster::with(&[(
            "orders",
            3,
            &[("retention.ms", "1000"), ("min.insync.replicas", "2")],
        )]);
        let target = FakeCluster::default();
        let mut known = Known::default();
        manager.refresh(&source, &target, &mut known).unwrap();
        assert_eq!(target.partitions("orders"), Some(3));
        assert_eq!(
            target.config("orders", "retention.ms").as_deref(),
            Some("1000")
        );
        assert_eq!(target.config("orders", "min.insync.replicas"), None);
        assert_eq!(known.routes["orders"].partitions, 3);
    }

    /// With instances sharing the source, one that does not lead routes what exists and
    /// leaves creation and growth to the leader, looking again soon; once it leads, it creates.
    #[test]
    fn only_the_leading_instance_creates_or_grows_remote_topics() {
        let (mut manager, _) = manager("");
        let standing = Standing::in_group();
        standing.set_lease(Some(Instant::now() + Duration::from_secs(600)));
        manager.standing = standing.clone();
        let source = FakeCluster::with(&[("orders", 3, &[]), ("stock", 2, &[])]);
        let target = FakeCluster::with(&[("orders", 1, &[])]);
        let mut known = Known::default();
        manager.refresh(&source, &target, &mut known).unwrap();
        assert_eq!(target.partitions("stock"), None, "created by a follower");
        assert_eq!(target.partitions("orders"), Some(1), "grown by a follower");
        assert_eq!(
            known.routes["orders"].partitions, 1,
            "what exists is copied"
        );
        assert!(!known.routes.contains_key("stock"));
        assert!(known.awaiting_leader);
        standing.set_leads(true);
        manager.refresh(&source, &target, &mut known).unwrap();
        assert_eq!(target.partitions("stock"), Some(2));
        assert_eq!(target.partitions("orders"), Some(3));
        assert_eq!(known.routes["stock"].partitions, 2);
        assert!(!known.awaiting_leader);
    }

    #[test]
    fn partition_growth_is_retried_each_refresh_and_copies_what_exists_meanwhile() {
        let (manager, _) = manager("");
        let source = FakeCluster::with(&[("orders", 3, &[])]);
        let target = FakeCluster::with(&[("orders", 1, &[])]);
        *target.refuse_partitions.borrow_mut() = true;
        let mut known = Known::default();
        manager.refresh(&source, &target, &mut known).unwrap();
        assert_eq!(
            known.routes["orders"].partitions, 1,
            "copy the partition that exists"
        );
        assert!(known.growth_refused.contains("orders"), "warned once");
        manager.refresh(&source, &target, &mut known).unwrap();
        assert_eq!(known.routes["orders"].partitions, 1);
        *target.refuse_partitions.borrow_mut() = false;
        manager.refresh(&source, &target, &mut known).unwrap();
        assert_eq!(target.partitions("orders"), Some(3));
        assert_eq!(
            known.routes["orders"].partitions, 3,
            "new partitions are copied"
        );
        assert!(known.growth_refused.is_empty());
    }

    #[test]
    fn a_topic_the_target_refuses_is_skipped_and_the_others_are_created_in_the_same_round() {
        let (manager, _) = manager("");
        let source = FakeCluster::with(&[("alpha", 1, &[]), ("beta", 2, &[]), ("gamma", 1, &[])]);
        let target = FakeCluster::with(&[]);
        target.refuse_creating.borrow_mut().insert("beta".into());
        let mut known = Known::default();
        manager.refresh(&source, &target, &mut known).unwrap();
        assert_eq!(target.partitions("alpha"), Some(1));
        assert_eq!(
            target.partitions("gamma"),
            Some(1),
            "created after the refusal"
        );
        assert_eq!(target.partitions("beta"), None);
        assert!(
            !known.routes.contains_key("beta"),
            "a refused topic is not copied"
        );
        assert!(known.creation_refused.contains("beta"), "warned once");
        target.refuse_creating.borrow_mut().clear();
        manager.refresh(&source, &target, &mut known).unwrap();
        assert_eq!(
            target.partitions("beta"),
            Some(2),
            "tried again at the next refresh"
        );
        assert!(known.routes.contains_key("beta") && known.creation_refused.is_empty());
    }

    #[test]
    fn an_internal_topic_it_may_not_create_is_taken_to_exist_as_mm2_does() {
        let (manager, _) = manager("");
        let source = FakeCluster::with(&[]);
        let target = FakeCluster::with(&[]);
        let progress = manager.flow.progress_topic();
        target.deny_creating.borrow_mut().insert(progress.clone());
        manager
            .ensure_internal_topics(&source, &target)
            .expect("not authorized: assumed to exist");
        assert_eq!(target.partitions(&progress), None);
        assert_eq!(
            target.partitions("heartbeats"),
            Some(1),
            "the others are created"
        );
        target.deny_creating.borrow_mut().clear();
        target
            .refuse_creating
            .borrow_mut()
            .insert("heartbeats".into());
        let target = FakeCluster::with(&[]);
        target.refuse_creating.borrow_mut().insert(progress);
        assert!(
            manager.ensure_internal_topics(&source, &target).is_err(),
            "any other refusal still fails"
        );
    }

    #[test]
    fn without_offset_syncs_there_is_no_syncs_topic_and_no_checkpoints_topic() {
        let (without_syncs, _) = manager("emit.offset-syncs.enabled = false\n");
        let (source, target) = (FakeCluster::with(&[]), FakeCluster::with(&[]));
        without_syncs
            .ensure_internal_topics(&source, &target)
            .unwrap();
        let mut created: Vec<String> = target.topics.borrow().keys().cloned().collect();
        created.extend(source.topics.borrow().keys().cloned());
        assert_eq!(created, ["heartbeats", "mm2-offsets.europe.internal"]);
        let (manager, _) = manager("");
        let (source, target) = (FakeCluster::with(&[]), FakeCluster::with(&[]));
        manager.ensure_internal_topics(&source, &target).unwrap();
        assert!(target.partitions("europe.checkpoints.internal").is_some());
        assert!(source.partitions("mm2-offset-syncs.na.internal").is_some());
    }

    #[test]
    fn partition_counts_never_shrink() {
        let (manager, _) = manager("");
        let source = FakeCluster::with(&[("orders", 2, &[])]);
        let target = FakeCluster::with(&[("orders", 5, &[])]);
        manager
            .refresh(&source, &target, &mut Known::default())
            .unwrap();
        assert_eq!(target.partitions("orders"), Some(5));
    }

    #[test]
    fn deletions_follow_only_when_enabled_after_two_refreshes_and_only_for_created_topics() {
        let (manager, commands) = manager("sync.topic.deletions.enabled = true\n");
        let source = FakeCluster::with(&[("ours", 1, &[]), ("theirs", 1, &[])]);
        // `theirs` already existed on the target: mirrorcast did not create it.
        let target = FakeCluster::with(&[("theirs", 1, &[])]);
        let mut known = Known::default();
        manager.refresh(&source, &target, &mut known).unwrap();
        source.delete_topic("ours").unwrap();
        source.delete_topic("theirs").unwrap();
        manager.refresh(&source, &target, &mut known).unwrap();
        assert_eq!(
            target.partitions("ours"),
            Some(1),
            "one missing listing is not enough"
        );
        manager.refresh(&source, &target, &mut known).unwrap();
        assert_eq!(target.partitions("ours"), None);
        assert_eq!(
            target.partitions("theirs"),
            Some(1),
            "never delete what we did not create"
        );
        let forgotten: Vec<String> = commands
            .try_iter()
            .filter_map(|c| match c {
                crate::plan::ToCopier::Topics(Command::Forget(topics)) => Some(topics),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(forgotten, ["ours", "theirs"]);
    }

    #[test]
    fn deletions_are_off_by_default() {
        let (manager, _) = manager("");
        let source = FakeCluster::with(&[("ours", 1, &[])]);
        let target = FakeCluster::default();
        let mut known = Known::default();
        manager.refresh(&source, &target, &mut known).unwrap();
        source.delete_topic("ours").unwrap();
        for _ in 0..3 {
            manager.refresh(&source, &target, &mut known).unwrap();
        }
        assert_eq!(target.partitions("ours"), Some(1));
    }
}
