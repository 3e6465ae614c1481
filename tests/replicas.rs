//! Many replicas, one truth: llmtap replicas sharing a real Redis (`--state-url`) close each
//! other's tool calls exactly once, behind a real nginx round-robin and turn by turn, and keep
//! serving when Redis dies and comes back.
//!
//! tests/run installs Debian's `redis-server` and `nginx`; under it (LLMTAP_REQUIRE_TOOLS) a
//! missing one fails the test, otherwise the test says so and skips.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::otlp::SpanView;
use common::process::Service as Proc;
use common::tools::{start_redis, tool};
use common::*;
use serde_json::{json, Value};

async fn start_replica(upstream: &str, rx: &OtlpReceiver, redis_url: &str, ttl: Duration) -> Proxy {
    let url = redis_url.to_string();
    start_proxy(
        upstream,
        ProxyOpts {
            env: otlp_env(rx, "grpc"),
            tweak: Some(Box::new(move |c| {
                c.state_url = Some(url);
                c.telemetry.tool_call_ttl = ttl;
            })),
            ..Default::default()
        },
    )
    .await
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

/// One tool loop: the turn asking for a tool through `ask`, the app's tool time, the turn
/// carrying the result through `answer`. Returns the call ids.
async fn tool_loop(ask: &str, answer: &str, tool_time: Duration, city: &str) -> Vec<String> {
    let c = client();
    let mut messages = vec![json!({"role": "user", "content": format!("Weather in {city}?")})];
    let first: Value = c
        .post(format!("{ask}/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assistant = first["choices"][0]["message"].clone();
    let ids: Vec<String> = assistant["tool_calls"]
        .as_array()
        .expect("the mock asks for the tool")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    tokio::time::sleep(tool_time).await;
    messages.push(assistant);
    for id in &ids {
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": "18 C"}));
    }
    let r = c
        .post(format!("{answer}/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    ids
}

fn tool_spans<'a>(spans: &'a [SpanView], id: &str) -> Vec<&'a SpanView> {
    spans
        .iter()
        .filter(|s| {
            s.name.starts_with("execute_tool") && s.str_attr("gen_ai.tool.call.id") == Some(id)
        })
        .collect()
}

#[tokio::test]
async fn a_tool_call_asked_on_one_replica_and_answered_on_another_is_closed_once() {
    let Some(redis_bin) = tool("redis-server") else {
        return;
    };
    let dir = TempDir::new("replicas");
    let port = free_port();
    let _redis = start_redis(&redis_bin, port, dir.path());
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let ttl = Duration::from_secs(2);
    let a = start_replica(&up.base, &rx, &redis_url, ttl).await;
    let b = start_replica(&up.base, &rx, &redis_url, ttl).await;

    // Turn by turn: asked on A, answered on B, and the other way round.
    let tool_time = Duration::from_millis(300);
    let mut ids = tool_loop(&a.url, &b.url, tool_time, "Lyon").await;
    ids.extend(tool_loop(&b.url, &a.url, tool_time, "Nice").await);
    // Asked and answered on the same replica (the local path, still shared-state aware).
    ids.extend(tool_loop(&a.url, &a.url, tool_time, "Metz").await);
    // Asked on A, never answered: emitted once, as unanswered, at A's expiry.
    let c = client();
    let r: Value = c
        .post(format!("{}/v1/chat/completions", a.url))
        .json(&json!({"model": "gpt-4o-mini", "tools": tools(),
            "messages": [{"role": "user", "content": "Weather in Brest?"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unanswered = r["choices"][0]["message"]["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Past the TTL, so every replica had its chance to (wrongly) emit a second span.
    tokio::time::sleep(ttl + Duration::from_millis(800)).await;
    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter()
                    .filter(|s| s.name.starts_with("execute_tool"))
                    .count()
                    > ids.len()
            },
            Duration::from_secs(10),
        )
        .await;
    let dump = common::otlp::spans_json(&spans);
    for id in &ids {
        let t = tool_spans(&spans, id);
        assert_eq!(
            t.len(),
            1,
            "exactly one execute_tool span for {id}:\n{dump}"
        );
        let t = t[0];
        assert_eq!(
            t.bool_attr("llmtap.tool.result_received"),
            Some(true),
            "{dump}"
        );
        assert!(
            t.duration_secs() >= tool_time.as_secs_f64(),
            "{id}: {} s, shorter than the app's tool time",
            t.duration_secs()
        );
        // In the trace of the call that asked, under its chat span.
        let asked = spans
            .iter()
            .find(|s| s.span_id == t.parent_span_id)
            .unwrap_or_else(|| panic!("no parent chat span for {id}:\n{dump}"));
        assert_eq!(asked.trace_id, t.trace_id);
        assert!(asked.name.starts_with("chat "));
    }
    let t = tool_spans(&spans, &unanswered);
    assert_eq!(t.len(), 1, "{dump}");
    assert_eq!(t[0].bool_attr("llmtap.tool.result_received"), Some(false));

    // The duration metric counts each answered call once across the replicas.
    let total: u64 = [&a, &b]
        .iter()
        .map(|p| {
            p.state
                .telemetry
                .prometheus_text()
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("llmtap_tool_duration_seconds_count"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        })
        .sum();
    assert_eq!(
        total,
        ids.len() as u64 + 1,
        "answered calls + the unanswered one"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn behind_nginx_round_robin_tool_loops_close_once() {
    let (Some(redis_bin), Some(nginx_bin)) = (tool("redis-server"), tool("nginx")) else {
        return;
    };
    let dir = TempDir::new("replicas-nginx");
    let port = free_port();
    let _redis = start_redis(&redis_bin, port, dir.path());
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let ttl = Duration::from_secs(30);
    let replicas = [
        start_replica(&up.base, &rx, &redis_url, ttl).await,
        start_replica(&up.base, &rx, &redis_url, ttl).await,
    ];
    let lb_port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\npid {pid};\nerror_log {err} warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {tmp};\n  proxy_temp_path {tmp};\n\
             upstream llmtap {{ server {a}; server {b}; }}\n\
             server {{ listen 127.0.0.1:{lb_port}; location / {{ proxy_pass http://llmtap; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; }} }}\n}}\n",
            pid = dir.path().join("nginx.pid").display(),
            err = dir.path().join("error.log").display(),
            tmp = dir.path().display(),
            a = replicas[0].addr,
            b = replicas[1].addr,
        ),
    )
    .unwrap();
    let mut nginx = Command::new(&nginx_bin);
    nginx
        .args([
            "-c",
            conf.to_str().unwrap(),
            "-p",
            dir.path().to_str().unwrap(),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut balancer = Proc::spawn(&mut nginx).expect("nginx did not start");
    let lb = format!("http://127.0.0.1:{lb_port}");
    balancer
        .wait_ready(
            "nginx",
            &format!("{lb}/healthz"),
            Duration::from_secs(5),
            &dir.path().join("error.log"),
        )
        .await;

    let mut ids = Vec::new();
    for (i, city) in ["Lyon", "Nice", "Metz", "Brest"].iter().enumerate() {
        ids.extend(tool_loop(&lb, &lb, Duration::from_millis(100 + 50 * i as u64), city).await);
    }
    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter()
                    .filter(|s| s.name.starts_with("execute_tool"))
                    .count()
                    >= ids.len()
            },
            Duration::from_secs(10),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = if spans.len() < rx.spans().len() {
        rx.spans()
    } else {
        spans
    };
    let dump = common::otlp::spans_json(&spans);
    // Round robin spread the turns over both replicas.
    for p in &replicas {
        let served = p
            .state
            .telemetry
            .prometheus_text()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("llmtap_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        assert!(served >= 2.0, "replica {} served {served}", p.addr);
    }
    for id in &ids {
        let t = tool_spans(&spans, id);
        assert_eq!(t.len(), 1, "exactly one span for {id}:\n{dump}");
        assert_eq!(t[0].bool_attr("llmtap.tool.result_received"), Some(true));
    }
    for p in replicas {
        p.stop().await;
    }
}

#[tokio::test]
async fn redis_dying_fails_no_request_and_coming_back_is_picked_up() {
    let Some(redis_bin) = tool("redis-server") else {
        return;
    };
    let dir = TempDir::new("replicas-redis-down");
    let port = free_port();
    let redis = start_redis(&redis_bin, port, dir.path());
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let ttl = Duration::from_secs(30);
    let a = start_replica(&up.base, &rx, &redis_url, ttl).await;
    let b = start_replica(&up.base, &rx, &redis_url, ttl).await;
    let first = tool_loop(&a.url, &b.url, Duration::from_millis(50), "Lyon").await;
    // B closes the call through Redis after answering; let that land before Redis dies.
    rx.wait_for_spans(
        |s| first.iter().all(|id| tool_spans(s, id).len() == 1),
        Duration::from_secs(10),
    )
    .await;

    drop(redis); // killed mid-run
    let c = client();
    for i in 0..10 {
        let started = std::time::Instant::now();
        let r = c
            .post(format!(
                "{}/v1/chat/completions",
                if i % 2 == 0 { &a.url } else { &b.url }
            ))
            .json(&json!({"model": "gpt-4o-mini", "tools": tools(),
                "messages": [{"role": "user", "content": format!("Weather {i}?")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "Redis down never fails a request");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // Same-replica loops still close locally while Redis is down.
    let local = tool_loop(&a.url, &a.url, Duration::from_millis(50), "Nice").await;
    let errors = || {
        a.state
            .telemetry
            .prometheus_text()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("llmtap_state_errors_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    eventually(
        "llmtap_state_errors_total > 0",
        Duration::from_secs(5),
        || errors() > 0.0,
    )
    .await;

    // Redis comes back on the same port: cross-replica loops work again.
    let _redis = start_redis(&redis_bin, port, dir.path());
    let mut again = Vec::new();
    for attempt in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let ids = tool_loop(
            &a.url,
            &b.url,
            Duration::from_millis(50),
            &format!("Metz{attempt}"),
        )
        .await;
        let spans = rx.spans();
        if ids.iter().all(|id| tool_spans(&spans, id).len() == 1) {
            again = ids;
            break;
        }
        // Give a late close its chance before trying again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let spans = rx.spans();
        if ids.iter().all(|id| tool_spans(&spans, id).len() == 1) {
            again = ids;
            break;
        }
    }
    assert!(
        !again.is_empty(),
        "a cross-replica loop closed after Redis came back"
    );
    let spans = rx
        .wait_for_spans(
            |s| {
                first
                    .iter()
                    .chain(&local)
                    .all(|id| tool_spans(s, id).len() == 1)
            },
            Duration::from_secs(10),
        )
        .await;
    for id in first.iter().chain(&local).chain(&again) {
        assert_eq!(tool_spans(&spans, id).len(), 1, "{id}");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_keys_per_minute_limit_holds_across_replicas() {
    let Some(redis_bin) = tool("redis-server") else {
        return;
    };
    let dir = TempDir::new("replicas-rate");
    let port = free_port();
    let _redis = start_redis(&redis_bin, port, dir.path());
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    const KEY: &str = "sk-client-shared-limit-0001";
    const LIMIT: usize = 5;
    let sha = llmtap::vocab::text::hex(&llmtap::auth::digest(KEY.as_bytes()));
    let yaml = format!(
        "upstreams:\n  - name: openai\n    base_url: \"{{upstream}}/v1\"\n\
         auth:\n  keys:\n    - sha256: \"{sha}\"\n      tenant: team-a\n      requests_per_minute: {LIMIT}\n"
    );
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let url = redis_url.clone();
        replicas.push(
            start_proxy(
                &up.base,
                ProxyOpts {
                    yaml: Some(yaml.clone()),
                    env: otlp_env(&rx, "grpc"),
                    tweak: Some(Box::new(move |c| c.state_url = Some(url))),
                },
            )
            .await,
        );
    }
    // The windows are calendar minutes: start well inside one.
    let into_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if into_minute > 45 {
        tokio::time::sleep(Duration::from_secs(61 - into_minute)).await;
    }
    let c = client();
    let mut admitted = 0;
    let mut limited = 0;
    for i in 0..(3 * LIMIT) {
        let r = c
            .post(format!("{}/v1/chat/completions", replicas[i % 2].url))
            .bearer_auth(KEY)
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => admitted += 1,
            429 => {
                assert!(r.headers().contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // Each replica alone would admit LIMIT: together they admit LIMIT, not 2 x LIMIT.
    assert_eq!(admitted, LIMIT, "admitted across both replicas");
    assert_eq!(limited, 2 * LIMIT);
    for p in replicas {
        p.stop().await;
    }
}
