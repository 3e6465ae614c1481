//! Stream watchers shared by the dialects: SSE framing (typed events), NDJSON framing (one
//! JSON object per line) and JSON-array framing (one element at a time), each handing whole
//! events to the dialect's [`RawEventReader`] (most dialects write an [`EventReader`], which
//! gets each event parsed into a `serde_json::Value`).

use serde_json::Value;

use crate::stream::sse::SseParser;
use crate::vocab::summary::{FeedOutcome, ResponseSummary};

use super::StreamWatcher;

/// Longest NDJSON line buffered while waiting for its newline; a longer one stops parsing.
const MAX_LINE: usize = 8 * 1024 * 1024;

/// How a dialect reads one event (an SSE event, or an NDJSON line) into the summary. Every
/// event of these APIs is one JSON value; the watcher parses it (an empty event is skipped,
/// one that is not JSON stops parsing for the stream) and every parsed event is a chunk.
pub(crate) trait EventReader: Send + Default + 'static {
    /// Reads one event's JSON. Sets `summary.first_content_seen` when it carried content or a
    /// tool call.
    fn event(
        &mut self,
        event: Option<&str>,
        json: &Value,
        summary: &mut ResponseSummary,
        count_only: bool,
    );

    /// At the end of the stream (tool calls completed, defaults filled).
    fn finish(&mut self, _summary: &mut ResponseSummary) {}
}

/// How a dialect reads one event from its bytes: the hot path of APIs whose readers parse
/// into borrowed structs (OpenAI Chat), where a `serde_json::Value` per chunk would cost
/// allocations. The watcher has already skipped a stream whose parsing failed and events
/// whose data is empty.
pub(crate) trait RawEventReader: Send + Default + 'static {
    /// Reads one event's data (whitespace trimmed, not empty) into `summary`. Returns whether
    /// it counts as a chunk (OpenAI's `[DONE]` does not). Sets `summary.first_content_seen`
    /// when it carried content or a tool call, and `summary.parse_failed` when it is not what
    /// the API sends (parsing stops there for the stream).
    fn read(
        &mut self,
        event: Option<&str>,
        data: &[u8],
        summary: &mut ResponseSummary,
        count_only: bool,
    ) -> bool;

    /// At the end of the stream (tool calls completed, defaults filled).
    fn finish(&mut self, summary: &mut ResponseSummary);
}

impl<R: EventReader> RawEventReader for R {
    fn read(
        &mut self,
        event: Option<&str>,
        data: &[u8],
        summary: &mut ResponseSummary,
        count_only: bool,
    ) -> bool {
        match serde_json::from_slice::<Value>(data) {
            Ok(json) => self.event(event, &json, summary, count_only),
            Err(_) => summary.parse_failed = true,
        }
        true
    }

    fn finish(&mut self, summary: &mut ResponseSummary) {
        EventReader::finish(self, summary);
    }
}

/// Feeds an event to `reader` and accounts for it in `outcome`.
fn dispatch<R: RawEventReader>(
    reader: &mut R,
    summary: &mut ResponseSummary,
    count_only: bool,
    event: Option<&str>,
    data: &[u8],
    outcome: &mut FeedOutcome,
) {
    if summary.parse_failed {
        return;
    }
    let data = data.trim_ascii();
    if data.is_empty() {
        return;
    }
    let before = summary.first_content_seen;
    if reader.read(event, data, summary, count_only) {
        summary.chunk_count += 1;
        outcome.chunks += 1;
    }
    outcome.first_content |= !before && summary.first_content_seen;
}

/// An SSE stream of typed events (Responses API, Anthropic Messages).
#[derive(Default)]
pub(crate) struct SseWatcher<R> {
    parser: SseParser,
    reader: R,
    summary: ResponseSummary,
    count_only: bool,
}

impl<R: RawEventReader> SseWatcher<R> {
    pub(crate) fn new(count_only: bool) -> Self {
        SseWatcher {
            count_only,
            ..Default::default()
        }
    }
}

impl<R: RawEventReader> StreamWatcher for SseWatcher<R> {
    fn feed(&mut self, bytes: &[u8]) -> FeedOutcome {
        let mut outcome = FeedOutcome::default();
        let SseWatcher {
            parser,
            reader,
            summary,
            count_only,
        } = self;
        parser.feed(bytes, |e| {
            dispatch(reader, summary, *count_only, e.event, e.data, &mut outcome)
        });
        if parser.failed() {
            summary.parse_failed = true;
        }
        outcome
    }

    fn feed_event(&mut self, event: Option<&str>, data: &[u8]) -> Option<FeedOutcome> {
        let mut outcome = FeedOutcome::default();
        let SseWatcher {
            reader,
            summary,
            count_only,
            ..
        } = self;
        dispatch(reader, summary, *count_only, event, data, &mut outcome);
        Some(outcome)
    }

    fn takes_events(&self) -> bool {
        true
    }

    fn framing_failed(&mut self) {
        self.summary.parse_failed = true;
    }

    fn summary(&self) -> &ResponseSummary {
        &self.summary
    }

    fn finish(mut self: Box<Self>) -> ResponseSummary {
        self.reader.finish(&mut self.summary);
        self.summary
    }
}

/// A newline-delimited JSON stream (Ollama's native API).
#[derive(Default)]
pub(crate) struct NdjsonWatcher<R> {
    line: Vec<u8>,
    reader: R,
    summary: ResponseSummary,
    count_only: bool,
}

impl<R: RawEventReader> NdjsonWatcher<R> {
    pub(crate) fn new(count_only: bool) -> Self {
        NdjsonWatcher {
            count_only,
            ..Default::default()
        }
    }
}

impl<R: RawEventReader> StreamWatcher for NdjsonWatcher<R> {
    fn feed(&mut self, mut bytes: &[u8]) -> FeedOutcome {
        let mut outcome = FeedOutcome::default();
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            let (head, rest) = bytes.split_at(nl);
            bytes = &rest[1..];
            let line: &[u8] = if self.line.is_empty() {
                head
            } else {
                self.line.extend_from_slice(head);
                &self.line
            };
            let line = line.trim_ascii();
            if !line.is_empty() {
                dispatch(
                    &mut self.reader,
                    &mut self.summary,
                    self.count_only,
                    None,
                    line,
                    &mut outcome,
                );
            }
            self.line.clear();
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            self.summary.parse_failed = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
        outcome
    }

    fn summary(&self) -> &ResponseSummary {
        &self.summary
    }

    fn finish(mut self: Box<Self>) -> ResponseSummary {
        // A last line without its newline is still a line (NDJSON readers take it).
        let line = std::mem::take(&mut self.line);
        let line = line.trim_ascii();
        if !line.is_empty() {
            let mut outcome = FeedOutcome::default();
            dispatch(
                &mut self.reader,
                &mut self.summary,
                self.count_only,
                None,
                line,
                &mut outcome,
            );
        }
        self.reader.finish(&mut self.summary);
        self.summary
    }
}

/// A JSON array streamed element by element (Google's `streamGenerateContent` without
/// `alt=sse`: `[{...}` then `,\r\n{...}` per element, then `]`). Each top-level element is
/// one event; whitespace and commas between elements are skipped. Only the element being read
/// is buffered, up to [`MAX_LINE`] bytes.
#[derive(Default)]
pub(crate) struct JsonArrayWatcher<R> {
    /// `[` seen.
    opened: bool,
    /// `]` closing the array seen: anything after it is ignored.
    closed: bool,
    /// Nesting depth inside the current element (0 between elements).
    depth: u32,
    in_string: bool,
    escaped: bool,
    element: Vec<u8>,
    reader: R,
    summary: ResponseSummary,
    count_only: bool,
}

impl<R: RawEventReader> JsonArrayWatcher<R> {
    pub(crate) fn new(count_only: bool) -> Self {
        JsonArrayWatcher {
            count_only,
            ..Default::default()
        }
    }
}

impl<R: RawEventReader> StreamWatcher for JsonArrayWatcher<R> {
    fn feed(&mut self, bytes: &[u8]) -> FeedOutcome {
        let mut outcome = FeedOutcome::default();
        if self.summary.parse_failed || self.closed {
            return outcome;
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if self.depth == 0 {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    b'[' if !self.opened => self.opened = true,
                    b',' if self.opened => {}
                    b']' if self.opened => {
                        self.closed = true;
                        return outcome;
                    }
                    b'{' | b'[' if self.opened => {
                        self.depth = 1;
                        start = i;
                    }
                    // Not an array of objects: stop reading (the bytes still reach the client).
                    _ => {
                        self.summary.parse_failed = true;
                        return outcome;
                    }
                }
                continue;
            }
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        let element: &[u8] = if self.element.is_empty() {
                            &bytes[start..=i]
                        } else {
                            self.element.extend_from_slice(&bytes[start..=i]);
                            &self.element
                        };
                        dispatch(
                            &mut self.reader,
                            &mut self.summary,
                            self.count_only,
                            None,
                            element,
                            &mut outcome,
                        );
                        self.element.clear();
                    }
                }
                _ => {}
            }
        }
        if self.depth > 0 {
            // The element goes on in the next read: keep what this one brought of it.
            if self.element.len() + bytes.len() - start > MAX_LINE {
                self.summary.parse_failed = true;
                self.element.clear();
            } else {
                self.element.extend_from_slice(&bytes[start..]);
            }
        }
        outcome
    }

    fn summary(&self) -> &ResponseSummary {
        &self.summary
    }

    fn finish(mut self: Box<Self>) -> ResponseSummary {
        self.reader.finish(&mut self.summary);
        self.summary
    }
}
