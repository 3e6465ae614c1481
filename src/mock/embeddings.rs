//! `/embeddings` and `/models`.
//!
//! Embedding vectors are derived from each input's bytes, L2-normalized like OpenAI's, so
//! the same input gives the same vector. `encoding_format: "base64"` (what the Python SDK
//! asks for by default) sends the little-endian `f32` bytes of that same vector.

use axum::http::StatusCode;
use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use super::scenario::SCENARIOS;
use super::wire::{self, hash_json, invalid_param, PlainUsage, Reply};

const DEFAULT_DIMENSIONS: u64 = 8;
const MAX_DIMENSIONS: u64 = 4096;

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: PlainUsage,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Embedding,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

/// One input: the bytes its vector derives from, and its token count.
struct Input {
    key: Vec<u8>,
    tokens: u64,
}

fn inputs(input: Option<&Value>) -> Result<Vec<Input>, Reply> {
    let invalid = || {
        invalid_param(
            "'$.input' is invalid. Please check the API reference: \
             https://platform.openai.com/docs/api-reference.",
            "input",
            None,
        )
    };
    let text = |s: &str| Input {
        key: s.as_bytes().to_vec(),
        tokens: (s.chars().count() as u64).div_ceil(4),
    };
    let token_ids = |ids: &[Value]| -> Option<Input> {
        ids.iter().all(Value::is_u64).then(|| Input {
            key: wire::to_vec(ids),
            tokens: ids.len() as u64,
        })
    };
    match input {
        Some(Value::String(s)) if !s.is_empty() => Ok(vec![text(s)]),
        Some(Value::Array(items)) if !items.is_empty() => {
            // One list of token ids is one input; otherwise each item is an input.
            if items.iter().all(Value::is_u64) {
                return token_ids(items).map(|i| vec![i]).ok_or_else(invalid);
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) if !s.is_empty() => Some(text(s)),
                    Value::Array(ids) if !ids.is_empty() => token_ids(ids),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(invalid)
        }
        None => Err(invalid_param(
            "Missing required parameter: 'input'.",
            "input",
            Some("missing_required_parameter"),
        )),
        Some(_) => Err(invalid()),
    }
}

/// A unit vector in `dimensions` dimensions, a pure function of `key`.
pub(crate) fn vector_for(key: &[u8], dimensions: usize) -> Vec<f32> {
    let seed = wire::fnv1a(key);
    let raw: Vec<f32> = (0..dimensions as u64)
        .map(|i| {
            let h = wire::fnv1a(&[seed.to_le_bytes(), i.to_le_bytes()].concat());
            ((h % 2001) as f32 - 1000.0) / 1000.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        raw
    } else {
        raw.iter().map(|x| x / norm).collect()
    }
}

fn base64_f32(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `model` is reported as sent (OpenAI does not date embedding models).
pub(crate) fn embeddings(body: &Map<String, Value>, model: &str) -> Reply {
    let inputs = match inputs(body.get("input")) {
        Ok(inputs) => inputs,
        Err(reply) => return reply,
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(value) => match value.as_u64() {
            Some(n) if (1..=MAX_DIMENSIONS).contains(&n) => n,
            _ => {
                return invalid_param(
                    "Invalid value for 'dimensions': must be an integer from 1 to 4096.",
                    "dimensions",
                    Some("invalid_value"),
                )
            }
        },
    } as usize;
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return invalid_param(
                "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
                "encoding_format",
                Some("invalid_value"),
            )
        }
    };
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = vector_for(&input.key, dimensions);
            EmbeddingItem {
                object: "embedding",
                index,
                embedding: if base64 {
                    Embedding::Base64(base64_f32(&vector))
                } else {
                    Embedding::Float(vector)
                },
            }
        })
        .collect();
    let tokens = inputs.iter().map(|i| i.tokens).sum();
    let list = EmbeddingList {
        object: "list",
        data,
        model,
        usage: PlainUsage {
            prompt_tokens: tokens,
            completion_tokens: None,
            total_tokens: tokens,
        },
    };
    let request_id = body.get("input").map(hash_json);
    Reply::json(StatusCode::OK, Bytes::from(wire::to_vec(&list)), request_id)
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelObject<'a>>,
}

/// Models a newcomer is likely to try; every model name works, these are only listed.
const LISTED_MODELS: [&str; 5] = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
];

fn model_object(id: &str) -> ModelObject<'_> {
    ModelObject {
        id,
        object: "model",
        created: wire::CREATED,
        owned_by: if id.starts_with("mock-") {
            "llmtap-mock"
        } else {
            "system"
        },
    }
}

/// The listed models plus one `mock-<scenario>` per scenario, so the list doubles as help.
pub(crate) fn list_models() -> Reply {
    let scenario_models: Vec<String> = SCENARIOS
        .iter()
        .map(|(name, _)| format!("mock-{name}"))
        .collect();
    let data = LISTED_MODELS
        .iter()
        .copied()
        .chain(scenario_models.iter().map(String::as_str))
        .map(model_object)
        .collect();
    let list = ModelList {
        object: "list",
        data,
    };
    Reply::json(StatusCode::OK, Bytes::from(wire::to_vec(&list)), None)
}

pub(crate) fn get_model(id: &str) -> Reply {
    Reply::json(
        StatusCode::OK,
        Bytes::from(wire::to_vec(&model_object(id))),
        Some(wire::fnv1a(id.as_bytes())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::wire::ReplyBody;
    use serde_json::json;

    fn run(body: Value) -> (StatusCode, Value) {
        let Value::Object(map) = body else {
            return (StatusCode::IM_A_TEAPOT, Value::Null);
        };
        let reply = embeddings(&map, "text-embedding-3-small");
        let value = match &reply.body {
            ReplyBody::Json(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        (reply.status, value)
    }

    #[test]
    fn base64_decodes_to_the_float_vector() {
        let (_, floats) = run(json!({"input": ["a", "bb"], "encoding_format": "float"}));
        let (_, encoded) = run(json!({"input": ["a", "bb"], "encoding_format": "base64"}));
        for index in 0..2 {
            let text = encoded["data"][index]["embedding"].as_str().unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_default();
            let decoded: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            // serde_json writes the shortest text that reads back as the same f32.
            let expected: Vec<f32> = floats["data"][index]["embedding"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_f64)
                        .map(|x| x as f32)
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(decoded.len(), 8);
            assert_eq!(decoded, expected);
        }
        assert_eq!(
            floats["usage"],
            json!({"prompt_tokens": 2, "total_tokens": 2})
        );
    }

    #[test]
    fn vectors_are_unit_length_and_sized() {
        let (_, value) = run(json!({"input": [1, 2, 3], "dimensions": 16}));
        let vector: Vec<f64> = value["data"][0]["embedding"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        assert_eq!(vector.len(), 16);
        let norm: f64 = vector.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(value["usage"]["prompt_tokens"], 3);
    }

    #[test]
    fn bad_inputs_are_400s() {
        for body in [
            json!({}),
            json!({"input": ""}),
            json!({"input": []}),
            json!({"input": [{}]}),
            json!({"input": "x", "dimensions": 0}),
            json!({"input": "x", "encoding_format": "hex"}),
        ] {
            assert_eq!(run(body.clone()).0, StatusCode::BAD_REQUEST, "{body}");
        }
    }
}
