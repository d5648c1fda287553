use super::members::acquire;
use super::*;

/// Exactly once: each lane commits every `commit_interval`.
fn transactional(targets: usize, commit_interval: Duration) -> Harness {
    Setup::new(targets).exactly_once(commit_interval).build()
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
    assert_eq!(h.lane(0).book[0].ledger.acked(), None);
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
    assert_eq!(h.lane(0).book[0].ledger.acked(), Some(99));
    assert_eq!(h.lane(0).house.reporter.records_copied(), 150);
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
    assert_eq!(h.lane(0).book[1].ledger.acked(), Some(19));
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

/// Exactly once without a group: a lane whose producer is fenced drops its unit without a
/// write and says so; registered again by the topic manager, it goes on from the progress read
/// afterwards (here another writer had committed up to offset 14 meanwhile), not from what it
/// remembered.
#[test]
fn exactly_once_a_fenced_lane_drops_its_unit_and_goes_on_from_the_progress_read_after_its_fence() {
    let mut h = transactional(1, Duration::from_millis(50));
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    h.run_until("the first commit", |h| h.has(0, 0, 10));
    h.targets[0].state().transaction.fenced = true;
    h.source.produce("t", 0, 10);
    let lost = std::cell::RefCell::new(Vec::new());
    h.run_until("the unit said lost", |h| {
        lost.borrow_mut().extend(h.lost.take());
        !lost.borrow().is_empty()
    });
    assert_eq!(lost.into_inner(), vec![0]);
    for _ in 0..20 {
        assert!(h.copy.round());
    }
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..10), "nothing more");
    assert!(
        h.lane(0).book.live().next().is_none(),
        "its partitions dropped"
    );

    let answers = h.fence(0);
    h.run_until("registered again", |_| answers.try_recv().is_ok());
    h.refenced(0, 14);
    h.run_until("the copy from the progress", |h| h.has(0, 0, 15));
    let mut want = expected(0, 0..10);
    want.extend(expected(0, 15..20));
    assert_eq!(h.targets[0].log("t", 0), want);
    let status = h.lane(0).house.reporter.status();
    assert!(!status.starts_with("failed"), "{status}");
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
    let status = h.lane(0).house.reporter.status();
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
    let mut h = Setup::new(1)
        .exactly_once(Duration::from_millis(20))
        .standing(standing)
        .build();
    let ask = |h: &Harness, units: Vec<usize>| {
        let (done, answers) = Reply::channel();
        h.commands[0]
            .send(GroupCommand::Fence { units, done })
            .unwrap();
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
        .send(GroupCommand::Abandon(vec![("t".into(), 0)]))
        .unwrap();
    h.commands[0].send(GroupCommand::Yield(vec![0])).unwrap();
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
        h.lane(0).book.iter().all(|s| s.retired)
    });
    for _ in 0..20 {
        h.copy.round();
    }
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
    let status = h.lane(0).house.reporter.status();
    assert!(!status.starts_with("failed"), "{status}");
    // A unit not the lane's is answered at once; a refused registration as such.
    let answers = ask(&h, vec![3]);
    h.copy.round();
    assert_eq!(answers.try_recv(), Ok((0, Ok(()))));
    h.targets[0].state().transaction.refused = true;
    let (unit, answer) = fence(&mut h);
    assert_eq!(unit, 0);
    assert!(answer.unwrap_err().0.contains("TransactionalId ACL"));
}
