//! MCP (Model Context Protocol) operations as telemetry: the facts of one JSON-RPC request or
//! notification relayed to an MCP server, its client span (GenAI MCP conventions,
//! `open-telemetry/semantic-conventions-genai` `docs/gen-ai/mcp.md`), and the key that joins a
//! `tools/call` to the tool call a model asked for.
//!
//! The relay (`crate::mcp`) fills an [`McpOperation`] per message and submits it when its
//! response (or ack) arrived; the telemetry worker builds the span and the metrics.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::Value;

use super::propagation::TraceParent;
use super::semconv as sc;
use super::spans::{limit_values, SpanContextInfo};
use crate::vocab::error_type::ErrorType;
use crate::vocab::limits::cut;
use crate::vocab::pending::PendingCall;
use crate::vocab::provider::UpstreamInfo;

/// One MCP request or notification, from the moment llmtap read it to its response (for a
/// request) or the server's acknowledgement (for a notification).
#[derive(Debug, Clone)]
pub struct McpOperation {
    /// `mcp.method.name`: the JSON-RPC `method`, e.g. `tools/call`.
    pub method: String,
    /// `jsonrpc.request.id` as a string; `None` for a notification or a null id.
    pub request_id: Option<String>,
    /// `params.name` of `tools/call`.
    pub tool_name: Option<String>,
    /// `params.name` of `prompts/get`.
    pub prompt_name: Option<String>,
    /// `params.uri` of `resources/*`.
    pub resource_uri: Option<String>,
    /// `params.arguments` of `tools/call`: kept for the join with the model's tool call, and
    /// put on the span only with content capture on.
    pub arguments: Option<Value>,
    /// The `result` of `tools/call` (content capture only).
    pub result: Option<Value>,
    /// `Mcp-Session-Id` of the request, or the one the server gave in answer to `initialize`.
    pub session_id: Option<String>,
    /// `jsonrpc.protocol.version`, only when the message's `jsonrpc` is not `2.0`.
    pub jsonrpc_version: Option<String>,
    /// `MCP-Protocol-Version` header, else `params.protocolVersion` of `initialize`.
    pub protocol_version: Option<String>,
    /// The MCP server (`llmtap.mcp.server` = its configured name, `server.*` = its address).
    pub server: Arc<UpstreamInfo>,
    /// `network.transport`: `tcp` for HTTP, `pipe` for stdio.
    pub transport: &'static str,
    /// `network.protocol.version` of the HTTP exchange (`1.1`, `2`); `None` for stdio.
    pub http_version: Option<&'static str>,
    /// This span's ids (chosen when the request was read and sent in `params._meta`) and the
    /// caller's span.
    pub trace: TraceParent,
    pub tenant: Option<Arc<str>>,
    pub started_at: SystemTime,
    pub started: Instant,
    pub ended: Instant,
    /// `error.type`: the JSON-RPC error code, `tool_error`, an HTTP status, or llmtap's own
    /// (`timeout`, `upstream_unreachable`, `stream_truncated`, `client_disconnected`, ...).
    pub error: Option<String>,
    /// The JSON-RPC error's `message` (the span status description).
    pub error_message: Option<String>,
    /// `rpc.response.status_code`: the JSON-RPC error code, when the response had one.
    pub rpc_code: Option<i64>,
    /// The HTTP status of the exchange that carried the request.
    pub http_status: Option<u16>,
    /// The model's tool call this execution was started under (claimed from the
    /// [`ToolIndex`] when the request had no trace context of its own).
    pub joined_call: Option<String>,
}

impl McpOperation {
    /// The span name: `{mcp.method.name} {target}` with the tool or prompt name as target.
    pub fn span_name(&self) -> String {
        match self.tool_name.as_deref().or(self.prompt_name.as_deref()) {
            Some(t) => format!("{} {}", cut(&self.method), cut(t)),
            None => cut(&self.method).to_string(),
        }
    }

    pub fn is_tool_call(&self) -> bool {
        self.method == "tools/call"
    }

    /// Seconds from reading the request to its response.
    pub fn duration_secs(&self) -> f64 {
        self.ended
            .saturating_duration_since(self.started)
            .as_secs_f64()
    }

    pub fn end_time(&self) -> SystemTime {
        self.started_at + self.ended.saturating_duration_since(self.started)
    }
}

/// The join key of tool-call arguments: a hash of the arguments as JSON, so `{"a":1, "b":2}`
/// and `{"b": 2,"a": 1}` match (objects compare by key, whitespace and order do not count).
/// Text that is not JSON is hashed as a JSON string. An empty text is `{}`: models send `""`
/// for a tool without parameters, MCP clients send `{}` or nothing.
pub fn arguments_key_text(text: &str) -> u64 {
    let t = text.trim();
    if t.is_empty() {
        return arguments_key(&Value::Object(Default::default()));
    }
    match serde_json::from_str::<Value>(t) {
        Ok(v) => arguments_key(&v),
        Err(_) => arguments_key(&Value::String(text.to_string())),
    }
}

/// See [`arguments_key_text`]. `null` counts as `{}`.
pub fn arguments_key(v: &Value) -> u64 {
    // SipHash with fixed keys: the same value hashes the same in every replica of a build.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    hash_value(v, &mut h);
    h.finish()
}

fn hash_value(v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => hash_value(&Value::Object(Default::default()), h),
        Value::Bool(b) => {
            1u8.hash(h);
            b.hash(h);
        }
        Value::Number(n) => {
            2u8.hash(h);
            // 1 and 1.0 are the same argument.
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => (f as i64).to_string().hash(h),
                _ => n.to_string().hash(h),
            }
        }
        Value::String(s) => {
            3u8.hash(h);
            s.hash(h);
        }
        Value::Array(a) => {
            4u8.hash(h);
            a.len().hash(h);
            for x in a {
                hash_value(x, h);
            }
        }
        Value::Object(m) => {
            5u8.hash(h);
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.len().hash(h);
            for k in keys {
                k.hash(h);
                hash_value(&m[k], h);
            }
        }
    }
}

/// Tool calls models asked for, as the request path sees them the moment the model's answer
/// ends: what an MCP `tools/call` without trace context of its own needs to start in the model
/// call's trace (so the context it sends on in `params._meta` is that trace's). Bounded by
/// count and age; a claimed entry is gone. The worker's pending calls stay the authority on the
/// join itself (`PendingToolCalls::execute_matching`).
pub struct ToolIndex {
    by_key: HashMap<JoinKey, VecDeque<Claimable>>,
    order: VecDeque<(JoinKey, String)>,
    ttl: Duration,
    max: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct JoinKey {
    tenant: Option<Arc<str>>,
    name: String,
    arguments: u64,
}

/// A pending model tool call an MCP execution can start under.
#[derive(Debug, Clone)]
pub struct Claimable {
    pub call_id: String,
    pub trace_id: TraceId,
    /// The chat span that asked for the call.
    pub parent_span_id: SpanId,
    pub trace_state: TraceState,
    pub sampled: bool,
    at: Instant,
}

impl ToolIndex {
    pub fn new(ttl: Duration, max: usize) -> ToolIndex {
        ToolIndex {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            ttl,
            max: max.max(1),
        }
    }

    /// Adds a tool call of the model answer `trace` (the chat span's ids), pushing out the
    /// oldest entry when full.
    pub fn add(
        &mut self,
        tenant: Option<Arc<str>>,
        call: &crate::summary::ToolCall,
        trace: &TraceParent,
        sampled: bool,
    ) {
        if call.id.is_empty() {
            return;
        }
        while self.order.len() >= self.max {
            let Some((key, id)) = self.order.pop_front() else {
                break;
            };
            if let Some(list) = self.by_key.get_mut(&key) {
                list.retain(|c| c.call_id != id);
                if list.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
        let key = JoinKey {
            tenant,
            name: call.name.clone(),
            arguments: arguments_key_text(&call.arguments),
        };
        let entry = Claimable {
            call_id: call.id.clone(),
            trace_id: trace.trace_id,
            parent_span_id: trace.span_id,
            trace_state: trace
                .parent
                .as_ref()
                .map(|p| p.trace_state().clone())
                .unwrap_or_default(),
            sampled,
            at: Instant::now(),
        };
        self.order.push_back((key.clone(), call.id.clone()));
        self.by_key.entry(key).or_default().push_back(entry);
    }

    /// The oldest live call of `name` with these arguments from `tenant`, taken.
    pub fn claim(
        &mut self,
        tenant: Option<&Arc<str>>,
        name: &str,
        arguments: &Value,
    ) -> Option<Claimable> {
        let key = JoinKey {
            tenant: tenant.cloned(),
            name: name.to_string(),
            arguments: arguments_key(arguments),
        };
        let list = self.by_key.get_mut(&key)?;
        let now = Instant::now();
        let mut found = None;
        while let Some(c) = list.pop_front() {
            if now.saturating_duration_since(c.at) < self.ttl {
                found = Some(c);
                break;
            }
        }
        if list.is_empty() {
            self.by_key.remove(&key);
        }
        // `order` keeps the claimed id until it reaches the front: harmless, bounded.
        found
    }
}

impl Claimable {
    /// The trace identity of an MCP execution of this call: its own span (`span_id`) under the
    /// chat span that asked for it.
    pub fn trace(&self, span_id: SpanId, baggage: Vec<(String, String)>) -> TraceParent {
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        TraceParent {
            trace_id: self.trace_id,
            span_id,
            parent: Some(SpanContext::new(
                self.trace_id,
                self.parent_span_id,
                flags,
                false,
                self.trace_state.clone(),
            )),
            baggage,
        }
    }
}

/// The MCP client span of `op`. `joined` is the tool call a model asked for that this
/// `tools/call` executed: the span then takes its place as the `execute_tool` span, in the
/// model call's trace under the span that asked for it (one span, not two: see docs/mcp.md).
pub fn mcp_span(
    op: &McpOperation,
    joined: Option<&PendingCall>,
    cx: &SpanContextInfo<'_>,
) -> SpanData {
    let mut a = mcp_attributes(op, joined, cx);
    limit_values(&mut a, cx.value_limit);
    let status = match &op.error {
        Some(e) => Status::error(op.error_message.clone().unwrap_or_else(|| e.clone())),
        None => Status::Unset,
    };
    let (trace_id, parent_span_id, parent_remote, state) = match (joined, &op.trace.parent) {
        (Some(c), _) => (c.trace_id, c.parent_span_id, false, c.trace_state.clone()),
        (None, Some(p)) => (
            op.trace.trace_id,
            p.span_id(),
            true,
            p.trace_state().clone(),
        ),
        (None, None) => (
            op.trace.trace_id,
            SpanId::INVALID,
            false,
            TraceState::default(),
        ),
    };
    SpanData {
        span_context: SpanContext::new(
            trace_id,
            op.trace.span_id,
            TraceFlags::SAMPLED,
            false,
            state,
        ),
        parent_span_id,
        parent_span_is_remote: parent_remote,
        span_kind: SpanKind::Client,
        name: Cow::Owned(op.span_name()),
        start_time: op.started_at,
        end_time: op.end_time(),
        attributes: a,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: cx.scope.clone(),
    }
}

/// The span's attributes (see the attribute table in docs/mcp.md).
pub fn mcp_attributes(
    op: &McpOperation,
    joined: Option<&PendingCall>,
    cx: &SpanContextInfo<'_>,
) -> Vec<KeyValue> {
    let s = |v: &str| cut(v).to_string();
    let mut a = Vec::with_capacity(24);
    a.push(KeyValue::new(sc::MCP_METHOD_NAME, s(&op.method)));
    if let Some(id) = &op.request_id {
        a.push(KeyValue::new(sc::JSONRPC_REQUEST_ID, s(id)));
    }
    if let Some(t) = &op.tool_name {
        a.push(KeyValue::new(sc::GEN_AI_TOOL_NAME, s(t)));
    }
    if op.is_tool_call() {
        a.push(KeyValue::new(sc::GEN_AI_OPERATION_NAME, "execute_tool"));
    }
    if let Some(p) = &op.prompt_name {
        a.push(KeyValue::new(sc::GEN_AI_PROMPT_NAME, s(p)));
    }
    if let Some(u) = &op.resource_uri {
        a.push(KeyValue::new(sc::MCP_RESOURCE_URI, s(u)));
    }
    if let Some(v) = &op.session_id {
        a.push(KeyValue::new(sc::MCP_SESSION_ID, s(v)));
    }
    if let Some(v) = &op.protocol_version {
        a.push(KeyValue::new(sc::MCP_PROTOCOL_VERSION, s(v)));
    }
    if let Some(v) = &op.jsonrpc_version {
        a.push(KeyValue::new(sc::JSONRPC_PROTOCOL_VERSION, s(v)));
    }
    a.push(KeyValue::new(sc::NETWORK_TRANSPORT, op.transport));
    if let Some(v) = op.http_version {
        a.push(KeyValue::new(sc::NETWORK_PROTOCOL_NAME, "http"));
        a.push(KeyValue::new(sc::NETWORK_PROTOCOL_VERSION, v));
    }
    if !op.server.address.is_empty() {
        a.push(KeyValue::new(sc::SERVER_ADDRESS, op.server.address.clone()));
        a.push(KeyValue::new(sc::SERVER_PORT, i64::from(op.server.port)));
    }
    a.push(KeyValue::new(sc::LLMTAP_MCP_SERVER, s(&op.server.name)));
    if let Some(t) = &op.tenant {
        a.push(KeyValue::new(sc::LLMTAP_TENANT, s(t)));
    }
    if let Some(c) = joined {
        a.push(KeyValue::new(sc::GEN_AI_TOOL_CALL_ID, s(&c.call_id)));
        a.push(KeyValue::new(sc::GEN_AI_TOOL_TYPE, s(&c.kind)));
        if let Some(d) = &c.description {
            a.push(KeyValue::new(sc::GEN_AI_TOOL_DESCRIPTION, d.clone()));
        }
    }
    if let (Some(red), true) = (cx.redactor, cx.content_on_spans) {
        if let Some(v) = &op.arguments {
            a.push(KeyValue::new(
                sc::GEN_AI_TOOL_CALL_ARGUMENTS,
                red.content_string(v, cx.value_limit),
            ));
        }
        if let Some(v) = &op.result {
            a.push(KeyValue::new(
                sc::GEN_AI_TOOL_CALL_RESULT,
                red.content_string(v, cx.value_limit),
            ));
        }
    }
    if let Some(code) = op.rpc_code {
        a.push(KeyValue::new(
            sc::RPC_RESPONSE_STATUS_CODE,
            code.to_string(),
        ));
    }
    if let Some(st) = op.http_status {
        a.push(KeyValue::new(sc::HTTP_RESPONSE_STATUS_CODE, i64::from(st)));
    }
    if let Some(e) = &op.error {
        a.push(KeyValue::new(sc::ERROR_TYPE, s(e)));
    }
    a
}

/// JSON-RPC error codes kept as they are in metrics' `error.type`; any other code is
/// `_OTHER`, so a server cannot grow the label set.
const KNOWN_RPC_CODES: &[&str] = &[
    "-32700", "-32600", "-32601", "-32602", "-32603", "-32000", "-32001", "-32002", "-32042",
];

/// `error.type` as the MCP metrics carry it: bounded (see [`KNOWN_RPC_CODES`]).
pub fn bounded_error_type(e: &str) -> &str {
    if KNOWN_RPC_CODES.contains(&e)
        || ErrorType::parse(e).is_some()
        || e.parse::<u16>().is_ok_and(|n| (100..=599).contains(&n))
    {
        e
    } else {
        "_OTHER"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_compare_as_json() {
        let a =
            arguments_key_text(r#"{"city": "Paris", "days": 2, "opts": {"b": [1, 2], "a": null}}"#);
        let b = arguments_key(
            &serde_json::json!({"opts": {"a": null, "b": [1.0, 2]}, "days": 2.0, "city": "Paris"}),
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            arguments_key_text(r#"{"city": "Lyon", "days": 2, "opts": {"b": [1, 2], "a": null}}"#)
        );
        assert_ne!(arguments_key_text("[1,2]"), arguments_key_text("[2,1]"));
        // No arguments, however spelled.
        assert_eq!(arguments_key_text(""), arguments_key(&Value::Null));
        assert_eq!(arguments_key_text("{}"), arguments_key(&Value::Null));
        // A string and the same text as a JSON string are the same; a number is not a string.
        assert_ne!(arguments_key_text("1"), arguments_key_text("\"1\""));
    }

    #[test]
    fn index_claims_once_by_tenant_name_and_arguments() {
        let mut idx = ToolIndex::new(Duration::from_secs(60), 2);
        let call = |id: &str, args: &str| crate::summary::ToolCall {
            id: id.into(),
            name: "get_weather".into(),
            arguments: args.into(),
            ..Default::default()
        };
        let trace = TraceParent {
            trace_id: TraceId::from(7),
            span_id: SpanId::from(9),
            ..TraceParent::default()
        };
        let acme: Arc<str> = Arc::from("acme");
        idx.add(
            Some(acme.clone()),
            &call("c1", r#"{"city": "Paris"}"#),
            &trace,
            true,
        );
        assert!(idx
            .claim(None, "get_weather", &serde_json::json!({"city": "Paris"}))
            .is_none());
        assert!(idx
            .claim(
                Some(&acme),
                "get_weather",
                &serde_json::json!({"city": "Lyon"})
            )
            .is_none());
        let c = idx
            .claim(
                Some(&acme),
                "get_weather",
                &serde_json::json!({"city": "Paris"}),
            )
            .unwrap();
        assert_eq!(c.call_id, "c1");
        let t = c.trace(SpanId::from(11), Vec::new());
        assert_eq!(t.trace_id, TraceId::from(7));
        assert_eq!(t.parent.unwrap().span_id(), SpanId::from(9));
        assert!(idx
            .claim(
                Some(&acme),
                "get_weather",
                &serde_json::json!({"city": "Paris"})
            )
            .is_none());
        // Bounded: the oldest goes.
        idx.add(None, &call("a", "{}"), &trace, true);
        idx.add(None, &call("b", "{}"), &trace, true);
        idx.add(None, &call("c", "{}"), &trace, true);
        let first = idx.claim(None, "get_weather", &Value::Null).unwrap();
        assert_eq!(first.call_id, "b");
    }

    #[test]
    fn rpc_codes_are_bounded_on_metrics() {
        assert_eq!(bounded_error_type("-32602"), "-32602");
        assert_eq!(bounded_error_type("tool_error"), "tool_error");
        assert_eq!(bounded_error_type("timeout"), "timeout");
        assert_eq!(bounded_error_type("502"), "502");
        assert_eq!(bounded_error_type("-31999"), "_OTHER");
        assert_eq!(bounded_error_type("anything"), "_OTHER");
    }
}
