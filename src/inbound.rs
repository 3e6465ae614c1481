//! Inbound HTTP: health and metrics endpoints, and the proxy handler that takes one request
//! through its phases — route, read body, rewrite, send upstream, relay the response.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;

use crate::config::Config;
use crate::error::ProxyError;
use crate::request;
use crate::route::{self, Operation};
use crate::stream::strip::UsageStripper;
use crate::stream::tee::Relay;
use crate::telemetry::record::{RequestFacts, RequestRecord};
use crate::telemetry::Telemetry;
use crate::upstream::{self, Upstreams, PROMPT_TEMPLATE_HEADER};

pub struct AppState {
    pub config: Arc<Config>,
    pub upstreams: Upstreams,
    pub telemetry: Telemetry,
    /// False while shutting down, so `/readyz` takes the instance out of rotation.
    pub ready: AtomicBool,
    /// Set when the shutdown grace period ends: every relay still running cuts its stream
    /// and finishes its record, so no span is lost to the exit.
    pub abort: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    pub fn new(config: Config, telemetry: Telemetry) -> Result<Arc<AppState>, String> {
        let upstreams = Upstreams::new(&config)?;
        Ok(Arc::new(AppState {
            config: Arc::new(config),
            upstreams,
            telemetry,
            ready: AtomicBool::new(true),
            abort: tokio::sync::watch::channel(false).0,
        }))
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(proxy)
        .with_state(state)
}

/// A router with only `/metrics`, for `--metrics-listen`.
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
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let mut record = RequestRecord::new(s.telemetry.clone(), parts.method.as_str(), &path);
    let Some(target) = route::target(&path, &parts.method) else {
        let hint = route::missing_v1_hint(&path);
        record.hint = hint.clone();
        return own_error(ProxyError::NotFound { path, hint }, record);
    };
    record.operation = target.operation;
    match forward(&s, parts, body, target, &mut record).await {
        Ok(up) => relay(up, record, s.abort.subscribe()),
        Err(e) => own_error(e, record),
    }
}

/// Answers with one of llmtap's own errors and finishes the record with what was sent, so the
/// access line and the span show the real status and size.
fn own_error(e: ProxyError, mut record: RequestRecord) -> Response {
    let (status, body) = (e.status(), e.body());
    record.status = Some(status.as_u16());
    record.fail(e.code());
    record.bytes_out = body.len() as u64;
    record.finish();
    ProxyError::response(status, body)
}

/// An upstream response whose body is still to be relayed.
struct UpstreamResponse {
    resp: reqwest::Response,
    inject: bool,
    idle: std::time::Duration,
}

/// Relays the upstream response; the record moves into the body stream, which finishes it.
fn relay(
    up: UpstreamResponse,
    mut record: RequestRecord,
    abort: tokio::sync::watch::Receiver<bool>,
) -> Response {
    let UpstreamResponse { resp, inject, idle } = up;
    let status = resp.status();
    let mut out_headers = upstream::response_headers(resp.headers());
    let content_type = header_str(resp.headers(), header::CONTENT_TYPE);
    let encoding = header_str(resp.headers(), header::CONTENT_ENCODING);
    record.response_started(status.as_u16(), &content_type, &encoding);
    // Only an uncompressed event stream that llmtap injected into needs its usage chunk removed.
    let stripper = (inject && record.streaming && status.is_success() && encoding.is_empty())
        .then(UsageStripper::new);
    if stripper.is_some() {
        out_headers.remove(header::CONTENT_LENGTH);
    }
    let length = match stripper {
        None => resp.content_length(),
        Some(_) => None,
    };
    let relay =
        Relay::new(resp.bytes_stream().boxed(), record, stripper, idle, abort).with_length(length);
    let mut response = Response::new(Body::from_stream(relay));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

/// The body to send upstream: whole (inference calls, which are parsed) or streamed.
enum OutBody {
    Whole(Bytes),
    Streamed(Body),
}

async fn forward(
    s: &AppState,
    parts: http::request::Parts,
    body: Body,
    target: route::Target,
    record: &mut RequestRecord,
) -> Result<UpstreamResponse, ProxyError> {
    let limit = s.config.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::BodyTooLarge { limit });
    }

    // Inference calls are read whole: the model routes them and the body feeds the span.
    // Everything else streams through untouched.
    let (mut out_body, parsed) = match target.operation {
        None => (OutBody::Streamed(body), None),
        Some(op) => {
            let bytes = read_limited(body, limit).await?;
            let parsed = request::parse(
                &bytes,
                op,
                s.telemetry.capture_content(),
                s.telemetry.prompt_hasher(),
            );
            (OutBody::Whole(bytes), parsed)
        }
    };
    let (mut info, obj) = match parsed {
        Some((i, o)) => (Some(i), Some(o)),
        None => (None, None),
    };
    if target.deployment.is_some() && info.as_ref().is_none_or(|i| i.model.is_none()) {
        // Azure names the model in the path; a non-JSON body still gets it on the span.
        info.get_or_insert_with(Default::default).model = target.deployment.clone();
    }
    let model = info.as_ref().and_then(|i| i.model.as_deref());
    let upstream_cfg = route::upstream_for(&s.config, model);
    let upstream = s
        .upstreams
        .get(&upstream_cfg.name)
        .ok_or_else(|| ProxyError::NotFound {
            path: upstream_cfg.name.clone(),
            hint: None,
        })?;

    let mut inject = false;
    if let (OutBody::Whole(bytes), Some(obj), Some(i), Some(op)) =
        (&out_body, &obj, &info, target.operation)
    {
        // A body that is not a JSON object (`obj` is None) is never rewritten.
        let wants = i.include_usage == Some(true);
        if upstream.config.inject_usage && op != Operation::Embeddings && !wants {
            if let Some(rewritten) = request::inject_include_usage(bytes, obj) {
                inject = true;
                out_body = OutBody::Whole(Bytes::from(rewritten));
            }
        }
    }
    record.request = info;
    record.upstream = Some(upstream.info.clone());
    record.usage_injected = inject;

    let mut headers = upstream::request_headers(&parts.headers, &upstream.config);
    if target.operation.is_some() {
        annotate(s, &parts.headers, record);
        if !s.telemetry.settings().sdk_disabled {
            let sampled = s.telemetry.head_sampled(&record.trace);
            s.telemetry
                .propagation()
                .inject(&record.trace, sampled, &mut headers);
        }
    }

    let mut url = format!("{}{}", upstream.config.base_url, target.upstream_path);
    if let Some(q) = parts.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let body = match out_body {
        OutBody::Whole(b) => reqwest::Body::from(b),
        OutBody::Streamed(b) => reqwest::Body::wrap_stream(
            http_body_util::Limited::new(b, limit)
                .into_data_stream()
                .map_err(|e| std::io::Error::other(e.to_string())),
        ),
    };
    let send = upstream
        .client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(body)
        .send();
    let timeouts = &upstream.config.timeouts;
    let resp = match tokio::time::timeout(timeouts.first_byte, send).await {
        Err(_) => {
            return Err(ProxyError::UpstreamTimeout {
                upstream: upstream.config.name.clone(),
                secs: timeouts.first_byte.as_secs_f64(),
            })
        }
        Ok(Err(e)) if e.is_timeout() => {
            return Err(ProxyError::UpstreamTimeout {
                upstream: upstream.config.name.clone(),
                secs: timeouts.connect.as_secs_f64(),
            })
        }
        Ok(Err(e)) => {
            return Err(ProxyError::UpstreamUnreachable {
                upstream: upstream.config.name.clone(),
                detail: error_chain(&e),
            })
        }
        Ok(Ok(r)) => r,
    };

    Ok(UpstreamResponse {
        resp,
        inject,
        idle: timeouts.idle,
    })
}

/// Trace context, baggage and header attributes, the prompt template and conversation id.
fn annotate(s: &AppState, headers: &HeaderMap, record: &mut RequestFacts) {
    record.trace = s.telemetry.propagation().extract(headers);
    let tcfg = &s.config.telemetry;
    let mcfg = &s.config.metrics;
    for (k, v) in &record.trace.baggage {
        if tcfg.baggage_attributes.iter().any(|b| b == k) {
            record.extra_attributes.push((k.clone(), v.clone()));
        }
        if mcfg.baggage_attributes.iter().any(|b| b == k) {
            record.metric_attributes.push((k.clone(), v.clone()));
        }
    }
    for name in &tcfg.header_attributes {
        if let Some(v) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            record
                .extra_attributes
                .push((format!("http.request.header.{name}"), v.to_string()));
        }
    }
    for name in &mcfg.header_attributes {
        if let Some(v) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            record.metric_attributes.push((name.clone(), v.to_string()));
        }
    }
    record.prompt_template = headers
        .get(PROMPT_TEMPLATE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(h) = &tcfg.conversation_id_header {
        record.conversation_id = headers
            .get(h.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ProxyError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ProxyError::BodyTooLarge { limit })
        }
        Err(e) => Err(ProxyError::BadRequestBody(e.to_string())),
    }
}

fn header_str(h: &reqwest::header::HeaderMap, name: header::HeaderName) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The error and its causes on one line (reqwest's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
