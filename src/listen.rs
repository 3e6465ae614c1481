//! Accepting connections: HTTP/1.1 and HTTP/2 on one port, with the limits a gateway exposed
//! to hostile clients needs, and graceful shutdown.
//!
//! `axum::serve` gives no access to hyper's connection settings, so connections are served
//! here with hyper-util directly:
//! - A client has `header_read_timeout` to send a request's head: from the moment it
//!   connects (a connection that sends nothing is closed), and again between requests on a
//!   kept-alive connection. Slow-header clients (slowloris) are cut at that point.
//! - Heads over hyper's limits (100 headers, about 400 KB) are a 431; two different
//!   `Content-Length`s are a 400; with both `Content-Length` and `Transfer-Encoding` the body
//!   is read as chunked and the connection closed after the response (RFC 9112 §6.1).
//! - HTTP/2 keeps h2's defenses against rapid reset (a bounded number of streams reset
//!   before they are accepted).
//! - Accepted sockets get `TCP_NODELAY`: streams are many small writes, and Nagle's
//!   algorithm with the client's delayed ACK would hold each chunk back by up to 40 ms.
//! - Each accepted connection is handed to one of the [`ServingThreads`] and lives there,
//!   with every task it spawns (see that type for why).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Threads that serve connections, each running a single-threaded tokio runtime. A
/// connection, its request handlers, hyper's tasks and the upstream client's connection
/// tasks (each thread has its own upstream pool, `Upstream::client`) all stay on one thread,
/// as in nginx's worker model. On the multi-threaded runtime a request's tasks woke each
/// other across threads several times per request; against it, on 2 cores at 32
/// connections: 17-26% less CPU per non-streamed request and about 10% less per stream
/// (BENCHMARKS.md, second round). A new connection goes to the thread serving the fewest.
pub struct ServingThreads {
    threads: Vec<ServingThread>,
}

struct ServingThread {
    handle: tokio::runtime::Handle,
    connections: Arc<AtomicUsize>,
    /// Dropping it ends the thread's runtime (its remaining tasks are cancelled).
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ServingThreads {
    /// Starts `n` threads (at least one).
    pub fn start(n: usize) -> std::io::Result<ServingThreads> {
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("llmtap-serve-{i}"))
                .spawn(move || {
                    rt.block_on(async {
                        let _ = stopped.await;
                    })
                })?;
            threads.push(ServingThread {
                handle,
                connections: Arc::new(AtomicUsize::new(0)),
                _stop: stop,
            });
        }
        Ok(ServingThreads { threads })
    }

    /// The number of threads for `configured` (`None`: the CPUs available).
    pub fn count(configured: Option<usize>) -> usize {
        configured
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
    }

    /// Runs `serve_connection(tcp)` on the least busy thread, the socket registered with that
    /// thread's reactor so its readiness wakes that thread only.
    fn spawn<F, Fut>(&self, tcp: tokio::net::TcpStream, serve_connection: F)
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(t) = self
            .threads
            .iter()
            .min_by_key(|t| t.connections.load(Ordering::Relaxed))
        else {
            return;
        };
        // Deregistered here, registered again on the serving thread.
        let Ok(std_tcp) = tcp.into_std() else {
            return;
        };
        let connections = t.connections.clone();
        connections.fetch_add(1, Ordering::Relaxed);
        t.handle.spawn(async move {
            struct Done(Arc<AtomicUsize>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::Relaxed);
                }
            }
            let _done = Done(connections);
            if let Ok(tcp) = tokio::net::TcpStream::from_std(std_tcp) {
                serve_connection(tcp).await;
            }
        });
    }
}

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Also bounds the TLS handshake.
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` turns true, then stops accepting, lets every
/// connection finish its in-flight requests, and returns when all are closed.
/// With `tls`, every connection is a TLS one (handshake within the header timeout).
pub fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    threads: Arc<ServingThreads>,
) -> impl Future<Output = ()> + Send + 'static {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    // A connection known to speak HTTP/1 skips the version sniff: the auto builder reads the
    // first bytes itself and hands them back through a wrapper, which splits the first
    // request across two reads and makes hyper grow its 8 KB read buffer to 16 KB, for the
    // connection's life (massif: the largest allocation per open stream; BENCHMARKS.md,
    // issue 27). Upgrades are never relayed (`Upgrade` is hop-by-hop), so neither builder
    // serves them.
    let http1_only = builder.clone().http1_only();
    async move {
        let graceful = GracefulShutdown::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|v| *v) => break,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone());
            let (builder, http1_only) = (builder.clone(), http1_only.clone());
            let watcher = graceful.watcher();
            let mut stop = stop.clone();
            let tls = tls.clone();
            threads.spawn(tcp, move |tcp| async move {
                // hyper's header timer starts once it knows the protocol, which needs the
                // first bytes: a connection that sends none is closed here.
                let mut first = [0u8; H2_PREFACE.len()];
                let peeked = tokio::select! {
                    r = tokio::time::timeout(limits.header_read_timeout, tcp.peek(&mut first)) => {
                        match r {
                            Ok(Ok(n)) if n > 0 => n,
                            _ => return,
                        }
                    }
                    _ = stop.wait_for(|v| *v) => return,
                };
                match tls {
                    None => {
                        // Bytes that cannot begin HTTP/2's preface are HTTP/1; anything else
                        // (h2c, or too few bytes to tell) goes through the auto builder.
                        let b = if surely_http1(&first[..peeked]) {
                            &http1_only
                        } else {
                            &builder
                        };
                        let conn = b.serve_connection(TokioIo::new(tcp), service).into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                    Some(acceptor) => {
                        let handshake = acceptor.accept(tcp);
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(limits.header_read_timeout, handshake).await
                        else {
                            // A failed or stalled handshake: nothing to answer.
                            return;
                        };
                        // ALPN settled the protocol for `http/1.1`; `h2` or none: sniff.
                        let b = match stream.get_ref().1.alpn_protocol() {
                            Some(b"http/1.1") => &http1_only,
                            _ => &builder,
                        };
                        let conn = b
                            .serve_connection(TokioIo::new(stream), service)
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
    }
}

/// The first bytes of every HTTP/2 connection without TLS (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain connection's first bytes cannot begin HTTP/2's preface (`PRI * ...`).
fn surely_http1(first: &[u8]) -> bool {
    !H2_PREFACE.starts_with(first)
}

/// Accept errors: a connection that failed before it was accepted is nothing to wait for;
/// anything else (out of file descriptors) is retried after a pause instead of spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_tell_http1_from_h2c() {
        assert!(surely_http1(b"POST /v1/chat/completions HTTP/1.1\r\n"));
        assert!(surely_http1(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"));
        assert!(surely_http1(b"PROPFIND / HTTP/1.1\r\n"));
        // Too few bytes to tell, or the preface itself: the auto builder decides.
        assert!(!surely_http1(b"P"));
        assert!(!surely_http1(b"PRI * HT"));
        assert!(!surely_http1(H2_PREFACE));
    }
}
