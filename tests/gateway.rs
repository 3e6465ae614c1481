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
