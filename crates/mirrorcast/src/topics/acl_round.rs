//! The topic ACL round of a flow: add to the target the ACLs of replicated source topics,
//! mapped by MM2's rules ([`crate::acls`]).
//!
//! Invariant: add-only, as in MM2: an ACL is created once and never removed; a cluster without
//! an authorizer turns the round off for the flow, with one line.

use tracing::info;

use super::manager::{Known, TopicManager};
use super::ClusterAdmin;
use crate::acls::{remote_acl, TopicAcl};

impl TopicManager {
    /// Adds to the target the ACLs of replicated source topics, mapped by MM2's rules.
    pub(super) fn sync_acls(
        &self,
        source: &impl ClusterAdmin,
        target: &impl ClusterAdmin,
        known: &mut Known,
    ) {
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
                known.acl_health.say_recovered(&flow, "topic ACL sync");
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
            Err(e) => known.acl_health.warn_failed(&flow, "topic ACL sync", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{acl, manager, FakeCluster};
    use super::super::manager::Known;
    use crate::acls::{AclOperation, AclPermission};

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
        assert!(!known.acl_health.is_failing(), "not an error, just off");
    }
}
