//! One enabled flow's settings read into a [`FlowConfig`]: its topic filter, replication
//! policy and separator, the intervals of its topic jobs, which topic configs follow the
//! source, its clients, what becomes of a record the target refuses, and (from
//! [`super::internal_topics`] and [`super::exactly_once`]) the rest.
//!
//! Invariant: a flow is returned only when every one of its keys was read without a mistake;
//! otherwise its mistakes are collected and no flow is made.

use std::time::Duration;

use super::lookup::FlowLookup;
use super::precedence::{self, Side};
use super::properties::RawProperties;
use super::{ClientRole, ConfigError, DataPlane, ErrorsConfig, FlowClients, FlowConfig};
use crate::filter::TopicFilter;
use crate::policy::ReplicationPolicy;
use crate::topic_configs::ConfigFilter;

const DEFAULT_TOPICS: &str = ".*";
const DEFAULT_TOPICS_EXCLUDE: &str = r".*[\-\.]internal, .*\.replica, __.*";
const DEFAULT_POLICY: &str = "org.apache.kafka.connect.mirror.DefaultReplicationPolicy";
const DEFAULT_CONFIG_EXCLUDE: &str = r"follower\.replication\.throttled\.replicas, leader\.replication\.throttled\.replicas, message\.timestamp\.difference\.max\.ms, message\.timestamp\.type, unclean\.leader\.election\.enable, min\.insync\.replicas";

/// Flow `source->target`, or `None` with its mistakes in `errors`.
pub(super) fn resolve_flow(
    raw: &RawProperties,
    source: &str,
    target: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<FlowConfig> {
    let look = FlowLookup::new(raw, source, target);
    let before = errors.len();
    let topics = TopicFilter {
        include: look.patterns("topics", DEFAULT_TOPICS, errors),
        exclude: look.patterns(
            look.key_or_old_name("topics.exclude", "topics.blacklist"),
            DEFAULT_TOPICS_EXCLUDE,
            errors,
        ),
    };
    let (_, separator) = look.string("replication.policy.separator", ".");
    let (policy_key, class) = look.string("replication.policy.class", DEFAULT_POLICY);
    // MM2 names its internal topics with the separator unless told not to (KIP-690).
    let separator_in_internal_topics = look.bool(
        "replication.policy.internal.topic.separator.enabled",
        true,
        errors,
    );
    let internal_separator = if separator_in_internal_topics {
        separator.clone()
    } else {
        ".".to_string()
    };
    let policy = ReplicationPolicy::from_class_name(&class, &separator).map(|p| {
        if separator_in_internal_topics {
            p
        } else {
            p.with_dot_in_internal_topics()
        }
    });
    if policy.is_none() {
        errors.push(raw.error(
            &policy_key,
            format!(
                "unknown replication policy `{class}`: use \
                 org.apache.kafka.connect.mirror.DefaultReplicationPolicy or \
                 org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
            ),
        ));
    }
    let interval = |enabled: &str, seconds: &str, errors: &mut Vec<ConfigError>| {
        let enabled = look.bool(enabled, true, errors);
        let seconds = look.positive(seconds, 600u64, errors);
        enabled.then(|| Duration::from_secs(seconds))
    };
    let clients = FlowClients {
        source: precedence::flow_side(raw, (source, target), Side::Source, errors),
        target: precedence::flow_side(raw, (source, target), Side::Target, errors),
    };
    let exactly_once = look.exactly_once(target, &clients, errors);
    let tolerance = look.errors(errors);
    let data_plane = look.data_plane(&clients, exactly_once.is_some(), &tolerance, errors);
    let flow = FlowConfig {
        source: source.to_string(),
        target: target.to_string(),
        topics,
        replication_factor: look.replication_factor("replication.factor", 2i32, errors),
        refresh_topics_interval: interval(
            "refresh.topics.enabled",
            "refresh.topics.interval.seconds",
            errors,
        ),
        config_sync_interval: interval(
            "sync.topic.configs.enabled",
            "sync.topic.configs.interval.seconds",
            errors,
        ),
        config_filter: look.config_filter(errors),
        acl_sync_interval: interval(
            "sync.topic.acls.enabled",
            "sync.topic.acls.interval.seconds",
            errors,
        ),
        sync_deletions: look.bool("sync.topic.deletions.enabled", false, errors),
        replicate_heartbeats: look.bool("heartbeats.replication.enabled", true, errors),
        progress: look.progress(source, target, errors),
        offset_syncs: look.offset_syncs(source, target, &internal_separator, errors),
        heartbeats: look.heartbeats(errors),
        groups: look.groups(source, &internal_separator, errors),
        errors: tolerance,
        start_at_end: clients
            .source
            .consumer
            .get("auto.offset.reset")
            .is_some_and(|r| matches!(r.trim(), "latest" | "largest" | "end")),
        clients: clients.clone(),
        tasks_max: look
            .get("tasks.max")
            .map(|_| look.positive("tasks.max", 1usize, errors)),
        instances_group: look.bool("instances.group.enabled", true, errors).then(|| {
            look.get("instances.group.id")
                .map(|(_, id)| id.trim().to_string())
                .filter(|id| !id.is_empty())
        }),
        exactly_once,
        data_plane,
        // Last: every other key is checked (and its mistakes collected) before this returns.
        policy: policy?,
    };
    (errors.len() == before).then_some(flow)
}

impl FlowLookup<'_> {
    /// `data.plane`: `records` or `batch`. The batch plane copies at least once over plaintext
    /// connections with `errors.tolerance = none`, so far: anything else is refused here.
    fn data_plane(
        &self,
        clients: &FlowClients,
        exactly_once: bool,
        tolerance: &ErrorsConfig,
        errors: &mut Vec<ConfigError>,
    ) -> DataPlane {
        let (key, value) = self.string("data.plane", "records");
        let plane = match value.trim() {
            "records" => return DataPlane::Records,
            "batch" => DataPlane::Batch,
            other => {
                errors.push(
                    self.raw
                        .error(&key, format!("`{other}` is neither `records` nor `batch`")),
                );
                return DataPlane::Records;
            }
        };
        let mut refuse = |why: String| errors.push(self.raw.error(&key, why));
        for (side, cluster) in [("source", &clients.source), ("target", &clients.target)] {
            for role in [ClientRole::Consumer, ClientRole::Producer] {
                let protocol = cluster
                    .client(role)
                    .get("security.protocol")
                    .unwrap_or("plaintext")
                    .trim()
                    .to_ascii_lowercase();
                if protocol != "plaintext" {
                    refuse(format!(
                        "the batch plane does not speak security.protocol {protocol} yet (the \
                         {side} {}'s): use `data.plane = records`",
                        if role == ClientRole::Consumer {
                            "consumer"
                        } else {
                            "producer"
                        }
                    ));
                    return plane;
                }
            }
        }
        if exactly_once {
            refuse(
                "the batch plane copies at least once: exactly once needs `data.plane = records`"
                    .to_string(),
            );
        }
        if tolerance != &ErrorsConfig::StopPartition {
            refuse(
                "the batch plane stops a partition at a record the target refuses \
                 (errors.tolerance = none): dead letters and skipping need `data.plane = records`"
                    .to_string(),
            );
        }
        plane
    }

    fn config_filter(&self, errors: &mut Vec<ConfigError>) -> ConfigFilter {
        let exclude_key =
            self.key_or_old_name("config.properties.exclude", "config.properties.blacklist");
        ConfigFilter {
            exclude: self.patterns(exclude_key, DEFAULT_CONFIG_EXCLUDE, errors),
            // `use.defaults.from` is `target` unless it says `source`.
            defaults_from_source: !self.either("use.defaults.from", "target", "source", errors),
        }
    }

    fn errors(&self, errors: &mut Vec<ConfigError>) -> ErrorsConfig {
        let (tolerance_key, tolerance) = self.string("errors.tolerance", "none");
        let dead_letter = self
            .get("errors.deadletterqueue.topic.name")
            .filter(|(_, topic)| !topic.trim().is_empty());
        let replication_factor = self.replication_factor(
            "errors.deadletterqueue.topic.replication.factor",
            3i32,
            errors,
        );
        match (tolerance.trim(), dead_letter) {
            ("none", None) => ErrorsConfig::StopPartition,
            ("none", Some((key, _))) => {
                errors.push(
                    self.raw.error(
                        &key,
                        "a dead-letter topic is only written with `errors.tolerance = all`; set \
                     that too, or remove this key"
                            .to_string(),
                    ),
                );
                ErrorsConfig::StopPartition
            }
            ("all", None) => ErrorsConfig::Skip,
            ("all", Some((_, topic))) => ErrorsConfig::DeadLetter {
                topic: topic.trim().to_string(),
                replication_factor,
            },
            (other, _) => {
                errors.push(
                    self.raw
                        .error(&tolerance_key, format!("`{other}` is not `none` or `all`")),
                );
                ErrorsConfig::StopPartition
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{errors, resolve, BROADCAST};
    use super::*;

    #[test]
    fn invalid_regex_is_named() {
        let errs = errors(&format!("{BROADCAST}europe->northamerica.topics = LH.(*\n"));
        assert_eq!(errs[0].key, "europe->northamerica.topics");
    }

    #[test]
    fn unknown_policy_is_named() {
        let text = BROADCAST.replace("IdentityReplicationPolicy", "FancyPolicy");
        let errs = errors(&text);
        assert_eq!(errs[0].key, "replication.policy.class");
        assert!(errs[0].message.contains("IdentityReplicationPolicy"));
    }

    #[test]
    fn errors_tolerance_follows_kafka_connect() {
        let flow = |extra: &str| resolve(&format!("{BROADCAST}{extra}")).unwrap().flows[0].clone();
        assert_eq!(flow("").errors, ErrorsConfig::StopPartition);
        assert_eq!(flow("errors.tolerance = all\n").errors, ErrorsConfig::Skip);
        assert_eq!(
            flow("errors.tolerance = all\nerrors.deadletterqueue.topic.name = dlq\n").errors,
            ErrorsConfig::DeadLetter {
                topic: "dlq".into(),
                replication_factor: 3
            }
        );
        let errs = errors(&format!("{BROADCAST}errors.tolerance = some\n"));
        assert_eq!(errs[0].key, "errors.tolerance");
        let errs = errors(&format!(
            "{BROADCAST}europe->northamerica.errors.deadletterqueue.topic.name = dlq\n"
        ));
        assert_eq!(
            errs[0].key,
            "europe->northamerica.errors.deadletterqueue.topic.name"
        );
        assert!(errs[0].message.contains("errors.tolerance = all"));
    }

    #[test]
    fn auto_offset_reset_latest_on_the_source_consumer_starts_new_partitions_at_their_end() {
        let config = resolve(BROADCAST).unwrap();
        assert!(
            !config.flows[0].start_at_end,
            "earliest, as MM2, unless said"
        );
        let text = format!("{BROADCAST}europe.consumer.auto.offset.reset = latest\n");
        let config = resolve(&text).unwrap();
        assert!(config.flows.iter().all(|f| f.start_at_end));
        let text = format!("{BROADCAST}northamerica.consumer.auto.offset.reset = latest\n");
        assert!(
            !resolve(&text).unwrap().flows[0].start_at_end,
            "the source's, not the target's"
        );
    }
}
