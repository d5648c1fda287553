//! MM2's own metrics under the names Strimzi's Prometheus JMX exporter rules give them
//! (Strimzi 0.49.1 and later, Kafka 4: `kafka_connect_mirror_mirrorsourceconnector_*` per
//! source, target, remote topic and partition; `..._mirrorcheckpointconnector_*` per source,
//! target, group, remote topic and partition; and the Connect worker's connector and task
//! counts and statuses its dashboard and alerts read), so dashboards and alerts written for
//! Strimzi's MirrorMaker 2 keep working (`run --mm2-metrics`). All gauges, as the exporter's
//! rules type them. The values are MM2's: counts since the start, the last value, rates and
//! min/max/average over Kafka's two 30-second samples ([`super::windowed`]); a min, max or
//! average with no sample in the window is left out (MM2 reports NaN).
//!
//! Invariant: a partition's series exist while it is copied here and go with it (hand-over,
//! deletion), as mirrorcast's own do; a group's with the group.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use super::metrics::{GroupLabels, PartitionLabels};
use super::status::{now_ms, FlowState, StatusBoard};
use super::windowed::Windowed;

/// What MM2's source connector measures of one partition.
#[derive(Debug)]
pub struct SourceStats {
    /// The remote topic on the target, which MM2's `topic` tag names.
    remote_topic: String,
    records: u64,
    bytes: u64,
    record_rate: Windowed,
    byte_rate: Windowed,
    record_age_ms: Windowed,
    replication_latency_ms: Windowed,
    last_record_age_ms: Option<f64>,
    last_replication_latency_ms: Option<f64>,
}

impl SourceStats {
    fn new(remote_topic: &str, now_ms: i64) -> Self {
        SourceStats {
            remote_topic: remote_topic.to_string(),
            records: 0,
            bytes: 0,
            record_rate: Windowed::new(now_ms),
            byte_rate: Windowed::new(now_ms),
            record_age_ms: Windowed::new(now_ms),
            replication_latency_ms: Windowed::new(now_ms),
            last_record_age_ms: None,
            last_replication_latency_ms: None,
        }
    }

    /// A record was read, `age_ms` after its timestamp.
    pub fn read(&mut self, age_ms: f64, now_ms: i64) {
        self.record_age_ms.record(age_ms, now_ms);
        self.last_record_age_ms = Some(age_ms);
    }

    /// The target acknowledged `records` records of `bytes`, the last `latency_ms` after its
    /// timestamp.
    pub fn copied(&mut self, records: u64, bytes: u64, latency_ms: Option<f64>, now_ms: i64) {
        self.records += records;
        self.bytes += bytes;
        self.record_rate.record(records as f64, now_ms);
        self.byte_rate.record(bytes as f64, now_ms);
        if let Some(latency) = latency_ms {
            self.replication_latency_ms.record(latency, now_ms);
            self.last_replication_latency_ms = Some(latency);
        }
    }

    /// MM2's attribute names and values now.
    fn values(&self, now_ms: i64) -> Vec<(&'static str, Option<f64>)> {
        let w = |stat: &Windowed| [stat.min(now_ms), stat.max(now_ms), stat.avg(now_ms)];
        let [age_min, age_max, age_avg] = w(&self.record_age_ms);
        let [lat_min, lat_max, lat_avg] = w(&self.replication_latency_ms);
        vec![
            ("record_count", Some(self.records as f64)),
            ("record_rate", Some(self.record_rate.rate(now_ms))),
            ("byte_count", Some(self.bytes as f64)),
            ("byte_rate", Some(self.byte_rate.rate(now_ms))),
            ("record_age_ms", self.last_record_age_ms),
            ("record_age_ms_min", age_min),
            ("record_age_ms_max", age_max),
            ("record_age_ms_avg", age_avg),
            ("replication_latency_ms", self.last_replication_latency_ms),
            ("replication_latency_ms_min", lat_min),
            ("replication_latency_ms_max", lat_max),
            ("replication_latency_ms_avg", lat_avg),
        ]
    }
}

/// What MM2's checkpoint connector measures of one group's partition.
#[derive(Debug)]
struct CheckpointStats {
    latency_ms: Windowed,
    last_ms: f64,
}

/// A group's checkpointed partition: the group and the remote topic's partition on the target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CheckpointKey {
    source: String,
    target: String,
    group: String,
    topic: String,
    partition: i32,
}

pub type SharedSourceStats = Arc<Mutex<SourceStats>>;

/// A gauge's samples: label set and value.
type Samples = Vec<(Vec<(String, String)>, f64)>;

/// The family's series, kept until their partition or group goes.
#[derive(Debug, Default)]
pub struct Mm2Family {
    partitions: Mutex<BTreeMap<(String, String, String, i32), SharedSourceStats>>,
    checkpoints: Mutex<BTreeMap<CheckpointKey, CheckpointStats>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(labels: &PartitionLabels) -> (String, String, String, i32) {
    (
        labels.source.clone(),
        labels.target.clone(),
        labels.topic.clone(),
        labels.partition,
    )
}

impl Mm2Family {
    /// The stats of a partition copied here to `remote_topic` (created on first use).
    pub fn partition(&self, labels: &PartitionLabels, remote_topic: &str) -> SharedSourceStats {
        lock(&self.partitions)
            .entry(key(labels))
            .or_insert_with(|| Arc::new(Mutex::new(SourceStats::new(remote_topic, now_ms()))))
            .clone()
    }

    pub fn remove_partition(&self, labels: &PartitionLabels) {
        lock(&self.partitions).remove(&key(labels));
    }

    /// A checkpoint of `group` for `topic[partition]` (remote, on the target) was acknowledged
    /// `latency_ms` after its offsets were read.
    pub fn checkpointed(&self, group: &GroupLabels, topic: &str, partition: i32, latency_ms: f64) {
        let now = now_ms();
        let key = CheckpointKey {
            source: group.source.clone(),
            target: group.target.clone(),
            group: group.group.clone(),
            topic: topic.to_string(),
            partition,
        };
        let mut checkpoints = lock(&self.checkpoints);
        let stats = checkpoints.entry(key).or_insert_with(|| CheckpointStats {
            latency_ms: Windowed::new(now),
            last_ms: latency_ms,
        });
        stats.latency_ms.record(latency_ms, now);
        stats.last_ms = latency_ms;
    }

    /// Drops every series of a group no longer listed.
    pub fn remove_group(&self, group: &GroupLabels) {
        lock(&self.checkpoints).retain(|k, _| {
            !(k.source == group.source && k.target == group.target && k.group == group.group)
        });
    }
}

const SOURCE_PREFIX: &str = "kafka_connect_mirror_mirrorsourceconnector_";
const CHECKPOINT_PREFIX: &str = "kafka_connect_mirror_mirrorcheckpointconnector_";
const SOURCE_HELP: &str = "Kafka Mirror Maker 2 Source Connector metrics";
const CHECKPOINT_HELP: &str = "Kafka Mirror Maker 2 Checkpoint Connector metrics";

/// MM2's three connectors of a flow, as Strimzi names them.
const CONNECTORS: [&str; 3] = [
    "MirrorSourceConnector",
    "MirrorCheckpointConnector",
    "MirrorHeartbeatConnector",
];

/// The flows and their states, for the Connect worker's metrics.
pub type FlowStates = Vec<(String, String, FlowState)>;

/// The family as a collector of the registry, with the flows' states read at each scrape.
#[derive(Debug)]
pub struct Mm2Collector {
    pub family: Arc<Mm2Family>,
    pub flows: Arc<StatusBoard>,
}

impl Collector for Mm2Collector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let flows: FlowStates = self
            .flows
            .snapshot()
            .into_iter()
            .map(|f| (f.source, f.target, f.state))
            .collect();
        self.family.encode_connect(&mut encoder, &flows)?;
        self.family.encode_mirror(&mut encoder)
    }
}

impl Mm2Family {
    /// The Connect worker's metrics Strimzi's dashboard and alerts read: one task per
    /// connector, each connector of a flow in the flow's state (a failed flow's are failed).
    fn encode_connect(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        flows: &FlowStates,
    ) -> Result<(), std::fmt::Error> {
        let connectors = (flows.len() * CONNECTORS.len()) as f64;
        for (name, help) in [
            (
                "kafka_connect_worker_connector_count",
                "Connectors of the flows this process runs",
            ),
            (
                "kafka_connect_worker_task_count",
                "Tasks of the flows this process runs (one per connector)",
            ),
        ] {
            encode_family(encoder, name, help, vec![(Vec::new(), connectors)])?;
        }
        let mut failed_tasks = Vec::new();
        let mut statuses = Vec::new();
        for (source, target, state) in flows {
            let status = match state {
                FlowState::Failed => "failed",
                FlowState::Stopped => "paused",
                FlowState::Starting | FlowState::Running | FlowState::Degraded => "running",
            };
            for connector in CONNECTORS {
                // JMX quotes a tag value with `>` in it; the exporter keeps the quotes.
                let quoted = format!("\"{source}->{target}.{connector}\"");
                failed_tasks.push((
                    vec![("connector".to_string(), quoted.clone())],
                    f64::from(u8::from(status == "failed")),
                ));
                statuses.push((
                    vec![
                        ("connector".to_string(), quoted),
                        ("task".to_string(), "0".to_string()),
                        ("status".to_string(), status.to_string()),
                    ],
                    1.0,
                ));
            }
        }
        encode_family(
            encoder,
            "kafka_connect_worker_connector_failed_task_count",
            "Failed tasks of a connector (a flow whose thread died)",
            failed_tasks,
        )?;
        encode_family(
            encoder,
            "kafka_connect_connector_status",
            "1 for the status of a connector's task (running, failed, paused)",
            statuses,
        )
    }

    fn encode_mirror(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let now = now_ms();
        // One family per attribute, each with every partition's sample (grouped as the text
        // format wants them).
        let mut source: BTreeMap<&'static str, Samples> = BTreeMap::new();
        for ((source_alias, target, _, partition), stats) in lock(&self.partitions).iter() {
            let stats = lock(stats);
            let labels = vec![
                ("source".to_string(), source_alias.clone()),
                ("target".to_string(), target.clone()),
                ("topic".to_string(), stats.remote_topic.clone()),
                ("partition".to_string(), partition.to_string()),
            ];
            for (name, value) in stats.values(now) {
                if let Some(value) = value {
                    source
                        .entry(name)
                        .or_default()
                        .push((labels.clone(), value));
                }
            }
        }
        for (name, samples) in source {
            encode_family(
                encoder,
                &format!("{SOURCE_PREFIX}{name}"),
                SOURCE_HELP,
                samples,
            )?;
        }
        let mut checkpoint: BTreeMap<&'static str, Samples> = BTreeMap::new();
        for (k, stats) in lock(&self.checkpoints).iter() {
            let labels = vec![
                ("source".to_string(), k.source.clone()),
                ("target".to_string(), k.target.clone()),
                ("group".to_string(), k.group.clone()),
                ("topic".to_string(), k.topic.clone()),
                ("partition".to_string(), k.partition.to_string()),
            ];
            let values = [
                ("checkpoint_latency_ms", Some(stats.last_ms)),
                ("checkpoint_latency_ms_min", stats.latency_ms.min(now)),
                ("checkpoint_latency_ms_max", stats.latency_ms.max(now)),
                ("checkpoint_latency_ms_avg", stats.latency_ms.avg(now)),
            ];
            for (name, value) in values {
                if let Some(value) = value {
                    checkpoint
                        .entry(name)
                        .or_default()
                        .push((labels.clone(), value));
                }
            }
        }
        for (name, samples) in checkpoint {
            encode_family(
                encoder,
                &format!("{CHECKPOINT_PREFIX}{name}"),
                CHECKPOINT_HELP,
                samples,
            )?;
        }
        Ok(())
    }
}

/// One gauge family (as the exporter's rules type them) with a sample per label set.
fn encode_family(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: Samples,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, value) in samples {
        let gauge = ConstGauge::new(value);
        gauge.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::metrics::Metrics;

    fn partition(p: i32) -> PartitionLabels {
        PartitionLabels {
            source: "europe".into(),
            target: "northamerica".into(),
            topic: "orders".into(),
            partition: p,
        }
    }

    #[test]
    fn strimzi_names_and_labels_and_series_go_with_their_partition_or_group() {
        let board = Arc::new(StatusBoard::default());
        board.update("europe", "northamerica", |s| s.failed = true);
        let metrics = Metrics::with_mm2_family(board);
        let family = metrics.mm2.as_ref().unwrap();
        let stats = family.partition(&partition(0), "europe.orders");
        let now = now_ms();
        lock(&stats).read(40.0, now);
        lock(&stats).copied(3, 300, Some(120.0), now);
        family.partition(&partition(1), "europe.orders");
        let group = GroupLabels {
            source: "europe".into(),
            target: "northamerica".into(),
            group: "billing".into(),
        };
        family.checkpointed(&group, "europe.orders", 0, 15.0);
        let text = metrics.encode();
        let labels = r#"source="europe",target="northamerica",topic="europe.orders",partition="0""#;
        let source = "kafka_connect_mirror_mirrorsourceconnector";
        for line in [
            format!("{source}_record_count{{{labels}}} 3"),
            format!("{source}_byte_count{{{labels}}} 300"),
            format!("{source}_replication_latency_ms_max{{{labels}}} 120"),
            format!("{source}_record_age_ms_avg{{{labels}}} 40"),
            r#"kafka_connect_mirror_mirrorcheckpointconnector_checkpoint_latency_ms_max{source="europe",target="northamerica",group="billing",topic="europe.orders",partition="0"} 15"#.to_string(),
            "kafka_connect_worker_connector_count 3".to_string(),
            r#"kafka_connect_connector_status{connector="\"europe->northamerica.MirrorSourceConnector\"",task="0",status="failed"} 1"#.to_string(),
            r#"kafka_connect_worker_connector_failed_task_count{connector="\"europe->northamerica.MirrorCheckpointConnector\""} 1"#.to_string(),
        ] {
            assert!(text.contains(&line), "no `{line}` in\n{text}");
        }
        assert!(text.contains(r#"partition="1""#));
        metrics.remove_partition(&partition(1));
        family.remove_group(&group);
        let text = metrics.encode();
        assert!(!text.contains(r#"partition="1""#), "{text}");
        assert!(!text.contains("checkpointconnector"), "{text}");
        assert!(
            !Metrics::new().encode().contains("kafka_connect_mirror"),
            "off by default"
        );
    }
}
