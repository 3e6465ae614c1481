//! The live view: `/ui` and its JSON after scripted traffic through the in-process proxy
//! (plain, streamed, a tool loop, a failing call, an Anthropic Messages call), its event
//! stream, its safe defaults, that no credential ever reaches it, and a real browser
//! (Debian's headless Chromium) rendering the page.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// In the client's credential headers.
const CLIENT_CANARY: &str = "sk-canary-client-7f3a9c1e5b2d";
/// In the upstream key's environment variable (gateway mode).
const UPSTREAM_CANARY: &str = "sk-canary-upstream-4e8b2a6d0c1f";

/// A proxy in gateway mode (its upstream key is the upstream canary) that copies a request
/// header onto spans. A credential header (`x-api-key`) named there is skipped with a
/// warning (tests/gateway.rs); the canary keys sent in every credential header must reach
/// nothing the view serves.
async fn gateway_proxy(extra_yaml: &str, tweak: Option<Tweak>) -> (Upstream, Proxy) {
    let up = start_upstream().await;
    let yaml = format!(
        "upstreams:\n  - name: main\n    base_url: {{upstream}}/v1\n    provider: openai\n    api_key_env: LLMTAP_TEST_UI_KEY\n\
         telemetry:\n  header_attributes: [x-request-source]\n  baggage_attributes: [tenant]\n{extra_yaml}"
    );
    let mut e = no_telemetry();
    e.push(("LLMTAP_TEST_UI_KEY".into(), UPSTREAM_CANARY.into()));
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: Some(yaml),
            env: e,
            tweak,
        },
    )
    .await;
    (up, proxy)
}

fn credential_headers() -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {CLIENT_CANARY}")),
        ("api-key", CLIENT_CANARY.to_string()),
        ("x-api-key", CLIENT_CANARY.to_string()),
    ]
}

async fn post(url: &str, path: &str, body: Value, extra: &[(&str, &str)]) -> (u16, String) {
    let mut r = client().post(format!("{url}{path}")).json(&body);
    for (k, v) in credential_headers() {
        r = r.header(k, v);
    }
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    ])
}

/// The scripted traffic: a plain call, a streamed one (tenant `acme` in baggage), a streamed
/// tool-call turn and the turn carrying the results, a 429, and an Anthropic Messages call.
/// Returns the number of inference calls made ([`TRAFFIC_CALLS`]).
async fn traffic(url: &str) -> usize {
    let user = json!([{"role": "user", "content": "Hello from bob@example.com"}]);
    let (s, _) = post(
        url,
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "messages": user}),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post(
        url,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "stream": true, "messages": user}),
        &[("baggage", "tenant=acme")],
    )
    .await;
    assert_eq!(s, 200);
    // The tool loop: the model asks for two tools (streamed), the app runs them, then sends
    // the results.
    let (s, body) = post(
        url,
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "stream": true, "tools": tools(),
               "messages": [{"role": "user", "content": "Weather and time in Paris?"}]}),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let calls = streamed_tool_calls(&body);
    assert_eq!(calls.len(), 2, "{body}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut messages = vec![
        json!({"role": "user", "content": "Weather and time in Paris?"}),
        json!({"role": "assistant", "content": null, "tool_calls": calls.iter().map(|(id, name)| json!({
            "id": id, "type": "function", "function": {"name": name, "arguments": "{}"}})).collect::<Vec<_>>()}),
    ];
    for (id, name) in &calls {
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": format!("{name}: tool secret 42")}));
    }
    let (s, _) = post(
        url,
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "tools": tools(), "messages": messages}),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post(
        url,
        "/v1/chat/completions",
        json!({"model": "mock-error-429", "messages": user}),
        &[],
    )
    .await;
    assert_eq!(s, 429);
    let (s, _) = post(
        url,
        "/v1/messages",
        json!({"model": "claude-haiku-4-5", "max_tokens": 64, "messages": user}),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(s, 200);
    TRAFFIC_CALLS
}

/// Inference calls [`traffic`] makes.
const TRAFFIC_CALLS: usize = 6;

/// (id, name) of the tool calls in a streamed chat completion.
fn streamed_tool_calls(body: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        for d in v["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(id), Some(name)) = (d["id"].as_str(), d["function"]["name"].as_str()) {
                out.push((id.to_string(), name.to_string()));
            }
        }
    }
    out
}

async fn get(url: &str) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get_json(url: &str) -> Value {
    let (s, body) = get(url).await;
    assert_eq!(s, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// Waits until the ring holds `n` calls (the worker feeds it off the request path).
async fn wait_calls(url: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = get_json(&format!("{url}/ui/api/calls")).await;
        let calls = v["calls"].as_array().cloned().unwrap_or_default();
        if calls.len() >= n {
            return calls;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("the ring has {} calls, want {n}: {v:#}", calls.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn by_model<'a>(calls: &'a [Value], model: &str) -> Vec<&'a Value> {
    calls.iter().filter(|c| c["model"] == model).collect()
}

fn assert_no_canary(what: &str, text: &str) {
    for canary in [CLIENT_CANARY, UPSTREAM_CANARY] {
        assert!(
            !text.contains(canary),
            "{what} contains a credential: {text}"
        );
    }
}

#[tokio::test]
async fn calls_detail_and_summary_after_scripted_traffic() {
    let (up, proxy) = gateway_proxy("", None).await;
    let n = traffic(&proxy.url).await;
    let calls = wait_calls(&proxy.url, n).await;
    assert_eq!(calls.len(), n);

    // Newest first: ids decrease, and the last call made is on top.
    let ids: Vec<u64> = calls.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert_eq!(calls[0]["model"], "claude-haiku-4-5");

    // Plain call: usage, cost, no stream fields.
    let plain = by_model(&calls, "gpt-4o-mini");
    assert_eq!(plain.len(), 3, "plain, tool turn and results turn");
    let first = plain.last().unwrap();
    assert_eq!(first["api"], "openai_chat");
    assert_eq!(first["status"], 200);
    assert_eq!(first["upstream"], "main");
    assert_eq!(first["response_model"], "gpt-4o-mini-2024-07-18");
    assert!(first["input_tokens"].as_u64().unwrap() > 0);
    assert!(first["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(first["streaming"], false);
    assert!(first["ttfc_ms"].is_null());
    assert_eq!(first["trace_id"].as_str().unwrap().len(), 32);

    // Streamed call: time to first chunk, chunk count, tenant from baggage.
    let streamed = by_model(&calls, "gpt-4o")[0];
    assert_eq!(streamed["streaming"], true);
    assert!(streamed["ttfc_ms"].as_f64().unwrap() > 0.0);
    assert!(streamed["chunks"].as_u64().unwrap() > 1);
    assert_eq!(streamed["tenant"], "acme");

    // The failing call.
    let failed = by_model(&calls, "mock-error-429")[0];
    assert_eq!(failed["status"], 429);
    assert_eq!(failed["error"], "rate_limit_exceeded");

    // Anthropic Messages.
    let claude = by_model(&calls, "claude-haiku-4-5")[0];
    assert_eq!(claude["api"], "anthropic_messages");
    assert_eq!(claude["provider"], "anthropic");
    assert!(claude["output_tokens"].as_u64().unwrap() > 0);

    // Filters.
    let q = |q: &str| {
        let url = format!("{}/ui/api/calls?{q}", proxy.url);
        async move { get_json(&url).await }
    };
    let only = q("model=gpt-4o").await;
    assert_eq!(only["calls"].as_array().unwrap().len(), 1);
    let errors = q("status=error").await;
    assert_eq!(errors["calls"].as_array().unwrap().len(), 1);
    assert_eq!(errors["calls"][0]["model"], "mock-error-429");
    assert_eq!(q("status=429").await["calls"].as_array().unwrap().len(), 1);
    assert_eq!(
        q("status=rate_limit_exceeded").await["calls"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        q("status=ok").await["calls"].as_array().unwrap().len(),
        n - 1
    );
    assert_eq!(q("tenant=acme").await["calls"].as_array().unwrap().len(), 1);
    assert_eq!(
        q("upstream=main").await["calls"].as_array().unwrap().len(),
        n
    );
    assert_eq!(
        q("upstream=other").await["calls"].as_array().unwrap().len(),
        0
    );
    assert_eq!(q("limit=2").await["calls"].as_array().unwrap().len(), 2);
    let facets = &q("").await["facets"];
    assert_eq!(
        facets["model"],
        json!([
            "claude-haiku-4-5",
            "gpt-4o",
            "gpt-4o-mini",
            "mock-error-429"
        ])
    );
    assert_eq!(facets["tenant"], json!(["acme"]));

    // One call in detail: the turn that asked for the tools.
    let asking = plain
        .iter()
        .find(|c| c["tool_calls"].as_array().unwrap().len() == 2)
        .unwrap();
    let results_turn = plain.iter().find(|c| c["tool_results"] == 2).unwrap();
    let d = get_json(&format!("{}/ui/api/calls/{}", proxy.url, asking["id"])).await;
    assert_eq!(d["attributes"]["gen_ai.request.model"], "gpt-4o-mini");
    assert_eq!(
        d["attributes"]["gen_ai.response.finish_reasons"],
        json!(["tool_calls"])
    );
    assert!(
        d["attributes"].get("gen_ai.input.messages").is_none(),
        "content capture is off"
    );
    assert!(
        d["attributes"]
            .get("http.request.header.x-api-key")
            .is_none(),
        "a credential header copied onto the span is not shown: {d:#}"
    );
    let tl = &d["timeline"];
    let (start, first_chunk, end) = (
        tl["start_ms"].as_f64().unwrap(),
        tl["first_chunk_ms"].as_f64().unwrap(),
        tl["end_ms"].as_f64().unwrap(),
    );
    assert!(start <= first_chunk && first_chunk <= end, "{tl}");
    let tools = d["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["get_weather", "get_time"]);
    for t in tools {
        assert_eq!(t["result_received"], true);
        assert_eq!(t["asked_by"], asking["id"]);
        assert_eq!(t["answered_by"], results_turn["id"]);
        // The app "ran" its tools for ~150 ms between the two turns.
        assert!(t["duration_ms"].as_f64().unwrap() >= 100.0, "{t}");
        assert!(t["start_ms"].as_f64().unwrap() >= end - 1.0);
        assert_eq!(t["attributes"]["gen_ai.operation.name"], "execute_tool");
        assert!(t["attributes"].get("gen_ai.tool.call.result").is_none());
    }
    let related = d["related"].as_array().unwrap();
    assert_eq!(related.len(), 1);
    assert_eq!(related[0]["id"], results_turn["id"]);
    assert_eq!(related[0]["relation"], "sent the tool results");
    // And from the other side.
    let d2 = get_json(&format!(
        "{}/ui/api/calls/{}",
        proxy.url, results_turn["id"]
    ))
    .await;
    assert_eq!(d2["tools"].as_array().unwrap().len(), 2);
    assert_eq!(d2["related"][0]["id"], asking["id"]);
    assert_eq!(d2["related"][0]["relation"], "asked for the tools");
    // The failing call's message is the upstream's.
    let d3 = get_json(&format!("{}/ui/api/calls/{}", proxy.url, failed["id"])).await;
    assert!(
        d3["error_message"].as_str().unwrap().contains("Rate limit"),
        "{d3:#}"
    );
    let (s, _) = get(&format!("{}/ui/api/calls/999999", proxy.url)).await;
    assert_eq!(s, 404);

    // The last minutes.
    let sum = get_json(&format!("{}/ui/api/summary?minutes=5", proxy.url)).await;
    let models = sum["models"].as_array().unwrap();
    let m = |name: &str| models.iter().find(|m| m["model"] == name).unwrap();
    assert_eq!(m("gpt-4o-mini")["requests"], 3);
    assert_eq!(m("gpt-4o-mini")["errors"], 0);
    assert_eq!(m("mock-error-429")["errors"], 1);
    assert!(m("gpt-4o-mini")["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(m("claude-haiku-4-5")["output_tokens"].as_u64().unwrap() > 0);
    // Time to first chunk: the streamed successful calls (gpt-4o, and the tool turn).
    let hist_total = |name: &str| -> u64 {
        m(name)["ttfc_histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(hist_total("gpt-4o"), 1);
    assert_eq!(hist_total("gpt-4o-mini"), 1);
    assert_eq!(hist_total("mock-error-429"), 0);
    assert_eq!(m("gpt-4o")["ttfc_ms"]["count"], 1);
    let p = &m("gpt-4o-mini")["latency_ms"];
    assert!(p["p50"].as_f64().unwrap() <= p["p95"].as_f64().unwrap());
    assert!(p["p95"].as_f64().unwrap() <= p["p99"].as_f64().unwrap());
    let tools = sum["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2, "{sum:#}");
    for t in tools {
        assert_eq!(t["calls"], 1);
        assert_eq!(t["results_received"], 1);
    }
    assert_eq!(sum["latency_ms"]["count"], n);
    assert_eq!(sum["covers_window"], true);
    let timeline_total: u64 = sum["timeline"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(timeline_total, n as u64);
    let filtered = get_json(&format!("{}/ui/api/summary?model=gpt-4o", proxy.url)).await;
    assert_eq!(filtered["models"].as_array().unwrap().len(), 1);

    // The view creates no telemetry and never reaches the upstream.
    let seen = up.mock.requests().len();
    for path in ["/ui", "/ui/app.js", "/ui/api/calls", "/ui/api/summary"] {
        let (s, _) = get(&format!("{}{path}", proxy.url)).await;
        assert_eq!(s, 200, "{path}");
    }
    assert_eq!(up.mock.requests().len(), seen);
    assert_eq!(wait_calls(&proxy.url, n).await.len(), n);
}

#[tokio::test]
async fn no_credential_reaches_the_page_or_its_data() {
    let (up, proxy) = gateway_proxy("", None).await;
    // The upstream did get the gateway key: the canary is live, not absent by accident.
    let n = traffic(&proxy.url).await;
    let sent = up.mock.requests();
    assert!(sent
        .iter()
        .any(|r| r.headers.iter().any(|(_, v)| v.contains(UPSTREAM_CANARY))));
    let calls = wait_calls(&proxy.url, n).await;
    let mut bodies = Vec::new();
    for path in [
        "/ui".to_string(),
        "/ui/app.js".into(),
        "/ui/app.css".into(),
        "/ui/api/calls".into(),
        "/ui/api/summary".into(),
        "/ui/api/summary?minutes=60".into(),
    ] {
        bodies.push((path.clone(), get(&format!("{}{path}", proxy.url)).await.1));
    }
    for c in &calls {
        let path = format!("/ui/api/calls/{}", c["id"]);
        bodies.push((path.clone(), get(&format!("{}{path}", proxy.url)).await.1));
    }
    // The event stream, with one more call through it.
    let events = client()
        .get(format!("{}/ui/api/events", proxy.url))
        .send()
        .await
        .unwrap();
    let mut stream = events.bytes_stream().eventsource();
    post(
        &proxy.url,
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "again"}]}),
        &[],
    )
    .await;
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    bodies.push(("/ui/api/events".into(), ev.data));
    for (path, body) in &bodies {
        assert_no_canary(path, body);
        // Capture is off: no message content either (the prompt's address, a tool result).
        assert!(!body.contains("bob@example.com"), "{path}: {body}");
        assert!(!body.contains("tool secret"), "{path}: {body}");
    }
    // The bodies checked are the real ones: they carry the calls' attributes.
    assert!(bodies
        .iter()
        .any(|(_, b)| b.contains("gen_ai.request.model")));
}

#[tokio::test]
async fn events_push_each_new_call_filtered() {
    let (_up, proxy) = gateway_proxy("", None).await;
    let open = |q: &str| {
        let url = format!("{}/ui/api/events{q}", proxy.url);
        async move {
            let r = client().get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream"));
            r.bytes_stream().eventsource()
        }
    };
    let mut all = open("").await;
    let mut errors_only = open("?status=error").await;
    for model in ["gpt-4o-mini", "mock-error-429", "gpt-4o"] {
        post(
            &proxy.url,
            "/v1/chat/completions",
            json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), all.next())
            .await
            .expect("a call event")
            .unwrap()
            .unwrap();
        assert_eq!(ev.event, "call");
        let row: Value = serde_json::from_str(&ev.data).unwrap();
        seen.push(row["model"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, vec!["gpt-4o-mini", "mock-error-429", "gpt-4o"]);
    let ev = tokio::time::timeout(Duration::from_secs(10), errors_only.next())
        .await
        .expect("an error event")
        .unwrap()
        .unwrap();
    let row: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(row["model"], "mock-error-429");
    assert_eq!(row["status"], 429);

    // An open event stream never holds up shutdown: it ends when the drain starts.
    let started = std::time::Instant::now();
    proxy.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown took {:?} with a page open",
        started.elapsed()
    );
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = all.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the event stream ended");
}

/// Filtering by conversation (`gen_ai.conversation.id`): the calls list, its facet, the
/// summary and the event stream. In gateway mode a conversation id is the client's to choose
/// and the tenant is the key's: two tenants sending the same session id share the filter's
/// rows only when no tenant is asked for, and baggage naming another tenant moves nothing.
#[tokio::test]
async fn filters_by_conversation_within_the_key_tenant() {
    let up = start_upstream().await;
    let entry =
        |sha: &str, tenant: &str| format!("    - sha256: \"{sha}\"\n      tenant: {tenant}\n");
    let yaml = format!(
        "upstreams:\n  - name: main\n    base_url: {{upstream}}/v1\n    provider: openai\n    api_key_env: LLMTAP_TEST_UI_KEY\n\
         telemetry:\n  baggage_attributes: [tenant]\nauth:\n  keys:\n{}{}",
        // sha256("key-a"), sha256("key-b")
        entry("f10f781241e2246678b6b45c857069208152a53863e47fac33f607ab405006f4", "team-a"),
        entry("a30534a53b23547377ddccbd1ac85a8a84c13db43493c16e55a6abc7b0eba634", "team-b"),
    );
    let mut e = no_telemetry();
    e.push(("LLMTAP_TEST_UI_KEY".into(), UPSTREAM_CANARY.into()));
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: Some(yaml),
            env: e,
            tweak: None,
        },
    )
    .await;
    let events = client()
        .get(format!("{}/ui/api/events?conversation=solo", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut events = events.bytes_stream().eventsource();
    let chat = |key: &'static str,
                session: &'static str,
                model: &'static str,
                extra: Option<(&'static str, &'static str)>| {
        let mut r = client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .header("authorization", format!("Bearer {key}"))
            .header("x-session-id", session)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}));
        if let Some((k, v)) = extra {
            r = r.header(k, v);
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await;
        }
    };
    chat("key-a", "shared", "gpt-4o-mini", None).await;
    chat("key-b", "shared", "gpt-4o", None).await;
    // team-a's own session, with baggage claiming team-b.
    chat(
        "key-a",
        "solo",
        "gpt-4o-mini",
        Some(("baggage", "tenant=team-b")),
    )
    .await;
    wait_calls(&proxy.url, 3).await;

    let q = |q: &str| {
        let url = format!("{}/ui/api/calls?{q}", proxy.url);
        async move { get_json(&url).await }
    };
    let rows = |v: &Value| v["calls"].as_array().cloned().unwrap_or_default();
    let shared = q("conversation=shared").await;
    let shared_rows = rows(&shared);
    assert_eq!(shared_rows.len(), 2, "{shared:#}");
    assert!(shared_rows.iter().all(|r| r["conversation"] == "shared"));
    let mut tenants: Vec<_> = shared_rows.iter().map(|r| r["tenant"].clone()).collect();
    tenants.sort_by_key(|t| t.to_string());
    assert_eq!(tenants, vec![json!("team-a"), json!("team-b")]);
    assert_eq!(shared["facets"]["conversation"], json!(["shared", "solo"]));

    let a = q("conversation=shared&tenant=team-a").await;
    assert_eq!(rows(&a).len(), 1, "{a:#}");
    assert_eq!(rows(&a)[0]["model"], "gpt-4o-mini");
    // The spoofing baggage does not put team-a's session under team-b.
    assert_eq!(rows(&q("conversation=solo&tenant=team-b").await).len(), 0);
    let solo = q("conversation=solo&tenant=team-a").await;
    assert_eq!(rows(&solo).len(), 1, "{solo:#}");
    assert_eq!(rows(&q("conversation=nobody").await).len(), 0);

    // The summary's panels count the conversation's calls only.
    let sum = get_json(&format!("{}/ui/api/summary?conversation=shared", proxy.url)).await;
    let requests: u64 = sum["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 2, "{sum:#}");

    // The event stream filtered by conversation pushed only the `solo` call.
    let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("a call event")
        .unwrap()
        .unwrap();
    let row: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(row["conversation"], "solo", "{row:#}");
    assert_eq!(row["tenant"], "team-a");
    proxy.stop().await;
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        let mut n = 0;
        while let Some(Ok(ev)) = events.next().await {
            if ev.event == "call" {
                n += 1;
            }
        }
        n
    })
    .await
    .expect("the event stream ended");
    assert_eq!(rest, 0, "no other call was pushed to the filtered stream");
}

#[tokio::test]
async fn safe_defaults_host_check_trace_links_and_capture() {
    // Off when asked (and on loopback by default, as every other test here shows).
    let (_up, off) = gateway_proxy(
        "",
        Some(Box::new(|c: &mut llmtap::Config| {
            c.ui.enabled = Some(false)
        })),
    )
    .await;
    let (s, _) = get(&format!("{}/ui/api/calls", off.url)).await;
    assert_eq!(s, 404);
    assert!(off.state.telemetry.recent().is_none(), "no ring when off");

    // On a loopback address the view answers only to local host names (DNS rebinding).
    let (_up, proxy) = gateway_proxy(
        "ui:\n  trace_url: http://localhost:3000/explore?traceId={trace_id}\n  max_calls: 2\n",
        None,
    )
    .await;
    let r = client()
        .get(format!("{}/ui", proxy.url))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .get(format!("{}/ui", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(r.headers()["cache-control"], "no-store");

    // The ring is bounded by ui.max_calls; trace ids link through the template.
    for _ in 0..3 {
        post(
            &proxy.url,
            "/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
    }
    eventually(
        "three calls through the worker",
        Duration::from_secs(10),
        || {
            proxy
                .state
                .telemetry
                .recent()
                .is_some_and(|r| r.calls().first().is_some_and(|c| c.id == 3))
        },
    )
    .await;
    let calls = get_json(&format!("{}/ui/api/calls", proxy.url)).await;
    assert_eq!(calls["calls"].as_array().unwrap().len(), 2);
    assert_eq!(calls["capacity"], 2);
    let sum = get_json(&format!("{}/ui/api/summary", proxy.url)).await;
    assert_eq!(
        sum["covers_window"], false,
        "the third call left the ring of two"
    );
    let c = &calls["calls"][0];
    assert_eq!(
        c["trace_url"].as_str().unwrap(),
        format!(
            "http://localhost:3000/explore?traceId={}",
            c["trace_id"].as_str().unwrap()
        )
    );

    // With capture on, content appears redacted and truncated exactly as exported.
    let (_up, captured) =
        gateway_proxy("  capture_content: true\n  content_max_chars: 4000\n", None).await;
    let n = traffic(&captured.url).await;
    let calls = wait_calls(&captured.url, n).await;
    let plain = calls.last().unwrap();
    assert_eq!(plain["model"], "gpt-4o-mini");
    let d = get_json(&format!("{}/ui/api/calls/{}", captured.url, plain["id"])).await;
    let input = d["attributes"]["gen_ai.input.messages"].as_str().unwrap();
    assert!(input.contains("[REDACTED_EMAIL]"), "{input}");
    assert!(!input.contains("bob@example.com"), "{input}");
    assert!(d["attributes"]["gen_ai.output.messages"].is_string());
    assert_eq!(d["content_captured"], true);
    // The tool calls' arguments and results, as the execute_tool spans export them.
    let asking = calls
        .iter()
        .find(|c| c["tool_calls"].as_array().unwrap().len() == 2)
        .unwrap();
    let d = get_json(&format!("{}/ui/api/calls/{}", captured.url, asking["id"])).await;
    let t = &d["tools"][0]["attributes"];
    assert_eq!(
        t["gen_ai.tool.call.result"], "get_weather: tool secret 42",
        "{d:#}"
    );
    assert!(t["gen_ai.tool.call.arguments"].is_string(), "{d:#}");
}

#[tokio::test]
async fn only_on_the_metrics_address_when_asked() {
    let port = free_port();
    let (_up, proxy) = gateway_proxy(
        &format!("metrics_listen: 127.0.0.1:{port}\nui:\n  only_on_metrics_listen: true\n"),
        None,
    )
    .await;
    let (s, _) = get(&format!("{}/ui", proxy.url)).await;
    assert_eq!(s, 404, "not on the proxy's address");
    let admin = format!("http://127.0.0.1:{port}");
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(r) = client().get(format!("{admin}/ui")).send().await {
            ok = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "/ui on the metrics address");
    post(
        &proxy.url,
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    wait_calls(&admin, 1).await;
}

// ---------------------------------------------------------------------------------------
// A real browser
// ---------------------------------------------------------------------------------------

/// Debian's Chromium, which tests/run installs. Under tests/run (LLMTAP_REQUIRE_TOOLS) a
/// missing browser is a failure; otherwise the test notes the skip.
fn chromium() -> Option<PathBuf> {
    let named = std::env::var_os("LLMTAP_TEST_CHROMIUM").map(PathBuf::from);
    let found = named
        .into_iter()
        .chain(std::env::var_os("PATH").into_iter().flat_map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("chromium"))
                .collect::<Vec<_>>()
        }))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var_os("LLMTAP_REQUIRE_TOOLS").is_some() {
            panic!("`chromium` is not on PATH; tests/run installs Debian's chromium package");
        }
        eprintln!("skipping the browser test: no `chromium` on PATH (run via tests/run)");
    }
    found
}

/// Node.js (tests/run installs the npm example's package with it) for the DevTools driver.
fn node() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("node"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("LLMTAP_REQUIRE_TOOLS").is_some() {
            panic!("`node` is not on PATH; tests/run needs it for the Node example too");
        }
        eprintln!("skipping the live browser test: no `node` on PATH");
    }
    found
}

const HEADLESS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
];

/// Runs headless Chromium on `url` with `args`; returns its stdout. The page's own script
/// runs under a virtual-time budget, so its fetches complete before the DOM is dumped.
async fn run_chromium(bin: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(HEADLESS)
        .arg("--virtual-time-budget=5000")
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    common::process::own_group_tokio(&mut cmd);
    let child = cmd.spawn().expect("chromium did not start");
    // Its zygote and renderers go with it, however the test ends.
    let _group = common::process::GroupGuard::of(&child);
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("chromium timed out")
        .expect("chromium's output");
    assert!(
        out.status.success(),
        "chromium failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The element with `id` and everything up to its closing tag `</tag>`.
fn section<'a>(dom: &'a str, id: &str, tag: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let end = dom[start..]
        .find(&format!("</{tag}>"))
        .map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

#[tokio::test]
async fn a_real_browser_renders_rows_timeline_and_charts() {
    let Some(bin) = chromium() else { return };
    let (_up, proxy) = gateway_proxy("", None).await;
    let n = traffic(&proxy.url).await;
    let calls = wait_calls(&proxy.url, n).await;
    let asking = calls
        .iter()
        .find(|c| c["tool_calls"].as_array().unwrap().len() == 2)
        .unwrap()["id"]
        .clone();
    let tmp = TempDir::new("ui-browser");
    // `live=0`: no event stream, which a headless browser would wait on forever.
    let url = format!("{}/ui?live=0#call={asking}", proxy.url);
    let dom = run_chromium(&bin, &tmp.path().join("profile"), &["--dump-dom"], &url).await;

    // A row per call, with each model.
    let rows =
        regex::Regex::new(r#"<tr class="call-row[^"]*" data-id="(\d+)" data-model="([^"]*)""#)
            .unwrap();
    let models: Vec<String> = rows.captures_iter(&dom).map(|c| c[2].to_string()).collect();
    assert_eq!(models.len(), n, "rows in the table:\n{dom}");
    for m in [
        "gpt-4o-mini",
        "gpt-4o",
        "mock-error-429",
        "claude-haiku-4-5",
    ] {
        assert!(models.iter().any(|x| x == m), "no row for {m}: {models:?}");
    }
    // The failing call's status.
    // (Names may break at `_` and `-`: <wbr> between their parts.)
    assert!(
        dom.replace("<wbr>", "")
            .contains(r#"<td class="status status-err">429 rate_limit_exceeded</td>"#),
        "{dom}"
    );
    // The tool-calling call's timeline, with its two tool spans and the call that sent the
    // results.
    let detail = section(&dom, "detail", "aside");
    assert!(
        detail.starts_with(&format!(
            r#"id="detail" class="detail" aria-label="one call" data-id="{asking}">"#
        )),
        "the call's detail is shown: {detail}"
    );
    assert!(detail.contains(r#"<svg class="timeline""#), "{detail}");
    for tool in ["get_weather", "get_time"] {
        assert!(
            detail.contains(&format!(
                r#"<g class="tool-span" data-kind="tool" data-tool="{tool}">"#
            )),
            "no tool span for {tool} in:\n{detail}"
        );
    }
    assert!(detail.contains(r#"data-kind="related""#), "{detail}");
    assert!(detail.contains("sent the tool results"), "{detail}");
    // The five panels each drew something.
    for panel in [
        "panel-requests",
        "panel-ttfc",
        "panel-tokens",
        "panel-tools",
        "panel-latency",
    ] {
        let p = section(&dom, panel, "figure");
        assert!(p.contains("<svg class=\"chart\""), "{panel}: {p}");
        assert!(p.matches("<rect").count() >= 1, "{panel} has no bars:\n{p}");
    }
    assert!(section(&dom, "panel-requests", "figure").contains("<path class=\"line-req\""));
    // No credential anywhere in the rendered page.
    assert_no_canary("the rendered page", &dom);

    // A screenshot under the test's output, and (when asked) the README's.
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&out_dir).unwrap();
    let shot = out_dir.join("ui.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &bin,
        &tmp.path().join("profile2"),
        &[
            "--window-size=1600,1000",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        png.len() > 20_000,
        "a screenshot of a drawn page, not a blank one"
    );
    eprintln!("screenshot: {}", shot.display());
    if std::env::var_os("LLMTAP_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&shot, repo().join("docs/ui.png")).unwrap();
    }
}

/// Headless Chromium with its DevTools port open on 127.0.0.1, in a process group of its own:
/// dropping this kills the whole group (the browser, its zygote and renderers), not only the
/// process it started.
struct DevtoolsBrowser {
    child: tokio::process::Child,
    port: String,
    _tmp: TempDir,
}

impl DevtoolsBrowser {
    async fn start(bin: &Path, tag: &str) -> DevtoolsBrowser {
        let tmp = TempDir::new(tag);
        let profile = tmp.path().join("profile");
        let child = tokio::process::Command::new(bin)
            .args(HEADLESS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--remote-debugging-address=127.0.0.1")
            .arg("--remote-debugging-port=0")
            .arg("about:blank")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let mut browser = DevtoolsBrowser {
            child,
            port: String::new(),
            _tmp: tmp,
        };
        // Chromium writes the port it picked into its profile.
        let active = profile.join("DevToolsActivePort");
        for _ in 0..300 {
            if let Some(p) = std::fs::read_to_string(&active)
                .ok()
                .and_then(|t| t.lines().next().map(str::to_owned))
                .filter(|p| !p.is_empty())
            {
                browser.port = p;
                return browser;
            }
            if let Ok(Some(status)) = browser.child.try_wait() {
                panic!("chromium exited before opening its DevTools port: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromium wrote no DevTools port in 30 s");
    }

    /// Runs `tests/browser/view.mjs` on this browser (a scenario and its arguments, see the
    /// script) and returns the JSON facts it prints. Screenshots of each state go to
    /// `$CARGO_TARGET_TMPDIR/ui/`, to look at.
    async fn view(&self, node: &Path, base: &str, args: &[&str]) -> Value {
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui");
        std::fs::create_dir_all(&shots).unwrap();
        let run = tokio::process::Command::new(node)
            .arg("--experimental-websocket")
            .arg(repo().join("tests/browser/view.mjs"))
            .arg(&self.port)
            .arg(base)
            .args(args)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("SHOTS_DIR", &shots)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .unwrap_or_else(|_| panic!("view.mjs {args:?} did not finish in 120 s"))
            .expect("node starts");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "view.mjs {args:?} failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let last = stdout.lines().last().unwrap_or("");
        serde_json::from_str(last).unwrap_or_else(|e| panic!("view.mjs {args:?}: {e}: {stdout}"))
    }
}

impl Drop for DevtoolsBrowser {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

/// A box as view.mjs reports it (CSS pixels, relative to the viewport).
#[derive(Debug, Clone, Copy)]
struct Rect {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

fn rect(v: &Value) -> Rect {
    let f = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("no {k} in the box {v}"))
    };
    Rect {
        left: f("left"),
        right: f("right"),
        top: f("top"),
        bottom: f("bottom"),
    }
}

/// Until the first list of calls arrives the page says it is loading, never "No calls yet";
/// once it arrived, an empty ring says "No calls yet". The DevTools Fetch domain holds the
/// page's request for `/ui/api/calls` back, so "before" is a state, not a race.
/// `/ui?conversation=ID` opens the page filtered: only that session's rows, every session in
/// the filter's select, and the call's detail naming its conversation with the link to filter.
#[tokio::test]
async fn a_real_browser_filters_by_conversation() {
    let Some(bin) = chromium() else { return };
    let (_up, proxy) = gateway_proxy("", None).await;
    for (model, session) in [
        ("gpt-4o-mini", "s-one"),
        ("gpt-4o", "s-one"),
        ("gpt-4.1-nano", "s-two"),
    ] {
        let (status, body) = post(
            &proxy.url,
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
            &[("x-session-id", session)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let calls = wait_calls(&proxy.url, 3).await;
    let id = by_model(&calls, "gpt-4o")[0]["id"].clone();
    let tmp = TempDir::new("ui-browser-conversation");
    let url = format!("{}/ui?live=0&conversation=s-one#call={id}", proxy.url);
    let dom = run_chromium(&bin, &tmp.path().join("profile"), &["--dump-dom"], &url).await;
    let rows =
        regex::Regex::new(r#"<tr class="call-row[^"]*" data-id="(\d+)" data-model="([^"]*)""#)
            .unwrap();
    let mut models: Vec<&str> = rows
        .captures_iter(&dom)
        .map(|c| c.get(2).unwrap().as_str())
        .collect();
    models.sort();
    assert_eq!(models, vec!["gpt-4o", "gpt-4o-mini"], "rows:\n{dom}");
    let filters = section(&dom, "filters", "form");
    for s in ["s-one", "s-two"] {
        assert!(
            filters.contains(&format!(r#"<option value="{s}">"#)),
            "{s} in the select: {filters}"
        );
    }
    let detail = section(&dom, "detail", "aside");
    assert!(detail.contains("<dt>conversation</dt>"), "{detail}");
    assert!(detail.contains("s-one"), "{detail}");
    assert!(detail.contains(r#"id="only-conversation""#), "{detail}");
}

#[tokio::test]
async fn a_real_browser_says_loading_until_the_first_data_then_no_calls_yet() {
    let Some(bin) = chromium() else { return };
    let Some(node) = node() else { return };
    let (_up, proxy) = gateway_proxy("", None).await;
    let browser = DevtoolsBrowser::start(&bin, "ui-loading").await;
    let v = browser.view(&node, &proxy.url, &["loading"]).await;
    assert!(
        v["held"].as_str().unwrap().contains("/ui/api/calls"),
        "{v:#}"
    );
    let before = &v["before"];
    assert_eq!(before["state"], "loading", "{v:#}");
    assert_eq!(before["hidden"], false, "{v:#}");
    assert!(
        before["text"].as_str().unwrap().starts_with("Loading"),
        "{v:#}"
    );
    assert!(
        rect(&before["box"]).bottom > rect(&before["box"]).top,
        "shown: {v:#}"
    );
    assert_eq!(
        before["saysNoCalls"], false,
        "'No calls yet' before any data: {v:#}"
    );
    let after = &v["after"];
    assert_eq!(after["state"], "empty", "{v:#}");
    assert_eq!(after["hidden"], false, "{v:#}");
    assert_eq!(after["rows"], 0, "{v:#}");
    assert!(
        after["text"].as_str().unwrap().starts_with("No calls yet"),
        "{v:#}"
    );
}

/// The time-to-first-chunk axis at the window widths people use (and after a resize): at
/// least two bucket bounds labelled, each label a number, a space and a unit, every label
/// inside the chart, and no two labels touching (the bug was "10ms640ms").
#[tokio::test]
async fn a_real_browser_draws_readable_time_to_first_chunk_ticks() {
    let Some(bin) = chromium() else { return };
    let Some(node) = node() else { return };
    let (_up, proxy) = gateway_proxy("", None).await;
    let n = traffic(&proxy.url).await;
    wait_calls(&proxy.url, n).await;
    let browser = DevtoolsBrowser::start(&bin, "ui-axis").await;
    let v = browser
        .view(
            &node,
            &proxy.url,
            &["axis", "1280,1100,1366,1600,1920,900,700"],
        )
        .await;
    let tick = regex::Regex::new(r"^\d+(\.\d)? (ms|s)$").unwrap();
    let mut charts: Vec<&Value> = v["widths"].as_array().unwrap().iter().collect();
    charts.push(&v["resized"]);
    for chart in charts {
        let svg = rect(&chart["svg"]);
        let ticks = chart["ticks"].as_array().unwrap();
        assert!(ticks.len() >= 2, "fewer than two ticks: {chart:#}");
        let mut boxes = Vec::new();
        for t in ticks {
            let text = t["text"].as_str().unwrap();
            assert!(tick.is_match(text), "tick {text:?} in {chart:#}");
            let b = rect(&t["box"]);
            assert!(
                b.left >= svg.left - 0.5
                    && b.right <= svg.right + 0.5
                    && b.bottom <= svg.bottom + 0.5,
                "tick {text:?} outside its chart: {chart:#}"
            );
            boxes.push((text, b));
        }
        boxes.sort_by(|a, b| a.1.left.total_cmp(&b.1.left));
        for w in boxes.windows(2) {
            assert!(
                w[1].1.left - w[0].1.right >= 4.0,
                "ticks {:?} and {:?} run together at window width {}: {chart:#}",
                w[0].0,
                w[1].0,
                chart["width"]
            );
        }
    }
    // Redrawn at the new width, not scaled: one SVG unit per CSS pixel again.
    let r = &v["resized"];
    assert_eq!(r["width"], v["widths"][0]["width"], "{r:#}");
    let svg = rect(&r["svg"]);
    assert!(
        (r["viewBoxWidth"].as_f64().unwrap() - (svg.right - svg.left).max(220.0)).abs() <= 1.0,
        "{r:#}"
    );
}

/// Clicking a call opens its detail without pushing anything out of view: every column of
/// the table, the tools and trace columns included, stays inside the table's own box (no
/// horizontal scroll inside it) and inside the window, and the page does not scroll
/// sideways. From 1101 px wide the detail opens beside the table, on screen; narrower, below
/// it (the table keeps the full width).
#[tokio::test]
async fn a_real_browser_opens_a_call_without_pushing_columns_off_screen() {
    let Some(bin) = chromium() else { return };
    let Some(node) = node() else { return };
    let (_up, proxy) = gateway_proxy("", None).await;
    let n = traffic(&proxy.url).await;
    let calls = wait_calls(&proxy.url, n).await;
    // The call that asked for two tools: its row is the widest (tool names, a tenant-less
    // upstream, a stream) and its detail the longest (tool spans, a linked call).
    let asking = calls
        .iter()
        .find(|c| c["tool_calls"].as_array().unwrap().len() == 2)
        .unwrap()["id"]
        .to_string();
    let browser = DevtoolsBrowser::start(&bin, "ui-detail").await;
    let v = browser
        .view(
            &node,
            &proxy.url,
            &["detail", &asking, "1024,1280,1366,1600,1920"],
        )
        .await;
    for page in v.as_array().unwrap() {
        let width = page["width"].as_f64().unwrap();
        let height = page["height"].as_f64().unwrap();
        let scroll = &page["scroll"];
        let inside = rect(&scroll["box"]);
        assert_eq!(page["scrollX"], 0, "{page:#}");
        assert!(
            page["docScrollWidth"].as_f64().unwrap() <= width,
            "the page scrolls sideways at {width}: {page:#}"
        );
        assert!(
            scroll["scrollWidth"].as_f64().unwrap()
                <= scroll["clientWidth"].as_f64().unwrap() + 1.0,
            "the table overflows its box at {width}: {page:#}"
        );
        assert_eq!(scroll["scrollLeft"], 0, "{page:#}");
        let headers = page["headers"].as_array().unwrap();
        let names: Vec<&str> = headers
            .iter()
            .map(|h| h["text"].as_str().unwrap())
            .collect();
        for want in ["tools", "trace"] {
            assert!(names.contains(&want), "no {want} column: {names:?}");
        }
        for h in headers.iter().chain(page["row"].as_array().unwrap()) {
            let b = rect(h.get("box").unwrap_or(h));
            assert!(
                b.left >= inside.left - 0.5 && b.right <= inside.right + 0.5 && b.right <= width,
                "a column leaves the table's box at {width}: {h} vs {inside:?}"
            );
        }
        let calls = rect(&page["calls"]);
        let detail = rect(&page["detail"]);
        assert!(detail.right <= width, "{page:#}");
        if width > 1100.0 {
            assert!(
                detail.left >= calls.right,
                "the detail is not beside the table at {width}: {page:#}"
            );
            assert!(
                detail.top >= 0.0 && detail.top < height,
                "the detail opens off screen at {width}: {page:#}"
            );
        } else {
            assert!(detail.top >= calls.bottom, "{page:#}");
        }
    }
}

/// The page open before the traffic: every call arrives through the event stream and shows up
/// without a reload, charts included. Driven over the DevTools protocol by a small Node script
/// (`tests/browser/live.mjs`), since a headless `--dump-dom` waits for the open stream.
#[tokio::test]
async fn a_real_browser_shows_calls_as_they_finish() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let Some(bin) = chromium() else { return };
    let Some(node) = node() else { return };
    let (_up, proxy) = gateway_proxy("", None).await;
    let browser = DevtoolsBrowser::start(&bin, "ui-live").await;
    let port = browser.port.clone();
    let mut driver = tokio::process::Command::new(node)
        .arg("--experimental-websocket")
        .arg(repo().join("tests/browser/live.mjs"))
        .arg(&port)
        .arg(format!("{}/ui", proxy.url))
        .arg(TRAFFIC_CALLS.to_string())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut stderr = driver.stderr.take().unwrap();
    let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
    async fn next_line(
        lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
        what: &str,
    ) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the driver printed no {what}"))
            .unwrap()
    }
    let ready = next_line(&mut lines, "ready line").await;
    if ready.as_deref() != Some("ready") {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err).await;
        panic!("the page did not connect its event stream: {ready:?}\n{err}");
    }
    let n = traffic(&proxy.url).await;
    let state = next_line(&mut lines, "page state").await;
    let Some(state) = state else {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err).await;
        panic!("the driver failed:\n{err}");
    };
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["notReloaded"], true, "{state:#}");
    assert_eq!(state["conn"], "live", "{state:#}");
    let rows = state["rows"].as_array().unwrap();
    assert_eq!(rows.len(), n, "{state:#}");
    // Newest on top, as they finished.
    assert_eq!(rows[0]["model"], "claude-haiku-4-5");
    assert!(rows.iter().any(|r| r["model"] == "mock-error-429"
        && r["status"] == "429"
        && r["error"] == "rate_limit_exceeded"));
    for m in ["gpt-4o-mini", "gpt-4o"] {
        assert!(rows.iter().any(|r| r["model"] == m), "{m}: {state:#}");
    }
    for (i, rects) in state["chartRects"].as_array().unwrap().iter().enumerate() {
        assert!(
            rects.as_u64().unwrap() >= 1,
            "panel {i} drew nothing: {state:#}"
        );
    }
    assert_no_canary("the live page", &state.to_string());
    let _ = driver.wait().await;
    drop(browser);
}

/// The official SDK's tool loop (tests/sdk/tools.py: a streamed two-tool turn, the app running
/// its tools, the results turn) shows as two linked calls with their tool spans.
#[tokio::test]
async fn the_sdk_tool_loop_shows_as_linked_calls() {
    let (_up, proxy) = gateway_proxy("", None).await;
    let Some(sdk) = run_sdk("tools.py", &proxy.url, &[("TOOL_SLEEP", "0.2")]).await else {
        return;
    };
    let calls = wait_calls(&proxy.url, 2).await;
    let asking = &calls[1];
    assert_eq!(asking["tool_calls"], json!(["get_weather", "get_time"]));
    assert_eq!(asking["streaming"], true);
    let d = get_json(&format!("{}/ui/api/calls/{}", proxy.url, asking["id"])).await;
    let tools = d["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2, "{d:#}");
    for (t, c) in tools.iter().zip(sdk["calls"].as_array().unwrap()) {
        assert_eq!(t["call_id"], c["id"]);
        assert_eq!(t["answered_by"], calls[0]["id"]);
        assert!(t["duration_ms"].as_f64().unwrap() >= 150.0, "{t}");
    }
    assert_eq!(d["related"][0]["relation"], "sent the tool results");
    // The SDK's own key is nowhere either.
    let listed = get(&format!("{}/ui/api/calls", proxy.url)).await.1;
    for text in [listed, d.to_string()] {
        assert!(!text.contains("sk-test-not-a-real-key"), "{text}");
    }
}

/// An agent trace with its MCP calls: the model (through llmtap) asks for two tools, the app
/// lists the MCP server's tools, runs both calls over MCP through llmtap's `/mcp/tools`, tries
/// a failing tool of its own accord, and sends the results back. The view lists every MCP
/// request beside the model calls: the two executions joined to (and linking) the call that
/// asked, the others shown unjoined; the asking call's tool spans are the MCP executions. A
/// real browser renders it, and its screenshot is docs/mcp.png (with LLMTAP_UPDATE_SCREENSHOT).
#[tokio::test]
async fn mcp_requests_beside_the_model_calls_joined_ones_linked() {
    let (mcp_url, _) = common::mcp::scripted_server(Duration::from_millis(120)).await;
    let (_up, proxy) = gateway_proxy(
        "",
        Some(Box::new(move |c: &mut llmtap::config::Config| {
            c.mcp_servers = vec![llmtap::config::McpServerConfig {
                name: "tools".into(),
                url: mcp_url,
            }];
        })),
    )
    .await;
    let rpc = |id: u64, method: &str, params: Value| {
        let url = format!("{}/mcp/tools", proxy.url);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        async move {
            let r: Value = client()
                .post(url)
                .header("accept", "application/json, text/event-stream")
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r
        }
    };
    let mut messages = vec![json!({"role": "user", "content": "Weather and time in Paris?"})];
    let (s, body) = post(
        &proxy.url,
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools()}),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let first: Value = serde_json::from_str(&body).unwrap();
    let assistant = first["choices"][0]["message"].clone();
    let calls = assistant["tool_calls"].as_array().unwrap().clone();
    assert_eq!(calls.len(), 2, "{assistant}");
    messages.push(assistant);
    rpc(1, "tools/list", json!({})).await;
    for (i, call) in calls.iter().enumerate() {
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap())
                .unwrap_or(json!({}));
        let r = rpc(
            2 + i as u64,
            "tools/call",
            json!({"name": call["function"]["name"], "arguments": arguments}),
        )
        .await;
        messages.push(json!({"role": "tool", "tool_call_id": call["id"],
            "content": r["result"]["content"][0]["text"]}));
    }
    let r = rpc(9, "tools/call", json!({"name": "failing", "arguments": {}})).await;
    assert_eq!(r["result"]["isError"], true);
    // The app's own work before it answers the model.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (s, _) = post(
        &proxy.url,
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools()}),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let rows = wait_calls(&proxy.url, 2).await;
    let asking = rows
        .iter()
        .find(|c| c["tool_calls"].as_array().unwrap().len() == 2)
        .unwrap()["id"]
        .as_u64()
        .unwrap();

    // The MCP list: four requests, the two executions joined to the asking call.
    let mut mcp = Vec::new();
    for _ in 0..500 {
        mcp = get_json(&format!("{}/ui/api/mcp", proxy.url)).await["mcp"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if mcp.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mcp.len(), 4, "{mcp:#?}");
    let joined: Vec<&Value> = mcp.iter().filter(|m| !m["joined"].is_null()).collect();
    assert_eq!(joined.len(), 2, "{mcp:#?}");
    for m in &joined {
        assert_eq!(m["joined"]["asked_by"], asking, "{m}");
        assert_eq!(m["method"], "tools/call");
        assert_eq!(m["server"], "tools");
        assert!(m["duration_ms"].as_f64().unwrap() >= 120.0, "{m}");
        assert!(calls.iter().any(|c| c["id"] == m["joined"]["call_id"]));
    }
    let list = mcp.iter().find(|m| m["method"] == "tools/list").unwrap();
    assert!(list["joined"].is_null());
    let failing = mcp.iter().find(|m| m["target"] == "failing").unwrap();
    assert_eq!(failing["error"], "tool_error");
    assert_eq!(failing["error_message"], "disk full");
    assert!(failing["joined"].is_null());
    // Filters that apply to MCP requests: status.
    let errors = get_json(&format!("{}/ui/api/mcp?status=error", proxy.url)).await;
    assert_eq!(errors["mcp"].as_array().unwrap().len(), 1, "{errors}");
    // The asking call's tool spans are the MCP executions.
    let detail = get_json(&format!("{}/ui/api/calls/{asking}", proxy.url)).await;
    let tools = detail["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2, "{detail:#}");
    let answering = rows.iter().find(|c| c["tool_results"] == 2).unwrap()["id"].clone();
    for t in tools {
        assert_eq!(t["mcp"]["server"], "tools", "{t}");
        let m = mcp.iter().find(|m| m["id"] == t["mcp"]["id"]).unwrap();
        assert_eq!(m["joined"]["call_id"], t["call_id"]);
        // The execution's time, and the call that carried the result back linked.
        assert!(
            (t["duration_ms"].as_f64().unwrap() - m["duration_ms"].as_f64().unwrap()).abs() < 1.0
        );
        assert_eq!(t["result_received"], true, "{t}");
        assert_eq!(t["answered_by"], answering, "{t}");
    }
    assert!(detail["related"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == answering && r["relation"] == "sent the tool results"));

    // A real browser: the MCP table beside the calls, the joined rows linking the asking
    // call, and its timeline's tool spans marked as MCP executions.
    let Some(bin) = chromium() else { return };
    let tmp = TempDir::new("ui-mcp");
    let url = format!("{}/ui?live=0#call={asking}", proxy.url);
    let dom = run_chromium(&bin, &tmp.path().join("profile"), &["--dump-dom"], &url).await;
    let table = section(&dom, "mcp", "table");
    assert_eq!(table.matches(r#"<tr class="mcp-row"#).count(), 4, "{table}");
    assert_eq!(
        table.matches(r#"<tr class="mcp-row joined"#).count(),
        2,
        "{table}"
    );
    assert!(table.contains(r#"data-method="tools/list""#), "{table}");
    assert_eq!(
        table
            .matches(&format!(r##"<a href="#call={asking}""##))
            .count(),
        2,
        "{table}"
    );
    let aside = section(&dom, "detail", "aside");
    assert_eq!(aside.matches(r#"data-mcp="tools""#).count(), 4, "{aside}");
    assert!(
        aside.contains("executed over MCP: tools tools/call, ok"),
        "{aside}"
    );
    assert_no_canary("the rendered page", &dom);

    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&out_dir).unwrap();
    let shot = out_dir.join("mcp.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &bin,
        &tmp.path().join("profile2"),
        &[
            "--window-size=1600,1000",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(png.len() > 20_000, "a drawn page, not a blank one");
    eprintln!("screenshot: {}", shot.display());
    if std::env::var_os("LLMTAP_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&shot, repo().join("docs/mcp.png")).unwrap();
    }
    proxy.stop().await;
}
