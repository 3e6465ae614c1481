//! The HTTP client of the upstream leg: hyper-util's pooled (legacy) client, without
//! reqwest's layers on top (its redirect layer re-parsed the URL of every request; sending
//! cost 43k of a non-streamed request's 227k instructions through reqwest, 14k without it:
//! BENCHMARKS.md, "Issue 27: the upstream client").
//!
//! What reqwest did and this client keeps: a connect timeout over TCP, proxy and TLS
//! together; `TCP_NODELAY` and reqwest's TCP keep-alive settings; a pool of at most 256 idle
//! connections per host, closed after 90 s idle; TLS through rustls with the platform's
//! verifier (the system's roots, plus the `ca_file` roots) and HTTP/2 where the upstream
//! offers it by ALPN; `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` from the
//! environment (hyper-util's matcher, the one reqwest used): a CONNECT tunnel to an `https`
//! upstream, absolute-form requests to an `http` one. No redirect is ever followed: this
//! client has no redirect layer. Unlike reqwest it adds no `Accept: */*` to requests that
//! have none: the upstream gets the client's headers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, PROXY_AUTHORIZATION};
use http::Uri;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Full, Limited};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle pooled connections are closed after this long (reqwest's default, kept).
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle pooled connections kept per host.
const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// TCP keep-alive: reqwest's defaults (first probe and interval 15 s, 3 probes), kept so a
/// dead upstream connection under a long stream is noticed the same way.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// Unacknowledged data is given up on after this long (reqwest's default on Linux).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// The HTTP/1.1 read buffer of an upstream connection: always this size, never hyper's
/// adaptive buffer (8 KB at first, growing to ~400 KB). An open stream holds one for as long
/// as it lasts, and an SSE event is far smaller: 4 KB saves ≈4 KB per open stream against
/// 8 KB, measured (BENCHMARKS.md, "Issue 27: the upstream client"). The response head
/// (status line and headers) must fit in it: a larger one fails the request (502), as
/// nginx's default `proxy_buffer_size` (one 4 KB page) refuses it too. Providers send
/// 1-2 KB.
pub const READ_BUF_SIZE: usize = 4096;

/// The TLS settings every upstream client of one configuration shares: built once, since
/// the platform verifier reads the system's roots when it is made.
pub struct TlsConfigs {
    /// To upstreams: HTTP/2 or HTTP/1.1 by ALPN.
    upstream: Arc<rustls::ClientConfig>,
    /// To an `https` proxy itself: HTTP/1.1 only (CONNECT and absolute-form requests).
    proxy: Arc<rustls::ClientConfig>,
}

impl TlsConfigs {
    /// rustls with the process's crypto provider (ring, installed by
    /// `install_crypto_provider`) and the platform verifier: the system's roots plus
    /// `extra_roots`, as reqwest 0.13 with `rustls-no-provider` set it up.
    pub fn new(extra_roots: &[CertificateDer<'static>]) -> Result<TlsConfigs, String> {
        crate::vocab::crypto::install_crypto_provider();
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let verifier = if extra_roots.is_empty() {
            rustls_platform_verifier::Verifier::new(provider.clone())
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(
                extra_roots.iter().cloned(),
                provider.clone(),
            )
        }
        .map_err(|e| format!("TLS roots: {e}"))?;
        let verifier = Arc::new(verifier);
        let config = |alpn: &[&[u8]]| -> Result<Arc<rustls::ClientConfig>, String> {
            let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS versions: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(c))
        };
        Ok(TlsConfigs {
            upstream: config(&[b"h2", b"http/1.1"])?,
            proxy: config(&[b"http/1.1"])?,
        })
    }
}

/// How one upstream is reached: decided once, from its base URL and the environment's
/// proxy variables, since every request of an upstream goes to the same scheme and host.
#[derive(Clone)]
enum Route {
    Direct,
    /// An `http` upstream through an HTTP proxy: requests in absolute form to the proxy.
    Forward {
        proxy: Uri,
    },
    /// An `https` upstream through a proxy: a CONNECT tunnel, TLS to the upstream inside.
    Tunnel {
        proxy: Uri,
        auth: Option<HeaderValue>,
    },
}

/// Everything a serving thread needs to build its own client for one upstream.
pub struct Settings {
    connect_timeout: Duration,
    route: Route,
    /// `Proxy-Authorization` for each request to a forward proxy (from the proxy URL's
    /// user and password).
    forward_auth: Option<HeaderValue>,
    tls: Option<Arc<TlsConfigs>>,
}

impl Settings {
    /// The settings for an upstream at `base`. `tls` is asked for only when a connection
    /// needs TLS (an `https` upstream or proxy), so a set of plain-HTTP upstreams never
    /// loads the system's roots.
    pub fn new(
        base: &url::Url,
        connect_timeout: Duration,
        tls: impl FnOnce() -> Result<Arc<TlsConfigs>, String>,
    ) -> Result<Settings, String> {
        let uri: Uri = base.as_str().parse().map_err(|e| format!("{base}: {e}"))?;
        let https = base.scheme() == "https";
        let (route, forward_auth) = match Matcher::from_env().intercept(&uri) {
            None => (Route::Direct, None),
            Some(i) if https => (
                Route::Tunnel {
                    proxy: i.uri().clone(),
                    auth: i.basic_auth().cloned(),
                },
                None,
            ),
            Some(i) => (
                Route::Forward {
                    proxy: i.uri().clone(),
                },
                i.basic_auth().cloned(),
            ),
        };
        let proxy_https = match &route {
            Route::Direct => false,
            Route::Forward { proxy } | Route::Tunnel { proxy, .. } => {
                proxy.scheme() == Some(&http::uri::Scheme::HTTPS)
            }
        };
        let tls = match https || proxy_https {
            true => Some(tls()?),
            false => None,
        };
        Ok(Settings {
            connect_timeout,
            route,
            forward_auth,
            tls,
        })
    }
}

/// One serving thread's client for one upstream (a pool of connections driven by tasks on
/// that thread).
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Client<Connector, RequestBody>,
    forward_auth: Option<HeaderValue>,
}

impl UpstreamClient {
    pub fn new(settings: &Settings) -> UpstreamClient {
        let mut http = HttpConnector::new();
        // The URI's scheme is the TLS layer's business.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_keepalive(Some(TCP_KEEPALIVE));
        http.set_keepalive_interval(Some(TCP_KEEPALIVE));
        http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
        http.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
        let proxy = match &settings.route {
            Route::Forward { proxy } => Some(proxy.clone()),
            Route::Direct | Route::Tunnel { .. } => None,
        };
        // TLS settings are there exactly when some connection of this route needs TLS.
        let route = match (&settings.route, &settings.tls) {
            (_, None) => Connect::Plain { http, proxy },
            (Route::Tunnel { proxy, auth }, Some(tls)) => {
                let to_proxy = HttpsConnector::from((http, tls.proxy.clone()));
                let mut tunnel = Tunnel::new(proxy.clone(), to_proxy);
                if let Some(auth) = auth {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Connect::Tunnel(HttpsConnector::from((tunnel, tls.upstream.clone())))
            }
            (Route::Direct, Some(tls)) => Connect::Tls {
                https: HttpsConnector::from((http, tls.upstream.clone())),
                proxy,
            },
            (Route::Forward { .. }, Some(tls)) => Connect::Tls {
                https: HttpsConnector::from((http, tls.proxy.clone())),
                proxy,
            },
        };
        let connector = Connector {
            route,
            timeout: settings.connect_timeout,
        };
        let inner = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .http1_read_buf_exact_size(READ_BUF_SIZE)
            .build(connector);
        UpstreamClient {
            inner,
            forward_auth: settings.forward_auth.clone(),
        }
    }

    /// Sends `req` (an absolute URI under the upstream's base). The response arrives with
    /// its headers; its body streams from the connection.
    pub fn request(&self, mut req: http::Request<RequestBody>) -> ResponseFuture {
        if let Some(auth) = &self.forward_auth {
            req.headers_mut()
                .entry(PROXY_AUTHORIZATION)
                .or_insert_with(|| auth.clone());
        }
        self.inner.request(req)
    }
}

/// The connect timeout ran out (TCP, proxy and TLS together). Found in a send error's
/// causes, it makes the failure a timeout rather than an unreachable upstream.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {0:?}")]
pub struct ConnectTimeout(pub Duration);

/// The connectors of a route. `proxy`: the forward proxy every connection goes to instead
/// of the upstream.
#[derive(Clone)]
enum Connect {
    Plain {
        http: HttpConnector,
        proxy: Option<Uri>,
    },
    Tls {
        https: HttpsConnector<HttpConnector>,
        proxy: Option<Uri>,
    },
    Tunnel(HttpsConnector<Tunnel<HttpsConnector<HttpConnector>>>),
}

/// Opens upstream connections along the upstream's route, within the connect timeout.
#[derive(Clone)]
pub struct Connector {
    route: Connect,
    timeout: Duration,
}

type Connecting = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Every inner connector is always ready (HttpConnector, the TLS and tunnel layers
        // over it).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Connecting {
        let timeout = self.timeout;
        let connecting: Connecting = match &mut self.route {
            Connect::Plain { http, proxy } => {
                let proxied = proxy.is_some();
                let f = http.call(proxy.clone().unwrap_or(dst));
                Box::pin(async move { Ok(Conn::new(Io::Plain(f.await?), proxied)) })
            }
            Connect::Tls { https, proxy } => {
                let proxied = proxy.is_some();
                let f = https.call(proxy.clone().unwrap_or(dst));
                Box::pin(async move { Ok(Conn::new(Io::Tls(Box::new(f.await?)), proxied)) })
            }
            Connect::Tunnel(c) => {
                let f = c.call(dst);
                Box::pin(async move { Ok(Conn::new(Io::Tunnel(Box::new(f.await?)), false)) })
            }
        };
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(r) => r,
                Err(_) => Err(Box::new(ConnectTimeout(timeout)) as BoxError),
            }
        })
    }
}

type Tcp = TokioIo<TcpStream>;

/// An upstream connection: TCP with or without TLS, to the upstream or to a forward proxy,
/// or TLS through a CONNECT tunnel.
pub struct Conn {
    io: Io,
    /// To a forward proxy: requests go in absolute form (hyper-util's client reads this).
    proxied: bool,
}

/// The TLS streams are boxed: a rustls connection is over a kilobyte (two nested, twice), and
/// every plain connection would carry that much unused in its hyper connection state.
enum Io {
    Plain(Tcp),
    Tls(Box<MaybeHttpsStream<Tcp>>),
    Tunnel(Box<MaybeHttpsStream<MaybeHttpsStream<Tcp>>>),
}

impl Conn {
    fn new(io: Io, proxied: bool) -> Conn {
        Conn { io, proxied }
    }
}

/// Runs `$e` with `$io` bound to the stream inside whichever variant `$self` is.
macro_rules! each {
    ($self:expr, $io:ident => $e:expr) => {
        match $self {
            Io::Plain($io) => $e,
            Io::Tls($io) => $e,
            Io::Tunnel($io) => $e,
        }
    };
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        // HTTP/2 when the upstream's TLS negotiated it (never over a forward proxy, whose
        // TLS offers HTTP/1.1 only).
        each!(&self.io, io => io.connected()).proxy(self.proxied)
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        each!(&mut self.get_mut().io, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        each!(&mut self.get_mut().io, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each!(&mut self.get_mut().io, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each!(&mut self.get_mut().io, io => Pin::new(io).poll_shutdown(cx))
    }

    fn is_write_vectored(&self) -> bool {
        each!(&self.io, io => io.is_write_vectored())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        each!(&mut self.get_mut().io, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }
}

/// A request body sent upstream: whole (inference calls, read and parsed first), or the
/// client's own body streamed through within the body limit. Either way its size is known
/// to hyper when the client declared one, so `Content-Length` is sent rather than chunks.
pub enum RequestBody {
    Whole(Full<Bytes>),
    Streamed(Limited<axum::body::Body>),
}

impl RequestBody {
    pub fn whole(bytes: Bytes) -> RequestBody {
        RequestBody::Whole(Full::new(bytes))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Whole(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(|never| match never {}))),
            RequestBody::Streamed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Whole(b) => b.is_end_stream(),
            RequestBody::Streamed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Whole(b) => b.size_hint(),
            RequestBody::Streamed(b) => b.size_hint(),
        }
    }
}
