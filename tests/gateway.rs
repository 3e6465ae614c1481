//! A gateway people can expose (issue 19): paths never leave the upstream's base, hostile
//! values never forge log lines or blow up telemetry, client keys with tenants and limits.
//!
//! Path tests write raw request lines over a `TcpStream`, so no client library normalises
//! the path before llmtap sees it.

mod common;

use std::time::Duration;

use common::otlp;
use common::raw::{Part, RawUpstream, Reply};
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
async fn start_hostile_upstream() -> RawUpstream {
    RawUpstream::start(std::sync::Arc::new(|_, _| {
        let body = serde_json::json!({"error": {
            "message": "upstream says\n\u{1b}[31mFAKE LOG LINE level=ERROR",
            "type": "invalid_request_error",
            "code": "bad\n\u{1b}[31mFAKE LOG LINE level=ERROR",
        }});
        Reply {
            head: "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json".into(),
            parts: vec![Part::Data(body.to_string().into_bytes())],
        }
    }))
    .await
}

#[tokio::test]
async fn hostile_values_cannot_forge_text_log_lines() {
    let dir = TempDir::new("log-injection");
    let log = dir.path().join("stderr.log");
    let up = start_upstream().await;
    let hostile_upstream = start_hostile_upstream().await;
    let hostile = &hostile_upstream.base;
    let config = dir.path().join("llmtap.yaml");
    std::fs::write(
        &config,
        format!(
            "upstreams:\n  - name: scripted\n    base_url: {}/v1\n  - name: hostile\n    base_url: {hostile}/v1\n\
             routes:\n  - model: \"hostile-*\"\n    upstream: hostile\ndefault_upstream: scripted\n\
             auth:\n  keys:\n    - {}\n      tenant: team-a\n",
            up.base,
            hash_key(KEY_A),
        ),
    )
    .unwrap();
    let (_proc, base) = bin::start(
        &["--config", config.to_str().unwrap(), "--log-format", "text"],
        NO_TELEMETRY,
        &log,
    )
    .await;
    let chat = |model: &str| serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]});
    // A hostile model (unpriced, so it is also named on the "no price known" line), and a
    // hostile upstream error code (it becomes error.type on the access line).
    let key = [("api-key", KEY_A)];
    let (status, _) = chat_text(&base, chat(EVIL_MODEL), &key).await;
    assert_eq!(status, 200);
    let (status, _) = chat_text(&base, chat("hostile-1"), &key).await;
    assert_eq!(status, 400);
    // And one without a key: refused, logged without a tenant.
    let (status, _) = chat_text(&base, chat("gpt-4o-mini"), &[]).await;
    assert_eq!(status, 401);
    eventually("three access lines", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches("llmtap::access").count() >= 3 && text.contains("no price known")
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{1b}'), "raw ESC in the log:\n{text:?}");
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("llmtap::access"))
        .collect();
    assert_eq!(access.len(), 3, "one access line per request:\n{text}");
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
    // The client key's tenant is on the access line; a refused request has none.
    assert!(access[0].contains(r#"tenant="team-a""#), "{}", access[0]);
    assert!(
        access[2].contains(r#"error="invalid_api_key""#) && !access[2].contains("tenant="),
        "{}",
        access[2]
    );
    assert!(!text.contains(KEY_A), "a client key in the log");
    // The request itself went upstream unchanged.
    let sent: serde_json::Value = serde_json::from_slice(&up.mock.requests()[0].body).unwrap();
    assert_eq!(sent["model"], EVIL_MODEL);
}

#[tokio::test]
async fn oversized_identifiers_are_cut_on_spans_and_never_become_metric_labels() {
    use llmtap::vocab::limits::MAX_IDENTIFIER_CHARS as MAX;
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

// ---------------------------------------------------------------------------------------
// 2. Client keys, tenants and limits
// ---------------------------------------------------------------------------------------

const KEY_A: &str = "sk-client-team-a-0123456789";
const KEY_B: &str = "sk-client-team-b-9876543210";
const UPSTREAM_KEY: &str = "sk-upstream-secret-abcdef";

/// `llmtap hash-key` with `key` on stdin: the YAML line it prints.
fn hash_key(key: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(bin::BIN)
        .arg("hash-key")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{key}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A config with an upstream key and the given client-key entries (YAML list items).
fn gateway_yaml(keys: &[String]) -> String {
    format!(
        "upstreams:\n  - name: openai\n    base_url: \"{{upstream}}/v1\"\n    api_key_env: UPSTREAM_KEY\n\
         telemetry:\n  tool_call_ttl_secs: 0.2\n  header_attributes: [authorization, x-api-key, api-key]\n\
         metrics:\n  tenant_attribute: true\n  header_attributes: [x-api-key]\n\
         auth:\n  keys:\n{}",
        keys.concat()
    )
}

fn key_entry(sha_line: &str, tenant: &str, extra: &str) -> String {
    format!("    - {sha_line}\n      tenant: {tenant}\n{extra}")
}

fn hi(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test]
async fn hash_key_prints_the_line_for_a_key_on_stdin_and_refuses_none() {
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    assert_eq!(
        hash_key("abc"),
        "sha256: \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\""
    );
    let out = bin::run(&["hash-key"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key"));
}

#[tokio::test]
async fn client_keys_let_known_keys_in_by_tenant_and_the_upstream_gets_only_its_own_key() {
    let yaml = gateway_yaml(&[
        key_entry(&hash_key(KEY_A), "team-a", ""),
        key_entry(&hash_key(KEY_B), "team-b", ""),
    ]);
    let (up, rx, proxy) = start_traced(
        "http/protobuf",
        Some(&yaml),
        &[("UPSTREAM_KEY", UPSTREAM_KEY)],
    )
    .await;
    let c = client();
    let chat_url = format!("{}/v1/chat/completions", proxy.url);

    // No key, an unknown key, a key in a scheme other than Bearer: 401 in OpenAI's shape.
    let wrong_key = format!("Bearer {KEY_A}x");
    for headers in [
        vec![],
        vec![("authorization", wrong_key.as_str())],
        vec![("x-api-key", "sk-nobody")],
        vec![("authorization", "Basic c2stY2xpZW50")],
    ] {
        let mut r = c.post(&chat_url).json(&hi("gpt-4o-mini"));
        for (k, v) in &headers {
            r = r.header(*k, *v);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{headers:?}");
        assert_eq!(
            r.headers().get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    // Every proxied path needs a key; health does not.
    let r = c
        .get(format!("{}/v1/models", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(up.mock.requests().is_empty(), "{:?}", up.mock.requests());

    // Known keys, in each of the three headers.
    let bearer_a = format!("Bearer {KEY_A}");
    let with_tool = serde_json::json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    for (body, header) in [
        (hi("gpt-4o-mini"), ("authorization", bearer_a.as_str())),
        (hi("gpt-4o"), ("api-key", KEY_B)),
        (with_tool, ("x-api-key", KEY_A)),
    ] {
        let (status, text) = chat_text(&proxy.url, body, &[header]).await;
        assert_eq!(status, 200, "{header:?}: {text}");
    }
    let seen = up.mock.requests();
    assert_eq!(seen.len(), 3);
    for r in &seen {
        let auth: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| ["authorization", "api-key", "x-api-key"].contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(auth, [format!("Bearer {UPSTREAM_KEY}")], "{:?}", r.headers);
    }
    let scraped = scrape(&proxy.url).await;
    proxy.stop().await;

    let spans = rx.spans();
    let refused: Vec<_> = spans
        .iter()
        .filter(|s| s.str_attr("error.type") == Some("invalid_api_key"))
        .collect();
    assert_eq!(refused.len(), 4, "{}", otlp::spans_json(&spans));
    for s in &refused {
        assert_eq!(s.int_attr("http.response.status_code"), Some(401));
        assert!(s.attr("llmtap.tenant").is_none());
    }
    // No key material on any span, anywhere.
    let all = otlp::spans_json(&spans);
    for secret in [KEY_A, KEY_B, UPSTREAM_KEY, "sk-nobody"] {
        assert!(!all.contains(secret), "{secret} on a span");
    }
    let tenant_of = |name: &str| {
        spans
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.str_attr("llmtap.tenant").unwrap_or("-").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(tenant_of("chat gpt-4o"), ["team-b"]);
    assert_eq!(tenant_of("chat gpt-4o-mini"), ["team-a", "team-a"]);
    // Refused before the body was read: the span has no model, and no tenant.
    assert_eq!(tenant_of("chat"), ["-", "-", "-", "-"]);
    // The tool call the model asked for in team-a's request is team-a's too.
    assert_eq!(tenant_of("execute_tool get_weather"), ["team-a"]);
    assert!(scraped.contains(r#"llmtap_tenant="team-a""#), "{scraped}");
    // Credential headers named as attributes (a careless config) are never copied.
    for secret in [KEY_A, KEY_B] {
        assert!(!scraped.contains(secret), "{secret} on a metric");
    }
    assert!(!all.contains("http.request.header.x-api-key"), "{all}");
    assert!(scraped.contains(r#"llmtap_tenant="team-b""#));
}

#[tokio::test]
async fn over_requests_per_minute_is_a_429_with_openais_rate_limit_headers() {
    let yaml = gateway_yaml(&[
        key_entry(&hash_key(KEY_A), "team-a", "      requests_per_minute: 2\n"),
        key_entry(&hash_key(KEY_B), "team-b", ""),
    ]);
    let (up, rx, proxy) = start_traced(
        "http/protobuf",
        Some(&yaml),
        &[("UPSTREAM_KEY", UPSTREAM_KEY)],
    )
    .await;
    for _ in 0..2 {
        let (status, _) = chat_text(&proxy.url, hi("gpt-4o-mini"), &[("api-key", KEY_A)]).await;
        assert_eq!(status, 200);
    }
    let r = post_chat(&proxy.url, hi("gpt-4o-mini"), &[("api-key", KEY_A)]).await;
    assert_eq!(r.status(), 429);
    let h = r.headers().clone();
    let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let retry: u64 = header("retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry), "retry-after {retry}");
    assert_eq!(header("x-ratelimit-limit-requests"), "2");
    assert_eq!(header("x-ratelimit-remaining-requests"), "0");
    assert!(header("x-ratelimit-reset-requests").ends_with('s'), "{h:?}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert_eq!(body["error"]["type"], "requests");
    // Another key is not held back by team-a's limit.
    let (status, _) = chat_text(&proxy.url, hi("gpt-4o-mini"), &[("api-key", KEY_B)]).await;
    assert_eq!(status, 200);
    assert_eq!(up.mock.requests().len(), 3);
    proxy.stop().await;
    let spans = rx.spans();
    let limited: Vec<_> = spans
        .iter()
        .filter(|s| s.str_attr("error.type") == Some("rate_limit_exceeded"))
        .collect();
    assert_eq!(limited.len(), 1, "{}", otlp::spans_json(&spans));
    assert_eq!(limited[0].str_attr("llmtap.tenant"), Some("team-a"));
    assert_eq!(limited[0].int_attr("http.response.status_code"), Some(429));
}

#[tokio::test]
async fn over_max_concurrent_is_a_429_at_once_and_the_slot_frees_when_the_stream_ends() {
    let yaml = gateway_yaml(&[key_entry(
        &hash_key(KEY_A),
        "team-a",
        "      max_concurrent: 1\n",
    )]);
    let (up, _rx, proxy) = start_traced(
        "http/protobuf",
        Some(&yaml),
        &[("UPSTREAM_KEY", UPSTREAM_KEY)],
    )
    .await;
    let stream = serde_json::json!({"model": "gpt-4o-mini", "stream": true,
        "messages": [{"role": "user", "content": "Hi"}]});
    // A stream of 5 chunks 200 ms apart: in flight for about a second after its headers.
    let first = post_chat(
        &proxy.url,
        stream,
        &[
            ("api-key", KEY_A),
            ("x-mock-chunks", "5"),
            ("x-mock-chunk-delay-ms", "200"),
        ],
    )
    .await;
    assert_eq!(first.status(), 200);
    let started = std::time::Instant::now();
    let r = post_chat(&proxy.url, hi("gpt-4o-mini"), &[("api-key", KEY_A)]).await;
    assert_eq!(r.status(), 429);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "queued for {:?}",
        started.elapsed()
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "concurrency_limit_exceeded",
        "{body}"
    );
    // The first stream's slot is held until its body ends, then it is free again.
    let text = first.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let mut status = 0;
    for _ in 0..50 {
        status = chat_text(&proxy.url, hi("gpt-4o-mini"), &[("api-key", KEY_A)])
            .await
            .0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(up.mock.requests().len(), 2);
}

#[tokio::test]
async fn the_shipped_config_documents_client_keys_and_its_example_loads() {
    let text = read("config/llmtap.yaml");
    let start = text
        .find("\n# auth:\n")
        .expect("config/llmtap.yaml has a commented auth example");
    // The commented block, uncommented: `# auth:` and the lines under it.
    let block: String = text[start + 1..]
        .lines()
        .take_while(|l| *l == "# auth:" || l.starts_with("#   "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    assert!(block.contains("sha256:"), "{block}");
    let env: std::collections::HashMap<String, String> = Default::default();
    let cfg = llmtap::config::load_yaml(&format!("{text}\n{block}"), &env)
        .unwrap_or_else(|e| panic!("the uncommented auth example does not load: {e}\n{block}"));
    let auth = cfg.auth.expect("auth");
    assert!(!auth.keys.is_empty());
    assert!(auth.keys.iter().all(|k| !k.tenant.is_empty()));
}

// ---------------------------------------------------------------------------------------
// 4. OTLP compression
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn otlp_exports_are_gzip_compressed_when_asked_over_http_and_grpc() {
    for (protocol, header, value) in [
        ("http/protobuf", "content-encoding", "gzip"),
        ("http/json", "content-encoding", "gzip"),
        ("grpc", "grpc-encoding", "gzip"),
    ] {
        let (_up, rx, proxy) = start_traced(
            protocol,
            None,
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")],
        )
        .await;
        let (status, _) = chat_text(&proxy.url, hi("gpt-4o-mini"), &[]).await;
        assert_eq!(status, 200);
        proxy.stop().await;
        let spans = rx.spans();
        assert_eq!(spans.len(), 1, "{protocol}: {}", otlp::spans_json(&spans));
        assert!(!rx.metrics().is_empty(), "{protocol}: no metrics");
        let exports = rx.requests();
        assert!(!exports.is_empty());
        for e in &exports {
            assert_eq!(e.header(header), Some(value), "{protocol}: {e:?}");
        }
    }
}
