//! Console rendering of spans (one JSON object per line), for `OTEL_TRACES_EXPORTER=console`
//! and `llmtap demo`.

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

pub fn span_json(s: &SpanData) -> String {
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
    json!({
        "name": s.name,
        "trace_id": s.span_context.trace_id().to_string(),
        "span_id": s.span_context.span_id().to_string(),
        "parent_span_id": parent,
        "kind": format!("{:?}", s.span_kind).to_ascii_lowercase(),
        "start_unix_nanos": ts(s.start_time),
        "duration_ms": s.end_time.duration_since(s.start_time).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0),
        "status": format!("{:?}", s.status),
        "attributes": attrs,
    })
    .to_string()
}
