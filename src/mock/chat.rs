//! `/chat/completions` and legacy `/completions`: what the mock answers and how it is
//! counted, streamed or not.
//!
//! Everything derives from the request so the same body gives the same bytes: the id and
//! `x-request-id` from a hash of `messages` (or `prompt`), tokens from character counts, tool
//! call arguments from the offered tool's schema. `stream_options` is not hashed, so a proxy
//! adding `include_usage` does not change ids.

use serde_json::{Map, Value};

use super::wire::{
    self, hash_json, invalid_param, sse_event, sse_frame, AssistantMessage, ChatChoice, ChatChunk,
    ChatCompletion, ChunkChoice, Delta, FunctionCall, FunctionDelta, PlainUsage, Reply, TextChoice,
    TextCompletion, ToolCall, ToolCallDelta, Usage, CREATED, SYSTEM_FINGERPRINT,
};
use axum::http::StatusCode;
use bytes::Bytes;

/// What the scenario and knobs change about an endpoint's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Content chunks of a text reply; default: one per word of the reply.
    pub chunks: Option<usize>,
    /// `reasoning` scenario: non-zero reasoning and cached tokens.
    pub reasoning: bool,
    /// `no-usage` scenario: behave like servers that do not know `stream_options`.
    pub ignore_include_usage: bool,
}

/// The default reply, one word per content chunk (ten chunks).
pub(crate) const REPLY_WORDS: [&str; 10] = [
    "Hello!", "This", "is", "a", "scripted", "reply", "from", "the", "llmtap", "mock.",
];
/// Reasoning tokens reported by the `reasoning` scenario (added to `completion_tokens`, as
/// OpenAI counts them).
const REASONING_TOKENS: u64 = 64;
/// Tool calls made when the request offers tools.
const MAX_TOOL_CALLS: usize = 2;
/// Pieces the first tool call's arguments are streamed in.
const ARGUMENT_PIECES: usize = 4;

/// `count` chunks cycling through `words`, space-separated like tokenizer pieces.
pub(crate) fn reply_pieces<S: AsRef<str>>(words: &[S], count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let word = words[i % words.len()].as_ref();
            if i == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            }
        })
        .collect()
}

/// About four characters per token, as OpenAI's rule of thumb says; deterministic and easy
/// to recompute in a test: `ceil(chars / 4)`.
pub(crate) fn tokens_for_chars(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

fn content_chars(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(text)) => text.chars().count(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(|text| text.chars().count())
            .sum(),
        _ => 0,
    }
}

fn usage_for(shape: &Shape, prompt: u64, completion: u64) -> Usage {
    if shape.reasoning {
        // Half the prompt "cached" (at least one token when there is a prompt).
        Usage::new(
            prompt,
            completion + REASONING_TOKENS,
            prompt.div_ceil(2),
            REASONING_TOKENS,
        )
    } else {
        Usage::new(prompt, completion, 0, 0)
    }
}

struct StreamFlags {
    stream: bool,
    include_usage: bool,
}

fn stream_flags(body: &Map<String, Value>, shape: &Shape) -> Result<StreamFlags, Reply> {
    let stream = body.get("stream") == Some(&Value::Bool(true));
    let options = body.get("stream_options").filter(|v| !v.is_null());
    // OpenAI rejects this; a proxy that injects stream_options into non-streamed requests
    // should find out here, not in production.
    if options.is_some() && !stream {
        return Err(invalid_param(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            None,
        ));
    }
    let include_usage = !shape.ignore_include_usage
        && options
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    Ok(StreamFlags {
        stream,
        include_usage,
    })
}

/// A tool call the mock will make.
struct PlannedCall {
    id: String,
    name: String,
    arguments: String,
    /// `arguments` as streamed, in order.
    pieces: Vec<String>,
}

enum Plan {
    Text(Vec<String>),
    Tools(Vec<PlannedCall>),
}

fn plan(body: &Map<String, Value>, messages: &[Value], hash: u64, shape: &Shape) -> Plan {
    let role = |m: &Value| m.get("role").and_then(Value::as_str).map(str::to_owned);
    let tool_results = messages
        .iter()
        .rev()
        .take_while(|m| role(m).as_deref() == Some("tool"))
        .count();
    if tool_results > 0 {
        let noun = if tool_results == 1 {
            "result"
        } else {
            "results"
        };
        let sentence = format!(
            "Got {tool_results} tool {noun}; here is the final answer from the llmtap mock."
        );
        let words: Vec<&str> = sentence.split_whitespace().collect();
        return Plan::Text(reply_pieces(&words, shape.chunks.unwrap_or(words.len())));
    }
    let last_is_user = messages.last().and_then(role).as_deref() == Some("user");
    let calls = if last_is_user {
        planned_calls(body, hash)
    } else {
        Vec::new()
    };
    if calls.is_empty() {
        let count = shape.chunks.unwrap_or(REPLY_WORDS.len());
        Plan::Text(reply_pieces(&REPLY_WORDS, count))
    } else {
        Plan::Tools(calls)
    }
}

/// One call per offered function tool, up to two, honouring `tool_choice`.
fn planned_calls(body: &Map<String, Value>, hash: u64) -> Vec<PlannedCall> {
    let offered: Vec<(&str, Option<&Value>)> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|tool| {
            let function = tool.get("function")?;
            let name = function.get("name")?.as_str()?;
            Some((name, function.get("parameters")))
        })
        .collect();
    let chosen: Vec<(&str, Option<&Value>)> = match body.get("tool_choice") {
        Some(Value::String(choice)) if choice == "none" => Vec::new(),
        Some(choice @ Value::Object(_)) => {
            match choice.pointer("/function/name").and_then(Value::as_str) {
                Some(name) => {
                    let parameters = offered.iter().find(|(n, _)| *n == name).and_then(|t| t.1);
                    vec![(name, parameters)]
                }
                None => offered.into_iter().take(MAX_TOOL_CALLS).collect(),
            }
        }
        _ => offered.into_iter().take(MAX_TOOL_CALLS).collect(),
    };
    chosen
        .into_iter()
        .enumerate()
        .map(|(index, (name, parameters))| {
            let arguments = sample_arguments(parameters);
            // Real streams split arguments unevenly; the first call is split, the second
            // comes whole, so parsers meet both.
            let pieces = if index == 0 {
                split_chars(&arguments, ARGUMENT_PIECES)
            } else {
                vec![arguments.clone()]
            };
            PlannedCall {
                id: format!("call_mock{:016x}", wire::mix(hash ^ (index as u64 + 1))),
                name: name.to_owned(),
                arguments,
                pieces,
            }
        })
        .collect()
}

/// Arguments for up to three of the schema's properties, with a plausible value for each
/// type, written with `", "` and `": "` separators as models tend to.
pub(crate) fn sample_arguments(parameters: Option<&Value>) -> String {
    let properties = parameters
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object);
    let fields: Vec<String> = properties
        .into_iter()
        .flatten()
        .take(3)
        .map(|(name, schema)| {
            let key = serde_json::to_string(name).unwrap_or_default();
            let value = serde_json::to_string(&sample_value(schema)).unwrap_or_default();
            format!("{key}: {value}")
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn sample_value(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        // `["string", "null"]`: take the first type.
        Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    match kind {
        "string" => Value::from("mock"),
        "integer" => Value::from(1),
        "number" => Value::from(1.5),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "object" => Value::Object(Map::new()),
        _ => Value::Null,
    }
}

pub(crate) fn split_chars(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(parts).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// Writes chat chunks with the fields every chunk of one response shares.
struct ChunkWriter<'a> {
    id: &'a str,
    model: &'a str,
    include_usage: bool,
    events: Vec<Bytes>,
}

impl ChunkWriter<'_> {
    fn choice(&mut self, delta: Delta<'_>, finish_reason: Option<&'static str>) {
        let chunk = ChatChunk {
            id: self.id,
            object: "chat.completion.chunk",
            created: CREATED,
            model: self.model,
            service_tier: "default",
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: (),
                finish_reason,
            }],
            usage: self.include_usage.then_some(None),
        };
        self.events.push(sse_event(&chunk));
    }

    fn usage(&mut self, usage: Usage) {
        if !self.include_usage {
            return;
        }
        let chunk = ChatChunk {
            id: self.id,
            object: "chat.completion.chunk",
            created: CREATED,
            model: self.model,
            service_tier: "default",
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices: Vec::new(),
            usage: Some(Some(usage)),
        };
        self.events.push(sse_event(&chunk));
    }
}

pub(crate) fn chat_completion(body: &Map<String, Value>, model: &str, shape: &Shape) -> Reply {
    let messages = match body.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        Some(Value::Array(_)) => {
            return invalid_param(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, \
                 but got an empty array instead.",
                "messages",
                Some("empty_array"),
            )
        }
        _ => {
            return invalid_param(
                "Missing required parameter: 'messages'.",
                "messages",
                Some("missing_required_parameter"),
            )
        }
    };
    let flags = match stream_flags(body, shape) {
        Ok(flags) => flags,
        Err(reply) => return reply,
    };
    let hash = hash_json(&Value::Array(messages.clone()));
    let id = format!("chatcmpl-mock{hash:016x}");
    let chars = messages
        .iter()
        .map(|m| content_chars(m.get("content")))
        .sum();
    let prompt_tokens = tokens_for_chars(chars);
    let plan = plan(body, messages, hash, shape);

    if flags.stream {
        let mut writer = ChunkWriter {
            id: &id,
            model,
            include_usage: flags.include_usage,
            events: Vec::new(),
        };
        let (finish_reason, completion_tokens) = match &plan {
            Plan::Text(pieces) => {
                writer.choice(
                    Delta {
                        role: Some("assistant"),
                        content: Some(Some("")),
                        refusal: Some(()),
                        ..Delta::default()
                    },
                    None,
                );
                for piece in pieces {
                    let delta = Delta {
                        content: Some(Some(piece)),
                        ..Delta::default()
                    };
                    writer.choice(delta, None);
                }
                ("stop", pieces.len() as u64)
            }
            Plan::Tools(calls) => {
                let role = Delta {
                    role: Some("assistant"),
                    content: Some(None),
                    ..Delta::default()
                };
                writer.choice(role, None);
                let mut deltas = 0;
                for (index, call) in (0u32..).zip(calls) {
                    let opening = ToolCallDelta {
                        index,
                        id: Some(&call.id),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(&call.name),
                            arguments: "",
                        },
                    };
                    let pieces = call.pieces.iter().map(|piece| ToolCallDelta {
                        index,
                        id: None,
                        kind: None,
                        function: FunctionDelta {
                            name: None,
                            arguments: piece,
                        },
                    });
                    for tool_call in std::iter::once(opening).chain(pieces) {
                        let delta = Delta {
                            tool_calls: Some([tool_call]),
                            ..Delta::default()
                        };
                        writer.choice(delta, None);
                        deltas += 1;
                    }
                }
                ("tool_calls", deltas)
            }
        };
        writer.choice(Delta::default(), Some(finish_reason));
        writer.usage(usage_for(shape, prompt_tokens, completion_tokens));
        return Reply::sse(writer.events, hash);
    }

    let text;
    let (message, finish_reason, completion_tokens) = match &plan {
        Plan::Text(pieces) => {
            text = pieces.concat();
            let message = AssistantMessage {
                role: "assistant",
                content: Some(&text),
                tool_calls: None,
                refusal: (),
                annotations: [],
            };
            (message, "stop", pieces.len() as u64)
        }
        Plan::Tools(calls) => {
            let tool_calls = calls
                .iter()
                .map(|call| ToolCall {
                    id: &call.id,
                    kind: "function",
                    function: FunctionCall {
                        name: &call.name,
                        arguments: &call.arguments,
                    },
                })
                .collect();
            let message = AssistantMessage {
                role: "assistant",
                content: None,
                tool_calls: Some(tool_calls),
                refusal: (),
                annotations: [],
            };
            // Counted as the streamed form would be: one per tool-call delta.
            let deltas = calls.iter().map(|c| 1 + c.pieces.len() as u64).sum();
            (message, "tool_calls", deltas)
        }
    };
    let completion = ChatCompletion {
        id: &id,
        object: "chat.completion",
        created: CREATED,
        model,
        choices: [ChatChoice {
            index: 0,
            message,
            logprobs: (),
            finish_reason,
        }],
        usage: usage_for(shape, prompt_tokens, completion_tokens),
        service_tier: "default",
        system_fingerprint: SYSTEM_FINGERPRINT,
    };
    Reply::json(
        StatusCode::OK,
        Bytes::from(wire::to_vec(&completion)),
        Some(hash),
    )
}

/// Prompt tokens of a legacy prompt: text by characters, token arrays by length.
fn prompt_tokens(prompt: &Value) -> u64 {
    match prompt {
        Value::String(text) => tokens_for_chars(text.chars().count()),
        Value::Number(_) => 1,
        Value::Array(items) => items.iter().map(prompt_tokens).sum(),
        _ => 0,
    }
}

pub(crate) fn text_completion(body: &Map<String, Value>, model: &str, shape: &Shape) -> Reply {
    let Some(prompt) = body.get("prompt").filter(|p| !p.is_null()) else {
        return invalid_param(
            "Missing required parameter: 'prompt'.",
            "prompt",
            Some("missing_required_parameter"),
        );
    };
    let flags = match stream_flags(body, shape) {
        Ok(flags) => flags,
        Err(reply) => return reply,
    };
    let hash = hash_json(prompt);
    let id = format!("cmpl-mock{hash:016x}");
    let pieces = reply_pieces(&REPLY_WORDS, shape.chunks.unwrap_or(REPLY_WORDS.len()));
    let prompt_tokens = prompt_tokens(prompt);
    let completion_tokens = pieces.len() as u64;
    let usage = PlainUsage {
        prompt_tokens,
        completion_tokens: Some(completion_tokens),
        total_tokens: prompt_tokens + completion_tokens,
    };
    let completion = |choices: Vec<TextChoice<'_>>, usage| {
        wire::to_vec(&TextCompletion {
            id: &id,
            object: "text_completion",
            created: CREATED,
            model,
            choices,
            usage,
        })
    };
    let choice = |text, finish_reason| TextChoice {
        text,
        index: 0,
        logprobs: (),
        finish_reason,
    };

    if flags.stream {
        let usage_field = flags.include_usage.then_some(None);
        let mut events: Vec<Bytes> = pieces
            .iter()
            .map(|piece| completion(vec![choice(piece, None)], usage_field))
            .chain(std::iter::once(completion(
                vec![choice("", Some("stop"))],
                usage_field,
            )))
            .map(|json| sse_frame(&json))
            .collect();
        if flags.include_usage {
            events.push(sse_frame(&completion(Vec::new(), Some(Some(usage)))));
        }
        return Reply::sse(events, hash);
    }
    let text = pieces.concat();
    let body = completion(vec![choice(&text, Some("stop"))], Some(Some(usage)));
    Reply::json(StatusCode::OK, Bytes::from(body), Some(hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::wire::ReplyBody;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn sse_json(reply: &Reply) -> Vec<Value> {
        let ReplyBody::Sse(events) = &reply.body else {
            return Vec::new();
        };
        events
            .iter()
            .filter_map(|e| e.strip_prefix(b"data: "))
            .filter_map(|e| serde_json::from_slice(e).ok())
            .collect()
    }

    fn json_body(reply: &Reply) -> Value {
        match &reply.body {
            ReplyBody::Json(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    #[test]
    fn streamed_text_has_role_chunk_pieces_and_usage_only_when_asked() {
        let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Say hello, please!"}]});
        let reply = chat_completion(&object(body), "m-2024-07-18", &Shape::default());
        let events = sse_json(&reply);
        assert_eq!(events.len(), 1 + 10 + 1 + 1);
        assert_eq!(events[0]["choices"][0]["delta"]["content"], "");
        assert!(events.iter().all(|e| e.get("usage").is_some()));
        let usage = &events[12]["usage"];
        assert_eq!(events[12]["choices"], json!([]));
        assert_eq!(usage["prompt_tokens"], 5); // 18 chars
        assert_eq!(usage["completion_tokens"], 10);
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);

        let body = json!({"model": "m", "stream": true,
            "messages": [{"role": "user", "content": "Say hello, please!"}]});
        let reply = chat_completion(&object(body), "m", &Shape::default());
        let events = sse_json(&reply);
        assert_eq!(events.len(), 12);
        assert!(events.iter().all(|e| e.get("usage").is_none()));
        assert_eq!(events[11]["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn no_usage_and_reasoning_shapes() {
        let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]});
        let shape = Shape {
            ignore_include_usage: true,
            ..Shape::default()
        };
        let events = sse_json(&chat_completion(&object(body.clone()), "m", &shape));
        assert!(events.iter().all(|e| e.get("usage").is_none()));

        let shape = Shape {
            reasoning: true,
            chunks: Some(3),
            ..Shape::default()
        };
        let events = sse_json(&chat_completion(&object(body), "m", &shape));
        let usage = &events
            .last()
            .map(|e| e["usage"].clone())
            .unwrap_or_default();
        assert_eq!(usage["completion_tokens"], 3 + REASONING_TOKENS);
        assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 64);
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 1);
    }

    #[test]
    fn tools_produce_two_parallel_calls_with_split_arguments() {
        let body = json!({"model": "m", "stream": true,
            "messages": [{"role": "user", "content": "weather?"}],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "parameters":
                    {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "get_time"}},
                {"type": "function", "function": {"name": "never_called"}}]});
        let reply = chat_completion(&object(body.clone()), "m", &Shape::default());
        let events = sse_json(&reply);
        let calls: Vec<&Value> = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        let first: String = calls
            .iter()
            .filter(|c| c["index"] == 0)
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        assert_eq!(first, r#"{"city": "mock"}"#);
        assert!(calls.iter().filter(|c| c["index"] == 0).count() >= 4);
        assert_eq!(calls.iter().filter(|c| c["index"] == 1).count(), 2);
        assert!(calls.iter().all(|c| c["index"] != 2));
        let finish = &events[events.len() - 1]["choices"][0]["finish_reason"];
        assert_eq!(finish, "tool_calls");

        let mut plain = object(body);
        plain.remove("stream");
        let reply = json_body(&chat_completion(&plain, "m", &Shape::default()));
        let tool_calls = &reply["choices"][0]["message"]["tool_calls"];
        assert_eq!(tool_calls[1]["function"]["name"], "get_time");
        assert_eq!(tool_calls[1]["function"]["arguments"], "{}");
        assert!(tool_calls[0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_")));
        assert_eq!(reply["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn tool_results_get_a_text_answer() {
        let body = json!({"model": "m", "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": []},
                {"role": "tool", "tool_call_id": "a", "content": "1"},
                {"role": "tool", "tool_call_id": "b", "content": "2"}]});
        let reply = json_body(&chat_completion(&object(body), "m", &Shape::default()));
        let content = reply["choices"][0]["message"]["content"].as_str();
        assert!(content.is_some_and(|c| c.starts_with("Got 2 tool results")));
        assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn bad_requests_are_openai_400s() {
        for body in [
            json!({"model": "m"}),
            json!({"model": "m", "messages": []}),
            json!({"model": "m", "messages": "hi"}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "stream_options": {"include_usage": true}}),
        ] {
            let reply = chat_completion(&object(body), "m", &Shape::default());
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        }
        let reply = text_completion(&object(json!({"model": "m"})), "m", &Shape::default());
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn same_messages_same_bytes_and_id_ignores_stream_options() {
        let a = json!({"model": "m", "stream": true,
            "messages": [{"role": "user", "content": "same"}]});
        let b = json!({"model": "m", "stream": true, "stream_options": {"include_usage": false},
            "messages": [{"role": "user", "content": "same"}]});
        let render = |v: Value| match chat_completion(&object(v), "m", &Shape::default()).body {
            ReplyBody::Sse(events) => events,
            _ => Vec::new(),
        };
        assert_eq!(render(a.clone()), render(b));
        assert!(!render(a).is_empty());
    }

    #[test]
    fn legacy_completions_stream_and_usage() {
        let body = json!({"model": "m", "prompt": "Once upon", "stream": true,
            "stream_options": {"include_usage": true}});
        let shape = Shape {
            chunks: Some(3),
            ..Shape::default()
        };
        let events = sse_json(&text_completion(&object(body), "m", &shape));
        assert_eq!(events.len(), 3 + 1 + 1);
        assert_eq!(events[0]["object"], "text_completion");
        assert_eq!(events[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(events[4]["usage"]["prompt_tokens"], 3);
        assert_eq!(events[4]["usage"]["completion_tokens"], 3);

        let body = json!({"model": "m", "prompt": ["ab", [1, 2, 3]]});
        let reply = json_body(&text_completion(&object(body), "m", &Shape::default()));
        assert_eq!(reply["usage"]["prompt_tokens"], 4);
        assert_eq!(
            reply["choices"][0]["text"],
            "Hello! This is a scripted reply from the llmtap mock."
        );
    }

    #[test]
    fn chunk_count_cycles_the_reply() {
        let pieces = reply_pieces(&REPLY_WORDS, 12);
        assert_eq!(pieces[10], " Hello!");
        assert_eq!(reply_pieces(&REPLY_WORDS, 0).len(), 0);
    }
}
