//! The standard `OTEL_*` environment variables, read through `config::Env` so tests pass a map.
//! The Rust SDK reads some of these itself and not others; llmtap reads them all here and
//! configures the exporters explicitly, so behaviour matches other OTel SDKs.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::Env;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    Cumulative,
    Delta,
    LowMemory,
}

/// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`: where captured content goes. The
/// spans' content attributes, the `gen_ai.client.inference.operation.details` log record, both,
/// or neither (no record at all then: the record exists to carry content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCapture {
    NoContent,
    SpanOnly,
    EventOnly,
    SpanAndEvent,
}

impl ContentCapture {
    /// The variable's values, as the Python GenAI instrumentations spell them; `true`/`1` is
    /// `SPAN_ONLY` (what it meant before the event existed), anything else `NO_CONTENT`.
    pub fn parse(v: &str) -> ContentCapture {
        match v.trim().to_ascii_uppercase().as_str() {
            "TRUE" | "1" | "SPAN_ONLY" => ContentCapture::SpanOnly,
            "EVENT_ONLY" => ContentCapture::EventOnly,
            "SPAN_AND_EVENT" => ContentCapture::SpanAndEvent,
            _ => ContentCapture::NoContent,
        }
    }

    pub fn on_spans(self) -> bool {
        matches!(
            self,
            ContentCapture::SpanOnly | ContentCapture::SpanAndEvent
        )
    }

    pub fn on_events(self) -> bool {
        matches!(
            self,
            ContentCapture::EventOnly | ContentCapture::SpanAndEvent
        )
    }

    pub fn any(self) -> bool {
        self != ContentCapture::NoContent
    }
}

/// Where one signal goes over OTLP.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpTarget {
    pub protocol: Protocol,
    /// Full URL: for HTTP it already ends in `/v1/traces` or `/v1/metrics`.
    pub endpoint: String,
    pub headers: HashMap<String, String>,
    pub timeout: Duration,
    /// PEM CA bundle trusted for an `https` endpoint (`OTEL_EXPORTER_OTLP_CERTIFICATE`),
    /// on top of the system roots. HTTP transports only.
    pub certificate: Option<std::path::PathBuf>,
    /// `OTEL_EXPORTER_OTLP_COMPRESSION` (+ per signal), lower-cased: `gzip` is supported,
    /// `none` or unset sends uncompressed; anything else is warned about at start.
    pub compression: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub sdk_disabled: bool,
    pub service_name: String,
    pub resource_attributes: Vec<(String, String)>,
    pub traces_otlp: Option<OtlpTarget>,
    pub traces_console: bool,
    pub metrics_otlp: Option<OtlpTarget>,
    pub metrics_console: bool,
    /// `prometheus` named in `OTEL_METRICS_EXPORTER` (the `/metrics` endpoint is on by config anyway).
    pub metrics_prometheus: bool,
    pub metric_interval: Duration,
    pub temporality: Temporality,
    pub propagators: Option<String>,
    /// Ratio of successful, unsampled-by-caller requests kept (errors and slow ones always are).
    pub sample_ratio: f64,
    /// Follow the caller's sampled flag (parentbased_* samplers).
    pub parent_based: bool,
    pub batch_max_queue: usize,
    pub batch_max_export: usize,
    pub batch_delay: Duration,
    pub attribute_value_limit: Option<usize>,
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`, when set.
    pub capture_content: Option<ContentCapture>,
    /// `OTEL_SEMCONV_STABILITY_OPT_IN` contains `gen_ai_latest_experimental`: emit genai
    /// `main`'s names instead of v1.41.1's.
    pub genai_latest: bool,
    /// Log records (only the opt-in content event uses them): `OTEL_LOGS_EXPORTER` and the
    /// `_LOGS_` OTLP variables, batched per `OTEL_BLRP_*`.
    pub logs_otlp: Option<OtlpTarget>,
    pub logs_console: bool,
    pub log_batch_max_queue: usize,
    pub log_batch_max_export: usize,
    pub log_batch_delay: Duration,
}

fn parse_headers(s: &str) -> HashMap<String, String> {
    s.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((pct_decode(k.trim()), pct_decode(v.trim())))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn pct_decode(s: &str) -> String {
    let hexval = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on"
    )
}

impl Settings {
    pub fn from_env(env: &dyn Env) -> Settings {
        let get = |k: &str| {
            env.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let sdk_disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| truthy(&v));
        let mut resource_attributes: Vec<(String, String)> = get("OTEL_RESOURCE_ATTRIBUTES")
            .map(|s| parse_headers(&s).into_iter().collect())
            .unwrap_or_default();
        resource_attributes.sort();
        let service_name = get("OTEL_SERVICE_NAME")
            .or_else(|| {
                resource_attributes
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| "llmtap".into());

        let exporters = |var: &str| -> Vec<String> {
            get(var)
                .unwrap_or_else(|| "otlp".into())
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect()
        };
        let traces = exporters("OTEL_TRACES_EXPORTER");
        let metrics = exporters("OTEL_METRICS_EXPORTER");
        let logs = exporters("OTEL_LOGS_EXPORTER");
        let target = |signal: &str| -> OtlpTarget {
            let up = signal.to_ascii_uppercase();
            let protocol = match get(&format!("OTEL_EXPORTER_OTLP_{up}_PROTOCOL"))
                .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
                .as_deref()
            {
                Some("grpc") => Protocol::Grpc,
                Some("http/json") => Protocol::HttpJson,
                _ => Protocol::HttpProtobuf,
            };
            let endpoint = match get(&format!("OTEL_EXPORTER_OTLP_{up}_ENDPOINT")) {
                // A signal-specific endpoint is used as given.
                Some(e) => e,
                None => {
                    let base =
                        get("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|| match protocol {
                            Protocol::Grpc => "http://localhost:4317".into(),
                            _ => "http://localhost:4318".into(),
                        });
                    match protocol {
                        Protocol::Grpc => base,
                        _ => format!("{}/v1/{signal}", base.trim_end_matches('/')),
                    }
                }
            };
            let mut headers = get("OTEL_EXPORTER_OTLP_HEADERS")
                .map(|h| parse_headers(&h))
                .unwrap_or_default();
            if let Some(h) = get(&format!("OTEL_EXPORTER_OTLP_{up}_HEADERS")) {
                headers.extend(parse_headers(&h));
            }
            let timeout = get(&format!("OTEL_EXPORTER_OTLP_{up}_TIMEOUT"))
                .or_else(|| get("OTEL_EXPORTER_OTLP_TIMEOUT"))
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
                .unwrap_or(Duration::from_secs(10));
            let certificate = get(&format!("OTEL_EXPORTER_OTLP_{up}_CERTIFICATE"))
                .or_else(|| get("OTEL_EXPORTER_OTLP_CERTIFICATE"))
                .map(std::path::PathBuf::from);
            let compression = get(&format!("OTEL_EXPORTER_OTLP_{up}_COMPRESSION"))
                .or_else(|| get("OTEL_EXPORTER_OTLP_COMPRESSION"))
                .map(|v| v.to_ascii_lowercase())
                .filter(|v| v != "none");
            OtlpTarget {
                protocol,
                endpoint,
                headers,
                timeout,
                certificate,
                compression,
            }
        };
        let traces_otlp = traces.iter().any(|e| e == "otlp").then(|| target("traces"));
        let metrics_otlp = metrics
            .iter()
            .any(|e| e == "otlp")
            .then(|| target("metrics"));
        let logs_otlp = logs.iter().any(|e| e == "otlp").then(|| target("logs"));

        let sampler = get("OTEL_TRACES_SAMPLER").unwrap_or_else(|| "parentbased_always_on".into());
        let arg = get("OTEL_TRACES_SAMPLER_ARG").and_then(|v| v.parse::<f64>().ok());
        let (sample_ratio, parent_based) = match sampler.as_str() {
            "always_on" => (1.0, false),
            "always_off" => (0.0, false),
            "traceidratio" => (arg.unwrap_or(1.0), false),
            "parentbased_always_off" => (0.0, true),
            "parentbased_traceidratio" => (arg.unwrap_or(1.0), true),
            // parentbased_always_on and anything unknown: keep everything, follow the caller.
            _ => (arg.unwrap_or(1.0), true),
        };
        let temporality = match get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            Some("delta") => Temporality::Delta,
            Some("lowmemory") => Temporality::LowMemory,
            _ => Temporality::Cumulative,
        };
        let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
        Settings {
            sdk_disabled,
            service_name,
            resource_attributes,
            traces_otlp,
            traces_console: traces.iter().any(|e| e == "console"),
            metrics_otlp,
            metrics_console: metrics.iter().any(|e| e == "console"),
            metrics_prometheus: metrics.iter().any(|e| e == "prometheus"),
            metric_interval: Duration::from_millis(
                num("OTEL_METRIC_EXPORT_INTERVAL")
                    .unwrap_or(60_000)
                    .max(100),
            ),
            temporality,
            propagators: get("OTEL_PROPAGATORS"),
            sample_ratio: sample_ratio.clamp(0.0, 1.0),
            parent_based,
            batch_max_queue: num("OTEL_BSP_MAX_QUEUE_SIZE").unwrap_or(2048).max(1) as usize,
            batch_max_export: num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").unwrap_or(512).max(1) as usize,
            batch_delay: Duration::from_millis(num("OTEL_BSP_SCHEDULE_DELAY").unwrap_or(5000)),
            attribute_value_limit: num("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
                .or_else(|| num("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"))
                .map(|v| v as usize),
            capture_content: get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
                .map(|v| ContentCapture::parse(&v)),
            genai_latest: get("OTEL_SEMCONV_STABILITY_OPT_IN").is_some_and(|v| {
                v.split(',')
                    .any(|c| c.trim() == "gen_ai_latest_experimental")
            }),
            logs_otlp,
            logs_console: logs.iter().any(|e| e == "console"),
            log_batch_max_queue: num("OTEL_BLRP_MAX_QUEUE_SIZE").unwrap_or(2048).max(1) as usize,
            log_batch_max_export: num("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE").unwrap_or(512).max(1)
                as usize,
            log_batch_delay: Duration::from_millis(num("OTEL_BLRP_SCHEDULE_DELAY").unwrap_or(1000)),
        }
    }

    /// Where telemetry goes, in OTel's words (`otlp http/protobuf <url>`, `grpc`, `console`),
    /// for the start-up log line. `scrape` is whether `/metrics` is served; log records are
    /// named only when the content event is on, the only thing that makes them.
    pub fn describe(&self, scrape: bool, events: bool) -> String {
        if self.sdk_disabled {
            return "telemetry disabled (OTEL_SDK_DISABLED)".into();
        }
        let sinks = |o: &Option<OtlpTarget>, console: bool| {
            let mut v = Vec::new();
            if let Some(o) = o {
                let gzip = if o.compression.as_deref() == Some("gzip") {
                    " (gzip)"
                } else {
                    ""
                };
                v.push(format!(
                    "otlp {} {}{gzip}",
                    o.protocol.otel_name(),
                    o.endpoint
                ));
            }
            if console {
                v.push("console".into());
            }
            v
        };
        let traces = sinks(&self.traces_otlp, self.traces_console);
        let traces = if traces.is_empty() {
            "not exported".to_string()
        } else {
            traces.join(" + ")
        };
        let mut metrics = sinks(&self.metrics_otlp, self.metrics_console);
        if !metrics.is_empty() {
            let every = self.metric_interval.as_secs_f64();
            metrics = vec![format!("{} every {every} s", metrics.join(" + "))];
        }
        if scrape {
            metrics.push("/metrics for scraping".into());
        }
        let metrics = if metrics.is_empty() {
            "not exported".to_string()
        } else {
            metrics.join(" + ")
        };
        let mut line = format!("traces -> {traces}; metrics -> {metrics}");
        if events {
            let logs = sinks(&self.logs_otlp, self.logs_console);
            let logs = if logs.is_empty() {
                "not exported".to_string()
            } else {
                logs.join(" + ")
            };
            line.push_str(&format!(
                "; logs ({}) -> {logs}",
                super::semconv::EVENT_INFERENCE_DETAILS
            ));
        }
        if self.genai_latest {
            line.push_str("; GenAI names: gen_ai_latest_experimental");
        }
        line
    }
}

impl Protocol {
    /// The `OTEL_EXPORTER_OTLP_PROTOCOL` spelling.
    pub fn otel_name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_sdk_conventions() {
        let s = Settings::from_env(&env(&[]));
        let t = s.traces_otlp.unwrap();
        assert_eq!(t.protocol, Protocol::HttpProtobuf);
        assert_eq!(t.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(s.service_name, "llmtap");
        assert_eq!(s.sample_ratio, 1.0);
    }

    #[test]
    fn endpoints_protocols_headers() {
        let s = Settings::from_env(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%3Db,tenant=t"),
            ("OTEL_TRACES_EXPORTER", "otlp,console"),
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.05"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=gw,deployment.environment=prod",
            ),
        ]));
        let t = s.traces_otlp.as_ref().unwrap();
        assert_eq!(t.endpoint, "http://c:4318/v1/traces");
        assert_eq!(t.headers.get("x-api-key").unwrap(), "a=b");
        assert_eq!(
            t.certificate.as_deref(),
            Some(std::path::Path::new("/etc/otel/ca.pem"))
        );
        assert_eq!(t.compression.as_deref(), Some("gzip"));
        assert!(s.traces_console);
        assert!(s.metrics_otlp.is_none());
        assert!(s.metrics_prometheus);
        assert_eq!(s.sample_ratio, 0.05);
        assert_eq!(s.service_name, "gw");
    }

    #[test]
    fn content_modes_and_the_latest_names_opt_in() {
        let s = Settings::from_env(&env(&[]));
        assert_eq!(s.capture_content, None);
        assert!(!s.genai_latest);
        for (v, mode) in [
            ("true", ContentCapture::SpanOnly),
            ("SPAN_ONLY", ContentCapture::SpanOnly),
            ("event_only", ContentCapture::EventOnly),
            ("SPAN_AND_EVENT", ContentCapture::SpanAndEvent),
            ("NO_CONTENT", ContentCapture::NoContent),
            ("false", ContentCapture::NoContent),
        ] {
            let s = Settings::from_env(&env(&[(
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                v,
            )]));
            assert_eq!(s.capture_content, Some(mode), "{v}");
        }
        let s = Settings::from_env(&env(&[
            (
                "OTEL_SEMCONV_STABILITY_OPT_IN",
                "http, gen_ai_latest_experimental",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ]));
        assert!(s.genai_latest);
        assert_eq!(
            s.logs_otlp.map(|t| t.endpoint).as_deref(),
            Some("http://c:4318/v1/logs")
        );
        let s = Settings::from_env(&env(&[("OTEL_SEMCONV_STABILITY_OPT_IN", "http")]));
        assert!(!s.genai_latest);
    }
}
