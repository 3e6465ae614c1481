//! Renders collected metrics in the Prometheus text exposition format, with the conventional
//! OpenTelemetry → Prometheus names (dots become underscores, the unit becomes a suffix,
//! `{annotation}` units are dropped, counters end in `_total`), the same names the
//! Collector's `prometheus` exporter produces, so a dashboard works against either.

use std::fmt::Write;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};

/// Prometheus metric name for an OTel name and unit.
pub fn metric_name(name: &str, unit: &str) -> String {
    let mut n = sanitize(name);
    let suffix = match unit {
        "" | "1" => None,
        u if u.starts_with('{') => None,
        "s" => Some("seconds"),
        "ms" => Some("milliseconds"),
        "By" => Some("bytes"),
        u => Some(u),
    };
    if let Some(s) = suffix {
        let s = sanitize(s);
        if !n.ends_with(&format!("_{s}")) {
            n.push('_');
            n.push_str(&s);
        }
    }
    n
}

fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels<'a>(attrs: impl Iterator<Item = &'a KeyValue>, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = attrs
        .map(|kv| {
            format!(
                "{}=\"{}\"",
                sanitize(kv.key.as_str()),
                escape(&kv.value.as_str())
            )
        })
        .collect();
    parts.sort();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn num(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

trait AsF64: Copy {
    fn f(self) -> f64;
}
impl AsF64 for f64 {
    fn f(self) -> f64 {
        self
    }
}
impl AsF64 for u64 {
    fn f(self) -> f64 {
        self as f64
    }
}
impl AsF64 for i64 {
    fn f(self) -> f64 {
        self as f64
    }
}

fn write_data<T: AsF64>(out: &mut String, m: &Metric, data: &MetricData<T>) {
    let base = metric_name(m.name(), m.unit());
    let help = escape(m.description());
    match data {
        MetricData::Sum(s) => {
            let (name, kind) = if s.is_monotonic() {
                (format!("{base}_total"), "counter")
            } else {
                (base, "gauge")
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for p in s.data_points() {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(p.attributes(), None),
                    num(p.value().f())
                );
            }
        }
        MetricData::Gauge(g) => {
            let _ = writeln!(out, "# HELP {base} {help}\n# TYPE {base} gauge");
            for p in g.data_points() {
                let _ = writeln!(
                    out,
                    "{base}{} {}",
                    labels(p.attributes(), None),
                    num(p.value().f())
                );
            }
        }
        MetricData::Histogram(h) => {
            let _ = writeln!(out, "# HELP {base} {help}\n# TYPE {base} histogram");
            for p in h.data_points() {
                let mut cumulative = 0u64;
                let bounds: Vec<f64> = p.bounds().collect();
                for (i, c) in p.bucket_counts().enumerate() {
                    cumulative += c;
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    let l = labels(p.attributes(), Some(("le", num(le))));
                    let _ = writeln!(out, "{base}_bucket{l} {cumulative}");
                }
                let l = labels(p.attributes(), None);
                let _ = writeln!(out, "{base}_sum{l} {}", num(p.sum().f()));
                let _ = writeln!(out, "{base}_count{l} {}", p.count());
            }
        }
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// The whole scrape body.
pub fn render(rm: &ResourceMetrics) -> String {
    let mut out = String::with_capacity(16 * 1024);
    for scope in rm.scope_metrics() {
        for m in scope.metrics() {
            match m.data() {
                AggregatedMetrics::F64(d) => write_data(&mut out, m, d),
                AggregatedMetrics::U64(d) => write_data(&mut out, m, d),
                AggregatedMetrics::I64(d) => write_data(&mut out, m, d),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            metric_name("gen_ai.client.operation.duration", "s"),
            "gen_ai_client_operation_duration_seconds"
        );
        assert_eq!(
            metric_name("gen_ai.client.token.usage", "{token}"),
            "gen_ai_client_token_usage"
        );
        assert_eq!(metric_name("llmtap.cost", "USD"), "llmtap_cost_USD");
    }
}
