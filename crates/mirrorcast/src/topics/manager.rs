//! The slow loop of a flow: every refresh interval it lists the source, creates missing remote
//! topics (with the source's partition count and configs), grows remote topics whose source
//! gained partitions, deletes remote topics whose source is gone (only when asked to, and only
//! topics this flow created), and tells the copier what to copy. Every config-sync interval it
//! brings remote topic configs in line with the source.
//!
//! Failures are retried with backoff and logged once per state change; a topic whose config or
//! partitions cannot be changed is reported and skipped, never a reason to stop the flow.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::created::CreatedTopicsStore;
use super::{replicated_topics, ClusterAdmin, TopicAdmin, TopicError};
use crate::acls::{remote_acl, TopicAcl};
use crate::backoff::Backoff;
use crate::clients::ClientLog;
use crate::config::FlowConfig;
use crate::observe::metrics::FlowLabels;
use crate::observe::Observability;
use crate::plan::{Command, Route};
use crate::progress;
use crate::shutdown::Shutdown;

/// How many refreshes in a row a source topic must be missing before its remote topic is
/// deleted (with `sync.topic.deletions.enabled`): one missing listing may be a glitch.
const DELETE_AFTER_MISSING_REFRESHES: u32 = 2;

pub struct TopicManager {
    pub flow: FlowConfig,
    pub source_admin: rdkafka::ClientConfig,
    pub target_admin: rdkafka::ClientConfig,
    /// For the marks of created topics, kept in the progress topic.
    pub target_consumer: rdkafka::ClientConfig,
    pub target_producer: rdkafka::ClientConfig,
    pub commands: Sender<Command>,
    pub shutdown: Shutdown,
    pub observe: Observability,
}

/// Reachability of one activity, logged only when it changes.
#[derive(Default)]
struct Health {
    failing: bool,
}

impl Health {
    fn failed(&mut self, flow: &str, what: &str, error: &dyn std::fmt::Display) {
        if !self.failing {
            warn!(flow, "{what}: {error}; retrying with backoff");
        }
        self.failing = true;
    }

    fn ok(&mut self, flow: &str, what: &str) {
        if std::mem::take(&mut self.failing) {
            info!(flow, "{what}: working again");
        }
    }
}

/// What the manager remembers between rounds.
#[derive(Default)]
struct Known {
    /// Source topic → route, as last sent to the copier.
    routes: BTreeMap<String, Route>,
    /// Remote topics this flow created (the only ones it may ever delete).
    created: HashSet<String>,
    /// Where `created` survives restarts (with `sync.topic.deletions.enabled`).
    created_store: Option<CreatedTopicsStore>,
    /// Source topic → consecutive refreshes it was missing from the listing.
    missing: HashMap<String, u32>,
    /// Topics whose partition growth failed (warned once until it works).
    growth_refused: HashSet<String>,
    /// Topics whose config sync failed, with the error last reported.
    config_failures: HashMap<String, String>,
    /// ACLs created on the target (add-only: never created twice, never removed).
    acls_created: HashSet<TopicAcl>,
    /// A cluster of this flow has no authorizer: ACL sync is off.
    acls_unsupported: bool,
    /// "No ACLs on the source" was said (and not contradicted since).
    acls_none_reported: bool,
    acl_health: Health,
}

impl TopicManager {
    pub fn run(self) {
        let name = self.flow.name();
        let mut health = Health::default();
        let mut backoff = Backoff::default();
        // Admin clients are created once; librdkafka reconnects them by itself.
        let (source, target) = loop {
            let source = TopicAdmin::with_log(&self.source_admin, self.client_log("source admin"));
            let target = TopicAdmin::with_log(&self.target_admin, self.client_log("target admin"));
            match (source, target) {
                (Ok(source), Ok(target)) => break (source, target),
                (Err(e), _) | (_, Err(e)) => {
                    health.failed(&name, "creating admin clients", &e);
                    if self.shutdown.sleep(backoff.next_delay()) {
                        return;
                    }
                }
            }
        };
        // The copier reads its progress first, so the progress topic must exist before any route.
        while let Err(e) = self.ensure_internal_topics(&source, &target) {
            health.failed(&name, "creating the internal topics", &e);
            if self.shutdown.sleep(backoff.next_delay()) {
                return;
            }
        }
        // The copier starts each partition from the stored progress: it comes before any route.
        let progress_topic = self.flow.progress_topic();
        let progress = loop {
            match progress::load(
                &self.target_consumer,
                &progress_topic,
                &self.flow.progress_connector,
                &self.flow.source,
            ) {
                Ok(progress) => break progress,
                Err(e) => {
                    health.failed(
                        &name,
                        &format!("reading progress from {progress_topic}"),
                        &e,
                    );
                    if self.shutdown.sleep(backoff.next_delay()) {
                        return;
                    }
                }
            }
        };
        if self.commands.send(Command::Resume(progress)).is_err() {
            return; // the copier is gone
        }
        let mut known = Known::default();
        if self.flow.sync_deletions {
            loop {
                match CreatedTopicsStore::open(
                    &self.target_consumer,
                    &self.target_producer,
                    &self.flow.progress_topic(),
                    &self.flow.source,
                ) {
                    Ok((store, created)) => {
                        known.created = created;
                        known.created_store = Some(store);
                        break;
                    }
                    Err(e) => {
                        health.failed(&name, "reading which topics mirrorcast created", &e);
                        if self.shutdown.sleep(backoff.next_delay()) {
                            return;
                        }
                    }
                }
            }
        }
        let mut next_refresh = Instant::now();
        let mut next_config_sync = None;
        let mut next_acl_sync = None;
        loop {
            let now = Instant::now();
            if now >= next_refresh {
                match self.refresh(&source, &target, &mut known) {
                    Ok(()) => {
                        health.ok(&name, "topic management");
                        self.observe
                            .status
                            .update(&self.flow.source, &self.flow.target, |s| {
                                s.source_reachable = true;
                                s.target_reachable = true;
                                s.topics_failing = false;
                                s.last_reached_at_ms = Some(crate::observe::status::now_ms());
                            });
                        backoff.reset();
                        next_refresh = match self.flow.refresh_topics_interval {
                            Some(interval) => now + interval,
                            None => far_future(now),
                        };
                        // The first syncs right away: a restart repairs drift at once.
                        next_config_sync.get_or_insert(now);
                        next_acl_sync.get_or_insert(now);
                    }
                    Err(e) => {
                        health.failed(&name, "topic management", &e);
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
                        next_refresh = now + backoff.next_delay();
                    }
                }
                if self.commands.send(self.routes_command(&known)).is_err() {
                    return; // the copier is gone
                }
            }
            if let (Some(interval), Some(due)) = (self.flow.config_sync_interval, next_config_sync)
            {
                if now >= due {
                    self.sync_configs(&source, &target, &mut known);
                    next_config_sync = Some(now + interval);
                }
            }
            if let (Some(interval), Some(due)) = (self.flow.acl_sync_interval, next_acl_sync) {
                if now >= due && !known.acls_unsupported {
                    self.sync_acls(&source, &target, &mut known);
                    next_acl_sync = Some(now + interval);
                }
            }
            let mut wake = next_refresh;
            if let (Some(_), Some(due)) = (self.flow.config_sync_interval, next_config_sync) {
                wake = wake.min(due);
            }
            if let (Some(_), Some(due), false) = (
                self.flow.acl_sync_interval,
                next_acl_sync,
                known.acls_unsupported,
            ) {
                wake = wake.min(due);
            }
            let pause = wake.saturating_duration_since(Instant::now());
            if self.shutdown.sleep(pause.min(Duration::from_secs(3600))) {
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

    fn flow_labels(&self) -> FlowLabels {
        FlowLabels {
            source: self.flow.source.clone(),
            target: self.flow.target.clone(),
        }
    }

    fn routes_command(&self, known: &Known) -> Command {
        Command::Routes(known.routes.values().cloned().collect())
    }

    /// The internal topics must exist before the copier writes to them: the progress topic on
    /// the target, the heartbeats topic on the target and the offset-syncs topic where it is
    /// configured (MM2 creates them compacted, with one partition but the progress topic).
    fn ensure_internal_topics(
        &self,
        source: &impl ClusterAdmin,
        target: &impl ClusterAdmin,
    ) -> Result<(), TopicError> {
        let compact = [("cleanup.policy".to_string(), "compact".to_string())];
        target.ensure_topic(
            &self.flow.progress_topic(),
            self.flow.progress_topic_partitions,
            self.flow.progress_topic_replication_factor,
            &compact,
        )?;
        if self.flow.heartbeat_interval.is_some() {
            target.ensure_topic(
                crate::policy::HEARTBEATS_TOPIC,
                1,
                self.flow.heartbeats_replication_factor,
                &compact,
            )?;
        }
        if self.flow.groups.checkpoint_interval.is_some() {
            target.ensure_topic(
                &self.flow.groups.checkpoints_topic,
                1,
                self.flow.groups.checkpoints_replication_factor,
                &compact,
            )?;
        }
        if let Some(syncs) = &self.flow.offset_syncs {
            if syncs.on_source {
                source.ensure_topic(&syncs.topic, 1, syncs.replication_factor, &compact)?;
            } else {
                target.ensure_topic(&syncs.topic, 1, syncs.replication_factor, &compact)?;
            }
        }
        Ok(())
    }

    /// Lists the source, creates or grows remote topics, deletes orphaned ones if asked to.
    fn refresh(
        &self,
        source: &impl ClusterAdmin,
        target: &impl ClusterAdmin,
        known: &mut Known,
    ) -> Result<(), TopicError> {
        let flow = self.flow.name();
        let source_topics = source.list_topics()?;
        let target_topics = target.list_topics()?;
        for mut route in replicated_topics(&self.flow, &source_topics) {
            known.missing.remove(&route.source_topic);
            let remote_partitions = match target_topics.get(&route.remote_topic) {
                Some(count) => *count,
                None => self.create_remote_topic(source, target, &route, known)?,
            };
            if remote_partitions < route.partitions {
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

    /// Brings the configs of every remote topic in line with its source topic.
    fn sync_configs(
        &self,
        source: &impl ClusterAdmin,
        target: &impl ClusterAdmin,
        known: &mut Known,
    ) {
        let flow = self.flow.name();
        let sources: Vec<&str> = known.routes.keys().map(String::as_str).collect();
        let remotes: Vec<&str> = known
            .routes
            .values()
            .map(|r| r.remote_topic.as_str())
            .collect();
        if sources.is_empty() {
            return;
        }
        self.observe
            .metrics
            .config_sync_runs
            .get_or_create(&self.flow_labels())
            .inc();
        let described = source
            .describe_configs(&sources)
            .and_then(|s| target.describe_configs(&remotes).map(|t| (s, t)));
        let (source_configs, target_configs) = match described {
            Ok(both) => both,
            Err(e) => {
                // Topic management reports unreachable clusters; one line here is enough.
                warn!(flow, "topic config sync skipped this round: {e}");
                return;
            }
        };
        for route in known.routes.values() {
            let (Some(wanted), Some(current)) = (
                source_configs.get(&route.source_topic),
                target_configs.get(&route.remote_topic),
            ) else {
                continue;
            };
            let ops = self.flow.config_filter.sync_ops(wanted, current);
            if ops.is_empty() {
                continue;
            }
            match target.alter_configs(&route.remote_topic, &ops) {
                Ok(()) => {
                    known.config_failures.remove(&route.remote_topic);
                    info!(flow, "synced configs of {}: {ops:?}", route.remote_topic);
                }
                Err(e) => {
                    self.observe
                        .metrics
                        .config_sync_failures
                        .get_or_create(&self.flow_labels())
                        .inc();
                    let message = e.to_string();
                    let previous = known
                        .config_failures
                        .insert(route.remote_topic.clone(), message.clone());
                    if previous.as_deref() != Some(message.as_str()) {
                        warn!(
                            flow,
                            "cannot sync configs of {}: {message}", route.remote_topic
                        );
                    }
                }
            }
        }
    }
}

impl TopicManager {
    /// Adds to the target the ACLs of replicated source topics, mapped by MM2's rules.
    fn sync_acls(&self, source: &impl ClusterAdmin, target: &impl ClusterAdmin, known: &mut Known) {
        let flow = self.flow.name();
        let result = source.describe_topic_acls().and_then(|acls| {
            // librdkafka (2.12) drops the top-level error of DescribeAcls, so a source without
            // an authorizer cannot be told from one without ACLs: say so once.
            if acls.is_empty() != known.acls_none_reported {
                known.acls_none_reported = acls.is_empty();
                if acls.is_empty() {
                    info!(
                        flow,
                        "topic ACL sync: the source reports no literal topic ACLs (none are set, \
                         or it has no authorizer); nothing to copy for now"
                    );
                }
            }
            let wanted: Vec<TopicAcl> = acls
                .iter()
                .filter_map(|acl| {
                    let route = known.routes.get(&acl.topic)?;
                    remote_acl(acl, &route.remote_topic)
                })
                .filter(|acl| !known.acls_created.contains(acl))
                .collect();
            target.create_topic_acls(&wanted)?;
            Ok(wanted)
        });
        match result {
            Ok(created) => {
                known.acl_health.ok(&flow, "topic ACL sync");
                if !created.is_empty() {
                    info!(flow, "added {} topic ACL(s) on the target", created.len());
                }
                known.acls_created.extend(created);
            }
            Err(e) if e.is_security_disabled() => {
                known.acls_unsupported = true;
                info!(
                    flow,
                    "topic ACL sync is off for this flow: a cluster has no authorizer ({e})"
                );
            }
            Err(e) => known.acl_health.failed(&flow, "topic ACL sync", &e),
        }
    }
}

/// An instant far enough ahead to mean "not again", without overflowing.
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(100 * 365 * 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acls::{AclOperation, AclPermission};
    use crate::admin_ext::ConfigOp;
    use crate::config::{Config, RawProperties};
    use crate::topics::config_sync::ConfigValue;
    use std::cell::RefCell;
    use std::sync::mpsc::{self, Receiver};

    /// Partition count and explicitly set configs of a fake topic.
    type FakeTopic = (i32, BTreeMap<String, String>);
    /// name, partitions, configs
    type TopicSpec<'a> = (&'a str, i32, &'a [(&'a str, &'a str)]);

    /// An in-memory cluster: topics with partition counts and explicitly set configs.
    #[derive(Default)]
    struct FakeCluster {
        topics: RefCell<BTreeMap<String, FakeTopic>>,
        refuse_partitions: RefCell<bool>,
        acls: RefCell<Vec<TopicAcl>>,
        no_authorizer: bool,
    }

    impl FakeCluster {
        fn with(topics: &[TopicSpec<'_>]) -> Self {
            let cluster = FakeCluster::default();
            for (name, partitions, configs) in topics {
                cluster.add(name, *partitions, configs);
            }
            cluster
        }

        fn add(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
            let configs = configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.topics
                .borrow_mut()
                .insert(name.into(), (partitions, configs));
        }

        fn partitions(&self, name: &str) -> Option<i32> {
            self.topics.borrow().get(name).map(|(p, _)| *p)
        }

        fn config(&self, name: &str, key: &str) -> Option<String> {
            self.topics.borrow().get(name)?.1.get(key).cloned()
        }
    }

    impl ClusterAdmin for FakeCluster {
        fn list_topics(&self) -> Result<BTreeMap<String, i32>, TopicError> {
            Ok(self
                .topics
                .borrow()
                .iter()
                .map(|(k, (p, _))| (k.clone(), *p))
                .collect())
        }

        fn describe_configs(
            &self,
            topics: &[&str],
        ) -> Result<BTreeMap<String, Vec<ConfigValue>>, TopicError> {
            let all = self.topics.borrow();
            Ok(topics
                .iter()
                .filter_map(|t| all.get(*t).map(|(_, c)| (t.to_string(), c)))
                .map(|(t, c)| {
                    let entries = c
                        .iter()
                        .map(|(k, v)| ConfigValue {
                            name: k.clone(),
                            value: Some(v.clone()),
                            is_default: false,
                            read_only: false,
                            sensitive: false,
                        })
                        .collect();
                    (t, entries)
                })
                .collect())
        }

        fn alter_configs(&self, topic: &str, ops: &[ConfigOp]) -> Result<(), TopicError> {
            let mut all = self.topics.borrow_mut();
            let Some((_, configs)) = all.get_mut(topic) else {
                return Ok(());
            };
            for op in ops {
                match op {
                    ConfigOp::Set { name, value } => configs.insert(name.clone(), value.clone()),
                    ConfigOp::Delete { name } => configs.remove(name),
                };
            }
            Ok(())
        }

        fn create_partitions(&self, topic: &str, partitions: i32) -> Result<(), TopicError> {
            if *self.refuse_partitions.borrow() {
                return Err(TopicError::Refused {
                    operation: "adding partitions to",
                    topic: topic.into(),
                    code: rdkafka::error::RDKafkaErrorCode::UnsupportedVersion,
                });
            }
            if let Some((p, _)) = self.topics.borrow_mut().get_mut(topic) {
                *p = (*p).max(partitions);
            }
            Ok(())
        }

        fn delete_topic(&self, topic: &str) -> Result<(), TopicError> {
            self.topics.borrow_mut().remove(topic);
            Ok(())
        }

        fn describe_topic_acls(&self) -> Result<Vec<TopicAcl>, TopicError> {
            if self.no_authorizer {
                return Err(security_disabled());
            }
            Ok(self.acls.borrow().clone())
        }

        fn create_topic_acls(&self, acls: &[TopicAcl]) -> Result<(), TopicError> {
            if self.no_authorizer {
                return Err(security_disabled());
            }
            self.acls.borrow_mut().extend_from_slice(acls);
            Ok(())
        }

        fn ensure_topic(
            &self,
            topic: &str,
            partitions: i32,
            _rf: i32,
            configs: &[(String, String)],
        ) -> Result<i32, TopicError> {
            if let Some(p) = self.partitions(topic) {
                return Ok(p);
            }
            let configs: Vec<(&str, &str)> = configs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            self.add(topic, partitions, &configs);
            Ok(partitions)
        }
    }

    fn security_disabled() -> TopicError {
        TopicError::Admin(crate::admin_ext::AdminExtError::Broker {
            code: rdkafka::error::RDKafkaErrorCode::SecurityDisabled,
            message: "no authorizer".into(),
        })
    }

    fn acl(topic: &str, operation: AclOperation, permission: AclPermission) -> TopicAcl {
        TopicAcl {
            topic: topic.into(),
            principal: "User:app".into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    #[test]
    fn acls_of_replicated_topics_are_added_once_by_mm2s_rules() {
        let (manager, _) =
            manager("topics = orders\nreplication.policy.class = DefaultReplicationPolicy\n");
        let source = FakeCluster::with(&[("orders", 1, &[]), ("other", 1, &[])]);
        *source.acls.borrow_mut() = vec![
            acl("orders", AclOperation::All, AclPermission::Allow),
            acl("orders", AclOperation::Write, AclPermission::Allow),
            acl("orders", AclOperation::Describe, AclPermission::Deny),
            acl("other", AclOperation::Read, AclPermission::Allow),
        ];
        let target = FakeCluster::default();
        let mut known = Known::default();
        manager.refresh(&source, &target, &mut known).unwrap();
        manager.sync_acls(&source, &target, &mut known);
        manager.sync_acls(&source, &target, &mut known);
        assert_eq!(
            *target.acls.borrow(),
            vec![
                acl("europe.orders", AclOperation::Read, AclPermission::Allow),
                acl("europe.orders", AclOperation::Describe, AclPermission::Deny),
            ]
        );
    }

    #[test]
    fn a_cluster_without_an_authorizer_turns_acl_sync_off() {
        let (manager, _) = manager("");
        let source = FakeCluster {
            no_authorizer: true,
            ..FakeCluster::with(&[("orders", 1, &[])])
        };
        let target = FakeCluster::default();
        let mut known = Known::default();
        manager.refresh(&source, &target, &mut known).unwrap();
        manager.sync_acls(&source, &target, &mut known);
        assert!(known.acls_unsupported);
        assert!(!known.acl_health.failing, "not an error, just off");
    }

    fn manager(extra: &str) -> (TopicManager, Receiver<Command>) {
        let text = format!(
            "clusters = europe, na\neurope.bootstrap.servers = h:1\nna.bootstrap.servers = h:2\n\
             europe->na.enabled = true\nreplication.policy.class = IdentityReplicationPolicy\n{extra}"
        );
        let raw = RawProperties::parse(std::path::Path::new("t"), text.as_bytes()).unwrap();
        let flow = Config::resolve(&raw).unwrap().flows.remove(0);
        let (commands, receiver) = mpsc::channel();
        let manager = TopicManager {
            flow,
            source_admin: rdkafka::ClientConfig::new(),
            target_admin: rdkafka::ClientConfig::new(),
            target_consumer: rdkafka::ClientConfig::new(),
            target_producer: rdkafka::ClientConfig::new(),
            commands,
            shutdown: Shutdown::new(),
            observe: Observability::new(),
        };
        (manager, receiver)
    }

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
                Command::Forget(topics) => Some(topics),
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

    #[test]
    fn config_changes_follow_except_excluded_keys() {
        let (manager, _) = manager("");
        let source = FakeCluster::with(&[("orders", 1, &[("retention.ms", "1000")])]);
        let target = FakeCluster::default();
        let mut known = Known::default();
        manager.refresh(&source, &target, &mut known).unwrap();
        source
            .alter_configs(
                "orders",
                &[
                    ConfigOp::Set {
                        name: "retention.ms".into(),
                        value: "2000".into(),
                    },
                    ConfigOp::Set {
                        name: "min.insync.replicas".into(),
                        value: "2".into(),
                    },
                ],
            )
            .unwrap();
        manager.sync_configs(&source, &target, &mut known);
        assert_eq!(
            target.config("orders", "retention.ms").as_deref(),
            Some("2000")
        );
        assert_eq!(target.config("orders", "min.insync.replicas"), None);
    }
}
