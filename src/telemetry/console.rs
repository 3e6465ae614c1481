//! Console rendering of spans (one JSON object per line), for `OTEL_TRACES_EXPORTER=console`
//! and `llmtap demo`.

use opentelemetry::trace::Status;
use opentelemetry::{Array, Value};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{json, Map};

fn value(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => json!(b),
        Value::I64(i) => json!(i),
        Value::F64(f) => json!(f),
        Value::String(s) => json!(s.as_str()),
        Value::Array(Array::String(a)) => json!(a.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
        Value::Array(Array::I64(a)) => json!(a),
        Value::Array(Array::F64(a)) => json!(a),
        Value::Array(Array::Bool(a)) => json!(a),
        other => json!(other.to_string()),
    }
}

/// One span as one JSON line, in reading order: name, status, duration, ids, attributes.
///
/// Shape: `{"name","status","duration_ms","kind","trace_id","span_id","parent_span_id",
/// "start_unix_nanos","attributes",["links"]}`. `status` is `OK` or `ERROR: <message>` (an
/// unset status reads as `OK`, as trace viewers show it); `duration_ms` is rounded to
/// 0.01 ms below 100 ms and to 0.1 ms above.
pub fn span_line(s: &SpanData) -> String {
    let ts = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    };
    let attrs: Map<String, serde_json::Value> = s
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), value(&kv.value)))
        .collect();
    let parent = (s.parent_span_id != opentelemetry::trace::SpanId::INVALID)
        .then(|| s.parent_span_id.to_string());
    let status = match &s.status {
        Status::Error { description } if description.is_empty() => "ERROR".to_string(),
        Status::Error { description } => format!("ERROR: {description}"),
        Status::Ok | Status::Unset => "OK".to_string(),
    };
    let ms = s
        .end_time
        .duration_since(s.start_time)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0);
    let duration_ms = if ms < 100.0 {
        (ms * 100.0).round() / 100.0
    } else {
        (ms * 10.0).round() / 10.0
    };
    // Built field by field: serde_json's map would sort the keys and bury name and status.
    let mut fields: Vec<(&str, serde_json::Value)> = vec![
        ("name", json!(s.name)),
        ("status", json!(status)),
        ("duration_ms", json!(duration_ms)),
        (
            "kind",
            json!(format!("{:?}", s.span_kind).to_ascii_lowercase()),
        ),
        ("trace_id", json!(s.span_context.trace_id().to_string())),
        ("span_id", json!(s.span_context.span_id().to_string())),
        ("parent_span_id", json!(parent)),
        ("start_unix_nanos", json!(ts(s.start_time))),
        ("attributes", serde_json::Value::Object(attrs)),
    ];
    if !s.links.links.is_empty() {
        let links: Vec<_> = s
            .links
            .links
            .iter()
            .map(|l| {
                json!({
                    "trace_id": l.span_context.trace_id().to_string(),
                    "span_id": l.span_context.span_id().to_string(),
                })
            })
            .collect();
        fields.push(("links", json!(links)));
    }
    let mut out = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json!(k).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}
