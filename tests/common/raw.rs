//! The one raw scripted upstream: an HTTP/1.1 server on 127.0.0.1 written on the socket, for
//! the answers the scripted upstream (`llmtap::mock`) is too well-behaved to give: bodies
//! that stall, hold, never end or run to hundreds of MB, hostile error codes. Every request
//! is answered by a [`Script`] from its path and body; the head goes out as written, then
//! the body's [`Part`]s, and the connection closes (no length: the close ends the body).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Part of a scripted response body.
pub enum Part {
    Data(Vec<u8>),
    /// The same bytes `n` times, written one copy at a time (a long stream without holding
    /// it all in memory).
    Repeat(bytes::Bytes, usize),
    /// Waits this long (keep-alive comments between).
    Pause(Duration),
    /// Waits until the test says so (bounded: 60 s).
    Hold(Arc<Notify>),
}

/// A response: status line and headers (no blank line), then the body's parts.
pub struct Reply {
    pub head: String,
    pub parts: Vec<Part>,
}

/// How the upstream answers: `script(path, body)`.
pub type Script = Arc<dyn Fn(&str, &[u8]) -> Reply + Send + Sync>;

/// `200 OK` with `content-type: text/event-stream`, as a [`Reply::head`].
pub fn sse_head() -> String {
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream".into()
}

/// `200 OK` with `content-type: application/json`, as a [`Reply::head`].
pub fn json_head() -> String {
    "HTTP/1.1 200 OK\r\ncontent-type: application/json".into()
}

/// A running raw upstream; it stops accepting when dropped.
pub struct RawUpstream {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    sent: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    /// Serves `script` on a free 127.0.0.1 port.
    pub async fn start(script: Script) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(answer(tcp, script.clone(), counter.clone()));
            }
        });
        RawUpstream {
            base: format!("http://{addr}"),
            sent,
            accept,
        }
    }

    /// Body bytes written to the sockets so far, over all connections: a write completes
    /// only when the socket takes it, so this stops growing while nobody reads.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn answer(mut tcp: TcpStream, script: Script, sent: Arc<AtomicU64>) {
    let Some((path, body)) = read_request(&mut tcp).await else {
        return;
    };
    let reply = script(&path, &body);
    let head = format!("{}\r\nconnection: close\r\n\r\n", reply.head);
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for part in reply.parts {
        let written = match part {
            Part::Data(d) => write_counted(&mut tcp, &d, &sent).await,
            Part::Repeat(d, n) => {
                let mut ok = true;
                for _ in 0..n {
                    ok = write_counted(&mut tcp, &d, &sent).await;
                    if !ok {
                        break;
                    }
                }
                ok
            }
            Part::Pause(d) => {
                tokio::time::sleep(d).await;
                true
            }
            Part::Hold(n) => {
                let _ = tokio::time::timeout(Duration::from_secs(60), n.notified()).await;
                true
            }
        };
        if !written {
            return;
        }
    }
    let _ = tcp.shutdown().await;
}

/// Writes `data`, counting it in `sent` once the socket has taken it; false when the peer
/// is gone.
async fn write_counted(tcp: &mut TcpStream, data: &[u8], sent: &AtomicU64) -> bool {
    let ok = tcp.write_all(data).await.is_ok();
    if ok {
        sent.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
    ok
}

/// The request's path and body (by `content-length`; at most 64 MiB).
async fn read_request(tcp: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0)
        .min(64 << 20);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, body))
}
