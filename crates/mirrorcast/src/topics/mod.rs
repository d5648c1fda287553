//! Topic management: which source topics a flow replicates, and making sure each remote topic
//! exists on the target with the source's partition count before anything is produced to it
//! (a broker that auto-creates topics would otherwise pick its own count).

use crate::config::FlowConfig;
pub use crate::kafka::cluster::{ClusterAdmin, TopicError};
use crate::plan::Route;
use std::collections::BTreeMap;

mod acl_round;
mod config_round;
pub(crate) mod created;
#[cfg(test)]
pub(crate) mod fake;
mod fence;
mod internal_topics;
pub(crate) mod manager;
mod refresh_round;
mod rounds;
mod schedule;

/// Whether `flow` replicates the source topic `topic`: MM2's `shouldReplicateTopic` (the
/// filter, or a heartbeats topic whatever the filter says unless
/// `heartbeats.replication.enabled = false`, so `upstreamClusters()` and `replicationHops()`
/// work downstream; not internal; no cycle).
pub fn replicates(flow: &FlowConfig, topic: &str) -> bool {
    (flow.topics.accepts(topic)
        || (flow.replicate_heartbeats && flow.policy.is_heartbeats_topic(topic)))
        && !flow.policy.is_internal_topic(topic)
        && !flow.policy.is_cycle(topic, &flow.target)
}

/// The source topics `flow` replicates, with their remote names.
pub fn replicated_topics(flow: &FlowConfig, source_topics: &BTreeMap<String, i32>) -> Vec<Route> {
    source_topics
        .iter()
        .filter(|(topic, _)| replicates(flow, topic))
        .map(|(topic, partitions)| Route {
            source_topic: topic.clone(),
            remote_topic: flow.policy.remote_topic(&flow.source, topic),
            partitions: *partitions,
            topic_id: None,
            max_message_bytes: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RawProperties};

    fn flow(extra: &str) -> FlowConfig {
        let text = format!(
            "clusters = europe, na\neurope.bootstrap.servers = h:1\nna.bootstrap.servers = h:2\n\
             europe->na.enabled = true\n{extra}"
        );
        let raw = RawProperties::parse(std::path::Path::new("t"), text.as_bytes()).unwrap();
        Config::resolve(&raw).unwrap().flows.remove(0)
    }

    fn topics(names: &[(&str, i32)]) -> BTreeMap<String, i32> {
        names.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    /// (source topic, remote topic) of what `flow` replicates of `source`.
    fn route_names(flow: &FlowConfig, source: &[(&str, i32)]) -> Vec<(String, String)> {
        replicated_topics(flow, &topics(source))
            .into_iter()
            .map(|r| (r.source_topic, r.remote_topic))
            .collect()
    }

    fn owned((source, remote): (&str, &str)) -> (String, String) {
        (source.to_string(), remote.to_string())
    }

    #[test]
    fn default_policy_skips_internals_and_cycles() {
        let routes = replicated_topics(
            &flow(""),
            &topics(&[
                ("orders", 3),
                ("na.orders", 1),
                ("__consumer_offsets", 50),
                ("mm2-offsets.na.internal", 25),
            ]),
        );
        assert_eq!(
            routes,
            vec![Route {
                source_topic: "orders".into(),
                remote_topic: "europe.orders".into(),
                partitions: 3,
                topic_id: None,
                max_message_bytes: None,
            }]
        );
    }

    #[test]
    fn identity_policy_with_a_pattern() {
        let f = flow("topics = LH.*\nreplication.policy.class = IdentityReplicationPolicy\n");
        assert_eq!(
            route_names(&f, &[("LH.ORDERS", 3), ("other", 1), ("LH.DOORS", 1)]),
            [("LH.DOORS", "LH.DOORS"), ("LH.ORDERS", "LH.ORDERS")].map(owned)
        );
    }

    /// MM2 replicates heartbeats topics whatever `topics` says (so `upstreamClusters()` and
    /// `replicationHops()` see every hop), except back to where they came from.
    #[test]
    fn heartbeats_topics_are_replicated_whatever_the_filter_but_never_back() {
        for policy in ["DefaultReplicationPolicy", "IdentityReplicationPolicy"] {
            let f = flow(&format!(
                "topics = LH.*\nreplication.policy.class = {policy}\n"
            ));
            let source = [
                ("heartbeats", 1),
                ("asia.heartbeats", 1),
                ("na.heartbeats", 1),
                ("other", 1),
            ];
            assert_eq!(
                route_names(&f, &source),
                [
                    ("asia.heartbeats", "europe.asia.heartbeats"),
                    ("heartbeats", "europe.heartbeats")
                ]
                .map(owned),
                "{policy}"
            );
        }
    }

    /// `heartbeats.replication.enabled = false` (KIP-1089): heartbeats topics follow `topics`
    /// like any other, per flow or for all.
    #[test]
    fn heartbeats_replication_can_be_turned_off_and_topics_then_decide() {
        let source = [("heartbeats", 1), ("asia.heartbeats", 1), ("LH.A", 1)];
        for key in [
            "heartbeats.replication.enabled",
            "europe->na.heartbeats.replication.enabled",
        ] {
            let f = flow(&format!("topics = LH.*\n{key} = false\n"));
            assert!(!f.replicate_heartbeats);
            assert_eq!(
                route_names(&f, &source),
                [("LH.A", "europe.LH.A")].map(owned)
            );
        }
        let f = flow("heartbeats.replication.enabled = false\n");
        assert_eq!(
            route_names(&f, &source).len(),
            3,
            "`topics` (every topic by default) still matches them"
        );
        assert!(flow("").replicate_heartbeats, "on by default, as MM2");
    }
}
