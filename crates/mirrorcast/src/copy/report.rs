//! What the copy of one flow reports: per-record counters and histograms (atomics the copier
//! holds handles to), and about once a second the per-partition offsets and lag, as gauges and
//! as the flow's status snapshot.

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::AtomicU64;

use crate::observe::metrics::{FlowLabels, PartitionLabels};
use crate::observe::status::{now_ms, PartitionStatus};
use crate::observe::Observability;

/// The meters of one copied partition.
pub struct PartitionMeters {
    records: Counter,
    pub resets: Counter,
    pub lost_at_source: Counter,
    pub refused: Counter,
    /// 1 while stopped at a refused record.
    pub stopped: Gauge,
    bytes: Counter,
    lag_records: Gauge,
    lag_seconds: Gauge<f64, AtomicU64>,
    /// Timestamp of the last acknowledged record, for the time lag.
    last_acked_timestamp_ms: Option<i64>,
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

pub struct FlowReporter {
    observe: Observability,
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

fn seconds_since(timestamp_ms: i64) -> f64 {
    (now_ms() - timestamp_ms).max(0) as f64 / 1000.0
}

impl FlowReporter {
    pub fn new(observe: Observability, source: &str, target: &str) -> Self {
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
            source: source.to_string(),
            target: target.to_string(),
            last_ack: None,
            records_copied: 0,
            now: Instant::now(),
            now_ms: now_ms(),
            last_heartbeat_ms: None,
        }
    }

    pub fn partition(&self, topic: &str, partition: i32) -> PartitionMeters {
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
            lost_at_source: m.records_lost_at_source.get_or_create_owned(&labels),
            refused: m.records_refused.get_or_create_owned(&labels),
            stopped: m.partition_stopped.get_or_create_owned(&labels),
            bytes: m.bytes.get_or_create_owned(&labels),
            lag_records: m.lag_records.get_or_create_owned(&labels),
            lag_seconds: m.lag_seconds.get_or_create_owned(&labels),
            last_acked_timestamp_ms: None,
        }
    }

    /// Reads the clock for the records handled until the next tick (a batch).
    pub fn tick(&mut self) {
        self.now = Instant::now();
        self.now_ms = now_ms();
    }

    fn age(&self, timestamp_ms: i64) -> f64 {
        (self.now_ms - timestamp_ms).max(0) as f64 / 1000.0
    }

    /// A record was read from the source.
    pub fn read(&self, timestamp_ms: Option<i64>) {
        if let Some(ts) = timestamp_ms {
            self.record_age.observe(self.age(ts));
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
        self.last_ack = Some(self.now);
        self.records_copied += 1;
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
        copy_failing: bool,
        stopped: bool,
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
        let m = &self.observe.metrics;
        let flow = FlowLabels {
            source: self.source.clone(),
            target: self.target.clone(),
        };
        m.flow_lag_records.get_or_create(&flow).set(flow_lag);
        m.flow_lag_seconds
            .get_or_create(&flow)
            .set(flow_lag_seconds);
        let since_last_copy = self.last_ack.map(|at| at.elapsed().as_secs_f64());
        if let Some(seconds) = since_last_copy {
            m.since_last_copy.get_or_create(&flow).set(seconds);
        }
        let heartbeat_age = self.last_heartbeat_ms.map(seconds_since);
        if let Some(age) = heartbeat_age {
            m.heartbeat_age.get_or_create(&flow).set(age);
        }
        let records_copied = self.records_copied;
        let state = self.observe.status.update(&self.source, &self.target, |s| {
            s.partitions = statuses;
            s.copy_failing = copy_failing;
            s.stopped = stopped;
            s.records_copied = records_copied;
            s.seconds_since_last_copy = since_last_copy;
            s.last_copy_at_ms = since_last_copy.map(|secs| now_ms() - (secs * 1000.0) as i64);
            s.heartbeat_age_seconds = heartbeat_age;
        });
        m.set_flow_state(&self.source, &self.target, state);
    }

    /// Records an error as the flow's last error.
    pub fn error(&self, message: &str) {
        self.observe
            .status
            .error(&self.source, &self.target, message);
    }
}
