//! The status of every flow, as `/api/status` shows it: state, last error, and per replicated
//! partition the source end offset, the replicated offset and the lag. Flows publish snapshots
//! into it (about once a second); readers copy them out.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowState {
    /// Not yet reached both clusters.
    Starting,
    /// Copying; nothing failing.
    Running,
    /// A cluster cannot be reached or deliveries fail; retrying.
    Degraded,
    /// A thread of the flow died (its last error says why); it restarts after a backoff.
    Failed,
    Stopped,
}

impl FlowState {
    pub const ALL: [FlowState; 5] = [
        FlowState::Starting,
        FlowState::Running,
        FlowState::Degraded,
        FlowState::Failed,
        FlowState::Stopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FlowState::Starting => "starting",
            FlowState::Running => "running",
            FlowState::Degraded => "degraded",
            FlowState::Failed => "failed",
            FlowState::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub remote_topic: String,
    pub partition: i32,
    /// The source's high watermark, as last seen by the reader.
    pub source_end_offset: Option<i64>,
    /// The next source offset to replicate (last acknowledged + 1).
    pub replicated_offset: Option<i64>,
    pub lag_records: Option<i64>,
    pub lag_seconds: Option<f64>,
    /// The offset of a record the target refused for good, where this partition's copy stopped
    /// (`errors.tolerance = none`), and why.
    pub stopped_at_offset: Option<i64>,
    pub stop_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    pub message: String,
    /// Epoch milliseconds.
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowStatus {
    pub name: String,
    pub source: String,
    pub target: String,
    pub state: FlowState,
    pub source_reachable: bool,
    pub target_reachable: bool,
    /// Deliveries to the target or reads from the source are failing.
    pub copy_failing: bool,
    /// The target refuses records for good, or a partition stopped at one: the data needs a
    /// person (whatever restarts or rollouts do).
    pub needs_attention: bool,
    /// Topic management cannot reach a cluster.
    pub topics_failing: bool,
    /// A thread of the flow died and has not been restarted yet.
    pub failed: bool,
    pub stopped: bool,
    pub last_error: Option<LastError>,
    pub records_copied: u64,
    pub seconds_since_last_copy: Option<f64>,
    /// When the target last acknowledged a record, and when topic management last reached
    /// both clusters (epoch ms): an error newer than both means the flow is degraded.
    pub last_copy_at_ms: Option<i64>,
    pub last_reached_at_ms: Option<i64>,
    /// Age of the last heartbeat the target acknowledged.
    pub heartbeat_age_seconds: Option<f64>,
    pub partitions: Vec<PartitionStatus>,
}

impl FlowStatus {
    fn new(source: &str, target: &str) -> Self {
        FlowStatus {
            name: format!("{source}->{target}"),
            source: source.to_string(),
            target: target.to_string(),
            state: FlowState::Starting,
            source_reachable: false,
            target_reachable: false,
            copy_failing: false,
            needs_attention: false,
            topics_failing: false,
            failed: false,
            stopped: false,
            last_error: None,
            records_copied: 0,
            seconds_since_last_copy: None,
            last_copy_at_ms: None,
            last_reached_at_ms: None,
            heartbeat_age_seconds: None,
            partitions: Vec::new(),
        }
    }
}

/// After this long with records waiting and none copied, although the target answers, a flow
/// is stale: its copy does not move.
pub const STALE_AFTER_MS: i64 = 120_000;

/// The target answers: it acknowledged one of the flow's heartbeats (every second by default)
/// within this long. (A target that is down makes no flow stale, whatever its timeouts.)
const ANSWERED_WITHIN_SECONDS: f64 = 30.0;

impl FlowStatus {
    /// Why this flow keeps the process unready at `now_ms`, if it does: its first attempt to
    /// reach its clusters since it (re)started has not answered yet, a thread of it died, it is
    /// stopping, the target refuses its records, or it is stale. A flow degraded because a
    /// cluster does not answer (a region down) keeps it ready, whether the region went down
    /// before or after the process started: every process would be unready together, and a
    /// rollout, a rescheduled pod or a drain must go on; the flow shows `degraded` meanwhile.
    pub fn unready(&self, now_ms: i64) -> Option<String> {
        let name = &self.name;
        let why = self.last_error.as_ref().map_or("", |e| e.message.as_str());
        if self.failed {
            return Some(format!("{name} failed: {why}"));
        }
        if self.stopped {
            return Some(format!("{name} is stopping"));
        }
        if self.first_attempt_pending() {
            return Some(format!("{name} has not reached its clusters yet"));
        }
        if self.needs_attention {
            return Some(format!("{name}: the target refuses records: {why}"));
        }
        let waiting: i64 = self.partitions.iter().filter_map(|p| p.lag_records).sum();
        let moved_at = self.last_copy_at_ms.or(self.last_reached_at_ms)?;
        let still = now_ms - moved_at;
        let target_answers = self
            .heartbeat_age_seconds
            .is_some_and(|age| age < ANSWERED_WITHIN_SECONDS);
        if waiting > 0 && still > STALE_AFTER_MS && target_answers && !self.topics_failing {
            return Some(format!(
                "{name} is stale: {waiting} record(s) wait and none was copied for {} s, though \
                 its clusters answer",
                still / 1000
            ));
        }
        None
    }

    /// Neither reached nor failed to reach its clusters since it (re)started.
    fn first_attempt_pending(&self) -> bool {
        let reached = self.source_reachable && self.target_reachable;
        !reached && !self.topics_failing && !self.copy_failing
    }

    /// The last error came after the last sign that the flow works.
    fn error_is_current(&self) -> bool {
        let worked_at = self
            .last_copy_at_ms
            .max(self.last_reached_at_ms)
            .unwrap_or(0);
        self.last_error
            .as_ref()
            .is_some_and(|e| e.at_ms > worked_at)
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Default)]
pub struct StatusBoard {
    flows: RwLock<BTreeMap<String, FlowStatus>>,
    /// Background tasks that died, with why.
    tasks: RwLock<BTreeMap<String, String>>,
}

impl StatusBoard {
    /// Changes the status of flow `source->target` (created on first use).
    /// Returns the flow's state after the change.
    pub fn update(
        &self,
        source: &str,
        target: &str,
        change: impl FnOnce(&mut FlowStatus),
    ) -> FlowState {
        let mut flows = self.flows.write().unwrap_or_else(|e| e.into_inner());
        let status = flows
            .entry(format!("{source}->{target}"))
            .or_insert_with(|| FlowStatus::new(source, target));
        change(status);
        status.state = if status.stopped {
            FlowState::Stopped
        } else if status.failed {
            FlowState::Failed
        } else if status.copy_failing
            || status.needs_attention
            || status.topics_failing
            || status.error_is_current()
        {
            FlowState::Degraded
        } else if !(status.source_reachable && status.target_reachable) {
            FlowState::Starting
        } else {
            FlowState::Running
        };
        status.state
    }

    /// Records an error of a flow; it stays the last error until another one comes.
    pub fn error(&self, source: &str, target: &str, message: &str) {
        self.update(source, target, |s| {
            s.last_error = Some(LastError {
                message: message.to_string(),
                at_ms: now_ms(),
            });
        });
    }

    pub fn snapshot(&self) -> Vec<FlowStatus> {
        let flows = self.flows.read().unwrap_or_else(|e| e.into_inner());
        flows.values().cloned().collect()
    }

    /// Why the process is not ready (empty: it is): see [`FlowStatus::unready`], and no flow
    /// at all, and background tasks that died.
    pub fn unready(&self, now_ms: i64) -> Vec<String> {
        let flows = self.flows.read().unwrap_or_else(|e| e.into_inner());
        let mut reasons: Vec<String> = flows.values().filter_map(|f| f.unready(now_ms)).collect();
        if flows.is_empty() {
            reasons.push("no flow has started yet".to_string());
        }
        let tasks = self.tasks.read().unwrap_or_else(|e| e.into_inner());
        reasons.extend(
            tasks
                .iter()
                .map(|(task, cause)| format!("{task} failed: {cause}")),
        );
        reasons
    }

    pub fn ready(&self) -> bool {
        self.unready(now_ms()).is_empty()
    }

    /// A background task (not a flow's: heartbeats of a pair no flow covers) died of `cause`;
    /// `None`: it runs again.
    pub fn task(&self, name: &str, cause: Option<&str>) {
        let mut tasks = self.tasks.write().unwrap_or_else(|e| e.into_inner());
        match cause {
            Some(cause) => tasks.insert(name.to_string(), cause.to_string()),
            None => tasks.remove(name),
        };
    }

    /// A thread of flow `source->target` died of `cause`: the flow is failed until
    /// [`StatusBoard::restarted`].
    pub fn failed(&self, source: &str, target: &str, cause: &str) -> FlowState {
        self.update(source, target, |s| {
            s.failed = true;
            // The copier's last report, as it stopped, said "stopped": the flow is not.
            s.stopped = false;
            s.last_error = Some(LastError {
                message: cause.to_string(),
                at_ms: now_ms(),
            });
        })
    }

    /// The flow runs again: not ready until its new threads reach, or fail to reach, its
    /// clusters.
    pub fn restarted(&self, source: &str, target: &str) -> FlowState {
        self.update(source, target, |s| {
            s.failed = false;
            s.source_reachable = false;
            s.target_reachable = false;
            s.topics_failing = false;
            s.copy_failing = false;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_flow_tried_its_clusters_whether_or_not_they_answer() {
        let board = StatusBoard::default();
        assert!(!board.ready());
        board.update("eu", "na", |s| {
            s.source_reachable = true;
            s.target_reachable = true;
        });
        board.update("eu", "sa", |s| s.source_reachable = true);
        assert!(!board.ready());
        assert_eq!(board.snapshot()[1].state, FlowState::Starting);
        // South America is down as the process starts: the flow is degraded, and ready, as
        // a flow whose region goes down later is.
        board.update("eu", "sa", |s| s.topics_failing = true);
        board.error("eu", "sa", "sa: all brokers down");
        assert!(board.ready(), "{:?}", board.unready(now_ms()));
        assert_eq!(board.snapshot()[1].state, FlowState::Degraded);
        board.update("eu", "sa", |s| {
            s.topics_failing = false;
            s.target_reachable = true;
        });
        assert!(board.ready());
        board.update("eu", "sa", |s| s.last_copy_at_ms = Some(now_ms() - 1000));
        board.error("eu", "sa", "boom");
        let json = serde_json::to_value(board.snapshot()).unwrap();
        assert_eq!(json[1]["last_error"]["message"], "boom");
        assert_eq!(
            json[1]["state"], "degraded",
            "an error newer than the last copy"
        );
        board.update("eu", "sa", |s| s.last_copy_at_ms = Some(now_ms() + 1));
        assert_eq!(
            serde_json::to_value(board.snapshot()).unwrap()[1]["state"],
            "running"
        );
    }

    fn running(board: &StatusBoard, now: i64) {
        board.update("eu", "na", |s| {
            s.source_reachable = true;
            s.target_reachable = true;
            s.last_reached_at_ms = Some(now);
            s.last_copy_at_ms = Some(now);
            s.heartbeat_age_seconds = Some(1.0);
            s.partitions = vec![PartitionStatus {
                topic: "t".into(),
                remote_topic: "t".into(),
                partition: 0,
                source_end_offset: Some(100),
                replicated_offset: Some(90),
                lag_records: Some(10),
                lag_seconds: Some(1.0),
                stopped_at_offset: None,
                stop_reason: None,
            }];
        });
    }

    /// Records wait and none is copied while the target answers: the copy is stuck here, and
    /// only a restart of this process would tell.
    #[test]
    fn a_stale_flow_is_not_ready_but_a_flow_whose_target_is_down_is() {
        let (board, t0) = (StatusBoard::default(), 1_000_000);
        running(&board, t0);
        assert!(board.unready(t0 + STALE_AFTER_MS).is_empty(), "not yet");
        let reasons = board.unready(t0 + STALE_AFTER_MS + 1);
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0].contains("eu->na is stale: 10 record(s) wait"),
            "{reasons:?}"
        );
        // The target stopped answering (a region down): degraded, but ready, before and after
        // its delivery timeout.
        board.update("eu", "na", |s| s.heartbeat_age_seconds = Some(121.0));
        assert!(board.unready(t0 + STALE_AFTER_MS + 1).is_empty());
        board.update("eu", "na", |s| s.copy_failing = true);
        assert!(board.unready(t0 + STALE_AFTER_MS + 1).is_empty());
        assert_eq!(board.snapshot()[0].state, FlowState::Degraded);
        // Nothing waits: an idle flow is never stale.
        board.update("eu", "na", |s| {
            s.copy_failing = false;
            s.heartbeat_age_seconds = Some(1.0);
            s.partitions[0].lag_records = Some(0);
        });
        assert!(board.unready(t0 + 10 * STALE_AFTER_MS).is_empty());
    }

    #[test]
    fn failed_stopping_and_refusing_flows_and_dead_tasks_are_not_ready() {
        let (board, t0) = (StatusBoard::default(), 1_000_000);
        running(&board, t0);
        board.update("eu", "na", |s| s.needs_attention = true);
        board.error(
            "eu",
            "na",
            "t[0] offset 5: the target refused the record for good",
        );
        assert!(board.unready(t0)[0].contains("the target refuses records: t[0] offset 5"));
        board.update("eu", "na", |s| s.needs_attention = false);
        board.failed("eu", "na", "copier panicked");
        assert!(board.unready(t0)[0].contains("eu->na failed: copier panicked"));
        board.restarted("eu", "na");
        running(&board, t0);
        board.update("eu", "na", |s| s.stopped = true);
        assert!(board.unready(t0)[0].contains("stopping"));
        board.update("eu", "na", |s| s.stopped = false);
        assert!(board.unready(t0).is_empty());
        board.task("heartbeats eu->asia", Some("cannot create a producer"));
        assert_eq!(
            board.unready(t0),
            ["heartbeats eu->asia failed: cannot create a producer"]
        );
        board.task("heartbeats eu->asia", None);
        assert!(board.unready(t0).is_empty());
    }
}
