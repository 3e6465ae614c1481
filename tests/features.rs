//! Configurable behaviour: per-upstream usage injection, tool-call expiry, header and baggage
//! attributes on spans and metrics, per-upstream prices, a separate metrics listener, and
//! `OTEL_SDK_DISABLED`.

mod common;

use std::time::Duration;

use common::otlp::spans_json;
use common::*;
use serde_json::{json, Value};

fn stream_body(model: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "Hello there, model"}]})
}

#[tokio::test]
async fn injection_can_be_switched_off_per_upstream_and_usage_is_then_estimated() {
    let yaml = r#"
upstreams:
  - name: plain
    base_url: "{upstream}/v1"
    provider: vllm
    inject_usage: false
"#;
    let (up, rx, proxy) = start_traced("http/protobuf", Some(yaml), &[]).await;
    let (status, text) = chat_text(&proxy.url, stream_body("llama-3"), &[]).await;
    assert_eq!(status, 200);
    assert!(text.ends_with("data: [DONE]\n\n"));
    let sent: Value = serde_json::from_slice(&up.mock.requests()[0].body).unwrap();
    assert!(
        sent.get("stream_options").is_none(),
        "body rewritten although inject_usage is off"
    );
    proxy.stop().await;
    let spans = rx.spans();
    let s = &spans[0];
    assert_eq!(s.str_attr("gen_ai.provider.name"), Some("vllm"));
    assert!(s.bool_attr("llmtap.usage.injected").is_none());
    assert_eq!(
        s.bool_attr("llmtap.usage.estimated"),
        Some(true),
        "{}",
        spans_json(&spans)
    );
    // "Hello there, model" is 18 characters → ceil(18/4) = 5 input tokens, kept apart from
    // the usage names (not reported by the upstream).
    assert_eq!(s.int_attr("llmtap.usage.estimated.input_tokens"), Some(5));
    assert!(s
        .int_attr("llmtap.usage.estimated.output_tokens")
        .is_some_and(|n| n > 0));
    assert!(s.attr("gen_ai.usage.input_tokens").is_none());
}

#[tokio::test]
async fn a_tool_call_whose_result_never_comes_is_emitted_at_expiry() {
    let yaml = r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
telemetry:
  tool_call_ttl_secs: 0.3
"#;
    let (_up, rx, proxy) = start_traced("grpc", Some(yaml), &[]).await;
    let body = json!({"model": "gpt-4o", "stream": true,
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "messages": [{"role": "user", "content": "look it up"}]});
    let (status, _) = chat_text(&proxy.url, body, &[]).await;
    assert_eq!(status, 200);
    let spans = rx
        .wait_for_spans(
            |s| s.iter().any(|s| s.name == "execute_tool lookup"),
            Duration::from_secs(5),
        )
        .await;
    let dump = spans_json(&spans);
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool lookup")
        .unwrap_or_else(|| panic!("{dump}"));
    let chat = spans.iter().find(|s| s.name == "chat gpt-4o").unwrap();
    assert_eq!(tool.bool_attr("llmtap.tool.result_received"), Some(false));
    assert_eq!(tool.parent_span_id, chat.span_id);
    assert!(tool.duration_secs() >= 0.3, "{dump}");
    proxy.stop().await;
}

#[tokio::test]
async fn headers_and_baggage_become_attributes_and_tenant_metrics_stay_bounded() {
    let yaml = r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
telemetry:
  header_attributes: [X-Request-Source]
  conversation_id_header: x-conversation-id
metrics:
  baggage_attributes: [tenant]
  max_attribute_values: 2
"#;
    let (_up, rx, proxy) = start_traced("http/json", Some(yaml), &[]).await;
    for tenant in ["acme", "globex", "initech", "umbrella"] {
        let baggage = format!("tenant={tenant}");
        let (status, _) = chat_text(
            &proxy.url,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
            &[
                ("x-request-source", "batch-job"),
                ("x-conversation-id", "conv-7"),
                ("baggage", &baggage),
            ],
        )
        .await;
        assert_eq!(status, 200);
    }
    let text = scrape(&proxy.url).await;
    proxy.stop().await;
    let spans = rx.spans();
    assert_eq!(spans.len(), 4);
    for s in &spans {
        assert_eq!(
            s.str_attr("http.request.header.x-request-source"),
            Some("batch-job")
        );
        assert_eq!(s.str_attr("gen_ai.conversation.id"), Some("conv-7"));
        assert!(
            s.attr("tenant").is_none(),
            "tenant is a metric attribute here, not a span one"
        );
    }
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("llmtap_requests_total{"))
        .collect();
    assert!(
        series.iter().any(|l| l.contains("tenant=\"acme\"")),
        "{text}"
    );
    assert!(series.iter().any(|l| l.contains("tenant=\"globex\"")));
    assert!(
        series
            .iter()
            .any(|l| l.contains("tenant=\"other\"") && l.ends_with(" 2")),
        "{series:?}"
    );
    assert!(!text.contains("initech") && !text.contains("umbrella"));
}

#[tokio::test]
async fn per_upstream_prices_and_a_separate_metrics_listener() {
    let up = start_upstream().await;
    let yaml = r#"
upstreams:
  - name: cloud
    base_url: "{upstream}/v1"
    provider: openai
  - name: local
    base_url: "{upstream}/v1"
    provider: vllm
    prices:
      - { model: "gpt-4o-mini*", input: 0.0, output: 0.0 }
routes:
  - model: "local-*"
    upstream: local
default_upstream: cloud
"#;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: Some(yaml.into()),
            env: env(&[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_METRICS_EXPORTER", "none"),
            ]),
            tweak: Some(Box::new(move |c| c.metrics_listen = Some(metrics_port))),
        },
    )
    .await;
    let msg = json!([{"role": "user", "content": "hi"}]);
    chat_text(
        &proxy.url,
        json!({"model": "gpt-4o-mini", "messages": msg}),
        &[],
    )
    .await;
    // Routed to `local`: its own price table says this model costs nothing; and a model not
    // in it has no price at all there, even though the global table would price it.
    chat_text(
        &proxy.url,
        json!({"model": "local-llama", "messages": msg}),
        &[],
    )
    .await;
    let text = scrape(&proxy.url).await;
    assert!(text.contains("gen_ai_provider_name=\"vllm\""), "{text}");
    let cost_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("llmtap_cost_USD_total{"))
        .collect();
    assert!(
        cost_lines
            .iter()
            .any(|l| l.contains("gen_ai_provider_name=\"openai\"")),
        "{cost_lines:?}"
    );
    assert!(
        !cost_lines.iter().any(|l| l.contains("local-llama")),
        "{cost_lines:?}"
    );
    assert!(text.contains("llmtap_cost_unpriced_total{"), "{text}");
    // The same exposition on the separate metrics address.
    let separate = client()
        .get(format!("http://{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(separate.contains("llmtap_requests_total{"), "{separate}");
    proxy.stop().await;
}

#[tokio::test]
async fn sdk_disabled_means_no_telemetry_and_the_proxy_still_works() {
    let (up, rx, proxy) = start_traced("grpc", None, &[("OTEL_SDK_DISABLED", "true")]).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, text) = chat_text(&proxy.url, stream_body("gpt-4o"), &[("traceparent", tp)]).await;
    assert_eq!(status, 200);
    assert!(text.ends_with("data: [DONE]\n\n"));
    // The caller's traceparent passes through untouched when llmtap adds no span.
    let sent = up.mock.requests()[0]
        .headers
        .iter()
        .find(|(k, _)| k == "traceparent")
        .map(|(_, v)| v.clone());
    assert_eq!(sent.as_deref(), Some(tp));
    proxy.stop().await;
    assert!(rx.spans().is_empty());
    assert!(rx.metrics().is_empty());
    assert!(rx.requests().is_empty());
}
