//! The real binary: configuration errors, shipped configs, demo mode, health check, and
//! SIGTERM draining in-flight streams, flushing telemetry and exiting 0.

mod common;

use std::time::Duration;

use common::bin::{self, run};
use common::*;
use futures_util::StreamExt;
use serde_json::json;

fn assert_one_line_exit_2(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn config_errors_are_one_line_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("llmtap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "listen: 127.0.0.1:0\nupstreams:\n  - name: a\n    base_url: http://x/v1\n    colour: blue\n").unwrap();
    let out = run(&["--config", bad.to_str().unwrap()], &[]);
    assert_one_line_exit_2(&out, "colour");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );

    let out = run(&[], &[("LLMTAP_CONFIG", bad.to_str().unwrap())]);
    assert_one_line_exit_2(&out, "colour");

    let out = run(&["--listen", "not-an-address"], &[]);
    assert_one_line_exit_2(&out, "--listen");

    let out = run(&["--upstream", "ftp://x"], &[]);
    assert_one_line_exit_2(&out, "--upstream");

    let out = run(&["--shutdown-timeout", "soon"], &[]);
    assert_one_line_exit_2(&out, "shutdown-timeout");

    let out = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--ca-file",
            "/nonexistent/ca.pem",
        ],
        &[],
    );
    assert_one_line_exit_2(&out, "ca_file");

    let missing_key = dir.join("key.yaml");
    std::fs::write(&missing_key, "upstreams:\n  - name: a\n    base_url: http://x/v1\n    api_key_env: LLMTAP_TEST_UNSET_KEY\n").unwrap();
    let out = run(&["--config", missing_key.to_str().unwrap()], &[]);
    assert_one_line_exit_2(&out, "LLMTAP_TEST_UNSET_KEY");
}

#[test]
fn shipped_configs_load() {
    let envmap: std::collections::HashMap<String, String> = [
        ("OPENAI_API_KEY", "sk-x"),
        ("AZURE_OPENAI_API_KEY", "az-x"),
        ("VLLM_API_KEY", "v-x"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut files = vec![repo().join("config/llmtap.yaml")];
    for dir in ["examples/upstreams", "config"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("llmtap") || dir == "examples/upstreams" {
                files.push(p);
            }
        }
    }
    files.sort();
    files.dedup();
    assert!(files.len() >= 2);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let cfg = llmtap::config::load_yaml(&text, &envmap)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!cfg.upstreams.is_empty());
    }
    // The full example sets what it documents.
    let cfg = llmtap::config::load_yaml(
        &std::fs::read_to_string(repo().join("config/llmtap.yaml")).unwrap(),
        &envmap,
    )
    .unwrap();
    assert_eq!(cfg.upstreams.len(), 2);
    assert_eq!(cfg.routes.len(), 2);
    assert_eq!(
        cfg.telemetry.baggage_attributes,
        vec!["user.id", "session.id", "tenant"]
    );
    assert_eq!(cfg.metrics.prices[0].model, "gpt-4o-mini*");
    assert_eq!(cfg.ui.max_calls, 1000);
    assert_eq!(cfg.ui.tenant_key, "tenant");
}

#[tokio::test]
async fn sigterm_drains_streams_flushes_telemetry_and_exits_0() {
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let dir = TempDir::new("cli-sigterm");
    let log = dir.path().join("stderr.log");
    let (mut proc, url) = bin::start(
        &["--upstream", &format!("{}/v1", up.base)],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.grpc_endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "600000"),
        ],
        &log,
    )
    .await;

    // A stream of 6 chunks 200 ms apart is in flight when SIGTERM arrives.
    let resp = client()
        .post(format!("{url}/v1/chat/completions"))
        .header("x-mock-chunk-delay-ms", "200")
        .header("x-mock-chunks", "6")
        .json(&json!({"model": "mock-slow", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    proc.signal(libc::SIGTERM);

    // The in-flight stream still completes after the signal.
    let mut rest = first.to_vec();
    while let Some(c) = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .unwrap()
    {
        rest.extend_from_slice(&c.unwrap());
    }
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));

    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = proc.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("llmtap did not exit after SIGTERM");
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // The span queued behind a ten-minute schedule delay was flushed on the way out.
    let spans = rx.spans();
    assert_eq!(spans.len(), 1, "{stderr}");
    assert_eq!(spans[0].name, "chat mock-slow");
    assert!(
        spans[0].attr("error.type").is_none(),
        "{:?}",
        spans[0].to_json()
    );
    assert!(!rx.metrics().is_empty(), "final metric export on shutdown");
}

#[tokio::test]
async fn demo_serves_without_an_api_key_and_prints_spans() {
    let dir = TempDir::new("cli-demo");
    let (_proc, mut lines_rx) = bin::spawn_reading_stdout(
        &["demo", "--listen", "127.0.0.1:0"],
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
        &dir.path().join("stderr.log"),
    );
    let mut proxy_url = None;
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(10), lines_rx.recv()).await
    {
        if let Some(rest) = line.strip_prefix("llmtap demo: proxy on ") {
            proxy_url = rest
                .split_whitespace()
                .next()
                .map(|s| s.trim_end_matches("/v1").to_string());
            break;
        }
    }
    let url = proxy_url.expect("demo banner with the proxy address");
    // The banner's next line is the live view's address.
    let live = tokio::time::timeout(Duration::from_secs(10), lines_rx.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    assert_eq!(
        live,
        format!("Live view: {url}/ui (recent calls, timelines, charts)")
    );
    let r = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    let mut span = None;
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(10), lines_rx.recv()).await
    {
        if line.starts_with('{') && line.contains("\"chat gpt-4o-mini\"") {
            span = Some(line);
            break;
        }
    }
    let span: serde_json::Value =
        serde_json::from_str(&span.expect("span printed to the console")).unwrap();
    assert_eq!(span["attributes"]["gen_ai.operation.name"], "chat");
    assert!(
        span["attributes"]["gen_ai.usage.output_tokens"]
            .as_i64()
            .unwrap()
            > 0
    );

    // The live view shows the call.
    let page = client().get(format!("{url}/ui")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let mut shown = false;
    for _ in 0..100 {
        let calls: serde_json::Value = client()
            .get(format!("{url}/ui/api/calls"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if calls["calls"][0]["model"] == "gpt-4o-mini" {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(shown, "the demo's live view lists the call");

    // The health check subcommand (used by the container HEALTHCHECK) agrees.
    let ok = run(&["healthcheck", "--url", &format!("{url}/healthz")], &[]);
    assert!(ok.status.success());
    let bad = run(&["healthcheck", "--url", "http://127.0.0.1:9/healthz"], &[]);
    assert!(!bad.status.success());
}

/// With a drain delay, SIGTERM first turns `/readyz` to 503 while requests are still served
/// (a load balancer's window to stop sending work), then llmtap stops and exits 0.
#[tokio::test]
async fn sigterm_with_a_drain_delay_answers_503_on_readyz_while_still_serving() {
    let up = start_upstream().await;
    let dir = TempDir::new("cli-drain");
    let (mut proc, url) = bin::start(
        &[
            "--upstream",
            &format!("{}/v1", up.base),
            "--drain-delay",
            "5",
        ],
        NO_TELEMETRY,
        &dir.path().join("stderr.log"),
    )
    .await;
    let ready = client().get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    proc.signal(libc::SIGTERM);
    let mut draining = false;
    for _ in 0..100 {
        let r = client().get(format!("{url}/readyz")).send().await.unwrap();
        if r.status() == 503 {
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(draining, "/readyz never said 503 after SIGTERM");
    // Still serving: a new connection and a request on it.
    let (status, body) = chat_text(
        &url,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut status = None;
    for _ in 0..300 {
        if let Some(s) = proc.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status.expect("exited after the drain delay").code(),
        Some(0)
    );
}
