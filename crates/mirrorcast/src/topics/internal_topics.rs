//! The internal topics a flow writes (progress, heartbeats, checkpoints, dead letters, offset
//! syncs), made before the copier starts, as MM2 makes them.
//!
//! Invariant: each exists before anything is written to it; not being allowed to create one is
//! taken to mean someone else made it (as MM2 does), any other refusal fails the step.

use tracing::warn;

use super::manager::TopicManager;
use super::{ClusterAdmin, TopicError};

impl TopicManager {
    /// The internal topics must exist before the copier writes to them: the progress topic on
    /// the target, the heartbeats topic on the target, the dead-letter topic if there is one,
    /// and the offset-syncs topic where it is configured (MM2 creates them compacted, with one partition but the progress topic).
    pub(super) fn ensure_internal_topics(
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
}
