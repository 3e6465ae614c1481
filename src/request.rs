//! What an inference request body tells us (model, parameters, prompt shape, tool results),
//! and the one rewrite llmtap makes to it: `stream_options.include_usage` for usage on streams.

use serde_json::{Map, Value};

use crate::dialect::Operation;
use crate::vocab::limits::{Limit, MAX_STOP_SEQUENCES, MAX_TOOL_RESULTS};

/// Facts read from a request body. Content is kept only when capture is on.
#[derive(Debug, Default, Clone)]
pub struct RequestInfo {
    pub model: Option<String>,
    pub stream: Option<bool>,
    pub include_usage: Option<bool>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<i64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Vec<String>,
    /// `n`, as sent (the span carries it only when it is not 1).
    pub choice_count: Option<i64>,
    /// `top_k` (vLLM, Ollama and other OpenAI-compatible servers accept it).
    pub top_k: Option<f64>,
    /// `reasoning_effort` (or `reasoning.effort`), the exact string sent.
    pub reasoning_level: Option<String>,
    /// `gen_ai.output.type` from `response_format.type`: `text`, `json` (`json_object`,
    /// `json_schema`), or the type as sent.
    pub output_type: Option<String>,
    /// `service_tier`, as sent (`auto` included).
    pub service_tier: Option<String>,
    /// Embeddings: `dimensions`, when sent.
    pub dimensions: Option<i64>,
    /// The request's function tools as (name, description), for `gen_ai.tool.description` on
    /// the `execute_tool` spans of the calls the response asks for. Bounded.
    pub tool_descriptions: Vec<(String, String)>,
    /// The one function the request forces the model to call, when it does (see
    /// [`forced_tool`](crate::dialect::forced_tool)): its calls are the structured output.
    pub forced_tool: Option<String>,
    /// Characters of all message content (or prompt/input text).
    pub prompt_chars: u64,
    pub message_count: u64,
    /// Keyed hash (hex) of the canonical JSON of the messages/prompt/input; see [`PromptHasher`].
    pub prompt_hash: Option<String>,
    /// `encoding_format` of an embeddings request (`float`, `base64`).
    pub encoding_formats: Vec<String>,
    /// A conversation the request continues (Responses `conversation` / `previous_response_id`,
    /// the session in Claude Code's `metadata.user_id`).
    pub conversation_id: Option<String>,
    /// Responses `previous_response_id`: `gen_ai.request.previous_response.id` (genai `main`,
    /// #372).
    pub previous_response_id: Option<String>,
    /// `role: tool` messages: (tool_call_id, result text).
    pub tool_results: Vec<(String, String)>,
    /// Semconv-shaped content, filled only when capture is on.
    pub content: Option<RequestContent>,
}

impl RequestInfo {
    /// Applies the storage bounds (docs/limits.md) before the facts are kept anywhere:
    /// identifiers cut to [`MAX_IDENTIFIER_CHARS`](crate::vocab::limits::MAX_IDENTIFIER_CHARS),
    /// at most [`MAX_TOOL_RESULTS`] tool results (the last ones: the new results of a long
    /// conversation) with their text kept only when `capture` is on, at most
    /// [`MAX_STOP_SEQUENCES`] stop sequences. Returns the bounds that were hit.
    pub fn bound(&mut self, capture: bool) -> Vec<Limit> {
        use crate::vocab::limits::truncate;
        let mut cut = false;
        let mut hit = Vec::new();
        for s in [
            &mut self.model,
            &mut self.reasoning_level,
            &mut self.output_type,
            &mut self.service_tier,
            &mut self.conversation_id,
        ]
        .into_iter()
        .flatten()
        {
            cut |= truncate(s);
        }
        for (name, _) in &mut self.tool_descriptions {
            cut |= truncate(name);
        }
        if self.tool_results.len() > MAX_TOOL_RESULTS {
            let extra = self.tool_results.len() - MAX_TOOL_RESULTS;
            self.tool_results.drain(..extra);
            hit.push(Limit::ToolResults);
        }
        for (id, text) in &mut self.tool_results {
            cut |= truncate(id);
            if !capture {
                *text = String::new();
            }
        }
        self.tool_results.shrink_to_fit();
        if self.stop.len() > MAX_STOP_SEQUENCES {
            self.stop.truncate(MAX_STOP_SEQUENCES);
            cut = true;
        }
        for s in self.stop.iter_mut().chain(&mut self.encoding_formats) {
            cut |= truncate(s);
        }
        if cut {
            hit.push(Limit::Identifier);
        }
        hit
    }
}

/// Captured content in the semconv JSON shapes, not yet redacted or truncated (that happens
/// at export, per destination).
#[derive(Debug, Default, Clone)]
pub struct RequestContent {
    pub input_messages: Option<Value>,
    pub system_instructions: Option<Value>,
    pub tool_definitions: Option<Value>,
}

/// Tools whose description is kept, and the longest description kept (characters).
pub(crate) const MAX_TOOL_DESCRIPTIONS: usize = 128;
pub(crate) const MAX_TOOL_DESCRIPTION_CHARS: usize = 1024;

/// Fingerprints prompts for `llmtap.prompt.hash` with HMAC-SHA-256 (RFC 2104) under a
/// per-deployment secret. A plain SHA-256 of a short prompt ("Hello") can be reversed by
/// hashing guesses; a keyed hash cannot without the secret. Replicas that share the secret
/// (`LLMTAP_PROMPT_HASH_KEY`) produce the same hash for the same prompt; without one, each
/// process draws a random key and hashes group within that process only.
pub struct PromptHasher(ring::hmac::Key);

/// The environment variable holding the prompt-hash secret.
pub const PROMPT_HASH_KEY_ENV: &str = "LLMTAP_PROMPT_HASH_KEY";

impl PromptHasher {
    pub fn from_secret(secret: &[u8]) -> PromptHasher {
        PromptHasher(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    /// A hasher with a random 256-bit key from the OS.
    pub fn random() -> PromptHasher {
        use ring::rand::SecureRandom;
        let mut secret = [0u8; 32];
        if ring::rand::SystemRandom::new().fill(&mut secret).is_err() {
            // No OS randomness: fall back to time and address entropy rather than fail the
            // proxy; the hash is a grouping key, not a credential.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            secret[..16].copy_from_slice(&t.to_le_bytes());
            let addr = &secret as *const _ as usize as u128;
            secret[16..].copy_from_slice(&addr.to_le_bytes());
        }
        PromptHasher::from_secret(&secret)
    }

    /// The secret from `LLMTAP_PROMPT_HASH_KEY` when set, else a random one.
    pub fn from_env(env: &dyn crate::config::Env) -> PromptHasher {
        match env.get(PROMPT_HASH_KEY_ENV) {
            Some(secret) => PromptHasher::from_secret(secret.as_bytes()),
            None => PromptHasher::random(),
        }
    }

    /// Lowercase hex HMAC-SHA-256 of `data` (64 characters).
    pub fn hash(&self, data: &[u8]) -> String {
        hex(ring::hmac::sign(&self.0, data).as_ref())
    }
}

impl std::fmt::Debug for PromptHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PromptHasher(<secret>)")
    }
}

/// Parses an OpenAI chat, completions or embeddings body. `None` when it is not a JSON
/// object: it is forwarded untouched anyway.
pub fn parse(
    body: &[u8],
    op: Operation,
    capture: bool,
    hasher: &PromptHasher,
) -> Option<(RequestInfo, Map<String, Value>)> {
    let (obj, _) = json_object(body)?;
    let info = facts(&obj, op, capture, hasher);
    Some((info, obj))
}

/// A body read as a JSON object: strictly, else (`true`) through [`lenient_json`]. `None`
/// for a body that is not a JSON object either way.
pub fn json_object(body: &[u8]) -> Option<(Map<String, Value>, bool)> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Some((obj, false)),
        Ok(_) => None,
        Err(_) => match serde_json::from_slice::<Value>(&lenient_json(body)?).ok()? {
            Value::Object(obj) => Some((obj, true)),
            _ => None,
        },
    }
}

/// Valid JSON (RFC 8259) that serde_json refuses, made readable: a number whose magnitude
/// overflows `f64` (`1e999`, which Python's and JavaScript's parsers read as infinity)
/// becomes the largest finite `f64` of its sign, and an escaped lone surrogate (`\ud800`,
/// which RFC 8259 §8.2 allows and most parsers accept) becomes `\ufffd`. `None` when nothing
/// needed changing (the body is invalid for another reason). Only for reading facts: the
/// body forwarded upstream is always the client's own.
pub fn lenient_json(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut changed = false;
    let mut i = 0;
    let hex4 = |at: usize| -> Option<u32> {
        let h = body.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    while i < body.len() {
        let b = body[i];
        if b == b'"' {
            // A string: copy it, fixing lone surrogate escapes.
            out.push(b);
            i += 1;
            while i < body.len() {
                let c = body[i];
                if c == b'\\' && body.get(i + 1) == Some(&b'u') {
                    match hex4(i + 2) {
                        Some(0xD800..=0xDBFF) => {
                            let paired = body.get(i + 6..i + 8) == Some(b"\\u")
                                && matches!(hex4(i + 8), Some(0xDC00..=0xDFFF));
                            if paired {
                                out.extend_from_slice(&body[i..i + 12]);
                                i += 12;
                            } else {
                                out.extend_from_slice(b"\\ufffd");
                                changed = true;
                                i += 6;
                            }
                            continue;
                        }
                        Some(0xDC00..=0xDFFF) => {
                            out.extend_from_slice(b"\\ufffd");
                            changed = true;
                            i += 6;
                            continue;
                        }
                        _ => {}
                    }
                }
                if c == b'\\' {
                    out.extend_from_slice(&body[i..(i + 2).min(body.len())]);
                    i += 2;
                    continue;
                }
                out.push(c);
                i += 1;
                if c == b'"' {
                    break;
                }
            }
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < body.len()
                && matches!(body[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            {
                i += 1;
            }
            let num = &body[start..i];
            let overflows = std::str::from_utf8(num)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(f64::is_infinite);
            if overflows {
                if num.first() == Some(&b'-') {
                    out.push(b'-');
                }
                out.extend_from_slice(b"1.7976931348623157e308");
                changed = true;
            } else {
                out.extend_from_slice(num);
            }
            continue;
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

/// The facts of an OpenAI chat, completions or embeddings request body.
pub fn facts(
    obj: &Map<String, Value>,
    op: Operation,
    capture: bool,
    hasher: &PromptHasher,
) -> RequestInfo {
    let mut info = RequestInfo {
        model: obj.get("model").and_then(Value::as_str).map(str::to_owned),
        stream: obj.get("stream").and_then(Value::as_bool),
        include_usage: obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool),
        temperature: obj.get("temperature").and_then(Value::as_f64),
        top_p: obj.get("top_p").and_then(Value::as_f64),
        max_tokens: obj
            .get("max_completion_tokens")
            .or_else(|| obj.get("max_tokens"))
            .and_then(Value::as_i64),
        frequency_penalty: obj.get("frequency_penalty").and_then(Value::as_f64),
        presence_penalty: obj.get("presence_penalty").and_then(Value::as_f64),
        seed: obj.get("seed").and_then(Value::as_i64),
        choice_count: obj.get("n").and_then(Value::as_i64),
        top_k: obj.get("top_k").and_then(Value::as_f64),
        reasoning_level: obj
            .get("reasoning_effort")
            .or_else(|| obj.get("reasoning").and_then(|r| r.get("effort")))
            .and_then(Value::as_str)
            .map(str::to_owned),
        output_type: obj
            .get("response_format")
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .map(|t| match t {
                "json_object" | "json_schema" => "json".to_owned(),
                other => other.to_owned(),
            }),
        service_tier: obj
            .get("service_tier")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Default::default()
    };
    info.tool_descriptions = obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let f = t.get("function")?;
            let name = f.get("name")?.as_str()?;
            let description = f.get("description")?.as_str()?;
            let description: String = description
                .chars()
                .take(MAX_TOOL_DESCRIPTION_CHARS)
                .collect();
            Some((name.to_owned(), description))
        })
        .take(MAX_TOOL_DESCRIPTIONS)
        .collect();
    info.forced_tool =
        crate::dialect::forced_tool(obj, |t| t.get("function").and_then(|f| f.get("name")));
    match obj.get("stop") {
        Some(Value::String(s)) => info.stop = vec![s.clone()],
        Some(Value::Array(a)) => {
            info.stop = a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        }
        _ => {}
    }
    if op == Operation::Embeddings {
        if let Some(f) = obj.get("encoding_format").and_then(Value::as_str) {
            info.encoding_formats = vec![f.to_owned()];
        }
        info.dimensions = obj.get("dimensions").and_then(Value::as_i64);
    }
    let prompt_key = match op {
        Operation::Chat | Operation::GenerateContent => "messages",
        Operation::TextCompletion => "prompt",
        Operation::Embeddings => "input",
    };
    if let Some(prompt) = obj.get(prompt_key) {
        // serde_json's map is ordered by key, so re-serializing gives a canonical form:
        // the same prompt hashes the same whatever the client's key order or spacing.
        let canonical = serde_json::to_vec(prompt).unwrap_or_default();
        info.prompt_hash = Some(hasher.hash(&canonical));
        match prompt {
            Value::Array(items) if op == Operation::Chat => {
                info.message_count = items.len() as u64;
                for m in items {
                    let text_len = content_text(m.get("content")).chars().count() as u64;
                    info.prompt_chars += text_len;
                    if m.get("role").and_then(Value::as_str) == Some("tool") {
                        if let Some(id) = m.get("tool_call_id").and_then(Value::as_str) {
                            info.tool_results
                                .push((id.to_owned(), content_text(m.get("content"))));
                        }
                    }
                }
            }
            Value::String(s) => {
                info.message_count = 1;
                info.prompt_chars = s.chars().count() as u64;
            }
            Value::Array(items) => {
                info.message_count = items.len() as u64;
                info.prompt_chars = items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.chars().count() as u64)
                    .sum();
            }
            _ => {}
        }
    }
    if capture {
        info.content = Some(capture_content(op, obj));
    }
    info
}

/// Text of a message's `content`: a string, or the text parts of an array of parts.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Converts the request into the semconv message shapes (`role` + `parts`).
fn capture_content(op: Operation, obj: &Map<String, Value>) -> RequestContent {
    let mut out = RequestContent::default();
    match op {
        Operation::Chat | Operation::GenerateContent => {
            // System and developer messages stay in the input messages: the conventions
            // give system instructions their own attribute only when the API carries them
            // apart from the messages (Anthropic `system`, Responses `instructions`).
            let mut input = Vec::new();
            for m in obj
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                let text = content_text(m.get("content"));
                let mut parts = Vec::new();
                if role == "tool" {
                    parts.push(serde_json::json!({
                        "type": "tool_call_response",
                        "id": m.get("tool_call_id"),
                        "response": text,
                    }));
                } else if let Some(Value::Array(items)) = m.get("content") {
                    // Parts as sent: text, images (`uri` / `blob`), audio, files.
                    parts.extend(items.iter().map(chat_part));
                } else if !text.is_empty() {
                    parts.push(serde_json::json!({"type": "text", "content": text}));
                }
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let f = call.get("function");
                    parts.push(serde_json::json!({
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": f.and_then(|f| f.get("name")),
                        "arguments": f.and_then(|f| f.get("arguments")).map(arguments_value),
                    }));
                }
                input.push(serde_json::json!({"role": role, "parts": parts}));
            }
            out.input_messages = Some(Value::Array(input));
            if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
                let defs: Vec<Value> = tools
                    .iter()
                    .map(|t| {
                        let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
                        // `function` tools name it under `function`, `custom` ones under
                        // `custom`; the schema requires a name, so a tool without one goes
                        // by its type.
                        let f = t.get("function").or_else(|| t.get(kind));
                        let name = f
                            .and_then(|f| f.get("name"))
                            .and_then(Value::as_str)
                            .unwrap_or(kind);
                        serde_json::json!({
                            "type": kind,
                            "name": name,
                            "description": f.and_then(|f| f.get("description")),
                            "parameters": f.and_then(|f| f.get("parameters")),
                        })
                    })
                    .collect();
                out.tool_definitions = Some(Value::Array(defs));
            }
        }
        Operation::TextCompletion | Operation::Embeddings => {
            let key = if op == Operation::Embeddings {
                "input"
            } else {
                "prompt"
            };
            let texts: Vec<Value> = match obj.get(key) {
                Some(Value::String(s)) => vec![Value::String(s.clone())],
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            let parts: Vec<Value> = texts
                .into_iter()
                .map(|t| serde_json::json!({"type": "text", "content": t}))
                .collect();
            out.input_messages = Some(serde_json::json!([{"role": "user", "parts": parts}]));
        }
    }
    out
}

/// An image (or other media) referenced by URL, in the semconv part shapes: a `data:` URL
/// becomes a `blob` part (`mime_type` and the base64 `content`), any other URL a `uri` part.
/// `modality` is the schema's `Modality` (`image`, `audio`, `video`, `document`).
pub fn media_url_part(url: &str, modality: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((meta, data)) = rest.split_once(',') {
            let mime = meta.split(';').next().filter(|m| !m.is_empty());
            return blob_part(data, mime, modality);
        }
    }
    serde_json::json!({"type": "uri", "modality": modality, "uri": url})
}

/// Inline media in the semconv `blob` part shape (`content` is the base64 text as sent).
pub fn blob_part(base64: &str, mime_type: Option<&str>, modality: &str) -> Value {
    serde_json::json!({"type": "blob", "modality": modality, "mime_type": mime_type,
        "content": base64})
}

/// One Chat Completions content part in the semconv shape: `text`, `image_url` (→ `uri` or
/// `blob`), `input_audio` (→ audio `blob`), `file` (→ `file` part by id, or a `blob`).
/// Other part types keep their `type` as a generic part.
fn chat_part(p: &Value) -> Value {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    match p.get("type").and_then(Value::as_str).unwrap_or("") {
        "text" => serde_json::json!({"type": "text", "content": s(p.get("text"))}),
        "image_url" => {
            let url = p
                .get("image_url")
                .and_then(|i| i.get("url").or(Some(i)))
                .and_then(Value::as_str)
                .unwrap_or("");
            media_url_part(url, "image")
        }
        "input_audio" => {
            let a = p.get("input_audio");
            let format = a.and_then(|a| a.get("format")).and_then(Value::as_str);
            let mime = format.map(|f| format!("audio/{f}"));
            blob_part(&s(a.and_then(|a| a.get("data"))), mime.as_deref(), "audio")
        }
        "file" => {
            let f = p.get("file");
            match f.and_then(|f| f.get("file_id")).and_then(Value::as_str) {
                Some(id) => {
                    serde_json::json!({"type": "file", "modality": "document", "file_id": id})
                }
                None => media_url_part(&s(f.and_then(|f| f.get("file_data"))), "document"),
            }
        }
        other => serde_json::json!({"type": if other.is_empty() { "unknown" } else { other }}),
    }
}

/// Tool-call `arguments` as the message schema wants them: the JSON they encode (an object,
/// usually) when the string parses, else the string as sent.
pub fn arguments_value(arguments: &Value) -> Value {
    match arguments {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| arguments.clone()),
        other => other.clone(),
    }
}

/// Returns the body to send upstream with `stream_options.include_usage: true`, or `None`
/// when no rewrite is needed (not streaming, or the client already asked for usage).
///
/// When the client sent no `stream_options`, the member is spliced in right after the opening
/// brace so every other byte of the client's body is kept as sent.
pub fn inject_include_usage(body: &[u8], obj: &Map<String, Value>) -> Option<Vec<u8>> {
    if obj.get("stream").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    match obj.get("stream_options") {
        None | Some(Value::Null) if !obj.contains_key("stream_options") => {
            let brace = body.iter().position(|&b| b == b'{')?;
            let mut out = Vec::with_capacity(body.len() + 40);
            out.extend_from_slice(&body[..=brace]);
            out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
            if !obj.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(&body[brace + 1..]);
            Some(out)
        }
        Some(Value::Object(o)) if o.get("include_usage").and_then(Value::as_bool) == Some(true) => {
            None
        }
        _ => {
            // Rare: stream_options present without include_usage (or null). Re-serialize.
            let mut obj = obj.clone();
            let opts = obj
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if !opts.is_object() {
                *opts = Value::Object(Map::new());
            }
            if let Value::Object(o) = opts {
                o.insert("include_usage".into(), Value::Bool(true));
            }
            serde_json::to_vec(&obj).ok()
        }
    }
}

use crate::vocab::text::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_json_reads_what_other_parsers_accept() {
        let b = br#"{"model":"m","stream":true,"temperature":1e999,"x":-2E400,"messages":[{"role":"user","content":"a\ud800b \ud83d\ude00 \udc00"}]}"#;
        assert!(serde_json::from_slice::<Value>(b).is_err());
        let (obj, lenient) = json_object(b).unwrap();
        assert!(lenient);
        assert_eq!(obj["model"], "m");
        assert_eq!(obj["temperature"].as_f64(), Some(f64::MAX));
        assert_eq!(obj["x"].as_f64(), Some(-f64::MAX));
        assert_eq!(
            obj["messages"][0]["content"],
            "a\u{fffd}b \u{1f600} \u{fffd}"
        );
        // Valid input needs nothing; invalid input stays invalid.
        assert!(lenient_json(br#"{"a":1.5e3,"b":"\u00e9"}"#).is_none());
        assert!(json_object(br#"{"a":1e999"#).is_none());
        assert_eq!(json_object(br#"{"a":1}"#).map(|(_, l)| l), Some(false));
    }

    #[test]
    fn stored_facts_are_bounded() {
        let long = "m".repeat(10_000);
        let mut info = RequestInfo {
            model: Some(long.clone()),
            tool_results: (0..1000)
                .map(|i| (format!("{long}{i}"), "r".repeat(100)))
                .collect(),
            stop: vec![long.clone(); 40],
            ..Default::default()
        };
        assert_eq!(info.bound(false), [Limit::ToolResults, Limit::Identifier]);
        assert_eq!(info.model.as_deref().map(str::len), Some(257));
        assert_eq!(info.tool_results.len(), MAX_TOOL_RESULTS);
        assert!(info
            .tool_results
            .iter()
            .all(|(id, t)| id.len() == 257 && t.is_empty()));
        assert_eq!(info.stop.len(), MAX_STOP_SEQUENCES);
        let mut small = RequestInfo {
            model: Some("gpt-4o".into()),
            tool_results: vec![("call_1".into(), "42".into())],
            ..Default::default()
        };
        assert!(small.bound(true).is_empty());
        assert_eq!(small.tool_results[0].1, "42");
    }

    fn hasher() -> PromptHasher {
        PromptHasher::from_secret(b"test secret")
    }

    fn parse(
        body: &[u8],
        op: Operation,
        capture: bool,
    ) -> Option<(RequestInfo, Map<String, Value>)> {
        super::parse(body, op, capture, &hasher())
    }

    fn obj(body: &[u8]) -> Map<String, Value> {
        parse(body, Operation::Chat, false).unwrap().1
    }

    #[test]
    fn injection_splices_and_keeps_the_rest() {
        let body = br#"{"model":"m","stream":true,"messages":[]}"#;
        let out = inject_include_usage(body, &obj(body)).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}"#
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn no_injection_when_not_streaming_or_already_asked() {
        let b = br#"{"model":"m","messages":[]}"#;
        assert!(inject_include_usage(b, &obj(b)).is_none());
        let b = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        assert!(inject_include_usage(b, &obj(b)).is_none());
        let b = br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#;
        let out = inject_include_usage(b, &obj(b)).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn prompt_facts() {
        let b = br#"{"model":"gpt","temperature":0.5,"max_tokens":7,"stop":"x","messages":[
            {"role":"system","content":"be nice"},
            {"role":"user","content":[{"type":"text","text":"hi there"}]},
            {"role":"tool","tool_call_id":"call_1","content":"42"}]}"#;
        let (info, _) = parse(b, Operation::Chat, true).unwrap();
        assert_eq!(info.model.as_deref(), Some("gpt"));
        assert_eq!(info.message_count, 3);
        assert_eq!(info.prompt_chars, 7 + 8 + 2);
        assert_eq!(info.max_tokens, Some(7));
        assert_eq!(info.stop, vec!["x".to_string()]);
        assert_eq!(info.tool_results, vec![("call_1".into(), "42".into())]);
        assert_eq!(info.prompt_hash.as_ref().unwrap().len(), 64);
        let c = info.content.unwrap();
        // Chat completions carry the system prompt as a message: it stays one.
        assert!(c.system_instructions.is_none());
        let input = c.input_messages.unwrap();
        assert_eq!(input[0]["role"], "system");
        assert_eq!(input[0]["parts"][0]["content"], "be nice");
        assert!(input.to_string().contains("tool_call_response"));
        // Same messages with different spacing/key order hash the same.
        let b2 = br#"{"messages":[{"content":"be nice","role":"system"},{"role":"user","content":[{"text":"hi there","type":"text"}]},{"tool_call_id":"call_1","role":"tool","content":"42"}],"model":"other"}"#;
        let (info2, _) = parse(b2, Operation::Chat, false).unwrap();
        assert_eq!(
            info2.prompt_hash,
            parse(b, Operation::Chat, false).unwrap().0.prompt_hash
        );
    }

    #[test]
    fn non_json_is_none() {
        assert!(parse(b"not json", Operation::Chat, false).is_none());
        assert!(parse(b"[1,2]", Operation::Chat, false).is_none());
    }

    #[test]
    fn prompt_hash_is_keyed() {
        let b = br#"{"model":"m","messages":[{"role":"user","content":"Hello"}]}"#;
        let with = |secret: &[u8]| {
            super::parse(
                b,
                Operation::Chat,
                false,
                &PromptHasher::from_secret(secret),
            )
            .unwrap()
            .0
            .prompt_hash
            .unwrap()
        };
        // Same secret, same hash (replicas sharing LLMTAP_PROMPT_HASH_KEY group together).
        assert_eq!(with(b"k1"), with(b"k1"));
        assert_ne!(with(b"k1"), with(b"k2"));
        // Not the unkeyed SHA-256 of the canonical prompt, which anyone could recompute:
        // sha256('[{"content":"Hello","role":"user"}]').
        let unkeyed = ring::digest::digest(
            &ring::digest::SHA256,
            br#"[{"content":"Hello","role":"user"}]"#,
        );
        assert_ne!(with(b"k1"), hex(unkeyed.as_ref()));
        // RFC 4231 test case 2: HMAC-SHA-256 with key "Jefe".
        assert_eq!(
            PromptHasher::from_secret(b"Jefe").hash(b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Two random hashers disagree.
        assert_ne!(
            PromptHasher::random().hash(b"x"),
            PromptHasher::random().hash(b"x")
        );
        assert!(!format!("{:?}", PromptHasher::from_secret(b"k1")).contains("k1"));
    }

    #[test]
    fn request_attributes_and_tool_call_arguments_as_objects() {
        let b = br#"{"model":"m","n":2,"top_k":40,"reasoning_effort":"low","service_tier":"auto",
            "response_format":{"type":"json_schema","json_schema":{}},
            "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather in a city"}}],
            "messages":[{"role":"assistant","tool_calls":[
                {"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"c2","type":"function","function":{"name":"get_weather","arguments":"not json"}}]}]}"#;
        let (info, _) = parse(b, Operation::Chat, true).unwrap();
        assert_eq!(info.choice_count, Some(2));
        assert_eq!(info.top_k, Some(40.0));
        assert_eq!(info.reasoning_level.as_deref(), Some("low"));
        assert_eq!(info.service_tier.as_deref(), Some("auto"));
        assert_eq!(info.output_type.as_deref(), Some("json"));
        assert_eq!(
            info.tool_descriptions,
            vec![("get_weather".to_string(), "Weather in a city".to_string())]
        );
        let input = info.content.unwrap().input_messages.unwrap();
        assert_eq!(input[0]["parts"][0]["arguments"]["city"], "Paris");
        assert_eq!(input[0]["parts"][1]["arguments"], "not json");
    }

    #[test]
    fn embeddings_encoding_format() {
        let b = br#"{"model":"e","input":"hi","encoding_format":"base64","dimensions":256}"#;
        let (info, _) = parse(b, Operation::Embeddings, false).unwrap();
        assert_eq!(info.encoding_formats, ["base64"]);
        assert_eq!(info.dimensions, Some(256));
        let b = br#"{"model":"e","input":"hi"}"#;
        assert!(parse(b, Operation::Embeddings, false)
            .unwrap()
            .0
            .encoding_formats
            .is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Any JSON text as a request body is parsed (or not) without a panic, and the usage
        /// splice either declines or yields JSON.
        #[test]
        fn any_body_never_panics(text in "[\\[\\]{}:,\"a-z0-9 .truefalsn-]{0,200}") {
            for op in [Operation::Chat, Operation::TextCompletion, Operation::Embeddings] {
                if let Some((_, obj)) = parse(text.as_bytes(), op, true) {
                    if let Some(out) = inject_include_usage(text.as_bytes(), &obj) {
                        proptest::prop_assert!(serde_json::from_slice::<Value>(&out).is_ok(), "{}", text);
                    }
                }
            }
        }

        /// Generated request objects (messages of any shape) never panic the parser.
        #[test]
        fn any_request_object_never_panics(
            model in proptest::option::of(".{0,20}"),
            stream in proptest::option::of(proptest::prelude::any::<bool>()),
            contents in proptest::collection::vec(".{0,20}", 0..5),
            roles in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just("user"), proptest::strategy::Just("tool"),
                proptest::strategy::Just("system"), proptest::strategy::Just("assistant")], 0..5),
        ) {
            let messages: Vec<Value> = roles.iter().zip(contents.iter().chain(std::iter::repeat(&String::new())))
                .map(|(r, c)| serde_json::json!({"role": r, "content": c, "tool_call_id": c}))
                .collect();
            let body = serde_json::json!({"model": model, "stream": stream, "messages": messages,
                "prompt": contents, "input": contents}).to_string();
            for op in [Operation::Chat, Operation::TextCompletion, Operation::Embeddings] {
                if let Some((_, obj)) = parse(body.as_bytes(), op, true) {
                    if let Some(out) = inject_include_usage(body.as_bytes(), &obj) {
                        proptest::prop_assert!(serde_json::from_slice::<Value>(&out).is_ok());
                    }
                }
            }
        }
    }
}
