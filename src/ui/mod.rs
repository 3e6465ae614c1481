//! The live view: `/ui` (one page of our own HTML, CSS and JavaScript, embedded in the
//! binary) and the JSON it reads, which tests read too:
//!
//! - `GET /ui/api/calls`: recent calls, newest first (`model`, `upstream`, `status`, `tenant`,
//!   `conversation`, `after`, `limit` filter them);
//! - `GET /ui/api/calls/{id}`: one call with its span attributes, timeline and tool spans;
//! - `GET /ui/api/summary`: the last minutes (`minutes`, default 5) behind the five panels;
//! - `GET /ui/api/events`: server-sent events, one `call` event per call as it finishes.
//!
//! None of these creates telemetry. On a loopback address (where the view is on by default)
//! requests must name a loopback or IP host, so a web page elsewhere cannot reach the view
//! through DNS rebinding.

pub mod view;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use opentelemetry::InstrumentationScope;
use tokio::sync::broadcast::error::RecvError;

use crate::app::AppState;
use crate::telemetry::content::Redactor;
use crate::telemetry::cost::PriceTable;
use crate::telemetry::recent::RecentCalls;
use view::{Filter, ViewCx};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The page loads only its own script and style, and talks only to its own origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct UiState {
    app: Arc<AppState>,
    recent: Arc<RecentCalls>,
    prices: PriceTable,
    scope: InstrumentationScope,
    messages: Redactor,
    loopback_only: bool,
}

impl UiState {
    fn cx(&self) -> ViewCx<'_> {
        let ui = &self.app.config.ui;
        ViewCx {
            prices: &self.prices,
            tenant_key: &ui.tenant_key,
            trace_url: ui.trace_url.as_deref(),
            spans: self.app.telemetry.span_context(&self.scope),
            messages: &self.messages,
        }
    }
}

/// The `/ui` routes, when the view is on (`None` otherwise).
pub fn routes(app: Arc<AppState>, loopback_only: bool) -> Option<Router> {
    let recent = app.telemetry.recent()?.clone();
    let state = Arc::new(UiState {
        prices: PriceTable::new(&app.config),
        scope: InstrumentationScope::builder("llmtap")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
        messages: Redactor::new(&crate::config::default_redactions(), 4096),
        recent,
        app,
        loopback_only,
    });
    Some(
        Router::new()
            .route("/ui", get(index))
            .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
            .route("/ui/app.js", get(script))
            .route("/ui/app.css", get(style))
            .route("/ui/api/calls", get(calls))
            .route("/ui/api/calls/{id}", get(call))
            .route("/ui/api/summary", get(summary))
            .route("/ui/api/events", get(events))
            .route_layer(middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state),
    )
}

/// Refuses requests for a host name other than a loopback one when the view is served on
/// loopback, and marks every answer as not to be cached or framed.
async fn guard(State(s): State<Arc<UiState>>, req: Request, next: Next) -> Response {
    if s.loopback_only {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !host_is_local(host) {
            return (
                StatusCode::FORBIDDEN,
                "the live view answers only to localhost or an IP address\n",
            )
                .into_response();
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}

/// `localhost` (and `*.localhost`) or an IP literal, with or without a port. An empty Host
/// (HTTP/1.0) is allowed: a browser always sends one.
fn host_is_local(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    host.is_empty()
        || name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok()
}

fn typed(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    typed("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    typed("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    typed("text/css; charset=utf-8", APP_CSS)
}

fn json(v: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

async fn calls(State(s): State<Arc<UiState>>, RawQuery(q): RawQuery) -> Response {
    let filter = Filter::from_query(q.as_deref());
    let all = s.recent.calls();
    let mut v = view::rows(&all, &filter, &s.cx());
    v["capacity"] = s.recent.capacity().into();
    v["config"] = serde_json::json!({
        "trace_url": s.app.config.ui.trace_url.is_some(),
        "tenant_key": s.app.config.ui.tenant_key,
        "content_captured": view::content_captured(&s.cx()),
    });
    json(v)
}

async fn call(State(s): State<Arc<UiState>>, Path(id): Path<String>) -> Response {
    let Some(c) = id.parse().ok().and_then(|id| s.recent.get(id)) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"no such call (it may have left the ring)"}"#,
        )
            .into_response();
    };
    let calls = s.recent.calls();
    let tools = s.recent.tools();
    json(view::detail(&c, &calls, &tools, &s.cx()))
}

async fn summary(State(s): State<Arc<UiState>>, RawQuery(q): RawQuery) -> Response {
    let filter = Filter::from_query(q.as_deref());
    let calls = s.recent.calls();
    let tools = s.recent.tools();
    json(view::summary(
        &calls,
        &tools,
        s.recent.capacity(),
        &filter,
        SystemTime::now(),
        &s.cx(),
    ))
}

/// One `call` event (a row) per call as it is kept, filtered like `/ui/api/calls`; a
/// `lagged` event when this subscriber fell behind (the page then reloads the list). The
/// stream ends when the server starts shutting down, so an open page never holds up a drain.
async fn events(
    State(s): State<Arc<UiState>>,
    RawQuery(q): RawQuery,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let filter = Filter::from_query(q.as_deref());
    let rx = s.recent.subscribe();
    let stopping = s.app.stopping.subscribe();
    let stream = futures_util::stream::unfold(
        (rx, stopping, s, filter),
        |(mut rx, mut stopping, s, filter)| async move {
            loop {
                if *stopping.borrow() {
                    return None;
                }
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = stopping.changed() => return None,
                };
                let event = match next {
                    Ok(c) if filter.matches(&c, &s.app.config.ui.tenant_key) => Event::default()
                        .event("call")
                        .data(view::row(&c, &s.cx()).to_string()),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        Event::default().event("lagged").data(n.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), (rx, stopping, s, filter)));
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        for h in [
            "",
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "app.localhost",
            "10.0.0.7",
        ] {
            assert!(host_is_local(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
        ] {
            assert!(!host_is_local(h), "{h}");
        }
    }
}
