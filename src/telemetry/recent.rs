//! The recent calls the live view (`/ui`) shows: a bounded ring of finished inference
//! requests, newest first, the `execute_tool` records between them, and the MCP requests
//! relayed beside them (joined to the model call they executed a tool for, or not).
//!
//! The telemetry worker feeds it from the same finished record as spans and metrics, after
//! them, off the request path. Per request that is one move of the record (already boxed)
//! into the ring under a short lock; rows, attributes and aggregates are only computed when
//! someone asks. Live subscribers get each call through a broadcast channel, which is only
//! touched when there are subscribers.
//!
//! Content: the record is scrubbed before it is kept (prompt content, tool arguments, tool
//! results and output text are dropped), so the ring holds no message content of its own.
//! When content capture puts content on spans, the worker hands over the spans' attributes as
//! exported (content already redacted and truncated); otherwise there is none.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use opentelemetry::trace::SpanId;
use opentelemetry::KeyValue;
use tokio::sync::broadcast;

use super::mcp::McpOperation;
use super::record::FinishedRequest;
use super::spans::{token_usage, TokenUsage};
use crate::vocab::pending::PendingCall;

/// Live subscribers that fall further behind than this get a `lagged` notice instead.
const EVENT_BUFFER: usize = 256;

/// One finished inference call as the view keeps it.
pub struct RecentCall {
    /// Increasing for the life of the process; the view's handle for the call.
    pub id: u64,
    pub finished: FinishedRequest,
    /// Reported usage, or llmtap's estimate (computed before the record was scrubbed).
    pub usage: TokenUsage,
    /// Whether its span was exported (sampled).
    pub sampled: bool,
    /// With content on spans: the span's attributes as exported, content included (redacted
    /// and truncated). `None` otherwise: the view builds them from the scrubbed record.
    pub exported_attributes: Option<Vec<KeyValue>>,
}

/// One `execute_tool` record: a tool call from the response that asked for it to the request
/// that carried its result (or to expiry), or its MCP execution.
#[derive(Clone)]
pub struct RecentTool {
    /// The call (its arguments dropped when kept).
    pub call: PendingCall,
    pub end: SystemTime,
    pub received: bool,
    /// The span of the request that carried the result.
    pub closed_by: Option<SpanId>,
    /// With content on spans: the execute_tool span's attributes as exported, arguments and
    /// result included (redacted and truncated).
    pub exported_attributes: Option<Vec<KeyValue>>,
    /// The MCP request that executed it ([`RecentMcp::id`]), when one did.
    pub mcp: Option<u64>,
}

/// One MCP request or notification as the view keeps it (its arguments and result dropped).
pub struct RecentMcp {
    /// Increasing for the life of the process (its own sequence, apart from the calls').
    pub id: u64,
    pub op: McpOperation,
    /// The model's tool call it executed, when joined (arguments dropped).
    pub joined: Option<PendingCall>,
    /// Whether its span was exported (sampled).
    pub sampled: bool,
    /// With content on spans: the span's attributes as exported.
    pub exported_attributes: Option<Vec<KeyValue>>,
}

struct Ring {
    calls: VecDeque<Arc<RecentCall>>,
    tools: VecDeque<Arc<RecentTool>>,
    mcp: VecDeque<Arc<RecentMcp>>,
    next_id: u64,
    next_mcp_id: u64,
}

pub struct RecentCalls {
    ring: Mutex<Ring>,
    max_calls: usize,
    content_on_spans: bool,
    events: broadcast::Sender<Arc<RecentCall>>,
    mcp_events: broadcast::Sender<Arc<RecentMcp>>,
}

impl RecentCalls {
    pub fn new(max_calls: usize, content_on_spans: bool) -> RecentCalls {
        let max_calls = max_calls.max(1);
        RecentCalls {
            ring: Mutex::new(Ring {
                calls: VecDeque::new(),
                tools: VecDeque::new(),
                mcp: VecDeque::new(),
                next_id: 1,
                next_mcp_id: 1,
            }),
            max_calls,
            content_on_spans,
            events: broadcast::channel(EVENT_BUFFER).0,
            mcp_events: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.max_calls
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic elsewhere while holding the lock leaves the ring consistent (pushes and
        // truncations are single operations), so keep serving it.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a finished inference call, dropping the oldest beyond the capacity.
    /// `exported_attributes` (capture on only) are its span's attributes as exported.
    pub fn push(
        &self,
        mut finished: FinishedRequest,
        sampled: bool,
        exported_attributes: Option<Vec<KeyValue>>,
    ) -> u64 {
        let usage = token_usage(&finished);
        scrub(&mut finished);
        let exported_attributes = exported_attributes.filter(|_| self.content_on_spans);
        let mut ring = self.lock();
        let id = ring.next_id;
        ring.next_id += 1;
        let call = Arc::new(RecentCall {
            id,
            finished,
            usage,
            sampled,
            exported_attributes,
        });
        ring.calls.push_front(call.clone());
        ring.calls.truncate(self.max_calls);
        drop(ring);
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(call);
        }
        id
    }

    /// Keeps an `execute_tool` record. Bounded like the calls (a few per call at most).
    pub fn push_tool(&self, tool: RecentTool) {
        let mut tool = tool;
        tool.call.arguments = None;
        if !self.content_on_spans {
            tool.exported_attributes = None;
        }
        let mut ring = self.lock();
        ring.tools.push_front(Arc::new(tool));
        ring.tools.truncate(self.max_calls.saturating_mul(4));
    }

    /// Keeps an MCP request (bounded like the calls); returns its id. Its arguments and result
    /// are dropped, and the joined call's arguments.
    pub fn push_mcp(
        &self,
        mut op: McpOperation,
        mut joined: Option<PendingCall>,
        sampled: bool,
        exported_attributes: Option<Vec<KeyValue>>,
    ) -> u64 {
        op.arguments = None;
        op.result = None;
        if let Some(c) = &mut joined {
            c.arguments = None;
        }
        let exported_attributes = exported_attributes.filter(|_| self.content_on_spans);
        let mut ring = self.lock();
        let id = ring.next_mcp_id;
        ring.next_mcp_id += 1;
        let m = Arc::new(RecentMcp {
            id,
            op,
            joined,
            sampled,
            exported_attributes,
        });
        ring.mcp.push_front(m.clone());
        ring.mcp.truncate(self.max_calls);
        drop(ring);
        if self.mcp_events.receiver_count() > 0 {
            let _ = self.mcp_events.send(m);
        }
        id
    }

    /// The MCP requests kept, newest first.
    pub fn mcp(&self) -> Vec<Arc<RecentMcp>> {
        self.lock().mcp.iter().cloned().collect()
    }

    /// New MCP requests as they are kept, for live views.
    pub fn subscribe_mcp(&self) -> broadcast::Receiver<Arc<RecentMcp>> {
        self.mcp_events.subscribe()
    }

    /// The result of a call an MCP request executed came back in the request whose span is
    /// `closed_by`: its record (asked for by `parent`) links that request now.
    pub fn tool_answered(&self, call_id: &str, parent: SpanId, closed_by: SpanId) {
        let mut ring = self.lock();
        let found = ring.tools.iter_mut().find(|t| {
            t.mcp.is_some()
                && t.closed_by.is_none()
                && t.call.call_id == call_id
                && t.call.parent_span_id == parent
        });
        if let Some(t) = found {
            let mut answered = RecentTool::clone(t);
            answered.received = true;
            answered.closed_by = Some(closed_by);
            *t = Arc::new(answered);
        }
    }

    /// The calls kept, newest first.
    pub fn calls(&self) -> Vec<Arc<RecentCall>> {
        self.lock().calls.iter().cloned().collect()
    }

    /// The tool records kept, newest first.
    pub fn tools(&self) -> Vec<Arc<RecentTool>> {
        self.lock().tools.iter().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<RecentCall>> {
        // Ids decrease from the front: the position is known without a search when none
        // were skipped, which is always the case (ids are dense).
        let ring = self.lock();
        let newest = ring.calls.front()?.id;
        let at = usize::try_from(newest.checked_sub(id)?).ok()?;
        ring.calls.get(at).filter(|c| c.id == id).cloned()
    }

    /// New calls as they are kept, for live views.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RecentCall>> {
        self.events.subscribe()
    }

    pub fn len(&self) -> usize {
        self.lock().calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops message content (and the per-chunk gaps, which only metrics need) from a record
/// before it is kept. Tool-call arguments leave their length behind in `output_chars`, so the
/// usage estimate made from the record stays the same.
fn scrub(f: &mut FinishedRequest) {
    f.facts.chunk_gaps = Vec::new();
    let r = &mut f.response;
    for c in &mut r.tool_calls {
        r.output_chars += c.arguments_len();
        c.arguments = String::new();
    }
    r.output_text = Vec::new();
    if let Some(req) = &mut f.facts.request {
        req.content = None;
        // Only the pending calls needed them, and those are made already.
        req.tool_descriptions = Vec::new();
        for (_, text) in &mut req.tool_results {
            *text = String::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::record::RequestFacts;

    fn finished(model: &str) -> FinishedRequest {
        let mut facts = RequestFacts::for_tests("POST", "/v1/chat/completions");
        facts.operation = Some(crate::vocab::operation::Operation::Chat);
        facts.request = Some(crate::vocab::request::RequestInfo {
            model: Some(model.into()),
            ..Default::default()
        });
        FinishedRequest {
            facts,
            response: Default::default(),
            ended: std::time::Instant::now(),
        }
    }

    #[test]
    fn bounded_and_newest_first() {
        let r = RecentCalls::new(3, false);
        for i in 0..5 {
            r.push(finished(&format!("m{i}")), true, None);
        }
        let calls = r.calls();
        assert_eq!(calls.len(), 3);
        let ids: Vec<u64> = calls.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![5, 4, 3]);
        let models: Vec<&str> = calls
            .iter()
            .map(|c| {
                c.finished
                    .request
                    .as_ref()
                    .unwrap()
                    .model
                    .as_deref()
                    .unwrap()
            })
            .collect();
        assert_eq!(models, vec!["m4", "m3", "m2"]);
        assert_eq!(r.get(4).unwrap().id, 4);
        assert!(r.get(2).is_none(), "pushed out");
        assert!(r.get(6).is_none(), "not yet");
    }

    #[test]
    fn concurrent_writers_keep_every_id_once_and_the_bound() {
        let r = Arc::new(RecentCalls::new(500, false));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        r.push(finished(&format!("t{t}-{i}")), i % 2 == 0, None);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let calls = r.calls();
        assert_eq!(calls.len(), 500);
        // Newest first, no gaps: the last 500 of the 8,000 ids.
        let ids: Vec<u64> = calls.iter().map(|c| c.id).collect();
        let want: Vec<u64> = (7501..=8000).rev().collect();
        assert_eq!(ids, want);
        // Each writer's own calls stay in its order.
        for t in 0..8 {
            let mine: Vec<u32> = calls
                .iter()
                .filter_map(|c| {
                    let m = c.finished.request.as_ref()?.model.as_deref()?;
                    m.strip_prefix(&format!("t{t}-"))?.parse().ok()
                })
                .collect();
            assert!(mine.windows(2).all(|w| w[0] > w[1]), "writer {t}: {mine:?}");
        }
    }

    #[test]
    fn content_is_scrubbed_unless_captured_and_the_estimate_kept() {
        let mut f = finished("m");
        f.facts.status = Some(200);
        f.response.tool_calls.push(crate::vocab::summary::ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
            ..Default::default()
        });
        f.response.output_text = vec!["secret answer".into()];
        f.response.output_chars = 13;
        if let Some(req) = &mut f.facts.request {
            req.tool_results = vec![("call_0".into(), "tool secret".into())];
            req.prompt_chars = 40;
        }
        let before = token_usage(&f);
        assert!(before.is_estimate());
        let r = RecentCalls::new(10, false);
        let leaked = vec![KeyValue::new(
            "gen_ai.input.messages",
            "not with capture off",
        )];
        r.push(f, true, Some(leaked));
        let kept = r.calls().remove(0);
        assert!(kept.exported_attributes.is_none());
        let resp = &kept.finished.response;
        assert!(resp.output_text.is_empty());
        assert_eq!(resp.tool_calls[0].arguments, "");
        assert_eq!(resp.tool_calls[0].name, "get_weather");
        let req = kept.finished.request.as_ref().unwrap();
        assert_eq!(req.tool_results[0].1, "");
        assert_eq!(token_usage(&kept.finished), before);
        assert_eq!(kept.usage, before);

        // With capture on the exported attributes are kept, the raw content still is not.
        let r = RecentCalls::new(10, true);
        let mut f = finished("m");
        f.response.output_text = vec!["raw".into()];
        let exported = vec![KeyValue::new("gen_ai.output.messages", "[REDACTED_EMAIL]")];
        r.push(f, true, Some(exported.clone()));
        let kept = r.calls().remove(0);
        assert!(kept.finished.response.output_text.is_empty());
        assert_eq!(kept.exported_attributes, Some(exported));
    }

    #[test]
    fn mcp_requests_are_kept_bounded_without_content() {
        let r = RecentCalls::new(2, false);
        let op = |m: &str| McpOperation {
            method: m.into(),
            request_id: None,
            tool_name: Some("get_weather".into()),
            prompt_name: None,
            resource_uri: None,
            arguments: Some(serde_json::json!({"city": "Paris"})),
            result: Some(serde_json::json!({"content": []})),
            session_id: None,
            jsonrpc_version: None,
            protocol_version: None,
            server: Arc::new(crate::vocab::provider::UpstreamInfo {
                name: "tools".into(),
                provider: crate::vocab::provider::Provider::OpenaiCompatible,
                address: Arc::from(""),
                port: 0,
            }),
            transport: "tcp",
            http_version: None,
            trace: Default::default(),
            tenant: None,
            started_at: SystemTime::now(),
            started: std::time::Instant::now(),
            ended: std::time::Instant::now(),
            error: None,
            error_message: None,
            rpc_code: None,
            http_status: None,
            joined_call: None,
            shared_call: None,
        };
        for m in ["a", "b", "c"] {
            r.push_mcp(op(m), None, true, Some(Vec::new()));
        }
        let kept = r.mcp();
        let ids: Vec<u64> = kept.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![3, 2]);
        assert_eq!(kept[0].op.method, "c");
        assert!(kept[0].op.arguments.is_none() && kept[0].op.result.is_none());
        assert!(kept[0].exported_attributes.is_none(), "capture off");
        assert_eq!(r.len(), 0, "the calls' ring is apart");
    }

    #[tokio::test]
    async fn subscribers_get_new_calls() {
        let r = RecentCalls::new(10, false);
        r.push(finished("before"), true, None);
        let mut rx = r.subscribe();
        r.push(finished("after"), true, None);
        let got = rx.recv().await.unwrap();
        assert_eq!(got.id, 2);
    }
}
