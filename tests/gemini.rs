//! Google's Gemini API through llmtap: the official `google-genai` SDK end to end (spans,
//! tool spans, metrics), both stream framings relayed byte for byte and traced, Vertex AI
//! paths with a bearer, Google's keys never recorded anywhere, and llmtap's own errors in
//! Google's shape.

mod common;

use std::time::Duration;

use common::otlp::span_with_response_id;
use common::*;
use serde_json::{json, Value};

/// A Gemini upstream and a Vertex one, both the scripted upstream at its origin (Google's
/// base URLs carry no path: the API version is in every request's path).
const GEMINI_YAML: &str = r#"
upstreams:
  - name: gemini
    base_url: "{upstream}"
    provider: gemini
  - name: vertex
    base_url: "{upstream}"
    provider: vertex_ai
routes:
  - model: "gemini-2.5-pro"
    upstream: vertex
default_upstream: gemini
"#;

#[tokio::test]
async fn google_genai_sdk_gets_spans_tool_spans_and_metrics() {
    let (up, rx, proxy) = start_traced("grpc", Some(GEMINI_YAML), &[]).await;
    let Some(sdk) = run_sdk(
        "gemini.py",
        &proxy.url,
        &[("LLMTAP_URL", proxy.url.as_str())],
    )
    .await
    else {
        return;
    };
    // plain, stream, 2 tool-loop calls, 1 embeddings, 1 error, 1 Vertex; 1 tool span.
    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter()
                    .filter(|s| s.name.starts_with("generate_content "))
                    .count()
                    >= 6
                    && s.iter().any(|s| s.name.starts_with("embeddings "))
                    && s.iter().any(|s| s.name.starts_with("execute_tool "))
            },
            Duration::from_secs(20),
        )
        .await;
    let dump = common::otlp::spans_json(&spans);

    for key in ["plain", "stream"] {
        let seen = &sdk[key];
        let span = span_with_response_id(&spans, seen["id"].as_str().unwrap());
        assert_eq!(span.name, "generate_content gemini-2.5-flash", "{dump}");
        assert_eq!(
            span.str_attr("gen_ai.operation.name"),
            Some("generate_content")
        );
        assert_eq!(span.str_attr("gen_ai.provider.name"), Some("gcp.gemini"));
        assert_eq!(
            span.str_attr("gen_ai.response.model"),
            Some("gemini-2.5-flash")
        );
        assert_eq!(
            span.int_attr("gen_ai.usage.input_tokens"),
            seen["prompt"].as_i64()
        );
        assert_eq!(
            span.int_attr("gen_ai.usage.output_tokens"),
            seen["candidates"].as_i64()
        );
        assert_eq!(
            span.str_array_attr("gen_ai.response.finish_reasons"),
            Some(vec!["STOP".to_string()])
        );
        assert!(span.attr("error.type").is_none(), "{dump}");
        assert!(span.attr("openai.api.type").is_none());
        assert!(!seen["text"].as_str().unwrap().is_empty());
    }
    let streamed = span_with_response_id(&spans, sdk["stream"]["id"].as_str().unwrap());
    assert_eq!(streamed.bool_attr("gen_ai.request.stream"), Some(true));
    assert!(streamed
        .f64_attr("gen_ai.response.time_to_first_chunk")
        .is_some());
    assert_eq!(
        streamed.int_attr("llmtap.response.chunk_count"),
        sdk["stream"]["chunks"].as_i64()
    );

    // The function-calling loop: the call (no id, as Gemini 2.5 sends it) became an
    // execute_tool span, closed by the functionResponse of the next request.
    let calls = sdk["tools"]["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{sdk}");
    assert!(calls[0]["id"].is_null(), "gemini-2.5 calls carry no id");
    let asking = span_with_response_id(&spans, sdk["tools"]["first_id"].as_str().unwrap());
    let answering = span_with_response_id(&spans, sdk["tools"]["final_id"].as_str().unwrap());
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool get_weather")
        .unwrap_or_else(|| panic!("no tool span:\n{dump}"));
    assert_eq!(tool.parent_span_id, asking.span_id);
    assert_eq!(tool.bool_attr("llmtap.tool.result_received"), Some(true));
    assert_eq!(
        tool.str_attr("gen_ai.tool.description"),
        Some("Weather for a city")
    );
    assert!(
        tool.attr("gen_ai.tool.call.id").is_none(),
        "llmtap's key for an id-less call is not exported as an id"
    );
    assert!(answering
        .links
        .iter()
        .any(|(_, span)| *span == asking.span_id));
    assert!(sdk["tools"]["final"]
        .as_str()
        .unwrap()
        .contains("Got 1 tool result"));

    // Embeddings through batchEmbedContents.
    let emb = spans
        .iter()
        .find(|s| s.name == "embeddings gemini-embedding-001")
        .unwrap_or_else(|| panic!("no embeddings span:\n{dump}"));
    assert_eq!(
        emb.int_attr("gen_ai.embeddings.dimension.count"),
        sdk["embed"]["dims"].as_i64()
    );
    assert_eq!(sdk["embed"]["count"], 2);
    // countTokens is not inference: forwarded, answered, no span.
    assert!(sdk["count_tokens"].as_i64().unwrap() > 0);
    assert!(!spans.iter().any(|s| s.name.contains("countTokens")));

    // The scripted 429 reached the SDK in Google's shape and the span says so.
    assert_eq!(sdk["error"]["code"], 429);
    assert_eq!(sdk["error"]["status"], "RESOURCE_EXHAUSTED");
    let failed = spans
        .iter()
        .find(|s| s.name == "generate_content mock-error-429")
        .unwrap_or_else(|| panic!("no error span:\n{dump}"));
    assert_eq!(failed.str_attr("error.type"), Some("RESOURCE_EXHAUSTED"));
    assert_eq!(failed.status_code, "error");

    // Vertex AI: the project path, the fake bearer passed through, provider gcp.vertex_ai.
    let v = span_with_response_id(&spans, sdk["vertex"]["id"].as_str().unwrap());
    assert_eq!(v.name, "generate_content gemini-2.5-pro");
    assert_eq!(v.str_attr("gen_ai.provider.name"), Some("gcp.vertex_ai"));
    let vertex_req = up
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/publishers/google/models/gemini-2.5-pro:"))
        .expect("the Vertex call reached the upstream");
    assert!(vertex_req
        .path
        .starts_with("/v1beta1/projects/llmtap-test/"));
    assert!(vertex_req
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == "Bearer ya29.fake-vertex-token"));

    let metrics = rx
        .wait_for_metrics(
            |m| {
                m.iter().any(|p| {
                    p.name == "gen_ai.client.token.usage"
                        && p.str_attr("gen_ai.provider.name") == Some("gcp.gemini")
                        && p.str_attr("gen_ai.operation.name") == Some("generate_content")
                })
            },
            Duration::from_secs(10),
        )
        .await;
    assert!(metrics
        .iter()
        .any(|p| p.name == "gen_ai.client.operation.time_to_first_chunk"
            && p.str_attr("gen_ai.provider.name") == Some("gcp.gemini")));
    assert!(metrics
        .iter()
        .any(|p| p.name == "gen_ai.client.operation.duration"
            // Metrics spell Google's status as the known list does (case-insensitive match).
            && p.str_attr("error.type") == Some("resource_exhausted")));
    proxy.stop().await;
}

#[tokio::test]
async fn both_stream_framings_relay_unchanged_and_are_traced() {
    let (up, rx, proxy) = start_traced("http/protobuf", Some(GEMINI_YAML), &[]).await;
    let c = client();
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Count to three"}]}]});
    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";
    for query in ["?alt=sse", ""] {
        let direct = c
            .post(format!("{}{path}{query}", up.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let via = c
            .post(format!("{}{path}{query}", proxy.url))
            .header("x-goog-api-key", "AIza-test")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(via.status(), 200);
        assert_eq!(
            via.bytes().await.unwrap(),
            direct,
            "{query:?}: byte for byte"
        );
    }
    let spans = rx
        .wait_for_spans(|s| s.len() >= 2, Duration::from_secs(10))
        .await;
    let dump = common::otlp::spans_json(&spans);
    assert_eq!(spans.len(), 2, "{dump}");
    for s in &spans {
        assert_eq!(s.name, "generate_content gemini-2.5-flash");
        assert_eq!(s.bool_attr("gen_ai.request.stream"), Some(true), "{dump}");
        // Ten text chunks, each its own event or array element.
        assert_eq!(
            s.int_attr("llmtap.response.chunk_count"),
            Some(10),
            "{dump}"
        );
        assert!(s.f64_attr("gen_ai.response.time_to_first_chunk").is_some());
        assert!(s.int_attr("gen_ai.usage.output_tokens").is_some());
        assert!(s.attr("error.type").is_none(), "{dump}");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn google_keys_pass_through_and_are_never_recorded() {
    let up = start_upstream().await;
    let rx = common::otlp::OtlpReceiver::start().await;
    let dir = TempDir::new("gemini-keys");
    let log = dir.path().join("stderr.log");
    let endpoint = rx.grpc_endpoint.clone();
    let (proc, base) = common::bin::start(
        &[
            "--upstream",
            &up.base,
            "--provider",
            "gemini",
            "--log-format",
            "json",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("RUST_LOG", "debug"),
        ],
        &log,
    )
    .await;
    let (header_key, query_key) = ("AIzaHEADERsecret0001", "AIzaQUERYsecret0002");
    let r = client()
        .post(format!(
            "{base}/v1beta/models/gemini-2.5-flash:generateContent?key={query_key}"
        ))
        .header("x-goog-api-key", header_key)
        .json(&json!({"contents": [{"parts": [{"text": "Hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Passed through to the provider, both of them.
    let req = up.mock.requests().pop().unwrap();
    assert_eq!(
        req.query.as_deref(),
        Some(format!("key={query_key}").as_str())
    );
    assert!(req
        .headers
        .iter()
        .any(|(k, v)| k == "x-goog-api-key" && v == header_key));
    let spans = rx
        .wait_for_spans(|s| !s.is_empty(), Duration::from_secs(10))
        .await;
    let view = client()
        .get(format!("{base}/ui/api/calls"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    eventually("the access line", Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("llmtap::access")
    })
    .await;
    let logs = std::fs::read_to_string(&log).unwrap();
    let exported = common::otlp::spans_json(&spans);
    assert!(exported.contains("generate_content gemini-2.5-flash"));
    assert!(logs.contains("generateContent"), "{logs}");
    assert!(
        view.contains("gemini-2.5-flash"),
        "the live view has the call: {view}"
    );
    for secret in [header_key, query_key] {
        assert!(!exported.contains(secret), "span: {exported}");
        assert!(!logs.contains(secret), "log: {logs}");
        assert!(!view.contains(secret), "live view: {view}");
    }
    drop(proc);
}

#[tokio::test]
async fn own_errors_take_googles_shape_and_a_doubled_v1_gets_a_hint() {
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
    let r = c
        .post(format!(
            "{}/v1beta/models/gemini-2.5-flash:generateContent",
            proxy.url
        ))
        .json(&json!({"contents": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 502, "{body}");
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unreachable"));

    // An Anthropic SDK given a base URL ending in /v1 asks for /v1/v1/messages.
    let r = c
        .post(format!("{}/v1/v1/messages", proxy.url))
        .json(&json!({"model": "claude-haiku-4-5", "max_tokens": 8, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error", "Anthropic's shape: {body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("did you mean /v1/messages?"), "{msg}");
    proxy.stop().await;
}

#[tokio::test]
async fn claude_on_vertex_raw_predict_is_traced_as_anthropic_on_vertex() {
    let (_up, rx, proxy) = start_traced("grpc", None, &[]).await;
    let body = json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 64,
        "stream": true, "messages": [{"role": "user", "content": "Bonjour"}]});
    let r = client()
        .post(format!(
            "{}/v1/projects/p1/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5:streamRawPredict",
            proxy.url
        ))
        .header("authorization", "Bearer ya29.fake-vertex-token")
        .header("x-mock-scenario", "replay")
        .header("x-mock-replay", "anthropic-messages-text.sse")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.unwrap();
    let spans = rx
        .wait_for_spans(|s| !s.is_empty(), Duration::from_secs(10))
        .await;
    let dump = common::otlp::spans_json(&spans);
    let s = &spans[0];
    assert_eq!(s.name, "chat claude-haiku-4-5", "{dump}");
    assert_eq!(s.str_attr("gen_ai.provider.name"), Some("gcp.vertex_ai"));
    assert_eq!(s.int_attr("gen_ai.usage.input_tokens"), Some(129), "{dump}");
    assert_eq!(
        s.str_array_attr("gen_ai.response.finish_reasons"),
        Some(vec!["end_turn".to_string()])
    );
    assert!(s.attr("error.type").is_none(), "{dump}");
    proxy.stop().await;
}
