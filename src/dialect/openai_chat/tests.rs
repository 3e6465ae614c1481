//! The Chat reader against our own and real provider recordings, and against serde parses of
//! the same chunks.

use serde_json::Value;

use super::response::summarize_body;
use super::usage::is_usage_only_chunk;
use crate::dialect::{Dialect, OpenAiChat, StreamWatcher};
use crate::stream::fixtures_for_tests as fixtures;
use crate::stream::sse::SseParser;
use crate::vocab::summary::{
    FeedOutcome, ResponseSummary, ToolCall, UpstreamError, Usage, OUTPUT_TEXT_CAP,
};

/// A watcher for a stream, as the record gets it.
fn watcher(count_only: bool) -> Box<dyn StreamWatcher> {
    OpenAiChat.stream_watcher(count_only)
}

fn accumulate(stream: &[u8]) -> ResponseSummary {
    let mut acc = watcher(false);
    let outcome = acc.feed(stream);
    assert_eq!(outcome.first_content, acc.summary().first_content_seen);
    acc.finish()
}

fn accumulate_bytewise(stream: &[u8]) -> ResponseSummary {
    let mut acc = watcher(false);
    let mut firsts = 0;
    for b in stream.chunks(1) {
        firsts += u32::from(acc.feed(b).first_content);
    }
    assert_eq!(firsts, u32::from(acc.summary().first_content_seen));
    acc.finish()
}

/// The data of every event of a fixture.
fn events(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    parser.feed(stream, |e| out.push(e.data.to_vec()));
    out
}

fn data_event_count(stream: &[u8]) -> u64 {
    events(stream)
        .iter()
        .filter(|d| d.as_slice() != b"[DONE]")
        .count() as u64
}

fn usage(input: u64, output: u64, cached: Option<u64>, reasoning: Option<u64>) -> Option<Usage> {
    Some(Usage {
        input_tokens: Some(input),
        output_tokens: Some(output),
        cache_read_input_tokens: cached,
        reasoning_output_tokens: reasoning,
        cache_write_input_tokens: None,
    })
}

fn reasons(list: &[&str]) -> Vec<Option<String>> {
    list.iter().map(|r| Some((*r).to_owned())).collect()
}

fn assert_valid_json(text: &str) {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
        panic!("not JSON ({e}): {text}");
    }
}

#[test]
fn openai_text_stream() {
    let s = fixtures::own("openai-chat-text.sse");
    let sum = accumulate(&s);
    assert_eq!(
        sum.id.as_deref(),
        Some("chatcmpl-llmtapText0001a2b3c4d5e6f7")
    );
    assert_eq!(sum.model.as_deref(), Some("gpt-4.1-nano-2025-04-14"));
    assert_eq!(sum.service_tier.as_deref(), Some("default"));
    assert_eq!(sum.system_fingerprint.as_deref(), Some("fp_11a7ab0c3d"));
    assert_eq!(sum.finish_reasons, reasons(&["stop"]));
    assert_eq!(sum.usage, usage(12, 16, Some(0), Some(0)));
    // Role chunk, 16 content chunks, finish chunk, usage chunk.
    assert_eq!(sum.chunk_count, data_event_count(&s));
    assert_eq!(sum.chunk_count, 19);
    assert!(sum.saw_done && sum.first_content_seen && !sum.parse_failed);
    assert!(sum.tool_calls.is_empty() && sum.error.is_none());
    assert_eq!(
        sum.output_text,
        ["llmtap sits between your app and the model, copying each caf\u{e9}-sized chunk."]
    );
    // Characters, not bytes: the é is two bytes.
    assert_eq!(sum.output_chars, sum.output_text[0].chars().count() as u64);
    assert_eq!(sum.output_chars + 1, sum.output_text[0].len() as u64);
}

/// The last word wins: a chunk's non-empty id, model, fingerprint and service tier
/// replace earlier ones (an empty value, like Azure's first chunk's, changes nothing).
#[test]
fn later_chunks_have_the_last_word() {
    let s = concat!(
        "data: {\"id\":\"\",\"model\":\"\",\"choices\":[],\"prompt_filter_results\":[]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o-mini\",\"service_tier\":\"auto\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"model\":\"\",\"service_tier\":\"\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
        "data: [DONE]\n\n"
    );
    let sum = accumulate(s.as_bytes());
    assert_eq!(sum.id.as_deref(), Some("chatcmpl-1"));
    assert_eq!(sum.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(sum.service_tier.as_deref(), Some("default"));
    assert_eq!(sum.system_fingerprint.as_deref(), Some("fp_2"));
    assert_eq!(sum.usage, usage(3, 1, None, None));
}

#[test]
fn openai_parallel_tool_calls() {
    let sum = accumulate(&fixtures::own("openai-chat-stream-parallel-tools.sse"));
    assert_eq!(sum.finish_reasons, reasons(&["tool_calls"]));
    assert_eq!(sum.usage, None);
    assert_eq!(sum.tool_calls.len(), 2);
    for (k, call) in sum.tool_calls.iter().enumerate() {
        assert_eq!(call.index, k as u32);
        assert!(call.id.starts_with("call_"), "{call:?}");
        assert_eq!(call.kind, "function");
        assert_eq!(call.name, "current_temperature");
        assert_valid_json(&call.arguments);
    }
    assert_eq!(
        sum.tool_calls[0].arguments,
        r#"{"city": "Lisbon", "unit": "C"}"#
    );
    assert_eq!(
        sum.tool_calls[1].arguments,
        r#"{"city": "Oslo", "unit": "C"}"#
    );

    let sum = accumulate(&fixtures::own(
        "openai-chat-stream-parallel-tools-usage.sse",
    ));
    let names: Vec<_> = sum.tool_calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["lookup_forecast", "get_store_hours"]);
    assert_eq!(sum.tool_calls[0].id, "call_llmtapForecastPorto01");
    assert_eq!(sum.tool_calls[0].arguments, r#"{"city": "Porto"}"#);
    assert_eq!(sum.tool_calls[1].arguments, "{}");
    assert_eq!(sum.usage, usage(233, 38, Some(0), Some(0)));
    assert!(sum.first_content_seen && sum.saw_done);
}

#[test]
fn openai_reasoning_usage() {
    let sum = accumulate(&fixtures::own("openai-chat-stream-reasoning-usage.sse"));
    assert_eq!(sum.usage, usage(14, 150, Some(0), Some(128)));
    assert_eq!(sum.system_fingerprint, None);
    assert_eq!(sum.finish_reasons, reasons(&["stop"]));
    assert_eq!(
        sum.output_text,
        ["Short answer: it\u{2019}s a proxy that watches tokens."]
    );
}

#[test]
fn azure_model_router() {
    let s = fixtures::own("azure-chat-model-router.sse");
    let ev = events(&s);
    assert!(
        !is_usage_only_chunk(&ev[0]),
        "prompt_filter_results chunk is not usage"
    );
    assert!(is_usage_only_chunk(&ev[ev.len() - 2]));
    let sum = accumulate(&s);
    // The first chunk's empty id/model must not stick.
    assert_eq!(
        sum.id.as_deref(),
        Some("chatcmpl-llmtapRouter0005e1f2a3b4c5")
    );
    assert_eq!(sum.model.as_deref(), Some("gpt-5-nano-2025-08-07"));
    assert_eq!(sum.usage, usage(11, 57, Some(0), Some(48)));
    assert_eq!(sum.finish_reasons, reasons(&["stop"]));
    assert_eq!(sum.output_text, ["Oslo is Norway\u{2019}s capital."]);
}

#[test]
fn azure_content_filter_streams_have_no_usage_chunk() {
    for name in [
        "azure-chat-stream-content-filter.sse",
        "azure-chat-stream-content-filter-gpt41.sse",
    ] {
        let s = fixtures::own(name);
        assert!(events(&s).iter().all(|d| !is_usage_only_chunk(d)), "{name}");
        let sum = accumulate(&s);
        assert_eq!(sum.usage, None, "{name}");
        assert_eq!(sum.finish_reasons, reasons(&["stop"]), "{name}");
        assert!(
            sum.id
                .as_deref()
                .is_some_and(|id| id.starts_with("chatcmpl-")),
            "{name}"
        );
        assert!(
            sum.output_chars > 0 && sum.first_content_seen && sum.saw_done,
            "{name}"
        );
    }
}

#[test]
fn vllm_streams() {
    let sum = accumulate(&fixtures::own("vllm-chat-stream-usage.sse"));
    assert_eq!(sum.usage, usage(29, 6, Some(16), None));
    // Only the usage chunk carries the fingerprint.
    assert!(sum
        .system_fingerprint
        .as_deref()
        .is_some_and(|f| f.starts_with("vllm-0.24.0")));
    assert_eq!(sum.output_text, ["red, green, blue"]);
    assert_eq!(sum.finish_reasons, reasons(&["stop"]));

    let sum = accumulate(&fixtures::own("vllm-chat-stream-no-usage.sse"));
    assert_eq!(sum.usage, None);
    // The last content chunk carries the finish reason too.
    assert_eq!(sum.finish_reasons, reasons(&["length"]));
    assert_eq!(sum.output_text, ["tap tap tap\n<|end"]);
    assert!(sum.saw_done && sum.output_chars > 0);
}

#[test]
fn groq_midstream_error_event() {
    let sum = accumulate(&fixtures::own("groq-chat-stream-midstream-error.sse"));
    let e = sum.error.expect("error");
    assert_eq!(e.kind.as_deref(), Some("invalid_request_error"));
    assert_eq!(e.code.as_deref(), Some("tool_use_failed"));
    assert!(e.message.is_some_and(
        |m| m.starts_with("Tool call validation failed: parameters for tool lookup_order")
    ));
    assert!(!sum.saw_done && !sum.parse_failed);
    // Only reasoning arrived, and it counts as first content.
    assert!(sum.first_content_seen);
    assert_eq!(
        sum.reasoning_chars,
        "Look up the order with the tool.".len() as u64
    );
    assert_eq!(sum.output_chars, 0);
}

#[test]
fn openrouter_midstream_error_in_a_chunk() {
    let sum = accumulate(&fixtures::own("openrouter-chat-stream-midstream-error.sse"));
    let e = sum.error.expect("error");
    assert_eq!(e.code.as_deref(), Some("400"));
    assert_eq!(e.message.as_deref(), Some("Token limit reached"));
    // The error chunk's `finish_reason: null` doesn't erase the earlier "length".
    assert_eq!(sum.finish_reasons, reasons(&["length"]));
    assert_eq!(sum.usage, usage(37, 9, Some(0), Some(7)));
    assert!(sum.saw_done && sum.first_content_seen);
}

#[test]
fn mistral_repeated_tool_index_keeps_the_name() {
    let sum = accumulate(&fixtures::own("mistral-chat-incremental-tool-call.sse"));
    assert_eq!(
        sum.tool_calls,
        [ToolCall {
            index: 0,
            id: "chatcmpl-tool-11a7ab5e0c0ffee0".into(),
            name: "docSearchTool".into(),
            kind: "function".into(),
            arguments: r#"{"query": "llmtap span names"}"#.into(),
            argument_bytes: 30,
        }]
    );
    assert_eq!(sum.usage, usage(150, 12, Some(96), None));
    assert_eq!(sum.finish_reasons, reasons(&["tool_calls"]));
}

#[test]
fn other_providers_tool_calls() {
    let sum = accumulate(&fixtures::own("groq-chat-tool-call.sse"));
    assert_eq!(sum.tool_calls.len(), 1);
    assert_eq!(
        (
            sum.tool_calls[0].name.as_str(),
            sum.tool_calls[0].arguments.as_str()
        ),
        ("local_time", "{}")
    );
    assert_eq!(sum.tool_calls[0].id, "llm7q2x9t");
    assert_eq!(sum.usage, usage(180, 13, None, None));
    for (name, arguments, expected) in [
        (
            "deepseek-chat-tool-call.sse",
            r#"{"city": "Lima"}"#,
            usage(204, 41, Some(192), Some(22)),
        ),
        (
            "xai-chat-tool-call.sse",
            r#"{"city":"Quito"}"#,
            usage(190, 18, Some(128), Some(52)),
        ),
    ] {
        let sum = accumulate(&fixtures::own(name));
        assert_eq!(sum.tool_calls.len(), 1, "{name}");
        assert_eq!(sum.tool_calls[0].name, "local_time", "{name}");
        assert_eq!(sum.tool_calls[0].arguments, arguments, "{name}");
        assert_valid_json(&sum.tool_calls[0].arguments);
        assert!(sum.reasoning_chars > 0, "{name}");
        assert_eq!(sum.usage, expected, "{name}");
        assert_eq!(sum.finish_reasons, reasons(&["tool_calls"]), "{name}");
    }
}

#[test]
fn own_crlf_keepalive_chat_stream() {
    let sum = accumulate(&fixtures::own("openai-chat-crlf-keepalive.sse"));
    assert_eq!(sum.output_text, ["Hello, world"]);
    assert_eq!(sum.chunk_count, 5);
    assert_eq!(sum.usage, usage(5, 3, None, None));
    assert_eq!(sum.finish_reasons, reasons(&["stop"]));
    assert!(sum.saw_done && !sum.parse_failed);
}

#[test]
fn feeding_parsed_events_matches_feeding_bytes() {
    let s = fixtures::own("groq-chat-stream-midstream-error.sse");
    let mut acc = watcher(false);
    let mut parser = SseParser::new();
    let mut firsts = 0;
    parser.feed(&s, |e| {
        firsts += u32::from(acc.feed_event(e.event, e.data).unwrap().first_content)
    });
    assert_eq!(firsts, 1);
    assert_eq!(acc.finish(), accumulate(&s));
}

/// Byte-at-a-time feeding gives the same summary as one feed, for every SSE fixture.
#[test]
fn bytewise_feeding_matches_whole_feed() {
    // SSE framing tests whose data is not chat JSON: only the equality applies.
    let framing_only = ["sse-crlf-keepalive.sse", "sse-cr-bom.sse"];
    for (name, s) in fixtures::all_sse() {
        let whole = accumulate(&s);
        assert!(
            !whole.parse_failed || framing_only.contains(&name.as_str()),
            "{name}"
        );
        assert_eq!(accumulate_bytewise(&s), whole, "{name}");
    }
}

#[test]
fn first_content_is_reported_once_in_the_right_feed() {
    let mut acc = watcher(false);
    let role =
        br#"data: {"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
    assert_eq!(acc.feed(role), FeedOutcome::default());
    assert_eq!(
        acc.feed(b"\n\n"),
        FeedOutcome {
            first_content: false,
            chunks: 1
        }
    );
    let hi = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    assert_eq!(
        acc.feed(hi),
        FeedOutcome {
            first_content: true,
            chunks: 1
        }
    );
    assert_eq!(
        acc.feed(hi),
        FeedOutcome {
            first_content: false,
            chunks: 1
        }
    );
    assert_eq!(acc.feed(b"data: [DONE]\n\n"), FeedOutcome::default());
    let sum = acc.finish();
    assert_eq!((sum.chunk_count, sum.saw_done), (3, true));
    assert_eq!(sum.output_text, ["HiHi"]);
}

#[test]
fn legacy_text_completion_stream() {
    let s = concat!(
        "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"choices\":[{\"text\":\"Hel\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-3.5-turbo-instruct\"}\n\n",
        "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"choices\":[{\"text\":\"lo\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}],\"model\":\"gpt-3.5-turbo-instruct\"}\n\n",
        "data: [DONE]\n\n",
    );
    let sum = accumulate(s.as_bytes());
    assert_eq!(sum.output_text, ["Hello"]);
    assert_eq!(sum.finish_reasons, reasons(&["length"]));
    assert_eq!(sum.model.as_deref(), Some("gpt-3.5-turbo-instruct"));
    assert!(sum.first_content_seen);
}

#[test]
fn several_choices() {
    let s = concat!(
        "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"b\"}},{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c0\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":1,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":1,\"finish_reason\":\"tool_calls\",\"delta\":{}},{\"index\":0,\"finish_reason\":\"stop\",\"delta\":{}}]}\n\n",
        "data: {\"choices\":[{\"index\":999999999999,\"delta\":{\"content\":\"ignored\"}}]}\n\n",
    );
    let sum = accumulate(s.as_bytes());
    assert_eq!(sum.output_text, ["a", "b"]);
    assert_eq!(sum.finish_reasons, reasons(&["stop", "tool_calls"]));
    let calls: Vec<_> = sum
        .tool_calls
        .iter()
        .map(|c| (c.id.as_str(), c.arguments.as_str()))
        .collect();
    assert_eq!(calls, [("c0", "{}"), ("c1", "{}")]);
}

#[test]
fn tool_call_delta_variants() {
    let chunk = |calls: &str| {
        format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":{calls}}}}}]}}\n\n")
    };
    // A server that reuses index 0 for a second call, with a new id.
    let s = [
        chunk(r#"[{"index":0,"id":"a","type":"function","function":{"name":"one","arguments":"{\"x\":"}}]"#),
        chunk(r#"[{"index":0,"function":{"arguments":"1}"}}]"#),
        chunk(r#"[{"index":0,"id":"b","type":"function","function":{"name":"two","arguments":"{}"}}]"#),
    ]
    .concat();
    let sum = accumulate(s.as_bytes());
    let calls: Vec<_> = sum
        .tool_calls
        .iter()
        .map(|c| {
            (
                c.index,
                c.id.as_str(),
                c.name.as_str(),
                c.arguments.as_str(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [(0, "a", "one", r#"{"x":1}"#), (0, "b", "two", "{}")]
    );

    // A server that repeats id, type and name on every delta.
    let s = [
        chunk(r#"[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{\"q\""}}]"#),
        chunk(r#"[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":":2}"}}]"#),
    ]
    .concat();
    let sum = accumulate(s.as_bytes());
    assert_eq!(sum.tool_calls.len(), 1);
    assert_eq!(
        (
            sum.tool_calls[0].name.as_str(),
            sum.tool_calls[0].arguments.as_str()
        ),
        ("f", r#"{"q":2}"#)
    );

    // Deltas without an index: matched by id, else the latest call.
    let s = [
        chunk(r#"[{"id":"a","function":{"name":"f","arguments":"{"}}]"#),
        chunk(r#"[{"function":{"arguments":"}"}}]"#),
        chunk(r#"[{"id":"b","function":{"name":"g","arguments":"[]"}}]"#),
    ]
    .concat();
    let sum = accumulate(s.as_bytes());
    let calls: Vec<_> = sum
        .tool_calls
        .iter()
        .map(|c| (c.index, c.name.as_str(), c.arguments.as_str()))
        .collect();
    assert_eq!(calls, [(0, "f", "{}"), (1, "g", "[]")]);

    // A custom tool.
    let s = chunk(
        r#"[{"index":0,"id":"c","type":"custom","custom":{"name":"sql","input":"SELECT 1"}}]"#,
    );
    let sum = accumulate(s.as_bytes());
    assert_eq!(
        (
            sum.tool_calls[0].kind.as_str(),
            sum.tool_calls[0].arguments.as_str()
        ),
        ("custom", "SELECT 1")
    );
}

#[test]
fn counting_only_keeps_the_length_not_the_text() {
    let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"héllo\"}}]}\n\n";
    let mut acc = watcher(true);
    assert!(acc.feed(stream.as_bytes()).first_content);
    let sum = acc.finish();
    assert_eq!(sum.output_chars, 5);
    assert!(sum.output_text.iter().all(String::is_empty));
}

#[test]
fn output_text_is_capped_but_counted() {
    let mut acc = watcher(false);
    // 3-byte characters, so the cap falls inside one.
    let piece = "€".repeat(100_000);
    let chunk = format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{piece}\"}}}}]}}\n\n"
    );
    for _ in 0..4 {
        acc.feed(chunk.as_bytes());
    }
    let sum = acc.finish();
    assert_eq!(sum.output_chars, 400_000);
    assert!(sum.output_text[0].len() <= OUTPUT_TEXT_CAP);
    assert!(sum.output_text[0].len() > OUTPUT_TEXT_CAP - 3);
}

#[test]
fn garbage_sets_parse_failed_and_stops() {
    let mut acc = watcher(false);
    acc.feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n");
    acc.feed(b"data: <html>502 Bad Gateway</html>\n\n");
    assert!(acc.summary().parse_failed);
    assert_eq!(
        acc.feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n"),
        FeedOutcome::default()
    );
    let sum = acc.finish();
    assert_eq!(sum.output_text, ["a"]);

    for body in [
        &b"<html>"[..],
        b"",
        b"{\"choices\":",
        b"[1,2]",
        b"{\"choices\":{}}",
        b"{\"usage\":7}",
    ] {
        assert!(
            summarize_body(body).parse_failed,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // Deterministic noise, with and without SSE framing: no panic, whatever happens.
    let mut state = 1u64;
    let mut noise = Vec::new();
    for _ in 0..200_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = (state >> 56) as u8;
        noise.push(match b % 8 {
            0 => b'\n',
            1 => b'{',
            2 => b'"',
            _ => b,
        });
    }
    accumulate(&noise);
    let framed: Vec<u8> = noise
        .chunks(50)
        .flat_map(|c| [b"data: ".as_slice(), c, b"\n\n"].concat())
        .collect();
    assert!(accumulate(&framed).parse_failed);
    assert!(summarize_body(&noise).parse_failed);
}

#[test]
fn plain_text_error_event_is_an_error_not_garbage() {
    let sum = accumulate(b"event: error\ndata: upstream overloaded\n\n");
    assert_eq!(
        sum.error.and_then(|e| e.message).as_deref(),
        Some("upstream overloaded")
    );
    assert!(!sum.parse_failed);
}

#[test]
fn odd_field_types_do_not_fail_the_chunk() {
    let s = br#"data: {"id":7,"model":null,"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"x"}],"reasoning":{"a":1}},"finish_reason":null}],"usage":{"prompt_tokens":"12","completion_tokens":3.0,"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":-1}}}

"#;
    let sum = accumulate(s);
    assert!(!sum.parse_failed);
    assert_eq!(sum.id.as_deref(), Some("7"));
    assert_eq!(sum.usage, usage(12, 3, None, None));
}

#[test]
fn json_bodies() {
    let sum = summarize_body(&fixtures::own("openai-chat-text.json"));
    assert_eq!(
        sum.id.as_deref(),
        Some("chatcmpl-llmtapJson0001f6e5d4c3b2a1")
    );
    assert_eq!(sum.model.as_deref(), Some("gpt-4.1-nano-2025-04-14"));
    assert_eq!(sum.service_tier.as_deref(), Some("default"));
    assert_eq!(sum.system_fingerprint.as_deref(), Some("fp_11a7ab0c3d"));
    assert_eq!(sum.finish_reasons, reasons(&["stop"]));
    assert_eq!(sum.usage, usage(21, 27, Some(0), Some(0)));
    assert!(sum.output_text[0].starts_with("**Tap Day:** a yearly check"));
    // `\u2014` in the JSON is one character.
    assert!(sum.output_text[0].contains("quiet\u{2014}bytes"));
    assert_eq!(sum.output_chars, sum.output_text[0].chars().count() as u64);
    assert!(sum.first_content_seen && sum.error.is_none() && !sum.parse_failed);
    assert_eq!(sum.chunk_count, 0);

    let tools = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},{"id":"call_b","type":"function","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}"#;
    let sum = summarize_body(tools);
    let calls: Vec<_> = sum
        .tool_calls
        .iter()
        .map(|c| {
            (
                c.index,
                c.id.as_str(),
                c.name.as_str(),
                c.kind.as_str(),
                c.arguments.as_str(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            (0, "call_a", "f", "function", r#"{"a":1}"#),
            (1, "call_b", "g", "function", "{}")
        ]
    );
    assert_eq!(sum.output_text, [""]);

    let completion = br#"{"id":"cmpl-1","object":"text_completion","model":"gpt-3.5-turbo-instruct","choices":[{"text":"Hi there","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
    let sum = summarize_body(completion);
    assert_eq!(sum.output_text, ["Hi there"]);
    assert_eq!(sum.usage, usage(3, 2, None, None));

    let embeddings = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023,-0.0093,1e-5]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    let sum = summarize_body(embeddings);
    assert_eq!(sum.model.as_deref(), Some("text-embedding-3-small"));
    assert_eq!(sum.embedding_dimensions, Some(3));
    // base64 of four little-endian f32s (16 bytes), then a second item that is skipped.
    let b64 = br#"{"object":"list","data":[{"embedding":"AAAAAAAAgD8AAABAAABAQA=="},{"embedding":"x"}],"model":"m"}"#;
    assert_eq!(summarize_body(b64).embedding_dimensions, Some(4));
    // A `data` of another shape is no embeddings list, and no parse failure.
    let odd = summarize_body(br#"{"data":"text","model":"m"}"#);
    assert!(!odd.parse_failed && odd.embedding_dimensions.is_none());
    assert_eq!(
        sum.usage,
        Some(Usage {
            input_tokens: Some(8),
            ..Usage::default()
        })
    );
    assert!(sum.finish_reasons.is_empty() && sum.output_text.is_empty() && !sum.first_content_seen);
}

#[test]
fn error_bodies() {
    let cases = [
        (
            "openai-error-400-invalid-image-url.json",
            Some("invalid_request_error"),
            Some("invalid_image_url"),
            "Error while downloading https://example.com/llmtap/",
        ),
        (
            "openai-error-400-unsupported-value.json",
            Some("invalid_request_error"),
            Some("unsupported_value"),
            "Unsupported value: 'temperature'",
        ),
        (
            "openai-error-404-model-not-found.json",
            Some("invalid_request_error"),
            Some("model_not_found"),
            "The model `gpt-llmtap-missing`",
        ),
        (
            "azure-error-404-deployment-not-found.json",
            Some("invalid_request_error"),
            Some("DeploymentNotFound"),
            "The API deployment for this resource does not exist.",
        ),
        (
            "openrouter-error-429-rate-limited.json",
            None,
            Some("429"),
            "Provider returned error",
        ),
        (
            "anthropic-error-400-invalid-request.json",
            Some("invalid_request_error"),
            None,
            "This model does not support the llmtap-test",
        ),
    ];
    for (name, kind, code, message) in cases {
        let sum = summarize_body(&fixtures::own(name));
        let e = sum.error.unwrap_or_else(|| panic!("{name}: no error"));
        assert_eq!(
            (e.kind.as_deref(), e.code.as_deref()),
            (kind, code),
            "{name}"
        );
        assert!(
            e.message.as_deref().is_some_and(|m| m.starts_with(message)),
            "{name}: {e:?}"
        );
        assert!(!sum.parse_failed && sum.usage.is_none(), "{name}");
    }
    let sum = summarize_body(
        br#"{"error":{"message":"m","type":"server_error","param":null,"code":null}}"#,
    );
    assert_eq!(
        sum.error,
        Some(UpstreamError {
            message: Some("m".into()),
            kind: Some("server_error".into()),
            code: None,
        })
    );
    // vLLM's flat error shape and a bare string.
    let sum = summarize_body(
        br#"{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}"#,
    );
    let e = sum.error.expect("vllm error");
    assert_eq!(
        (e.message.as_deref(), e.kind.as_deref(), e.code.as_deref()),
        (Some("bad"), Some("BadRequestError"), Some("400"))
    );
    let sum = summarize_body(br#"{"error":"Unauthorized"}"#);
    assert_eq!(
        sum.error.and_then(|e| e.message).as_deref(),
        Some("Unauthorized")
    );
    assert!(summarize_body(br#"{"error":null,"choices":[]}"#)
        .error
        .is_none());
}

/// JSON values of any shape, nested a little, with the keys a chunk has now and then.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop_oneof![
        Just("choices".to_string()),
        Just("delta".to_string()),
        Just("content".to_string()),
        Just("usage".to_string()),
        Just("tool_calls".to_string()),
        Just("finish_reason".to_string()),
        Just("index".to_string()),
        Just("error".to_string()),
        Just("model".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    /// Any JSON as a stream chunk or as a whole body is summarised without a panic.
    #[test]
    fn any_json_never_panics(values in proptest::collection::vec(any_json(), 1..6)) {
        let mut acc = watcher(false);
        for v in &values {
            acc.feed(format!("data: {v}\n\n").as_bytes());
            let _ = summarize_body(v.to_string().as_bytes());
        }
        acc.feed(b"data: [DONE]\n\n");
        let _ = acc.finish();
    }

    /// Any bytes as a stream never panic either.
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let mut acc = watcher(false);
        acc.feed(&bytes);
        let _ = acc.finish();
        let _ = summarize_body(&bytes);
    }
}
