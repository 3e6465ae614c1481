//! What an OpenAI-compatible response tells us.
//!
//! This module owns the meaning of response bodies for telemetry: it reads streamed
//! (`chat.completion.chunk`, legacy `text_completion` events) and whole (`chat.completion`,
//! `text_completion`, embeddings list, `{"error":{...}}`) responses into a [`ResponseSummary`]
//! for the span and metrics. It also has the two event-level helpers the relay needs when it
//! injected `stream_options.include_usage`: [`is_usage_only_chunk`] and [`null_usage_span`] /
//! [`strip_null_usage`].
//!
//! Parsing runs per chunk on the proxy's hot path, so it reads only the fields it needs into
//! borrowed structs and skips the rest; strings are only allocated when kept (the first id,
//! model, ...) or when JSON escapes force it. It never affects the bytes relayed: a body it
//! can't make sense of just sets `parse_failed`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::sse::SseParser;

/// Cap on the text kept per choice in `output_text` (and per tool call's `arguments`);
/// `output_chars` keeps counting past it.
pub const OUTPUT_TEXT_CAP: usize = 1024 * 1024;

use crate::summary::{ERROR_MESSAGE_CAP, MAX_CHOICES, MAX_TOOL_CALLS};

use crate::summary::{floor_char_boundary, push_capped, set_latest};
pub use crate::summary::{
    FeedOutcome, ModalityUsage, ResponseSummary, ToolCall, UpstreamError, Usage,
};

/// Watches a streamed response: feed it a copy of the body bytes as they are relayed.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    parser: SseParser,
    summary: ResponseSummary,
    /// Choice index of each entry of `summary.tool_calls` (same order).
    tool_choices: Vec<u32>,
    /// Skip keeping the text itself (only its length is counted): content capture is off,
    /// and 10,000 open streams should not each hold their reply.
    count_only: bool,
}

impl StreamAccumulator {
    /// An accumulator for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// An accumulator that counts output characters but keeps no output text.
    pub fn counting_only() -> Self {
        StreamAccumulator {
            count_only: true,
            ..Self::default()
        }
    }

    /// Parses the next bytes of the body. After `parse_failed` this is a no-op.
    pub fn feed(&mut self, bytes: &[u8]) -> FeedOutcome {
        let mut outcome = FeedOutcome::default();
        if self.summary.parse_failed {
            return outcome;
        }
        let Self {
            parser,
            summary,
            tool_choices,
            count_only,
        } = self;
        let mut sink = Collector {
            summary,
            tool_choices,
            count_only: *count_only,
        };
        parser.feed(bytes, |event| {
            sink.event(event.event, event.data, &mut outcome)
        });
        if parser.failed() {
            summary.parse_failed = true;
        }
        outcome
    }

    /// Takes one event already parsed by the caller's own [`SseParser`] (a relay that parses
    /// anyway needn't parse twice). Use either this or [`feed`](Self::feed) for a stream, not
    /// both.
    pub fn feed_event(&mut self, event: Option<&str>, data: &[u8]) -> FeedOutcome {
        let mut outcome = FeedOutcome::default();
        if self.summary.parse_failed {
            return outcome;
        }
        let mut sink = Collector {
            summary: &mut self.summary,
            tool_choices: &mut self.tool_choices,
            count_only: self.count_only,
        };
        sink.event(event, data, &mut outcome);
        outcome
    }

    /// Stops reading the stream: what it carried could not be framed.
    pub fn mark_parse_failed(&mut self) {
        self.summary.parse_failed = true;
    }

    /// The summary so far (e.g. when the client went away mid-stream). Tool calls whose
    /// server never sent a `type` get their default `function` kind only in `finish`.
    pub fn summary(&self) -> &ResponseSummary {
        &self.summary
    }

    /// Ends the stream and hands over its summary. An event not ended by a blank line is
    /// not counted (SSE clients drop it too).
    #[must_use]
    pub fn finish(self) -> ResponseSummary {
        let mut summary = self.summary;
        default_tool_kinds(&mut summary.tool_calls);
        summary
    }
}

/// Summarizes a non-streamed response body (completion, embeddings or error).
#[must_use]
pub fn summarize_json_body(bytes: &[u8]) -> ResponseSummary {
    let mut summary = ResponseSummary::default();
    let mut tool_choices = Vec::new();
    let mut sink = Collector {
        summary: &mut summary,
        tool_choices: &mut tool_choices,
        count_only: false,
    };
    match parse_response(bytes) {
        Ok(wire) => sink.apply(wire, None),
        Err(_) => summary.parse_failed = true,
    }
    default_tool_kinds(&mut summary.tool_calls);
    summary
}

/// True for the final `include_usage` chunk: `"choices": []` and a `usage` object. Azure's
/// first chunk also has `choices: []` (with `prompt_filter_results`) but no usage: false.
#[must_use]
pub fn is_usage_only_chunk(data: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct UsageProbe {
        #[serde(default)]
        choices: Option<SeqLen>,
        #[serde(default)]
        usage: IsObject,
    }
    match serde_json::from_slice::<UsageProbe>(data) {
        Ok(probe) => probe.usage.0 && matches!(probe.choices, Some(SeqLen(0))),
        Err(_) => false,
    }
}

/// The byte range to cut from a chunk's JSON text to remove a top-level `"usage":null` member
/// together with its adjoining comma (whitespace around the colon tolerated), or `None` when
/// there is no such member. OpenAI adds `"usage":null` to every chunk once `include_usage` is
/// on; the relay cuts it so a client that didn't ask gets the stream it would have got. The
/// text is never re-serialized: `data[..r.start]` + `data[r.end..]` is the result.
#[must_use]
pub fn null_usage_span(data: &[u8]) -> Option<Range<usize>> {
    match usage_member(data)? {
        (range, true) => Some(range),
        (_, false) => None,
    }
}

/// Like [`null_usage_span`] for a top-level `usage` member of any value: some servers put a
/// running usage object on every chunk once `include_usage` is set.
#[must_use]
pub fn usage_member_span(data: &[u8]) -> Option<Range<usize>> {
    usage_member(data).map(|(range, _)| range)
}

/// The cut range of the top-level `usage` member and whether its value is `null`.
fn usage_member(data: &[u8]) -> Option<(Range<usize>, bool)> {
    let mut i = skip_ws(data, 0);
    if data.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    // The comma before the current member, if it has one.
    let mut comma_before: Option<usize> = None;
    loop {
        i = skip_ws(data, i);
        if data.get(i) != Some(&b'"') {
            return None;
        }
        let key_start = i;
        let key_end = skip_string(data, i)?;
        i = skip_ws(data, key_end);
        if data.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(data, i + 1);
        let value_end = skip_value(data, value_start)?;
        let after = skip_ws(data, value_end);
        let next = *data.get(after)?;
        if &data[key_start..key_end] == b"\"usage\"" {
            let null = &data[value_start..value_end] == b"null";
            let range = match (next, comma_before) {
                // Take the member, its comma and the whitespace up to the next key.
                (b',', _) => key_start..skip_ws(data, after + 1),
                // Last member: take the comma before it instead.
                (b'}', Some(comma)) => comma..value_end,
                (b'}', None) => key_start..value_end,
                _ => return None,
            };
            return Some((range, null));
        }
        if next != b',' {
            return None;
        }
        comma_before = Some(after);
        i = after + 1;
    }
}

/// How a chunk carries usage, for the stripper: the number of `choices` (`None` when the
/// member is absent), the kind of its top-level `usage` member, and the byte range that cuts
/// that member out (see [`null_usage_span`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageShape {
    pub choices: Option<usize>,
    pub usage: UsageMember,
    pub usage_span: Option<Range<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageMember {
    Absent,
    Null,
    Object,
}

/// The [`UsageShape`] of a chunk's JSON, or `None` when it is not one well-formed JSON object
/// at the top level (members, commas, a closing brace and nothing after it but whitespace).
/// One scan of the top-level members counts `choices` (its items are skipped) and finds
/// `usage`. This runs on every event of an injected stream, after the record has parsed the
/// same event with serde: a second serde pass here (a probe for `choices`) and a third, byte
/// at a time, for `usage` were about a quarter of a stream's instructions.
#[must_use]
pub fn usage_shape(data: &[u8]) -> Option<UsageShape> {
    let mut i = skip_ws(data, 0);
    if data.get(i) != Some(&b'{') {
        return None;
    }
    let mut shape = UsageShape {
        choices: None,
        usage: UsageMember::Absent,
        usage_span: None,
    };
    let mut usage_seen = false;
    i = skip_ws(data, i + 1);
    if data.get(i) == Some(&b'}') {
        return (skip_ws(data, i + 1) == data.len()).then_some(shape);
    }
    // The comma before the current member, if it has one.
    let mut comma_before: Option<usize> = None;
    loop {
        if data.get(i) != Some(&b'"') {
            return None;
        }
        let key_start = i;
        let key_end = skip_string(data, i)?;
        i = skip_ws(data, key_end);
        if data.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(data, i + 1);
        let key = &data[key_start..key_end];
        let value_end = if key == b"\"choices\"" && data.get(value_start) == Some(&b'[') {
            let (end, n) = count_items(data, value_start)?;
            shape.choices = Some(n);
            end
        } else {
            skip_value(data, value_start)?
        };
        let after = skip_ws(data, value_end);
        let next = *data.get(after)?;
        if key == b"\"usage\"" && !usage_seen {
            usage_seen = true;
            let value = &data[value_start..value_end];
            let kind = match value.first() {
                _ if value == b"null" => UsageMember::Null,
                Some(b'{') => UsageMember::Object,
                // A number or a string: not usage as OpenAI shapes it; nothing to hide.
                _ => UsageMember::Absent,
            };
            if kind != UsageMember::Absent {
                shape.usage = kind;
                shape.usage_span = Some(match (next, comma_before) {
                    // Take the member, its comma and the whitespace up to the next key.
                    (b',', _) => key_start..skip_ws(data, after + 1),
                    // Last member: take the comma before it instead.
                    (b'}', Some(comma)) => comma..value_end,
                    (b'}', None) => key_start..value_end,
                    _ => return None,
                });
            }
        }
        match next {
            b',' => {
                comma_before = Some(after);
                i = skip_ws(data, after + 1);
            }
            b'}' => {
                return (skip_ws(data, after + 1) == data.len()).then_some(shape);
            }
            _ => return None,
        }
    }
}

/// `i` is at a `[`: the index after its `]` and the number of items in it.
fn count_items(data: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut k = skip_ws(data, i + 1);
    if data.get(k) == Some(&b']') {
        return Some((k + 1, 0));
    }
    let mut n = 0;
    loop {
        k = skip_ws(data, skip_value(data, k)?);
        n += 1;
        match data.get(k)? {
            b',' => k = skip_ws(data, k + 1),
            b']' => return Some((k + 1, n)),
            _ => return None,
        }
    }
}

/// `data` without its top-level `"usage":null` member (see [`null_usage_span`]), or `None`
/// when there is none. Prefer `null_usage_span` on the hot path: it doesn't copy.
#[must_use]
pub fn strip_null_usage(data: &[u8]) -> Option<Vec<u8>> {
    let cut = null_usage_span(data)?;
    let mut out = Vec::with_capacity(data.len() - cut.len());
    out.extend_from_slice(&data[..cut.start]);
    out.extend_from_slice(&data[cut.end..]);
    Some(out)
}

fn parse_response(json: &[u8]) -> Result<ResponseWire<'_>, serde_json::Error> {
    // serde also reads a struct from an array of its fields in order; a body that isn't an
    // object is not a response.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err(serde::de::Error::custom("not a JSON object"));
    }
    serde_json::from_slice(json)
}

/// Applies parsed responses to a summary.
struct Collector<'s> {
    summary: &'s mut ResponseSummary,
    tool_choices: &'s mut Vec<u32>,
    count_only: bool,
}

impl Collector<'_> {
    fn event(&mut self, event: Option<&str>, data: &[u8], outcome: &mut FeedOutcome) {
        if self.summary.parse_failed {
            return;
        }
        let before = self.summary.first_content_seen;
        if self.stream_event(event, data) {
            outcome.chunks += 1;
        }
        outcome.first_content |= !before && self.summary.first_content_seen;
    }

    /// Handles one SSE event; returns whether it counted as a chunk.
    fn stream_event(&mut self, event: Option<&str>, data: &[u8]) -> bool {
        let text = data.trim_ascii();
        if text.is_empty() {
            return false;
        }
        if text == b"[DONE]" {
            self.summary.saw_done = true;
            return false;
        }
        self.summary.chunk_count += 1;
        match parse_response(text) {
            Ok(wire) => self.apply(wire, event),
            Err(_) if event == Some("error") => {
                // A plain-text error event is still an error, not garbage.
                let message = cap_string(
                    String::from_utf8_lossy(text).into_owned(),
                    ERROR_MESSAGE_CAP,
                );
                self.error(UpstreamError {
                    message: Some(message),
                    ..UpstreamError::default()
                });
            }
            Err(_) => self.summary.parse_failed = true,
        }
        true
    }

    fn apply(&mut self, wire: ResponseWire<'_>, event: Option<&str>) {
        // The latest non-empty value wins: the last chunk (finish or usage) describes the
        // finished response.
        set_latest(&mut self.summary.id, wire.id.as_deref());
        set_latest(&mut self.summary.model, wire.model.as_deref());
        set_latest(
            &mut self.summary.system_fingerprint,
            wire.system_fingerprint.as_deref(),
        );
        set_latest(&mut self.summary.service_tier, wire.service_tier.as_deref());
        if self.summary.embedding_dimensions.is_none() {
            self.summary.embedding_dimensions = wire.data.0;
        }
        if let Some(usage) = wire.usage {
            self.usage(usage);
        }
        if let Some(error) = wire.error {
            self.error(error);
        } else if event == Some("error")
            || wire.object.as_deref() == Some("error")
            || wire.kind.as_deref() == Some("error")
        {
            // Top-level error shapes: vLLM's `{"object":"error","message",...,"type","code"}`
            // and the Responses API's `{"type":"error","code","message"}`.
            let kind = wire.kind.0.filter(|k| k != "error");
            self.error(UpstreamError {
                message: wire
                    .message
                    .0
                    .map(|m| cap_string(m.into_owned(), ERROR_MESSAGE_CAP)),
                kind: kind.map(Cow::into_owned),
                code: wire.code.0.map(Cow::into_owned),
            });
        }
        if let Some(choices) = wire.choices {
            for choice in choices.into_items() {
                self.choice(choice);
            }
        }
    }

    fn choice(&mut self, choice: ChoiceWire<'_>) {
        let index = choice.index.0.unwrap_or(0);
        if index >= MAX_CHOICES as u64 {
            return;
        }
        let index = index as usize;
        if self.summary.finish_reasons.len() <= index {
            self.summary.finish_reasons.resize(index + 1, None);
        }
        if self.summary.output_text.len() <= index {
            self.summary.output_text.resize(index + 1, String::new());
        }
        // Never let a later null erase a finish reason (OpenRouter sends one after "length").
        if let Some(reason) = choice.finish_reason.0 {
            if self.summary.finish_reasons[index].as_deref() != Some(reason.as_ref()) {
                self.summary.finish_reasons[index] = Some(reason.into_owned());
            }
        }
        let mut content = false;
        if let Some(text) = choice.text.0 {
            content |= self.content(index, &text);
        }
        // Streamed chunks carry `delta`, whole completions `message`: same shape.
        for (message, whole) in [(choice.delta, false), (choice.message, true)] {
            let Some(message) = message else { continue };
            if let Some(text) = message.content.0 {
                content |= self.content(index, &text);
            }
            for reasoning in [message.reasoning_content.0, message.reasoning.0]
                .into_iter()
                .flatten()
            {
                self.summary.reasoning_chars += reasoning.chars().count() as u64;
                content |= !reasoning.is_empty();
            }
            content |= message.refusal.0.is_some_and(|r| !r.is_empty());
            if let Some(calls) = message.tool_calls {
                for (position, call) in calls.into_items().enumerate() {
                    content = true;
                    // A whole message's calls may omit `index`: their position is the index.
                    let fallback = whole.then_some(position as u32);
                    self.tool_call(index as u32, call, fallback);
                }
            }
        }
        if content {
            self.summary.first_content_seen = true;
        }
    }

    /// Appends content text to a choice; returns whether it was non-empty.
    fn content(&mut self, index: usize, text: &str) -> bool {
        self.summary.output_chars += text.chars().count() as u64;
        if !self.count_only {
            push_capped(&mut self.summary.output_text[index], text);
        }
        !text.is_empty()
    }

    fn tool_call(&mut self, choice: u32, call: ToolCallWire<'_>, fallback_index: Option<u32>) {
        // Compared with (and stored as) the id cut to the identifier bound.
        let id = call
            .id
            .0
            .filter(|id| !id.is_empty())
            .map(|id| crate::vocab::limits::owned(&id));
        let (name, arguments) = match (call.function, call.custom) {
            (Some(f), _) => (f.name.0, f.arguments.0),
            (None, Some(c)) => (c.name.0, c.input.0),
            (None, None) => (None, None),
        };
        let index = call
            .index
            .0
            .and_then(|i| u32::try_from(i).ok())
            .or(fallback_index);
        let calls = &self.summary.tool_calls;
        let choices = &self.tool_choices;
        let in_choice = |k: &usize| choices[*k] == choice;
        let existing = match (index, id.as_deref()) {
            // Same index: the latest call there, unless the delta names a different id
            // (servers that reuse an index for a new call).
            (Some(index), id) => (0..calls.len())
                .rev()
                .filter(in_choice)
                .find(|&k| calls[k].index == index)
                .filter(|&k| match id {
                    Some(id) => calls[k].id.is_empty() || calls[k].id == id,
                    None => true,
                }),
            // No index: match by id, else continue the choice's latest call.
            (None, Some(id)) => (0..calls.len())
                .rev()
                .filter(in_choice)
                .find(|&k| calls[k].id == id),
            (None, None) => (0..calls.len()).rev().find(in_choice),
        };
        let k = match existing {
            Some(k) => k,
            None => {
                if calls.len() >= MAX_TOOL_CALLS {
                    return;
                }
                let index = index.unwrap_or_else(|| {
                    (0..calls.len())
                        .filter(in_choice)
                        .map(|k| calls[k].index.saturating_add(1))
                        .max()
                        .unwrap_or(0)
                });
                // Keep the list sorted by (choice, index); equal keys stay in arrival order.
                let at = (0..calls.len())
                    .find(|&k| (choices[k], calls[k].index) > (choice, index))
                    .unwrap_or(calls.len());
                self.summary.tool_calls.insert(
                    at,
                    ToolCall {
                        index,
                        ..ToolCall::default()
                    },
                );
                self.tool_choices.insert(at, choice);
                at
            }
        };
        let entry = &mut self.summary.tool_calls[k];
        // Identifiers are stored cut to their bound; arguments only with capture on.
        let own = crate::vocab::limits::owned;
        if let Some(id) = id {
            if entry.id.is_empty() {
                entry.id = id;
            }
        }
        // Only the first non-empty name counts: some servers repeat it on every delta, others
        // send `name: ""` later.
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            if entry.name.is_empty() {
                entry.name = own(&name);
            }
        }
        if let Some(kind) = call.kind.0.filter(|k| !k.is_empty()) {
            if entry.kind.is_empty() {
                entry.kind = own(&kind);
            }
        }
        if let Some(arguments) = arguments {
            entry.argument_bytes += arguments.len() as u64;
            if !self.count_only {
                push_capped(&mut entry.arguments, &arguments);
            }
        }
    }

    fn usage(&mut self, wire: UsageWire) {
        let (prompt, completion) = (
            wire.prompt_tokens_details.as_ref(),
            wire.completion_tokens_details.as_ref(),
        );
        self.summary.usage_by_modality.update(ModalityUsage {
            text_input: prompt.and_then(|d| d.text_tokens.0),
            image_input: prompt.and_then(|d| d.image_tokens.0),
            audio_input: prompt.and_then(|d| d.audio_tokens.0),
            text_output: completion.and_then(|d| d.text_tokens.0),
            image_output: completion.and_then(|d| d.image_tokens.0),
            audio_output: completion.and_then(|d| d.audio_tokens.0),
        });
        let fields = [
            wire.prompt_tokens.0,
            wire.completion_tokens.0,
            prompt.and_then(|d| d.cached_tokens.0),
            completion.and_then(|d| d.reasoning_tokens.0),
            wire.cache_creation_input_tokens.0,
        ];
        if fields.iter().all(Option::is_none) {
            return;
        }
        // Later usage (vLLM's continuous usage, a final chunk) updates what it carries.
        let usage = self.summary.usage.get_or_insert_with(Usage::default);
        let slots = [
            &mut usage.input_tokens,
            &mut usage.output_tokens,
            &mut usage.cache_read_input_tokens,
            &mut usage.reasoning_output_tokens,
            &mut usage.cache_write_input_tokens,
        ];
        for (slot, value) in slots.into_iter().zip(fields) {
            if value.is_some() {
                *slot = value;
            }
        }
    }

    fn error(&mut self, error: UpstreamError) {
        if self.summary.error.is_none() {
            self.summary.error = Some(error);
        }
    }
}

fn default_tool_kinds(calls: &mut [ToolCall]) {
    for call in calls {
        if call.kind.is_empty() {
            call.kind.push_str("function");
        }
    }
}

fn cap_string(mut s: String, cap: usize) -> String {
    let end = floor_char_boundary(&s, cap);
    s.truncate(end);
    s
}

fn skip_ws(data: &[u8], mut i: usize) -> usize {
    while matches!(data.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `i` is at an opening quote; returns the index after the closing one. Jumps between quotes
/// and backslashes with memchr: chunk text is mostly long strings (content, OpenAI's
/// `obfuscation` pad).
fn skip_string(data: &[u8], i: usize) -> Option<usize> {
    let mut k = i + 1;
    loop {
        k += memchr::memchr2(b'"', b'\\', data.get(k..)?)?;
        match data[k] {
            b'"' => return Some(k + 1),
            _ => k += 2,
        }
    }
}

/// Returns the index just after the JSON value starting at `i`.
fn skip_value(data: &[u8], i: usize) -> Option<usize> {
    match data.get(i)? {
        b'"' => skip_string(data, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut k = i;
            loop {
                match data.get(k)? {
                    b'"' => {
                        k = skip_string(data, k)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(k + 1);
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
        }
        _ => {
            let len = data[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(data.len() - i);
            (len > 0).then_some(i + len)
        }
    }
}

// ---- Wire shapes: only the fields we read. Unknown fields are skipped by serde. ----

/// A chunk, a whole response, or an error body.
#[derive(Deserialize)]
struct ResponseWire<'a> {
    #[serde(borrow, default)]
    id: Str<'a>,
    #[serde(borrow, default)]
    model: Str<'a>,
    #[serde(borrow, default)]
    system_fingerprint: Str<'a>,
    #[serde(borrow, default)]
    service_tier: Str<'a>,
    #[serde(borrow, default)]
    object: Str<'a>,
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    /// Top-level `message` / `code` of error shapes that have no `error` object.
    #[serde(borrow, default)]
    message: Str<'a>,
    #[serde(borrow, default)]
    code: Str<'a>,
    #[serde(borrow, default)]
    choices: Option<InlineSeq<ChoiceWire<'a>>>,
    #[serde(default)]
    usage: Option<UsageWire>,
    #[serde(default, deserialize_with = "upstream_error")]
    error: Option<UpstreamError>,
    /// Embeddings list: only the first vector's length is read.
    #[serde(default)]
    data: FirstVectorLen,
}

#[derive(Deserialize)]
struct ChoiceWire<'a> {
    #[serde(default)]
    index: Count,
    #[serde(borrow, default)]
    delta: Option<MessageWire<'a>>,
    #[serde(borrow, default)]
    message: Option<MessageWire<'a>>,
    /// Legacy completions.
    #[serde(borrow, default)]
    text: Str<'a>,
    #[serde(borrow, default)]
    finish_reason: Str<'a>,
}

#[derive(Deserialize)]
struct MessageWire<'a> {
    #[serde(borrow, default)]
    content: Str<'a>,
    /// DeepSeek, vLLM.
    #[serde(borrow, default)]
    reasoning_content: Str<'a>,
    /// OpenRouter, Groq.
    #[serde(borrow, default)]
    reasoning: Str<'a>,
    #[serde(borrow, default)]
    refusal: Str<'a>,
    #[serde(borrow, default)]
    tool_calls: Option<InlineSeq<ToolCallWire<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallWire<'a> {
    #[serde(default)]
    index: Count,
    #[serde(borrow, default)]
    id: Str<'a>,
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, default)]
    function: Option<FunctionWire<'a>>,
    /// OpenAI custom tools: `{"type":"custom","custom":{"name","input"}}`.
    #[serde(borrow, default)]
    custom: Option<CustomToolWire<'a>>,
}

#[derive(Deserialize)]
struct FunctionWire<'a> {
    #[serde(borrow, default)]
    name: Str<'a>,
    #[serde(borrow, default)]
    arguments: Str<'a>,
}

#[derive(Deserialize)]
struct CustomToolWire<'a> {
    #[serde(borrow, default)]
    name: Str<'a>,
    #[serde(borrow, default)]
    input: Str<'a>,
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    prompt_tokens: Count,
    #[serde(default)]
    completion_tokens: Count,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetailsWire>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionTokensDetailsWire>,
    #[serde(default)]
    cache_creation_input_tokens: Count,
}

#[derive(Deserialize)]
struct PromptTokensDetailsWire {
    #[serde(default)]
    cached_tokens: Count,
    #[serde(default)]
    text_tokens: Count,
    #[serde(default)]
    image_tokens: Count,
    #[serde(default)]
    audio_tokens: Count,
}

#[derive(Deserialize)]
struct CompletionTokensDetailsWire {
    #[serde(default)]
    reasoning_tokens: Count,
    #[serde(default)]
    text_tokens: Count,
    #[serde(default)]
    image_tokens: Count,
    #[serde(default)]
    audio_tokens: Count,
}

/// A string field read leniently: borrowed when the JSON has no escapes, numbers rendered as
/// text (error codes), null and any other type read as `None`. Providers disagree on types
/// often enough that one odd field must not cost us the whole chunk.
#[derive(Default)]
struct Str<'a>(Option<Cow<'a, str>>);

impl Str<'_> {
    fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq)?;
                Ok(Str(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map)?;
                Ok(Str(None))
            }
        }
        deserializer.deserialize_any(StrVisitor)
    }
}

/// A token count read leniently: integers, integral floats and numeric strings count; null,
/// negative numbers and anything else read as `None`.
#[derive(Default)]
struct Count(Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl<'de> Visitor<'de> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                let integral = v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64;
                Ok(Count(integral.then_some(v as u64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                Ok(Count(v.trim().parse().ok()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Count, A::Error> {
                drain_seq(seq)?;
                Ok(Count(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Count, A::Error> {
                drain_map(map)?;
                Ok(Count(None))
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

/// A JSON array whose first element is stored inline: `choices` and `tool_calls` nearly always
/// have one element, and this keeps the per-chunk parse free of allocation.
struct InlineSeq<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> InlineSeq<T> {
    fn into_items(self) -> impl Iterator<Item = T> {
        self.first.into_iter().chain(self.rest)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for InlineSeq<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
            type Value = InlineSeq<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element()?;
                let mut rest = Vec::new();
                if first.is_some() {
                    while let Some(item) = seq.next_element()? {
                        rest.push(item);
                    }
                }
                Ok(InlineSeq { first, rest })
            }
        }
        deserializer.deserialize_seq(SeqVisitor(PhantomData))
    }
}

/// Of an embeddings list's `data`, the length of the first item's `embedding`: a float array
/// (counted, not kept) or base64 of little-endian f32s (4 bytes a dimension). Anything else
/// is skipped and reads as `None`, never failing the parse.
#[derive(Default)]
struct FirstVectorLen(Option<u64>);

#[derive(Deserialize)]
struct EmbeddingItemWire {
    #[serde(default)]
    embedding: VectorLen,
}

#[derive(Default)]
struct VectorLen(Option<u64>);

/// Reads a value that counts only when it is an array (`Some` from `seq`) or, for a vector,
/// a base64 string; every other JSON type is skipped and reads as `None`.
struct Lenient<F>(F);

impl<'de, F: LenientShape<'de>> Visitor<'de> for Lenient<F> {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<u64>, A::Error> {
        self.0.seq(seq)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u64>, E> {
        Ok(self.0.text(v))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<u64>, A::Error> {
        drain_map(map)?;
        Ok(None)
    }
}

trait LenientShape<'de>: Sized {
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<u64>, A::Error>;
    fn text(self, _: &str) -> Option<u64> {
        None
    }
}

/// `data`: the first item's vector length; the other items are skipped.
struct FirstItem;

impl<'de> LenientShape<'de> for FirstItem {
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<u64>, A::Error> {
        let first: Option<EmbeddingItemWire> = seq.next_element()?;
        drain_seq(seq)?;
        Ok(first.and_then(|i| i.embedding.0))
    }
}

/// `embedding`: a float array's length, or base64 of f32s (decoded bytes / 4).
struct Vector;

impl<'de> LenientShape<'de> for Vector {
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<u64>, A::Error> {
        Ok(Some(drain_seq(seq)? as u64))
    }
    fn text(self, b64: &str) -> Option<u64> {
        let bytes = b64.trim_end_matches('=').len() as u64 * 3 / 4;
        (bytes > 0).then_some(bytes / 4)
    }
}

impl<'de> Deserialize<'de> for FirstVectorLen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(Lenient(FirstItem))
            .map(FirstVectorLen)
    }
}

impl<'de> Deserialize<'de> for VectorLen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Lenient(Vector)).map(VectorLen)
    }
}

/// The length of a JSON array, elements skipped.
struct SeqLen(usize);

impl<'de> Deserialize<'de> for SeqLen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenVisitor;
        impl<'de> Visitor<'de> for LenVisitor {
            type Value = SeqLen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SeqLen, A::Error> {
                drain_seq(seq).map(SeqLen)
            }
        }
        deserializer.deserialize_seq(LenVisitor)
    }
}

/// Whether a value is a JSON object (content skipped).
#[derive(Default)]
struct IsObject(bool);

impl<'de> Deserialize<'de> for IsObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = IsObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IsObject, A::Error> {
                drain_map(map)?;
                Ok(IsObject(true))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<IsObject, A::Error> {
                drain_seq(seq)?;
                Ok(IsObject(false))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<IsObject, E> {
                Ok(IsObject(false))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<IsObject, E> {
                Ok(IsObject(false))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<IsObject, E> {
                Ok(IsObject(false))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<IsObject, E> {
                Ok(IsObject(false))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<IsObject, E> {
                Ok(IsObject(false))
            }
            fn visit_unit<E: de::Error>(self) -> Result<IsObject, E> {
                Ok(IsObject(false))
            }
        }
        deserializer.deserialize_any(ObjectVisitor)
    }
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<usize, A::Error> {
    let mut n = 0;
    while seq.next_element::<IgnoredAny>()?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// `error`: an object (`message`, `type`, `code` as string or number), a bare string, or
/// null / `false` for none. Errors are rare, so this goes through `serde_json::Value`.
fn upstream_error<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<UpstreamError>, D::Error> {
    use serde_json::Value;
    fn scalar(value: Option<&Value>) -> Option<String> {
        match value? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    let error = match Value::deserialize(deserializer)? {
        Value::Null | Value::Bool(false) => None,
        Value::Object(map) => Some(UpstreamError {
            message: scalar(map.get("message")),
            kind: scalar(map.get("type")),
            code: scalar(map.get("code")),
        }),
        Value::String(message) => Some(UpstreamError {
            message: Some(message),
            ..UpstreamError::default()
        }),
        other => Some(UpstreamError {
            message: Some(other.to_string()),
            ..UpstreamError::default()
        }),
    };
    Ok(error.map(|mut e| {
        e.message = e.message.map(|m| cap_string(m, ERROR_MESSAGE_CAP));
        e
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_shape_in_one_scan() {
        let shape = |s: &str| usage_shape(s.as_bytes());
        let cut = |s: &str| {
            let r = shape(s).unwrap().usage_span.unwrap();
            format!("{}{}", &s[..r.start], &s[r.end..])
        };
        let s = r#"{"choices":[],"usage":{"prompt_tokens":1}}"#;
        let u = shape(s).unwrap();
        assert_eq!((u.choices, u.usage), (Some(0), UsageMember::Object));
        // Quotes, braces and escapes inside strings are skipped, not read as structure.
        let s = r#"{"id":"a\"}","choices":[{"delta":{"content":"x\\"}},{"i":[1,{"b":"]"}]}], "usage" : null ,"obfuscation":"q\"r"}"#;
        let u = shape(s).unwrap();
        assert_eq!((u.choices, u.usage), (Some(2), UsageMember::Null));
        assert_eq!(
            cut(s),
            r#"{"id":"a\"}","choices":[{"delta":{"content":"x\\"}},{"i":[1,{"b":"]"}]}], "obfuscation":"q\"r"}"#
        );
        let s = r#"{"choices":[{"index":0}],"usage":null}"#;
        assert_eq!(cut(s), r#"{"choices":[{"index":0}]}"#);
        assert!(serde_json::from_str::<Value>(&cut(s)).is_ok());
        let u = shape(r#"{"usage":3}"#).unwrap();
        assert_eq!((u.usage, u.usage_span), (UsageMember::Absent, None));
        assert_eq!(shape(" {} ").unwrap().choices, None);
        // Not one well-formed object: nothing is cut.
        for bad in [
            r#"{"choices":[1,}"#,
            r#"{"a":1} x"#,
            "[1]",
            r#"{"a":"#,
            r#"{"a":"\"}"#,
            "",
            "{",
        ] {
            assert!(shape(bad).is_none(), "{bad}");
        }
    }
    use crate::stream::fixtures_for_tests as fixtures;
    use crate::stream::sse::SseParser;
    use serde_json::Value;

    fn accumulate(stream: &[u8]) -> ResponseSummary {
        let mut acc = StreamAccumulator::new();
        let outcome = acc.feed(stream);
        assert_eq!(outcome.first_content, acc.summary().first_content_seen);
        acc.finish()
    }

    fn accumulate_bytewise(stream: &[u8]) -> ResponseSummary {
        let mut acc = StreamAccumulator::new();
        let mut firsts = 0;
        for b in stream.chunks(1) {
            firsts += u32::from(acc.feed(b).first_content);
        }
        assert_eq!(firsts, u32::from(acc.summary().first_content_seen));
        acc.finish()
    }

    /// The data of every event of a fixture.
    fn events(stream: &[u8]) -> Vec<Vec<u8>> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.feed(stream, |e| out.push(e.data.to_vec()));
        out
    }

    fn data_event_count(stream: &[u8]) -> u64 {
        events(stream)
            .iter()
            .filter(|d| d.as_slice() != b"[DONE]")
            .count() as u64
    }

    fn usage(
        input: u64,
        output: u64,
        cached: Option<u64>,
        reasoning: Option<u64>,
    ) -> Option<Usage> {
        Some(Usage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            cache_read_input_tokens: cached,
            reasoning_output_tokens: reasoning,
            cache_write_input_tokens: None,
        })
    }

    fn reasons(list: &[&str]) -> Vec<Option<String>> {
        list.iter().map(|r| Some((*r).to_owned())).collect()
    }

    fn assert_valid_json(text: &str) {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
            panic!("not JSON ({e}): {text}");
        }
    }

    #[test]
    fn openai_text_stream() {
        let s = fixtures::own("openai-chat-text.sse");
        let sum = accumulate(&s);
        assert_eq!(
            sum.id.as_deref(),
            Some("chatcmpl-llmtapText0001a2b3c4d5e6f7")
        );
        assert_eq!(sum.model.as_deref(), Some("gpt-4.1-nano-2025-04-14"));
        assert_eq!(sum.service_tier.as_deref(), Some("default"));
        assert_eq!(sum.system_fingerprint.as_deref(), Some("fp_11a7ab0c3d"));
        assert_eq!(sum.finish_reasons, reasons(&["stop"]));
        assert_eq!(sum.usage, usage(12, 16, Some(0), Some(0)));
        // Role chunk, 16 content chunks, finish chunk, usage chunk.
        assert_eq!(sum.chunk_count, data_event_count(&s));
        assert_eq!(sum.chunk_count, 19);
        assert!(sum.saw_done && sum.first_content_seen && !sum.parse_failed);
        assert!(sum.tool_calls.is_empty() && sum.error.is_none());
        assert_eq!(
            sum.output_text,
            ["llmtap sits between your app and the model, copying each caf\u{e9}-sized chunk."]
        );
        // Characters, not bytes: the é is two bytes.
        assert_eq!(sum.output_chars, sum.output_text[0].chars().count() as u64);
        assert_eq!(sum.output_chars + 1, sum.output_text[0].len() as u64);
    }

    /// The last word wins: a chunk's non-empty id, model, fingerprint and service tier
    /// replace earlier ones (an empty value, like Azure's first chunk's, changes nothing).
    #[test]
    fn later_chunks_have_the_last_word() {
        let s = concat!(
            "data: {\"id\":\"\",\"model\":\"\",\"choices\":[],\"prompt_filter_results\":[]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o-mini\",\"service_tier\":\"auto\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"model\":\"\",\"service_tier\":\"\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n"
        );
        let sum = accumulate(s.as_bytes());
        assert_eq!(sum.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(sum.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(sum.service_tier.as_deref(), Some("default"));
        assert_eq!(sum.system_fingerprint.as_deref(), Some("fp_2"));
        assert_eq!(sum.usage, usage(3, 1, None, None));
    }

    #[test]
    fn openai_parallel_tool_calls() {
        let sum = accumulate(&fixtures::own("openai-chat-stream-parallel-tools.sse"));
        assert_eq!(sum.finish_reasons, reasons(&["tool_calls"]));
        assert_eq!(sum.usage, None);
        assert_eq!(sum.tool_calls.len(), 2);
        for (k, call) in sum.tool_calls.iter().enumerate() {
            assert_eq!(call.index, k as u32);
            assert!(call.id.starts_with("call_"), "{call:?}");
            assert_eq!(call.kind, "function");
            assert_eq!(call.name, "current_temperature");
            assert_valid_json(&call.arguments);
        }
        assert_eq!(
            sum.tool_calls[0].arguments,
            r#"{"city": "Lisbon", "unit": "C"}"#
        );
        assert_eq!(
            sum.tool_calls[1].arguments,
            r#"{"city": "Oslo", "unit": "C"}"#
        );

        let sum = accumulate(&fixtures::own(
            "openai-chat-stream-parallel-tools-usage.sse",
        ));
        let names: Vec<_> = sum.tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["lookup_forecast", "get_store_hours"]);
        assert_eq!(sum.tool_calls[0].id, "call_llmtapForecastPorto01");
        assert_eq!(sum.tool_calls[0].arguments, r#"{"city": "Porto"}"#);
        assert_eq!(sum.tool_calls[1].arguments, "{}");
        assert_eq!(sum.usage, usage(233, 38, Some(0), Some(0)));
        assert!(sum.first_content_seen && sum.saw_done);
    }

    #[test]
    fn openai_reasoning_usage() {
        let sum = accumulate(&fixtures::own("openai-chat-stream-reasoning-usage.sse"));
        assert_eq!(sum.usage, usage(14, 150, Some(0), Some(128)));
        assert_eq!(sum.system_fingerprint, None);
        assert_eq!(sum.finish_reasons, reasons(&["stop"]));
        assert_eq!(
            sum.output_text,
            ["Short answer: it\u{2019}s a proxy that watches tokens."]
        );
    }

    #[test]
    fn azure_model_router() {
        let s = fixtures::own("azure-chat-model-router.sse");
        let ev = events(&s);
        assert!(
            !is_usage_only_chunk(&ev[0]),
            "prompt_filter_results chunk is not usage"
        );
        assert!(is_usage_only_chunk(&ev[ev.len() - 2]));
        let sum = accumulate(&s);
        // The first chunk's empty id/model must not stick.
        assert_eq!(
            sum.id.as_deref(),
            Some("chatcmpl-llmtapRouter0005e1f2a3b4c5")
        );
        assert_eq!(sum.model.as_deref(), Some("gpt-5-nano-2025-08-07"));
        assert_eq!(sum.usage, usage(11, 57, Some(0), Some(48)));
        assert_eq!(sum.finish_reasons, reasons(&["stop"]));
        assert_eq!(sum.output_text, ["Oslo is Norway\u{2019}s capital."]);
    }

    #[test]
    fn azure_content_filter_streams_have_no_usage_chunk() {
        for name in [
            "azure-chat-stream-content-filter.sse",
            "azure-chat-stream-content-filter-gpt41.sse",
        ] {
            let s = fixtures::own(name);
            assert!(events(&s).iter().all(|d| !is_usage_only_chunk(d)), "{name}");
            let sum = accumulate(&s);
            assert_eq!(sum.usage, None, "{name}");
            assert_eq!(sum.finish_reasons, reasons(&["stop"]), "{name}");
            assert!(
                sum.id
                    .as_deref()
                    .is_some_and(|id| id.starts_with("chatcmpl-")),
                "{name}"
            );
            assert!(
                sum.output_chars > 0 && sum.first_content_seen && sum.saw_done,
                "{name}"
            );
        }
    }

    #[test]
    fn vllm_streams() {
        let sum = accumulate(&fixtures::own("vllm-chat-stream-usage.sse"));
        assert_eq!(sum.usage, usage(29, 6, Some(16), None));
        // Only the usage chunk carries the fingerprint.
        assert!(sum
            .system_fingerprint
            .as_deref()
            .is_some_and(|f| f.starts_with("vllm-0.24.0")));
        assert_eq!(sum.output_text, ["red, green, blue"]);
        assert_eq!(sum.finish_reasons, reasons(&["stop"]));

        let sum = accumulate(&fixtures::own("vllm-chat-stream-no-usage.sse"));
        assert_eq!(sum.usage, None);
        // The last content chunk carries the finish reason too.
        assert_eq!(sum.finish_reasons, reasons(&["length"]));
        assert_eq!(sum.output_text, ["tap tap tap\n<|end"]);
        assert!(sum.saw_done && sum.output_chars > 0);
    }

    #[test]
    fn groq_midstream_error_event() {
        let sum = accumulate(&fixtures::own("groq-chat-stream-midstream-error.sse"));
        let e = sum.error.expect("error");
        assert_eq!(e.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(e.code.as_deref(), Some("tool_use_failed"));
        assert!(e.message.is_some_and(
            |m| m.starts_with("Tool call validation failed: parameters for tool lookup_order")
        ));
        assert!(!sum.saw_done && !sum.parse_failed);
        // Only reasoning arrived, and it counts as first content.
        assert!(sum.first_content_seen);
        assert_eq!(
            sum.reasoning_chars,
            "Look up the order with the tool.".len() as u64
        );
        assert_eq!(sum.output_chars, 0);
    }

    #[test]
    fn openrouter_midstream_error_in_a_chunk() {
        let sum = accumulate(&fixtures::own("openrouter-chat-stream-midstream-error.sse"));
        let e = sum.error.expect("error");
        assert_eq!(e.code.as_deref(), Some("400"));
        assert_eq!(e.message.as_deref(), Some("Token limit reached"));
        // The error chunk's `finish_reason: null` doesn't erase the earlier "length".
        assert_eq!(sum.finish_reasons, reasons(&["length"]));
        assert_eq!(sum.usage, usage(37, 9, Some(0), Some(7)));
        assert!(sum.saw_done && sum.first_content_seen);
    }

    #[test]
    fn mistral_repeated_tool_index_keeps_the_name() {
        let sum = accumulate(&fixtures::own("mistral-chat-incremental-tool-call.sse"));
        assert_eq!(
            sum.tool_calls,
            [ToolCall {
                index: 0,
                id: "chatcmpl-tool-11a7ab5e0c0ffee0".into(),
                name: "docSearchTool".into(),
                kind: "function".into(),
                arguments: r#"{"query": "llmtap span names"}"#.into(),
                argument_bytes: 30,
            }]
        );
        assert_eq!(sum.usage, usage(150, 12, Some(96), None));
        assert_eq!(sum.finish_reasons, reasons(&["tool_calls"]));
    }

    #[test]
    fn other_providers_tool_calls() {
        let sum = accumulate(&fixtures::own("groq-chat-tool-call.sse"));
        assert_eq!(sum.tool_calls.len(), 1);
        assert_eq!(
            (
                sum.tool_calls[0].name.as_str(),
                sum.tool_calls[0].arguments.as_str()
            ),
            ("local_time", "{}")
        );
        assert_eq!(sum.tool_calls[0].id, "llm7q2x9t");
        assert_eq!(sum.usage, usage(180, 13, None, None));
        for (name, arguments, expected) in [
            (
                "deepseek-chat-tool-call.sse",
                r#"{"city": "Lima"}"#,
                usage(204, 41, Some(192), Some(22)),
            ),
            (
                "xai-chat-tool-call.sse",
                r#"{"city":"Quito"}"#,
                usage(190, 18, Some(128), Some(52)),
            ),
        ] {
            let sum = accumulate(&fixtures::own(name));
            assert_eq!(sum.tool_calls.len(), 1, "{name}");
            assert_eq!(sum.tool_calls[0].name, "local_time", "{name}");
            assert_eq!(sum.tool_calls[0].arguments, arguments, "{name}");
            assert_valid_json(&sum.tool_calls[0].arguments);
            assert!(sum.reasoning_chars > 0, "{name}");
            assert_eq!(sum.usage, expected, "{name}");
            assert_eq!(sum.finish_reasons, reasons(&["tool_calls"]), "{name}");
        }
    }

    #[test]
    fn own_crlf_keepalive_chat_stream() {
        let sum = accumulate(&fixtures::own("openai-chat-crlf-keepalive.sse"));
        assert_eq!(sum.output_text, ["Hello, world"]);
        assert_eq!(sum.chunk_count, 5);
        assert_eq!(sum.usage, usage(5, 3, None, None));
        assert_eq!(sum.finish_reasons, reasons(&["stop"]));
        assert!(sum.saw_done && !sum.parse_failed);
    }

    #[test]
    fn feeding_parsed_events_matches_feeding_bytes() {
        let s = fixtures::own("groq-chat-stream-midstream-error.sse");
        let mut acc = StreamAccumulator::new();
        let mut parser = SseParser::new();
        let mut firsts = 0;
        parser.feed(&s, |e| {
            firsts += u32::from(acc.feed_event(e.event, e.data).first_content)
        });
        assert_eq!(firsts, 1);
        assert_eq!(acc.finish(), accumulate(&s));
    }

    /// Byte-at-a-time feeding gives the same summary as one feed, for every SSE fixture.
    #[test]
    fn bytewise_feeding_matches_whole_feed() {
        // SSE framing tests whose data is not chat JSON: only the equality applies.
        let framing_only = ["sse-crlf-keepalive.sse", "sse-cr-bom.sse"];
        for (name, s) in fixtures::all_sse() {
            let whole = accumulate(&s);
            assert!(
                !whole.parse_failed || framing_only.contains(&name.as_str()),
                "{name}"
            );
            assert_eq!(accumulate_bytewise(&s), whole, "{name}");
        }
    }

    #[test]
    fn first_content_is_reported_once_in_the_right_feed() {
        let mut acc = StreamAccumulator::new();
        let role = br#"data: {"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
        assert_eq!(acc.feed(role), FeedOutcome::default());
        assert_eq!(
            acc.feed(b"\n\n"),
            FeedOutcome {
                first_content: false,
                chunks: 1
            }
        );
        let hi = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        assert_eq!(
            acc.feed(hi),
            FeedOutcome {
                first_content: true,
                chunks: 1
            }
        );
        assert_eq!(
            acc.feed(hi),
            FeedOutcome {
                first_content: false,
                chunks: 1
            }
        );
        assert_eq!(acc.feed(b"data: [DONE]\n\n"), FeedOutcome::default());
        let sum = acc.finish();
        assert_eq!((sum.chunk_count, sum.saw_done), (3, true));
        assert_eq!(sum.output_text, ["HiHi"]);
    }

    #[test]
    fn legacy_text_completion_stream() {
        let s = concat!(
            "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"choices\":[{\"text\":\"Hel\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-3.5-turbo-instruct\"}\n\n",
            "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"choices\":[{\"text\":\"lo\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}],\"model\":\"gpt-3.5-turbo-instruct\"}\n\n",
            "data: [DONE]\n\n",
        );
        let sum = accumulate(s.as_bytes());
        assert_eq!(sum.output_text, ["Hello"]);
        assert_eq!(sum.finish_reasons, reasons(&["length"]));
        assert_eq!(sum.model.as_deref(), Some("gpt-3.5-turbo-instruct"));
        assert!(sum.first_content_seen);
    }

    #[test]
    fn several_choices() {
        let s = concat!(
            "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"b\"}},{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c0\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":1,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":1,\"finish_reason\":\"tool_calls\",\"delta\":{}},{\"index\":0,\"finish_reason\":\"stop\",\"delta\":{}}]}\n\n",
            "data: {\"choices\":[{\"index\":999999999999,\"delta\":{\"content\":\"ignored\"}}]}\n\n",
        );
        let sum = accumulate(s.as_bytes());
        assert_eq!(sum.output_text, ["a", "b"]);
        assert_eq!(sum.finish_reasons, reasons(&["stop", "tool_calls"]));
        let calls: Vec<_> = sum
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(calls, [("c0", "{}"), ("c1", "{}")]);
    }

    #[test]
    fn tool_call_delta_variants() {
        let chunk = |calls: &str| {
            format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":{calls}}}}}]}}\n\n"
            )
        };
        // A server that reuses index 0 for a second call, with a new id.
        let s = [
            chunk(r#"[{"index":0,"id":"a","type":"function","function":{"name":"one","arguments":"{\"x\":"}}]"#),
            chunk(r#"[{"index":0,"function":{"arguments":"1}"}}]"#),
            chunk(r#"[{"index":0,"id":"b","type":"function","function":{"name":"two","arguments":"{}"}}]"#),
        ]
        .concat();
        let sum = accumulate(s.as_bytes());
        let calls: Vec<_> = sum
            .tool_calls
            .iter()
            .map(|c| {
                (
                    c.index,
                    c.id.as_str(),
                    c.name.as_str(),
                    c.arguments.as_str(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            [(0, "a", "one", r#"{"x":1}"#), (0, "b", "two", "{}")]
        );

        // A server that repeats id, type and name on every delta.
        let s = [
            chunk(r#"[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{\"q\""}}]"#),
            chunk(r#"[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":":2}"}}]"#),
        ]
        .concat();
        let sum = accumulate(s.as_bytes());
        assert_eq!(sum.tool_calls.len(), 1);
        assert_eq!(
            (
                sum.tool_calls[0].name.as_str(),
                sum.tool_calls[0].arguments.as_str()
            ),
            ("f", r#"{"q":2}"#)
        );

        // Deltas without an index: matched by id, else the latest call.
        let s = [
            chunk(r#"[{"id":"a","function":{"name":"f","arguments":"{"}}]"#),
            chunk(r#"[{"function":{"arguments":"}"}}]"#),
            chunk(r#"[{"id":"b","function":{"name":"g","arguments":"[]"}}]"#),
        ]
        .concat();
        let sum = accumulate(s.as_bytes());
        let calls: Vec<_> = sum
            .tool_calls
            .iter()
            .map(|c| (c.index, c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(calls, [(0, "f", "{}"), (1, "g", "[]")]);

        // A custom tool.
        let s = chunk(
            r#"[{"index":0,"id":"c","type":"custom","custom":{"name":"sql","input":"SELECT 1"}}]"#,
        );
        let sum = accumulate(s.as_bytes());
        assert_eq!(
            (
                sum.tool_calls[0].kind.as_str(),
                sum.tool_calls[0].arguments.as_str()
            ),
            ("custom", "SELECT 1")
        );
    }

    #[test]
    fn counting_only_keeps_the_length_not_the_text() {
        let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"héllo\"}}]}\n\n";
        let mut acc = StreamAccumulator::counting_only();
        assert!(acc.feed(stream.as_bytes()).first_content);
        let sum = acc.finish();
        assert_eq!(sum.output_chars, 5);
        assert!(sum.output_text.iter().all(String::is_empty));
    }

    #[test]
    fn output_text_is_capped_but_counted() {
        let mut acc = StreamAccumulator::new();
        // 3-byte characters, so the cap falls inside one.
        let piece = "€".repeat(100_000);
        let chunk = format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{piece}\"}}}}]}}\n\n"
        );
        for _ in 0..4 {
            acc.feed(chunk.as_bytes());
        }
        let sum = acc.finish();
        assert_eq!(sum.output_chars, 400_000);
        assert!(sum.output_text[0].len() <= OUTPUT_TEXT_CAP);
        assert!(sum.output_text[0].len() > OUTPUT_TEXT_CAP - 3);
    }

    #[test]
    fn garbage_sets_parse_failed_and_stops() {
        let mut acc = StreamAccumulator::new();
        acc.feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n");
        acc.feed(b"data: <html>502 Bad Gateway</html>\n\n");
        assert!(acc.summary().parse_failed);
        assert_eq!(
            acc.feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n"),
            FeedOutcome::default()
        );
        let sum = acc.finish();
        assert_eq!(sum.output_text, ["a"]);

        for body in [
            &b"<html>"[..],
            b"",
            b"{\"choices\":",
            b"[1,2]",
            b"{\"choices\":{}}",
            b"{\"usage\":7}",
        ] {
            assert!(
                summarize_json_body(body).parse_failed,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Deterministic noise, with and without SSE framing: no panic, whatever happens.
        let mut state = 1u64;
        let mut noise = Vec::new();
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let b = (state >> 56) as u8;
            noise.push(match b % 8 {
                0 => b'\n',
                1 => b'{',
                2 => b'"',
                _ => b,
            });
        }
        accumulate(&noise);
        let framed: Vec<u8> = noise
            .chunks(50)
            .flat_map(|c| [b"data: ".as_slice(), c, b"\n\n"].concat())
            .collect();
        assert!(accumulate(&framed).parse_failed);
        assert!(summarize_json_body(&noise).parse_failed);
    }

    #[test]
    fn plain_text_error_event_is_an_error_not_garbage() {
        let sum = accumulate(b"event: error\ndata: upstream overloaded\n\n");
        assert_eq!(
            sum.error.and_then(|e| e.message).as_deref(),
            Some("upstream overloaded")
        );
        assert!(!sum.parse_failed);
    }

    #[test]
    fn odd_field_types_do_not_fail_the_chunk() {
        let s = br#"data: {"id":7,"model":null,"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"x"}],"reasoning":{"a":1}},"finish_reason":null}],"usage":{"prompt_tokens":"12","completion_tokens":3.0,"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":-1}}}

"#;
        let sum = accumulate(s);
        assert!(!sum.parse_failed);
        assert_eq!(sum.id.as_deref(), Some("7"));
        assert_eq!(sum.usage, usage(12, 3, None, None));
    }

    #[test]
    fn json_bodies() {
        let sum = summarize_json_body(&fixtures::own("openai-chat-text.json"));
        assert_eq!(
            sum.id.as_deref(),
            Some("chatcmpl-llmtapJson0001f6e5d4c3b2a1")
        );
        assert_eq!(sum.model.as_deref(), Some("gpt-4.1-nano-2025-04-14"));
        assert_eq!(sum.service_tier.as_deref(), Some("default"));
        assert_eq!(sum.system_fingerprint.as_deref(), Some("fp_11a7ab0c3d"));
        assert_eq!(sum.finish_reasons, reasons(&["stop"]));
        assert_eq!(sum.usage, usage(21, 27, Some(0), Some(0)));
        assert!(sum.output_text[0].starts_with("**Tap Day:** a yearly check"));
        // `\u2014` in the JSON is one character.
        assert!(sum.output_text[0].contains("quiet\u{2014}bytes"));
        assert_eq!(sum.output_chars, sum.output_text[0].chars().count() as u64);
        assert!(sum.first_content_seen && sum.error.is_none() && !sum.parse_failed);
        assert_eq!(sum.chunk_count, 0);

        let tools = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},{"id":"call_b","type":"function","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}"#;
        let sum = summarize_json_body(tools);
        let calls: Vec<_> = sum
            .tool_calls
            .iter()
            .map(|c| {
                (
                    c.index,
                    c.id.as_str(),
                    c.name.as_str(),
                    c.kind.as_str(),
                    c.arguments.as_str(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            [
                (0, "call_a", "f", "function", r#"{"a":1}"#),
                (1, "call_b", "g", "function", "{}")
            ]
        );
        assert_eq!(sum.output_text, [""]);

        let completion = br#"{"id":"cmpl-1","object":"text_completion","model":"gpt-3.5-turbo-instruct","choices":[{"text":"Hi there","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let sum = summarize_json_body(completion);
        assert_eq!(sum.output_text, ["Hi there"]);
        assert_eq!(sum.usage, usage(3, 2, None, None));

        let embeddings = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023,-0.0093,1e-5]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        let sum = summarize_json_body(embeddings);
        assert_eq!(sum.model.as_deref(), Some("text-embedding-3-small"));
        assert_eq!(sum.embedding_dimensions, Some(3));
        // base64 of four little-endian f32s (16 bytes), then a second item that is skipped.
        let b64 = br#"{"object":"list","data":[{"embedding":"AAAAAAAAgD8AAABAAABAQA=="},{"embedding":"x"}],"model":"m"}"#;
        assert_eq!(summarize_json_body(b64).embedding_dimensions, Some(4));
        // A `data` of another shape is no embeddings list, and no parse failure.
        let odd = summarize_json_body(br#"{"data":"text","model":"m"}"#);
        assert!(!odd.parse_failed && odd.embedding_dimensions.is_none());
        assert_eq!(
            sum.usage,
            Some(Usage {
                input_tokens: Some(8),
                ..Usage::default()
            })
        );
        assert!(
            sum.finish_reasons.is_empty() && sum.output_text.is_empty() && !sum.first_content_seen
        );
    }

    #[test]
    fn error_bodies() {
        let cases = [
            (
                "openai-error-400-invalid-image-url.json",
                Some("invalid_request_error"),
                Some("invalid_image_url"),
                "Error while downloading https://example.com/llmtap/",
            ),
            (
                "openai-error-400-unsupported-value.json",
                Some("invalid_request_error"),
                Some("unsupported_value"),
                "Unsupported value: 'temperature'",
            ),
            (
                "openai-error-404-model-not-found.json",
                Some("invalid_request_error"),
                Some("model_not_found"),
                "The model `gpt-llmtap-missing`",
            ),
            (
                "azure-error-404-deployment-not-found.json",
                Some("invalid_request_error"),
                Some("DeploymentNotFound"),
                "The API deployment for this resource does not exist.",
            ),
            (
                "openrouter-error-429-rate-limited.json",
                None,
                Some("429"),
                "Provider returned error",
            ),
            (
                "anthropic-error-400-invalid-request.json",
                Some("invalid_request_error"),
                None,
                "This model does not support the llmtap-test",
            ),
        ];
        for (name, kind, code, message) in cases {
            let sum = summarize_json_body(&fixtures::own(name));
            let e = sum.error.unwrap_or_else(|| panic!("{name}: no error"));
            assert_eq!(
                (e.kind.as_deref(), e.code.as_deref()),
                (kind, code),
                "{name}"
            );
            assert!(
                e.message.as_deref().is_some_and(|m| m.starts_with(message)),
                "{name}: {e:?}"
            );
            assert!(!sum.parse_failed && sum.usage.is_none(), "{name}");
        }
        let sum = summarize_json_body(
            br#"{"error":{"message":"m","type":"server_error","param":null,"code":null}}"#,
        );
        assert_eq!(
            sum.error,
            Some(UpstreamError {
                message: Some("m".into()),
                kind: Some("server_error".into()),
                code: None,
            })
        );
        // vLLM's flat error shape and a bare string.
        let sum = summarize_json_body(br#"{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}"#);
        let e = sum.error.expect("vllm error");
        assert_eq!(
            (e.message.as_deref(), e.kind.as_deref(), e.code.as_deref()),
            (Some("bad"), Some("BadRequestError"), Some("400"))
        );
        let sum = summarize_json_body(br#"{"error":"Unauthorized"}"#);
        assert_eq!(
            sum.error.and_then(|e| e.message).as_deref(),
            Some("Unauthorized")
        );
        assert!(summarize_json_body(br#"{"error":null,"choices":[]}"#)
            .error
            .is_none());
    }

    #[test]
    fn usage_only_chunk_detection() {
        assert!(is_usage_only_chunk(
            br#"{"id":"x","choices":[],"usage":{"prompt_tokens":1}}"#
        ));
        assert!(is_usage_only_chunk(
            br#"{ "usage" : { } , "choices" : [ ] }"#
        ));
        assert!(!is_usage_only_chunk(br#"{"choices":[],"usage":null}"#));
        assert!(!is_usage_only_chunk(
            br#"{"choices":[],"prompt_filter_results":[]}"#
        ));
        assert!(!is_usage_only_chunk(
            br#"{"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":1}}"#
        ));
        assert!(!is_usage_only_chunk(br#"{"usage":{"prompt_tokens":1}}"#));
        assert!(!is_usage_only_chunk(
            br#"{"choices":null,"usage":{"prompt_tokens":1}}"#
        ));
        assert!(!is_usage_only_chunk(b"[DONE]"));
        assert!(!is_usage_only_chunk(b"{\"choices\":[],\"usage\":{"));
        let s = fixtures::own("openai-chat-text.sse");
        let flags: Vec<bool> = events(&s).iter().map(|d| is_usage_only_chunk(d)).collect();
        assert_eq!(flags.iter().filter(|f| **f).count(), 1);
        assert!(flags[flags.len() - 2]);
    }

    #[test]
    fn strip_null_usage_cases() {
        let strip =
            |s: &str| strip_null_usage(s.as_bytes()).map(|v| String::from_utf8(v).expect("utf-8"));
        assert_eq!(
            strip(r#"{"id":"a","usage":null,"choices":[]}"#).as_deref(),
            Some(r#"{"id":"a","choices":[]}"#)
        );
        assert_eq!(
            strip(r#"{"id":"a","choices":[],"usage":null}"#).as_deref(),
            Some(r#"{"id":"a","choices":[]}"#)
        );
        assert_eq!(
            strip(r#"{"usage":null,"id":"a"}"#).as_deref(),
            Some(r#"{"id":"a"}"#)
        );
        assert_eq!(strip(r#"{"usage":null}"#).as_deref(), Some("{}"));
        assert_eq!(
            strip(r#"{"id": "a", "usage": null, "x": 1}"#).as_deref(),
            Some(r#"{"id": "a", "x": 1}"#)
        );
        assert_eq!(
            strip(r#"{"id": "a", "usage" :null }"#).as_deref(),
            Some(r#"{"id": "a" }"#)
        );
        assert_eq!(
            strip("{\n  \"id\": \"a\",\n  \"usage\": null\n}").as_deref(),
            Some("{\n  \"id\": \"a\"\n}")
        );
        // Not top-level, not null, or only inside a string: left alone.
        assert_eq!(
            strip(r#"{"choices":[{"usage":null}],"x":{"usage":null}}"#),
            None
        );
        assert_eq!(strip(r#"{"choices":[],"usage":{"prompt_tokens":1}}"#), None);
        assert_eq!(strip(r#"{"content":"\"usage\":null,","usage":{}}"#), None);
        assert_eq!(
            strip(r#"{"content":"a\\","usage":null}"#).as_deref(),
            Some(r#"{"content":"a\\"}"#)
        );
        assert_eq!(strip(r#"{"usage":nullx}"#), None);
        for bad in [
            "",
            "null",
            "[]",
            "{",
            r#"{"usage""#,
            r#"{"usage":null"#,
            "{\"a\":\"",
            "{\"a\":[1,{\"b\":2}",
        ] {
            assert_eq!(strip(bad), None, "{bad}");
        }
        assert_eq!(null_usage_span(br#"{"a":1,"usage":null}"#), Some(6..19));
    }

    /// On a real stream, stripping gives exactly the JSON minus its `usage` member.
    #[test]
    fn strip_null_usage_on_real_chunks() {
        for name in [
            "openai-chat-text.sse",
            "openai-chat-stream-reasoning-usage.sse",
            "azure-chat-model-router.sse",
        ] {
            let mut stripped = 0;
            for data in events(&fixtures::own(name)) {
                if data == b"[DONE]" {
                    continue;
                }
                let mut expected: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&data).expect("chunk");
                match strip_null_usage(&data) {
                    Some(out) => {
                        stripped += 1;
                        assert_eq!(expected.remove("usage"), Some(serde_json::Value::Null));
                        let got: serde_json::Map<String, serde_json::Value> =
                            serde_json::from_slice(&out).expect("valid after strip");
                        assert_eq!(got, expected);
                        assert_eq!(out.len(), data.len() - br#""usage":null,"#.len());
                    }
                    None => assert!(
                        !matches!(expected.get("usage"), Some(serde_json::Value::Null)),
                        "{name}"
                    ),
                }
            }
            assert!(stripped >= 5, "{name}");
        }
    }

    /// JSON values of any shape, nested a little, with the keys a chunk has now and then.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("choices".to_string()),
            Just("delta".to_string()),
            Just("content".to_string()),
            Just("usage".to_string()),
            Just("tool_calls".to_string()),
            Just("finish_reason".to_string()),
            Just("index".to_string()),
            Just("error".to_string()),
            Just("model".to_string()),
            "[a-z_]{1,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Any JSON as a stream chunk or as a whole body is summarised without a panic.
        #[test]
        fn any_json_never_panics(values in proptest::collection::vec(any_json(), 1..6)) {
            let mut acc = StreamAccumulator::new();
            for v in &values {
                acc.feed(format!("data: {v}\n\n").as_bytes());
                let _ = summarize_json_body(v.to_string().as_bytes());
                let _ = is_usage_only_chunk(v.to_string().as_bytes());
            }
            acc.feed(b"data: [DONE]\n\n");
            let _ = acc.finish();
        }

        /// Any bytes as a stream never panic either.
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let mut acc = StreamAccumulator::new();
            acc.feed(&bytes);
            let _ = acc.finish();
            let _ = summarize_json_body(&bytes);
        }
    }
}
