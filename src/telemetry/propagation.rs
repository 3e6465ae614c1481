//! W3C trace context and baggage: read from the caller's headers (as `OTEL_PROPAGATORS`
//! says), and written into the upstream request so the provider's own tracing (vLLM's, say)
//! joins the same trace under llmtap's inference span.

use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
use opentelemetry::Context;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

/// The trace identity of one request: its own span id, chosen at arrival so it can be sent
/// upstream before the span exists, and the caller's span when there is one.
#[derive(Debug, Clone)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The caller's span (remote), when the request carried a valid `traceparent`.
    pub parent: Option<SpanContext>,
    pub baggage: Vec<(String, String)>,
}

impl Default for TraceParent {
    fn default() -> Self {
        TraceParent {
            trace_id: TraceId::INVALID,
            span_id: SpanId::INVALID,
            parent: None,
            baggage: Vec::new(),
        }
    }
}

impl TraceParent {
    /// The caller asked for this trace to be recorded.
    pub fn parent_sampled(&self) -> bool {
        self.parent.as_ref().is_some_and(|p| p.is_sampled())
    }
}

pub struct Propagation {
    propagator: TextMapCompositePropagator,
    ids: RandomIdGenerator,
}

impl Propagation {
    /// `OTEL_PROPAGATORS` (default `tracecontext,baggage`); unknown names are skipped with a warning.
    pub fn from_env(value: Option<&str>) -> Propagation {
        let mut list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
        for name in value.unwrap_or("tracecontext,baggage").split(',') {
            match name.trim() {
                "tracecontext" => list.push(Box::new(TraceContextPropagator::new())),
                "baggage" => list.push(Box::new(BaggagePropagator::new())),
                "none" | "" => {}
                other => tracing::warn!(
                    propagator = other,
                    "unsupported OTEL_PROPAGATORS entry ignored"
                ),
            }
        }
        Propagation {
            propagator: TextMapCompositePropagator::new(list),
            ids: RandomIdGenerator::default(),
        }
    }

    /// Reads the caller's context and picks this request's ids.
    pub fn extract(&self, headers: &http::HeaderMap) -> TraceParent {
        let cx = self.propagator.extract(&HeaderExtractor(headers));
        let remote = cx.span().span_context().clone();
        let parent = remote.is_valid().then_some(remote);
        let baggage = cx
            .baggage()
            .iter()
            .map(|(k, (v, _))| (k.to_string(), v.to_string()))
            .collect();
        TraceParent {
            trace_id: parent
                .as_ref()
                .map(|p| p.trace_id())
                .unwrap_or_else(|| self.ids.new_trace_id()),
            span_id: self.ids.new_span_id(),
            parent,
            baggage,
        }
    }

    /// Writes `traceparent` (and `tracestate`) for the inference span into upstream headers.
    /// `sampled` is the head decision; the tail decision (errors, slow requests) can still keep
    /// a span the upstream was told was unsampled.
    pub fn inject(&self, trace: &TraceParent, sampled: bool, headers: &mut http::HeaderMap) {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let state = trace
            .parent
            .as_ref()
            .map(|p| p.trace_state().clone())
            .unwrap_or_default();
        let sc = SpanContext::new(trace.trace_id, trace.span_id, flags, false, state);
        let cx = Context::new().with_remote_span_context(sc);
        // Only the trace context is rewritten: the caller's baggage header is forwarded as sent.
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_the_callers_trace() {
        let p = Propagation::from_env(None);
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        h.insert("baggage", "tenant=acme,user.id=u1".parse().unwrap());
        let t = p.extract(&h);
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(t.parent_sampled());
        assert!(t.baggage.contains(&("tenant".into(), "acme".into())));
        let mut out = http::HeaderMap::new();
        p.inject(&t, true, &mut out);
        let tp = out.get("traceparent").unwrap().to_str().unwrap();
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(tp.ends_with("-01"));
        assert!(!tp.contains("00f067aa0ba902b7"));
    }

    #[test]
    fn new_trace_without_parent() {
        let p = Propagation::from_env(Some("tracecontext"));
        let t = p.extract(&http::HeaderMap::new());
        assert!(t.parent.is_none());
        assert_ne!(t.trace_id, TraceId::INVALID);
    }
}
