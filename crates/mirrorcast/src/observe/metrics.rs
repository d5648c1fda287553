//! Prometheus metrics. MM2's `kafka.connect.mirror` metrics under Prometheus names and units
//! (record and byte counters, record age and replication latency as histograms), labelled
//! `source`, `target`, `topic`, `partition`; and what MM2 lacks: offset lag in records and
//! seconds per partition and per flow, flow state, time since the last copy, config sync runs
//! and failures, and process metrics.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use super::status::FlowState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowLabels {
    pub source: String,
    pub target: String,
}

/// A flow's transactions that ended one way (`committed` or `aborted`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransactionLabels {
    pub source: String,
    pub target: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub source: String,
    pub target: String,
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub source: String,
    pub target: String,
    pub state: String,
}

/// A consumer group of a flow's source, as the checkpoints see it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub source: String,
    pub target: String,
    pub group: String,
}

/// A reader of a source cluster: `shared` (the flows' common reader) or `catch-up <target>`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReaderLabels {
    pub source: String,
    pub reader: String,
}

/// A source cluster (the group its instances share).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn seconds_histogram() -> Histogram {
    // 1 ms to about 2 hours.
    Histogram::new(exponential_buckets(0.001, 2.0, 23))
}

pub struct Metrics {
    registry: Registry,
    pub records: Family<PartitionLabels, Counter>,
    pub bytes: Family<PartitionLabels, Counter>,
    pub record_age: Family<FlowLabels, Histogram, fn() -> Histogram>,
    pub replication_latency: Family<FlowLabels, Histogram, fn() -> Histogram>,
    pub lag_records: Family<PartitionLabels, Gauge>,
    pub lag_seconds: Family<PartitionLabels, FloatGauge>,
    pub flow_lag_records: Family<FlowLabels, Gauge>,
    pub flow_lag_seconds: Family<FlowLabels, FloatGauge>,
    pub flow_state: Family<StateLabels, Gauge>,
    pub since_last_copy: Family<FlowLabels, FloatGauge>,
    pub heartbeat_age: Family<FlowLabels, FloatGauge>,
    pub config_sync_runs: Family<FlowLabels, Counter>,
    pub config_sync_failures: Family<FlowLabels, Counter>,
    pub checkpoint_rounds: Family<FlowLabels, Counter>,
    pub checkpoint_latency: Family<FlowLabels, Histogram, fn() -> Histogram>,
    pub checkpoint_group_failures: Family<GroupLabels, Counter>,
    pub transactions: Family<TransactionLabels, Counter>,
    pub source_records_read: Family<ReaderLabels, Counter>,
    pub offset_resets: Family<PartitionLabels, Counter>,
    pub source_topic_recreations: Family<PartitionLabels, Counter>,
    pub records_lost_at_source: Family<PartitionLabels, Counter>,
    pub records_refused: Family<PartitionLabels, Counter>,
    pub partition_stopped: Family<PartitionLabels, Gauge>,
    pub group_partitions: Family<SourceLabels, Gauge>,
    pub group_leads: Family<SourceLabels, Gauge>,
    /// MM2's names as Strimzi exports them (`run --mm2-metrics`).
    pub mm2: Option<std::sync::Arc<super::mm2_family::Mm2Family>>,
}

impl Metrics {
    /// `mirrorcast_flow_state`: 1 for the flow's current state, 0 for the others.
    pub fn set_flow_state(&self, source: &str, target: &str, state: FlowState) {
        for candidate in FlowState::ALL {
            let labels = StateLabels {
                source: source.to_string(),
                target: target.to_string(),
                state: candidate.name().to_string(),
            };
            self.flow_state
                .get_or_create(&labels)
                .set(i64::from(candidate == state));
        }
    }

    /// Also MM2's metrics under Strimzi's names, the Connect worker's from `flows`.
    pub fn with_mm2_family(flows: std::sync::Arc<super::status::StatusBoard>) -> Self {
        let mut metrics = Self::new();
        let family = std::sync::Arc::new(super::mm2_family::Mm2Family::default());
        metrics
            .registry
            .register_collector(Box::new(super::mm2_family::Mm2Collector {
                family: family.clone(),
                flows,
            }));
        metrics.mm2 = Some(family);
        metrics
    }

    pub fn new() -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("mirrorcast");
        let records = Family::<PartitionLabels, Counter>::default();
        registry.register(
            "records",
            "Records copied and acknowledged by the target (MM2 record-count)",
            records.clone(),
        );
        let offset_resets = Family::<PartitionLabels, Counter>::default();
        registry.register(
            "offset_resets",
            "Times the source partition's offsets went back (topic re-created, truncated, cluster rebuilt): copying went on from the new offsets",
            offset_resets.clone(),
        );
        let source_topic_recreations = Family::<PartitionLabels, Counter>::default();
        registry.register(
            "source_topic_recreations",
            "Times the source topic was found deleted and created again (a new topic ID): the partition was copied again from the new topic's beginning",
            source_topic_recreations.clone(),
        );
        let records_lost_at_source = Family::<PartitionLabels, Counter>::default();
        registry.register(
            "records_lost_at_source",
            "Records deleted at the source (retention, DeleteRecords) before they were copied",
            records_lost_at_source.clone(),
        );
        let records_refused = Family::<PartitionLabels, Counter>::default();
        registry.register(
            "records_refused",
            "Records the target refused for good (too large, invalid timestamp, invalid record): stopped at, dead-lettered or skipped by errors.tolerance",
            records_refused.clone(),
        );
        let partition_stopped = Family::<PartitionLabels, Gauge>::default();
        registry.register(
            "partition_stopped",
            "1 while the partition's copy is stopped at a record the target refused (errors.tolerance=none)",
            partition_stopped.clone(),
        );
        let bytes = Family::<PartitionLabels, Counter>::default();
        registry.register_with_unit(
            "copied",
            "Key and value bytes copied and acknowledged (MM2 byte-count)",
            Unit::Bytes,
            bytes.clone(),
        );
        let record_age = Family::<FlowLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "record_age",
            "Age of a record when it is read from the source (MM2 record-age-ms)",
            Unit::Seconds,
            record_age.clone(),
        );
        let replication_latency =
            Family::<FlowLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram as fn() -> Histogram,
            );
        registry.register_with_unit("replication_latency", "From the record's timestamp to the target's acknowledgement (MM2 replication-latency-ms)", Unit::Seconds, replication_latency.clone());
        let lag_records = Family::<PartitionLabels, Gauge>::default();
        registry.register(
            "offset_lag_records",
            "Records in the source partition not yet acknowledged by the target",
            lag_records.clone(),
        );
        let lag_seconds = Family::<PartitionLabels, FloatGauge>::default();
        registry.register_with_unit("offset_lag", "How far the target is behind in time: now minus the timestamp of the last replicated record, 0 when caught up", Unit::Seconds, lag_seconds.clone());
        let flow_lag_records = Family::<FlowLabels, Gauge>::default();
        registry.register(
            "flow_offset_lag_records",
            "Sum of the partitions' offset lag of a flow",
            flow_lag_records.clone(),
        );
        let flow_lag_seconds = Family::<FlowLabels, FloatGauge>::default();
        registry.register_with_unit(
            "flow_offset_lag",
            "Largest time lag of a flow's partitions",
            Unit::Seconds,
            flow_lag_seconds.clone(),
        );
        let flow_state = Family::<StateLabels, Gauge>::default();
        registry.register(
            "flow_state",
            "1 for the state a flow is in (starting, running, degraded, failed, stopped)",
            flow_state.clone(),
        );
        let since_last_copy = Family::<FlowLabels, FloatGauge>::default();
        registry.register_with_unit(
            "since_last_copy",
            "Time since the target last acknowledged a record",
            Unit::Seconds,
            since_last_copy.clone(),
        );
        let heartbeat_age = Family::<FlowLabels, FloatGauge>::default();
        registry.register_with_unit(
            "heartbeat_age",
            "Age of the last heartbeat the target acknowledged",
            Unit::Seconds,
            heartbeat_age.clone(),
        );
        let config_sync_runs = Family::<FlowLabels, Counter>::default();
        registry.register(
            "topic_config_sync_runs",
            "Topic config sync rounds",
            config_sync_runs.clone(),
        );
        let config_sync_failures = Family::<FlowLabels, Counter>::default();
        registry.register(
            "topic_config_sync_failures",
            "Topic configs that could not be applied",
            config_sync_failures.clone(),
        );
        let checkpoint_rounds = Family::<FlowLabels, Counter>::default();
        registry.register(
            "checkpoint_rounds",
            "Checkpoint rounds of a flow (consumer group offsets translated and written to the target)",
            checkpoint_rounds.clone(),
        );
        let checkpoint_latency =
            Family::<FlowLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram as fn() -> Histogram,
            );
        registry.register_with_unit(
            "checkpoint_latency",
            "From reading a group's committed offsets at the source to the target acknowledging its checkpoints (MM2 checkpoint-latency-ms)",
            Unit::Seconds,
            checkpoint_latency.clone(),
        );
        let checkpoint_group_failures = Family::<GroupLabels, Counter>::default();
        registry.register(
            "checkpoint_group_failures",
            "Checkpoint rounds in which a group's checkpoints or its offset sync to the target failed (the other groups go on)",
            checkpoint_group_failures.clone(),
        );
        let transactions = Family::<TransactionLabels, Counter>::default();
        registry.register(
            "transactions",
            "Transactions of a flow on its target that ended (exactly once), by outcome: committed or aborted",
            transactions.clone(),
        );
        let source_records_read = Family::<ReaderLabels, Counter>::default();
        registry.register(
            "source_records_read",
            "Records read from a source cluster, per reader: the flows of a source share one \
             reader, so while every target keeps up this grows once per record, not once per target",
            source_records_read.clone(),
        );
        let group_partitions = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "group_partitions",
            "Source partitions the instances' group gives this process (instances.group.enabled)",
            group_partitions.clone(),
        );
        let group_leads = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "group_leads",
            "1 while this process leads the source's flows in its group: topic creation and sync, checkpoints and heartbeats run here (in every process while the source has no topic to share)",
            group_leads.clone(),
        );
        root.register_collector(Box::new(ProcessCollector));
        Metrics {
            registry: root,
            records,
            bytes,
            offset_resets,
            source_topic_recreations,
            records_lost_at_source,
            records_refused,
            partition_stopped,
            record_age,
            replication_latency,
            lag_records,
            lag_seconds,
            flow_lag_records,
            flow_lag_seconds,
            flow_state,
            since_last_copy,
            heartbeat_age,
            config_sync_runs,
            config_sync_failures,
            checkpoint_rounds,
            checkpoint_latency,
            checkpoint_group_failures,
            transactions,
            source_records_read,
            group_partitions,
            group_leads,
            mm2: None,
        }
    }

    /// Drops every series of a partition no longer copied here (handed over, or its topic
    /// gone): its gauges would stay frozen, and sums across processes count it twice.
    pub fn remove_partition(&self, labels: &PartitionLabels) {
        for family in [
            &self.records,
            &self.bytes,
            &self.offset_resets,
            &self.source_topic_recreations,
            &self.records_lost_at_source,
            &self.records_refused,
        ] {
            family.remove(labels);
        }
        self.partition_stopped.remove(labels);
        self.lag_records.remove(labels);
        self.lag_seconds.remove(labels);
        if let Some(mm2) = &self.mm2 {
            mm2.remove_partition(labels);
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl Metrics {
    /// The family a sample name belongs to (`mirrorcast_records_total`: `mirrorcast_records`).
    pub fn family_of(sample: &str) -> &str {
        ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|suffix| sample.strip_suffix(suffix))
            .unwrap_or(sample)
    }

    /// The name of every metric family a process can expose (as `# TYPE` names them: a
    /// counter's samples add `_total`, a histogram's `_bucket`, `_sum` and `_count`), for
    /// checking what dashboards and alert rules query. A family appears in an exposition only
    /// once it has a sample: this puts one in each.
    pub fn exposed_families() -> std::collections::BTreeSet<String> {
        let metrics = Metrics::new();
        let (source, target) = (String::from("a"), String::from("b"));
        let flow = FlowLabels {
            source: source.clone(),
            target: target.clone(),
        };
        let partition = PartitionLabels {
            source: source.clone(),
            target: target.clone(),
            topic: "t".into(),
            partition: 0,
        };
        for family in [
            &metrics.records,
            &metrics.bytes,
            &metrics.offset_resets,
            &metrics.source_topic_recreations,
            &metrics.records_lost_at_source,
            &metrics.records_refused,
        ] {
            family.get_or_create(&partition).inc();
        }
        for family in [&metrics.lag_records, &metrics.partition_stopped] {
            family.get_or_create(&partition).set(0);
        }
        metrics.lag_seconds.get_or_create(&partition).set(0.0);
        for family in [
            &metrics.record_age,
            &metrics.replication_latency,
            &metrics.checkpoint_latency,
        ] {
            family.get_or_create(&flow).observe(0.1);
        }
        metrics.flow_lag_records.get_or_create(&flow).set(0);
        for family in [
            &metrics.flow_lag_seconds,
            &metrics.since_last_copy,
            &metrics.heartbeat_age,
        ] {
            family.get_or_create(&flow).set(0.0);
        }
        for family in [
            &metrics.config_sync_runs,
            &metrics.config_sync_failures,
            &metrics.checkpoint_rounds,
        ] {
            family.get_or_create(&flow).inc();
        }
        metrics
            .checkpoint_group_failures
            .get_or_create(&GroupLabels {
                source: source.clone(),
                target: target.clone(),
                group: "g".into(),
            })
            .inc();
        metrics.set_flow_state(&source, &target, FlowState::ALL[0]);
        let transaction = TransactionLabels {
            source: source.clone(),
            target,
            outcome: "committed",
        };
        metrics.transactions.get_or_create(&transaction).inc();
        let reader = ReaderLabels {
            source: source.clone(),
            reader: "shared".into(),
        };
        metrics.source_records_read.get_or_create(&reader).inc();
        for family in [&metrics.group_partitions, &metrics.group_leads] {
            family
                .get_or_create(&SourceLabels {
                    source: source.clone(),
                })
                .set(0);
        }
        metrics
            .encode()
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|line| line.split(' ').next())
            .map(str::to_string)
            .collect()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The standard `process_*` metrics (as Prometheus' client libraries name them), read from
/// /proc by `procfs` at each scrape; a value /proc does not give is left out, not made up.
#[derive(Debug)]
struct ProcessCollector;

fn encode_gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use procfs::WithCurrentSystemInfo;
        let Ok(me) = procfs::process::Process::myself() else {
            return Ok(());
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / ticks);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time",
                Some(&Unit::Seconds),
                cpu.metric_type(),
            )?)?;
            let memory = [
                (
                    "process_resident_memory",
                    "Resident memory",
                    stat.rss_bytes().get(),
                ),
                ("process_virtual_memory", "Virtual memory", stat.vsize),
            ];
            for (name, help, bytes) in memory {
                encode_gauge(&mut encoder, name, help, Some(&Unit::Bytes), bytes as f64)?;
            }
            encode_gauge(
                &mut encoder,
                "process_threads",
                "Threads",
                None,
                stat.num_threads as f64,
            )?;
            if let Ok(boot) = procfs::boot_time_secs() {
                let started = boot as f64 + stat.starttime as f64 / ticks;
                encode_gauge(
                    &mut encoder,
                    "process_start_time",
                    "Start time of the process since the Unix epoch",
                    Some(&Unit::Seconds),
                    started,
                )?;
            }
        }
        if let Ok(open) = me.fd_count() {
            encode_gauge(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors",
                None,
                open as f64,
            )?;
        }
        if let Ok(limits) = me.limits() {
            if let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit {
                encode_gauge(
                    &mut encoder,
                    "process_max_fds",
                    "The most file descriptors the process may open",
                    None,
                    max as f64,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_mm2_metrics_under_prometheus_names() {
        let metrics = Metrics::new();
        let labels = PartitionLabels {
            source: "europe".into(),
            target: "na".into(),
            topic: "t".into(),
            partition: 0,
        };
        metrics.records.get_or_create(&labels).inc_by(3);
        metrics.bytes.get_or_create(&labels).inc_by(300);
        let flow = FlowLabels {
            source: "europe".into(),
            target: "na".into(),
        };
        metrics
            .replication_latency
            .get_or_create(&flow)
            .observe(0.02);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"mirrorcast_records_total{source="europe",target="na",topic="t",partition="0"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"mirrorcast_copied_bytes_total{source="europe",target="na",topic="t",partition="0"} 300"#), "{text}");
        assert!(
            text.contains("mirrorcast_replication_latency_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
        for family in [
            "process_cpu_seconds_total",
            "process_virtual_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
            "process_max_fds",
            "process_threads",
        ] {
            assert!(text.contains(&format!("\n{family} ")), "{family}: {text}");
        }
    }
}
