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
    /// The arguments as JSON, hashed ([`super::mcp::arguments_key_text`]): an MCP
    /// `tools/call` with the same name and arguments executes this call.
    pub arguments_key: Option<u64>,
    /// An MCP `tools/call` executed it, and its span (the `execute_tool` span, with the
    /// real execution time) is out: when the result comes back, only the link is made.
    pub executed: bool,
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

    /// The oldest call not yet executed that an MCP `tools/call` of `name` with arguments
    /// hashing to `key` executes: same tenant, and the same trace when `trace` is given (the
    /// app sent its trace context). Marked executed, and its copy returned.
    pub fn execute_matching(
        &mut self,
        tenant: Option<&str>,
        name: &str,
        key: u64,
        trace: Option<TraceId>,
    ) -> Option<PendingCall> {
        let found = self
            .calls
            .values_mut()
            .filter(|c| {
                !c.executed
                    && c.name == name
                    && c.arguments_key == Some(key)
                    && c.tenant.as_deref() == tenant
                    && trace.is_none_or(|t| t == c.trace_id)
            })
            .min_by_key(|c| c.requested)?;
        found.executed = true;
        Some(found.clone())
    }

    /// The call `call_id`, when pending and not yet executed, marked executed; its copy.
    pub fn execute_by_id(&mut self, call_id: &str) -> Option<PendingCall> {
        let c = self.calls.get_mut(call_id).filter(|c| !c.executed)?;
        c.executed = true;
        Some(c.clone())
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
            arguments_key: Some(7),
            executed: false,
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

    #[test]
    fn execution_matches_name_arguments_tenant_and_trace_once() {
        let t0 = Instant::now();
        let mut p = PendingToolCalls::new(Duration::from_secs(10), 10);
        let mut a = call("a", t0);
        a.tenant = Some("acme".into());
        p.insert(a);
        p.insert(call("b", t0 + Duration::from_millis(1)));
        assert!(p.execute_matching(Some("acme"), "g", 7, None).is_none());
        assert!(p.execute_matching(Some("acme"), "f", 8, None).is_none());
        assert!(p
            .execute_matching(Some("acme"), "f", 7, Some(TraceId::from(5)))
            .is_none());
        let got = p.execute_matching(Some("acme"), "f", 7, None).unwrap();
        assert_eq!(got.call_id, "a");
        assert!(got.executed);
        // Executed once only; the other tenant's call is its own.
        assert!(p.execute_matching(Some("acme"), "f", 7, None).is_none());
        assert_eq!(p.execute_matching(None, "f", 7, None).unwrap().call_id, "b");
        // Still pending: the result's return takes it (for the link).
        assert!(p.take("a").is_some_and(|c| c.executed));
    }
}
