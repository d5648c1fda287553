//! Observability: what the copy and topic management report (`crate::serve` shows it). The hot
//! loop never waits on any of it: per-record counters are atomics it holds handles to, and the
//! per-partition view (offsets, lag, errors) is published about once a second as a snapshot.
//!
//! - [`metrics`]: Prometheus metrics (MM2's, under Prometheus names, plus lag and flow state).
//! - [`status`]: the snapshot behind `/api/status` and `/readyz`.
//! - [`history`] and [`graphs`]: the last minutes of every flow, drawn for the page.

pub mod graphs;
pub mod history;
pub mod metrics;
pub mod mm2_family;
pub mod status;
pub mod windowed;

use std::sync::{Arc, Mutex};

/// Everything a running process reports, shared by its flows and its HTTP server.
#[derive(Clone)]
pub struct Observability {
    pub metrics: Arc<metrics::Metrics>,
    pub status: Arc<status::StatusBoard>,
    /// Sampled by the HTTP server, for the page's graphs.
    pub history: Arc<Mutex<history::History>>,
}

impl Observability {
    pub fn new() -> Self {
        Observability {
            metrics: Arc::new(metrics::Metrics::new()),
            status: Arc::new(status::StatusBoard::default()),
            history: Arc::new(Mutex::new(history::History::default())),
        }
    }

    /// With MM2's metrics under Strimzi's names as well (`run --mm2-metrics`).
    pub fn with_mm2_metrics() -> Self {
        let status = Arc::new(status::StatusBoard::default());
        Observability {
            metrics: Arc::new(metrics::Metrics::with_mm2_family(status.clone())),
            status,
            history: Arc::new(Mutex::new(history::History::default())),
        }
    }
}

impl Default for Observability {
    fn default() -> Self {
        Self::new()
    }
}
