//! JSON shapes the mock sends, in OpenAI's key order, plus the small helpers every endpoint
//! shares (hashing, model names, error bodies, the reply type).
//!
//! Structs rather than `serde_json::json!` because `json!` objects sort their keys unless
//! serde_json's `preserve_order` is on, and tests compare bytes with real recordings.

use axum::http::StatusCode;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// One step of a scripted body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Send(Bytes),
    Sleep(Duration),
    /// Send nothing more until the client leaves or the server shuts down.
    Stall,
    /// End the body with an error, so hyper aborts the connection instead of closing the
    /// chunked body cleanly: the client sees a truncated response.
    Abort(&'static str),
}

/// `created` of every object the mock returns: 2025-01-01T00:00:00Z, so bytes repeat.
pub(crate) const CREATED: u64 = 1_735_689_600;
pub(crate) const SYSTEM_FINGERPRINT: &str = "fp_mock";
/// Appended to request models that carry no date, like OpenAI answers `gpt-4o-mini` with
/// `gpt-4o-mini-2024-07-18`; tests use it to see request and response models differ.
pub(crate) const MODEL_SNAPSHOT: &str = "2024-07-18";

pub(crate) const JSON: &str = "application/json";
pub(crate) const EVENT_STREAM: &str = "text/event-stream; charset=utf-8";
pub(crate) const NDJSON: &str = "application/x-ndjson";
/// A reply header with this value is sent with the reply's request id as a UUID (AWS's
/// `x-amzn-RequestId`), derived like `x-request-id`.
pub(crate) const REQUEST_ID_HEADER_VALUE: &str = "{request-id}";

/// Headers OpenAI puts on every response; fixed values keep responses byte-identical.
/// A reply that sets one of these itself (429 sets the remaining count to 0) wins.
pub(crate) const COMMON_HEADERS: [(&str, &str); 9] = [
    ("openai-version", "2020-10-01"),
    ("openai-organization", "llmtap-mock"),
    ("openai-processing-ms", "12"),
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-limit-tokens", "200000"),
    ("x-ratelimit-remaining-tokens", "199000"),
    ("x-ratelimit-reset-requests", "6ms"),
    ("x-ratelimit-reset-tokens", "300ms"),
];

/// What an endpoint answers, before the scenario shapes the body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    /// Hash behind `x-request-id` (`req_mock` + 16 hex digits); `None` uses method and path.
    pub request_id: Option<u64>,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: ReplyBody,
}

#[derive(Debug)]
pub(crate) enum ReplyBody {
    /// A complete body; scenarios may gzip, cut or stall it.
    Json(Bytes),
    /// Complete SSE events (`data: ...\n\n`) without the closing `[DONE]`; the scenario
    /// decides how many are sent, how fast, and how the stream ends.
    Sse(Vec<Bytes>),
    /// A body already scripted (replay).
    Script(Vec<Step>),
    /// Complete events of an API whose streams have no `[DONE]` (typed SSE events, NDJSON
    /// lines); shaped like `Sse` otherwise.
    Events(Vec<Bytes>),
}

impl Reply {
    pub(crate) fn json(status: StatusCode, body: Bytes, request_id: Option<u64>) -> Self {
        Self {
            status,
            content_type: JSON,
            request_id,
            headers: Vec::new(),
            body: ReplyBody::Json(body),
        }
    }

    pub(crate) fn sse(events: Vec<Bytes>, request_id: u64) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: EVENT_STREAM,
            request_id: Some(request_id),
            headers: Vec::new(),
            body: ReplyBody::Sse(events),
        }
    }
}

/// 64-bit FNV-1a: tiny, stable across platforms and releases, good enough to tell requests
/// apart. Not for anything adversarial.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Spread a hash's bits (murmur3's 64-bit finalizer) so ids derived from similar inputs,
/// like `hash/0` and `hash/1`, do not share most of their digits.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Hash of a JSON value as serde_json writes it compactly, so whitespace in the request body
/// does not change ids.
pub(crate) fn hash_json(value: &Value) -> u64 {
    fnv1a(&to_vec(value))
}

/// `M` → `M-2024-07-18`, unless `M` already ends in a date (`-2024-08-06`) or a four-digit
/// snapshot (`-0125`).
pub(crate) fn versioned_model(model: &str) -> String {
    if has_snapshot_suffix(model) {
        model.to_owned()
    } else {
        format!("{model}-{MODEL_SNAPSHOT}")
    }
}

fn has_snapshot_suffix(model: &str) -> bool {
    let matches = |pattern: &[u8]| {
        let bytes = model.as_bytes();
        bytes.len() > pattern.len()
            && bytes[bytes.len() - pattern.len()..]
                .iter()
                .zip(pattern)
                .all(|(b, p)| {
                    if *p == b'9' {
                        b.is_ascii_digit()
                    } else {
                        b == p
                    }
                })
    };
    matches(b"-9999-99-99") || matches(b"-9999")
}

/// Serialize one of our own shapes. Plain structs with string keys cannot fail to serialize,
/// so the empty fallback is never taken; it only keeps this path free of panics.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// One SSE event the way OpenAI frames it.
pub(crate) fn sse_event<T: Serialize + ?Sized>(value: &T) -> Bytes {
    sse_frame(&to_vec(value))
}

/// Frame already-serialized JSON as one SSE event.
pub(crate) fn sse_frame(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

pub(crate) fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(openai_error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, \
             but what was sent was not valid JSON. If you have trouble figuring out how to fix \
             this, please contact us through our help center at help.openai.com.)",
            "invalid_request_error",
            None,
            None,
        )),
    }
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// An error in OpenAI's shape. Pretty-printed with two-space indent and no trailing newline,
/// which is how api.openai.com sends error bodies.
pub(crate) fn openai_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Reply {
    let envelope = ErrorEnvelope {
        error: ErrorObject {
            message,
            kind,
            param,
            code,
        },
    };
    let body = serde_json::to_vec_pretty(&envelope).unwrap_or_default();
    Reply::json(status, Bytes::from(body), None)
}

/// 400 for a parameter the request is missing or got wrong.
pub(crate) fn invalid_param(message: &str, param: &str, code: Option<&str>) -> Reply {
    openai_error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        Some(param),
        code,
    )
}

/// `usage` of chat completions, with the detail objects OpenAI always includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptTokensDetails,
    pub completion_tokens_details: CompletionTokensDetails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct PromptTokensDetails {
    pub cached_tokens: u64,
    pub audio_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct CompletionTokensDetails {
    pub reasoning_tokens: u64,
    pub audio_tokens: u64,
    pub accepted_prediction_tokens: u64,
    pub rejected_prediction_tokens: u64,
}

impl Usage {
    pub(crate) fn new(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> Self {
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: cached,
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: reasoning,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            },
        }
    }
}

/// `usage` of legacy completions and (without `completion_tokens`) embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct PlainUsage {
    pub prompt_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    pub total_tokens: u64,
}

/// The `usage` key of a stream chunk: absent without `include_usage`, `null` on every chunk
/// but the last with it, the object on the final `choices: []` chunk. `Option<Option<_>>`
/// gives exactly those three with `skip_serializing_if = "Option::is_none"`.
pub(crate) type ChunkUsage<U> = Option<Option<U>>;

#[derive(Serialize)]
pub(crate) struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: [ChatChoice<'a>; 1],
    pub usage: Usage,
    pub service_tier: &'static str,
    pub system_fingerprint: &'static str,
}

#[derive(Serialize)]
pub(crate) struct ChatChoice<'a> {
    pub index: u32,
    pub message: AssistantMessage<'a>,
    /// Always `null`: the mock does not do logprobs.
    pub logprobs: (),
    pub finish_reason: &'static str,
}

#[derive(Serialize)]
pub(crate) struct AssistantMessage<'a> {
    pub role: &'static str,
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    pub refusal: (),
    pub annotations: [(); 0],
}

#[derive(Serialize)]
pub(crate) struct ToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionCall<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

#[derive(Serialize)]
pub(crate) struct ChatChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub service_tier: &'static str,
    pub system_fingerprint: &'static str,
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: ChunkUsage<Usage>,
}

#[derive(Serialize)]
pub(crate) struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    pub logprobs: (),
    pub finish_reason: Option<&'static str>,
}

/// A chat delta. Optional keys are left out when `None`; `Some(None)` writes `null`, which
/// OpenAI sends for `content` on a tool-call role chunk and for `refusal` on a text one.
#[derive(Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
pub(crate) struct ToolCallDelta<'a> {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionDelta<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// Legacy `/v1/completions` object, streamed (`choices` may be empty) or not.
#[derive(Serialize)]
pub(crate) struct TextCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<TextChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: ChunkUsage<PlainUsage>,
}

#[derive(Serialize)]
pub(crate) struct TextChoice<'a> {
    pub text: &'a str,
    pub index: u32,
    pub logprobs: (),
    pub finish_reason: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn versioned_model_adds_a_snapshot_once() {
        assert_eq!(versioned_model("gpt-4o-mini"), "gpt-4o-mini-2024-07-18");
        assert_eq!(versioned_model("gpt-4o-2024-08-06"), "gpt-4o-2024-08-06");
        assert_eq!(versioned_model("gpt-3.5-turbo-0125"), "gpt-3.5-turbo-0125");
        assert_eq!(versioned_model("mock-slow"), "mock-slow-2024-07-18");
        assert_eq!(versioned_model("-0125"), "-0125-2024-07-18");
    }

    #[test]
    fn error_body_is_pretty_in_openai_key_order() {
        let reply = openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "m",
            "requests",
            None,
            Some("rate_limit_exceeded"),
        );
        let ReplyBody::Json(body) = reply.body else {
            panic!("error replies are JSON");
        };
        assert_eq!(
            std::str::from_utf8(&body).ok(),
            Some(
                "{\n  \"error\": {\n    \"message\": \"m\",\n    \"type\": \"requests\",\n    \
                 \"param\": null,\n    \"code\": \"rate_limit_exceeded\"\n  }\n}"
            )
        );
    }

    #[test]
    fn chunk_usage_has_three_states() {
        let mut chunk = ChatChunk {
            id: "i",
            object: "chat.completion.chunk",
            created: 1,
            model: "m",
            service_tier: "default",
            system_fingerprint: "fp",
            choices: Vec::new(),
            usage: None,
        };
        assert!(!String::from_utf8_lossy(&to_vec(&chunk)).contains("usage"));
        chunk.usage = Some(None);
        assert!(String::from_utf8_lossy(&to_vec(&chunk)).ends_with("\"usage\":null}"));
        chunk.usage = Some(Some(Usage::new(1, 2, 0, 0)));
        assert!(String::from_utf8_lossy(&to_vec(&chunk)).contains("\"total_tokens\":3"));
    }

    #[test]
    fn bad_json_is_a_400_not_a_panic() {
        for body in [&b"{"[..], b"[]", b"", b"\xff"] {
            let reply = parse_json_object(body).err();
            assert_eq!(reply.map(|r| r.status), Some(StatusCode::BAD_REQUEST));
        }
    }
}
