//! A scripted MCP server (Streamable HTTP, JSON answers) for tests that need one beside the
//! scripted model: every POST (one message or a batch) is answered after `exec`; a `tools/call` of `failing` is a
//! tool error (`isError: true`), any other tool returns `18 C`; `tools/list` lists
//! `get_weather`. The `params._meta` of each request is kept, to check the trace context
//! llmtap sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// What the server saw: each request's `params._meta` (`null` when it had none).
pub type Metas = Arc<Mutex<Vec<Value>>>;

/// Starts the server on a free 127.0.0.1 port; its URL (`http://.../mcp`) and what it saw.
/// It runs until the test's runtime ends.
pub async fn scripted_server(exec: Duration) -> (String, Metas) {
    let seen: Metas = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |body: axum::Json<Value>| {
            let seen = s2.clone();
            async move {
                let batch = body.is_array();
                let messages = match body.0 {
                    Value::Array(a) => a,
                    one => vec![one],
                };
                seen.lock()
                    .unwrap()
                    .extend(messages.iter().map(|m| m["params"]["_meta"].clone()));
                tokio::time::sleep(exec).await;
                // A response per request; notifications get none.
                let mut answers: Vec<Value> = messages
                    .iter()
                    .filter(|m| m.get("id").is_some())
                    .map(answer)
                    .collect();
                if batch {
                    axum::Json(Value::Array(answers))
                } else {
                    axum::Json(answers.pop().unwrap_or(Value::Null))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/mcp"), seen)
}

fn answer(msg: &Value) -> Value {
    let result = match (msg["method"].as_str(), msg["params"]["name"].as_str()) {
        (Some("tools/call"), Some("failing")) => json!({"isError": true,
            "content": [{"type": "text", "text": "disk full"}]}),
        (Some("tools/call"), _) => json!({"isError": false,
            "content": [{"type": "text", "text": "18 C"}]}),
        (Some("tools/list"), _) => json!({"tools": [{"name": "get_weather",
            "inputSchema": {"type": "object"}}]}),
        _ => json!({}),
    };
    json!({"jsonrpc": "2.0", "id": msg["id"], "result": result})
}
