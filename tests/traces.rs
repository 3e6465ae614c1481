//! gen_ai spans as exported over OTLP to a receiver in the test, driven by the official
//! Python SDK and by plain HTTP. Assertions read only what was exported.

mod common;

use std::time::{Duration, Instant};

use common::otlp::{spans_json, SpanView};
use common::*;
use serde_json::{json, Value};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

fn by_name<'a>(spans: &'a [SpanView], name: &str) -> Vec<&'a SpanView> {
    spans.iter().filter(|s| s.name == name).collect()
}

const BAGGAGE_YAML: &str = r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
    provider: openai
telemetry:
  baggage_attributes: [tenant, user.id]
"#;

#[tokio::test]
async fn sdk_calls_become_gen_ai_spans_in_the_callers_trace() {
    let (up, rx, proxy) = start_traced("http/protobuf", Some(BAGGAGE_YAML), &[]).await;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let Some(sdk) = run_sdk(
        "e2e.py",
        &proxy.url,
        &[
            ("E2E_TRACEPARENT", &traceparent),
            ("E2E_BAGGAGE", "tenant=acme,user.id=u-42,secret=x"),
        ],
    )
    .await
    else {
        return;
    };
    let spans = rx
        .wait_for_spans(|s| s.len() >= 5, Duration::from_secs(10))
        .await;
    let dump = spans_json(&spans);
    assert_eq!(
        spans.len(),
        5,
        "plain, stream, stream+usage, embeddings, 429 — models.list has no span:\n{dump}"
    );

    for s in &spans {
        assert_eq!(s.kind, "client", "{dump}");
        assert_eq!(
            s.trace_id, TRACE_ID,
            "span must continue the caller's trace"
        );
        assert_eq!(s.parent_span_id, PARENT_SPAN);
        assert_eq!(s.str_attr("gen_ai.provider.name"), Some("openai"));
        assert_eq!(s.str_attr("server.address"), Some("127.0.0.1"));
        assert!(s.int_attr("server.port").is_some());
        assert_eq!(s.str_attr("tenant"), Some("acme"));
        assert_eq!(s.str_attr("user.id"), Some("u-42"));
        assert!(
            s.attr("secret").is_none(),
            "unconfigured baggage key exported"
        );
        assert_eq!(
            s.resource_attr("service.name").and_then(|v| v.as_str()),
            Some("llmtap")
        );
    }
    // Default export holds no message text and no credential.
    for needle in [
        "bob@example.com",
        "Say hello",
        "sk-test-not-a-real-key",
        "Bearer",
    ] {
        assert!(
            !dump.contains(needle),
            "{needle:?} exported by default:\n{dump}"
        );
    }

    let chats = by_name(&spans, "chat gpt-4o-mini");
    assert_eq!(chats.len(), 3, "{dump}");
    let plain = chats
        .iter()
        .find(|s| s.bool_attr("gen_ai.request.stream").is_none())
        .unwrap();
    let sdk_plain = &sdk["plain"];
    assert_eq!(plain.str_attr("gen_ai.operation.name"), Some("chat"));
    assert_eq!(plain.str_attr("gen_ai.request.model"), Some("gpt-4o-mini"));
    assert_eq!(
        plain.str_attr("gen_ai.response.model"),
        sdk_plain["model"].as_str()
    );
    assert_ne!(
        plain.str_attr("gen_ai.response.model"),
        Some("gpt-4o-mini"),
        "version drift visible"
    );
    assert_eq!(
        plain.str_attr("gen_ai.response.id"),
        sdk_plain["id"].as_str()
    );
    assert_eq!(plain.f64_attr("gen_ai.request.temperature"), Some(0.2));
    assert_eq!(plain.int_attr("gen_ai.request.max_tokens"), Some(50));
    assert_eq!(
        plain.str_array_attr("gen_ai.response.finish_reasons"),
        Some(vec!["stop".to_string()])
    );
    assert_eq!(
        plain.int_attr("gen_ai.usage.input_tokens"),
        sdk_plain["usage"]["prompt_tokens"].as_i64()
    );
    assert_eq!(
        plain.int_attr("gen_ai.usage.output_tokens"),
        sdk_plain["usage"]["completion_tokens"].as_i64()
    );
    assert_eq!(
        plain.int_attr("gen_ai.usage.cache_read.input_tokens"),
        Some(0)
    );
    assert_eq!(
        plain.str_attr("openai.response.system_fingerprint"),
        Some("fp_mock")
    );
    assert_eq!(plain.int_attr("llmtap.prompt.messages"), Some(1));
    assert_eq!(plain.int_attr("llmtap.prompt.length"), Some(42));
    assert_eq!(plain.str_attr("llmtap.prompt.hash").map(str::len), Some(64));
    assert_eq!(plain.status_code, "unset");

    // The stream the client did not ask usage for: the SDK never saw the injected chunk,
    // and the span has usage all the same.
    let s = &sdk["stream_no_usage"];
    assert_eq!(s["empty_choices"], 0, "{s}");
    assert_eq!(s["usage_seen"], 0, "{s}");
    let injected = chats
        .iter()
        .find(|s| s.bool_attr("llmtap.usage.injected") == Some(true))
        .unwrap_or_else(|| panic!("no injected span:\n{dump}"));
    assert!(injected
        .int_attr("gen_ai.usage.input_tokens")
        .is_some_and(|n| n > 0));
    assert!(injected
        .int_attr("gen_ai.usage.output_tokens")
        .is_some_and(|n| n > 0));
    assert!(injected.bool_attr("llmtap.usage.estimated").is_none());
    // 1 role chunk + 10 content chunks + 1 finish chunk + 1 usage chunk, [DONE] excluded.
    assert_eq!(injected.int_attr("llmtap.response.chunk_count"), Some(13));
    println!(
        "--- a streamed request's exported span ---\n{}",
        serde_json::to_string_pretty(&injected.to_json()).unwrap()
    );
    let ttfc = injected
        .f64_attr("gen_ai.response.time_to_first_chunk")
        .unwrap();
    assert!(
        ttfc > 0.0 && ttfc <= injected.duration_secs(),
        "ttfc {ttfc}"
    );

    let asked = chats
        .iter()
        .find(|s| {
            s.bool_attr("gen_ai.request.stream") == Some(true)
                && s.bool_attr("llmtap.usage.injected").is_none()
        })
        .unwrap();
    assert_eq!(
        asked.int_attr("gen_ai.usage.output_tokens"),
        sdk["stream_usage"]["usage"]["completion_tokens"].as_i64()
    );

    let emb = by_name(&spans, "embeddings text-embedding-3-small");
    assert_eq!(emb.len(), 1, "{dump}");
    assert_eq!(
        emb[0].int_attr("gen_ai.usage.input_tokens"),
        sdk["embeddings"]["usage"]["prompt_tokens"].as_i64()
    );

    let limited = by_name(&spans, "chat mock-error-429");
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].status_code, "error");
    assert_eq!(
        limited[0].str_attr("error.type"),
        Some("rate_limit_exceeded")
    );
    assert_eq!(sdk["rate_limit"]["raised"], "RateLimitError");
    assert!(sdk["rate_limit"]["message"]
        .as_str()
        .unwrap()
        .contains("Rate limit reached"));

    // The upstream got a traceparent of this trace whose parent is the inference span.
    let reqs = up.mock.requests();
    let chat_req = reqs
        .iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    let tp = chat_req
        .headers
        .iter()
        .find(|(k, _)| k == "traceparent")
        .map(|(_, v)| v.clone())
        .unwrap();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts[1], TRACE_ID);
    assert!(
        spans.iter().any(|s| s.span_id == parts[2]),
        "upstream parent {tp} is not one of our spans"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn streamed_tool_calls_get_execute_tool_spans_covering_the_apps_work() {
    let (_up, rx, proxy) = start_traced("grpc", None, &[]).await;
    let Some(sdk) = run_sdk("tools.py", &proxy.url, &[("TOOL_SLEEP", "0.4")]).await else {
        return;
    };
    assert_eq!(sdk["arguments_json"], true, "{sdk}");
    assert_eq!(sdk["finish"], "tool_calls");
    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter()
                    .filter(|s| s.name.starts_with("execute_tool"))
                    .count()
                    >= 2
            },
            Duration::from_secs(10),
        )
        .await;
    let dump = spans_json(&spans);
    let chats = by_name(&spans, "chat gpt-4o-mini");
    assert_eq!(chats.len(), 2, "{dump}");
    let first = chats.iter().min_by_key(|s| s.start_unix_nanos).unwrap();
    let second = chats.iter().max_by_key(|s| s.start_unix_nanos).unwrap();
    assert_eq!(
        first.str_array_attr("gen_ai.response.finish_reasons"),
        Some(vec!["tool_calls".to_string()])
    );
    let tools: Vec<&SpanView> = spans
        .iter()
        .filter(|s| s.name.starts_with("execute_tool "))
        .collect();
    assert_eq!(tools.len(), 2, "{dump}");
    let calls = sdk["calls"].as_array().unwrap();
    for call in calls {
        let id = call["id"].as_str().unwrap();
        let t = tools
            .iter()
            .find(|t| t.str_attr("gen_ai.tool.call.id") == Some(id))
            .unwrap_or_else(|| panic!("no tool span for {id}:\n{dump}"));
        assert_eq!(
            t.name,
            format!("execute_tool {}", call["name"].as_str().unwrap())
        );
        assert_eq!(t.kind, "internal");
        assert_eq!(t.str_attr("gen_ai.operation.name"), Some("execute_tool"));
        assert_eq!(t.str_attr("gen_ai.tool.type"), Some("function"));
        assert_eq!(t.bool_attr("llmtap.tool.result_received"), Some(true));
        assert_eq!(
            t.parent_span_id, first.span_id,
            "tool span's parent is the chat that requested it"
        );
        assert_eq!(t.trace_id, first.trace_id);
        assert!(
            t.duration_secs() >= 0.4,
            "tool span {} s shorter than the app's sleep",
            t.duration_secs()
        );
        assert!(t.start_unix_nanos >= first.end_unix_nanos);
        assert!(t.end_unix_nanos <= second.start_unix_nanos);
        // Arguments are content: not exported by default.
        assert!(t.attr("gen_ai.tool.call.arguments").is_none());
    }
    proxy.stop().await;
}

#[tokio::test]
async fn failures_end_the_span_once_with_the_right_error() {
    let (_up, rx, proxy) = start_traced("http/json", None, &[]).await;
    let Some(sdk) = run_sdk("failures.py", &proxy.url, &[]).await else {
        return;
    };
    assert!(
        sdk["cut"]["error"].is_string(),
        "SDK must see the cut stream as an error: {sdk}"
    );
    let spans = rx
        .wait_for_spans(|s| s.len() >= 2, Duration::from_secs(10))
        .await;
    let dump = spans_json(&spans);
    let cut = by_name(&spans, "chat mock-cut");
    assert_eq!(cut.len(), 1, "{dump}");
    assert_eq!(cut[0].status_code, "error");
    assert_eq!(cut[0].str_attr("error.type"), Some("stream_truncated"));
    // Partial usage is estimated from the text seen rather than recorded as nothing, and
    // kept apart from the usage names: the upstream reported none.
    assert_eq!(cut[0].bool_attr("llmtap.usage.estimated"), Some(true));
    assert!(cut[0]
        .int_attr("llmtap.usage.estimated.output_tokens")
        .is_some_and(|n| n > 0));
    assert!(
        cut[0].attr("gen_ai.usage.output_tokens").is_none(),
        "{dump}"
    );
    let gone = by_name(&spans, "chat mock-slow");
    assert_eq!(gone.len(), 1, "{dump}");
    assert_eq!(gone[0].status_code, "error");
    assert_eq!(gone[0].str_attr("error.type"), Some("client_disconnected"));
    // Nothing else shows up later (ended exactly once).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.spans().len(), 2, "{}", spans_json(&rx.spans()));
    proxy.stop().await;
}

#[tokio::test]
async fn content_capture_is_opt_in_redacted_and_truncated() {
    let yaml = r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
telemetry:
  content_max_chars: 200
"#;
    let (_up, rx, proxy) = start_traced(
        "http/protobuf",
        Some(yaml),
        &[("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")],
    )
    .await;
    let long = "z".repeat(500);
    let body = json!({"model": "gpt-4o", "stream": true, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": format!("mail alice@example.org, key sk-abcdefghijklmnop. {long}")}
    ]});
    let text = post_chat(
        &proxy.url,
        body,
        &[("x-llmtap-prompt-template", "greeting-v2")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(text.contains("[DONE]"));
    let spans = rx
        .wait_for_spans(|s| !s.is_empty(), Duration::from_secs(10))
        .await;
    let s = &spans[0];
    let input = s
        .str_attr("gen_ai.input.messages")
        .expect("input messages captured");
    assert!(input.contains("[REDACTED_EMAIL]"), "{input}");
    assert!(
        !input.contains("alice@example.org") && !input.contains("sk-abcdefghijklmnop"),
        "{input}"
    );
    // Cut by leaf: the message text is cut (and marked), the JSON still parses.
    let messages: Value = serde_json::from_str(input).expect("truncated content parses");
    let text = messages[1]["parts"][0]["content"].as_str().unwrap();
    assert!(
        text.ends_with("…[truncated]") && text.chars().count() <= 200 + 12,
        "{input}"
    );
    // The system prompt stays in the input messages (chat completions carry it there).
    assert_eq!(messages[0]["role"], "system", "{input}");
    assert_eq!(
        messages[0]["parts"][0]["content"], "You are terse.",
        "{input}"
    );
    assert!(s.str_attr("gen_ai.system_instructions").is_none());
    let output: Value =
        serde_json::from_str(s.str_attr("gen_ai.output.messages").unwrap()).unwrap();
    assert_eq!(output[0]["role"], "assistant");
    assert!(
        output[0]["parts"][0]["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello!"),
        "{output}"
    );
    // v1.41.1 (the default) requires each output message's finish_reason.
    assert_eq!(output[0]["finish_reason"], "stop", "{output}");
    assert_eq!(s.str_attr("llmtap.prompt.template"), Some("greeting-v2"));
    proxy.stop().await;
}

#[tokio::test]
async fn a_dead_collector_never_fails_or_slows_requests() {
    let up = start_upstream().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let endpoint = format!("http://{dead_addr}");
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_BSP_SCHEDULE_DELAY", "20"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
            ]),
            ..Default::default()
        },
    )
    .await;
    let started = Instant::now();
    for _ in 0..20 {
        let r = post_chat(&proxy.url, json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}), &[]).await;
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    }
    // Not a latency assertion: a generous bound that only a blocked request path would break
    // (export attempts to the dead endpoint retry for seconds).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Lost spans are counted.
    let c = client();
    let mut dropped = 0.0;
    for _ in 0..100 {
        let text = c
            .get(format!("{}/metrics", proxy.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        dropped = text
            .lines()
            .filter(|l| l.starts_with("llmtap_telemetry_dropped_total{signal=\"spans\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if dropped >= 20.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped >= 20.0, "dropped spans counted: {dropped}");
    proxy.stop().await;
}

#[tokio::test]
async fn sampling_keeps_errors_and_follows_the_caller() {
    let (_up, rx, proxy) = start_traced(
        "http/protobuf",
        None,
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
    )
    .await;
    let ok = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..5 {
        assert_eq!(chat_text(&proxy.url, ok.clone(), &[]).await.0, 200);
    }
    let err = json!({"model": "mock-error-500", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(chat_text(&proxy.url, err, &[]).await.0, 500);
    let sampled_parent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    assert_eq!(
        chat_text(&proxy.url, ok.clone(), &[("traceparent", &sampled_parent)])
            .await
            .0,
        200
    );
    proxy.stop().await;
    let spans = rx.spans();
    let dump = spans_json(&spans);
    assert_eq!(
        spans.len(),
        2,
        "only the error and the caller-sampled success:\n{dump}"
    );
    assert!(
        spans.iter().any(|s| s.str_attr("error.type") == Some("500")
            || s.str_attr("error.type") == Some("server_error")),
        "{dump}"
    );
    assert!(spans.iter().any(|s| s.trace_id == TRACE_ID));
}

#[tokio::test]
async fn shutdown_flushes_queued_spans_and_compressed_bodies_are_read() {
    let (_up, rx, proxy) = start_traced(
        "http/protobuf",
        None,
        &[("OTEL_BSP_SCHEDULE_DELAY", "600000")],
    )
    .await;
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("accept-encoding", "gzip")
        .json(&json!({"model": "mock-gzip", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("content-encoding").unwrap(), "gzip");
    let raw = r.bytes().await.unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "relayed compressed");
    // Nothing exported yet (the schedule delay is ten minutes)...
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.spans().is_empty());
    // ...until shutdown flushes.
    proxy.stop().await;
    let spans = rx.spans();
    assert_eq!(spans.len(), 1);
    assert!(
        spans[0].int_attr("gen_ai.usage.output_tokens").is_some(),
        "{}",
        spans_json(&spans)
    );
    assert_eq!(
        spans[0]
            .str_attr("gen_ai.response.id")
            .map(|s| s.starts_with("chatcmpl-")),
        Some(true)
    );
}

/// Spans over http/protobuf are encoded and sent by llmtap, metrics still by the SDK's
/// exporter: both reach the collector with the same headers (its User-Agent, the content
/// type, gzip, the configured ones), the body's length apart, and the same resource.
#[tokio::test]
async fn span_exports_carry_the_headers_and_resource_of_the_sdk_exporter() {
    for gzip in [false, true] {
        let mut extra = vec![
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-tenant=acme,authorization=Bearer%20t0k",
            ),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
        ];
        if gzip {
            extra.push(("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"));
        }
        let (_up, rx, proxy) = start_traced("http/protobuf", None, &extra).await;
        let hi = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
        let (status, _) = chat_text(&proxy.url, hi, &[]).await;
        assert_eq!(status, 200);
        proxy.stop().await;
        let requests = rx.requests();
        let headers = |signal: &str| {
            let r = requests
                .iter()
                .find(|r| r.signal == signal && r.accepted)
                .unwrap_or_else(|| panic!("no accepted {signal} export: {requests:#?}"));
            let mut h: Vec<(String, String)> = r
                .headers
                .iter()
                .filter(|(k, _)| k != "content-length")
                .cloned()
                .collect();
            h.sort();
            h
        };
        let traces = headers("traces");
        assert_eq!(traces, headers("metrics"), "gzip {gzip}");
        for (k, v) in [
            ("x-tenant", "acme"),
            ("authorization", "Bearer t0k"),
            ("content-type", "application/x-protobuf"),
        ] {
            assert!(
                traces.contains(&(k.to_string(), v.to_string())),
                "{k}: {traces:?}"
            );
        }
        assert!(traces
            .iter()
            .any(|(k, v)| k == "user-agent" && v.starts_with("OTel-OTLP-Exporter-Rust/")));
        let spans = rx.spans();
        assert_eq!(spans.len(), 1, "{}", spans_json(&spans));
        let metrics = rx.metrics();
        for key in [
            "service.name",
            "service.version",
            "deployment.environment",
            "telemetry.sdk.language",
        ] {
            let span_value = spans[0].resource_attr(key).map(|v| v.to_json());
            assert!(span_value.is_some(), "{key}");
            assert_eq!(
                span_value,
                metrics[0].resource_attr(key).map(|v| v.to_json()),
                "{key}"
            );
        }
    }
}

/// Issue 30, point 3: with `content_max_chars: 300`, a conversation whose first message is
/// 1,500 characters and whose last is "and the last question" keeps its question. Short
/// messages stay whole, the long one takes what remains, every message keeps its role and
/// some text, the JSON parses, and the text stays within the limit.
#[tokio::test]
async fn truncation_keeps_the_conversation() {
    let yaml = r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
telemetry:
  content_max_chars: 300
"#;
    let (_up, rx, proxy) = start_traced(
        "http/protobuf",
        Some(yaml),
        &[(
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
            "SPAN_ONLY",
        )],
    )
    .await;
    let first = format!("first {}", "q".repeat(1494));
    let body = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": first},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "and the last question"}
    ]});
    let (status, _) = chat_text(&proxy.url, body, &[]).await;
    assert_eq!(status, 200);
    let spans = rx
        .wait_for_spans(|s| !s.is_empty(), Duration::from_secs(10))
        .await;
    let input = spans[0]
        .str_attr("gen_ai.input.messages")
        .expect("content captured");
    let messages: Value = serde_json::from_str(input).expect("the cut JSON parses");
    let texts: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["parts"][0]["content"].as_str().unwrap())
        .collect();
    let roles: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"], "{input}");
    assert_eq!(texts[0], "Be brief.", "{input}");
    assert_eq!(texts[2], "Noted.", "{input}");
    assert_eq!(texts[3], "and the last question", "{input}");
    assert!(
        texts[1].starts_with("first qq") && texts[1].ends_with("…[truncated]"),
        "{input}"
    );
    let total: usize = texts.iter().map(|t| t.chars().count()).sum();
    assert!(total <= 300, "{total} characters: {input}");
    assert_eq!(total, 300, "the long message takes what remains: {input}");
    // The output is its own attribute and fits: whole.
    let output: Value =
        serde_json::from_str(spans[0].str_attr("gen_ai.output.messages").unwrap()).unwrap();
    assert!(!output.to_string().contains("…[truncated]"), "{output}");
    proxy.stop().await;
}

/// One row of the cost table: a priced family's response with one kind of token, and what
/// the shipped price table (2026-11-01, `telemetry::cost::default_prices`) makes of it.
struct CostRow {
    /// Request (and response) model: distinct per row, matched by the family's glob.
    model: &'static str,
    path: &'static str,
    /// The upstream's whole (non-streamed) response body.
    body: Value,
    /// Expected USD for input and output tokens.
    input_usd: f64,
    output_usd: f64,
}

fn cost_rows() -> Vec<CostRow> {
    let chat = |model: &str, prompt: u64, cached: u64, completion: u64, reasoning: u64| {
        json!({"id": format!("chatcmpl-{model}"), "object": "chat.completion", "created": 1,
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached},
                "completion_tokens_details": {"reasoning_tokens": reasoning}}})
    };
    let responses = |model: &str, input: u64, cached: u64, output: u64, reasoning: u64| {
        json!({"id": format!("resp_{model}"), "object": "response", "status": "completed",
            "model": model, "output": [{"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "ok"}]}],
            "usage": {"input_tokens": input, "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": input + output}})
    };
    let claude = |model: &str, fresh: u64, read: u64, write: u64, output: u64| {
        json!({"id": format!("msg_{model}"), "type": "message", "role": "assistant",
            "model": model, "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": fresh,
                "cache_read_input_tokens": read, "cache_creation_input_tokens": write,
                "output_tokens": output}})
    };
    // Gemini: `cachedContentTokenCount` is part of `promptTokenCount`; thinking tokens
    // (`thoughtsTokenCount`) are billed as output, beside `candidatesTokenCount`.
    let gemini = |model: &str, prompt: u64, cached: u64, candidates: u64, thoughts: u64| {
        json!({"candidates": [{"index": 0, "finishReason": "STOP",
                "content": {"role": "model", "parts": [{"text": "ok"}]}}],
            "modelVersion": model, "responseId": format!("resp-{model}"),
            "usageMetadata": {"promptTokenCount": prompt, "cachedContentTokenCount": cached,
                "candidatesTokenCount": candidates, "thoughtsTokenCount": thoughts,
                "totalTokenCount": prompt + candidates + thoughts}})
    };
    let m = 1e-6;
    vec![
        // Gemini gemini-2.5-pro: input 1.25, cached input 0.125, output (thinking included)
        // 10.00 per 1M.
        CostRow {
            model: "gemini-2.5-pro-cached",
            path: "/v1beta/models/gemini-2.5-pro-cached:generateContent",
            body: gemini("gemini-2.5-pro-cached", 1000, 400, 0, 0),
            input_usd: (600.0 * 1.25 + 400.0 * 0.125) * m,
            output_usd: 0.0,
        },
        CostRow {
            model: "gemini-2.5-pro-thinking",
            path: "/v1beta/models/gemini-2.5-pro-thinking:generateContent",
            body: gemini("gemini-2.5-pro-thinking", 100, 0, 50, 200),
            input_usd: 100.0 * 1.25 * m,
            output_usd: (50.0 + 200.0) * 10.0 * m,
        },
        // OpenAI gpt-4o-mini: input 0.15, cached input 0.075, output 0.60 per 1M.
        CostRow {
            model: "gpt-4o-mini-input",
            path: "/v1/chat/completions",
            body: chat("gpt-4o-mini-input", 1000, 0, 0, 0),
            input_usd: 1000.0 * 0.15 * m,
            output_usd: 0.0,
        },
        CostRow {
            model: "gpt-4o-mini-cached",
            path: "/v1/chat/completions",
            body: chat("gpt-4o-mini-cached", 1000, 400, 0, 0),
            input_usd: (600.0 * 0.15 + 400.0 * 0.075) * m,
            output_usd: 0.0,
        },
        CostRow {
            model: "gpt-4o-mini-output",
            path: "/v1/chat/completions",
            body: chat("gpt-4o-mini-output", 0, 0, 500, 0),
            input_usd: 0.0,
            output_usd: 500.0 * 0.60 * m,
        },
        // OpenAI gpt-5 (Responses): reasoning tokens are part of the output count, billed as
        // output (1.25 input, 0.125 cached, 10.00 output).
        CostRow {
            model: "gpt-5-reasoning",
            path: "/v1/responses",
            body: responses("gpt-5-reasoning", 100, 0, 300, 200),
            input_usd: 100.0 * 1.25 * m,
            output_usd: 300.0 * 10.0 * m,
        },
        CostRow {
            model: "gpt-5-cached",
            path: "/v1/responses",
            body: responses("gpt-5-cached", 1000, 800, 0, 0),
            input_usd: (200.0 * 1.25 + 800.0 * 0.125) * m,
            output_usd: 0.0,
        },
        // Anthropic claude-haiku-4-5: input 1.00, cache reads 0.1x, cache writes at the
        // 1.25x premium, output 5.00.
        CostRow {
            model: "claude-haiku-4-5-write",
            path: "/v1/messages",
            body: claude("claude-haiku-4-5-write", 10, 0, 1000, 0),
            input_usd: (10.0 + 1000.0 * 1.25) * m,
            output_usd: 0.0,
        },
        CostRow {
            model: "claude-haiku-4-5-read",
            path: "/v1/messages",
            body: claude("claude-haiku-4-5-read", 10, 1000, 0, 0),
            input_usd: (10.0 + 1000.0 * 0.1) * m,
            output_usd: 0.0,
        },
        CostRow {
            model: "claude-haiku-4-5-output",
            path: "/v1/messages",
            body: claude("claude-haiku-4-5-output", 0, 0, 0, 200),
            input_usd: 0.0,
            output_usd: 200.0 * 5.0 * m,
        },
    ]
}

/// Issue 30, point 6: cost per token type (input, cached input, cache writes at their
/// premium, output, reasoning) for each priced family (OpenAI, Anthropic, Gemini), the same on the span
/// (`llmtap.cost.usd`), the metric (`llmtap.cost` by `gen_ai.token.type`) and the live view.
#[tokio::test]
async fn cost_per_token_type_agrees_on_span_metric_and_view() {
    let dir = TempDir::new("cost-table");
    let rows = cost_rows();
    for r in &rows {
        std::fs::write(
            dir.path().join(format!("{}.json", r.model)),
            r.body.to_string(),
        )
        .unwrap();
    }
    let up = start_upstream_with(dir.path().to_path_buf()).await;
    let rx = OtlpReceiver::start().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: otlp_env(&rx, "http/protobuf"),
            ..Default::default()
        },
    )
    .await;
    let c = client();
    for r in &rows {
        let resp = c
            .post(format!("{}{}", proxy.url, r.path))
            .header("x-mock-scenario", "replay")
            .header("x-mock-replay", format!("{}.json", r.model))
            .json(&json!({"model": r.model, "max_tokens": 16, "input": "hi",
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", r.model);
        let _ = resp.bytes().await;
    }
    // The live view, before the proxy stops (the worker fills it off the request path).
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let v: Value = c
            .get(format!("{}/ui/api/calls", proxy.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["calls"].as_array().is_some_and(|a| a.len() >= rows.len()) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the view never held every call: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    proxy.stop().await;
    let spans = rx.spans();
    let metrics = common::otlp::latest_points(&rx.metrics());
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    for r in &rows {
        let want = r.input_usd + r.output_usd;
        let span = spans
            .iter()
            .find(|s| s.str_attr("gen_ai.request.model") == Some(r.model))
            .unwrap_or_else(|| panic!("no span for {}: {}", r.model, spans_json(&spans)));
        let on_span = span.f64_attr("llmtap.cost.usd");
        assert!(
            on_span.is_some_and(|v| close(v, want)),
            "{}: span {on_span:?}, want {want}",
            r.model
        );
        for (token_type, usd) in [("input", r.input_usd), ("output", r.output_usd)] {
            let point = metrics.iter().find(|p| {
                p.name == "llmtap.cost"
                    && p.str_attr("gen_ai.request.model") == Some(r.model)
                    && p.str_attr("gen_ai.token.type") == Some(token_type)
            });
            let got = point.map(|p| p.value);
            assert!(
                got.is_some_and(|v| close(v, usd)),
                "{} {token_type}: metric {got:?}, want {usd}",
                r.model
            );
        }
        let row = view["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == r.model)
            .unwrap_or_else(|| panic!("{} not in the view: {view:#}", r.model));
        let in_view = row["cost_usd"].as_f64();
        assert!(
            in_view.is_some_and(|v| close(v, want)),
            "{}: view {in_view:?}, want {want}",
            r.model
        );
    }
}

/// Issue 30, point 4: genai `main`'s newer names, only with `gen_ai_latest_experimental`:
/// per-modality token counts where the API reports them (#440), the Responses
/// `previous_response_id` as `gen_ai.request.previous_response.id` (#372), and
/// `gen_ai.prompt.version` from `x-llmtap-prompt-version` beside the template's name (#179).
#[tokio::test]
async fn newer_genai_names_only_with_the_opt_in() {
    let dir = TempDir::new("latest-names");
    let chat = json!({"id": "chatcmpl-audio", "object": "chat.completion", "created": 1,
        "model": "gpt-4o-audio-preview", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 14, "total_tokens": 44,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 7, "text_tokens": 20,
                "image_tokens": 3},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 5,
                "text_tokens": 9}}});
    std::fs::write(dir.path().join("chat-audio.json"), chat.to_string()).unwrap();
    for latest in [false, true] {
        let up = start_upstream_with(dir.path().to_path_buf()).await;
        let rx = OtlpReceiver::start().await;
        let mut e = otlp_env(&rx, "http/protobuf");
        if latest {
            e.extend(env(&[(
                "OTEL_SEMCONV_STABILITY_OPT_IN",
                "gen_ai_latest_experimental",
            )]));
        }
        let proxy = start_proxy(
            &up.base,
            ProxyOpts {
                env: e,
                ..Default::default()
            },
        )
        .await;
        let c = client();
        let r = c
            .post(format!("{}/v1/chat/completions", proxy.url))
            .header("x-mock-scenario", "replay")
            .header("x-mock-replay", "chat-audio.json")
            .header("x-llmtap-prompt-template", "support-triage")
            .header("x-llmtap-prompt-version", "3.1.0")
            .json(&json!({"model": "gpt-4o-audio-preview",
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = c
            .post(format!("{}/v1/responses", proxy.url))
            .json(&json!({"model": "gpt-4o-mini", "input": "and then?",
                "previous_response_id": "resp_prev123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let spans = rx
            .wait_for_spans(|s| s.len() >= 2, Duration::from_secs(10))
            .await;
        let dump = spans_json(&spans);
        let chat = spans
            .iter()
            .find(|s| s.name == "chat gpt-4o-audio-preview")
            .unwrap();
        let responses = spans.iter().find(|s| s.name == "chat gpt-4o-mini").unwrap();
        let modal = [
            ("gen_ai.usage.text.input_tokens", 20),
            ("gen_ai.usage.image.input_tokens", 3),
            ("gen_ai.usage.audio.input_tokens", 7),
            ("gen_ai.usage.text.output_tokens", 9),
            ("gen_ai.usage.audio.output_tokens", 5),
        ];
        for (k, v) in modal {
            assert_eq!(
                chat.int_attr(k),
                latest.then_some(v),
                "{k} latest={latest}: {dump}"
            );
        }
        // Not reported by the API: not set.
        assert!(
            chat.attr("gen_ai.usage.image.output_tokens").is_none(),
            "{dump}"
        );
        assert_eq!(chat.str_attr("gen_ai.prompt.name"), Some("support-triage"));
        assert_eq!(
            chat.str_attr("gen_ai.prompt.version"),
            latest.then_some("3.1.0"),
            "{dump}"
        );
        assert_eq!(
            responses.str_attr("gen_ai.request.previous_response.id"),
            latest.then_some("resp_prev123"),
            "{dump}"
        );
        // Never forwarded upstream.
        assert!(up.mock.requests().iter().all(|r| r
            .headers
            .iter()
            .all(|(k, _)| k != "x-llmtap-prompt-version")));
        proxy.stop().await;
    }
}
