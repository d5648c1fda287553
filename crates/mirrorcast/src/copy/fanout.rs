//! Read-once fan-out, apart from any I/O: the flows of one source share one reader, and this
//! decides, per source partition, which flows ("lanes") take their records from it and where it
//! stands.
//!
//! A lane that keeps up reads through the shared reader and skips what it already sent (after
//! a rewind of the shared reader for another lane). A lane that is behind, because its target
//! was slow or down, catches up on a reader of its own and rejoins once it reaches the shared
//! position, so a slow target never holds the others back and targets that keep up cost one
//! read of the source between them.

use rdkafka::Offset;

/// How far (in records) the shared reader may be moved back for a lane to join it. Moving it
/// back re-reads that many records for the lanes already on it (they skip them); beyond this a
/// lane catches up on its own reader instead.
pub const JOIN_GAP: i64 = 10_000;

/// The shared reader's state for one source partition.
#[derive(Debug, Default)]
pub struct SharedCursor {
    /// (lane, slot of the partition in that lane) for every lane reading it here.
    sharing: Vec<(usize, usize)>,
    /// The offset the shared reader hands out next: where it was assigned, then one past the
    /// last record handed out. `None` while the partition is not assigned.
    next: Option<Offset>,
}

/// What joining the shared reader takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Join {
    /// (Re)assign the shared reader at this offset, then read there.
    Assign(Offset),
    /// Read there as it is (records before the lane's position are skipped).
    Share,
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
