//! One dialect per LLM API, behind one small trait, over one request path.
//!
//! A dialect knows its API's wire format and nothing else: which paths are its own, what a
//! request body says (model, parameters, tool results), whether usage can be asked for by
//! injection, how response chunks and bodies become the provider-neutral
//! [`ResponseSummary`](crate::summary::ResponseSummary), when a stream is complete, and the
//! shape of llmtap's own errors on its paths. Routing, relaying and telemetry never look at
//! a wire format themselves.
//!
//! Adding an API is one new file implementing [`Dialect`] plus one line in [`DIALECTS`].

mod anthropic;
mod bedrock;
mod gemini;
mod ollama;
mod openai_chat;
mod openai_responses;
mod watch;

use serde_json::{Map, Value};

use crate::config::Provider;
use crate::request::{PromptHasher, RequestInfo};
use crate::summary::{FeedOutcome, ResponseSummary};

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

/// The gen_ai operation a request performs (`gen_ai.operation.name`, semconv GenAI spans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    TextCompletion,
    Embeddings,
    /// Gemini's `generateContent` / `streamGenerateContent`: the conventions name this
    /// operation `generate_content` ("multimodal content generation operation such as Gemini
    /// Generate Content"), and they say to use the predefined value that applies.
    GenerateContent,
}

impl Operation {
    /// `gen_ai.operation.name`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GenerateContent => "generate_content",
            Operation::Chat => "chat",
            Operation::TextCompletion => "text_completion",
            Operation::Embeddings => "embeddings",
        }
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

    /// The operation this dialect performs for `path` and `method`, or `None` when the path
    /// is not one of its inference paths.
    fn recognise(&self, path: ApiPath<'_>, method: &http::Method) -> Option<Operation>;

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

    /// Whether llmtap may add `stream_options.include_usage` for usage on streams. Only the
    /// OpenAI chat and completions APIs need it; the others always report usage.
    fn injects_usage(&self, _op: Operation) -> bool {
        false
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

/// The dialect and operation serving `path`, if any.
pub fn recognise(
    path: ApiPath<'_>,
    method: &http::Method,
) -> Option<(&'static dyn Dialect, Operation)> {
    DIALECTS
        .iter()
        .find_map(|d| d.recognise(path, method).map(|op| (*d, op)))
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
    let (obj, lenient) = crate::request::json_object(body)?;
    let info = dialect.request_facts(&obj, op, capture, hasher);
    Some(ParsedRequest { info, obj, lenient })
}

/// A request body read as JSON, and the facts read from it.
pub struct ParsedRequest {
    pub info: RequestInfo,
    pub obj: Map<String, Value>,
    /// The strict parser refused the body (an out-of-range number, a lone surrogate) and the
    /// lenient reading ([`crate::request::lenient_json`]) was used: facts may be approximate.
    pub lenient: bool,
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

/// `(name, description)` of the tools a request offers, for `gen_ai.tool.description` on the
/// execute_tool spans of the calls the response asks for. `function` is the object holding
/// `name` and `description` in a tool entry (the entry itself for flat shapes).
pub(crate) fn tool_descriptions(
    obj: &Map<String, Value>,
    function: impl Fn(&Value) -> Option<&Value>,
) -> Vec<(String, String)> {
    obj.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let f = function(t)?;
            let name = f.get("name")?.as_str()?;
            let description = f.get("description")?.as_str()?;
            Some((
                name.to_owned(),
                description
                    .chars()
                    .take(crate::request::MAX_TOOL_DESCRIPTION_CHARS)
                    .collect(),
            ))
        })
        .take(crate::request::MAX_TOOL_DESCRIPTIONS)
        .collect()
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
        recognise(ApiPath { path, azure: false }, &Method::POST).map(|(d, op)| (d.name(), op))
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
        assert_eq!(at("api/chat"), Some(("ollama_native", Operation::Chat)));
        assert_eq!(
            at("api/generate"),
            Some(("ollama_native", Operation::TextCompletion))
        );
        assert_eq!(
            at("api/embed"),
            Some(("ollama_native", Operation::Embeddings))
        );
        assert_eq!(at("models"), None);
        assert_eq!(at("responses/resp_1/input_items"), None);
        assert!(recognise(
            ApiPath {
                path: "chat/completions",
                azure: false
            },
            &Method::GET
        )
        .is_none());
    }
}
