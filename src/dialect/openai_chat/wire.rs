//! The OpenAI Chat Completions wire, as llmtap reads it: a chunk, a whole response or an error
//! body, with only the fields telemetry needs. Everything is read into borrowed structs
//! (strings are only allocated when JSON escapes force it) and read leniently: providers
//! disagree on types often enough that one odd field must not cost the whole chunk, so a
//! field of an unexpected type reads as absent. Unknown fields are skipped by serde.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::vocab::summary::{floor_char_boundary, UpstreamError, ERROR_MESSAGE_CAP};

/// The reference reading of the wire (what [`scan`](super::scan) leaves to serde, and what the
/// oracle tests hold the scanner to).
pub(super) fn parse_with_serde(json: &[u8]) -> Result<ResponseWire<'_>, serde_json::Error> {
    // serde also reads a struct from an array of its fields in order; a body that isn't an
    // object is not a response.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err(serde::de::Error::custom("not a JSON object"));
    }
    serde_json::from_slice(json)
}

/// A chunk, a whole response, or an error body.
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct ResponseWire<'a> {
    #[serde(borrow, default)]
    pub(super) id: Str<'a>,
    #[serde(borrow, default)]
    pub(super) model: Str<'a>,
    #[serde(borrow, default)]
    pub(super) system_fingerprint: Str<'a>,
    #[serde(borrow, default)]
    pub(super) service_tier: Str<'a>,
    #[serde(borrow, default)]
    pub(super) object: Str<'a>,
    #[serde(borrow, default, rename = "type")]
    pub(super) kind: Str<'a>,
    /// Top-level `message` / `code` of error shapes that have no `error` object.
    #[serde(borrow, default)]
    pub(super) message: Str<'a>,
    #[serde(borrow, default)]
    pub(super) code: Str<'a>,
    #[serde(borrow, default)]
    pub(super) choices: Option<InlineSeq<ChoiceWire<'a>>>,
    #[serde(default)]
    pub(super) usage: Option<UsageWire>,
    #[serde(default, deserialize_with = "upstream_error")]
    pub(super) error: Option<UpstreamError>,
    /// Embeddings list: only the first vector's length is read.
    #[serde(default)]
    pub(super) data: FirstVectorLen,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct ChoiceWire<'a> {
    #[serde(default)]
    pub(super) index: Count,
    #[serde(borrow, default)]
    pub(super) delta: Option<MessageWire<'a>>,
    #[serde(borrow, default)]
    pub(super) message: Option<MessageWire<'a>>,
    /// Legacy completions.
    #[serde(borrow, default)]
    pub(super) text: Str<'a>,
    #[serde(borrow, default)]
    pub(super) finish_reason: Str<'a>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct MessageWire<'a> {
    #[serde(borrow, default)]
    pub(super) content: Str<'a>,
    /// DeepSeek, vLLM.
    #[serde(borrow, default)]
    pub(super) reasoning_content: Str<'a>,
    /// OpenRouter, Groq.
    #[serde(borrow, default)]
    pub(super) reasoning: Str<'a>,
    #[serde(borrow, default)]
    pub(super) refusal: Str<'a>,
    #[serde(borrow, default)]
    pub(super) tool_calls: Option<InlineSeq<ToolCallWire<'a>>>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct ToolCallWire<'a> {
    #[serde(default)]
    pub(super) index: Count,
    #[serde(borrow, default)]
    pub(super) id: Str<'a>,
    #[serde(borrow, default, rename = "type")]
    pub(super) kind: Str<'a>,
    #[serde(borrow, default)]
    pub(super) function: Option<FunctionWire<'a>>,
    /// OpenAI custom tools: `{"type":"custom","custom":{"name","input"}}`.
    #[serde(borrow, default)]
    pub(super) custom: Option<CustomToolWire<'a>>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct FunctionWire<'a> {
    #[serde(borrow, default)]
    pub(super) name: Str<'a>,
    #[serde(borrow, default)]
    pub(super) arguments: Str<'a>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct CustomToolWire<'a> {
    #[serde(borrow, default)]
    pub(super) name: Str<'a>,
    #[serde(borrow, default)]
    pub(super) input: Str<'a>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct UsageWire {
    #[serde(default)]
    pub(super) prompt_tokens: Count,
    #[serde(default)]
    pub(super) completion_tokens: Count,
    #[serde(default)]
    pub(super) prompt_tokens_details: Option<PromptTokensDetailsWire>,
    #[serde(default)]
    pub(super) completion_tokens_details: Option<CompletionTokensDetailsWire>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Count,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct PromptTokensDetailsWire {
    #[serde(default)]
    pub(super) cached_tokens: Count,
    #[serde(default)]
    pub(super) text_tokens: Count,
    #[serde(default)]
    pub(super) image_tokens: Count,
    #[serde(default)]
    pub(super) audio_tokens: Count,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct CompletionTokensDetailsWire {
    #[serde(default)]
    pub(super) reasoning_tokens: Count,
    #[serde(default)]
    pub(super) text_tokens: Count,
    #[serde(default)]
    pub(super) image_tokens: Count,
    #[serde(default)]
    pub(super) audio_tokens: Count,
}

/// A string field read leniently: borrowed when the JSON has no escapes, numbers rendered as
/// text (error codes), null and any other type read as `None`. Providers disagree on types
/// often enough that one odd field must not cost us the whole chunk.
#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct Str<'a>(pub(super) Option<Cow<'a, str>>);

impl Str<'_> {
    pub(super) fn as_deref(&self) -> Option<&str> {
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
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct Count(pub(super) Option<u64>);

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
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct InlineSeq<T> {
    pub(super) first: Option<T>,
    pub(super) rest: Vec<T>,
}

impl<T> InlineSeq<T> {
    pub(super) fn into_items(self) -> impl Iterator<Item = T> {
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
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(super) struct FirstVectorLen(pub(super) Option<u64>);

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

/// `s` cut to at most `cap` bytes, on a char boundary.
pub(super) fn cap_string(mut s: String, cap: usize) -> String {
    let end = floor_char_boundary(&s, cap);
    s.truncate(end);
    s
}
