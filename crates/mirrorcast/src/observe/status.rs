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

impl FlowStatus {
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
        } else if status.copy_failing || status.topics_failing || status.error_is_current() {
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

    /// Every flow has reached both its clusters, and none has failed.
    pub fn ready(&self) -> bool {
        let flows = self.flows.read().unwrap_or_else(|e| e.into_inner());
        !flows.is_empty()
            && flows
                .values()
                .all(|f| f.source_reachable && f.target_reachable && !f.failed)
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

    /// The flow runs again: starting until it reaches its clusters anew.
    pub fn restarted(&self, source: &str, target: &str) -> FlowState {
        self.update(source, target, |s| {
            s.failed = false;
            s.source_reachable = false;
            s.target_reachable = false;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_flow_reached_its_clusters() {
        let board = StatusBoard::default();
        assert!(!board.ready());
        board.update("eu", "na", |s| {
            s.source_reachable = true;
            s.target_reachable = true;
        });
        board.update("eu", "sa", |s| s.source_reachable = true);
        assert!(!board.ready());
        board.update("eu", "sa", |s| s.target_reachable = true);
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
}
