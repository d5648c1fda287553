//! The HTTP server of `--http ADDR`: the web page at `/`, `/metrics` (Prometheus text),
//! `/api/status` (flows, JSON), `/api/regions` and `/api/regions/{alias}/topics/{topic}/events`
//! (what is in the clusters), `/healthz` (the process is alive) and `/readyz` (every flow has
//! reached its clusters).
//!
//! The only async code of the process: it runs on one tokio runtime on a thread of its own
//! ([`serve`]); everything else is plain threads with librdkafka's blocking calls.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::explore::Explorer;
use super::Observability;
use crate::shutdown::Shutdown;

/// The page, embedded in the binary: one file, no build step.
const PAGE: &str = include_str!("page.html");

#[derive(Clone)]
struct App {
    observe: Observability,
    explorer: Option<Arc<Explorer>>,
}

/// Serves [`router`] on `listener` from a thread of its own until `shutdown`.
pub fn serve(
    listener: std::net::TcpListener,
    observe: Observability,
    explorer: Option<Arc<Explorer>>,
    shutdown: &Shutdown,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shutdown = shutdown.clone();
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => return tracing::error!("the HTTP server cannot start: {e}"),
                };
                let stopped = async move {
                    let _ = tokio::task::spawn_blocking(move || shutdown.wait()).await;
                };
                let served = axum::serve(listener, router(observe, explorer))
                    .with_graceful_shutdown(stopped)
                    .await;
                if let Err(e) = served {
                    tracing::error!("the HTTP server stopped: {e}");
                }
            });
        })?;
    Ok(())
}

pub fn router(observe: Observability, explorer: Option<Arc<Explorer>>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/regions", get(regions))
        .route("/api/regions/{alias}/topics/{topic}/events", get(events))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(App { observe, explorer })
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.observe.metrics.encode(),
    )
}

async fn status(State(app): State<App>) -> impl IntoResponse {
    Json(serde_json::json!({ "flows": app.observe.status.snapshot() }))
}

async fn ready(State(app): State<App>) -> impl IntoResponse {
    if app.observe.status.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not every flow has reached its clusters yet\n",
        )
    }
}

async fn regions(State(app): State<App>) -> impl IntoResponse {
    let Some(explorer) = app.explorer else {
        return Json(serde_json::json!({ "regions": [] }));
    };
    let regions = tokio::task::spawn_blocking(move || explorer.regions())
        .await
        .unwrap_or_default();
    Json(serde_json::json!({ "regions": regions }))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<i64>,
}

async fn events(
    State(app): State<App>,
    Path((alias, topic)): Path<(String, String)>,
    Query(limit): Query<Limit>,
) -> impl IntoResponse {
    let Some(explorer) = app.explorer else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no clusters to explore" })),
        );
    };
    let limit = limit.limit.unwrap_or(20).clamp(1, 200);
    let result =
        tokio::task::spawn_blocking(move || explorer.latest_events(&alias, &topic, limit)).await;
    match result {
        Ok(Ok(events)) => (
            StatusCode::OK,
            Json(serde_json::json!({ "events": events })),
        ),
        Ok(Err(error)) => (
            StatusCode::BAD_GATEWAY,
            Json(serde_json::json!({ "error": error })),
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "error": error.to_string() })),
        ),
    }
}
