//! The slow loop of a flow: set up (admin clients, internal topics, the stored progress and
//! `Resume`, the marks of created topics), then every refresh interval the refresh round
//! ([`super::refresh_round`]), every config-sync interval the config round
//! ([`super::config_round`]), every ACL-sync interval the ACL round ([`super::acl_round`]),
//! telling the copier what to copy after each refresh. The internal topics are made by
//! [`super::internal_topics`]; when each round is due is [`super::rounds`]' business, by the
//! manager's clock and [`super::schedule`]'s timers.
//!
//! Failures are retried with backoff and logged once per state change; a topic whose config or
//! partitions cannot be changed is reported and skipped, never a reason to stop the flow.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::created::CreatedTopicsStore;
use super::rounds::Rounds;
use super::schedule::Retry;
use super::TopicError;
use crate::acls::TopicAcl;
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::FlowConfig;
use crate::health::Health;
use crate::kafka::admin::TopicAdmin;
use crate::kafka::clients::ClientLog;
use crate::observe::Observability;
use crate::ownership::Standing;
use crate::plan::{Command, Commands, Route};
use crate::progress;
use crate::shutdown::Shutdown;

/// How often, between rounds, the manager looks for copy units fenced from under their lane.
const LOST_UNITS_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

// `crate::heartbeats` makes the heartbeats topic of pairs without a flow with it.
pub(crate) use super::internal_topics::ensure_internal_topic;

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
    /// What the rounds are timed by.
    pub clock: Clock,
    /// Exactly once: copy units whose id was fenced from under their lane (without a group,
    /// the manager fences them again).
    pub lost: crate::plan::LostUnits,
    /// Set here when a newer process took the flow over; read by the flow's checkpoints.
    pub taken_over: crate::plan::TakenOver,
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
    /// Remote topic → its `max.message.bytes` on the target, as last read.
    pub(super) limits: HashMap<String, Option<u32>>,
    /// Reading the source topics' IDs / the remote topics' limits (warned once until it works).
    pub(super) ids_health: Health,
    pub(super) limits_health: Health,
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
        // Exactly once: nobody else can commit with the ids once registered here, so the
        // progress read afterwards is final.
        if self.fences_alone() && self.take_over_ids(&mut retry).is_none() {
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
        let mut rounds = Rounds::new(&self, health, backoff);
        let (mut lost_health, mut lost_backoff) = (Health::default(), Backoff::default());
        loop {
            // Taken over by a newer process: its topic manager keeps the flow's topics.
            let pause = if self.taken_over.is_marked() {
                Some(std::time::Duration::from_secs(1))
            } else {
                self.pass(&mut rounds, &source, &target, &mut known)
            };
            let Some(pause) = pause else {
                return; // the copier is gone
            };
            if !self.fences_alone() {
                if self.shutdown.sleep(pause) {
                    return;
                }
                continue;
            }
            // Meanwhile a unit fenced from under its lane is given back soon, not a round later.
            let until = std::time::Instant::now() + pause;
            while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
                if self.shutdown.sleep(left.min(LOST_UNITS_CHECK)) {
                    return;
                }
                let mut retry = Retry {
                    flow: &name,
                    shutdown: &self.shutdown,
                    backoff: &mut lost_backoff,
                    health: &mut lost_health,
                    on_failure: &show_failure,
                };
                if self.refence_lost(&mut retry).is_none() {
                    return;
                }
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

    pub(super) fn routes_command(&self, known: &Known) -> Command {
        Command::Routes(known.routes.values().cloned().collect())
    }
}
