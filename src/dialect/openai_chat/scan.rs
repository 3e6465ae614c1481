//! The Chat wire read by scanning instead of through serde: the same [`ResponseWire`] serde
//! builds, for the shapes chunks and bodies have in practice, in one pass over the bytes
//! that skips what telemetry does not read (`obfuscation`, `logprobs`, `created`, ...)
//! without visiting it value by value. Per stream event this is the reader's whole cost, so
//! it matters: serde's derive spent about ten thousand instructions on a 500-byte chunk.
//!
//! Anything outside those shapes (a number where a string is read, a fraction in a count, an
//! `error` object, an embeddings `data` list, duplicate members, escapes in keys) answers
//! `None`, and [`parse_response`](super::wire::parse_response) asks serde instead; see the
//! cursor's contract in [`crate::dialect::scan`]. The oracle tests hold the two to the same
//! result over every recorded event and over mutations of them.

use crate::dialect::scan::Cursor;

use super::usage::{UsageMember, UsageShape};

use super::wire::{
    ChoiceWire, CompletionTokensDetailsWire, Count, CustomToolWire, FunctionWire, InlineSeq,
    MessageWire, PromptTokensDetailsWire, ResponseWire, Str, ToolCallWire, UsageWire,
};

/// The wire of a chunk or body, or `None` when serde must decide; with it, the chunk's
/// [`UsageShape`] (what the usage stripper would scan for), read on the way.
pub(super) fn response(json: &[u8]) -> Option<(ResponseWire<'_>, UsageShape)> {
    let mut c = Cursor::new(json);
    let mut w = ResponseWire::default();
    let mut seen = Seen::default();
    let mut shape = UsageShape {
        choices: None,
        usage: UsageMember::Absent,
        usage_span: None,
    };
    // The comma after the previous member, if there was one.
    let mut comma_before = None;
    c.object(|c, key| {
        // The key's opening quote (keys have no escapes, so it is just before the key).
        let key_start = key.as_ptr() as usize - json.as_ptr() as usize - 1;
        match key {
            b"id" => w.id = seen.once(0, c, str)?,
            b"model" => w.model = seen.once(1, c, str)?,
            b"system_fingerprint" => w.system_fingerprint = seen.once(2, c, str)?,
            b"service_tier" => w.service_tier = seen.once(3, c, str)?,
            b"object" => w.object = seen.once(4, c, str)?,
            b"type" => w.kind = seen.once(5, c, str)?,
            b"message" => w.message = seen.once(6, c, str)?,
            b"code" => w.code = seen.once(7, c, str)?,
            b"choices" => w.choices = seen.once(8, c, |c| seq(c, choice))?,
            b"usage" => w.usage = seen.once(9, c, |c| opt(c, usage))?,
            // No error, as chunks say it: anything else goes through serde's reading.
            b"error" => seen.once(10, c, |c| match c.peek()? {
                b'n' | b'f' if c.literal()? => Some(()),
                _ => None,
            })?,
            b"data" => seen.once(11, c, |c| c.null()?.then_some(()))?,
            _ => c.skip()?,
        }
        let value_end = c.pos();
        let next = c.peek()?;
        let after = c.pos();
        if key == b"usage" {
            // As `usage::usage_shape` cuts it: the member with its comma.
            shape.usage = match w.usage {
                Some(_) => UsageMember::Object,
                None => UsageMember::Null,
            };
            shape.usage_span = Some(match (next, comma_before) {
                (b',', _) => key_start..ws_end(json, after + 1),
                (b'}', Some(comma)) => comma..value_end,
                (b'}', None) => key_start..value_end,
                _ => return None,
            });
        }
        comma_before = (next == b',').then_some(after);
        Some(())
    })?;
    shape.choices = w
        .choices
        .as_ref()
        .map(|items| usize::from(items.first.is_some()) + items.rest.len());
    c.at_end().then_some((w, shape))
}

/// The offset of the first non-whitespace byte at or after `i`.
fn ws_end(json: &[u8], i: usize) -> usize {
    i + json[i..]
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count()
}

/// Which of a struct's members were read: serde refuses a member given twice.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn once<'a, T>(
        &mut self,
        bit: u32,
        c: &mut Cursor<'a>,
        read: impl FnOnce(&mut Cursor<'a>) -> Option<T>,
    ) -> Option<T> {
        if self.0 & (1 << bit) != 0 {
            return None;
        }
        self.0 |= 1 << bit;
        read(c)
    }
}

/// [`Str`]: a string; null, a boolean, an array or an object read as absent. Numbers (which
/// serde renders as text) are left to serde.
fn str<'a>(c: &mut Cursor<'a>) -> Option<Str<'a>> {
    match c.peek()? {
        b'"' => Some(Str(Some(c.string()?))),
        b'[' | b'{' => c.skip().map(|()| Str(None)),
        b'-' | b'0'..=b'9' => None,
        _ => c.literal()?.then_some(Str(None)),
    }
}

/// [`Count`]: a plain integer, or a string holding one; null, a boolean, an array or an
/// object read as absent. Other numbers are left to serde.
fn count(c: &mut Cursor<'_>) -> Option<Count> {
    match c.peek()? {
        b'"' => Some(Count(c.string()?.trim().parse().ok())),
        b'0'..=b'9' => c.plain_u64().map(|n| Count(Some(n))),
        b'-' => None,
        b'[' | b'{' => c.skip().map(|()| Count(None)),
        _ => c.literal()?.then_some(Count(None)),
    }
}

/// `Option<T>` of a struct: null, or an object read by `read`.
fn opt<'a, T>(
    c: &mut Cursor<'a>,
    read: impl FnOnce(&mut Cursor<'a>) -> Option<T>,
) -> Option<Option<T>> {
    match c.peek()? {
        b'n' => c.literal()?.then_some(None),
        b'{' => read(c).map(Some),
        _ => None,
    }
}

/// `Option<InlineSeq<T>>`: null, or an array of objects each read by `read`.
fn seq<'a, T>(
    c: &mut Cursor<'a>,
    mut read: impl FnMut(&mut Cursor<'a>) -> Option<T>,
) -> Option<Option<InlineSeq<T>>> {
    if c.peek()? == b'n' {
        return c.literal()?.then_some(None);
    }
    let mut items = InlineSeq {
        first: None,
        rest: Vec::new(),
    };
    c.array(|c| {
        let item = read(c)?;
        match items.first {
            None => items.first = Some(item),
            Some(_) => items.rest.push(item),
        }
        Some(())
    })?;
    Some(Some(items))
}

fn choice<'a>(c: &mut Cursor<'a>) -> Option<ChoiceWire<'a>> {
    let mut w = ChoiceWire::default();
    let mut seen = Seen::default();
    c.object(|c, key| {
        match key {
            b"index" => w.index = seen.once(0, c, count)?,
            b"delta" => w.delta = seen.once(1, c, |c| opt(c, message))?,
            b"message" => w.message = seen.once(2, c, |c| opt(c, message))?,
            b"text" => w.text = seen.once(3, c, str)?,
            b"finish_reason" => w.finish_reason = seen.once(4, c, str)?,
            _ => c.skip()?,
        }
        Some(())
    })?;
    Some(w)
}

fn message<'a>(c: &mut Cursor<'a>) -> Option<MessageWire<'a>> {
    let mut w = MessageWire::default();
    let mut seen = Seen::default();
    c.object(|c, key| {
        match key {
            b"content" => w.content = seen.once(0, c, str)?,
            b"reasoning_content" => w.reasoning_content = seen.once(1, c, str)?,
            b"reasoning" => w.reasoning = seen.once(2, c, str)?,
            b"refusal" => w.refusal = seen.once(3, c, str)?,
            b"tool_calls" => w.tool_calls = seen.once(4, c, |c| seq(c, tool_call))?,
            _ => c.skip()?,
        }
        Some(())
    })?;
    Some(w)
}

fn tool_call<'a>(c: &mut Cursor<'a>) -> Option<ToolCallWire<'a>> {
    let mut w = ToolCallWire::default();
    let mut seen = Seen::default();
    c.object(|c, key| {
        match key {
            b"index" => w.index = seen.once(0, c, count)?,
            b"id" => w.id = seen.once(1, c, str)?,
            b"type" => w.kind = seen.once(2, c, str)?,
            b"function" => {
                w.function = seen.once(3, c, |c| {
                    opt(c, |c| {
                        let (name, arguments) = name_and(c, b"arguments")?;
                        Some(FunctionWire { name, arguments })
                    })
                })?
            }
            b"custom" => {
                w.custom = seen.once(4, c, |c| {
                    opt(c, |c| {
                        let (name, input) = name_and(c, b"input")?;
                        Some(CustomToolWire { name, input })
                    })
                })?
            }
            _ => c.skip()?,
        }
        Some(())
    })?;
    Some(w)
}

/// A tool's `name` and its `other` text member (`arguments`, or a custom tool's `input`).
fn name_and<'a>(c: &mut Cursor<'a>, other: &[u8]) -> Option<(Str<'a>, Str<'a>)> {
    let (mut name, mut text) = (Str::default(), Str::default());
    let mut seen = Seen::default();
    c.object(|c, key| {
        if key == b"name" {
            name = seen.once(0, c, str)?;
        } else if key == other {
            text = seen.once(1, c, str)?;
        } else {
            c.skip()?;
        }
        Some(())
    })?;
    Some((name, text))
}

fn usage(c: &mut Cursor<'_>) -> Option<UsageWire> {
    let mut w = UsageWire::default();
    let mut seen = Seen::default();
    c.object(|c, key| {
        match key {
            b"prompt_tokens" => w.prompt_tokens = seen.once(0, c, count)?,
            b"completion_tokens" => w.completion_tokens = seen.once(1, c, count)?,
            b"prompt_tokens_details" => {
                w.prompt_tokens_details = seen.once(2, c, |c| {
                    opt(c, |c| {
                        let [cached_tokens, text_tokens, image_tokens, audio_tokens] = counts(
                            c,
                            [
                                b"cached_tokens",
                                b"text_tokens",
                                b"image_tokens",
                                b"audio_tokens",
                            ],
                        )?;
                        Some(PromptTokensDetailsWire {
                            cached_tokens,
                            text_tokens,
                            image_tokens,
                            audio_tokens,
                        })
                    })
                })?
            }
            b"completion_tokens_details" => {
                w.completion_tokens_details = seen.once(3, c, |c| {
                    opt(c, |c| {
                        let [reasoning_tokens, text_tokens, image_tokens, audio_tokens] = counts(
                            c,
                            [
                                b"reasoning_tokens",
                                b"text_tokens",
                                b"image_tokens",
                                b"audio_tokens",
                            ],
                        )?;
                        Some(CompletionTokensDetailsWire {
                            reasoning_tokens,
                            text_tokens,
                            image_tokens,
                            audio_tokens,
                        })
                    })
                })?
            }
            b"cache_creation_input_tokens" => {
                w.cache_creation_input_tokens = seen.once(4, c, count)?
            }
            _ => c.skip()?,
        }
        Some(())
    })?;
    Some(w)
}

/// An object of counts: the members named by `keys`, in that order.
fn counts<const N: usize>(c: &mut Cursor<'_>, keys: [&[u8]; N]) -> Option<[Count; N]> {
    let mut out: [Count; N] = std::array::from_fn(|_| Count::default());
    let mut seen = Seen::default();
    c.object(|c, key| {
        match keys.iter().position(|k| *k == key) {
            Some(i) => out[i] = seen.once(i as u32, c, count)?,
            None => c.skip()?,
        }
        Some(())
    })?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;
    use serde_json::Value;

    use super::super::usage::usage_shape;
    use super::super::wire::parse_with_serde;
    use super::*;
    use crate::stream::fixtures_for_tests as fixtures;
    use crate::stream::sse::SseParser;

    /// The scanner against serde on one text: whatever the scanner reads, serde reads the
    /// same; whatever serde refuses, the scanner refuses; the usage shape read on the way is
    /// the stripper's own scan's. Returns whether the scanner answered.
    fn agrees(data: &[u8]) -> bool {
        let scanned = response(data);
        if let Some((_, shape)) = &scanned {
            let own = usage_shape(data);
            assert_eq!(
                Some(shape),
                own.as_ref(),
                "{}",
                String::from_utf8_lossy(data)
            );
        }
        match (scanned.as_ref().map(|(w, _)| w), parse_with_serde(data)) {
            (Some(s), Ok(reference)) => {
                assert_eq!(s, &reference, "{}", String::from_utf8_lossy(data))
            }
            (Some(_), Err(e)) => panic!(
                "the scanner read what serde refuses ({e}): {}",
                String::from_utf8_lossy(data)
            ),
            (None, _) => {}
        }
        scanned.is_some()
    }

    /// Every event's data of every SSE recording, by file name.
    fn recorded_events() -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for (name, stream) in fixtures::all_sse() {
            SseParser::new().feed(&stream, |e| out.push((name.clone(), e.data.to_vec())));
        }
        out
    }

    /// Every JSON body recording (ours, and the providers' when present).
    fn recorded_bodies() -> Vec<(String, Vec<u8>)> {
        let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let dirs = std::iter::once(own).chain(fixtures::shared_dir());
        let mut out = Vec::new();
        for dir in dirs {
            for entry in std::fs::read_dir(&dir).expect("fixture dir") {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "json") {
                    let bytes = std::fs::read(&path).expect("fixture");
                    out.push((path.display().to_string(), bytes));
                }
            }
        }
        out
    }

    /// Chat chunk recordings: every event that is a JSON object without an `error` member
    /// is read by the scanner, never by serde.
    fn is_chat_recording(name: &str) -> bool {
        name.contains("-chat-") || name.starts_with("shared/openai-chat")
    }

    #[test]
    fn scanner_reads_every_recorded_event_as_serde_does() {
        let (mut chat, mut fast) = (0, 0);
        for (name, data) in recorded_events() {
            let answered = agrees(&data);
            let object = serde_json::from_slice::<Value>(&data)
                .ok()
                .filter(Value::is_object);
            if let Some(object) = object.filter(|_| is_chat_recording(&name)) {
                chat += 1;
                fast += usize::from(answered);
                assert!(
                    answered || object.get("error").is_some(),
                    "{name}: {}",
                    String::from_utf8_lossy(&data)
                );
            }
        }
        assert!(chat > 200 && fast * 10 > chat * 9, "{fast} of {chat}");
        for (name, body) in recorded_bodies() {
            agrees(&body);
            let chat_body = name.contains("openai-chat-text");
            assert!(!chat_body || agrees(&body), "{name}");
        }
    }

    #[test]
    fn shapes_left_to_serde() {
        for text in [
            r#"{"id":"a","id":"b"}"#,
            r#"{"choices":[{"index":0,"index":1}]}"#,
            r#"{"usage":{"prompt_tokens":1.5}}"#,
            r#"{"usage":{"prompt_tokens":-1}}"#,
            r#"{"code":429}"#,
            r#"{"error":{"message":"x"}}"#,
            r#"{"error":true}"#,
            r#"{"data":[{"embedding":[1,2]}]}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[{"delta":["x"]}]}"#,
            r#"{"i\u0064":"x"}"#,
            r#"{"choices":[{"delta":{"content":"\ud83d\ude00"}}]}"#,
            r#"[1]"#,
        ] {
            assert!(!agrees(text.as_bytes()), "{text}");
        }
        for text in [
            r#"{}"#,
            r#" {"error":null,"data":null,"usage":null,"choices":null} "#,
            r#"{"error":false}"#,
            r#"{"choices":[{"delta":{"content":"a\nb\u00e9","tool_calls":[{"index":"2","function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#,
            r#"{"choices":[{"index":true,"text":[1,{"a":2}],"finish_reason":{"x":null}}]}"#,
            r#"{"usage":{"prompt_tokens":"7","prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":null}}"#,
        ] {
            assert!(agrees(text.as_bytes()), "{text}");
        }
    }

    /// The keys every wire struct reads, so generated objects hit the typed members.
    fn wire_key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("id"),
            Just("model"),
            Just("system_fingerprint"),
            Just("service_tier"),
            Just("object"),
            Just("type"),
            Just("message"),
            Just("code"),
            Just("choices"),
            Just("usage"),
            Just("error"),
            Just("data"),
            Just("index"),
            Just("delta"),
            Just("text"),
            Just("finish_reason"),
            Just("content"),
            Just("reasoning"),
            Just("reasoning_content"),
            Just("refusal"),
            Just("tool_calls"),
            Just("function"),
            Just("custom"),
            Just("name"),
            Just("arguments"),
            Just("input"),
            Just("prompt_tokens"),
            Just("completion_tokens"),
            Just("prompt_tokens_details"),
            Just("completion_tokens_details"),
            Just("cached_tokens"),
            Just("reasoning_tokens"),
            Just("cache_creation_input_tokens"),
            Just("obfuscation"),
        ]
        .prop_map(str::to_owned)
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u32>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,8}".prop_map(Value::String),
            "[0-9 ]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((wire_key(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Events of the chat recordings, to mutate.
    fn chat_events() -> &'static [Vec<u8>] {
        static EVENTS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        EVENTS.get_or_init(|| {
            recorded_events()
                .into_iter()
                .filter(|(name, data)| is_chat_recording(name) && data.first() == Some(&b'{'))
                .map(|(_, data)| data)
                .collect()
        })
    }

    /// Bytes a mutation writes: JSON's structure, escapes, digits, and a little else.
    const MUTATIONS: &[u8] = b"{}[]:,\"\\/ntfue0123456789.-+Ex \n\x01\xc3\xa9\xff";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Generated objects of the wire's keys and any values: the scanner agrees with serde.
        #[test]
        fn scanner_agrees_on_any_object(
            members in proptest::collection::vec((wire_key(), any_json()), 0..8),
        ) {
            let text = Value::Object(members.into_iter().collect()).to_string();
            agrees(text.as_bytes());
        }

        /// Recorded chunks with a few bytes replaced, inserted or deleted: the scanner agrees
        /// with serde (mostly by refusing what serde refuses).
        #[test]
        fn scanner_agrees_on_mutated_chunks(
            pick in any::<prop::sample::Index>(),
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), 0..3u8, any::<prop::sample::Index>()), 1..4),
        ) {
            let events = chat_events();
            let mut data = pick.get(events).clone();
            for (at, kind, byte) in edits {
                let b = *byte.get(MUTATIONS);
                match kind {
                    0 if !data.is_empty() => {
                        let i = at.index(data.len());
                        data[i] = b;
                    }
                    1 => {
                        let i = at.index(data.len() + 1);
                        data.insert(i, b);
                    }
                    _ if !data.is_empty() => {
                        let i = at.index(data.len());
                        data.remove(i);
                    }
                    _ => {}
                }
            }
            agrees(&data);
        }
    }
}
