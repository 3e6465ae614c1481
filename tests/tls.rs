//! TLS both ways (issue 19 §4): HTTPS upstreams against a real rustls server with a CA made
//! in the test (HTTP/2 where the server offers it), upstreams reached through an egress proxy
//! from the environment, and llmtap's own inbound TLS with a SIGHUP reload that drops no
//! connection.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;

fn hi(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]})
}

// ---------------------------------------------------------------------------------------
// HTTPS upstreams against a real TLS server
// ---------------------------------------------------------------------------------------

/// A CA made in the test, and a server certificate for 127.0.0.1 and localhost signed by it.
struct TestPki {
    ca_pem: String,
    server_cert: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    server_key: Vec<u8>,
}

fn test_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    (params.self_signed(&key).unwrap(), key)
}

fn test_pki() -> TestPki {
    let (ca, ca_key) = test_ca("llmtap test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    TestPki {
        ca_pem: ca.pem(),
        server_cert: cert.der().clone(),
        server_key: key.serialize_der(),
    }
}

/// Accepts TCP connections and completes the TLS handshake (bounded); failed handshakes
/// (a client that does not trust us) are skipped. Records each connection's ALPN protocol.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    alpn: Negotiated,
}

/// The ALPN protocol each accepted connection negotiated (`None`: none).
type Negotiated = Arc<std::sync::Mutex<Vec<Option<Vec<u8>>>>>;

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.tls.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                let protocol = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                self.alpn.lock().unwrap().push(protocol);
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The scripted upstream behind TLS with `pki`'s server certificate; its `https://` base.
async fn start_tls_upstream(pki: &TestPki) -> (llmtap::mock::MockUpstream, String) {
    let (mock, base, _) = start_tls_upstream_offering(pki, &[]).await;
    (mock, base)
}

/// [`start_tls_upstream`] offering `alpn` (serving HTTP/2 and HTTP/1.1 alike), and what each
/// connection negotiated.
async fn start_tls_upstream_offering(
    pki: &TestPki,
    alpn: &[&[u8]],
) -> (llmtap::mock::MockUpstream, String, Negotiated) {
    use tokio_rustls::rustls;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.server_cert.clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(pki.server_key.clone().into()),
        )
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let negotiated = Negotiated::default();
    let listener = TlsListener {
        tcp,
        tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        alpn: negotiated.clone(),
    };
    let mock = llmtap::mock::MockUpstream::new(llmtap::mock::MockConfig::default());
    let router = mock.router();
    tokio::spawn(async move {
        // axum's server speaks HTTP/2 to a client that starts with its preface.
        let _ = axum::serve(listener, router).await;
    });
    (mock, format!("https://{addr}"), negotiated)
}

async fn proxy_with_ca(upstream: &str, ca_file: std::path::PathBuf) -> Proxy {
    start_proxy(
        upstream,
        ProxyOpts {
            env: no_telemetry(),
            tweak: Some(Box::new(move |c| c.ca_file = Some(ca_file))),
            ..Default::default()
        },
    )
    .await
}

/// A plain and a streamed chat call through the proxy at `url` both succeed whole.
async fn a_plain_and_a_streamed_call_go_through(url: &str) {
    let (status, text) = chat_text(url, hi("gpt-4o-mini"), &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("chat.completion"));
    let stream = serde_json::json!({"model": "gpt-4o-mini", "stream": true,
        "messages": [{"role": "user", "content": "Hi"}]});
    let (status, text) = chat_text(url, stream, &[]).await;
    assert_eq!(status, 200);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

#[tokio::test]
async fn an_https_upstream_signed_by_the_ca_file_works_and_a_wrong_ca_is_a_clear_502() {
    let dir = TempDir::new("tls-upstream");
    let pki = test_pki();
    let (mock, base) = start_tls_upstream(&pki).await;
    let good_ca = dir.path().join("ca.pem");
    std::fs::write(&good_ca, &pki.ca_pem).unwrap();

    // Trusted through --ca-file: plain and streamed calls go through.
    let proxy = proxy_with_ca(&base, good_ca).await;
    a_plain_and_a_streamed_call_go_through(&proxy.url).await;
    assert_eq!(mock.requests().len(), 2);
    proxy.stop().await;

    // A CA that did not sign the server's certificate: 502 saying why.
    let (other_ca, _) = test_ca("some other CA");
    let wrong_ca = dir.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, other_ca.pem()).unwrap();
    let proxy = proxy_with_ca(&base, wrong_ca).await;
    let r = post_chat(&proxy.url, hi("gpt-4o-mini"), &[]).await;
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unreachable", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("invalid peer certificate: UnknownIssuer"),
        "the cause is not clear: {message}"
    );
    assert_eq!(
        mock.requests().len(),
        2,
        "the upstream saw the refused call"
    );
}

#[tokio::test]
async fn an_https_upstream_that_offers_http2_by_alpn_is_spoken_to_in_http2() {
    let dir = TempDir::new("tls-h2");
    let pki = test_pki();
    let (mock, base, negotiated) = start_tls_upstream_offering(&pki, &[b"h2", b"http/1.1"]).await;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let proxy = proxy_with_ca(&base, ca).await;
    a_plain_and_a_streamed_call_go_through(&proxy.url).await;
    assert_eq!(mock.requests().len(), 2);
    // Every connection llmtap opened (one per serving thread that took a request) is HTTP/2.
    let negotiated = negotiated.lock().unwrap().clone();
    assert!(
        !negotiated.is_empty() && negotiated.iter().all(|p| p.as_deref() == Some(b"h2")),
        "llmtap did not negotiate HTTP/2: {negotiated:?}"
    );
    proxy.stop().await;
}

// ---------------------------------------------------------------------------------------
// Egress proxies from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY)
// ---------------------------------------------------------------------------------------

/// A minimal egress proxy: CONNECT tunnels and absolute-form requests, each connection
/// piped to where it asks to go. Records the request head's first line and its
/// `Proxy-Authorization` of each connection.
async fn start_egress_proxy() -> (String, Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                // The head, bounded; whatever follows it is the body or the tunnel's bytes.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match client.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let first = text.lines().next().unwrap_or_default().to_string();
                let auth = text
                    .lines()
                    .find_map(|l| l.strip_prefix("proxy-authorization: "))
                    .or_else(|| {
                        text.lines()
                            .find_map(|l| l.strip_prefix("Proxy-Authorization: "))
                    })
                    .map(str::to_string);
                log.lock().unwrap().push((first.clone(), auth));
                let mut parts = first.split(' ');
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let to = match method {
                    "CONNECT" => target.to_string(),
                    _ => target
                        .strip_prefix("http://")
                        .and_then(|rest| rest.split('/').next())
                        .unwrap_or_default()
                        .to_string(),
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&to).await else {
                    return;
                };
                if method == "CONNECT" {
                    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
                    if client.write_all(ok).await.is_err() {
                        return;
                    }
                } else if upstream.write_all(&head).await.is_err() {
                    // Absolute form as received: the scripted upstream's server reads it.
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (format!("http://user:secret@{addr}"), seen)
}

#[tokio::test]
async fn upstream_connections_go_through_the_environments_proxy_unless_no_proxy_says_not() {
    let dir = TempDir::new("egress-proxy");
    let log = dir.path().join("llmtap.log");
    // "user:secret", as a proxy's basic credentials.
    let basic = "Basic dXNlcjpzZWNyZXQ=".to_string();
    let (proxy_url, seen) = start_egress_proxy().await;
    let mut env = NO_TELEMETRY.to_vec();
    env.extend([("NO_PROXY", ""), ("HTTP_PROXY", proxy_url.as_str())]);

    // An http upstream through HTTP_PROXY: absolute-form requests to the proxy, with the
    // proxy's credentials.
    let up = start_upstream().await;
    let v1 = format!("{}/v1", up.base);
    let args = ["--upstream", v1.as_str()];
    let (llmtap, base) = bin::start(&args, &env, &log).await;
    let (status, text) = chat_text(&base, hi("gpt-4o-mini"), &[]).await;
    assert_eq!(status, 200, "{text}");
    let host = up.base.trim_start_matches("http://");
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![(
            format!("POST http://{host}/v1/chat/completions HTTP/1.1"),
            Some(basic.clone())
        )]
    );
    drop(llmtap);

    // NO_PROXY naming the upstream's host: straight there.
    seen.lock().unwrap().clear();
    let mut bypass = env.clone();
    bypass.retain(|(k, _)| *k != "NO_PROXY");
    bypass.push(("NO_PROXY", "127.0.0.1"));
    let (llmtap, base) = bin::start(&args, &bypass, &log).await;
    let (status, _) = chat_text(&base, hi("gpt-4o-mini"), &[]).await;
    assert_eq!(status, 200);
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    assert_eq!(up.mock.requests().len(), 2);
    drop(llmtap);

    // An https upstream through HTTPS_PROXY: a CONNECT tunnel with the proxy's credentials,
    // TLS to the upstream inside it (its CA from --ca-file).
    let pki = test_pki();
    let (mock, tls_base) = start_tls_upstream(&pki).await;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let mut tls_env = NO_TELEMETRY.to_vec();
    tls_env.extend([("NO_PROXY", ""), ("HTTPS_PROXY", proxy_url.as_str())]);
    let ca_arg = ca.to_string_lossy().into_owned();
    let tls_v1 = format!("{tls_base}/v1");
    let args = ["--upstream", tls_v1.as_str(), "--ca-file", ca_arg.as_str()];
    let (llmtap, base) = bin::start(&args, &tls_env, &log).await;
    let (status, text) = chat_text(&base, hi("gpt-4o-mini"), &[]).await;
    assert_eq!(status, 200, "{text}");
    let tls_host = tls_base.trim_start_matches("https://");
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![(format!("CONNECT {tls_host} HTTP/1.1"), Some(basic))]
    );
    assert_eq!(mock.requests().len(), 1);
    drop(llmtap);
}

// ---------------------------------------------------------------------------------------
// Inbound TLS
// ---------------------------------------------------------------------------------------

/// Writes `pki`'s server certificate and key as the PEM files llmtap serves.
fn write_server_files(pki: &TestPki, cert: &Path, key: &Path) {
    let pem = |label: &str, der: &[u8]| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    std::fs::write(cert, pem("CERTIFICATE", &pki.server_cert)).unwrap();
    std::fs::write(key, pem("PRIVATE KEY", &pki.server_key)).unwrap();
}

/// A client that trusts only `ca_pem`, with a fresh connection pool.
fn client_trusting(ca_pem: &str) -> reqwest::Client {
    llmtap::vocab::crypto::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn sighup(proc: &bin::Proc) {
    proc.signal(libc::SIGHUP);
}

#[tokio::test]
async fn inbound_tls_serves_http2_and_reloads_on_sighup_without_dropping_a_stream() {
    let dir = TempDir::new("inbound-tls");
    let (cert, key, log) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("stderr.log"),
    );
    let (old, new) = (test_pki(), test_pki());
    write_server_files(&old, &cert, &key);
    let up = start_upstream().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let upstream = format!("{}/v1", up.base);
    let args = [
        "--listen",
        listen.as_str(),
        "--upstream",
        upstream.as_str(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let proc =
        bin::Proc::spawn(&mut bin::command(&args, NO_TELEMETRY, &log)).expect("llmtap starts");
    let base = format!("https://{listen}");
    let trusts_old = client_trusting(&old.ca_pem);
    let mut healthy = false;
    for _ in 0..200 {
        if let Ok(r) = trusts_old.get(format!("{base}/healthz")).send().await {
            healthy = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        healthy,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // HTTPS, HTTP/2 by ALPN, through to the upstream.
    let r = trusts_old
        .post(format!("{base}/v1/chat/completions"))
        .json(&hi("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    // Plain HTTP on the TLS port is not served.
    let plain = client()
        .get(format!("http://{listen}/healthz"))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));

    // A stream of 10 chunks 200 ms apart, running across the reload.
    let stream = trusts_old
        .post(format!("{base}/v1/chat/completions"))
        .header("x-mock-chunks", "10")
        .header("x-mock-chunk-delay-ms", "200")
        .json(&serde_json::json!({"model": "gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    write_server_files(&new, &cert, &key);
    sighup(&proc);
    eventually("the reload", Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("TLS certificate reloaded")
    })
    .await;
    let text = stream.text().await.unwrap();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the stream was cut: {text}"
    );

    // New handshakes get the new certificate: its CA is trusted, the old one no longer is.
    let r = client_trusting(&new.ca_pem)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let err = client_trusting(&old.ca_pem)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    // A reload from a broken file keeps the certificate in use, and says why.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    sighup(&proc);
    eventually("the failed reload", Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("TLS certificate not reloaded")
    })
    .await;
    let r = client_trusting(&new.ca_pem)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_tls_cert_without_its_key_or_a_key_that_does_not_match_is_refused_at_start() {
    let dir = TempDir::new("tls-config");
    let (a, b) = (test_pki(), test_pki());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    write_server_files(&a, &cert, &key);
    let other_key = dir.path().join("other-key.pem");
    write_server_files(&b, &dir.path().join("other-cert.pem"), &other_key);
    let run = |args: &[&str]| {
        let log = dir.path().join("stderr.log");
        let out = bin::command(args, &[], &log).status().unwrap();
        (
            out.code(),
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    };
    let (code, err) = run(&["--tls-cert", cert.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--tls-key"), "{err}");
    let (code, err) = run(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        other_key.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls key") && err.lines().count() == 1, "{err}");
}

/// OTLP over gRPC with TLS: an `https` endpoint is reached through TLS, trusting the CA in
/// `OTEL_EXPORTER_OTLP_CERTIFICATE`; a collector whose certificate that CA did not sign gets
/// nothing (the export fails, is counted, and no request notices).
#[tokio::test]
async fn otlp_grpc_over_tls_trusts_the_certificate_variable() {
    let (ca, ca_key) = test_ca("llmtap test collector CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let rx = OtlpReceiver::start_with_grpc_tls(Some((cert.pem(), key.serialize_pem()))).await;
    assert!(rx.grpc_endpoint.starts_with("https://"));
    let dir = TempDir::new("otlp-grpc-tls");
    let ca_file = dir.path().join("collector-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (other_ca, _) = test_ca("some other CA");
    let wrong_file = dir.path().join("other-ca.pem");
    std::fs::write(&wrong_file, other_ca.pem()).unwrap();
    let up = start_upstream().await;
    for (ca_path, trusted) in [(&ca_file, true), (&wrong_file, false)] {
        rx.clear();
        let proxy = start_proxy(
            &up.base,
            ProxyOpts {
                env: env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.grpc_endpoint),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                    ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_path.to_str().unwrap()),
                    ("OTEL_BSP_SCHEDULE_DELAY", "50"),
                    ("OTEL_METRICS_EXPORTER", "none"),
                ]),
                ..Default::default()
            },
        )
        .await;
        let r = client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the collector's TLS never fails a request");
        if trusted {
            let spans = rx
                .wait_for_spans(|s| !s.is_empty(), Duration::from_secs(10))
                .await;
            assert_eq!(spans[0].name, "chat gpt-4o-mini");
        } else {
            tokio::time::sleep(Duration::from_millis(800)).await;
            assert!(rx.spans().is_empty(), "an untrusted collector got spans");
        }
        proxy.stop().await;
    }
}
