//! Summing the runs up (median and spread of every figure) and printing the table.

use super::Run;

/// Median and spread (min, max) of every number over the runs, row by row: the same shape as a
/// run, each number replaced by `{"median", "min", "max"}`.
pub(super) fn summarize(runs: &[Run]) -> serde_json::Value {
    fn combine(values: &[&serde_json::Value]) -> serde_json::Value {
        match values.first() {
            Some(serde_json::Value::Object(first)) => first
                .keys()
                .map(|k| {
                    let inner: Vec<&serde_json::Value> =
                        values.iter().filter_map(|v| v.get(k)).collect();
                    (k.clone(), combine(&inner))
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
            Some(serde_json::Value::Number(_)) => {
                let mut numbers: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                numbers.sort_by(f64::total_cmp);
                let median = numbers[numbers.len() / 2];
                serde_json::json!({ "median": median, "min": numbers[0], "max": numbers[numbers.len() - 1] })
            }
            // Text (e.g. why MM2 failed): every run's, without repeats.
            Some(serde_json::Value::String(_)) => {
                let mut texts: Vec<&str> = values.iter().filter_map(|v| v.as_str()).collect();
                texts.dedup();
                texts.join("; ").into()
            }
            Some(other) => (*other).clone(),
            None => serde_json::Value::Null,
        }
    }
    let rows = runs.first().map_or(0, |r| r.backlog.len());
    let backlog: Vec<serde_json::Value> = (0..rows)
        .map(|i| combine(&runs.iter().map(|r| &r.backlog[i]).collect::<Vec<_>>()))
        .collect();
    let latency = combine(&runs.iter().map(|r| &r.latency).collect::<Vec<_>>());
    serde_json::json!({ "backlog": backlog, "latency_ms": latency })
}

/// Prints the medians, with the spread (min-max over the runs) of the figures that vary most.
pub(super) fn print_table(summary: &serde_json::Value) {
    let median = |v: &serde_json::Value| v["median"].as_f64();
    let num = |v: &serde_json::Value, digits: usize| {
        median(v).map_or("-".to_string(), |m| format!("{m:.digits$}"))
    };
    let spread = |v: &serde_json::Value| match (median(v), v["min"].as_f64(), v["max"].as_f64()) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.1} ({lo:.1}-{hi:.1})"),
        _ => "-".to_string(),
    };
    println!("\nMedian of the runs; (min-max) where shown.\n");
    println!("| record | source compression | data plane | targets | processes | copier threads | exactly once | raw producer MB/s | raw consumer MB/s | mirrorcast MB/s | records/s | ÷ raw producer | source reads/record | mirrorcast CPU s/GB | mirrorcast cores busy | all cores busy | brokers' CPU s/GB | target ÷ source bytes | peak RSS MiB | MM2 MB/s | MM2 CPU s/GB | MM2 peak RSS MiB | MB per CPU-s ÷ MM2 | RSS ÷ MM2 | Python MB/s |");
    println!(
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in summary["backlog"].as_array().into_iter().flatten() {
        println!(
            "| {} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["record_bytes"]["median"],
            r["source_compression"].as_str().unwrap_or("none"),
            r["data_plane"].as_str().unwrap_or("records"),
            r["targets"]["median"],
            median(&r["instances"]).map_or("1".to_string(), |n| n.to_string()),
            median(&r["copier_threads"]).map_or("default".to_string(), |n| n.to_string()),
            if median(&r["exactly_once"]) == Some(1.0) { "yes" } else { "no" },
            num(&r["raw_producer_target_mb_s"], 1),
            num(&r["raw_consumer_mb_s"], 1),
            spread(&r["replication_mb_s"]),
            num(&r["replication_records_s"], 0),
            num(&r["replication_over_raw_producer"], 2),
            num(&r["source_reads_per_record"], 2),
            spread(&r["cpu_seconds_per_gb"]),
            num(&r["mirrorcast_cores_busy"], 2),
            num(&r["replication_cores_busy"], 2),
            num(&r["replication_brokers_cpu_s_per_gb"], 1),
            num(&r["target_over_source_bytes"], 3),
            num(&r["peak_rss_mib"], 0),
            spread(&r["mm2"]["mb_s"]),
            spread(&r["mm2"]["cpu_seconds_per_gb"]),
            num(&r["mm2"]["peak_rss_mib"], 0),
            num(&r["mb_per_cpu_s_over_mm2"], 2),
            num(&r["rss_over_mm2"], 2),
            num(&r["python_mb_s"], 1),
        );
    }
    for r in summary["backlog"].as_array().into_iter().flatten() {
        if let Some(failed) = r["mm2"]["failed"].as_str() {
            println!(
                "\nMM2, {} B, {} target(s), did not finish in some run: {failed}",
                r["record_bytes"]["median"], r["targets"]["median"]
            );
        }
    }
    let latency = &summary["latency_ms"];
    println!(
        "\nlatency at 5,000 records/s, 100 B, fresh clusters, 10 s once warm (see warm_up_seconds in results.json), ms, median (min-max) of the runs:"
    );
    for (what, l) in [
        (
            "broker alone (produce -> consume, one cluster)",
            &latency["broker"],
        ),
        ("mirrorcast (source -> target)", &latency["mirrorcast"]),
        (
            "mirrorcast exactly once (source -> target, read_committed)",
            &latency["mirrorcast_exactly_once"],
        ),
        ("MM2 (source -> target)", &latency["mm2"]),
    ] {
        if l.is_null() {
            continue;
        }
        println!(
            "  {what}: p50 {}, p99 {}, max {}",
            spread(&l["p50"]),
            spread(&l["p99"]),
            spread(&l["max"])
        );
    }
}
