//! What an OpenAI Chat Completions, legacy Completions or Embeddings request body says: its
//! facts (model, parameters, prompt shape, tool results) and, with capture on, its content in
//! the semconv message shapes.

use serde_json::{Map, Value};

use crate::dialect::parts::{arguments_value, blob_part, content_text, media_url_part};
use crate::dialect::{forced_tool, strings_at};
use crate::vocab::operation::Operation;
use crate::vocab::prompt::PromptHasher;
use crate::vocab::request::{tool_descriptions, RequestContent, RequestInfo};

/// The facts of an OpenAI chat, completions or embeddings request body.
pub(super) fn facts(
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
    info.tool_descriptions = tool_descriptions(obj, |t| t.get("function"));
    info.forced_tool = forced_tool(obj, |t| t.get("function").and_then(|f| f.get("name")));
    info.stop = strings_at(obj, "stop");
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
        info.prompt_hash = hasher.prompt_hash(prompt);
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
            text => info.count_text_prompt(text),
        }
    }
    if capture {
        info.content = Some(capture_content(op, obj));
    }
    info
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

#[cfg(test)]
mod tests {
    use super::super::usage::inject_include_usage;
    use super::*;
    use crate::dialect::{parse_request, OpenAiChat};

    fn hasher() -> PromptHasher {
        PromptHasher::from_secret(b"test secret")
    }

    /// The request as the proxy reads it: the body's facts and its JSON object.
    fn parse(
        body: &[u8],
        op: Operation,
        capture: bool,
    ) -> Option<(RequestInfo, Map<String, Value>)> {
        parse_request(&OpenAiChat, body, op, capture, &hasher()).map(|p| (p.info, p.obj))
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
            parse_request(
                &OpenAiChat,
                b,
                Operation::Chat,
                false,
                &PromptHasher::from_secret(secret),
            )
            .unwrap()
            .info
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
        assert_ne!(with(b"k1"), crate::vocab::text::hex(unkeyed.as_ref()));
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
