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

#[tokio::test]
async fn ollama_native_tool_calls_without_ids_get_tool_spans_closed_by_the_next_request() {
    let (_up, rx, proxy) = start_traced("grpc", None, &[]).await;
    let c = client();
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let first = json!({"model": "qwen3", "stream": false, "tools": tools,
        "messages": [{"role": "user", "content": "Weather in Lyon?"}]});
    let r: Value = c
        .post(format!("{}/api/chat", proxy.url))
        .json(&first)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls = r["message"]["tool_calls"].clone();
    assert_eq!(calls[0]["function"]["name"], "get_weather", "{r}");
    assert!(
        calls[0].get("id").is_none(),
        "Ollama's native calls carry no id"
    );
    let second = json!({"model": "qwen3", "stream": false, "tools": tools, "messages": [
        {"role": "user", "content": "Weather in Lyon?"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "tool_name": "get_weather", "content": "18 C"}]});
    let r = c
        .post(format!("{}/api/chat", proxy.url))
        .json(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await;
    let spans = rx
        .wait_for_spans(
            |s| s.iter().any(|s| s.name == "execute_tool get_weather"),
            Duration::from_secs(10),
        )
        .await;
    let dump = common::otlp::spans_json(&spans);
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool get_weather")
        .unwrap();
    assert_eq!(
        tool.bool_attr("llmtap.tool.result_received"),
        Some(true),
        "{dump}"
    );
    assert!(tool.attr("gen_ai.tool.call.id").is_none(), "{dump}");
    assert_eq!(
        tool.str_attr("gen_ai.tool.description"),
        Some("Weather for a city")
    );
    proxy.stop().await;
}
