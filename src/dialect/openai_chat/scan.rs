//! The Chat wire read by scanning instead of through serde: the same [`ResponseWire`] serde
//! builds, for the shapes chunks and bodies have in practice, in one pass over the bytes
//! that skips what telemetry does not read (`obfuscation`, `logprobs`, `created`, ...)
//! without visiting it value by value. Per stream event this is the reader's whole cost, so
//! it matters: serde's derive spent about ten thousand instructions on a 500-byte chunk.
//!
//! Anything outside those shapes (a number where a string is read, a fraction in a count, an
//! `error` object, an embeddings `data` list, duplicate members, escapes in keys) answers
//! `None`, and [`parse_response`] asks serde instead; see the cursor's contract in
//! [`crate::dialect::scan`]. The oracle tests hold the two to the same result over every
//! recorded event and body, generated objects, and recorded chunks with bytes mutated.

use crate::dialect::scan::Cursor;

use super::usage::{UsageMember, UsageShape};

use super::wire::{
    parse_with_serde, ChoiceWire, CompletionTokensDetailsWire, Count, CustomToolWire, FunctionWire,
    InlineSeq, MessageWire, PromptTokensDetailsWire, ResponseWire, Str, ToolCallWire, UsageWire,
};

/// A chunk or body: scanned, else read by serde (which also gives the error).
pub(super) fn parse_response(json: &[u8]) -> Result<ResponseWire<'_>, serde_json::Error> {
    match response(json) {
        Some((wire, _)) => Ok(wire),
        None => parse_with_serde(json),
    }
}

/// A stream chunk, read as [`parse_response`] reads it; when the scanner read it, the chunk's
/// usage shape is left for the usage stripper, which sees the same event next.
pub(super) fn parse_chunk(json: &[u8]) -> Result<ResponseWire<'_>, serde_json::Error> {
    match response(json) {
        Some((wire, shape)) => {
            super::usage::remember(json, shape);
            Ok(wire)
        }
        None => parse_with_serde(json),
    }
}

/// The wire of a chunk or body, or `None` when serde must decide; with it, the chunk's
/// [`UsageShape`] (what the usage stripper would scan for), read on the way. Every struct is
/// filled where it lies (the wire's structs are large: moving them per member cost more than
/// reading them).
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
            b"id" => str(c, seen.once(0, &mut w.id)?)?,
            b"model" => str(c, seen.once(1, &mut w.model)?)?,
            b"system_fingerprint" => str(c, seen.once(2, &mut w.system_fingerprint)?)?,
            b"service_tier" => str(c, seen.once(3, &mut w.service_tier)?)?,
            b"object" => str(c, seen.once(4, &mut w.object)?)?,
            b"type" => str(c, seen.once(5, &mut w.kind)?)?,
            b"message" => str(c, seen.once(6, &mut w.message)?)?,
            b"code" => str(c, seen.once(7, &mut w.code)?)?,
            b"choices" => seq(c, seen.once(8, &mut w.choices)?, choice)?,
            b"usage" => opt(c, seen.once(9, &mut w.usage)?, usage)?,
            // No error, as chunks say it: anything else goes through serde's reading.
            b"error" => {
                seen.once(10, &mut ())?;
                match c.peek()? {
                    b'n' | b'f' if c.literal()? => {}
                    _ => return None,
                }
            }
            b"data" => {
                seen.once(11, &mut ())?;
                c.null()?.then_some(())?;
            }
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
    /// `slot` for member `bit`, or `None` when that member was read already.
    #[inline]
    fn once<'s, T>(&mut self, bit: u32, slot: &'s mut T) -> Option<&'s mut T> {
        if self.0 & (1 << bit) != 0 {
            return None;
        }
        self.0 |= 1 << bit;
        Some(slot)
    }
}

/// [`Str`]: a string; null, a boolean, an array or an object read as absent. Numbers (which
/// serde renders as text) are left to serde.
#[inline]
fn str<'a>(c: &mut Cursor<'a>, slot: &mut Str<'a>) -> Option<()> {
    slot.0 = match c.peek()? {
        b'"' => Some(c.string()?),
        b'[' | b'{' => {
            c.skip()?;
            None
        }
        b'-' | b'0'..=b'9' => return None,
        _ => {
            c.literal()?.then_some(())?;
            None
        }
    };
    Some(())
}

/// [`Count`]: a plain integer, or a string holding one; null, a boolean, an array or an
/// object read as absent. Other numbers are left to serde.
fn count(c: &mut Cursor<'_>, slot: &mut Count) -> Option<()> {
    slot.0 = match c.peek()? {
        b'"' => c.string()?.trim().parse().ok(),
        b'0'..=b'9' => Some(c.plain_u64()?),
        b'-' => return None,
        b'[' | b'{' => {
            c.skip()?;
            None
        }
        _ => {
            c.literal()?.then_some(())?;
            None
        }
    };
    Some(())
}

/// `Option<T>` of a struct: null, or an object read into a default `T` by `read`.
fn opt<'a, T: Default>(
    c: &mut Cursor<'a>,
    slot: &mut Option<T>,
    read: impl FnOnce(&mut Cursor<'a>, &mut T) -> Option<()>,
) -> Option<()> {
    match c.peek()? {
        b'n' => {
            c.literal()?.then_some(())?;
            *slot = None;
            Some(())
        }
        b'{' => read(c, slot.insert(T::default())),
        _ => None,
    }
}

/// `Option<InlineSeq<T>>`: null, or an array of objects each read into a default `T`.
fn seq<'a, T: Default>(
    c: &mut Cursor<'a>,
    slot: &mut Option<InlineSeq<T>>,
    mut read: impl FnMut(&mut Cursor<'a>, &mut T) -> Option<()>,
) -> Option<()> {
    if c.peek()? == b'n' {
        c.literal()?.then_some(())?;
        *slot = None;
        return Some(());
    }
    let items = slot.insert(InlineSeq {
        first: None,
        rest: Vec::new(),
    });
    c.array(|c| {
        let item = match &mut items.first {
            None => items.first.insert(T::default()),
            Some(_) => {
                items.rest.push(T::default());
                items.rest.last_mut()?
            }
        };
        read(c, item)
    })
}

fn choice<'a>(c: &mut Cursor<'a>, w: &mut ChoiceWire<'a>) -> Option<()> {
    let mut seen = Seen::default();
    c.object(|c, key| match key {
        b"index" => count(c, seen.once(0, &mut w.index)?),
        b"delta" => opt(c, seen.once(1, &mut w.delta)?, message),
        b"message" => opt(c, seen.once(2, &mut w.message)?, message),
        b"text" => str(c, seen.once(3, &mut w.text)?),
        b"finish_reason" => str(c, seen.once(4, &mut w.finish_reason)?),
        _ => c.skip(),
    })
}

fn message<'a>(c: &mut Cursor<'a>, w: &mut MessageWire<'a>) -> Option<()> {
    let mut seen = Seen::default();
    c.object(|c, key| match key {
        b"content" => str(c, seen.once(0, &mut w.content)?),
        b"reasoning_content" => str(c, seen.once(1, &mut w.reasoning_content)?),
        b"reasoning" => str(c, seen.once(2, &mut w.reasoning)?),
        b"refusal" => str(c, seen.once(3, &mut w.refusal)?),
        b"tool_calls" => seq(c, seen.once(4, &mut w.tool_calls)?, tool_call),
        _ => c.skip(),
    })
}

fn tool_call<'a>(c: &mut Cursor<'a>, w: &mut ToolCallWire<'a>) -> Option<()> {
    let mut seen = Seen::default();
    c.object(|c, key| match key {
        b"index" => count(c, seen.once(0, &mut w.index)?),
        b"id" => str(c, seen.once(1, &mut w.id)?),
        b"type" => str(c, seen.once(2, &mut w.kind)?),
        b"function" => opt(
            c,
            seen.once(3, &mut w.function)?,
            |c, f: &mut FunctionWire<'a>| name_and(c, b"arguments", &mut f.name, &mut f.arguments),
        ),
        b"custom" => opt(
            c,
            seen.once(4, &mut w.custom)?,
            |c, f: &mut CustomToolWire<'a>| name_and(c, b"input", &mut f.name, &mut f.input),
        ),
        _ => c.skip(),
    })
}

/// A tool's `name` and its `other` text member (`arguments`, or a custom tool's `input`).
fn name_and<'a>(
    c: &mut Cursor<'a>,
    other: &[u8],
    name: &mut Str<'a>,
    text: &mut Str<'a>,
) -> Option<()> {
    let mut seen = Seen::default();
    c.object(|c, key| {
        if key == b"name" {
            str(c, seen.once(0, name)?)
        } else if key == other {
            str(c, seen.once(1, text)?)
        } else {
            c.skip()
        }
    })
}

fn usage(c: &mut Cursor<'_>, w: &mut UsageWire) -> Option<()> {
    let mut seen = Seen::default();
    c.object(|c, key| match key {
        b"prompt_tokens" => count(c, seen.once(0, &mut w.prompt_tokens)?),
        b"completion_tokens" => count(c, seen.once(1, &mut w.completion_tokens)?),
        b"prompt_tokens_details" => opt(
            c,
            seen.once(2, &mut w.prompt_tokens_details)?,
            |c, d: &mut PromptTokensDetailsWire| {
                counts(
                    c,
                    [
                        (b"cached_tokens", &mut d.cached_tokens),
                        (b"text_tokens", &mut d.text_tokens),
                        (b"image_tokens", &mut d.image_tokens),
                        (b"audio_tokens", &mut d.audio_tokens),
                    ],
                )
            },
        ),
        b"completion_tokens_details" => opt(
            c,
            seen.once(3, &mut w.completion_tokens_details)?,
            |c, d: &mut CompletionTokensDetailsWire| {
                counts(
                    c,
                    [
                        (b"reasoning_tokens", &mut d.reasoning_tokens),
                        (b"text_tokens", &mut d.text_tokens),
                        (b"image_tokens", &mut d.image_tokens),
                        (b"audio_tokens", &mut d.audio_tokens),
                    ],
                )
            },
        ),
        b"cache_creation_input_tokens" => {
            count(c, seen.once(4, &mut w.cache_creation_input_tokens)?)
        }
        _ => c.skip(),
    })
}

/// An object of counts: each member named in `slots` read into its slot.
fn counts<const N: usize>(c: &mut Cursor<'_>, mut slots: [(&[u8], &mut Count); N]) -> Option<()> {
    let mut seen = Seen::default();
    c.object(|c, key| match slots.iter().position(|(k, _)| *k == key) {
        Some(i) => count(c, seen.once(i as u32, &mut *slots[i].1)?),
        None => c.skip(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;
    use serde_json::Value;

    use super::super::usage::usage_shape;
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
        // Our own recordings hold 163 chat events; the shared providers' add more (their
        // absence is reported, or a failure under CI, by `shared_dir`).
        let least = if fixtures::shared_dir().is_some() {
            200
        } else {
            150
        };
        assert!(chat > least && fast * 10 > chat * 9, "{fast} of {chat}");
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
