//! The mock's answers on Amazon Bedrock Runtime: `POST /model/{modelId}/converse`,
//! `/converse-stream`, `/invoke` and `/invoke-with-response-stream`, as the AWS SDKs call them
//! (the model id percent-encoded in the path).
//!
//! Shapes follow the real recordings (`../shared/fixtures/providers/bedrock-*`): Converse's
//! `{metrics, output: {message}, stopReason, usage}`; ConverseStream as AWS event-stream frames
//! `messageStart`, `contentBlockStart` (tool use only), `contentBlockDelta`, `contentBlockStop`,
//! `messageStop`, `metadata`; InvokeModel with an Anthropic body answering in Anthropic's
//! Messages shape, streamed as `chunk` frames whose `bytes` is the Messages event in base64, the
//! last adding `amazon-bedrock-invocationMetrics`; other families answer Llama's shape. Errors
//! are `{"message"}` with the type in `x-amzn-ErrorType`, every answer has an
//! `x-amzn-RequestId`; the `midstream-error` scenario ends a stream with a
//! `modelStreamErrorException` frame.

use axum::http::{Method, StatusCode};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::chat::{split_chars, tokens_for_chars, Shape};
use super::dialects::{self, plan, text_chars, Plan};

use super::wire::{hash_json, Reply, ReplyBody, Step, REQUEST_ID_HEADER_VALUE};
use crate::stream::eventstream::{encode_event, encode_exception};

/// AWS's event stream content type.
pub(crate) const EVENTSTREAM: &str = "application/vnd.amazon.eventstream";
/// Frames sent before the `midstream-error` scenario's exception.
const FRAMES_BEFORE_EXCEPTION: usize = 3;
/// Bedrock's own figure for the call, fixed so bytes repeat.
const LATENCY_MS: u64 = 412;

/// A Bedrock action the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
}

/// A Bedrock call: the decoded model id and the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BedrockCall {
    pub model: String,
    pub action: Action,
}

/// `Some` for a `/model/...` path: the call, or Bedrock's 404.
pub(crate) fn classify(method: &Method, path: &str) -> Option<Result<BedrockCall, Reply>> {
    let rest = path.strip_prefix("/model/")?;
    let not_found = || Some(Err(error(StatusCode::NOT_FOUND)));
    let Some((id, verb)) = rest.split_once('/') else {
        return not_found();
    };
    let action = match (method.as_str(), verb) {
        ("POST", "converse") => Action::Converse,
        ("POST", "converse-stream") => Action::ConverseStream,
        ("POST", "invoke") => Action::Invoke,
        ("POST", "invoke-with-response-stream") => Action::InvokeStream,
        _ => return not_found(),
    };
    let model = percent_decode(id)?;
    if model.is_empty() {
        return not_found();
    }
    Some(Ok(BedrockCall { model, action }))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Bedrock's error for `status`: `{"message"}` and the type in `x-amzn-ErrorType`.
pub(crate) fn error(status: StatusCode) -> Reply {
    let (kind, message) = match status.as_u16() {
        400 => (
            "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "The provided model identifier is invalid.",
        ),
        401 | 403 => (
            "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "You don't have access to the model with the specified model ID.",
        ),
        404 => (
            "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "llmtap mock: no such Bedrock action",
        ),
        429 => (
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "Too many requests, please wait before trying again.",
        ),
        503 | 529 => (
            "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "Bedrock is unable to process your request.",
        ),
        _ => (
            "InternalServerException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "llmtap mock: scripted internal error",
        ),
    };
    let mut r = Reply::json(
        status,
        Bytes::from(json!({"message": message}).to_string()),
        None,
    );
    r.headers = vec![
        ("x-amzn-errortype", kind),
        ("x-amzn-requestid", REQUEST_ID_HEADER_VALUE),
    ];
    r
}

/// The mock's answer to one Bedrock call; `midstream_error` ends a stream with an exception.
pub(crate) fn answer(
    call: &BedrockCall,
    body: &Map<String, Value>,
    shape: &Shape,
    midstream_error: bool,
) -> Reply {
    let hash = hash_json(&Value::Object(body.clone())) ^ super::wire::fnv1a(call.model.as_bytes());
    let reply = match call.action {
        Action::Converse | Action::ConverseStream => converse(call, body, shape, hash),
        Action::Invoke | Action::InvokeStream
            if body.contains_key("anthropic_version") || body.contains_key("messages") =>
        {
            invoke_anthropic(call, body, shape, hash)
        }
        Action::Invoke | Action::InvokeStream => invoke_family(call, body, shape, hash),
    };
    let mut reply = match reply {
        Ok(frames) if midstream_error => {
            let mut steps: Vec<Step> = frames
                .into_iter()
                .take(FRAMES_BEFORE_EXCEPTION)
                .map(Step::Send)
                .collect();
            steps.push(Step::Send(Bytes::from(encode_exception(
                "modelStreamErrorException",
                br#"{"message":"The model stream failed (llmtap mock: scripted).","originalStatusCode":500}"#,
            ))));
            stream_reply(ReplyBody::Script(steps), hash)
        }
        Ok(frames) => stream_reply(ReplyBody::Events(frames), hash),
        Err(whole) => whole,
    };
    reply
        .headers
        .push(("x-amzn-requestid", REQUEST_ID_HEADER_VALUE));
    reply
}

fn stream_reply(body: ReplyBody, hash: u64) -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: EVENTSTREAM,
        request_id: Some(hash),
        headers: Vec::new(),
        body,
    }
}

/// Converse: the frames of a stream (`Ok`), or the whole answer (`Err`).
fn converse(
    call: &BedrockCall,
    body: &Map<String, Value>,
    shape: &Shape,
    hash: u64,
) -> Result<Vec<Bytes>, Reply> {
    let messages = body.get("messages").cloned().unwrap_or(Value::Null);
    let results = messages
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .map_or(0, |blocks| {
            blocks
                .iter()
                .filter(|b| b.get("toolResult").is_some())
                .count()
        });
    let offered: Vec<(String, Option<Value>)> = body
        .get("toolConfig")
        .and_then(|c| c.get("tools"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let spec = t.get("toolSpec")?;
            Some((
                spec.get("name")?.as_str()?.to_owned(),
                spec.pointer("/inputSchema/json").cloned(),
            ))
        })
        .collect();
    let input_tokens =
        tokens_for_chars(text_chars(&messages) + body.get("system").map_or(0, text_chars)).max(1);
    let plan = plan(results, offered, shape);
    let tool_id = |i: usize| format!("tooluse_mock{:012x}{i}", hash & 0xffff_ffff_ffff);
    let (out_chars, stop) = match &plan {
        Plan::Text(pieces) => (pieces.concat().chars().count(), "end_turn"),
        Plan::Tools(calls) => (
            calls.iter().map(|(n, a)| n.len() + a.len()).sum(),
            "tool_use",
        ),
    };
    let output_tokens = tokens_for_chars(out_chars).max(1);
    let usage = json!({"inputTokens": input_tokens, "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens});
    if call.action == Action::Converse {
        let content: Vec<Value> = match &plan {
            Plan::Text(pieces) => vec![json!({"text": pieces.concat()})],
            Plan::Tools(calls) => calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    let input: Value = serde_json::from_str(args).unwrap_or(json!({}));
                    json!({"toolUse": {"input": input, "name": name, "toolUseId": tool_id(i)}})
                })
                .collect(),
        };
        let v = json!({"metrics": {"latencyMs": LATENCY_MS},
            "output": {"message": {"content": content, "role": "assistant"}},
            "stopReason": stop, "usage": usage});
        return Err(Reply::json(
            StatusCode::OK,
            Bytes::from(v.to_string()),
            Some(hash),
        ));
    }
    let event = |kind: &str, v: Value| Bytes::from(encode_event(kind, v.to_string().as_bytes()));
    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    match &plan {
        Plan::Text(pieces) => {
            for p in pieces {
                frames.push(event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": p}}),
                ));
            }
            frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
        }
        Plan::Tools(calls) => {
            for (i, (name, args)) in calls.iter().enumerate() {
                frames.push(event(
                    "contentBlockStart",
                    json!({"contentBlockIndex": i, "start": {"toolUse": {"name": name, "toolUseId": tool_id(i)}}}),
                ));
                for piece in split_chars(args, 3) {
                    frames.push(event(
                        "contentBlockDelta",
                        json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": piece}}}),
                    ));
                }
                frames.push(event("contentBlockStop", json!({"contentBlockIndex": i})));
            }
        }
    }
    frames.push(event("messageStop", json!({"stopReason": stop})));
    frames.push(event(
        "metadata",
        json!({"metrics": {"latencyMs": LATENCY_MS}, "usage": usage}),
    ));
    Ok(frames)
}

/// A `chunk` frame carrying one model event in base64.
fn chunk(v: &Value) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD.encode(v.to_string());
    Bytes::from(encode_event(
        "chunk",
        json!({"bytes": b64}).to_string().as_bytes(),
    ))
}

/// InvokeModel with an Anthropic Messages body: the Messages answer, streamed as `chunk`
/// frames with Bedrock's invocation metrics on the last one.
fn invoke_anthropic(
    call: &BedrockCall,
    body: &Map<String, Value>,
    shape: &Shape,
    _hash: u64,
) -> Result<Vec<Bytes>, Reply> {
    let mut body = body.clone();
    body.insert(
        "stream".into(),
        Value::Bool(call.action == Action::InvokeStream),
    );
    let model = anthropic_model(&call.model);
    let reply = dialects::messages(&body, &model, shape);
    let ReplyBody::Events(events) = reply.body else {
        return Err(reply);
    };
    let mut values: Vec<Value> = events
        .iter()
        .filter_map(|e| {
            let text = std::str::from_utf8(e).ok()?;
            let data = text.lines().find_map(|l| l.strip_prefix("data: "))?;
            serde_json::from_str(data).ok()
        })
        .filter(|v: &Value| v.get("type").and_then(Value::as_str) != Some("ping"))
        .collect();
    let input = values
        .first()
        .and_then(|v| v.pointer("/message/usage/input_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let output = values
        .iter()
        .rev()
        .find_map(|v| v.pointer("/usage/output_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if let Some(last) = values.last_mut() {
        last["amazon-bedrock-invocationMetrics"] = json!({"inputTokenCount": input,
            "outputTokenCount": output, "invocationLatency": LATENCY_MS, "firstByteLatency": 90});
    }
    Ok(values.iter().map(chunk).collect())
}

/// The Anthropic model name inside a Bedrock id: `us.anthropic.claude-3-5-haiku-20241022-v1:0`
/// → `claude-3-5-haiku-20241022`, as Bedrock's Anthropic responses name it.
fn anthropic_model(id: &str) -> String {
    let name = id.rsplit('/').next().unwrap_or(id);
    let name = name.split_once("anthropic.").map_or(name, |(_, n)| n);
    let name = name.split(':').next().unwrap_or(name);
    name.strip_suffix("-v1")
        .or_else(|| name.strip_suffix("-v2"))
        .unwrap_or(name)
        .to_owned()
}

/// InvokeModel for other families: Llama's shape (`generation`, token counts, `stop_reason`).
fn invoke_family(
    call: &BedrockCall,
    body: &Map<String, Value>,
    shape: &Shape,
    hash: u64,
) -> Result<Vec<Bytes>, Reply> {
    let prompt_tokens = tokens_for_chars(text_chars(&Value::Object(body.clone()))).max(1);
    let Plan::Text(pieces) = plan(0, Vec::new(), shape) else {
        return Err(error(StatusCode::INTERNAL_SERVER_ERROR));
    };
    let text = pieces.concat();
    let out = tokens_for_chars(text.chars().count()).max(1);
    if call.action == Action::Invoke {
        let v = json!({"generation": text, "prompt_token_count": prompt_tokens,
            "generation_token_count": out, "stop_reason": "stop"});
        return Err(Reply::json(
            StatusCode::OK,
            Bytes::from(v.to_string()),
            Some(hash),
        ));
    }
    let n = pieces.len();
    Ok(pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let last = i + 1 == n;
            let mut v = json!({"generation": p, "prompt_token_count": if i == 0 { Some(prompt_tokens) } else { None },
                "generation_token_count": i + 1, "stop_reason": if last { Some("stop") } else { None }});
            if last {
                v["amazon-bedrock-invocationMetrics"] = json!({"inputTokenCount": prompt_tokens,
                    "outputTokenCount": out, "invocationLatency": LATENCY_MS, "firstByteLatency": 90});
            }
            chunk(&v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::eventstream::EventStreamDecoder;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn frames(r: Reply) -> Vec<(String, Value)> {
        let bytes: Vec<u8> = match r.body {
            ReplyBody::Events(f) => f.iter().flat_map(|b| b.to_vec()).collect(),
            ReplyBody::Script(steps) => steps
                .into_iter()
                .flat_map(|s| match s {
                    Step::Send(b) => b.to_vec(),
                    _ => Vec::new(),
                })
                .collect(),
            other => panic!("not a stream: {other:?}"),
        };
        let mut d = EventStreamDecoder::new();
        let mut out = Vec::new();
        d.feed(&bytes, |f| {
            let kind = f
                .str_header(":event-type")
                .or_else(|| f.str_header(":exception-type"))
                .unwrap_or("")
                .to_owned();
            out.push((kind, serde_json::from_slice(f.payload).unwrap()));
        });
        assert_eq!(d.failed(), None);
        out
    }

    #[test]
    fn paths_decode_the_model() {
        let c = classify(
            &Method::POST,
            "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.model, "us.anthropic.claude-3-5-haiku-20241022-v1:0");
        assert_eq!(c.action, Action::InvokeStream);
        assert!(classify(&Method::POST, "/v1/chat/completions").is_none());
        let e = classify(&Method::POST, "/model/x/unknown")
            .unwrap()
            .unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(
            anthropic_model("us.anthropic.claude-3-5-haiku-20241022-v1:0"),
            "claude-3-5-haiku-20241022"
        );
    }

    #[test]
    fn converse_stream_calls_offered_tools_then_answers() {
        let call = BedrockCall {
            model: "us.amazon.nova-micro-v1:0".into(),
            action: Action::ConverseStream,
        };
        let tools = json!({"tools": [{"toolSpec": {"name": "get_weather",
            "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}]});
        let b = body(
            json!({"messages": [{"role": "user", "content": [{"text": "Lyon?"}]}],
            "toolConfig": tools}),
        );
        let f = frames(answer(&call, &b, &Shape::default(), false));
        let kinds: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds[..2], ["messageStart", "contentBlockStart"]);
        assert_eq!(kinds[kinds.len() - 2..], ["messageStop", "metadata"]);
        assert_eq!(f[kinds.len() - 2].1["stopReason"], "tool_use");
        let r = answer(&call, &b, &Shape::default(), true);
        let f = frames(r);
        assert_eq!(f.len(), FRAMES_BEFORE_EXCEPTION + 1);
        assert_eq!(f.last().unwrap().0, "modelStreamErrorException");
    }

    #[test]
    fn invoke_stream_with_an_anthropic_body_ends_with_invocation_metrics() {
        let call = BedrockCall {
            model: "anthropic.claude-3-5-haiku-20241022-v1:0".into(),
            action: Action::InvokeStream,
        };
        let b = body(
            json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
            "messages": [{"role": "user", "content": "Hi"}]}),
        );
        let f = frames(answer(&call, &b, &Shape::default(), false));
        assert!(f.iter().all(|(k, _)| k == "chunk"));
        let decode = |v: &Value| -> Value {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v["bytes"].as_str().unwrap())
                .unwrap();
            serde_json::from_slice(&raw).unwrap()
        };
        let first = decode(&f[0].1);
        assert_eq!(first["message"]["model"], "claude-3-5-haiku-20241022");
        let last = decode(&f.last().unwrap().1);
        assert_eq!(last["type"], "message_stop");
        assert!(
            last["amazon-bedrock-invocationMetrics"]["outputTokenCount"]
                .as_u64()
                .unwrap()
                > 0
        );
    }
}
