//! Which copier thread of a source copies which partitions: a source's partitions are split
//! over `tasks.max` threads (by default one per core), each with its own readers and producers,
//! so that one thread's CPU no longer bounds a source. Read-once fan-out holds within each
//! thread: its partitions are read once for every target.
//!
//! With exactly once and instances sharing a source, a thread is also the copy unit the group
//! hands out whole (`crate::instances::units`): its transactional id moves with its partitions.
//!
//! Invariant: every partition belongs to exactly one thread of its source, the same in every
//! process and version for a given count; a topic's partitions go round the threads, so one
//! busy topic uses them all.

/// One copier thread of a source, of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The only thread of its source.
    #[cfg(test)]
    pub const ALONE: Shard = Shard { index: 0, count: 1 };

    /// Every thread of a source with `count` of them.
    pub fn all(count: usize) -> impl Iterator<Item = Shard> {
        let count = count.max(1);
        (0..count).map(move |index| Shard { index, count })
    }

    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.count <= 1 || thread_of(topic, partition, self.count) == self.index
    }

    /// The first thread of a source does what is done once per flow (heartbeats).
    pub fn is_first(&self) -> bool {
        self.index == 0
    }
}

/// Consecutive partitions of a topic on consecutive threads, from a start that depends on the
/// topic, so that many small topics spread too. CRC-32 of the name, not std's hasher (whose
/// output may change between Rust releases): processes of one group must agree.
pub fn thread_of(topic: &str, partition: i32, count: usize) -> usize {
    let count = count.max(1);
    let start = crc32fast::hash(topic.as_bytes()) as usize % count;
    (start + partition.max(0) as usize) % count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_exactly_one_thread_and_a_topic_uses_them_all() {
        for count in 1..=5 {
            let shards: Vec<Shard> = Shard::all(count).collect();
            for topic in ["LH.ORDERS", "LH.STOCK", "x"] {
                let mut per_thread = vec![0; count];
                for partition in 0..(3 * count as i32) {
                    let owners: Vec<&Shard> =
                        shards.iter().filter(|s| s.owns(topic, partition)).collect();
                    assert_eq!(owners.len(), 1, "{topic}[{partition}] of {count}");
                    per_thread[owners[0].index] += 1;
                }
                assert!(per_thread.iter().all(|&n| n == 3), "{per_thread:?}");
            }
        }
    }

    #[test]
    fn the_thread_of_a_partition_is_fixed_for_every_process_and_version() {
        // CRC-32("LH.ORDERS") = 0x1F40E4EF: a change here would move partitions between the
        // transactional ids of running instances.
        assert_eq!(crc32fast::hash(b"LH.ORDERS") % 12, 0x1F40_E4EF % 12);
        assert_eq!(thread_of("LH.ORDERS", 0, 12), (0x1F40_E4EF % 12) as usize);
        assert_eq!(
            thread_of("LH.ORDERS", 5, 12),
            ((0x1F40_E4EF % 12 + 5) % 12) as usize
        );
    }

    #[test]
    fn alone_owns_everything_and_is_first() {
        assert!(Shard::ALONE.owns("t", 7) && Shard::ALONE.is_first());
        assert_eq!(Shard::all(0).count(), 1, "at least one thread");
        assert!(!Shard { index: 1, count: 2 }.is_first());
    }
}
