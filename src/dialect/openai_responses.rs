//! OpenAI Responses API (`POST /v1/responses`), plain and streamed. Reference: the OpenAI API
//! reference, "Responses" and "Streaming events".
//!
//! A stream is typed SSE events without `[DONE]`: `response.created`, `.in_progress`,
//! `response.output_item.added`/`.done`, `response.output_text.delta`,
//! `response.function_call_arguments.delta`, reasoning and refusal deltas, and one terminal
//! event, `response.completed`, `response.incomplete` or `response.failed`, which carries the
//! whole response with its `usage` (always there: no injection needed). An `error` event may
//! come before `response.failed`.

use serde_json::{Map, Value};

use crate::vocab::prompt::PromptHasher;
use crate::vocab::request::{RequestContent, RequestInfo};
use crate::vocab::summary::{ModalityUsage, ResponseSummary, Usage};

use super::watch::{EventReader, SseWatcher};
use super::{f64_at, i64_at, str_at, ApiPath, Dialect, Operation, StreamWatcher};

#[derive(Debug)]
pub struct OpenAiResponses;

impl Dialect for OpenAiResponses {
    fn name(&self) -> &'static str {
        "openai_responses"
    }

    fn mounts(&self) -> &'static [super::Mount] {
        &[super::Mount::V1, super::Mount::Azure]
    }

    fn recognise(&self, path: ApiPath<'_>, method: &http::Method) -> Option<Operation> {
        (method == http::Method::POST && path.path.trim_end_matches('/') == "responses")
            .then_some(Operation::Chat)
    }

    fn openai_api_type(&self, _op: Operation) -> Option<&'static str> {
        Some("responses")
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
            max_tokens: i64_at(obj, "max_output_tokens"),
            conversation_id: conversation_id(obj),
            previous_response_id: str_at(obj, "previous_response_id"),
            reasoning_level: obj
                .get("reasoning")
                .and_then(|r| r.get("effort"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            service_tier: str_at(obj, "service_tier"),
            tool_descriptions: crate::vocab::request::tool_descriptions(obj, |t| Some(t)),
            forced_tool: super::forced_tool(obj, |t| t.get("name")),
            ..Default::default()
        };
        let instructions = str_at(obj, "instructions");
        info.prompt_chars += instructions
            .as_deref()
            .map_or(0, |s| s.chars().count() as u64);
        match obj.get("input") {
            Some(Value::String(s)) => {
                info.message_count = 1;
                info.prompt_chars += s.chars().count() as u64;
            }
            Some(Value::Array(items)) => {
                info.message_count = items.len() as u64;
                for item in items {
                    info.prompt_chars += item_text(item).chars().count() as u64;
                    if item.get("type").and_then(Value::as_str) == Some("function_call_output") {
                        if let Some(id) = item.get("call_id").and_then(Value::as_str) {
                            info.tool_results
                                .push((id.to_owned(), output_text(item.get("output"))));
                        }
                    }
                }
            }
            _ => {}
        }
        if let Some(input) = obj.get("input") {
            info.prompt_hash = hasher.prompt_hash(&(input, &instructions));
        }
        if capture {
            info.content = Some(content(obj, instructions.as_deref()));
        }
        info
    }

    fn stream_watcher(&self, count_only: bool) -> Box<dyn StreamWatcher> {
        Box::new(SseWatcher::<ResponsesReader>::new(count_only))
    }

    fn summarize_body(&self, body: &[u8]) -> ResponseSummary {
        super::summarize_object(body, |v, s| {
            match v
                .get("error")
                .filter(|e| e.is_object() && v.get("output").is_none())
            {
                Some(e) => s.set_error(
                    e.get("message").and_then(Value::as_str),
                    e.get("type").and_then(Value::as_str),
                    e.get("code").and_then(Value::as_str),
                ),
                None => ResponsesReader::default().response(v, s, false, true),
            }
        })
    }

    fn stream_complete(&self, s: &ResponseSummary) -> bool {
        s.stream_ended
    }
}

/// `conversation` (an id or `{ "id" }`) or `previous_response_id`: both chain turns.
fn conversation_id(obj: &Map<String, Value>) -> Option<String> {
    match obj.get("conversation") {
        Some(Value::String(id)) => return Some(id.clone()),
        Some(Value::Object(c)) => {
            if let Some(id) = c.get("id").and_then(Value::as_str) {
                return Some(id.to_owned());
            }
        }
        _ => {}
    }
    str_at(obj, "previous_response_id")
}

/// The text of an input item: a message's `content` (string or `input_text` parts).
fn item_text(item: &Value) -> String {
    match item.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// A message item's content in the semconv part shapes: a string, or `input_text` /
/// `output_text` parts as text, `input_image` as a `uri` or `blob` part, `input_file` as a
/// `file` part (by id) or a `blob`.
fn item_parts(item: &Value) -> Vec<Value> {
    match item.get("content") {
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| {
                let s = |k: &str| p.get(k).and_then(Value::as_str);
                match s("type").unwrap_or("") {
                    "input_image" => match (s("image_url"), s("file_id")) {
                        (Some(url), _) => crate::dialect::parts::media_url_part(url, "image"),
                        (None, Some(id)) => {
                            serde_json::json!({"type": "file", "modality": "image", "file_id": id})
                        }
                        _ => serde_json::json!({"type": "input_image"}),
                    },
                    "input_file" => match (s("file_id"), s("file_data")) {
                        (Some(id), _) => {
                            serde_json::json!({"type": "file", "modality": "document", "file_id": id})
                        }
                        (None, Some(data)) => crate::dialect::parts::media_url_part(data, "document"),
                        _ => serde_json::json!({"type": "input_file"}),
                    },
                    _ => serde_json::json!({"type": "text",
                        "content": s("text").or_else(|| s("refusal")).unwrap_or("")}),
                }
            })
            .collect(),
        _ => vec![serde_json::json!({"type": "text", "content": item_text(item)})],
    }
}

/// A `function_call_output`'s `output`: a string, or parts with text.
fn output_text(output: Option<&Value>) -> String {
    match output {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Input items in the semconv message shape; `instructions` as system instructions.
fn content(obj: &Map<String, Value>, instructions: Option<&str>) -> RequestContent {
    let mut out = RequestContent::default();
    if let Some(i) = instructions {
        out.system_instructions = Some(serde_json::json!([{"type": "text", "content": i}]));
    }
    let messages: Vec<Value> = match obj.get("input") {
        Some(Value::String(s)) => {
            vec![serde_json::json!({"role": "user", "parts": [{"type": "text", "content": s}]})]
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item.get("type").and_then(Value::as_str) {
                Some("function_call_output") => serde_json::json!({"role": "tool", "parts": [{
                    "type": "tool_call_response",
                    "id": item.get("call_id"),
                    "response": output_text(item.get("output")),
                }]}),
                Some("function_call") => serde_json::json!({"role": "assistant", "parts": [{
                    "type": "tool_call",
                    "id": item.get("call_id"),
                    "name": item.get("name"),
                    "arguments": item.get("arguments"),
                }]}),
                _ => serde_json::json!({
                    "role": item.get("role").and_then(Value::as_str).unwrap_or("user"),
                    "parts": item_parts(item),
                }),
            })
            .collect(),
        _ => Vec::new(),
    };
    out.input_messages = Some(Value::Array(messages));
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let defs: Vec<Value> = tools
            .iter()
            .map(|t| {
                let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
                serde_json::json!({
                    "type": kind,
                    // Built-in tools (`web_search`, `file_search`) have no name: their type.
                    "name": t.get("name").and_then(Value::as_str).unwrap_or(kind),
                    "description": t.get("description"),
                    "parameters": t.get("parameters"),
                })
            })
            .collect();
        out.tool_definitions = Some(Value::Array(defs));
    }
    out
}

/// Per-stream state: function calls by item id (argument deltas name the item, not the call).
#[derive(Default)]
struct ResponsesReader {
    items: Vec<(String, usize)>,
}

impl ResponsesReader {
    /// A whole response object: `response.created` / `.in_progress` / `.queued`'s snapshot,
    /// the terminal event's, or a non-streamed body. Each later snapshot overrides what an
    /// earlier one said (id, model, service tier, usage, status): the terminal one describes
    /// the finished response (`created` says `"service_tier":"auto"`, `completed` the tier
    /// that served it).
    fn response(&mut self, r: &Value, s: &mut ResponseSummary, count_only: bool, whole: bool) {
        s.set_id_and_model(
            r.get("id").and_then(Value::as_str),
            r.get("model").and_then(Value::as_str),
        );
        s.set_service_tier(r.get("service_tier").and_then(Value::as_str));
        if let Some(u) = r.get("usage").filter(|u| u.is_object()) {
            let n = |v: &Value| v.as_u64();
            s.usage = Some(Usage {
                input_tokens: u.get("input_tokens").and_then(n),
                output_tokens: u.get("output_tokens").and_then(n),
                cache_read_input_tokens: u
                    .pointer("/input_tokens_details/cached_tokens")
                    .and_then(n),
                reasoning_output_tokens: u
                    .pointer("/output_tokens_details/reasoning_tokens")
                    .and_then(n),
                cache_write_input_tokens: None,
            });
            let d = |path: &str| u.pointer(path).and_then(n);
            s.usage_by_modality.update(ModalityUsage {
                text_input: d("/input_tokens_details/text_tokens"),
                image_input: d("/input_tokens_details/image_tokens"),
                audio_input: d("/input_tokens_details/audio_tokens"),
                text_output: d("/output_tokens_details/text_tokens"),
                image_output: d("/output_tokens_details/image_tokens"),
                audio_output: d("/output_tokens_details/audio_tokens"),
            });
        }
        if whole {
            // A non-streamed body: its output items are the reply.
            for (i, item) in r
                .get("output")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                self.output_item(item, i as u32, s, count_only, true);
            }
        }
        if let Some(status) = r.get("status").and_then(Value::as_str) {
            let reason = match status {
                "incomplete" => r
                    .pointer("/incomplete_details/reason")
                    .and_then(Value::as_str)
                    .unwrap_or("incomplete"),
                "failed" => "error",
                other => other,
            };
            if status != "in_progress" && status != "queued" {
                s.set_finish_reason(0, reason);
            }
        }
        if let Some(e) = r.get("error").filter(|e| e.is_object()) {
            s.set_error(
                e.get("message").and_then(Value::as_str),
                e.get("type").and_then(Value::as_str),
                e.get("code").and_then(Value::as_str),
            );
        }
    }

    /// An output item; function calls become tool calls (built-in tools run on OpenAI's side
    /// and are not the app's to execute, so they are not).
    fn output_item(
        &mut self,
        item: &Value,
        index: u32,
        s: &mut ResponseSummary,
        count_only: bool,
        whole: bool,
    ) {
        match item.get("type").and_then(Value::as_str) {
            Some("function_call") | Some("custom_tool_call") => {
                let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or("");
                let name = item.get("name").and_then(Value::as_str).unwrap_or("");
                let kind = if item["type"] == "custom_tool_call" {
                    "custom"
                } else {
                    "function"
                };
                if let Some(k) = s.tool_call(index, call_id, name, kind) {
                    if let Some(item_id) = item.get("id").and_then(Value::as_str) {
                        if !self.items.iter().any(|(id, _)| id == item_id) {
                            self.items.push((item_id.to_owned(), k));
                        }
                    }
                    // The finished item (or a whole body) carries the full arguments.
                    let args = item
                        .get("arguments")
                        .or_else(|| item.get("input"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if !args.is_empty() && (whole || item["status"] == "completed") {
                        s.tool_calls[k].arguments.clear();
                        s.push_arguments(k, args, count_only);
                    }
                }
            }
            Some("message") if whole => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = part
                        .get("text")
                        .or_else(|| part.get("refusal"))
                        .and_then(Value::as_str)
                    {
                        s.push_text(0, t, count_only);
                    }
                }
            }
            _ => {}
        }
    }
}

impl EventReader for ResponsesReader {
    fn event(
        &mut self,
        _event: Option<&str>,
        v: &Value,
        s: &mut ResponseSummary,
        count_only: bool,
    ) {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let str_of = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        match kind {
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(r) = v.get("response") {
                    self.response(r, s, count_only, false);
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                s.push_text(0, str_of("delta"), count_only);
            }
            "response.reasoning_text.delta" | "response.reasoning_summary_text.delta" => {
                s.push_reasoning(str_of("delta"));
            }
            "response.output_item.added" | "response.output_item.done" => {
                let index = v.get("output_index").and_then(Value::as_u64).unwrap_or(0) as u32;
                if let Some(item) = v.get("item") {
                    self.output_item(item, index, s, count_only, false);
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let item_id = str_of("item_id");
                if let Some((_, k)) = self.items.iter().find(|(id, _)| id == item_id) {
                    s.push_arguments(*k, str_of("delta"), count_only);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(r) = v.get("response") {
                    self.response(r, s, count_only, false);
                }
                s.stream_ended = true;
            }
            "error" => {
                let e = v.get("error").unwrap_or(v);
                s.set_error(
                    e.get("message").and_then(Value::as_str),
                    e.get("type").and_then(Value::as_str),
                    e.get("code").and_then(Value::as_str),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(stream: &[u8], split: usize) -> ResponseSummary {
        let mut w = OpenAiResponses.stream_watcher(false);
        for piece in stream.chunks(split) {
            w.feed(piece);
        }
        w.finish()
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn function_call_stream() {
        let s = fixture("openai-responses-stream-function-call.sse");
        let whole = watch(&s, s.len());
        for split in [1, 7, 64] {
            assert_eq!(watch(&s, split), whole, "split {split}");
        }
        assert!(whole.stream_ended && !whole.parse_failed);
        assert_eq!(whole.tool_calls.len(), 1);
        assert_eq!(whole.tool_calls[0].name, "get_weather");
        assert_eq!(whole.tool_calls[0].arguments, r#"{"city":"Lyon"}"#);
        assert!(whole.tool_calls[0].id.starts_with("call_"));
        let u = whole.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (Some(41), Some(17)));
        assert_eq!(u.reasoning_output_tokens, Some(0));
        assert_eq!(whole.finish_reasons, vec![Some("completed".into())]);
    }

    #[test]
    fn text_stream_and_error_stream() {
        let s = watch(&fixture("openai-responses-stream-text.sse"), 5);
        assert_eq!(s.output_text, vec!["Lyon is on the Rhône.".to_string()]);
        assert!(s.first_content_seen && s.stream_ended);
        assert_eq!(s.model.as_deref(), Some("gpt-4o-2024-08-06"));
        let e = watch(&fixture("openai-responses-error.sse"), 3);
        assert_eq!(
            e.error.as_ref().and_then(|e| e.code.as_deref()),
            Some("insufficient_quota")
        );
        assert_eq!(e.finish_reasons, vec![Some("error".into())]);
        assert!(e.stream_ended);
    }

    /// The last word wins: `response.created` / `.in_progress` say `auto` and carry no usage;
    /// the terminal event (`completed`, `incomplete` or `failed`) says which tier served the
    /// request, the model version and the usage. Facts from tests/fixtures'
    /// `openai-responses-stream-service-tier.sse` (learned from the Azure recording).
    #[test]
    fn the_terminal_event_has_the_last_word() {
        let s = fixture("openai-responses-stream-service-tier.sse");
        for split in [1, 9, s.len()] {
            let w = watch(&s, split);
            assert_eq!(w.service_tier.as_deref(), Some("default"), "split {split}");
            assert_eq!(w.model.as_deref(), Some("gpt-5.1-2025-11-13"));
            assert_eq!(w.id.as_deref(), Some("resp_llmtapTier0001"));
            assert_eq!(w.finish_reasons, vec![Some("completed".into())]);
            let u = w.usage.unwrap();
            assert_eq!((u.input_tokens, u.output_tokens), (Some(11), Some(9)));
        }
        let text = String::from_utf8(s).unwrap();
        for (terminal, status, reason) in [
            ("response.incomplete", "incomplete", "max_output_tokens"),
            ("response.failed", "failed", "error"),
        ] {
            let t = text
                .replace("response.completed", terminal)
                .replace(r#""status":"completed","background""#, &format!(r#""status":"{status}","background""#))
                .replace(r#""incomplete_details":null,"instructions":null,"max_output_tokens":16"#,
                    r#""incomplete_details":{"reason":"max_output_tokens"},"instructions":null,"max_output_tokens":16"#);
            let w = watch(t.as_bytes(), 13);
            assert_eq!(w.service_tier.as_deref(), Some("default"), "{terminal}");
            assert_eq!(w.model.as_deref(), Some("gpt-5.1-2025-11-13"), "{terminal}");
            assert_eq!(w.finish_reasons, vec![Some(reason.into())], "{terminal}");
            assert!(w.usage.is_some() && w.stream_ended, "{terminal}");
        }
    }

    #[test]
    fn request_facts_and_tool_results() {
        let body = serde_json::json!({
            "model": "gpt-4o", "stream": true, "instructions": "Be brief.",
            "previous_response_id": "resp_1", "max_output_tokens": 50,
            "input": [
                {"role": "user", "content": "Weather in Lyon?"},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "18 C"}
            ]
        });
        let obj = body.as_object().unwrap();
        let info = OpenAiResponses.request_facts(
            obj,
            Operation::Chat,
            true,
            &PromptHasher::from_secret(b"k"),
        );
        assert_eq!(info.model.as_deref(), Some("gpt-4o"));
        assert_eq!(info.conversation_id.as_deref(), Some("resp_1"));
        assert_eq!(info.max_tokens, Some(50));
        assert_eq!(info.tool_results, vec![("call_1".into(), "18 C".into())]);
        assert_eq!(info.message_count, 3);
        let c = info.content.unwrap();
        assert!(c
            .system_instructions
            .unwrap()
            .to_string()
            .contains("Be brief."));
        assert!(c
            .input_messages
            .unwrap()
            .to_string()
            .contains("tool_call_response"));
    }
}
