//! `RequestRecord`: everything llmtap learns about one proxied request, from arrival to the
//! last byte. The stream tee feeds it; it is finished exactly once — by the relay at the end
//! of the body, by an error path, or by `Drop` when the client goes away — and then handed to
//! the telemetry worker, which builds spans and metrics off the request path.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::config::Provider;
use crate::request::RequestInfo;
use crate::route::Operation;
use crate::stream::decode::Decoder;
use crate::stream::openai::{summarize_json_body, ResponseSummary, StreamAccumulator};

use super::propagation::TraceParent;
use super::Telemetry;

/// Largest non-streamed response body kept for parsing; larger ones are relayed unparsed.
const MAX_JSON_BODY: usize = 32 * 1024 * 1024;

/// The upstream a request went to, as the spans and metrics name it.
#[derive(Debug, Clone)]
pub struct UpstreamInfo {
    pub name: String,
    pub provider: Provider,
    pub address: String,
    pub port: u16,
}

/// How the response body is watched.
enum Observer {
    None,
    Sse(Box<StreamAccumulator>),
    Json(Vec<u8>),
    /// Parsing stopped (undecodable encoding, oversize body): telemetry only, never the relay.
    Failed,
}

/// What is known about a request; shared by the live record and the finished one.
#[derive(Debug)]
pub struct RequestFacts {
    pub started: Instant,
    pub started_at: SystemTime,
    pub method: String,
    pub path: String,
    pub upstream: Option<Arc<UpstreamInfo>>,
    pub operation: Option<Operation>,
    pub request: Option<RequestInfo>,
    pub trace: TraceParent,
    /// Span attributes from configured baggage keys and headers.
    pub extra_attributes: Vec<(String, String)>,
    /// Metric attributes from configured baggage keys and headers (bounded later).
    pub metric_attributes: Vec<(String, String)>,
    pub prompt_template: Option<String>,
    pub conversation_id: Option<String>,
    /// The client key's tenant, when client keys are on and the key was known.
    pub tenant: Option<Arc<str>>,
    pub status: Option<u16>,
    /// `error.type` once something failed.
    pub error: Option<String>,
    pub usage_injected: bool,
    /// The upstream refused the injected `stream_options` (now or lately): usage is estimated.
    pub injection_refused: bool,
    pub streaming: bool,
    pub first_chunk_at: Option<Instant>,
    /// Seconds between consecutive data events after the first (`time_per_output_chunk`),
    /// capped at `MAX_CHUNK_GAPS`.
    pub chunk_gaps: Vec<f32>,
    pub bytes_out: u64,
    /// A hint for the operator, logged on the access line (a path missing its `/v1`).
    pub hint: Option<String>,
}

/// Longest stream whose every chunk gap is kept for the per-chunk metric.
const MAX_CHUNK_GAPS: usize = 100_000;

/// The live record: the facts plus the machinery that watches the response body.
pub struct RequestRecord {
    telemetry: Telemetry,
    facts: RequestFacts,
    decoder: Option<Decoder>,
    observer: Observer,
    /// When the previous data event arrived.
    last_chunk_at: Option<Instant>,
    finished: bool,
}

/// A finished record, owned by the telemetry worker.
pub struct FinishedRequest {
    pub facts: RequestFacts,
    pub response: ResponseSummary,
    pub ended: Instant,
}

// The record and the finished request read as their facts (`record.status`, `f.trace`):
// the facts are what every consumer wants, the wrappers only add lifecycle.
impl std::ops::Deref for RequestRecord {
    type Target = RequestFacts;
    fn deref(&self) -> &RequestFacts {
        &self.facts
    }
}

impl std::ops::DerefMut for RequestRecord {
    fn deref_mut(&mut self) -> &mut RequestFacts {
        &mut self.facts
    }
}

impl std::ops::Deref for FinishedRequest {
    type Target = RequestFacts;
    fn deref(&self) -> &RequestFacts {
        &self.facts
    }
}

impl RequestRecord {
    pub fn new(telemetry: Telemetry, method: &str, path: &str) -> RequestRecord {
        telemetry.request_started();
        RequestRecord {
            telemetry,
            facts: RequestFacts::new(method, path),
            decoder: None,
            observer: Observer::None,
            last_chunk_at: None,
            finished: false,
        }
    }

    /// Called when the upstream's response headers arrive: decides how the body is watched.
    pub fn response_started(&mut self, status: u16, content_type: &str, content_encoding: &str) {
        self.status = Some(status);
        self.streaming = content_type.starts_with("text/event-stream");
        if self.operation.is_none() {
            return;
        }
        match Decoder::for_encoding(content_encoding) {
            None => {}
            Some(Ok(d)) => self.decoder = Some(d),
            Some(Err(())) => {
                self.observer = Observer::Failed;
                return;
            }
        }
        self.observer = if self.streaming && (200..300).contains(&status) {
            Observer::Sse(Box::new(if self.telemetry.capture_content() {
                StreamAccumulator::new()
            } else {
                StreamAccumulator::counting_only()
            }))
        } else {
            Observer::Json(Vec::new())
        };
    }

    /// Watches a copy of bytes on their way to the client. Never fails the relay.
    pub fn observe(&mut self, bytes: &[u8]) {
        if matches!(self.observer, Observer::None | Observer::Failed) {
            return;
        }
        let decoded;
        let bytes = match &mut self.decoder {
            None => bytes,
            Some(d) => match d.write(bytes) {
                Ok(out) => {
                    decoded = out;
                    &decoded[..]
                }
                Err(_) => {
                    self.observer = Observer::Failed;
                    return;
                }
            },
        };
        match &mut self.observer {
            Observer::Sse(acc) => {
                let fed = acc.feed(bytes);
                if fed.chunks == 0 {
                    return;
                }
                let now = Instant::now();
                if fed.first_content && self.facts.first_chunk_at.is_none() {
                    self.facts.first_chunk_at = Some(now);
                }
                // Events that arrived in the same read are 0 s apart.
                let gaps = &mut self.facts.chunk_gaps;
                if let Some(prev) = self.last_chunk_at {
                    gaps.push(now.saturating_duration_since(prev).as_secs_f32());
                }
                let same_read = fed.chunks as usize - 1;
                gaps.extend(std::iter::repeat_n(0.0, same_read));
                gaps.truncate(MAX_CHUNK_GAPS);
                self.last_chunk_at = Some(now);
            }
            Observer::Json(buf) => {
                if buf.len() + bytes.len() > MAX_JSON_BODY {
                    self.observer = Observer::Failed;
                } else {
                    buf.extend_from_slice(bytes);
                }
            }
            Observer::None | Observer::Failed => {}
        }
    }

    /// Records a failure; the first one wins (a timeout is not overwritten by the disconnect it causes).
    pub fn fail(&mut self, error_type: &str) {
        if self.error.is_none() {
            self.error = Some(error_type.to_string());
        }
    }

    /// Ends the record. Later calls (and the `Drop`) do nothing.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.telemetry.request_ended();
        let response = match std::mem::replace(&mut self.observer, Observer::None) {
            Observer::Sse(acc) => acc.finish(),
            Observer::Json(buf) if !buf.is_empty() => summarize_json_body(&buf),
            _ => ResponseSummary::default(),
        };
        if self.error.is_none() {
            let watched_stream = self.streaming && self.operation.is_some();
            self.error = classify_outcome(self.status, watched_stream, &response);
        }
        let facts = std::mem::replace(&mut self.facts, RequestFacts::empty());
        let f = FinishedRequest {
            facts,
            response,
            ended: Instant::now(),
        };
        self.telemetry.submit(f);
    }
}

impl RequestFacts {
    fn new(method: &str, path: &str) -> RequestFacts {
        RequestFacts {
            started: Instant::now(),
            started_at: SystemTime::now(),
            method: method.to_string(),
            path: path.to_string(),
            upstream: None,
            operation: None,
            request: None,
            trace: TraceParent::default(),
            extra_attributes: Vec::new(),
            metric_attributes: Vec::new(),
            prompt_template: None,
            conversation_id: None,
            tenant: None,
            status: None,
            error: None,
            usage_injected: false,
            injection_refused: false,
            streaming: false,
            first_chunk_at: None,
            chunk_gaps: Vec::new(),
            bytes_out: 0,
            hint: None,
        }
    }

    /// What a finished record leaves behind (its facts moved to the worker).
    fn empty() -> RequestFacts {
        RequestFacts::new("", "")
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped before the relay finished: the client went away (or the server is
            // going down and cancelled the request, which the client also sees as gone).
            self.fail("client_disconnected");
            self.finish();
        }
    }
}

/// `error.type` for a request that completed without a transport failure: the upstream's
/// error code (or HTTP status), a mid-stream error event, or a stream that stopped short.
fn classify_outcome(status: Option<u16>, streaming: bool, r: &ResponseSummary) -> Option<String> {
    let status = status?;
    if status >= 400 {
        let code = r
            .error
            .as_ref()
            .and_then(|e| e.code.clone().or_else(|| e.kind.clone()))
            .filter(|c| !c.is_empty());
        return Some(code.unwrap_or_else(|| status.to_string()));
    }
    if let Some(e) = &r.error {
        return Some(
            e.code
                .clone()
                .or_else(|| e.kind.clone())
                .unwrap_or_else(|| "stream_error".into()),
        );
    }
    let no_finish = r.finish_reasons.iter().all(Option::is_none);
    if streaming && !r.parse_failed && !r.saw_done && no_finish {
        return Some("stream_truncated".into());
    }
    None
}
