//! Tool calls the model asked for and whose results have not come back yet. The time between
//! the response that requested a call and the follow-up request carrying its result is the
//! application's tool execution, which becomes an `execute_tool` span.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanId, TraceId, TraceState};

#[derive(Debug, Clone)]
pub struct PendingCall {
    pub call_id: String,
    pub name: String,
    pub kind: String,
    pub trace_id: TraceId,
    pub trace_state: TraceState,
    /// The chat span that requested the call: the tool span's parent.
    pub parent_span_id: SpanId,
    /// Whether the parent span was exported; the tool span follows it so it is never orphaned.
    pub keep: bool,
    pub requested_at: SystemTime,
    pub requested: Instant,
    pub request_model: Option<String>,
    /// `gen_ai.tool.description`: the description of the tool in the request that offered it.
    pub description: Option<String>,
    /// The tenant of the request whose response asked for the call.
    pub tenant: Option<std::sync::Arc<str>>,
    /// Opt-in content: the arguments as sent (redacted and cut when the span is built).
    pub arguments: Option<String>,
}

/// Bounded by count and by age: a call whose result never comes is given up at the TTL.
pub struct PendingToolCalls {
    calls: HashMap<String, PendingCall>,
    /// Insertion order with deadlines; entries whose call was already taken are skipped.
    order: VecDeque<(Instant, String)>,
    ttl: Duration,
    max: usize,
}

impl PendingToolCalls {
    pub fn new(ttl: Duration, max: usize) -> Self {
        PendingToolCalls {
            calls: HashMap::new(),
            order: VecDeque::new(),
            ttl,
            max: max.max(1),
        }
    }

    /// Adds a call; returns calls pushed out because the map was full (oldest first).
    pub fn insert(&mut self, call: PendingCall) -> Vec<PendingCall> {
        let mut evicted = Vec::new();
        while self.calls.len() >= self.max {
            match self.order.pop_front() {
                Some((_, id)) => evicted.extend(self.calls.remove(&id)),
                None => break,
            }
        }
        let deadline = call.requested + self.ttl;
        self.order.push_back((deadline, call.call_id.clone()));
        if let Some(old) = self.calls.insert(call.call_id.clone(), call) {
            // The same id requested twice: the earlier request never got its result.
            evicted.push(old);
        }
        evicted
    }

    /// The result for `call_id` arrived.
    pub fn take(&mut self, call_id: &str) -> Option<PendingCall> {
        self.calls.remove(call_id)
    }

    /// Calls past their TTL at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<PendingCall> {
        let mut out = Vec::new();
        while let Some((deadline, _)) = self.order.front() {
            if *deadline > now {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                if let Some(c) = self.calls.get(&id) {
                    if c.requested + self.ttl <= now {
                        out.extend(self.calls.remove(&id));
                    }
                }
            }
        }
        out
    }

    /// Everything still pending (at shutdown).
    pub fn drain(&mut self) -> Vec<PendingCall> {
        self.order.clear();
        let mut all: Vec<PendingCall> = self.calls.drain().map(|(_, c)| c).collect();
        all.sort_by_key(|c| c.requested);
        all
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, at: Instant) -> PendingCall {
        PendingCall {
            call_id: id.into(),
            name: "f".into(),
            kind: "function".into(),
            trace_id: TraceId::INVALID,
            trace_state: TraceState::default(),
            parent_span_id: SpanId::INVALID,
            keep: true,
            requested_at: SystemTime::now(),
            requested: at,
            request_model: None,
            description: None,
            tenant: None,
            arguments: None,
        }
    }

    #[test]
    fn take_expire_and_bound() {
        let t0 = Instant::now();
        let mut p = PendingToolCalls::new(Duration::from_secs(10), 2);
        assert!(p.insert(call("a", t0)).is_empty());
        assert!(p.insert(call("b", t0)).is_empty());
        let ev = p.insert(call("c", t0));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].call_id, "a");
        assert!(p.take("b").is_some());
        assert!(p.take("b").is_none());
        assert!(p.expire(t0 + Duration::from_secs(5)).is_empty());
        let ex = p.expire(t0 + Duration::from_secs(11));
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].call_id, "c");
        assert!(p.is_empty());
    }
}
