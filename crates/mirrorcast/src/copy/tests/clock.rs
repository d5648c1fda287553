//! Corners decided by time, on a clock the test moves: a rewind's backoff, a target silent
//! past the delivery timeout, a fence that times out, a coordinator that never answers, a
//! lease that lapses. No test here waits for wall-clock time to pass. (Waits bounded by a
//! deadline on the lane's clock, a last commit or a full queue at a commit, end only when the
//! clock moves: a test that stops the clock moves it there.)

use super::*;
use crate::clock::ManualClock;
use crate::copy::transaction::{ABORT_PATIENCE, COORDINATOR_PATIENCE, FENCE_WAIT};

/// Runs rounds of the copy loop until `done`, moving the clock 10 ms a round.
fn run_ticking(h: &mut Harness, clock: &ManualClock, what: &str, done: impl Fn(&Harness) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(h) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        assert!(h.copy.round(), "the copy loop stopped");
        clock.advance(Duration::from_millis(10));
    }
}

/// Runs `rounds` rounds of the copy loop.
fn rounds(h: &mut Harness, rounds: usize) {
    for _ in 0..rounds {
        assert!(h.copy.round(), "the copy loop stopped");
    }
}

#[test]
fn a_rewound_partition_waits_its_backoff_on_the_clock_then_copies_again_from_the_last_acknowledged()
{
    let clock = ManualClock::new();
    let mut h = ten_acknowledged_and_ten_in_flight(Setup::new(1).clock(clock.clock()));
    {
        let mut target = h.targets[0].state();
        target.fail_next = vec![("t".into(), 0)];
        target.acknowledging = true;
    }
    h.run_until("the rewind", |h| h.lane(0).book[0].ledger.epoch() == 1);
    rounds(&mut h, 50);
    assert!(
        matches!(h.mode(0, 0), Some(Mode::Waiting(at)) if at > clock.now()),
        "the backoff holds while the clock stands still"
    );
    assert_eq!(h.targets[0].log("t", 0).len(), 10, "nothing sent meanwhile");
    clock.advance(Duration::from_secs(1));
    h.run_until("the copy again from 10", |h| h.has(0, 0, 20));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
}

#[test]
fn a_target_silent_past_the_delivery_timeout_is_said_stalled_and_nothing_is_sent_twice() {
    let clock = ManualClock::new();
    let timeout = Duration::from_secs(120);
    let mut h = Setup::new(1)
        .delivery_timeout(timeout)
        .clock(clock.clock())
        .build();
    h.targets[0].state().acknowledging = false;
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    h.run_until("ten in flight", |h| {
        h.targets[0].state().in_flight_len() == 10
    });
    // The once-a-second check first sees the records unreported, then counts from there.
    clock.advance(Duration::from_secs(1));
    rounds(&mut h, 5);
    clock.advance(timeout - Duration::from_secs(1));
    rounds(&mut h, 5);
    assert!(!h.lane(0).flight.stalled(), "not before the timeout");
    clock.advance(Duration::from_secs(2));
    rounds(&mut h, 5);
    assert!(h.lane(0).flight.stalled(), "said once the timeout passed");
    assert!(h
        .lane(0)
        .house
        .reporter
        .status()
        .contains("has acknowledged nothing"));
    assert_eq!(
        h.lane(0).book[0].ledger.epoch(),
        0,
        "no rewind: the records stay queued"
    );

    h.targets[0].state().acknowledging = true;
    clock.advance(Duration::from_secs(1));
    h.run_until("the records and the end of the stall", |h| {
        h.has(0, 0, 10) && !h.lane(0).flight.stalled()
    });
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..10));
}

/// Exactly once, a target that stops answering: its records time out (librdkafka's
/// `message.timeout.ms`, the delivery timeout), the transaction aborts, and the partition is
/// rewound and copied again once the target answers; each record is committed once.
#[test]
fn exactly_once_records_timed_out_abort_the_transaction_and_are_copied_again_once() {
    let clock = ManualClock::new();
    let mut h = Setup::new(1)
        .exactly_once(Duration::from_millis(20))
        .clock(clock.clock())
        .build();
    let timeout = Duration::from_secs(60);
    h.targets[0].state().message_timeout = Some(timeout);
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    run_ticking(&mut h, &clock, "the first commit", |h| h.has(0, 0, 10));
    h.targets[0].state().acknowledging = false;
    h.source.produce("t", 0, 10);
    // The clock stands still: the ten go out, and their transaction is not due yet.
    h.run_until("ten in flight", |h| {
        h.targets[0].state().in_flight_len() == 10
    });
    rounds(&mut h, 20);
    assert_eq!(
        h.lane(0).book[0].ledger.epoch(),
        0,
        "nothing failed before the timeout"
    );
    clock.advance(timeout);
    rounds(&mut h, 5);
    assert!(
        h.lane(0).book[0].ledger.epoch() >= 1,
        "the ten timed out: the partition goes back to its last commit"
    );
    assert!(
        h.targets[0].log("t", 0).len() == 10,
        "nothing of them committed"
    );
    // The target answers again: the doomed transaction aborts, the ten are copied again.
    h.targets[0].state().acknowledging = true;
    run_ticking(&mut h, &clock, "the abort", |h| {
        h.targets[0].state().transaction.aborts == 1
    });
    run_ticking(&mut h, &clock, "the copy again", |h| h.has(0, 0, 20));
    rounds(&mut h, 20);
    assert_eq!(
        h.targets[0].log("t", 0),
        expected(0, 0..20),
        "each record once, in order"
    );
}

/// Exactly once, on `clock` with delivery timeout `timeout`: ten records committed, then a
/// commit of ten more refused while the target's coordinator is gone (an abort stays pending).
fn abort_left_unanswered(clock: &ManualClock, timeout: Duration) -> Harness {
    let mut h = Setup::new(1)
        .exactly_once(Duration::from_millis(20))
        .delivery_timeout(timeout)
        .clock(clock.clock())
        .build();
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    run_ticking(&mut h, clock, "the first commit", |h| h.has(0, 0, 10));
    {
        let mut target = h.targets[0].state();
        target.transaction.refuse_next_commit = true;
        target.transaction.abort_unanswered = true;
    }
    h.source.produce("t", 0, 10);
    run_ticking(&mut h, clock, "the refused commit", |h| {
        !h.targets[0].state().transaction.refuse_next_commit
    });
    h
}

/// Exactly once, a commit that fails while the target's coordinator is gone: the abort stays
/// pending, is said once past the delivery timeout (not before), and completes when the
/// target answers; each record is committed once.
#[test]
fn exactly_once_an_abort_the_target_does_not_answer_is_said_late_then_completes() {
    let clock = ManualClock::new();
    let timeout = Duration::from_secs(30);
    let mut h = abort_left_unanswered(&clock, timeout);
    let late = |h: &Harness| {
        h.lane(0)
            .house
            .reporter
            .status()
            .contains("has not completed an abort")
    };
    rounds(&mut h, 20);
    assert!(!late(&h), "not before the delivery timeout");
    clock.advance(timeout);
    rounds(&mut h, 5);
    assert!(late(&h), "said once the timeout passed");
    assert_eq!(h.targets[0].log("t", 0).len(), 10, "nothing more committed");
    h.targets[0].state().transaction.abort_unanswered = false;
    run_ticking(&mut h, &clock, "the copy again", |h| h.has(0, 0, 20));
    assert_eq!(h.targets[0].state().transaction.aborts, 1);
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
}

/// Exactly once, an abort that never completes (librdkafka cannot end it): after
/// [`ABORT_PATIENCE`] the lane gives its unit up (said lost, partitions dropped, nothing
/// committed), and once fenced again it goes on from the progress read then.
#[test]
fn exactly_once_an_abort_that_never_completes_gives_the_unit_up_to_be_fenced_again() {
    let clock = ManualClock::new();
    let mut h = abort_left_unanswered(&clock, Duration::from_secs(120));
    clock.advance(ABORT_PATIENCE - Duration::from_secs(1));
    rounds(&mut h, 5);
    assert!(h.lost.take().is_empty(), "not before its patience");
    clock.advance(Duration::from_secs(1));
    rounds(&mut h, 5);
    assert_eq!(h.lost.take(), vec![0], "given up once its patience is over");
    assert!(h.lane(0).book.live().next().is_none());
    h.targets[0].state().transaction.abort_unanswered = false;
    let answers = h.fence(0);
    run_ticking(&mut h, &clock, "registered again", |_| {
        answers.try_recv().is_ok()
    });
    h.refenced(0, 9);
    run_ticking(&mut h, &clock, "the copy again", |h| h.has(0, 0, 20));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
}

/// Exactly once in a group, a target without a coordinator: the fence is answered only after
/// [`FENCE_WAIT`] of the lane's clock, saying why, and the unit stands by.
#[test]
fn a_fence_that_cannot_register_is_answered_after_its_wait_and_the_unit_stands_by() {
    let clock = ManualClock::new();
    let standing = Standing::in_group_on(clock.clock());
    standing.set_lease(Some(clock.now() + Duration::from_secs(600)));
    let mut h = Setup::new(1)
        .exactly_once(Duration::from_millis(20))
        .standing(standing)
        .clock(clock.clock())
        .build();
    h.targets[0].state().transaction.no_coordinator = true;
    h.start(0, &[], 1);
    let (done, answers) = Reply::channel();
    h.commands[0]
        .send(GroupCommand::Fence {
            units: vec![0],
            done,
        })
        .unwrap();
    rounds(&mut h, 20);
    assert!(answers.try_recv().is_err(), "still registering");
    clock.advance(FENCE_WAIT - Duration::from_millis(1));
    rounds(&mut h, 5);
    assert!(answers.try_recv().is_err(), "not before the wait is over");
    clock.advance(Duration::from_millis(1));
    rounds(&mut h, 5);
    let (unit, answer) = answers.try_recv().expect("answered once the wait is over");
    assert_eq!(unit, 0);
    let refused = answer.unwrap_err().to_string();
    assert!(
        refused.contains("did not register transactional id"),
        "{refused}"
    );
    assert_eq!(h.targets[0].state().transaction.commits, 0);
}

/// Exactly once, alone: a target whose coordinator never answers is said to have none after
/// [`COORDINATOR_PATIENCE`], once, and nothing is copied meanwhile.
#[test]
fn a_coordinator_that_never_answers_is_said_after_its_patience() {
    let clock = ManualClock::new();
    let mut h = Setup::new(1)
        .exactly_once(Duration::from_millis(20))
        .clock(clock.clock())
        .build();
    h.targets[0].state().transaction.no_coordinator = true;
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    rounds(&mut h, 20);
    clock.advance(COORDINATOR_PATIENCE - Duration::from_millis(1));
    rounds(&mut h, 5);
    assert!(!h
        .lane(0)
        .house
        .reporter
        .status()
        .contains("transaction coordinator"));
    clock.advance(Duration::from_millis(1));
    rounds(&mut h, 5);
    let status = h.lane(0).house.reporter.status();
    assert!(
        status.contains("has no transaction coordinator"),
        "{status}"
    );
    assert!(
        h.targets[0].log("t", 0).is_empty(),
        "nothing copied without transactions"
    );

    h.targets[0].state().transaction.no_coordinator = false;
    run_ticking(&mut h, &clock, "the copy once it answers", |h| {
        h.targets[0].state().transaction.commits > 0 && h.has(0, 0, 10)
    });
}

/// A member whose lease lapses on the clock stores no more progress, though it goes on
/// running; a renewed lease lets it store again.
#[test]
fn a_member_whose_lease_lapses_stores_no_progress_until_it_is_renewed() {
    let clock = ManualClock::new();
    let standing = Standing::in_group_on(clock.clock());
    standing.set_lease(Some(clock.now() + Duration::from_secs(5)));
    let mut h = Setup::new(1)
        .standing(standing.clone())
        .clock(clock.clock())
        .build();
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    super::members::acquire(&h, &[0], &[]);
    h.run_until("the copy", |h| h.has(0, 0, 10));
    clock.advance(Duration::from_millis(50));
    h.run_until("its progress", |h| {
        h.targets[0].state().progress.contains(&(0, Some(9)))
    });
    clock.advance(Duration::from_secs(5));
    assert!(!standing.may_write(), "the lease lapsed");
    let stored = h.targets[0].state().progress.len();
    h.source.produce("t", 0, 10);
    rounds(&mut h, 50);
    clock.advance(Duration::from_millis(50));
    rounds(&mut h, 50);
    assert_eq!(
        h.targets[0].state().progress.len(),
        stored,
        "no progress without a lease"
    );

    standing.set_lease(Some(clock.now() + Duration::from_secs(5)));
    // The partition, turned away while the lease had lapsed, comes back after its backoff.
    run_ticking(&mut h, &clock, "progress again", |h| {
        h.targets[0].state().progress.contains(&(0, Some(19)))
    });
}
