//! The target's limits: batches fit the remote topic's `max.message.bytes`, a record larger
//! than it allows is refused before it is sent, and a batch refused for good in the middle of a
//! partition lets nothing after it land first (the producer delivers gaplessly).

use super::*;
use crate::copy::in_flight::REFUSING_FOR;

/// `t[0]` holds `count` records (`t/0/<offset>`, 6 or 7 bytes each), `big` at offset `at`.
fn partition_with(h: &Harness, count: i64, at: i64, big: &[u8]) {
    for offset in 0..count {
        let payload = format!("t/0/{offset}");
        let payload = if offset == at {
            big
        } else {
            payload.as_bytes()
        };
        h.source.produce_payload("t", 0, payload);
    }
}

fn without(range: std::ops::Range<i64>, left_out: i64) -> Vec<String> {
    range
        .filter(|&o| o != left_out)
        .map(|o| format!("t/0/{o}"))
        .collect()
}

/// A remote topic whose limit is below the producer's batch size: before, every batch was
/// refused as too large and the copy crawled record by record through the probes.
#[test]
fn batches_follow_the_remote_topics_limit_and_none_is_refused() {
    let mut h = harness(1, 1000);
    h.source.produce("t", 0, 50);
    h.targets[0].state().max_batch_bytes = Some(30);
    h.start_limited(0, 1, 30);
    h.run_until("the copy", |h| h.has(0, 0, 50));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..50));
    let target = h.targets[0].state();
    assert_eq!(target.resized, [30], "one producer sized by the limit");
    assert_eq!(target.too_large_batches, 0, "no batch refused");
}

/// Exactly once, a limit that comes while a transaction is open: the batches are resized once
/// it commits (before: the lane waited for room that only the commit would make, forever).
#[test]
fn exactly_once_batches_are_resized_between_transactions() {
    let mut h = Setup::new(1)
        .exactly_once(Duration::from_millis(20))
        .build();
    h.source.produce("t", 0, 50);
    h.targets[0].state().max_batch_bytes = Some(30);
    // The target holds what it gets: the transaction stays open.
    h.targets[0].state().acknowledging = false;
    h.start(0, &[], 1);
    h.run_until("a transaction open", |h| {
        h.targets[0].state().transaction.open_since.is_some()
    });
    h.route_limited(0, 1, None, Some(30));
    for _ in 0..20 {
        assert!(h.copy.round());
    }
    assert!(
        h.targets[0].state().resized.is_empty(),
        "not while it is open"
    );
    h.targets[0].state().acknowledging = true;
    h.source.produce("t", 0, 50);
    h.run_until("the copy, committed", |h| h.has(0, 0, 100));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..100));
    assert_eq!(h.targets[0].state().resized, [30]);
}

#[test]
fn a_record_larger_than_its_remote_topic_allows_is_refused_before_it_is_sent() {
    for errors in [ErrorsConfig::StopPartition, ErrorsConfig::Skip] {
        let mut h = Setup::new(1).errors(errors.clone()).build();
        partition_with(&h, 10, 5, &[b'x'; 500]);
        h.targets[0].state().max_batch_bytes = Some(100);
        h.start_limited(0, 1, 100);
        match errors {
            ErrorsConfig::StopPartition => {
                h.run_until("t[0] stopped", |h| h.mode(0, 0) == Some(Mode::Stopped));
                assert_eq!(h.targets[0].log("t", 0), expected(0, 0..5));
                assert_eq!(
                    h.lane(0).book[0].refusal.as_ref().map(|r| r.offset),
                    Some(5)
                );
            }
            _ => {
                h.run_until("the rest", |h| h.has(0, 0, 9));
                assert_eq!(h.targets[0].log("t", 0), without(0..10, 5));
            }
        }
        assert_eq!(h.lane(0).book[0].meters.refused.get(), 1, "{errors:?}");
        assert_eq!(
            h.targets[0].state().too_large_batches,
            0,
            "never sent: {errors:?}"
        );
        assert!(
            h.lane(0).flight.refusing(),
            "degraded while records are refused"
        );
    }
}

/// A record the broker alone can refuse (here: invalid), in the middle of a partition whose
/// records go in many batches: the producer stops at the refused batch (gapless), nothing
/// after it lands, and every record arrives once, in order.
#[test]
fn a_poison_batch_in_the_middle_lets_no_later_record_land_first() {
    for errors in [ErrorsConfig::StopPartition, ErrorsConfig::Skip] {
        let mut h = Setup::new(1).errors(errors.clone()).build();
        partition_with(&h, 40, 10, b"poison");
        {
            let mut target = h.targets[0].state();
            target.gapless = true;
            target.invalid.push(b"poison".to_vec());
        }
        // Batches of three or four records: the poison's is the third of many.
        h.start_limited(0, 1, 25);
        match errors {
            ErrorsConfig::StopPartition => {
                h.run_until("t[0] stopped", |h| h.mode(0, 0) == Some(Mode::Stopped));
                assert_eq!(h.targets[0].log("t", 0), expected(0, 0..10));
                assert_eq!(
                    h.lane(0).book[0].ledger.acked(),
                    Some(9),
                    "the records before it are acknowledged"
                );
            }
            _ => {
                h.run_until("the rest", |h| h.has(0, 0, 39));
                assert_eq!(h.targets[0].log("t", 0), without(0..40, 10));
            }
        }
        assert_eq!(h.lane(0).book[0].meters.refused.get(), 1, "{errors:?}");
        assert!(
            h.targets[0].state().replaced >= 2,
            "a new producer after the refused batch"
        );
    }
}

#[test]
fn refused_records_keep_the_flow_degraded_for_a_while_then_it_runs_again() {
    let clock = crate::clock::ManualClock::new();
    let mut h = Setup::new(1)
        .errors(ErrorsConfig::Skip)
        .clock(clock.clock())
        .build();
    partition_with(&h, 10, 5, &[b'x'; 500]);
    h.start_limited(0, 1, 100);
    let mut rounds = 0;
    while !h.has(0, 0, 9) {
        assert!(h.copy.round() && rounds < 10_000, "the copy");
        clock.advance(Duration::from_millis(10));
        rounds += 1;
    }
    assert!(h.lane(0).flight.refusing());
    clock.advance(Duration::from_secs(2));
    assert!(h.copy.round());
    let status = h.lane(0).house.reporter.status();
    assert!(
        status.starts_with("degraded") && status.contains("refused"),
        "{status}"
    );
    clock.advance(REFUSING_FOR);
    h.source.produce_payload("t", 0, b"t/0/10");
    for _ in 0..200 {
        assert!(h.copy.round());
        clock.advance(Duration::from_millis(10));
    }
    assert!(!h.lane(0).flight.refusing(), "not refusing any more");
    assert!(h.has(0, 0, 10));
}

/// Heartbeats the target refuses for good (no Write ACL on `heartbeats`): with gapless
/// delivery each refusal fails the producer and rewinds every partition, so they stop after
/// the first, said once; the copy goes on, each record once.
#[test]
fn heartbeats_refused_for_good_stop_and_the_copy_goes_on() {
    let mut h = Setup::new(1)
        .tune(|flow| {
            flow.heartbeats = Some(crate::config::HeartbeatsConfig {
                interval: Duration::from_millis(1),
                replication_factor: 1,
            })
        })
        .build();
    {
        let mut target = h.targets[0].state();
        target.gapless = true;
        target
            .denied_topics
            .push(crate::policy::HEARTBEATS_TOPIC.to_string());
    }
    h.source.produce("t", 0, 20);
    h.start(0, &[], 1);
    h.run_until("the copy", |h| h.has(0, 0, 20));
    for _ in 0..200 {
        assert!(h.copy.round());
        std::thread::yield_now();
    }
    h.source.produce("t", 0, 20);
    h.run_until("more", |h| h.has(0, 0, 40));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..40));
    let target = h.targets[0].state();
    assert_eq!(
        target.sent_to.get(crate::policy::HEARTBEATS_TOPIC),
        Some(&1),
        "one, then none"
    );
    assert_eq!(target.replaced, 1, "one new producer");
    drop(target);
    assert!(h
        .lane(0)
        .house
        .reporter
        .status()
        .contains("refused a heartbeat for good"));
}
