//! `RequestRecord`: everything llmtap learns about one proxied request, from arrival to the
//! last byte. The stream tee feeds it; it is finished exactly once — by the relay at the end
//! of the body, by an error path, or by `Drop` when the client goes away — and then handed to
//! the telemetry worker, which builds spans and metrics off the request path.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::dialect::{Dialect, StreamWatcher};
use crate::stream::decode::Decoder;
use crate::stream::tee::{BodyWatcher, RelayBound};
use crate::vocab::operation::Operation;
use crate::vocab::provider::Provider;
use crate::vocab::provider::UpstreamInfo;
use crate::vocab::request::RequestInfo;
use crate::vocab::summary::{FeedOutcome, ResponseSummary};

use super::propagation::TraceParent;
use super::Telemetry;
use crate::vocab::error_type::ErrorType;
use crate::vocab::limits::{Limit, MAX_DECODED_TOTAL};

/// Largest non-streamed response body kept for parsing; larger ones are relayed unparsed.
const MAX_JSON_BODY: usize = 32 * 1024 * 1024;

/// How the response body is watched.
enum Observer {
    None,
    /// A stream (SSE or NDJSON), read by the dialect's watcher.
    Stream(Box<dyn StreamWatcher>),
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
    /// The API's dialect, for inference calls.
    pub dialect: Option<&'static dyn Dialect>,
    pub request: Option<RequestInfo>,
    pub trace: TraceParent,
    /// Span attributes from configured baggage keys and headers.
    pub extra_attributes: Vec<(String, String)>,
    /// Metric attributes from configured baggage keys and headers (bounded later).
    pub metric_attributes: Vec<(String, String)>,
    pub prompt_template: Option<String>,
    /// `x-llmtap-prompt-version`: `gen_ai.prompt.version` beside the template's name.
    pub prompt_version: Option<String>,
    pub conversation_id: Option<String>,
    /// The client key's tenant, when client keys are on and the key was known.
    pub tenant: Option<Arc<str>>,
    /// Client keys are on (gateway mode): `tenant` is the only tenant this request has.
    pub gateway: bool,
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
    /// Names of the bounds this request hit (`llmtap.limits.hit` on its span), each once.
    pub limits_hit: Vec<&'static str>,
}

/// Longest stream whose every chunk gap is kept for the per-chunk metric.
const MAX_CHUNK_GAPS: usize = 100_000;

/// The live record: the facts plus the machinery that watches the response body.
pub struct RequestRecord {
    telemetry: Telemetry,
    facts: RequestFacts,
    decoder: Option<Decoder>,
    /// Bytes the decoder produced so far (bounded by `MAX_DECODED_TOTAL`).
    decoded_total: u64,
    observer: Observer,
    /// When the previous data event arrived.
    last_chunk_at: Option<Instant>,
    /// The stream watcher takes events framed by the relay.
    events_in: bool,
    /// What the response headers said, for the dialects that read them
    /// ([`Dialect::header_summary`]): merged under the body's summary at the end.
    header_summary: Option<ResponseSummary>,
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
            decoded_total: 0,
            observer: Observer::None,
            last_chunk_at: None,
            events_in: false,
            header_summary: None,
            finished: false,
        }
    }

    /// Called when the upstream's response headers arrive: decides how the body is watched.
    pub fn response_started(&mut self, status: u16, content_type: &str, content_encoding: &str) {
        self.status = Some(status);
        self.streaming = is_stream(content_type);
        let Some(dialect) = self.dialect.filter(|_| self.operation.is_some()) else {
            return;
        };
        // A streaming request answered with JSON that is itself a stream (Gemini's array).
        if !self.streaming
            && (200..300).contains(&status)
            && content_type.starts_with("application/json")
            && dialect.streams_json()
            && self.request.as_ref().and_then(|r| r.stream) == Some(true)
        {
            self.streaming = true;
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
            let watcher = dialect.stream_watcher(!self.telemetry.capture_content());
            self.events_in = watcher.takes_events();
            Observer::Stream(watcher)
        } else {
            Observer::Json(Vec::new())
        };
    }

    /// Called with the upstream's response headers, after [`Self::response_started`]: what
    /// the dialect reads from them.
    pub fn response_headers(&mut self, headers: &http::HeaderMap) {
        if let (Some(d), Some(status)) = (self.dialect, self.status) {
            self.header_summary = d.header_summary(status, headers);
        }
    }

    /// Watches a copy of bytes on their way to the client. Never fails the relay.
    pub fn observe(&mut self, bytes: &[u8]) {
        if matches!(self.observer, Observer::None | Observer::Failed) {
            return;
        }
        let Some(mut decoder) = self.decoder.take() else {
            self.watch(bytes);
            return;
        };
        // Decoded in bounded steps, each watched before the next is decoded: a decompression
        // bomb never sits in memory whole.
        let mut over = None;
        let result = decoder.write_with(bytes, |decoded| {
            self.decoded_total += decoded.len() as u64;
            if self.decoded_total > MAX_DECODED_TOTAL {
                over = Some("decoded response over the parse bound");
                return false;
            }
            self.watch(decoded);
            !matches!(self.observer, Observer::Failed)
        });
        self.decoder = Some(decoder);
        if let Err(e) = result {
            if e.kind() == std::io::ErrorKind::OutOfMemory {
                over = Some("decoded response over the per-read bound");
            }
            self.observer = Observer::Failed;
        }
        if let Some(detail) = over {
            // Parsing stops; the bytes still go to the client unchanged.
            self.observer = Observer::Failed;
            self.decoder = None;
            self.hit_limit(Limit::Decoded, detail);
        }
    }

    /// Feeds decoded (or plain) bytes to the observer.
    fn watch(&mut self, bytes: &[u8]) {
        match &mut self.observer {
            Observer::Stream(acc) => {
                let fed = acc.feed(bytes);
                self.account(fed);
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

    /// Time to first chunk and chunk gaps for the events one read brought.
    fn account(&mut self, fed: FeedOutcome) {
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

    /// A bound was hit for this request: counted, warned about (rate-limited) and flagged on
    /// its span.
    pub fn hit_limit(&mut self, limit: Limit, detail: &str) {
        self.telemetry.limits().hit(limit, detail);
        if !self.facts.limits_hit.contains(&limit.name()) {
            self.facts.limits_hit.push(limit.name());
        }
    }

    /// Records a failure; the first one wins (a timeout is not overwritten by the disconnect it causes).
    pub fn fail(&mut self, error_type: ErrorType) {
        if self.error.is_none() {
            self.error = Some(error_type.into());
        }
    }

    /// Ends the record. Later calls (and the `Drop`) do nothing.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.telemetry.request_ended();
        let response = match (
            std::mem::replace(&mut self.observer, Observer::None),
            self.dialect,
        ) {
            (Observer::Stream(acc), _) => acc.finish(),
            (Observer::Json(buf), Some(d)) if !buf.is_empty() => d.summarize_body(&buf),
            _ => ResponseSummary::default(),
        };
        let mut response = response;
        if let Some(h) = self.header_summary.take() {
            under_headers(&mut response, h);
        }
        if self.error.is_none() {
            let watched = self
                .dialect
                .filter(|_| self.streaming && self.operation.is_some());
            self.error = classify_outcome(self.status, watched, &response);
        }
        self.telemetry
            .index_tool_calls(&self.facts, &response.tool_calls);
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
    /// The model the request named (`gen_ai.request.model`), if any.
    pub fn request_model(&self) -> Option<&str> {
        self.request.as_ref().and_then(|r| r.model.as_deref())
    }

    /// `gen_ai.provider.name`'s source: the upstream's provider, except that an upstream left
    /// at the default `openai` takes the dialect's (the Anthropic path says `anthropic`).
    pub fn provider(&self) -> Provider {
        let configured = self
            .upstream
            .as_ref()
            .map_or(Provider::Openai, |u| u.provider);
        match self.dialect.and_then(|d| d.provider()) {
            Some(p) if configured == Provider::Openai => p,
            _ => configured,
        }
    }

    fn new(method: &str, path: &str) -> RequestFacts {
        RequestFacts {
            started: Instant::now(),
            started_at: SystemTime::now(),
            method: method.to_string(),
            path: path.to_string(),
            upstream: None,
            operation: None,
            dialect: None,
            request: None,
            trace: TraceParent::default(),
            extra_attributes: Vec::new(),
            metric_attributes: Vec::new(),
            prompt_template: None,
            prompt_version: None,
            conversation_id: None,
            tenant: None,
            gateway: false,
            status: None,
            error: None,
            usage_injected: false,
            injection_refused: false,
            streaming: false,
            first_chunk_at: None,
            chunk_gaps: Vec::new(),
            bytes_out: 0,
            hint: None,
            limits_hit: Vec::new(),
        }
    }

    /// Facts of a request that just arrived, for unit tests of what consumes them.
    #[cfg(test)]
    pub(crate) fn for_tests(method: &str, path: &str) -> RequestFacts {
        RequestFacts::new(method, path)
    }

    /// What a finished record leaves behind (its facts moved to the worker).
    fn empty() -> RequestFacts {
        RequestFacts::new("", "")
    }
}

/// The relay reports the body's progress to the record through this trait, so the stream
/// layer never depends on telemetry.
impl BodyWatcher for RequestRecord {
    fn observe(&mut self, bytes: &[u8]) {
        RequestRecord::observe(self, bytes);
    }

    /// Events framed by the relay reach the watcher directly when the body needs no decoding
    /// and the dialect's watcher takes events.
    fn takes_events(&self) -> bool {
        self.decoder.is_none() && self.events_in
    }

    fn observe_event(&mut self, event: Option<&str>, data: &[u8], read: &mut FeedOutcome) {
        if let Observer::Stream(acc) = &mut self.observer {
            if let Some(o) = acc.feed_event(event, data) {
                read.chunks += o.chunks;
                read.first_content |= o.first_content;
            }
        }
    }

    fn observed_read(&mut self, read: FeedOutcome, framing_failed: bool) {
        if framing_failed {
            if let Observer::Stream(acc) = &mut self.observer {
                acc.framing_failed();
            }
        }
        self.account(read);
    }

    fn sent(&mut self, bytes: u64) {
        self.facts.bytes_out += bytes;
    }

    fn bound_hit(&mut self, bound: RelayBound) {
        match bound {
            RelayBound::DecodedPerRead => self.hit_limit(
                Limit::Decoded,
                "decoded stream over the per-read bound; the stream was cut",
            ),
            RelayBound::StreamDuration => self.hit_limit(
                Limit::StreamDuration,
                "stream ran past timeouts.max_stream_secs; it was cut",
            ),
        }
    }

    fn fail(&mut self, error_type: ErrorType) {
        RequestRecord::fail(self, error_type);
    }

    fn finish(&mut self) {
        RequestRecord::finish(self);
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped before the relay finished: the client went away (or the server is
            // going down and cancelled the request, which the client also sees as gone).
            self.fail(ErrorType::ClientDisconnected);
            self.finish();
        }
    }
}

/// `error.type` for a request that completed without a transport failure: the upstream's
/// error code (or HTTP status), a mid-stream error event, or a stream that stopped short.
fn classify_outcome(
    status: Option<u16>,
    stream: Option<&dyn Dialect>,
    r: &ResponseSummary,
) -> Option<String> {
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
                .unwrap_or_else(|| ErrorType::StreamError.into()),
        );
    }
    if let Some(d) = stream {
        if !r.parse_failed && !d.stream_complete(r) {
            return Some(ErrorType::StreamTruncated.into());
        }
    }
    None
}

/// Response content types that are streams: SSE, NDJSON (Ollama's native API), and AWS's
/// binary event stream (Bedrock).
pub fn is_stream(content_type: &str) -> bool {
    content_type.starts_with("text/event-stream")
        || content_type.starts_with("application/x-ndjson")
        || content_type.starts_with("application/vnd.amazon.eventstream")
}

/// Fills what the body left unsaid from the headers' summary: the id, the usage, and the
/// error's code and type (a body error keeps its message).
fn under_headers(body: &mut ResponseSummary, headers: ResponseSummary) {
    if body.id.is_none() {
        body.id = headers.id;
    }
    if body.usage.is_none() {
        body.usage = headers.usage;
    }
    match (&mut body.error, headers.error) {
        (Some(e), Some(h)) if e.code.is_none() => {
            e.code = h.code;
            e.kind = e.kind.take().or(h.kind);
        }
        (None, Some(h)) => body.error = Some(h),
        _ => {}
    }
}
