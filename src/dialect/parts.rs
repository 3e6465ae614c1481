//! Request content in the semconv message shapes (`parts` of `gen_ai.input.messages`), built
//! the same way by every dialect: text, media by URL or inline, tool-call arguments.

use serde_json::Value;

/// Text of a message's `content`: a string, or the text parts of an array of parts.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// An image (or other media) referenced by URL, in the semconv part shapes: a `data:` URL
/// becomes a `blob` part (`mime_type` and the base64 `content`), any other URL a `uri` part.
/// `modality` is the schema's `Modality` (`image`, `audio`, `video`, `document`).
pub fn media_url_part(url: &str, modality: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((meta, data)) = rest.split_once(',') {
            let mime = meta.split(';').next().filter(|m| !m.is_empty());
            return blob_part(data, mime, modality);
        }
    }
    serde_json::json!({"type": "uri", "modality": modality, "uri": url})
}

/// Inline media in the semconv `blob` part shape (`content` is the base64 text as sent).
pub fn blob_part(base64: &str, mime_type: Option<&str>, modality: &str) -> Value {
    serde_json::json!({"type": "blob", "modality": modality, "mime_type": mime_type,
        "content": base64})
}

/// Tool-call `arguments` as the message schema wants them: the JSON they encode (an object,
/// usually) when the string parses, else the string as sent.
pub fn arguments_value(arguments: &Value) -> Value {
    match arguments {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| arguments.clone()),
        other => other.clone(),
    }
}
