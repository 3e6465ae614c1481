//! In-test OpenTelemetry OTLP receiver.
//!
//! Integration tests start an [`OtlpReceiver`] on 127.0.0.1, point llmtap's
//! OTLP exporter at it (`grpc_endpoint` for gRPC, `http_endpoint` as the base
//! URL for http/protobuf and http/json), and then assert on what was exported:
//! flattened [`SpanView`]s, [`MetricView`]s and [`LogView`]s, plus per-request metadata
//! ([`ReceivedExport`]: transport, signal, headers).
//!
//! Servers:
//! - gRPC (tonic): `opentelemetry.proto.collector.{trace,metrics,logs}.v1` services.
//!   gzip-compressed gRPC messages are accepted (`grpc-encoding: gzip` is
//!   kept in the recorded headers).
//! - HTTP (axum): `POST /v1/traces`, `POST /v1/metrics`, `POST /v1/logs`, bodies in
//!   `application/x-protobuf` or `application/json` (OTLP/JSON: hex ids,
//!   camelCase, 64-bit ints as strings or numbers), optionally
//!   `content-encoding: gzip`. Responds 200 with an empty
//!   `Export*ServiceResponse` in the request's encoding, 400 on a bad body,
//!   415 on an unknown content type, 404 on any other path (recorded in
//!   `requests()` with its `path`, to spot a misconfigured endpoint).
//!
//! Servers run as tasks of the runtime that called [`OtlpReceiver::start`];
//! they stop on [`OtlpReceiver::shutdown`], on drop (aborted), or with the
//! runtime.
//!
//! Data is stored when the receiver answers successfully (i.e. after the
//! configured delay and only if not failing). Every request, including failed
//! and rejected ones, is recorded in [`OtlpReceiver::requests`].
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Largest request body / gRPC message accepted (bytes, after decompression).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Poll interval of the `wait_for_*` helpers.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How long `shutdown` waits for a graceful stop before aborting a server task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// Public views
// ---------------------------------------------------------------------------

/// An attribute value as exported (OTLP `AnyValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    F64(f64),
    Bool(bool),
    Array(Vec<AttrValue>),
    Bytes(Vec<u8>),
    /// A key-value list (structured log attributes).
    Map(Vec<(String, AttrValue)>),
    /// String-table references, or an empty `AnyValue`.
    Other,
}

impl AttrValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::F64(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// JSON rendering for notes/diagnostics (bytes as lowercase hex).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AttrValue::Str(s) => serde_json::Value::from(s.as_str()),
            AttrValue::Int(i) => serde_json::Value::from(*i),
            AttrValue::F64(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::from(f.to_string())),
            AttrValue::Bool(b) => serde_json::Value::from(*b),
            AttrValue::Array(a) => {
                serde_json::Value::Array(a.iter().map(|v| v.to_json()).collect())
            }
            AttrValue::Bytes(b) => serde_json::Value::from(hex(b)),
            AttrValue::Map(kvs) => attrs_json(kvs),
            AttrValue::Other => serde_json::Value::Null,
        }
    }
}

/// One exported span, flattened from its resource and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanView {
    /// 32 lowercase hex chars.
    pub trace_id: String,
    /// 16 lowercase hex chars.
    pub span_id: String,
    /// "" for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// "unspecified" | "internal" | "server" | "client" | "producer" | "consumer".
    pub kind: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// "unset" | "ok" | "error".
    pub status_code: String,
    pub status_message: String,
    pub attributes: Vec<(String, AttrValue)>,
    pub resource: Vec<(String, AttrValue)>,
    pub scope_name: String,
    /// (event name, event attributes), in export order.
    pub events: Vec<(String, Vec<(String, AttrValue)>)>,
    /// Span links as (trace id, span id), in export order.
    pub links: Vec<(String, String)>,
}

impl SpanView {
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        find_attr(&self.attributes, key)
    }

    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    /// Only an `Int` attribute (no coercion from other types).
    pub fn int_attr(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttrValue::as_i64)
    }

    /// Only an `F64` (OTLP doubleValue) attribute (no coercion from `Int`).
    pub fn f64_attr(&self, key: &str) -> Option<f64> {
        self.attr(key).and_then(AttrValue::as_f64)
    }

    pub fn bool_attr(&self, key: &str) -> Option<bool> {
        self.attr(key).and_then(AttrValue::as_bool)
    }

    /// An array attribute whose elements are all strings.
    pub fn str_array_attr(&self, key: &str) -> Option<Vec<String>> {
        match self.attr(key)? {
            AttrValue::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        }
    }

    pub fn resource_attr(&self, key: &str) -> Option<&AttrValue> {
        find_attr(&self.resource, key)
    }

    /// Attributes of the first event with this name.
    pub fn event(&self, name: &str) -> Option<&[(String, AttrValue)]> {
        self.events
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, attrs)| attrs.as_slice())
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    pub fn duration_secs(&self) -> f64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos) as f64 / 1e9
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "start_unix_nanos": self.start_unix_nanos,
            "end_unix_nanos": self.end_unix_nanos,
            "duration_secs": self.duration_secs(),
            "status_code": self.status_code,
            "status_message": self.status_message,
            "attributes": attrs_json(&self.attributes),
            "events": self.events.iter().map(|(name, attrs)| serde_json::json!({
                "name": name,
                "attributes": attrs_json(attrs),
            })).collect::<Vec<_>>(),
            "scope_name": self.scope_name,
            "resource": attrs_json(&self.resource),
        })
    }
}

/// One exported metric data point, flattened from resource/scope/metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricView {
    pub name: String,
    pub unit: String,
    pub description: String,
    /// "histogram" | "sum" | "gauge" | "exp_histogram" | "summary".
    pub kind: String,
    /// `Some(is_monotonic)` for sums, `None` otherwise.
    pub monotonic: Option<bool>,
    /// "cumulative" | "delta" | "" (gauges, summaries, unspecified).
    pub temporality: String,
    pub attributes: Vec<(String, AttrValue)>,
    /// Sum/gauge value (int or double), or the histogram/summary sum (0 if absent).
    pub value: f64,
    /// Histogram/summary count; 0 for sums and gauges.
    pub count: u64,
    /// Explicit histogram bounds; empty otherwise.
    pub bounds: Vec<f64>,
    /// Histogram bucket counts (`bounds.len() + 1` entries); empty otherwise.
    pub bucket_counts: Vec<u64>,
    /// Histogram min/max when exported.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub start_time_unix_nanos: u64,
    pub time_unix_nanos: u64,
    pub resource: Vec<(String, AttrValue)>,
    pub scope_name: String,
}

impl MetricView {
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        find_attr(&self.attributes, key)
    }

    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    pub fn int_attr(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttrValue::as_i64)
    }

    pub fn resource_attr(&self, key: &str) -> Option<&AttrValue> {
        find_attr(&self.resource, key)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "unit": self.unit,
            "description": self.description,
            "kind": self.kind,
            "monotonic": self.monotonic,
            "temporality": self.temporality,
            "attributes": attrs_json(&self.attributes),
            "value": self.value,
            "count": self.count,
            "bounds": self.bounds,
            "bucket_counts": self.bucket_counts,
            "min": self.min,
            "max": self.max,
            "start_time_unix_nanos": self.start_time_unix_nanos,
            "time_unix_nanos": self.time_unix_nanos,
            "scope_name": self.scope_name,
            "resource": attrs_json(&self.resource),
        })
    }
}

/// One exported log record, flattened from its resource and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct LogView {
    /// The record's `event_name` ("" when none).
    pub event_name: String,
    pub severity_number: i32,
    pub severity_text: String,
    pub time_unix_nanos: u64,
    pub observed_time_unix_nanos: u64,
    /// 32 lowercase hex chars ("" when the record has no trace context).
    pub trace_id: String,
    /// 16 lowercase hex chars.
    pub span_id: String,
    pub flags: u32,
    pub body: AttrValue,
    pub attributes: Vec<(String, AttrValue)>,
    pub resource: Vec<(String, AttrValue)>,
    pub scope_name: String,
}

impl LogView {
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        find_attr(&self.attributes, key)
    }

    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    pub fn resource_attr(&self, key: &str) -> Option<&AttrValue> {
        find_attr(&self.resource, key)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "event_name": self.event_name,
            "severity_number": self.severity_number,
            "severity_text": self.severity_text,
            "time_unix_nanos": self.time_unix_nanos,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "flags": self.flags,
            "body": self.body.to_json(),
            "attributes": attrs_json(&self.attributes),
            "scope_name": self.scope_name,
            "resource": attrs_json(&self.resource),
        })
    }
}

/// Pretty JSON of log records, for assertion messages and notes.
pub fn logs_json(logs: &[LogView]) -> String {
    let v: Vec<serde_json::Value> = logs.iter().map(LogView::to_json).collect();
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Metadata of one export request that reached the receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedExport {
    /// "grpc" | "http/protobuf" | "http/json" ("http/unknown" for an
    /// unsupported content type).
    pub transport: String,
    /// "traces" | "metrics" | "logs" ("" for a request to an unknown HTTP path).
    pub signal: String,
    /// HTTP path ("/v1/traces", ...) or gRPC method path.
    pub path: String,
    /// Request headers (gRPC: request metadata), names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// Spans or metric data points in the request (0 if it could not be decoded).
    pub items: usize,
    /// True when the receiver answered success and stored the data.
    pub accepted: bool,
}

impl ReceivedExport {
    /// First value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Keeps the latest point per (metric name, sorted attribute set): exporters
/// resend cumulative points every interval. Greatest `time_unix_nanos` wins
/// (the later-received one on a tie). Result is in order of first appearance.
pub fn latest_points(points: &[MetricView]) -> Vec<MetricView> {
    let mut order: Vec<String> = Vec::new();
    let mut best: HashMap<String, MetricView> = HashMap::new();
    for p in points {
        let mut attrs: Vec<&(String, AttrValue)> = p.attributes.iter().collect();
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        let key = format!("{}\u{0}{:?}", p.name, attrs);
        match best.get(&key) {
            Some(prev) if prev.time_unix_nanos > p.time_unix_nanos => {}
            Some(_) => {
                best.insert(key, p.clone());
            }
            None => {
                order.push(key.clone());
                best.insert(key, p.clone());
            }
        }
    }
    order.into_iter().filter_map(|k| best.remove(&k)).collect()
}

/// The span whose `gen_ai.response.id` is `id` (the id the SDK saw); fails the test with
/// every span otherwise.
pub fn span_with_response_id<'a>(spans: &'a [SpanView], id: &str) -> &'a SpanView {
    spans
        .iter()
        .find(|s| s.str_attr("gen_ai.response.id") == Some(id))
        .unwrap_or_else(|| panic!("no span with response id {id}:\n{}", spans_json(spans)))
}

/// Pretty JSON of spans, for assertion messages and notes.
pub fn spans_json(spans: &[SpanView]) -> String {
    let v: Vec<serde_json::Value> = spans.iter().map(SpanView::to_json).collect();
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Pretty JSON of metric points, for assertion messages and notes.
pub fn metrics_json(points: &[MetricView]) -> String {
    let v: Vec<serde_json::Value> = points.iter().map(MetricView::to_json).collect();
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Receiver
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Collected {
    spans: Vec<SpanView>,
    metrics: Vec<MetricView>,
    logs: Vec<LogView>,
    requests: Vec<ReceivedExport>,
    trace_requests: Vec<ExportTraceServiceRequest>,
    metrics_requests: Vec<ExportMetricsServiceRequest>,
    logs_requests: Vec<ExportLogsServiceRequest>,
}

#[derive(Default)]
struct Shared {
    data: Mutex<Collected>,
    failing: AtomicBool,
    delay_ms: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Collected> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))
    }

    fn record(&self, export: ReceivedExport) {
        self.lock().requests.push(export);
    }

    /// Applies the configured delay, then either stores the payload (returns
    /// true) or, when failing, stores nothing (returns false). The request is
    /// recorded either way.
    async fn ingest(&self, payload: Payload, mut export: ReceivedExport) -> bool {
        let delay = self.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            self.record(export);
            return false;
        }
        export.accepted = true;
        let mut data = self.lock();
        match payload {
            Payload::Traces(req) => {
                data.spans.extend(flatten_spans(&req));
                data.trace_requests.push(req);
            }
            Payload::Metrics(req) => {
                data.metrics.extend(flatten_metrics(&req));
                data.metrics_requests.push(req);
            }
            Payload::Logs(req) => {
                data.logs.extend(flatten_logs(&req));
                data.logs_requests.push(req);
            }
        }
        data.requests.push(export);
        true
    }
}

enum Payload {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

impl Payload {
    fn items(&self) -> usize {
        match self {
            Payload::Traces(req) => count_spans(req),
            Payload::Metrics(req) => count_points(req),
            Payload::Logs(req) => count_logs(req),
        }
    }
}

/// OTLP receiver listening on 127.0.0.1 (gRPC and HTTP on separate ports).
pub struct OtlpReceiver {
    /// "http://127.0.0.1:PORT" (gRPC).
    pub grpc_endpoint: String,
    /// "http://127.0.0.1:PORT" (HTTP base; append /v1/traces or /v1/metrics).
    pub http_endpoint: String,
    shared: Arc<Shared>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Starts both servers on 127.0.0.1:0 as tasks of the current Tokio runtime.
    pub async fn start() -> OtlpReceiver {
        OtlpReceiver::start_with_grpc_tls(None).await
    }

    /// Like [`start`](Self::start), with the gRPC receiver behind TLS when `identity` (PEM
    /// certificate chain, PEM key) is given; its endpoint is then `https://127.0.0.1:PORT`.
    pub async fn start_with_grpc_tls(identity: Option<(String, String)>) -> OtlpReceiver {
        let shared = Arc::new(Shared::default());
        let tls = identity.is_some();

        // gRPC
        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gRPC receiver on 127.0.0.1");
        let grpc_addr = grpc_listener.local_addr().expect("gRPC local addr");
        let (grpc_stop_tx, grpc_stop_rx) = oneshot::channel::<()>();
        let gzip = tonic::codec::CompressionEncoding::Gzip;
        let traces = TraceServiceServer::new(GrpcReceiver(shared.clone()))
            .max_decoding_message_size(MAX_BODY)
            .accept_compressed(gzip);
        let metrics = MetricsServiceServer::new(GrpcReceiver(shared.clone()))
            .max_decoding_message_size(MAX_BODY)
            .accept_compressed(gzip);
        let logs = LogsServiceServer::new(GrpcReceiver(shared.clone()))
            .max_decoding_message_size(MAX_BODY)
            .accept_compressed(gzip);
        let grpc_task = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc_listener);
            let mut builder = tonic::transport::Server::builder();
            if let Some((cert, key)) = identity {
                let identity = tonic::transport::Identity::from_pem(cert, key);
                builder = builder
                    .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                    .expect("gRPC receiver TLS config");
            }
            let result = builder
                .add_service(traces)
                .add_service(metrics)
                .add_service(logs)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = grpc_stop_rx.await;
                })
                .await;
            if let Err(e) = result {
                eprintln!("otlp test receiver: gRPC server error: {e}");
            }
        });

        // HTTP
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind HTTP receiver on 127.0.0.1");
        let http_addr = http_listener.local_addr().expect("HTTP local addr");
        let (http_stop_tx, http_stop_rx) = oneshot::channel::<()>();
        let app = Router::new()
            .route("/v1/traces", post(http_traces))
            .route("/v1/metrics", post(http_metrics))
            .route("/v1/logs", post(http_logs))
            .fallback(http_fallback)
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(shared.clone());
        let http_task = tokio::spawn(async move {
            let result = axum::serve(http_listener, app)
                .with_graceful_shutdown(async {
                    let _ = http_stop_rx.await;
                })
                .await;
            if let Err(e) = result {
                eprintln!("otlp test receiver: HTTP server error: {e}");
            }
        });

        OtlpReceiver {
            grpc_endpoint: format!("{}://{grpc_addr}", if tls { "https" } else { "http" }),
            http_endpoint: format!("http://{http_addr}"),
            shared,
            stops: vec![grpc_stop_tx, http_stop_tx],
            tasks: vec![grpc_task, http_task],
        }
    }

    /// "http://127.0.0.1:PORT/v1/traces".
    pub fn http_traces_url(&self) -> String {
        format!("{}/v1/traces", self.http_endpoint)
    }

    /// "http://127.0.0.1:PORT/v1/metrics".
    pub fn http_metrics_url(&self) -> String {
        format!("{}/v1/metrics", self.http_endpoint)
    }

    /// Standard OTLP env vars pointing an exporter (e.g. a spawned llmtap) at
    /// this receiver: `protocol` is "grpc", "http/protobuf" or "http/json".
    /// The endpoint is the base URL; opentelemetry-otlp appends /v1/traces and
    /// /v1/metrics itself for HTTP when it reads OTEL_EXPORTER_OTLP_ENDPOINT.
    pub fn otlp_env(&self, protocol: &str) -> Vec<(&'static str, String)> {
        let endpoint = if protocol == "grpc" {
            self.grpc_endpoint.clone()
        } else {
            self.http_endpoint.clone()
        };
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
        ]
    }

    /// Every span received (and accepted) so far, in arrival order.
    pub fn spans(&self) -> Vec<SpanView> {
        self.shared.lock().spans.clone()
    }

    /// Polls `spans()` every 25 ms until `pred` holds or `timeout` passes;
    /// returns the spans seen last either way (the caller asserts).
    pub async fn wait_for_spans(
        &self,
        pred: impl Fn(&[SpanView]) -> bool,
        timeout: Duration,
    ) -> Vec<SpanView> {
        poll_until(|| self.spans(), |s| pred(s), timeout).await
    }

    /// Every metric data point received (and accepted) so far, in arrival order.
    pub fn metrics(&self) -> Vec<MetricView> {
        self.shared.lock().metrics.clone()
    }

    /// Polls `metrics()` every 25 ms until `pred` holds or `timeout` passes;
    /// returns the points seen last either way (the caller asserts).
    pub async fn wait_for_metrics(
        &self,
        pred: impl Fn(&[MetricView]) -> bool,
        timeout: Duration,
    ) -> Vec<MetricView> {
        poll_until(|| self.metrics(), |m| pred(m), timeout).await
    }

    /// Every log record received (and accepted) so far, in arrival order.
    pub fn logs(&self) -> Vec<LogView> {
        self.shared.lock().logs.clone()
    }

    /// Polls `logs()` every 25 ms until `pred` holds or `timeout` passes;
    /// returns the records seen last either way (the caller asserts).
    pub async fn wait_for_logs(
        &self,
        pred: impl Fn(&[LogView]) -> bool,
        timeout: Duration,
    ) -> Vec<LogView> {
        poll_until(|| self.logs(), |l| pred(l), timeout).await
    }

    /// Every export request that reached a server (accepted or not).
    pub fn requests(&self) -> Vec<ReceivedExport> {
        self.shared.lock().requests.clone()
    }

    /// Polls `requests()` until `pred` holds or `timeout` passes.
    pub async fn wait_for_requests(
        &self,
        pred: impl Fn(&[ReceivedExport]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedExport> {
        poll_until(|| self.requests(), |r| pred(r), timeout).await
    }

    /// Raw accepted trace export requests, for anything the views omit.
    pub fn trace_requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.shared.lock().trace_requests.clone()
    }

    /// Raw accepted metrics export requests, for anything the views omit.
    pub fn metrics_requests(&self) -> Vec<ExportMetricsServiceRequest> {
        self.shared.lock().metrics_requests.clone()
    }

    /// When on: gRPC answers `Unavailable`, HTTP answers 503, nothing is stored.
    pub fn set_failing(&self, on: bool) {
        self.shared.failing.store(on, Ordering::SeqCst);
    }

    /// Delays every response by `d` (data is stored after the delay).
    pub fn set_delay(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Forgets all spans, metrics and requests received so far.
    pub fn clear(&self) {
        *self.shared.lock() = Collected::default();
    }

    /// Stops both servers (graceful, bounded; aborted after a few seconds).
    pub async fn shutdown(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for mut task in self.tasks.drain(..) {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn poll_until<T>(
    get: impl Fn() -> Vec<T>,
    pred: impl Fn(&[T]) -> bool,
    timeout: Duration,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    // Bounded in count as well as time.
    let max_polls = timeout.as_millis() / POLL_INTERVAL.as_millis() + 2;
    let mut polls = 0u128;
    loop {
        let items = get();
        polls += 1;
        if pred(&items) {
            return items;
        }
        let now = Instant::now();
        if now >= deadline || polls >= max_polls {
            return items;
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

// ---------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------

struct GrpcReceiver(Arc<Shared>);

fn grpc_export(
    signal: &str,
    metadata: &tonic::metadata::MetadataMap,
    items: usize,
) -> ReceivedExport {
    let headers = header_pairs(&metadata.clone().into_headers());
    let path = match signal {
        "traces" => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        "logs" => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        _ => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    };
    ReceivedExport {
        transport: "grpc".to_string(),
        signal: signal.to_string(),
        path: path.to_string(),
        headers,
        items,
        accepted: false,
    }
}

fn unavailable() -> tonic::Status {
    tonic::Status::unavailable("otlp test receiver is failing (set_failing)")
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let payload = Payload::Traces(request.get_ref().clone());
        let export = grpc_export("traces", request.metadata(), payload.items());
        if self.0.ingest(payload, export).await {
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        } else {
            Err(unavailable())
        }
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let payload = Payload::Metrics(request.get_ref().clone());
        let export = grpc_export("metrics", request.metadata(), payload.items());
        if self.0.ingest(payload, export).await {
            Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
        } else {
            Err(unavailable())
        }
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let payload = Payload::Logs(request.get_ref().clone());
        let export = grpc_export("logs", request.metadata(), payload.items());
        if self.0.ingest(payload, export).await {
            Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
        } else {
            Err(unavailable())
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

async fn http_traces(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    http_export(shared, "traces", headers, body).await
}

async fn http_metrics(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    http_export(shared, "metrics", headers, body).await
}

async fn http_logs(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    http_export(shared, "logs", headers, body).await
}

/// Unknown path (e.g. an exporter given the base URL via `with_endpoint`,
/// which opentelemetry-otlp uses verbatim): recorded, then 404.
async fn http_fallback(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    shared.record(ReceivedExport {
        transport: "http/unknown".to_string(),
        signal: String::new(),
        path: uri.path().to_string(),
        headers: header_pairs(&headers),
        items: 0,
        accepted: false,
    });
    (StatusCode::NOT_FOUND, "otlp test receiver: unknown path").into_response()
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn http_export(
    shared: Arc<Shared>,
    signal: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_list = header_pairs(&headers);
    let mut export = ReceivedExport {
        transport: "http/unknown".to_string(),
        signal: signal.to_string(),
        path: format!("/v1/{signal}"),
        headers: header_list,
        items: 0,
        accepted: false,
    };

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let encoding = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        _ => {
            shared.record(export);
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content-type {content_type:?}"),
            )
                .into_response();
        }
    };
    export.transport = match encoding {
        Encoding::Protobuf => "http/protobuf",
        Encoding::Json => "http/json",
    }
    .to_string();

    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let raw = match decompress(&content_encoding, &body) {
        Ok(raw) => raw,
        Err(msg) => {
            shared.record(export);
            return (StatusCode::BAD_REQUEST, msg).into_response();
        }
    };

    let payload = match decode_payload(signal, encoding, &raw) {
        Ok(p) => p,
        Err(msg) => {
            shared.record(export);
            return (StatusCode::BAD_REQUEST, msg).into_response();
        }
    };
    export.items = payload.items();

    if !shared.ingest(payload, export).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "otlp test receiver is failing (set_failing)",
        )
            .into_response();
    }

    let (content_type, body) = match (signal, encoding) {
        ("traces", Encoding::Protobuf) => (
            "application/x-protobuf",
            ExportTraceServiceResponse::default().encode_to_vec(),
        ),
        ("traces", Encoding::Json) => (
            "application/json",
            serde_json::to_vec(&ExportTraceServiceResponse::default()).unwrap_or_default(),
        ),
        ("logs", Encoding::Protobuf) => (
            "application/x-protobuf",
            ExportLogsServiceResponse::default().encode_to_vec(),
        ),
        ("logs", Encoding::Json) => (
            "application/json",
            serde_json::to_vec(&ExportLogsServiceResponse::default()).unwrap_or_default(),
        ),
        (_, Encoding::Protobuf) => (
            "application/x-protobuf",
            ExportMetricsServiceResponse::default().encode_to_vec(),
        ),
        (_, Encoding::Json) => (
            "application/json",
            serde_json::to_vec(&ExportMetricsServiceResponse::default()).unwrap_or_default(),
        ),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn decompress(content_encoding: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    match content_encoding {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(body)
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad gzip body: {e}"))?;
            if out.len() > MAX_BODY {
                return Err("decompressed body too large".to_string());
            }
            Ok(out)
        }
        other => Err(format!("unsupported content-encoding {other:?}")),
    }
}

fn decode_payload(signal: &str, encoding: Encoding, raw: &[u8]) -> Result<Payload, String> {
    match (signal, encoding) {
        ("traces", Encoding::Protobuf) => ExportTraceServiceRequest::decode(raw)
            .map(Payload::Traces)
            .map_err(|e| format!("bad protobuf ExportTraceServiceRequest: {e}")),
        ("traces", Encoding::Json) => serde_json::from_slice::<ExportTraceServiceRequest>(raw)
            .map(Payload::Traces)
            .map_err(|e| format!("bad JSON ExportTraceServiceRequest: {e}")),
        ("logs", Encoding::Protobuf) => ExportLogsServiceRequest::decode(raw)
            .map(Payload::Logs)
            .map_err(|e| format!("bad protobuf ExportLogsServiceRequest: {e}")),
        ("logs", Encoding::Json) => serde_json::from_slice::<ExportLogsServiceRequest>(raw)
            .map(Payload::Logs)
            .map_err(|e| format!("bad JSON ExportLogsServiceRequest: {e}")),
        (_, Encoding::Protobuf) => ExportMetricsServiceRequest::decode(raw)
            .map(Payload::Metrics)
            .map_err(|e| format!("bad protobuf ExportMetricsServiceRequest: {e}")),
        (_, Encoding::Json) => serde_json::from_slice::<ExportMetricsServiceRequest>(raw)
            .map(Payload::Metrics)
            .map_err(|e| format!("bad JSON ExportMetricsServiceRequest: {e}")),
    }
}

// ---------------------------------------------------------------------------
// Flattening
// ---------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn find_attr<'a>(attrs: &'a [(String, AttrValue)], key: &str) -> Option<&'a AttrValue> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn attrs_json(attrs: &[(String, AttrValue)]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, v) in attrs {
        map.insert(k.clone(), v.to_json());
    }
    serde_json::Value::Object(map)
}

fn any_value(v: Option<&AnyValue>) -> AttrValue {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
        Some(any_value::Value::DoubleValue(f)) => AttrValue::F64(*f),
        Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
        Some(any_value::Value::BytesValue(b)) => AttrValue::Bytes(b.clone()),
        Some(any_value::Value::ArrayValue(a)) => {
            AttrValue::Array(a.values.iter().map(|v| any_value(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => AttrValue::Map(key_values(&kv.values)),
        _ => AttrValue::Other,
    }
}

fn key_values(kvs: &[KeyValue]) -> Vec<(String, AttrValue)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), any_value(kv.value.as_ref())))
        .collect()
}

fn span_kind(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn status_code(code: i32) -> &'static str {
    match code {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

fn temporality(t: i32) -> &'static str {
    match t {
        1 => "delta",
        2 => "cumulative",
        _ => "",
    }
}

fn count_spans(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

fn count_points(req: &ExportMetricsServiceRequest) -> usize {
    req.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(metric::Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum()
}

fn count_logs(req: &ExportLogsServiceRequest) -> usize {
    req.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum()
}

fn flatten_logs(req: &ExportLogsServiceRequest) -> Vec<LogView> {
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let resource = rl
            .resource
            .as_ref()
            .map(|r| key_values(&r.attributes))
            .unwrap_or_default();
        for sl in &rl.scope_logs {
            let scope_name = sl
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for r in &sl.log_records {
                out.push(LogView {
                    event_name: r.event_name.clone(),
                    severity_number: r.severity_number,
                    severity_text: r.severity_text.clone(),
                    time_unix_nanos: r.time_unix_nano,
                    observed_time_unix_nanos: r.observed_time_unix_nano,
                    trace_id: hex(&r.trace_id),
                    span_id: hex(&r.span_id),
                    flags: r.flags,
                    body: any_value(r.body.as_ref()),
                    attributes: key_values(&r.attributes),
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                });
            }
        }
    }
    out
}

fn flatten_spans(req: &ExportTraceServiceRequest) -> Vec<SpanView> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| key_values(&r.attributes))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            let scope_name = ss
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for span in &ss.spans {
                let (code, message) = span
                    .status
                    .as_ref()
                    .map(|s| (status_code(s.code), s.message.clone()))
                    .unwrap_or(("unset", String::new()));
                out.push(SpanView {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: span_kind(span.kind).to_string(),
                    start_unix_nanos: span.start_time_unix_nano,
                    end_unix_nanos: span.end_time_unix_nano,
                    status_code: code.to_string(),
                    status_message: message,
                    attributes: key_values(&span.attributes),
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    events: span
                        .events
                        .iter()
                        .map(|e| (e.name.clone(), key_values(&e.attributes)))
                        .collect(),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                });
            }
        }
    }
    out
}

fn flatten_metrics(req: &ExportMetricsServiceRequest) -> Vec<MetricView> {
    let mut out = Vec::new();
    for rm in &req.resource_metrics {
        let resource = rm
            .resource
            .as_ref()
            .map(|r| key_values(&r.attributes))
            .unwrap_or_default();
        for sm in &rm.scope_metrics {
            let scope_name = sm
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for m in &sm.metrics {
                let base = MetricView {
                    name: m.name.clone(),
                    unit: m.unit.clone(),
                    description: m.description.clone(),
                    kind: String::new(),
                    monotonic: None,
                    temporality: String::new(),
                    attributes: Vec::new(),
                    value: 0.0,
                    count: 0,
                    bounds: Vec::new(),
                    bucket_counts: Vec::new(),
                    min: None,
                    max: None,
                    start_time_unix_nanos: 0,
                    time_unix_nanos: 0,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                };
                let number =
                    |p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| match p.value {
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        None => 0.0,
                    };
                match &m.data {
                    Some(metric::Data::Gauge(g)) => {
                        for p in &g.data_points {
                            out.push(MetricView {
                                kind: "gauge".to_string(),
                                attributes: key_values(&p.attributes),
                                value: number(p),
                                start_time_unix_nanos: p.start_time_unix_nano,
                                time_unix_nanos: p.time_unix_nano,
                                ..base.clone()
                            });
                        }
                    }
                    Some(metric::Data::Sum(s)) => {
                        for p in &s.data_points {
                            out.push(MetricView {
                                kind: "sum".to_string(),
                                monotonic: Some(s.is_monotonic),
                                temporality: temporality(s.aggregation_temporality).to_string(),
                                attributes: key_values(&p.attributes),
                                value: number(p),
                                start_time_unix_nanos: p.start_time_unix_nano,
                                time_unix_nanos: p.time_unix_nano,
                                ..base.clone()
                            });
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        for p in &h.data_points {
                            out.push(MetricView {
                                kind: "histogram".to_string(),
                                temporality: temporality(h.aggregation_temporality).to_string(),
                                attributes: key_values(&p.attributes),
                                value: p.sum.unwrap_or(0.0),
                                count: p.count,
                                bounds: p.explicit_bounds.clone(),
                                bucket_counts: p.bucket_counts.clone(),
                                min: p.min,
                                max: p.max,
                                start_time_unix_nanos: p.start_time_unix_nano,
                                time_unix_nanos: p.time_unix_nano,
                                ..base.clone()
                            });
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        for p in &h.data_points {
                            out.push(MetricView {
                                kind: "exp_histogram".to_string(),
                                temporality: temporality(h.aggregation_temporality).to_string(),
                                attributes: key_values(&p.attributes),
                                value: p.sum.unwrap_or(0.0),
                                count: p.count,
                                min: p.min,
                                max: p.max,
                                start_time_unix_nanos: p.start_time_unix_nano,
                                time_unix_nanos: p.time_unix_nano,
                                ..base.clone()
                            });
                        }
                    }
                    Some(metric::Data::Summary(s)) => {
                        for p in &s.data_points {
                            out.push(MetricView {
                                kind: "summary".to_string(),
                                attributes: key_values(&p.attributes),
                                value: p.sum,
                                count: p.count,
                                start_time_unix_nanos: p.start_time_unix_nano,
                                time_unix_nanos: p.time_unix_nano,
                                ..base.clone()
                            });
                        }
                    }
                    None => {}
                }
            }
        }
    }
    out
}
