//! MCP servers through llmtap: each configured server (`mcp_servers`) is served at
//! `/mcp/{name}` over the Streamable HTTP transport and relayed to its URL (never one taken
//! from the request). A POST's JSON-RPC messages become one client span each (the GenAI MCP
//! conventions, `telemetry::mcp`), their responses are found in the JSON body or the SSE
//! stream, which goes to the client byte for byte and chunk by chunk through the same relay as
//! the LLM APIs. GET (the server's stream) and DELETE (a session's end) pass through.
//!
//! Headers pass through as a proxy forwards them (hop-by-hop ones dropped): `Mcp-Session-Id`,
//! `MCP-Protocol-Version`, `Last-Event-ID`, `Authorization`, and a 401's `WWW-Authenticate`.
//! With client keys on, the llmtap key is read from `x-api-key`/`api-key` when present (so
//! `Authorization` stays the MCP server's, for its own OAuth), else from `Authorization`;
//! the header that carried it is never forwarded. No header value is ever recorded.

pub mod jsonrpc;
pub mod stdio;
pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use serde_json::Value;

use crate::app::AppState;
use crate::error::{error_chain, ProxyError};
use crate::stream::tee::{BodyWatcher, Relay};
use crate::telemetry::mcp::McpOperation;
use crate::telemetry::propagation::TraceParent;
use crate::upstream::{McpServer as Upstream, McpServers as Upstreams};
use crate::vocab::error_type::ErrorType;
use watch::McpExchange;

/// Idle limit of the server's own stream (GET): servers send nothing for long stretches.
const SERVER_STREAM_IDLE: Duration = Duration::from_secs(24 * 3600);

/// Sessions whose start is remembered for `mcp.client.session.duration`; past this, new
/// sessions are not timed (a client that never ends its sessions cannot grow memory).
const MAX_SESSIONS: usize = 10_000;

/// The MCP routes' state: the proxy's, the servers' clients, the sessions being timed.
pub struct McpState {
    app: Arc<AppState>,
    /// `Err` when the clients could not be built (a bad `ca_file`, say): every call says why.
    servers: Result<Upstreams, String>,
    /// (server, session id) -> when `initialize` answered, and the version it asked for.
    sessions: Mutex<HashMap<(String, String), SessionStart>>,
    ids: RandomIdGenerator,
}

struct SessionStart {
    at: Instant,
    version: Option<String>,
}

/// `/mcp/{name}` for every configured MCP server; any other name is a 404 in JSON-RPC's shape
/// (also when none is configured), so an MCP client always gets an answer it can read.
pub fn routes(app: Arc<AppState>) -> Router {
    let servers = Upstreams::for_mcp(&app.config);
    if let Err(e) = &servers {
        tracing::error!(error = %e, "MCP server clients not built; /mcp answers 502");
    }
    let state = Arc::new(McpState {
        app,
        servers,
        sessions: Mutex::new(HashMap::new()),
        ids: RandomIdGenerator::default(),
    });
    Router::new()
        .route("/mcp/{name}", any(handle))
        .route("/mcp/{name}/{*rest}", any(not_found))
        .with_state(state)
}

/// A JSON-RPC error response (`id` null unless given), with extra headers.
fn rpc_error(status: StatusCode, id: Option<&Value>, code: i64, message: &str) -> Response {
    let mut r = Response::new(Body::from(jsonrpc::error_body(id, code, message)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn not_found(Path((name, _)): Path<(String, String)>) -> Response {
    unknown_server(&name)
}

fn unknown_server(name: &str) -> Response {
    let name = crate::vocab::limits::cut(name);
    rpc_error(
        StatusCode::NOT_FOUND,
        None,
        jsonrpc::INVALID_REQUEST,
        &format!("no MCP server named {name:?} is configured (mcp_servers)"),
    )
}

async fn handle(
    State(m): State<Arc<McpState>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let servers = match &m.servers {
        Ok(s) => s,
        Err(e) => {
            return rpc_error(StatusCode::BAD_GATEWAY, None, jsonrpc::SERVER_ERROR, e);
        }
    };
    let Some(server) = servers.get(&name).cloned() else {
        return unknown_server(&name);
    };
    // Client keys, exactly as on the LLM paths; the refusal in JSON-RPC's shape.
    let mut tenant = None;
    let mut permit = None;
    if let Some(keys) = &m.app.client_keys {
        let (key_headers, _) = key_headers(&parts.headers);
        let admitted = match m.app.shared.as_deref() {
            Some(shared) => keys.admit_shared(&key_headers, shared).await,
            None => keys.admit(&key_headers),
        };
        match admitted {
            Ok(a) => {
                tenant = Some(a.tenant);
                permit = a.permit;
            }
            Err(refusal) => {
                let e = ProxyError::from(refusal);
                let mut r = rpc_error(e.status(), None, jsonrpc::SERVER_ERROR, &e.to_string());
                r.headers_mut().extend(e.headers());
                return r;
            }
        }
    }
    let response = match parts.method {
        Method::POST => post(&m, &server, parts, body, tenant).await,
        Method::GET | Method::DELETE => pass(&m, &server, parts).await,
        _ => {
            let mut r = rpc_error(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                jsonrpc::INVALID_REQUEST,
                "MCP's Streamable HTTP takes POST, GET and DELETE",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            return r;
        }
    };
    match permit {
        Some(p) => response.map(|b| Body::new(crate::respond::HoldPermit::new(b, p))),
        None => response,
    }
}

/// The headers the client key is read from, and which header that is: `x-api-key` or
/// `api-key` when present (then `Authorization` is the MCP server's), else `Authorization`.
fn key_headers(h: &HeaderMap) -> (HeaderMap, KeyHeader) {
    let mut out = HeaderMap::new();
    for n in ["x-api-key", "api-key"] {
        if let Some(v) = h.get(n) {
            out.insert(n, v.clone());
        }
    }
    if !out.is_empty() {
        return (out, KeyHeader::ApiKey);
    }
    if let Some(v) = h.get(header::AUTHORIZATION) {
        out.insert(header::AUTHORIZATION, v.clone());
    }
    (out, KeyHeader::Authorization)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyHeader {
    ApiKey,
    Authorization,
}

/// The request headers sent to the MCP server: the client's minus hop-by-hop ones, `Host`,
/// `Content-Length`, and the header that carried llmtap's client key. `Accept-Encoding` asks
/// for identity so the responses can be read (a proxy may serve them uncompressed).
fn forward_headers(inbound: &HeaderMap, client_key: Option<KeyHeader>) -> HeaderMap {
    let listed = crate::upstream::connection_listed(inbound);
    let mut out = HeaderMap::with_capacity(inbound.len());
    for (name, value) in inbound {
        let skip = crate::upstream::is_hop_by_hop(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::ACCEPT_ENCODING
            || listed.iter().any(|l| l == name.as_str());
        if !skip {
            out.append(name.clone(), value.clone());
        }
    }
    match client_key {
        Some(KeyHeader::ApiKey) => {
            out.remove("x-api-key");
            out.remove("api-key");
        }
        Some(KeyHeader::Authorization) => {
            out.remove(header::AUTHORIZATION);
        }
        None => {}
    }
    out.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    out
}

fn header_text(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A POST: its messages read (bounded), each made an operation with its own span id and
/// given trace context in `params._meta`; the response relayed while their outcomes are read.
async fn post(
    m: &McpState,
    server: &Arc<Upstream>,
    parts: http::request::Parts,
    body: Body,
    tenant: Option<Arc<str>>,
) -> Response {
    let limit = m.app.config.max_body_bytes;
    let bytes =
        match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit)).await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                let msg = format!("the request body is over max_body_bytes ({limit} bytes)");
                return rpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    jsonrpc::INVALID_REQUEST,
                    &msg,
                );
            }
            Err(e) => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    None,
                    jsonrpc::INVALID_REQUEST,
                    &format!("the request body could not be read: {e}"),
                )
            }
        };
    let (mut messages, batch) = match jsonrpc::parse_body(&bytes) {
        Ok(x) => x,
        Err(e) => {
            let status = match e {
                jsonrpc::BodyError::BatchTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            return rpc_error(status, None, e.code(), &e.to_string());
        }
    };
    let telemetry = &m.app.telemetry;
    let headers = &parts.headers;
    let http_trace = telemetry.propagation().extract(headers);
    let session = header_text(headers, "mcp-session-id");
    let version = header_text(headers, "mcp-protocol-version");
    let baggage = header_text(headers, "baggage");
    let inject = m.app.config.mcp_trace_context && telemetry.enabled();
    let mut shared = m.app.shared.as_deref().filter(|_| telemetry.enabled());
    let tool_ttl = m.app.config.telemetry.tool_call_ttl;
    // Claims in the shared state, for all the messages of one POST together, wait at most
    // this long: a batch of tool calls never waits one Redis timeout per message.
    let claims_until = Instant::now() + crate::state::STATE_TIMEOUT;
    let started = Instant::now();
    let started_at = SystemTime::now();
    let mut ops = Vec::new();
    let mut changed = false;
    for msg in &mut messages {
        let Some(s) = jsonrpc::sent(msg) else {
            continue;
        };
        let trace = trace_for(&s, &http_trace, telemetry, &m.ids);
        let id_key = s.id_key.clone();
        let mut op = Facts {
            server: server.info.clone(),
            transport: "tcp",
            session: session.clone(),
            version: version.clone(),
            tenant: tenant.clone(),
            started,
            started_at,
        }
        .operation(s, trace);
        if let (false, Some(state)) = (
            claim_model_call(telemetry, tenant.as_ref(), &mut op),
            shared,
        ) {
            let left = claims_until.saturating_duration_since(Instant::now());
            let claim = claim_shared_model_call(state, tool_ttl, tenant.as_ref(), &mut op);
            match tokio::time::timeout(left, claim).await {
                Ok(Ok(())) => {}
                // Redis failed or the budget is spent: the rest go on unjoined.
                Ok(Err(())) | Err(_) => shared = None,
            }
        }
        if inject {
            let trace = &op.trace;
            let mut fields = vec![("traceparent", traceparent(telemetry, trace))];
            if let Some(p) = &trace.parent {
                let ts = p.trace_state().header();
                if !ts.is_empty() {
                    fields.push(("tracestate", ts));
                }
            }
            if let Some(b) = &baggage {
                fields.push(("baggage", b.clone()));
            }
            changed |= jsonrpc::inject_meta(msg, &fields);
        }
        ops.push((id_key, op));
    }
    let out_body = if changed {
        let v = if batch {
            Value::Array(messages)
        } else {
            messages.into_iter().next().unwrap_or(Value::Null)
        };
        bytes::Bytes::from(v.to_string())
    } else {
        bytes
    };
    let reply_id = match (&ops[..], batch) {
        ([(Some(id), _)], false) => serde_json::from_str::<Value>(id).ok(),
        _ => None,
    };
    let mut out_headers = forward_headers(
        headers,
        m.app.client_keys.as_ref().map(|_| key_headers(headers).1),
    );
    // With one operation, the HTTP hop carries its context too (servers that trace HTTP).
    if let ([(_, op)], true) = (&ops[..], inject) {
        let sampled = telemetry.head_sampled(&op.trace);
        telemetry
            .propagation()
            .inject(&op.trace, sampled, &mut out_headers);
    }
    // A session starts with `initialize` (2025-11-25 and before); its requested version
    // stands until a later request names the negotiated one.
    let initialize = ops
        .iter()
        .find(|(_, o)| o.method == "initialize" && session.is_none())
        .map(|(_, o)| o.protocol_version.clone());
    let mut exchange = McpExchange::new(m.app.telemetry.clone(), ops);
    let resp = match send(server, Method::POST, out_headers, out_body.into()).await {
        Ok(r) => r,
        Err((kind, message)) => {
            exchange.fail(kind);
            exchange.finish();
            return rpc_error(
                StatusCode::BAD_GATEWAY,
                reply_id.as_ref(),
                jsonrpc::SERVER_ERROR,
                &message,
            );
        }
    };
    let new_session = header_text(resp.headers(), "mcp-session-id");
    if let (Some(requested), true, Some(sid)) =
        (initialize, resp.status().is_success(), &new_session)
    {
        m.session_started(&server.info.name, sid, requested);
    }
    relay(
        m,
        server,
        resp,
        exchange,
        new_session.as_deref(),
        server.config.timeouts.idle,
    )
}

/// A message's trace identity: the client's own MCP-level context in `_meta` wins over the
/// transport's (`base`, from the HTTP headers); a span id of its own either way.
pub(crate) fn trace_for(
    s: &jsonrpc::Sent,
    base: &TraceParent,
    telemetry: &crate::telemetry::Telemetry,
    ids: &RandomIdGenerator,
) -> TraceParent {
    if let Some(tp) = &s.meta_traceparent {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(tp) {
            h.insert("traceparent", v);
        }
        if let Some(v) = s
            .meta_tracestate
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            h.insert("tracestate", v);
        }
        let t = telemetry.propagation().extract(&h);
        if t.parent.is_some() {
            return t;
        }
    }
    with_new_span(base, ids)
}

/// What every operation of one exchange (or one stdio process) shares.
pub(crate) struct Facts {
    pub server: Arc<crate::vocab::provider::UpstreamInfo>,
    pub transport: &'static str,
    pub session: Option<String>,
    /// The protocol version in force (header, or negotiated); `initialize` names its own.
    pub version: Option<String>,
    pub tenant: Option<Arc<str>>,
    pub started: Instant,
    pub started_at: SystemTime,
}

impl Facts {
    /// The operation of one client message, started now.
    pub(crate) fn operation(&self, s: jsonrpc::Sent, trace: TraceParent) -> McpOperation {
        McpOperation {
            method: s.method,
            request_id: s.id_text,
            tool_name: s.tool_name,
            prompt_name: s.prompt_name,
            resource_uri: s.resource_uri,
            arguments: s.arguments,
            result: None,
            jsonrpc_version: s.jsonrpc_version,
            session_id: self.session.clone(),
            protocol_version: self.version.clone().or(s.protocol_version),
            server: self.server.clone(),
            transport: self.transport,
            http_version: None,
            trace,
            tenant: self.tenant.clone(),
            started_at: self.started_at,
            started: self.started,
            ended: self.started,
            error: None,
            error_message: None,
            rpc_code: None,
            http_status: None,
            joined_call: None,
            shared_call: None,
        }
    }
}

/// A `tools/call` that executes a tool call a model asked for through this replica (same tool,
/// arguments equal as JSON, same tenant, and the same trace when the request has trace context
/// of its own) is claimed for that call as it arrives. Without trace context of its own it
/// starts in the model call's trace, under the chat span that asked: the context it sends on
/// is that trace's. Returns whether it was claimed.
pub(crate) fn claim_model_call(
    telemetry: &crate::telemetry::Telemetry,
    tenant: Option<&Arc<str>>,
    op: &mut McpOperation,
) -> bool {
    let Some((name, args, trace)) = join_facts(op) else {
        return false;
    };
    match telemetry.claim_tool_call(tenant, name, args, trace) {
        Some(c) => {
            join(op, &c);
            true
        }
        None => false,
    }
}

/// As [`claim_model_call`], for a call asked for through another replica: claimed in the
/// shared state (Redis, `state.claim_execution`), one round trip bounded by its timeout; `Err`
/// when Redis failed (the request goes on unjoined). Only worth its round trip when the local
/// claim found nothing.
async fn claim_shared_model_call(
    state: &crate::state::SharedState,
    ttl: Duration,
    tenant: Option<&Arc<str>>,
    op: &mut McpOperation,
) -> Result<(), ()> {
    let Some((name, args, trace)) = join_facts(op) else {
        return Ok(());
    };
    let key = crate::telemetry::mcp::arguments_key(args);
    let claimed = state
        .claim_execution(tenant.map(|t| &**t), name, key, trace, ttl)
        .await?;
    if let Some(call) = claimed.and_then(|c| c.into_pending()) {
        join(op, &crate::telemetry::mcp::Claimable::of_pending(&call));
        op.shared_call = Some(Box::new(call));
    }
    Ok(())
}

const NO_ARGUMENTS: Value = Value::Null;

/// What a `tools/call` is matched on: its tool, its arguments (none counts as `{}`), and its
/// trace when it brought context of its own.
fn join_facts(op: &McpOperation) -> Option<(&str, &Value, Option<opentelemetry::trace::TraceId>)> {
    if !op.is_tool_call() {
        return None;
    }
    let name = op.tool_name.as_deref()?;
    let args = op.arguments.as_ref().unwrap_or(&NO_ARGUMENTS);
    let trace = op.trace.parent.as_ref().map(|_| op.trace.trace_id);
    Some((name, args, trace))
}

fn join(op: &mut McpOperation, c: &crate::telemetry::mcp::Claimable) {
    if op.trace.parent.is_none() {
        op.trace = c.trace(op.trace.span_id, std::mem::take(&mut op.trace.baggage));
    }
    op.joined_call = Some(c.call_id.clone());
}

/// `trace` with a span id of its own (one per message of a batch).
fn with_new_span(trace: &TraceParent, ids: &RandomIdGenerator) -> TraceParent {
    let mut t = trace.clone();
    t.span_id = ids.new_span_id();
    t
}

/// The W3C `traceparent` of an operation's span.
fn traceparent(telemetry: &crate::telemetry::Telemetry, trace: &TraceParent) -> String {
    let sampled = telemetry.head_sampled(trace);
    format!(
        "00-{}-{}-{}",
        trace.trace_id,
        trace.span_id,
        if sampled { "01" } else { "00" }
    )
}

/// GET (the server's stream) and DELETE (a session's end): relayed, no operation of their own;
/// a DELETE that ends a session llmtap saw start records its duration.
async fn pass(m: &McpState, server: &Arc<Upstream>, parts: http::request::Parts) -> Response {
    let headers = forward_headers(
        &parts.headers,
        m.app
            .client_keys
            .as_ref()
            .map(|_| key_headers(&parts.headers).1),
    );
    let exchange = McpExchange::new(m.app.telemetry.clone(), Vec::new());
    let resp = match send(
        server,
        parts.method.clone(),
        headers,
        reqwest::Body::from(""),
    )
    .await
    {
        Ok(r) => r,
        Err((_, message)) => {
            return rpc_error(
                StatusCode::BAD_GATEWAY,
                None,
                jsonrpc::SERVER_ERROR,
                &message,
            )
        }
    };
    let session = header_text(&parts.headers, "mcp-session-id");
    if let (true, Some(sid)) = (parts.method == Method::DELETE, &session) {
        let error = (!resp.status().is_success()).then(|| resp.status().as_u16().to_string());
        let version = header_text(&parts.headers, "mcp-protocol-version");
        m.session_ended(&server.info, sid, version, error.as_deref());
    }
    let idle = if parts.method == Method::GET {
        SERVER_STREAM_IDLE
    } else {
        server.config.timeouts.idle
    };
    relay(m, server, resp, exchange, None, idle)
}

impl McpState {
    fn session_started(&self, server: &str, id: &str, version: Option<String>) {
        if let Ok(mut s) = self.sessions.lock() {
            if s.len() < MAX_SESSIONS {
                let start = SessionStart {
                    at: Instant::now(),
                    version,
                };
                s.insert((server.to_string(), id.to_string()), start);
            }
        }
    }

    fn session_ended(
        &self,
        server: &crate::vocab::provider::UpstreamInfo,
        id: &str,
        version: Option<String>,
        error: Option<&str>,
    ) {
        let started = self
            .sessions
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&(server.name.clone(), id.to_string())));
        if let Some(start) = started {
            let secs = start.at.elapsed().as_secs_f64();
            let version = version.or(start.version);
            self.app
                .telemetry
                .mcp_session_ended(server, "tcp", version.as_deref(), secs, error);
        }
    }
}

/// Sends one request to the MCP server within the first-byte timeout; on failure, the
/// `error.type` and a message for the client.
async fn send(
    server: &Upstream,
    method: Method,
    headers: HeaderMap,
    body: reqwest::Body,
) -> Result<reqwest::Response, (ErrorType, String)> {
    let send = server
        .client()
        .request(method, server.base.clone())
        .headers(headers)
        .body(body)
        .send();
    let name = &server.config.name;
    let t = &server.config.timeouts;
    match tokio::time::timeout(t.first_byte, send).await {
        Err(_) => Err((
            ErrorType::Timeout,
            format!(
                "MCP server {name:?} sent no response within {:?}",
                t.first_byte
            ),
        )),
        Ok(Err(e)) if e.is_timeout() => Err((
            ErrorType::Timeout,
            format!(
                "MCP server {name:?} could not be reached within {:?}",
                t.connect
            ),
        )),
        Ok(Err(e)) => Err((
            ErrorType::UpstreamUnreachable,
            format!("MCP server {name:?} is unreachable: {}", error_chain(&e)),
        )),
        Ok(Ok(r)) => Ok(r),
    }
}

/// The server's response to the client, chunk by chunk, with `exchange` watching a copy.
fn relay(
    m: &McpState,
    _server: &Arc<Upstream>,
    resp: reqwest::Response,
    mut exchange: McpExchange,
    session: Option<&str>,
    idle: Duration,
) -> Response {
    let status = resp.status();
    let content_type = header_text(resp.headers(), "content-type").unwrap_or_default();
    let version = match resp.version() {
        http::Version::HTTP_10 => Some("1.0"),
        http::Version::HTTP_11 => Some("1.1"),
        http::Version::HTTP_2 => Some("2"),
        http::Version::HTTP_3 => Some("3"),
        _ => None,
    };
    exchange.response_started(status.as_u16(), &content_type, session, version);
    let headers = crate::upstream::response_headers(resp.headers());
    let length = resp.content_length();
    if length == Some(0) || matches!(status.as_u16(), 204 | 304) {
        // Nothing to relay (a notification's 202, a DELETE's 204): the exchange is over now,
        // not when (or if) the client's connection reads the empty body.
        exchange.finish();
        let mut response = Response::new(Body::empty());
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        return response;
    }
    let relay = Relay::new(
        resp.bytes_stream(),
        exchange,
        None,
        idle,
        m.app.abort.subscribe(),
    )
    .with_length(length);
    let mut response = Response::new(Body::from_stream(relay));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_of_the_mcp_server_pass_and_llmtaps_key_does_not() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer mcp-oauth".parse().unwrap());
        h.insert("x-api-key", "llmtap-key".parse().unwrap());
        h.insert("mcp-session-id", "s1".parse().unwrap());
        h.insert("last-event-id", "e9".parse().unwrap());
        h.insert("connection", "keep-alive".parse().unwrap());
        h.insert("accept-encoding", "gzip".parse().unwrap());
        let (k, from) = key_headers(&h);
        assert_eq!(from, KeyHeader::ApiKey);
        assert!(k.get("authorization").is_none());
        let out = forward_headers(&h, Some(from));
        assert_eq!(out.get("authorization").unwrap(), "Bearer mcp-oauth");
        assert!(out.get("x-api-key").is_none());
        assert_eq!(out.get("mcp-session-id").unwrap(), "s1");
        assert_eq!(out.get("last-event-id").unwrap(), "e9");
        assert!(out.get("connection").is_none());
        assert_eq!(out.get("accept-encoding").unwrap(), "identity");
        // Client keys off: everything the client sent goes on.
        let out = forward_headers(&h, None);
        assert_eq!(out.get("x-api-key").unwrap(), "llmtap-key");
        // The key in Authorization: then it is llmtap's, and stays here.
        h.remove("x-api-key");
        let (_, from) = key_headers(&h);
        assert_eq!(from, KeyHeader::Authorization);
        assert!(forward_headers(&h, Some(from))
            .get("authorization")
            .is_none());
    }
}
