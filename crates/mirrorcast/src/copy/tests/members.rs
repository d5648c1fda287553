use super::*;

/// A process of a group with a lease, copying one target.
fn member() -> (Harness, Standing) {
    let standing = Standing::in_group();
    standing.set_lease(Some(Instant::now() + Duration::from_secs(600)));
    let h = Setup::new(1).standing(standing.clone()).build();
    (h, standing)
}

pub(super) fn acquire(h: &Harness, partitions: &[i32], progress: &[(i32, i64)]) {
    h.commands[0]
        .send(GroupCommand::Acquire {
            partitions: partitions.iter().map(|&p| ("t".to_string(), p)).collect(),
            progress: progress
                .iter()
                .map(|&(p, offset)| {
                    let stored = crate::progress::Stored {
                        offset,
                        topic_id: None,
                    };
                    (("t".into(), p), stored)
                })
                .collect(),
        })
        .unwrap();
}

/// The last progress stored for `partition` of topic `t` (any slot it had).
fn stored_for(h: &Harness, partition: i32) -> Option<i64> {
    let slots: Vec<usize> = h
        .lane(0)
        .book
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
    a.run_until("routes applied", |h| {
        !h.lane(0).book.known_routes().is_empty()
    });
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
    let (done, answered) = Reply::channel();
    a.commands[0]
        .send(GroupCommand::Release {
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
        .send(GroupCommand::Abandon(vec![("t".into(), 0)]))
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
    assert!(h.lane(0).is_idle() || h.lane(0).book.iter().all(|s| s.retired));
}

/// Ten records of `t[0]` held in flight by a target that does not answer (then let go), ten of
/// `t[1]` acknowledged.
fn holding_ten_of_partition_zero() -> (Harness, Standing) {
    let (mut h, standing) = member();
    h.source.produce("t", 0, 10);
    h.source.produce("t", 1, 10);
    h.targets[0].state().held.push(("t".into(), 0));
    h.start(0, &[], 2);
    acquire(&h, &[0, 1], &[]);
    h.run_until("t[1] copied, t[0] in flight", |h| {
        h.has(0, 1, 10) && h.targets[0].state().in_flight_len() >= 10
    });
    (h, standing)
}

/// The target answers again after the partition went to another member: its records, held
/// in flight meanwhile, must not land after the new owner's copies (before: the queue was
/// kept and sent later, interleaved with the new owner's).
#[test]
fn a_released_partitions_unacknowledged_records_are_purged_never_delivered_later() {
    for released_by in ["release", "abandon"] {
        let (mut h, _standing) = holding_ten_of_partition_zero();
        let partitions = vec![("t".to_string(), 0)];
        match released_by {
            "release" => {
                let (done, answer) = Reply::channel();
                h.commands[0]
                    .send(GroupCommand::Release { partitions, done })
                    .unwrap();
                h.run_until("the answer", |_| answer.try_recv().is_ok());
            }
            _ => {
                h.commands[0]
                    .send(GroupCommand::Abandon(partitions))
                    .unwrap();
                for _ in 0..20 {
                    h.copy.round();
                }
            }
        }
        h.targets[0].state().held.clear();
        h.source.produce("t", 1, 5);
        h.run_until("more of t[1]", |h| h.has(0, 1, 15));
        assert!(
            h.targets[0].log("t", 0).is_empty(),
            "{released_by}: a record of the partition let go landed"
        );
        // Its series go with it (a frozen lag gauge would be summed with the new owner's).
        h.copy.round();
        let metrics = h.observe.metrics.encode();
        let series = |partition: &str| {
            metrics
                .lines()
                .any(|l| l.starts_with("mirrorcast_offset_lag_records{") && l.contains(partition))
        };
        assert!(!series("partition=\"0\""), "{released_by}: {metrics}");
        assert!(series("partition=\"1\""), "{released_by}: {metrics}");
        assert_eq!(
            h.targets[0].log("t", 1),
            expected(1, 0..15),
            "{released_by}"
        );
    }
}

/// A lease that lapses with records in flight: they are purged, nothing more is sent until
/// the lease is renewed, then the copy goes on from the last acknowledged record.
#[test]
fn a_lapsed_lease_purges_what_is_in_flight_and_sends_nothing_until_renewed() {
    let (mut h, standing) = holding_ten_of_partition_zero();
    standing.set_lease(None);
    h.source.produce("t", 1, 5);
    for _ in 0..50 {
        h.copy.round();
    }
    h.targets[0].state().held.clear();
    for _ in 0..50 {
        h.copy.round();
    }
    assert!(
        h.targets[0].log("t", 0).is_empty(),
        "sent before the lapse, landed after"
    );
    assert_eq!(h.targets[0].log("t", 1).len(), 10, "sent without a lease");
    standing.set_lease(Some(Instant::now() + Duration::from_secs(600)));
    h.run_until("the copy again", |h| h.has(0, 0, 10) && h.has(0, 1, 15));
    assert_eq!(h.targets[0].log("t", 0), expected(0, 0..10));
    assert_eq!(h.targets[0].log("t", 1), expected(1, 0..15));
}

/// Partitions handed back and forth many times: the lane's book keeps only a bounded number of
/// retired slots (they are dropped when nothing in flight can name them), and every record is
/// copied once, in order, through all the moves.
#[test]
fn partitions_moving_back_and_forth_leave_a_bounded_book() {
    let (mut h, _) = member();
    h.start(0, &[], 2);
    h.run_until("routes applied", |h| {
        !h.lane(0).book.known_routes().is_empty()
    });
    let moves = 3 * crate::copy::book::COMPACT_AFTER;
    for round in 0..moves {
        let last = round as i64 - 1;
        let progress: Vec<(i32, i64)> = if round == 0 {
            Vec::new()
        } else {
            vec![(0, last), (1, last)]
        };
        acquire(&h, &[0, 1], &progress);
        h.source.produce("t", 0, 1);
        h.source.produce("t", 1, 1);
        h.run_until("the move's records", |h| {
            h.has(0, 0, round + 1) && h.has(0, 1, round + 1)
        });
        let (done, answered) = Reply::channel();
        h.commands[0]
            .send(GroupCommand::Release {
                partitions: vec![("t".into(), 0), ("t".into(), 1)],
                done,
            })
            .unwrap();
        h.run_until("the release", |_| answered.try_recv().is_ok());
    }
    let slots = h.lane(0).book.iter().count();
    assert!(
        slots <= 2 * crate::copy::book::COMPACT_AFTER + 2,
        "{slots} slots after {moves} moves of 2 partitions"
    );
    for partition in 0..2 {
        assert_eq!(
            h.targets[0].log("t", partition),
            expected(partition, 0..moves as i64)
        );
    }
}

/// A partition given after its topic was created again, with progress the previous owner
/// stored for the new topic, goes on right after that progress: the route this process was
/// given before the re-creation names the old topic's ID, and judged by it the partition was
/// copied again from its start (duplicates, seen with a group on Apache Kafka).
#[test]
fn a_partition_given_after_its_topic_was_created_again_goes_on_from_the_new_topics_progress() {
    let (mut h, _) = member();
    h.source.produce("t", 0, 10);
    h.start_identified(0, &[], None, Some("t-1"), 1);
    h.run_until("routes applied", |h| {
        !h.lane(0).book.known_routes().is_empty()
    });
    h.source.recreate("t", 0);
    h.source.produce("t", 0, 30);
    h.commands[0]
        .send(GroupCommand::Acquire {
            partitions: vec![("t".to_string(), 0)],
            progress: [(
                ("t".to_string(), 0),
                crate::progress::Stored {
                    offset: 19,
                    topic_id: Some(crate::kafka::cluster::TopicId("t-2".into())),
                },
            )]
            .into_iter()
            .collect(),
        })
        .unwrap();
    h.run_until("the rest of the new topic", |h| {
        h.targets[0].log("t", 0).len() >= 10
    });
    for _ in 0..20 {
        h.copy.round();
    }
    assert_eq!(
        h.targets[0].log("t", 0),
        expected_recreated(20..30),
        "only what the previous owner had not copied"
    );
    assert_eq!(h.lane(0).book[0].meters.recreations.get(), 0);
}
