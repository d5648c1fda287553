use super::*;

/// Two copier threads of one source: each copies and stores the progress of its own
/// partitions only, to every target, and together they copy every partition once.
#[test]
fn copier_threads_of_a_source_split_its_partitions_between_them() {
    let mut copied = Vec::new();
    for shard in Shard::all(2) {
        let mut h = Setup::new(2).shard(shard).build();
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
    let mut h = Setup::new(1).tune(|flow| flow.start_at_end = true).build();
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

#[test]
fn a_failed_delivery_rewinds_once_to_right_after_the_last_acknowledged_record() {
    let mut h = ten_acknowledged_and_ten_in_flight(Setup::new(1));
    {
        let mut target = h.targets[0].state();
        target.fail_next = vec![("t".into(), 0)];
        target.acknowledging = true;
    }
    h.run_until("the copy after the rewind", |h| h.has(0, 0, 20));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
    // Ten failed reports, one rewind: the other nine were of the old epoch.
    assert_eq!(h.lane(0).book[0].ledger.epoch(), 1);
    let calls = h.copy.readers().shared.calls.borrow().clone();
    assert_eq!(calls, ["assign t[0]@0", "unassign t[0]", "assign t[0]@10"]);
}

#[test]
fn a_rewind_waits_until_the_failed_attempt_has_drained_and_resends_each_record_once() {
    let mut h = ten_acknowledged_and_ten_in_flight(Setup::new(1));
    {
        let mut target = h.targets[0].state();
        // 10 fails; 11..19 stay queued and will still be delivered.
        target.fail_head = vec![("t".into(), 0)];
        target.acknowledging = true;
    }
    h.run_until("the rewind and its backoff", |h| {
        h.lane(0).book[0].ledger.epoch() == 1
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
    assert_eq!(h.lane(0).book[0].ledger.epoch(), 1, "one rewind");
}

#[test]
fn a_target_that_stops_answering_is_reported_and_nothing_is_sent_twice() {
    let setup = Setup::new(1).delivery_timeout(Duration::from_millis(1));
    let mut h = ten_acknowledged_and_ten_in_flight(setup);
    h.run_until("the target counted as failing", |h| {
        h.lane(0).flight.stalled()
    });
    h.targets[0].state().acknowledging = true;
    h.run_until("the copy and the recovery", |h| {
        h.has(0, 0, 20) && !h.lane(0).flight.stalled()
    });
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..20));
    assert_eq!(h.lane(0).book[0].ledger.epoch(), 0, "no rewind");
}

#[test]
fn a_fatal_producer_error_replaces_the_producer_and_copies_the_unacknowledged_again() {
    let mut h = ten_acknowledged_and_ten_in_flight(Setup::new(1));
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
    let behind = crate::copy::fanout::JOIN_GAP + 50;
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
    let backlog = crate::copy::fanout::JOIN_GAP * 3;
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
        assert_eq!(h.lane(lane).book[0].meters.resets.get(), 1);
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
    assert_eq!(h.lane(0).book[0].meters.resets.get(), 1);
}

/// The new topic's offsets pass the old position: only the topic ID tells (librdkafka reads on
/// from the stored offset and no offset goes back).
#[test]
fn a_topic_created_again_while_stopped_and_filled_past_the_old_position_is_copied_whole() {
    let mut h = harness(1, 1000);
    h.source.produce("t", 0, 100);
    h.source.recreate("t", 0);
    h.source.produce("t", 0, 150);
    h.start_identified(0, &[(0, 99)], Some("t-1"), Some("t-2"), 1);
    h.run_until("the second life", |h| h.has(0, 0, 150));
    assert_eq!(h.targets[0].log("t", 0), expected_recreated(0..150));
    let state = &h.lane(0).book[0];
    assert_eq!(state.meters.recreations.get(), 1);
    assert_eq!(
        state.topic_id,
        Some(TopicId("t-2".into())),
        "stored with the new ID"
    );
}

/// Progress without an ID (stored by MM2 or before IDs) is resumed from, and the ID adopted.
#[test]
fn progress_stored_without_a_topic_id_is_resumed_from_and_the_id_adopted() {
    let mut h = harness(1, 1000);
    h.source.produce("t", 0, 100);
    h.start_identified(0, &[(0, 49)], None, Some("t-1"), 1);
    h.run_until("the rest", |h| h.has(0, 0, 50));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 50..100));
    let state = &h.lane(0).book[0];
    assert_eq!(state.meters.recreations.get(), 0);
    assert_eq!(state.topic_id, Some(TopicId("t-1".into())));
}

#[test]
fn a_topic_created_again_while_copying_and_filled_past_the_old_position_is_copied_whole() {
    let mut h = harness(2, 1000);
    h.source.produce("t", 0, 100);
    for lane in 0..2 {
        h.start_identified(lane, &[], None, Some("t-1"), 1);
    }
    h.run_until("the first life", |h| h.has(0, 0, 100) && h.has(1, 0, 100));
    h.source.recreate("t", 0);
    h.source.produce("t", 0, 150);
    // The topic manager's next refresh sees the new ID.
    for lane in 0..2 {
        h.route(lane, 1, Some("t-2"));
    }
    h.run_until("the second life", |h| h.has(0, 0, 250) && h.has(1, 0, 250));
    for (lane, target) in h.targets.iter().enumerate() {
        let mut want = expected(0, 0..100);
        want.extend(expected_recreated(0..150));
        assert_eq!(target.log("t", 0), want);
        assert_eq!(h.lane(lane).book[0].meters.recreations.get(), 1);
    }
    h.run_until("progress of the second life", |h| {
        h.targets[0].0.borrow().progress.last() == Some(&(0, Some(149)))
    });
}

#[test]
fn records_deleted_at_the_source_before_they_were_copied_are_counted_as_lost() {
    let mut h = harness(1, 1000);
    h.source.produce("t", 0, 100);
    h.source.delete_before("t", 0, 40);
    h.start(0, &[(0, 9)], 1);
    h.run_until("what is left", |h| h.has(0, 0, 60));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 40..100));
    let meters = &h.lane(0).book[0].meters;
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

/// The lag published every second asks a partition's end only of the reader that reads it:
/// librdkafka keeps a partition a client was asked about as wanted until it is unassigned, and
/// once its topic is deleted queues an error for it every second that nothing reads (memory
/// grew without bound under topic churn).
#[test]
fn the_source_end_is_asked_only_of_the_reader_that_reads_the_partition() {
    let mut h = harness(2, 10);
    h.targets[1].state().acknowledging = false;
    h.source.produce("t", 0, 100);
    h.start(0, &[], 1);
    h.start(1, &[], 1);
    h.run_until("sa to catch up on its own", |h| {
        h.mode(1, 0) == Some(Mode::CatchingUp)
    });
    h.copy.publish_now();
    h.targets[1].state().acknowledging = true;
    h.run_until("both copies, shared again", |h| {
        h.has(0, 0, 100) && h.has(1, 0, 100) && h.mode(1, 0) == Some(Mode::Shared)
    });
    h.copy.publish_now();
    let readers = h.copy.readers();
    for (name, reader) in [
        ("shared", &readers.shared),
        ("own 0", &readers.own[0]),
        ("own 1", &readers.own[1]),
    ] {
        assert_eq!(
            *reader.asked_unassigned.borrow(),
            Vec::<(String, i32)>::new(),
            "the {name} reader was asked about a partition it does not read"
        );
    }
    for lane in 0..2 {
        assert_eq!(
            h.lane(lane).book[0].source_end,
            Some(100),
            "lane {lane}'s lag"
        );
    }
}
