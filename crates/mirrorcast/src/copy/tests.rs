//! The copier's transitions, driven through fakes ([`super::fakes`]): sharing one reader,
//! leaving and rejoining it, rewinding after a failed delivery, replacing a failed producer,
//! skipping records below a lane's position, and a full target queue. No broker.

use std::rc::Rc;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use super::backpressure::Backpressure;
use super::fakes::{FakeReader, FakeSource, FakeTarget};
use super::lane::{Lane, LaneSetup};
use super::partitions::Mode;
use super::readers::Readers;
use super::report::FlowReporter;
use crate::ownership::shard::Shard;
use super::source_copy::SourceCopy;
use super::transaction::Transactions;
use crate::config::properties::RawProperties;
use crate::config::{Config, ErrorsConfig, FlowConfig};
use crate::ownership::Standing;
use crate::observe::Observability;
use crate::plan::{Command, Route};
use crate::progress::Progress;
use crate::shutdown::Shutdown;

const TARGETS: [&str; 2] = ["na", "sa"];

struct Harness {
    source: Rc<FakeSource>,
    targets: Vec<FakeTarget>,
    commands: Vec<Sender<Command>>,
    copy: SourceCopy<FakeTarget, FakeReader>,
}

/// A source `eu` copied to `targets` lanes (`na`, then `sa`), each target's producer holding at
/// most `capacity` records.
fn harness(targets: usize, capacity: usize) -> Harness {
    harness_with(
        targets,
        capacity,
        Duration::from_secs(120),
        ErrorsConfig::StopPartition,
    )
}

/// [`harness`] whose lanes count the target as failing after `delivery_timeout` of silence
/// and deal with refused records by `errors`.
fn harness_with(
    targets: usize,
    capacity: usize,
    delivery_timeout: Duration,
    errors: ErrorsConfig,
) -> Harness {
    harness_tuned(
        targets,
        capacity,
        delivery_timeout,
        errors,
        &|_| {},
        Shard::ALONE,
    )
}

/// [`harness_with`], each lane's flow changed by `tune` first, as copier thread `shard`.
fn harness_tuned(
    targets: usize,
    capacity: usize,
    delivery_timeout: Duration,
    errors: ErrorsConfig,
    tune: &dyn Fn(&mut FlowConfig),
    shard: Shard,
) -> Harness {
    harness_of(
        targets,
        capacity,
        delivery_timeout,
        errors,
        tune,
        shard,
        Standing::alone(),
    )
}

/// [`harness_tuned`] for a process whose `standing` says when it may write.
fn harness_of(
    targets: usize,
    capacity: usize,
    delivery_timeout: Duration,
    errors: ErrorsConfig,
    tune: &dyn Fn(&mut FlowConfig),
    shard: Shard,
    standing: Standing,
) -> Harness {
    let text = "clusters = eu, na, sa\neu.bootstrap.servers = h:1\nna.bootstrap.servers = h:2\n\
                sa.bootstrap.servers = h:3\neu->na.enabled = true\neu->sa.enabled = true\n\
                replication.policy.class = IdentityReplicationPolicy\n";
    let raw = RawProperties::parse(std::path::Path::new("t"), text.as_bytes()).unwrap();
    let flows = Config::resolve(&raw).unwrap().flows;
    let source = Rc::new(FakeSource::default());
    let observe = Observability::new();
    let shutdown = Shutdown::new();
    let (mut lanes, mut fakes, mut senders, mut own) = (vec![], vec![], vec![], vec![]);
    for (index, name) in TARGETS.iter().take(targets).enumerate() {
        let mut flow = flows.iter().find(|f| f.target == *name).unwrap().clone();
        flow.progress.interval = Duration::from_millis(20);
        flow.heartbeats = None;
        flow.errors = errors.clone();
        tune(&mut flow);
        let (sender, commands) = mpsc::channel();
        let target = FakeTarget::new(capacity);
        target.state().transaction.enabled = flow.exactly_once.is_some();
        let transactions = flow.exactly_once.as_ref().map(|e| {
            let transactions = Transactions::new(e.commit_interval);
            if standing.is_grouped() {
                transactions.standing_by()
            } else {
                transactions
            }
        });
        lanes.push(Lane::new(LaneSetup {
            index,
            shard,
            flow,
            commands,
            target: target.clone(),
            syncs: None,
            reporter: FlowReporter::new(observe.clone(), "eu", name),
            read_own: Default::default(),
            queue: Backpressure::new(1 << 40, capacity as u64),
            delivery_timeout,
            standing: standing.clone(),
            transactions,
            shutdown: shutdown.clone(),
        }));
        fakes.push(target);
        senders.push(sender);
        own.push(FakeReader::new(&source));
    }
    let readers = Readers {
        shared: FakeReader::new(&source),
        own,
    };
    Harness {
        source,
        targets: fakes,
        commands: senders,
        copy: SourceCopy::new("eu", lanes, readers, Default::default(), standing, shutdown),
    }
}

impl Harness {
    /// Lane `lane` resumes from `stored` and copies topic `t` with `partitions` partitions.
    fn start(&self, lane: usize, stored: &[(i32, i64)], partitions: i32) {
        let progress: Progress = stored.iter().map(|&(p, o)| (("t".into(), p), o)).collect();
        self.commands[lane].send(Command::Resume(progress)).unwrap();
        let route = Route {
            source_topic: "t".into(),
            remote_topic: "t".into(),
            partitions,
        };
        self.commands[lane]
            .send(Command::Routes(vec![route]))
            .unwrap();
    }

    /// Runs rounds of the copy loop until `done`, for at most 20 s.
    fn run_until(&mut self, what: &str, done: impl Fn(&Harness) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            assert!(self.copy.round(), "the copy loop stopped");
        }
    }

    fn lane(&self, index: usize) -> &Lane<FakeTarget> {
        &self.copy.lanes()[index]
    }

    fn mode(&self, lane: usize, slot: usize) -> Option<Mode> {
        Some(self.lane(lane).partitions.get(slot)?.mode)
    }

    fn has(&self, target: usize, partition: i32, count: usize) -> bool {
        self.targets[target].log("t", partition).len() >= count
    }
}

/// `t/<partition>/<offset>` for the offsets of `range`, as the target must hold them.
fn expected(partition: i32, range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|o| format!("t/{partition}/{o}")).collect()
}

/// Two copier threads of one source: each copies and stores the progress of its own
/// partitions only, to every target, and together they copy every partition once.
#[test]
fn copier_threads_of_a_source_split_its_partitions_between_them() {
    let mut copied = Vec::new();
    for shard in Shard::all(2) {
        let mut h = harness_tuned(
            2,
            1000,
            Duration::from_secs(120),
            ErrorsConfig::StopPartition,
            &|_| {},
            shard,
        );
        for partition in 0..4 {
            h.source.produce("t", partition, 10);
        }
        h.start(0, &[], 4);
        h.start(1, &[], 4);
        let owned: Vec<i32> = (0..4).filter(|&p| shard.owns("t", p)).collect();
        assert_eq!(owned.len(), 2, "{shard:?}");
        h.run_until("its partitions on both targets", |h| {
            owned.iter().all(|&p| h.has(0, p, 10) && h.has(1, p, 10))
        });
        for target in 0..2 {
            for partition in 0..4 {
                let log = h.targets[target].log("t", partition);
                if owned.contains(&partition) {
                    assert_eq!(log, expected(partition, 0..10));
                } else {
                    assert!(log.is_empty(), "{shard:?} copied {partition}");
                }
            }
        }
        copied.extend(owned);
    }
    copied.sort();
    assert_eq!(copied, [0, 1, 2, 3]);
}

#[test]
fn records_are_copied_in_order_and_only_acknowledged_offsets_are_stored() {
    let mut h = harness(1, 1000);
    h.source.produce("t", 0, 100);
    h.source.produce("t", 1, 50);
    h.start(0, &[], 2);
    h.run_until("the copy and its progress", |h| {
        let stored = |slot, offset| h.targets[0].0.borrow().progress.contains(&(slot, offset));
        h.has(0, 0, 100) && stored(0, Some(99)) && stored(1, Some(49))
    });
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..100));
    assert_eq!(h.targets[0].log("t", 1), expected(1, 0..50));
    for (slot, offset) in h.targets[0].state().progress.clone() {
        let end = [100, 50][slot];
        assert!(
            offset.is_some_and(|o| o < end),
            "stored {offset:?} of {slot}"
        );
    }
    assert!(h.copy.readers().own[0].calls.borrow().is_empty());
}

/// `auto.offset.reset = latest`: a partition without progress is copied from its end at the
/// start, and that start is stored at once (a restart does not move it); a partition with
/// progress resumes after it as always.
#[test]
fn with_auto_offset_reset_latest_partitions_without_progress_start_at_their_end() {
    let mut h = harness_tuned(
        1,
        1000,
        Duration::from_secs(120),
        ErrorsConfig::StopPartition,
        &|flow| flow.start_at_end = true,
        Shard::ALONE,
    );
    h.source.produce("t", 0, 40);
    h.source.produce("t", 1, 40);
    h.start(0, &[(1, 9)], 2);
    h.run_until("the start at the end stored", |h| {
        h.targets[0].0.borrow().progress.contains(&(0, Some(39)))
    });
    assert!(
        h.targets[0].log("t", 0).is_empty(),
        "nothing before the end"
    );
    h.source.produce("t", 0, 5);
    h.run_until("the new records", |h| h.has(0, 0, 5) && h.has(0, 1, 30));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 40..45));
    assert_eq!(
        h.targets[0].log("t", 1),
        expected(1, 10..40),
        "progress wins"
    );
}

#[test]
fn targets_that_keep_up_read_each_record_once_through_the_shared_reader() {
    let mut h = harness(2, 1000);
    h.source.produce("t", 0, 200);
    h.start(0, &[], 1);
    h.start(1, &[], 1);
    h.run_until("both copies", |h| h.has(0, 0, 200) && h.has(1, 0, 200));
    for target in &h.targets {
        assert_eq!(target.log("t", 0), expected(0, 0..200));
    }
    let readers = h.copy.readers();
    assert_eq!(*readers.shared.handed_out.borrow(), 200);
    assert!(readers.own.iter().all(|r| *r.handed_out.borrow() == 0));
}

#[test]
fn a_lane_below_the_shared_position_skips_what_it_copied_before() {
    let mut h = harness(2, 1000);
    h.source.produce("t", 0, 10);
    // na stored offset 4; sa starts from the beginning, so the shared reader goes back to 0.
    h.start(0, &[(0, 4)], 1);
    h.start(1, &[], 1);
    h.run_until("both copies", |h| h.has(0, 0, 5) && h.has(1, 0, 10));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 5..10));
    assert_eq!(h.targets[1].log("t", 0), expected(0, 0..10));
    assert_eq!(*h.copy.readers().shared.handed_out.borrow(), 10);
}

#[test]
fn a_slow_target_leaves_the_shared_reader_then_catches_up_and_rejoins() {
    let mut h = harness(2, 10);
    h.targets[1].state().acknowledging = false;
    h.source.produce("t", 0, 100);
    h.start(0, &[], 1);
    h.start(1, &[], 1);
    h.run_until("sa to leave the shared reader", |h| {
        h.mode(1, 0) == Some(Mode::CatchingUp)
    });
    // The lane that keeps up was not held back.
    h.run_until("na's copy", |h| h.has(0, 0, 100));
    assert!(!h.has(1, 0, 1), "sa's target acknowledged nothing yet");

    h.targets[1].state().acknowledging = true;
    h.run_until("sa's copy and its return", |h| {
        h.has(1, 0, 100) && h.mode(1, 0) == Some(Mode::Shared)
    });
    h.source.produce("t", 0, 50);
    h.run_until("both copies", |h| h.has(0, 0, 150) && h.has(1, 0, 150));
    for target in &h.targets {
        assert_eq!(target.log("t", 0), expected(0, 0..150));
    }
    let readers = h.copy.readers();
    assert_eq!(
        *readers.shared.handed_out.borrow(),
        150,
        "read once while shared"
    );
    assert!(
        *readers.own[1].handed_out.borrow() > 0,
        "sa caught up on its own reader"
    );
    assert_eq!(readers.own[1].position("t", 0), None, "own reader released");
}

/// One lane whose target acknowledged t[0]'s first ten records and holds the next ten.
fn ten_acknowledged_and_ten_in_flight() -> Harness {
    let mut h = harness(1, 1000);
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    h.run_until("the first records", |h| h.has(0, 0, 10));
    h.targets[0].state().acknowledging = false;
    h.source.produce("t", 0, 10);
    h.run_until("ten records in flight", |h| {
        h.targets[0].0.borrow().in_flight_len() == 10
    });
    h
}

#[test]
fn a_failed_delivery_rewinds_once_to_right_after_the_last_acknowledged_record() {
    let mut h = ten_acknowledged_and_ten_in_flight();
    {
        let mut target = h.targets[0].state();
        target.fail_next = vec![("t".into(), 0)];
        target.acknowledging = true;
    }
    h.run_until("the copy after the rewind", |h| h.has(0, 0, 20));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
    // Ten failed reports, one rewind: the other nine were of the old epoch.
    assert_eq!(h.lane(0).partitions[0].ledger.epoch(), 1);
    let calls = h.copy.readers().shared.calls.borrow().clone();
    assert_eq!(calls, ["assign t[0]@0", "unassign t[0]", "assign t[0]@10"]);
}

#[test]
fn a_rewind_waits_until_the_failed_attempt_has_drained_and_resends_each_record_once() {
    let mut h = ten_acknowledged_and_ten_in_flight();
    {
        let mut target = h.targets[0].state();
        // 10 fails; 11..19 stay queued and will still be delivered.
        target.fail_head = vec![("t".into(), 0)];
        target.acknowledging = true;
    }
    h.run_until("the rewind and its backoff", |h| {
        h.lane(0).partitions[0].ledger.epoch() == 1
            && matches!(h.mode(0, 0), Some(Mode::Waiting(at)) if at <= Instant::now())
    });
    for _ in 0..50 {
        assert!(h.copy.round());
    }
    assert_eq!(
        h.targets[0].state().in_flight_len(),
        9,
        "nothing is sent again while the failed attempt's records are still in flight"
    );
    assert!(matches!(h.mode(0, 0), Some(Mode::Waiting(_))));

    h.targets[0].state().held.clear();
    h.run_until("the copy again from 10", |h| h.has(0, 0, 29));
    let mut once_late_then_again = expected(0, 0..10);
    once_late_then_again.extend(expected(0, 11..20));
    once_late_then_again.extend(expected(0, 10..20));
    assert_eq!(h.targets[0].log("t", 0), once_late_then_again);
    assert_eq!(h.lane(0).partitions[0].ledger.epoch(), 1, "one rewind");
}

#[test]
fn a_target_that_stops_answering_is_reported_and_nothing_is_sent_twice() {
    let mut h = harness_with(
        1,
        1000,
        Duration::from_millis(1),
        ErrorsConfig::StopPartition,
    );
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    h.run_until("the first records", |h| h.has(0, 0, 10));
    h.targets[0].state().acknowledging = false;
    h.source.produce("t", 0, 10);
    h.run_until("the target counted as failing", |h| {
        h.lane(0).stall.is_failing()
    });
    h.targets[0].state().acknowledging = true;
    h.run_until("the copy and the recovery", |h| {
        h.has(0, 0, 20) && !h.lane(0).stall.is_failing()
    });
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
    assert_eq!(h.lane(0).partitions[0].ledger.epoch(), 0, "no rewind");
}

#[test]
fn a_fatal_producer_error_replaces_the_producer_and_copies_the_unacknowledged_again() {
    let mut h = ten_acknowledged_and_ten_in_flight();
    h.targets[0].state().fatal = true;
    h.run_until("a new producer", |h| h.targets[0].state().replaced == 1);
    h.targets[0].state().acknowledging = true;
    h.run_until("the copy", |h| h.has(0, 0, 20));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
    assert_eq!(h.targets[0].state().replaced, 1);
}

#[test]
fn a_full_queue_while_catching_up_reads_the_refused_record_again() {
    let mut h = harness(2, 8);
    let behind = super::fanout::JOIN_GAP + 50;
    h.source.produce("t", 0, behind as usize);
    // na is far ahead, so sa catches up on its own reader, into a queue of eight.
    h.start(0, &[(0, behind - 10)], 1);
    h.start(1, &[], 1);
    h.run_until("sa's copy", |h| h.has(1, 0, behind as usize));
    assert_eq!(h.targets[1].log("t", 0), expected(0, 0..behind));
    assert_eq!(h.targets[0].log("t", 0), expected(0, behind - 9..behind));
    let calls = h.copy.readers().own[1].calls.borrow().clone();
    let assigned: Vec<i64> = calls
        .iter()
        .filter_map(|c| c.strip_prefix("assign t[0]@")?.parse().ok())
        .collect();
    assert_eq!(
        assigned[..2],
        [0, 8],
        "the ninth record is read again: {calls:?}"
    );
    assert!(assigned.windows(2).all(|w| w[0] <= w[1]), "{calls:?}");
}

#[test]
fn a_backfilling_target_never_holds_an_up_to_date_one_back() {
    let mut h = harness(2, 1000);
    let backlog = super::fanout::JOIN_GAP * 3;
    h.source.produce("t", 0, backlog as usize);
    // na is new (no progress) and its target slow; sa is up to date but for 50 records. na
    // joins the shared reader first.
    h.targets[0].state().acknowledging = false;
    h.start(0, &[], 1);
    h.start(1, &[(0, backlog - 51)], 1);
    h.run_until("sa's 50 records", |h| h.has(1, 0, 50));
    assert_eq!(h.targets[1].log("t", 0), expected(0, backlog - 50..backlog));
    let shared_reads = *h.copy.readers().shared.handed_out.borrow();
    assert_eq!(shared_reads, 50, "the shared reader followed the backfill");
    assert_eq!(h.mode(0, 0), Some(Mode::CatchingUp));

    h.targets[0].state().acknowledging = true;
    h.run_until("na's backfill and its return", |h| {
        h.has(0, 0, backlog as usize) && h.mode(0, 0) == Some(Mode::Shared)
    });
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..backlog));
    assert_eq!(h.targets[1].log("t", 0), expected(0, backlog - 50..backlog));
}

/// `t/0/<offset>#1` for the offsets of `range`: records of the topic's second life.
fn expected_recreated(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|o| format!("t/0/{o}#1")).collect()
}

#[test]
fn a_topic_created_again_while_copying_is_copied_from_its_new_start_not_skipped() {
    let mut h = harness(2, 1000);
    h.source.produce("t", 0, 100);
    h.start(0, &[], 1);
    h.start(1, &[], 1);
    h.run_until("the first life", |h| h.has(0, 0, 100) && h.has(1, 0, 100));
    h.source.recreate("t", 0);
    h.source.produce("t", 0, 50);
    h.run_until("the second life", |h| h.has(0, 0, 150) && h.has(1, 0, 150));
    for (lane, target) in h.targets.iter().enumerate() {
        let mut want = expected(0, 0..100);
        want.extend(expected_recreated(0..50));
        assert_eq!(target.log("t", 0), want);
        assert_eq!(h.lane(lane).partitions[0].meters.resets.get(), 1);
    }
    h.run_until("progress of the second life", |h| {
        h.targets[0].0.borrow().progress.last() == Some(&(0, Some(49)))
    });
}

#[test]
fn a_topic_created_again_while_stopped_is_copied_from_its_new_start() {
    let mut h = harness(1, 1000);
    h.source.produce("t", 0, 100);
    h.source.recreate("t", 0);
    h.source.produce("t", 0, 50);
    // Progress of the first life says 99: the reader is out of range and resets to 0.
    h.start(0, &[(0, 99)], 1);
    h.run_until("the second life", |h| h.has(0, 0, 50));
    assert_eq!(h.targets[0].log("t", 0), expected_recreated(0..50));
    assert_eq!(h.lane(0).partitions[0].meters.resets.get(), 1);
}

#[test]
fn records_deleted_at_the_source_before_they_were_copied_are_counted_as_lost() {
    let mut h = harness(1, 1000);
    h.source.produce("t", 0, 100);
    h.source.delete_before("t", 0, 40);
    h.start(0, &[(0, 9)], 1);
    h.run_until("what is left", |h| h.has(0, 0, 60));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 40..100));
    let meters = &h.lane(0).partitions[0].meters;
    assert_eq!(meters.lost_at_source.get(), 30, "offsets 10..40");
    assert_eq!(meters.resets.get(), 0);
}

#[test]
fn a_failed_reassignment_of_the_shared_reader_leaves_no_lane_without_records() {
    let mut h = harness(2, 1000);
    h.source.produce("t", 0, 20);
    h.start(0, &[], 1);
    h.run_until("na's first records", |h| h.has(0, 0, 20));
    // sa joins a little behind: the shared reader is moved back, and from then on it refuses
    // every assignment.
    *h.copy.readers().shared.failing_assigns.borrow_mut() = u32::MAX;
    h.start(1, &[(0, 9)], 1);
    h.source.produce("t", 0, 30);
    h.run_until("both copies", |h| h.has(0, 0, 50) && h.has(1, 0, 40));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..50));
    assert_eq!(h.targets[1].log("t", 0), expected(0, 10..50));
}

/// `t[0]` holds ten records, the sixth (offset 5) `poison`; `t[1]` ten ordinary ones.
fn one_poison_record(errors: ErrorsConfig, poison: &[u8]) -> Harness {
    let h = harness_with(1, 1000, Duration::from_secs(120), errors);
    h.source.produce("t", 0, 5);
    h.source.produce_payload("t", 0, poison);
    for offset in 6..10 {
        h.source
            .produce_payload("t", 0, format!("t/0/{offset}").as_bytes());
    }
    h.source.produce("t", 1, 10);
    h
}

fn stored(h: &Harness, slot: usize) -> Option<i64> {
    h.targets[0]
        .state()
        .progress
        .iter()
        .rev()
        .find(|(s, _)| *s == slot)
        .and_then(|(_, offset)| *offset)
}

#[test]
fn a_record_too_large_for_the_target_stops_only_its_partition_there() {
    let mut h = one_poison_record(ErrorsConfig::StopPartition, &[b'x'; 500]);
    h.targets[0].state().max_batch_bytes = Some(100);
    h.start(0, &[], 2);
    h.run_until("t[0] stopped, t[1] copied", |h| {
        h.mode(0, 0) == Some(Mode::Stopped) && h.has(0, 1, 10) && stored(h, 0) == Some(4)
    });
    // The batch with the large record failed whole; its other records went again, the large one
    // alone, which identified it.
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..5));
    let refusal = h.lane(0).partitions[0].refusal.clone().unwrap();
    assert_eq!(refusal.offset, 5);
    assert!(refusal.reason.contains("too large"), "{}", refusal.reason);
    assert_eq!(h.lane(0).partitions[0].meters.refused.get(), 1);
    assert_eq!(h.lane(0).partitions[0].meters.stopped.get(), 1);
    // The other partition keeps copying.
    h.source.produce("t", 1, 5);
    h.run_until("more of t[1]", |h| h.has(0, 1, 15));
    assert_eq!(h.targets[0].log("t", 1), expected(1, 0..15));
    assert_eq!(h.targets[0].log("t", 0).len(), 5, "t[0] stays stopped");
}

#[test]
fn a_batch_too_large_as_a_whole_is_not_blamed_on_an_innocent_record() {
    let mut h = one_poison_record(ErrorsConfig::StopPartition, b"t/0/5");
    // Ten records of 5 bytes make a batch over the limit, but none is over it alone: each
    // probe succeeds, nothing is refused, everything arrives in order.
    h.targets[0].state().max_batch_bytes = Some(30);
    h.start(0, &[], 2);
    h.run_until("the copy", |h| h.has(0, 0, 10) && h.has(0, 1, 10));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..10));
    assert_eq!(h.lane(0).partitions[0].meters.refused.get(), 0);
    assert_eq!(h.targets[0].log("t", 1), expected(1, 0..10));
    assert_eq!(h.lane(0).partitions[1].mode, Mode::Shared);
}

#[test]
fn errors_tolerance_all_writes_a_refused_record_to_the_dead_letter_topic_and_goes_on() {
    let dead_letter = ErrorsConfig::DeadLetter {
        topic: "dlq".into(),
        replication_factor: 1,
    };
    let mut h = one_poison_record(dead_letter, b"invalid");
    h.targets[0].state().invalid = vec![b"invalid".to_vec()];
    h.start(0, &[], 2);
    h.run_until("the copy past the refused record", |h| {
        h.has(0, 0, 9) && h.has(0, 1, 10) && stored(h, 0) == Some(9)
    });
    let mut without_5 = expected(0, 0..5);
    without_5.extend(expected(0, 6..10));
    assert_eq!(h.targets[0].log("t", 0), without_5, "in order, without it");
    assert_eq!(h.targets[0].log("dlq", 0), ["invalid"]);
    assert_eq!(h.lane(0).partitions[0].meters.refused.get(), 1);
    assert_eq!(h.lane(0).partitions[0].mode, Mode::Shared);
}

#[test]
fn errors_tolerance_all_without_a_dead_letter_topic_skips_the_refused_record_visibly() {
    let mut h = one_poison_record(ErrorsConfig::Skip, b"invalid");
    h.targets[0].state().invalid = vec![b"invalid".to_vec()];
    h.start(0, &[], 2);
    h.run_until("the copy past the refused record", |h| {
        h.has(0, 0, 9) && stored(h, 0) == Some(9)
    });
    let mut without_5 = expected(0, 0..5);
    without_5.extend(expected(0, 6..10));
    assert_eq!(h.targets[0].log("t", 0), without_5);
    assert_eq!(h.lane(0).partitions[0].meters.refused.get(), 1);
}

/// A process of a group with a lease, copying one target.
fn member() -> (Harness, Standing) {
    let standing = Standing::in_group();
    standing.set_lease(Some(Instant::now() + Duration::from_secs(600)));
    let h = harness_of(
        1,
        1000,
        Duration::from_secs(120),
        ErrorsConfig::StopPartition,
        &|_| {},
        Shard::ALONE,
        standing.clone(),
    );
    (h, standing)
}

fn acquire(h: &Harness, partitions: &[i32], progress: &[(i32, i64)]) {
    h.commands[0]
        .send(Command::Acquire {
            partitions: partitions.iter().map(|&p| ("t".to_string(), p)).collect(),
            progress: progress
                .iter()
                .map(|&(p, o)| (("t".into(), p), o))
                .collect(),
        })
        .unwrap();
}

/// The last progress stored for `partition` of topic `t` (any slot it had).
fn stored_for(h: &Harness, partition: i32) -> Option<i64> {
    let slots: Vec<usize> = h
        .lane(0)
        .partitions
        .iter()
        .enumerate()
        .filter(|(_, s)| s.source_topic == "t" && s.partition == partition)
        .map(|(slot, _)| slot)
        .collect();
    h.targets[0]
        .state()
        .progress
        .iter()
        .rev()
        .find(|(slot, _)| slots.contains(slot))
        .and_then(|(_, offset)| *offset)
}

/// A member copies only what the group gave it; a release stores the partition's progress
/// before answering and copies nothing of it afterwards; the next owner continues right after
/// that progress.
#[test]
fn a_member_copies_its_assignment_and_hands_a_partition_over_with_its_progress() {
    let (mut a, _) = member();
    for partition in 0..2 {
        a.source.produce("t", partition, 10);
    }
    a.start(0, &[], 2);
    a.run_until("routes applied", |h| !h.lane(0).routes.is_empty());
    for _ in 0..20 {
        a.copy.round();
    }
    assert!(
        !a.has(0, 0, 1),
        "nothing copied before the group gives partitions"
    );
    acquire(&a, &[0, 1], &[]);
    a.run_until("both partitions copied", |h| {
        h.has(0, 0, 10) && h.has(0, 1, 10)
    });
    a.source.produce("t", 0, 5);
    a.run_until("t[0] 15", |h| h.has(0, 0, 15));
    a.source.produce("t", 0, 5);
    let (done, answered) = mpsc::channel();
    a.commands[0]
        .send(Command::Release {
            partitions: vec![("t".into(), 0)],
            done,
        })
        .unwrap();
    a.copy.round();
    answered
        .try_recv()
        .expect("answered within the round that applied it");
    assert_eq!(stored_for(&a, 0), Some(14), "stored before the answer");
    a.source.produce("t", 1, 5);
    a.run_until("t[1] goes on", |h| h.has(0, 1, 15));
    for _ in 0..20 {
        a.copy.round();
    }
    assert_eq!(a.targets[0].log("t", 0), expected(0, 0..15));
    assert_eq!(
        stored_for(&a, 0),
        Some(14),
        "nothing stored after the release"
    );

    let (mut b, _) = member();
    b.source.produce("t", 0, 20);
    b.start(0, &[(0, 3)], 1);
    acquire(&b, &[0], &[(0, 14)]);
    b.run_until("t[0] copied from after the handed-over progress", |h| {
        h.has(0, 0, 5)
    });
    for _ in 0..20 {
        b.copy.round();
    }
    assert_eq!(b.targets[0].log("t", 0), expected(0, 15..20));
}

/// A partition the group took away (session expired) is dropped without storing anything;
/// without a lease nothing is copied or stored at all.
#[test]
fn an_abandoned_partition_gets_no_write_and_nothing_moves_without_a_lease() {
    let (mut h, standing) = member();
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    acquire(&h, &[0], &[]);
    h.run_until("copied and stored", |h| stored_for(h, 0) == Some(9));
    standing.set_lease(None);
    h.source.produce("t", 0, 10);
    for _ in 0..50 {
        h.copy.round();
    }
    assert!(!h.has(0, 0, 11), "copied without a lease");
    h.commands[0]
        .send(Command::Abandon(vec![("t".into(), 0)]))
        .unwrap();
    standing.set_lease(Some(Instant::now() + Duration::from_secs(600)));
    let writes = h.targets[0].state().progress.len();
    for _ in 0..50 {
        h.copy.round();
    }
    assert!(!h.has(0, 0, 11), "copied after the partition was lost");
    assert_eq!(
        h.targets[0].state().progress.len(),
        writes,
        "stored after the loss"
    );
    assert!(h.lane(0).is_idle() || h.lane(0).partitions.iter().all(|s| s.retired));
}

/// Exactly once: each lane commits every `commit_interval`.
fn transactional(targets: usize, commit_interval: Duration) -> Harness {
    harness_tuned(
        targets,
        1000,
        Duration::from_secs(120),
        ErrorsConfig::StopPartition,
        &|flow| {
            flow.exactly_once = Some(crate::config::ExactlyOnceConfig { commit_interval });
        },
        Shard::ALONE,
    )
}

fn committed(h: &Harness, target: usize) -> (usize, usize) {
    let state = h.targets[target].0.borrow();
    (state.transaction.commits, state.transaction.aborts)
}

#[test]
fn exactly_once_records_and_their_progress_become_visible_together_at_a_commit() {
    let mut h = transactional(1, Duration::from_millis(300));
    h.source.produce("t", 0, 100);
    h.source.produce("t", 1, 50);
    h.start(0, &[], 2);
    h.run_until("every record delivered into the open transaction", |h| {
        h.targets[0].0.borrow().uncommitted_len() == 150
    });
    assert!(
        h.targets[0].log("t", 0).is_empty(),
        "nothing before the commit"
    );
    assert!(h.targets[0].state().progress.is_empty());
    assert_eq!(h.lane(0).partitions[0].ledger.acked(), None);
    h.run_until("the commit", |h| committed(h, 0).0 == 1);
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..100));
    assert_eq!(h.targets[0].log("t", 1), expected(1, 0..50));
    let mut progress = h.targets[0].state().progress.clone();
    progress.sort();
    assert_eq!(
        progress,
        [(0, Some(99)), (1, Some(49))],
        "in the same commit"
    );
    assert_eq!(h.lane(0).partitions[0].ledger.acked(), Some(99));
    assert_eq!(h.lane(0).reporter.records_copied(), 150);
}

#[test]
fn exactly_once_a_failed_record_aborts_the_transaction_and_all_it_held_is_copied_again_once() {
    let mut h = transactional(1, Duration::from_millis(50));
    h.source.produce("t", 0, 10);
    h.source.produce("t", 1, 10);
    h.start(0, &[], 2);
    h.run_until("the first commit", |h| h.has(0, 0, 10) && h.has(0, 1, 10));
    {
        let mut target = h.targets[0].state();
        target.acknowledging = false;
        target.fail_next = vec![("t".into(), 0)];
    }
    h.source.produce("t", 0, 10);
    h.source.produce("t", 1, 10);
    h.run_until("twenty records in flight", |h| {
        h.targets[0].0.borrow().in_flight_len() == 20
    });
    h.targets[0].state().acknowledging = true;
    h.run_until("the abort and the copy again", |h| {
        committed(h, 0).1 == 1 && h.has(0, 0, 20) && h.has(0, 1, 20)
    });
    // Partition 1's records were delivered, but in the aborted transaction: copied again, and
    // seen once.
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
    assert_eq!(h.targets[0].log("t", 1), expected(1, 0..20));
    assert_eq!(h.lane(0).partitions[1].ledger.acked(), Some(19));
}

#[test]
fn exactly_once_a_refused_commit_aborts_and_copies_again() {
    let mut h = transactional(1, Duration::from_millis(50));
    h.targets[0].state().transaction.refuse_next_commit = true;
    h.source.produce("t", 0, 30);
    h.start(0, &[], 1);
    h.run_until("the copy after an abort", |h| {
        committed(h, 0).1 == 1 && h.has(0, 0, 30)
    });
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..30));
    let progress = h.targets[0].state().progress.clone();
    assert_eq!(progress.last(), Some(&(0, Some(29))));
}

#[test]
fn exactly_once_a_fenced_lane_stops_and_its_flow_fails() {
    let mut h = transactional(1, Duration::from_millis(50));
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    h.run_until("the first commit", |h| h.has(0, 0, 10));
    h.targets[0].state().transaction.fenced = true;
    h.source.produce("t", 0, 10);
    h.run_until("the lane stopped", |h| h.mode(0, 0) == Some(Mode::Stopped));
    for _ in 0..20 {
        assert!(h.copy.round());
    }
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..10), "nothing more");
    let status = h.lane(0).reporter.status();
    assert!(status.starts_with("failed: another process"), "{status}");
}

#[test]
fn exactly_once_a_target_refusing_transactions_gets_nothing_and_says_what_is_missing() {
    let mut h = transactional(1, Duration::from_millis(50));
    h.targets[0].state().transaction.refused = true;
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    for _ in 0..100 {
        assert!(h.copy.round());
    }
    let target = h.targets[0].state();
    assert_eq!((target.in_flight_len(), target.uncommitted_len()), (0, 0));
    assert!(target.logs.is_empty());
    drop(target);
    let status = h.lane(0).reporter.status();
    assert!(status.starts_with("failed: na refuses"), "{status}");
    assert!(status.contains("TransactionalId ACL"), "{status}");
    assert!(status.contains("mirrorcast.eu->na."), "{status}");
}

#[test]
fn exactly_once_a_target_that_does_not_commit_holds_only_its_own_lane() {
    let mut h = transactional(2, Duration::from_millis(20));
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    h.start(1, &[], 1);
    h.run_until("both copied", |h| h.has(0, 0, 10) && h.has(1, 0, 10));
    h.targets[1].state().acknowledging = false;
    for round in 0..5 {
        h.source.produce("t", 0, 100);
        let want = 110 + round * 100;
        h.run_until("na keeps committing", |h| h.has(0, 0, want));
    }
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..510));
    assert_eq!(h.targets[1].log("t", 0), expected(0, 0..10));
    h.targets[1].state().acknowledging = true;
    h.run_until("sa catches up", |h| h.has(1, 0, 510));
    assert_eq!(h.targets[1].log("t", 0), expected(0, 0..510));
}

/// Exactly once in a group: a lane registers its unit's transactional id only when the group
/// gives the unit, then copies what it acquires; once the unit is taken away without asking,
/// what its open transaction held never commits; given again, it registers anew and goes on
/// from the progress read then; fenced by another instance, it lets its partitions go without
/// failing the flow.
#[test]
fn exactly_once_in_a_group_a_unit_registers_when_given_and_never_commits_once_gone() {
    let standing = Standing::in_group();
    standing.set_lease(Some(Instant::now() + Duration::from_secs(600)));
    let mut h = harness_of(
        1,
        1000,
        Duration::from_secs(120),
        ErrorsConfig::StopPartition,
        &|flow| {
            flow.exactly_once = Some(crate::config::ExactlyOnceConfig {
                commit_interval: Duration::from_millis(20),
            });
        },
        Shard::ALONE,
        standing,
    );
    let ask = |h: &Harness, units: Vec<usize>| {
        let (done, answers) = mpsc::channel();
        h.commands[0].send(Command::Fence { units, done }).unwrap();
        answers
    };
    // Answered once registered, refused or timed out, in the rounds that follow.
    let fence = |h: &mut Harness| {
        let answers = ask(h, vec![0]);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "no answer to the fence");
            h.copy.round();
            if let Ok(answer) = answers.try_recv() {
                return answer;
            }
        }
    };
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    for _ in 0..20 {
        h.copy.round();
    }
    assert!(
        !h.targets[0].state().transaction.registered,
        "registered before the group gave the unit (it would fence the unit's owner)"
    );
    assert_eq!(fence(&mut h), (0, Ok(())));
    assert!(h.targets[0].state().transaction.registered);
    acquire(&h, &[0], &[]);
    h.run_until("copied and committed", |h| h.has(0, 0, 10));

    // Taken without asking while a transaction is open: it never commits.
    h.targets[0].state().acknowledging = false;
    h.source.produce("t", 0, 10);
    h.run_until("records in the open transaction", |h| {
        h.targets[0].0.borrow().in_flight_len() == 10
    });
    let commits = committed(&h, 0).0;
    h.commands[0]
        .send(Command::Abandon(vec![("t".into(), 0)]))
        .unwrap();
    h.commands[0].send(Command::Yield(vec![0])).unwrap();
    h.targets[0].state().acknowledging = true;
    for _ in 0..50 {
        h.copy.round();
    }
    assert_eq!(committed(&h, 0).0, commits, "committed after the unit left");
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..10));

    // Given again: registered anew, copied from the progress read after the fence.
    let replaced = h.targets[0].state().replaced;
    assert_eq!(fence(&mut h), (0, Ok(())));
    assert!(h.targets[0].state().replaced > replaced, "a new producer");
    acquire(&h, &[0], &[(0, 9)]);
    h.run_until("copied on", |h| h.has(0, 0, 20));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));

    // Another instance registered the id: the partition goes, the flow does not fail.
    h.targets[0].state().transaction.fenced = true;
    h.source.produce("t", 0, 10);
    h.run_until("the partition let go", |h| {
        h.lane(0).partitions.iter().all(|s| s.retired)
    });
    for _ in 0..20 {
        h.copy.round();
    }
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
    let status = h.lane(0).reporter.status();
    assert!(!status.starts_with("failed"), "{status}");
    // A unit not the lane's is answered at once; a refused registration as such.
    let answers = ask(&h, vec![3]);
    h.copy.round();
    assert_eq!(answers.try_recv(), Ok((0, Ok(()))));
    h.targets[0].state().transaction.refused = true;
    let (unit, answer) = fence(&mut h);
    assert_eq!(unit, 0);
    assert!(answer.unwrap_err().contains("TransactionalId ACL"));
}
