//! Exactly once with instances sharing a source: the group hands out copy units, not
//! partitions. A transactional id fences only as a whole, so everything it covers must move
//! between processes together. As MM2 hands whole tasks to Connect workers, each with its
//! transactional id, a source has a fixed number of units (its copier threads, `tasks.max`),
//! a partition's unit is fixed ([`crate::copy::shard::thread_of`]), and the group member
//! subscribes to an internal topic on the source with one partition per unit: the group's
//! assignor (cooperative-sticky, or the broker's under KIP-848) hands out its partitions, i.e.
//! whole units. The topic holds no record; its partition count is the unit count every
//! instance adopts.
//!
//! Invariant: every process maps a partition to the same unit (the units topic's count, one
//! hash), and a unit's partitions are this process's exactly while the group gives it the
//! unit's partition of the units topic.

use std::collections::{BTreeMap, BTreeSet};

use crate::copy::shard::thread_of;
use crate::topics::{ClusterAdmin, TopicError};

/// The internal topic whose partitions stand for the copy units of group `group_id`.
pub fn units_topic(group_id: &str) -> String {
    // A group id may hold characters a topic name may not ('+' in the default one).
    let name: String = group_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("mirrorcast-units.{name}.internal")
}

/// Creates the units topic with `wanted` partitions unless it exists, and returns the unit
/// count: the existing topic's, so that every process of the group agrees whatever its own
/// `tasks.max` says.
pub fn ensure_units(
    admin: &impl ClusterAdmin,
    topic: &str,
    wanted: usize,
) -> Result<usize, TopicError> {
    // No record is ever written: one replica would do, but the broker's default keeps the
    // group's assignment going when a broker is down.
    let count = admin.ensure_topic(topic, wanted.max(1) as i32, -1, &[])?;
    Ok(count.max(1) as usize)
}

/// The partitions of `topics` (name → partition count) that belong to `units` of `count`.
pub fn partitions_of(
    units: &BTreeSet<usize>,
    count: usize,
    topics: &BTreeMap<String, i32>,
) -> BTreeSet<(String, i32)> {
    topics
        .iter()
        .flat_map(|(topic, &partitions)| (0..partitions).map(move |p| (topic.clone(), p)))
        .filter(|(topic, partition)| units.contains(&thread_of(topic, *partition, count)))
        .collect()
}

/// The unit whose owner leads the source's flows.
pub const LEADER_UNIT: usize = 0;

/// What the group gave this process, in units, and which partitions that makes its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Units {
    pub topic: String,
    pub count: usize,
    /// Given by the group and fenced: their partitions are this process's.
    held: BTreeSet<usize>,
    /// Given by the group, their transactional ids not registered here yet.
    to_fence: BTreeSet<usize>,
    /// The replicated topics and their partition counts, at the last listing.
    topics: BTreeMap<String, i32>,
    /// The partitions of the held units, as handed to the copier.
    partitions: BTreeSet<(String, i32)>,
}

impl Units {
    pub fn new(topic: String, count: usize) -> Self {
        Units {
            topic,
            count: count.max(1),
            held: BTreeSet::new(),
            to_fence: BTreeSet::new(),
            topics: BTreeMap::new(),
            partitions: BTreeSet::new(),
        }
    }

    /// The units of the group's assignment, as partitions of the units topic.
    pub fn of_assignment(&self, partitions: &[(String, i32)]) -> Vec<usize> {
        partitions
            .iter()
            .filter(|(topic, p)| *topic == self.topic && *p >= 0 && (*p as usize) < self.count)
            .map(|(_, p)| *p as usize)
            .collect()
    }

    /// The group gave `units`: they are fenced before anything of theirs is copied.
    pub fn assigned(&mut self, units: &[usize]) {
        self.to_fence
            .extend(units.iter().filter(|u| !self.held.contains(u)));
    }

    /// The group takes `units` back: returns the partitions they held here.
    pub fn revoked(&mut self, units: &[usize]) -> Vec<(String, i32)> {
        let units: BTreeSet<usize> = units.iter().copied().collect();
        for unit in &units {
            self.held.remove(unit);
            self.to_fence.remove(unit);
        }
        let gone = partitions_of(&units, self.count, &self.topics);
        let held: Vec<(String, i32)> = self.partitions.intersection(&gone).cloned().collect();
        for partition in &held {
            self.partitions.remove(partition);
        }
        held
    }

    /// Units waiting for their fence.
    pub fn to_fence(&self) -> Vec<usize> {
        self.to_fence.iter().copied().collect()
    }

    /// `units` are fenced: returns their partitions, to acquire.
    pub fn fenced(&mut self, units: &[usize]) -> Vec<(String, i32)> {
        let units: BTreeSet<usize> = units
            .iter()
            .copied()
            .filter(|u| self.to_fence.remove(u))
            .collect();
        self.held.extend(&units);
        let new = partitions_of(&units, self.count, &self.topics);
        self.partitions.extend(new.iter().cloned());
        new.into_iter().collect()
    }

    /// The replicated topics now: returns the new partitions of held units, to acquire.
    pub fn listed(&mut self, topics: BTreeMap<String, i32>) -> Vec<(String, i32)> {
        self.topics = topics;
        let now = partitions_of(&self.held, self.count, &self.topics);
        // Partitions of deleted topics are no longer counted; the topic manager forgets them.
        self.partitions.retain(|p| now.contains(p));
        let new: Vec<(String, i32)> = now.difference(&self.partitions).cloned().collect();
        self.partitions.extend(new.iter().cloned());
        new
    }

    /// Whether this process has (or is fencing) the leader's unit.
    pub fn leads(&self) -> bool {
        self.held.contains(&LEADER_UNIT) || self.to_fence.contains(&LEADER_UNIT)
    }

    /// The source partitions this process copies.
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::fake::FakeCluster;

    #[test]
    fn the_units_topic_has_a_legal_name_per_group() {
        assert_eq!(
            units_topic("mirrorcast.europe.northamerica+southamerica"),
            "mirrorcast-units.mirrorcast.europe.northamerica-southamerica.internal"
        );
        assert_ne!(units_topic("a"), units_topic("b"));
    }

    #[test]
    fn units_split_every_topic_and_no_partition_is_in_two() {
        let topics: BTreeMap<String, i32> = [("LH.ORDERS", 6), ("LH.STOCK", 3)]
            .map(|(t, n)| (t.to_string(), n))
            .into();
        let count = 4;
        let mut seen = BTreeSet::new();
        for unit in 0..count {
            let mine = partitions_of(&BTreeSet::from([unit]), count, &topics);
            assert!(mine.is_disjoint(&seen), "unit {unit}: {mine:?}");
            seen.extend(mine);
        }
        assert_eq!(seen.len(), 9);
        let all = partitions_of(&(0..count).collect(), count, &topics);
        assert_eq!(all, seen);
        assert!(partitions_of(&BTreeSet::new(), count, &topics).is_empty());
    }

    #[test]
    fn a_unit_s_partitions_are_acquired_only_once_fenced_and_follow_new_topics() {
        let topic = units_topic("g");
        let mut units = Units::new(topic.clone(), 4);
        units.listed([("LH.ORDERS".to_string(), 6)].into());
        let given = units.of_assignment(&[(topic.clone(), 0), (topic.clone(), 2)]);
        assert_eq!(given, vec![0, 2]);
        assert!(units
            .of_assignment(&[("other".into(), 1), (topic.clone(), 9)])
            .is_empty());
        units.assigned(&given);
        assert!(units.leads(), "unit 0 leads, fenced or not");
        assert_eq!(units.partitions(), 0, "nothing before the fence");
        assert_eq!(units.to_fence(), vec![0, 2]);
        // Unit 2's fence failed: it waits; unit 0 copies.
        let first = units.fenced(&[0]);
        assert_eq!(
            first,
            partitions_of(&[0].into(), 4, &units.topics)
                .into_iter()
                .collect::<Vec<_>>()
        );
        assert_eq!(units.to_fence(), vec![2]);
        assert!(units.fenced(&[0]).is_empty(), "fenced once");
        let second = units.fenced(&[2]);
        assert_eq!(units.partitions(), first.len() + second.len());
        // A new topic: its partitions in held units are acquired, the others are not.
        let new = units.listed([("LH.ORDERS".to_string(), 6), ("LH.STOCK".to_string(), 4)].into());
        assert_eq!(new.len(), 2, "{new:?}");
        assert!(new.iter().all(|(t, _)| t == "LH.STOCK"));
        assert!(units.listed(units.topics.clone()).is_empty());
        // Revoking unit 0 gives back exactly its partitions; leadership goes with it.
        let back = units.revoked(&[0]);
        assert_eq!(
            back.into_iter().collect::<BTreeSet<_>>(),
            partitions_of(&[0].into(), 4, &units.topics)
        );
        assert!(!units.leads());
        assert_eq!(
            units.partitions(),
            partitions_of(&[2].into(), 4, &units.topics).len()
        );
        // Revoked before its fence: nothing to give back, nothing to fence.
        units.assigned(&[1]);
        assert!(units.revoked(&[1]).is_empty());
        assert!(units.to_fence().is_empty());
    }

    #[test]
    fn an_existing_units_topic_sets_the_count() {
        let cluster = FakeCluster::default();
        assert_eq!(ensure_units(&cluster, "units", 4).unwrap(), 4);
        assert_eq!(
            ensure_units(&cluster, "units", 12).unwrap(),
            4,
            "the first one's count"
        );
    }
}
