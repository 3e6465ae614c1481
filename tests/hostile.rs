//! Hostile clients (issue 19 §3): slow heads (slowloris), connections that never send or
//! go idle, oversized heads, request-smuggling shapes, many idle connections, and an HTTP/2
//! rapid-reset flood. Each gets the right status or a closed connection; other clients are
//! served meanwhile. Everything binds 127.0.0.1 and every loop is bounded in count and time.

mod common;

use std::time::{Duration, Instant};

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
