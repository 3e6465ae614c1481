//! The live view's JSON, computed from the ring when asked: a row per call, one call in
//! detail (its span attributes as exported, its timeline, its tool spans and the calls they
//! link), and the aggregates of the last minutes behind the five panels.
//!
//! Nothing here holds state; every function reads a snapshot of the ring.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{Array, KeyValue, Value as OtelValue};
use serde_json::{json, Value};

use crate::stream::openai::Usage;
use crate::telemetry::content::Redactor;
use crate::telemetry::cost::{self, PriceTable};
use crate::telemetry::recent::{RecentCall, RecentTool};
use crate::telemetry::record::FinishedRequest;
use crate::telemetry::semconv as sc;
use crate::telemetry::spans::{self, SpanContextInfo, TokenUsage};
use crate::vocab::limits::cut;

/// What rendering needs besides the ring.
pub struct ViewCx<'a> {
    pub prices: &'a PriceTable,
    pub tenant_key: &'a str,
    pub trace_url: Option<&'a str>,
    /// How spans are built, so attributes read exactly as exported.
    pub spans: SpanContextInfo<'a>,
    /// The default redaction rules, applied to upstream error messages shown in the view
    /// (a provider's 401 message can quote part of a key).
    pub messages: &'a Redactor,
}

/// Header names whose values are credentials. A span attribute copied from one of them (a
/// `header_attributes` entry) is never shown.
const CREDENTIAL_NAMES: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "cookie",
    "set-cookie",
    "x-goog-api-key",
];

fn is_credential_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    CREDENTIAL_NAMES.contains(&last.as_str())
}

/// Filters from the query string; every one is optional.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Requested or responding model.
    pub model: Option<String>,
    pub upstream: Option<String>,
    /// `ok`, `error`, an HTTP status, or an `error.type`.
    pub status: Option<String>,
    pub tenant: Option<String>,
    /// `gen_ai.conversation.id` as shown (cut like on the span). With client keys, combine it
    /// with `tenant`: a conversation id is the client's to choose, the tenant is the key's.
    pub conversation: Option<String>,
    /// Only calls with a larger id (for catching up after a reconnect).
    pub after: Option<u64>,
    /// Most rows returned (newest first).
    pub limit: Option<usize>,
    /// Window of the summary, in minutes.
    pub minutes: Option<f64>,
}

impl Filter {
    /// From a raw query string (`a=b&c=d`, percent-encoded); unknown keys are ignored and
    /// empty values mean "any".
    pub fn from_query(q: Option<&str>) -> Filter {
        let mut f = Filter::default();
        for pair in q.unwrap_or("").split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            if v.is_empty() {
                continue;
            }
            match k {
                "model" => f.model = Some(v),
                "upstream" => f.upstream = Some(v),
                "status" => f.status = Some(v),
                "tenant" => f.tenant = Some(v),
                "conversation" => f.conversation = Some(v),
                "after" => f.after = v.parse().ok(),
                "limit" => f.limit = v.parse().ok(),
                "minutes" => f.minutes = v.parse().ok().filter(|m: &f64| m.is_finite()),
                _ => {}
            }
        }
        f
    }

    pub fn matches(&self, c: &RecentCall, tenant_key: &str) -> bool {
        let f = &c.finished;
        if let Some(m) = &self.model {
            let req = f.request_model();
            let resp = f.response.model.as_deref();
            if req != Some(m.as_str()) && resp != Some(m.as_str()) {
                return false;
            }
        }
        if let Some(u) = &self.upstream {
            if f.upstream.as_ref().map(|x| x.name.as_str()) != Some(u.as_str()) {
                return false;
            }
        }
        if let Some(t) = &self.tenant {
            if tenant(f, tenant_key) != Some(t.as_str()) {
                return false;
            }
        }
        if let Some(want) = &self.conversation {
            if conversation(f) != Some(want.as_str()) {
                return false;
            }
        }
        if let Some(s) = &self.status {
            let ok = match s.as_str() {
                "ok" => f.error.is_none(),
                "error" => f.error.is_some(),
                s => match s.parse::<u16>() {
                    Ok(n) => f.status == Some(n),
                    Err(_) => f.error.as_deref() == Some(s),
                },
            };
            if !ok {
                return false;
            }
        }
        if self.after.is_some_and(|a| c.id <= a) {
            return false;
        }
        true
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The tenant of a call. With client keys (gateway mode) it is the key's tenant and nothing
/// else: nothing a client sends (baggage, headers) can show its call under another tenant.
/// Otherwise the configured key from its baggage, its metric attributes, or a header copied
/// onto its span.
pub fn tenant<'a>(f: &'a FinishedRequest, key: &str) -> Option<&'a str> {
    if let Some(t) = &f.tenant {
        return Some(t);
    }
    if f.gateway {
        return None;
    }
    let header = format!("http.request.header.{key}");
    f.trace
        .baggage
        .iter()
        .chain(&f.metric_attributes)
        .find(|(k, _)| k == key)
        .or_else(|| {
            f.extra_attributes
                .iter()
                .find(|(k, _)| k == key || *k == header)
        })
        .map(|(_, v)| v.as_str())
        .filter(|_| !is_credential_key(key))
}

/// The call's `gen_ai.conversation.id` as its span carries it (cut to the identifier bound).
pub fn conversation(f: &FinishedRequest) -> Option<&str> {
    spans::conversation_id(f).map(cut)
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn trace_id(f: &FinishedRequest) -> Option<String> {
    (f.trace.trace_id != TraceId::INVALID).then(|| f.trace.trace_id.to_string())
}

fn span_id(f: &FinishedRequest) -> Option<SpanId> {
    (f.trace.span_id != SpanId::INVALID).then_some(f.trace.span_id)
}

fn duration(f: &FinishedRequest) -> Duration {
    f.ended.saturating_duration_since(f.started)
}

fn ttfc(f: &FinishedRequest) -> Option<Duration> {
    f.streaming
        .then_some(f.first_chunk_at)
        .flatten()
        .map(|t| t.saturating_duration_since(f.started))
}

/// The usage shown: reported, or llmtap's estimate (flagged).
fn usage(c: &RecentCall) -> (Option<&Usage>, bool) {
    match &c.usage {
        TokenUsage::Reported(u) => (Some(u), false),
        TokenUsage::Estimated(u) => (Some(u), true),
        TokenUsage::None => (None, false),
    }
}

fn cost_usd(c: &RecentCall, cx: &ViewCx<'_>) -> Option<f64> {
    let usage = usage(c).0?;
    let price = cx.prices.price_for(&c.finished)?;
    let cost = cost::compute(price, usage);
    Some(cost.input + cost.output)
}

/// One call as a table row.
pub fn row(c: &RecentCall, cx: &ViewCx<'_>) -> Value {
    let f = &c.finished;
    let trace = trace_id(f);
    let link = match (cx.trace_url, &trace) {
        (Some(t), Some(id)) => Some(
            t.replace("{trace_id}", id)
                .replace("{span_id}", &f.trace.span_id.to_string()),
        ),
        _ => None,
    };
    let (usage, estimated) = usage(c);
    json!({
        "id": c.id,
        "start_ms": unix_ms(f.started_at),
        "end_ms": unix_ms(spans::end_time(f)),
        "api": f.dialect.map(|d| d.name()),
        "operation": f.operation.map(|o| o.name()),
        "path": f.path,
        "model": f.request_model(),
        "response_model": f.response.model,
        "upstream": f.upstream.as_ref().map(|u| u.name.as_str()),
        "provider": f.upstream.as_ref().map(|_| f.provider().semconv_name()),
        "tenant": tenant(f, cx.tenant_key),
        "conversation": conversation(f),
        "status": f.status,
        "error": f.error,
        "duration_ms": ms(duration(f)),
        "ttfc_ms": ttfc(f).map(ms),
        "streaming": f.streaming,
        "chunks": f.streaming.then_some(f.response.chunk_count),
        "input_tokens": usage.and_then(|u| u.input_tokens),
        "output_tokens": usage.and_then(|u| u.output_tokens),
        "tokens_estimated": estimated,
        "cost_usd": cost_usd(c, cx),
        "tool_calls": f.response.tool_calls.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        "tool_results": f.request.as_ref().map_or(0, |r| r.tool_results.len()),
        "trace_id": trace,
        "span_id": span_id(f).map(|s| s.to_string()),
        "sampled": c.sampled,
        "trace_url": link,
    })
}

/// The rows matching `filter`, newest first.
pub fn rows(calls: &[Arc<RecentCall>], filter: &Filter, cx: &ViewCx<'_>) -> Value {
    let limit = filter.limit.unwrap_or(200).clamp(1, calls.len().max(1));
    let rows: Vec<Value> = calls
        .iter()
        .filter(|c| filter.matches(c, cx.tenant_key))
        .take(limit)
        .map(|c| row(c, cx))
        .collect();
    let facet = |get: &dyn Fn(&FinishedRequest) -> Option<String>| -> Vec<String> {
        let mut v: Vec<String> = calls.iter().filter_map(|c| get(&c.finished)).collect();
        v.sort();
        v.dedup();
        v
    };
    json!({
        "calls": rows,
        "kept": calls.len(),
        // What the filters can pick from, over everything kept.
        "facets": {
            "model": facet(&|f| f.request_model().map(str::to_owned)),
            "upstream": facet(&|f| f.upstream.as_ref().map(|u| u.name.clone())),
            "tenant": facet(&|f| tenant(f, cx.tenant_key).map(str::to_owned)),
            "conversation": facet(&|f| conversation(f).map(str::to_owned)),
            "status": facet(&|f| f.error.clone()),
        },
    })
}

fn otel_json(v: &OtelValue) -> Value {
    match v {
        OtelValue::Bool(b) => json!(b),
        OtelValue::I64(i) => json!(i),
        OtelValue::F64(x) => json!(x),
        OtelValue::String(s) => json!(s.as_str()),
        OtelValue::Array(a) => match a {
            Array::Bool(v) => json!(v),
            Array::I64(v) => json!(v),
            Array::F64(v) => json!(v),
            Array::String(v) => json!(v.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            _ => Value::Null,
        },
        _ => json!(v.to_string()),
    }
}

fn attributes(kvs: &[KeyValue]) -> Value {
    let mut m = BTreeMap::new();
    for kv in kvs {
        if !is_credential_key(kv.key.as_str()) {
            m.insert(kv.key.as_str().to_owned(), otel_json(&kv.value));
        }
    }
    json!(m)
}

fn find_by_span(calls: &[Arc<RecentCall>], s: Option<SpanId>) -> Option<&RecentCall> {
    let s = s.filter(|s| *s != SpanId::INVALID)?;
    calls
        .iter()
        .find(|c| c.finished.trace.span_id == s)
        .map(|c| &**c)
}

fn timeline(f: &FinishedRequest) -> Value {
    json!({
        "start_ms": unix_ms(f.started_at),
        "first_chunk_ms": ttfc(f).map(|d| unix_ms(f.started_at + d)),
        "end_ms": unix_ms(spans::end_time(f)),
    })
}

/// One call in detail: its row, its span's attributes as exported, its timeline, the tool
/// calls it asked for or answered, and the calls on the other side of those.
pub fn detail(
    c: &RecentCall,
    calls: &[Arc<RecentCall>],
    tools: &[Arc<RecentTool>],
    cx: &ViewCx<'_>,
) -> Value {
    let f = &c.finished;
    let span_cx = &cx.spans;
    // With content on spans, the attributes as they were exported; otherwise built from the
    // record, which holds no content.
    let attrs = match &c.exported_attributes {
        Some(a) => attributes(a),
        None => spans::inference_attributes(f, span_cx)
            .and_then(|a| spans::inference_span(f, a, span_cx, Vec::new()))
            .map_or(json!({}), |s| attributes(&s.attributes)),
    };
    let mut out = row(c, cx);
    let own = span_id(f);
    let mut related: Vec<(u64, &'static str)> = Vec::new();
    let mut tool_rows = Vec::new();
    // Oldest first, so the timeline reads left to right.
    for t in tools.iter().rev() {
        let asked = own.is_some() && Some(t.call.parent_span_id) == own;
        let answered = own.is_some() && t.closed_by == own;
        if !asked && !answered {
            continue;
        }
        let asked_by = find_by_span(calls, Some(t.call.parent_span_id));
        let answered_by = find_by_span(calls, t.closed_by);
        if let (true, Some(b)) = (asked, answered_by) {
            if !related.iter().any(|(id, _)| *id == b.id) {
                related.push((b.id, "sent the tool results"));
            }
        }
        if let (true, Some(a)) = (answered, asked_by) {
            if !related.iter().any(|(id, _)| *id == a.id) {
                related.push((a.id, "asked for the tools"));
            }
        }
        let tool_attrs = match &t.exported_attributes {
            Some(a) => attributes(a),
            None => attributes(
                &spans::tool_span(&t.call, t.end, None, t.received, SpanId::INVALID, span_cx)
                    .attributes,
            ),
        };
        tool_rows.push(json!({
            "name": t.call.name,
            "call_id": t.call.call_id,
            "type": t.call.kind,
            "start_ms": unix_ms(t.call.requested_at),
            "end_ms": unix_ms(t.end.max(t.call.requested_at)),
            "duration_ms": ms(spans::tool_duration(&t.call, t.end)),
            "result_received": t.received,
            "asked_by": asked_by.map(|a| a.id),
            "answered_by": answered_by.map(|b| b.id),
            "attributes": tool_attrs,
        }));
    }
    let related: Vec<Value> = related
        .into_iter()
        .filter_map(|(id, relation)| {
            let r = calls.iter().find(|x| x.id == id)?;
            let mut v = row(r, cx);
            v["relation"] = json!(relation);
            v["timeline"] = timeline(&r.finished);
            Some(v)
        })
        .collect();
    let message = f
        .response
        .error
        .as_ref()
        .and_then(|e| e.message.as_deref())
        .map(|m| cx.messages.apply(m));
    if let Value::Object(o) = &mut out {
        o.insert("attributes".into(), attrs);
        o.insert("error_message".into(), json!(message));
        o.insert("timeline".into(), timeline(f));
        o.insert("tools".into(), json!(tool_rows));
        o.insert("related".into(), json!(related));
        o.insert("content_captured".into(), json!(content_captured(cx)));
    }
    out
}

/// Whether content is captured onto spans, so the view shows it.
pub fn content_captured(cx: &ViewCx<'_>) -> bool {
    cx.spans.redactor.is_some() && cx.spans.content_on_spans
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn percentiles(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({
        "p50": percentile(&v, 0.50),
        "p95": percentile(&v, 0.95),
        "p99": percentile(&v, 0.99),
        "count": v.len(),
    })
}

#[derive(Default)]
struct ModelAgg {
    requests: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    estimated: bool,
    cost_usd: f64,
    unpriced: u64,
    latency_ms: Vec<f64>,
    ttfc_ms: Vec<f64>,
}

/// Points on the requests-over-time line.
const TIMELINE_POINTS: usize = 30;
/// The summary's window when none is asked for, and the longest one.
pub const DEFAULT_MINUTES: f64 = 5.0;
const MAX_MINUTES: f64 = 24.0 * 60.0;

/// Aggregates over the calls that ended in the last `filter.minutes` (default 5): the seed's
/// five panels (requests and errors, time to first chunk, tokens and cost, tool calls, latency
/// percentiles), per model.
pub fn summary(
    calls: &[Arc<RecentCall>],
    tools: &[Arc<RecentTool>],
    capacity: usize,
    filter: &Filter,
    now: SystemTime,
    cx: &ViewCx<'_>,
) -> Value {
    let minutes = filter
        .minutes
        .unwrap_or(DEFAULT_MINUTES)
        .clamp(0.1, MAX_MINUTES);
    let window = Duration::from_secs_f64(minutes * 60.0);
    let since = now.checked_sub(window).unwrap_or(UNIX_EPOCH);
    let bucket = window / TIMELINE_POINTS as u32;
    let mut requests_t = vec![0u64; TIMELINE_POINTS];
    let mut errors_t = vec![0u64; TIMELINE_POINTS];
    let mut models: BTreeMap<String, ModelAgg> = BTreeMap::new();
    let mut all_latency = Vec::new();
    let mut counted_spans = std::collections::HashSet::new();
    for c in calls {
        let f = &c.finished;
        let end = spans::end_time(f);
        if end < since || !filter.matches(c, cx.tenant_key) {
            continue;
        }
        if let Some(s) = span_id(f) {
            counted_spans.insert(s);
        }
        let key = f
            .request_model()
            .or(f.response.model.as_deref())
            .unwrap_or("(none)")
            .to_owned();
        let m = models.entry(key).or_default();
        m.requests += 1;
        let slot = end
            .duration_since(since)
            .map(|d| (d.as_secs_f64() / bucket.as_secs_f64().max(1e-9)) as usize)
            .unwrap_or(0)
            .min(TIMELINE_POINTS - 1);
        requests_t[slot] += 1;
        if f.error.is_some() {
            m.errors += 1;
            errors_t[slot] += 1;
        }
        if let (Some(u), estimated) = usage(c) {
            m.input_tokens += u.input_tokens.unwrap_or(0);
            m.output_tokens += u.output_tokens.unwrap_or(0);
            m.estimated |= estimated;
            match cost_usd(c, cx) {
                Some(v) => m.cost_usd += v,
                None => m.unpriced += 1,
            }
        }
        let lat = ms(duration(f));
        m.latency_ms.push(lat);
        all_latency.push(lat);
        // As the metric: streamed calls that succeeded.
        if f.error.is_none() {
            if let Some(t) = ttfc(f) {
                m.ttfc_ms.push(ms(t));
            }
        }
    }
    let buckets_ms: Vec<f64> = sc::BUCKETS_DURATION.iter().map(|s| s * 1e3).collect();
    let models_json: Vec<Value> = models
        .into_iter()
        .map(|(name, m)| {
            let mut hist = vec![0u64; buckets_ms.len() + 1];
            for v in &m.ttfc_ms {
                let i = buckets_ms.partition_point(|b| b < v);
                hist[i] += 1;
            }
            json!({
                "model": name,
                "requests": m.requests,
                "errors": m.errors,
                "input_tokens": m.input_tokens,
                "output_tokens": m.output_tokens,
                "tokens_estimated": m.estimated,
                "cost_usd": m.cost_usd,
                "unpriced": m.unpriced,
                "latency_ms": percentiles(m.latency_ms),
                "ttfc_ms": percentiles(m.ttfc_ms),
                "ttfc_histogram": hist,
            })
        })
        .collect();
    // Tool calls by name, as the metric counts them: asked for by a call counted above; the
    // duration of those whose result came back.
    let mut by_tool: BTreeMap<String, (u64, u64, Vec<f64>)> = BTreeMap::new();
    for c in calls {
        if span_id(&c.finished).is_some_and(|s| counted_spans.contains(&s)) {
            for t in &c.finished.response.tool_calls {
                by_tool.entry(t.name.clone()).or_default().0 += 1;
            }
        }
    }
    for t in tools {
        if t.received && counted_spans.contains(&t.call.parent_span_id) {
            let e = by_tool.entry(t.call.name.clone()).or_default();
            e.1 += 1;
            e.2.push(ms(spans::tool_duration(&t.call, t.end)));
        }
    }
    let tools_json: Vec<Value> = by_tool
        .into_iter()
        .map(|(name, (calls, received, durations))| {
            json!({
                "name": name,
                "calls": calls,
                "results_received": received,
                "duration_ms": percentiles(durations),
            })
        })
        .collect();
    // A full ring whose oldest call ended inside the window has lost part of it.
    let covers_window = calls.len() < capacity
        || calls
            .last()
            .is_none_or(|c| spans::end_time(&c.finished) < since);
    json!({
        "window_minutes": minutes,
        "now_ms": unix_ms(now),
        "kept": calls.len(),
        "covers_window": covers_window,
        "timeline": {
            "start_ms": unix_ms(since),
            "bucket_ms": ms(bucket),
            "requests": requests_t,
            "errors": errors_t,
        },
        "ttfc_buckets_ms": buckets_ms,
        "models": models_json,
        "tools": tools_json,
        "latency_ms": percentiles(all_latency),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded_and_empty_values_ignored() {
        let f = Filter::from_query(Some(
            "model=meta-llama%2FLlama-3.1+8B&status=&tenant=acme%20corp&limit=5&minutes=0.5&x=1&after=%zz&conversation=c0de%2F1",
        ));
        assert_eq!(f.conversation.as_deref(), Some("c0de/1"));
        assert_eq!(f.model.as_deref(), Some("meta-llama/Llama-3.1 8B"));
        assert_eq!(f.status, None);
        assert_eq!(f.tenant.as_deref(), Some("acme corp"));
        assert_eq!(f.limit, Some(5));
        assert_eq!(f.minutes, Some(0.5));
        assert_eq!(f.after, None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%e2%86%92"), "→");
        let f = Filter::from_query(Some("minutes=NaN"));
        assert_eq!(f.minutes, None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn credential_names_are_recognised_under_any_prefix() {
        for k in [
            "http.request.header.authorization",
            "http.request.header.x-api-key",
            "llmtap.request.header.api-key",
            "Cookie",
        ] {
            assert!(is_credential_key(k), "{k}");
        }
        for k in [
            "gen_ai.request.model",
            "http.request.header.x-request-source",
        ] {
            assert!(!is_credential_key(k), "{k}");
        }
    }

    #[test]
    fn tenant_from_baggage_metric_attributes_or_a_header() {
        let mut f = FinishedRequest {
            facts: crate::telemetry::record::RequestFacts::for_tests(
                "POST",
                "/v1/chat/completions",
            ),
            response: Default::default(),
            ended: std::time::Instant::now(),
        };
        assert_eq!(tenant(&f, "tenant"), None);
        f.facts
            .extra_attributes
            .push(("http.request.header.x-tenant".into(), "from-header".into()));
        assert_eq!(tenant(&f, "x-tenant"), Some("from-header"));
        f.facts.trace.baggage.push(("tenant".into(), "acme".into()));
        assert_eq!(tenant(&f, "tenant"), Some("acme"));
        f.facts.extra_attributes.push((
            "http.request.header.authorization".into(),
            "Bearer x".into(),
        ));
        assert_eq!(tenant(&f, "authorization"), None, "never a credential");
    }
}
