//! Inbound HTTP: the health, readiness and metrics endpoints, and the proxy handler, which
//! hands every other request to [`crate::exchange`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;
use crate::error::ProxyError;

/// Health, readiness, `/metrics` and the proxy itself (every other path). The live view and
/// the MCP routes are merged in above this layer (`crate::app`).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(proxy)
        .with_state(state)
}

/// `/metrics` alone, for `--metrics-listen`.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    // Requests are recorded on the telemetry thread: let it catch up first, so a scrape
    // includes every request that finished before it.
    s.telemetry
        .sync(std::time::Duration::from_millis(250))
        .await;
    match s.telemetry.prometheus_text() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => ProxyError::NotFound {
            path: "/metrics".into(),
            hint: None,
        }
        .into_response(),
    }
}

async fn proxy(State(s): State<Arc<AppState>>, req: Request) -> Response {
    crate::exchange::handle(&s, req).await
}
