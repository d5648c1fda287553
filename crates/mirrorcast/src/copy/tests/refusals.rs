use super::*;

/// `t[0]` holds ten records, the sixth (offset 5) `poison`; `t[1]` ten ordinary ones.
fn one_poison_record(errors: ErrorsConfig, poison: &[u8]) -> Harness {
    let h = Setup::new(1).errors(errors).build();
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
    let refusal = h.lane(0).book[0].refusal.clone().unwrap();
    assert_eq!(refusal.offset, 5);
    assert!(refusal.reason.contains("too large"), "{}", refusal.reason);
    assert_eq!(h.lane(0).book[0].meters.refused.get(), 1);
    assert_eq!(h.lane(0).book[0].meters.stopped.get(), 1);
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
    assert_eq!(h.lane(0).book[0].meters.refused.get(), 0);
    assert_eq!(h.targets[0].log("t", 1), expected(1, 0..10));
    assert_eq!(h.lane(0).book[1].mode, Mode::Shared);
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
    assert_eq!(h.lane(0).book[0].meters.refused.get(), 1);
    assert_eq!(h.lane(0).book[0].mode, Mode::Shared);
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
    assert_eq!(h.lane(0).book[0].meters.refused.get(), 1);
}
