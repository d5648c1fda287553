//! The copy of one source: one loop that applies the control plane's commands, hands the
//! shared reader's records to every lane reading their partition there, lets lanes that fell
//! behind catch up on their own readers, and runs each lane's housekeeping.
//!
//! Invariant: the shared reader never waits on a lane that is catching up, and a lane that
//! keeps the others waiting too long leaves it ([`super::backpressure`]).

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tracing::{info, warn};

use super::io::{Reader, SourceRecord, Target};
use super::lane::Lane;
use super::readers::{Cursors, Readers, Reading};
use crate::health::Health;
use crate::ownership::Standing;
use crate::shutdown::Shutdown;

/// Records forwarded between two looks at deliveries, commands and progress.
const BATCH: usize = 1024;

/// The flows of one source, and their readers.
pub(crate) struct SourceCopy<T, R> {
    source: String,
    lanes: Vec<Lane<T>>,
    readers: Readers<R>,
    cursors: Cursors,
    /// Reading the shared reader.
    source_health: Health,
    /// In a group: whether this process may write now.
    standing: Standing,
    shutdown: Shutdown,
    /// Records handed out by the shared reader.
    read_shared: Counter,
    /// Reused per record: the lanes a shared record goes to.
    scratch: Vec<(usize, usize)>,
}

impl<T: Target, R: Reader> SourceCopy<T, R> {
    pub fn new(
        source: &str,
        lanes: Vec<Lane<T>>,
        readers: Readers<R>,
        read_shared: Counter,
        standing: Standing,
        shutdown: Shutdown,
    ) -> Self {
        SourceCopy {
            source: source.to_string(),
            lanes,
            readers,
            cursors: Cursors::default(),
            source_health: Health::default(),
            standing,
            shutdown,
            read_shared,
            scratch: Vec::new(),
        }
    }

    /// Copies until shutdown (or until the control plane is gone with nothing to copy), then
    /// flushes and stores the final progress.
    pub fn run(&mut self) {
        while !self.shutdown.is_triggered() {
            if !self.round() {
                break;
            }
        }
        for lane in &mut self.lanes {
            let mut io = Reading {
                readers: &self.readers,
                cursors: &mut self.cursors,
            };
            lane.stop(&mut io);
            lane.publish(&self.readers, &self.cursors, true);
        }
    }

    /// One round of the loop; false when there is nothing left to do.
    pub fn round(&mut self) -> bool {
        let mut io = Reading {
            readers: &self.readers,
            cursors: &mut self.cursors,
        };
        for lane in &mut self.lanes {
            lane.apply_commands(&mut io);
        }
        if !self.standing.may_write() {
            // A member of a group without its lease (not confirmed since a pause): nothing is
            // read, produced or stored until the group confirms it or takes its partitions.
            self.shutdown.sleep(Duration::from_millis(20));
            return true;
        }
        if self.lanes.iter().all(Lane::is_idle) {
            // Nothing to copy yet. Heartbeats go on, once the internal topics exist.
            for lane in &mut self.lanes {
                lane.housekeeping(&mut io);
            }
            if self.lanes.iter().all(|l| l.inbox.disconnected()) {
                return false;
            }
            self.shutdown.sleep(Duration::from_millis(100));
            return true;
        }
        for lane in &mut self.lanes {
            lane.resume_due_partitions(&mut io);
        }
        let catching_up = self.lanes.iter().any(Lane::can_catch_up);
        // With lanes catching up, the shared reader must not make them wait.
        let wait = if catching_up {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        };
        let shared = self.forward_shared_batch(wait);
        let mut caught_up = 0;
        for index in 0..self.lanes.len() {
            caught_up += self.forward_catch_up_batch(index);
        }
        let mut io = Reading {
            readers: &self.readers,
            cursors: &mut self.cursors,
        };
        // Exactly once: a lane that commits holds the shared reader until it has; when one is
        // due, every lane commits now, so that their commits wait together, not one by one.
        if self.lanes.iter().any(Lane::transaction_due) {
            for lane in &mut self.lanes {
                lane.commit_now(&mut io);
            }
        }
        for lane in &mut self.lanes {
            lane.housekeeping(&mut io);
        }
        if catching_up && shared + caught_up == 0 {
            // Every reader is empty for now: do not spin.
            self.shutdown.sleep(Duration::from_millis(5));
        }
        true
    }

    /// Forwards up to a batch of records from the shared reader; returns how many it read.
    fn forward_shared_batch(&mut self, wait: Duration) -> usize {
        for lane in &mut self.lanes {
            lane.house.reporter.tick(lane.ctx.clock.now());
        }
        for read in 0..BATCH {
            // Before reading, never between reading and forwarding (that would be a gap); every
            // 64 records, not each (a clock read): a process frozen mid-batch sends at most
            // that many more when it goes on, duplicates its successor copies anyway.
            if read % 64 == 0 && !self.standing.may_write() {
                return read;
            }
            let timeout = if read == 0 { wait } else { Duration::ZERO };
            match self.readers.shared.poll(timeout) {
                None => return read,
                Some(Ok(message)) => {
                    if self.source_health.recovered() {
                        info!(source = %self.source, "reading the source works again");
                    }
                    self.read_shared.inc();
                    forward_shared(
                        &message,
                        &mut self.lanes,
                        Reading {
                            readers: &self.readers,
                            cursors: &mut self.cursors,
                        },
                        &mut self.scratch,
                    );
                }
                Some(Err(e)) => {
                    // librdkafka reconnects by itself: say so once, keep going.
                    if self.source_health.failed() {
                        warn!(source = %self.source, "reading the source: {e}; retrying");
                    }
                    for lane in &mut self.lanes {
                        lane.signals.source.failed();
                    }
                    return read;
                }
            }
            if self.shutdown.is_triggered() {
                return read + 1;
            }
        }
        BATCH
    }

    /// Forwards up to a batch from lane `index`'s own reader while its target has room;
    /// returns how many records it read.
    fn forward_catch_up_batch(&mut self, index: usize) -> usize {
        let lane = &mut self.lanes[index];
        if !lane.can_catch_up() {
            return 0;
        }
        let reader = &self.readers.own[index];
        lane.house.reporter.tick(lane.ctx.clock.now());
        for read in 0..BATCH {
            if read % 64 == 0 && (!lane.has_room() || !self.standing.may_write()) {
                return read;
            }
            match reader.poll(Duration::ZERO) {
                None => return read,
                Some(Ok(message)) => {
                    lane.house.read_own.inc();
                    let mut io = Reading {
                        readers: &self.readers,
                        cursors: &mut self.cursors,
                    };
                    lane.forward_own(&message, &mut io);
                }
                Some(Err(e)) => {
                    if lane.signals.source.failed() {
                        warn!(flow = %lane.ctx.flow_name, "reading the source: {e}; retrying");
                    }
                    return read;
                }
            }
            if lane.book.catching_up() == 0 {
                return read + 1;
            }
        }
        BATCH
    }

    #[cfg(test)]
    pub fn lanes(&self) -> &[Lane<T>] {
        &self.lanes
    }

    #[cfg(test)]
    pub fn readers(&self) -> &Readers<R> {
        &self.readers
    }

    /// Every lane publishes its offsets, lag and state now.
    #[cfg(test)]
    pub fn publish_now(&mut self) {
        for lane in &mut self.lanes {
            lane.publish(&self.readers, &self.cursors, false);
        }
    }
}

/// Sends a record of the shared reader to every lane reading its partition there. (A free
/// function: the record borrows the shared reader while the lanes and cursors change.)
fn forward_shared<T: Target, R: Reader>(
    message: &impl SourceRecord,
    lanes: &mut [Lane<T>],
    mut io: Reading<'_, R>,
    scratch: &mut Vec<(usize, usize)>,
) {
    let Some(cursor) = io.cursors.find(message.topic(), message.partition()) else {
        return;
    };
    let shared = io.cursors.get_mut(cursor);
    let expected = shared.position();
    shared.handed(message.offset());
    scratch.clear();
    scratch.extend_from_slice(shared.sharing());
    if let Some(expected) = expected.filter(|&e| e != message.offset()) {
        let low = io
            .readers
            .shared
            .low_watermark(message.topic(), message.partition());
        for &(index, slot) in scratch.iter() {
            lanes[index].source_moved(slot, expected, message.offset(), low, &io.readers.shared);
        }
    }
    // Any lane of the source counts: one still starting must not wait for a slow one.
    let keeping_up = lanes.iter().filter(|l| !l.flight.queue_full()).count();
    for &(index, slot) in scratch.iter() {
        let lane = &mut lanes[index];
        let others_keep_up = keeping_up > usize::from(!lane.flight.queue_full());
        lane.forward_shared(slot, message, others_keep_up, &mut io);
    }
}
