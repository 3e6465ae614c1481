//! A gateway people can expose (issue 19): paths never leave the upstream's base, hostile
//! values never forge log lines or blow up telemetry, client keys with tenants and limits.
//!
//! Path tests write raw request lines over a `TcpStream`, so no client library normalises
//! the path before llmtap sees it.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response read off the wire: status (0 when the connection closed without one), head
/// and body.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as bytes and reads until the server closes (bounded by 10 s).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> RawResponse {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// `GET <target>` with `Connection: close`, the target sent byte for byte.
async fn raw_get(addr: std::net::SocketAddr, target: &[u8]) -> RawResponse {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: llmtap.test\r\nConnection: close\r\n\r\n");
    raw(addr, &req).await
}

/// The error code of an OpenAI-shaped error body.
fn error_code(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    assert!(v["error"]["message"].is_string(), "{body}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{body}");
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------
// 1. Paths never leave the upstream's base
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn paths_that_leave_the_base_get_400_and_never_reach_the_upstream() {
    let (up, proxy) = plain_proxy().await;
    let refused: &[&[u8]] = &[
        // Dot segments, plain and percent-encoded in any case.
        b"/v1/../admin",
        b"/v1/chat/../../admin",
        b"/v1/./../admin",
        b"/v1/%2e%2e/admin",
        b"/v1/%2E%2E/admin",
        b"/v1/%2e%2E/admin",
        b"/v1/.%2e/admin",
        b"/v1/..",
        b"/v1//..//admin",
        b"/openai/deployments/../../admin?api-version=2024-10-21",
        b"/openai/..",
        // Encoded slashes and backslashes, any case, and a raw backslash.
        b"/v1/..%2fadmin",
        b"/v1/..%2Fadmin",
        b"/v1/..%5cadmin",
        b"/v1/..%5Cadmin",
        b"/v1/chat%2fcompletions",
        b"/v1/..\\admin",
        // Double encoding, overlong UTF-8 for '.', encoded NUL and CR LF.
        b"/v1/%252e%252e/admin",
        b"/v1/%252E%252E%252Fadmin",
        b"/v1/%c0%ae%c0%ae/admin",
        b"/v1/%e0%80%ae%e0%80%ae/admin",
        b"/v1/chat%00/completions",
        b"/v1/models%0d%0aX-Injected:%201",
        // The absolute form carries the same path.
        b"http://llmtap.test/v1/../admin",
    ];
    for target in refused {
        let r = raw_get(proxy.addr, target).await;
        let shown = String::from_utf8_lossy(target);
        assert_eq!(r.status, 400, "{shown}: {r:?}");
        assert_eq!(error_code(&r.body), "invalid_path", "{shown}: {r:?}");
        assert!(
            r.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{shown}: {r:?}"
        );
    }
    // Raw bytes hyper itself refuses (NUL, bytes that are not UTF-8): a 400 before llmtap
    // sees the request, and still nothing upstream.
    for target in [&b"/v1/a\0b"[..], b"/v1/\xc0\xae\xc0\xae/admin"] {
        let r = raw_get(proxy.addr, target).await;
        assert_eq!(
            r.status,
            400,
            "{:?}: {r:?}",
            String::from_utf8_lossy(target)
        );
    }
    assert!(
        up.mock.requests().is_empty(),
        "the upstream saw {:?}",
        up.mock.requests()
    );
}

#[tokio::test]
async fn paths_that_stay_inside_are_forwarded_in_their_normalised_form() {
    let (up, proxy) = plain_proxy().await;
    for (target, want) in [
        ("/v1//models", "/v1/models"),
        ("/v1/./models", "/v1/models"),
        ("/v1/chat/../models", "/v1/models"),
        ("/v1/%6dodels", "/v1/models"),
        ("/v1/models/%2e/gpt-4o", "/v1/models/gpt-4o"),
    ] {
        up.mock.clear();
        let r = raw_get(proxy.addr, target.as_bytes()).await;
        assert_eq!(r.status, 200, "{target}: {r:?}");
        let seen = up.mock.requests();
        assert_eq!(seen.len(), 1, "{target}");
        assert_eq!(seen[0].path, want, "{target}");
    }
    // An inference call through a path with dot segments is still an inference call.
    up.mock.clear();
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST /v1/./embeddings/../chat//completions HTTP/1.1\r\nHost: llmtap.test\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw(proxy.addr, req.as_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("chat.completion"), "{r:?}");
    assert_eq!(up.mock.requests()[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn a_query_that_tries_the_same_is_forwarded_as_query_only() {
    let (up, proxy) = plain_proxy().await;
    let query = "x=/../../admin&y=%2e%2e%2fadmin&z=..%5cadmin&w=%252e%252e";
    let r = raw_get(proxy.addr, format!("/v1/models?{query}").as_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/models");
    assert_eq!(seen[0].query.as_deref(), Some(query));
}

// ---------------------------------------------------------------------------------------
// 3b. Hostile values in telemetry and logs
// ---------------------------------------------------------------------------------------

const EVIL_MODEL: &str = "evil\n\u{1b}[31mFAKE LOG LINE level=ERROR";

/// An upstream that answers every request with a 400 whose error code is hostile.
async fn start_hostile_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async {
        let body = serde_json::json!({"error": {
            "message": "upstream says\n\u{1b}[31mFAKE LOG LINE level=ERROR",
            "type": "invalid_request_error",
            "code": "bad\n\u{1b}[31mFAKE LOG LINE level=ERROR",
        }});
        (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            body.to_string(),
        )
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn hostile_values_cannot_forge_text_log_lines() {
    let dir = TempDir::new("log-injection");
    let log = dir.path().join("stderr.log");
    let up = start_upstream().await;
    let (hostile, _task) = start_hostile_upstream().await;
    let config = dir.path().join("llmtap.yaml");
    std::fs::write(
        &config,
        format!(
            "upstreams:\n  - name: scripted\n    base_url: {}/v1\n  - name: hostile\n    base_url: {hostile}/v1\n\
             routes:\n  - model: \"hostile-*\"\n    upstream: hostile\ndefault_upstream: scripted\n",
            up.base
        ),
    )
    .unwrap();
    let (_proc, base) = bin::start(
        &["--config", config.to_str().unwrap(), "--log-format", "text"],
        &[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
        &log,
    )
    .await;
    let chat = |model: &str| serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]});
    // A hostile model (unpriced, so it is also named on the "no price known" line), and a
    // hostile upstream error code (it becomes error.type on the access line).
    let (status, _) = chat_text(&base, chat(EVIL_MODEL), &[]).await;
    assert_eq!(status, 200);
    let (status, _) = chat_text(&base, chat("hostile-1"), &[]).await;
    assert_eq!(status, 400);
    eventually("two access lines", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches("llmtap::access").count() >= 2 && text.contains("no price known")
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{1b}'), "raw ESC in the log:\n{text:?}");
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("llmtap::access"))
        .collect();
    assert_eq!(access.len(), 2, "one access line per request:\n{text}");
    for line in text.lines().filter(|l| !l.is_empty()) {
        // Every line is a real event: it starts with its timestamp, never with forged text.
        assert!(
            line.starts_with(|c: char| c.is_ascii_digit()),
            "a forged line:\n{line}\n---\n{text}"
        );
        if line.contains("FAKE LOG LINE") {
            assert!(
                line.contains(r#"="evil\n\u001b[31mFAKE LOG LINE level=ERROR""#)
                    || line.contains(r#"="bad\n\u001b[31mFAKE LOG LINE level=ERROR""#),
                "value not escaped and quoted:\n{line}"
            );
        }
    }
    assert!(
        access[0].contains(r#"model="evil\n\u001b[31mFAKE LOG LINE level=ERROR""#),
        "{}",
        access[0]
    );
    assert!(
        access[1].contains(r#"error="bad\n\u001b[31mFAKE LOG LINE level=ERROR""#),
        "{}",
        access[1]
    );
    // The request itself went upstream unchanged.
    let sent: serde_json::Value = serde_json::from_slice(&up.mock.requests()[0].body).unwrap();
    assert_eq!(sent["model"], EVIL_MODEL);
}

#[tokio::test]
async fn oversized_identifiers_are_cut_on_spans_and_never_become_metric_labels() {
    use llmtap::telemetry::limits::MAX_IDENTIFIER_CHARS as MAX;
    let yaml = r#"
upstreams:
  - name: openai
    base_url: "{upstream}/v1"
telemetry:
  header_attributes: [x-team]
  tool_call_ttl_secs: 0.2
metrics:
  header_attributes: [x-team]
"#;
    let (up, rx, proxy) = start_traced("http/protobuf", Some(yaml), &[]).await;
    let model = "m".repeat(200 * 1024);
    let template = "t".repeat(60 * 1024);
    let team = "a".repeat(MAX + 44);
    let tool = "f".repeat(MAX + 44);
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [{"type": "function", "function": {"name": tool, "parameters": {"type": "object"}}}],
    });
    let (status, text) = chat_text(
        &proxy.url,
        body,
        &[("x-llmtap-prompt-template", &template), ("x-team", &team)],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    // Forwarded unchanged: the upstream's business.
    let seen = &up.mock.requests()[0];
    let sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent["model"].as_str().map(str::len), Some(model.len()));
    assert!(seen
        .headers
        .iter()
        .any(|(k, v)| k == "x-team" && *v == team));

    let scrape_text = scrape(&proxy.url).await;
    proxy.stop().await;
    let spans = rx.spans();
    let chat = spans
        .iter()
        .find(|s| s.name.starts_with("chat "))
        .expect("chat span");
    assert_eq!(chat.name, format!("chat {}", &model[..MAX]));
    for key in [
        "gen_ai.request.model",
        "gen_ai.response.model",
        "llmtap.prompt.template",
        "http.request.header.x-team",
    ] {
        let v = chat
            .str_attr(key)
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(v.chars().count(), MAX, "{key}");
    }
    let tool_span = spans
        .iter()
        .find(|s| s.name.starts_with("execute_tool "))
        .expect("tool span");
    assert_eq!(tool_span.name, format!("execute_tool {}", &tool[..MAX]));
    assert_eq!(tool_span.str_attr("gen_ai.tool.name"), Some(&tool[..MAX]));

    // No label of unbounded size; the over-long values count as `other`.
    let longest = scrape_text.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2 * MAX + 1024, "a {longest}-byte /metrics line");
    for label in [
        r#"gen_ai_request_model="other""#,
        r#"gen_ai_response_model="other""#,
        r#"x_team="other""#,
        r#"gen_ai_tool_name="other""#,
    ] {
        assert!(
            scrape_text.contains(label),
            "{label} missing:\n{scrape_text}"
        );
    }
}
