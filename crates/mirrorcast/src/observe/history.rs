//! A short in-process history of every flow, for the page's graphs: throughput and lag (in
//! records and in seconds) sampled every [`SAMPLE_EVERY`] over the last [`KEPT`] samples. Pure:
//! the caller passes the time and what the status board says.
//!
//! Invariant: memory is bounded (at most [`KEPT`] samples per flow the board still shows); a
//! rate is only ever the difference of two samples of the same flow, never negative (a counter
//! that went back, a flow restarted, starts the rate afresh).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use super::status::FlowStatus;

/// How often the history is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples kept per flow: 15 minutes.
pub const KEPT: usize = 180;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub at_ms: i64,
    /// Records the target acknowledged per second since the previous sample (`None` for a
    /// flow's first sample, or after its count went back).
    pub records_per_second: Option<f64>,
    pub lag_records: i64,
    pub lag_seconds: f64,
}

#[derive(Debug, Default)]
struct FlowHistory {
    samples: VecDeque<Sample>,
    /// The previous sample's time and records copied.
    previous: Option<(i64, u64)>,
}

#[derive(Debug, Default)]
pub struct History {
    flows: BTreeMap<String, FlowHistory>,
}

impl History {
    /// Samples every flow of `flows` at `at_ms`; flows no longer shown are forgotten.
    pub fn record(&mut self, at_ms: i64, flows: &[FlowStatus]) {
        self.flows
            .retain(|name, _| flows.iter().any(|f| &f.name == name));
        for flow in flows {
            let history = self.flows.entry(flow.name.clone()).or_default();
            let rate = match history.previous {
                Some((then, records)) if at_ms > then && flow.records_copied >= records => {
                    Some((flow.records_copied - records) as f64 * 1000.0 / (at_ms - then) as f64)
                }
                _ => None,
            };
            history.previous = Some((at_ms, flow.records_copied));
            if history.samples.len() == KEPT {
                history.samples.pop_front();
            }
            history.samples.push_back(Sample {
                at_ms,
                records_per_second: rate,
                lag_records: flow.partitions.iter().filter_map(|p| p.lag_records).sum(),
                lag_seconds: flow
                    .partitions
                    .iter()
                    .filter_map(|p| p.lag_seconds)
                    .fold(0.0, f64::max),
            });
        }
    }

    /// Every flow's samples, oldest first.
    pub fn series(&self) -> BTreeMap<String, Vec<Sample>> {
        self.flows
            .iter()
            .map(|(name, h)| (name.clone(), h.samples.iter().cloned().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::status::{PartitionStatus, StatusBoard};

    fn flows(records: u64, lag: i64) -> Vec<FlowStatus> {
        let board = StatusBoard::default();
        board.update("eu", "na", |s| {
            s.records_copied = records;
            s.partitions = (0..2)
                .map(|p| PartitionStatus {
                    topic: "t".into(),
                    remote_topic: "t".into(),
                    partition: p,
                    source_end_offset: None,
                    replicated_offset: None,
                    lag_records: Some(lag),
                    lag_seconds: Some(p as f64 + 0.5),
                    stopped_at_offset: None,
                    stop_reason: None,
                })
                .collect();
        });
        board.snapshot()
    }

    #[test]
    fn rates_come_from_two_samples_and_lag_is_summed_and_maxed_over_partitions() {
        let mut history = History::default();
        history.record(10_000, &flows(100, 5));
        history.record(15_000, &flows(600, 2));
        history.record(20_000, &flows(50, 0)); // the flow restarted: its count went back
        let series = history.series();
        let rates: Vec<_> = series["eu->na"]
            .iter()
            .map(|s| s.records_per_second)
            .collect();
        assert_eq!(rates, [None, Some(100.0), None]);
        assert_eq!(series["eu->na"][0].lag_records, 10);
        assert_eq!(series["eu->na"][0].lag_seconds, 1.5);
    }

    #[test]
    fn at_most_kept_samples_per_shown_flow() {
        let mut history = History::default();
        for i in 0..(KEPT as i64 + 20) {
            history.record(i * 5_000, &flows(i as u64, 0));
        }
        let series = history.series();
        assert_eq!(series["eu->na"].len(), KEPT);
        assert_eq!(series["eu->na"][0].at_ms, 20 * 5_000);
        history.record(1_000_000_000, &[]);
        assert!(
            history.series().is_empty(),
            "a flow no longer shown is forgotten"
        );
    }
}
