//! A scripted OpenAI-compatible upstream ("the mock").
//!
//! This module owns everything llmtap needs to stand in for a real provider: `llmtap demo`
//! (spans without an API key), `llmtap mock-upstream --listen ADDR`, and every integration
//! test, including the ones that drive the official `openai` Python SDK through the proxy.
//!
//! What it serves:
//! - OpenAI paths under `/v1`: `POST chat/completions`, `POST completions`, `POST embeddings`,
//!   `GET models`, `GET models/{id}`; anything else under `/v1` is a 404 in OpenAI's shape.
//! - Azure paths `/openai/deployments/{deployment}/{chat/completions,completions,embeddings}`,
//!   which need an `api-version` query parameter and answer with the deployment as the model.
//! - Gemini paths (Developer API and Vertex AI, see the `gemini` submodule), which name the
//!   model in the path and answer errors in Google's shape.
//! - Amazon Bedrock paths `/model/{modelId}/{converse,converse-stream,invoke,
//!   invoke-with-response-stream}` (see the `bedrock` submodule), streams in AWS's binary
//!   event stream, errors in Bedrock's shape.
//! - Control paths for tests that run the binary: `GET /mock/requests`, `GET /mock/events`,
//!   `POST /mock/clear`. These are not recorded.
//!
//! Responses are deterministic (ids, `created`, token counts, header values derive from the
//! request), so tests can compare bytes. Behaviour that real providers show only under load or
//! failure (rate limits, stalls, cut connections, errors mid-stream) is picked per request by a
//! scenario: the `x-mock-scenario` header or a model named `mock-<scenario>` (see the
//! `scenario` submodule for the list and the `x-mock-*` knobs).
//!
//! Layout: `wire` holds the JSON shapes, `chat` the chat and legacy completions endpoints,
//! `embeddings` embeddings and models, `scenario` the scenario names, knobs, errors and
//! replay, `stream` the scripted response bodies and their cancellation guard.

mod bedrock;
mod chat;
mod dialects;
mod embeddings;
mod gemini;
mod scenario;
mod stream;
mod wire;

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;

use scenario::{Knobs, Scenario};
use stream::{Shaping, StreamGuard};
use wire::Step;
use wire::{fnv1a, Reply, ReplyBody};

/// Requests and events kept for inspection; older ones are dropped first.
const LOG_CAPACITY: usize = 1000;
/// Larger bodies get a 413; tests never need more and the log keeps copies.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Bodies kept in the request log, all requests together; the oldest go first (the newest
/// request is always kept), so a test sending large bodies cannot exhaust memory.
const LOG_BODY_BUDGET: usize = 64 * 1024 * 1024;
/// How long `slow-headers` waits when `x-mock-delay-ms` is not given.
const SLOW_HEADERS_DEFAULT: Duration = Duration::from_millis(5000);

/// How to build a [`MockUpstream`].
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// Directory that the `replay` scenario reads files from; `None` disables replay.
    pub fixtures_dir: Option<PathBuf>,
}

/// One request as the mock received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// 1-based, increasing for the life of the mock (not reset by [`MockUpstream::clear`]).
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// In arrival order, names lower-case, values decoded as lossy UTF-8.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Something that happened to a response body after the handler returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MockEvent {
    /// The body was dropped before its script ended: the client (or the proxy) went away.
    StreamCancelled { request_seq: u64 },
    /// The body's script ran to its end (including scripted aborts such as `cut`).
    StreamCompleted { request_seq: u64 },
}

/// A scripted OpenAI-compatible server; clones share one request and event log.
#[derive(Clone)]
pub struct MockUpstream {
    inner: Arc<Inner>,
}

struct Inner {
    config: MockConfig,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    next_seq: u64,
    requests: VecDeque<RecordedRequest>,
    /// Sum of `body.len()` over `requests`.
    body_bytes: usize,
    events: VecDeque<MockEvent>,
}

/// Router state: the mock plus the signal that ends scripted bodies when `serve` shuts down.
#[derive(Clone)]
struct AppState {
    mock: MockUpstream,
    shutdown: watch::Receiver<bool>,
}

impl MockUpstream {
    pub fn new(config: MockConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                log: Mutex::new(Log::default()),
            }),
        }
    }

    /// The mock's routes. Scripted bodies built by this router never see a shutdown signal;
    /// use [`MockUpstream::serve`] when stalled streams must end with the server.
    pub fn router(&self) -> Router {
        // The sender is dropped at once, which the bodies read as "never shut down".
        let (_never, shutdown) = watch::channel(false);
        self.router_with(shutdown)
    }

    fn router_with(&self, shutdown: watch::Receiver<bool>) -> Router {
        let state = AppState {
            mock: self.clone(),
            shutdown,
        };
        Router::new()
            .route("/mock/requests", get(control_requests))
            .route("/mock/events", get(control_events))
            .route("/mock/clear", post(control_clear))
            .fallback(handle_api)
            .with_state(state)
    }

    /// Serve on a bound listener until `shutdown` resolves. Stalled and slow bodies are
    /// aborted then, so graceful shutdown does not wait on an `idle` stream forever.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let app = self.router_with(stopped);
        // Like real API front ends (and nginx), write small stream chunks without Nagle delay.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop.send(true);
            })
            .await
    }

    /// Every request received (except `/mock/*`), oldest first; at most the last 1000.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log().requests.iter().cloned().collect()
    }

    /// Stream events, oldest first; at most the last 1000.
    pub fn events(&self) -> Vec<MockEvent> {
        self.log().events.iter().copied().collect()
    }

    /// Forget recorded requests and events. Sequence numbers keep counting up, so an event
    /// from a stream that outlives the clear cannot be mistaken for a new request's.
    pub fn clear(&self) {
        let mut log = self.log();
        log.requests.clear();
        log.body_bytes = 0;
        log.events.clear();
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic elsewhere while holding the lock leaves the log usable; keep serving.
        self.inner
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, parts: &axum::http::request::Parts, body: &Bytes) -> u64 {
        let mut log = self.log();
        log.next_seq += 1;
        let seq = log.next_seq;
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        log.body_bytes += body.len();
        log.requests.push_back(RecordedRequest {
            seq,
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers,
            body: body.clone(),
        });
        while log.requests.len() > LOG_CAPACITY
            || (log.body_bytes > LOG_BODY_BUDGET && log.requests.len() > 1)
        {
            if let Some(dropped) = log.requests.pop_front() {
                log.body_bytes -= dropped.body.len();
            }
        }
        seq
    }

    fn push_event(&self, event: MockEvent) {
        let mut log = self.log();
        if log.events.len() == LOG_CAPACITY {
            log.events.pop_front();
        }
        log.events.push_back(event);
    }
}

/// Which API operation a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    ListModels,
    GetModel(String),
    /// OpenAI Responses API.
    Responses,
    /// Anthropic Messages API.
    Messages,
    /// Ollama's native API.
    Ollama(dialects::OllamaEndpoint),
    /// Google's Gemini API (the model is in the path).
    Gemini(gemini::GeminiCall),
    /// Amazon Bedrock Runtime (the model is in the path).
    Bedrock(bedrock::BedrockCall),
}

/// A classified request path; `deployment` is set for Azure paths.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    endpoint: Endpoint,
    deployment: Option<String>,
}

fn classify(method: &Method, path: &str, query: Option<&str>) -> Result<Target, Reply> {
    if let Some(call) = bedrock::classify(method, path) {
        return Ok(Target {
            endpoint: Endpoint::Bedrock(call?),
            deployment: None,
        });
    }
    if let Some(call) = gemini::classify(method, path) {
        return Ok(Target {
            endpoint: Endpoint::Gemini(call?),
            deployment: None,
        });
    }
    if let Some(rest) = path.strip_prefix("/v1/") {
        let endpoint = match (method.as_str(), rest) {
            ("POST", "chat/completions") => Endpoint::Chat,
            ("POST", "completions") => Endpoint::Completions,
            ("POST", "embeddings") => Endpoint::Embeddings,
            ("POST", "responses") => Endpoint::Responses,
            ("POST", "messages") => Endpoint::Messages,
            ("GET", "models") => Endpoint::ListModels,
            ("GET", id) if id.len() > "models/".len() && id.starts_with("models/") => {
                Endpoint::GetModel(id["models/".len()..].to_owned())
            }
            _ => return Err(scenario::invalid_url(method, path)),
        };
        return Ok(Target {
            endpoint,
            deployment: None,
        });
    }
    if let Some(rest) = path.strip_prefix("/api/") {
        use dialects::OllamaEndpoint;
        let endpoint = match (method.as_str(), rest) {
            ("POST", "chat") => OllamaEndpoint::Chat,
            ("POST", "generate") => OllamaEndpoint::Generate,
            ("POST", "embed") => OllamaEndpoint::Embed,
            ("POST", "embeddings") => OllamaEndpoint::Embeddings,
            _ => return Err(scenario::invalid_url(method, path)),
        };
        return Ok(Target {
            endpoint: Endpoint::Ollama(endpoint),
            deployment: None,
        });
    }
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let has_version = query.unwrap_or("").split('&').any(|pair| {
            pair.strip_prefix("api-version=")
                .is_some_and(|v| !v.is_empty())
        });
        let (deployment, operation) = rest.split_once('/').unwrap_or((rest, ""));
        let endpoint = match (method.as_str(), operation) {
            ("POST", "chat/completions") => Endpoint::Chat,
            ("POST", "completions") => Endpoint::Completions,
            ("POST", "embeddings") => Endpoint::Embeddings,
            _ => return Err(scenario::azure_resource_not_found()),
        };
        // Azure answers a missing api-version with the same 404 as an unknown path.
        if deployment.is_empty() || !has_version {
            return Err(scenario::azure_resource_not_found());
        }
        return Ok(Target {
            endpoint,
            deployment: Some(deployment.to_owned()),
        });
    }
    Err(scenario::invalid_url(method, path))
}

/// Everything under `/v1` and `/openai`: record, pick a scenario, answer.
async fn handle_api(State(app): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (body, too_large) = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => (body, false),
        Err(_) => (Bytes::new(), true),
    };
    let seq = app.mock.record(&parts, &body);
    let call = Call {
        seq,
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let (reply, shaping) = if too_large {
        (scenario::body_too_large(), Shaping::plain())
    } else {
        app.answer(&call).await
    };
    // Replies that carry no content hash (errors, models) still get an id that repeats for
    // a repeated request and differs between requests.
    let fallback_id = fnv1a(
        &[
            call.method.as_str().as_bytes(),
            b" ",
            call.path.as_bytes(),
            b"\n",
            &call.body,
        ]
        .concat(),
    );
    app.render(seq, reply, shaping, fallback_id)
}

/// The parts of a request the endpoints look at.
struct Call {
    seq: u64,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl AppState {
    /// Decide the reply and the scenario that shapes its body.
    async fn answer(&self, call: &Call) -> (Reply, Shaping) {
        match self.try_answer(call).await {
            Ok(answer) => answer,
            Err(reply) => (reply, Shaping::plain()),
        }
    }

    async fn try_answer(&self, call: &Call) -> Result<(Reply, Shaping), Reply> {
        let knobs = Knobs::from_headers(&call.headers)?;
        let from_header = scenario::from_header(&call.headers)?;
        // Errors, echo and replay asked for by header do not depend on the endpoint or the
        // body: they answer on any path (a proxy test may forward `/v1/files/...`) and for
        // bodies the endpoints would reject.
        let body_free = from_header.is_some_and(Scenario::ignores_body);
        let target = match classify(&call.method, &call.path, call.query.as_deref()) {
            Ok(target) => Some(target),
            Err(_) if body_free => None,
            Err(reply) => return Err(reply),
        };
        let deployment = target.as_ref().and_then(|t| t.deployment.clone());

        let has_body = target.as_ref().is_some_and(|t| {
            matches!(
                t.endpoint,
                Endpoint::Chat
                    | Endpoint::Completions
                    | Endpoint::Embeddings
                    | Endpoint::Responses
                    | Endpoint::Messages
                    | Endpoint::Ollama(_)
                    | Endpoint::Gemini(_)
                    | Endpoint::Bedrock(_)
            )
        });
        let json = if has_body && !body_free {
            Some(wire::parse_json_object(&call.body)?)
        } else {
            None
        };
        let path_model = match &target {
            Some(Target {
                endpoint: Endpoint::Gemini(call),
                ..
            }) => Some(call.model.clone()),
            Some(Target {
                endpoint: Endpoint::Bedrock(call),
                ..
            }) => Some(call.model.clone()),
            _ => deployment.clone(),
        };
        let requested_model = match (&path_model, &json) {
            (Some(model), _) => Some(model.clone()),
            (None, Some(json)) => match json.get("model").and_then(|m| m.as_str()) {
                Some(model) if !model.is_empty() => Some(model.to_owned()),
                _ => return Err(scenario::missing_model()),
            },
            // The body was not needed, but an error that names the model should name the
            // one that was asked for when the body happens to say.
            (None, None) => serde_json::from_slice::<serde_json::Value>(&call.body)
                .ok()
                .and_then(|v| v.get("model")?.as_str().map(str::to_owned)),
        };
        let scenario = match from_header {
            Some(scenario) => scenario,
            None => match &requested_model {
                Some(model) => scenario::from_model(model)?,
                None => Scenario::Default,
            },
        };

        let delay = match (knobs.delay, scenario) {
            (Some(delay), _) => Some(delay),
            (None, Scenario::SlowHeaders) => Some(SLOW_HEADERS_DEFAULT),
            (None, _) => None,
        };
        if let Some(delay) = delay {
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stream::shutdown_signalled(&mut shutdown) => {
                    return Err(scenario::shutting_down());
                }
            }
        }

        let model = requested_model.as_deref().unwrap_or("unknown");
        let reply = match (scenario, target) {
            // Anthropic's clients expect Anthropic's error shape.
            (
                Scenario::Error(kind),
                Some(Target {
                    endpoint: Endpoint::Messages,
                    ..
                }),
            ) => dialects::anthropic_error(kind.reply(model, false).status),
            // So do Google's.
            (
                Scenario::Error(kind),
                Some(Target {
                    endpoint: Endpoint::Gemini(_),
                    ..
                }),
            ) => gemini::error(kind.reply(model, false).status, &format!("models/{model}")),
            // And the AWS SDKs, Bedrock's.
            (
                Scenario::Error(kind),
                Some(Target {
                    endpoint: Endpoint::Bedrock(_),
                    ..
                }),
            ) => bedrock::error(kind.reply(model, false).status),
            (Scenario::Error(kind), _) => kind.reply(model, deployment.is_some()),
            (Scenario::Echo, _) => scenario::echo(call),
            (Scenario::Replay, _) => {
                scenario::replay(self.mock.inner.config.fixtures_dir.as_deref(), &knobs).await
            }
            // Only body-free scenarios get here without a target.
            (_, None) => return Err(scenario::invalid_url(&call.method, &call.path)),
            (_, Some(target)) => {
                let shape = chat::Shape {
                    chunks: knobs.chunks,
                    reasoning: scenario == Scenario::Reasoning,
                    ignore_include_usage: scenario == Scenario::NoUsage,
                };
                // Azure reports the deployment; OpenAI reports a dated snapshot of the model.
                let response_model = match deployment {
                    Some(deployment) => deployment,
                    None => wire::versioned_model(model),
                };
                let json = json.unwrap_or_default();
                match target.endpoint {
                    Endpoint::Chat => chat::chat_completion(&json, &response_model, &shape),
                    Endpoint::Completions => chat::text_completion(&json, &response_model, &shape),
                    Endpoint::Embeddings => embeddings::embeddings(&json, model),
                    Endpoint::Responses => dialects::responses(&json, &response_model, &shape),
                    // Anthropic and Ollama answer with the model as asked.
                    Endpoint::Messages => dialects::messages(&json, model, &shape),
                    Endpoint::Ollama(e) => dialects::ollama(e, &json, model, &shape),
                    Endpoint::Gemini(g) => gemini::answer(&g, &json, call.query.as_deref(), &shape),
                    Endpoint::Bedrock(b) => {
                        bedrock::answer(&b, &json, &shape, scenario == Scenario::MidstreamError)
                    }
                    Endpoint::ListModels => embeddings::list_models(),
                    Endpoint::GetModel(id) => embeddings::get_model(&id),
                }
            }
        };
        let reply = match (scenario, knobs.status) {
            (Scenario::Replay, Some(status)) => Reply { status, ..reply },
            _ => reply,
        };
        let shaping = Shaping {
            scenario,
            chunk_delay: knobs.chunk_delay,
        };
        Ok((reply, shaping))
    }

    /// Turn a reply into a response: shape its body for the scenario, attach the stream
    /// guard to scripted bodies, and add the headers every OpenAI response carries.
    fn render(&self, seq: u64, reply: Reply, shaping: Shaping, fallback_id: u64) -> Response {
        let Reply {
            status,
            content_type,
            request_id,
            headers: extra_headers,
            body,
        } = reply;
        let mut headers = HeaderMap::new();
        let mut gzipped = false;
        let body = match body {
            ReplyBody::Json(bytes) if status.is_success() => {
                match stream::shape_full(bytes, shaping.scenario) {
                    stream::Shaped::Full(bytes) => Body::from(bytes),
                    stream::Shaped::Gzip(bytes) => {
                        gzipped = true;
                        Body::from(bytes)
                    }
                    stream::Shaped::Script(steps) => self.scripted(seq, steps),
                }
            }
            ReplyBody::Json(bytes) => Body::from(bytes),
            ReplyBody::Sse(events) => self.scripted(seq, stream::shape_sse(events, shaping, true)),
            ReplyBody::Events(events) => {
                self.scripted(seq, stream::shape_sse(events, shaping, false))
            }
            ReplyBody::Script(steps) => self.scripted(seq, steps),
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if gzipped {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let id = request_id.unwrap_or(fallback_id);
        for (name, value) in extra_headers {
            let value = if value == wire::REQUEST_ID_HEADER_VALUE {
                let m = wire::mix(id);
                HeaderValue::from_str(&format!(
                    "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    id >> 32,
                    (id >> 16) & 0xffff,
                    id & 0xffff,
                    m >> 48,
                    m & 0xffff_ffff_ffff
                ))
                .unwrap_or(HeaderValue::from_static("mock"))
            } else {
                HeaderValue::from_static(value)
            };
            headers.insert(HeaderName::from_static(name), value);
        }
        if let Ok(value) = HeaderValue::from_str(&format!("req_mock{id:016x}")) {
            headers.insert(HeaderName::from_static("x-request-id"), value);
        }
        for (name, value) in wire::COMMON_HEADERS {
            let name = HeaderName::from_static(name);
            if !headers.contains_key(&name) {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
        (status, headers, body).into_response()
    }

    fn scripted(&self, seq: u64, steps: Vec<Step>) -> Body {
        let guard = StreamGuard::new(self.mock.clone(), seq);
        Body::from_stream(stream::run(steps, guard, self.shutdown.clone()))
    }
}

#[derive(Serialize)]
struct RecordedRequestJson<'a> {
    seq: u64,
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a [(String, String)],
    body: std::borrow::Cow<'a, str>,
}

async fn control_requests(State(app): State<AppState>) -> Response {
    let requests = app.mock.requests();
    let json: Vec<RecordedRequestJson<'_>> = requests
        .iter()
        .map(|r| RecordedRequestJson {
            seq: r.seq,
            method: &r.method,
            path: &r.path,
            query: r.query.as_deref(),
            headers: &r.headers,
            body: String::from_utf8_lossy(&r.body),
        })
        .collect();
    Json(json).into_response()
}

async fn control_events(State(app): State<AppState>) -> Response {
    Json(app.mock.events()).into_response()
}

async fn control_clear(State(app): State<AppState>) -> StatusCode {
    app.mock.clear();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_openai_paths() {
        let target = classify(&Method::POST, "/v1/chat/completions", None).ok();
        assert_eq!(target.map(|t| t.endpoint), Some(Endpoint::Chat));
        // The other APIs llmtap traces (issue: every API traced as well as chat).
        let target = classify(&Method::POST, "/v1/responses", None).ok();
        assert_eq!(target.map(|t| t.endpoint), Some(Endpoint::Responses));
        let target = classify(&Method::POST, "/v1/messages", None).ok();
        assert_eq!(target.map(|t| t.endpoint), Some(Endpoint::Messages));
        let target = classify(&Method::GET, "/v1/models/gpt-4o", None).ok();
        assert_eq!(
            target.map(|t| t.endpoint),
            Some(Endpoint::GetModel("gpt-4o".into()))
        );
        for (method, path) in [
            (Method::GET, "/v1/chat/completions"),
            (Method::POST, "/v1/audio/speech"),
            (Method::GET, "/v1/responses"),
            (Method::GET, "/v1/models/"),
            (Method::POST, "/chat/completions"),
        ] {
            let reply = classify(&method, path, None).err();
            assert_eq!(
                reply.map(|r| r.status),
                Some(StatusCode::NOT_FOUND),
                "{path}"
            );
        }
    }

    #[test]
    fn classify_azure_paths_need_api_version() {
        let path = "/openai/deployments/my-gpt/chat/completions";
        let target = classify(&Method::POST, path, Some("api-version=2024-02-01")).ok();
        assert_eq!(
            target,
            Some(Target {
                endpoint: Endpoint::Chat,
                deployment: Some("my-gpt".into())
            })
        );
        for query in [None, Some("foo=1"), Some("api-version=")] {
            let reply = classify(&Method::POST, path, query).err();
            assert_eq!(reply.map(|r| r.status), Some(StatusCode::NOT_FOUND));
        }
    }

    #[test]
    fn log_is_bounded_and_clear_keeps_sequence() {
        let mock = MockUpstream::new(MockConfig::default());
        let (parts, _) = axum::http::Request::new(()).into_parts();
        for _ in 0..(LOG_CAPACITY + 5) {
            mock.record(&parts, &Bytes::new());
        }
        let requests = mock.requests();
        assert_eq!(requests.len(), LOG_CAPACITY);
        assert_eq!(requests.first().map(|r| r.seq), Some(6));
        mock.clear();
        assert!(mock.requests().is_empty());
        assert_eq!(mock.record(&parts, &Bytes::new()), LOG_CAPACITY as u64 + 6);

        // Clones of one buffer: the budget counts lengths, the test allocates once.
        let big = Bytes::from(vec![0u8; LOG_BODY_BUDGET / 3 + 1]);
        for _ in 0..4 {
            mock.record(&parts, &big);
        }
        let kept = mock.requests();
        assert_eq!(kept.len(), 2);
        assert!(kept.iter().all(|r| r.body.len() == big.len()));
        mock.record(&parts, &Bytes::from(vec![0u8; LOG_BODY_BUDGET + 1]));
        assert_eq!(
            mock.requests().len(),
            1,
            "the newest request is always kept"
        );
    }
}
