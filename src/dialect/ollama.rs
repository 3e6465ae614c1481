//! Ollama's native API: `POST /api/chat`, `/api/generate` (NDJSON streams, streamed unless
//! the request says `"stream": false`) and `/api/embed`. Reference: Ollama's API docs
//! (`docs/api.md`). These paths sit at the server's root, so `/api/...` goes to the upstream
//! base URL's origin: one upstream `http://host:11434/v1` serves both Ollama surfaces.
//!
//! Each stream line is a JSON object; the last has `"done": true`, `done_reason`, and the
//! usage as `prompt_eval_count` / `eval_count`. Tool calls come whole in `message.tool_calls`
//! (no index, and in older versions no id). An error is `{"error": "..."}`.

use serde_json::{Map, Value};

use crate::vocab::prompt::PromptHasher;
use crate::vocab::provider::Provider;
use crate::vocab::request::{RequestContent, RequestInfo};
use crate::vocab::summary::{ResponseSummary, Usage};

use super::watch::{EventReader, NdjsonWatcher};
use super::{str_at, strings_at, ApiPath, Dialect, Operation, StreamWatcher};

#[derive(Debug)]
pub struct OllamaNative;

impl Dialect for OllamaNative {
    fn name(&self) -> &'static str {
        "ollama_native"
    }

    fn mounts(&self) -> &'static [super::Mount] {
        &[super::Mount::ServerRoot]
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
            // `/api/embed` takes `dimensions` (truncates the vectors).
            dimensions: (op == Operation::Embeddings)
                .then(|| super::i64_at(obj, "dimensions"))
                .flatten(),
            top_k: opt_f64("top_k"),
            tool_descriptions: crate::vocab::request::tool_descriptions(obj, |t| t.get("function")),
            ..Default::default()
        };
        let prompt_key = match op {
            Operation::Chat | Operation::GenerateContent => "messages",
            Operation::TextCompletion => "prompt",
            Operation::Embeddings => "input",
        };
        let prompt = obj.get(prompt_key).or_else(|| obj.get("prompt"));
        if let Some(p) = prompt {
            info.prompt_hash = hasher.prompt_hash(p);
        }
        match prompt {
            Some(Value::Array(items)) if op == Operation::Chat => {
                for m in items {
                    info.message_count += 1;
                    let text = m.get("content").and_then(Value::as_str).unwrap_or("");
                    info.prompt_chars += text.chars().count() as u64;
                }
                info.tool_results = tool_results(items);
            }
            Some(text) => info.count_text_prompt(text),
            None => {}
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
        super::summarize_object(body, |v, s| OllamaReader.line(v, s, false))
    }

    fn stream_complete(&self, s: &ResponseSummary) -> bool {
        s.stream_ended
    }

    /// Ollama's error shape: `{"error": "..."}`.
    fn error_body(&self, message: &str, _kind: &str, _code: &str, _status: u16) -> String {
        serde_json::json!({ "error": message }).to_string()
    }
}

/// A call's arguments as canonical JSON (an object, or a JSON string holding one).
fn canonical_arguments(args: Option<&Value>) -> String {
    match args {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| s.clone()),
        Some(v) => v.to_string(),
        None => "{}".to_owned(),
    }
}

/// The key of a call in an assistant message's `tool_calls`: its `id`, else (Ollama's native
/// API sends none) its name-and-arguments key.
fn call_key(call: &Value) -> (String, String) {
    let f = &call["function"];
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let key = match call.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            crate::vocab::summary::unnamed_call_key(&name, &canonical_arguments(f.get("arguments")))
        }
    };
    (name, key)
}

/// `role: tool` messages close the calls of the latest assistant message before them: by
/// `tool_call_id` when sent, else by `tool_name` (Ollama's field), else in order.
fn tool_results(messages: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Vec<(String, String, bool)> = Vec::new();
    for m in messages {
        match m.get("role").and_then(Value::as_str) {
            Some("assistant") => {
                open = m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let (name, key) = call_key(c);
                        (name, key, false)
                    })
                    .collect();
            }
            Some("tool") => {
                let text = m.get("content").and_then(Value::as_str).unwrap_or("");
                if let Some(id) = m.get("tool_call_id").and_then(Value::as_str) {
                    if let Some(slot) = open.iter_mut().find(|(_, k, _)| k == id) {
                        slot.2 = true;
                    }
                    out.push((id.to_owned(), text.to_owned()));
                    continue;
                }
                let name = m
                    .get("tool_name")
                    .or_else(|| m.get("name"))
                    .and_then(Value::as_str);
                let slot = open
                    .iter_mut()
                    .find(|(n, _, done)| !done && name.is_none_or(|name| n == name));
                if let Some(slot) = slot {
                    slot.2 = true;
                    out.push((slot.1.clone(), text.to_owned()));
                }
            }
            _ => {}
        }
    }
    out
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
                let mut parts = vec![part];
                // `images`: base64 strings beside the text.
                for img in m
                    .get("images")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(b64) = img.as_str() {
                        parts.push(crate::dialect::parts::blob_part(b64, None, "image"));
                    }
                }
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let f = &call["function"];
                    parts.push(
                        serde_json::json!({"type": "tool_call", "id": call.get("id"),
                        "name": f.get("name").and_then(Value::as_str).unwrap_or(""),
                        "arguments": f.get("arguments")}),
                    );
                }
                serde_json::json!({"role": role, "parts": parts})
            })
            .collect(),
        (_, _, Some(Value::String(p))) => {
            vec![serde_json::json!({"role": "user", "parts": [{"type": "text", "content": p}]})]
        }
        _ => Vec::new(),
    };
    out.input_messages = Some(Value::Array(messages));
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let defs: Vec<Value> = tools
            .iter()
            .map(|t| {
                let f = t.get("function");
                let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
                serde_json::json!({"type": kind,
                    "name": f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or(kind),
                    "description": f.and_then(|f| f.get("description")),
                    "parameters": f.and_then(|f| f.get("parameters"))})
            })
            .collect();
        out.tool_definitions = Some(Value::Array(defs));
    }
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
                // No id (the native API sends none): the name-and-arguments key, which the
                // next request's assistant message repeats, so the `role: tool` result closes it.
                let (_, key) = call_key(call);
                let id = key.as_str();
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
        // `/api/embed` answers `embeddings: [[...], ...]`; the legacy `/api/embeddings`
        // answers one vector as `embedding: [...]`. Both end the response.
        let first_vector = match (v.get("embeddings"), v.get("embedding")) {
            (Some(Value::Array(vs)), _) => Some(vs.first().and_then(Value::as_array)),
            (_, Some(Value::Array(one))) => Some(Some(one)),
            _ => None,
        };
        if let Some(first) = first_vector {
            s.stream_ended = true;
            if let Some(d) = first.filter(|d| !d.is_empty()) {
                s.embedding_dimensions = Some(d.len() as u64);
            }
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

    /// The last word wins: the `done` line's model, reason and counts describe the response.
    #[test]
    fn the_done_line_has_the_last_word() {
        let lines = concat!(
            r#"{"model":"qwen3","created_at":"2026-12-01T10:00:00Z","message":{"role":"assistant","content":"Hi"},"done":false}"#,
            "\n",
            r#"{"model":"qwen3:8b","created_at":"2026-12-01T10:00:01Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","prompt_eval_count":12,"eval_count":5}"#,
            "\n"
        );
        let mut w = OllamaNative.stream_watcher(false);
        w.feed(lines.as_bytes());
        let s = w.finish();
        assert_eq!(s.model.as_deref(), Some("qwen3:8b"));
        assert_eq!(s.finish_reasons, vec![Some("length".into())]);
        let u = s.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (Some(12), Some(5)));
    }

    /// Every embeddings shape Ollama answers with: `/api/embed`'s `embeddings` (a list of
    /// vectors) and the legacy `/api/embeddings`' single `embedding`.
    #[test]
    fn embedding_dimensions_of_both_shapes() {
        let embed = OllamaNative.summarize_body(
            br#"{"model":"nomic-embed-text","embeddings":[[0.1,0.2,0.3],[0.4,0.5,0.6]],"prompt_eval_count":2}"#,
        );
        assert_eq!(embed.embedding_dimensions, Some(3));
        let legacy = OllamaNative.summarize_body(br#"{"embedding":[0.5,-0.25,0.125,1.0]}"#);
        assert_eq!(legacy.embedding_dimensions, Some(4));
        assert!(!legacy.parse_failed && legacy.stream_ended);
        let empty = OllamaNative.summarize_body(br#"{"embeddings":[]}"#);
        assert_eq!(empty.embedding_dimensions, None);
    }

    #[test]
    fn id_less_calls_close_by_tool_name_else_in_order() {
        let line = br#"{"model":"qwen3","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{"x":1}}},{"function":{"name":"b","arguments":{}}}]},"done":false}"#;
        let mut w = OllamaNative.stream_watcher(false);
        w.feed(line);
        w.feed(b"\n");
        let s = w.finish();
        assert!(s
            .tool_calls
            .iter()
            .all(|c| crate::vocab::summary::is_unnamed_call(&c.id)));
        let body = serde_json::json!({"model": "qwen3", "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "a", "arguments": {"x": 1}}},
                {"function": {"name": "b", "arguments": {}}}]},
            {"role": "tool", "tool_name": "b", "content": "B"},
            {"role": "tool", "content": "A"}
        ]});
        let info = OllamaNative.request_facts(
            body.as_object().unwrap(),
            Operation::Chat,
            false,
            &PromptHasher::from_secret(b"k"),
        );
        assert_eq!(
            info.tool_results,
            vec![
                (s.tool_calls[1].id.clone(), "B".to_string()),
                (s.tool_calls[0].id.clone(), "A".to_string())
            ]
        );
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
