//! The HTTP server of `--http ADDR`: the web page at `/`, `/metrics` (OpenMetrics text),
//! `/api/status` (flows, JSON), `/api/history` and `/api/graphs` (the last minutes of every
//! flow, as samples and as the page's SVG charts), `/api/regions` and
//! `/api/regions/{alias}/topics/{topic}/events` (what is in the clusters), `/healthz` (the
//! process is alive) and `/readyz` (it does its share: see `StatusBoard::unready`).
//!
//! The only async code of the process: it runs on one tokio runtime on a thread of its own
//! ([`serve`]); everything else is plain threads with librdkafka's blocking calls.
//!
//! Invariants: every request passes [`AccessPolicy`] first; records are served only with
//! `--http-browse`; no client holds the server: headers must arrive within
//! [`Limits::header_read_timeout`], a request is answered within [`Limits::request_timeout`],
//! at most [`Limits::max_connections`] are served at once and at most
//! [`Limits::max_cluster_requests`] ask the clusters at once (more are refused, not queued).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::access::{AccessPolicy, Refusal};
use super::explore::{BrowseError, Explorer};
use crate::observe::graphs::{self, Measure};
use crate::observe::history::{History, SAMPLE_EVERY};
use crate::observe::status::now_ms;
use crate::observe::Observability;
use crate::shutdown::Shutdown;

/// The page, embedded in the binary: one file, no build step.
const PAGE: &str = include_str!("page.html");

/// Bounds that keep slow or hostile clients from holding the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A connection that has not sent a whole request head by then is closed (also when idle
    /// between requests).
    pub header_read_timeout: Duration,
    /// A request not answered by then gets 504.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Requests that ask the clusters (`/api/regions`, events) at once; more get 503.
    pub max_cluster_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            // Above the explorer's 5 s per Kafka call, for a region with a few topics.
            request_timeout: Duration::from_secs(30),
            max_connections: 64,
            max_cluster_requests: 4,
        }
    }
}

#[derive(Clone)]
struct App {
    observe: Observability,
    explorer: Option<Arc<Explorer>>,
    access: Arc<AccessPolicy>,
    limits: Limits,
    cluster_requests: Arc<Semaphore>,
}

/// Serves [`router`] on `listener` from a thread of its own until `shutdown`.
pub fn serve(
    listener: std::net::TcpListener,
    observe: Observability,
    explorer: Option<Arc<Explorer>>,
    access: AccessPolicy,
    limits: Limits,
    shutdown: &Shutdown,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shutdown = shutdown.clone();
    let sampled = observe.clone();
    let app = router(observe, explorer, access, limits);
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => return tracing::error!("the HTTP server cannot start: {e}"),
                };
                let stopped = tokio::task::spawn_blocking(move || shutdown.wait());
                tokio::select! {
                    _ = sample_history(sampled) => {}
                    _ = accept_loop(listener, app, limits) => {}
                    _ = stopped => {}
                }
            });
        })?;
    Ok(())
}

/// Accepts connections while fewer than `max_connections` are open, each served by hyper with
/// a header-read timeout.
async fn accept_loop(listener: tokio::net::TcpListener, app: Router, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut accept_failing = false;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                accept_failing = false;
                stream
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                if !accept_failing {
                    tracing::warn!("the HTTP server cannot accept a connection: {e}");
                    accept_failing = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        tokio::spawn(async move {
            let _slot = slot;
            // A client gone mid-request, or too slow: nothing to report.
            let _ = connection.await;
        });
    }
}

pub fn router(
    observe: Observability,
    explorer: Option<Arc<Explorer>>,
    access: AccessPolicy,
    limits: Limits,
) -> Router {
    let app = App {
        observe,
        explorer,
        access: Arc::new(access),
        limits,
        cluster_requests: Arc::new(Semaphore::new(limits.max_cluster_requests)),
    };
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/history", get(history))
        .route("/api/graphs", get(graphs))
        .route("/api/regions", get(regions))
        .route("/api/regions/{alias}/topics/{topic}/events", get(events))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = Json(serde_json::json!({ "error": message.into() }));
    (status, body).into_response()
}

/// Access first, then the request within its time.
async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    let checked = {
        let headers = request.headers();
        let text = |name| {
            headers
                .get(name)
                .map(|value: &header::HeaderValue| value.to_str().unwrap_or("(not text)"))
        };
        app.access.check(
            request.uri().path(),
            text(header::HOST),
            text(header::AUTHORIZATION),
        )
    };
    match checked {
        Ok(()) => {}
        Err(refusal @ Refusal::Host(_)) => {
            return error(StatusCode::FORBIDDEN, refusal.message());
        }
        Err(refusal @ Refusal::Token) => {
            let mut response = error(StatusCode::UNAUTHORIZED, refusal.message());
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"mirrorcast\""),
            );
            return response;
        }
    }
    let timeout = app.limits.request_timeout;
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("no answer within {timeout:?}: a cluster may be slow or unreachable"),
        ),
    }
}

/// A turn to ask the clusters, if one is free.
fn cluster_turn(app: &App) -> Option<OwnedSemaphorePermit> {
    app.cluster_requests.clone().try_acquire_owned().ok()
}

fn busy(app: &App) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "busy: {} requests are asking the clusters already; try again shortly",
            app.limits.max_cluster_requests
        ),
    )
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    // prometheus-client's text encoder writes OpenMetrics (`# EOF`, `_total` counters).
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.observe.metrics.encode(),
    )
}

async fn status(State(app): State<App>) -> impl IntoResponse {
    Json(serde_json::json!({ "flows": app.observe.status.snapshot() }))
}

async fn history(State(app): State<App>) -> impl IntoResponse {
    let series = lock(&app.observe.history).series();
    Json(serde_json::json!({ "flows": series }))
}

/// The page's charts (SVG documents) in the page's order, each with what it shows.
async fn graphs(State(app): State<App>) -> impl IntoResponse {
    let series = lock(&app.observe.history).series();
    let now = now_ms();
    let charts: Vec<serde_json::Value> = Measure::ALL
        .iter()
        .map(|m| serde_json::json!({ "measure": m.key(), "svg": graphs::svg(*m, &series, now) }))
        .collect();
    Json(serde_json::json!({ "graphs": charts }))
}

fn lock(history: &std::sync::Mutex<History>) -> std::sync::MutexGuard<'_, History> {
    history.lock().unwrap_or_else(|e| e.into_inner())
}

/// Samples every flow into the history, every [`SAMPLE_EVERY`], for the graphs.
async fn sample_history(observe: Observability) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    loop {
        every.tick().await;
        let flows = observe.status.snapshot();
        lock(&observe.history).record(now_ms(), &flows);
    }
}

async fn ready(State(app): State<App>) -> impl IntoResponse {
    let reasons = app.observe.status.unready(now_ms());
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", reasons.join("\n")),
        )
    }
}

async fn regions(State(app): State<App>) -> Response {
    let Some(explorer) = app.explorer.clone() else {
        return Json(serde_json::json!({ "regions": [] })).into_response();
    };
    let Some(turn) = cluster_turn(&app) else {
        return busy(&app);
    };
    // The turn is held by the blocking call itself: a timed-out request's call still counts.
    let regions = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        explorer.regions()
    })
    .await
    .unwrap_or_default();
    Json(serde_json::json!({ "regions": regions })).into_response()
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<i64>,
}

async fn events(
    State(app): State<App>,
    Path((alias, topic)): Path<(String, String)>,
    Query(limit): Query<Limit>,
) -> Response {
    if !app.access.browse {
        return error(
            StatusCode::FORBIDDEN,
            "browsing records is off: start mirrorcast with --http-browse to show the records \
             of the topics it replicates",
        );
    }
    let Some(explorer) = app.explorer.clone() else {
        return error(StatusCode::NOT_FOUND, "no clusters to explore");
    };
    let Some(turn) = cluster_turn(&app) else {
        return busy(&app);
    };
    let limit = limit.limit.unwrap_or(20).clamp(1, 200);
    let result = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        explorer.latest_events(&alias, &topic, limit)
    })
    .await;
    match result {
        Ok(Ok(events)) => Json(serde_json::json!({ "events": events })).into_response(),
        Ok(Err(refused @ BrowseError::UnknownCluster(_))) => {
            error(StatusCode::NOT_FOUND, refused.to_string())
        }
        Ok(Err(refused @ BrowseError::NotReplicated { .. })) => {
            error(StatusCode::FORBIDDEN, refused.to_string())
        }
        Ok(Err(BrowseError::Kafka(failure))) => error(StatusCode::BAD_GATEWAY, failure),
        Err(failure) => error(StatusCode::INTERNAL_SERVER_ERROR, failure.to_string()),
    }
}
