//! Compatibility profiles (`telemetry.compat`): each adds one backend's names next to the
//! gen_ai ones, read here from the spans exported to the in-test OTLP receiver. The names and
//! where each was checked are in `llmtap::telemetry::compat::NAMES`.

mod common;

use common::otlp::{spans_json, SpanView};
use common::*;
use llmtap::telemetry::compat::NAMES;
use serde_json::{json, Value};

fn yaml(compat: &str) -> String {
    format!(
        r#"
upstreams:
  - name: openai
    base_url: "{{upstream}}/v1"
    provider: openai
telemetry:
  conversation_id_header: x-conversation-id
  compat: [{compat}]
"#
    )
}

async fn post(url: &str, path: &str, body: Value, headers: &[(&str, &str)]) -> Value {
    let mut r = client().post(format!("{url}{path}")).json(&body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let text = r.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// A streamed chat with a system prompt (reasoning and cached tokens in its usage), a tool
/// loop, and an embeddings call.
async fn drive(url: &str) {
    let chat = "/v1/chat/completions";
    let who = [
        ("x-conversation-id", "conv-7"),
        ("baggage", "user.id=u-42"),
        ("x-mock-scenario", "reasoning"),
    ];
    let streamed = json!({"model": "gpt-4o-mini", "stream": true, "temperature": 0.3,
        "max_tokens": 80, "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello"}]});
    post(url, chat, streamed, &who).await;

    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let ask = json!({"model": "gpt-4.1-mini", "tools": tools,
        "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    let answer = post(url, chat, ask, &[]).await;
    let message = answer["choices"][0]["message"].clone();
    let call_id = message["tool_calls"][0]["id"].as_str().unwrap().to_string();
    let follow = json!({"model": "gpt-4.1-mini", "tools": tools, "messages": [
        {"role": "user", "content": "Weather in Paris?"}, message,
        {"role": "tool", "tool_call_id": call_id, "content": "{\"sky\": \"rainy\"}"}]});
    post(url, chat, follow, &[]).await;

    post(
        url,
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": "hello"}),
        &[],
    )
    .await;
}

async fn run(compat: &str, content: &str) -> Vec<SpanView> {
    let (_up, rx, proxy) = start_traced(
        "http/protobuf",
        Some(&yaml(compat)),
        &[(
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
            content,
        )],
    )
    .await;
    drive(&proxy.url).await;
    proxy.stop().await;
    let spans = rx.spans();
    assert_eq!(spans.len(), 5, "{}", spans_json(&spans));
    spans
}

fn streamed(spans: &[SpanView]) -> &SpanView {
    spans
        .iter()
        .find(|s| s.str_attr("gen_ai.request.model") == Some("gpt-4o-mini"))
        .expect("the streamed chat span")
}

fn embeddings(spans: &[SpanView]) -> &SpanView {
    spans
        .iter()
        .find(|s| s.str_attr("gen_ai.operation.name") == Some("embeddings"))
        .expect("the embeddings span")
}

fn tool(spans: &[SpanView]) -> &SpanView {
    spans
        .iter()
        .find(|s| s.str_attr("gen_ai.operation.name") == Some("execute_tool"))
        .expect("the execute_tool span")
}

fn int(s: &SpanView, k: &str) -> i64 {
    s.int_attr(k)
        .unwrap_or_else(|| panic!("{k} missing: {}", spans_json(std::slice::from_ref(s))))
}

/// The gen_ai names are all still there: a profile only adds.
fn gen_ai_kept(s: &SpanView) {
    for k in [
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
    ] {
        assert!(s.attr(k).is_some(), "{k} missing");
    }
}

#[tokio::test]
async fn no_profile_adds_no_backend_names() {
    let (_up, rx, proxy) = start_traced(
        "http/protobuf",
        Some(
            r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
telemetry:
  conversation_id_header: x-conversation-id
"#,
        ),
        &[("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")],
    )
    .await;
    drive(&proxy.url).await;
    proxy.stop().await;
    let spans = rx.spans();
    assert_eq!(spans.len(), 5, "{}", spans_json(&spans));
    for s in &spans {
        for (name, ..) in NAMES {
            assert!(
                s.attr(name).is_none(),
                "{name} on {} without a profile",
                s.name
            );
        }
    }
}

#[tokio::test]
async fn openinference_adds_its_names() {
    let spans = run("openinference", "SPAN_ONLY").await;
    let s = streamed(&spans);
    gen_ai_kept(s);
    assert_eq!(s.str_attr("openinference.span.kind"), Some("LLM"));
    assert_eq!(
        s.str_attr("llm.model_name"),
        s.str_attr("gen_ai.response.model")
    );
    assert_eq!(s.str_attr("llm.provider"), Some("openai"));
    assert_eq!(s.str_attr("llm.system"), Some("openai"));
    let (i, o) = (
        int(s, "gen_ai.usage.input_tokens"),
        int(s, "gen_ai.usage.output_tokens"),
    );
    assert_eq!(int(s, "llm.token_count.prompt"), i);
    assert_eq!(int(s, "llm.token_count.completion"), o);
    assert_eq!(int(s, "llm.token_count.total"), i + o);
    assert_eq!(
        int(s, "llm.token_count.completion_details.reasoning"),
        int(s, "gen_ai.usage.reasoning.output_tokens")
    );
    assert_eq!(
        int(s, "llm.token_count.prompt_details.cache_read"),
        int(s, "gen_ai.usage.cache_read.input_tokens")
    );
    let params: Value =
        serde_json::from_str(s.str_attr("llm.invocation_parameters").unwrap()).unwrap();
    assert_eq!(params["temperature"], 0.3);
    assert_eq!(params["max_tokens"], 80);
    assert_eq!(params["model"], "gpt-4o-mini");
    // The messages, system prompt included, as the input value.
    let input: Value = serde_json::from_str(s.str_attr("input.value").unwrap()).unwrap();
    assert_eq!(input[0]["role"], "system");
    assert_eq!(input[0]["parts"][0]["content"], "You are terse.");
    assert_eq!(s.str_attr("input.mime_type"), Some("application/json"));
    let output: Value = serde_json::from_str(s.str_attr("output.value").unwrap()).unwrap();
    assert_eq!(output[0]["role"], "assistant");
    assert_eq!(s.str_attr("output.mime_type"), Some("application/json"));
    assert_eq!(s.str_attr("session.id"), Some("conv-7"));
    assert_eq!(s.str_attr("user.id"), Some("u-42"));

    let e = embeddings(&spans);
    assert_eq!(e.str_attr("openinference.span.kind"), Some("EMBEDDING"));
    assert!(e.str_attr("embedding.model_name").is_some());

    let t = tool(&spans);
    assert_eq!(t.str_attr("openinference.span.kind"), Some("TOOL"));
    assert_eq!(t.str_attr("tool.name"), Some("get_weather"));
    assert_eq!(t.str_attr("tool.description"), Some("Weather in a city"));
    let result: Value = serde_json::from_str(t.str_attr("output.value").unwrap()).unwrap();
    assert_eq!(result["sky"], "rainy");
    assert!(t.str_attr("input.value").is_some());
    // The tool span stays under the chat span that asked for it.
    let asked = spans
        .iter()
        .find(|x| x.span_id == t.parent_span_id)
        .expect("tool span's parent exported");
    assert_eq!(asked.str_attr("openinference.span.kind"), Some("LLM"));
}

#[tokio::test]
async fn openinference_values_need_content_capture() {
    let spans = run("openinference", "NO_CONTENT").await;
    for s in &spans {
        for k in [
            "input.value",
            "output.value",
            "input.mime_type",
            "output.mime_type",
        ] {
            assert!(s.attr(k).is_none(), "{k} on {} without content", s.name);
        }
        assert!(s.str_attr("openinference.span.kind").is_some());
    }
}

#[tokio::test]
async fn langfuse_adds_cost_usage_details_and_completion_start() {
    let spans = run("langfuse", "NO_CONTENT").await;
    let s = streamed(&spans);
    gen_ai_kept(s);
    // gpt-4o-mini is in the shipped price table: 0.15 / 0.075 cached / 0.60 per 1M tokens.
    let (i, o) = (
        int(s, "gen_ai.usage.input_tokens"),
        int(s, "gen_ai.usage.output_tokens"),
    );
    let cached = int(s, "gen_ai.usage.cache_read.input_tokens");
    let expected = ((i - cached) as f64 * 0.15 + cached as f64 * 0.075 + o as f64 * 0.60) / 1e6;
    let cost = s.f64_attr("gen_ai.usage.cost").expect("cost");
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    let usage: Value =
        serde_json::from_str(s.str_attr("langfuse.observation.usage_details").unwrap()).unwrap();
    let reasoning = int(s, "gen_ai.usage.reasoning.output_tokens");
    assert_eq!(usage["input"], i - cached);
    assert_eq!(usage["input_cached_tokens"], cached);
    assert_eq!(usage["output"], o - reasoning);
    assert_eq!(usage["output_reasoning_tokens"], reasoning);
    assert_eq!(usage["total"], i + o);
    let parts: i64 = [
        "input",
        "input_cached_tokens",
        "output",
        "output_reasoning_tokens",
    ]
    .iter()
    .map(|k| usage[k].as_i64().unwrap())
    .sum();
    assert_eq!(parts, i + o, "counted twice: {usage}");
    // Completion start: an ISO timestamp inside the span.
    let start = s
        .str_attr("langfuse.observation.completion_start_time")
        .expect("completion start");
    assert!(
        start.len() == 27 && start.ends_with('Z') && start.as_bytes()[10] == b'T',
        "{start}"
    );
    let secs = s.f64_attr("gen_ai.response.time_to_first_chunk").unwrap();
    assert!(secs >= 0.0 && secs <= s.duration_secs());
    assert_eq!(s.str_attr("user.id"), Some("u-42"));
    // The embedding model is priced too.
    assert!(embeddings(&spans).f64_attr("gen_ai.usage.cost").is_some());
    // Not an OpenInference profile.
    assert!(s.attr("openinference.span.kind").is_none());
    assert!(s.attr("gen_ai.system").is_none());
}

#[tokio::test]
async fn openlit_adds_cost_total_ttft_and_system() {
    let spans = run("openlit", "NO_CONTENT").await;
    let s = streamed(&spans);
    gen_ai_kept(s);
    assert_eq!(
        int(s, "gen_ai.usage.total_tokens"),
        int(s, "gen_ai.usage.input_tokens") + int(s, "gen_ai.usage.output_tokens")
    );
    assert!(s.f64_attr("gen_ai.usage.cost").unwrap() > 0.0);
    assert_eq!(
        s.f64_attr("gen_ai.server.time_to_first_token"),
        s.f64_attr("gen_ai.response.time_to_first_chunk")
    );
    assert_eq!(s.str_attr("gen_ai.system"), Some("openai"));
    assert!(s.attr("langfuse.observation.usage_details").is_none());
    assert!(s.attr("llm.model_name").is_none());
    // Non-streamed calls have no time to first token.
    let plain = spans
        .iter()
        .find(|x| x.str_attr("gen_ai.request.model") == Some("gpt-4.1-mini"))
        .unwrap();
    assert!(plain.attr("gen_ai.server.time_to_first_token").is_none());
}

#[tokio::test]
async fn profiles_combine() {
    let spans = run("openinference, langfuse, openlit", "NO_CONTENT").await;
    let s = streamed(&spans);
    for k in [
        "openinference.span.kind",
        "llm.token_count.total",
        "langfuse.observation.usage_details",
        "gen_ai.usage.total_tokens",
        "gen_ai.system",
    ] {
        assert!(s.attr(k).is_some(), "{k} missing");
    }
    // Names two profiles share are written once.
    for k in ["gen_ai.usage.cost", "user.id"] {
        let n = s.attributes.iter().filter(|(n, _)| n == k).count();
        assert_eq!(n, 1, "{k} written {n} times");
    }
}
