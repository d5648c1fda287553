//! `mirrorcast offsets list | reset | alter` on Apache Kafka: refused while the flow runs (its
//! instances group has members, its heartbeats are fresh), then, once it is stopped, the moved
//! progress is where the next run starts: a partition reset back copies again from there, a
//! partition altered to the end skips what it held.

use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

fn offsets(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .arg("offsets")
        .arg(args[0])
        .arg(config)
        .args(["--source", "europe", "--target", "northamerica"])
        .args(&args[1..])
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The values of a partition's records, in order.
fn values(records: &std::collections::BTreeMap<i32, Vec<TestRecord>>, p: i32) -> Vec<Vec<u8>> {
    records[&p]
        .iter()
        .map(|r| r.value.clone().unwrap_or_default())
        .collect()
}

#[test]
fn offsets_reset_and_alter_move_a_stopped_flow_and_the_next_run_starts_there() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    let north = clusters.bootstrap("northamerica");
    create_topic(&europe, "events", 2, &[]);
    produce(&europe, "events", &numbered_records("first", 2, 0, 400));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &one_flow_config(&clusters, ""));
    let mut replicator = Replicator::start(&config, &[]);
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(90), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "not copied\n{}",
        replicator.log()
    );

    // While it runs: a dry run shows the move; writing it is refused, naming why.
    let dry = offsets(&config, &["reset", "--topic", "events", "--to-earliest"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("200 record(s) copied again"),
        "{}",
        text(&dry)
    );
    assert!(
        text(&dry).contains("dry run: nothing written"),
        "{}",
        text(&dry)
    );
    let refused = offsets(
        &config,
        &["reset", "--topic", "events", "--to-earliest", "--execute"],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains("nothing written: europe->northamerica runs (")
            && said.contains("the instances group mirrorcast.europe.northamerica has 1 member(s)")
            && said.contains("took a heartbeat europe->northamerica"),
        "{said}"
    );

    replicator.terminate(Duration::from_secs(30));
    let listed = offsets(&config, &["list"]);
    assert!(listed.status.success(), "{}", text(&listed));
    for p in 0..2 {
        let row = format!(
            "{:<40} {:>9} {:>12} {:>12} {:>12} {:>12}",
            "events", p, 200, 0, 200, 0
        );
        assert!(
            text(&listed).contains(&row),
            "no `{row}` in\n{}",
            text(&listed)
        );
    }

    // Stopped: more records arrive; partition 0 goes back to 150, partition 1 to its end.
    produce(&europe, "events", &numbered_records("second", 2, 400, 200));
    // Its heartbeats stay fresh for a few seconds after it stopped.
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(60), || {
            let out = offsets(
                &config,
                &[
                    "reset",
                    "--topic",
                    "events:0",
                    "--to-offset",
                    "150",
                    "--execute",
                ],
            );
            let ok = out.status.success();
            last = Some(text(&out));
            ok
        }),
        "reset refused after the flow stopped: {last:?}"
    );
    assert!(last.unwrap().contains("wrote 1 progress record(s)"));
    let altered = offsets(&config, &["alter", "--set", "events:1=latest", "--execute"]);
    assert!(altered.status.success(), "{}", text(&altered));
    assert!(
        text(&altered).contains("100 record(s) never copied"),
        "{}",
        text(&altered)
    );
    let out_of_range = offsets(&config, &["alter", "--set", "events:1=5000", "--execute"]);
    assert_eq!(out_of_range.status.code(), Some(1));
    assert!(
        text(&out_of_range)
            .contains("events[1]: offset 5000 is not in the source's log (0 to 300)"),
        "{}",
        text(&out_of_range)
    );
    let before_all = offsets(
        &config,
        &[
            "reset",
            "--all-topics",
            "--to-datetime",
            "2000-01-01T00:00:00Z",
        ],
    );
    assert!(
        text(&before_all).contains(&format!(
            "{:>12} {:>12}  150 record(s) copied again",
            150, 0
        )),
        "{}",
        text(&before_all)
    );

    let replicator = Replicator::start(&config, &[]);
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(90), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "not copied after the move\n{}",
        replicator.log()
    );
    let source = read_all(&europe, "events");
    let target = read_all(&north, "events");
    let (source0, target0) = (values(&source, 0), values(&target, 0));
    assert_eq!(
        target0[200..],
        source0[150..],
        "partition 0 copied again from 150 after the 200 it had"
    );
    assert_eq!(
        values(&target, 1),
        values(&source, 1)[..200],
        "partition 1 skipped what arrived while it was stopped"
    );
    produce(&europe, "events", &numbered_records("third", 2, 600, 20));
    let ends = end_offsets(&europe, "events");
    assert!(
        wait_until(Duration::from_secs(60), || progress_reached(
            &north, "europe", "events", &ends
        )),
        "new records not copied\n{}",
        replicator.log()
    );
    let (source1, target1) = (
        values(&read_all(&europe, "events"), 1),
        values(&read_all(&north, "events"), 1),
    );
    assert_eq!(target1[200..], source1[300..], "and copies what came after");
}
