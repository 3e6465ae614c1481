//! Anthropic Messages API (`POST /v1/messages`), plain and streamed. Reference: Anthropic's
//! API reference, "Messages" and "Streaming Messages"; errors per "Errors".
//!
//! A stream is typed SSE events: `message_start` (id, model, input usage), then per content
//! block `content_block_start` / `content_block_delta` (`text_delta`, `input_json_delta`,
//! `thinking_delta`) / `content_block_stop`, then `message_delta` (stop reason and the
//! cumulative usage) and `message_stop`. `ping` keeps the connection alive; an `error` event
//! can arrive at any point. Usage is always reported: no injection.

use serde_json::{Map, Value};

use crate::vocab::prompt::PromptHasher;
use crate::vocab::provider::Provider;
use crate::vocab::request::{RequestContent, RequestInfo};
use crate::vocab::summary::{ResponseSummary, Usage};

use super::watch::{EventReader, SseWatcher};
use super::{f64_at, i64_at, str_at, strings_at, ApiPath, Dialect, Operation, StreamWatcher};

#[derive(Debug)]
pub struct AnthropicMessages;

impl Dialect for AnthropicMessages {
    fn name(&self) -> &'static str {
        "anthropic_messages"
    }

    fn mounts(&self) -> &'static [super::Mount] {
        &[super::Mount::V1]
    }

    fn recognise(&self, path: ApiPath<'_>, method: &http::Method) -> Option<Operation> {
        (method == http::Method::POST
            && !path.azure
            && path.path.trim_end_matches('/') == "messages")
            .then_some(Operation::Chat)
    }

    fn provider(&self) -> Option<Provider> {
        Some(Provider::Anthropic)
    }

    fn request_facts(
        &self,
        obj: &Map<String, Value>,
        _op: Operation,
        capture: bool,
        hasher: &PromptHasher,
    ) -> RequestInfo {
        let mut info = RequestInfo {
            model: str_at(obj, "model"),
            stream: obj.get("stream").and_then(Value::as_bool),
            temperature: f64_at(obj, "temperature"),
            top_p: f64_at(obj, "top_p"),
            max_tokens: i64_at(obj, "max_tokens"),
            stop: strings_at(obj, "stop_sequences"),
            top_k: f64_at(obj, "top_k"),
            tool_descriptions: crate::vocab::request::tool_descriptions(obj, |t| Some(t)),
            forced_tool: super::forced_tool(obj, |t| t.get("name")),
            conversation_id: obj
                .get("metadata")
                .and_then(|m| m.get("user_id"))
                .and_then(Value::as_str)
                .and_then(claude_code_session),
            ..Default::default()
        };
        let system = system_text(obj.get("system"));
        info.prompt_chars += system.chars().count() as u64;
        let messages = obj.get("messages").and_then(Value::as_array);
        for m in messages.into_iter().flatten() {
            info.message_count += 1;
            match m.get("content") {
                Some(Value::String(s)) => info.prompt_chars += s.chars().count() as u64,
                Some(Value::Array(blocks)) => {
                    for b in blocks {
                        info.prompt_chars += block_text(b).chars().count() as u64;
                        if b.get("type").and_then(Value::as_str) == Some("tool_result") {
                            if let Some(id) = b.get("tool_use_id").and_then(Value::as_str) {
                                info.tool_results.push((id.to_owned(), block_text(b)));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(m) = obj.get("messages") {
            info.prompt_hash = hasher.prompt_hash(&(m, obj.get("system")));
        }
        if capture {
            info.content = Some(content(obj, &system));
        }
        info
    }

    fn stream_watcher(&self, count_only: bool) -> Box<dyn StreamWatcher> {
        Box::new(SseWatcher::<MessagesReader>::new(count_only))
    }

    fn summarize_body(&self, body: &[u8]) -> ResponseSummary {
        super::summarize_object(body, |v, s| {
            if v.get("type").and_then(Value::as_str) == Some("error") {
                return error(v, s);
            }
            s.set_id_and_model(
                v.get("id").and_then(Value::as_str),
                v.get("model").and_then(Value::as_str),
            );
            for (i, b) in v
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        s.push_text(
                            0,
                            b.get("text").and_then(Value::as_str).unwrap_or(""),
                            false,
                        );
                    }
                    Some("thinking") => {
                        s.push_reasoning(b.get("thinking").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some("tool_use") => {
                        let id = b.get("id").and_then(Value::as_str).unwrap_or("");
                        let name = b.get("name").and_then(Value::as_str).unwrap_or("");
                        if let Some(k) = s.tool_call(i as u32, id, name, "function") {
                            let input = b.get("input").map(Value::to_string).unwrap_or_default();
                            s.push_arguments(k, &input, false);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(r) = v.get("stop_reason").and_then(Value::as_str) {
                s.set_finish_reason(0, r);
            }
            if let Some(u) = v.get("usage") {
                usage(u, s);
            }
        })
    }

    fn stream_complete(&self, s: &ResponseSummary) -> bool {
        s.stream_ended
    }

    /// `{"type":"error","error":{"type","message"}}` with Anthropic's error types.
    fn error_body(&self, message: &str, kind: &str, code: &str, _status: u16) -> String {
        let kind = match (kind, code) {
            (_, "not_found") => "not_found_error",
            (_, "request_too_large") => "request_too_large",
            (_, "timeout") => "timeout_error",
            ("invalid_request_error", _) => "invalid_request_error",
            _ => "api_error",
        };
        serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
            .to_string()
    }
}

/// Anthropic's models on Vertex AI: `POST /{v1|v1beta1}/projects/{p}/locations/{l}/
/// publishers/anthropic/models/{model}:rawPredict` (and `:streamRawPredict`), which carry
/// Messages bodies (with `anthropic_version` and no `model`) and answer in the Messages wire
/// format. Everything but the paths and the provider (`gcp.vertex_ai`) is [`AnthropicMessages`].
#[derive(Debug)]
pub struct VertexAnthropic;

impl Dialect for VertexAnthropic {
    fn name(&self) -> &'static str {
        "vertex_anthropic"
    }

    fn claim_path(&self, path: &str, method: &http::Method) -> Option<super::PathClaim> {
        let (rest, _) = super::gemini::vertex_publisher_path(path)?;
        let (model, verb) = rest
            .strip_prefix("publishers/anthropic/models/")?
            .split_once(':')?;
        if model.is_empty() || model.contains('/') {
            return None;
        }
        let post = method == http::Method::POST;
        Some(super::PathClaim {
            operation: (post && matches!(verb, "rawPredict" | "streamRawPredict"))
                .then_some(Operation::Chat),
            model: Some(model.to_owned()),
            stream: verb == "streamRawPredict",
        })
    }

    fn provider(&self) -> Option<Provider> {
        Some(Provider::VertexAi)
    }

    fn request_facts(
        &self,
        obj: &Map<String, Value>,
        op: Operation,
        capture: bool,
        hasher: &PromptHasher,
    ) -> RequestInfo {
        AnthropicMessages.request_facts(obj, op, capture, hasher)
    }

    fn stream_watcher(&self, count_only: bool) -> Box<dyn StreamWatcher> {
        AnthropicMessages.stream_watcher(count_only)
    }

    fn summarize_body(&self, body: &[u8]) -> ResponseSummary {
        AnthropicMessages.summarize_body(body)
    }

    fn stream_complete(&self, s: &ResponseSummary) -> bool {
        AnthropicMessages.stream_complete(s)
    }

    /// Vertex answers its own errors (auth, quota) in Google's shape.
    fn error_body(&self, message: &str, _kind: &str, _code: &str, status: u16) -> String {
        super::gemini::google_error_body(message, status)
    }
}

/// The session Claude Code names in `metadata.user_id`: a JSON string with `session_id`
/// (Claude Code 2.1.78 and later), or `user_{hash}_account_{uuid}_session_{uuid}` (earlier).
/// `None` for any other user id: an app's own user id is not a session.
fn claude_code_session(user_id: &str) -> Option<String> {
    if user_id.starts_with('{') {
        let v: Value = serde_json::from_str(user_id).ok()?;
        return v
            .get("session_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
    if !user_id.starts_with("user_") {
        return None;
    }
    let (_, session) = user_id.rsplit_once("_session_")?;
    (!session.is_empty()).then(|| session.to_owned())
}

/// `system`: a string or text blocks.
fn system_text(system: Option<&Value>) -> String {
    crate::dialect::parts::content_text(system)
}

/// The text of a content block: `text`, or a `tool_result`'s content (string or blocks).
fn block_text(b: &Value) -> String {
    match b.get("type").and_then(Value::as_str) {
        Some("tool_result") => crate::dialect::parts::content_text(b.get("content")),
        _ => b
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

fn content(obj: &Map<String, Value>, system: &str) -> RequestContent {
    let mut out = RequestContent::default();
    if !system.is_empty() {
        out.system_instructions = Some(serde_json::json!([{"type": "text", "content": system}]));
    }
    let mut input = Vec::new();
    for m in obj
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let parts: Vec<Value> = match m.get("content") {
            Some(Value::String(s)) => vec![serde_json::json!({"type": "text", "content": s})],
            Some(Value::Array(blocks)) => blocks
                .iter()
                .map(|b| match b.get("type").and_then(Value::as_str) {
                    Some("tool_use") => serde_json::json!({"type": "tool_call",
                        "id": b.get("id"), "name": b.get("name"), "arguments": b.get("input")}),
                    Some("tool_result") => serde_json::json!({"type": "tool_call_response",
                        "id": b.get("tool_use_id"), "response": block_text(b)}),
                    Some(kind @ ("image" | "document")) => media_block(b, kind),
                    Some("thinking") => serde_json::json!({"type": "reasoning",
                        "content": b.get("thinking").and_then(Value::as_str).unwrap_or("")}),
                    _ => serde_json::json!({"type": "text", "content": block_text(b)}),
                })
                .collect(),
            _ => Vec::new(),
        };
        input.push(serde_json::json!({"role": role, "parts": parts}));
    }
    out.input_messages = Some(Value::Array(input));
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let defs: Vec<Value> = tools
            .iter()
            .map(|t| {
                serde_json::json!({"type": "function", "name": t.get("name"),
                    "description": t.get("description"), "parameters": t.get("input_schema")})
            })
            .collect();
        out.tool_definitions = Some(Value::Array(defs));
    }
    out
}

/// An `image` or `document` block in the semconv part shapes: `source.type` `base64` → `blob`,
/// `url` → `uri`, `file` → `file` (by id).
fn media_block(b: &Value, kind: &str) -> Value {
    let modality = if kind == "image" { "image" } else { "document" };
    let src = b.get("source");
    let s = |k: &str| src.and_then(|v| v.get(k)).and_then(Value::as_str);
    match s("type") {
        Some("base64") => {
            crate::dialect::parts::blob_part(s("data").unwrap_or(""), s("media_type"), modality)
        }
        Some("url") => crate::dialect::parts::media_url_part(s("url").unwrap_or(""), modality),
        Some("file") => serde_json::json!({"type": "file", "modality": modality,
            "file_id": s("file_id").unwrap_or("")}),
        _ => serde_json::json!({"type": kind}),
    }
}

/// Reads `usage` (message_start's, message_delta's cumulative one, or a whole body's).
/// `gen_ai.usage.input_tokens` counts every input token, cached ones included (semconv), so
/// Anthropic's uncached `input_tokens` and its cache reads and writes are added up.
///
/// The last word wins per field: `message_delta`'s cumulative usage overrides what
/// `message_start` said for each count it carries (its `input_tokens` can be larger than the
/// start's, e.g. 43 then 61), and a count it leaves out keeps the earlier value, so a delta
/// with only `input_tokens` still adds the cache reads `message_start` reported.
fn usage(u: &Value, s: &mut ResponseSummary) {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    let usage = s.usage.get_or_insert_with(Usage::default);
    let (fresh, read, write) = (
        n("input_tokens"),
        n("cache_read_input_tokens"),
        n("cache_creation_input_tokens"),
    );
    if fresh.is_some() || read.is_some() || write.is_some() {
        let (old_read, old_write) = (
            usage.cache_read_input_tokens.unwrap_or(0),
            usage.cache_write_input_tokens.unwrap_or(0),
        );
        let old_fresh = usage
            .input_tokens
            .map(|t| t.saturating_sub(old_read + old_write));
        let fresh = fresh.or(old_fresh).unwrap_or(0);
        let read = read.or(usage.cache_read_input_tokens);
        let write = write.or(usage.cache_write_input_tokens);
        usage.input_tokens = Some(fresh + read.unwrap_or(0) + write.unwrap_or(0));
        usage.cache_read_input_tokens = read;
        usage.cache_write_input_tokens = write;
    }
    if let Some(o) = n("output_tokens") {
        usage.output_tokens = Some(o);
    }
}

fn error(v: &Value, s: &mut ResponseSummary) {
    let e = v.get("error").unwrap_or(v);
    let kind = e.get("type").and_then(Value::as_str);
    // Anthropic's error type is its code too (`rate_limit_error`, `overloaded_error`).
    s.set_error(e.get("message").and_then(Value::as_str), kind, kind);
}

/// Per-stream state: the tool call of each content block index.
#[derive(Default)]
pub(super) struct MessagesReader {
    blocks: Vec<(u64, usize)>,
}

impl EventReader for MessagesReader {
    fn event(
        &mut self,
        _event: Option<&str>,
        v: &Value,
        s: &mut ResponseSummary,
        count_only: bool,
    ) {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                if let Some(m) = v.get("message") {
                    s.set_id_and_model(
                        m.get("id").and_then(Value::as_str),
                        m.get("model").and_then(Value::as_str),
                    );
                    if let Some(u) = m.get("usage") {
                        usage(u, s);
                    }
                }
            }
            "content_block_start" => {
                let b = &v["content_block"];
                match b.get("type").and_then(Value::as_str) {
                    Some("tool_use") | Some("server_tool_use") => {
                        let id = b.get("id").and_then(Value::as_str).unwrap_or("");
                        let name = b.get("name").and_then(Value::as_str).unwrap_or("");
                        if b["type"] == "tool_use" {
                            if let Some(k) = s.tool_call(index as u32, id, name, "function") {
                                self.blocks.push((index, k));
                            }
                        }
                    }
                    Some("text") => {
                        s.push_text(
                            0,
                            b.get("text").and_then(Value::as_str).unwrap_or(""),
                            count_only,
                        );
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                let text = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        s.push_text(0, text("text"), count_only);
                    }
                    Some("thinking_delta") => s.push_reasoning(text("thinking")),
                    Some("input_json_delta") => {
                        if let Some((_, k)) = self.blocks.iter().find(|(i, _)| *i == index) {
                            s.push_arguments(*k, text("partial_json"), count_only);
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    s.set_finish_reason(0, r);
                }
                if let Some(u) = v.get("usage") {
                    usage(u, s);
                }
            }
            "message_stop" => s.stream_ended = true,
            "error" => error(v, s),
            // `ping` and `content_block_stop` carry nothing for telemetry; still events.
            _ => {}
        }
    }

    fn finish(&mut self, s: &mut ResponseSummary) {
        // A tool_use with no argument deltas sent `input: {}`: arguments are the empty object.
        for (_, k) in &self.blocks {
            if let Some(call) = s.tool_calls.get_mut(*k) {
                if call.arguments.is_empty() {
                    call.arguments.push_str("{}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .unwrap()
    }

    fn watch(stream: &[u8], split: usize) -> ResponseSummary {
        let mut w = AnthropicMessages.stream_watcher(false);
        for piece in stream.chunks(split) {
            w.feed(piece);
        }
        w.finish()
    }

    #[test]
    fn text_stream_with_ping_and_cache() {
        let s = fixture("anthropic-messages-text.sse");
        let whole = watch(&s, s.len());
        for split in [1, 3, 50] {
            assert_eq!(watch(&s, split), whole);
        }
        assert!(whole.stream_ended && !whole.parse_failed);
        assert_eq!(
            whole.output_text,
            vec!["Bonjour ! Comment puis-je aider ?".to_string()]
        );
        assert_eq!(whole.finish_reasons, vec![Some("end_turn".into())]);
        let u = whole.usage.unwrap();
        // 9 fresh + 100 read from cache + 20 written to it.
        assert_eq!(u.input_tokens, Some(129));
        assert_eq!(u.cache_read_input_tokens, Some(100));
        assert_eq!(u.cache_write_input_tokens, Some(20));
        assert_eq!(u.output_tokens, Some(12));
        assert_eq!(whole.model.as_deref(), Some("claude-haiku-4-5-20251001"));
    }

    /// The last word wins per count: `message_delta`'s cumulative usage overrides
    /// `message_start`'s (input 43 then 61, as Anthropic's recording
    /// `anthropic-messages-delta-input-tokens.sse` shows), and a count the delta leaves out
    /// (cache reads here) keeps the start's value.
    #[test]
    fn message_delta_usage_has_the_last_word() {
        let stream = concat!(
            "event: message_start\n",
            r#"data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-opus-4-5-20251101","content":[],"stop_reason":null,"usage":{"input_tokens":43,"cache_read_input_tokens":100,"cache_creation_input_tokens":0,"output_tokens":1}}}"#,
            "\n\nevent: content_block_start\n",
            r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            "\n\nevent: content_block_delta\n",
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"pong"}}"#,
            "\n\nevent: message_delta\n",
            r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":61,"output_tokens":2}}"#,
            "\n\nevent: message_stop\n",
            r#"data: {"type":"message_stop"}"#,
            "\n\n"
        );
        for split in [1, 17, stream.len()] {
            let s = watch(stream.as_bytes(), split);
            let u = s.usage.clone().unwrap();
            assert_eq!(
                u.input_tokens,
                Some(161),
                "61 fresh + 100 read; split {split}"
            );
            assert_eq!(u.cache_read_input_tokens, Some(100));
            assert_eq!(u.cache_write_input_tokens, Some(0));
            assert_eq!(u.output_tokens, Some(2));
            assert_eq!(s.finish_reasons, vec![Some("end_turn".into())]);
            assert_eq!(s.model.as_deref(), Some("claude-opus-4-5-20251101"));
        }
    }

    #[test]
    fn tool_use_stream() {
        let s = watch(&fixture("anthropic-messages-tool-use.sse"), 7);
        assert_eq!(s.tool_calls.len(), 1);
        let c = &s.tool_calls[0];
        assert_eq!(c.name, "get_weather");
        assert_eq!(c.arguments, r#"{"city": "Lyon"}"#);
        assert!(c.id.starts_with("toolu_"));
        assert_eq!(s.finish_reasons, vec![Some("tool_use".into())]);
    }

    #[test]
    fn errors_in_anthropics_shape() {
        let body: Value = serde_json::from_str(&AnthropicMessages.error_body(
            "upstream down",
            "proxy_error",
            "upstream_unreachable",
            502,
        ))
        .unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "api_error");
        let s = AnthropicMessages.summarize_body(
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert_eq!(s.error.unwrap().code.as_deref(), Some("rate_limit_error"));
    }

    #[test]
    fn claude_on_vertex_paths() {
        let c = VertexAnthropic
            .claim_path(
                "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
                &http::Method::POST,
            )
            .unwrap();
        assert_eq!(c.operation, Some(Operation::Chat));
        assert_eq!(c.model.as_deref(), Some("claude-sonnet-4-5@20250929"));
        assert!(c.stream);
        let d = super::super::claim(
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5:rawPredict",
            &http::Method::POST,
        )
        .map(|(d, _)| d.name());
        assert_eq!(d, Some("vertex_anthropic"));
    }

    #[test]
    fn claude_codes_session_in_metadata_user_id() {
        assert_eq!(
            claude_code_session(
                r#"{"device_id":"d1","account_uuid":"","session_id":"7d3f0c1e-4b7a-4c55-9a0e-2f1d6b8c9e01"}"#
            )
            .as_deref(),
            Some("7d3f0c1e-4b7a-4c55-9a0e-2f1d6b8c9e01")
        );
        assert_eq!(
            claude_code_session(
                "user_abc123_account__session_5b9e2a44-0c1d-4e6f-8a7b-1c2d3e4f5a6b"
            )
            .as_deref(),
            Some("5b9e2a44-0c1d-4e6f-8a7b-1c2d3e4f5a6b")
        );
        assert_eq!(claude_code_session("customer-42"), None);
        assert_eq!(claude_code_session(r#"{"device_id":"d1"}"#), None);
    }

    #[test]
    fn request_tool_results_close_calls() {
        let body = serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"}]}
        ]});
        let info = AnthropicMessages.request_facts(
            body.as_object().unwrap(),
            Operation::Chat,
            false,
            &PromptHasher::from_secret(b"k"),
        );
        assert_eq!(info.tool_results, vec![("toolu_1".into(), "18 C".into())]);
        assert_eq!(info.max_tokens, Some(100));
        assert_eq!(info.message_count, 3);
    }
}
