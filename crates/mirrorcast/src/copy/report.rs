//! What the copy of one flow reports: per-record counters and histograms (atomics the copier
//! holds handles to), and about once a second the per-partition offsets and lag, as gauges and
//! as the flow's status snapshot. A flow copied by several threads ([`crate::ownership::shard`]) is
//! reported as one: each thread's part is kept in [`FlowShards`] and the flow's figures are
//! made from all of them.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::observe::metrics::{FlowLabels, PartitionLabels};
use crate::observe::mm2_family::SharedSourceStats;
use crate::observe::status::{now_ms, PartitionStatus};
use crate::observe::Observability;

/// The meters of one copied partition.
pub struct PartitionMeters {
    labels: PartitionLabels,
    metrics: std::sync::Arc<crate::observe::metrics::Metrics>,
    records: Counter,
    pub resets: Counter,
    pub recreations: Counter,
    pub lost_at_source: Counter,
    pub refused: Counter,
    /// 1 while stopped at a refused record.
    pub stopped: Gauge,
    bytes: Counter,
    lag_records: Gauge,
    lag_seconds: Gauge<f64, AtomicU64>,
    /// Timestamp of the last acknowledged record, for the time lag.
    last_acked_timestamp_ms: Option<i64>,
    /// MM2's measures of the partition, with `--mm2-metrics`.
    mm2: Option<SharedSourceStats>,
}

/// How a thread's copy goes, as it publishes.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyHealth {
    /// Reading or delivering fails, or the target leaves records unanswered.
    pub failing: bool,
    /// The target refuses records for good, or a partition stopped at one.
    pub needs_attention: bool,
}

/// One partition as the copier sees it when publishing.
pub struct PartitionView<'a> {
    pub topic: &'a str,
    pub remote_topic: &'a str,
    pub partition: i32,
    /// The source end offset the reader last saw.
    pub source_end: Option<i64>,
    pub last_acked: Option<i64>,
    /// The source offset up to which nothing is left to copy when it is past `last_acked + 1`:
    /// everything the lane was handed is acknowledged and its reader has moved past offsets
    /// that hold no record to copy (transaction markers, aborted or compacted records).
    pub read_through: Option<i64>,
    /// Where the partition is stopped, and why: a record the target refused for good.
    pub stopped_at: Option<(i64, &'a str)>,
    pub meters: &'a PartitionMeters,
}

/// What each copier thread of one flow last published, and how many of them see the target
/// stalled (said once for the flow, not once per thread).
#[derive(Default)]
pub struct FlowShards {
    parts: Mutex<Vec<Option<ShardReport>>>,
    stalled: AtomicUsize,
}

impl PartitionMeters {
    /// The partition is no longer copied here: its series go.
    pub fn forget(&self) {
        self.metrics.remove_partition(&self.labels);
    }
}

impl FlowShards {
    pub fn new(threads: usize) -> Arc<Self> {
        Arc::new(FlowShards {
            parts: Mutex::new(vec![None; threads.max(1)]),
            stalled: AtomicUsize::new(0),
        })
    }

    /// Stores thread `index`'s part; returns the flow's whole, from every thread that has
    /// published.
    fn combine(&self, index: usize, part: ShardReport) -> ShardReport {
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = parts.get_mut(index) {
            *slot = Some(part);
        }
        let mut whole = ShardReport::default();
        for part in parts.iter().flatten() {
            whole.partitions.extend(part.partitions.iter().cloned());
            whole.lag += part.lag;
            whole.lag_seconds = whole.lag_seconds.max(part.lag_seconds);
            whole.last_ack = whole.last_ack.max(part.last_ack);
            whole.records_copied += part.records_copied;
            whole.last_heartbeat_ms = whole.last_heartbeat_ms.max(part.last_heartbeat_ms);
            whole.copy_failing |= part.copy_failing;
            whole.needs_attention |= part.needs_attention;
            whole.stopped |= part.stopped;
        }
        whole
            .partitions
            .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        whole
    }
}

/// One thread's part of a flow's figures, or their sum.
#[derive(Clone, Default)]
struct ShardReport {
    partitions: Vec<PartitionStatus>,
    lag: i64,
    lag_seconds: f64,
    last_ack: Option<Instant>,
    records_copied: u64,
    last_heartbeat_ms: Option<i64>,
    copy_failing: bool,
    needs_attention: bool,
    stopped: bool,
}

pub struct FlowReporter {
    observe: Observability,
    /// Where the flow's threads meet, and which one this is.
    shards: Arc<FlowShards>,
    shard: usize,
    source: String,
    target: String,
    record_age: Histogram,
    replication_latency: Histogram,
    last_ack: Option<Instant>,
    records_copied: u64,
    /// The clock as of the last [`FlowReporter::tick`]: reading it per record cost more than a
    /// tenth of the copy thread's time.
    now: Instant,
    now_ms: i64,
    /// When the target last acknowledged a heartbeat (epoch ms).
    last_heartbeat_ms: Option<i64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn seconds_since(timestamp_ms: i64) -> f64 {
    (now_ms() - timestamp_ms).max(0) as f64 / 1000.0
}

impl FlowReporter {
    /// The reporter of a flow copied by one thread.
    #[cfg(test)]
    pub fn new(observe: Observability, source: &str, target: &str) -> Self {
        Self::for_thread(observe, source, target, FlowShards::new(1), 0)
    }

    /// The reporter of thread `shard` of a flow copied by the threads of `shards`.
    pub fn for_thread(
        observe: Observability,
        source: &str,
        target: &str,
        shards: Arc<FlowShards>,
        shard: usize,
    ) -> Self {
        let flow = FlowLabels {
            source: source.to_string(),
            target: target.to_string(),
        };
        FlowReporter {
            record_age: observe.metrics.record_age.get_or_create_owned(&flow),
            replication_latency: observe
                .metrics
                .replication_latency
                .get_or_create_owned(&flow),
            observe,
            shards,
            shard,
            source: source.to_string(),
            target: target.to_string(),
            last_ack: None,
            records_copied: 0,
            now: Instant::now(),
            now_ms: now_ms(),
            last_heartbeat_ms: None,
        }
    }

    /// The meters of `topic[partition]`, copied to `remote_topic`.
    pub fn partition(&self, topic: &str, remote_topic: &str, partition: i32) -> PartitionMeters {
        let labels = PartitionLabels {
            source: self.source.clone(),
            target: self.target.clone(),
            topic: topic.to_string(),
            partition,
        };
        let m = &self.observe.metrics;
        PartitionMeters {
            records: m.records.get_or_create_owned(&labels),
            resets: m.offset_resets.get_or_create_owned(&labels),
            recreations: m.source_topic_recreations.get_or_create_owned(&labels),
            lost_at_source: m.records_lost_at_source.get_or_create_owned(&labels),
            refused: m.records_refused.get_or_create_owned(&labels),
            stopped: m.partition_stopped.get_or_create_owned(&labels),
            bytes: m.bytes.get_or_create_owned(&labels),
            lag_records: m.lag_records.get_or_create_owned(&labels),
            lag_seconds: m.lag_seconds.get_or_create_owned(&labels),
            last_acked_timestamp_ms: None,
            mm2: m
                .mm2
                .as_ref()
                .map(|family| family.partition(&labels, remote_topic)),
            labels,
            metrics: m.clone(),
        }
    }

    /// Reads the clock for the records handled until the next tick (a batch): `now` from the
    /// lane's clock; the wall clock's milliseconds for the age of records, whose timestamps are
    /// the producers' wall clocks.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        self.now_ms = now_ms();
    }

    fn age(&self, timestamp_ms: i64) -> f64 {
        (self.now_ms - timestamp_ms).max(0) as f64 / 1000.0
    }

    /// A record of `meters`' partition was read from the source.
    pub fn read(&self, meters: &PartitionMeters, timestamp_ms: Option<i64>) {
        if let Some(ts) = timestamp_ms {
            let age = self.age(ts);
            self.record_age.observe(age);
            if let Some(mm2) = &meters.mm2 {
                lock(mm2).read(age * 1000.0, self.now_ms);
            }
        }
    }

    /// The target acknowledged a record.
    pub fn acknowledged(
        &mut self,
        meters: &mut PartitionMeters,
        bytes: u32,
        timestamp_ms: Option<i64>,
    ) {
        meters.records.inc();
        meters.bytes.inc_by(u64::from(bytes));
        if let Some(ts) = timestamp_ms {
            self.replication_latency.observe(self.age(ts));
            meters.last_acked_timestamp_ms = Some(ts);
        }
        if let Some(mm2) = &meters.mm2 {
            let latency_ms = timestamp_ms.map(|ts| self.age(ts) * 1000.0);
            lock(mm2).copied(1, u64::from(bytes), latency_ms, self.now_ms);
        }
        self.last_ack = Some(self.now);
        self.records_copied += 1;
    }

    /// A transaction committed `records` records of a partition (exactly once): they count as
    /// copied now, and their latency is until the commit (when a `read_committed` consumer
    /// sees them). The first and the last record's latency are observed.
    pub fn committed(
        &mut self,
        meters: &mut PartitionMeters,
        records: u64,
        bytes: u64,
        timestamps_ms: [Option<i64>; 2],
    ) {
        meters.records.inc_by(records);
        meters.bytes.inc_by(bytes);
        for ts in timestamps_ms.into_iter().flatten() {
            self.replication_latency.observe(self.age(ts));
        }
        if let Some(ts) = timestamps_ms[1] {
            meters.last_acked_timestamp_ms = Some(ts);
        }
        if let Some(mm2) = &meters.mm2 {
            let latency_ms = timestamps_ms[1].map(|ts| self.age(ts) * 1000.0);
            lock(mm2).copied(records, bytes, latency_ms, self.now_ms);
        }
        self.last_ack = Some(self.now);
        self.records_copied += records;
    }

    /// A transaction on the target ended so (`committed` or `aborted`).
    pub fn transaction_ended(&self, outcome: &'static str) {
        self.observe
            .metrics
            .transactions
            .get_or_create(&crate::observe::metrics::TransactionLabels {
                source: self.source.clone(),
                target: self.target.clone(),
                outcome,
            })
            .inc();
    }

    /// The flow cannot copy until someone acts (transactions refused, or another process has
    /// its transactional id): failed on the status, with `cause`.
    pub fn failed(&self, cause: &str) {
        self.observe
            .status
            .failed(&self.source, &self.target, cause);
    }

    /// The flow's state and last error on the status board, as `<state>: <message>`.
    #[cfg(test)]
    pub fn status(&self) -> String {
        let flows = self.observe.status.snapshot();
        let Some(flow) = flows
            .iter()
            .find(|f| f.source == self.source && f.target == self.target)
        else {
            return "no status".to_string();
        };
        let error = flow.last_error.as_ref().map_or("", |e| e.message.as_str());
        format!("{}: {error}", flow.state.name())
    }

    /// What made the flow fail is over.
    pub fn recovered(&self) {
        self.observe.status.restarted(&self.source, &self.target);
    }

    /// Records the target acknowledged since the start.
    pub fn records_copied(&self) -> u64 {
        self.records_copied
    }

    /// The target acknowledged a heartbeat.
    pub fn heartbeat_delivered(&mut self) {
        self.last_heartbeat_ms = Some(now_ms());
    }

    /// Publishes offsets, lag and state (about once a second).
    pub fn publish<'a>(
        &self,
        partitions: impl Iterator<Item = PartitionView<'a>>,
        health: CopyHealth,
        stopped: bool,
        now: Instant,
    ) {
        let mut statuses = Vec::new();
        let (mut flow_lag, mut flow_lag_seconds) = (0i64, 0f64);
        for view in partitions {
            let replicated = match (view.last_acked.map(|o| o + 1), view.read_through) {
                (Some(acked), Some(through)) => Some(acked.max(through)),
                (acked, through) => acked.or(through),
            };
            let lag = view
                .source_end
                .map(|end| (end - replicated.unwrap_or(0)).max(0));
            let lag_seconds = lag.map(|lag| match (lag, view.meters.last_acked_timestamp_ms) {
                (0, _) => 0.0,
                (_, Some(ts)) => seconds_since(ts),
                // Nothing replicated yet: behind by as long as the copy has been waiting.
                (_, None) => 0.0,
            });
            if let Some(lag) = lag {
                view.meters.lag_records.set(lag);
                flow_lag += lag;
            }
            if let Some(seconds) = lag_seconds {
                view.meters.lag_seconds.set(seconds);
                flow_lag_seconds = flow_lag_seconds.max(seconds);
            }
            statuses.push(PartitionStatus {
                topic: view.topic.to_string(),
                remote_topic: view.remote_topic.to_string(),
                partition: view.partition,
                source_end_offset: view.source_end,
                replicated_offset: replicated,
                lag_records: lag,
                lag_seconds,
                stopped_at_offset: view.stopped_at.map(|(offset, _)| offset),
                stop_reason: view.stopped_at.map(|(_, reason)| reason.to_string()),
            });
        }
        let whole = self.shards.combine(
            self.shard,
            ShardReport {
                partitions: statuses,
                lag: flow_lag,
                lag_seconds: flow_lag_seconds,
                last_ack: self.last_ack,
                records_copied: self.records_copied,
                last_heartbeat_ms: self.last_heartbeat_ms,
                copy_failing: health.failing,
                needs_attention: health.needs_attention,
                stopped,
            },
        );
        let m = &self.observe.metrics;
        let flow = FlowLabels {
            source: self.source.clone(),
            target: self.target.clone(),
        };
        m.flow_lag_records.get_or_create(&flow).set(whole.lag);
        m.flow_lag_seconds
            .get_or_create(&flow)
            .set(whole.lag_seconds);
        let since_last_copy = whole
            .last_ack
            .map(|at| now.saturating_duration_since(at).as_secs_f64());
        if let Some(seconds) = since_last_copy {
            m.since_last_copy.get_or_create(&flow).set(seconds);
        }
        let heartbeat_age = whole.last_heartbeat_ms.map(seconds_since);
        if let Some(age) = heartbeat_age {
            m.heartbeat_age.get_or_create(&flow).set(age);
        }
        let state = self.observe.status.update(&self.source, &self.target, |s| {
            s.partitions = whole.partitions;
            s.copy_failing = whole.copy_failing;
            s.needs_attention = whole.needs_attention;
            s.stopped = whole.stopped;
            s.records_copied = whole.records_copied;
            s.seconds_since_last_copy = since_last_copy;
            s.last_copy_at_ms = since_last_copy.map(|secs| now_ms() - (secs * 1000.0) as i64);
            s.heartbeat_age_seconds = heartbeat_age;
        });
        m.set_flow_state(&self.source, &self.target, state);
    }

    /// This thread sees the target stalled: true if no other thread of the flow did (say it).
    pub fn stall_began(&self) -> bool {
        self.shards.stalled.fetch_add(1, Ordering::SeqCst) == 0
    }

    /// This thread sees the target answer again: true if no thread of the flow still sees it
    /// stalled (say it).
    pub fn stall_ended(&self) -> bool {
        self.shards.stalled.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// Records an error as the flow's last error.
    pub fn error(&self, message: &str) {
        self.observe
            .status
            .error(&self.source, &self.target, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(topic: &str, lag: i64, copied: u64, failing: bool) -> ShardReport {
        ShardReport {
            partitions: vec![PartitionStatus {
                topic: topic.into(),
                remote_topic: topic.into(),
                partition: 0,
                source_end_offset: None,
                replicated_offset: None,
                lag_records: Some(lag),
                lag_seconds: None,
                stopped_at_offset: None,
                stop_reason: None,
            }],
            lag,
            lag_seconds: lag as f64,
            records_copied: copied,
            copy_failing: failing,
            ..ShardReport::default()
        }
    }

    #[test]
    fn a_flows_figures_are_those_of_all_its_threads() {
        let shards = FlowShards::new(2);
        assert_eq!(
            shards.combine(0, part("b", 5, 10, false)).records_copied,
            10
        );
        let whole = shards.combine(1, part("a", 7, 3, true));
        assert_eq!((whole.lag, whole.lag_seconds), (12, 7.0));
        assert_eq!(whole.records_copied, 13);
        assert!(whole.copy_failing, "one thread failing is the flow failing");
        let topics: Vec<&str> = whole.partitions.iter().map(|p| p.topic.as_str()).collect();
        assert_eq!(topics, ["a", "b"]);
        // A thread's new figures replace its old ones.
        let again = shards.combine(0, part("b", 0, 20, false));
        assert_eq!((again.lag, again.records_copied), (7, 23));
    }

    #[test]
    fn a_stalled_target_is_said_once_per_flow_whatever_its_threads_see() {
        let shards = FlowShards::new(2);
        let thread =
            |i| FlowReporter::for_thread(Observability::new(), "eu", "na", shards.clone(), i);
        let (first, second) = (thread(0), thread(1));
        assert!(first.stall_began(), "the first to see it says it");
        assert!(!second.stall_began());
        assert!(!first.stall_ended(), "the other still sees it");
        assert!(second.stall_ended(), "the last one says it is over");
    }
}
