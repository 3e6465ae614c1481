//! Span export over OTLP/HTTP with protobuf bodies (`http/protobuf`, the default protocol):
//! the batch is encoded by [`TraceRequestEncoder`] and POSTed the way opentelemetry-otlp
//! 0.33's HTTP exporter does it, which this replaces for spans (gRPC and `http/json` stay on
//! the SDK's exporter). Kept the same, from that exporter's `exporter/http/mod.rs`,
//! `retry.rs` and `retry_classification.rs`:
//! - headers: its `User-Agent`, `Content-Type: application/x-protobuf`, `Content-Encoding:
//!   gzip` when compressing (flate2, default level), then the configured headers over them;
//! - at most 64 MiB of body before and after compression, else the batch is dropped unsent;
//! - the recommended retry policy: 429, 502, 503, 504 and network errors are retried up to
//!   3 times, waiting 100 ms doubling up to 1.6 s plus up to 100 ms of jitter, or what a
//!   429/503 `Retry-After` asks for (at most 30 s); never past the export timeout;
//! - a response body over 4 MiB is an error that is not retried;
//! - the error texts, which `ExportHealth` puts in its WARN line.
//!
//! One difference: configured header values are percent-decoded once (`Settings`), as the
//! OTLP exporter spec says; the SDK decodes values given to its builder a second time.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;

use super::settings::OtlpTarget;
use super::trace_proto::TraceRequestEncoder;

/// The SDK HTTP exporter's `User-Agent` (opentelemetry-otlp's version), which the metric
/// and log exporters still send.
pub const USER_AGENT: &str = "OTel-OTLP-Exporter-Rust/0.33.1";

/// Largest request body sent, before and after compression (the OTLP/HTTP spec's advice).
const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;

/// Largest collector response read; a larger one fails the export.
const MAX_RESPONSE_BODY: usize = 4 * 1024 * 1024;

/// How export attempts are spaced: opentelemetry-otlp's `RetryPolicy::recommended()`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub max_jitter: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1600),
            max_jitter: Duration::from_millis(100),
        }
    }
}

/// Longest wait a collector's `Retry-After` can impose.
const MAX_THROTTLE: Duration = Duration::from_secs(30);

/// Exports span batches to one OTLP/HTTP endpoint.
pub struct HttpSpanExporter {
    client: reqwest::Client,
    url: reqwest::Url,
    /// Every request's headers, body headers included.
    headers: HeaderMap,
    gzip: bool,
    /// All attempts of one export together, as the SDK's retry deadline.
    timeout: Duration,
    retry: RetryPolicy,
    encoder: TraceRequestEncoder,
}

/// One failed attempt.
#[derive(Debug, PartialEq)]
enum AttemptError {
    /// A status other than 2xx (0: no response at all), with its `Retry-After`.
    Status {
        code: u16,
        retry_after: Option<String>,
        message: String,
    },
    /// A response body over [`MAX_RESPONSE_BODY`].
    TooLarge,
}

impl AttemptError {
    fn network() -> AttemptError {
        AttemptError::Status {
            code: 0,
            retry_after: None,
            message: "HTTP export failed: network error".into(),
        }
    }

    fn message(&self) -> String {
        match self {
            AttemptError::Status { message, .. } => message.clone(),
            AttemptError::TooLarge => "response body exceeded maximum allowed 4 MiB limit".into(),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq)]
enum Retry {
    No,
    Yes,
    /// The collector asked for this pause.
    After(Duration),
}

impl HttpSpanExporter {
    /// `client`: the one `export::http_client` builds for `t` (timeout per attempt, CA).
    pub fn new(
        t: &OtlpTarget,
        client: reqwest::Client,
        gzip: bool,
        resource: &Resource,
    ) -> Result<HttpSpanExporter, String> {
        let url = reqwest::Url::parse(&t.endpoint)
            .map_err(|e| format!("invalid endpoint '{}': {e}", t.endpoint))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        if gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        for (k, v) in &t.headers {
            // As the SDK: a name or value HTTP cannot carry is left out.
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
                headers.insert(k, v);
            }
        }
        Ok(HttpSpanExporter {
            client,
            url,
            headers,
            gzip,
            timeout: t.timeout,
            retry: RetryPolicy::default(),
            encoder: TraceRequestEncoder::new(resource),
        })
    }

    /// Sends `batch`, retrying as the policy allows. The error is the SDK exporter's text.
    pub async fn export(&self, batch: &[SpanData]) -> Result<(), String> {
        let body = self
            .body(batch)
            .map_err(|e| format!("Operation failed: {e}"))?;
        let start = Instant::now();
        let mut attempt = 0;
        let mut delay = self.retry.initial_delay;
        let mut delay_cap = self.retry.max_delay;
        loop {
            let err = match self.attempt(body.clone()).await {
                Ok(response) => {
                    log_partial_success(&response);
                    return Ok(());
                }
                Err(e) => e,
            };
            let fail = || Err(format!("Operation failed: {}", err.message()));
            if start.elapsed() >= self.timeout || attempt >= self.retry.max_retries {
                return fail();
            }
            match classify(&err) {
                Retry::No => return fail(),
                Retry::Yes => {}
                Retry::After(asked) => {
                    let asked = asked.min(MAX_THROTTLE);
                    if asked > delay_cap {
                        delay_cap = MAX_THROTTLE;
                    }
                    if !asked.is_zero() {
                        delay = delay.max(asked);
                    }
                }
            }
            attempt += 1;
            let pause = delay
                .saturating_add(jitter(self.retry.max_jitter))
                .min(delay_cap);
            if pause >= self.timeout.saturating_sub(start.elapsed()) {
                return fail();
            }
            tokio::time::sleep(pause).await;
            delay = delay.saturating_mul(2).min(delay_cap);
        }
    }

    /// The request body: the encoded batch, gzipped when asked, within the size limit.
    fn body(&self, batch: &[SpanData]) -> Result<Bytes, String> {
        let mut raw = Vec::new();
        self.encoder.encode(batch, &mut raw);
        check_size(&raw, "uncompressed")?;
        if !self.gzip {
            return Ok(raw.into());
        }
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&raw).map_err(|e| e.to_string())?;
        let packed = gz.finish().map_err(|e| e.to_string())?;
        check_size(&packed, "compressed")?;
        Ok(packed.into())
    }

    /// One POST; the response body on a 2xx.
    async fn attempt(&self, body: Bytes) -> Result<Bytes, AttemptError> {
        let mut response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|_| AttemptError::network())?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Read whole, as the SDK's client does, also on an error status (the connection
        // stays reusable).
        let mut read = bytes::BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| AttemptError::network())?
        {
            if read.len() + chunk.len() > MAX_RESPONSE_BODY {
                return Err(AttemptError::TooLarge);
            }
            read.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(AttemptError::Status {
                code: status.as_u16(),
                retry_after,
                message: format!("HTTP export failed with status code: {}", status.as_u16()),
            });
        }
        Ok(read.freeze())
    }
}

fn check_size(body: &[u8], what: &str) -> Result<(), String> {
    if body.len() > MAX_REQUEST_BODY {
        return Err(format!(
            "OTLP HTTP {what} request body is {} bytes, exceeding the configured limit of {MAX_REQUEST_BODY} bytes; request will not be sent and telemetry data will be discarded; reduce the batch size, telemetry item size, or configure a larger limit",
            body.len()
        ));
    }
    Ok(())
}

/// opentelemetry-otlp's HTTP classification: throttling (429, 503) waits as long as
/// `Retry-After` says when it says; gateway errors and network errors are retried.
fn classify(e: &AttemptError) -> Retry {
    match e {
        AttemptError::Status {
            code: 429 | 503,
            retry_after,
            ..
        } => match retry_after.as_deref().and_then(parse_retry_after) {
            Some(d) => Retry::After(d),
            None => Retry::Yes,
        },
        AttemptError::Status {
            code: 0 | 502 | 504,
            ..
        } => Retry::Yes,
        _ => Retry::No,
    }
}

/// `Retry-After`: seconds or an HTTP date, at most ten minutes (cut to [`MAX_THROTTLE`]
/// when waited).
fn parse_retry_after(v: &str) -> Option<Duration> {
    const MAX: u64 = 600;
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs.min(MAX)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let secs = at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs();
    Some(Duration::from_secs(secs.min(MAX)))
}

/// Up to `max` (whole milliseconds), so exporters that failed together do not retry together.
fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let max_ms = max.as_millis().min(u128::from(u64::MAX - 1)) as u64;
    if max_ms == 0 {
        return Duration::ZERO;
    }
    // A fresh `RandomState` is randomly keyed: enough randomness without a crate for it.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    );
    Duration::from_millis(h.finish() % (max_ms + 1))
}

/// A collector that accepted only part of a batch says so in the response (OTLP's partial
/// success). The SDK exporter logs it only with its internal logs, which llmtap leaves off;
/// here it is a DEBUG line.
fn log_partial_success(body: &[u8]) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use prost::Message;
    let Ok(r) = ExportTraceServiceResponse::decode(body) else {
        return;
    };
    if let Some(p) = r.partial_success {
        if p.rejected_spans > 0 || !p.error_message.is_empty() {
            tracing::debug!(
                rejected_spans = p.rejected_spans,
                error_message = %p.error_message,
                "OTLP collector accepted part of a span batch"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One request as the collector saw it: lower-cased header lines and the body.
    #[derive(Debug, Clone)]
    struct Seen {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// A collector on 127.0.0.1 answering each request with the next `(status, Retry-After)`
    /// of `script`, then 200; keeps every request. Stops when the handle is dropped.
    struct Collector {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Collector {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn collector(script: Vec<(u16, Option<&'static str>)>) -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (log, script) = (log.clone(), script.clone());
                tokio::spawn(async move {
                    // Keep-alive: requests one after another on the connection.
                    let mut buf = Vec::new();
                    loop {
                        let Some(head_end) = read_until_head(&mut conn, &mut buf).await else {
                            return;
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                        let headers: Vec<(String, String)> = head
                            .lines()
                            .skip(1)
                            .filter_map(|l| l.split_once(':'))
                            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                            .collect();
                        let len: usize = headers
                            .iter()
                            .find(|(k, _)| k == "content-length")
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        let body_start = head_end + 4;
                        while buf.len() < body_start + len {
                            let mut chunk = [0u8; 65536];
                            match conn.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = buf[body_start..body_start + len].to_vec();
                        buf.drain(..body_start + len);
                        log.lock().unwrap().push(Seen { headers, body });
                        let (status, retry_after) =
                            script.lock().unwrap().pop_front().unwrap_or((200, None));
                        let extra = retry_after
                            .map(|v| format!("retry-after: {v}\r\n"))
                            .unwrap_or_default();
                        let response =
                            format!("HTTP/1.1 {status} X\r\n{extra}content-length: 0\r\n\r\n");
                        if conn.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Collector { url, seen, task }
    }

    /// Reads until `buf` holds a whole request head; its length without the blank line.
    async fn read_until_head(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
        for _ in 0..10_000 {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Some(i);
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        None
    }

    fn target(url: &str) -> OtlpTarget {
        OtlpTarget {
            protocol: super::super::settings::Protocol::HttpProtobuf,
            endpoint: url.to_string(),
            headers: [("x-api-key".to_string(), "secret".to_string())].into(),
            timeout: Duration::from_secs(10),
            certificate: None,
            compression: None,
        }
    }

    fn exporter(url: &str, gzip: bool) -> HttpSpanExporter {
        crate::vocab::crypto::install_crypto_provider();
        let t = target(url);
        let client = super::super::export::http_client(&t).unwrap();
        let resource = Resource::builder_empty().with_service_name("test").build();
        HttpSpanExporter::new(&t, client, gzip, &resource).unwrap()
    }

    fn batch() -> Vec<SpanData> {
        use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceFlags, TraceState};
        let scope = opentelemetry::InstrumentationScope::builder("llmtap").build();
        vec![SpanData {
            span_context: SpanContext::new(
                opentelemetry::trace::TraceId::from(1),
                opentelemetry::trace::SpanId::from(2),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: "chat m".into(),
            start_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1),
            end_time: SystemTime::UNIX_EPOCH + Duration::from_secs(2),
            attributes: vec![opentelemetry::KeyValue::new(
                "gen_ai.operation.name",
                "chat",
            )],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: scope,
        }]
    }

    #[tokio::test]
    async fn gateway_errors_are_retried_and_every_attempt_carries_the_same_request() {
        for gzip in [false, true] {
            let c = collector(vec![(503, None), (502, None), (504, None)]).await;
            let e = exporter(&c.url, gzip);
            let spans = batch();
            assert_eq!(e.export(&spans).await, Ok(()));
            let seen = c.seen.lock().unwrap().clone();
            assert_eq!(seen.len(), 4, "three retries, then success");
            let mut encoded = Vec::new();
            e.encoder.encode(&spans, &mut encoded);
            for s in &seen {
                assert_eq!(s.header("content-type"), Some("application/x-protobuf"));
                assert_eq!(s.header("user-agent"), Some(USER_AGENT));
                assert_eq!(s.header("x-api-key"), Some("secret"));
                let body = if gzip {
                    assert_eq!(s.header("content-encoding"), Some("gzip"));
                    let mut raw = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&s.body[..]),
                        &mut raw,
                    )
                    .unwrap();
                    raw
                } else {
                    assert_eq!(s.header("content-encoding"), None);
                    s.body.clone()
                };
                assert_eq!(body, encoded);
            }
        }
    }

    #[tokio::test]
    async fn retries_stop_after_three_and_other_errors_are_not_retried() {
        let c = collector(vec![(503, None); 5]).await;
        let err = exporter(&c.url, false).export(&batch()).await;
        assert_eq!(
            err,
            Err("Operation failed: HTTP export failed with status code: 503".into())
        );
        assert_eq!(
            c.seen.lock().unwrap().len(),
            4,
            "the first try and three retries"
        );

        let c = collector(vec![(400, None), (200, None)]).await;
        let err = exporter(&c.url, false).export(&batch()).await;
        assert_eq!(
            err,
            Err("Operation failed: HTTP export failed with status code: 400".into())
        );
        assert_eq!(c.seen.lock().unwrap().len(), 1);

        // Throttled with a Retry-After of zero: retried.
        let c = collector(vec![(429, Some("0"))]).await;
        assert_eq!(exporter(&c.url, false).export(&batch()).await, Ok(()));
        assert_eq!(c.seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_collector_is_a_network_error() {
        // Bound, then closed: nothing listens on the port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = exporter(&format!("http://127.0.0.1:{port}/v1/traces"), false);
        assert_eq!(
            e.export(&batch()).await,
            Err("Operation failed: HTTP export failed: network error".into())
        );
    }

    #[test]
    fn throttling_waits_as_told_and_only_gateway_and_network_errors_retry() {
        let status = |code: u16, retry_after: Option<&str>| AttemptError::Status {
            code,
            retry_after: retry_after.map(str::to_owned),
            message: String::new(),
        };
        assert_eq!(
            classify(&status(429, Some("3"))),
            Retry::After(Duration::from_secs(3))
        );
        assert_eq!(
            classify(&status(503, Some("9000"))),
            Retry::After(Duration::from_secs(600))
        );
        assert_eq!(classify(&status(503, Some("soon"))), Retry::Yes);
        assert_eq!(classify(&status(429, None)), Retry::Yes);
        for code in [0, 502, 504] {
            assert_eq!(classify(&status(code, None)), Retry::Yes, "{code}");
        }
        for code in [400, 401, 404, 413, 500] {
            assert_eq!(classify(&status(code, Some("1"))), Retry::No, "{code}");
        }
        assert_eq!(classify(&AttemptError::TooLarge), Retry::No);
        let past = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH);
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(7200));
        assert_eq!(parse_retry_after(&later), Some(Duration::from_secs(600)));
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(100)) <= Duration::from_millis(100));
        }
        assert!(jitter(Duration::MAX) <= Duration::MAX);
    }
}
