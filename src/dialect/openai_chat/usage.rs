//! Usage on OpenAI Chat Completions streams, which carry none unless the request asks with
//! `stream_options.include_usage`: the rewrite that asks for it, the recognition of an upstream
//! that refuses the parameter, and the rule the relay's [`EventStripper`] follows so that a
//! client that did not ask receives exactly the stream it would have received direct. Servers
//! answer the flag in three ways, and all three are hidden:
//! - a final usage-only event (`choices: []`, or no `choices`, with a `usage` object): dropped;
//! - a `"usage":null` member on every other chunk (OpenAI): cut out;
//! - a running `usage` object on every chunk (some OpenAI-compatible servers): cut out. A
//!   stream is taken to run usage when its first chunk with choices already carries one;
//!   otherwise a usage object on a later chunk (a finish chunk that always carries usage, as
//!   some servers send whatever the request says) is left alone.
//!
//! The chunk scan here runs on every event of an injected stream that the record's reader did
//! not already scan (the reader leaves each chunk's shape behind for it), so it reads the top
//! level only and never allocates.

use std::ops::Range;

use serde_json::{Map, Value};

use crate::dialect::UsageInjection;
use crate::stream::strip::{StripRule, Verdict};

#[cfg(test)]
use crate::stream::strip::EventStripper;

/// `stream_options.include_usage` on Chat Completions and legacy Completions streams.
#[derive(Debug)]
pub(super) struct IncludeUsage;

impl UsageInjection for IncludeUsage {
    fn rewrite(&self, body: &[u8], obj: &Map<String, Value>) -> Option<Vec<u8>> {
        inject_include_usage(body, obj)
    }

    fn refused(&self, error_body: &[u8]) -> bool {
        names_injected_parameter(error_body)
    }

    fn strip_rule(&self) -> Box<dyn StripRule> {
        Box::new(UsageMode::default())
    }
}

/// Returns the body to send upstream with `stream_options.include_usage: true`, or `None`
/// when no rewrite is needed (not streaming, or the client already asked for usage).
///
/// When the client sent no `stream_options`, the member is spliced in right after the opening
/// brace so every other byte of the client's body is kept as sent.
pub(super) fn inject_include_usage(body: &[u8], obj: &Map<String, Value>) -> Option<Vec<u8>> {
    if obj.get("stream").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    match obj.get("stream_options") {
        None | Some(Value::Null) if !obj.contains_key("stream_options") => {
            let brace = body.iter().position(|&b| b == b'{')?;
            let mut out = Vec::with_capacity(body.len() + 40);
            out.extend_from_slice(&body[..=brace]);
            out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
            if !obj.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(&body[brace + 1..]);
            Some(out)
        }
        Some(Value::Object(o)) if o.get("include_usage").and_then(Value::as_bool) == Some(true) => {
            None
        }
        _ => {
            // Rare: stream_options present without include_usage (or null). Re-serialize.
            let mut obj = obj.clone();
            let opts = obj
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if !opts.is_object() {
                *opts = Value::Object(Map::new());
            }
            if let Value::Object(o) = opts {
                o.insert("include_usage".into(), Value::Bool(true));
            }
            serde_json::to_vec(&obj).ok()
        }
    }
}

/// True when an error body names the injected parameter: the upstream refused it.
fn names_injected_parameter(body: &[u8]) -> bool {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    has(b"stream_options") || has(b"include_usage")
}

/// Whether the stream carries a running usage on its content chunks, decided at its first
/// chunk with choices.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum UsageMode {
    #[default]
    Undecided,
    Running,
    NotRunning,
}

impl StripRule for UsageMode {
    fn verdict(&mut self, data: &[u8]) -> Verdict {
        let Some(shape) = remembered(data).or_else(|| usage_shape(data)) else {
            return Verdict::Keep;
        };
        let has_choices = shape.choices.is_some_and(|n| n > 0);
        if has_choices && *self == UsageMode::Undecided {
            *self = if shape.usage == UsageMember::Object {
                UsageMode::Running
            } else {
                UsageMode::NotRunning
            };
        }
        let cut = || shape.usage_span.clone().map_or(Verdict::Keep, Verdict::Cut);
        match shape.usage {
            UsageMember::Absent => Verdict::Keep,
            UsageMember::Null => cut(),
            UsageMember::Object if !has_choices => Verdict::Drop,
            UsageMember::Object if *self == UsageMode::Running => cut(),
            UsageMember::Object => Verdict::Keep,
        }
    }
}

/// Longest event whose shape is remembered for the stripper (chunks are a few hundred bytes).
const REMEMBERED_MAX: usize = 4096;

thread_local! {
    /// The last chunk the stream reader scanned on this thread, and its [`UsageShape`]. The
    /// relay hands each event to the record's reader and then, on the same thread, to the
    /// stripper: the stripper finds the shape here instead of scanning the chunk a second
    /// time. Keyed by the chunk's bytes (a copy, compared whole), so a stale or foreign entry
    /// can only miss, never answer for another chunk.
    static REMEMBERED: std::cell::RefCell<(Vec<u8>, Option<UsageShape>)> =
        const { std::cell::RefCell::new((Vec::new(), None)) };
}

/// Keeps `shape` as the shape of `data` for the stripper that sees the same event next.
pub(super) fn remember(data: &[u8], shape: UsageShape) {
    REMEMBERED.with_borrow_mut(|(bytes, kept)| {
        bytes.clear();
        if data.len() <= REMEMBERED_MAX {
            bytes.extend_from_slice(data);
            *kept = Some(shape);
        } else {
            *kept = None;
        }
    });
}

/// The remembered shape of `data`, if the reader's last chunk was these very bytes; taken,
/// so each scan serves one verdict.
fn remembered(data: &[u8]) -> Option<UsageShape> {
    REMEMBERED.with_borrow_mut(|(bytes, kept)| {
        if kept.is_some() && bytes.as_slice() == data {
            kept.take()
        } else {
            None
        }
    })
}

/// How a chunk carries usage, for the stripper: the number of `choices` (`None` when the
/// member is absent), the kind of its top-level `usage` member, and the byte range that cuts
/// that member out together with its adjoining comma (whitespace around the colon tolerated):
/// `data[..r.start]` + `data[r.end..]` is the chunk without it, never re-serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UsageShape {
    pub(super) choices: Option<usize>,
    pub(super) usage: UsageMember,
    pub(super) usage_span: Option<Range<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UsageMember {
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
pub(super) fn usage_shape(data: &[u8]) -> Option<UsageShape> {
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

/// The final usage chunk's shape: `"choices": []` and a `usage` object (Azure's first chunk
/// also has `choices: []`, with `prompt_filter_results`, but no usage).
#[cfg(test)]
pub(super) fn is_usage_only_chunk(data: &[u8]) -> bool {
    usage_shape(data).is_some_and(|s| s.usage == UsageMember::Object && s.choices == Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::fixtures_for_tests as fixtures;
    use crate::stream::sse::SseParser;

    /// The data of every event of a fixture.
    fn events(stream: &[u8]) -> Vec<Vec<u8>> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.feed(stream, |e| out.push(e.data.to_vec()));
        out
    }

    /// The stripper the relay puts on a stream llmtap injected into.
    fn stripper() -> EventStripper {
        EventStripper::new(IncludeUsage.strip_rule())
    }

    /// The cut that removes a top-level `"usage":null` member.
    fn null_usage_span(data: &[u8]) -> Option<Range<usize>> {
        usage_shape(data)
            .filter(|s| s.usage == UsageMember::Null)
            .and_then(|s| s.usage_span)
    }

    /// `data` without its top-level `"usage":null` member.
    fn strip_null_usage(data: &[u8]) -> Option<Vec<u8>> {
        let cut = null_usage_span(data)?;
        Some([&data[..cut.start], &data[cut.end..]].concat())
    }

    fn obj(body: &[u8]) -> Map<String, Value> {
        match serde_json::from_slice(body) {
            Ok(Value::Object(o)) => o,
            _ => panic!("not an object"),
        }
    }

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
    #[test]
    fn a_remembered_shape_answers_only_for_the_same_bytes_once() {
        let chunk = br#"{"choices":[{"index":0}],"usage":null}"#;
        let shape = usage_shape(chunk).unwrap();
        remember(chunk, shape.clone());
        assert_eq!(
            remembered(br#"{"choices":[{"index":1}],"usage":null}"#),
            None
        );
        assert_eq!(remembered(chunk), Some(shape.clone()));
        assert_eq!(remembered(chunk), None, "taken");
        remember(&[b' '; REMEMBERED_MAX + 1], shape);
        assert_eq!(remembered(&[b' '; REMEMBERED_MAX + 1]), None);
    }

    #[test]
    fn injection_splices_and_keeps_the_rest() {
        let body = br#"{"model":"m","stream":true,"messages":[]}"#;
        let out = inject_include_usage(body, &obj(body)).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}"#
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn no_injection_when_not_streaming_or_already_asked() {
        let b = br#"{"model":"m","messages":[]}"#;
        assert!(inject_include_usage(b, &obj(b)).is_none());
        let b = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        assert!(inject_include_usage(b, &obj(b)).is_none());
        let b = br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#;
        let out = inject_include_usage(b, &obj(b)).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn refusal_bodies_seen_in_the_field() {
        let azure = br#"{"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error","param":null,"code":null}}"#;
        let fastapi = br#"{"detail":[{"type":"extra_forbidden","loc":["body","stream_options"],"msg":"Extra inputs are not permitted","input":{"include_usage":true}}]}"#;
        let other = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert!(names_injected_parameter(azure));
        assert!(names_injected_parameter(fastapi));
        assert!(names_injected_parameter(b"unknown field include_usage"));
        assert!(!names_injected_parameter(other));
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

    const INJECTED: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n",
        "data: [DONE]\n\n"
    );
    const DIRECT: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n"
    );

    #[test]
    fn strips_at_every_split() {
        let input = INJECTED.as_bytes();
        for split in 1..input.len() {
            let mut s = stripper();
            let mut out = Vec::new();
            for piece in input.chunks(split) {
                out.extend_from_slice(&s.process(piece));
            }
            out.extend_from_slice(&s.finish());
            assert_eq!(String::from_utf8_lossy(&out), DIRECT, "split {split}");
        }
    }

    #[test]
    fn untouched_stream_passes_whole_events() {
        let mut s = stripper();
        let out = s.process(DIRECT.as_bytes());
        assert_eq!(&out[..], DIRECT.as_bytes());
    }

    fn strip_all(input: &str, split: usize) -> String {
        let mut s = stripper();
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(split) {
            out.extend_from_slice(&s.process(piece));
        }
        out.extend_from_slice(&s.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn running_usage_on_every_chunk_is_cut() {
        let injected = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":0}}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
            "data: {\"id\":\"c\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1},\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n"
        );
        let direct = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        for split in [1, 2, 7, 4096] {
            assert_eq!(strip_all(injected, split), direct, "split {split}");
        }
    }

    #[test]
    fn usage_a_server_always_puts_on_its_finish_chunk_stays() {
        // Not a running usage (the first chunk with choices has none): the finish chunk's
        // usage is the server's own habit, sent with or without the flag.
        let stream = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3}}\n\n",
            "data: [DONE]\n\n"
        );
        assert_eq!(strip_all(stream, 5), stream);
    }

    #[test]
    fn a_usage_event_without_choices_is_dropped() {
        let stream = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"c\",\"usage\":{\"prompt_tokens\":3}}\n\n",
            "data: [DONE]\n\n"
        );
        let direct = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        assert_eq!(strip_all(stream, 3), direct);
    }

    #[test]
    fn crlf_comments_and_a_missing_done_survive_every_split() {
        let injected = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\r\n\r\n",
            ": keep-alive\r\n\r\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\r\n\r\n",
        );
        let direct = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n",
            ": keep-alive\r\n\r\n",
        );
        for tail in ["", "data: [DONE]\r\n\r\n"] {
            let input = format!("{injected}{tail}");
            let want = format!("{direct}{tail}");
            for split in 1..input.len() {
                assert_eq!(
                    strip_all(&input, split),
                    want,
                    "split {split} tail {tail:?}"
                );
            }
        }
    }
}
