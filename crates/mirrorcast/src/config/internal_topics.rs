//! The settings of what a flow runs beside the copy, each with the internal topic it writes:
//! the copy's progress (Connect's offsets topic), offset syncs, heartbeats, and consumer group
//! checkpoints with group offset sync, each from its MM2 keys and defaults.
//!
//! Invariant: internal topic names follow MM2's (the separator unless
//! `replication.policy.internal.topic.separator.enabled = false`; the progress topic always
//! with dots), so MM2 and mirrorcast can take over from each other.

use std::time::Duration;

use super::lookup::FlowLookup;
use super::{ConfigError, GroupsConfig, HeartbeatsConfig, OffsetSyncsConfig, ProgressConfig};
use crate::filter::TopicFilter;

impl FlowLookup<'_> {
    pub(super) fn progress(
        &self,
        source: &str,
        target: &str,
        errors: &mut Vec<ConfigError>,
    ) -> ProgressConfig {
        let storage = self.storage_keys(target);
        ProgressConfig {
            interval: Duration::from_millis(self.worker_keys(target).positive(
                "offset.flush.interval.ms",
                1000u64,
                errors,
            )),
            topic: storage
                .get("offset.storage.topic")
                .map(|(_, topic)| topic)
                .unwrap_or_else(|| format!("mm2-offsets.{source}.internal")),
            connector: super::DEDICATED_MODE_CONNECTOR.to_string(),
            partitions: storage.positive("offset.storage.partitions", 25i32, errors),
            replication_factor: storage.replication_factor(
                "offset.storage.replication.factor",
                3i32,
                errors,
            ),
        }
    }

    pub(super) fn offset_syncs(
        &self,
        source: &str,
        target: &str,
        separator: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<OffsetSyncsConfig> {
        let enabled = self.bool("emit.offset-syncs.enabled", true, errors);
        let on_source = self.either("offset-syncs.topic.location", "source", "target", errors);
        let alias = if on_source { target } else { source };
        let syncs = OffsetSyncsConfig {
            on_source,
            topic: format!("mm2-offset-syncs{separator}{alias}{separator}internal"),
            lag_max: self.parse("offset.lag.max", 100i64, "a whole number", errors),
            replication_factor: self.replication_factor(
                "offset-syncs.topic.replication.factor",
                3i32,
                errors,
            ),
        };
        enabled.then_some(syncs)
    }

    pub(super) fn heartbeats(&self, errors: &mut Vec<ConfigError>) -> Option<HeartbeatsConfig> {
        let enabled = self.bool("emit.heartbeats.enabled", true, errors);
        let interval = self.parse(
            "emit.heartbeats.interval.seconds",
            1u64,
            "a whole number",
            errors,
        );
        let replication_factor =
            self.replication_factor("heartbeats.topic.replication.factor", 3i32, errors);
        (enabled && interval > 0).then(|| HeartbeatsConfig {
            interval: Duration::from_secs(interval),
            replication_factor,
        })
    }

    pub(super) fn groups(
        &self,
        source: &str,
        separator: &str,
        errors: &mut Vec<ConfigError>,
    ) -> GroupsConfig {
        let filter = TopicFilter {
            include: self.patterns("groups", ".*", errors),
            exclude: self.patterns(
                self.key_or_old_name("groups.exclude", "groups.blacklist"),
                "console-consumer-.*, connect-.*, __.*",
                errors,
            ),
        };
        let checkpoints = self.bool("emit.checkpoints.enabled", true, errors);
        let checkpoint_interval = self.seconds_or_off("emit.checkpoints.interval.seconds", errors);
        let group_sync = self.bool("sync.group.offsets.enabled", false, errors);
        let sync_interval = self.seconds_or_off("sync.group.offsets.interval.seconds", errors);
        GroupsConfig {
            filter,
            checkpoint_interval: checkpoint_interval.filter(|_| checkpoints),
            sync_interval: sync_interval.filter(|_| group_sync),
            checkpoints_topic: format!("{source}{separator}checkpoints{separator}internal"),
            checkpoints_replication_factor: self.replication_factor(
                "checkpoints.topic.replication.factor",
                3i32,
                errors,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{resolve, BROADCAST};

    #[test]
    fn internal_topics_use_the_separator_unless_told_not_to_as_in_mm2() {
        let text = format!("{BROADCAST}replication.policy.separator = _\n");
        let config = resolve(&text).unwrap();
        let na = &config.flows[0];
        assert_eq!(na.groups.checkpoints_topic, "europe_checkpoints_internal");
        let syncs = na.offset_syncs.as_ref().unwrap();
        assert_eq!(syncs.topic, "mm2-offset-syncs_northamerica_internal");
        assert!(na.policy.is_internal_topic("europe_checkpoints_internal"));
        let text = format!("{text}replication.policy.internal.topic.separator.enabled = false\n");
        let config = resolve(&text).unwrap();
        let na = &config.flows[0];
        assert_eq!(na.groups.checkpoints_topic, "europe.checkpoints.internal");
        let syncs = na.offset_syncs.as_ref().unwrap();
        assert_eq!(syncs.topic, "mm2-offset-syncs.northamerica.internal");
    }
}
