//! JSON-RPC 2.0 as MCP uses it: the messages of a request body (one, or a batch), the facts
//! each client request carries for its span, trace context written into `params._meta`, and
//! the outcome of each response.

use serde_json::{Map, Value};

/// Most messages in one batch; a larger batch is refused (413) before anything is sent.
pub const MAX_BATCH: usize = 256;

/// Why a request body is not relayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON-RPC message: a message is an object, a batch a non-empty array of them")]
    NotMessage,
    #[error("a batch of {0} messages is over llmtap's limit of {MAX_BATCH}")]
    BatchTooLarge(usize),
}

impl BodyError {
    /// The JSON-RPC error code of the answer: parse error or invalid request.
    pub fn code(&self) -> i64 {
        match self {
            BodyError::NotJson(_) => PARSE_ERROR,
            _ => INVALID_REQUEST,
        }
    }
}

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
/// Implementation-defined server error (JSON-RPC reserves -32000 to -32099): llmtap could not
/// reach the MCP server, or refused the request itself.
pub const SERVER_ERROR: i64 = -32000;

/// The messages of a body, and whether it was a batch (a JSON array).
pub fn parse_body(bytes: &[u8]) -> Result<(Vec<Value>, bool), BodyError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| BodyError::NotJson(e.to_string()))?;
    match v {
        Value::Object(_) => Ok((vec![v], false)),
        Value::Array(a) if a.is_empty() => Err(BodyError::NotMessage),
        Value::Array(a) if a.len() > MAX_BATCH => Err(BodyError::BatchTooLarge(a.len())),
        Value::Array(a) if a.iter().all(Value::is_object) => Ok((a, true)),
        _ => Err(BodyError::NotMessage),
    }
}

/// The `_meta` key of the protocol version in the 2026-07-28 revision's requests.
pub const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";

/// What a client request or notification says about itself, for its span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sent {
    pub method: String,
    /// The id as its JSON text (`1`, `"abc"`): responses are matched on it.
    pub id_key: Option<String>,
    /// The id as `jsonrpc.request.id` shows it (a string's own text, a number's digits).
    pub id_text: Option<String>,
    pub tool_name: Option<String>,
    pub prompt_name: Option<String>,
    pub resource_uri: Option<String>,
    /// `params.arguments` of `tools/call`.
    pub arguments: Option<Value>,
    /// `params.protocolVersion` of `initialize`, or the version every request of the
    /// 2026-07-28 revision names in `_meta` (`io.modelcontextprotocol/protocolVersion`).
    pub protocol_version: Option<String>,
    /// The `jsonrpc` member when it is not `2.0` (`jsonrpc.protocol.version`).
    pub jsonrpc_version: Option<String>,
    /// `traceparent` / `tracestate` the client put in `params._meta` (its MCP-level context,
    /// which wins over the HTTP headers').
    pub meta_traceparent: Option<String>,
    pub meta_tracestate: Option<String>,
}

/// The facts of a message with a `method` (request or notification); `None` for a response
/// the client sends to a server's request.
pub fn sent(msg: &Value) -> Option<Sent> {
    let method = msg.get("method")?.as_str()?.to_string();
    let params = msg.get("params").and_then(Value::as_object);
    let text = |k: &str| {
        params
            .and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object);
    let meta_text = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let id = msg.get("id").filter(|v| !v.is_null());
    let mut s = Sent {
        id_key: id.map(Value::to_string),
        id_text: id.map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        jsonrpc_version: match msg.get("jsonrpc") {
            Some(Value::String(v)) if v == "2.0" => None,
            Some(Value::String(v)) => Some(v.clone()),
            _ => None,
        },
        protocol_version: meta_text(PROTOCOL_VERSION_META),
        meta_traceparent: meta_text("traceparent"),
        meta_tracestate: meta_text("tracestate"),
        ..Sent::default()
    };
    match method.as_str() {
        "tools/call" => {
            s.tool_name = text("name");
            s.arguments = Some(
                params
                    .and_then(|p| p.get("arguments"))
                    .cloned()
                    .unwrap_or(Value::Null),
            );
        }
        "prompts/get" => s.prompt_name = text("name"),
        "initialize" => s.protocol_version = text("protocolVersion").or(s.protocol_version),
        m if m.starts_with("resources/") => s.resource_uri = text("uri"),
        _ => {}
    }
    s.method = method;
    Some(s)
}

/// Writes `fields` into `msg.params._meta`, each only where the client put none (SEP-414:
/// `traceparent`, `tracestate`, `baggage`, unprefixed). A message whose `params` or `_meta`
/// is not an object is left alone. Returns whether anything was written.
pub fn inject_meta(msg: &mut Value, fields: &[(&str, String)]) -> bool {
    let Some(obj) = msg.as_object_mut() else {
        return false;
    };
    let params = obj
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(params) = params.as_object_mut() else {
        return false;
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return false;
    };
    let mut wrote = false;
    for (k, v) in fields {
        if !meta.contains_key(*k) {
            meta.insert((*k).to_string(), Value::String(v.clone()));
            wrote = true;
        }
    }
    wrote
}

/// What a response says about the request it answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The id as its JSON text; `None` for a null id (an error about an unreadable request).
    pub id_key: Option<String>,
    /// The JSON-RPC error's code and message.
    pub rpc_code: Option<i64>,
    pub message: Option<String>,
    /// A `CallToolResult` with `isError: true`.
    pub tool_error: bool,
    /// `result` (kept only when asked for: content capture).
    pub result: Option<Value>,
    /// `result.protocolVersion` of an `initialize` answer.
    pub protocol_version: Option<String>,
}

/// The outcome of `msg` when it is a response (`result` or `error`, no `method`).
pub fn outcome(msg: &Value, keep_result: bool) -> Option<Outcome> {
    let obj = msg.as_object()?;
    if obj.contains_key("method") {
        return None;
    }
    let id_key = obj.get("id").filter(|v| !v.is_null()).map(Value::to_string);
    if let Some(e) = obj.get("error") {
        return Some(Outcome {
            id_key,
            rpc_code: e.get("code").and_then(Value::as_i64),
            message: e.get("message").and_then(Value::as_str).map(str::to_owned),
            ..Outcome::default()
        });
    }
    let result = obj.get("result")?;
    let tool_error = result.get("isError").and_then(Value::as_bool) == Some(true);
    Some(Outcome {
        id_key,
        tool_error,
        message: tool_error.then(|| tool_error_text(result)).flatten(),
        protocol_version: result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
        result: keep_result.then(|| result.clone()),
        ..Outcome::default()
    })
}

/// The first text block of a failed tool's result, for the span status (cut to 200 chars).
fn tool_error_text(result: &Value) -> Option<String> {
    let text = result
        .get("content")?
        .as_array()?
        .iter()
        .find_map(|c| c.get("text").and_then(Value::as_str))?;
    Some(text.chars().take(200).collect())
}

/// The messages of a response payload: one object or a batch array.
pub fn messages(payload: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Array(a)) => a,
        Ok(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

/// A JSON-RPC error response body.
pub fn error_body(id: Option<&Value>, code: i64, message: &str) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": code, "message": message},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies() {
        assert!(matches!(
            parse_body(b"not json"),
            Err(BodyError::NotJson(_))
        ));
        assert_eq!(parse_body(b"[]"), Err(BodyError::NotMessage));
        assert_eq!(parse_body(b"[1]"), Err(BodyError::NotMessage));
        assert_eq!(parse_body(b"3"), Err(BodyError::NotMessage));
        let big = format!("[{}]", vec!["{}"; MAX_BATCH + 1].join(","));
        assert_eq!(
            parse_body(big.as_bytes()),
            Err(BodyError::BatchTooLarge(MAX_BATCH + 1))
        );
        let (m, batch) = parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert_eq!((m.len(), batch), (1, false));
        let (m, batch) = parse_body(br#"[{"method":"a"},{"method":"b"}]"#).unwrap();
        assert_eq!((m.len(), batch), (2, true));
    }

    #[test]
    fn facts_of_requests() {
        let s = sent(&json!({"jsonrpc":"2.0","id":"x1","method":"tools/call",
            "params":{"name":"get_weather","arguments":{"city":"Paris"},
                      "_meta":{"traceparent":"00-a-b-01","progressToken":1}}}))
        .unwrap();
        assert_eq!(s.method, "tools/call");
        assert_eq!(s.id_key.as_deref(), Some("\"x1\""));
        assert_eq!(s.id_text.as_deref(), Some("x1"));
        assert_eq!(s.tool_name.as_deref(), Some("get_weather"));
        assert_eq!(s.arguments, Some(json!({"city":"Paris"})));
        assert_eq!(s.meta_traceparent.as_deref(), Some("00-a-b-01"));
        let s =
            sent(&json!({"id":7,"method":"resources/read","params":{"uri":"file:///a"}})).unwrap();
        assert_eq!(s.id_text.as_deref(), Some("7"));
        assert_eq!(s.resource_uri.as_deref(), Some("file:///a"));
        let s = sent(&json!({"id":2,"method":"tools/list",
            "params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}))
        .unwrap();
        assert_eq!(s.protocol_version.as_deref(), Some("2026-07-28"));
        let s = sent(&json!({"method":"notifications/initialized"})).unwrap();
        assert_eq!(s.id_key, None);
        let s =
            sent(&json!({"id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}))
                .unwrap();
        assert_eq!(s.protocol_version.as_deref(), Some("2025-11-25"));
        // A response from the client to a server request is not an operation of its own.
        assert!(sent(&json!({"id":1,"result":{}})).is_none());
    }

    #[test]
    fn meta_injection_never_overwrites() {
        let fields = [
            ("traceparent", "00-t-s-01".to_string()),
            ("baggage", "k=v".to_string()),
        ];
        let mut m = json!({"id":1,"method":"ping"});
        assert!(inject_meta(&mut m, &fields));
        assert_eq!(m["params"]["_meta"]["traceparent"], "00-t-s-01");
        let mut m = json!({"id":1,"method":"tools/call","params":{"name":"f","_meta":{"traceparent":"client","progressToken":"p"}}});
        assert!(inject_meta(&mut m, &fields));
        assert_eq!(m["params"]["_meta"]["traceparent"], "client");
        assert_eq!(m["params"]["_meta"]["baggage"], "k=v");
        assert_eq!(m["params"]["_meta"]["progressToken"], "p");
        let mut m = json!({"id":1,"method":"x","params":[1,2]});
        assert!(!inject_meta(&mut m, &fields));
        assert_eq!(m, json!({"id":1,"method":"x","params":[1,2]}));
    }

    #[test]
    fn outcomes() {
        let o = outcome(
            &json!({"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"bad"}}),
            false,
        )
        .unwrap();
        assert_eq!(
            (o.id_key.as_deref(), o.rpc_code, o.message.as_deref()),
            (Some("3"), Some(-32602), Some("bad"))
        );
        let o = outcome(
            &json!({"id":"a","result":{"isError":true,"content":[{"type":"text","text":"boom"}]}}),
            true,
        )
        .unwrap();
        assert!(o.tool_error);
        assert_eq!(o.message.as_deref(), Some("boom"));
        assert!(o.result.is_some());
        let o = outcome(
            &json!({"id":1,"result":{"protocolVersion":"2025-11-25"}}),
            false,
        )
        .unwrap();
        assert_eq!(o.protocol_version.as_deref(), Some("2025-11-25"));
        assert!(o.result.is_none());
        assert!(outcome(&json!({"method":"notifications/progress"}), false).is_none());
        assert_eq!(
            serde_json::from_str::<Value>(&error_body(Some(&json!(4)), -32000, "down")).unwrap(),
            json!({"jsonrpc":"2.0","id":4,"error":{"code":-32000,"message":"down"}})
        );
    }
}
