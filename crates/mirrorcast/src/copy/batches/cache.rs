//! What the flows of one copier thread fetched from their source, shared: each flow runs on a
//! thread of its own (so a slow or unreachable target holds no other back), and a flow that
//! needs a partition at an offset another flow fetched takes the same buffer instead of
//! reading the source again. A fetch under way is waited for, not repeated.
//!
//! Invariant: a chunk stays while a flow copying its partition has not passed it, and while
//! the cache holds less than its byte bound; past the bound the oldest go first, and a flow
//! that needed one reads the source itself (read twice, never lost).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::kafka::record_batch::Batch;

/// A partition's fetched batches from `from` on, with which ones belong to aborted
/// transactions.
#[derive(Debug)]
pub struct Fetched {
    pub from: i64,
    pub batches: Vec<Batch>,
    pub aborted: Vec<bool>,
    pub high_watermark: i64,
    /// The fetch offset is not in the source's log: where to go on from instead.
    pub moved_to: Option<i64>,
    /// What was fetched cannot be copied (old format, bad checksum): the partition stops.
    pub refused: Option<String>,
}

impl Fetched {
    /// A fetch of `from` that brought no batch (the position moved, or what came is refused).
    pub fn nothing(from: i64, high_watermark: i64) -> Self {
        Fetched {
            from,
            batches: Vec::new(),
            aborted: Vec::new(),
            high_watermark,
            moved_to: None,
            refused: None,
        }
    }

    /// The offset after its last batch.
    pub fn to(&self) -> i64 {
        self.batches
            .last()
            .map_or(self.from, |b| b.last_offset() + 1)
    }

    fn bytes(&self) -> usize {
        self.batches.iter().map(Batch::len).sum()
    }

    /// Whether it holds what a reader at `offset` reads next.
    fn serves(&self, offset: i64) -> bool {
        self.from <= offset && offset < self.to()
    }
}

pub type Partition = (String, i32);

#[derive(Default)]
struct State {
    chunks: HashMap<Partition, VecDeque<Arc<Fetched>>>,
    /// Chunks in the order they came, for the byte bound.
    order: VecDeque<(Partition, i64)>,
    bytes: usize,
    in_flight: HashSet<Partition>,
    /// Each flow's next offset per partition.
    positions: HashMap<(usize, Partition), i64>,
}

/// The shared fetches of one copier thread's flows.
pub struct ReadCache {
    state: Mutex<State>,
    arrived: Condvar,
    max_bytes: usize,
}

/// What a flow gets for the partitions it wants.
#[derive(Default)]
pub struct Lookup {
    pub found: HashMap<Partition, Arc<Fetched>>,
    /// To fetch itself (marked under way: others wait for it).
    pub fetch: Vec<(Partition, i64)>,
    /// Of those, the partitions another flow has already read past (this one catches up).
    pub behind: HashSet<Partition>,
}

impl ReadCache {
    pub fn new(max_bytes: usize) -> Self {
        ReadCache {
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Flow `flow` wants these partitions at these offsets: what is there, after waiting up to
    /// `patience` for fetches under way, and what it must fetch itself.
    pub fn lookup(&self, flow: usize, wanted: &[(Partition, i64)], patience: Duration) -> Lookup {
        let mut state = self.lock();
        for (partition, offset) in wanted {
            state.positions.insert((flow, partition.clone()), *offset);
        }
        state = self.evict_passed(state);
        let pending = |state: &State| {
            wanted
                .iter()
                .any(|(p, o)| state.in_flight.contains(p) && find(state, p, *o).is_none())
        };
        if pending(&state) {
            state = self
                .arrived
                .wait_timeout_while(state, patience, |s| pending(s))
                .map_or_else(|e| e.into_inner().0, |(s, _)| s);
        }
        let mut lookup = Lookup::default();
        for (partition, offset) in wanted {
            if let Some(chunk) = find(&state, partition, *offset) {
                lookup.found.insert(partition.clone(), chunk);
            } else if !state.in_flight.contains(partition) {
                state.in_flight.insert(partition.clone());
                lookup.fetch.push((partition.clone(), *offset));
                let ahead = state
                    .positions
                    .iter()
                    .any(|((f, p), next)| *f != flow && p == partition && *next > *offset);
                if ahead {
                    lookup.behind.insert(partition.clone());
                }
            }
        }
        lookup
    }

    /// What a flow fetched for `asked` (partitions it fetched nothing for included): kept for
    /// the others, and those waiting are woken.
    pub fn fetched(&self, asked: &[(Partition, i64)], fetched: &HashMap<Partition, Arc<Fetched>>) {
        let mut state = self.lock();
        for (partition, _) in asked {
            state.in_flight.remove(partition);
            let Some(chunk) = fetched.get(partition) else {
                continue;
            };
            if chunk.batches.is_empty() || chunk.moved_to.is_some() || chunk.refused.is_some() {
                continue;
            }
            state.bytes += chunk.bytes();
            state.order.push_back((partition.clone(), chunk.from));
            state
                .chunks
                .entry(partition.clone())
                .or_default()
                .push_back(chunk.clone());
        }
        while state.bytes > self.max_bytes {
            let Some((partition, from)) = state.order.pop_front() else {
                break;
            };
            remove(&mut state, &partition, from);
        }
        drop(state);
        self.arrived.notify_all();
    }

    /// Drops what is cached of `partition` (its log changed under it).
    pub fn invalidate(&self, partition: &Partition) {
        let mut state = self.lock();
        let froms: Vec<i64> = state
            .chunks
            .get(partition)
            .map(|chunks| chunks.iter().map(|c| c.from).collect())
            .unwrap_or_default();
        for from in froms {
            remove(&mut state, partition, from);
        }
        state.order.retain(|(p, _)| p != partition);
    }

    /// Flow `flow` no longer copies `partition`.
    pub fn forget(&self, flow: usize, partition: &Partition) {
        self.lock().positions.remove(&(flow, partition.clone()));
    }

    /// Drops the chunks every flow copying their partition has passed.
    fn evict_passed<'a>(&self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let mut lowest: HashMap<Partition, i64> = HashMap::new();
        for ((_, partition), next) in &state.positions {
            lowest
                .entry(partition.clone())
                .and_modify(|o| *o = (*o).min(*next))
                .or_insert(*next);
        }
        let passed: Vec<(Partition, i64)> = state
            .chunks
            .iter()
            .flat_map(|(p, chunks)| {
                let low = lowest.get(p).copied().unwrap_or(i64::MAX);
                chunks
                    .iter()
                    .filter(move |c| c.to() <= low)
                    .map(move |c| (p.clone(), c.from))
            })
            .collect();
        for (partition, from) in passed {
            remove(&mut state, &partition, from);
            state
                .order
                .retain(|(p, f)| !(*p == partition && *f == from));
        }
        state
    }

    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.lock().bytes
    }
}

fn find(state: &State, partition: &Partition, offset: i64) -> Option<Arc<Fetched>> {
    state
        .chunks
        .get(partition)?
        .iter()
        .find(|c| c.serves(offset))
        .cloned()
}

fn remove(state: &mut State, partition: &Partition, from: i64) {
    if let Some(chunks) = state.chunks.get_mut(partition) {
        if let Some(i) = chunks.iter().position(|c| c.from == from) {
            if let Some(chunk) = chunks.remove(i) {
                state.bytes = state.bytes.saturating_sub(chunk.bytes());
            }
        }
        if chunks.is_empty() {
            state.chunks.remove(partition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::record_batch::{encode, Codec, RawRecord};
    use bytes::BytesMut;

    fn chunk(from: i64, n: i64) -> Arc<Fetched> {
        let records: Vec<_> = (from..from + n)
            .map(|o| RawRecord::new(o, 0, None, Some(&[b'v'; 100]), &[]))
            .collect();
        let mut bytes = BytesMut::from(&encode(&records, Codec::None, None).unwrap()[..]);
        bytes[..8].copy_from_slice(&from.to_be_bytes());
        Arc::new(Fetched {
            from,
            batches: vec![Batch::from_bytes(bytes.freeze()).unwrap()],
            aborted: vec![false],
            high_watermark: from + n,
            moved_to: None,
            refused: None,
        })
    }

    fn p() -> Partition {
        ("t".to_string(), 0)
    }

    #[test]
    fn a_flow_takes_what_another_fetched_and_waits_for_a_fetch_under_way() {
        let cache = ReadCache::new(1 << 20);
        let a = cache.lookup(0, &[(p(), 0)], Duration::ZERO);
        assert_eq!(a.fetch, vec![(p(), 0)]);
        // Under way: the other flow fetches nothing itself.
        let b = cache.lookup(1, &[(p(), 0)], Duration::ZERO);
        assert!(b.fetch.is_empty() && b.found.is_empty());
        cache.fetched(&a.fetch, &HashMap::from([(p(), chunk(0, 10))]));
        let b = cache.lookup(1, &[(p(), 4)], Duration::ZERO);
        assert_eq!(b.found[&p()].from, 0);
        // Both passed it: gone.
        cache.lookup(0, &[(p(), 10)], Duration::ZERO);
        let b = cache.lookup(1, &[(p(), 10)], Duration::ZERO);
        assert_eq!(b.fetch, vec![]);
        assert_eq!(cache.held_bytes(), 0);
    }

    #[test]
    fn past_its_bound_the_oldest_chunk_goes_and_the_slow_flow_reads_itself() {
        let one = chunk(0, 10).batches[0].len();
        let cache = ReadCache::new(one * 2);
        // The slow flow is at 0 (its own fetch came back empty-handed).
        let slow = cache.lookup(1, &[(p(), 0)], Duration::ZERO);
        cache.fetched(&slow.fetch, &HashMap::new());
        let mut from = 0;
        for _ in 0..3 {
            let a = cache.lookup(0, &[(p(), from)], Duration::ZERO);
            cache.fetched(&a.fetch, &HashMap::from([(p(), chunk(from, 10))]));
            from += 10;
        }
        assert!(cache.held_bytes() <= one * 2);
        let slow = cache.lookup(1, &[(p(), 0)], Duration::ZERO);
        assert_eq!(slow.fetch, vec![(p(), 0)]);
    }
}
