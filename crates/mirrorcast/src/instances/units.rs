//! Exactly once with instances sharing a source: the group hands out copy units, not
//! partitions. A transactional id fences only as a whole, so everything it covers must move
//! between processes together. As MM2 hands whole tasks to Connect workers, each with its
//! transactional id, a source has a fixed number of units (its copier threads, `tasks.max`),
//! a partition's unit is fixed ([`crate::ownership::shard::thread_of`]), and the group member
//! subscribes to an internal topic on the source with one partition per unit: the group's
//! assignor (cooperative-sticky, or the broker's under KIP-848) hands out its partitions, i.e.
//! whole units. The topic holds no record; its partition count is the unit count every
//! instance adopts.
//!
//! Invariant: every process maps a partition to the same unit (the units topic's count, one
//! hash), and a unit's partitions are this process's exactly while the group gives it the
//! unit's partition of the units topic.

use std::collections::{BTreeMap, BTreeSet};

use crate::kafka::cluster::{ClusterAdmin, TopicError};
use crate::ownership::shard::thread_of;

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

/// What the group gave this process, in units, and which partitions that makes each flow's.
/// A unit is fenced per flow (each target has its own transactional ids): a target that
/// refuses keeps only its own flow from copying the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Units {
    pub topic: String,
    pub count: usize,
    /// Given by the group.
    given: BTreeSet<usize>,
    /// Per flow: the given units whose transactional id it registered.
    fenced: Vec<BTreeSet<usize>>,
    /// Per flow: the partitions handed to its copier.
    acquired: Vec<BTreeSet<(String, i32)>>,
    /// The replicated topics and their partition counts, at the last listing.
    topics: BTreeMap<String, i32>,
    /// Counts the group's revocations: a fence asked before one may have been undone by it
    /// (the unit left, its lane stood by) even if the unit came back since.
    revocations: u64,
}

/// The units topic no longer has this process's unit count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{topic} has {listed} partition(s) now, but this process runs {running} copy unit(s): it \
     starts again with the topic's count (to change the count, stop every instance first)"
)]
pub struct UnitCountChanged {
    pub topic: String,
    pub listed: i32,
    pub running: usize,
}

impl Units {
    pub fn new(topic: String, count: usize, flows: usize) -> Self {
        Units {
            topic,
            count: count.max(1),
            given: BTreeSet::new(),
            fenced: vec![BTreeSet::new(); flows],
            acquired: vec![BTreeSet::new(); flows],
            topics: BTreeMap::new(),
            revocations: 0,
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

    /// The group gave `units`: each flow fences them before it copies anything of theirs.
    pub fn assigned(&mut self, units: &[usize]) {
        self.given.extend(units);
    }

    /// The group takes `units` back: returns the partitions any flow held of them.
    pub fn revoked(&mut self, units: &[usize]) -> Vec<(String, i32)> {
        let units: BTreeSet<usize> = units.iter().copied().collect();
        self.revocations += 1;
        self.given.retain(|u| !units.contains(u));
        for fenced in &mut self.fenced {
            fenced.retain(|u| !units.contains(u));
        }
        let gone = partitions_of(&units, self.count, &self.topics);
        let mut held = BTreeSet::new();
        for acquired in &mut self.acquired {
            held.extend(acquired.intersection(&gone).cloned());
            acquired.retain(|p| !gone.contains(p));
        }
        held.into_iter().collect()
    }

    /// Flow `flow`'s lanes of `units` were fenced from under them (their partitions dropped
    /// without a write): those the group still gives are fenced again and their partitions
    /// acquired anew. Returns those.
    pub fn lost(&mut self, flow: usize, units: &[usize]) -> Vec<usize> {
        let (Some(fenced), Some(acquired)) =
            (self.fenced.get_mut(flow), self.acquired.get_mut(flow))
        else {
            return Vec::new();
        };
        let still: BTreeSet<usize> = units
            .iter()
            .copied()
            .filter(|u| fenced.remove(u) && self.given.contains(u))
            .collect();
        let dropped = partitions_of(&still, self.count, &self.topics);
        acquired.retain(|p| !dropped.contains(p));
        still.into_iter().collect()
    }

    /// The partitions of `units` (the source topics the flows replicate).
    pub fn partitions_of_units(&self, units: &[usize]) -> Vec<(String, i32)> {
        let units: BTreeSet<usize> = units.iter().copied().collect();
        partitions_of(&units, self.count, &self.topics)
            .into_iter()
            .collect()
    }

    /// Units flow `flow` has yet to fence.
    pub fn to_fence(&self, flow: usize) -> Vec<usize> {
        let fenced = self.fenced.get(flow);
        self.given
            .iter()
            .copied()
            .filter(|u| fenced.is_none_or(|f| !f.contains(u)))
            .collect()
    }

    /// Where the group's assignment is, for [`Units::fenced`].
    pub fn generation(&self) -> u64 {
        self.revocations
    }

    /// Flow `flow` fenced `units`, asked at `generation`: returns their partitions, for it to
    /// acquire; `None` when a revocation came since (the fence may be undone: asked again).
    pub fn fenced(
        &mut self,
        flow: usize,
        units: &[usize],
        generation: u64,
    ) -> Option<Vec<(String, i32)>> {
        if generation != self.revocations {
            return None;
        }
        let (Some(fenced), Some(acquired)) =
            (self.fenced.get_mut(flow), self.acquired.get_mut(flow))
        else {
            return Some(Vec::new());
        };
        let units: BTreeSet<usize> = units
            .iter()
            .copied()
            .filter(|u| self.given.contains(u) && fenced.insert(*u))
            .collect();
        let new = partitions_of(&units, self.count, &self.topics);
        acquired.extend(new.iter().cloned());
        Some(new.into_iter().collect())
    }

    /// The replicated topics now: returns, per flow, the new partitions of units it fenced.
    pub fn listed(&mut self, topics: BTreeMap<String, i32>) -> Vec<(usize, Vec<(String, i32)>)> {
        self.topics = topics;
        let mut new_per_flow = Vec::new();
        for (flow, (fenced, acquired)) in self.fenced.iter().zip(&mut self.acquired).enumerate() {
            let now = partitions_of(fenced, self.count, &self.topics);
            // Partitions of deleted topics are no longer counted; the topic manager forgets them.
            acquired.retain(|p| now.contains(p));
            let new: Vec<(String, i32)> = now.difference(acquired).cloned().collect();
            if !new.is_empty() {
                acquired.extend(new.iter().cloned());
                new_per_flow.push((flow, new));
            }
        }
        new_per_flow
    }

    /// The units topic as listed now (`None`: not listed): an error when its partition count
    /// is no longer this process's unit count (someone added partitions, or deleted and
    /// recreated it). Processes that disagree map partitions to different units, so two of
    /// them could copy one partition: this one must start again with the topic's count.
    pub fn check_count(&self, listed: Option<i32>) -> Result<(), UnitCountChanged> {
        match listed {
            Some(count) if count.max(1) as usize != self.count => Err(UnitCountChanged {
                topic: self.topic.clone(),
                listed: count,
                running: self.count,
            }),
            _ => Ok(()),
        }
    }

    /// Whether this process has the leader's unit.
    pub fn leads(&self) -> bool {
        self.given.contains(&LEADER_UNIT)
    }

    /// The source partitions the group's units make this process's.
    pub fn partitions(&self) -> usize {
        partitions_of(&self.given, self.count, &self.topics).len()
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
    fn a_unit_s_partitions_are_acquired_per_flow_only_once_fenced_and_follow_new_topics() {
        let topic = units_topic("g");
        let mut units = Units::new(topic.clone(), 4, 2);
        units.listed([("LH.ORDERS".to_string(), 6)].into());
        let given = units.of_assignment(&[(topic.clone(), 0), (topic.clone(), 2)]);
        assert_eq!(given, vec![0, 2]);
        assert!(units
            .of_assignment(&[("other".into(), 1), (topic.clone(), 9)])
            .is_empty());
        units.assigned(&given);
        assert!(units.leads(), "unit 0 leads, fenced or not");
        assert_eq!(units.to_fence(0), vec![0, 2]);
        assert_eq!(units.to_fence(1), vec![0, 2]);
        let of = |unit: usize, topics: &BTreeMap<String, i32>| -> Vec<(String, i32)> {
            partitions_of(&[unit].into(), 4, topics)
                .into_iter()
                .collect()
        };
        // Flow 1's target refused unit 2: only its own copy of unit 2 waits.
        let now = units.generation();
        let both = of(0, &units.topics).len() + of(2, &units.topics).len();
        assert_eq!(units.fenced(0, &[0, 2], now).map(|p| p.len()), Some(both));
        assert_eq!(units.fenced(1, &[0], now), Some(of(0, &units.topics)));
        assert_eq!(units.fenced(1, &[0], now), Some(vec![]), "fenced once");
        assert_eq!(units.fenced(1, &[3], now), Some(vec![]), "not given");
        assert_eq!((units.to_fence(0), units.to_fence(1)), (vec![], vec![2]));
        // A new topic: its partitions in fenced units are acquired per flow.
        let topics: BTreeMap<String, i32> =
            [("LH.ORDERS".to_string(), 6), ("LH.STOCK".to_string(), 4)].into();
        let new = units.listed(topics.clone());
        let stock = |unit| -> Vec<(String, i32)> {
            of(unit, &topics)
                .into_iter()
                .filter(|(t, _)| t == "LH.STOCK")
                .collect()
        };
        let mut both = stock(0);
        both.extend(stock(2));
        both.sort();
        assert_eq!(new, vec![(0, both), (1, stock(0))]);
        assert!(units.listed(topics.clone()).is_empty());
        // Revoking unit 0 gives back exactly its partitions; leadership goes with it.
        let back = units.revoked(&[0]);
        assert_eq!(back, of(0, &topics));
        assert!(!units.leads());
        assert_eq!(units.partitions(), of(2, &topics).len());
        // Revoked before its fence: nothing to give back, nothing to fence.
        units.assigned(&[1]);
        let asked = units.generation();
        assert!(units.revoked(&[1]).is_empty());
        assert_eq!((units.to_fence(0), units.to_fence(1)), (vec![], vec![2]));
        // Given again: the fence asked before the revocation may have been undone by it.
        units.assigned(&[1]);
        assert_eq!(units.fenced(0, &[1], asked), None);
        assert_eq!(units.to_fence(0), vec![1], "asked again");
        assert!(units.fenced(0, &[1], units.generation()).is_some());
    }

    #[test]
    fn a_unit_lost_while_given_is_fenced_again_and_its_partitions_acquired_anew() {
        let topic = units_topic("g");
        let mut units = Units::new(topic, 2, 2);
        units.listed([("t".to_string(), 4)].into());
        units.assigned(&[0, 1]);
        let now = units.generation();
        let unit_1 = units.fenced(0, &[1], now).unwrap();
        units.fenced(0, &[0], now).unwrap();
        units.fenced(1, &[0, 1], now).unwrap();
        assert_eq!(units.lost(0, &[1]), vec![1]);
        assert_eq!(units.to_fence(0), vec![1], "flow 0 fences it again");
        assert!(units.to_fence(1).is_empty(), "flow 1 kept it");
        assert_eq!(units.fenced(0, &[1], units.generation()), Some(unit_1));
        // Taken back by the group meanwhile: nothing to fence again.
        units.revoked(&[0]);
        assert!(units.lost(0, &[0]).is_empty());
        assert!(units.to_fence(0).is_empty());
    }

    #[test]
    fn a_units_topic_that_changed_its_count_is_refused() {
        let units = Units::new("units".into(), 4, 1);
        assert!(units.check_count(Some(4)).is_ok());
        assert!(units.check_count(None).is_ok(), "not listed this time");
        let changed = units.check_count(Some(6)).unwrap_err().to_string();
        assert!(changed.contains("units has 6 partition(s)") && changed.contains("runs 4"));
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
