//! The topic config round of a flow: every config-sync interval, bring the configs of every
//! remote topic in line with its source topic (by [`crate::topic_configs`]'s rules).
//!
//! Invariant: a topic whose configs cannot be changed is reported (once per distinct error)
//! and skipped; the other topics and the flow go on.

use tracing::{info, warn};

use super::manager::{Known, TopicManager};
use super::ClusterAdmin;
use crate::observe::metrics::FlowLabels;

impl TopicManager {
    fn flow_labels(&self) -> FlowLabels {
        FlowLabels {
            source: self.flow.source.clone(),
            target: self.flow.target.clone(),
        }
    }

    /// Brings the configs of every remote topic in line with its source topic.
    pub(super) fn sync_configs(
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

#[cfg(test)]
mod tests {
    use super::super::fake::{manager, FakeCluster};
    use super::super::manager::Known;
    use super::super::ClusterAdmin;
    use crate::topic_configs::ConfigOp;

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
