//! One proxied request's life, as named phases over a per-request context ([`Exchange`]),
//! after pingora's proxy phases:
//!
//! 1. [`Exchange::route`]: normalise the path and find its API, operation and dialect;
//! 2. [`Exchange::authorize`]: the client key and its limits (never an upstream call for a
//!    refusal);
//! 3. [`Exchange::read_request`]: the body, read whole and parsed for inference calls,
//!    streamed through for everything else;
//! 4. [`Exchange::choose_upstream`]: by the model, else the default;
//! 5. [`Exchange::rewrite`]: the dialect's rewrite of the body (usage injection), the
//!    upstream's headers, trace context and URL;
//! 6. [`Exchange::send`]: one request upstream within the first-byte timeout;
//! 7. [`Exchange::retry_refused`]: the client's own body once more when the upstream refused
//!    the rewrite;
//! 8. the relay ([`crate::respond::relay`]), which moves the record into the response body.
//!
//! Every phase fails with a [`ProxyError`], and there is one failure path
//! ([`crate::respond::own_error`]). Finishing the record is the step that always runs: the
//! relay finishes it when the body ends, the failure path when it answers, and the record's
//! `Drop` when the client goes away in between.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyDataStream, BodyExt};
use hyper::body::Incoming;
use serde_json::{Map, Value};
use tokio::sync::OwnedSemaphorePermit;

use crate::app::AppState;
use crate::dialect;
use crate::error::{error_chain, ProxyError};
use crate::injection::{self, RefusalKey, MAX_REFUSAL_BODY};
use crate::respond::{self, HoldPermit, UpstreamBody, UpstreamResponse};
use crate::route::{self, Target};
use crate::telemetry::record::{RequestFacts, RequestRecord};
use crate::upstream::{self, RequestBody, Upstream, PROMPT_TEMPLATE_HEADER, PROMPT_VERSION_HEADER};
use crate::vocab::limits::{self, Limit};
use crate::vocab::provider::Provider;
use crate::vocab::request::RequestInfo;

/// The proxy handler: runs the phases, then relays the upstream's answer or answers with
/// llmtap's own error.
pub async fn handle(s: &AppState, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let record = RequestRecord::new(s.telemetry.clone(), parts.method.as_str(), parts.uri.path());
    let mut cx = Exchange {
        s,
        parts,
        record,
        target: None,
        permit: None,
    };
    let outcome = cx.run(body).await;
    let Exchange { record, permit, .. } = cx;
    let response = match outcome {
        Ok(up) => respond::relay(up, record, s.abort.subscribe()),
        Err(e) => respond::own_error(e, record),
    };
    match permit {
        // The key's concurrency slot is held until the response body ends (or the client
        // goes away), not just until the headers are sent.
        Some(p) => response.map(|b| Body::new(HoldPermit::new(b, p))),
        None => response,
    }
}

/// What one request carries from phase to phase.
struct Exchange<'a> {
    s: &'a AppState,
    parts: http::request::Parts,
    /// Becomes the span, the metrics, the access line and the live view's entry.
    record: RequestRecord,
    /// Set by [`Exchange::route`]; read through [`routed`].
    target: Option<Target>,
    /// The client key's concurrency slot, held until the response body ends.
    permit: Option<OwnedSemaphorePermit>,
}

/// The request body as read in [`Exchange::read_request`] (what the dialect read from it is
/// on the record by then).
struct ReadRequest {
    body: OutBody,
    /// The body as a JSON object (inference calls whose body is one).
    obj: Option<Map<String, Value>>,
    /// The object was read by the lenient fallback.
    lenient: bool,
}

/// The body to send upstream: whole (inference calls, which are parsed) or streamed.
enum OutBody {
    Whole(Bytes),
    Streamed(Body),
}

impl OutBody {
    /// The body as sent upstream; a streamed one still stops at `limit` bytes.
    fn into_body(self, limit: usize) -> RequestBody {
        match self {
            OutBody::Whole(b) => RequestBody::whole(b),
            OutBody::Streamed(b) => RequestBody::Streamed(http_body_util::Limited::new(b, limit)),
        }
    }
}

/// The request as it goes upstream ([`Exchange::rewrite`]).
struct Outgoing {
    uri: http::Uri,
    body: OutBody,
    headers: HeaderMap,
    /// The body carries the injected `stream_options`.
    inject: bool,
    /// With an injection: what the one retry sends when the upstream refuses it.
    retry: Option<Retry>,
}

/// The client's own request, kept for the one retry without the injected parameter (only
/// requests llmtap rewrote keep one, so the others move their URL into the send).
struct Retry {
    body: Bytes,
    headers: HeaderMap,
    uri: http::Uri,
    refusal_key: RefusalKey,
}

impl<'a> Exchange<'a> {
    async fn run(&mut self, body: Body) -> Result<UpstreamResponse, ProxyError> {
        self.route()?;
        self.authorize().await?;
        let read = self.read_request(body).await?;
        let upstream = self.choose_upstream()?;
        let out = self.rewrite(upstream, read)?;
        let first = self.send(upstream, out.uri, out.headers, out.body).await?;
        self.retry_refused(upstream, out.inject, out.retry, first)
            .await
    }

    /// Phase 1: the normalised path (routed and forwarded in that form only, so the path
    /// the upstream serves is the one checked here) and its target.
    fn route(&mut self) -> Result<(), ProxyError> {
        let path = crate::path::normalize(self.parts.uri.path()).map_err(ProxyError::BadPath)?;
        // Stored cut (the live view keeps it); routed and forwarded whole.
        self.record.path = limits::owned(&path);
        let method = &self.parts.method;
        if let Some(hint) = route::doubled_v1_hint(&path) {
            // Answered in the shape of the API the caller meant.
            self.record.dialect = path
                .strip_prefix("/v1")
                .and_then(|meant| route::target(meant, method))
                .and_then(|t| t.dialect);
            self.record.hint = Some(hint.clone());
            let hint = Some(hint);
            return Err(ProxyError::NotFound { path, hint });
        }
        let Some(target) = route::target(&path, method) else {
            let hint = route::missing_v1_hint(&path);
            self.record.hint = hint.clone();
            return Err(ProxyError::NotFound { path, hint });
        };
        self.record.operation = target.operation;
        self.record.dialect = target.dialect;
        self.target = Some(target);
        Ok(())
    }

    /// Phase 2: client keys, when configured: a known key, then its limits (the per-minute
    /// one counted in Redis when replicas share state).
    async fn authorize(&mut self) -> Result<(), ProxyError> {
        let Some(keys) = &self.s.client_keys else {
            return Ok(());
        };
        self.record.gateway = true;
        let headers = &self.parts.headers;
        let admitted = match self.s.shared.as_deref() {
            Some(shared) => keys.admit_shared(headers, shared).await,
            None => keys.admit(headers),
        };
        match admitted {
            Ok(admission) => {
                self.record.tenant = Some(admission.tenant);
                self.permit = admission.permit;
                Ok(())
            }
            Err(refusal) => {
                self.record.tenant = refusal.tenant();
                Err(refusal.into())
            }
        }
    }

    /// Phase 3: inference calls are read whole (the model routes them and the body feeds
    /// the span) within `max_body_bytes` and `body_read_timeout_secs`; everything else
    /// streams through untouched. What the request names is stored within the bounds only.
    async fn read_request(&mut self, body: Body) -> Result<ReadRequest, ProxyError> {
        let limit = self.s.config.max_body_bytes;
        let declared = self
            .parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ProxyError::BodyTooLarge { limit });
        }
        let target = routed(&self.target);
        let capture = self.s.telemetry.capture_content();
        let (body, parsed) = match (target.operation, target.dialect) {
            (Some(op), Some(d)) => {
                let bytes = read_body(self.s, body, limit, &mut self.record).await?;
                let parsed = dialect::parse_request(d, &bytes, op, capture, &self.s.prompt_hasher);
                (OutBody::Whole(bytes), parsed)
            }
            _ => (OutBody::Streamed(body), None),
        };
        let (mut info, obj, lenient) = match parsed {
            Some(p) => (Some(p.info), Some(p.obj), p.lenient),
            None => (None, None, false),
        };
        if lenient {
            self.record.hit_limit(
                Limit::LenientJson,
                "request body read by the lenient JSON fallback",
            );
        }
        if target.path_model.is_some() && info.as_ref().is_none_or(|i| i.model.is_none()) {
            // Azure and Gemini name the model in the path; it routes the request, and a body
            // without one (or not JSON) still gets it on the span.
            info.get_or_insert_with(RequestInfo::default).model = target.path_model.clone();
        }
        if target.path_stream && target.operation.is_some() {
            info.get_or_insert_with(RequestInfo::default).stream = Some(true);
        }
        // Stored (on the record, the span, pending tool calls, the live view) only within
        // the bounds; the body is forwarded as it came.
        if let Some(i) = info.as_mut() {
            for limit in i.bound(capture) {
                self.record.hit_limit(
                    limit,
                    "request identifiers cut, or tool results beyond the bound",
                );
            }
        }
        self.record.request = info;
        Ok(ReadRequest { body, obj, lenient })
    }

    /// Phase 4: the upstream for the request's model (`routes`), else the default one.
    fn choose_upstream(&mut self) -> Result<&'a Upstream, ProxyError> {
        let model = self
            .record
            .request
            .as_ref()
            .and_then(|i| i.model.as_deref());
        let chosen = route::upstream_for(&self.s.config, model);
        let s: &'a AppState = self.s;
        let upstream = s
            .upstreams
            .get(&chosen.name)
            .ok_or_else(|| ProxyError::NotFound {
                path: chosen.name.clone(),
                hint: None,
            })?;
        self.record.upstream = Some(upstream.info.clone());
        Ok(upstream)
    }

    /// Phase 5: the request as it goes upstream: the body rewritten where the dialect asks
    /// for usage on streams (`stream_options.include_usage`, unless the client asked itself,
    /// the upstream refused it lately, or the body was read leniently and would need
    /// re-serializing), the upstream's headers and credential, trace context on inference
    /// calls, and the URL under the upstream's base.
    fn rewrite(&mut self, upstream: &Upstream, read: ReadRequest) -> Result<Outgoing, ProxyError> {
        let s = self.s;
        let target = routed(&self.target);
        let info = self.record.request.as_ref();
        let ReadRequest {
            mut body,
            obj,
            lenient,
        } = read;
        let mut inject = false;
        // The client's own body and the refusal key, when the body is rewritten.
        let mut original = None;
        // A body that is not a JSON object (`obj` is None) is never rewritten, nor is a
        // request that is not a stream: usage injection asks for a stream's usage.
        if let (OutBody::Whole(bytes), Some(obj), Some(i), Some(op), Some(dialect), true) = (
            &body,
            &obj,
            info,
            target.operation,
            target.dialect,
            info.is_some_and(|i| i.stream == Some(true)),
        ) {
            let wants = i.include_usage == Some(true);
            // A leniently read body is only ever spliced, never re-serialized: the values
            // the lenient reading replaced must reach the upstream as the client wrote them.
            let rewrites = lenient && obj.contains_key("stream_options");
            let usage_injection = dialect
                .usage_injection(op)
                .filter(|_| upstream.config.inject_usage && !wants && !rewrites);
            if let Some(usage_injection) = usage_injection {
                let refusal_key = RefusalKey::new(
                    &upstream.config.name,
                    target
                        .path_model
                        .as_deref()
                        .filter(|_| target.azure_deployment),
                    injection::api_version(self.parts.uri.query()),
                    i.model.as_deref(),
                );
                if s.refusals.refused(&refusal_key) {
                    self.record.injection_refused = true;
                } else if let Some(rewritten) = usage_injection.rewrite(bytes, obj) {
                    inject = true;
                    original = Some((bytes.clone(), refusal_key));
                    body = OutBody::Whole(Bytes::from(rewritten));
                }
            }
        }
        self.record.usage_injected = inject;

        let mut headers = upstream::request_headers(
            &self.parts.headers,
            &upstream.config,
            s.client_keys.is_some(),
        );
        if target.operation.is_some() {
            annotate(s, &self.parts.headers, &mut self.record);
            if !s.telemetry.settings().sdk_disabled {
                let sampled = s.telemetry.head_sampled(&self.record.trace);
                s.telemetry
                    .propagation()
                    .inject(&self.record.trace, sampled, &mut headers);
            }
        }
        // Only a rewritten request can be retried: it alone keeps its headers before the
        // rewrite's own ones.
        let retry_headers = original.as_ref().map(|_| headers.clone());
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
        // Google's `key=` is a credential: a Gemini upstream with its own key sends that one
        // (in `x-goog-api-key`), so the client's stays here, like its headers.
        let strip_key =
            upstream.config.provider == Provider::Gemini && upstream.config.api_key.is_some();
        let query = forwarded_query(self.parts.uri.query(), strip_key);
        let url = upstream_url(base, &target.upstream_path, query.as_deref())?;
        if let Some(signing) = &upstream.config.aws_signing {
            // llmtap's own AWS credentials (only behind client keys, which were checked): the
            // client's credential and signature headers are dropped and replaced.
            let bytes = match &body {
                OutBody::Whole(b) => Some(&b[..]),
                OutBody::Streamed(_) => None,
            };
            crate::sigv4::sign(
                signing,
                &self.parts.method,
                &url,
                &mut headers,
                bytes,
                std::time::SystemTime::now(),
            );
        }
        let uri = to_uri(&url, &upstream.config.name)?;
        let retry = original
            .zip(retry_headers)
            .map(|((body, refusal_key), headers)| Retry {
                body,
                headers,
                uri: uri.clone(),
                refusal_key,
            });
        Ok(Outgoing {
            uri,
            body,
            headers,
            inject,
            retry,
        })
    }

    /// Phase 6: one request upstream within the first-byte timeout.
    async fn send(
        &mut self,
        upstream: &Upstream,
        uri: http::Uri,
        headers: HeaderMap,
        body: OutBody,
    ) -> Result<http::Response<Incoming>, ProxyError> {
        let body = body.into_body(self.s.config.max_body_bytes);
        send(upstream, &self.parts.method, uri, headers, body).await
    }

    /// Phase 7: a 4xx to a request llmtap changed: if it names the injected parameter, the
    /// client's own body goes once more and its answer is the one relayed (and the upstream
    /// is not injected into for an hour).
    async fn retry_refused(
        &mut self,
        upstream: &Upstream,
        inject: bool,
        retry: Option<Retry>,
        resp: http::Response<Incoming>,
    ) -> Result<UpstreamResponse, ProxyError> {
        let timeouts = &upstream.config.timeouts;
        let Some(retry) = retry.filter(|_| resp.status().is_client_error()) else {
            return Ok(UpstreamResponse::new(resp, inject, timeouts));
        };
        let (parts, body) = resp.into_parts();
        let content_length = http_body::Body::size_hint(&body).exact();
        let (read, rest) = read_prefix(
            BodyDataStream::new(body).boxed(),
            MAX_REFUSAL_BODY,
            timeouts.idle,
        )
        .await;
        // Whether the body names what the dialect's rewrite added.
        let refused = self
            .record
            .dialect
            .zip(self.record.operation)
            .and_then(|(d, op)| d.usage_injection(op))
            .is_some_and(|i| i.refused(&read));
        if rest.is_some() || !refused {
            return Ok(UpstreamResponse {
                status: parts.status,
                headers: parts.headers,
                body: replay(read, rest),
                content_length,
                inject,
                timeouts: timeouts.clone(),
            });
        }
        let key = retry.refusal_key;
        if self.s.refusals.remember(key.clone()) {
            tracing::info!(
                upstream = %key.upstream,
                scope = limits::cut(&key.scope),
                status = parts.status.as_u16(),
                "upstream refused the injected stream_options; resending the client's body, and not injecting here for the next hour (usage is estimated)"
            );
        }
        self.record.usage_injected = false;
        self.record.injection_refused = true;
        let resp = send(
            upstream,
            &self.parts.method,
            retry.uri,
            retry.headers,
            RequestBody::whole(retry.body),
        )
        .await?;
        Ok(UpstreamResponse::new(resp, false, timeouts))
    }
}

/// The route phase's target: it runs before every other phase. A free function over the
/// field (not a method), so a phase can borrow it while it changes the record.
fn routed(target: &Option<Target>) -> &Target {
    target
        .as_ref()
        .expect("the route phase runs before every other phase")
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

/// `<base><path>?<query>`: `path` (already normalised) joined onto the parsed base URL,
/// checked once more: the result must still lie under the base's path. Only the path is
/// parsed here, so the host cannot change; this guards against any disagreement between our
/// normalisation and the URL parser's (`..`, `%2e%2e`, `\`).
fn upstream_url(base: &url::Url, path: &str, query: Option<&str>) -> Result<url::Url, ProxyError> {
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

/// The URL as the client sends it. The URL parser's output is a valid URI; should the two
/// parsers ever disagree, the request cannot be sent (as reqwest, which converted the same
/// way, answered).
fn to_uri(url: &url::Url, upstream: &str) -> Result<http::Uri, ProxyError> {
    http::Uri::try_from(url.as_str()).map_err(|e| ProxyError::UpstreamUnreachable {
        upstream: upstream.to_string(),
        detail: format!("the upstream URL is not a valid URI: {e}"),
    })
}

/// Sends one request upstream within the first-byte timeout.
async fn send(
    upstream: &upstream::Upstream,
    method: &http::Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: RequestBody,
) -> Result<http::Response<Incoming>, ProxyError> {
    let mut req = http::Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    let send = upstream.with_client(|c| c.request(req));
    let timeouts = &upstream.config.timeouts;
    match tokio::time::timeout(timeouts.first_byte, send).await {
        Err(_) => Err(ProxyError::UpstreamTimeout {
            upstream: upstream.config.name.clone(),
            secs: timeouts.first_byte.as_secs_f64(),
        }),
        Ok(Err(e)) if connect_timed_out(&e) => Err(ProxyError::UpstreamTimeout {
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

/// Whether the connect timeout ended the attempt (somewhere in the error's causes).
fn connect_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<upstream::ConnectTimeout>() {
            return true;
        }
        cause = c.source();
    }
    false
}

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
    let own = crate::vocab::limits::owned;
    for (k, v) in &record.trace.baggage {
        if tcfg.baggage_attributes.iter().any(|b| b == k) {
            record.extra_attributes.push((k.clone(), own(v)));
        }
        if mcfg.baggage_attributes.iter().any(|b| b == k) {
            record.metric_attributes.push((k.clone(), own(v)));
        }
    }
    // A credential never becomes an attribute, whatever the config names.
    for name in tcfg
        .header_attributes
        .iter()
        .filter(|h| !crate::auth::is_credential(h))
    {
        if let Some(v) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            record
                .extra_attributes
                .push((format!("http.request.header.{name}"), own(v)));
        }
    }
    for name in mcfg
        .header_attributes
        .iter()
        .filter(|h| !crate::auth::is_credential(h))
    {
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
        .map(crate::vocab::limits::owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
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
