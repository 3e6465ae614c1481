//! The OTLP/protobuf body of a span batch (`ExportTraceServiceRequest`), written straight from
//! the SDK's `SpanData` with prost's wire helpers.
//!
//! The SDK's exporter first converts every span into opentelemetry-proto's structs (a `String`
//! per attribute key and value, a `Vec` per list), then prost encodes that tree, asking each
//! nested message for its length at every level above it. Here each span's length is worked
//! out once and the bytes are written in one pass, with no intermediate tree: the same bytes
//! (a golden test compares them with opentelemetry-proto's encoding), a quarter of the
//! instructions (BENCHMARKS.md, "Issue 27: export and metrics").
//!
//! What is written, and what proto3 leaves out (empty strings and bytes, zero numbers and
//! enums), follows opentelemetry-proto 0.33: `transform::trace` (which fields come from
//! where, flags, one `ResourceSpans` with one `ScopeSpans` per scope in order of first
//! appearance) and the generated messages (field numbers; prost writes fields by number).

use opentelemetry::trace::{SpanContext, SpanId, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;
use prost::encoding::{encoded_len_varint, key_len, WireType};
use std::time::{SystemTime, UNIX_EPOCH};

/// `SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`: the exporter always says whether the
/// parent (or a link's target) is remote.
const HAS_IS_REMOTE: u32 = 0x100;
/// `SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`.
const IS_REMOTE: u32 = 0x200;

/// Encodes span batches for one resource. The resource's part of every request is the same,
/// so it is encoded once, here.
#[derive(Debug, Clone)]
pub struct TraceRequestEncoder {
    /// `ResourceSpans.resource` (key, length and message), ready to copy.
    resource: Vec<u8>,
    /// `ResourceSpans.schema_url`.
    schema_url: String,
}

impl TraceRequestEncoder {
    /// Attributes in `resource`'s iteration order, as the SDK exporter takes them.
    pub fn new(resource: &Resource) -> TraceRequestEncoder {
        let attrs: Vec<KeyValue> = resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        // Resource { attributes = 1, dropped_attributes_count = 2 (0), entity_refs = 3 (none) }
        let body = attributes_len(1, &attrs);
        let mut out = Vec::with_capacity(message_len(1, body));
        put_header(1, body, &mut out);
        put_attributes(1, &attrs, &mut out);
        TraceRequestEncoder {
            resource: out,
            schema_url: resource.schema_url().unwrap_or_default().to_string(),
        }
    }

    /// The `ExportTraceServiceRequest` for `spans`, appended to `out`.
    pub fn encode(&self, spans: &[SpanData], out: &mut Vec<u8>) {
        // Spans grouped by scope, scopes in order of first appearance (as the SDK groups).
        let mut groups: Vec<ScopeGroup<'_>> = Vec::new();
        let mut span_lens = Vec::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            let len = span_len(s);
            span_lens.push(len);
            let scope = &s.instrumentation_scope;
            let g = match groups.iter().position(|g| g.scope == scope) {
                Some(g) => g,
                None => {
                    groups.push(ScopeGroup {
                        scope,
                        spans: Vec::new(),
                        len: message_len(1, scope_len(scope))
                            + string_len(3, scope.schema_url().unwrap_or_default()),
                    });
                    groups.len() - 1
                }
            };
            groups[g].spans.push(i);
            groups[g].len += message_len(2, len);
        }
        // ExportTraceServiceRequest { resource_spans = 1 }
        // ResourceSpans { resource = 1, scope_spans = 2, schema_url = 3 }
        let resource_spans = self.resource.len()
            + groups.iter().map(|g| message_len(2, g.len)).sum::<usize>()
            + string_len(3, &self.schema_url);
        out.reserve(message_len(1, resource_spans));
        put_header(1, resource_spans, out);
        out.extend_from_slice(&self.resource);
        for g in &groups {
            // ScopeSpans { scope = 1, spans = 2, schema_url = 3 }
            put_header(2, g.len, out);
            put_scope(g.scope, out);
            for &i in &g.spans {
                put_header(2, span_lens[i], out);
                put_span(&spans[i], out);
            }
            put_string(3, g.scope.schema_url().unwrap_or_default(), out);
        }
        put_string(3, &self.schema_url, out);
    }
}

struct ScopeGroup<'a> {
    scope: &'a InstrumentationScope,
    /// Indexes into the batch.
    spans: Vec<usize>,
    /// The encoded length of the `ScopeSpans` message.
    len: usize,
}

// ----------------------------------------------------------------------------- wire helpers

/// A varint. Nearly every key and length here is under 128: one byte, written without
/// prost's loop (a call per varint that LTO leaves out of line).
#[inline(always)]
fn encode_varint(v: u64, out: &mut Vec<u8>) {
    if v < 0x80 {
        out.push(v as u8);
    } else {
        prost::encoding::encode_varint(v, out);
    }
}

/// A field key: the field number and wire type as one varint (prost's layout).
#[inline(always)]
fn encode_key(tag: u32, wire_type: WireType, out: &mut Vec<u8>) {
    encode_varint(u64::from(tag << 3 | wire_type as u32), out);
}

/// A length-delimited field: key, length, body.
fn message_len(tag: u32, body: usize) -> usize {
    key_len(tag) + encoded_len_varint(body as u64) + body
}

fn put_header(tag: u32, body: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(body as u64, out);
}

/// A proto3 `string` or `bytes` field: left out when empty.
fn string_len(tag: u32, s: &str) -> usize {
    bytes_len(tag, s.as_bytes())
}

fn put_string(tag: u32, s: &str, out: &mut Vec<u8>) {
    put_bytes(tag, s.as_bytes(), out);
}

fn bytes_len(tag: u32, b: &[u8]) -> usize {
    if b.is_empty() {
        0
    } else {
        message_len(tag, b.len())
    }
}

fn put_bytes(tag: u32, b: &[u8], out: &mut Vec<u8>) {
    if !b.is_empty() {
        put_header(tag, b.len(), out);
        out.extend_from_slice(b);
    }
}

/// A proto3 `uint32` or enum field: left out when zero.
fn varint_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v)
    }
}

fn put_varint(tag: u32, v: u64, out: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(v, out);
    }
}

/// A proto3 `fixed64` field: left out when zero.
fn fixed64_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + 8
    }
}

fn put_fixed64(tag: u32, v: u64, out: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::SixtyFourBit, out);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A proto3 `fixed32` field: left out when zero.
fn fixed32_len(tag: u32, v: u32) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + 4
    }
}

fn put_fixed32(tag: u32, v: u32, out: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::ThirtyTwoBit, out);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Nanoseconds since the epoch; a time before it is 0 (left out), as the SDK writes it.
fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

// ------------------------------------------------------------------- common.v1 messages

/// The body of an `AnyValue`: its one `value` field (string_value = 1, bool_value = 2,
/// int_value = 3, double_value = 4, array_value = 5), written whatever it holds (a oneof
/// member is present even at its default).
fn any_value_len(v: &Value) -> usize {
    match v {
        Value::String(s) => string_value_len(s),
        Value::Bool(_) => BOOL_VALUE_LEN,
        Value::I64(i) => int_value_len(*i),
        Value::F64(_) => DOUBLE_VALUE_LEN,
        Value::Array(a) => message_len(5, array_len(a)),
        // `Value` is non-exhaustive; the SDK's conversion has no arm for a new kind either.
        _ => 0,
    }
}

fn put_any_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::String(s) => put_string_value(s, out),
        Value::Bool(b) => put_bool_value(*b, out),
        Value::I64(i) => put_int_value(*i, out),
        Value::F64(f) => put_double_value(*f, out),
        Value::Array(a) => {
            put_header(5, array_len(a), out);
            put_array(a, out);
        }
        _ => {}
    }
}

fn string_value_len(s: &StringValue) -> usize {
    message_len(1, s.as_str().len())
}

fn put_string_value(s: &StringValue, out: &mut Vec<u8>) {
    put_header(1, s.as_str().len(), out);
    out.extend_from_slice(s.as_str().as_bytes());
}

const BOOL_VALUE_LEN: usize = key_len(2) + 1;

fn put_bool_value(b: bool, out: &mut Vec<u8>) {
    encode_key(2, WireType::Varint, out);
    encode_varint(u64::from(b), out);
}

/// An `int64`: a negative number takes ten bytes (two's complement as a `u64`).
fn int_value_len(i: i64) -> usize {
    key_len(3) + encoded_len_varint(i as u64)
}

fn put_int_value(i: i64, out: &mut Vec<u8>) {
    encode_key(3, WireType::Varint, out);
    encode_varint(i as u64, out);
}

const DOUBLE_VALUE_LEN: usize = key_len(4) + 8;

fn put_double_value(f: f64, out: &mut Vec<u8>) {
    encode_key(4, WireType::SixtyFourBit, out);
    out.extend_from_slice(&f.to_bits().to_le_bytes());
}

/// The body of an `ArrayValue { repeated AnyValue values = 1 }`.
fn array_len(a: &Array) -> usize {
    fn each<T>(items: &[T], len: impl Fn(&T) -> usize) -> usize {
        items.iter().map(|x| message_len(1, len(x))).sum()
    }
    match a {
        Array::Bool(v) => each(v, |_| BOOL_VALUE_LEN),
        Array::I64(v) => each(v, |i| int_value_len(*i)),
        Array::F64(v) => each(v, |_| DOUBLE_VALUE_LEN),
        Array::String(v) => each(v, string_value_len),
        _ => 0,
    }
}

fn put_array(a: &Array, out: &mut Vec<u8>) {
    fn each<T>(
        items: &[T],
        out: &mut Vec<u8>,
        len: impl Fn(&T) -> usize,
        put: impl Fn(&T, &mut Vec<u8>),
    ) {
        for x in items {
            put_header(1, len(x), out);
            put(x, out);
        }
    }
    match a {
        Array::Bool(v) => each(v, out, |_| BOOL_VALUE_LEN, |b, o| put_bool_value(*b, o)),
        Array::I64(v) => each(v, out, |i| int_value_len(*i), |i, o| put_int_value(*i, o)),
        Array::F64(v) => each(v, out, |_| DOUBLE_VALUE_LEN, |f, o| put_double_value(*f, o)),
        Array::String(v) => each(v, out, string_value_len, put_string_value),
        _ => {}
    }
}

/// The body of a `KeyValue { key = 1, value = 2, key_strindex = 3 (0) }`; the value is always
/// present.
fn key_value_len(kv: &KeyValue) -> usize {
    string_len(1, kv.key.as_str()) + message_len(2, any_value_len(&kv.value))
}

fn put_key_value(kv: &KeyValue, out: &mut Vec<u8>) {
    put_string(1, kv.key.as_str(), out);
    put_header(2, any_value_len(&kv.value), out);
    put_any_value(&kv.value, out);
}

/// A repeated `KeyValue` field.
fn attributes_len(tag: u32, attrs: &[KeyValue]) -> usize {
    attrs
        .iter()
        .map(|kv| message_len(tag, key_value_len(kv)))
        .sum()
}

fn put_attributes(tag: u32, attrs: &[KeyValue], out: &mut Vec<u8>) {
    for kv in attrs {
        put_header(tag, key_value_len(kv), out);
        put_key_value(kv, out);
    }
}

/// The body of an `InstrumentationScope { name = 1, version = 2, attributes = 3,
/// dropped_attributes_count = 4 (0) }`.
fn scope_len(scope: &InstrumentationScope) -> usize {
    let attrs: usize = scope
        .attributes()
        .map(|kv| message_len(3, key_value_len(kv)))
        .sum();
    string_len(1, scope.name()) + string_len(2, scope.version().unwrap_or_default()) + attrs
}

/// `ScopeSpans.scope` (field 1), always present.
fn put_scope(scope: &InstrumentationScope, out: &mut Vec<u8>) {
    put_header(1, scope_len(scope), out);
    put_string(1, scope.name(), out);
    put_string(2, scope.version().unwrap_or_default(), out);
    for kv in scope.attributes() {
        put_header(3, key_value_len(kv), out);
        put_key_value(kv, out);
    }
}

// -------------------------------------------------------------------- trace.v1 messages

/// The span's or link's `flags`: the trace flags plus whether the context is remote.
fn flags(trace_flags: u8, remote: bool) -> u32 {
    u32::from(trace_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

/// `Status { message = 2, code = 3 }`: the message only for an error, the code left out
/// when unset.
fn status_parts(s: &Status) -> (&str, u64) {
    match s {
        Status::Unset => ("", 0),
        Status::Ok => ("", 1),
        Status::Error { description } => (description, 2),
    }
}

fn status_len(s: &Status) -> usize {
    let (message, code) = status_parts(s);
    string_len(2, message) + varint_len(3, code)
}

/// The body of a `Span.Link { trace_id = 1, span_id = 2, trace_state = 3, attributes = 4,
/// dropped_attributes_count = 5, flags = 6 }`.
fn link_len(cx: &SpanContext, attrs: &[KeyValue], dropped: u32) -> usize {
    message_len(1, 16)
        + message_len(2, 8)
        + string_len(3, &cx.trace_state().header())
        + attributes_len(4, attrs)
        + varint_len(5, u64::from(dropped))
        + fixed32_len(6, flags(cx.trace_flags().to_u8(), cx.is_remote()))
}

/// The body of a `Span` (fields 1-16).
fn span_len(s: &SpanData) -> usize {
    let cx = &s.span_context;
    // No parent: the SDK leaves `parent_span_id` empty rather than eight zero bytes.
    let parent = if s.parent_span_id != SpanId::INVALID {
        message_len(4, 8)
    } else {
        0
    };
    let events: usize = s
        .events
        .iter()
        .map(|e| {
            // Event { time_unix_nano = 1, name = 2, attributes = 3, dropped_attributes_count = 4 }
            message_len(
                11,
                fixed64_len(1, nanos(e.timestamp))
                    + string_len(2, &e.name)
                    + attributes_len(3, &e.attributes)
                    + varint_len(4, u64::from(e.dropped_attributes_count)),
            )
        })
        .sum();
    let links: usize = s
        .links
        .iter()
        .map(|l| {
            message_len(
                13,
                link_len(&l.span_context, &l.attributes, l.dropped_attributes_count),
            )
        })
        .sum();
    message_len(1, 16)
        + message_len(2, 8)
        + string_len(3, &cx.trace_state().header())
        + parent
        + string_len(5, &s.name)
        + varint_len(6, span_kind(&s.span_kind))
        + fixed64_len(7, nanos(s.start_time))
        + fixed64_len(8, nanos(s.end_time))
        + attributes_len(9, &s.attributes)
        + varint_len(10, u64::from(s.dropped_attributes_count))
        + events
        + varint_len(12, u64::from(s.events.dropped_count))
        + links
        + varint_len(14, u64::from(s.links.dropped_count))
        + message_len(15, status_len(&s.status))
        + fixed32_len(16, flags(cx.trace_flags().to_u8(), s.parent_span_is_remote))
}

/// `Span.SpanKind`'s numbers.
fn span_kind(k: &opentelemetry::trace::SpanKind) -> u64 {
    use opentelemetry::trace::SpanKind;
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn put_span(s: &SpanData, out: &mut Vec<u8>) {
    let cx = &s.span_context;
    put_bytes(1, &cx.trace_id().to_bytes(), out);
    put_bytes(2, &cx.span_id().to_bytes(), out);
    put_string(3, &cx.trace_state().header(), out);
    if s.parent_span_id != SpanId::INVALID {
        put_bytes(4, &s.parent_span_id.to_bytes(), out);
    }
    put_string(5, &s.name, out);
    put_varint(6, span_kind(&s.span_kind), out);
    put_fixed64(7, nanos(s.start_time), out);
    put_fixed64(8, nanos(s.end_time), out);
    put_attributes(9, &s.attributes, out);
    put_varint(10, u64::from(s.dropped_attributes_count), out);
    for e in s.events.iter() {
        let (time, dropped) = (nanos(e.timestamp), u64::from(e.dropped_attributes_count));
        let len = fixed64_len(1, time)
            + string_len(2, &e.name)
            + attributes_len(3, &e.attributes)
            + varint_len(4, dropped);
        put_header(11, len, out);
        put_fixed64(1, time, out);
        put_string(2, &e.name, out);
        put_attributes(3, &e.attributes, out);
        put_varint(4, dropped, out);
    }
    put_varint(12, u64::from(s.events.dropped_count), out);
    for l in s.links.iter() {
        let lc = &l.span_context;
        let len = link_len(lc, &l.attributes, l.dropped_attributes_count);
        put_header(13, len, out);
        put_bytes(1, &lc.trace_id().to_bytes(), out);
        put_bytes(2, &lc.span_id().to_bytes(), out);
        put_string(3, &lc.trace_state().header(), out);
        put_attributes(4, &l.attributes, out);
        put_varint(5, u64::from(l.dropped_attributes_count), out);
        put_fixed32(6, flags(lc.trace_flags().to_u8(), lc.is_remote()), out);
    }
    put_varint(14, u64::from(s.links.dropped_count), out);
    put_header(15, status_len(&s.status), out);
    let (message, code) = status_parts(&s.status);
    put_string(2, message, out);
    put_varint(3, code, out);
    put_fixed32(
        16,
        flags(cx.trace_flags().to_u8(), s.parent_span_is_remote),
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        Event, Link, SpanContext, SpanKind, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message;
    use std::borrow::Cow;
    use std::time::Duration;

    /// What the SDK's HTTP exporter sends for `spans`: opentelemetry-proto's conversion,
    /// encoded by prost.
    fn sdk_bytes(spans: &[SpanData], resource: &Resource) -> Vec<u8> {
        let resource = ResourceAttributesWithSchema::from(resource);
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(spans.to_vec(), &resource),
        }
        .encode_to_vec()
    }

    fn ours(spans: &[SpanData], resource: &Resource) -> Vec<u8> {
        let mut out = Vec::new();
        TraceRequestEncoder::new(resource).encode(spans, &mut out);
        out
    }

    /// Every kind of attribute value, the edges of each (empty, zero, negative, multi-byte
    /// lengths), and an empty key.
    fn every_value() -> Vec<KeyValue> {
        let long = "x".repeat(300);
        vec![
            KeyValue::new("s", "text"),
            KeyValue::new("s.empty", ""),
            KeyValue::new("s.long", long.clone()),
            KeyValue::new("s.utf8", "grüße, 世界"),
            KeyValue::new("b.true", true),
            KeyValue::new("b.false", false),
            KeyValue::new("i.zero", 0i64),
            KeyValue::new("i.small", 7i64),
            KeyValue::new("i.big", i64::MAX),
            KeyValue::new("i.negative", -1i64),
            KeyValue::new("i.min", i64::MIN),
            KeyValue::new("f.zero", 0.0),
            KeyValue::new("f.negative", -2.5),
            KeyValue::new("f.nan", f64::NAN),
            KeyValue::new("a.bool", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("a.i64", Value::Array(Array::I64(vec![0, -3, 1 << 40]))),
            KeyValue::new("a.f64", Value::Array(Array::F64(vec![0.0, 1.5]))),
            KeyValue::new(
                "a.string",
                Value::Array(Array::String(vec![
                    "".into(),
                    "one".into(),
                    StringValue::from(long),
                ])),
            ),
            KeyValue::new("a.empty", Value::Array(Array::String(vec![]))),
            KeyValue::new("", "empty key"),
        ]
    }

    fn context(trace: u128, span: u64, sampled: bool, remote: bool, state: &str) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let state = state.parse::<TraceState>().unwrap_or_default();
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            flags,
            remote,
            state,
        )
    }

    fn span(name: &'static str, scope: &InstrumentationScope) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_nanos(1_765_000_000_123_456_789);
        SpanData {
            span_context: context(
                0x0af7651916cd43dd8448eb211c80319c,
                0xb7ad6b7169203331,
                true,
                false,
                "",
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: Cow::Borrowed(name),
            start_time: start,
            end_time: start + Duration::from_millis(42),
            attributes: every_value(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scope.clone(),
        }
    }

    #[test]
    fn the_request_is_byte_for_byte_what_the_sdk_exporter_encodes() {
        let resource = Resource::builder_empty()
            .with_service_name("llmtap-golden")
            .with_attributes([
                KeyValue::new("service.version", "0.1.0"),
                KeyValue::new("deployment.count", 3i64),
                KeyValue::new(
                    "host.arch",
                    Value::Array(Array::String(vec!["x86_64".into()])),
                ),
            ])
            .with_schema_url(
                [KeyValue::new("k", "v")],
                "https://opentelemetry.io/schemas/1.30.0",
            )
            .build();
        let llmtap = InstrumentationScope::builder("llmtap")
            .with_version("0.1.0")
            .build();
        let other = InstrumentationScope::builder("other")
            .with_schema_url("https://opentelemetry.io/schemas/1.28.0")
            .with_attributes([KeyValue::new("scope.attr", 1i64)])
            .build();

        let plain = span("chat gpt-4o-mini", &llmtap);
        // A remote parent with trace state, an error, events (one before the epoch), links
        // with and without attributes, dropped counts, not sampled.
        let mut rich = span("execute_tool get_weather", &other);
        rich.span_context = context(1, 2, false, false, "vendor=a,other=b");
        rich.parent_span_id = SpanId::from(3);
        rich.parent_span_is_remote = true;
        rich.span_kind = SpanKind::Internal;
        rich.dropped_attributes_count = 4;
        rich.status = Status::error("upstream said no");
        rich.events = SpanEvents::default();
        rich.events.events = vec![
            Event::new(
                "gen_ai.choice",
                UNIX_EPOCH + Duration::from_secs(5),
                every_value(),
                2,
            ),
            Event::new("", UNIX_EPOCH - Duration::from_secs(1), vec![], 0),
        ];
        rich.events.dropped_count = 1;
        rich.links.links = vec![
            Link::new(context(9, 8, true, true, "k=v"), every_value(), 1),
            Link::new(context(7, 6, false, false, ""), vec![], 0),
        ];
        rich.links.dropped_count = 5;
        // Every other kind and status, a local parent, no attributes, an empty name, times 0.
        let mut kinds = Vec::new();
        for (i, kind) in [SpanKind::Server, SpanKind::Producer, SpanKind::Consumer]
            .into_iter()
            .enumerate()
        {
            let mut s = span("", &llmtap);
            s.span_kind = kind;
            s.parent_span_id = SpanId::from(i as u64 + 1);
            s.attributes = vec![];
            s.status = if i == 0 {
                Status::Ok
            } else {
                Status::error("")
            };
            s.start_time = UNIX_EPOCH;
            s.end_time = UNIX_EPOCH;
            kinds.push(s);
        }

        // Scopes interleaved: grouped in order of first appearance.
        let mut batch = vec![plain.clone(), rich.clone(), plain.clone()];
        batch.extend(kinds);
        batch.push(rich);
        for spans in [&batch[..], &batch[..1], &[]] {
            let expected = sdk_bytes(spans, &resource);
            assert_eq!(ours(spans, &resource), expected, "{} spans", spans.len());
        }
        // And with the resource the service actually has (no schema URL).
        let bare = Resource::builder_empty().with_service_name("x").build();
        assert_eq!(ours(&batch, &bare), sdk_bytes(&batch, &bare));
    }

    #[test]
    fn spans_are_appended_to_what_the_buffer_holds() {
        let scope = InstrumentationScope::builder("llmtap").build();
        let resource = Resource::builder_empty().build();
        let spans = [span("a", &scope)];
        let mut out = b"prefix".to_vec();
        TraceRequestEncoder::new(&resource).encode(&spans, &mut out);
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(out[6..], sdk_bytes(&spans, &resource));
    }
}
