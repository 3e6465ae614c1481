//! A tool call the model asked for and whose result has not come back yet: what the
//! telemetry records about it, what the shared state stores for other replicas, and what an
//! MCP `tools/call` joins.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{SpanId, TraceId, TraceState};

/// A tool call a model response asked for (`tool_calls[]`, `tool_use`, `function_call`,
/// `functionCall`), held until the request carrying its result arrives or its TTL ends.
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
    /// The request's model, shared by every call of the response (cut to the identifier
    /// bound when the request was read).
    pub request_model: Option<Arc<str>>,
    /// `gen_ai.tool.description`: the description of the tool in the request that offered it.
    pub description: Option<String>,
    /// The tenant of the request whose response asked for the call.
    pub tenant: Option<Arc<str>>,
    /// Opt-in content: the arguments as sent (redacted and cut when the span is built); `None`
    /// when content capture is off.
    pub arguments: Option<String>,
    /// The arguments as JSON, hashed (`telemetry::mcp::arguments_key_text`): an MCP
    /// `tools/call` with the same name and arguments executes this call.
    pub arguments_key: Option<u64>,
    /// An MCP `tools/call` executed it, and its span (the `execute_tool` span, with the
    /// real execution time) is out: when the result comes back, only the link is made.
    pub executed: bool,
}
