//! Tool calls the model asked for and whose results have not come back yet. The time between
//! the response that requested a call and the follow-up request carrying its result is the
//! application's tool execution, which becomes an `execute_tool` span.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceId;

use crate::vocab::pending::PendingCall;

/// A pending call's key: its tenant and its id. A tool result closes only a call of the
/// tenant that sent it, so no tenant can close (or learn of) another tenant's call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CallKey {
    tenant: Option<Arc<str>>,
    id: String,
}

impl CallKey {
    fn of(call: &PendingCall) -> CallKey {
        CallKey {
            tenant: call.tenant.clone(),
            id: call.call_id.clone(),
        }
    }
}

/// Bounded by count (in total and per tenant) and by age: a call whose result never comes is
/// given up at the TTL.
pub struct PendingToolCalls {
    calls: HashMap<CallKey, PendingCall>,
    /// Insertion order with deadlines; entries whose call was already taken are skipped.
    order: VecDeque<(Instant, CallKey)>,
    /// Calls pending per tenant (client keys), for `max_per_tenant`.
    per_tenant: HashMap<Arc<str>, usize>,
    ttl: Duration,
    max: usize,
    max_per_tenant: usize,
}

/// What [`PendingToolCalls::insert`] did.
#[derive(Debug, Default)]
pub struct Inserted {
    /// Calls ended unanswered to make room (oldest first), and an earlier call with the same
    /// tenant and id.
    pub evicted: Vec<PendingCall>,
    /// The total bound pushed out at least one call.
    pub total_full: bool,
    /// The call's tenant already had `max_per_tenant` calls pending: it was not kept.
    pub refused: Option<PendingCall>,
}

impl PendingToolCalls {
    /// At most `max` calls, and `max_per_tenant` for any one tenant (both at least 1).
    pub fn new(ttl: Duration, max: usize, max_per_tenant: usize) -> Self {
        PendingToolCalls {
            calls: HashMap::new(),
            order: VecDeque::new(),
            per_tenant: HashMap::new(),
            ttl,
            max: max.max(1),
            max_per_tenant: max_per_tenant.max(1),
        }
    }

    /// Adds a call, unless its tenant is at its bound; pushes out the oldest calls when the
    /// total is.
    pub fn insert(&mut self, call: PendingCall) -> Inserted {
        let mut out = Inserted::default();
        let key = CallKey::of(&call);
        // The same tenant and id again: the earlier request never got its result.
        if let Some(old) = self.remove(&key) {
            out.evicted.push(old);
        }
        if let Some(t) = &call.tenant {
            if self.per_tenant.get(t).copied().unwrap_or(0) >= self.max_per_tenant {
                out.refused = Some(call);
                return out;
            }
        }
        while self.calls.len() >= self.max {
            match self.order.pop_front() {
                Some((_, k)) => {
                    if let Some(c) = self.remove(&k) {
                        out.total_full = true;
                        out.evicted.push(c);
                    }
                }
                None => break,
            }
        }
        let deadline = call.requested + self.ttl;
        if let Some(t) = &call.tenant {
            *self.per_tenant.entry(t.clone()).or_insert(0) += 1;
        }
        self.order.push_back((deadline, key.clone()));
        self.calls.insert(key, call);
        out
    }

    fn remove(&mut self, key: &CallKey) -> Option<PendingCall> {
        let call = self.calls.remove(key)?;
        if let Some(t) = &call.tenant {
            if let Some(n) = self.per_tenant.get_mut(t) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_tenant.remove(t);
                }
            }
        }
        Some(call)
    }

    /// The result for `call_id` arrived in a request of `tenant`: only that tenant's call is
    /// taken.
    pub fn take(&mut self, tenant: Option<&Arc<str>>, call_id: &str) -> Option<PendingCall> {
        self.remove(&CallKey {
            tenant: tenant.cloned(),
            id: call_id.to_owned(),
        })
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

    /// The call `call_id` of `tenant`, when pending and not yet executed, marked executed;
    /// its copy. Another tenant's call of the same id is never touched.
    pub fn execute_by_id(
        &mut self,
        tenant: Option<&Arc<str>>,
        call_id: &str,
    ) -> Option<PendingCall> {
        let key = CallKey {
            tenant: tenant.cloned(),
            id: call_id.to_owned(),
        };
        let c = self.calls.get_mut(&key).filter(|c| !c.executed)?;
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
            if let Some((_, key)) = self.order.pop_front() {
                let expired = self
                    .calls
                    .get(&key)
                    .is_some_and(|c| c.requested + self.ttl <= now);
                if expired {
                    out.extend(self.remove(&key));
                }
            }
        }
        // Keys of calls taken early stay in `order` until their deadline: compact when they
        // outnumber the live calls, so the queue stays bounded by the calls' count.
        if self.order.len() > 2 * self.calls.len() + 1024 {
            let calls = &self.calls;
            self.order.retain(|(_, k)| calls.contains_key(k));
        }
        out
    }

    /// Everything still pending (at shutdown).
    pub fn drain(&mut self) -> Vec<PendingCall> {
        self.order.clear();
        self.per_tenant.clear();
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
    use opentelemetry::trace::{SpanId, TraceState};
    use std::time::SystemTime;

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
        let mut p = PendingToolCalls::new(Duration::from_secs(10), 2, 10);
        assert!(p.insert(call("a", t0)).evicted.is_empty());
        assert!(p.insert(call("b", t0)).evicted.is_empty());
        let ins = p.insert(call("c", t0));
        assert!(ins.total_full);
        assert_eq!(ins.evicted.len(), 1);
        assert_eq!(ins.evicted[0].call_id, "a");
        assert!(p.take(None, "b").is_some());
        assert!(p.take(None, "b").is_none());
        assert!(p.expire(t0 + Duration::from_secs(5)).is_empty());
        let ex = p.expire(t0 + Duration::from_secs(11));
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].call_id, "c");
        assert!(p.is_empty());
    }

    #[test]
    fn calls_are_keyed_and_bounded_by_tenant() {
        let t0 = Instant::now();
        let mut p = PendingToolCalls::new(Duration::from_secs(10), 100, 2);
        let a: Arc<str> = Arc::from("team-a");
        let b: Arc<str> = Arc::from("team-b");
        let of = |id: &str, t: &Arc<str>| PendingCall {
            tenant: Some(t.clone()),
            ..call(id, t0)
        };
        assert!(p.insert(of("x", &b)).refused.is_none());
        // Another tenant's result with the same id closes nothing.
        assert!(p.take(Some(&a), "x").is_none());
        assert!(p.take(None, "x").is_none());
        assert!(p.insert(of("y", &b)).refused.is_none());
        // team-b is at its bound; team-a is not affected.
        assert!(p.insert(of("z", &b)).refused.is_some());
        assert!(p.insert(of("x", &a)).refused.is_none());
        assert_eq!(p.len(), 3);
        assert_eq!(
            p.take(Some(&b), "x").unwrap().tenant.as_deref(),
            Some("team-b")
        );
        assert!(p.insert(of("z", &b)).refused.is_none());
    }

    #[test]
    fn execution_matches_name_arguments_tenant_and_trace_once() {
        let t0 = Instant::now();
        let mut p = PendingToolCalls::new(Duration::from_secs(10), 10, 10);
        let mut a = call("a", t0);
        a.tenant = Some(Arc::from("acme"));
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
        let acme: Arc<str> = Arc::from("acme");
        assert!(p.take(Some(&acme), "a").is_some_and(|c| c.executed));
    }
}
