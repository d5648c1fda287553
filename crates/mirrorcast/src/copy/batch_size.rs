//! How large the target producer's batches may be: librdkafka has one `batch.size` per
//! producer and never splits a batch the broker refuses as too large (Java's producer does), so
//! a lane's batches must fit the smallest `max.message.bytes` of the remote topics it writes.
//! Pure: the lane applies a change once nothing is in flight.
//!
//! Invariant: the size asked for is never above the user's `batch.size` (librdkafka's default
//! when unset) nor above any known limit of the lane's remote topics.

/// A lane's batch size: the user's ceiling, and a change waiting for the producer to be idle.
#[derive(Debug, Default)]
pub(crate) struct BatchSize {
    /// The producer's `batch.size` as configured (learnt from the first producer).
    ceiling: Option<u32>,
    /// A size to start a producer with once nothing is in flight.
    pending: Option<u32>,
    /// The largest size the target took after it refused a larger batch (a limit not known,
    /// or lowered since): kept, so that a refresh does not bring the refused size back.
    learnt: Option<u32>,
}

/// Why the batches are as small as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sized {
    pub bytes: u32,
    /// The remote topic whose limit sets it (`None`: the configured `batch.size`).
    pub by: Option<String>,
}

impl BatchSize {
    /// The size the lane's batches must have, given the producer's current size (its first
    /// one is the configured ceiling) and the limits of the remote topics it writes; a change
    /// is kept pending and returned.
    pub fn follow<'a>(
        &mut self,
        current: u32,
        limits: impl Iterator<Item = (&'a str, u32)>,
    ) -> Option<Sized> {
        let configured = *self.ceiling.get_or_insert(current);
        let ceiling = self
            .learnt
            .map_or(configured, |learnt| learnt.min(configured));
        let smallest = limits.min_by_key(|(_, limit)| *limit);
        let wanted = match smallest {
            Some((topic, limit)) if limit < ceiling => Sized {
                bytes: limit,
                by: Some(topic.to_string()),
            },
            _ => Sized {
                bytes: ceiling,
                by: None,
            },
        };
        if wanted.bytes == current {
            self.pending = None;
            return None;
        }
        if self.pending == Some(wanted.bytes) {
            return None;
        }
        self.pending = Some(wanted.bytes);
        Some(wanted)
    }

    /// A batch was refused as too large though it fit every known limit (a limit not known, or
    /// lowered since): halve the batches, down to the largest record that went alone.
    pub fn shrink(&mut self, current: u32, largest_record: u32) -> Option<u32> {
        let smaller = (current / 2).max(largest_record).max(1);
        if smaller >= current || self.pending.is_some_and(|p| p <= smaller) {
            return None;
        }
        self.pending = Some(smaller);
        self.learnt = Some(smaller);
        Some(smaller)
    }

    /// The size to start a producer with, if a change waits.
    pub fn pending(&self) -> Option<u32> {
        self.pending
    }

    /// The producer was started with the pending size.
    pub fn applied(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_the_smallest_limit_below_the_configured_size() {
        let mut size = BatchSize::default();
        let limits = [("a", 2_000_000), ("b", 100_000), ("c", 300_000)];
        let sized = size.follow(1_000_000, limits.into_iter()).unwrap();
        assert_eq!(
            sized,
            Sized {
                bytes: 100_000,
                by: Some("b".into())
            }
        );
        assert_eq!(size.pending(), Some(100_000));
        assert_eq!(
            size.follow(1_000_000, limits.into_iter()),
            None,
            "said once"
        );
        size.applied();
        assert_eq!(size.follow(100_000, limits.into_iter()), None, "applied");
    }

    #[test]
    fn a_limit_raised_or_gone_brings_the_configured_size_back_never_more() {
        let mut size = BatchSize::default();
        size.follow(1_000_000, [("b", 100_000)].into_iter());
        size.applied();
        let sized = size
            .follow(100_000, [("b", 5_000_000)].into_iter())
            .unwrap();
        assert_eq!(
            sized,
            Sized {
                bytes: 1_000_000,
                by: None
            }
        );
        size.applied();
        assert_eq!(size.follow(1_000_000, std::iter::empty()), None);
    }

    /// A size learnt from a refusal stays: the limits a refresh brings (none known here) do
    /// not raise it again.
    #[test]
    fn a_learnt_size_survives_the_next_refresh() {
        let mut size = BatchSize::default();
        size.follow(1_000_000, std::iter::empty());
        assert_eq!(size.shrink(1_000_000, 1_500), Some(500_000));
        assert_eq!(
            size.follow(1_000_000, std::iter::empty()),
            None,
            "still pending"
        );
        assert_eq!(size.pending(), Some(500_000));
        size.applied();
        assert_eq!(size.follow(500_000, std::iter::empty()), None);
        let sized = size.follow(500_000, [("b", 100_000)].into_iter()).unwrap();
        assert_eq!(sized.bytes, 100_000, "a known smaller limit still wins");
    }

    #[test]
    fn a_refused_batch_halves_the_size_down_to_its_largest_record() {
        let mut size = BatchSize::default();
        size.follow(1_000_000, std::iter::empty());
        assert_eq!(size.shrink(1_000_000, 1_500), Some(500_000));
        assert_eq!(size.shrink(1_000_000, 1_500), None, "already pending");
        size.applied();
        assert_eq!(size.shrink(4_000, 3_000), Some(3_000));
        size.applied();
        assert_eq!(size.shrink(3_000, 3_000), None, "no smaller than a record");
    }
}
