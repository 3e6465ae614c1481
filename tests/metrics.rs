//! Metrics as exported over OTLP and scraped from `/metrics`: names, units, buckets,
//! attribute sets, token sums, cost, cardinality bounds, and independence from sampling.

mod common;

use common::otlp::{latest_points, metrics_json, MetricView};
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashSet;

fn points<'a>(all: &'a [MetricView], name: &str) -> Vec<&'a MetricView> {
    all.iter().filter(|m| m.name == name).collect()
}

/// Parses the Prometheus text format into (series, value) pairs.
fn scrape_lines(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            Some((series.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn sum_of(lines: &[(String, f64)], metric: &str, filter: &str) -> f64 {
    lines
        .iter()
        .filter(|(s, _)| {
            (s == metric || s.starts_with(&format!("{metric}{{"))) && s.contains(filter)
        })
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn sdk_traffic_is_counted_in_otlp_and_prometheus_alike() {
    let (_up, rx, proxy) = start_traced("http/protobuf", None, &[]).await;
    let Some(sdk) = run_sdk("e2e.py", &proxy.url, &[]).await else {
        return;
    };
    let text = scrape(&proxy.url).await;
    proxy.stop().await; // final export
    let all = latest_points(&rx.metrics());
    let dump = metrics_json(&all);

    // Requests: 3 chats + embeddings + the 429.
    let reqs = points(&all, "llmtap.requests");
    let total: f64 = reqs.iter().map(|p| p.value).sum();
    assert_eq!(total, 5.0, "{dump}");
    for p in &reqs {
        let model = p.str_attr("gen_ai.request.model").unwrap();
        assert_eq!(
            p.attr("error.type").is_some(),
            model == "mock-error-429",
            "error.type only on failures: {dump}"
        );
        assert_eq!(p.str_attr("gen_ai.provider.name"), Some("openai"));
        assert_eq!(p.str_attr("server.address"), Some("127.0.0.1"));
        for banned in ["gen_ai.response.id", "llmtap.prompt.hash", "user.id"] {
            assert!(p.attr(banned).is_none(), "{banned} on a metric");
        }
    }
    let limited = reqs
        .iter()
        .find(|p| p.attr("error.type").is_some())
        .unwrap();
    assert_eq!(limited.str_attr("error.type"), Some("rate_limit_exceeded"));

    let dur = points(&all, "gen_ai.client.operation.duration");
    assert!(!dur.is_empty());
    for p in &dur {
        assert_eq!(p.unit, "s");
        assert_eq!(p.kind, "histogram");
        assert_eq!(
            p.bounds.first(),
            Some(&0.01),
            "semconv buckets, not the SDK's ms defaults"
        );
        assert_eq!(p.bounds.last(), Some(&81.92));
    }
    assert_eq!(dur.iter().map(|p| p.count).sum::<u64>(), 5);

    // Token sums equal the usage the SDK saw. The three chats in e2e.py send the same
    // prompt and get the same 10-chunk reply, so each has the plain call's usage.
    let u = &sdk["plain"]["usage"];
    let (p_in, p_out) = (
        u["prompt_tokens"].as_f64().unwrap(),
        u["completion_tokens"].as_f64().unwrap(),
    );
    assert_eq!(
        sdk["stream_usage"]["usage"]["prompt_tokens"].as_f64(),
        Some(p_in)
    );
    let tokens = points(&all, "gen_ai.client.token.usage");
    let chat_e2e = |t: &str| -> f64 {
        tokens
            .iter()
            .filter(|p| p.str_attr("gen_ai.token.type") == Some(t))
            .filter(|p| {
                p.str_attr("gen_ai.request.model") == Some("gpt-4o-mini")
                    && p.str_attr("gen_ai.operation.name") == Some("chat")
            })
            .map(|p| p.value)
            .sum()
    };
    assert_eq!(tokens[0].unit, "{token}");
    assert_eq!(chat_e2e("input"), 3.0 * p_in, "{dump}");
    assert_eq!(chat_e2e("output"), 3.0 * p_out, "{dump}");
    let emb: Vec<_> = tokens
        .iter()
        .filter(|p| p.str_attr("gen_ai.operation.name") == Some("embeddings"))
        .collect();
    assert_eq!(emb.len(), 1, "embeddings record input tokens only: {dump}");
    assert_eq!(
        emb[0].value,
        sdk["embeddings"]["usage"]["prompt_tokens"]
            .as_f64()
            .unwrap()
    );

    // Streaming-only instruments: the two streams.
    let ttfc = points(&all, "gen_ai.client.operation.time_to_first_chunk");
    assert_eq!(ttfc.iter().map(|p| p.count).sum::<u64>(), 2, "{dump}");
    // One observation per chunk after the first: 13 data events per stream → 12 each.
    assert_eq!(
        points(&all, "gen_ai.client.operation.time_per_output_chunk")
            .iter()
            .map(|p| p.count)
            .sum::<u64>(),
        24
    );

    // gpt-4o-mini is in the shipped price table: cost recorded per token type,
    // (input - cached) × $0.15/M + output × $0.60/M, cached = 0 here.
    let cost = points(&all, "llmtap.cost");
    assert!(cost.iter().all(|p| p.unit == "USD"));
    let mini = |t: &str| -> f64 {
        cost.iter()
            .filter(|p| {
                p.str_attr("gen_ai.request.model") == Some("gpt-4o-mini")
                    && p.str_attr("gen_ai.token.type") == Some(t)
            })
            .map(|p| p.value)
            .sum()
    };
    assert!(
        (mini("input") - 3.0 * p_in * 0.15 / 1e6).abs() < 1e-12,
        "{dump}"
    );
    assert!(
        (mini("output") - 3.0 * p_out * 0.60 / 1e6).abs() < 1e-12,
        "{dump}"
    );

    // /metrics agrees with OTLP.
    let lines = scrape_lines(&text);
    assert_eq!(sum_of(&lines, "llmtap_requests_total", ""), 5.0, "{text}");
    assert_eq!(
        sum_of(&lines, "gen_ai_client_operation_duration_seconds_count", ""),
        5.0
    );
    assert_eq!(
        sum_of(
            &lines,
            "llmtap_requests_total",
            "error_type=\"rate_limit_exceeded\""
        ),
        1.0
    );
    assert_eq!(
        sum_of(
            &lines,
            "gen_ai_client_token_usage_sum",
            "gen_ai_token_type=\"input\""
        ),
        3.0 * p_in + emb[0].value
    );
    assert!(
        text.contains("gen_ai_client_operation_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(text.contains("le=\"+Inf\""));
    assert!(
        text.contains("# TYPE llmtap_cost_USD_total counter"),
        "{text}"
    );
    assert!(text.contains("# TYPE llmtap_requests_active gauge"));
    println!("--- /metrics after the SDK run ---\n{text}");
}

#[tokio::test]
async fn tool_calls_are_counted_and_timed() {
    let (_up, rx, proxy) = start_traced("grpc", None, &[]).await;
    let Some(_tools) = run_sdk("tools.py", &proxy.url, &[("TOOL_SLEEP", "0.2")]).await else {
        return;
    };
    proxy.stop().await;
    let all = latest_points(&rx.metrics());
    let dump = metrics_json(&all);
    let calls = points(&all, "llmtap.tool.calls");
    assert_eq!(calls.iter().map(|p| p.value).sum::<f64>(), 2.0, "{dump}");
    let names: HashSet<_> = calls
        .iter()
        .filter_map(|p| p.str_attr("gen_ai.tool.name"))
        .collect();
    assert_eq!(names, HashSet::from(["get_weather", "get_time"]));
    let tdur = points(&all, "llmtap.tool.duration");
    assert_eq!(tdur.iter().map(|p| p.count).sum::<u64>(), 2);
    assert!(tdur.iter().all(|p| p.value >= 0.2), "{dump}");
}

#[tokio::test]
async fn ten_thousand_distinct_models_leave_the_series_count_bounded() {
    let up = start_upstream().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: env(&[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_METRICS_EXPORTER", "none"),
            ]),
            ..Default::default()
        },
    )
    .await;
    let c = client();
    let url = format!("{}/v1/embeddings", proxy.url);
    let results = futures_util::stream::iter(0..10_000)
        .map(|i| {
            let c = c.clone();
            let url = url.clone();
            async move {
                let r = c
                    .post(&url)
                    .json(&json!({"model": format!("random-model-{i}"), "input": "x"}))
                    .send()
                    .await
                    .unwrap();
                let s = r.status().as_u16();
                let _ = r.bytes().await;
                s
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<u16>>()
        .await;
    assert!(results.iter().all(|s| *s == 200));
    let text = scrape(&proxy.url).await;
    let lines = scrape_lines(&text);
    let series: Vec<_> = lines
        .iter()
        .filter(|(s, _)| s.starts_with("llmtap_requests_total{"))
        .collect();
    // 100 distinct models kept (the default cap), everything after that is `other`.
    assert_eq!(series.len(), 101, "series: {}", series.len());
    assert_eq!(
        sum_of(
            &lines,
            "llmtap_requests_total",
            "gen_ai_request_model=\"other\""
        ),
        9_900.0
    );
    assert_eq!(sum_of(&lines, "llmtap_requests_total", ""), 10_000.0);
}

/// `llmtap.conversation.*`: per `gen_ai.conversation.id`, the first `max_conversations` ids
/// keep their own series and the rest are `other`; calls without an id add nothing; tokens
/// and cost add up to what `llmtap.requests`/`llmtap.cost` count for the same calls.
#[tokio::test]
async fn conversations_are_counted_per_id_with_a_bounded_label() {
    let up = start_upstream().await;
    let yaml = r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
metrics:
  max_conversations: 3
  prices:
    - { model: "priced-model*", input: 2.0, output: 8.0 }
"#;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: Some(yaml.into()),
            env: env(&[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_METRICS_EXPORTER", "none"),
            ]),
            ..Default::default()
        },
    )
    .await;
    let c = client();
    let chat = |session: Option<String>| {
        let mut r = c.post(format!("{}/v1/chat/completions", proxy.url)).json(
            &json!({"model": "priced-model", "messages": [{"role": "user", "content": "hi"}]}),
        );
        if let Some(s) = session {
            r = r.header("x-session-id", s);
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await;
        }
    };
    // Session 0 three times, sessions 1..=5 once each, two calls without a session.
    for _ in 0..3 {
        chat(Some("session-0".into())).await;
    }
    for i in 1..=5 {
        chat(Some(format!("session-{i}"))).await;
    }
    chat(None).await;
    chat(None).await;
    let lines = scrape_lines(&scrape(&proxy.url).await);
    proxy.stop().await;
    let series: Vec<_> = lines
        .iter()
        .filter(|(s, _)| s.starts_with("llmtap_conversation_requests_total{"))
        .collect();
    // Sessions 0, 1 and 2 keep their id; 3, 4 and 5 share `other`.
    assert_eq!(series.len(), 4, "{series:?}");
    let reqs = |id: &str| {
        sum_of(
            &lines,
            "llmtap_conversation_requests_total",
            &format!("gen_ai_conversation_id=\"{id}\""),
        )
    };
    assert_eq!(reqs("session-0"), 3.0);
    assert_eq!(reqs("session-1"), 1.0);
    assert_eq!(reqs("other"), 3.0);
    assert_eq!(
        sum_of(&lines, "llmtap_conversation_requests_total", ""),
        8.0
    );
    assert_eq!(sum_of(&lines, "llmtap_requests_total", ""), 10.0);
    // Tokens and cost of the calls with a session: 8 of the 10 identical calls.
    let tokens = sum_of(&lines, "llmtap_conversation_tokens_total", "");
    let all_tokens = sum_of(&lines, "gen_ai_client_token_usage_sum", "");
    assert!(tokens > 0.0, "{lines:?}");
    assert!(
        (tokens - all_tokens * 0.8).abs() < 1e-9,
        "{tokens} vs {all_tokens}"
    );
    let in_session0 = sum_of(
        &lines,
        "llmtap_conversation_tokens_total",
        "gen_ai_conversation_id=\"session-0\",gen_ai_token_type=\"input\"",
    );
    assert!(
        in_session0 > 0.0,
        "input tokens of session-0 by type: {lines:?}"
    );
    let cost = sum_of(&lines, "llmtap_conversation_cost_USD_total", "");
    let all_cost = sum_of(&lines, "llmtap_cost_USD_total", "");
    assert!(cost > 0.0, "{lines:?}");
    assert!(
        (cost - all_cost * 0.8).abs() < 1e-12,
        "{cost} vs {all_cost}"
    );
}

/// Off with `max_conversations: 0`: no conversation series at all.
#[tokio::test]
async fn conversation_counters_are_off_at_zero() {
    let up = start_upstream().await;
    let yaml = "upstreams:\n  - name: openai\n    base_url: \"{upstream}/v1\"\nmetrics:\n  max_conversations: 0\n";
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: Some(yaml.into()),
            env: env(&[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_METRICS_EXPORTER", "none"),
            ]),
            ..Default::default()
        },
    )
    .await;
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-session-id", "s")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await;
    let text = scrape(&proxy.url).await;
    proxy.stop().await;
    assert!(text.contains("llmtap_requests_total"), "{text}");
    assert!(!text.contains("llmtap_conversation_"), "{text}");
}

#[tokio::test]
async fn cost_comes_from_the_price_table_and_unpriced_models_get_none() {
    let up = start_upstream().await;
    let yaml = r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
metrics:
  prices:
    - { model: "priced-model*", input: 2.0, cached_input: 1.0, output: 8.0 }
"#;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: Some(yaml.into()),
            env: env(&[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_METRICS_EXPORTER", "none"),
            ]),
            ..Default::default()
        },
    )
    .await;
    let c = client();
    let body =
        json!({"model": "priced-model", "messages": [{"role": "user", "content": "abcdefgh"}]});
    let v: Value = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-scenario", "reasoning")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The upstream billed: 2 prompt tokens (1 of them cached), 74 completion tokens
    // (64 of them reasoning).
    assert_eq!(v["usage"]["prompt_tokens"], 2, "{v}");
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    assert_eq!(v["usage"]["completion_tokens"], 74);
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        64
    );
    // Hand-computed: input = 1 × $2/M + 1 × $1/M = $0.000003; output = 74 × $8/M = $0.000592.
    let v: Value = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&json!({"model": "llama-unpriced", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let lines = scrape_lines(&scrape(&proxy.url).await);
    let input = sum_of(
        &lines,
        "llmtap_cost_USD_total",
        "gen_ai_token_type=\"input\"",
    );
    let output = sum_of(
        &lines,
        "llmtap_cost_USD_total",
        "gen_ai_token_type=\"output\"",
    );
    assert!((input - 0.000003).abs() < 1e-12, "input cost {input}");
    assert!((output - 0.000592).abs() < 1e-12, "output cost {output}");
    assert_eq!(
        sum_of(&lines, "llmtap_cost_USD_total", "llama-unpriced"),
        0.0
    );
    assert!(!lines
        .iter()
        .any(|(s, _)| s.starts_with("llmtap_cost_USD_total") && s.contains("llama-unpriced")));
    assert_eq!(
        sum_of(
            &lines,
            "llmtap_cost_unpriced_total",
            "gen_ai_request_model=\"llama-unpriced\""
        ),
        1.0
    );
}

#[tokio::test]
async fn sampling_at_zero_still_counts_every_request() {
    let (_up, rx, proxy) = start_traced(
        "grpc",
        None,
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
        ],
    )
    .await;
    let c = client();
    for _ in 0..6 {
        let r = c
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let _ = r.bytes().await.unwrap();
    }
    proxy.stop().await;
    assert!(rx.spans().is_empty(), "sampled at 0: no spans");
    let all = rx.metrics();
    let reqs = points(&all, "llmtap.requests");
    assert!(
        reqs.iter().all(|p| p.temporality == "delta"),
        "{}",
        metrics_json(&all)
    );
    // Delta points add up to the total.
    assert_eq!(
        reqs.iter().map(|p| p.value).sum::<f64>(),
        6.0,
        "{}",
        metrics_json(&all)
    );
}
