//! What an OpenAI Chat Completions, legacy Completions or Embeddings response says: streamed
//! chunks (`chat.completion.chunk`, legacy `text_completion` events) and whole bodies
//! (`chat.completion`, `text_completion`, an embeddings list, `{"error":{...}}`), read into the
//! shared [`ResponseSummary`] through its builders.
//!
//! Reading runs per chunk on the proxy's hot path: the shared SSE watcher frames the stream and
//! hands each event's bytes to [`ChatReader`], which parses them into the borrowed structs of
//! [`wire`](super::wire) and allocates only what it keeps. It never affects the bytes relayed:
//! a body it cannot make sense of just sets `parse_failed`.

use std::borrow::Cow;

use crate::dialect::watch::RawEventReader;
use crate::vocab::summary::{
    set_latest, ModalityUsage, ResponseSummary, ToolCall, UpstreamError, Usage, ERROR_MESSAGE_CAP,
    MAX_CHOICES, MAX_TOOL_CALLS,
};

use super::scan::{parse_chunk, parse_response};
use super::wire::{cap_string, ChoiceWire, ResponseWire, ToolCallWire, UsageWire};

/// Reads one stream's events. Tool-call deltas are matched to their call per choice, so the
/// reader keeps each call's choice index beside the summary's list.
#[derive(Debug, Default)]
pub(super) struct ChatReader {
    /// Choice index of each entry of `summary.tool_calls` (same order).
    tool_choices: Vec<u32>,
}

impl RawEventReader for ChatReader {
    fn read(
        &mut self,
        event: Option<&str>,
        data: &[u8],
        summary: &mut ResponseSummary,
        count_only: bool,
    ) -> bool {
        if data == b"[DONE]" {
            summary.saw_done = true;
            return false;
        }
        match parse_chunk(data) {
            Ok(wire) => self.apply(summary, wire, event, count_only),
            Err(_) if event == Some("error") => {
                // A plain-text error event is still an error, not garbage.
                summary.set_error(Some(&String::from_utf8_lossy(data)), None, None);
            }
            Err(_) => summary.parse_failed = true,
        }
        true
    }

    /// Tool calls whose server never sent a `type` get their default `function` kind.
    fn finish(&mut self, summary: &mut ResponseSummary) {
        default_tool_kinds(&mut summary.tool_calls);
    }
}

/// Summarizes a non-streamed response body (completion, embeddings or error).
pub(super) fn summarize_body(bytes: &[u8]) -> ResponseSummary {
    let mut summary = ResponseSummary::default();
    match parse_response(bytes) {
        Ok(wire) => ChatReader::default().apply(&mut summary, wire, None, false),
        Err(_) => summary.parse_failed = true,
    }
    default_tool_kinds(&mut summary.tool_calls);
    summary
}

impl ChatReader {
    fn apply(
        &mut self,
        s: &mut ResponseSummary,
        wire: ResponseWire<'_>,
        event: Option<&str>,
        count_only: bool,
    ) {
        // The latest non-empty value wins: the last chunk (finish or usage) describes the
        // finished response.
        s.set_id_and_model(wire.id.as_deref(), wire.model.as_deref());
        set_latest(
            &mut s.system_fingerprint,
            wire.system_fingerprint.as_deref(),
        );
        s.set_service_tier(wire.service_tier.as_deref());
        if s.embedding_dimensions.is_none() {
            s.embedding_dimensions = wire.data.0;
        }
        if let Some(usage) = wire.usage {
            update_usage(s, usage);
        }
        if let Some(error) = wire.error {
            set_error(s, error);
        } else if event == Some("error")
            || wire.object.as_deref() == Some("error")
            || wire.kind.as_deref() == Some("error")
        {
            // Top-level error shapes: vLLM's `{"object":"error","message",...,"type","code"}`
            // and the Responses API's `{"type":"error","code","message"}`.
            let kind = wire.kind.0.filter(|k| k != "error");
            set_error(
                s,
                UpstreamError {
                    message: wire
                        .message
                        .0
                        .map(|m| cap_string(m.into_owned(), ERROR_MESSAGE_CAP)),
                    kind: kind.map(Cow::into_owned),
                    code: wire.code.0.map(Cow::into_owned),
                },
            );
        }
        if let Some(choices) = wire.choices {
            for choice in choices.into_items() {
                self.choice(s, choice, count_only);
            }
        }
    }

    fn choice(&mut self, s: &mut ResponseSummary, choice: ChoiceWire<'_>, count_only: bool) {
        let index = choice.index.0.unwrap_or(0);
        if index >= MAX_CHOICES as u64 {
            return;
        }
        let index = index as usize;
        // Every choice seen has its slots, finished or not.
        if s.finish_reasons.len() <= index {
            s.finish_reasons.resize(index + 1, None);
        }
        if s.output_text.len() <= index {
            s.output_text.resize(index + 1, String::new());
        }
        // Never let a later null erase a finish reason (OpenRouter sends one after "length").
        if let Some(reason) = choice.finish_reason.0 {
            s.set_finish_reason(index, &reason);
        }
        if let Some(text) = choice.text.0 {
            s.push_text(index, &text, count_only);
        }
        // Streamed chunks carry `delta`, whole completions `message`: same shape.
        for (message, whole) in [(choice.delta, false), (choice.message, true)] {
            let Some(message) = message else { continue };
            if let Some(text) = message.content.0 {
                s.push_text(index, &text, count_only);
            }
            for reasoning in [message.reasoning_content.0, message.reasoning.0]
                .into_iter()
                .flatten()
            {
                s.push_reasoning(&reasoning);
            }
            s.first_content_seen |= message.refusal.0.is_some_and(|r| !r.is_empty());
            if let Some(calls) = message.tool_calls {
                for (position, call) in calls.into_items().enumerate() {
                    // A whole message's calls may omit `index`: their position is the index.
                    let fallback = whole.then_some(position as u32);
                    self.tool_call(s, index as u32, call, fallback, count_only);
                }
            }
        }
    }

    /// Applies one tool-call delta (or a whole message's call) of choice `choice`.
    fn tool_call(
        &mut self,
        s: &mut ResponseSummary,
        choice: u32,
        call: ToolCallWire<'_>,
        fallback_index: Option<u32>,
        count_only: bool,
    ) {
        s.first_content_seen = true;
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
        let Some(k) = self.call_position(s, choice, index, id.as_deref()) else {
            return;
        };
        let entry = &mut s.tool_calls[k];
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
            s.push_arguments(k, &arguments, count_only);
        }
    }

    /// The position in `s.tool_calls` of the call a delta continues, or of a new call inserted
    /// for it (kept sorted by (choice, index); equal keys stay in arrival order). `None` when
    /// the response already holds [`MAX_TOOL_CALLS`].
    fn call_position(
        &mut self,
        s: &mut ResponseSummary,
        choice: u32,
        index: Option<u32>,
        id: Option<&str>,
    ) -> Option<usize> {
        let calls = &s.tool_calls;
        let choices = &self.tool_choices;
        let in_choice = |k: &usize| choices[*k] == choice;
        let existing = match (index, id) {
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
        if existing.is_some() {
            return existing;
        }
        if calls.len() >= MAX_TOOL_CALLS {
            return None;
        }
        let index = index.unwrap_or_else(|| {
            (0..calls.len())
                .filter(in_choice)
                .map(|k| calls[k].index.saturating_add(1))
                .max()
                .unwrap_or(0)
        });
        let at = (0..calls.len())
            .find(|&k| (choices[k], calls[k].index) > (choice, index))
            .unwrap_or(calls.len());
        s.tool_calls.insert(
            at,
            ToolCall {
                index,
                ..ToolCall::default()
            },
        );
        self.tool_choices.insert(at, choice);
        Some(at)
    }
}

/// Later usage (vLLM's continuous usage, a final chunk) updates what it carries.
fn update_usage(s: &mut ResponseSummary, wire: UsageWire) {
    let (prompt, completion) = (
        wire.prompt_tokens_details.as_ref(),
        wire.completion_tokens_details.as_ref(),
    );
    s.usage_by_modality.update(ModalityUsage {
        text_input: prompt.and_then(|d| d.text_tokens.0),
        image_input: prompt.and_then(|d| d.image_tokens.0),
        audio_input: prompt.and_then(|d| d.audio_tokens.0),
        text_output: completion.and_then(|d| d.text_tokens.0),
        image_output: completion.and_then(|d| d.image_tokens.0),
        audio_output: completion.and_then(|d| d.audio_tokens.0),
    });
    s.update_usage(Usage {
        input_tokens: wire.prompt_tokens.0,
        output_tokens: wire.completion_tokens.0,
        cache_read_input_tokens: prompt.and_then(|d| d.cached_tokens.0),
        reasoning_output_tokens: completion.and_then(|d| d.reasoning_tokens.0),
        cache_write_input_tokens: wire.cache_creation_input_tokens.0,
    });
}

/// The first error wins. Fields are kept as the wire had them (the message capped by the
/// wire reader).
fn set_error(s: &mut ResponseSummary, error: UpstreamError) {
    if s.error.is_none() {
        s.error = Some(error);
    }
}

fn default_tool_kinds(calls: &mut [ToolCall]) {
    for call in calls {
        if call.kind.is_empty() {
            call.kind.push_str("function");
        }
    }
}
