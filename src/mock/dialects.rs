//! The mock's answers on the other APIs llmtap traces: OpenAI's Responses API
//! (`POST /v1/responses`), Anthropic Messages (`POST /v1/messages`) and Ollama's native API
//! (`POST /api/chat`, `/api/generate`, `/api/embed`), streamed and not, with tool calls when
//! the request offers tools and a final answer when it carries tool results.
//!
//! Like the chat endpoint, everything derives from the request (ids from a hash of the input,
//! tokens from character counts), so the same request gives the same bytes. JSON is built
//! with `serde_json::json!` here: these shapes are compared by value in tests, not by bytes.

use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::chat::{
    reply_pieces, sample_arguments, split_chars, tokens_for_chars, Shape, REPLY_WORDS,
};
use super::wire::{self, hash_json, Reply, ReplyBody, CREATED, EVENT_STREAM, NDJSON};

/// Tool calls made when the request offers tools.
const MAX_TOOL_CALLS: usize = 2;

/// What the mock answers: text pieces, or calls of offered tools (name, arguments).
pub(super) enum Plan {
    Text(Vec<String>),
    Tools(Vec<(String, String)>),
}

/// Tool results in the last turn get the final answer; offered tools get called; otherwise a
/// text reply.
pub(super) fn plan(
    has_results: usize,
    offered: Vec<(String, Option<Value>)>,
    shape: &Shape,
) -> Plan {
    if has_results > 0 {
        let sentence = format!(
            "Got {has_results} tool result{}; here is the final answer from the llmtap mock.",
            if has_results == 1 { "" } else { "s" }
        );
        let words: Vec<&str> = sentence.split_whitespace().collect();
        return Plan::Text(reply_pieces(&words, shape.chunks.unwrap_or(words.len())));
    }
    if !offered.is_empty() {
        return Plan::Tools(
            offered
                .into_iter()
                .take(MAX_TOOL_CALLS)
                .map(|(name, params)| (name, sample_arguments(params.as_ref())))
                .collect(),
        );
    }
    let count = shape.chunks.unwrap_or(REPLY_WORDS.len());
    Plan::Text(reply_pieces(&REPLY_WORDS, count))
}

pub(super) fn text_chars(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.iter().map(text_chars).sum(),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "text" | "content" | "output" | "input"))
            .map(|(_, v)| text_chars(v))
            .sum(),
        _ => 0,
    }
}

fn sse(kind: &str, value: &Value) -> Bytes {
    let mut out = format!("event: {kind}\ndata: ").into_bytes();
    out.extend(wire::to_vec(value));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn stream_reply(events: Vec<Bytes>, content_type: &'static str, id: u64) -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type,
        request_id: Some(id),
        headers: Vec::new(),
        body: ReplyBody::Events(events),
    }
}

fn json_reply(value: &Value, id: u64) -> Reply {
    Reply::json(StatusCode::OK, Bytes::from(wire::to_vec(value)), Some(id))
}

fn streamed(body: &Map<String, Value>, default: bool) -> bool {
    body.get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(default)
}

// ---- OpenAI Responses ----------------------------------------------------------------

pub(crate) fn responses(body: &Map<String, Value>, model: &str, shape: &Shape) -> Reply {
    let input = body.get("input").cloned().unwrap_or(Value::Null);
    let hash = hash_json(&input);
    let id = format!("resp_mock{hash:016x}");
    let items = input.as_array().cloned().unwrap_or_default();
    // Results answer the turn when the input ends with them.
    let results = items
        .iter()
        .rev()
        .take_while(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .count();
    let offered: Vec<(String, Option<Value>)> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|t| {
            Some((
                t.get("name")?.as_str()?.to_owned(),
                t.get("parameters").cloned(),
            ))
        })
        .collect();
    let plan = plan(results, offered, shape);
    let input_tokens = tokens_for_chars(text_chars(&input));
    let (output, out_chars) = match &plan {
        Plan::Text(pieces) => {
            let text: String = pieces.concat();
            let n = text.chars().count();
            (
                vec![
                    json!({"type": "message", "id": format!("msg_mock{hash:016x}"),
                    "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}),
                ],
                n,
            )
        }
        Plan::Tools(calls) => (
            calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    json!({"type": "function_call", "id": format!("fc_mock{:016x}{i}", hash),
                        "call_id": format!("call_mock{:012x}{i}", hash & 0xffff_ffff_ffff),
                        "name": name, "arguments": args, "status": "completed"})
                })
                .collect(),
            calls.iter().map(|(n, a)| n.len() + a.len()).sum(),
        ),
    };
    let output_tokens = tokens_for_chars(out_chars);
    let usage = json!({"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens});
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": id, "object": "response", "created_at": CREATED, "status": status,
            "model": model, "output": output, "usage": usage, "error": null,
            "previous_response_id": body.get("previous_response_id"),
            "instructions": body.get("instructions")})
    };
    if !streamed(body, false) {
        return json_reply(&response("completed", Value::Array(output), usage), hash);
    }
    let mut seq = 0u64;
    let mut events = Vec::new();
    let mut push = |kind: &str, mut v: Value| {
        v["type"] = json!(kind);
        v["sequence_number"] = json!(seq);
        seq += 1;
        events.push(sse(kind, &v));
    };
    push(
        "response.created",
        json!({"response": response("in_progress", json!([]), Value::Null)}),
    );
    push(
        "response.in_progress",
        json!({"response": response("in_progress", json!([]), Value::Null)}),
    );
    match &plan {
        Plan::Text(pieces) => {
            let item = &output[0];
            let item_id = item["id"].clone();
            let mut added = item.clone();
            added["status"] = json!("in_progress");
            added["content"] = json!([]);
            push(
                "response.output_item.added",
                json!({"output_index": 0, "item": added}),
            );
            // The API announces each content part before its deltas; the SDKs' stream
            // helpers (openai's `responses.stream`) index into the parts it added.
            push(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}}),
            );
            for p in pieces {
                push(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                        "delta": p, "logprobs": []}),
                );
            }
            push(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                    "text": pieces.concat(), "logprobs": []}),
            );
            push(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                    "part": item["content"][0]}),
            );
            push(
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            );
        }
        Plan::Tools(_) => {
            for (i, item) in output.iter().enumerate() {
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["arguments"] = json!("");
                push(
                    "response.output_item.added",
                    json!({"output_index": i, "item": added}),
                );
                let args = item["arguments"].as_str().unwrap_or("");
                for piece in split_chars(args, 3) {
                    push(
                        "response.function_call_arguments.delta",
                        json!({"item_id": item["id"], "output_index": i, "delta": piece}),
                    );
                }
                push(
                    "response.function_call_arguments.done",
                    json!({"item_id": item["id"], "output_index": i, "arguments": args}),
                );
                push(
                    "response.output_item.done",
                    json!({"output_index": i, "item": item}),
                );
            }
        }
    }
    push(
        "response.completed",
        json!({"response": response("completed", Value::Array(output.clone()), usage)}),
    );
    stream_reply(events, EVENT_STREAM, hash)
}

// ---- Anthropic Messages --------------------------------------------------------------

pub(crate) fn messages(body: &Map<String, Value>, model: &str, shape: &Shape) -> Reply {
    let messages = body.get("messages").cloned().unwrap_or(Value::Null);
    let hash = hash_json(&messages);
    let id = format!("msg_mock{hash:016x}");
    let last = messages.as_array().and_then(|m| m.last()).cloned();
    let results = last
        .as_ref()
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .map_or(0, |blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                .count()
        });
    let offered: Vec<(String, Option<Value>)> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t.get("name")?.as_str()?.to_owned(),
                t.get("input_schema").cloned(),
            ))
        })
        .collect();
    let plan = plan(results, offered, shape);
    let system_chars = body.get("system").map_or(0, text_chars);
    let input_tokens = tokens_for_chars(text_chars(&messages) + system_chars);
    let (content, out_chars, stop) = match &plan {
        Plan::Text(pieces) => {
            let text = pieces.concat();
            let n = text.chars().count();
            (vec![json!({"type": "text", "text": text})], n, "end_turn")
        }
        Plan::Tools(calls) => (
            calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    let input: Value = serde_json::from_str(args).unwrap_or(json!({}));
                    json!({"type": "tool_use", "id": format!("toolu_mock{:012x}{i}", hash & 0xffff_ffff_ffff),
                        "name": name, "input": input})
                })
                .collect(),
            calls.iter().map(|(n, a)| n.len() + a.len()).sum(),
            "tool_use",
        ),
    };
    let output_tokens = tokens_for_chars(out_chars);
    if !streamed(body, false) {
        return json_reply(
            &json!({"id": id, "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0, "output_tokens": output_tokens}}),
            hash,
        );
    }
    let mut events = vec![sse(
        "message_start",
        &json!({"type": "message_start", "message": {"id": id, "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": input_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}}),
    )];
    match &plan {
        Plan::Text(pieces) => {
            events.push(sse(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
            ));
            for (i, p) in pieces.iter().enumerate() {
                if i == 1 {
                    events.push(sse("ping", &json!({"type": "ping"})));
                }
                events.push(sse(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": p}}),
                ));
            }
            events.push(sse(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": 0}),
            ));
        }
        Plan::Tools(calls) => {
            for (i, block) in content.iter().enumerate() {
                let mut start = block.clone();
                start["input"] = json!({});
                events.push(sse(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": i, "content_block": start}),
                ));
                for piece in split_chars(&calls[i].1, 3) {
                    events.push(sse(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": i,
                            "delta": {"type": "input_json_delta", "partial_json": piece}}),
                    ));
                }
                events.push(sse(
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": i}),
                ));
            }
        }
    }
    events.push(sse(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}}),
    ));
    events.push(sse("message_stop", &json!({"type": "message_stop"})));
    stream_reply(events, EVENT_STREAM, hash)
}

/// An Anthropic-shaped error with the status of the scenario's OpenAI-shaped one.
pub(crate) fn anthropic_error(status: StatusCode) -> Reply {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind,
        "message": format!("llmtap mock: scripted {kind}")}});
    Reply::json(status, Bytes::from(wire::to_vec(&body)), None)
}

// ---- Ollama native -------------------------------------------------------------------

/// Which Ollama endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OllamaEndpoint {
    Chat,
    Generate,
    Embed,
    /// The legacy `/api/embeddings`: `prompt` in, one vector out as `embedding`.
    Embeddings,
}

pub(crate) fn ollama(
    endpoint: OllamaEndpoint,
    body: &Map<String, Value>,
    model: &str,
    shape: &Shape,
) -> Reply {
    let key = match endpoint {
        OllamaEndpoint::Chat => "messages",
        OllamaEndpoint::Generate | OllamaEndpoint::Embeddings => "prompt",
        OllamaEndpoint::Embed => "input",
    };
    let prompt = body.get(key).cloned().unwrap_or(Value::Null);
    let hash = hash_json(&prompt);
    let prompt_tokens = tokens_for_chars(text_chars(&prompt));
    if endpoint == OllamaEndpoint::Embeddings {
        // Ollama's legacy endpoint: no model, no usage, no `done`; just the vector.
        let seed = wire::mix(hash);
        let vector: Vec<f64> = (0..12)
            .map(|k| ((seed >> ((k % 8) * 8)) & 0xff) as f64 / 255.0 - 0.5)
            .collect();
        return json_reply(&json!({ "embedding": vector }), hash);
    }
    if endpoint == OllamaEndpoint::Embed {
        let inputs = match &prompt {
            Value::Array(a) => a.len().max(1),
            _ => 1,
        };
        let vectors: Vec<Value> = (0..inputs)
            .map(|i| {
                let seed = wire::mix(hash.wrapping_add(i as u64));
                json!((0..8)
                    .map(|k| ((seed >> (k * 8)) & 0xff) as f64 / 255.0 - 0.5)
                    .collect::<Vec<f64>>())
            })
            .collect();
        return json_reply(
            &json!({"model": model, "embeddings": vectors, "total_duration": 1_000_000,
                "load_duration": 10_000, "prompt_eval_count": prompt_tokens}),
            hash,
        );
    }
    let results = prompt.as_array().map_or(0, |m| {
        m.iter().rev().take_while(|m| m["role"] == "tool").count()
    });
    let offered: Vec<(String, Option<Value>)> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let f = t.get("function")?;
            Some((
                f.get("name")?.as_str()?.to_owned(),
                f.get("parameters").cloned(),
            ))
        })
        .collect();
    let plan = plan(results, offered, shape);
    let created = "2025-01-01T00:00:00Z";
    let line = |content: &str, calls: Option<Value>, done: bool, out_tokens: u64| {
        let mut v = match endpoint {
            OllamaEndpoint::Generate => {
                json!({"model": model, "created_at": created, "response": content, "done": done})
            }
            _ => {
                let mut m = json!({"role": "assistant", "content": content});
                if let Some(c) = calls {
                    m["tool_calls"] = c;
                }
                json!({"model": model, "created_at": created, "message": m, "done": done})
            }
        };
        if done {
            v["done_reason"] = json!("stop");
            v["total_duration"] = json!(1_000_000u64);
            v["prompt_eval_count"] = json!(prompt_tokens);
            v["eval_count"] = json!(out_tokens);
        }
        v
    };
    let (pieces, calls, out_chars) = match &plan {
        Plan::Text(p) => (p.clone(), None, p.concat().chars().count()),
        Plan::Tools(c) => (
            Vec::new(),
            Some(Value::Array(
                c.iter()
                    .map(|(name, args)| {
                        let arguments: Value = serde_json::from_str(args).unwrap_or(json!({}));
                        json!({"function": {"name": name, "arguments": arguments}})
                    })
                    .collect(),
            )),
            c.iter().map(|(n, a)| n.len() + a.len()).sum(),
        ),
    };
    let out_tokens = tokens_for_chars(out_chars);
    if !streamed(body, true) {
        return json_reply(&line(&pieces.concat(), calls, true, out_tokens), hash);
    }
    let mut lines: Vec<Bytes> = Vec::new();
    let mut push = |v: Value| {
        let mut b = wire::to_vec(&v);
        b.push(b'\n');
        lines.push(Bytes::from(b));
    };
    for p in &pieces {
        push(line(p, None, false, 0));
    }
    if calls.is_some() {
        push(line("", calls, false, 0));
    }
    push(line("", None, true, out_tokens));
    stream_reply(lines, NDJSON, hash)
}
