//! Every API traced as well as chat completions: OpenAI's Responses API and Anthropic's
//! Messages API through their official Python SDKs, Ollama's native API with plain HTTP, each
//! relayed byte for byte with one span per request and the same metrics.

mod common;

use std::time::Duration;

use common::otlp::{span_with_response_id, SpanView};
use common::*;
use serde_json::{json, Value};

fn spans_named<'a>(spans: &'a [SpanView], name: &str) -> Vec<&'a SpanView> {
    let mut v: Vec<&SpanView> = spans.iter().filter(|s| s.name == name).collect();
    v.sort_by_key(|s| s.start_unix_nanos);
    v
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
        let span = span_with_response_id(&spans, seen["id"].as_str().unwrap());
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
    let streamed = span_with_response_id(&spans, sdk["responses_stream"]["id"].as_str().unwrap());
    assert!(streamed
        .f64_attr("gen_ai.response.time_to_first_chunk")
        .is_some());
    assert!(streamed.int_attr("llmtap.response.chunk_count").unwrap() > 3);

    // Anthropic: provider, usage, stop reason; no OpenAI attribute.
    for key in ["anthropic_plain", "anthropic_stream"] {
        let seen = &sdk[key];
        let span = span_with_response_id(&spans, seen["id"].as_str().unwrap());
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

/// The JSON Schemas of `open-telemetry/semantic-conventions-genai` for the content
/// attributes, vendored under tests/fixtures/genai-schemas/ (see tests/fixtures/README.md).
fn genai_schema(name: &str) -> Value {
    let path = repo()
        .join("tests/fixtures/genai-schemas")
        .join(format!("gen-ai-{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The keywords the vendored schemas use. Annotations are skipped; every other keyword is
/// checked by [`validate`], and a schema using any keyword not listed fails the test rather
/// than being validated loosely.
const ANNOTATIONS: &[&str] = &["description", "title", "default", "format", "deprecated"];
const CHECKED: &[&str] = &[
    "$defs",
    "$ref",
    "anyOf",
    "oneOf",
    "const",
    "enum",
    "type",
    "required",
    "properties",
    "items",
    "additionalProperties",
];

fn schema_keywords_are_all_checked(schema: &Value) {
    match schema {
        Value::Object(m) => {
            for (k, v) in m {
                assert!(
                    ANNOTATIONS.contains(&k.as_str()) || CHECKED.contains(&k.as_str()),
                    "schema keyword {k} is not checked"
                );
                match k.as_str() {
                    "properties" | "$defs" => v
                        .as_object()
                        .unwrap()
                        .values()
                        .for_each(schema_keywords_are_all_checked),
                    "additionalProperties" => assert_eq!(v, &Value::Bool(true)),
                    "anyOf" | "oneOf" => v
                        .as_array()
                        .unwrap()
                        .iter()
                        .for_each(schema_keywords_are_all_checked),
                    "items" => schema_keywords_are_all_checked(v),
                    _ => {}
                }
            }
        }
        Value::Bool(_) => {}
        other => panic!("not a schema: {other}"),
    }
}

/// Validates `v` against `schema` (a subschema of `root`), pushing what fails onto `errs`.
fn validate(root: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        match r.strip_prefix("#/$defs/") {
            Some(name) => validate(root, &root["$defs"][name], v, at, errs),
            // Tool parameters: a draft-07 JSON Schema document, which is an object or a bool.
            None if r == "http://json-schema.org/draft-07/schema#" => {
                if !(v.is_object() || v.is_boolean()) {
                    errs.push(format!("{at}: not a JSON Schema: {v}"));
                }
            }
            None => errs.push(format!("{at}: unknown $ref {r}")),
        }
    }
    let ok = |sub: &Value| {
        let mut e = Vec::new();
        validate(root, sub, v, at, &mut e);
        e.is_empty()
    };
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        if !any.iter().any(ok) {
            errs.push(format!("{at}: matches none of anyOf: {v}"));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let n = one.iter().filter(|sub| ok(sub)).count();
        if n != 1 {
            errs.push(format!("{at}: matches {n} of oneOf: {v}"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errs.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errs.push(format!("{at}: {v} not in {e:?}"));
        }
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let is = |t: &str| match t {
            "string" => v.is_string(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            "null" => v.is_null(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => false,
        };
        if !types.iter().any(|t| is(t)) {
            errs.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let (Some(req), Some(obj)) = (s.get("required").and_then(Value::as_array), v.as_object()) {
        for k in req.iter().filter_map(Value::as_str) {
            if !obj.contains_key(k) {
                errs.push(format!("{at}: missing required {k}: {v}"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (
        s.get("properties").and_then(Value::as_object),
        v.as_object(),
    ) {
        for (k, sub) in props {
            if let Some(x) = obj.get(k) {
                validate(root, sub, x, &format!("{at}.{k}"), errs);
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(root, items, x, &format!("{at}[{i}]"), errs);
        }
    }
}

/// The schema's definition for a part of `type`, when it has a specific one (the schemas
/// accept any part through `GenericPart`; this holds llmtap's parts to their own shape).
fn part_definition(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "text" => "TextPart",
        "tool_call" => "ToolCallRequestPart",
        "tool_call_response" => "ToolCallResponsePart",
        "uri" => "UriPart",
        "blob" => "BlobPart",
        "file" => "FilePart",
        "reasoning" => "ReasoningPart",
        _ => return None,
    })
}

/// Issue 30, point 5: what every dialect exports as content validates against the genai
/// repo's JSON Schemas (input and output messages, system instructions, tool definitions),
/// for plain, streamed, tool-loop, reasoning and image-part requests, and each part against
/// the schema's definition for its type.
#[tokio::test]
async fn exported_content_validates_against_the_genai_schemas() {
    let schemas: Vec<(&str, Value)> = [
        ("gen_ai.input.messages", "input-messages"),
        ("gen_ai.output.messages", "output-messages"),
        ("gen_ai.system_instructions", "system-instructions"),
        ("gen_ai.tool.definitions", "tool-definitions"),
    ]
    .into_iter()
    .map(|(k, f)| (k, genai_schema(f)))
    .collect();
    for (_, s) in &schemas {
        schema_keywords_are_all_checked(s);
    }
    // The validator fails what the schemas reject.
    let rejects = |schema: &Value, sub: &Value, v: Value| {
        let mut e = Vec::new();
        validate(schema, sub, &v, "negative", &mut e);
        assert!(!e.is_empty(), "accepted {v}");
    };
    let (input, defs) = (&schemas[0].1, &schemas[3].1);
    rejects(input, input, json!([{"role": "user"}]));
    rejects(
        input,
        input,
        json!([{"role": "user", "parts": [{"content": "no type"}]}]),
    );
    rejects(input, &input["$defs"]["TextPart"], json!({"type": "text"}));
    rejects(
        input,
        &input["$defs"]["UriPart"],
        json!({"type": "uri", "uri": "https://x"}),
    );
    rejects(defs, defs, json!([{"type": "function", "name": null}]));
    let (_up, rx, proxy) = start_traced(
        "http/protobuf",
        None,
        &[(
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
            "SPAN_ONLY",
        )],
    )
    .await;
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let fn_tool = json!({"type": "function", "function": {"name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}});
    let flat_tool = json!({"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
    let claude_tool = json!({"name": "get_weather", "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}});
    let image_parts = json!([
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}}
    ]);
    let chat = "/v1/chat/completions";
    let calls: Vec<(&str, Value)> = vec![
        // OpenAI Chat: plain, streamed, reasoning, image parts, tool loop (both turns).
        (
            chat,
            json!({"model": "schema-chat", "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
        ),
        (
            chat,
            json!({"model": "schema-chat", "stream": true,
            "messages": [{"role": "user", "content": "Hi"}]}),
        ),
        (
            chat,
            json!({"model": "mock-reasoning", "reasoning_effort": "low", "stream": true,
            "messages": [{"role": "user", "content": "Think"}]}),
        ),
        (
            chat,
            json!({"model": "schema-chat", "messages": [{"role": "user", "content": image_parts}]}),
        ),
        (
            chat,
            json!({"model": "schema-chat", "tools": [fn_tool],
            "messages": [{"role": "user", "content": "Weather in Lyon?"}]}),
        ),
        (
            chat,
            json!({"model": "schema-chat", "tools": [fn_tool], "messages": [
            {"role": "user", "content": "Weather in Lyon?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}]}),
        ),
        // Responses: plain with instructions, streamed, reasoning, image, tool loop.
        (
            "/v1/responses",
            json!({"model": "schema-resp", "instructions": "Be brief.", "input": "Hi"}),
        ),
        (
            "/v1/responses",
            json!({"model": "schema-resp", "input": "Hi", "stream": true,
            "reasoning": {"effort": "low"}}),
        ),
        (
            "/v1/responses",
            json!({"model": "schema-resp", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": format!("data:image/png;base64,{png}")},
            {"type": "input_image", "image_url": "https://example.com/dog.jpg"}]}]}),
        ),
        (
            "/v1/responses",
            json!({"model": "schema-resp", "tools": [flat_tool, {"type": "web_search"}],
            "input": "Weather in Lyon?"}),
        ),
        (
            "/v1/responses",
            json!({"model": "schema-resp", "tools": [flat_tool], "input": [
            {"role": "user", "content": "Weather in Lyon?"},
            {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"},
            {"type": "function_call_output", "call_id": "call_2", "output": "18 C"}]}),
        ),
        // Anthropic: system, streamed, thinking, image blocks, tool loop.
        (
            "/v1/messages",
            json!({"model": "schema-claude", "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "schema-claude", "max_tokens": 64, "stream": true,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "Think"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "schema-claude", "max_tokens": 64, "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/owl.png"}}]}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "schema-claude", "max_tokens": 64, "tools": [claude_tool],
            "messages": [{"role": "user", "content": "Weather in Lyon?"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "schema-claude", "max_tokens": 64, "tools": [claude_tool],
            "messages": [
                {"role": "user", "content": "Weather in Lyon?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Use the tool.", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lyon"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"}]}]}),
        ),
        // Ollama native: plain with system, streamed, image, tool loop.
        (
            "/api/chat",
            json!({"model": "schema-ollama", "stream": false, "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
        ),
        (
            "/api/chat",
            json!({"model": "schema-ollama", "think": true,
            "messages": [{"role": "user", "content": "Hi"}]}),
        ),
        (
            "/api/chat",
            json!({"model": "schema-ollama", "stream": false, "messages": [
            {"role": "user", "content": "What is this?", "images": [png]}]}),
        ),
        (
            "/api/chat",
            json!({"model": "schema-ollama", "stream": false, "tools": [fn_tool], "messages": [
            {"role": "user", "content": "Weather in Lyon?"},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather",
                "arguments": {"city": "Lyon"}}}]},
            {"role": "tool", "content": "18 C"}]}),
        ),
        (
            "/api/generate",
            json!({"model": "schema-ollama", "system": "Be brief.", "prompt": "Hi",
            "stream": false}),
        ),
    ];
    let c = client();
    for (path, body) in &calls {
        let r = c
            .post(format!("{}{path}", proxy.url))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}: {body}");
        let _ = r.bytes().await;
    }
    let spans = rx
        .wait_for_spans(|s| s.len() >= calls.len(), Duration::from_secs(15))
        .await;
    let mut errs = Vec::new();
    let mut seen_parts = std::collections::BTreeSet::new();
    let mut checked = 0;
    for s in spans.iter().filter(|s| !s.name.starts_with("execute_tool")) {
        for (key, schema) in &schemas {
            let Some(text) = s.str_attr(key) else {
                continue;
            };
            let v: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("{} {key} does not parse ({e}): {text}", s.name));
            let at = format!("{} {key}", s.name);
            validate(schema, schema, &v, &at, &mut errs);
            checked += 1;
            // Parts: messages' `parts`, or the system instructions' items themselves.
            let parts: Vec<&Value> = if *key == "gen_ai.system_instructions" {
                v.as_array().unwrap().iter().collect()
            } else if *key == "gen_ai.tool.definitions" {
                Vec::new()
            } else {
                v.as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|m| m["parts"].as_array().unwrap().iter())
                    .collect()
            };
            for p in parts {
                let kind = p["type"].as_str().unwrap_or("");
                seen_parts.insert(format!("{key}:{kind}"));
                if let Some(def) = part_definition(kind) {
                    assert!(schema["$defs"].get(def).is_some(), "{key} has no {def}");
                    validate(
                        schema,
                        &schema["$defs"][def],
                        p,
                        &format!("{at} {kind}"),
                        &mut errs,
                    );
                }
            }
        }
    }
    assert!(
        errs.is_empty(),
        "{} schema errors:\n{}",
        errs.len(),
        errs.join("\n")
    );
    for want in [
        "gen_ai.input.messages:text",
        "gen_ai.input.messages:uri",
        "gen_ai.input.messages:blob",
        "gen_ai.input.messages:tool_call",
        "gen_ai.input.messages:tool_call_response",
        "gen_ai.input.messages:reasoning",
        "gen_ai.output.messages:text",
        "gen_ai.output.messages:tool_call",
        "gen_ai.system_instructions:text",
    ] {
        assert!(
            seen_parts.contains(want),
            "no {want} exported: {seen_parts:?}"
        );
    }
    let defs = spans
        .iter()
        .filter(|s| s.attr("gen_ai.tool.definitions").is_some())
        .count();
    assert!(
        defs >= 4 && checked > 2 * calls.len(),
        "{defs} tool definitions, {checked} checked"
    );
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
