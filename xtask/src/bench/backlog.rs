//! One run of the backlog measurements: per record size and target set, the brokers' own
//! figures, mirrorcast in each variant, MM2 and the Python peer; then the latencies.

use std::path::Path;

use anyhow::Result;
use localcluster::{Broker, Clusters, Storage};

use super::clients::{consume_all, create_topic, produce};
use super::cpu::{brokers_cpu, cpu_and_peak};
use super::latency::latency;
use super::mirrorcast::measure_mirrorcast;
use super::mm2::mm2_copy;
use super::python::python_copy;
use super::{Options, Run, TOPIC};

pub(super) fn run_once(
    options: &Options,
    binary: &Path,
    out_dir: &Path,
    python: &Path,
    root: &Path,
) -> Result<Run> {
    let broker = options.broker;
    let mut results = Vec::new();
    // `--megabytes 0`: the latency part only.
    let sizes = if options.megabytes == 0 {
        &[][..]
    } else {
        &options.sizes[..]
    };
    for &size in sizes {
        let count = options.megabytes * 1024 * 1024 / size as u64;
        let mb = (count * size as u64) as f64 / 1e6;
        println!("== {size} B records: {count} records, {mb:.0} MB backlog");
        let target_sets = [vec!["northamerica"], vec!["northamerica", "southamerica"]];
        for targets in target_sets
            .into_iter()
            .filter(|t| options.targets.contains(&t.len()))
        {
            let mut names = vec!["europe"];
            names.extend(targets.iter().copied());
            let clusters = Clusters::start_on(broker, &names, Storage::Memory)?;
            let europe = clusters.bootstrap("europe");
            create_topic(&europe, TOPIC)?;
            let compression = options.source_compression.as_str();
            let produce_source = produce(&europe, TOPIC, count, size, compression)?;
            let mut row = serde_json::json!({ "record_bytes": size, "records": count, "megabytes": mb, "targets": targets.len() });
            if targets.len() == 1 {
                let consume = consume_all(&europe, TOPIC, count)?;
                // Every measurement writes into an empty cluster of its own: this broker gets
                // slower as it holds more, which would favour whichever ran first.
                let fresh = Clusters::start_on(broker, &["raw"], Storage::Memory)?;
                let target = fresh.bootstrap("raw");
                create_topic(&target, "raw")?;
                let broker = brokers_cpu(&fresh, &["raw"]);
                let client = cpu_and_peak(std::process::id()).0;
                let produce_target = produce(&target, "raw", count, size, compression)?;
                let gb = mb / 1000.0;
                row["raw_producer_broker_cpu_s_per_gb"] =
                    ((brokers_cpu(&fresh, &["raw"]) - broker) / gb).into();
                drop(fresh);
                row["raw_producer_client_cpu_s_per_gb"] =
                    ((cpu_and_peak(std::process::id()).0 - client) / gb).into();
                row["raw_producer_source_mb_s"] = (mb / produce_source).into();
                row["raw_producer_target_mb_s"] = (mb / produce_target).into();
                row["raw_consumer_mb_s"] = (mb / consume).into();
            }
            // One row per copier-thread count (`tasks.max`), each into targets of its own;
            // MM2 and Python once, with the first.
            let thread_counts: Vec<Option<usize>> = if options.copier_threads.is_empty() {
                vec![None]
            } else {
                options.copier_threads.iter().copied().map(Some).collect()
            };
            let process_counts = if options.instances.is_empty() {
                vec![1]
            } else {
                options.instances.clone()
            };
            let modes = if options.exactly_once {
                &[false, true][..]
            } else {
                &[false][..]
            };
            let planes = &options.data_planes;
            let variants: Vec<(Option<usize>, usize, bool, &str)> = process_counts
                .iter()
                .flat_map(|&n| thread_counts.iter().map(move |&t| (t, n)))
                .flat_map(|(t, n)| modes.iter().map(move |&eos| (t, n, eos)))
                .flat_map(|(t, n, eos)| planes.iter().map(move |p| (t, n, eos, p.as_str())))
                .collect();
            let base = row;
            for (variant, (threads, instances, exactly_once, plane)) in
                variants.into_iter().enumerate()
            {
                let mut row = base.clone();
                if let Some(threads) = threads {
                    row["copier_threads"] = threads.into();
                }
                row["instances"] = instances.into();
                row["exactly_once"] = u8::from(exactly_once).into();
                row["data_plane"] = plane.into();
                row["source_compression"] = options.source_compression.clone().into();
                let fresh_targets;
                let into = if variant == 0 {
                    &clusters
                } else {
                    fresh_targets = Clusters::start_on(broker, &targets, Storage::Memory)?;
                    &fresh_targets
                };
                let sizes = (count, mb);
                measure_mirrorcast(
                    binary,
                    out_dir,
                    &clusters,
                    into,
                    &targets,
                    (threads, instances, exactly_once, plane),
                    sizes,
                    &mut row,
                )?;
                if variant == 0 {
                    let seconds = row["replication_seconds"].as_f64().unwrap_or(f64::NAN);
                    if broker == Broker::Kafka && options.mm2 {
                        // A copy MM2 could not finish is a result too: say where it stopped.
                        let mm2 = mm2_copy(broker, out_dir, &europe, targets.len(), count, mb)
                            .unwrap_or_else(|e| {
                                println!("MM2: {e:#}");
                                serde_json::json!({ "failed": format!("{e:#}") })
                            });
                        let (ours, theirs) =
                            (&row["cpu_seconds_per_gb"], &mm2["cpu_seconds_per_gb"]);
                        if let (Some(ours), Some(theirs)) = (ours.as_f64(), theirs.as_f64()) {
                            // MB per replicator CPU-second, mirrorcast's over MM2's.
                            row["mb_per_cpu_s_over_mm2"] = (theirs / ours).into();
                        }
                        if let (Some(ours), Some(theirs)) =
                            (row["peak_rss_mib"].as_f64(), mm2["peak_rss_mib"].as_f64())
                        {
                            row["rss_over_mm2"] = (ours / theirs).into();
                        }
                        row["mm2"] = mm2;
                    }
                    if targets.len() == 1 {
                        let fresh = Clusters::start_on(broker, &["python"], Storage::Memory)?;
                        let target = fresh.bootstrap("python");
                        create_topic(&target, "python")?;
                        let python_seconds =
                            python_copy(python, root, &europe, &target, TOPIC, "python", count)?;
                        row["python_mb_s"] = (mb / python_seconds).into();
                        row["mirrorcast_over_python"] = (python_seconds / seconds).into();
                    }
                }
                println!("{}", serde_json::to_string(&row)?);
                results.push(row);
            }
        }
    }
    let latency = latency(broker, options.mm2, options.exactly_once, binary, out_dir)?;
    println!("latency: {latency}");
    Ok(Run {
        backlog: results,
        latency,
    })
}
