//! Offset translation, as MM2 does it (Kafka 3.5+): when the copy emits an offset sync, and how
//! a group's committed source offset becomes a target offset. Pure: the copier feeds it
//! acknowledged copies; the checkpoint task feeds it the syncs it read and the groups' offsets.
//!
//! Translation is never ahead of the truth: a consumer that fails over may re-read records,
//! never skip them.

use std::collections::BTreeMap;

use super::codec::OffsetSync;

/// Decides, per source partition, when a copied record deserves an offset sync: at once by the
/// rules below, and, as MM2's `OffsetSyncWriter` does, the newest copy that did not get one is
/// held back and written at the next offset flush, so that a partition at rest translates
/// exactly at its end.
#[derive(Debug, Clone)]
pub struct SyncEmitter {
    /// `offset.lag.max`
    lag_max: i64,
    last_sync_downstream: Option<i64>,
    previous: Option<(i64, i64)>,
    /// The newest (upstream, downstream) copy not synced yet.
    delayed: Option<(i64, i64)>,
}

impl SyncEmitter {
    pub fn new(lag_max: i64) -> Self {
        SyncEmitter {
            lag_max,
            last_sync_downstream: None,
            previous: None,
            delayed: None,
        }
    }

    /// The record at `upstream` in the source is at `downstream` in the target. Returns
    /// whether to emit a sync for it: the first one of this run, when translations would be
    /// `offset.lag.max` or more behind, when the upstream offsets are not contiguous
    /// (compaction, transactions), or when the downstream offset went backwards.
    pub fn copied(&mut self, upstream: i64, downstream: i64) -> bool {
        let first = self.last_sync_downstream.is_none();
        // Translation lands one past the last sync, hence the + 1.
        let stale = self
            .last_sync_downstream
            .is_some_and(|last| downstream - (last + 1) >= self.lag_max);
        let skipped = self.previous.is_some_and(|(up, _)| upstream - up != 1);
        let truncated = self.previous.is_some_and(|(_, down)| downstream < down);
        self.previous = Some((upstream, downstream));
        if first || stale || skipped || truncated {
            self.last_sync_downstream = Some(downstream);
            self.delayed = None;
            true
        } else {
            self.delayed = Some((upstream, downstream));
            false
        }
    }

    /// [`SyncEmitter::copied`] for each of `count` records copied in a run, contiguous on both
    /// sides from (`upstream`, `downstream`) on (a whole batch), in as many steps as syncs:
    /// the syncs to emit.
    pub fn copied_run(&mut self, upstream: i64, downstream: i64, count: i64) -> Vec<(i64, i64)> {
        let mut syncs = Vec::new();
        if count <= 0 {
            return syncs;
        }
        if self.copied(upstream, downstream) {
            syncs.push((upstream, downstream));
        }
        // Past the first record only staleness can call for a sync (contiguous, increasing).
        let mut i = 1;
        while i < count {
            let Some(last) = self.last_sync_downstream else {
                break;
            };
            let due = (last + 1 + self.lag_max - downstream).max(i);
            if due >= count {
                break;
            }
            syncs.push((upstream + due, downstream + due));
            self.last_sync_downstream = Some(downstream + due);
            i = due + 1;
        }
        let end = (upstream + count - 1, downstream + count - 1);
        if count > 1 {
            self.previous = Some(end);
            self.delayed = match syncs.last() {
                Some(last) if *last == end => None,
                _ => Some(end),
            };
        }
        syncs
    }

    /// At an offset flush: the held-back (upstream, downstream) sync to write now, if any. It
    /// does not count as a sync for the rules above (MM2 keeps them apart too).
    pub fn take_delayed(&mut self) -> Option<(i64, i64)> {
        self.delayed.take()
    }
}

/// Syncs kept per source partition, as MM2's `OffsetSyncStore` keeps 64: the newest, the
/// oldest, and between them ever sparser ones going back.
pub const SYNCS_KEPT: usize = 64;

/// The offset syncs of one source partition, by upstream offset; at most [`SYNCS_KEPT`].
#[derive(Debug, Clone, Default)]
pub struct SyncHistory {
    by_upstream: BTreeMap<i64, i64>,
}

impl SyncHistory {
    pub fn add(&mut self, sync: &OffsetSync) {
        // A sync whose downstream went backwards (a truncated target) invalidates the syncs
        // above it upstream and those pointing past its downstream offset.
        self.by_upstream
            .retain(|up, down| *up < sync.upstream_offset && *down <= sync.downstream_offset);
        self.by_upstream
            .insert(sync.upstream_offset, sync.downstream_offset);
        if self.by_upstream.len() > SYNCS_KEPT {
            self.thin();
        }
    }

    pub fn len(&self) -> usize {
        self.by_upstream.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_upstream.is_empty()
    }

    /// Drops syncs until [`SYNCS_KEPT`] remain, never the newest or the oldest: each time the
    /// one whose removal opens the smallest gap for its age (distance to the newest sync). A
    /// group near the end translates precisely, an old one still translates, only farther
    /// behind; dropping a sync never makes a translation ahead of the truth.
    fn thin(&mut self) {
        while self.by_upstream.len() > SYNCS_KEPT {
            let upstream: Vec<i64> = self.by_upstream.keys().copied().collect();
            let newest = upstream[upstream.len() - 1];
            // Removing upstream[i] joins the gaps on either side of it.
            let cost = |i: usize| {
                let gap = i128::from(upstream[i + 1]) - i128::from(upstream[i - 1]);
                let age = (i128::from(newest) - i128::from(upstream[i + 1])).max(1);
                (gap, age)
            };
            let cheapest = (1..upstream.len() - 1).min_by(|&a, &b| {
                let ((gap_a, age_a), (gap_b, age_b)) = (cost(a), cost(b));
                (gap_a * age_b).cmp(&(gap_b * age_a))
            });
            let Some(cheapest) = cheapest else {
                return;
            };
            self.by_upstream.remove(&upstream[cheapest]);
        }
    }

    /// The target offset for a committed source offset `committed`: from the newest sync at or
    /// below it, the same downstream offset when the group is exactly at the sync, else one
    /// past it. `None` when no sync is old enough to translate from.
    pub fn translate(&self, committed: i64) -> Option<i64> {
        let (upstream, downstream) = self.by_upstream.range(..=committed).next_back()?;
        Some(downstream + i64::from(committed != *upstream))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_run_emits_what_its_records_one_by_one_would() {
        for lag_max in [1, 3, 100] {
            for runs in [vec![1, 5, 2, 40, 7], vec![10, 10, 10], vec![200, 1, 1]] {
                let (mut by_record, mut by_run) = (
                    super::SyncEmitter::new(lag_max),
                    super::SyncEmitter::new(lag_max),
                );
                let (mut up, mut down) = (100, 0);
                for count in runs {
                    let mut expected = Vec::new();
                    for i in 0..count {
                        if by_record.copied(up + i, down + i) {
                            expected.push((up + i, down + i));
                        }
                    }
                    assert_eq!(
                        by_run.copied_run(up, down, count),
                        expected,
                        "lag {lag_max}"
                    );
                    // A gap upstream between runs, as a dropped marker leaves.
                    up += count + 1;
                    down += count;
                }
                assert_eq!(by_run.take_delayed(), by_record.take_delayed());
            }
        }
    }

    use super::*;

    fn sync(up: i64, down: i64) -> OffsetSync {
        OffsetSync {
            topic: "t".into(),
            partition: 0,
            upstream_offset: up,
            downstream_offset: down,
        }
    }

    #[test]
    fn the_first_copy_of_a_run_is_synced_then_every_lag_max() {
        let mut emitter = SyncEmitter::new(100);
        let synced: Vec<i64> = (0..350).filter(|&o| emitter.copied(o, o)).collect();
        assert_eq!(synced, [0, 101, 202, 303]);
    }

    #[test]
    fn the_newest_unsynced_copy_waits_for_the_next_flush_and_only_once() {
        let mut emitter = SyncEmitter::new(100);
        assert!(emitter.copied(0, 0));
        assert_eq!(emitter.take_delayed(), None, "synced at once");
        for o in 1..50 {
            assert!(!emitter.copied(o, o));
        }
        assert_eq!(emitter.take_delayed(), Some((49, 49)));
        assert_eq!(emitter.take_delayed(), None, "nothing new since");
        // The delayed sync does not move the lag-max rule: 101 is still due at once.
        let synced: Vec<i64> = (50..=101).filter(|&o| emitter.copied(o, o)).collect();
        assert_eq!(synced, [101]);
        assert_eq!(emitter.take_delayed(), None, "101 was synced at once");
    }

    #[test]
    fn gaps_upstream_and_downstream_going_back_are_synced() {
        let mut emitter = SyncEmitter::new(100);
        assert!(emitter.copied(10, 0));
        assert!(!emitter.copied(11, 1));
        assert!(
            emitter.copied(15, 2),
            "upstream skipped 12..14 (compaction)"
        );
        assert!(!emitter.copied(16, 3));
        assert!(emitter.copied(17, 0), "the target topic was truncated");
    }

    #[test]
    fn translation_is_never_ahead_of_the_truth() {
        let mut history = SyncHistory::default();
        history.add(&sync(100, 42));
        history.add(&sync(200, 150));
        assert_eq!(history.translate(100), Some(42), "exactly at a sync");
        assert_eq!(
            history.translate(150),
            Some(43),
            "between syncs: one past the older one"
        );
        assert_eq!(history.translate(200), Some(150));
        assert_eq!(history.translate(250), Some(151));
        assert_eq!(history.translate(99), None, "older than every sync");
    }

    #[test]
    fn a_long_history_stays_bounded_and_never_translates_ahead() {
        let mut history = SyncHistory::default();
        // Upstream u is at downstream u - 7 (seven records were not copied long ago).
        for i in 0..20_000i64 {
            history.add(&sync(i * 10 + 7, i * 10));
        }
        assert_eq!(history.len(), SYNCS_KEPT);
        let newest = 19_999 * 10 + 7;
        assert_eq!(
            history.translate(newest),
            Some(newest - 7),
            "exact at the end"
        );
        assert_eq!(history.translate(7), Some(0), "the oldest still translates");
        for committed in (7..=newest).step_by(997) {
            let translated = history.translate(committed).unwrap();
            assert!(
                translated <= committed - 7,
                "{committed} -> {translated}: ahead"
            );
            // Behind by at most about the distance to the newest sync.
            assert!(
                committed - 7 - translated <= (newest - committed) + 10,
                "{committed} -> {translated}: too far behind"
            );
        }
    }

    #[test]
    fn a_truncated_target_forgets_newer_syncs() {
        let mut history = SyncHistory::default();
        history.add(&sync(100, 42));
        history.add(&sync(200, 150));
        history.add(&sync(150, 10));
        assert_eq!(history.translate(150), Some(10));
        assert_eq!(
            history.translate(210),
            Some(11),
            "the newer (200, 150) sync no longer holds"
        );
        // Older syncs point past the truncated target's end: rather no translation than a wrong one.
        assert_eq!(history.translate(120), None);
    }
}
