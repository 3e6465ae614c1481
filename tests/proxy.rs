//! The transparent proxy: forwarding, streaming, headers, errors, timeouts, cancellation.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]})
}

#[tokio::test]
async fn non_streamed_chat_is_identical_to_direct() {
    let (up, proxy) = plain_proxy().await;
    let c = client();
    let body = chat("gpt-4o-mini", false);
    let direct = c
        .post(format!("{}/v1/chat/completions", up.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let via = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), via.status());
    for h in [
        "content-type",
        "x-request-id",
        "openai-processing-ms",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-tokens",
    ] {
        assert_eq!(direct.headers().get(h), via.headers().get(h), "header {h}");
        assert!(via.headers().get(h).is_some(), "header {h} missing");
    }
    assert_eq!(direct.bytes().await.unwrap(), via.bytes().await.unwrap());
}

#[tokio::test]
async fn streamed_chat_is_byte_identical_and_usage_injection_is_invisible() {
    let (up, proxy) = plain_proxy().await;
    let c = client();
    for body in [
        chat("gpt-4o-mini", true),
        json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "Say hello"}]}),
    ] {
        let direct = c
            .post(format!("{}/v1/chat/completions", up.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let via = c
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            via.headers().get("content-type"),
            direct.headers().get("content-type")
        );
        let (d, v) = (direct.bytes().await.unwrap(), via.bytes().await.unwrap());
        assert_eq!(
            String::from_utf8_lossy(&d),
            String::from_utf8_lossy(&v),
            "body {body}"
        );
        assert!(v.ends_with(b"data: [DONE]\n\n"));
    }
    // The upstream did receive the injected option for the request that lacked it.
    let reqs = up.mock.requests();
    let sent: Value = serde_json::from_slice(&reqs[1].body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn first_chunk_arrives_before_the_upstream_sleeps_end() {
    let (_up, proxy) = plain_proxy().await;
    let started = Instant::now();
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-chunk-delay-ms", "300")
        .header("x-mock-chunks", "4")
        .json(&chat("mock-slow", true))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    let mut rest = Vec::new();
    while let Some(c) = stream.next().await {
        rest.extend_from_slice(&c.unwrap());
    }
    let total = started.elapsed();
    // 4 content chunks 300 ms apart: the whole stream takes >= 900 ms; the first chunk must
    // not wait for that (it arrives before the first 300 ms sleep ends).
    assert!(total >= Duration::from_millis(900), "total {total:?}");
    assert!(
        first_at < Duration::from_millis(300),
        "first chunk after {first_at:?}"
    );
}

/// `file` from the upstream's fixtures directory, replayed in `split`-byte pieces through the
/// proxy at `proxy_url`. The request includes usage, so llmtap does not rewrite the stream.
async fn replay_through(proxy_url: &str, file: &str, split: usize) -> Vec<u8> {
    let body = json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}, "messages": []});
    let resp = client()
        .post(format!("{proxy_url}/v1/chat/completions"))
        .header("x-mock-scenario", "replay")
        .header("x-mock-replay", file)
        .header("x-mock-split-bytes", split.to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{file}");
    resp.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn replayed_fixtures_with_odd_splits_come_out_byte_identical() {
    // The upstream replays our own fixtures (tests/fixtures).
    let (_up, proxy) = plain_proxy().await;
    for (file, split) in [
        ("openai-chat-stream-parallel-tools-usage.sse", 7),
        ("azure-chat-stream-content-filter.sse", 1),
        ("vllm-chat-stream-usage.sse", 13),
        ("openai-chat-text.sse", 4096),
        // CRLF framing, keep-alive comments, multi-line data, CR-only + BOM.
        ("openai-chat-crlf-keepalive.sse", 3),
        ("sse-crlf-keepalive.sse", 3),
        ("sse-cr-bom.sse", 3),
    ] {
        let expected = std::fs::read(provider_fixtures().join(file)).unwrap();
        let got = replay_through(&proxy.url, file, split).await;
        assert_eq!(got.len(), expected.len(), "{file}");
        assert!(got == expected, "{file} differs");
    }
    // Every SSE fixture of ours, then the shared provider recordings when they are present.
    let ours = sse_fixture_names(&provider_fixtures());
    assert!(ours.len() >= 18, "our fixtures are missing: {ours:?}");
    let mut corpora = vec![(provider_fixtures(), ours)];
    if let Some(dir) = shared_provider_fixtures() {
        let names = sse_fixture_names(&dir);
        assert!(names.len() >= 20, "{}: recordings missing", dir.display());
        corpora.push((dir, names));
    }
    for (dir, names) in corpora {
        let up = start_upstream_with(dir.clone()).await;
        let proxy = start_proxy(
            &up.base,
            ProxyOpts {
                env: no_telemetry(),
                ..Default::default()
            },
        )
        .await;
        for (k, file) in names.iter().enumerate() {
            let split = [5, 11, 97][k % 3];
            let expected = std::fs::read(dir.join(file)).unwrap();
            let got = replay_through(&proxy.url, file, split).await;
            assert!(got == expected, "{}: {file} differs", dir.display());
        }
    }
}

#[tokio::test]
async fn other_paths_methods_and_queries_are_forwarded() {
    let (up, proxy) = plain_proxy().await;
    let c = client();
    let models: Value = c
        .get(format!("{}/v1/models", proxy.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let r = c
        .post(format!("{}/v1/files/abc?purpose=batch&x=1", proxy.url))
        .header("x-mock-scenario", "echo")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret-hop")
        .header("authorization", "Bearer sk-client")
        .body("raw,body")
        .send()
        .await
        .unwrap();
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["path"], "/v1/files/abc");
    assert_eq!(echo["query"], "purpose=batch&x=1");
    assert_eq!(echo["body"], "raw,body");
    let headers = echo["headers"].to_string().to_lowercase();
    assert!(
        !headers.contains("secret-hop"),
        "hop-by-hop header forwarded: {headers}"
    );
    assert!(headers.contains("bearer sk-client"));
    let host = up.base.trim_start_matches("http://");
    assert!(
        headers.contains(&format!("\"{host}\"")),
        "Host must be the upstream's: {headers}"
    );
}

#[tokio::test]
async fn malformed_body_is_forwarded_and_the_upstream_decides() {
    let (_up, proxy) = plain_proxy().await;
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let (up, proxy) = plain_proxy().await;
    let c = client();
    for model in [
        "mock-error-429",
        "mock-error-400",
        "mock-error-401",
        "mock-error-500",
    ] {
        let d = c
            .post(format!("{}/v1/chat/completions", up.base))
            .json(&chat(model, false))
            .send()
            .await
            .unwrap();
        let v = c
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&chat(model, false))
            .send()
            .await
            .unwrap();
        assert_eq!(d.status(), v.status(), "{model}");
        assert_eq!(
            d.headers().get("retry-after"),
            v.headers().get("retry-after")
        );
        assert_eq!(
            d.bytes().await.unwrap(),
            v.bytes().await.unwrap(),
            "{model}"
        );
    }
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").cloned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(ct.unwrap(), "application/json");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"]["type"].is_string(), "{v}");
    (status, v)
}

#[tokio::test]
async fn proxy_errors_are_in_openai_shape() {
    let c = client();
    // Unreachable upstream: a port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let proxy = start_proxy(
        &format!("http://{dead_addr}"),
        ProxyOpts {
            env: no_telemetry(),
            ..Default::default()
        },
    )
    .await;
    let (s, v) = error_of(
        c.post(format!("{}/v1/chat/completions", proxy.url))
            .json(&chat("m", false))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 502);
    assert_eq!(v["error"]["code"], "upstream_unreachable");

    // Outside /v1: 404.
    let (s, _) = error_of(
        c.get(format!("{}/v2/models", proxy.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);

    // Over the body limit: 413, both with a Content-Length and with a chunked body.
    let up = start_upstream().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: no_telemetry(),
            tweak: Some(Box::new(|c| c.max_body_bytes = 1024)),
            ..Default::default()
        },
    )
    .await;
    let big = "x".repeat(4096);
    let (s, v) = error_of(
        c.post(format!("{}/v1/chat/completions", proxy.url))
            .body(big.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 413);
    assert_eq!(v["error"]["code"], "request_too_large");
    let chunked = reqwest::Body::wrap_stream(futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 512]))),
    ));
    let (s, _) = error_of(
        c.post(format!("{}/v1/chat/completions", proxy.url))
            .body(chunked)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 413);
}

#[tokio::test]
async fn slow_upstream_headers_give_504() {
    let up = start_upstream().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: no_telemetry(),
            tweak: Some(Box::new(|c| {
                c.upstreams[0].timeouts.first_byte = Duration::from_millis(300)
            })),
            ..Default::default()
        },
    )
    .await;
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-delay-ms", "3000")
        .json(&chat("mock-slow-headers", false))
        .send()
        .await
        .unwrap();
    let (s, v) = error_of(r).await;
    assert_eq!(s, 504);
    assert_eq!(v["error"]["code"], "timeout");
}

/// Reads a streamed response until it ends or fails; returns (bytes, ended_cleanly).
async fn drain(resp: reqwest::Response) -> (Vec<u8>, bool) {
    let mut s = resp.bytes_stream();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.next()).await {
            Ok(Some(Ok(c))) => out.extend_from_slice(&c),
            Ok(Some(Err(_))) => return (out, false),
            Ok(None) => return (out, true),
            Err(_) => panic!("stream hung"),
        }
    }
}

#[tokio::test]
async fn idle_upstream_cuts_the_client_stream() {
    let up = start_upstream().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: no_telemetry(),
            tweak: Some(Box::new(|c| {
                c.upstreams[0].timeouts.idle = Duration::from_millis(300)
            })),
            ..Default::default()
        },
    )
    .await;
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("mock-idle", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (body, clean) = drain(r).await;
    assert!(!clean, "an idle-timed-out stream must not end cleanly");
    assert!(!String::from_utf8_lossy(&body).contains("[DONE]"));
}

#[tokio::test]
async fn upstream_cut_mid_stream_is_cut_for_the_client() {
    let (_up, proxy) = plain_proxy().await;
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("mock-cut", true))
        .send()
        .await
        .unwrap();
    let (body, clean) = drain(r).await;
    assert!(!clean, "cut stream ended cleanly");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("data: {"), "{text}");
    assert!(!text.contains("[DONE]"), "fake [DONE]: {text}");
}

#[tokio::test]
async fn client_going_away_drops_the_upstream_request_at_once() {
    let (up, proxy) = plain_proxy().await;
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-chunk-delay-ms", "200")
        .header("x-mock-chunks", "50")
        .json(&chat("mock-slow", true))
        .send()
        .await
        .unwrap();
    let mut s = r.bytes_stream();
    let _ = s.next().await.unwrap().unwrap();
    drop(s);
    let mock = up.mock.clone();
    eventually(
        "upstream sees the stream cancelled",
        Duration::from_secs(3),
        || {
            mock.events()
                .iter()
                .any(|e| format!("{e:?}").contains("Cancelled"))
        },
    )
    .await;
}

#[tokio::test]
async fn gateway_key_replaces_the_clients_and_azure_paths_work() {
    let up = start_upstream().await;
    let yaml = r#"
upstreams:
  - name: gw
    base_url: "{upstream}/v1"
    provider: openai
    api_key_env: GW_KEY
  - name: az
    base_url: "{upstream}"
    provider: azure
    api_key_env: AZ_KEY
routes:
  - model: "my-deployment"
    upstream: az
default_upstream: gw
"#;
    let mut e = no_telemetry();
    e.extend(env(&[
        ("GW_KEY", "sk-gateway-key"),
        ("AZ_KEY", "azure-key-123"),
    ]));
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: Some(yaml.into()),
            env: e,
            ..Default::default()
        },
    )
    .await;
    let c = client();
    let r = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("authorization", "Bearer sk-client-key")
        .header("x-mock-scenario", "echo")
        .json(&chat("gpt-4o", false))
        .send()
        .await
        .unwrap();
    let echo = r.text().await.unwrap();
    assert!(echo.contains("sk-gateway-key"), "{echo}");
    assert!(!echo.contains("sk-client-key"), "{echo}");

    let r = c
        .post(format!(
            "{}/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21",
            proxy.url
        ))
        .header("api-key", "client-azure-key")
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    let last = up.mock.requests().last().cloned().unwrap();
    assert_eq!(
        last.path,
        "/openai/deployments/my-deployment/chat/completions"
    );
    assert_eq!(last.query.as_deref(), Some("api-version=2024-10-21"));
    let key = last
        .headers
        .iter()
        .find(|(k, _)| k == "api-key")
        .map(|(_, v)| v.clone());
    assert_eq!(key.as_deref(), Some("azure-key-123"));
}

#[tokio::test]
async fn health_and_readiness_answer_without_traffic_upstream() {
    let (up, proxy) = plain_proxy().await;
    let c = client();
    assert_eq!(
        c.get(format!("{}/healthz", proxy.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/readyz", proxy.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(up.mock.requests().is_empty());
}
