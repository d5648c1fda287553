//! The refresh round of a flow: list the source, create missing remote topics (with the
//! source's partition count and configs), grow remote topics whose source gained partitions,
//! delete remote topics whose source is gone (only when asked to, and only topics this flow
//! created), and remember the routes for the copier.
//!
//! Invariant: a remote topic is routed only once it exists with as many partitions as are
//! routed (nothing is produced into a topic a broker would create its own way); a topic the
//! target refuses is reported once and skipped, the others go on.

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::manager::{Known, TopicManager};
use super::{replicated_topics, ClusterAdmin, TopicError};
use crate::plan::{Command, Route};

/// How many refreshes in a row a source topic must be missing before its remote topic is
/// deleted (with `sync.topic.deletions.enabled`): one missing listing may be a glitch.
const DELETE_AFTER_MISSING_REFRESHES: u32 = 2;

impl TopicManager {
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
        let mut routes = replicated_topics(&self.flow, &source_topics);
        let names: Vec<&str> = routes.iter().map(|r| r.source_topic.as_str()).collect();
        // Without them a re-created topic is told only by its offsets going back: not a reason
        // to hold the round.
        let mut ids = match source.topic_ids(&names) {
            Ok(ids) => {
                known
                    .ids_health
                    .say_recovered(&flow, "reading the source topics' IDs");
                ids
            }
            Err(e) => {
                if known.ids_health.failed() {
                    warn!(flow, "the source topics' IDs cannot be read ({e}): a topic created again is told only if its offsets go back; asked again at each refresh");
                }
                BTreeMap::new()
            }
        };
        for route in &mut routes {
            route.topic_id = ids.remove(&route.source_topic);
        }
        for mut route in routes {
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
        self.learn_target_limits(target, known);
        self.forget_vanished_topics(&source_topics, target, known)
    }

    /// Each routed remote topic's `max.message.bytes` on the target (one DescribeConfigs for
    /// all): the copier sizes its batches by it. If the target cannot say now, the limits
    /// learnt before are kept.
    fn learn_target_limits(&self, target: &impl ClusterAdmin, known: &mut Known) {
        let remote: Vec<&str> = known
            .routes
            .values()
            .map(|r| r.remote_topic.as_str())
            .collect();
        if remote.is_empty() {
            return;
        }
        let flow = self.flow.name();
        let configs = match target.describe_configs(&remote) {
            Ok(configs) => {
                known
                    .limits_health
                    .say_recovered(&flow, "reading the remote topics' max.message.bytes");
                configs
            }
            Err(e) => {
                if known.limits_health.failed() {
                    warn!(flow, "the remote topics' max.message.bytes cannot be read ({e}): keeping what was known; batches the target refuses as too large are made smaller; asked again at each refresh");
                }
                for route in known.routes.values_mut() {
                    route.max_message_bytes =
                        known.limits.get(&route.remote_topic).copied().flatten();
                }
                return;
            }
        };
        for route in known.routes.values_mut() {
            let limit = configs.get(&route.remote_topic).and_then(|entries| {
                entries
                    .iter()
                    .find(|c| c.name == "max.message.bytes")
                    .and_then(|c| c.value.as_deref()?.parse::<u32>().ok())
            });
            route.max_message_bytes = limit;
            known.limits.insert(route.remote_topic.clone(), limit);
        }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::fake::{manager, FakeCluster};
    use super::*;
    use crate::ownership::Standing;

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
    /// Routes carry the source topic's ID, so the copier tells a topic created again under
    /// the same name from the one it copied.
    #[test]
    fn routes_carry_the_source_topic_id_and_a_topic_created_again_has_a_new_one() {
        let (manager, _) = manager("");
        let source = FakeCluster::with(&[("orders", 2, &[])]);
        let target = FakeCluster::default();
        let mut known = Known::default();
        manager.refresh(&source, &target, &mut known).unwrap();
        let first = known.routes["orders"].topic_id.clone();
        assert_eq!(first, source.id("orders"));
        assert!(first.is_some());
        source.recreate("orders", 2);
        manager.refresh(&source, &target, &mut known).unwrap();
        let second = known.routes["orders"].topic_id.clone();
        assert_eq!(second, source.id("orders"));
        assert_ne!(first, second);
    }

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
