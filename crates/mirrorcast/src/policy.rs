//! Replication policies: how a source topic is named on the target, which topics are MM2
//! internals, and which topics came from where (for cycle detection). Pure functions, matching
//! `DefaultReplicationPolicy` and `IdentityReplicationPolicy` of MM2's `mirror-client`.

use std::fmt;

/// MM2's heartbeat topic; even the identity policy keeps it prefixed, so that the heartbeats of
/// several sources stay apart.
pub const HEARTBEATS_TOPIC: &str = "heartbeats";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// `<source><sep><topic>` on the target.
    Default,
    /// The same name on the target (except heartbeats); no cycle detection.
    Identity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationPolicy {
    pub kind: PolicyKind,
    pub separator: String,
    /// The separator of MM2's internal topic names (`<alias><sep>checkpoints<sep>internal`):
    /// `separator`, or `.` with `replication.policy.internal.topic.separator.enabled = false`.
    pub internal_separator: String,
}

impl ReplicationPolicy {
    /// Resolves `replication.policy.class`, by full Java class name or short name.
    pub fn from_class_name(class: &str, separator: &str) -> Option<Self> {
        let short = class.trim().rsplit('.').next().unwrap_or_default();
        let kind = match short {
            "DefaultReplicationPolicy" => PolicyKind::Default,
            "IdentityReplicationPolicy" => PolicyKind::Identity,
            _ => return None,
        };
        // A short name has no package; a full name must be MM2's own package.
        let full_ok = !class.contains('.')
            || class.trim() == format!("org.apache.kafka.connect.mirror.{short}");
        full_ok.then(|| ReplicationPolicy {
            kind,
            separator: separator.to_string(),
            internal_separator: separator.to_string(),
        })
    }

    /// MM2's `replication.policy.internal.topic.separator.enabled = false`: internal topics are
    /// named with `.` whatever the separator.
    pub fn with_dot_in_internal_topics(mut self) -> Self {
        self.internal_separator = ".".into();
        self
    }

    /// The name of `topic` from `source_alias` on the target.
    pub fn remote_topic(&self, source_alias: &str, topic: &str) -> String {
        match self.kind {
            PolicyKind::Identity if !self.looks_like_heartbeat(topic) => topic.to_string(),
            _ => format!("{source_alias}{}{topic}", self.separator),
        }
    }

    /// The alias a remote topic came from, or `None` for a topic that is not remote.
    pub fn topic_source<'a>(&self, topic: &'a str) -> Option<&'a str> {
        if self.kind == PolicyKind::Identity && !self.looks_like_heartbeat(topic) {
            return None;
        }
        topic
            .split_once(self.separator.as_str())
            .map(|(source, _)| source)
    }

    /// The topic one hop upstream, or `None` for a topic that is not remote.
    pub fn upstream_topic<'a>(&self, topic: &'a str) -> Option<&'a str> {
        self.topic_source(topic)?;
        topic
            .split_once(self.separator.as_str())
            .map(|(_, rest)| rest)
    }

    /// The source topic whose remote name is `remote` for a flow from `source_alias`, if any.
    pub fn source_topic_of(&self, source_alias: &str, remote: &str) -> Option<String> {
        let candidate = match self.kind {
            PolicyKind::Identity if !self.looks_like_heartbeat(remote) => remote,
            _ => remote.strip_prefix(&format!("{source_alias}{}", self.separator))?,
        };
        (self.remote_topic(source_alias, candidate) == remote).then(|| candidate.to_string())
    }

    /// Whether replicating `topic` to `target_alias` would send it back where it came from.
    pub fn is_cycle(&self, topic: &str, target_alias: &str) -> bool {
        let mut current = topic;
        while let Some(source) = self.topic_source(current) {
            if source == target_alias {
                return true;
            }
            match self.upstream_topic(current) {
                Some(up) if up != current => current = up,
                _ => break,
            }
        }
        false
    }

    /// MM2's internal topics, never replicated: Kafka's (`__*`, `.*`) and every `*.internal` /
    /// `*-internal` topic, which covers MM2's offset-syncs, checkpoints and Connect topics.
    pub fn is_internal_topic(&self, topic: &str) -> bool {
        topic.starts_with("__")
            || topic.starts_with('.')
            || topic.ends_with(".internal")
            || topic.ends_with("-internal")
            || topic.ends_with(&format!("{}internal", self.internal_separator))
    }

    /// MM2's `isHeartbeatsTopic`: `heartbeats`, or a remote copy of it (`<alias>.heartbeats`,
    /// any number of hops).
    pub fn is_heartbeats_topic(&self, topic: &str) -> bool {
        self.looks_like_heartbeat(topic)
    }

    fn looks_like_heartbeat(&self, topic: &str) -> bool {
        topic == HEARTBEATS_TOPIC
            || topic.ends_with(&format!("{}{HEARTBEATS_TOPIC}", self.separator))
    }
}

impl fmt::Display for ReplicationPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            PolicyKind::Default => "DefaultReplicationPolicy",
            PolicyKind::Identity => "IdentityReplicationPolicy",
        };
        write!(f, "{name} (separator `{}`)", self.separator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> ReplicationPolicy {
        ReplicationPolicy::from_class_name(
            "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
            ".",
        )
        .unwrap()
    }

    fn identity() -> ReplicationPolicy {
        ReplicationPolicy::from_class_name("IdentityReplicationPolicy", ".").unwrap()
    }

    #[test]
    fn class_names_full_or_short() {
        assert_eq!(default().kind, PolicyKind::Default);
        assert_eq!(identity().kind, PolicyKind::Identity);
        assert!(ReplicationPolicy::from_class_name("com.example.MyPolicy", ".").is_none());
        assert!(
            ReplicationPolicy::from_class_name("com.example.DefaultReplicationPolicy", ".")
                .is_none()
        );
    }

    #[test]
    fn default_policy_prefixes_with_the_source_alias() {
        assert_eq!(
            default().remote_topic("europe", "LH.ORDERS"),
            "europe.LH.ORDERS"
        );
        let underscore = ReplicationPolicy {
            kind: PolicyKind::Default,
            separator: "_".into(),
            internal_separator: "_".into(),
        };
        assert_eq!(underscore.remote_topic("europe", "orders"), "europe_orders");
        assert_eq!(default().topic_source("europe.LH.ORDERS"), Some("europe"));
        assert_eq!(default().topic_source("orders"), None);
    }

    #[test]
    fn identity_policy_keeps_names_but_prefixes_heartbeats() {
        assert_eq!(identity().remote_topic("europe", "LH.ORDERS"), "LH.ORDERS");
        assert_eq!(
            identity().remote_topic("europe", "heartbeats"),
            "europe.heartbeats"
        );
        assert_eq!(identity().topic_source("LH.ORDERS"), None);
        assert_eq!(identity().topic_source("europe.heartbeats"), Some("europe"));
    }

    #[test]
    fn remote_names_map_back_to_their_source_topic() {
        assert_eq!(
            default()
                .source_topic_of("europe", "europe.LH.ORDERS")
                .as_deref(),
            Some("LH.ORDERS")
        );
        assert_eq!(default().source_topic_of("europe", "asia.orders"), None);
        assert_eq!(
            identity().source_topic_of("europe", "LH.ORDERS").as_deref(),
            Some("LH.ORDERS")
        );
        assert_eq!(
            identity()
                .source_topic_of("europe", "europe.heartbeats")
                .as_deref(),
            Some("heartbeats")
        );
    }

    #[test]
    fn cycles_are_detected_through_the_whole_chain() {
        let p = default();
        assert!(p.is_cycle("northamerica.orders", "northamerica"));
        assert!(p.is_cycle("europe.northamerica.orders", "northamerica"));
        assert!(!p.is_cycle("europe.orders", "northamerica"));
        assert!(!p.is_cycle("orders", "northamerica"));
        // The identity policy cannot tell where a topic came from.
        assert!(!identity().is_cycle("northamerica.orders", "northamerica"));
    }

    #[test]
    fn internal_topics() {
        let p = default();
        for t in [
            "__consumer_offsets",
            ".hidden",
            "mm2-offsets.europe.internal",
            "europe.checkpoints.internal",
            "mm2-offset-syncs.na.internal",
            "x-internal",
            "mm2-configs.europe.internal",
        ] {
            assert!(p.is_internal_topic(t), "{t}");
        }
        for t in ["LH.ORDERS", "heartbeats", "internal"] {
            assert!(!p.is_internal_topic(t), "{t}");
        }
        let underscore =
            ReplicationPolicy::from_class_name("DefaultReplicationPolicy", "_").unwrap();
        assert!(underscore.is_internal_topic("europe_checkpoints_internal"));
        assert!(underscore.is_internal_topic("mm2-offsets.europe.internal"));
        assert!(!underscore
            .with_dot_in_internal_topics()
            .is_internal_topic("europe_checkpoints_internal"));
    }
}
