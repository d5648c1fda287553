//! Read-once fan-out, apart from any I/O: the flows of one source share one reader, and this
//! decides, per source partition, which flows ("lanes") take their records from it and where it
//! stands.
//!
//! A lane that keeps up reads through the shared reader and skips what it already sent (after
//! a rewind of the shared reader for another lane). A lane that is behind, because its target
//! was slow or down, catches up on a reader of its own and rejoins once it reaches the shared
//! position, so a slow target never holds the others back and targets that keep up cost one
//! read of the source between them. The shared reader follows the front-runners: a lane far
//! ahead of it (an up-to-date target, while the reader serves one that is backfilling) takes
//! it over, and the lanes behind continue on their own readers.

use rdkafka::Offset;

/// How far (in records) the shared reader may be moved back for a lane to join it. Moving it
/// back re-reads that many records for the lanes already on it (they skip them); beyond this a
/// lane catches up on its own reader instead. The same distance ahead of the reader, a lane
/// takes it over rather than wait for it to read that far.
pub const JOIN_GAP: i64 = 10_000;

/// The shared reader's state for one source partition.
#[derive(Debug, Default)]
pub struct SharedCursor {
    /// (lane, slot of the partition in that lane) for every lane reading it here.
    sharing: Vec<(usize, usize)>,
    /// The offset the shared reader hands out next: where it was assigned, then one past the
    /// last record handed out. `None` while the partition is not assigned.
    next: Option<Offset>,
    /// Lanes (with slots) moved off by a lane that took the reader over: they must continue on
    /// their own readers.
    displaced: Vec<(usize, usize)>,
}

/// What joining the shared reader takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Join {
    /// (Re)assign the shared reader at this offset, then read there.
    Assign(Offset),
    /// Read there as it is (records before the lane's position are skipped).
    Share,
    /// Far ahead of where the reader is: reassign it at this offset; the lanes reading there
    /// now are displaced to their own readers.
    TakeOver(Offset),
    /// Too far behind: catch up on the lane's own reader first.
    CatchUp,
}

/// Whether a lane whose next offset to send is `next` wants the record at `offset`.
pub fn wants(next: Offset, offset: i64) -> bool {
    match next {
        Offset::Offset(n) => offset >= n,
        _ => true,
    }
}

impl SharedCursor {
    /// Lanes reading this partition through the shared reader, with their slots.
    pub fn sharing(&self) -> &[(usize, usize)] {
        &self.sharing
    }

    /// The offset the next record must have, when the reader was assigned at or has handed
    /// out an offset: a record below it means the source's offsets went back.
    pub fn position(&self) -> Option<i64> {
        match self.next {
            Some(Offset::Offset(n)) => Some(n),
            _ => None,
        }
    }

    pub fn is_assigned(&self) -> bool {
        self.next.is_some()
    }

    /// What lane `lane`, whose next record to send is at `from`, must do to read here.
    pub fn join(&self, lane: usize, from: Offset) -> Join {
        let others = self.sharing.iter().any(|(l, _)| *l != lane);
        let Some(at) = self.next.filter(|_| others) else {
            // Nobody else reads here: the shared reader goes where this lane needs it.
            return Join::Assign(from);
        };
        match (from, at) {
            (Offset::Offset(f), Offset::Offset(n)) if f - n > JOIN_GAP => Join::TakeOver(from),
            // The log's start is unknown here: taken as 0 (if retention moved it, the lanes
            // behind catch up quickly and rejoin).
            (Offset::Offset(f), Offset::Beginning) if f > JOIN_GAP => Join::TakeOver(from),
            (Offset::Offset(f), Offset::Offset(n)) if f >= n => Join::Share,
            (Offset::Offset(f), Offset::Offset(n)) if n - f <= JOIN_GAP => Join::Assign(from),
            // Nothing handed out yet: the lane skips up to its own position.
            (Offset::Offset(_), Offset::Beginning) => Join::Share,
            (Offset::Beginning, Offset::Beginning) => Join::Share,
            // The log's start is unknown here; offsets start at 0 unless retention moved it.
            (Offset::Beginning, Offset::Offset(n)) if n <= JOIN_GAP => Join::Assign(from),
            _ => Join::CatchUp,
        }
    }

    /// Lane `lane` now reads here.
    pub fn add(&mut self, lane: usize, slot: usize) {
        if !self.sharing.iter().any(|(l, _)| *l == lane) {
            self.sharing.push((lane, slot));
        }
    }

    /// Lane `lane` no longer reads here. Returns whether nobody does any more (the partition
    /// should be unassigned from the shared reader).
    pub fn remove(&mut self, lane: usize) -> bool {
        self.sharing.retain(|(l, _)| *l != lane);
        self.sharing.is_empty() && self.next.is_some()
    }

    /// Lane `lane`'s slots were renumbered (`renumbered[old]`): its registrations follow.
    pub fn renumber(&mut self, lane: usize, renumbered: &[Option<usize>]) {
        for list in [&mut self.sharing, &mut self.displaced] {
            list.retain_mut(|(l, slot)| {
                if *l != lane {
                    return true;
                }
                match renumbered.get(*slot).copied().flatten() {
                    Some(new) => {
                        *slot = new;
                        true
                    }
                    None => false,
                }
            });
        }
    }

    /// Lane `lane` took the reader over: every other lane reading here is displaced.
    pub fn displace_all_but(&mut self, lane: usize) {
        let (stay, moved): (Vec<_>, Vec<_>) = self.sharing.iter().partition(|(l, _)| *l == lane);
        self.sharing = stay;
        self.displaced.extend(moved);
    }

    pub fn has_displaced(&self) -> bool {
        !self.displaced.is_empty()
    }

    /// The slots of lane `lane` displaced since the last call.
    pub fn take_displaced(&mut self, lane: usize) -> Vec<usize> {
        if self.displaced.is_empty() {
            return Vec::new();
        }
        let (mine, others): (Vec<_>, Vec<_>) = self.displaced.iter().partition(|(l, _)| *l == lane);
        self.displaced = others;
        mine.into_iter().map(|(_, slot)| slot).collect()
    }

    /// The shared reader was (re)assigned at `offset`.
    pub fn assigned(&mut self, offset: Offset) {
        self.next = Some(offset);
    }

    pub fn unassigned(&mut self) {
        self.next = None;
    }

    /// The shared reader handed out the record at `offset`.
    pub fn handed(&mut self, offset: i64) {
        self.next = Some(Offset::Offset(offset + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor_at(next: Offset, lanes: &[usize]) -> SharedCursor {
        let mut c = SharedCursor::default();
        c.assigned(next);
        for &l in lanes {
            c.add(l, 0);
        }
        c
    }

    #[test]
    fn a_lone_lane_moves_the_reader_wherever_it_needs() {
        let empty = SharedCursor::default();
        assert_eq!(
            empty.join(0, Offset::Beginning),
            Join::Assign(Offset::Beginning)
        );
        // Its own earlier place does not count as someone else's.
        let own = cursor_at(Offset::Offset(900_000), &[0]);
        assert_eq!(
            own.join(0, Offset::Offset(5)),
            Join::Assign(Offset::Offset(5))
        );
    }

    #[test]
    fn a_lane_at_or_ahead_of_the_shared_position_shares() {
        let c = cursor_at(Offset::Offset(100), &[0]);
        assert_eq!(c.join(1, Offset::Offset(100)), Join::Share);
        assert_eq!(c.join(1, Offset::Offset(150)), Join::Share);
        let fresh = cursor_at(Offset::Beginning, &[0]);
        assert_eq!(fresh.join(1, Offset::Beginning), Join::Share);
        assert_eq!(fresh.join(1, Offset::Offset(40)), Join::Share);
    }

    #[test]
    fn a_lane_slightly_behind_moves_the_reader_back_and_one_far_behind_catches_up() {
        let c = cursor_at(Offset::Offset(20_000), &[0]);
        assert_eq!(
            c.join(1, Offset::Offset(10_000)),
            Join::Assign(Offset::Offset(10_000))
        );
        assert_eq!(c.join(1, Offset::Offset(9_999)), Join::CatchUp);
        let early = cursor_at(Offset::Offset(300), &[0]);
        assert_eq!(
            early.join(1, Offset::Beginning),
            Join::Assign(Offset::Beginning)
        );
        assert_eq!(c.join(1, Offset::Beginning), Join::CatchUp);
    }

    #[test]
    fn a_lane_far_ahead_takes_the_reader_over_and_the_lanes_behind_are_displaced() {
        let mut c = cursor_at(Offset::Offset(100), &[0, 2]);
        let ahead = 100 + JOIN_GAP + 1;
        assert_eq!(
            c.join(1, Offset::Offset(ahead)),
            Join::TakeOver(Offset::Offset(ahead))
        );
        assert_eq!(c.join(1, Offset::Offset(100 + JOIN_GAP)), Join::Share);
        let backfilling = cursor_at(Offset::Beginning, &[0]);
        assert_eq!(
            backfilling.join(1, Offset::Offset(JOIN_GAP + 1)),
            Join::TakeOver(Offset::Offset(JOIN_GAP + 1))
        );
        c.add(1, 5);
        c.displace_all_but(1);
        assert_eq!(c.sharing(), &[(1, 5)]);
        assert_eq!(c.take_displaced(2), vec![0]);
        assert_eq!(c.take_displaced(0), vec![0]);
        assert!(c.take_displaced(0).is_empty());
    }

    #[test]
    fn the_last_lane_to_leave_frees_the_partition() {
        let mut c = cursor_at(Offset::Offset(7), &[0, 1]);
        assert!(!c.remove(0));
        assert_eq!(c.sharing(), &[(1, 0)]);
        assert!(c.remove(1));
        c.unassigned();
        assert!(!c.is_assigned());
        assert!(!c.remove(1));
    }

    #[test]
    fn handing_out_a_record_moves_the_position_past_it() {
        let mut c = cursor_at(Offset::Beginning, &[0]);
        c.handed(41);
        assert_eq!(c.join(1, Offset::Offset(42)), Join::Share);
        assert_eq!(
            c.join(1, Offset::Offset(41)),
            Join::Assign(Offset::Offset(41))
        );
    }

    #[test]
    fn lanes_skip_what_they_already_sent() {
        assert!(wants(Offset::Beginning, 0));
        assert!(wants(Offset::Offset(5), 5));
        assert!(!wants(Offset::Offset(5), 4));
    }
}
