//! Ollama's native API: `POST /api/chat`, `/api/generate` (NDJSON streams, streamed unless
//! the request says `"stream": false`) and `/api/embed`. Reference: Ollama's API docs
//! (`docs/api.md`). These paths sit at the server's root, so `/api/...` goes to the upstream
//! base URL's origin: one upstream `http://host:11434/v1` serves both Ollama surfaces.
//!
//! Each stream line is a JSON object; the last has `"done": true`, `done_reason`, and the
//! usage as `prompt_eval_count` / `eval_count`. Tool calls come whole in `message.tool_calls`
//! (no index, and in older versions no id). An error is `{"error": "..."}`.

use serde_json::{Map, Value};

use crate::config::Provider;
use crate::request::{PromptHasher, RequestContent, RequestInfo};
use crate::summary::{ResponseSummary, Usage};

use super::watch::{EventReader, NdjsonWatcher};
use super::{str_at, strings_at, ApiPath, Dialect, Operation, StreamWatcher};

#[derive(Debug)]
pub struct OllamaNative;

impl Dialect for OllamaNative {
    fn name(&self) -> &'static str {
        "ollama_native"
    }

    fn recognise(&self, path: ApiPath<'_>, method: &http::Method) -> Option<Operation> {
        if method != http::Method::POST {
            return None;
        }
        match path.path.trim_end_matches('/') {
            "api/chat" => Some(Operation::Chat),
            "api/generate" => Some(Operation::TextCompletion),
            "api/embed" | "api/embeddings" => Some(Operation::Embeddings),
            _ => None,
        }
    }

    fn provider(&self) -> Option<Provider> {
        Some(Provider::Ollama)
    }

    fn request_facts(
        &self,
        obj: &Map<String, Value>,
        op: Operation,
        capture: bool,
        hasher: &PromptHasher,
    ) -> RequestInfo {
        let options = obj.get("options").and_then(Value::as_object);
        let opt_f64 = |k: &str| options.and_then(|o| o.get(k)).and_then(Value::as_f64);
        let opt_i64 = |k: &str| options.and_then(|o| o.get(k)).and_then(Value::as_i64);
        let mut info = RequestInfo {
            model: str_at(obj, "model"),
            // Chat and generate stream unless told not to; embed never streams.
            stream: match op {
                Operation::Embeddings => None,
                _ => Some(obj.get("stream").and_then(Value::as_bool).unwrap_or(true)),
            },
            temperature: opt_f64("temperature"),
            top_p: opt_f64("top_p"),
            seed: opt_i64("seed"),
            max_tokens: opt_i64("num_predict"),
            stop: options.map(|o| strings_at(o, "stop")).unwrap_or_default(),
            top_k: opt_f64("top_k"),
            tool_descriptions: super::tool_descriptions(obj, |t| t.get("function")),
            ..Default::default()
        };
        let prompt_key = match op {
            Operation::Chat => "messages",
            Operation::TextCompletion => "prompt",
            Operation::Embeddings => "input",
        };
        let prompt = obj.get(prompt_key).or_else(|| obj.get("prompt"));
        if let Some(p) = prompt {
            let canonical = serde_json::to_vec(p).unwrap_or_default();
            info.prompt_hash = Some(hasher.hash(&canonical));
        }
        match prompt {
            Some(Value::Array(items)) if op == Operation::Chat => {
                for m in items {
                    info.message_count += 1;
                    let text = m.get("content").and_then(Value::as_str).unwrap_or("");
                    info.prompt_chars += text.chars().count() as u64;
                    if m.get("role").and_then(Value::as_str) == Some("tool") {
                        if let Some(id) = m.get("tool_call_id").and_then(Value::as_str) {
                            info.tool_results.push((id.to_owned(), text.to_owned()));
                        }
                    }
                }
            }
            Some(Value::String(s)) => {
                info.message_count = 1;
                info.prompt_chars = s.chars().count() as u64;
            }
            Some(Value::Array(items)) => {
                info.message_count = items.len() as u64;
                info.prompt_chars = items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.chars().count() as u64)
                    .sum();
            }
            _ => {}
        }
        if let Some(system) = obj.get("system").and_then(Value::as_str) {
            info.prompt_chars += system.chars().count() as u64;
        }
        if capture {
            info.content = Some(content(obj, op));
        }
        info
    }

    fn stream_watcher(&self, count_only: bool) -> Box<dyn StreamWatcher> {
        Box::new(NdjsonWatcher::<OllamaReader>::new(count_only))
    }

    fn summarize_body(&self, body: &[u8]) -> ResponseSummary {
        let mut s = ResponseSummary::default();
        match serde_json::from_slice::<Value>(body) {
            Ok(v) if v.is_object() => {
                OllamaReader.line(&v, &mut s, false);
            }
            _ => s.parse_failed = true,
        }
        s
    }

    fn stream_complete(&self, s: &ResponseSummary) -> bool {
        s.stream_ended
    }

    /// Ollama's error shape: `{"error": "..."}`.
    fn error_body(&self, message: &str, _kind: &str, _code: &str) -> String {
        serde_json::json!({ "error": message }).to_string()
    }
}

fn content(obj: &Map<String, Value>, op: Operation) -> RequestContent {
    let mut out = RequestContent::default();
    if let Some(system) = obj.get("system").and_then(Value::as_str) {
        out.system_instructions = Some(serde_json::json!([{"type": "text", "content": system}]));
    }
    let messages: Vec<Value> = match (op, obj.get("messages"), obj.get("prompt")) {
        (Operation::Chat, Some(Value::Array(ms)), _) => ms
            .iter()
            .map(|m| {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                let text = m.get("content").and_then(Value::as_str).unwrap_or("");
                let part = if role == "tool" {
                    serde_json::json!({"type": "tool_call_response",
                        "id": m.get("tool_call_id"), "response": text})
                } else {
                    serde_json::json!({"type": "text", "content": text})
                };
                serde_json::json!({"role": role, "parts": [part]})
            })
            .collect(),
        (_, _, Some(Value::String(p))) => {
            vec![serde_json::json!({"role": "user", "parts": [{"type": "text", "content": p}]})]
        }
        _ => Vec::new(),
    };
    out.input_messages = Some(Value::Array(messages));
    out
}

/// Reads NDJSON lines (and whole bodies, which are one such object).
#[derive(Default)]
struct OllamaReader;

impl OllamaReader {
    fn line(&mut self, v: &Value, s: &mut ResponseSummary, count_only: bool) {
        if let Some(e) = v.get("error") {
            let message = e
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string());
            s.set_error(Some(&message), None, None);
            return;
        }
        s.set_id_and_model(None, v.get("model").and_then(Value::as_str));
        if let Some(m) = v.get("message") {
            if let Some(t) = m.get("content").and_then(Value::as_str) {
                s.push_text(0, t, count_only);
            }
            if let Some(t) = m.get("thinking").and_then(Value::as_str) {
                s.push_reasoning(t);
            }
            for call in m
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let f = &call["function"];
                let name = f.get("name").and_then(Value::as_str).unwrap_or("");
                let id = call.get("id").and_then(Value::as_str).unwrap_or("");
                let index = f
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(s.tool_calls.len() as u64) as u32;
                // Index-less calls each start a new call: they come whole, never in pieces.
                let before = s.tool_calls.len();
                if let Some(k) = s.tool_call(index, id, name, "function") {
                    if k == before || id.is_empty() {
                        let args = f.get("arguments").map(Value::to_string).unwrap_or_default();
                        s.push_arguments(k, &args, count_only);
                    }
                }
            }
        }
        if let Some(t) = v.get("response").and_then(Value::as_str) {
            s.push_text(0, t, count_only);
        }
        if let Some(t) = v.get("thinking").and_then(Value::as_str) {
            s.push_reasoning(t);
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            s.stream_ended = true;
            if let Some(r) = v.get("done_reason").and_then(Value::as_str) {
                s.set_finish_reason(0, r);
            }
        }
        let n = |k: &str| v.get(k).and_then(Value::as_u64);
        if n("prompt_eval_count").is_some() || n("eval_count").is_some() {
            let u = s.usage.get_or_insert_with(Usage::default);
            if let Some(p) = n("prompt_eval_count") {
                u.input_tokens = Some(p);
            }
            if let Some(o) = n("eval_count") {
                u.output_tokens = Some(o);
            }
        }
        if v.get("embeddings").is_some() {
            s.stream_ended = true;
        }
    }
}

impl EventReader for OllamaReader {
    fn event(
        &mut self,
        _event: Option<&str>,
        v: &Value,
        s: &mut ResponseSummary,
        count_only: bool,
    ) {
        if v.is_object() {
            self.line(v, s, count_only);
        } else {
            s.parse_failed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_stream_at_every_split() {
        let stream = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/ollama-api-chat-stream.ndjson"),
        )
        .unwrap();
        let watch = |split: usize| {
            let mut w = OllamaNative.stream_watcher(false);
            for p in stream.chunks(split) {
                w.feed(p);
            }
            w.finish()
        };
        let whole = watch(stream.len());
        for split in [1, 2, 9, 100] {
            assert_eq!(watch(split), whole, "split {split}");
        }
        assert!(whole.stream_ended && !whole.parse_failed);
        assert_eq!(
            whole.output_text,
            vec!["Why do proxies love streams? They flow.".to_string()]
        );
        let u = whole.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (Some(14), Some(11)));
        assert_eq!(whole.finish_reasons, vec![Some("stop".into())]);
        assert_eq!(whole.model.as_deref(), Some("llama3.2"));
        assert_eq!(whole.chunk_count, 8);
    }

    #[test]
    fn tool_calls_without_index_or_id() {
        let line = br#"{"model":"qwen3","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{"x":1}}},{"function":{"name":"b","arguments":{}}}]},"done":false}"#;
        let mut w = OllamaNative.stream_watcher(false);
        w.feed(line);
        w.feed(b"\n");
        let s = w.finish();
        let names: Vec<&str> = s.tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(s.tool_calls[0].arguments, r#"{"x":1}"#);
        assert!(!s.stream_ended, "no done line: truncated");
    }

    #[test]
    fn streams_by_default() {
        let obj = serde_json::json!({"model": "llama3.2", "messages": []});
        let info = OllamaNative.request_facts(
            obj.as_object().unwrap(),
            Operation::Chat,
            false,
            &PromptHasher::from_secret(b"k"),
        );
        assert_eq!(info.stream, Some(true));
    }
}
