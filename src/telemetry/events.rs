//! The opt-in `gen_ai.client.inference.operation.details` log record, one per inference call,
//! emitted when `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` is `EVENT_ONLY` or
//! `SPAN_AND_EVENT`. It carries the inference span's attributes and the captured content in
//! structured form (log attributes can hold maps and lists; span attributes cannot, so spans
//! carry JSON strings), redacted and cut by the same rules.
//!
//! Records go through the SDK's logs pipeline (an `SdkLoggerProvider` with the resource, its
//! `Logger` stamping them, a `LogProcessor`) into a bounded queue that the telemetry worker
//! exports in batches on the tokio runtime, as it does spans: the SDK's own batch processor
//! runs a thread that cannot drive the async OTLP clients.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::TraceFlags;
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    LogBatch, LogExporter as _, LogProcessor, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::Resource;

use super::batch::{BatchQueue, BatchSink, Batcher};
use super::content::Redactor;
use super::export::{self, ExportHealth};
use super::record::FinishedRequest;
use super::semconv as sc;
use super::settings::{OtlpTarget, Protocol, Settings};
use super::spans::{self, InferenceAttributes};

type Queued = (SdkLogRecord, InstrumentationScope);

/// The end of the SDK pipeline: emitted records wait in the batcher's queue for the worker
/// (bounded; a full queue drops and counts).
#[derive(Debug)]
struct QueueProcessor(Arc<BatchQueue<Queued>>);

impl LogProcessor for QueueProcessor {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        if self.0.has_room() {
            self.0.push((record.clone(), scope.clone()));
        } else {
            // Counted without cloning the record first.
            self.0.count_lost();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
}

/// Where log records go.
enum LogSink {
    Otlp {
        exporter: Box<opentelemetry_otlp::LogExporter>,
        health: ExportHealth,
    },
    Console,
}

impl BatchSink<Queued> for LogSink {
    async fn export(&self, batch: Vec<Queued>, timeout: Duration) -> Result<(), ()> {
        match self {
            LogSink::Otlp { exporter, health } => {
                let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
                    batch.iter().map(|(r, s)| (r, s)).collect();
                let res =
                    tokio::time::timeout(timeout, exporter.export(LogBatch::new(&refs))).await;
                health.report(export::flatten(res, timeout))
            }
            LogSink::Console => {
                for (r, _) in &batch {
                    println!("{}", console_line(r));
                }
                Ok(())
            }
        }
    }
}

fn console_line(r: &SdkLogRecord) -> String {
    let attrs: Vec<String> = r
        .attributes_iter()
        .filter(|(k, _)| !spans::CONTENT_KEYS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={}", any_text(v)))
        .collect();
    format!(
        "event {} {}",
        r.event_name().unwrap_or(sc::EVENT_INFERENCE_DETAILS),
        attrs.join(" ")
    )
}

fn any_text(v: &AnyValue) -> String {
    match v {
        AnyValue::String(s) => s.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Boolean(b) => b.to_string(),
        AnyValue::ListAny(l) => {
            format!("[{}]", l.iter().map(any_text).collect::<Vec<_>>().join(","))
        }
        _ => "{…}".to_string(),
    }
}

fn otlp_log_exporter(
    t: &OtlpTarget,
    resource: &Resource,
) -> Result<opentelemetry_otlp::LogExporter, String> {
    use opentelemetry_sdk::logs::LogExporter as _;
    let mut e = match t.protocol {
        Protocol::Grpc => export::with_tls(
            opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_endpoint(t.endpoint.clone())
                .with_timeout(t.timeout)
                .with_metadata(export::tonic_metadata(t)),
            t,
        )?
        .build(),
        p => opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_http_client(export::http_client(t)?)
            .with_protocol(export::protocol(p))
            .with_endpoint(t.endpoint.clone())
            .with_timeout(t.timeout)
            .with_headers(t.headers.clone())
            .build(),
    }
    .map_err(|e| e.to_string())?;
    e.set_resource(resource);
    Ok(e)
}

/// The log pipeline and its export schedule. Owned by the telemetry worker.
pub struct EventPipeline {
    logger: SdkLogger,
    _provider: SdkLoggerProvider,
    batcher: Batcher<Queued, LogSink>,
}

impl EventPipeline {
    /// The pipeline for `settings`' log exporters; `None` when no exporter could start (the
    /// reason is logged), so the worker then emits no records.
    pub fn start(settings: &Settings, resource: &Resource) -> Option<EventPipeline> {
        let mut sinks = Vec::new();
        if let Some(t) = &settings.logs_otlp {
            match otlp_log_exporter(t, resource) {
                Ok(e) => sinks.push(LogSink::Otlp {
                    exporter: Box::new(e),
                    health: ExportHealth::new("logs", &t.endpoint),
                }),
                Err(e) => tracing::warn!(error = %e, "OTLP log exporter not started"),
            }
        }
        if settings.logs_console {
            sinks.push(LogSink::Console);
        }
        if sinks.is_empty() {
            return None;
        }
        let batcher = Batcher::new(
            sinks,
            settings.log_batch_max_queue,
            settings.log_batch_max_export,
            settings.log_batch_delay,
            settings
                .logs_otlp
                .as_ref()
                .map(|t| t.timeout)
                .unwrap_or(Duration::from_secs(10)),
        );
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource.clone())
            .with_log_processor(QueueProcessor(batcher.queue()))
            .build();
        let logger = provider.logger_with_scope(
            InstrumentationScope::builder("llmtap")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        Some(EventPipeline {
            logger,
            _provider: provider,
            batcher,
        })
    }

    /// Emits the `gen_ai.client.inference.operation.details` record of a finished request:
    /// the span's attributes, and its content structured (redacted, cut by leaf; strings cut
    /// to `value_limit`). `sampled` is whether the request's span was kept.
    pub fn inference_details(
        &mut self,
        f: &FinishedRequest,
        attrs: &InferenceAttributes,
        redactor: &Redactor,
        value_limit: Option<usize>,
        sampled: bool,
    ) {
        let mut r = self.logger.create_log_record();
        r.set_event_name(sc::EVENT_INFERENCE_DETAILS);
        r.set_timestamp(spans::end_time(f));
        r.set_observed_timestamp(SystemTime::now());
        r.set_severity_number(Severity::Info);
        r.set_severity_text("INFO");
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        r.set_trace_context(f.trace.trace_id, f.trace.span_id, Some(flags));
        for KeyValue { key, value, .. } in &attrs.attributes {
            r.add_attribute(key.clone(), value_to_any(value, value_limit));
        }
        for (k, v) in &attrs.content {
            if let Some(any) = json_to_any(&redactor.content(v), value_limit) {
                r.add_attribute(Key::from_static_str(k), any);
            }
        }
        self.logger.emit(r);
        self.batcher.pushed();
    }

    /// Records lost (queue full, export failed); read and reset by the worker for the metric.
    pub fn dropped(&self) -> &AtomicUsize {
        &self.batcher.dropped
    }

    /// Called on every worker tick: exports when the schedule delay has passed.
    pub fn tick(&mut self) {
        self.batcher.tick();
    }

    /// Exports everything queued and waits (bounded) for in-flight exports to finish.
    pub async fn drain(&mut self, deadline: Instant) {
        self.batcher.drain(deadline).await;
    }
}

fn cut(s: &str, limit: Option<usize>) -> String {
    match limit {
        Some(n) if s.chars().count() > n => s.chars().take(n).collect(),
        _ => s.to_string(),
    }
}

fn value_to_any(v: &Value, limit: Option<usize>) -> AnyValue {
    match v {
        Value::Bool(b) => AnyValue::Boolean(*b),
        Value::I64(i) => AnyValue::Int(*i),
        Value::F64(f) => AnyValue::Double(*f),
        Value::String(s) => AnyValue::String(cut(s.as_str(), limit).into()),
        Value::Array(a) => {
            let items: Vec<AnyValue> = match a {
                opentelemetry::Array::Bool(v) => v.iter().map(|b| AnyValue::Boolean(*b)).collect(),
                opentelemetry::Array::I64(v) => v.iter().map(|i| AnyValue::Int(*i)).collect(),
                opentelemetry::Array::F64(v) => v.iter().map(|f| AnyValue::Double(*f)).collect(),
                opentelemetry::Array::String(v) => v
                    .iter()
                    .map(|s| AnyValue::String(cut(s.as_str(), limit).into()))
                    .collect(),
                _ => Vec::new(),
            };
            AnyValue::ListAny(Box::new(items))
        }
        other => AnyValue::String(other.to_string().into()),
    }
}

/// JSON as a structured log value; `null` has no `AnyValue`, so it is left out.
fn json_to_any(v: &serde_json::Value, limit: Option<usize>) -> Option<AnyValue> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => AnyValue::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => AnyValue::Int(i),
            None => AnyValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => AnyValue::String(cut(s, limit).into()),
        J::Array(items) => AnyValue::ListAny(Box::new(
            items.iter().filter_map(|i| json_to_any(i, limit)).collect(),
        )),
        J::Object(map) => AnyValue::Map(Box::new(
            map.iter()
                .filter_map(|(k, v)| Some((Key::from(k.clone()), json_to_any(v, limit)?)))
                .collect(),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_becomes_structured_log_values() {
        let v = serde_json::json!([{"role": "user", "id": null, "parts": [{"type": "text", "content": "héllo"}], "n": 2, "x": 0.5}]);
        let Some(AnyValue::ListAny(items)) = json_to_any(&v, Some(2)) else {
            panic!("not a list")
        };
        let AnyValue::Map(m) = &items[0] else {
            panic!("not a map")
        };
        assert!(!m.contains_key(&Key::from("id")), "null left out");
        assert_eq!(m.get(&Key::from("n")), Some(&AnyValue::Int(2)));
        assert_eq!(m.get(&Key::from("x")), Some(&AnyValue::Double(0.5)));
        let Some(AnyValue::ListAny(parts)) = m.get(&Key::from("parts")) else {
            panic!("no parts")
        };
        let AnyValue::Map(part) = &parts[0] else {
            panic!("part not a map")
        };
        assert_eq!(
            part.get(&Key::from("content")),
            Some(&AnyValue::String("hé".into())),
            "strings cut to the value length limit"
        );
    }
}
