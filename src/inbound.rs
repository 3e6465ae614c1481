//! Inbound HTTP: health and metrics endpoints, and the proxy handler that takes one request
//! through its phases — route, read body, rewrite, send upstream, relay the response.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;

use crate::auth::ClientKeys;
use crate::config::Config;
use crate::dialect;
use crate::error::{error_chain, ProxyError};
use crate::injection::{self, InjectionRefusals, RefusalKey, MAX_REFUSAL_BODY};
use crate::request;
use crate::route;
use crate::stream::decode::Decoder;
use crate::stream::strip::UsageStripper;
use crate::stream::tee::Relay;
use crate::telemetry::limits::Limit;
use crate::telemetry::record::{RequestFacts, RequestRecord};
use crate::telemetry::Telemetry;
use crate::upstream::{self, Upstreams, PROMPT_TEMPLATE_HEADER, PROMPT_VERSION_HEADER};

pub struct AppState {
    pub config: Arc<Config>,
    pub upstreams: Upstreams,
    pub telemetry: Telemetry,
    /// False while shutting down, so `/readyz` takes the instance out of rotation.
    pub ready: AtomicBool,
    /// Set when the shutdown grace period ends: every relay still running cuts its stream
    /// and finishes its record, so no span is lost to the exit.
    pub abort: tokio::sync::watch::Sender<bool>,
    /// Upstreams that refused the injected `stream_options` lately.
    pub refusals: InjectionRefusals,
    /// Set when shutdown starts: endless responses (the live view's event stream) end then,
    /// so they never hold up the drain.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Client keys with their limiters, when `auth.keys` is configured.
    pub client_keys: Option<ClientKeys>,
    /// The inbound TLS certificate, when `tls_cert`/`tls_key` are configured.
    pub tls: Option<Arc<crate::tls::ServerCert>>,
}

impl AppState {
    pub fn new(config: Config, telemetry: Telemetry) -> Result<Arc<AppState>, String> {
        let upstreams = Upstreams::new(&config)?;
        let client_keys = config.auth.as_ref().map(ClientKeys::new);
        let copied = [
            (
                "telemetry.header_attributes",
                &config.telemetry.header_attributes,
            ),
            (
                "metrics.header_attributes",
                &config.metrics.header_attributes,
            ),
        ];
        for (key, names) in copied {
            for h in names.iter().filter(|h| is_credential(h)) {
                tracing::warn!(
                    "{key} names {h}, which carries a credential: it is never copied onto telemetry"
                );
            }
        }
        let tls = match &config.tls {
            Some(f) => Some(Arc::new(crate::tls::ServerCert::load(&f.cert, &f.key)?)),
            None => None,
        };
        Ok(Arc::new(AppState {
            client_keys,
            tls,
            config: Arc::new(config),
            upstreams,
            telemetry,
            ready: AtomicBool::new(true),
            abort: tokio::sync::watch::channel(false).0,
            refusals: InjectionRefusals::new(),
            stopping: tokio::sync::watch::channel(false).0,
        }))
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let ui = if state.config.ui.only_on_metrics_listen {
        None
    } else {
        crate::ui::routes(state.clone(), state.config.listen.ip().is_loopback())
    };
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(proxy)
        .with_state(state);
    match ui {
        Some(ui) => router.merge(ui),
        None => router,
    }
}

/// A router with `/metrics` (and `/ui` when it is served only here), for `--metrics-listen`.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    let ui = match state.config.metrics_listen {
        Some(a) if state.config.ui.only_on_metrics_listen => {
            crate::ui::routes(state.clone(), a.ip().is_loopback())
        }
        _ => None,
    };
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state);
    match ui {
        Some(ui) => router.merge(ui),
        None => router,
    }
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
    let (parts, body) = req.into_parts();
    let mut record =
        RequestRecord::new(s.telemetry.clone(), parts.method.as_str(), parts.uri.path());
    // Routed and forwarded in its normalised form only, so the path the upstream serves is
    // the one checked here.
    let path = match crate::path::normalize(parts.uri.path()) {
        Ok(p) => p,
        Err(e) => return own_error(ProxyError::BadPath(e), record),
    };
    // Stored cut (the live view keeps it); routed and forwarded whole.
    record.path = crate::telemetry::limits::owned(&path);
    if let Some(hint) = route::doubled_v1_hint(&path) {
        // Answered in the shape of the API the caller meant.
        record.dialect = path
            .strip_prefix("/v1")
            .and_then(|meant| route::target(meant, &parts.method))
            .and_then(|t| t.dialect);
        record.hint = Some(hint.clone());
        let hint = Some(hint);
        return own_error(ProxyError::NotFound { path, hint }, record);
    }
    let Some(target) = route::target(&path, &parts.method) else {
        let hint = route::missing_v1_hint(&path);
        record.hint = hint.clone();
        return own_error(ProxyError::NotFound { path, hint }, record);
    };
    record.operation = target.operation;
    record.dialect = target.dialect;
    // Client keys: known key, then its limits. The upstream is never called for a refusal.
    let mut permit = None;
    if let Some(keys) = &s.client_keys {
        record.gateway = true;
        let admitted = match s.telemetry.shared_state() {
            // Shared by replicas: the per-minute limit is counted in Redis.
            Some(shared) => keys.admit_shared(&parts.headers, shared).await,
            None => keys.admit(&parts.headers),
        };
        match admitted {
            Ok(admission) => {
                record.tenant = Some(admission.tenant);
                permit = admission.permit;
            }
            Err(refusal) => {
                record.tenant = refusal.tenant();
                return own_error(refusal.into(), record);
            }
        }
    }
    let response = match forward(&s, parts, body, target, &mut record).await {
        Ok(up) => relay(up, record, s.abort.subscribe()),
        Err(e) => own_error(e, record),
    };
    match permit {
        // The key's concurrency slot is held until the response body ends (or the client
        // goes away), not just until the headers are sent.
        Some(p) => response.map(|b| {
            Body::new(HoldPermit {
                body: b,
                _permit: p,
            })
        }),
        None => response,
    }
}

/// A response body that holds a concurrency permit for as long as it lives.
pub(crate) struct HoldPermit {
    body: Body,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl HoldPermit {
    pub(crate) fn new(body: Body, permit: tokio::sync::OwnedSemaphorePermit) -> HoldPermit {
        HoldPermit {
            body,
            _permit: permit,
        }
    }
}

impl http_body::Body for HoldPermit {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Answers with one of llmtap's own errors and finishes the record with what was sent, so the
/// access line and the span show the real status and size.
fn own_error(e: ProxyError, mut record: RequestRecord) -> Response {
    // In the error shape of the API that was called, so its SDK raises its usual exception.
    let body = match record.dialect {
        Some(d) => d.error_body(&e.to_string(), e.kind(), e.code(), e.status().as_u16()),
        None => e.body(),
    };
    let status = e.status();
    record.status = Some(status.as_u16());
    record.fail(e.code());
    record.bytes_out = body.len() as u64;
    record.finish();
    let mut resp = ProxyError::response(status, body);
    resp.headers_mut().extend(e.headers());
    resp
}

/// An upstream response whose body is still to be relayed.
struct UpstreamResponse {
    status: http::StatusCode,
    headers: reqwest::header::HeaderMap,
    /// The body as it comes; its first bytes may already have been read (a 4xx checked for
    /// a refused injection) and are replayed in front.
    body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    content_length: Option<u64>,
    inject: bool,
    timeouts: crate::config::Timeouts,
}

impl UpstreamResponse {
    fn new(resp: reqwest::Response, inject: bool, timeouts: &crate::config::Timeouts) -> Self {
        UpstreamResponse {
            status: resp.status(),
            headers: resp.headers().clone(),
            content_length: resp.content_length(),
            body: resp.bytes_stream().boxed(),
            inject,
            timeouts: timeouts.clone(),
        }
    }
}

/// Relays the upstream response; the record moves into the body stream, which finishes it.
fn relay(
    up: UpstreamResponse,
    mut record: RequestRecord,
    abort: tokio::sync::watch::Receiver<bool>,
) -> Response {
    let UpstreamResponse {
        status,
        headers,
        body,
        content_length,
        inject,
        timeouts,
    } = up;
    let mut out_headers = upstream::response_headers(&headers);
    let content_type = header_str(&headers, header::CONTENT_TYPE);
    let encoding = header_str(&headers, header::CONTENT_ENCODING);
    let injected_stream =
        inject && status.is_success() && content_type.starts_with("text/event-stream");
    // llmtap asks for an uncompressed stream when it injects; an upstream that compresses
    // anyway is decoded here so the injection's effects can be hidden. The client then gets
    // the stream uncompressed, which HTTP allows a proxy to do (`identity` is always
    // acceptable unless the client refused it).
    let mut decoder = None;
    if injected_stream && !encoding.is_empty() {
        if let Some(Ok(d)) = Decoder::for_encoding(&encoding) {
            decoder = Some(d);
            out_headers.remove(header::CONTENT_ENCODING);
        }
    }
    let watched_encoding = if decoder.is_some() { "" } else { &encoding };
    record.response_started(status.as_u16(), &content_type, watched_encoding);
    record.response_headers(&headers);
    // Hide the injection's effects; an encoding we cannot decode is relayed untouched.
    let stripper =
        (injected_stream && (encoding.is_empty() || decoder.is_some())).then(UsageStripper::new);
    if stripper.is_some() {
        out_headers.remove(header::CONTENT_LENGTH);
    }
    let length = match stripper {
        None => content_length,
        Some(_) => None,
    };
    let relay = Relay::new(body, record, stripper, timeouts.idle, abort)
        .with_length(length)
        .with_max_duration(timeouts.max_stream)
        .with_decoder(decoder);
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
    let (mut out_body, parsed) = match (target.operation, target.dialect) {
        (Some(op), Some(dialect)) => {
            let bytes = read_body(s, body, limit, record).await?;
            let parsed = dialect::parse_request(
                dialect,
                &bytes,
                op,
                s.telemetry.capture_content(),
                s.telemetry.prompt_hasher(),
            );
            (OutBody::Whole(bytes), parsed)
        }
        _ => (OutBody::Streamed(body), None),
    };
    let (mut info, obj, lenient) = match parsed {
        Some(p) => (Some(p.info), Some(p.obj), p.lenient),
        None => (None, None, false),
    };
    if lenient {
        record.hit_limit(
            Limit::LenientJson,
            "request body read by the lenient JSON fallback",
        );
    }
    if target.path_model.is_some() && info.as_ref().is_none_or(|i| i.model.is_none()) {
        // Azure and Gemini name the model in the path; it routes the request, and a body
        // without one (or not JSON) still gets it on the span.
        info.get_or_insert_with(Default::default).model = target.path_model.clone();
    }
    if target.path_stream && target.operation.is_some() {
        info.get_or_insert_with(Default::default).stream = Some(true);
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

    // Stored (on the record, the span, pending tool calls, the live view) only within the
    // bounds; the body is forwarded as it came.
    if let Some(i) = info.as_mut() {
        for limit in i.bound(s.telemetry.capture_content()) {
            record.hit_limit(
                limit,
                "request identifiers cut, or tool results beyond the bound",
            );
        }
    }
    let refusal_key = RefusalKey::new(
        &upstream.config.name,
        target
            .path_model
            .as_deref()
            .filter(|_| target.azure_deployment),
        injection::api_version(parts.uri.query()),
        info.as_ref().and_then(|i| i.model.as_deref()),
    );
    let mut inject = false;
    // The client's own body, kept for the one retry when the upstream refuses the injection.
    let mut original = None;
    if let (OutBody::Whole(bytes), Some(obj), Some(i), Some(op), Some(dialect)) =
        (&out_body, &obj, &info, target.operation, target.dialect)
    {
        // A body that is not a JSON object (`obj` is None) is never rewritten.
        let wants = i.include_usage == Some(true);
        // A leniently read body is only ever spliced, never re-serialized: the values the
        // lenient reading replaced must reach the upstream as the client wrote them.
        let rewrites = lenient && obj.contains_key("stream_options");
        if upstream.config.inject_usage && dialect.injects_usage(op) && !wants && !rewrites {
            if s.refusals.refused(&refusal_key) {
                record.injection_refused = i.stream == Some(true);
            } else if let Some(rewritten) = request::inject_include_usage(bytes, obj) {
                inject = true;
                original = Some(bytes.clone());
                out_body = OutBody::Whole(Bytes::from(rewritten));
            }
        }
    }
    record.request = info;
    record.upstream = Some(upstream.info.clone());
    record.usage_injected = inject;

    let mut headers =
        upstream::request_headers(&parts.headers, &upstream.config, s.client_keys.is_some());
    if target.operation.is_some() {
        annotate(s, &parts.headers, record);
        if !s.telemetry.settings().sdk_disabled {
            let sampled = s.telemetry.head_sampled(&record.trace);
            s.telemetry
                .propagation()
                .inject(&record.trace, sampled, &mut headers);
        }
    }
    let client_headers = inject.then(|| headers.clone());
    if inject {
        // The usage the injection brings must be taken out again before the client sees
        // it, which needs the stream's text: ask for it uncompressed.
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }

    let base = if target.from_origin {
        &upstream.origin
    } else {
        &upstream.base
    };
    // Google's `key=` is a credential: a Gemini upstream with its own key sends that one (in
    // `x-goog-api-key`), so the client's stays here, like its headers.
    let strip_key = upstream.config.provider == crate::config::Provider::Gemini
        && upstream.config.api_key.is_some();
    let query = forwarded_query(parts.uri.query(), strip_key);
    let url = upstream_url(base, &target.upstream_path, query.as_deref())?;
    if let Some(signing) = &upstream.config.aws_signing {
        // llmtap's own AWS credentials; the client's credential was checked (client keys)
        // or is a bearer the upstream would not take alongside a signature: dropped.
        let body = match &out_body {
            OutBody::Whole(b) => Some(&b[..]),
            OutBody::Streamed(_) => None,
        };
        crate::sigv4::sign(
            signing,
            &parts.method,
            &url,
            &mut headers,
            body,
            std::time::SystemTime::now(),
        );
    }
    let body = match out_body {
        OutBody::Whole(b) => reqwest::Body::from(b),
        OutBody::Streamed(b) => reqwest::Body::wrap_stream(
            http_body_util::Limited::new(b, limit)
                .into_data_stream()
                .map_err(|e| std::io::Error::other(e.to_string())),
        ),
    };
    let resp = send(upstream, &parts.method, &url, headers, body).await?;
    let timeouts = &upstream.config.timeouts;
    let idle = timeouts.idle;
    // A 4xx to a request llmtap changed: if it names the injected parameter, the client's
    // own body goes once more and its answer is the one relayed.
    let retry = match (original, client_headers) {
        (Some(o), Some(h)) if resp.status().is_client_error() => Some((o, h)),
        _ => None,
    };
    let Some((original, client_headers)) = retry else {
        return Ok(UpstreamResponse::new(resp, inject, timeouts));
    };
    let status = resp.status();
    let resp_headers = resp.headers().clone();
    let content_length = resp.content_length();
    let (read, rest) = read_prefix(resp.bytes_stream().boxed(), MAX_REFUSAL_BODY, idle).await;
    if rest.is_some() || !injection::names_injected_parameter(&read) {
        return Ok(UpstreamResponse {
            status,
            headers: resp_headers,
            body: replay(read, rest),
            content_length,
            inject,
            timeouts: timeouts.clone(),
        });
    }
    if s.refusals.remember(refusal_key.clone()) {
        tracing::info!(
            upstream = %refusal_key.upstream,
            scope = crate::telemetry::limits::cut(&refusal_key.scope),
            status = status.as_u16(),
            "upstream refused the injected stream_options; resending the client's body, and not injecting here for the next hour (usage is estimated)"
        );
    }
    record.usage_injected = false;
    record.injection_refused = true;
    let resp = send(
        upstream,
        &parts.method,
        &url,
        client_headers,
        reqwest::Body::from(original),
    )
    .await?;
    Ok(UpstreamResponse::new(resp, false, timeouts))
}

/// `<base><path>?<query>`: `path` (already normalised) joined onto the parsed base URL,
/// checked once more: the result must still lie under the base's path. Only the path is
/// parsed here, so the host cannot change; this guards against any disagreement between our
/// normalisation and the URL parser's (`..`, `%2e%2e`, `\`).
fn upstream_url(
    base: &reqwest::Url,
    path: &str,
    query: Option<&str>,
) -> Result<reqwest::Url, ProxyError> {
    let leaves = || ProxyError::BadPath(crate::path::PathError::LeavesBase);
    if !path.starts_with('/') {
        return Err(leaves());
    }
    let base_path = base.path().trim_end_matches('/');
    let mut url = base.clone();
    let mut joined = String::with_capacity(base_path.len() + path.len());
    joined.push_str(base_path);
    joined.push_str(path);
    url.set_path(&joined);
    url.set_query(query);
    let inside = url
        .path()
        .strip_prefix(base_path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if !inside {
        return Err(leaves());
    }
    Ok(url)
}

/// The query sent upstream: the client's, without its `key=` parameters when `strip_key`.
fn forwarded_query(query: Option<&str>, strip_key: bool) -> Option<std::borrow::Cow<'_, str>> {
    let q = query?;
    if !strip_key || !q.split('&').any(|p| p == "key" || p.starts_with("key=")) {
        return Some(q.into());
    }
    let kept: Vec<&str> = q
        .split('&')
        .filter(|p| *p != "key" && !p.starts_with("key="))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&").into())
}

/// Sends one request upstream within the first-byte timeout.
async fn send(
    upstream: &upstream::Upstream,
    method: &http::Method,
    url: &reqwest::Url,
    headers: reqwest::header::HeaderMap,
    body: reqwest::Body,
) -> Result<reqwest::Response, ProxyError> {
    let send = upstream
        .client()
        .request(method.clone(), url.clone())
        .headers(headers)
        .body(body)
        .send();
    let timeouts = &upstream.config.timeouts;
    match tokio::time::timeout(timeouts.first_byte, send).await {
        Err(_) => Err(ProxyError::UpstreamTimeout {
            upstream: upstream.config.name.clone(),
            secs: timeouts.first_byte.as_secs_f64(),
        }),
        Ok(Err(e)) if e.is_timeout() => Err(ProxyError::UpstreamTimeout {
            upstream: upstream.config.name.clone(),
            secs: timeouts.connect.as_secs_f64(),
        }),
        Ok(Err(e)) => Err(ProxyError::UpstreamUnreachable {
            upstream: upstream.config.name.clone(),
            detail: error_chain(&e),
        }),
        Ok(Ok(r)) => Ok(r),
    }
}

type UpstreamBody = BoxStream<'static, Result<Bytes, reqwest::Error>>;

/// Reads up to `max` bytes of `body` (each read within `idle`). Returns what was read and,
/// when the body did not end within `max` (or stalled, or failed), the rest still to relay.
async fn read_prefix(
    mut body: UpstreamBody,
    max: usize,
    idle: std::time::Duration,
) -> (Vec<u8>, Option<UpstreamBody>) {
    let mut read = Vec::new();
    loop {
        match tokio::time::timeout(idle, body.next()).await {
            Ok(None) => return (read, None),
            Ok(Some(Ok(chunk))) => {
                read.extend_from_slice(&chunk);
                if read.len() > max {
                    return (read, Some(body));
                }
            }
            // A failure or a stall is the relay's to report: hand the body over as it is.
            Ok(Some(Err(e))) => {
                let failed = futures_util::stream::once(async move { Err(e) }).boxed();
                return (read, Some(failed));
            }
            Err(_) => return (read, Some(body)),
        }
    }
}

/// The bytes already read, then the rest of the body.
fn replay(read: Vec<u8>, rest: Option<UpstreamBody>) -> UpstreamBody {
    let head = futures_util::stream::iter((!read.is_empty()).then(|| Ok(Bytes::from(read))));
    match rest {
        Some(rest) => head.chain(rest).boxed(),
        None => head.boxed(),
    }
}

/// Trace context, baggage and header attributes, the prompt template and conversation id.
fn annotate(s: &AppState, headers: &HeaderMap, record: &mut RequestFacts) {
    record.trace = s.telemetry.propagation().extract(headers);
    let tcfg = &s.config.telemetry;
    let mcfg = &s.config.metrics;
    // Values are stored cut to the identifier bound (baggage as a whole is at most 8 KB,
    // the W3C limit the propagator enforces; a header value is bounded only by the head).
    let own = crate::telemetry::limits::owned;
    for (k, v) in &record.trace.baggage {
        if tcfg.baggage_attributes.iter().any(|b| b == k) {
            record.extra_attributes.push((k.clone(), own(v)));
        }
        if mcfg.baggage_attributes.iter().any(|b| b == k) {
            record.metric_attributes.push((k.clone(), own(v)));
        }
    }
    // A credential never becomes an attribute, whatever the config names.
    for name in tcfg.header_attributes.iter().filter(|h| !is_credential(h)) {
        if let Some(v) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            record
                .extra_attributes
                .push((format!("http.request.header.{name}"), own(v)));
        }
    }
    for name in mcfg.header_attributes.iter().filter(|h| !is_credential(h)) {
        if let Some(v) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            record.metric_attributes.push((name.clone(), own(v)));
        }
    }
    record.prompt_template = headers
        .get(PROMPT_TEMPLATE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(own);
    record.prompt_version = headers
        .get(PROMPT_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(own);
    record.conversation_id = session_id(headers, tcfg.conversation_id_header.as_deref());
}

/// Headers that name the client's session, after the configured one, in precedence order:
/// Claude Code's (2.1.86 and later), the Codex CLI's (`session-id`; `session_id` from older
/// builds and other agents), and the generic `x-session-id`. Sources in docs/coding-agents.md.
const SESSION_HEADERS: [&str; 4] = [
    "x-claude-code-session-id",
    "session-id",
    "session_id",
    "x-session-id",
];

/// `gen_ai.conversation.id` from the request's headers: the configured header first, then
/// [`SESSION_HEADERS`]; the first non-empty value wins. Never a generated id: a request that
/// names no session has none (the body may still name one: Claude Code's
/// `metadata.user_id`, the Responses API's `conversation`).
fn session_id(headers: &HeaderMap, configured: Option<&str>) -> Option<String> {
    configured
        .into_iter()
        .chain(SESSION_HEADERS)
        .filter_map(|h| headers.get(h)?.to_str().ok())
        .map(str::trim)
        .find(|v| !v.is_empty())
        .map(crate::telemetry::limits::owned)
}

fn is_credential(header: &str) -> bool {
    crate::auth::CREDENTIAL_HEADERS.contains(&header)
}

/// Reads an inference request's whole body within `body_read_timeout`, or until the shutdown
/// grace period ends (a body still arriving when shutdown starts gets the grace period, as
/// every in-flight request does): a client that declares a body and never sends it holds
/// neither the connection nor its key's concurrency slot past that, and still gets an answer,
/// a span and an access line.
async fn read_body(
    s: &AppState,
    body: Body,
    limit: usize,
    record: &mut RequestRecord,
) -> Result<Bytes, ProxyError> {
    let timeout = s.config.body_read_timeout;
    let mut abort = s.abort.subscribe();
    tokio::select! {
        r = tokio::time::timeout(timeout, read_limited(body, limit)) => match r {
            Ok(r) => r,
            Err(_) => {
                record.hit_limit(Limit::BodyReadTimeout, "request body not received within body_read_timeout_secs");
                Err(ProxyError::BodyTimeout { secs: timeout.as_secs_f64() })
            }
        },
        _ = abort.wait_for(|v| *v) => Err(ProxyError::ShuttingDown),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn upstream_urls_stay_under_the_base() {
        let u = upstream_url(
            &url("http://up:8000/v1"),
            "/chat/completions",
            Some("a=../b"),
        )
        .unwrap();
        assert_eq!(u.as_str(), "http://up:8000/v1/chat/completions?a=../b");
        let u = upstream_url(&url("https://az.example"), "/openai/x", None).unwrap();
        assert_eq!(u.path(), "/openai/x");
        let u = upstream_url(&url("http://up:8000/v1/"), "/models", None).unwrap();
        assert_eq!(u.as_str(), "http://up:8000/v1/models");
        // Normalisation runs first; this is the second line of defence.
        for path in ["/../admin", "/%2e%2e/admin", "/..\\admin", "/a/../../admin"] {
            assert!(
                upstream_url(&url("http://up/v1"), path, None).is_err(),
                "{path}"
            );
        }
        // Text that would read as a different authority if glued to the base as a string:
        // refused, and a path can never move the host.
        assert!(upstream_url(&url("http://up"), "@evil/x", None).is_err());
        let u = upstream_url(&url("http://up"), "/@evil/x", None).unwrap();
        assert_eq!(u.host_str(), Some("up"));
    }

    #[test]
    fn session_headers_in_precedence_order() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            m
        };
        let all = h(&[
            ("x-session-id", "generic"),
            ("session-id", "codex"),
            ("x-claude-code-session-id", "claude"),
            ("x-my-session", "mine"),
        ]);
        assert_eq!(
            session_id(&all, Some("x-my-session")).as_deref(),
            Some("mine")
        );
        assert_eq!(session_id(&all, None).as_deref(), Some("claude"));
        let codex = h(&[("session_id", "codex-old"), ("x-session-id", "g")]);
        assert_eq!(session_id(&codex, None).as_deref(), Some("codex-old"));
        assert_eq!(
            session_id(&h(&[("x-session-id", " ")]), None),
            None,
            "blank is none"
        );
        assert_eq!(session_id(&HeaderMap::new(), Some("x-my-session")), None);
    }

    #[test]
    fn google_key_parameter_is_kept_only_without_keys_of_our_own() {
        let q = Some("alt=sse&key=AIzaSECRET");
        assert_eq!(forwarded_query(q, false).as_deref(), q);
        assert_eq!(forwarded_query(q, true).as_deref(), Some("alt=sse"));
        assert_eq!(forwarded_query(Some("key=AIza"), true), None);
        assert_eq!(
            forwarded_query(Some("keyword=1"), true).as_deref(),
            Some("keyword=1")
        );
    }
}
