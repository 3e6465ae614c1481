//! Amazon Bedrock Runtime: `Converse`, `ConverseStream`, `InvokeModel` and
//! `InvokeModelWithResponseStream`. References: the Bedrock Runtime API reference (the four
//! actions, `ConverseStreamOutput`, `TokenUsage`, "Common Errors"), and the real recordings in
//! `../shared/fixtures/providers/bedrock-*` (see SOURCES.md there).
//!
//! Paths name the model and are claimed whole ([`Dialect::claim_path`]), forwarded unchanged
//! onto the upstream's base URL (`https://bedrock-runtime.{region}.amazonaws.com`):
//! `POST /model/{modelId}/{converse|converse-stream|invoke|invoke-with-response-stream}`. The
//! SDKs percent-encode the model id (`:` as `%3A`, an ARN's `/` as `%2F`); the model on spans
//! is the decoded id. Other `/model/{modelId}/...` paths (`count-tokens`) pass through untraced.
//!
//! Converse bodies are Bedrock's own shape; InvokeModel bodies are the model family's, read as
//! Anthropic Messages when they carry `anthropic_version` (or `messages`), else for the few
//! parameters the common families share. Streams are AWS event-stream frames
//! ([`crate::stream::eventstream`]): ConverseStream sends typed events (`messageStart`,
//! `contentBlockStart`/`Delta`/`Stop`, `messageStop`, `metadata`), InvokeModelWithResponseStream
//! sends `chunk` events whose `bytes` is the model's own JSON event, base64-encoded; its last one
//! adds `amazon-bedrock-invocationMetrics`. A modelled error mid-stream is a frame with
//! `:message-type: exception` and `:exception-type` (`throttlingException`, ...). Errors outside
//! streams are `{"message"}` with the type in the `x-amzn-ErrorType` header.

use base64::Engine;
use serde_json::{Map, Value};

use crate::stream::eventstream::{EventStreamDecoder, Frame};
use crate::vocab::prompt::PromptHasher;
use crate::vocab::provider::Provider;
use crate::vocab::request::{tool_descriptions, RequestContent, RequestInfo};
use crate::vocab::summary::{FeedOutcome, ResponseSummary, Usage};

use super::anthropic::{AnthropicMessages, MessagesReader};
use super::watch::EventReader;
use super::{f64_at, i64_at, ApiPath, Dialect, Operation, PathClaim, StreamWatcher};

/// Bedrock, through one of its two inference APIs (one type: the paths, request bodies and
/// whole responses differ; streams share their framing and one watcher).
#[derive(Debug)]
pub struct Bedrock {
    /// `InvokeModel` (the model family's own bodies) rather than `Converse`.
    invoke: bool,
}

/// `Converse` and `ConverseStream` (and the other `/model/` paths, passed through).
pub const BEDROCK_CONVERSE: Bedrock = Bedrock { invoke: false };

/// `InvokeModel` and `InvokeModelWithResponseStream`.
pub const BEDROCK_INVOKE: Bedrock = Bedrock { invoke: true };

impl Dialect for Bedrock {
    fn name(&self) -> &'static str {
        if self.invoke {
            "bedrock_invoke"
        } else {
            "bedrock_converse"
        }
    }

    /// Bedrock paths are never under llmtap's `/v1/` prefix: see [`Dialect::claim_path`].
    fn recognise(&self, _path: ApiPath<'_>, _method: &http::Method) -> Option<Operation> {
        None
    }

    fn claim_path(&self, path: &str, method: &http::Method) -> Option<PathClaim> {
        let (id, verb) = path.strip_prefix("/model/")?.split_once('/')?;
        if id.is_empty() {
            return None;
        }
        let model = decode_model_id(id);
        let post = method == http::Method::POST;
        let (invoke, stream) = match verb {
            "converse" => (false, false),
            "converse-stream" => (false, true),
            "invoke" => (true, false),
            "invoke-with-response-stream" => (true, true),
            // count-tokens and whatever else Bedrock adds: passed through, untraced.
            _ if !self.invoke => {
                return Some(PathClaim {
                    operation: None,
                    model: Some(model),
                    stream: false,
                })
            }
            _ => return None,
        };
        if invoke != self.invoke {
            return None;
        }
        let operation = post.then(|| match invoke && is_embedding_model(&model) {
            true => Operation::Embeddings,
            false => Operation::Chat,
        });
        Some(PathClaim {
            operation,
            model: Some(model),
            stream,
        })
    }

    fn provider(&self) -> Option<Provider> {
        Some(Provider::Bedrock)
    }

    fn request_facts(
        &self,
        obj: &Map<String, Value>,
        op: Operation,
        capture: bool,
        hasher: &PromptHasher,
    ) -> RequestInfo {
        if !self.invoke {
            return converse_request(obj, capture, hasher);
        }
        if obj.contains_key("anthropic_version") || obj.contains_key("messages") {
            return AnthropicMessages.request_facts(obj, op, capture, hasher);
        }
        family_request(obj, op, hasher)
    }

    fn stream_watcher(&self, count_only: bool) -> Box<dyn StreamWatcher> {
        Box::new(BedrockWatcher {
            count_only,
            ..Default::default()
        })
    }

    fn summarize_body(&self, body: &[u8]) -> ResponseSummary {
        let mut s = ResponseSummary::default();
        let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else {
            s.parse_failed = true;
            return s;
        };
        if is_error_body(&v) {
            let message = v.get("message").or_else(|| v.get("Message"));
            let kind = v.get("__type").and_then(Value::as_str).map(error_type_name);
            s.set_error(message.and_then(Value::as_str), kind, kind);
        } else if !self.invoke {
            converse_response(&v, &mut s);
        } else if v.get("type").and_then(Value::as_str) == Some("message") {
            return AnthropicMessages.summarize_body(body);
        } else {
            family_response(&v, &mut s, false);
        }
        s
    }

    fn stream_complete(&self, s: &ResponseSummary) -> bool {
        s.stream_ended
    }

    /// `{"message", "__type"}`: the SDKs read the error's code from `__type` (or the
    /// `x-amzn-ErrorType` header) and raise their usual exception for it.
    fn error_body(&self, message: &str, _kind: &str, _code: &str, status: u16) -> String {
        let kind = match status {
            400 | 413 => "ValidationException",
            401 | 403 => "AccessDeniedException",
            404 => "ResourceNotFoundException",
            408 | 504 => "ModelTimeoutException",
            429 => "ThrottlingException",
            503 => "ServiceUnavailableException",
            _ => "InternalServerException",
        };
        serde_json::json!({"message": message, "__type": kind}).to_string()
    }

    /// The error type AWS puts in `x-amzn-ErrorType` (`ThrottlingException:http://...`), the
    /// request id (`x-amzn-RequestId`, which stands for the response id: Converse responses
    /// carry none), and InvokeModel's token counts (`X-Amzn-Bedrock-Input-Token-Count`,
    /// `-Output-`, `-Cache-Read-Input-`, `-Cache-Write-Input-`).
    fn header_summary(&self, status: u16, headers: &http::HeaderMap) -> Option<ResponseSummary> {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let n = |name: &str| h(name).and_then(|v| v.trim().parse::<u64>().ok());
        let mut s = ResponseSummary::default();
        s.set_id_and_model(h("x-amzn-requestid"), None);
        if status >= 400 {
            if let Some(t) = h("x-amzn-errortype") {
                let t = error_type_name(t);
                s.set_error(None, Some(t), Some(t));
            }
        }
        let (input, output) = (
            n("x-amzn-bedrock-input-token-count"),
            n("x-amzn-bedrock-output-token-count"),
        );
        if input.is_some() || output.is_some() {
            let read = n("x-amzn-bedrock-cache-read-input-token-count");
            let write = n("x-amzn-bedrock-cache-write-input-token-count");
            s.usage = Some(Usage {
                input_tokens: input.map(|i| i + read.unwrap_or(0) + write.unwrap_or(0)),
                output_tokens: output,
                cache_read_input_tokens: read,
                cache_write_input_tokens: write,
                reasoning_output_tokens: None,
            });
        }
        Some(s)
    }
}

/// The model id as Bedrock reads it: percent-decoded (`%3A` → `:`, an ARN's `%2F` → `/`).
/// Bytes that do not decode to UTF-8 keep the id as sent.
fn decode_model_id(id: &str) -> String {
    let b = id.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| id.to_owned())
}

/// Embedding models answer InvokeModel with vectors (`amazon.titan-embed-text-v2:0`,
/// `cohere.embed-english-v3`, `amazon.nova-2-multimodal-embeddings-v1:0`).
fn is_embedding_model(model: &str) -> bool {
    model.contains("embed")
}

/// `ThrottlingException:http://internal.amazon.com/coral/...` → `ThrottlingException`;
/// `aws.protocols#ThrottlingException` → `ThrottlingException`; a stream's
/// `throttlingException` (the union member's name) → `ThrottlingException`, so one error is
/// spelled one way on spans and metrics wherever it was reported.
fn error_type_name(t: &str) -> &str {
    let t = t.split(':').next().unwrap_or(t);
    let t = t.rsplit('#').next().unwrap_or(t);
    EXCEPTIONS
        .iter()
        .find(|e| e.eq_ignore_ascii_case(t))
        .copied()
        .unwrap_or(t)
}

/// Bedrock Runtime's modelled errors ("Common Errors" and each action's "Errors").
pub const EXCEPTIONS: &[&str] = &[
    "AccessDeniedException",
    "InternalServerException",
    "ModelErrorException",
    "ModelNotReadyException",
    "ModelStreamErrorException",
    "ModelTimeoutException",
    "ResourceNotFoundException",
    "ServiceQuotaExceededException",
    "ServiceUnavailableException",
    "ThrottlingException",
    "ValidationException",
];

/// An error body: `{"message"}` (or `Message`, `__type`) and no response fields.
fn is_error_body(v: &Map<String, Value>) -> bool {
    (v.contains_key("message") || v.contains_key("Message") || v.contains_key("__type"))
        && !v.contains_key("output")
        && !v.contains_key("content")
}

/// The text of Converse content blocks (`text`, and a `toolResult`'s text or JSON).
fn blocks_text(blocks: Option<&Value>) -> String {
    let mut out = String::new();
    for b in blocks.and_then(Value::as_array).into_iter().flatten() {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            out.push_str(t);
        } else if let Some(r) = b.get("toolResult") {
            out.push_str(&tool_result_text(r));
        }
    }
    out
}

/// A `toolResult`'s content: its `text` blocks, and `json` blocks as JSON text.
fn tool_result_text(r: &Value) -> String {
    r.get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(
            |c| match (c.get("text").and_then(Value::as_str), c.get("json")) {
                (Some(t), _) => t.to_owned(),
                (None, Some(j)) => j.to_string(),
                _ => String::new(),
            },
        )
        .collect()
}

fn converse_request(obj: &Map<String, Value>, capture: bool, hasher: &PromptHasher) -> RequestInfo {
    let mut info = RequestInfo::default();
    if let Some(c) = obj.get("inferenceConfig").and_then(Value::as_object) {
        info.max_tokens = i64_at(c, "maxTokens");
        info.temperature = f64_at(c, "temperature");
        info.top_p = f64_at(c, "topP");
        info.stop = super::strings_at(c, "stopSequences");
    }
    // `toolConfig.tools[].toolSpec` holds `name` and `description`.
    if let Some(tc) = obj.get("toolConfig").and_then(Value::as_object) {
        info.tool_descriptions = tool_descriptions(tc, |t| t.get("toolSpec"));
        info.forced_tool = match tc.get("toolChoice") {
            Some(c) if c.get("tool").is_some() => c
                .pointer("/tool/name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Some(c) if c.get("any").is_some() => match tc.get("tools").and_then(Value::as_array) {
                Some(t) if t.len() == 1 => t[0]
                    .pointer("/toolSpec/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            },
            _ => None,
        };
    }
    let system = blocks_text(obj.get("system"));
    info.prompt_chars += system.chars().count() as u64;
    for m in obj
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        info.message_count += 1;
        info.prompt_chars += blocks_text(m.get("content")).chars().count() as u64;
        for b in m
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = b.get("toolResult") {
                if let Some(id) = r.get("toolUseId").and_then(Value::as_str) {
                    info.tool_results.push((id.to_owned(), tool_result_text(r)));
                }
            }
        }
    }
    if let Some(m) = obj.get("messages") {
        info.prompt_hash = hasher.prompt_hash(&(m, obj.get("system")));
    }
    if capture {
        info.content = Some(converse_content(obj, &system));
    }
    info
}

/// The request's messages, system text and tools in the conventions' part shapes.
fn converse_content(obj: &Map<String, Value>, system: &str) -> RequestContent {
    let mut out = RequestContent::default();
    if !system.is_empty() {
        out.system_instructions = Some(serde_json::json!([{"type": "text", "content": system}]));
    }
    let messages: Vec<Value> = obj
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let parts: Vec<Value> = m
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|b| {
                    if let Some(t) = b.get("text") {
                        serde_json::json!({"type": "text", "content": t})
                    } else if let Some(u) = b.get("toolUse") {
                        serde_json::json!({"type": "tool_call", "id": u.get("toolUseId"),
                            "name": u.get("name"), "arguments": u.get("input")})
                    } else if let Some(r) = b.get("toolResult") {
                        serde_json::json!({"type": "tool_call_response",
                            "id": r.get("toolUseId"), "response": tool_result_text(r)})
                    } else {
                        serde_json::json!({"type": b.as_object()
                            .and_then(|o| o.keys().next()).map_or("unknown", |k| k.as_str())})
                    }
                })
                .collect();
            serde_json::json!({"role": m.get("role").and_then(Value::as_str).unwrap_or("user"),
                "parts": parts})
        })
        .collect();
    out.input_messages = Some(Value::Array(messages));
    if let Some(tools) = obj
        .get("toolConfig")
        .and_then(|c| c.get("tools"))
        .and_then(Value::as_array)
    {
        let defs: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("toolSpec"))
            .map(|t| {
                serde_json::json!({"type": "function", "name": t.get("name"),
                    "description": t.get("description"),
                    "parameters": t.pointer("/inputSchema/json")})
            })
            .collect();
        out.tool_definitions = Some(Value::Array(defs));
    }
    out
}

/// An InvokeModel body of a family other than Anthropic: the parameters the common ones
/// share (Llama `max_gen_len`, Mistral and Cohere `max_tokens`, Titan `textGenerationConfig`,
/// Nova `inferenceConfig.max_new_tokens`), and a hash of the whole body as the prompt.
fn family_request(obj: &Map<String, Value>, op: Operation, hasher: &PromptHasher) -> RequestInfo {
    let nested = obj
        .get("textGenerationConfig")
        .or_else(|| obj.get("inferenceConfig"))
        .and_then(Value::as_object);
    let pick_f = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| f64_at(obj, k).or_else(|| nested.and_then(|n| f64_at(n, k))))
    };
    let pick_i = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| i64_at(obj, k).or_else(|| nested.and_then(|n| i64_at(n, k))))
    };
    let mut info = RequestInfo {
        temperature: pick_f(&["temperature"]),
        top_p: pick_f(&["top_p", "topP", "p"]),
        max_tokens: pick_i(&[
            "max_tokens",
            "max_gen_len",
            "maxTokenCount",
            "max_new_tokens",
        ]),
        ..Default::default()
    };
    if op == Operation::Embeddings {
        info.dimensions = pick_i(&["dimensions", "embeddingDimension"]);
    }
    info.prompt_hash = hasher.prompt_hash(obj);
    info
}

/// Converse usage (`TokenUsage`): `inputTokens` counts only the uncached input, so the cache
/// reads and writes (spelled `cacheReadInputTokens` or, on some responses, both that and
/// `cacheReadInputTokenCount`) are added to make `gen_ai.usage.input_tokens` count every
/// input token, as the conventions say and as the Anthropic dialect does.
fn converse_usage(u: &Value, s: &mut ResponseSummary) {
    let n = |a: &str, b: &str| u.get(a).or_else(|| u.get(b)).and_then(Value::as_u64);
    let read = n("cacheReadInputTokens", "cacheReadInputTokenCount");
    let write = n("cacheWriteInputTokens", "cacheWriteInputTokenCount");
    let input = n("inputTokens", "inputTokenCount");
    let output = n("outputTokens", "outputTokenCount");
    if input.is_none() && output.is_none() {
        return;
    }
    s.usage = Some(Usage {
        input_tokens: input.map(|i| i + read.unwrap_or(0) + write.unwrap_or(0)),
        output_tokens: output,
        cache_read_input_tokens: read,
        cache_write_input_tokens: write,
        reasoning_output_tokens: None,
    });
}

/// A whole Converse response: `output.message.content`, `stopReason`, `usage`.
fn converse_response(v: &Map<String, Value>, s: &mut ResponseSummary) {
    let blocks = v
        .get("output")
        .and_then(|o| o.pointer("/message/content"))
        .and_then(Value::as_array);
    for (i, b) in blocks.into_iter().flatten().enumerate() {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            s.push_text(0, t, false);
        } else if let Some(u) = b.get("toolUse") {
            let id = u.get("toolUseId").and_then(Value::as_str).unwrap_or("");
            let name = u.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some(k) = s.tool_call(i as u32, id, name, "function") {
                let input = u.get("input").map(Value::to_string).unwrap_or_default();
                s.push_arguments(k, &input, false);
            }
        } else if let Some(t) = b.pointer("/reasoningContent/reasoningText/text") {
            s.push_reasoning(t.as_str().unwrap_or(""));
        }
    }
    if let Some(r) = v.get("stopReason").and_then(Value::as_str) {
        s.set_finish_reason(0, r);
    }
    if let Some(u) = v.get("usage") {
        converse_usage(u, s);
    }
    latency(v.get("metrics"), "latencyMs", s);
}

/// Bedrock's own latency figure, when the response carries it.
fn latency(metrics: Option<&Value>, key: &str, s: &mut ResponseSummary) {
    if let Some(ms) = metrics.and_then(|m| m.get(key)).and_then(Value::as_u64) {
        s.provider_latency_ms = Some(ms);
    }
}

/// A response (or stream chunk) of a family other than Anthropic: text, stop reason, token
/// counts and vectors where the common families put them (Llama `generation`,
/// `prompt_token_count`; Titan `outputText`, `completionReason`, `inputTextTokenCount`;
/// Mistral `outputs[].text`; Nova's Converse-like `output.message`; embeddings'
/// `embedding` / `embeddings`).
fn family_response(v: &Map<String, Value>, s: &mut ResponseSummary, count_only: bool) {
    if v.contains_key("output") {
        converse_response(v, s);
    }
    let results = v.get("results").and_then(Value::as_array);
    let first = results.and_then(|r| r.first());
    let outputs = v.get("outputs").and_then(Value::as_array);
    let text = v
        .get("generation")
        .or_else(|| v.get("outputText"))
        .or_else(|| v.get("completion"))
        .or_else(|| first.and_then(|r| r.get("outputText")))
        .or_else(|| outputs.and_then(|o| o.first()).and_then(|o| o.get("text")))
        .and_then(Value::as_str);
    if let Some(t) = text {
        s.push_text(0, t, count_only);
    }
    let reason = v
        .get("stop_reason")
        .or_else(|| v.get("completionReason"))
        .or_else(|| first.and_then(|r| r.get("completionReason")))
        .or_else(|| {
            outputs
                .and_then(|o| o.first())
                .and_then(|o| o.get("stop_reason"))
        })
        .and_then(Value::as_str);
    if let Some(r) = reason {
        s.set_finish_reason(0, r);
    }
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    let input = n("prompt_token_count").or_else(|| n("inputTextTokenCount"));
    let output =
        n("generation_token_count").or_else(|| first.and_then(|r| r["tokenCount"].as_u64()));
    if input.is_some() || output.is_some() {
        let u = s.usage.get_or_insert_with(Usage::default);
        u.input_tokens = input.or(u.input_tokens);
        u.output_tokens = output.or(u.output_tokens);
    }
    let vector = v
        .get("embedding")
        .or_else(|| v.get("embeddings").and_then(|e| e.get(0)));
    if let Some(Value::Array(a)) = vector {
        s.embedding_dimensions = Some(a.len() as u64);
    }
}

/// `amazon-bedrock-invocationMetrics` on the last chunk of an InvokeModelWithResponseStream:
/// Bedrock's own count, which is what it bills, so it has the last word over the model's
/// (Anthropic's `message_delta` said 130 output tokens where these said 98, in a recording).
fn invocation_metrics(m: &Value, s: &mut ResponseSummary) {
    converse_usage(m, s);
    latency(Some(m), "invocationLatency", s);
}

/// Per-stream state of a Bedrock stream, both APIs.
#[derive(Default)]
struct BedrockReader {
    /// The tool call of each Converse content block: `(contentBlockIndex, call)`.
    blocks: Vec<(u64, usize)>,
    /// InvokeModel with an Anthropic body: its chunks are Messages events.
    anthropic: MessagesReader,
}

impl BedrockReader {
    /// One ConverseStream event.
    fn converse_event(&mut self, kind: &str, v: &Value, s: &mut ResponseSummary, count_only: bool) {
        let index = v
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match kind {
            "contentBlockStart" => {
                if let Some(u) = v.pointer("/start/toolUse") {
                    let id = u.get("toolUseId").and_then(Value::as_str).unwrap_or("");
                    let name = u.get("name").and_then(Value::as_str).unwrap_or("");
                    // The first chunk is the first `contentBlockDelta`, not a block's start.
                    let seen = s.first_content_seen;
                    if let Some(k) = s.tool_call(index as u32, id, name, "function") {
                        self.blocks.push((index, k));
                    }
                    s.first_content_seen = seen;
                }
            }
            "contentBlockDelta" => {
                let d = &v["delta"];
                if let Some(t) = d.get("text").and_then(Value::as_str) {
                    s.push_text(0, t, count_only);
                } else if let Some(input) = d.pointer("/toolUse/input").and_then(Value::as_str) {
                    if let Some((_, k)) = self.blocks.iter().find(|(i, _)| *i == index) {
                        s.push_arguments(*k, input, count_only);
                    }
                } else if let Some(r) = d.get("reasoningContent") {
                    s.push_reasoning(r.get("text").and_then(Value::as_str).unwrap_or(""));
                }
                s.first_content_seen = true;
            }
            "messageStop" => {
                if let Some(r) = v.get("stopReason").and_then(Value::as_str) {
                    s.set_finish_reason(0, r);
                }
            }
            // The last event: usage and Bedrock's latency.
            "metadata" => {
                if let Some(u) = v.get("usage") {
                    converse_usage(u, s);
                }
                latency(v.get("metrics"), "latencyMs", s);
                s.stream_ended = true;
            }
            _ => {}
        }
    }

    /// One InvokeModelWithResponseStream `chunk`: `{"bytes": base64 of the model's event}`.
    fn chunk(&mut self, v: &Value, s: &mut ResponseSummary, count_only: bool) {
        let Some(b64) = v.get("bytes").and_then(Value::as_str) else {
            return;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            s.parse_failed = true;
            return;
        };
        let Ok(Value::Object(inner)) = serde_json::from_slice::<Value>(&raw) else {
            s.parse_failed = true;
            return;
        };
        let as_value = Value::Object(inner);
        let kind = as_value.get("type").and_then(Value::as_str);
        if kind.is_some() {
            self.anthropic.event(kind, &as_value, s, count_only);
        } else if let Value::Object(inner) = &as_value {
            family_response(inner, s, count_only);
        }
        if let Some(m) = as_value.get("amazon-bedrock-invocationMetrics") {
            invocation_metrics(m, s);
            // The last chunk of every family's stream.
            s.stream_ended = true;
        }
    }

    /// One frame of either stream.
    fn frame(&mut self, f: &Frame<'_>, s: &mut ResponseSummary, count_only: bool) {
        let payload = || serde_json::from_slice::<Value>(f.payload).ok();
        match f.str_header(":message-type").unwrap_or("event") {
            "event" => {
                let kind = f.str_header(":event-type").unwrap_or("");
                let Some(v) = payload() else {
                    s.parse_failed = true;
                    return;
                };
                if kind == "chunk" {
                    self.chunk(&v, s, count_only);
                } else {
                    self.converse_event(kind, &v, s, count_only);
                }
            }
            "exception" => {
                let kind = f.str_header(":exception-type").map(error_type_name);
                let message = payload()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned));
                s.set_error(message.as_deref(), kind, kind);
            }
            // An event-stream level error (`:error-code`, `:error-message`).
            _ => {
                let code = f.str_header(":error-code");
                s.set_error(f.str_header(":error-message"), code, code);
            }
        }
    }
}

/// Watches a Bedrock event stream: frames decoded from a copy of the relayed bytes, each
/// read into the summary. A framing error (bad CRC, impossible length) ends parsing and
/// marks the summary `parse_failed`; the relay goes on.
#[derive(Default)]
struct BedrockWatcher {
    decoder: EventStreamDecoder,
    reader: BedrockReader,
    summary: ResponseSummary,
    count_only: bool,
}

impl StreamWatcher for BedrockWatcher {
    fn feed(&mut self, bytes: &[u8]) -> FeedOutcome {
        let mut outcome = FeedOutcome::default();
        let BedrockWatcher {
            decoder,
            reader,
            summary,
            count_only,
        } = self;
        decoder.feed(bytes, |f| {
            if summary.parse_failed {
                return;
            }
            let before = summary.first_content_seen;
            reader.frame(&f, summary, *count_only);
            summary.chunk_count += 1;
            outcome.chunks += 1;
            outcome.first_content |= !before && summary.first_content_seen;
        });
        if decoder.failed().is_some() {
            summary.parse_failed = true;
        }
        outcome
    }

    fn framing_failed(&mut self) {
        self.summary.parse_failed = true;
    }

    fn summary(&self) -> &ResponseSummary {
        &self.summary
    }

    fn finish(mut self: Box<Self>) -> ResponseSummary {
        self.reader.anthropic.finish(&mut self.summary);
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::eventstream::{encode_event, encode_exception};

    fn recording(name: &str) -> Option<Vec<u8>> {
        let dir = crate::stream::fixtures_for_tests::shared_dir()?;
        Some(std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")))
    }

    fn watch(d: &dyn Dialect, stream: &[u8], split: usize) -> ResponseSummary {
        let mut w = d.stream_watcher(false);
        for piece in stream.chunks(split.max(1)) {
            w.feed(piece);
        }
        w.finish()
    }

    /// Every split gives the summary the whole stream gives.
    fn golden(d: &dyn Dialect, stream: &[u8]) -> ResponseSummary {
        let whole = watch(d, stream, stream.len());
        for split in [1, 2, 3, 7, 12, 13, 64, 1000] {
            assert_eq!(watch(d, stream, split), whole, "split {split}");
        }
        assert!(!whole.parse_failed);
        whole
    }

    fn claim(path: &str) -> Option<(&'static str, PathClaim)> {
        super::super::claim(path, &http::Method::POST).map(|(d, c)| (d.name(), c))
    }

    #[test]
    fn paths_are_claimed_with_the_decoded_model() {
        let (d, c) = claim("/model/us.amazon.nova-micro-v1%3A0/converse-stream").unwrap();
        assert_eq!(d, "bedrock_converse");
        assert_eq!(c.model.as_deref(), Some("us.amazon.nova-micro-v1:0"));
        assert_eq!(c.operation, Some(Operation::Chat));
        assert!(c.stream);
        let (d, c) = claim(
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-7-sonnet-20250219-v1%3A0/invoke",
        )
        .unwrap();
        assert_eq!(d, "bedrock_invoke");
        assert_eq!(
            c.model.as_deref(),
            Some("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0")
        );
        assert!(!c.stream);
        let (_, c) = claim("/model/amazon.titan-embed-text-v2%3A0/invoke").unwrap();
        assert_eq!(c.operation, Some(Operation::Embeddings));
        let (d, c) = claim("/model/anthropic.claude-3-haiku/count-tokens").unwrap();
        assert_eq!((d, c.operation), ("bedrock_converse", None));
        assert!(claim("/model/").is_none());
        assert!(claim("/v1/models/gpt-4o").is_none());
    }

    #[test]
    fn converse_stream_text_recording() {
        let Some(bytes) = recording("bedrock-converse-stream-text.eventstream") else {
            return;
        };
        let s = golden(&BEDROCK_CONVERSE, &bytes);
        assert_eq!(s.chunk_count, 33);
        assert!(s.output_text[0].starts_with("The capital of France is Paris."));
        assert_eq!(s.finish_reasons, vec![Some("end_turn".into())]);
        let u = s.usage.clone().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (Some(13), Some(82)));
        assert_eq!(s.provider_latency_ms, Some(522));
        assert!(s.stream_ended && BEDROCK_CONVERSE.stream_complete(&s));
    }

    #[test]
    fn converse_stream_tool_use_recording() {
        let Some(bytes) = recording("bedrock-converse-stream-tool-use.eventstream") else {
            return;
        };
        let s = golden(&BEDROCK_CONVERSE, &bytes);
        assert_eq!(s.tool_calls.len(), 1);
        let c = &s.tool_calls[0];
        assert_eq!(c.name, "get_weather");
        assert_eq!(c.id, "tooluse_yypYDr71TwCwByoyao4-Vg");
        let args: Value = serde_json::from_str(&c.arguments).unwrap();
        assert!(args.is_object(), "{}", c.arguments);
        assert_eq!(s.finish_reasons, vec![Some("tool_use".into())]);
    }

    #[test]
    fn converse_stream_reasoning_recording() {
        let Some(bytes) = recording("bedrock-converse-stream-reasoning.eventstream") else {
            return;
        };
        let s = golden(&BEDROCK_CONVERSE, &bytes);
        assert!(s.reasoning_chars > 0);
        assert!(!s.output_text[0].is_empty());
        assert_eq!(s.usage.unwrap().output_tokens, Some(73));
    }

    #[test]
    fn invoke_stream_anthropic_recording_takes_invocation_metrics() {
        let Some(bytes) = recording("bedrock-invoke-stream-anthropic.eventstream") else {
            return;
        };
        let s = golden(&BEDROCK_INVOKE, &bytes);
        assert_eq!(s.chunk_count, 28);
        assert_eq!(s.model.as_deref(), Some("claude-3-5-sonnet-20240620"));
        assert_eq!(s.id.as_deref(), Some("msg_bdrk_01UgUptJTW7LFg8dn1kcyjpz"));
        assert_eq!(s.tool_calls.len(), 2);
        assert_eq!(s.finish_reasons, vec![Some("tool_use".into())]);
        let u = s.usage.unwrap();
        // invocationMetrics (98), not message_delta's 130.
        assert_eq!((u.input_tokens, u.output_tokens), (Some(702), Some(98)));
        assert_eq!(s.provider_latency_ms, Some(3042));
        assert!(s.stream_ended);
    }

    #[test]
    fn cache_counters_in_both_spellings_are_input() {
        let s = BEDROCK_CONVERSE.summarize_body(
            br#"{"output":{"message":{"content":[{"text":"hi"}],"role":"assistant"}},"stopReason":"end_turn",
            "usage":{"cacheReadInputTokenCount":100,"cacheReadInputTokens":100,"cacheWriteInputTokenCount":20,"cacheWriteInputTokens":20,"inputTokens":5,"outputTokens":2,"totalTokens":127}}"#,
        );
        let u = s.usage.unwrap();
        assert_eq!(u.input_tokens, Some(125));
        assert_eq!(u.cache_read_input_tokens, Some(100));
        assert_eq!(u.cache_write_input_tokens, Some(20));
        if let Some(dir) = crate::stream::fixtures_for_tests::shared_dir() {
            for (name, tool) in [
                ("bedrock-converse-text.json", false),
                ("bedrock-converse-tool-use.json", true),
                ("bedrock-converse-guardrail-cache-usage.json", false),
            ] {
                let body = std::fs::read(dir.join(name)).unwrap();
                let s = BEDROCK_CONVERSE.summarize_body(&body);
                assert!(s.error.is_none() && s.usage.is_some(), "{name}");
                assert_eq!(s.tool_calls.len(), usize::from(tool), "{name}");
            }
            let body = std::fs::read(dir.join("bedrock-error-400-validation.json")).unwrap();
            let s = BEDROCK_CONVERSE.summarize_body(&body);
            assert!(s
                .error
                .unwrap()
                .message
                .unwrap()
                .contains("model identifier"));
        }
    }

    #[test]
    fn a_midstream_exception_is_an_error_with_its_type_and_a_bad_crc_stops_parsing() {
        let mut body = encode_event("messageStart", br#"{"role":"assistant"}"#);
        body.extend(encode_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":"Hel"}}"#,
        ));
        body.extend(encode_exception(
            "throttlingException",
            br#"{"message":"Too many tokens, please wait before trying again."}"#,
        ));
        let s = golden(&BEDROCK_CONVERSE, &body);
        let e = s.error.clone().unwrap();
        assert_eq!(e.code.as_deref(), Some("ThrottlingException"));
        assert!(e.message.unwrap().starts_with("Too many tokens"));
        assert!(!BEDROCK_CONVERSE.stream_complete(&s));
        let mut bad = encode_event("messageStart", br#"{"role":"assistant"}"#);
        let n = bad.len();
        bad[n - 5] ^= 0x20;
        let s = watch(&BEDROCK_CONVERSE, &bad, 4);
        assert!(s.parse_failed);
        assert_eq!(s.chunk_count, 0);
    }

    #[test]
    fn converse_request_facts_and_tool_results() {
        let body = serde_json::json!({
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
        "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather now",
            "inputSchema": {"json": {"type": "object"}}}}], "toolChoice": {"any": {}}},
        "messages": [
            {"role": "user", "content": [{"text": "Lyon?"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Lyon"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"t": 18}}]}}]}
        ]});
        let info = BEDROCK_CONVERSE.request_facts(
            body.as_object().unwrap(),
            Operation::Chat,
            true,
            &PromptHasher::from_secret(b"k"),
        );
        assert_eq!(info.max_tokens, Some(64));
        assert_eq!(info.temperature, Some(0.2));
        assert_eq!(info.top_p, Some(0.9));
        assert_eq!(info.stop, vec!["END".to_string()]);
        assert_eq!(
            info.tool_results,
            vec![("tooluse_1".into(), r#"{"t":18}"#.into())]
        );
        assert_eq!(info.forced_tool.as_deref(), Some("get_weather"));
        assert_eq!(
            info.tool_descriptions,
            vec![("get_weather".into(), "Weather now".into())]
        );
        assert_eq!(info.message_count, 3);
        let c = info.content.unwrap();
        assert_eq!(
            c.input_messages.unwrap()[1]["parts"][0]["type"],
            "tool_call"
        );
        // An Anthropic InvokeModel body reads as Anthropic's.
        let body = serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
            "messages": [{"role": "user", "content": "Hi"}]});
        let info = BEDROCK_INVOKE.request_facts(
            body.as_object().unwrap(),
            Operation::Chat,
            false,
            &PromptHasher::from_secret(b"k"),
        );
        assert_eq!(info.max_tokens, Some(100));
        assert_eq!(info.message_count, 1);
    }

    #[test]
    fn headers_carry_the_error_type_request_id_and_invoke_usage() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-amzn-errortype",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
                .parse()
                .unwrap(),
        );
        h.insert("x-amzn-requestid", "req-1".parse().unwrap());
        let s = BEDROCK_CONVERSE.header_summary(429, &h).unwrap();
        assert_eq!(
            s.error.unwrap().code.as_deref(),
            Some("ThrottlingException")
        );
        assert_eq!(s.id.as_deref(), Some("req-1"));
        h.insert("x-amzn-bedrock-input-token-count", "10".parse().unwrap());
        h.insert("x-amzn-bedrock-output-token-count", "3".parse().unwrap());
        let s = BEDROCK_INVOKE.header_summary(200, &h).unwrap();
        assert!(s.error.is_none());
        let u = s.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (Some(10), Some(3)));
        let body: Value =
            serde_json::from_str(&BEDROCK_CONVERSE.error_body("slow down", "x", "y", 429)).unwrap();
        assert_eq!(body["__type"], "ThrottlingException");
    }
}
