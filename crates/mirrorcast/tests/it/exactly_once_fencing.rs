//! Exactly once and fencing, without instances sharing a group, under continuous production:
//! - processes that overlap (a rolling update with surge, a double start): each newer process
//!   takes the flow's transactional ids over before it reads the progress, also the ids of an
//!   older process with more copier threads; the older one learns it was taken over and copies
//!   nothing more;
//! - a process frozen for longer than the transaction timeout: the target's coordinator aborts
//!   its open transactions and fences its producers, which is not a takeover: the copy goes on.
//!
//! Each time a `read_committed` reader on the target sees every source record once, in order.

use std::time::{Duration, Instant};

use localcluster::KafkaOptions;

use crate::common::*;

const TOPIC: &str = "events";
const PARTITIONS: i32 = 6;
const TAKEN_OVER: &str = "took europe->northamerica over";

/// `europe` → `northamerica` exactly once with `threads` copier threads, then `extra`.
fn exactly_once_config(clusters: &localcluster::Clusters, threads: usize, extra: &str) -> String {
    one_flow_config(
        clusters,
        &format!(
            "exactly.once.source.support = enabled\n\
             emit.checkpoints.enabled = false\n\
             instances.group.enabled = false\n\
             tasks.max = {threads}\n{extra}"
        ),
    )
}

/// Waits until the stored progress moved past what it is now on every partition.
fn progress_moves(target: &str, replicator: &Replicator) {
    let before = stored_offsets(target, TOPIC);
    progress_moves_past(target, TOPIC, PARTITIONS, &before, || replicator.log());
}

/// Whether a transaction is open on a partition of [`TOPIC`] on `bootstrap`: its last stable
/// offset (the end a `read_committed` reader sees) is below its end.
fn open_transactions(bootstrap: &str) -> bool {
    let watermarks = |isolation: &str| -> Vec<i64> {
        let consumer: rdkafka::consumer::BaseConsumer = client(bootstrap)
            .set("group.id", "mirrorcast-test-lso")
            .set("isolation.level", isolation)
            .create()
            .unwrap();
        (0..PARTITIONS)
            .map(|p| {
                rdkafka::consumer::Consumer::fetch_watermarks(
                    &consumer,
                    TOPIC,
                    p,
                    Duration::from_secs(10),
                )
                .map_or(-1, |(_, high)| high)
            })
            .collect()
    };
    let (stable, end) = (watermarks("read_committed"), watermarks("read_uncommitted"));
    stable.iter().zip(&end).any(|(s, e)| s < e)
}

/// Waits until `older` says a newer process took the flow over.
fn says_taken_over(older: &Replicator, newer: &Replicator) {
    assert!(
        wait_until(Duration::from_secs(90), || older.log().contains(TAKEN_OVER)),
        "the older process never said it was taken over\n{}\n--- newer ---\n{}",
        older.log(),
        newer.log()
    );
}

#[test]
fn overlapping_exactly_once_processes_with_different_thread_counts_copy_each_record_once() {
    let clusters = start_kafka_clusters(&["europe", "northamerica"], &KafkaOptions::default());
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    create_topic(&europe, TOPIC, PARTITIONS, &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = |threads: usize| {
        let dir = dir.path().join(format!("threads-{threads}"));
        std::fs::create_dir_all(&dir).unwrap();
        write_config(&dir, &exactly_once_config(&clusters, threads, ""))
    };
    let (four, two) = (config(4), config(2));
    let producer =
        BackgroundProducer::start_paced(&europe, TOPIC, PARTITIONS, 0, Duration::from_millis(5));

    // Four threads, then two beside them: the two must fence all four ids first.
    let first = Replicator::start(&four, &[]);
    progress_moves(&north, &first);
    let second = Replicator::start(&two, &[]);
    says_taken_over(&first, &second);
    progress_moves(&north, &second);
    // And four again beside the two.
    let third = Replicator::start(&four, &[]);
    says_taken_over(&second, &third);
    progress_moves(&north, &third);
    producer.stop();

    assert_each_record_committed_once(&europe, &north, &[&first, &second, &third]);
    let second_log = second.log();
    assert!(
        second_log.contains("fenced transactional ids mirrorcast.europe->northamerica.2..mirrorcast.europe->northamerica.3"),
        "{second_log}"
    );
    let third_log = third.log();
    assert!(
        !third_log.contains(TAKEN_OVER)
            && third_log.contains("took the flow's transactional ids over from"),
        "{third_log}"
    );
}

/// Waits until the target's progress reached the source's end, then checks that a
/// `read_committed` reader on the target finds every source record once, in order.
fn assert_each_record_committed_once(europe: &str, north: &str, replicators: &[&Replicator]) {
    let logs = || -> String {
        replicators
            .iter()
            .enumerate()
            .map(|(i, r)| format!("--- process {i} ---\n{}", r.log()))
            .collect()
    };
    let source_ends = end_offsets(europe, TOPIC);
    assert!(
        wait_until(Duration::from_secs(120), || progress_reached(
            north,
            "europe",
            TOPIC,
            &source_ends
        )),
        "the target's progress did not reach the source's end\n{}",
        logs()
    );
    let source = read_all(europe, TOPIC);
    let committed = read_with_offsets(north, TOPIC, "read_committed");
    for (partition, records) in &source {
        let copied: Vec<&TestRecord> = committed[partition].iter().map(|(_, r)| r).collect();
        let expected: Vec<&TestRecord> = records.iter().collect();
        assert!(
            copied == expected,
            "northamerica[{partition}]: {} committed record(s) for {} at the source\n{}",
            copied.len(),
            expected.len(),
            logs()
        );
    }
    println!(
        "{} source records, each committed once on northamerica",
        source.values().map(Vec::len).sum::<usize>()
    );
}

#[test]
fn a_transaction_the_target_timed_out_is_no_takeover_and_the_copy_goes_on() {
    let clusters = start_kafka_clusters(&["europe", "northamerica"], &KafkaOptions::default());
    let (europe, north) = (
        clusters.bootstrap("europe"),
        clusters.bootstrap("northamerica"),
    );
    create_topic(&europe, TOPIC, PARTITIONS, &[]);
    let dir = tempfile::tempdir().unwrap();
    let transaction_timeout = Duration::from_secs(5);
    let config = write_config(
        dir.path(),
        &exactly_once_config(
            &clusters,
            2,
            &format!(
                "northamerica.producer.delivery.timeout.ms = 3000\n\
                 northamerica.producer.transaction.timeout.ms = {}\n",
                transaction_timeout.as_millis()
            ),
        ),
    );
    let producer =
        BackgroundProducer::start_paced(&europe, TOPIC, PARTITIONS, 0, Duration::from_millis(20));
    let replicator = Replicator::start(&config, &[]);
    progress_moves(&north, &replicator);
    // Frozen with transactions open, past their timeout: the target's coordinator aborts them
    // and bumps the ids' epochs meanwhile (checked every 10 s by default).
    assert!(
        wait_until(Duration::from_secs(60), || {
            replicator.freeze(true);
            if open_transactions(&north) {
                return true;
            }
            replicator.freeze(false);
            false
        }),
        "no transaction was ever seen open on northamerica"
    );
    let frozen = Instant::now();
    assert!(
        wait_until(Duration::from_secs(90), || !open_transactions(&north)),
        "the target never aborted the frozen process's transactions"
    );
    assert!(frozen.elapsed() >= transaction_timeout);
    replicator.freeze(false);
    progress_moves(&north, &replicator);
    producer.stop();
    assert_each_record_committed_once(&europe, &north, &[&replicator]);
    let log = replicator.log();
    assert!(!log.contains(TAKEN_OVER), "{log}");
    assert!(
        log.contains("lost their transactional ids on northamerica while no other process took the flow over"),
        "the coordinator's abort did not fence the frozen producers, or it was not said\n{log}"
    );
    for line in log
        .lines()
        .filter(|l| l.contains("transactional id") && !l.contains("copying exactly once"))
    {
        println!("{line}");
    }
}

/// A unit that registers again reads the progress while other units keep committing theirs: a
/// `read_committed` reader alone stops at the first transaction still open (the last stable
/// offset) and misses the progress committed after it, so the unit would copy again what it
/// had committed. The read waits for the open transaction to end instead, and skips it when
/// it aborts.
#[test]
fn progress_committed_after_another_unit_s_open_transaction_is_read() {
    use mirrorcast::progress::codec::{encode_key, encode_value, DEDICATED_MODE_CONNECTOR};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let clusters = start_kafka_clusters(&["northamerica"], &KafkaOptions::default());
    let north = clusters.bootstrap("northamerica");
    let progress_topic = "mm2-offsets.europe.internal";
    create_topic(&north, progress_topic, 1, &[("cleanup.policy", "compact")]);
    let unit = |id: &str| -> BaseProducer {
        let producer: BaseProducer = client(&north).set("transactional.id", id).create().unwrap();
        producer.init_transactions(Duration::from_secs(30)).unwrap();
        producer.begin_transaction().unwrap();
        producer
    };
    let stores = |producer: &BaseProducer, partition: i32, offset: i64| {
        let key = encode_key(DEDICATED_MODE_CONNECTOR, "europe", TOPIC, partition);
        let value = encode_value(offset, None);
        producer
            .send(BaseRecord::to(progress_topic).key(&key).payload(&value))
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    };
    // Unit 0's transaction opens first and stays open; unit 1 commits after it.
    let open = unit("test-unit-0");
    stores(&open, 0, 10);
    let committed = unit("test-unit-1");
    stores(&committed, 1, 20);
    committed
        .commit_transaction(Duration::from_secs(30))
        .unwrap();

    let reader = {
        let north = north.clone();
        std::thread::spawn(move || stored_progress(&north, "europe"))
    };
    let returned_early = wait_until(Duration::from_secs(3), || reader.is_finished());
    open.abort_transaction(Duration::from_secs(30)).unwrap();
    let progress = reader.join().unwrap().expect("the progress was read");
    let offset = |partition: i32| {
        progress
            .get(&(TOPIC.to_string(), partition))
            .map(|stored| stored.offset)
    };
    assert_eq!(
        offset(1),
        Some(20),
        "unit 1's committed progress was missed (the read stopped at unit 0's open \
         transaction; returned before it ended: {returned_early})"
    );
    assert_eq!(offset(0), None, "unit 0's aborted progress was read");
    assert!(
        !returned_early,
        "the read did not wait for the open transaction"
    );
}
