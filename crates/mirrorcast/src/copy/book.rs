//! A lane's partition book: which partitions it copies (its copier thread's, and in a group
//! those the group gave this process), by which routes, from which stored progress, and the
//! state of each ([`PartitionState`], by slot). Pure bookkeeping: the lane reads and sends,
//! the book says what is whose and where it resumes.
//!
//! Invariant: a slot names one source partition until it is retired, and a retired slot is
//! never given again: slots are renumbered only by [`PartitionBook::compact`], which the lane
//! calls when nothing it sent is unreported and no transaction is open (no report or
//! transaction can name an old slot then); a partition is added only once the stored progress
//! is known, so it resumes right after its last stored offset.

use std::collections::{HashMap, HashSet};
use std::ops::{Index, IndexMut, Range};

use super::partitions::{Mode, PartitionIndex, PartitionState};
use crate::kafka::cluster::TopicId;
use crate::ownership::Shard;
use crate::plan::Route;
use crate::progress::{Progress, Stored};

/// What the book knows of a lane's partitions.
pub(crate) struct PartitionBook {
    shard: Shard,
    partitions: Vec<PartitionState>,
    index_of: PartitionIndex,
    /// The stored progress; `None` until the topic manager's `Resume` (the internal topics may
    /// not exist before).
    progress: Option<Progress>,
    /// Routes that came before the progress (never, with the topic manager's order).
    pending_routes: Vec<Route>,
    /// Every route the topic manager gave, by source topic: partitions the group gives this
    /// process later are copied by them.
    routes: HashMap<String, Route>,
    /// In a group: the partitions it gave this process (`None`: every partition is ours).
    assigned: Option<HashSet<(String, i32)>>,
    /// Progress read at an assignment that came before `Resume`; it wins over the progress
    /// read at the flow's start, which may be older.
    acquired_progress: HashMap<(String, i32), Option<Stored>>,
    /// Partitions read on the lane's own reader.
    catching_up: usize,
    /// Exactly once without a group: the lane's unit was fenced from under it; nothing is
    /// the lane's until it registers again ([`PartitionBook::refenced`]).
    unit_away: bool,
}

/// Retired slots kept before [`PartitionBook::compact`] drops them.
pub(crate) const COMPACT_AFTER: usize = 64;

/// Where a new partition of a route resumes.
pub(crate) struct NewPartition {
    pub partition: i32,
    pub slot: usize,
    /// Its stored progress, if any (none if stored for an earlier topic of the same name).
    pub stored: Option<i64>,
    /// The ID of an earlier topic of the same name, whose stored progress this partition of a
    /// topic created again does not resume from.
    pub earlier_topic: Option<TopicId>,
}

impl PartitionBook {
    /// The book of copier thread `shard`; `grouped`: only what a group gives is ours.
    pub fn new(shard: Shard, grouped: bool) -> Self {
        PartitionBook {
            shard,
            partitions: Vec::new(),
            index_of: PartitionIndex::default(),
            progress: None,
            pending_routes: Vec::new(),
            routes: HashMap::new(),
            assigned: grouped.then(HashSet::new),
            acquired_progress: HashMap::new(),
            catching_up: 0,
            unit_away: false,
        }
    }

    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Whether the lane copies the partition: its copier thread's, and (in a group) given to
    /// this process.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        !self.unit_away
            && self.shard.owns(topic, partition)
            && self
                .assigned
                .as_ref()
                .is_none_or(|assigned| assigned.contains(&(topic.to_string(), partition)))
    }

    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    pub fn slots(&self) -> Range<usize> {
        0..self.partitions.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &PartitionState> {
        self.partitions.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut PartitionState> {
        self.partitions.iter_mut()
    }

    /// The partitions still copied (not retired).
    pub fn live(&self) -> impl Iterator<Item = &PartitionState> {
        self.partitions.iter().filter(|s| !s.retired)
    }

    pub fn get(&self, slot: usize) -> Option<&PartitionState> {
        self.partitions.get(slot)
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut PartitionState> {
        self.partitions.get_mut(slot)
    }

    pub fn slot_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.index_of.get(topic, partition)
    }

    /// The live slots of a source topic's partitions.
    pub fn live_slots_of(&self, topic: &str) -> Vec<usize> {
        let mut slots = self.index_of.slots_of(topic);
        slots.retain(|&slot| !self.partitions[slot].retired);
        slots.sort_unstable();
        slots
    }

    pub fn topic_count(&self) -> usize {
        self.index_of.topic_count()
    }

    /// Whether the stored progress is known (the topic manager's `Resume` came).
    pub fn resumed(&self) -> bool {
        self.progress.is_some()
    }

    /// The stored progress came: progress acquired before it wins. Returns how many of its
    /// partitions are the lane's, and the routes that waited for it.
    pub fn resume(&mut self, mut progress: Progress) -> (usize, Vec<Route>) {
        for (partition, stored) in self.acquired_progress.drain() {
            match stored {
                Some(stored) => progress.insert(partition, stored),
                None => progress.remove(&partition),
            };
        }
        let ours = progress
            .keys()
            .filter(|(topic, partition)| self.owns(topic, *partition))
            .count();
        self.progress = Some(progress);
        (ours, std::mem::take(&mut self.pending_routes))
    }

    /// Takes `routes` in; returns them back if the progress is not known yet (they wait).
    pub fn take_routes(&mut self, routes: Vec<Route>) -> Option<Vec<Route>> {
        for route in &routes {
            self.routes
                .insert(route.source_topic.clone(), route.clone());
        }
        if self.progress.is_none() {
            self.pending_routes.extend(routes);
            return None;
        }
        Some(routes)
    }

    /// Every route known, for partitions the group gives later.
    pub fn known_routes(&self) -> Vec<Route> {
        self.routes.values().cloned().collect()
    }

    /// The source topic's ID learned after its route was given (the topic was created again):
    /// partitions the group gives later are judged by it, not by the route's older one.
    pub fn learn_topic_id(&mut self, topic: &str, id: Option<TopicId>) {
        if let Some(route) = self.routes.get_mut(topic) {
            route.topic_id = id;
        }
    }

    /// Topics of known routes with progress stored under another ID than the route's: created
    /// again since the route was given, or stored of an earlier topic; the source tells which.
    pub fn routes_with_other_stored_ids(&self) -> Vec<String> {
        let Some(progress) = &self.progress else {
            return Vec::new();
        };
        self.routes
            .values()
            .filter(|route| {
                progress.iter().any(|((topic, _), stored)| {
                    *topic == route.source_topic
                        && stored.topic_id.is_some()
                        && route.topic_id.is_some()
                        && stored.topic_id != route.topic_id
                })
            })
            .map(|route| route.source_topic.clone())
            .collect()
    }

    /// The partitions of `route` that are the lane's and not known yet, each with a new slot
    /// and its stored progress; `make` builds each one's state.
    pub fn add_route(
        &mut self,
        route: &Route,
        mut make: impl FnMut(NewPartition) -> PartitionState,
    ) -> Vec<usize> {
        let mut added = Vec::new();
        for partition in 0..route.partitions {
            if !self.owns(&route.source_topic, partition) {
                continue; // another copier thread's, or another process's
            }
            let slot = self.partitions.len();
            if !self.index_of.insert(&route.source_topic, partition, slot) {
                continue;
            }
            let stored = self
                .progress
                .as_ref()
                .and_then(|p| p.get(&(route.source_topic.clone(), partition)));
            let (stored, earlier_topic) = match stored {
                Some(Stored {
                    topic_id: Some(stored_id),
                    ..
                }) if route.topic_id.as_ref().is_some_and(|id| id != stored_id) => {
                    (None, Some(stored_id.clone()))
                }
                Some(stored) => (Some(stored.offset), None),
                None => (None, None),
            };
            self.partitions.push(make(NewPartition {
                partition,
                slot,
                stored,
                earlier_topic,
            }));
            added.push(slot);
        }
        added
    }

    /// A source topic is gone for good: its route and progress are forgotten; returns its
    /// partitions' slots (to be stopped and retired by the lane).
    pub fn forget_topic(&mut self, topic: &str) -> Vec<(i32, usize)> {
        self.routes.remove(topic);
        let Some(partitions) = self.index_of.remove_topic(topic) else {
            return Vec::new();
        };
        if let Some(progress) = &mut self.progress {
            progress.retain(|(t, _), _| t != topic);
        }
        partitions.into_iter().collect()
    }

    /// The group gave this process `partitions`, with `progress` read after the assignment.
    /// Returns how many are this copier thread's, or `None` outside a group (every partition
    /// is ours already).
    pub fn acquire(&mut self, partitions: &[(String, i32)], progress: &Progress) -> Option<usize> {
        let assigned = self.assigned.as_mut()?;
        for partition in partitions {
            assigned.insert(partition.clone());
            let stored = progress.get(partition).cloned();
            match (&mut self.progress, stored) {
                (Some(known), Some(stored)) => {
                    known.insert(partition.clone(), stored);
                }
                (Some(known), None) => {
                    known.remove(partition);
                }
                (None, stored) => {
                    self.acquired_progress.insert(partition.clone(), stored);
                }
            }
        }
        Some(
            partitions
                .iter()
                .filter(|(topic, partition)| self.shard.owns(topic, *partition))
                .count(),
        )
    }

    /// `partitions` are no longer this process's: forgets them (their progress is read again
    /// when the group gives them back) and returns the live slots among them, still to be
    /// stopped by the lane.
    pub fn take_back(&mut self, partitions: &[(String, i32)]) -> Vec<usize> {
        let mut slots = Vec::new();
        for (topic, partition) in partitions {
            let key = (topic.clone(), *partition);
            if let Some(assigned) = &mut self.assigned {
                assigned.remove(&key);
            }
            if let Some(progress) = &mut self.progress {
                progress.remove(&key);
            }
            let Some(slot) = self.index_of.remove(topic, *partition) else {
                continue;
            };
            if !self.partitions[slot].retired {
                slots.push(slot);
            }
        }
        slots
    }

    /// The live partitions, by name.
    pub fn live_partitions(&self) -> Vec<(String, i32)> {
        self.live()
            .map(|s| (s.source_topic.clone(), s.partition))
            .collect()
    }

    /// The whole copy unit (this copier thread) left this process.
    pub fn unassign_unit(&mut self) {
        let shard = self.shard;
        match &mut self.assigned {
            Some(assigned) => assigned.retain(|(topic, partition)| !shard.owns(topic, *partition)),
            None => self.unit_away = true,
        }
    }

    /// Exactly once without a group: the lane's unit registered again, and `progress` was
    /// read afterwards; its partitions are the lane's again, from there. Returns how many of
    /// them have progress.
    pub fn refenced(&mut self, progress: &Progress) -> usize {
        self.unit_away = false;
        let shard = self.shard;
        let known = self.progress.get_or_insert_with(Progress::new);
        known.retain(|(topic, partition), _| !shard.owns(topic, *partition));
        let ours: Vec<_> = progress
            .iter()
            .filter(|((topic, partition), _)| shard.owns(topic, *partition))
            .collect();
        for (partition, stored) in &ours {
            known.insert((*partition).clone(), (*stored).clone());
        }
        ours.len()
    }

    /// A slot no longer copied: no progress, status or metrics from it.
    pub fn retire(&mut self, slot: usize, now: std::time::Instant) {
        let state = &mut self.partitions[slot];
        state.retired = true;
        state.mode = Mode::Waiting(now);
        state.meters.forget();
    }

    /// Drops the retired slots once they are at least [`COMPACT_AFTER`] and outnumber the
    /// live ones, renumbering the live ones in order. Returns each old slot's new slot (`None`:
    /// retired), or `None` when nothing was dropped. Only when no report, transaction or
    /// reader registration can name a retired slot (the lane's call).
    pub fn compact(&mut self) -> Option<Vec<Option<usize>>> {
        let retired = self.partitions.iter().filter(|s| s.retired).count();
        if retired < COMPACT_AFTER || retired <= self.partitions.len() - retired {
            return None;
        }
        let mut renumbered = Vec::with_capacity(self.partitions.len());
        let mut next = 0;
        for state in &self.partitions {
            renumbered.push((!state.retired).then(|| {
                next += 1;
                next - 1
            }));
        }
        self.partitions.retain(|s| !s.retired);
        self.index_of = PartitionIndex::default();
        for (slot, state) in self.partitions.iter().enumerate() {
            self.index_of
                .insert(&state.source_topic, state.partition, slot);
        }
        Some(renumbered)
    }

    /// Partitions read on the lane's own reader.
    pub fn catching_up(&self) -> usize {
        self.catching_up
    }

    /// Partition `slot` now reads on the lane's own reader.
    pub fn read_on_own(&mut self, slot: usize) {
        self.partitions[slot].mode = Mode::CatchingUp;
        self.catching_up += 1;
    }

    /// Partition `slot` no longer reads on the lane's own reader.
    pub fn left_own(&mut self) {
        self.catching_up -= 1;
    }
}

impl Index<usize> for PartitionBook {
    type Output = PartitionState;

    fn index(&self, slot: usize) -> &PartitionState {
        &self.partitions[slot]
    }
}

impl IndexMut<usize> for PartitionBook {
    fn index_mut(&mut self, slot: usize) -> &mut PartitionState {
        &mut self.partitions[slot]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::report::FlowReporter;
    use crate::observe::Observability;

    fn route(topic: &str, partitions: i32) -> Route {
        Route {
            source_topic: topic.to_string(),
            remote_topic: format!("r.{topic}"),
            partitions,
            topic_id: None,
            max_message_bytes: None,
        }
    }

    fn add(book: &mut PartitionBook, route: &Route) -> Vec<usize> {
        let reporter = FlowReporter::new(Observability::new(), "eu", "na");
        book.add_route(route, |new| {
            PartitionState::new(
                &route.source_topic,
                route.remote_topic.as_str().into(),
                new.partition,
                new.stored,
                0,
                reporter.partition(&route.source_topic, &route.remote_topic, new.partition),
                None,
                std::time::Instant::now(),
            )
        })
    }

    fn progress(entries: &[(&str, i32, i64)]) -> Progress {
        entries
            .iter()
            .map(|&(t, p, offset)| {
                let stored = Stored {
                    offset,
                    topic_id: None,
                };
                ((t.to_string(), p), stored)
            })
            .collect()
    }

    #[test]
    fn routes_wait_for_the_progress_and_partitions_resume_after_it() {
        let mut book = PartitionBook::new(Shard::ALONE, false);
        assert!(
            book.take_routes(vec![route("a", 2)]).is_none(),
            "no progress yet"
        );
        let (ours, pending) = book.resume(progress(&[("a", 1, 41)]));
        assert_eq!((ours, pending.len()), (1, 1));
        assert_eq!(add(&mut book, &pending[0]), vec![0, 1]);
        assert_eq!(book[1].ledger.resume_offset(), rdkafka::Offset::Offset(42));
        assert!(
            add(&mut book, &route("a", 2)).is_empty(),
            "known partitions are kept"
        );
        assert_eq!(book.slot_of("a", 1), Some(1));
    }

    #[test]
    fn in_a_group_only_what_the_group_gives_is_ours_and_acquired_progress_wins() {
        let mut book = PartitionBook::new(Shard::ALONE, true);
        assert!(!book.owns("a", 0));
        assert_eq!(
            book.acquire(&[("a".into(), 0)], &progress(&[("a", 0, 7)])),
            Some(1)
        );
        let (_, _) = book.resume(progress(&[("a", 0, 3)]));
        assert!(book.owns("a", 0) && !book.owns("a", 1));
        assert_eq!(add(&mut book, &route("a", 2)), vec![0]);
        assert_eq!(book[0].ledger.resume_offset(), rdkafka::Offset::Offset(8));
        assert_eq!(book.take_back(&[("a".into(), 0)]), vec![0]);
        assert!(!book.owns("a", 0) && book.slot_of("a", 0).is_none());
        assert_eq!(
            PartitionBook::new(Shard::ALONE, false).acquire(&[], &Progress::new()),
            None,
            "outside a group everything is ours already"
        );
    }

    #[test]
    fn a_forgotten_topic_gives_its_slots_back_and_loses_its_progress() {
        let mut book = PartitionBook::new(Shard::ALONE, false);
        book.resume(progress(&[("a", 0, 5)]));
        add(&mut book, &route("a", 2));
        let mut slots = book.forget_topic("a");
        slots.sort();
        assert_eq!(slots, vec![(0, 0), (1, 1)]);
        assert!(book.known_routes().is_empty());
        assert_eq!(
            add(&mut book, &route("a", 1)),
            vec![2],
            "a new slot, from the beginning"
        );
        assert_eq!(book[2].ledger.resume_offset(), rdkafka::Offset::Beginning);
    }
}
