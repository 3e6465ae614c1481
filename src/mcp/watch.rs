//! One HTTP exchange with an MCP server as telemetry sees it: the operations its request
//! carried, each ended by its response found in the JSON body or in the SSE stream (or by the
//! exchange's end). The relay feeds it a copy of each chunk; every operation is submitted the
//! moment it ends, so a stream the server keeps open never holds a span back.

use std::time::Instant;

use serde_json::Value;

use super::jsonrpc::{self, Outcome};
use crate::stream::sse::SseParser;
use crate::stream::tee::BodyWatcher;
use crate::telemetry::mcp::McpOperation;
use crate::telemetry::Telemetry;
use crate::vocab::error_type::ErrorType;

/// Largest JSON response body kept for reading outcomes; a larger one is relayed unread.
const MAX_JSON_BODY: usize = 32 * 1024 * 1024;

enum Body {
    /// Not read: no operation waits for a response in it, or it outgrew the limit.
    Unread,
    Json(Vec<u8>),
    Sse(Box<SseParser>),
}

/// The operations of one exchange, until each has its outcome.
pub struct McpExchange {
    telemetry: Telemetry,
    /// Operations still waiting, with the id their response carries (`None`: notification).
    open: Vec<(Option<String>, McpOperation)>,
    body: Body,
    /// Keep `result` for the span (content capture on).
    keep_result: bool,
    status: Option<u16>,
    /// An error response with no id of ours (an unreadable request, an unknown session):
    /// it is every open request's outcome.
    orphan_error: Option<Outcome>,
    failed: Option<String>,
    /// The body could not be read for outcomes (oversize, an SSE event too large, another
    /// content type): a request without a response found there is not a failure.
    unreadable: bool,
    finished: bool,
}

impl McpExchange {
    pub fn new(telemetry: Telemetry, ops: Vec<(Option<String>, McpOperation)>) -> McpExchange {
        let keep_result = telemetry.capture_content();
        McpExchange {
            telemetry,
            open: ops,
            body: Body::Unread,
            keep_result,
            status: None,
            orphan_error: None,
            failed: None,
            unreadable: false,
            finished: false,
        }
    }

    /// The response's head: its status and how its body is read.
    pub fn response_started(
        &mut self,
        status: u16,
        content_type: &str,
        session_id: Option<&str>,
        http_version: Option<&'static str>,
    ) {
        self.status = Some(status);
        for (_, op) in &mut self.open {
            op.http_status = Some(status);
            op.http_version = http_version;
            if op.session_id.is_none() {
                op.session_id = session_id.map(str::to_owned);
            }
        }
        if self.open.is_empty() {
            return;
        }
        self.body = if content_type.starts_with("text/event-stream") {
            Body::Sse(Box::new(SseParser::new()))
        } else if content_type.starts_with("application/json") {
            Body::Json(Vec::new())
        } else {
            self.unreadable = true;
            Body::Unread
        };
    }

    fn message(&mut self, msg: &Value) {
        let Some(o) = jsonrpc::outcome(msg, self.keep_result) else {
            return;
        };
        let at = self
            .open
            .iter()
            .position(|(id, _)| id.is_some() && *id == o.id_key);
        match at {
            Some(i) => {
                let (_, op) = self.open.swap_remove(i);
                self.end(op, Some(&o));
            }
            None if o.rpc_code.is_some() && self.orphan_error.is_none() => {
                self.orphan_error = Some(o);
            }
            None => {}
        }
    }

    fn end(&self, mut op: McpOperation, outcome: Option<&Outcome>) {
        end_operation(&mut op, outcome);
        self.telemetry.submit_mcp(op);
    }

    /// Ends every operation still open: the exchange is over (or failed before a response).
    fn finish_open(&mut self) {
        let status = self.status;
        let failed = self.failed.clone();
        let orphan = self.orphan_error.take();
        for (id, mut op) in std::mem::take(&mut self.open) {
            match (&failed, status) {
                (Some(e), _) => op.error = Some(e.clone()),
                (None, Some(s)) if s >= 400 => {
                    if let Some(o) = orphan.as_ref() {
                        self.end(op, Some(o));
                        continue;
                    }
                    op.error = Some(s.to_string());
                }
                // A notification (or a client's response) is done when the server acks it.
                (None, Some(_)) if id.is_none() => {}
                (None, Some(_)) if self.unreadable => {}
                (None, _) => match orphan.as_ref() {
                    Some(o) => {
                        self.end(op, Some(o));
                        continue;
                    }
                    None => op.error = Some(ErrorType::StreamTruncated.into()),
                },
            }
            self.end(op, None);
        }
    }
}

/// Ends `op` now with what its response said (`None`: no response, the caller set the error).
pub fn end_operation(op: &mut McpOperation, outcome: Option<&Outcome>) {
    op.ended = Instant::now();
    if let Some(o) = outcome {
        if let Some(code) = o.rpc_code {
            op.rpc_code = Some(code);
            op.error = Some(code.to_string());
            op.error_message.clone_from(&o.message);
        } else if o.tool_error {
            op.error = Some(ErrorType::ToolError.into());
            op.error_message.clone_from(&o.message);
        }
        if o.protocol_version.is_some() {
            op.protocol_version.clone_from(&o.protocol_version);
        }
        // The result only of a call that succeeded (the conventions' `.result`).
        if op.is_tool_call() && op.error.is_none() {
            op.result.clone_from(&o.result);
        }
    }
}

impl BodyWatcher for McpExchange {
    fn observe(&mut self, bytes: &[u8]) {
        match &mut self.body {
            Body::Unread => {}
            Body::Json(buf) => {
                if buf.len() + bytes.len() > MAX_JSON_BODY {
                    self.unreadable = true;
                    self.body = Body::Unread;
                } else {
                    buf.extend_from_slice(bytes);
                }
            }
            Body::Sse(parser) => {
                let mut found = Vec::new();
                parser.feed(bytes, |ev| {
                    // `message` events carry JSON-RPC; priming events carry no data.
                    if ev.event.is_none_or(|e| e == "message") && !ev.data.is_empty() {
                        found.extend(jsonrpc::messages(ev.data));
                    }
                });
                if parser.failed() {
                    self.unreadable = true;
                }
                for m in &found {
                    self.message(m);
                }
                if self.open.is_empty() {
                    self.body = Body::Unread;
                }
            }
        }
    }

    fn sent(&mut self, _bytes: u64) {}

    fn fail(&mut self, error_type: ErrorType) {
        if self.failed.is_none() {
            self.failed = Some(error_type.into());
        }
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Body::Json(buf) = std::mem::replace(&mut self.body, Body::Unread) {
            for m in jsonrpc::messages(&buf) {
                self.message(&m);
            }
        }
        self.finish_open();
    }
}

impl Drop for McpExchange {
    fn drop(&mut self) {
        if !self.finished {
            self.fail(ErrorType::ClientDisconnected);
            BodyWatcher::finish(self);
        }
    }
}
