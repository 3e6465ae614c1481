//! Every API traced as well as chat completions: OpenAI's Responses API and Anthropic's
//! Messages API through their official Python SDKs, Ollama's native API with plain HTTP, each
//! relayed byte for byte with one span per request and the same metrics.

mod common;

use std::time::Duration;

use common::otlp::SpanView;
use common::*;
use serde_json::{json, Value};

fn spans_named<'a>(spans: &'a [SpanView], name: &str) -> Vec<&'a SpanView> {
    let mut v: Vec<&SpanView> = spans.iter().filter(|s| s.name == name).collect();
    v.sort_by_key(|s| s.start_unix_nanos);
    v
}

fn by_response_id<'a>(spans: &'a [SpanView], id: &str) -> &'a SpanView {
    spans
        .iter()
        .find(|s| s.str_attr("gen_ai.response.id") == Some(id))
        .unwrap_or_else(|| {
            panic!(
                "no span with response id {id}:\n{}",
                common::otlp::spans_json(spans)
            )
        })
}

#[tokio::test]
async fn responses_and_anthropic_sdks_get_spans_tool_spans_and_metrics() {
    let (_up, rx, proxy) = start_traced("grpc", None, &[]).await;
    let Some(sdk) = run_sdk(
        "dialects.py",
        &proxy.url,
        &[("ANTHROPIC_BASE_URL", proxy.url.as_str())],
    )
    .await
    else {
        return;
    };
    // 3 Responses calls + 1 follow-up, 4 Anthropic calls (one failing), 2 tool spans.
    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter().filter(|s| s.name.starts_with("chat ")).count() >= 8
                    && s.iter()
                        .filter(|s| s.name.starts_with("execute_tool"))
                        .count()
                        >= 2
            },
            Duration::from_secs(15),
        )
        .await;
    let dump = common::otlp::spans_json(&spans);

    // Responses API: usage as the SDK saw it, the API type, time to first chunk on streams.
    for key in ["responses_plain", "responses_stream"] {
        let seen = &sdk[key];
        let span = by_response_id(&spans, seen["id"].as_str().unwrap());
        assert_eq!(span.name, "chat gpt-4o-mini", "{dump}");
        assert_eq!(span.str_attr("gen_ai.operation.name"), Some("chat"));
        assert_eq!(span.str_attr("gen_ai.provider.name"), Some("openai"));
        assert_eq!(span.str_attr("openai.api.type"), Some("responses"));
        assert_eq!(
            span.int_attr("gen_ai.usage.input_tokens"),
            seen["input_tokens"].as_i64()
        );
        assert_eq!(
            span.int_attr("gen_ai.usage.output_tokens"),
            seen["output_tokens"].as_i64()
        );
        assert_eq!(
            span.str_array_attr("gen_ai.response.finish_reasons"),
            Some(vec!["completed".to_string()])
        );
        assert!(span.attr("error.type").is_none(), "{dump}");
        assert!(span.attr("llmtap.usage.estimated").is_none());
        assert!(
            span.attr("llmtap.usage.injected").is_none(),
            "never injected"
        );
        assert!(!seen["text"].as_str().unwrap().is_empty());
    }
    let streamed = by_response_id(&spans, sdk["responses_stream"]["id"].as_str().unwrap());
    assert!(streamed
        .f64_attr("gen_ai.response.time_to_first_chunk")
        .is_some());
    assert!(streamed.int_attr("llmtap.response.chunk_count").unwrap() > 3);

    // Anthropic: provider, usage, stop reason; no OpenAI attribute.
    for key in ["anthropic_plain", "anthropic_stream"] {
        let seen = &sdk[key];
        let span = by_response_id(&spans, seen["id"].as_str().unwrap());
        assert_eq!(span.name, "chat claude-haiku-4-5");
        assert_eq!(span.str_attr("gen_ai.provider.name"), Some("anthropic"));
        assert!(span.attr("openai.api.type").is_none());
        assert_eq!(
            span.int_attr("gen_ai.usage.input_tokens"),
            seen["input_tokens"].as_i64()
        );
        assert_eq!(
            span.int_attr("gen_ai.usage.output_tokens"),
            seen["output_tokens"].as_i64()
        );
        assert_eq!(
            span.str_array_attr("gen_ai.response.finish_reasons"),
            Some(vec!["end_turn".to_string()])
        );
        assert_eq!(span.status_code, "unset", "{dump}");
    }
    let failed = spans_named(&spans, "chat mock-error-429");
    assert_eq!(failed.len(), 1, "{dump}");
    assert_eq!(failed[0].str_attr("error.type"), Some("rate_limit_error"));
    assert_eq!(sdk["anthropic_error"]["status"], 429);
    assert_eq!(sdk["anthropic_error"]["type"], "rate_limit_error");

    // Tool calls of both APIs became execute_tool spans closed by the results.
    let call_id = sdk["responses_tools"]["calls"][0]["call_id"]
        .as_str()
        .unwrap();
    let tool_use = sdk["anthropic_tools"]["uses"][0]["id"].as_str().unwrap();
    for id in [call_id, tool_use] {
        let t = spans
            .iter()
            .find(|s| s.str_attr("gen_ai.tool.call.id") == Some(id))
            .unwrap_or_else(|| panic!("no tool span for {id}:\n{dump}"));
        assert_eq!(t.name, "execute_tool get_weather");
        assert_eq!(t.bool_attr("llmtap.tool.result_received"), Some(true));
        assert_eq!(
            t.str_attr("gen_ai.tool.description"),
            Some("Weather for a city")
        );
    }
    assert!(sdk["responses_tools"]["final"]
        .as_str()
        .unwrap()
        .contains("Got 1 tool result"));
    assert!(sdk["anthropic_tools"]["final"]
        .as_str()
        .unwrap()
        .contains("Got 1 tool result"));

    // Metrics: the same names, with the provider of each API.
    let metrics = rx
        .wait_for_metrics(
            |m| {
                m.iter().any(|p| {
                    p.name == "gen_ai.client.token.usage"
                        && p.str_attr("gen_ai.provider.name") == Some("anthropic")
                })
            },
            Duration::from_secs(10),
        )
        .await;
    assert!(metrics
        .iter()
        .any(|p| p.name == "gen_ai.client.operation.duration"
            && p.str_attr("gen_ai.provider.name") == Some("anthropic")
            && p.str_attr("error.type") == Some("rate_limit_error")));
    proxy.stop().await;
}

#[tokio::test]
async fn ollama_native_paths_go_to_the_upstream_origin_and_are_traced() {
    let (up, rx, proxy) = start_traced("http/protobuf", None, &[]).await;
    let c = client();
    let calls = [
        (
            "/api/chat",
            json!({"model": "llama3.2", "messages": [{"role": "user", "content": "Hello"}]}),
        ),
        (
            "/api/generate",
            json!({"model": "llama3.2", "prompt": "Hello", "stream": false}),
        ),
        (
            "/api/embed",
            json!({"model": "nomic-embed-text", "input": ["a", "b"]}),
        ),
    ];
    for (path, body) in &calls {
        let direct = c
            .post(format!("{}{path}", up.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let direct_type = direct.headers()["content-type"].clone();
        let direct = direct.bytes().await.unwrap();
        let via = c
            .post(format!("{}{path}", proxy.url))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(via.status(), 200, "{path}");
        assert_eq!(via.headers()["content-type"], direct_type);
        assert_eq!(via.bytes().await.unwrap(), direct, "{path}: byte for byte");
    }
    let spans = rx
        .wait_for_spans(|s| s.len() >= 3, Duration::from_secs(10))
        .await;
    let dump = common::otlp::spans_json(&spans);
    let chat = &spans_named(&spans, "chat llama3.2")[0];
    assert_eq!(chat.str_attr("gen_ai.provider.name"), Some("ollama"));
    assert_eq!(
        chat.bool_attr("gen_ai.request.stream"),
        Some(true),
        "streams by default"
    );
    assert_eq!(chat.int_attr("gen_ai.usage.input_tokens"), Some(2));
    assert_eq!(chat.int_attr("gen_ai.usage.output_tokens"), Some(14));
    assert!(chat
        .f64_attr("gen_ai.response.time_to_first_chunk")
        .is_some());
    assert_eq!(
        chat.str_array_attr("gen_ai.response.finish_reasons"),
        Some(vec!["stop".to_string()])
    );
    assert!(chat.attr("error.type").is_none(), "{dump}");
    let generate = &spans_named(&spans, "text_completion llama3.2")[0];
    assert_eq!(generate.bool_attr("gen_ai.request.stream"), Some(false));
    assert_eq!(generate.int_attr("gen_ai.usage.output_tokens"), Some(14));
    let embed = &spans_named(&spans, "embeddings nomic-embed-text")[0];
    assert_eq!(embed.int_attr("gen_ai.usage.input_tokens"), Some(1));
    proxy.stop().await;
}

#[tokio::test]
async fn streams_of_typed_apis_relay_unchanged_and_cut_ones_are_truncated() {
    let (up, rx, proxy) = start_traced("grpc", None, &[]).await;
    let c = client();
    let cases = [
        (
            "/v1/responses",
            json!({"model": "gpt-4o-mini", "input": "Hi", "stream": true}),
        ),
        (
            "/v1/messages",
            json!({"model": "claude-haiku-4-5", "max_tokens": 32, "stream": true,
                "messages": [{"role": "user", "content": "Hi"}]}),
        ),
    ];
    for (path, body) in &cases {
        let direct = c
            .post(format!("{}{path}", up.base))
            .json(body)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let via = c
            .post(format!("{}{path}", proxy.url))
            .json(body)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(via, direct, "{path}");
    }
    // A cut Anthropic stream (no message_stop) is a truncated stream, not a success.
    let r = c
        .post(format!("{}/v1/messages", proxy.url))
        .json(
            &json!({"model": "mock-cut", "max_tokens": 32, "stream": true,
            "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .send()
        .await
        .unwrap();
    let _ = r.bytes().await;
    let spans = rx
        .wait_for_spans(|s| s.len() >= 3, Duration::from_secs(10))
        .await;
    let dump = common::otlp::spans_json(&spans);
    for s in &spans {
        if s.name == "chat mock-cut" {
            assert_eq!(s.status_code, "error", "{dump}");
        } else {
            assert!(s.attr("error.type").is_none(), "complete streams: {dump}");
        }
    }
    let cut = &spans_named(&spans, "chat mock-cut")[0];
    let error = cut.str_attr("error.type");
    assert!(
        matches!(
            error,
            Some("stream_truncated") | Some("client_disconnected")
        ),
        "{error:?}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn llmtaps_own_errors_take_the_shape_of_the_api_called() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let proxy = start_proxy(
        &dead,
        ProxyOpts {
            env: no_telemetry(),
            ..Default::default()
        },
    )
    .await;
    let c = client();
    let post = |path: &'static str, body: Value| {
        let c = c.clone();
        let url = format!("{}{path}", proxy.url);
        async move {
            let r = c.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = post(
        "/v1/messages",
        json!({"model": "claude-haiku-4-5", "max_tokens": 8, "messages": []}),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "api_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unreachable"));

    let (status, body) = post("/api/chat", json!({"model": "llama3.2", "messages": []})).await;
    assert_eq!(status, 502);
    assert!(
        body["error"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );

    let (status, body) = post("/v1/responses", json!({"model": "gpt-4o", "input": "x"})).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    proxy.stop().await;
}

/// Issue 30, point 1: facts several events of a stream carry come from the terminal one. A
/// Responses stream whose `response.created` / `.in_progress` say `service_tier: auto` and
/// whose `response.completed` says `default` (and a dated model, and the usage) is recorded
/// as the completed response says. The other dialects' golden tests cover theirs
/// (`dialect::anthropic` message_delta usage, `dialect::ollama` done line,
/// `stream::openai` last chunk).
#[tokio::test]
async fn the_terminal_event_has_the_last_word() {
    let (_up, rx, proxy) = start_traced("http/protobuf", None, &[]).await;
    let r = client()
        .post(format!("{}/v1/responses", proxy.url))
        .header("x-mock-scenario", "replay")
        .header("x-mock-replay", "openai-responses-stream-service-tier.sse")
        .json(&json!({"model": "gpt-5.1", "input": "Bonjour", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("response.completed"));
    let spans = rx
        .wait_for_spans(|s| !s.is_empty(), Duration::from_secs(10))
        .await;
    let s = &spans[0];
    let dump = common::otlp::spans_json(&spans);
    assert_eq!(
        s.str_attr("openai.response.service_tier"),
        Some("default"),
        "{dump}"
    );
    assert_eq!(
        s.str_attr("gen_ai.response.model"),
        Some("gpt-5.1-2025-11-13")
    );
    assert_eq!(
        s.str_attr("gen_ai.response.id"),
        Some("resp_llmtapTier0001")
    );
    assert_eq!(s.int_attr("gen_ai.usage.input_tokens"), Some(11));
    assert_eq!(s.int_attr("gen_ai.usage.output_tokens"), Some(9));
    assert_eq!(
        s.str_array_attr("gen_ai.response.finish_reasons"),
        Some(vec!["completed".to_string()])
    );
    proxy.stop().await;
}

/// Issue 30, point 2: every embeddings shape the dialects see gets
/// `gen_ai.embeddings.dimension.count`, the length of the vectors that came back: OpenAI's
/// float arrays and base64 strings, Ollama's `/api/embed` (`embeddings`) and its legacy
/// `/api/embeddings` (one `embedding`).
#[tokio::test]
async fn every_embeddings_shape_reports_its_dimensions() {
    let (_up, rx, proxy) = start_traced("http/protobuf", None, &[]).await;
    let c = client();
    let post = |path: &str, body: Value| {
        let req = c.post(format!("{}{path}", proxy.url)).json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let float = post(
        "/v1/embeddings",
        json!({"model": "emb-float", "input": "hello", "encoding_format": "float"}),
    )
    .await;
    let float_len = float["data"][0]["embedding"].as_array().unwrap().len() as i64;
    let b64 = post(
        "/v1/embeddings",
        json!({"model": "emb-base64", "input": ["a", "b"], "encoding_format": "base64"}),
    )
    .await;
    // Little-endian f32s: 4 bytes a dimension.
    let b64_text = b64["data"][0]["embedding"].as_str().unwrap();
    let b64_len = (b64_text.trim_end_matches('=').len() * 3 / 4 / 4) as i64;
    let embed = post(
        "/api/embed",
        json!({"model": "emb-ollama", "input": ["a", "b"]}),
    )
    .await;
    let embed_len = embed["embeddings"][0].as_array().unwrap().len() as i64;
    let legacy = post(
        "/api/embeddings",
        json!({"model": "emb-legacy", "prompt": "hello"}),
    )
    .await;
    let legacy_len = legacy["embedding"].as_array().unwrap().len() as i64;
    assert!(legacy.get("embeddings").is_none(), "{legacy}");
    let spans = rx
        .wait_for_spans(|s| s.len() >= 4, Duration::from_secs(10))
        .await;
    let dump = common::otlp::spans_json(&spans);
    for (model, want) in [
        ("emb-float", float_len),
        ("emb-base64", b64_len),
        ("emb-ollama", embed_len),
        ("emb-legacy", legacy_len),
    ] {
        let s = &spans_named(&spans, &format!("embeddings {model}"))[0];
        assert!(want > 0, "{model}");
        assert_eq!(
            s.int_attr("gen_ai.embeddings.dimension.count"),
            Some(want),
            "{model}: {dump}"
        );
        assert!(s.attr("error.type").is_none(), "{model}: {dump}");
    }
    proxy.stop().await;
}

/// Issue 30, point 7: structured output through a tool call is output, not a tool
/// execution. Each recognised shape (a forced `tool_choice` in the three APIs that have one,
/// pydantic-ai's `final_result`, a name listed under `telemetry.output_tools`) gets
/// `llmtap.output.tool` on its model span and no `execute_tool` span or tool-call point,
/// while an ordinary tool call beside them still waits for its result (and is emitted
/// unanswered at shutdown).
#[tokio::test]
async fn output_tools_are_output_not_tool_executions() {
    let yaml = r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
    provider: openai
telemetry:
  output_tools: ["emit_*"]
"#;
    let (_up, rx, proxy) = start_traced("http/protobuf", Some(yaml), &[]).await;
    let c = client();
    let tool = |name: &str| {
        json!({"type": "function", "function": {"name": name, "description": "d",
            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}})
    };
    let user = json!([{"role": "user", "content": "Extract it"}]);
    let cases: Vec<(&str, Value)> = vec![
        // instructor's TOOLS mode: one tool, tool_choice naming it.
        (
            "/v1/chat/completions",
            json!({"model": "m-instructor", "messages": user, "tools": [tool("UserInfo")],
                "tool_choice": {"type": "function", "function": {"name": "UserInfo"}}}),
        ),
        // pydantic-ai: its output tool beside a real tool, any call required.
        (
            "/v1/chat/completions",
            json!({"model": "m-pydantic", "messages": user, "stream": true,
                "tools": [tool("get_weather"), tool("final_result")], "tool_choice": "required"}),
        ),
        // A name the operator listed.
        (
            "/v1/chat/completions",
            json!({"model": "m-configured", "messages": user, "tools": [tool("emit_report")]}),
        ),
        // Anthropic's forced tool (instructor's ANTHROPIC_TOOLS).
        (
            "/v1/messages",
            json!({"model": "m-anthropic", "max_tokens": 64, "messages": user,
                "tools": [{"name": "Summary", "description": "d",
                    "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}}],
                "tool_choice": {"type": "tool", "name": "Summary"}}),
        ),
        // Responses' forced function.
        (
            "/v1/responses",
            json!({"model": "m-responses", "input": "Extract it",
                "tools": [{"type": "function", "name": "Answer", "description": "d",
                    "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}],
                "tool_choice": {"type": "function", "name": "Answer"}}),
        ),
    ];
    for (path, body) in &cases {
        let r = c
            .post(format!("{}{path}", proxy.url))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} {body}");
        let text = r.text().await.unwrap();
        let name = body["tool_choice"]["function"]["name"]
            .as_str()
            .or(body["tool_choice"]["name"].as_str())
            .unwrap_or("");
        assert!(text.contains(name), "the mock called the tool: {text}");
    }
    proxy.stop().await; // emits what is still pending, exports spans and metrics
    let spans = rx.spans();
    let dump = common::otlp::spans_json(&spans);
    let output_of = |model: &str| {
        spans_named(&spans, &format!("chat {model}"))
            .first()
            .unwrap_or_else(|| panic!("no span for {model}: {dump}"))
            .str_array_attr("llmtap.output.tool")
    };
    let one = |n: &str| Some(vec![n.to_string()]);
    assert_eq!(output_of("m-instructor"), one("UserInfo"), "{dump}");
    assert_eq!(output_of("m-pydantic"), one("final_result"), "{dump}");
    assert_eq!(output_of("m-configured"), one("emit_report"), "{dump}");
    assert_eq!(output_of("m-anthropic"), one("Summary"), "{dump}");
    assert_eq!(output_of("m-responses"), one("Answer"), "{dump}");
    let instructor = &spans_named(&spans, "chat m-instructor")[0];
    assert_eq!(instructor.str_attr("gen_ai.output.type"), Some("json"));
    // Only the real tool became an execution: pending until shutdown, then unanswered.
    let tools: Vec<&str> = spans
        .iter()
        .filter(|s| s.name.starts_with("execute_tool"))
        .filter_map(|s| s.str_attr("gen_ai.tool.name"))
        .collect();
    assert_eq!(tools, ["get_weather"], "{dump}");
    let metrics = rx.metrics();
    let counted: Vec<&str> = metrics
        .iter()
        .filter(|p| p.name == "llmtap.tool.calls" && p.value > 0.0)
        .filter_map(|p| p.str_attr("gen_ai.tool.name"))
        .collect();
    assert!(
        !counted.is_empty() && counted.iter().all(|n| *n == "get_weather"),
        "{}",
        common::otlp::metrics_json(&metrics)
    );
}
