//! The mock's answers on Google's Gemini API, as the Developer API
//! (`/{v1beta|v1}/models/{model}:{method}`) and Vertex AI
//! (`/{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}`)
//! serve them: `generateContent`, `streamGenerateContent` (SSE with `?alt=sse`, else a JSON
//! array sent element by element), `countTokens`, `embedContent`, `batchEmbedContents`, and
//! errors in Google's shape (`{"error":{"code","message","status"}}`).
//!
//! The shapes follow real recordings: SSE events framed `data: {...}\r\n\r\n` with no event
//! names and no `[DONE]`; cumulative `usageMetadata` on every chunk, `candidatesTokenCount`
//! only once there is answer text; `modelVersion` and `responseId` on every chunk; function
//! calls whole in one part each. Models named `gemini-3*` give their calls ids (as Gemini 3
//! does); older ones give none. The `reasoning` scenario adds a thought-summary part and
//! `thoughtsTokenCount`. Everything derives from the request, like the other endpoints.

use axum::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::chat::{reply_pieces, sample_arguments, tokens_for_chars, Shape, REPLY_WORDS};
use super::wire::{self, hash_json, Reply, ReplyBody, EVENT_STREAM, JSON};

/// Function calls made when the request offers functions.
const MAX_FUNCTION_CALLS: usize = 2;
/// Thought tokens the `reasoning` scenario reports.
const THOUGHT_TOKENS: u64 = 48;

/// A Gemini method the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeminiMethod {
    Generate,
    Stream,
    CountTokens,
    Embed,
    BatchEmbed,
}

/// A Gemini call: the model and the method the path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GeminiCall {
    pub model: String,
    pub method: GeminiMethod,
}

/// `Some` for a path under Google's prefixes: the call, or a Google-shaped 404.
pub(crate) fn classify(method: &Method, path: &str) -> Option<Result<GeminiCall, Reply>> {
    let (version, rest) = path.strip_prefix('/')?.split_once('/')?;
    let named = match version {
        "v1beta" | "v1alpha" => rest.strip_prefix("models/"),
        "v1" | "v1beta1" if rest.starts_with("projects/") => rest
            .split_once("/publishers/google/models/")
            .map(|(_, m)| m),
        "v1" => rest.strip_prefix("models/").filter(|m| m.contains(':')),
        _ => return None,
    };
    if version == "v1" && named.is_none() && !rest.starts_with("projects/") {
        return None;
    }
    let not_found = || Some(Err(error(StatusCode::NOT_FOUND, path)));
    let Some((model, verb)) = named.and_then(|n| n.split_once(':')) else {
        return not_found();
    };
    let m = match (method.as_str(), verb) {
        ("POST", "generateContent") => GeminiMethod::Generate,
        ("POST", "streamGenerateContent") => GeminiMethod::Stream,
        ("POST", "countTokens") => GeminiMethod::CountTokens,
        ("POST", "embedContent") => GeminiMethod::Embed,
        ("POST", "batchEmbedContents") => GeminiMethod::BatchEmbed,
        _ => return not_found(),
    };
    if model.is_empty() {
        return not_found();
    }
    Some(Ok(GeminiCall {
        model: model.to_owned(),
        method: m,
    }))
}

/// Google's error envelope for `status`, as `google-genai` parses it.
pub(crate) fn error(status: StatusCode, what: &str) -> Reply {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 | 529 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    let message = match name {
        "NOT_FOUND" => format!(
            "{what} is not found for API version v1beta, or is not supported for \
             generateContent. Call ModelService.ListModels to see the list of available \
             models and their supported methods."
        ),
        "RESOURCE_EXHAUSTED" => "Resource has been exhausted (e.g. check quota).".to_owned(),
        other => format!("llmtap mock: scripted {other}"),
    };
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": name}});
    Reply::json(status, Bytes::from(pretty(&body)), None)
}

/// Google's bodies are pretty-printed with two spaces.
fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

/// Google's SSE JSON: a space after each `:`, none after `,`.
fn google_json(v: &Value) -> String {
    let compact = String::from_utf8(wire::to_vec(v)).unwrap_or_default();
    // Separators only: string contents are JSON-escaped, so `":` never occurs inside one.
    compact.replace("\":", "\": ")
}

fn parts_text(v: &Value) -> usize {
    v.get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .map(|t| t.chars().count())
        .sum()
}

/// Lower-cases OpenAPI-style `STRING` types so the shared argument sampler reads them.
fn lowercase_types(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("type", Value::String(t)) => (k.clone(), Value::String(t.to_lowercase())),
                    _ => (k.clone(), lowercase_types(v)),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The mock's answer to one Gemini call.
pub(crate) fn answer(
    call: &GeminiCall,
    body: &Map<String, Value>,
    query: Option<&str>,
    shape: &Shape,
) -> Reply {
    let contents = body.get("contents").cloned().unwrap_or(Value::Null);
    let hash = hash_json(&contents) ^ wire::fnv1a(call.model.as_bytes());
    let system_chars = body
        .get("systemInstruction")
        .or_else(|| body.get("system_instruction"))
        .map_or(0, parts_text);
    let prompt_chars: usize = contents
        .as_array()
        .into_iter()
        .flatten()
        .map(parts_text)
        .sum::<usize>()
        + system_chars;
    let prompt_tokens = tokens_for_chars(prompt_chars).max(1);
    match call.method {
        GeminiMethod::CountTokens => {
            let v = json!({"totalTokens": prompt_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]});
            return Reply::json(StatusCode::OK, Bytes::from(pretty(&v)), Some(hash));
        }
        GeminiMethod::Embed | GeminiMethod::BatchEmbed => return embed(call, body),
        GeminiMethod::Generate | GeminiMethod::Stream => {}
    }
    let id = format!("{:016x}", wire::mix(hash));
    let response_id: String = id.chars().take(22).collect();
    let last = contents.as_array().and_then(|c| c.last());
    let results = last
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .map_or(0, |parts| {
            parts
                .iter()
                .filter(|p| p.get("functionResponse").is_some())
                .count()
        });
    let offered: Vec<(String, Option<Value>)> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|d| {
            let params = d
                .get("parameters")
                .or_else(|| d.get("parametersJsonSchema"))
                .map(lowercase_types);
            Some((d.get("name")?.as_str()?.to_owned(), params))
        })
        .collect();
    let with_ids = call.model.starts_with("gemini-3");
    // One text piece per chunk, or the function calls in one chunk each.
    let mut chunks: Vec<Value> = Vec::new();
    if results > 0 {
        let sentence = format!(
            "Got {results} tool result{}; here is the final answer from the llmtap mock.",
            if results == 1 { "" } else { "s" }
        );
        let words: Vec<&str> = sentence.split_whitespace().collect();
        let pieces = reply_pieces(&words, shape.chunks.unwrap_or(words.len()));
        chunks.extend(pieces.into_iter().map(|t| json!({"text": t})));
    } else if !offered.is_empty() {
        for (i, (name, params)) in offered.into_iter().take(MAX_FUNCTION_CALLS).enumerate() {
            let args: Value =
                serde_json::from_str(&sample_arguments(params.as_ref())).unwrap_or(json!({}));
            let mut fc = json!({"name": name, "args": args});
            if with_ids {
                fc["id"] = json!(format!("{:08x}", wire::mix(hash ^ (i as u64 + 1)) as u32));
            }
            chunks.push(json!({"functionCall": fc}));
        }
    } else {
        let count = shape.chunks.unwrap_or(REPLY_WORDS.len());
        chunks.extend(
            reply_pieces(&REPLY_WORDS, count)
                .into_iter()
                .map(|t| json!({"text": t})),
        );
    }
    let thoughts = shape.reasoning.then_some(THOUGHT_TOKENS);
    let usage = |candidates: u64| {
        let mut u = json!({"promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens + candidates + thoughts.unwrap_or(0),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]});
        if candidates > 0 {
            u["candidatesTokenCount"] = json!(candidates);
        }
        if let Some(t) = thoughts {
            u["thoughtsTokenCount"] = json!(t);
        }
        u
    };
    let part_chars = |p: &Value| -> usize {
        match p.get("text").and_then(Value::as_str) {
            Some(t) => t.chars().count(),
            None => p.to_string().chars().count(),
        }
    };
    let response = |parts: Vec<Value>, finish: bool, candidates: u64| {
        let mut cand = json!({"content": {"parts": parts, "role": "model"}});
        if finish {
            cand["finishReason"] = json!("STOP");
        }
        cand["index"] = json!(0);
        json!({"candidates": [cand], "usageMetadata": usage(candidates),
            "modelVersion": call.model, "responseId": response_id})
    };
    let thought_part = || json!({"text": "**Planning the answer**\n\nA short scripted reply will do.", "thought": true});
    if call.method == GeminiMethod::Generate {
        let total: usize = chunks.iter().map(part_chars).sum();
        let mut parts = Vec::new();
        if shape.reasoning {
            parts.push(thought_part());
        }
        // Text pieces join into one part, as a whole answer has them.
        let text: String = chunks
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        if !text.is_empty() {
            parts.push(json!({"text": text}));
        }
        parts.extend(chunks.into_iter().filter(|p| p.get("text").is_none()));
        let v = response(parts, true, tokens_for_chars(total));
        return Reply::json(StatusCode::OK, Bytes::from(pretty(&v)), Some(hash));
    }
    let mut events: Vec<Value> = Vec::new();
    if shape.reasoning {
        events.push(response(vec![thought_part()], false, 0));
    }
    let mut seen = 0;
    let n = chunks.len();
    for (i, part) in chunks.into_iter().enumerate() {
        seen += part_chars(&part);
        events.push(response(vec![part], i + 1 == n, tokens_for_chars(seen)));
    }
    let sse = query
        .unwrap_or("")
        .split('&')
        .any(|p| p == "alt=sse" || p == "$alt=sse");
    if sse {
        let frames = events
            .iter()
            .map(|e| Bytes::from(format!("data: {}\r\n\r\n", google_json(e))))
            .collect();
        return Reply {
            status: StatusCode::OK,
            content_type: EVENT_STREAM,
            request_id: Some(hash),
            headers: Vec::new(),
            body: ReplyBody::Events(frames),
        };
    }
    // A JSON array, one element per write: `[{...}`, `,\r\n{...}`, ..., `]`.
    let last = events.len().saturating_sub(1);
    let frames = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let json = String::from_utf8(pretty(e)).unwrap_or_default();
            let lead = if i == 0 { "[" } else { "\n,\r\n" };
            let tail = if i == last { "\n]" } else { "" };
            Bytes::from(format!("{lead}{json}{tail}"))
        })
        .collect();
    Reply {
        status: StatusCode::OK,
        content_type: JSON,
        request_id: Some(hash),
        headers: Vec::new(),
        body: ReplyBody::Events(frames),
    }
}

/// `embedContent` → `{embedding: {values}}`; `batchEmbedContents` → `{embeddings: [...]}`,
/// eight dimensions (or `outputDimensionality`) per vector.
fn embed(call: &GeminiCall, body: &Map<String, Value>) -> Reply {
    let requests: Vec<Value> = match body.get("requests") {
        Some(Value::Array(r)) => r.clone(),
        _ => vec![Value::Object(body.clone())],
    };
    let hash = hash_json(&Value::Array(requests.clone())) ^ wire::fnv1a(call.model.as_bytes());
    let vector = |i: usize, r: &Value| {
        let dims = r
            .get("outputDimensionality")
            .and_then(Value::as_u64)
            .unwrap_or(8)
            .min(3072) as usize;
        let seed = wire::mix(hash.wrapping_add(i as u64));
        let values: Vec<f64> = (0..dims)
            .map(|k| (seed.rotate_left(k as u32 * 7) & 0xff) as f64 / 255.0 - 0.5)
            .collect();
        json!({"values": values})
    };
    let v = if call.method == GeminiMethod::BatchEmbed {
        let all: Vec<Value> = requests
            .iter()
            .enumerate()
            .map(|(i, r)| vector(i, r))
            .collect();
        json!({"embeddings": all})
    } else {
        json!({"embedding": vector(0, &requests[0])})
    };
    Reply::json(StatusCode::OK, Bytes::from(pretty(&v)), Some(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn paths() {
        let c = classify(
            &Method::POST,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.model, "gemini-2.5-flash");
        assert_eq!(c.method, GeminiMethod::Stream);
        let c = classify(
            &Method::POST,
            "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.model, "gemini-2.5-pro");
        assert!(classify(&Method::POST, "/v1/chat/completions").is_none());
        assert!(classify(&Method::GET, "/v1/models/gpt-4o").is_none());
        let r = classify(&Method::POST, "/v1beta/models/x:unknownMethod")
            .unwrap()
            .unwrap_err();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn array_stream_is_valid_json_when_joined() {
        let call = GeminiCall {
            model: "gemini-2.5-flash".into(),
            method: GeminiMethod::Stream,
        };
        let b = body(json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}));
        let r = answer(&call, &b, None, &Shape::default());
        let ReplyBody::Events(frames) = r.body else {
            panic!("events")
        };
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        let v: Value = serde_json::from_slice(&joined).unwrap();
        assert_eq!(v.as_array().unwrap().len(), REPLY_WORDS.len());
        assert_eq!(r.content_type, JSON);
        let sse = answer(&call, &b, Some("alt=sse"), &Shape::default());
        assert_eq!(sse.content_type, EVENT_STREAM);
    }

    #[test]
    fn function_calls_then_final_answer() {
        let call = GeminiCall {
            model: "gemini-3-flash-preview".into(),
            method: GeminiMethod::Generate,
        };
        let tools = json!([{"functionDeclarations": [{"name": "get_weather",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}]}]);
        let b = body(
            json!({"contents": [{"role": "user", "parts": [{"text": "Lyon?"}]}],
            "tools": tools}),
        );
        let r = answer(&call, &b, None, &Shape::default());
        let ReplyBody::Json(bytes) = r.body else {
            panic!("json")
        };
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let fc = &v["candidates"][0]["content"]["parts"][0]["functionCall"];
        assert_eq!(fc["name"], "get_weather");
        assert_eq!(fc["args"]["city"], "mock");
        assert!(fc["id"].is_string(), "gemini-3 calls carry ids");
        let b = body(json!({"tools": tools, "contents": [
            {"role": "user", "parts": [{"text": "Lyon?"}]},
            {"role": "model", "parts": [{"functionCall": fc}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 18}}}]}]}));
        let r = answer(&call, &b, None, &Shape::default());
        let ReplyBody::Json(bytes) = r.body else {
            panic!("json")
        };
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v["candidates"][0]["content"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Got 1 tool result"));
    }
}
