//! The provider-neutral summary of a response: what every dialect's parser fills and what
//! spans and metrics read. Nothing here knows a wire format.

/// Token counts from a response's `usage`. Absent or null fields stay `None`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens (OpenAI `prompt_tokens` / `input_tokens`, Anthropic `input_tokens`,
    /// Ollama `prompt_eval_count`).
    pub input_tokens: Option<u64>,
    /// Output tokens (`completion_tokens` / `output_tokens`, Ollama `eval_count`).
    pub output_tokens: Option<u64>,
    /// Input tokens read from the provider's cache (`cached_tokens`,
    /// Anthropic `cache_read_input_tokens`).
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the provider's cache (Anthropic `cache_creation_input_tokens`).
    pub cache_write_input_tokens: Option<u64>,
    /// `reasoning_tokens`.
    pub reasoning_output_tokens: Option<u64>,
}

/// Token counts by modality, where the API reports them (genai `main`, #440:
/// `gen_ai.usage.{text,image,audio}.{input,output}_tokens`). Each is a subset of the input or
/// output count and is set only when the provider reported it: OpenAI's
/// `prompt_tokens_details` / `completion_tokens_details` (Chat) and `input_tokens_details` /
/// `output_tokens_details` (Responses) `text_tokens`, `image_tokens`, `audio_tokens`.
/// Anthropic and Ollama report no breakdown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ModalityUsage {
    pub text_input: Option<u64>,
    pub image_input: Option<u64>,
    pub audio_input: Option<u64>,
    pub text_output: Option<u64>,
    pub image_output: Option<u64>,
    pub audio_output: Option<u64>,
}

impl ModalityUsage {
    /// Later reports update the counts they carry.
    pub fn update(&mut self, other: ModalityUsage) {
        let pairs = [
            (&mut self.text_input, other.text_input),
            (&mut self.image_input, other.image_input),
            (&mut self.audio_input, other.audio_input),
            (&mut self.text_output, other.text_output),
            (&mut self.image_output, other.image_output),
            (&mut self.audio_output, other.audio_output),
        ];
        for (slot, v) in pairs {
            if v.is_some() {
                *slot = v;
            }
        }
    }
}

/// One tool call, reassembled from its deltas.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The call's `index` within its choice.
    pub index: u32,
    /// `id` (e.g. `call_...`); empty if the server never sent one.
    pub id: String,
    /// `function.name` (or `custom.name`).
    pub name: String,
    /// `type`: `function` (also when the server never said), or e.g. `custom`.
    pub kind: String,
    /// Arguments as sent (JSON text for functions), capped at [`OUTPUT_TEXT_CAP`];
    /// kept only when content capture is on (empty otherwise: see `argument_bytes`).
    pub arguments: String,
    /// Bytes of arguments received, kept or not (for estimating output tokens).
    pub argument_bytes: u64,
}

impl ToolCall {
    /// Bytes of arguments received, whether they were kept or not.
    pub fn arguments_len(&self) -> u64 {
        self.argument_bytes.max(self.arguments.len() as u64)
    }
}

/// An error reported by the upstream, in a non-2xx body or inside a stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    /// `error.message`, capped at 4 KiB.
    pub message: Option<String>,
    /// `error.type`.
    pub kind: Option<String>,
    /// `error.code`; a numeric code is rendered as a string.
    pub code: Option<String>,
}

/// What a response told us, for the span and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResponseSummary {
    /// The latest non-empty `id` (Azure's first chunk has an empty one). Facts that several
    /// events of a stream carry are taken from the last event that has them: the terminal
    /// event describes the finished response (Responses `response.completed` after
    /// `response.created`, Ollama's `done` line, an OpenAI usage chunk).
    pub id: Option<String>,
    /// The latest non-empty `model`: the model that answered, which may differ from the one
    /// requested.
    pub model: Option<String>,
    /// The latest non-empty `system_fingerprint` (vLLM only sends it on the usage chunk).
    pub system_fingerprint: Option<String>,
    /// The latest non-empty `service_tier`: the tier that served the request (a Responses
    /// stream says `auto` while in progress and `default` once completed).
    pub service_tier: Option<String>,
    /// Indexed by choice index, one per choice seen; `None` until a choice finishes.
    pub finish_reasons: Vec<Option<String>>,
    /// Only when the response carried usage.
    pub usage: Option<Usage>,
    /// The usage's breakdown by modality, where the API reports one.
    pub usage_by_modality: ModalityUsage,
    /// Data events received, excluding `[DONE]` and empty data.
    pub chunk_count: u64,
    /// `[DONE]` seen.
    pub saw_done: bool,
    /// The dialect's own end-of-stream event arrived (Responses `response.completed` and its
    /// siblings, Anthropic `message_stop`, Ollama `done: true`).
    pub stream_ended: bool,
    /// A chunk carried content: non-empty `content`, `reasoning_content`, `reasoning`,
    /// `refusal` or completion `text`, or a tool-call delta.
    pub first_content_seen: bool,
    /// Sorted by (choice index, tool index), then arrival.
    pub tool_calls: Vec<ToolCall>,
    /// Per choice, the content concatenated, each capped at [`OUTPUT_TEXT_CAP`].
    pub output_text: Vec<String>,
    /// Characters of content across all choices, counted past the cap too.
    pub output_chars: u64,
    /// Characters of reasoning text (`reasoning_content` / `reasoning`), for estimating output
    /// tokens when a server reports no usage.
    pub reasoning_chars: u64,
    /// An error event in the stream, or the error body of a non-2xx response. The first wins.
    pub error: Option<UpstreamError>,
    /// Something that isn't an OpenAI-shaped body was seen; parsing stopped there.
    pub parse_failed: bool,
    /// Embeddings: the length of the first vector returned: OpenAI's `data[0].embedding` (a
    /// float array, or base64 of little-endian f32s), Ollama's `embeddings[0]` (`/api/embed`)
    /// or `embedding` (legacy `/api/embeddings`).
    pub embedding_dimensions: Option<u64>,
    /// The call's latency as the provider measured it, in milliseconds: Bedrock's
    /// `metrics.latencyMs` (Converse) or `invocationLatency` (InvokeModel streams).
    pub provider_latency_ms: Option<u64>,
}

/// What one feed of a stream watcher brought.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FeedOutcome {
    /// The first content chunk of the stream arrived in this feed (time to first chunk).
    pub first_content: bool,
    /// Data events (excluding `[DONE]`) completed by this feed.
    pub chunks: u32,
}

/// Cap on the text kept per choice in `output_text` (and per tool call's `arguments`);
/// `output_chars` keeps counting past it.
pub const OUTPUT_TEXT_CAP: usize = 1024 * 1024;

/// Error messages are kept to this many bytes.
pub const ERROR_MESSAGE_CAP: usize = 4096;

/// Choices with a higher index are ignored: `n` is at most 128 in OpenAI's API, and an index
/// from the wire must not size our vectors.
pub const MAX_CHOICES: usize = 128;

/// Tool calls kept per response; further calls are ignored.
pub const MAX_TOOL_CALLS: usize = 256;

impl ResponseSummary {
    /// Appends output text to a choice (kept only when `count_only` is off, capped); returns
    /// whether it was non-empty. Marks the first content.
    pub fn push_text(&mut self, choice: usize, text: &str, count_only: bool) -> bool {
        if choice >= MAX_CHOICES {
            return false;
        }
        if self.output_text.len() <= choice {
            self.output_text.resize(choice + 1, String::new());
        }
        self.output_chars += text.chars().count() as u64;
        if !count_only {
            push_capped(&mut self.output_text[choice], text);
        }
        let content = !text.is_empty();
        self.first_content_seen |= content;
        content
    }

    /// Counts reasoning text (kept nowhere) and marks the first content.
    pub fn push_reasoning(&mut self, text: &str) {
        self.reasoning_chars += text.chars().count() as u64;
        self.first_content_seen |= !text.is_empty();
    }

    /// Sets a choice's finish reason (the latest non-empty one wins).
    pub fn set_finish_reason(&mut self, choice: usize, reason: &str) {
        if choice >= MAX_CHOICES || reason.is_empty() {
            return;
        }
        if self.finish_reasons.len() <= choice {
            self.finish_reasons.resize(choice + 1, None);
        }
        self.finish_reasons[choice] = Some(super::limits::owned(reason));
    }

    /// The latest non-empty id and model win (the last word of a stream describes the
    /// finished response); empty or absent values change nothing.
    pub fn set_id_and_model(&mut self, id: Option<&str>, model: Option<&str>) {
        set_latest(&mut self.id, id);
        set_latest(&mut self.model, model);
    }

    /// The latest non-empty service tier wins.
    pub fn set_service_tier(&mut self, tier: Option<&str>) {
        set_latest(&mut self.service_tier, tier);
    }

    /// Records an upstream error; the first one wins. The message is capped.
    pub fn set_error(&mut self, message: Option<&str>, kind: Option<&str>, code: Option<&str>) {
        if self.error.is_some() {
            return;
        }
        let own = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(super::limits::owned);
        let mut message = message.filter(|v| !v.is_empty()).map(str::to_owned);
        if let Some(m) = &mut message {
            let end = floor_char_boundary(m, ERROR_MESSAGE_CAP);
            m.truncate(end);
        }
        self.error = Some(UpstreamError {
            message,
            kind: own(kind),
            code: own(code),
        });
    }

    /// Starts a tool call (or returns the existing one with this `id`); returns its position.
    /// Id, name and kind are stored cut to the identifier bound.
    pub fn tool_call(&mut self, index: u32, id: &str, name: &str, kind: &str) -> Option<usize> {
        let id = super::limits::stored(id);
        if let Some(k) = self
            .tool_calls
            .iter()
            .position(|c| !id.is_empty() && c.id == id)
        {
            return Some(k);
        }
        if self.tool_calls.len() >= MAX_TOOL_CALLS {
            return None;
        }
        self.first_content_seen = true;
        let own = super::limits::owned;
        self.tool_calls.push(ToolCall {
            index,
            id: own(id),
            name: own(name),
            kind: own(if kind.is_empty() { "function" } else { kind }),
            arguments: String::new(),
            argument_bytes: 0,
        });
        Some(self.tool_calls.len() - 1)
    }

    /// Takes a usage report: later reports (a running usage, a final chunk) update the counts
    /// they carry; a report carrying no count changes nothing (no `usage` appears).
    pub fn update_usage(&mut self, report: Usage) {
        let Usage {
            input_tokens,
            output_tokens,
            cache_read_input_tokens,
            cache_write_input_tokens,
            reasoning_output_tokens,
        } = report;
        let fields = [
            input_tokens,
            output_tokens,
            cache_read_input_tokens,
            cache_write_input_tokens,
            reasoning_output_tokens,
        ];
        if fields.iter().all(Option::is_none) {
            return;
        }
        let usage = self.usage.get_or_insert_with(Usage::default);
        let slots = [
            &mut usage.input_tokens,
            &mut usage.output_tokens,
            &mut usage.cache_read_input_tokens,
            &mut usage.cache_write_input_tokens,
            &mut usage.reasoning_output_tokens,
        ];
        for (slot, value) in slots.into_iter().zip(fields) {
            if value.is_some() {
                *slot = value;
            }
        }
    }

    /// Appends argument text to tool call `k` (capped), or only counts it when `count_only`
    /// (content capture off: arguments are content and are not held).
    pub fn push_arguments(&mut self, k: usize, text: &str, count_only: bool) {
        if let Some(call) = self.tool_calls.get_mut(k) {
            call.argument_bytes += text.len() as u64;
            if !count_only {
                push_capped(&mut call.arguments, text);
            }
        }
    }
}

/// Replaces `slot` with `value` when it is non-empty and differs: a stream repeating the same
/// value on every chunk allocates once.
pub(crate) fn set_latest(slot: &mut Option<String>, value: Option<&str>) {
    // Compared and stored cut to the identifier bound (issue 23): a huge id repeated on
    // every chunk is neither held whole nor copied again.
    if let Some(v) = value.filter(|v| !v.is_empty()).map(super::limits::stored) {
        if slot.as_deref() != Some(v) {
            *slot = Some(v.to_owned());
        }
    }
}

/// The start of the key llmtap gives a tool call that came without an id (Gemini, Ollama's
/// native API): such a key is never exported as `gen_ai.tool.call.id`.
pub const UNNAMED_CALL_PREFIX: &str = "llmtap-unnamed:";

/// The key of a tool call without an id, from what both the response asking for it and the
/// request answering it repeat: the tool's name and the canonical JSON of its arguments
/// (`{UNNAMED_CALL_PREFIX}{name}:{16 hex digits of FNV-1a}`). Two calls of one tool with the
/// same arguments share a key; the later one then closes with the first result.
pub fn unnamed_call_key(name: &str, canonical_arguments: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical_arguments.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{UNNAMED_CALL_PREFIX}{name}:{h:016x}")
}

/// Whether a tool call's id is a key llmtap made ([`unnamed_call_key`]), not the provider's.
pub fn is_unnamed_call(id: &str) -> bool {
    id.starts_with(UNNAMED_CALL_PREFIX)
}

/// Appends as much of `text` as fits under the output cap, cut on a char boundary.
pub(crate) fn push_capped(target: &mut String, text: &str) {
    let room = OUTPUT_TEXT_CAP.saturating_sub(target.len());
    target.push_str(&text[..floor_char_boundary(text, room)]);
}

/// The largest char boundary of `s` at or below `at`.
pub(crate) fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    let mut at = at;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}
