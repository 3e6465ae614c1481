//! What a GenAI-aware backend reads from llmtap, checked against the OpenTelemetry GenAI
//! semantic conventions in both modes: v1.41.1 (the default) and the `semantic-conventions-genai`
//! `main` branch (`OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`). Every name the
//! tests expect is in [`TABLE`], with the spec page it comes from; assertions read only what
//! was exported to the in-test OTLP receiver (spans, metrics, log records).

mod common;

use std::time::Duration;

use common::otlp::{
    latest_points, logs_json, metrics_json, spans_json, AttrValue, LogView, MetricView, SpanView,
};
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// The expected names
// ---------------------------------------------------------------------------

const V1_SPANS: &str = "semantic-conventions v1.41.1 docs/gen-ai/gen-ai-spans.md";
const V1_METRICS: &str = "semantic-conventions v1.41.1 docs/gen-ai/gen-ai-metrics.md";
const V1_OPENAI: &str = "semantic-conventions v1.41.1 docs/gen-ai/openai.md";
const V1_REGISTRY: &str = "semantic-conventions v1.41.1 docs/registry/attributes/gen-ai.md";
const V1_SERVER: &str = "semantic-conventions v1.41.1 docs/registry/attributes/server.md";
const V1_ERROR: &str = "semantic-conventions v1.41.1 docs/registry/attributes/error.md";
const MAIN_INFERENCE: &str = "semantic-conventions-genai main docs/gen-ai/client-inference.md";
const MAIN_EMBEDDINGS: &str = "semantic-conventions-genai main docs/gen-ai/client-embeddings.md";
const MAIN_TOKENS: &str = "semantic-conventions-genai main docs/gen-ai/gen-ai-token-metrics.md";
const MAIN_METRICS: &str = "semantic-conventions-genai main docs/gen-ai/gen-ai-metrics.md";
const MAIN_SPANS: &str = "semantic-conventions-genai main docs/gen-ai/gen-ai-spans.md";
const LLMTAP: &str = "llmtap's own (docs/telemetry.md, Traces and Metrics)";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// v1.41.1, no opt-in.
    Default,
    /// `gen_ai_latest_experimental`.
    Latest,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Modes {
    Both,
    DefaultOnly,
    LatestOnly,
}

impl Modes {
    fn has(self, m: Mode) -> bool {
        matches!(
            (self, m),
            (Modes::Both, _)
                | (Modes::DefaultOnly, Mode::Default)
                | (Modes::LatestOnly, Mode::Latest)
        )
    }
}

/// The type of an attribute value as exported.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ty {
    Str,
    Int,
    Double,
    Bool,
    StrArray,
    /// On spans, a string holding JSON that parses; on the log record, structured.
    Json,
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A span (and log record) attribute; the type may differ per mode (default, latest).
    Attr(Ty, Ty),
    Histogram(&'static str, &'static [f64]),
    Counter(&'static str),
    Event,
}

struct Row {
    name: &'static str,
    expect: Expect,
    modes: Modes,
    spec: &'static str,
}

const fn attr(name: &'static str, ty: Ty, spec: &'static str) -> Row {
    Row {
        name,
        expect: Expect::Attr(ty, ty),
        modes: Modes::Both,
        spec,
    }
}

const DURATION: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const TOKENS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

const fn metric(name: &'static str, expect: Expect, modes: Modes, spec: &'static str) -> Row {
    Row {
        name,
        expect,
        modes,
        spec,
    }
}

/// Every name the conformance tests expect, each with the page that defines it.
const TABLE: &[Row] = &[
    // Inference and embeddings spans.
    attr("gen_ai.operation.name", Ty::Str, V1_SPANS),
    attr("gen_ai.provider.name", Ty::Str, V1_SPANS),
    attr("gen_ai.request.model", Ty::Str, V1_SPANS),
    attr("server.address", Ty::Str, V1_SERVER),
    attr("server.port", Ty::Int, V1_SERVER),
    attr("error.type", Ty::Str, V1_ERROR),
    attr("gen_ai.request.temperature", Ty::Double, V1_SPANS),
    attr("gen_ai.request.top_p", Ty::Double, V1_SPANS),
    Row {
        name: "gen_ai.request.top_k",
        // A double in v1.41.1's registry, an int in genai main's client-inference.md.
        expect: Expect::Attr(Ty::Double, Ty::Int),
        modes: Modes::Both,
        spec: MAIN_INFERENCE,
    },
    attr("gen_ai.request.max_tokens", Ty::Int, V1_SPANS),
    attr("gen_ai.request.seed", Ty::Int, V1_SPANS),
    attr("gen_ai.request.choice.count", Ty::Int, V1_SPANS),
    attr("gen_ai.request.stop_sequences", Ty::StrArray, V1_SPANS),
    attr("gen_ai.request.frequency_penalty", Ty::Double, V1_SPANS),
    attr("gen_ai.request.presence_penalty", Ty::Double, V1_SPANS),
    attr("gen_ai.request.stream", Ty::Bool, MAIN_INFERENCE),
    attr("gen_ai.request.reasoning.level", Ty::Str, MAIN_INFERENCE),
    attr("gen_ai.output.type", Ty::Str, V1_SPANS),
    attr("gen_ai.request.encoding_formats", Ty::StrArray, V1_SPANS),
    attr("gen_ai.embeddings.dimension.count", Ty::Int, V1_REGISTRY),
    attr("gen_ai.prompt.name", Ty::Str, V1_REGISTRY),
    attr("gen_ai.response.id", Ty::Str, V1_SPANS),
    attr("gen_ai.response.model", Ty::Str, V1_SPANS),
    attr("gen_ai.response.finish_reasons", Ty::StrArray, V1_SPANS),
    attr(
        "gen_ai.response.time_to_first_chunk",
        Ty::Double,
        MAIN_INFERENCE,
    ),
    attr("gen_ai.usage.input_tokens", Ty::Int, V1_SPANS),
    attr("gen_ai.usage.output_tokens", Ty::Int, V1_SPANS),
    attr("gen_ai.usage.cache_read.input_tokens", Ty::Int, V1_REGISTRY),
    attr(
        "gen_ai.usage.reasoning.output_tokens",
        Ty::Int,
        MAIN_INFERENCE,
    ),
    attr("openai.api.type", Ty::Str, V1_OPENAI),
    attr("openai.request.service_tier", Ty::Str, V1_OPENAI),
    attr("openai.response.service_tier", Ty::Str, V1_OPENAI),
    attr("openai.response.system_fingerprint", Ty::Str, V1_OPENAI),
    attr("gen_ai.input.messages", Ty::Json, V1_SPANS),
    attr("gen_ai.output.messages", Ty::Json, V1_SPANS),
    attr("gen_ai.system_instructions", Ty::Json, V1_SPANS),
    attr("gen_ai.tool.definitions", Ty::Json, V1_SPANS),
    // execute_tool spans.
    attr("gen_ai.tool.name", Ty::Str, MAIN_SPANS),
    attr("gen_ai.tool.call.id", Ty::Str, MAIN_SPANS),
    attr("gen_ai.tool.type", Ty::Str, MAIN_SPANS),
    attr("gen_ai.tool.description", Ty::Str, MAIN_SPANS),
    attr("gen_ai.tool.call.arguments", Ty::Json, MAIN_SPANS),
    attr("gen_ai.tool.call.result", Ty::Str, MAIN_SPANS),
    // llmtap's own, where the standard names must not be used.
    attr("llmtap.usage.estimated", Ty::Bool, LLMTAP),
    attr("llmtap.usage.estimated.input_tokens", Ty::Int, LLMTAP),
    attr("llmtap.usage.estimated.output_tokens", Ty::Int, LLMTAP),
    attr("llmtap.prompt.template", Ty::Str, LLMTAP),
    attr("llmtap.cost.usd", Ty::Double, LLMTAP),
    // The opt-in event (a log record).
    metric(
        "gen_ai.client.inference.operation.details",
        Expect::Event,
        Modes::Both,
        MAIN_INFERENCE,
    ),
    // Metrics, v1.41.1.
    metric(
        "gen_ai.client.operation.duration",
        Expect::Histogram("s", DURATION),
        Modes::DefaultOnly,
        V1_METRICS,
    ),
    metric(
        "gen_ai.client.token.usage",
        Expect::Histogram("{token}", TOKENS),
        Modes::DefaultOnly,
        V1_METRICS,
    ),
    metric(
        "gen_ai.client.operation.time_to_first_chunk",
        Expect::Histogram("s", DURATION),
        Modes::DefaultOnly,
        V1_METRICS,
    ),
    metric(
        "gen_ai.client.operation.time_per_output_chunk",
        Expect::Histogram("s", DURATION),
        Modes::DefaultOnly,
        V1_METRICS,
    ),
    // Metrics, genai main.
    metric(
        "gen_ai.client.inference.duration",
        Expect::Histogram("s", DURATION),
        Modes::LatestOnly,
        MAIN_INFERENCE,
    ),
    metric(
        "gen_ai.client.embeddings.duration",
        Expect::Histogram("s", DURATION),
        Modes::LatestOnly,
        MAIN_EMBEDDINGS,
    ),
    metric(
        "gen_ai.client.inference.usage.input_tokens",
        Expect::Counter("{token}"),
        Modes::LatestOnly,
        MAIN_TOKENS,
    ),
    metric(
        "gen_ai.client.inference.usage.output_tokens",
        Expect::Counter("{token}"),
        Modes::LatestOnly,
        MAIN_TOKENS,
    ),
    metric(
        "gen_ai.client.inference.usage.cache_read.input_tokens",
        Expect::Counter("{token}"),
        Modes::LatestOnly,
        MAIN_TOKENS,
    ),
    metric(
        "gen_ai.client.inference.usage.cache_write.input_tokens",
        Expect::Counter("{token}"),
        Modes::LatestOnly,
        MAIN_TOKENS,
    ),
    metric(
        "gen_ai.client.inference.usage.reasoning.output_tokens",
        Expect::Counter("{token}"),
        Modes::LatestOnly,
        MAIN_TOKENS,
    ),
    metric(
        "gen_ai.client.inference.operation.input_tokens",
        Expect::Histogram("{token}", TOKENS),
        Modes::LatestOnly,
        MAIN_TOKENS,
    ),
    metric(
        "gen_ai.client.inference.operation.output_tokens",
        Expect::Histogram("{token}", TOKENS),
        Modes::LatestOnly,
        MAIN_TOKENS,
    ),
    metric(
        "gen_ai.client.embeddings.operation.input_tokens",
        Expect::Histogram("{token}", TOKENS),
        Modes::LatestOnly,
        MAIN_EMBEDDINGS,
    ),
    metric(
        "gen_ai.client.inference.time_to_first_chunk",
        Expect::Histogram("s", DURATION),
        Modes::LatestOnly,
        MAIN_INFERENCE,
    ),
    metric(
        "gen_ai.client.inference.time_per_output_chunk",
        Expect::Histogram("s", DURATION),
        Modes::LatestOnly,
        MAIN_INFERENCE,
    ),
    metric(
        "gen_ai.execute_tool.duration",
        Expect::Histogram("s", DURATION),
        Modes::LatestOnly,
        MAIN_METRICS,
    ),
    // llmtap's own metrics (both modes).
    metric(
        "llmtap.requests",
        Expect::Counter("{request}"),
        Modes::Both,
        LLMTAP,
    ),
    metric("llmtap.cost", Expect::Counter("USD"), Modes::Both, LLMTAP),
    metric(
        "llmtap.cost.estimated",
        Expect::Counter("USD"),
        Modes::Both,
        LLMTAP,
    ),
    metric(
        "llmtap.tool.duration",
        Expect::Histogram("s", DURATION),
        Modes::Both,
        LLMTAP,
    ),
];

fn row(name: &str) -> &'static Row {
    TABLE
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the conformance table"))
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

fn has_type(v: &AttrValue, ty: Ty) -> bool {
    match ty {
        Ty::Str => matches!(v, AttrValue::Str(_)),
        Ty::Int => matches!(v, AttrValue::Int(_)),
        Ty::Double => matches!(v, AttrValue::F64(_)),
        Ty::Bool => matches!(v, AttrValue::Bool(_)),
        Ty::StrArray => {
            matches!(v, AttrValue::Array(items) if items.iter().all(|i| matches!(i, AttrValue::Str(_))))
        }
        Ty::Json => match v {
            AttrValue::Str(s) => serde_json::from_str::<Value>(s).is_ok(),
            _ => false,
        },
    }
}

fn ty(name: &str, mode: Mode) -> Ty {
    let r = row(name);
    assert!(
        r.modes.has(mode),
        "{name} is not a {mode:?} name ({})",
        r.spec
    );
    match r.expect {
        Expect::Attr(default, latest) => match mode {
            Mode::Default => default,
            Mode::Latest => latest,
        },
        other => panic!("{name} is {other:?}, not an attribute"),
    }
}

/// The attribute `name` of `span`: present, and of the type the table gives for `mode`.
fn get<'a>(span: &'a SpanView, name: &str, mode: Mode) -> &'a AttrValue {
    let want = ty(name, mode);
    let v = span.attr(name).unwrap_or_else(|| {
        panic!(
            "{}: no {name} ({})\n{}",
            span.name,
            row(name).spec,
            spans_json(std::slice::from_ref(span))
        )
    });
    assert!(
        has_type(v, want),
        "{}: {name} is {v:?}, want {want:?} ({})",
        span.name,
        row(name).spec
    );
    v
}

fn absent(span: &SpanView, name: &str) {
    row(name);
    assert!(
        span.attr(name).is_none(),
        "{}: {name} must be absent, is {:?}",
        span.name,
        span.attr(name)
    );
}

fn json_attr(span: &SpanView, name: &str, mode: Mode) -> Value {
    match get(span, name, mode) {
        AttrValue::Str(s) => serde_json::from_str(s).expect("checked"),
        _ => unreachable!(),
    }
}

fn by_model<'a>(spans: &'a [SpanView], model: &str) -> Vec<&'a SpanView> {
    spans
        .iter()
        .filter(|s| s.str_attr("gen_ai.request.model") == Some(model))
        .collect()
}

fn one<'a>(spans: &'a [SpanView], model: &str) -> &'a SpanView {
    let found = by_model(spans, model);
    assert_eq!(found.len(), 1, "{model}:\n{}", spans_json(spans));
    found[0]
}

fn points<'a>(all: &'a [MetricView], name: &str) -> Vec<&'a MetricView> {
    all.iter().filter(|m| m.name == name).collect()
}

fn model_points<'a>(all: &'a [MetricView], name: &str, model: &str) -> Vec<&'a MetricView> {
    points(all, name)
        .into_iter()
        .filter(|p| p.str_attr("gen_ai.request.model") == Some(model))
        .collect()
}

/// Every metric of `mode` in the table is exported with its instrument, unit and buckets;
/// no GenAI metric of the other mode (or outside the table) is; `server.port` is on every
/// point that has `server.address`.
fn metric_names_and_shapes(all: &[MetricView], mode: Mode) {
    let dump = metrics_json(all);
    for r in TABLE {
        let (Expect::Histogram(..) | Expect::Counter(_)) = r.expect else {
            continue;
        };
        let found = points(all, r.name);
        if !r.modes.has(mode) {
            assert!(
                found.is_empty(),
                "{} exported in {mode:?} mode ({})",
                r.name,
                r.spec
            );
            continue;
        }
        assert!(
            !found.is_empty(),
            "{} not exported in {mode:?} mode ({})\n{dump}",
            r.name,
            r.spec
        );
        for p in found {
            match r.expect {
                Expect::Histogram(unit, buckets) => {
                    assert_eq!(p.kind, "histogram", "{}", r.name);
                    assert_eq!(p.unit, unit, "{}", r.name);
                    assert_eq!(p.bounds, buckets, "{}: bucket advice of {}", r.name, r.spec);
                }
                Expect::Counter(unit) => {
                    assert_eq!(
                        (p.kind.as_str(), p.monotonic),
                        ("sum", Some(true)),
                        "{}",
                        r.name
                    );
                    assert_eq!(p.unit, unit, "{}", r.name);
                }
                _ => unreachable!(),
            }
        }
    }
    for p in all {
        if p.name.starts_with("gen_ai.") {
            let r = row(&p.name);
            assert!(r.modes.has(mode), "{} in {mode:?} mode", p.name);
        }
        if p.attr("server.address").is_some() {
            assert!(
                matches!(p.attr("server.port"), Some(AttrValue::Int(_))),
                "{}: server.address without server.port ({V1_SERVER})",
                p.name
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The traffic
// ---------------------------------------------------------------------------

const YAML: &str = r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
    provider: openai
telemetry:
  content_max_chars: 64
metrics:
  prices:
    - { model: "mock-*", input: 1.0, output: 2.0 }
"#;

const WEATHER_TOOL: &str = "Weather in a city";

async fn post(url: &str, path: &str, body: Value, headers: &[(&str, &str)]) -> (u16, String) {
    let mut r = client().post(format!("{url}{path}")).json(&body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    // A cut stream ends the body with an error: what was read is enough.
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// Plain, n=2, streamed, a tool loop, a cut stream, a stream without usage, a 429, a
/// mid-stream error with a code nobody knows, and two embeddings calls.
async fn drive(url: &str) {
    let chat = "/v1/chat/completions";
    let long = format!("mail alice@example.org about {}", "z".repeat(300));
    let plain = json!({"model": "gpt-4o-mini", "temperature": 0.2, "top_p": 0.9, "top_k": 40,
        "max_tokens": 50, "seed": 7, "n": 1, "stop": ["END"], "frequency_penalty": 0.1,
        "presence_penalty": 0.2, "reasoning_effort": "low", "service_tier": "auto",
        "response_format": {"type": "json_object"},
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": long}]});
    let (st, _) = post(
        url,
        chat,
        plain,
        &[("x-llmtap-prompt-template", "greeting-v2")],
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = post(
        url,
        chat,
        json!({"model": "n-two", "n": 2, "messages": user("hi")}),
        &[],
    )
    .await;
    assert_eq!(st, 200);
    let (st, body) = post(
        url,
        chat,
        json!({"model": "gpt-4o", "stream": true, "messages": user("Say hello")}),
        &[],
    )
    .await;
    assert!(st == 200 && body.ends_with("data: [DONE]\n\n"), "{body}");

    // A tool loop: the model asks for a call, the app runs it and sends the result back.
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": WEATHER_TOOL,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let ask =
        json!({"model": "gpt-4.1-mini", "tools": tools, "messages": user("Weather in Paris?")});
    let (st, body) = post(url, chat, ask, &[]).await;
    assert_eq!(st, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let message = answer["choices"][0]["message"].clone();
    let call_id = message["tool_calls"][0]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let follow = json!({"model": "gpt-4.1-mini", "tools": tools, "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        message,
        {"role": "tool", "tool_call_id": call_id, "content": "{\"sky\": \"rainy\"}"}]});
    assert_eq!(post(url, chat, follow, &[]).await.0, 200);

    for model in ["mock-cut", "mock-no-usage"] {
        let body = json!({"model": model, "stream": true, "messages": user("Say hello")});
        let _ = post(url, chat, body, &[]).await;
    }
    let (st, _) = post(
        url,
        chat,
        json!({"model": "mock-error-429", "messages": user("hi")}),
        &[],
    )
    .await;
    assert_eq!(st, 429);
    let (st, _) = post(
        url,
        chat,
        json!({"model": "groq-replay", "stream": true, "messages": user("hi")}),
        &[
            ("x-mock-scenario", "replay"),
            ("x-mock-replay", "groq-chat-stream-midstream-error.sse"),
        ],
    )
    .await;
    assert_eq!(st, 200);

    let emb = "/v1/embeddings";
    let (st, _) = post(
        url,
        emb,
        json!({"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"}),
        &[],
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = post(
        url,
        emb,
        json!({"model": "text-embedding-3-large", "input": ["a", "b"], "dimensions": 16}),
        &[],
    )
    .await;
    assert_eq!(st, 200);
}

/// Inference spans in the traffic above (everything but the execute_tool span).
const INFERENCE_CALLS: usize = 11;

struct Exported {
    spans: Vec<SpanView>,
    metrics: Vec<MetricView>,
    logs: Vec<LogView>,
}

async fn run(mode: Mode, yaml: &str, content: &str) -> Exported {
    let mut extra = vec![(
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        content,
    )];
    if mode == Mode::Latest {
        extra.push((
            "OTEL_SEMCONV_STABILITY_OPT_IN",
            "http,gen_ai_latest_experimental",
        ));
    }
    let (_up, rx, proxy) = start_traced("http/protobuf", Some(yaml), &extra).await;
    drive(&proxy.url).await;
    proxy.stop().await; // flushes spans, log records and a final metric export
    Exported {
        spans: rx.spans(),
        metrics: latest_points(&rx.metrics()),
        logs: rx.logs(),
    }
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn default_mode_is_v1_41_1() {
    conformance(Mode::Default).await;
}

#[tokio::test]
async fn latest_experimental_mode_is_genai_main() {
    conformance(Mode::Latest).await;
}

async fn conformance(mode: Mode) {
    let Exported {
        spans,
        metrics,
        logs,
    } = run(mode, YAML, "SPAN_AND_EVENT").await;
    let dump = spans_json(&spans);
    let inference: Vec<&SpanView> = spans.iter().filter(|s| s.kind == "client").collect();
    assert_eq!(inference.len(), INFERENCE_CALLS, "{dump}");

    // Every inference span: the required attributes, with their types.
    for s in &inference {
        for name in [
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "server.address",
            "server.port",
            "openai.api.type",
        ] {
            get(s, name, mode);
        }
    }

    // Plain chat: every request attribute sent, none that was not.
    let plain = one(&spans, "gpt-4o-mini");
    for name in [
        "gen_ai.request.temperature",
        "gen_ai.request.top_p",
        "gen_ai.request.top_k",
        "gen_ai.request.max_tokens",
        "gen_ai.request.seed",
        "gen_ai.request.stop_sequences",
        "gen_ai.request.frequency_penalty",
        "gen_ai.request.presence_penalty",
        "gen_ai.response.id",
        "gen_ai.response.model",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "openai.response.service_tier",
        "openai.response.system_fingerprint",
    ] {
        get(plain, name, mode);
    }
    assert_eq!(
        get(plain, "gen_ai.request.reasoning.level", mode).as_str(),
        Some("low")
    );
    assert_eq!(
        get(plain, "gen_ai.output.type", mode).as_str(),
        Some("json")
    );
    assert_eq!(
        get(plain, "openai.request.service_tier", mode).as_str(),
        Some("auto")
    );
    assert_eq!(
        get(plain, "gen_ai.prompt.name", mode).as_str(),
        Some("greeting-v2")
    );
    assert_eq!(
        get(plain, "llmtap.prompt.template", mode).as_str(),
        Some("greeting-v2")
    );
    // The call's cost, priced from the shipped table (gpt-4o-mini).
    assert!(
        get(plain, "llmtap.cost.usd", mode)
            .as_f64()
            .is_some_and(|usd| usd > 0.0),
        "{}",
        spans_json(std::slice::from_ref(plain))
    );
    for name in [
        "gen_ai.request.choice.count", // n = 1
        "gen_ai.request.stream",
        "error.type",
        "llmtap.usage.estimated",
        "llmtap.usage.estimated.input_tokens",
    ] {
        absent(plain, name);
    }
    // Content: truncated leaf by leaf, so it parses.
    let input = json_attr(plain, "gen_ai.input.messages", mode);
    let text = input[1]["parts"][0]["content"].as_str().unwrap();
    assert!(
        text.ends_with("…[truncated]") && !text.contains("alice@"),
        "{text}"
    );
    // Chat completions carry the system prompt as a message, so it stays one (the
    // conventions' gen_ai.system_instructions is for APIs that carry it apart).
    assert_eq!(input[0]["role"], "system", "{input}");
    assert_eq!(input[0]["parts"][0]["content"], "You are terse.", "{input}");
    absent(plain, "gen_ai.system_instructions");
    let output = json_attr(plain, "gen_ai.output.messages", mode);
    assert_eq!(output[0]["role"], "assistant");
    // v1.41.1's output-message schema requires the per-message finish_reason (Phoenix drops
    // output messages without it); genai main deprecates it (#363) for
    // gen_ai.response.finish_reasons.
    match mode {
        Mode::Default => assert_eq!(output[0]["finish_reason"], "stop", "{output}"),
        Mode::Latest => assert!(output[0].get("finish_reason").is_none(), "{output}"),
    }

    assert_eq!(
        get(one(&spans, "n-two"), "gen_ai.request.choice.count", mode).as_i64(),
        Some(2)
    );

    let stream = one(&spans, "gpt-4o");
    assert_eq!(
        get(stream, "gen_ai.request.stream", mode).as_bool(),
        Some(true)
    );
    get(stream, "gen_ai.response.time_to_first_chunk", mode);
    get(stream, "gen_ai.usage.output_tokens", mode);

    // The tool loop.
    let asked = by_model(&spans, "gpt-4.1-mini");
    assert_eq!(asked.len(), 2, "{dump}");
    let first = asked.iter().min_by_key(|s| s.start_unix_nanos).unwrap();
    let second = asked.iter().max_by_key(|s| s.start_unix_nanos).unwrap();
    json_attr(first, "gen_ai.tool.definitions", mode);
    let history = json_attr(second, "gen_ai.input.messages", mode);
    let call_part = history
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["parts"].as_array().unwrap().iter())
        .find(|p| p["type"] == "tool_call")
        .unwrap_or_else(|| panic!("no tool_call part: {history}"));
    assert!(
        call_part["arguments"].is_object(),
        "tool-call arguments in input messages are objects: {history}"
    );
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool get_weather")
        .unwrap_or_else(|| panic!("no execute_tool span:\n{dump}"));
    assert_eq!(tool.kind, "internal");
    assert_eq!(
        get(tool, "gen_ai.operation.name", mode).as_str(),
        Some("execute_tool")
    );
    for name in [
        "gen_ai.tool.name",
        "gen_ai.tool.call.id",
        "gen_ai.tool.type",
    ] {
        get(tool, name, mode);
    }
    assert_eq!(
        get(tool, "gen_ai.tool.description", mode).as_str(),
        Some(WEATHER_TOOL)
    );
    assert!(json_attr(tool, "gen_ai.tool.call.arguments", mode).is_object());
    get(tool, "gen_ai.tool.call.result", mode);
    absent(tool, "gen_ai.request.model");

    // No usage from the upstream (a cut stream, a server that ignores include_usage): the
    // estimate is llmtap's, not usage.
    for model in ["mock-cut", "mock-no-usage"] {
        let s = one(&spans, model);
        assert_eq!(get(s, "llmtap.usage.estimated", mode).as_bool(), Some(true));
        get(s, "llmtap.usage.estimated.input_tokens", mode);
        assert!(get(s, "llmtap.usage.estimated.output_tokens", mode)
            .as_i64()
            .is_some_and(|n| n > 0));
        absent(s, "gen_ai.usage.input_tokens");
        absent(s, "gen_ai.usage.output_tokens");
    }
    let cut = one(&spans, "mock-cut");
    assert_eq!(
        get(cut, "error.type", mode).as_str(),
        Some("stream_truncated")
    );

    let limited = one(&spans, "mock-error-429");
    assert_eq!(limited.status_code, "error");
    assert_eq!(
        get(limited, "error.type", mode).as_str(),
        Some("rate_limit_exceeded")
    );
    // The span keeps the provider's code; metrics bound it (below).
    assert_eq!(
        get(one(&spans, "groq-replay"), "error.type", mode).as_str(),
        Some("tool_use_failed")
    );

    let small = one(&spans, "text-embedding-3-small");
    assert_eq!(
        get(small, "gen_ai.request.encoding_formats", mode),
        &AttrValue::Array(vec![AttrValue::Str("base64".into())])
    );
    assert_eq!(
        get(small, "gen_ai.embeddings.dimension.count", mode).as_i64(),
        Some(8),
        "the length of the vectors returned"
    );
    get(small, "gen_ai.usage.input_tokens", mode);
    absent(small, "gen_ai.usage.output_tokens");
    assert_eq!(
        get(
            one(&spans, "text-embedding-3-large"),
            "gen_ai.embeddings.dimension.count",
            mode
        )
        .as_i64(),
        Some(16),
        "the dimensions asked for"
    );

    // Metrics.
    let all = &metrics;
    metric_names_and_shapes(all, mode);
    let errors = |name: &str, model: &str| -> Vec<String> {
        model_points(all, name, model)
            .iter()
            .filter_map(|p| p.str_attr("error.type").map(str::to_owned))
            .collect()
    };
    assert_eq!(
        errors("llmtap.requests", "mock-error-429"),
        ["rate_limit_exceeded"]
    );
    assert_eq!(
        errors("llmtap.requests", "groq-replay"),
        ["stream_error"],
        "an unknown code inside a 200 stream is bounded"
    );
    // Estimates stay out of the standard cost; priced, they have their own series.
    assert!(model_points(all, "llmtap.cost", "mock-no-usage").is_empty());
    assert!(!model_points(all, "llmtap.cost.estimated", "mock-no-usage").is_empty());
    match mode {
        Mode::Default => {
            let duration = "gen_ai.client.operation.duration";
            assert_eq!(errors(duration, "mock-error-429"), ["rate_limit_exceeded"]);
            assert_eq!(errors(duration, "groq-replay"), ["stream_error"]);
            let usage = "gen_ai.client.token.usage";
            assert!(!model_points(all, usage, "gpt-4o-mini").is_empty());
            for model in ["mock-cut", "mock-no-usage", "mock-error-429"] {
                assert!(
                    model_points(all, usage, model).is_empty(),
                    "{model}: no usage reported, none recorded"
                );
            }
        }
        Mode::Latest => {
            let duration = "gen_ai.client.inference.duration";
            assert_eq!(errors(duration, "mock-error-429"), ["rate_limit_exceeded"]);
            assert!(model_points(all, duration, "text-embedding-3-small").is_empty());
            assert!(!model_points(
                all,
                "gen_ai.client.embeddings.duration",
                "text-embedding-3-small"
            )
            .is_empty());
            // The usage counters: every inference call, 0 when no usage came, modality
            // `unknown`.
            for name in [
                "gen_ai.client.inference.usage.input_tokens",
                "gen_ai.client.inference.usage.output_tokens",
                "gen_ai.client.inference.usage.cache_read.input_tokens",
                "gen_ai.client.inference.usage.cache_write.input_tokens",
                "gen_ai.client.inference.usage.reasoning.output_tokens",
            ] {
                for p in points(all, name) {
                    assert_eq!(
                        p.str_attr("gen_ai.token.modality"),
                        Some("unknown"),
                        "{name}"
                    );
                    assert!(p.attr("gen_ai.token.type").is_none(), "{name}");
                }
                for model in ["mock-cut", "mock-no-usage", "mock-error-429", "groq-replay"] {
                    let ps = model_points(all, name, model);
                    assert_eq!(ps.len(), 1, "{name} {model}");
                    assert_eq!(ps[0].value, 0.0, "{name} {model}");
                }
            }
            let input = "gen_ai.client.inference.usage.input_tokens";
            assert!(model_points(all, input, "gpt-4o-mini")[0].value > 0.0);
            let per_op = model_points(
                all,
                "gen_ai.client.inference.operation.input_tokens",
                "mock-error-429",
            );
            assert_eq!(
                (per_op.len(), per_op[0].count, per_op[0].value),
                (1, 1, 0.0)
            );
            assert_eq!(
                per_op[0].str_attr("error.type"),
                Some("rate_limit_exceeded")
            );
            // The tool's duration metric is its span's duration.
            let tool_points = points(all, "gen_ai.execute_tool.duration");
            assert_eq!(tool_points.len(), 1);
            let p = tool_points[0];
            assert_eq!(p.str_attr("gen_ai.tool.name"), Some("get_weather"));
            assert_eq!(p.str_attr("gen_ai.tool.type"), Some("function"));
            assert_eq!(p.count, 1);
            assert!(
                (p.value - tool.duration_secs()).abs() < 1e-6,
                "metric {} s, span {} s",
                p.value,
                tool.duration_secs()
            );
        }
    }

    // The log record: one per inference call, with the span's attributes and content
    // structured.
    assert_eq!(
        row("gen_ai.client.inference.operation.details").spec,
        MAIN_INFERENCE
    );
    let details: Vec<&LogView> = logs
        .iter()
        .filter(|l| l.event_name == "gen_ai.client.inference.operation.details")
        .collect();
    assert_eq!(details.len(), INFERENCE_CALLS, "{}", logs_json(&logs));
    let record = details
        .iter()
        .find(|l| l.span_id == plain.span_id)
        .unwrap_or_else(|| panic!("no record for the plain call:\n{}", logs_json(&logs)));
    assert_eq!(record.trace_id, plain.trace_id);
    assert_eq!(record.str_attr("gen_ai.operation.name"), Some("chat"));
    assert_eq!(record.str_attr("gen_ai.request.model"), Some("gpt-4o-mini"));
    assert_eq!(record.attr("server.port"), plain.attr("server.port"));
    let Some(AttrValue::Array(messages)) = record.attr("gen_ai.input.messages") else {
        panic!(
            "input messages not structured: {:?}",
            record.attr("gen_ai.input.messages")
        );
    };
    let role = |i: usize| {
        let AttrValue::Map(message) = &messages[i] else {
            panic!("a message is not a map: {messages:?}");
        };
        message
            .iter()
            .find(|(k, _)| k == "role")
            .and_then(|(_, v)| v.as_str().map(str::to_owned))
    };
    // The system prompt first, as the request sent it, then the user's message.
    assert_eq!(role(0).as_deref(), Some("system"));
    assert_eq!(role(1).as_deref(), Some("user"));
    assert!(
        matches!(
            record.attr("gen_ai.output.messages"),
            Some(AttrValue::Array(_))
        ),
        "{}",
        logs_json(&logs)
    );
}

/// `EVENT_ONLY`: the content is on the log record and not on the span.
#[tokio::test]
async fn event_only_keeps_content_off_spans() {
    let (_up, rx, proxy) = start_traced(
        "grpc",
        Some(YAML),
        &[(
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
            "EVENT_ONLY",
        )],
    )
    .await;
    let (st, _) = post(
        &proxy.url,
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "messages": user("Say hello")}),
        &[],
    )
    .await;
    assert_eq!(st, 200);
    proxy.stop().await;
    let spans = rx.spans();
    let s = one(&spans, "gpt-4o-mini");
    absent(s, "gen_ai.input.messages");
    absent(s, "gen_ai.output.messages");
    let logs = rx.logs();
    assert_eq!(logs.len(), 1, "{}", logs_json(&logs));
    assert!(matches!(
        logs[0].attr("gen_ai.input.messages"),
        Some(AttrValue::Array(_))
    ));
    // No content, no record: the default emits none.
    let (_up, rx, proxy) = start_traced("http/json", Some(YAML), &[]).await;
    let (st, _) = post(
        &proxy.url,
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "messages": user("Say hello")}),
        &[],
    )
    .await;
    assert_eq!(st, 200);
    proxy.stop().await;
    assert_eq!(rx.spans().len(), 1);
    assert!(rx.logs().is_empty(), "{}", logs_json(&rx.logs()));
}

/// `telemetry.report_estimated_usage: true` writes estimates to the standard names, flagged.
#[tokio::test]
async fn estimates_are_reported_as_usage_only_when_asked_and_stay_flagged() {
    let yaml = YAML.replace(
        "telemetry:\n",
        "telemetry:\n  report_estimated_usage: true\n",
    );
    let (_up, rx, proxy) = start_traced("http/protobuf", Some(&yaml), &[]).await;
    let body = json!({"model": "mock-no-usage", "stream": true, "messages": user("Say hello")});
    assert_eq!(
        post(&proxy.url, "/v1/chat/completions", body, &[]).await.0,
        200
    );
    proxy.stop().await;
    let spans = rx.spans();
    let s = one(&spans, "mock-no-usage");
    let mode = Mode::Default;
    assert_eq!(get(s, "llmtap.usage.estimated", mode).as_bool(), Some(true));
    get(s, "gen_ai.usage.input_tokens", mode);
    get(s, "gen_ai.usage.output_tokens", mode);
    absent(s, "llmtap.usage.estimated.input_tokens");
    let all = latest_points(&rx.metrics());
    let usage = model_points(&all, "gen_ai.client.token.usage", "mock-no-usage");
    assert_eq!(usage.len(), 2, "{}", metrics_json(&all));
    let cost = model_points(&all, "llmtap.cost", "mock-no-usage");
    assert!(!cost.is_empty());
    for p in usage.iter().chain(&cost) {
        assert_eq!(
            p.attr("llmtap.usage.estimated"),
            Some(&AttrValue::Bool(true)),
            "{}",
            p.name
        );
    }
    assert!(model_points(&all, "llmtap.cost.estimated", "mock-no-usage").is_empty());
}

/// The telemetry reference (docs/telemetry.md) names what the code emits: every name in the
/// table (with the spec version it comes from), every `error.type` llmtap produces itself,
/// and the chunk histograms' buckets.
#[test]
fn the_telemetry_reference_matches_what_is_emitted() {
    const DOC: &str = "docs/telemetry.md";
    let doc = read(DOC);
    for r in TABLE {
        assert!(
            doc.contains(&format!("`{}`", r.name)),
            "{DOC} lacks {}",
            r.name
        );
    }
    let line = doc
        .lines()
        .find(|l| l.starts_with("| `error.type`"))
        .unwrap_or_else(|| panic!("{DOC}'s error.type row"));
    for value in llmtap::vocab::error_type::ErrorType::ALL.map(|e| e.as_str()) {
        assert!(
            line.contains(&format!("`{value}`")),
            "{DOC}'s error.type row lacks {value}"
        );
    }
    assert!(
        !doc.contains("0.001 … 10 s"),
        "server-metric buckets in {DOC}"
    );
    let (d, t) = (
        llmtap::telemetry::semconv::BUCKETS_DURATION,
        llmtap::telemetry::semconv::BUCKETS_TOKENS,
    );
    for stated in [
        format!("{} … {} s", d[0], d[d.len() - 1]),
        format!("{} … {}", t[0], t[t.len() - 1]),
    ] {
        assert!(
            doc.contains(&stated),
            "{DOC} should state the buckets {stated:?}"
        );
    }
    assert!(doc.contains("gen_ai_latest_experimental"));
    assert!(doc.contains("report_estimated_usage"));
}

/// The alert rules and the dashboard filter on `error_type` values metrics can carry: llmtap's
/// own ([`ErrorType`]), the upstream codes metrics keep, or an HTTP status. A value outside
/// those would make a rule that can never fire.
#[test]
fn alert_and_dashboard_error_types_are_values_metrics_can_carry() {
    use llmtap::telemetry::semconv::KNOWN_UPSTREAM_ERROR_CODES;
    use llmtap::vocab::error_type::ErrorType;
    let mut checked = 0;
    for file in [
        "config/prometheus/alerts.yml",
        "config/grafana/dashboards/llmtap.json",
    ] {
        let text = read(file).replace("\\\"", "\"");
        for (i, _) in text.match_indices("error_type=") {
            let rest = &text[i + "error_type=".len()..];
            let rest = rest.strip_prefix('~').unwrap_or(rest);
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            let pattern = &rest[..rest.find('"').expect("closing quote")];
            for value in pattern.trim_start_matches("(?i)").split('|') {
                let known = ErrorType::parse(value).is_some()
                    || KNOWN_UPSTREAM_ERROR_CODES
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(value))
                    || value.parse::<u16>().is_ok_and(|n| (100..=599).contains(&n));
                assert!(known, "{file}: error_type {value:?} is never recorded");
                checked += 1;
            }
        }
    }
    assert!(
        checked > 0,
        "no error_type filter found: the scan is broken"
    );
}
