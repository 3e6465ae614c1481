//! Scenarios: the per-request scripts that make the mock misbehave the way real providers
//! do, the `x-mock-*` header knobs that tune them, the scripted error bodies, and the two
//! scenarios that ignore the endpoint (`echo`, `replay`).
//!
//! A scenario is picked by the `x-mock-scenario` header, else by a model (or Azure
//! deployment) named `mock-<scenario>`, so SDK tests that cannot set headers easily just pick
//! a model. An unknown name is a 400 listing the known ones rather than a silent default.

use std::path::Path;
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use serde::Serialize;

use super::wire::Step;
use super::wire::{self, openai_error, Reply, ReplyBody};
use super::Call;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    Default,
    Error(ErrorKind),
    Slow,
    SlowHeaders,
    Idle,
    Cut,
    MidstreamError,
    NoUsage,
    Reasoning,
    Gzip,
    Replay,
    Garbage,
    Echo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    BadRequest,
    Unauthorized,
    NotFound,
    RateLimited,
    Internal,
    Overloaded,
}

/// Every scenario by the name used in headers and `mock-<name>` models.
pub(crate) const SCENARIOS: [(&str, Scenario); 18] = [
    ("default", Scenario::Default),
    ("error-400", Scenario::Error(ErrorKind::BadRequest)),
    ("error-401", Scenario::Error(ErrorKind::Unauthorized)),
    ("error-404", Scenario::Error(ErrorKind::NotFound)),
    ("error-429", Scenario::Error(ErrorKind::RateLimited)),
    ("error-500", Scenario::Error(ErrorKind::Internal)),
    ("error-503", Scenario::Error(ErrorKind::Overloaded)),
    ("slow", Scenario::Slow),
    ("slow-headers", Scenario::SlowHeaders),
    ("idle", Scenario::Idle),
    ("cut", Scenario::Cut),
    ("midstream-error", Scenario::MidstreamError),
    ("no-usage", Scenario::NoUsage),
    ("reasoning", Scenario::Reasoning),
    ("gzip", Scenario::Gzip),
    ("replay", Scenario::Replay),
    ("garbage", Scenario::Garbage),
    ("echo", Scenario::Echo),
];

impl Scenario {
    fn parse(name: &str) -> Result<Self, Reply> {
        SCENARIOS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, scenario)| *scenario)
            .ok_or_else(|| {
                let known: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
                openai_error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Unknown mock scenario '{name}'. Known scenarios: {}.",
                        known.join(", ")
                    ),
                    "invalid_request_error",
                    None,
                    Some("unknown_mock_scenario"),
                )
            })
    }

    /// Scenarios whose answer does not depend on the request body.
    pub(crate) fn ignores_body(self) -> bool {
        matches!(self, Self::Error(_) | Self::Echo | Self::Replay)
    }
}

pub(crate) fn from_header(headers: &HeaderMap) -> Result<Option<Scenario>, Reply> {
    match headers.get("x-mock-scenario") {
        None => Ok(None),
        Some(value) => Scenario::parse(value.to_str().unwrap_or("")).map(Some),
    }
}

/// `mock-<name>` picks scenario `<name>`; any other model is the default scenario.
pub(crate) fn from_model(model: &str) -> Result<Scenario, Reply> {
    match model.strip_prefix("mock-") {
        Some(name) => Scenario::parse(name),
        None => Ok(Scenario::Default),
    }
}

/// Numeric tuning from `x-mock-*` headers. A header that does not parse is a 400, so a typo
/// in a test shows up at once instead of silently running the default script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Knobs {
    /// `x-mock-chunks`: content chunks in a text reply (streamed or not), 0..=10000.
    pub chunks: Option<usize>,
    /// `x-mock-chunk-delay-ms`: pause between streamed chunks or replay pieces.
    pub chunk_delay: Option<Duration>,
    /// `x-mock-delay-ms`: pause before the response headers (any scenario).
    pub delay: Option<Duration>,
    /// `x-mock-split-bytes`: replay piece size.
    pub split_bytes: Option<usize>,
    /// `x-mock-replay`: file name under the fixtures directory.
    pub replay_file: Option<String>,
    /// `x-mock-status`: status of a replayed response (default 200).
    pub status: Option<StatusCode>,
}

const MAX_CHUNKS: u64 = 10_000;
/// One hour: long enough for any stall a test wants, short enough to end eventually.
const MAX_DELAY_MS: u64 = 3_600_000;

impl Knobs {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Self, Reply> {
        let number = |name: &str, min: u64, max: u64| -> Result<Option<u64>, Reply> {
            let Some(value) = headers.get(name) else {
                return Ok(None);
            };
            match value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(bad_knob(&format!(
                    "Header '{name}' must be an integer from {min} to {max}."
                ))),
            }
        };
        let millis = |n: Option<u64>| n.map(Duration::from_millis);
        let status = match number("x-mock-status", 100, 999)? {
            None => None,
            Some(code) => match u16::try_from(code).ok().map(StatusCode::from_u16) {
                Some(Ok(status)) => Some(status),
                _ => return Err(bad_knob("Header 'x-mock-status' is not a status code.")),
            },
        };
        let replay_file = match headers.get("x-mock-replay") {
            None => None,
            Some(value) => Some(value.to_str().map(str::to_owned).map_err(|_| {
                bad_knob("Header 'x-mock-replay' must be a plain ASCII file name.")
            })?),
        };
        Ok(Self {
            chunks: number("x-mock-chunks", 0, MAX_CHUNKS)?.map(|n| n as usize),
            chunk_delay: millis(number("x-mock-chunk-delay-ms", 0, MAX_DELAY_MS)?),
            delay: millis(number("x-mock-delay-ms", 0, MAX_DELAY_MS)?),
            split_bytes: number("x-mock-split-bytes", 1, u64::from(u32::MAX))?.map(|n| n as usize),
            replay_file,
            status,
        })
    }
}

fn bad_knob(message: &str) -> Reply {
    openai_error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        None,
        Some("invalid_mock_header"),
    )
}

impl ErrorKind {
    /// The scripted error, with the body OpenAI (or Azure, for a missing deployment) sends.
    pub(crate) fn reply(self, model: &str, azure: bool) -> Reply {
        match self {
            Self::BadRequest => openai_error(
                StatusCode::BAD_REQUEST,
                "This model's maximum context length is 128000 tokens. However, your messages \
                 resulted in 131072 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                Some("messages"),
                Some("context_length_exceeded"),
            ),
            Self::Unauthorized => openai_error(
                StatusCode::UNAUTHORIZED,
                "Incorrect API key provided: sk-mock***************1234. You can find your API \
                 key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ),
            Self::NotFound if azure => azure_deployment_not_found(),
            Self::NotFound => openai_error(
                StatusCode::NOT_FOUND,
                &format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error",
                None,
                Some("model_not_found"),
            ),
            Self::RateLimited => {
                let mut reply = openai_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Rate limit reached for requests",
                    "requests",
                    None,
                    Some("rate_limit_exceeded"),
                );
                // Zero lets SDK retries run at once; the remaining count says why.
                reply.headers = vec![
                    ("retry-after", "0"),
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "1s"),
                ];
                reply
            }
            Self::Internal => openai_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
                None,
            ),
            Self::Overloaded => openai_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is overloaded or not ready yet.",
                "server_error",
                None,
                None,
            ),
        }
    }
}

/// OpenAI's answer to a path it does not serve.
pub(crate) fn invalid_url(method: &Method, path: &str) -> Reply {
    openai_error(
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({method} {path})"),
        "invalid_request_error",
        None,
        None,
    )
}

#[derive(Serialize)]
struct AzureEnvelope<T> {
    error: T,
}

#[derive(Serialize)]
struct AzureCodeMessage {
    code: &'static str,
    message: &'static str,
}

#[derive(Serialize)]
struct AzureTypedError {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'static str,
    message: &'static str,
}

/// Azure's 404 for an unknown operation or a missing `api-version`.
pub(crate) fn azure_resource_not_found() -> Reply {
    let body = AzureEnvelope {
        error: AzureCodeMessage {
            code: "404",
            message: "Resource not found",
        },
    };
    Reply::json(
        StatusCode::NOT_FOUND,
        Bytes::from(wire::to_vec(&body)),
        None,
    )
}

/// Azure's 404 for a deployment that does not exist (field order as Azure sends it).
fn azure_deployment_not_found() -> Reply {
    let body = AzureEnvelope {
        error: AzureTypedError {
            kind: "invalid_request_error",
            code: "DeploymentNotFound",
            message: "The API deployment for this resource does not exist. If you created the \
                      deployment within the last 5 minutes, please wait a moment and try again.",
        },
    };
    Reply::json(
        StatusCode::NOT_FOUND,
        Bytes::from(wire::to_vec(&body)),
        None,
    )
}

pub(crate) fn missing_model() -> Reply {
    openai_error(
        StatusCode::BAD_REQUEST,
        "you must provide a model parameter",
        "invalid_request_error",
        None,
        None,
    )
}

pub(crate) fn body_too_large() -> Reply {
    openai_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request body too large for the llmtap mock (16 MiB limit).",
        "invalid_request_error",
        None,
        None,
    )
}

pub(crate) fn shutting_down() -> Reply {
    openai_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The llmtap mock is shutting down.",
        "server_error",
        None,
        None,
    )
}

#[derive(Serialize)]
struct EchoBody<'a> {
    seq: u64,
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: Vec<(&'a str, std::borrow::Cow<'a, str>)>,
    body: std::borrow::Cow<'a, str>,
}

/// What the mock received, as JSON, so tests can check what the proxy forwarded.
pub(crate) fn echo(call: &Call) -> Reply {
    let echo = EchoBody {
        seq: call.seq,
        method: call.method.as_str(),
        path: &call.path,
        query: call.query.as_deref(),
        headers: call
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v.as_bytes())))
            .collect(),
        body: String::from_utf8_lossy(&call.body),
    };
    Reply::json(StatusCode::OK, Bytes::from(wire::to_vec(&echo)), None)
}

/// The bytes of a fixture file, sent in pieces, so tests can check odd splits pass through
/// unchanged. The file name must be plain: no separators, no `..`.
pub(crate) async fn replay(dir: Option<&Path>, knobs: &super::Knobs) -> Reply {
    let Some(dir) = dir else {
        return bad_knob("Replay is disabled: the mock has no fixtures directory.");
    };
    let Some(name) = knobs.replay_file.as_deref() else {
        return bad_knob("The replay scenario needs an 'x-mock-replay: <file name>' header.");
    };
    if name.is_empty() || name.contains(['/', '\\']) || name.contains("..") {
        return bad_knob("Header 'x-mock-replay' must be a plain file name.");
    }
    let path = dir.join(name);
    // Fixture files are small, but file IO still belongs off the async workers.
    let read = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => Bytes::from(bytes),
        _ => {
            return openai_error(
                StatusCode::NOT_FOUND,
                &format!("No replay fixture named '{name}'."),
                "invalid_request_error",
                None,
                Some("fixture_not_found"),
            )
        }
    };
    let content_type = if name.ends_with(".json") {
        wire::JSON
    } else if name.ends_with(".ndjson") {
        "application/x-ndjson"
    } else {
        wire::EVENT_STREAM
    };
    let piece = knobs.split_bytes.unwrap_or(bytes.len()).max(1);
    let delay = knobs.chunk_delay.filter(|d| !d.is_zero());
    let mut steps = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        if let (Some(delay), true) = (delay, offset > 0) {
            steps.push(Step::Sleep(delay));
        }
        let end = (offset + piece).min(bytes.len());
        steps.push(Step::Send(bytes.slice(offset..end)));
        offset = end;
    }
    Reply {
        status: StatusCode::OK,
        content_type,
        request_id: Some(wire::fnv1a(name.as_bytes())),
        headers: Vec::new(),
        body: ReplyBody::Script(steps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn scenario_names_round_trip() {
        for (name, scenario) in SCENARIOS {
            assert_eq!(Scenario::parse(name).ok(), Some(scenario));
            assert_eq!(from_model(&format!("mock-{name}")).ok(), Some(scenario));
        }
        assert_eq!(from_model("gpt-4o-mini").ok(), Some(Scenario::Default));
        let unknown = from_model("mock-nope").err();
        assert_eq!(unknown.map(|r| r.status), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn knobs_parse_and_reject_garbage() {
        let mut headers = HeaderMap::new();
        headers.insert("x-mock-chunks", HeaderValue::from_static("3"));
        headers.insert("x-mock-chunk-delay-ms", HeaderValue::from_static("25"));
        headers.insert("x-mock-status", HeaderValue::from_static("429"));
        let knobs = Knobs::from_headers(&headers).ok();
        assert_eq!(knobs.as_ref().and_then(|k| k.chunks), Some(3));
        assert_eq!(
            knobs.as_ref().and_then(|k| k.chunk_delay),
            Some(Duration::from_millis(25))
        );
        assert_eq!(
            knobs.and_then(|k| k.status),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        for (name, value) in [
            ("x-mock-chunks", "many"),
            ("x-mock-chunks", "10001"),
            ("x-mock-split-bytes", "0"),
            ("x-mock-status", "42"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            assert!(Knobs::from_headers(&headers).is_err(), "{name}: {value}");
        }
    }

    #[tokio::test]
    async fn replay_rejects_paths_and_missing_files() {
        let dir = std::env::temp_dir();
        for name in [
            "../etc/passwd",
            "a/b",
            "..",
            "",
            "no-such-file-llmtap-mock.sse",
        ] {
            let knobs = Knobs {
                replay_file: Some(name.into()),
                ..Knobs::default()
            };
            let reply = replay(Some(&dir), &knobs).await;
            assert!(reply.status.is_client_error(), "{name}");
        }
        let reply = replay(None, &Knobs::default()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }
}
