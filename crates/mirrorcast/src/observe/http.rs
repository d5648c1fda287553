//! The HTTP server of `--http ADDR`: `/metrics` (Prometheus text), `/api/status` (JSON),
//! `/healthz` (the process is alive) and `/readyz` (every flow has reached its clusters).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::Observability;

pub fn router(observability: Observability) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(observability)
}

async fn metrics(State(o): State<Observability>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        o.metrics.encode(),
    )
}

async fn status(State(o): State<Observability>) -> impl IntoResponse {
    Json(serde_json::json!({ "flows": o.status.snapshot() }))
}

async fn ready(State(o): State<Observability>) -> impl IntoResponse {
    if o.status.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not every flow has reached its clusters yet\n",
        )
    }
}
