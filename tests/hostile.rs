//! Hostile clients (issue 19 §3): slow heads (slowloris), connections that never send or
//! go idle, oversized heads, request-smuggling shapes, many idle connections, and an HTTP/2
//! rapid-reset flood. Each gets the right status or a closed connection; other clients are
//! served meanwhile. Everything binds 127.0.0.1 and every loop is bounded in count and time.

mod common;

use std::time::{Duration, Instant};

use common::raw::{sse_head, Part, RawUpstream, Reply};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy in front of the scripted upstream, telemetry off, with a 1 s header timeout.
async fn proxy_with_header_timeout() -> (Upstream, Proxy) {
    let up = start_upstream().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: no_telemetry(),
            tweak: Some(Box::new(|c| {
                c.header_read_timeout = Duration::from_secs(1);
            })),
            ..Default::default()
        },
    )
    .await;
    (up, proxy)
}

/// Reads until the server closes (or `limit` passes); the bytes read and when it closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while start.elapsed() < limit {
        match tokio::time::timeout(limit - start.elapsed(), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (buf, Some(start.elapsed())),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    (buf, None)
}

/// Status codes of the responses in `bytes` (each `HTTP/1.1 NNN` line).
fn statuses(bytes: &[u8]) -> Vec<u16> {
    String::from_utf8_lossy(bytes)
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| {
            let s = String::from_utf8_lossy(bytes);
            s.get(i + 9..i + 12).and_then(|c| c.parse().ok())
        })
        .collect()
}

/// A GET through the proxy from another client: served, and quickly.
async fn others_are_served(proxy: &Proxy) {
    let started = Instant::now();
    let r = client()
        .get(format!("{}/v1/models", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "another client waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_sending_its_head_slowly_is_cut_at_the_header_timeout() {
    let (up, proxy) = proxy_with_header_timeout().await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nx-slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    // One byte every 100 ms, never finishing the head; at most 5 s.
    let mut cut_at = None;
    for i in 0..50 {
        if i == 3 {
            others_are_served(&proxy).await;
        }
        if s.write_all(b"a").await.is_err() {
            cut_at = Some(started.elapsed());
            break;
        }
        let mut b = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_at = Some(started.elapsed());
                break;
            }
            // A 408 before closing is fine too.
            Ok(Ok(n)) => assert!(statuses(&b[..n]).iter().all(|s| *s == 408), "{:?}", &b[..n]),
            Err(_) => {}
        }
    }
    let cut_at = cut_at.expect("the slow client was never cut");
    assert!(
        cut_at >= Duration::from_millis(500) && cut_at < Duration::from_secs(3),
        "cut after {cut_at:?}"
    );
    assert!(up.mock.requests().iter().all(|r| r.path == "/v1/models"));
    assert_eq!(
        up.mock.requests().len(),
        1,
        "only the other client's request"
    );
}

#[tokio::test]
async fn connections_that_send_nothing_or_go_idle_are_closed() {
    let (_up, proxy) = proxy_with_header_timeout().await;
    // Never sends a byte.
    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    // Sends one request, keeps the connection, then goes quiet.
    let mut idle = TcpStream::connect(proxy.addr).await.unwrap();
    idle.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (silent_read, silent_closed) = read_until_closed(&mut silent, Duration::from_secs(4)).await;
    let (idle_read, idle_closed) = read_until_closed(&mut idle, Duration::from_secs(4)).await;
    assert!(silent_read.is_empty());
    let silent_closed = silent_closed.expect("a silent connection stayed open");
    assert!(silent_closed < Duration::from_secs(3), "{silent_closed:?}");
    assert_eq!(statuses(&idle_read), [200]);
    assert!(
        idle_closed.is_some(),
        "an idle kept-alive connection stayed open"
    );
    others_are_served(&proxy).await;
}

#[tokio::test]
async fn oversized_heads_get_431_and_never_reach_the_upstream() {
    let (up, proxy) = proxy_with_header_timeout().await;
    let mut many = String::from("GET /v1/models HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let big = format!(
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(600 * 1024)
    );
    for req in [many, big] {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        let _ = s.write_all(req.as_bytes()).await;
        let (read, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert_eq!(statuses(&read), [431], "{}", String::from_utf8_lossy(&read));
        assert!(closed.is_some());
    }
    assert!(up.mock.requests().is_empty());
    others_are_served(&proxy).await;
}

#[tokio::test]
async fn request_smuggling_shapes_are_refused_or_read_one_way_then_closed() {
    let (up, proxy) = proxy_with_header_timeout().await;
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#;
    let refused = [
        // Two different lengths.
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nContent-Length: 5\r\n\r\n{body}",
            body.len()
        ),
        // Chunked not the final coding.
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n".to_string(),
        // Transfer-Encoding in HTTP/1.0.
        "POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_string(),
        // A malformed length.
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello".to_string(),
    ];
    for req in &refused {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let (read, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert_eq!(
            statuses(&read),
            [400],
            "{req:?}: {}",
            String::from_utf8_lossy(&read)
        );
        assert!(closed.is_some(), "{req:?}");
    }
    assert!(up.mock.requests().is_empty(), "{:?}", up.mock.requests());

    // Both lengths: the body is read as chunked (Transfer-Encoding wins), the request is
    // forwarded with its real length, and the connection closes after the response, so
    // what a Content-Length reader would take for a second request is never one.
    let smuggled = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n{smuggled}",
        body.len()
    );
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let (read, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert_eq!(statuses(&read), [200], "{}", String::from_utf8_lossy(&read));
    assert!(closed.is_some());
    let seen = up.mock.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].body.as_ref(), body.as_bytes());
    others_are_served(&proxy).await;
}

/// Resident memory and open descriptors of process `pid`, from /proc.
fn rss_kb_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_are_bounded_and_others_are_served() {
    const CONNECTIONS: usize = 10_000;
    let dir = TempDir::new("idle-connections");
    let log = dir.path().join("stderr.log");
    let up = start_upstream().await;
    let config = dir.path().join("llmtap.yaml");
    // A header timeout longer than the test: the connections stay until the client leaves.
    // (That the timeout closes silent connections is tested above.)
    std::fs::write(
        &config,
        format!(
            "upstreams:\n  - name: scripted\n    base_url: {}/v1\nheader_read_timeout_secs: 120\n",
            up.base
        ),
    )
    .unwrap();
    let (proc, base) =
        bin::start(&["--config", config.to_str().unwrap()], NO_TELEMETRY, &log).await;
    let pid = proc.0.id();
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let (rss_before, fds_before) = rss_kb_and_fds(pid);

    // Open them in batches, all within 60 s.
    let started = Instant::now();
    let mut conns = Vec::with_capacity(CONNECTIONS);
    while conns.len() < CONNECTIONS && started.elapsed() < Duration::from_secs(60) {
        // Below the listen backlog (1024), so a burst does not overflow the accept queue.
        let batch = (CONNECTIONS - conns.len()).min(200);
        let opened =
            futures_util::future::join_all((0..batch).map(|_| TcpStream::connect(addr))).await;
        conns.extend(opened.into_iter().filter_map(Result::ok));
    }
    assert_eq!(conns.len(), CONNECTIONS, "opened {} in 60 s", conns.len());
    let opened_in = started.elapsed();
    // llmtap holds them: nearly all accepted (a burst can overflow the kernel's accept
    // queue, whose connections then wait in the kernel, not in llmtap).
    let mut fds_open = 0;
    for _ in 0..200 {
        fds_open = rss_kb_and_fds(pid).1;
        if fds_open >= fds_before + CONNECTIONS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held = fds_open.saturating_sub(fds_before);
    assert!(
        held >= CONNECTIONS * 9 / 10,
        "{fds_before} -> {fds_open} fds"
    );
    // Others are served while they sit there.
    let c = client();
    let t = Instant::now();
    let r = c.get(format!("{base}/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Bounded memory per idle connection: under 10 KB each.
    let rss_open = rss_kb_and_fds(pid).0;
    let per_conn = (rss_open.saturating_sub(rss_before) * 1024) / held as u64;
    assert!(
        per_conn < 10 * 1024,
        "{per_conn} bytes per idle connection ({rss_before} -> {rss_open} KB)"
    );

    // When the client goes, so do they.
    drop(conns);
    let mut fds_after = fds_open;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fds_after = rss_kb_and_fds(pid).1;
        if fds_after <= fds_before + 10 {
            break;
        }
    }
    assert!(
        fds_after <= fds_before + 10,
        "{fds_before} -> {fds_open} -> {fds_after} fds"
    );
    let r = c.get(format!("{base}/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The runtime's task count is exported (bench/soak watches it for growth).
    let tasks = scrape(&base)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("llmtap_runtime_tasks "))
        .and_then(|v| v.trim().parse::<i64>().ok());
    assert!(tasks.is_some_and(|n| (1..1000).contains(&n)), "{tasks:?}");
    eprintln!(
        "10,000 idle connections opened in {opened_in:?}: RSS {rss_before} -> {rss_open} KB ({per_conn} B each), fds {fds_before} -> {fds_open} -> {fds_after}"
    );
}

#[tokio::test]
async fn an_http2_rapid_reset_flood_is_bounded_and_others_are_served() {
    const STREAMS: usize = 5_000;
    let (up, proxy) = proxy_with_header_timeout().await;
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let started = Instant::now();
    let mut reset = 0;
    for _ in 0..STREAMS {
        let req = http::Request::post(format!("http://{}/v1/chat/completions", proxy.addr))
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        match h2.send_request(req, false) {
            Ok((_response, mut stream)) => {
                stream.send_reset(h2::Reason::CANCEL);
                reset += 1;
            }
            Err(_) => break,
        }
        // `ready` takes the handle; on a failure (GOAWAY) a clone is kept to drop below.
        h2 = match tokio::time::timeout(Duration::from_secs(5), h2.clone().ready()).await {
            Ok(Ok(h)) => h,
            _ => break,
        };
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    // Either every reset was absorbed or the server sent GOAWAY; the process is fine and
    // serves others, and no half-sent request reached the upstream.
    others_are_served(&proxy).await;
    assert!(reset > 0);
    drop(h2);
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(
        up.mock.requests().iter().all(|r| r.path == "/v1/models"),
        "{} requests reached the upstream",
        up.mock.requests().len()
    );
    eprintln!(
        "rapid reset: {reset} streams reset in {:?}",
        started.elapsed()
    );
}

/// An upstream that streams SSE content chunks of 64 KB for as long as it is read (at
/// most 256 MB), counting the bytes the socket has taken ([`RawUpstream::sent`]).
async fn start_endless_stream_upstream() -> RawUpstream {
    let text = "x".repeat(64 * 1024);
    let event = bytes::Bytes::from(format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n"
    ));
    RawUpstream::start(std::sync::Arc::new(move |_, _| Reply {
        head: sse_head(),
        parts: vec![Part::Repeat(event.clone(), 4096)],
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reading_slowly_holds_the_upstream_back() {
    let up = start_endless_stream_upstream().await;
    let proxy = untraced_proxy(&up.base).await;
    let body = serde_json::json!({"model": "m", "stream": true,
        "messages": [{"role": "user", "content": "Hi"}]});
    let resp = post_chat(&proxy.url, body, &[]).await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    // Take 4 MB, then stop reading.
    let mut received = 0u64;
    let started = Instant::now();
    while received < 4 * 1024 * 1024 && started.elapsed() < Duration::from_secs(30) {
        use futures_util::StreamExt;
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(b))) => received += b.len() as u64,
            other => panic!("the stream ended early: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent_paused = up.sent();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent_later = up.sent();
    // While the client does not read, the upstream is not read either: what it has sent
    // stays what the sockets' buffers hold beyond the client's 4 MB, far from its 256 MB.
    assert_eq!(sent_paused, sent_later, "the upstream kept being read");
    let ahead = sent_paused.saturating_sub(received);
    assert!(
        ahead < 64 * 1024 * 1024,
        "{} MB read from the upstream for {} MB taken by the client",
        sent_paused >> 20,
        received >> 20
    );
    eprintln!(
        "slow reader: client took {} MB, upstream had sent {} MB",
        received >> 20,
        sent_paused >> 20
    );
    drop(stream);
}

/// The upstream connection's read buffer is 4 KB (`READ_BUF_SIZE` in
/// src/upstream/client.rs): a response head of 3 KB is relayed, one of 6 KB is a 502 that
/// says why, as nginx's default `proxy_buffer_size` answers it.
#[tokio::test]
async fn an_upstream_response_head_must_fit_in_four_kilobytes() {
    let up = RawUpstream::start(std::sync::Arc::new(|_, body: &[u8]| {
        let big = String::from_utf8_lossy(body).contains("\"big\"");
        let body = r#"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;
        let padding = "p".repeat(if big { 6000 } else { 3000 });
        Reply {
            head: format!(
                "{}\r\ncontent-length: {}\r\nx-padding: {padding}",
                common::raw::json_head(),
                body.len()
            ),
            parts: vec![Part::Data(body.as_bytes().to_vec())],
        }
    }))
    .await;
    let proxy = untraced_proxy(&up.base).await;
    let chat = |model: &str| serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]});
    let (status, text) = chat_text(&proxy.url, chat("small"), &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("chat.completion"), "{text}");
    let (status, text) = chat_text(&proxy.url, chat("big"), &[]).await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("upstream_unreachable"), "{text}");
    assert!(text.contains("message head is too large"), "{text}");
    proxy.stop().await;
}
