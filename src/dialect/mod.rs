//! One dialect per LLM API, behind one small trait, over one request path.
//!
//! A dialect knows its API's wire format and nothing else: which paths are its own (the
//! [`Mount`]s it is served under, or whole paths it claims), what a request body says (model,
//! parameters, tool results), whether usage must be asked for by rewriting the request (and
//! hidden again from the client), how response chunks and bodies become the provider-neutral
//! [`ResponseSummary`], when a stream is complete, and the shape of llmtap's own errors on its
//! paths. Routing, relaying and telemetry never look at a wire format themselves.
//!
//! Adding an API is one new file implementing [`Dialect`] plus one line in [`DIALECTS`].

mod anthropic;
mod bedrock;
mod body;
mod gemini;
mod ollama;
mod openai_chat;
mod openai_responses;
pub mod parts;
mod scan;
mod watch;

use serde_json::{Map, Value};

use crate::stream::strip::StripRule;
use crate::vocab::operation::Operation;
use crate::vocab::prompt::PromptHasher;
use crate::vocab::provider::Provider;
use crate::vocab::request::RequestInfo;
use crate::vocab::summary::{FeedOutcome, ResponseSummary};

use body::json_object;

pub use anthropic::{AnthropicMessages, VertexAnthropic};
pub use bedrock::{BEDROCK_CONVERSE, BEDROCK_INVOKE, EXCEPTIONS as BEDROCK_EXCEPTIONS};
pub use gemini::{GEMINI_API, VERTEX_GEMINI};
pub use ollama::OllamaNative;
pub use openai_chat::OpenAiChat;
pub use openai_responses::OpenAiResponses;

/// Every dialect llmtap speaks, tried in order; the first that recognises a path serves it.
pub static DIALECTS: &[&dyn Dialect] = &[
    &OpenAiChat,
    &OpenAiResponses,
    &AnthropicMessages,
    &OllamaNative,
    &GEMINI_API,
    &VERTEX_GEMINI,
    &VertexAnthropic,
    &BEDROCK_CONVERSE,
    &BEDROCK_INVOKE,
];

/// A path prefix APIs are served under on llmtap's side, and how a path under it goes
/// upstream. Each dialect lists the mounts it is served under ([`Dialect::mounts`]); every
/// path under a mount is proxied, and traced when a dialect serving that mount recognises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    /// `/v1/<rest>`: `/<rest>` onto the upstream's base URL (which carries its own `/v1`).
    V1,
    /// Azure OpenAI's `/openai/...`: forwarded whole onto the base URL (an Azure base URL is
    /// the resource root); the API path follows `deployments/{name}/` or `v1/`.
    Azure,
    /// Ollama's native `/api/...`: forwarded whole onto the base URL's origin (these paths sit
    /// at the server's root, not under its `/v1`); the API path is `api/...`.
    ServerRoot,
}

/// The dialect serving a path and the operation it performs there.
pub type Served = (&'static dyn Dialect, Operation);

/// An inbound path located under a [`Mount`].
#[derive(Debug, Clone)]
pub struct Mounted<'a> {
    /// Path appended to the upstream base URL (starts with `/`), or to its origin when
    /// `from_origin` is set.
    pub upstream_path: String,
    pub from_origin: bool,
    /// The API path the dialects are asked about.
    pub api: ApiPath<'a>,
    /// Azure: the deployment the path names.
    pub deployment: Option<String>,
}

impl Mount {
    /// `path` (normalised) located under this mount, or `None` when it is not under it.
    pub fn locate(self, path: &str) -> Option<Mounted<'_>> {
        let (upstream_path, rest, from_origin) = match self {
            Mount::V1 => {
                let rest = path.strip_prefix("/v1/")?;
                (format!("/{rest}"), rest, false)
            }
            Mount::Azure => (path.to_string(), path.strip_prefix("/openai/")?, false),
            Mount::ServerRoot => {
                path.strip_prefix("/api/")?;
                (path.to_string(), &path[1..], true)
            }
        };
        let mut deployment = None;
        let mut api_path = rest;
        if self == Mount::Azure {
            if let Some(after) = rest.strip_prefix("deployments/") {
                if let Some((name, tail)) = after.split_once('/') {
                    deployment = Some(name.to_string());
                    api_path = tail;
                }
            } else if let Some(tail) = rest.strip_prefix("v1/") {
                // Azure's newer `/openai/v1/...` surface.
                api_path = tail;
            }
        }
        Some(Mounted {
            upstream_path,
            from_origin,
            api: ApiPath {
                path: api_path,
                azure: self == Mount::Azure,
            },
            deployment,
        })
    }
}

/// Where a request's path points, as the dialects see it.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<'a> {
    /// The API path without llmtap's prefix: `chat/completions`, `responses`, `messages`,
    /// or `api/chat` for Ollama's native paths (which sit at the server's root).
    pub path: &'a str,
    /// Under `/openai/deployments/{name}/`: Azure OpenAI.
    pub azure: bool,
}

/// An inbound path an API claims whole (see [`Dialect::claim_path`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathClaim {
    /// The inference operation, or `None` for the API's other paths (passed through untraced).
    pub operation: Option<Operation>,
    /// The model the path names (`models/{model}:...`): it routes the request and stands in
    /// for the model the body does not carry.
    pub model: Option<String>,
    /// The path itself asks for a stream (`:streamGenerateContent`).
    pub stream: bool,
}

/// One LLM API's wire format. Implementations are stateless unit structs; per-stream state
/// lives in the [`StreamWatcher`] they hand out.
pub trait Dialect: Sync + std::fmt::Debug {
    /// Short name for logs and tests (`openai_chat`, `anthropic_messages`, ...).
    fn name(&self) -> &'static str;

    /// The mounts this API is served under; none for APIs that claim whole paths
    /// ([`claim_path`](Self::claim_path)).
    fn mounts(&self) -> &'static [Mount] {
        &[]
    }

    /// The operation this dialect performs for `path` (under one of its [`mounts`](Self::mounts))
    /// and `method`, or `None` when the path is not one of its inference paths (the default,
    /// for APIs that only claim whole paths).
    fn recognise(&self, _path: ApiPath<'_>, _method: &http::Method) -> Option<Operation> {
        None
    }

    /// For APIs whose paths carry their own version and name the model (Google's
    /// `/v1beta/models/{model}:generateContent`): whether `path` (the whole normalised inbound
    /// path) is this API's. A claimed path is forwarded as it is onto the upstream's base URL
    /// (not under llmtap's `/v1/`), and errors on it take this API's shape.
    fn claim_path(&self, _path: &str, _method: &http::Method) -> Option<PathClaim> {
        None
    }

    /// Whether a 2xx `application/json` response to a streaming request is itself a stream
    /// to watch chunk by chunk (Gemini's `streamGenerateContent` without `alt=sse` sends a
    /// JSON array element by element).
    fn streams_json(&self) -> bool {
        false
    }

    /// `openai.api.type` for OpenAI's APIs; `None` elsewhere.
    fn openai_api_type(&self, _op: Operation) -> Option<&'static str> {
        None
    }

    /// The provider spans name when the upstream is configured as plain `openai` (the
    /// default): the Anthropic path answers `anthropic` then. `None` keeps the upstream's.
    fn provider(&self) -> Option<Provider> {
        None
    }

    /// Facts from a JSON object request body: model, parameters, prompt shape, tool results.
    fn request_facts(
        &self,
        obj: &Map<String, Value>,
        op: Operation,
        capture: bool,
        hasher: &PromptHasher,
    ) -> RequestInfo;

    /// How usage is asked for on `op`'s streams when the API leaves it out unless asked (OpenAI
    /// chat and completions); `None` (the default): the API always reports usage.
    fn usage_injection(&self, _op: Operation) -> Option<&'static dyn UsageInjection> {
        None
    }

    /// Facts a response carries in its headers rather than its body (AWS: the error type in
    /// `x-amzn-ErrorType`, the request id, InvokeModel's token counts), read when the headers
    /// arrive. Where the body says something too, the body's word wins.
    fn header_summary(&self, _status: u16, _headers: &http::HeaderMap) -> Option<ResponseSummary> {
        None
    }

    /// A watcher for a streamed response (`text/event-stream`, NDJSON, or AWS event stream).
    fn stream_watcher(&self, count_only: bool) -> Box<dyn StreamWatcher>;

    /// The summary of a whole (non-streamed) response body, success or error.
    fn summarize_body(&self, body: &[u8]) -> ResponseSummary;

    /// Whether a stream that ended without a transport failure is complete; one that is not
    /// is recorded as `stream_truncated`.
    fn stream_complete(&self, summary: &ResponseSummary) -> bool;

    /// The body of llmtap's own error on this API's paths, in the API's error shape; `status`
    /// is the HTTP status it is answered with.
    fn error_body(&self, message: &str, kind: &str, code: &str, _status: u16) -> String {
        openai_error_body(message, kind, code)
    }
}

/// The JSON body of an OpenAI-shaped error (`{"error":{"message","type","param","code"}}`):
/// llmtap's own errors on every path whose API has no shape of its own.
pub fn openai_error_body(message: &str, kind: &str, code: &str) -> String {
    serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    })
    .to_string()
}

/// A request rewrite that asks an API for usage on a stream, and what undoes it for the client:
/// the client receives the stream it would have received direct, and an upstream that refuses
/// the rewrite is answered with the client's own body (the proxy's refusal memory).
pub trait UsageInjection: Sync {
    /// The body to send instead of `body` (whose JSON object is `obj`), or `None` when no
    /// rewrite is needed (not streaming, or the client asked already). Every byte of the
    /// client's body is kept where the rewrite can splice.
    fn rewrite(&self, body: &[u8], obj: &Map<String, Value>) -> Option<Vec<u8>>;
    /// Whether an upstream's 4xx body says it refused what the rewrite added.
    fn refused(&self, error_body: &[u8]) -> bool;
    /// For one rewritten stream: which events the relay cuts or drops.
    fn strip_rule(&self) -> Box<dyn StripRule>;
}

/// Watches one streamed response: fed a copy of the (decoded) body bytes as they are relayed.
pub trait StreamWatcher: Send {
    fn feed(&mut self, bytes: &[u8]) -> FeedOutcome;
    /// Takes one SSE event framed by the caller (the relay's usage stripper frames every chunk
    /// anyway: framing once saves a fifth of a stream's CPU). `None`: this watcher frames its
    /// own input and must be fed bytes.
    fn feed_event(&mut self, _event: Option<&str>, _data: &[u8]) -> Option<FeedOutcome> {
        None
    }
    /// Whether [`feed_event`](Self::feed_event) is supported.
    fn takes_events(&self) -> bool {
        false
    }
    /// The caller's framing gave up (an oversized event): stop reading this stream.
    fn framing_failed(&mut self) {}
    /// The summary so far.
    fn summary(&self) -> &ResponseSummary;
    fn finish(self: Box<Self>) -> ResponseSummary;
}

/// `path` located under the first mount it is under, and the dialect and operation serving
/// it, if one of the dialects served under that mount recognises it. `None` when the path is
/// under no dialect's mount.
pub fn recognise<'p>(
    path: &'p str,
    method: &http::Method,
) -> Option<(Mounted<'p>, Option<Served>)> {
    recognise_among(DIALECTS, path, method)
}

/// [`recognise`] over `dialects`, in order.
fn recognise_among<'p>(
    dialects: &[&'static dyn Dialect],
    path: &'p str,
    method: &http::Method,
) -> Option<(Mounted<'p>, Option<Served>)> {
    let mounted = dialects
        .iter()
        .flat_map(|d| d.mounts())
        .find_map(|m| m.locate(path).map(|at| (*m, at)));
    let (mount, at) = mounted?;
    let served = dialects
        .iter()
        .filter(|d| d.mounts().contains(&mount))
        .find_map(|d| d.recognise(at.api, method).map(|op| (*d, op)));
    Some((at, served))
}

/// The dialect claiming a whole inbound path, and what the path says (see
/// [`Dialect::claim_path`]).
pub fn claim(path: &str, method: &http::Method) -> Option<(&'static dyn Dialect, PathClaim)> {
    DIALECTS
        .iter()
        .find_map(|d| d.claim_path(path, method).map(|c| (*d, c)))
}

/// Parses a request body into its facts with `dialect`; `None` when the body is not a JSON
/// object (it is forwarded untouched anyway).
pub fn parse_request(
    dialect: &dyn Dialect,
    body: &[u8],
    op: Operation,
    capture: bool,
    hasher: &PromptHasher,
) -> Option<ParsedRequest> {
    let (obj, lenient) = json_object(body)?;
    let info = dialect.request_facts(&obj, op, capture, hasher);
    Some(ParsedRequest { info, obj, lenient })
}

/// A request body read as JSON, and the facts read from it.
pub struct ParsedRequest {
    pub info: RequestInfo,
    pub obj: Map<String, Value>,
    /// The strict parser refused the body (an out-of-range number, a lone surrogate) and the
    /// lenient reading (`body::lenient_json`) was used: facts may be approximate.
    pub lenient: bool,
}

/// The summary of a whole (non-streamed) body for APIs whose bodies are one JSON object:
/// `read` fills it from the object (a success or an error shape); a body that is not a JSON
/// object is recorded as `parse_failed`.
pub(crate) fn summarize_object(
    body: &[u8],
    read: impl FnOnce(&Value, &mut ResponseSummary),
) -> ResponseSummary {
    let mut s = ResponseSummary::default();
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => read(&v, &mut s),
        _ => s.parse_failed = true,
    }
    s
}

/// A number field read as `f64`/`i64` (helpers for request facts).
pub(crate) fn f64_at(obj: &Map<String, Value>, key: &str) -> Option<f64> {
    obj.get(key).and_then(Value::as_f64)
}

pub(crate) fn i64_at(obj: &Map<String, Value>, key: &str) -> Option<i64> {
    obj.get(key).and_then(Value::as_i64)
}

pub(crate) fn str_at(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The one function a request forces the model to call, when it does: structured output done
/// through a tool call, whose arguments are the answer (instructor, LangChain's
/// `with_structured_output`, llama-index, the Vercel AI SDK's tool mode). Recognised shapes of
/// `tool_choice`, per the APIs' references:
/// - a named function: Chat Completions `{"type":"function","function":{"name"}}`, Responses
///   `{"type":"function","name"}`, Anthropic `{"type":"tool","name"}`;
/// - a call required but not named (`"required"`; Anthropic `{"type":"any"}`; Mistral
///   `"any"`) when the request offers exactly one tool: that tool.
///
/// `tool_name` reads the name from one entry of `tools` (`function.name` on Chat Completions,
/// `name` elsewhere). `None` for `auto`, `none`, no `tool_choice`, or a required choice among
/// several tools (which of them is output cannot be told from the request).
pub fn forced_tool(
    obj: &Map<String, Value>,
    tool_name: impl Fn(&Value) -> Option<&Value>,
) -> Option<String> {
    let only_tool = || {
        let tools = obj.get("tools")?.as_array()?;
        match tools.as_slice() {
            [one] => tool_name(one)?.as_str().map(str::to_owned),
            _ => None,
        }
    };
    match obj.get("tool_choice")? {
        Value::String(s) if s == "required" || s == "any" => only_tool(),
        Value::Object(c) => {
            let kind = c.get("type").and_then(Value::as_str).unwrap_or("");
            let named = c
                .get("name")
                .or_else(|| c.get("function").and_then(|f| f.get("name")))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            match (kind, named) {
                ("function" | "tool", Some(n)) => Some(n.to_owned()),
                ("any", _) => only_tool(),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `stop` / `stop_sequences`: a string or an array of strings.
pub(crate) fn strings_at(obj: &Map<String, Value>, key: &str) -> Vec<String> {
    match obj.get(key) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn at(path: &str) -> Option<(&'static str, Operation)> {
        let path = format!("/v1/{path}");
        recognise(&path, &Method::POST)
            .and_then(|(_, served)| served)
            .map(|(d, op)| (d.name(), op))
    }

    #[test]
    fn each_path_has_one_dialect() {
        assert_eq!(
            at("chat/completions"),
            Some(("openai_chat", Operation::Chat))
        );
        assert_eq!(
            at("completions"),
            Some(("openai_chat", Operation::TextCompletion))
        );
        assert_eq!(
            at("embeddings"),
            Some(("openai_chat", Operation::Embeddings))
        );
        assert_eq!(at("responses"), Some(("openai_responses", Operation::Chat)));
        assert_eq!(
            at("messages"),
            Some(("anthropic_messages", Operation::Chat))
        );
        let ollama = |path: &str| {
            recognise(path, &Method::POST)
                .and_then(|(_, served)| served)
                .map(|(d, op)| (d.name(), op))
        };
        assert_eq!(
            ollama("/api/chat"),
            Some(("ollama_native", Operation::Chat))
        );
        assert_eq!(
            ollama("/api/generate"),
            Some(("ollama_native", Operation::TextCompletion))
        );
        assert_eq!(
            ollama("/api/embed"),
            Some(("ollama_native", Operation::Embeddings))
        );
        assert_eq!(at("models"), None);
        assert_eq!(at("responses/resp_1/input_items"), None);
        assert!(recognise("/v1/chat/completions", &Method::GET)
            .is_some_and(|(_, served)| served.is_none()));
    }

    /// A fifth API as one file would write it: its mount, its path, its facts, its watcher.
    /// Registered beside the others, it is routed with no change anywhere else, and the paths
    /// of the dialects before it still go to them.
    #[derive(Debug)]
    struct Echo;

    impl Dialect for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        fn mounts(&self) -> &'static [Mount] {
            &[Mount::V1]
        }
        fn recognise(&self, path: ApiPath<'_>, _method: &http::Method) -> Option<Operation> {
            (path.path == "echo").then_some(Operation::Chat)
        }
        fn request_facts(
            &self,
            obj: &Map<String, Value>,
            _op: Operation,
            _capture: bool,
            _hasher: &PromptHasher,
        ) -> RequestInfo {
            RequestInfo {
                model: str_at(obj, "model"),
                ..Default::default()
            }
        }
        fn stream_watcher(&self, count_only: bool) -> Box<dyn StreamWatcher> {
            OpenAiChat.stream_watcher(count_only)
        }
        fn summarize_body(&self, body: &[u8]) -> ResponseSummary {
            OpenAiChat.summarize_body(body)
        }
        fn stream_complete(&self, s: &ResponseSummary) -> bool {
            s.saw_done
        }
    }

    #[test]
    fn a_dialect_is_one_registration() {
        let registered: &[&'static dyn Dialect] = &[&OpenAiChat, &AnthropicMessages, &Echo];
        let served = |path: &str| {
            recognise_among(registered, path, &Method::POST)
                .and_then(|(_, served)| served)
                .map(|(d, op)| (d.name(), op))
        };
        assert_eq!(served("/v1/echo"), Some(("echo", Operation::Chat)));
        assert_eq!(
            served("/v1/messages"),
            Some(("anthropic_messages", Operation::Chat))
        );
        assert_eq!(
            served("/openai/deployments/d/chat/completions"),
            Some(("openai_chat", Operation::Chat))
        );
        // Not under Echo's mount: Azure paths are not its.
        assert_eq!(served("/openai/deployments/d/echo"), None);
        let (at, _) = recognise_among(registered, "/v1/echo", &Method::POST).unwrap();
        assert_eq!(
            (at.upstream_path.as_str(), at.from_origin),
            ("/echo", false)
        );
        // Unregistered, it serves nothing.
        assert!(recognise("/v1/echo", &Method::POST).is_some_and(|(_, s)| s.is_none()));
    }
}
