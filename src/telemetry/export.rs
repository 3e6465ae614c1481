//! Exporters for spans and metrics (log records: `events.rs`), configured explicitly from `Settings` (OTLP over gRPC,
//! HTTP/protobuf or HTTP/JSON; console), and the span batcher: spans are queued in memory
//! (bounded), sent in batches off the request path, and counted when they must be dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality as SdkTemporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use super::batch::{BatchSink, Batcher};
use super::otlp_http::HttpSpanExporter;
use super::settings::{OtlpTarget, Protocol, Settings, Temporality};

pub(super) fn protocol(p: Protocol) -> opentelemetry_otlp::Protocol {
    match p {
        Protocol::Grpc => opentelemetry_otlp::Protocol::Grpc,
        Protocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
        Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
    }
}

fn header_map(t: &OtlpTarget) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in &t.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            h.insert(k, v);
        }
    }
    h
}

/// The compression to ask the exporter for, from `Settings` (tests pass their own
/// environment). Without one the SDK would look at the process environment itself, where
/// the variable, if set at all, says the same.
fn compression(t: &OtlpTarget) -> Option<opentelemetry_otlp::Compression> {
    match t.compression.as_deref() {
        None => None,
        Some("gzip") => Some(opentelemetry_otlp::Compression::Gzip),
        Some(other) => {
            tracing::warn!(
                compression = other,
                endpoint = %t.endpoint,
                "unsupported OTEL_EXPORTER_OTLP_COMPRESSION (gzip and none are); exporting uncompressed"
            );
            None
        }
    }
}

/// TLS for an `https` gRPC endpoint: the system's roots, plus `OTEL_EXPORTER_OTLP_CERTIFICATE`
/// (the OTLP exporter spec's variable for the collector's CA) when set. A plain `http`
/// endpoint is left as it is.
pub fn with_tls<B: WithTonicConfig>(b: B, t: &OtlpTarget) -> Result<B, String> {
    if !t.endpoint.starts_with("https://") {
        return Ok(b);
    }
    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
    let mut tls = ClientTlsConfig::new().with_native_roots();
    if let Some(path) = &t.certificate {
        let pem = std::fs::read(path)
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_CERTIFICATE {}: {e}", path.display()))?;
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    Ok(b.with_tls_config(tls))
}

/// Where spans for `t` go: over `http/protobuf`, llmtap's own encoder and POST
/// ([`HttpSpanExporter`]); over gRPC and `http/json`, the SDK's OTLP exporter.
pub fn otlp_span_sink(t: &OtlpTarget, resource: &Resource) -> Result<SpanSink, String> {
    let health = ExportHealth::new("traces", &t.endpoint);
    if t.protocol == Protocol::HttpProtobuf {
        let gzip = compression(t).is_some();
        let exporter = HttpSpanExporter::new(t, http_client(t)?, gzip, resource)?;
        return Ok(SpanSink::OtlpHttp {
            exporter: Box::new(exporter),
            health,
        });
    }
    Ok(SpanSink::Otlp {
        exporter: Box::new(otlp_span_exporter(t, resource)?),
        health,
    })
}

/// The SDK's span exporter for `t` (any protocol; llmtap uses it for gRPC and `http/json`).
pub fn otlp_span_exporter(
    t: &OtlpTarget,
    resource: &Resource,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let gzip = compression(t);
    let mut e = match t.protocol {
        Protocol::Grpc => {
            let b = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(t.endpoint.clone())
                .with_timeout(t.timeout)
                .with_metadata(tonic_metadata(t));
            let b = with_tls(b, t)?;
            match gzip {
                Some(c) => b.with_compression(c).build(),
                None => b.build(),
            }
        }
        p => {
            let b = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(http_client(t)?)
                .with_protocol(protocol(p))
                .with_endpoint(t.endpoint.clone())
                .with_timeout(t.timeout)
                .with_headers(t.headers.clone());
            match gzip {
                Some(c) => b.with_compression(c).build(),
                None => b.build(),
            }
        }
    }
    .map_err(|e| e.to_string())?;
    e.set_resource(resource);
    Ok(e)
}

/// The HTTP client for OTLP/HTTP: system roots plus `OTEL_EXPORTER_OTLP_CERTIFICATE`.
pub(super) fn http_client(t: &OtlpTarget) -> Result<reqwest::Client, String> {
    // HTTPS_PROXY / NO_PROXY from the environment apply, as with other OTel SDKs.
    let mut b = reqwest::Client::builder().timeout(t.timeout);
    if let Some(path) = &t.certificate {
        let pem = std::fs::read(path)
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_CERTIFICATE {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_CERTIFICATE {}: {e}", path.display()))?;
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| e.to_string())
}

pub(super) fn tonic_metadata(
    t: &OtlpTarget,
) -> opentelemetry_otlp::tonic_types::metadata::MetadataMap {
    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(header_map(t))
}

pub fn otlp_metric_exporter(
    t: &OtlpTarget,
    temporality: Temporality,
) -> Result<opentelemetry_otlp::MetricExporter, String> {
    let temporality = sdk_temporality(temporality);
    let gzip = compression(t);
    match t.protocol {
        Protocol::Grpc => {
            let b = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(t.endpoint.clone())
                .with_timeout(t.timeout)
                .with_metadata(tonic_metadata(t))
                .with_temporality(temporality);
            let b = with_tls(b, t)?;
            match gzip {
                Some(c) => b.with_compression(c).build(),
                None => b.build(),
            }
        }
        p => {
            let b = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_http_client(http_client(t)?)
                .with_protocol(protocol(p))
                .with_endpoint(t.endpoint.clone())
                .with_timeout(t.timeout)
                .with_headers(t.headers.clone())
                .with_temporality(temporality);
            match gzip {
                Some(c) => b.with_compression(c).build(),
                None => b.build(),
            }
        }
    }
    .map_err(|e| e.to_string())
}

pub fn sdk_temporality(t: Temporality) -> SdkTemporality {
    match t {
        Temporality::Cumulative => SdkTemporality::Cumulative,
        Temporality::Delta => SdkTemporality::Delta,
        Temporality::LowMemory => SdkTemporality::LowMemory,
    }
}

/// Where finished spans go.
pub enum SpanSink {
    /// OTLP `http/protobuf`, encoded and sent by llmtap.
    OtlpHttp {
        exporter: Box<HttpSpanExporter>,
        health: ExportHealth,
    },
    /// OTLP over gRPC or `http/json`, through the SDK's exporter.
    Otlp {
        exporter: Box<opentelemetry_otlp::SpanExporter>,
        health: ExportHealth,
    },
    Console,
}

impl BatchSink<SpanData> for SpanSink {
    async fn export(&self, batch: Vec<SpanData>, timeout: Duration) -> Result<(), ()> {
        match self {
            SpanSink::OtlpHttp { exporter, health } => {
                let res = tokio::time::timeout(timeout, exporter.export(&batch)).await;
                health.report(flatten(res, timeout))
            }
            SpanSink::Otlp { exporter, health } => {
                let res = tokio::time::timeout(timeout, exporter.export(batch)).await;
                health.report(flatten(res, timeout))
            }
            SpanSink::Console => {
                for s in &batch {
                    println!("{}", super::console::span_line(s));
                }
                Ok(())
            }
        }
    }
}

/// Where collected metrics go on each interval.
pub enum MetricSink {
    Otlp {
        exporter: Box<opentelemetry_otlp::MetricExporter>,
        health: ExportHealth,
    },
    Console,
}

impl MetricSink {
    pub fn otlp(exporter: opentelemetry_otlp::MetricExporter, endpoint: &str) -> MetricSink {
        MetricSink::Otlp {
            exporter: Box::new(exporter),
            health: ExportHealth::new("metrics", endpoint),
        }
    }

    /// Exports one collection within `timeout`, reporting failures like [`SpanSink::export`].
    pub async fn export(&self, rm: &ResourceMetrics, timeout: Duration) -> Result<(), ()> {
        match self {
            MetricSink::Otlp { exporter, health } => {
                let res = tokio::time::timeout(timeout, exporter.export(rm)).await;
                health.report(flatten(res, timeout))
            }
            MetricSink::Console => {
                print!("{}", super::prometheus::render(rm));
                Ok(())
            }
        }
    }
}

pub(super) fn flatten<E: std::fmt::Display>(
    res: Result<Result<(), E>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Result<(), String> {
    match res {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:.1} s", timeout.as_secs_f64())),
    }
}

/// Least time between two WARN lines about one failing collector.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Tells the operator when exports to a collector fail and when they recover, without
/// flooding the log: a WARN naming the endpoint and the error at most once a minute while the
/// failure lasts, and one INFO line when an export succeeds again. The `dropped` counter
/// keeps the exact numbers.
pub struct ExportHealth {
    signal: &'static str,
    endpoint: String,
    /// Fast path: a healthy export only reads this flag.
    failing: AtomicBool,
    state: Mutex<FailureState>,
}

#[derive(Default)]
struct FailureState {
    last_warn: Option<Instant>,
    /// Failed exports since the last WARN line.
    unreported: u64,
}

impl ExportHealth {
    pub fn new(signal: &'static str, endpoint: &str) -> ExportHealth {
        ExportHealth {
            signal,
            endpoint: endpoint.to_string(),
            failing: AtomicBool::new(false),
            state: Mutex::new(FailureState::default()),
        }
    }

    pub(super) fn report(&self, outcome: Result<(), String>) -> Result<(), ()> {
        match outcome {
            Ok(()) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    *st = FailureState::default();
                    tracing::info!(
                        signal = self.signal,
                        endpoint = %self.endpoint,
                        "OTLP export succeeds again"
                    );
                }
                Ok(())
            }
            Err(error) => {
                self.failing.store(true, Ordering::Release);
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                st.unreported += 1;
                let due = st.last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY);
                if due {
                    tracing::warn!(
                        signal = self.signal,
                        endpoint = %self.endpoint,
                        error = %error,
                        failed_exports = st.unreported,
                        "OTLP export failed; telemetry is being dropped (counted in llmtap.telemetry.dropped; next warning in 60 s at the earliest)"
                    );
                    st.last_warn = Some(Instant::now());
                    st.unreported = 0;
                }
                Err(())
            }
        }
    }
}

/// The span export schedule. Owned by the telemetry worker.
pub type SpanBatcher = Batcher<SpanData, SpanSink>;

/// The span batcher for `settings`' batch settings (`OTEL_BSP_*`).
pub fn span_batcher(settings: &Settings, sinks: Vec<SpanSink>) -> SpanBatcher {
    Batcher::new(
        sinks,
        settings.batch_max_queue,
        settings.batch_max_export,
        settings.batch_delay,
        settings
            .traces_otlp
            .as_ref()
            .map(|t| t.timeout)
            .unwrap_or(Duration::from_secs(10)),
    )
}
