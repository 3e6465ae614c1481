//! MCP through llmtap (`/mcp/{name}`): the official MCP Python SDK's server and client over
//! Streamable HTTP in both protocol revisions, spans and metrics as exported, trace context in
//! `params._meta` joining the server's own spans, an agent loop whose MCP tool execution
//! becomes the model's `execute_tool` span, and bad input answered in JSON-RPC's shape.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::any;
use common::otlp::SpanView;
use common::{client, env, otlp_env, start_proxy, start_upstream, OtlpReceiver, ProxyOpts};
use llmtap::config::{AuthConfig, ClientKeyConfig, Config, McpServerConfig};
use serde_json::{json, Value};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const APP_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{APP_SPAN}-01")
}

/// The official SDK's MCP server (tests/sdk/mcp_server.py) on a free port, its process
/// group stopped on drop.
struct SdkServer {
    // Killed first (kill_on_drop), then whatever else of its group remains.
    _child: tokio::process::Child,
    _group: common::process::GroupGuard,
    url: String,
    spans: PathBuf,
    _dir: common::TempDir,
}

impl SdkServer {
    async fn start(python: &PathBuf, json_response: bool) -> SdkServer {
        let dir = common::TempDir::new("mcp-server");
        let spans = dir.path().join("server-spans.jsonl");
        let port = common::free_port();
        let mut cmd = tokio::process::Command::new(python);
        cmd.arg(common::repo().join("tests/sdk/mcp_server.py"))
            .arg(port.to_string())
            .env("MCP_SERVER_SPANS", &spans)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .kill_on_drop(true);
        if json_response {
            cmd.arg("json");
        }
        common::process::own_group_tokio(&mut cmd);
        let child = cmd.spawn().expect("MCP server did not start");
        let group = common::process::GroupGuard::of(&child).expect("the MCP server's pid");
        let addr = format!("127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "MCP server not listening on {addr}: {}",
                std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SdkServer {
            _child: child,
            _group: group,
            url: format!("http://{addr}/mcp"),
            spans,
            _dir: dir,
        }
    }

    /// The server's own spans (its SDK's OpenTelemetry middleware), as written so far.
    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.spans)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// The scripted upstream, an OTLP receiver and llmtap exporting to it over OTLP/HTTP, with
/// `server` configured as the MCP server `tools` (served at `/mcp/tools`).
async fn traced_mcp_proxy(server: &SdkServer) -> (common::Upstream, OtlpReceiver, common::Proxy) {
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: otlp_env(&rx, "http"),
            tweak: Some(with_mcp(vec![("tools", server.url.clone())])),
            ..Default::default()
        },
    )
    .await;
    (up, rx, proxy)
}

fn with_mcp(servers: Vec<(&str, String)>) -> common::Tweak {
    let servers: Vec<McpServerConfig> = servers
        .into_iter()
        .map(|(name, url)| McpServerConfig {
            name: name.into(),
            url,
        })
        .collect();
    Box::new(move |c: &mut Config| c.mcp_servers = servers)
}

fn mcp_spans(spans: &[SpanView]) -> Vec<&SpanView> {
    spans
        .iter()
        .filter(|s| s.str_attr("mcp.method.name").is_some())
        .collect()
}

fn named<'a>(spans: &[&'a SpanView], name: &str) -> &'a SpanView {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name:?} in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

/// Both protocol revisions of the official SDK through llmtap: every call answered as without
/// llmtap, one CLIENT span per request with the MCP attributes, the caller's trace continued,
/// the server's own spans under llmtap's (trace context in `params._meta`), and the MCP metrics
/// on OTLP and `/metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn sdk_client_and_server_in_both_revisions_are_traced() {
    let Some(py) = common::python() else { return };
    let server = SdkServer::start(&py, false).await;
    let (_up, rx, proxy) = traced_mcp_proxy(&server).await;
    let url = format!("{}/mcp/tools", proxy.url);
    let tp = traceparent();
    let mut outs = Vec::new();
    for mode in ["auto", "legacy"] {
        let out = common::run_python(
            &py,
            "mcp_client.py",
            &[
                ("MCP_URL", &url),
                ("MCP_MODE", mode),
                ("MCP_TRACEPARENT", &tp),
            ],
        )
        .await;
        outs.push(out);
    }
    for out in &outs {
        assert_eq!(out["weather"], "Sunny in Paris, 21 C");
        assert_eq!(out["slow_sum"], "5");
        assert_eq!(out["failing"]["is_error"], true);
        assert_eq!(out["invalid"]["code"], -32602);
        assert_eq!(out["big_result_len"], 200000);
        assert_eq!(out["resource"], "theme=dark");
        assert_eq!(out["prompt"], "Say hello to Ada.");
    }
    assert_eq!(outs[0]["protocol_version"], "2026-07-28");
    assert_eq!(outs[1]["protocol_version"], "2025-11-25");

    // 9 requests in the current revision (server/discover + 8), 10 in the handshake one
    // (initialize, notifications/initialized + 8).
    let spans = rx
        .wait_for_spans(|s| mcp_spans(s).len() >= 19, Duration::from_secs(20))
        .await;
    let all = mcp_spans(&spans);
    assert_eq!(all.len(), 19, "{}", common::otlp::spans_json(&spans));
    for s in &all {
        assert_eq!(s.kind, "client", "{}", s.name);
        assert_eq!(s.trace_id, TRACE_ID, "{}: the caller's trace", s.name);
        assert_eq!(s.parent_span_id, APP_SPAN, "{}", s.name);
        assert_eq!(s.str_attr("network.transport"), Some("tcp"));
        assert_eq!(s.str_attr("network.protocol.name"), Some("http"));
        assert_eq!(s.str_attr("server.address"), Some("127.0.0.1"));
        assert!(s.int_attr("server.port").is_some());
        assert_eq!(s.str_attr("llmtap.mcp.server"), Some("tools"));
        // Content capture is off: no arguments or results.
        assert!(s.attr("gen_ai.tool.call.arguments").is_none());
        assert!(s.attr("gen_ai.tool.call.result").is_none());
    }
    let modern: Vec<&SpanView> = all
        .iter()
        .copied()
        .filter(|s| s.str_attr("mcp.protocol.version") == Some("2026-07-28"))
        .collect();
    let legacy: Vec<&SpanView> = all
        .iter()
        .copied()
        .filter(|s| s.str_attr("mcp.protocol.version") == Some("2025-11-25"))
        .collect();
    assert_eq!((modern.len(), legacy.len()), (9, 10));
    named(&modern, "server/discover");
    assert!(modern.iter().all(|s| s.attr("mcp.session.id").is_none()));
    let init = named(&legacy, "initialize");
    let session = init
        .str_attr("mcp.session.id")
        .expect("session id")
        .to_string();
    assert!(legacy
        .iter()
        .all(|s| s.str_attr("mcp.session.id") == Some(session.as_str())));
    let note = named(&legacy, "notifications/initialized");
    assert_eq!(note.status_code, "unset", "a notification acked with 202");
    assert!(note.attr("jsonrpc.request.id").is_none());
    for spans in [&modern, &legacy] {
        let w = named(spans, "tools/call get_weather");
        assert_eq!(w.str_attr("mcp.method.name"), Some("tools/call"));
        assert_eq!(w.str_attr("gen_ai.tool.name"), Some("get_weather"));
        assert_eq!(w.str_attr("gen_ai.operation.name"), Some("execute_tool"));
        assert!(w.str_attr("jsonrpc.request.id").is_some());
        assert!(w.attr("error.type").is_none());
        // The slow tool's span covers its execution (it sleeps 0.4 s).
        assert!(named(spans, "tools/call slow_sum").duration_secs() >= 0.4);
        let f = named(spans, "tools/call failing");
        assert_eq!(f.str_attr("error.type"), Some("tool_error"));
        assert_eq!(f.status_code, "error");
        assert!(
            f.status_message.contains("disk full"),
            "{}",
            f.status_message
        );
        let i = named(spans, "tools/call invalid");
        assert_eq!(i.str_attr("error.type"), Some("-32602"));
        assert_eq!(i.str_attr("rpc.response.status_code"), Some("-32602"));
        assert_eq!(i.status_message, "value 99 is out of range");
        let r = named(spans, "resources/read");
        assert_eq!(r.str_attr("mcp.resource.uri"), Some("config://app"));
        let p = named(spans, "prompts/get greet");
        assert_eq!(p.str_attr("gen_ai.prompt.name"), Some("greet"));
        assert!(p.attr("gen_ai.operation.name").is_none());
        named(spans, "tools/list");
        named(spans, "tools/call big_result");
    }

    // The server's own span of each request is a child of llmtap's: trace context in _meta.
    let server_spans = server.spans();
    assert!(server_spans.len() >= 18, "{server_spans:?}");
    for s in &all {
        if s.name.starts_with("notifications/") {
            continue;
        }
        let theirs = server_spans
            .iter()
            .find(|x| x["parent_span_id"] == s.span_id.as_str())
            .unwrap_or_else(|| panic!("no server span under {} ({})", s.name, s.span_id));
        assert_eq!(theirs["trace_id"], TRACE_ID);
        assert_eq!(theirs["name"], s.name.as_str());
    }

    // Metrics: the operation duration with the MCP buckets, tool calls by server and tool,
    // and the handshake session's duration (the legacy client ends it with DELETE).
    let points = rx
        .wait_for_metrics(
            |m| {
                m.iter().any(|p| p.name == "mcp.client.session.duration")
                    && m.iter().any(|p| p.name == "llmtap.mcp.tool.calls")
            },
            Duration::from_secs(20),
        )
        .await;
    let latest = common::otlp::latest_points(&points);
    let dur: Vec<_> = latest
        .iter()
        .filter(|p| p.name == "mcp.client.operation.duration")
        .collect();
    assert!(!dur.is_empty(), "{}", common::otlp::metrics_json(&latest));
    for p in &dur {
        assert_eq!(p.unit, "s");
        assert_eq!(p.kind, "histogram");
        assert_eq!(
            p.bounds,
            [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]
        );
        assert!(p.str_attr("mcp.method.name").is_some());
    }
    let failing = dur
        .iter()
        .find(|p| p.str_attr("gen_ai.tool.name") == Some("failing"))
        .expect("failing tool's duration");
    assert_eq!(failing.str_attr("error.type"), Some("tool_error"));
    let weather_calls: f64 = latest
        .iter()
        .filter(|p| {
            p.name == "llmtap.mcp.tool.calls"
                && p.str_attr("gen_ai.tool.name") == Some("get_weather")
        })
        .map(|p| p.value)
        .sum();
    assert_eq!(weather_calls, 2.0);
    let session = latest
        .iter()
        .find(|p| p.name == "mcp.client.session.duration")
        .unwrap();
    assert_eq!(session.count, 1);
    assert_eq!(session.str_attr("mcp.protocol.version"), Some("2025-11-25"));
    proxy.stop().await;
}

/// POSTs answered as `application/json` (not SSE), content capture on: the tool's arguments
/// and result on its span; `/metrics` carries the MCP histogram.
#[tokio::test(flavor = "multi_thread")]
async fn json_responses_and_captured_content() {
    let Some(py) = common::python() else { return };
    let server = SdkServer::start(&py, true).await;
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let mut e = otlp_env(&rx, "http");
    e.extend(env(&[(
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "SPAN_ONLY",
    )]));
    let servers = vec![("json", server.url.clone())];
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: e,
            tweak: Some(Box::new(move |c: &mut Config| {
                with_mcp(servers)(c);
                c.metrics.prometheus = true;
            })),
            ..Default::default()
        },
    )
    .await;
    let url = format!("{}/mcp/json", proxy.url);
    let out = common::run_python(&py, "mcp_client.py", &[("MCP_URL", &url)]).await;
    assert_eq!(out["weather"], "Sunny in Paris, 21 C");
    assert_eq!(out["invalid"]["code"], -32602);
    let spans = rx
        .wait_for_spans(|s| mcp_spans(s).len() >= 9, Duration::from_secs(20))
        .await;
    let all = mcp_spans(&spans);
    let w = named(&all, "tools/call get_weather");
    let args: Value =
        serde_json::from_str(w.str_attr("gen_ai.tool.call.arguments").unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    let result: Value =
        serde_json::from_str(w.str_attr("gen_ai.tool.call.result").unwrap()).unwrap();
    assert_eq!(result["content"][0]["text"], "Sunny in Paris, 21 C");
    // A failed call has its arguments, and no result (the conventions: successful calls only).
    let f = named(&all, "tools/call failing");
    assert!(f.attr("gen_ai.tool.call.arguments").is_some());
    assert!(f.attr("gen_ai.tool.call.result").is_none());
    // No caller trace context: each request is a root span of its own trace.
    assert!(w.parent_span_id.is_empty());
    assert_eq!(
        named(&all, "tools/call invalid").str_attr("error.type"),
        Some("-32602")
    );
    let text = common::scrape(&proxy.url).await;
    assert!(
        text.contains("mcp_client_operation_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(text.contains("llmtap_mcp_tool_calls_total{"), "{text}");
    proxy.stop().await;
}

/// An agent loop: the model asks for a tool, the app runs it over MCP through llmtap, then
/// sends the result back. One trace: the first chat span, the MCP execution as its
/// `execute_tool` span (with the real execution time, the server, the call id), and the next
/// chat span, which links to the first. No second, estimated execute_tool span.
#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_execution_is_the_model_calls_execute_tool_span() {
    let Some(py) = common::python() else { return };
    let server = SdkServer::start(&py, false).await;
    let (_up, rx, proxy) = traced_mcp_proxy(&server).await;
    let base = format!("{}/v1", proxy.url);
    let mcp = format!("{}/mcp/tools", proxy.url);
    let tp = traceparent();
    let out = common::run_python(
        &py,
        "mcp_agent.py",
        &[
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_API_KEY", "sk-test-not-a-real-key"),
            ("MCP_URL", &mcp),
            ("APP_TRACEPARENT", &tp),
            ("AFTER_TOOL_SLEEP", "0.6"),
        ],
    )
    .await;
    assert!(out["result"].as_str().unwrap().starts_with("Sunny in"));
    let call_id = out["call_id"].as_str().unwrap().to_string();
    let spans = rx
        .wait_for_spans(
            |s| s.iter().filter(|x| x.name.starts_with("chat ")).count() >= 2,
            Duration::from_secs(20),
        )
        .await;
    let chats: Vec<&SpanView> = spans
        .iter()
        .filter(|s| s.name.starts_with("chat "))
        .collect();
    assert_eq!(chats.len(), 2, "{}", common::otlp::spans_json(&spans));
    let first = chats
        .iter()
        .min_by_key(|s| s.start_unix_nanos)
        .copied()
        .unwrap();
    let second = chats
        .iter()
        .max_by_key(|s| s.start_unix_nanos)
        .copied()
        .unwrap();
    let exec = spans
        .iter()
        .find(|s| s.name == "tools/call get_weather")
        .expect("the MCP tool span");
    for s in [first, second, exec] {
        assert_eq!(s.trace_id, TRACE_ID, "one trace: {}", s.name);
    }
    assert_eq!(
        exec.parent_span_id, first.span_id,
        "under the call that asked"
    );
    assert_eq!(exec.str_attr("gen_ai.tool.call.id"), Some(call_id.as_str()));
    assert_eq!(exec.str_attr("gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(exec.str_attr("gen_ai.tool.name"), Some("get_weather"));
    assert_eq!(exec.str_attr("llmtap.mcp.server"), Some("tools"));
    assert_eq!(exec.str_attr("mcp.method.name"), Some("tools/call"));
    // The real execution: it ends before the app's own 0.6 s of work and the next call.
    assert!(exec.end_unix_nanos <= second.start_unix_nanos);
    assert!(
        second.start_unix_nanos - exec.end_unix_nanos >= 500_000_000,
        "the app's time after the tool is not the tool's"
    );
    // The next model call keeps its link to the call that asked for the tool.
    assert!(second
        .links
        .iter()
        .any(|(t, s)| t == TRACE_ID && *s == first.span_id));
    // The live view lists the execution in the asking call's tool timeline, with its real time.
    let calls: Value = client()
        .get(format!("{}/ui/api/calls", proxy.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = calls["calls"].as_array().expect("calls");
    let asking = rows
        .iter()
        .filter_map(|r| r["id"].as_u64())
        .min()
        .expect("a call in the view");
    let detail: Value = client()
        .get(format!("{}/ui/api/calls/{asking}", proxy.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tool = detail["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["call_id"] == call_id.as_str()))
        .unwrap_or_else(|| panic!("no tool row in {detail}"));
    let exec_ms = (exec.end_unix_nanos - exec.start_unix_nanos) as f64 / 1e6;
    let row_ms = tool["duration_ms"].as_f64().unwrap();
    assert!(
        (row_ms - exec_ms).abs() < 2.0,
        "{row_ms} vs the span's {exec_ms}"
    );
    // One execute_tool span for the call: no estimated one besides the MCP execution.
    proxy.stop().await;
    let spans = rx.spans();
    let tool_spans: Vec<&SpanView> = spans
        .iter()
        .filter(|s| s.str_attr("gen_ai.operation.name") == Some("execute_tool"))
        .collect();
    assert_eq!(tool_spans.len(), 1, "{}", common::otlp::spans_json(&spans));
}

/// The same loop from an app without tracing: the MCP call carries no trace context, yet it
/// starts in the model call's trace (the context llmtap sends in `_meta` is that trace's), so
/// the server's own span joins it too, under the execute_tool span.
#[tokio::test(flavor = "multi_thread")]
async fn without_app_tracing_the_execution_and_the_servers_span_join_the_model_trace() {
    let Some(py) = common::python() else { return };
    let server = SdkServer::start(&py, false).await;
    let (_up, rx, proxy) = traced_mcp_proxy(&server).await;
    let base = format!("{}/v1", proxy.url);
    let mcp = format!("{}/mcp/tools", proxy.url);
    let out = common::run_python(
        &py,
        "mcp_agent.py",
        &[
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_API_KEY", "sk-test-not-a-real-key"),
            ("MCP_URL", &mcp),
            ("AFTER_TOOL_SLEEP", "0.1"),
        ],
    )
    .await;
    let call_id = out["call_id"].as_str().unwrap().to_string();
    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter().filter(|x| x.name.starts_with("chat ")).count() >= 2
                    && s.iter().any(|x| x.name == "tools/call get_weather")
            },
            Duration::from_secs(20),
        )
        .await;
    let first = spans
        .iter()
        .filter(|s| s.name.starts_with("chat "))
        .min_by_key(|s| s.start_unix_nanos)
        .unwrap();
    let exec = spans
        .iter()
        .find(|s| s.name == "tools/call get_weather")
        .unwrap();
    assert_eq!(exec.trace_id, first.trace_id);
    assert_eq!(exec.parent_span_id, first.span_id);
    assert_eq!(exec.str_attr("gen_ai.tool.call.id"), Some(call_id.as_str()));
    let theirs = server
        .spans()
        .into_iter()
        .find(|x| x["name"] == "tools/call get_weather")
        .expect("the server's span");
    assert_eq!(theirs["trace_id"], first.trace_id.as_str());
    assert_eq!(theirs["parent_span_id"], exec.span_id.as_str());
    // Its other calls (server/discover, with no model call behind them) stay traces of their own.
    let discover = spans.iter().find(|s| s.name == "server/discover").unwrap();
    assert_ne!(discover.trace_id, first.trace_id);
    proxy.stop().await;
}

/// What the scripted MCP server of the bad-input tests saw: each request's headers.
type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// A scripted Streamable HTTP endpoint: 401 with `WWW-Authenticate` without `Authorization`;
/// a POST answered on an SSE stream (a progress notification, then the response); GET a
/// one-event stream; DELETE 204.
async fn scripted_mcp_server() -> (String, Seen, common::Served) {
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/mcp",
        any(move |req: axum::extract::Request| {
            let seen = s2.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .push((parts.method.to_string(), parts.headers.clone()));
                if parts.headers.get("authorization").is_none() {
                    return Response::builder()
                        .status(StatusCode::UNAUTHORIZED)
                        .header(
                            "www-authenticate",
                            r#"Bearer resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource""#,
                        )
                        .body(Body::from("unauthorized"))
                        .unwrap();
                }
                match parts.method.as_str() {
                    "POST" => {
                        let msg: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let id = msg["id"].clone();
                        if msg["params"]["name"] == "plain" {
                            // An answer llmtap cannot read outcomes from.
                            return Response::builder()
                                .header("content-type", "text/plain")
                                .body(Body::from("done"))
                                .unwrap();
                        }
                        if msg["params"]["name"] == "hang" {
                            // Answers, then keeps the stream open and silent for good.
                            let event = format!(
                                "event: message\ndata: {}\n\n",
                                json!({"jsonrpc":"2.0","id":id,"result":{"content":[]}})
                            );
                            let first = futures_util::stream::once(async move {
                                Ok::<_, std::io::Error>(bytes::Bytes::from(event))
                            });
                            let body = futures_util::StreamExt::chain(first, futures_util::stream::pending());
                            return Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(Body::from_stream(body))
                                .unwrap();
                        }
                        let meta = msg["params"]["_meta"].clone();
                        let sse = format!(
                            "event: message\ndata: {}\n\nevent: message\ndata: {}\n\n",
                            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0.5}}),
                            json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":"ok"}],"isError":false,"seenMeta":meta}})
                        );
                        Response::builder()
                            .header("content-type", "text/event-stream")
                            .header("mcp-session-id", "sess-1")
                            .body(Body::from(sse))
                            .unwrap()
                    }
                    "GET" => Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::from("id: e2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n"))
                        .unwrap(),
                    _ => Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Body::empty())
                        .unwrap(),
                }
            }
        }),
    );
    let served = common::serve_router(app).await;
    (format!("{}/mcp", served.base), seen, served)
}

async fn post_rpc(url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, String) {
    let mut r = client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// Unknown server, server down, a body that is not JSON, a batch over the limit: each answered
/// at once in JSON-RPC's error shape. Headers pass through both ways (Authorization to the
/// server, a 401's WWW-Authenticate back, the session id, Last-Event-ID), GET and DELETE pass,
/// and client keys apply, with `Authorization` left to the MCP server when the key comes in
/// `x-api-key`. Trace context goes into `_meta` unless the client put its own there.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_headers_and_keys() {
    let (mcp_url, seen, stop) = scripted_mcp_server().await;
    let down = format!("http://127.0.0.1:{}/mcp", common::free_port());
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: otlp_env(&rx, "http"),
            tweak: Some(with_mcp(vec![("s", mcp_url), ("down", down)])),
            ..Default::default()
        },
    )
    .await;
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"f","arguments":{"a":1}}}"#;

    let (st, _, body) = post_rpc(&format!("{}/mcp/nope", proxy.url), call, &[]).await;
    assert_eq!(st, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["error"]["code"], -32600);
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
    let (st, _, body) = post_rpc(&format!("{}/mcp/s/extra/path", proxy.url), call, &[]).await;
    assert_eq!(st, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        -32600
    );

    let (st, _, body) = post_rpc(&format!("{}/mcp/down", proxy.url), call, &[]).await;
    assert_eq!(st, 502);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(7), json!(-32000))
    );

    let (st, _, body) = post_rpc(&format!("{}/mcp/s", proxy.url), "not json {", &[]).await;
    assert_eq!(st, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        -32700
    );
    let batch = format!(
        "[{}]",
        vec![r#"{"jsonrpc":"2.0","method":"notifications/x"}"#; 10_000].join(",")
    );
    let (st, _, body) = post_rpc(&format!("{}/mcp/s", proxy.url), &batch, &[]).await;
    assert_eq!(st, 413);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        -32600
    );
    // None of those reached the scripted server.
    assert!(seen.lock().unwrap().is_empty());

    // No Authorization: the server's 401 and its WWW-Authenticate come back unchanged.
    let (st, h, _) = post_rpc(&format!("{}/mcp/s", proxy.url), call, &[]).await;
    assert_eq!(st, 401);
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("resource_metadata="));
    // With it: forwarded as sent; the response read from the SSE stream; _meta filled in.
    let (st, h, body) = post_rpc(
        &format!("{}/mcp/s", proxy.url),
        call,
        &[
            ("authorization", "Bearer mcp-token"),
            ("mcp-protocol-version", "2025-11-25"),
            ("traceparent", &traceparent()),
            ("baggage", "user.id=u1"),
        ],
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(h["mcp-session-id"], "sess-1");
    assert!(
        body.contains("notifications/progress"),
        "relayed as sent: {body}"
    );
    let result: Value = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|m| m["id"] == 7)
        .unwrap();
    let meta = &result["result"]["seenMeta"];
    let tp = meta["traceparent"].as_str().unwrap();
    assert!(tp.starts_with(&format!("00-{TRACE_ID}-")), "{tp}");
    assert_eq!(meta["baggage"], "user.id=u1");
    {
        let seen = seen.lock().unwrap();
        let (_, last) = seen.last().unwrap();
        assert_eq!(last["authorization"], "Bearer mcp-token");
        assert_eq!(last["mcp-protocol-version"], "2025-11-25");
    }
    // The client's own _meta trace context is kept, and continued.
    let own = r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"f","_meta":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}"#;
    let (_, _, body) = post_rpc(
        &format!("{}/mcp/s", proxy.url),
        own,
        &[("authorization", "Bearer mcp-token")],
    )
    .await;
    assert!(
        body.contains("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        "{body}"
    );

    // An answer in a content type with no JSON-RPC in it: relayed; its span is not an error.
    let plain = r#"{"jsonrpc":"2.0","id":"p1","method":"tools/call","params":{"name":"plain"}}"#;
    let (st, _, body) = post_rpc(
        &format!("{}/mcp/s", proxy.url),
        plain,
        &[("authorization", "Bearer mcp-token")],
    )
    .await;
    assert_eq!((st, body.as_str()), (200, "done"));

    // A stream that never ends: the span is out once the response is in it, while the stream
    // is still open.
    let hang = r#"{"jsonrpc":"2.0","id":"h1","method":"tools/call","params":{"name":"hang"}}"#;
    let mut open = client()
        .post(format!("{}/mcp/s", proxy.url))
        .header("content-type", "application/json")
        .header("authorization", "Bearer mcp-token")
        .body(hang)
        .send()
        .await
        .unwrap();
    let first = open.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"h1\""));
    let spans = rx
        .wait_for_spans(
            |s| s.iter().any(|x| x.name == "tools/call hang"),
            Duration::from_secs(10),
        )
        .await;
    let hang_span = spans.iter().find(|x| x.name == "tools/call hang").unwrap();
    assert!(hang_span.attr("error.type").is_none());
    drop(open);

    // GET (the server's stream) with Last-Event-ID, and DELETE, pass through.
    let r = client()
        .get(format!("{}/mcp/s", proxy.url))
        .header("authorization", "Bearer mcp-token")
        .header("accept", "text/event-stream")
        .header("last-event-id", "e1")
        .header("mcp-session-id", "sess-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("list_changed"));
    let r = client()
        .delete(format!("{}/mcp/s", proxy.url))
        .header("authorization", "Bearer mcp-token")
        .header("mcp-session-id", "sess-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    {
        let seen = seen.lock().unwrap();
        let get = seen.iter().find(|(m, _)| m == "GET").unwrap();
        assert_eq!(get.1["last-event-id"], "e1");
        assert_eq!(get.1["mcp-session-id"], "sess-1");
        assert!(seen.iter().any(|(m, _)| m == "DELETE"));
    }

    let spans = rx
        .wait_for_spans(|s| mcp_spans(s).len() >= 4, Duration::from_secs(20))
        .await;
    let all = mcp_spans(&spans);
    let down_span = all
        .iter()
        .find(|s| s.str_attr("llmtap.mcp.server") == Some("down"))
        .expect("a span for the call to the server that is down");
    assert_eq!(
        down_span.str_attr("error.type"),
        Some("upstream_unreachable")
    );
    let ok = all
        .iter()
        .find(|s| s.trace_id == TRACE_ID)
        .expect("the call with trace context");
    assert_eq!(ok.parent_span_id, APP_SPAN);
    assert_eq!(ok.str_attr("mcp.session.id"), Some("sess-1"));
    assert!(ok.attr("error.type").is_none(), "found in the SSE stream");
    assert!(tp.contains(&ok.span_id), "_meta names llmtap's span");
    assert!(all.iter().any(|s| s.str_attr("error.type") == Some("401")));
    let plain_span = named(&all, "tools/call plain");
    assert!(plain_span.attr("error.type").is_none());
    let own_span = all
        .iter()
        .find(|s| s.trace_id == "0af7651916cd43dd8448eb211c80319c")
        .expect("the client's _meta context continued");
    assert_eq!(own_span.parent_span_id, "b7ad6b7169203331");
    // No header value is ever an attribute.
    for s in &all {
        for (k, v) in &s.attributes {
            let v = format!("{v:?}");
            assert!(!v.contains("mcp-token"), "{k} carries the credential");
        }
    }
    proxy.stop().await;
    drop(stop);
}

/// Client keys as on the LLM paths: no key, no call (401 in JSON-RPC's shape); the key in
/// `x-api-key` leaves `Authorization` to the MCP server; the tenant is on the span.
#[tokio::test(flavor = "multi_thread")]
async fn client_keys_apply_to_mcp() {
    let (mcp_url, seen, stop) = scripted_mcp_server().await;
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: otlp_env(&rx, "http"),
            tweak: Some(Box::new(move |c: &mut Config| {
                with_mcp(vec![("s", mcp_url)])(c);
                c.auth = Some(AuthConfig {
                    keys: vec![ClientKeyConfig {
                        sha256: llmtap::auth::digest(b"llmtap-key-1"),
                        tenant: "acme".into(),
                        requests_per_minute: None,
                        max_concurrent: None,
                    }],
                });
            })),
            ..Default::default()
        },
    )
    .await;
    let url = format!("{}/mcp/s", proxy.url);
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let (st, _, body) = post_rpc(&url, call, &[("authorization", "Bearer mcp-token")]).await;
    assert_eq!(st, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["jsonrpc"],
        "2.0"
    );
    assert!(seen.lock().unwrap().is_empty(), "refused before the server");
    let (st, _, _) = post_rpc(
        &url,
        call,
        &[
            ("authorization", "Bearer mcp-token"),
            ("x-api-key", "llmtap-key-1"),
        ],
    )
    .await;
    assert_eq!(st, 200);
    {
        let seen = seen.lock().unwrap();
        let (_, h) = seen.last().unwrap();
        assert_eq!(h["authorization"], "Bearer mcp-token");
        assert!(h.get("x-api-key").is_none(), "llmtap's key stays here");
    }
    let spans = rx
        .wait_for_spans(|s| !mcp_spans(s).is_empty(), Duration::from_secs(20))
        .await;
    assert_eq!(mcp_spans(&spans)[0].str_attr("llmtap.tenant"), Some("acme"));
    proxy.stop().await;
    drop(stop);
}

/// `llmtap mcp-stdio -- COMMAND`: stdin and stdout relayed byte for byte (whatever they hold),
/// a request the child never answers ends in an error span when the child exits, and llmtap
/// exits with the child's status.
#[tokio::test(flavor = "multi_thread")]
async fn stdio_relays_bytes_and_exits_with_the_childs_status() {
    let rx = OtlpReceiver::start().await;
    let dir = common::TempDir::new("mcp-stdio");
    let endpoint = rx.http_endpoint.clone();
    let mut child = tokio::process::Command::new(common::bin::BIN)
        .args([
            "mcp-stdio",
            "--name",
            "echo",
            "--",
            "sh",
            "-c",
            "cat; exit 7",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("OTEL_METRICS_EXPORTER", "none")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup","arguments":{"q":"x"}}}"#,
    );
    input.extend_from_slice(b"\nnot json at all\r\n\xff\xfe binary\n");
    input.extend_from_slice(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    input.push(b'\n');
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let sent = input.clone();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        stdin.write_all(&sent).await.unwrap();
        // stdin closes here: cat ends, then exits 7.
    });
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        use tokio::io::AsyncReadExt;
        stdout.read_to_end(&mut out).await.unwrap();
    })
    .await
    .expect("stdout ended");
    writer.await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("llmtap exited")
        .unwrap();
    assert_eq!(out, input, "byte for byte");
    assert_eq!(
        status.code(),
        Some(7),
        "{}",
        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
    );
    let spans = rx
        .wait_for_spans(|s| mcp_spans(s).len() >= 2, Duration::from_secs(10))
        .await;
    let all = mcp_spans(&spans);
    let call = named(&all, "tools/call lookup");
    assert_eq!(call.str_attr("network.transport"), Some("pipe"));
    assert_eq!(call.str_attr("llmtap.mcp.server"), Some("echo"));
    assert!(call.attr("server.address").is_none());
    assert_eq!(call.str_attr("error.type"), Some("stream_truncated"));
    assert_eq!(call.status_code, "error");
    let note = named(&all, "notifications/initialized");
    assert!(note.attr("error.type").is_none());
}

/// The official SDK's client starts `llmtap mcp-stdio -- python mcp_server.py stdio` as its
/// server: every call answered, each traced with `network.transport=pipe`; a server that dies
/// mid-call leaves an error span, and the client is not left hanging.
#[tokio::test(flavor = "multi_thread")]
async fn sdk_over_stdio_through_mcp_stdio() {
    let Some(py) = common::python() else { return };
    let rx = OtlpReceiver::start().await;
    let command = json!([
        common::bin::BIN,
        "mcp-stdio",
        "--name",
        "local",
        "--",
        py,
        common::repo().join("tests/sdk/mcp_server.py"),
        "stdio"
    ])
    .to_string();
    let endpoint = rx.http_endpoint.clone();
    let out = common::run_python(
        &py,
        "mcp_client.py",
        &[
            ("MCP_STDIO", &command),
            ("MCP_CRASH", "1"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    )
    .await;
    assert_eq!(out["weather"], "Sunny in Paris, 21 C");
    assert_eq!(out["invalid"]["code"], -32602);
    assert_ne!(out["crash"], "answered");
    let spans = rx
        .wait_for_spans(
            |s| mcp_spans(s).iter().any(|x| x.name == "tools/call exit_now"),
            Duration::from_secs(20),
        )
        .await;
    let all = mcp_spans(&spans);
    for s in &all {
        assert_eq!(s.kind, "client");
        assert_eq!(s.str_attr("network.transport"), Some("pipe"), "{}", s.name);
        assert_eq!(s.str_attr("llmtap.mcp.server"), Some("local"));
        assert!(s.attr("network.protocol.name").is_none());
    }
    let w = named(&all, "tools/call get_weather");
    assert_eq!(w.str_attr("mcp.protocol.version"), Some("2026-07-28"));
    assert_eq!(w.str_attr("gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(
        named(&all, "tools/call failing").str_attr("error.type"),
        Some("tool_error")
    );
    assert_eq!(
        named(&all, "tools/call invalid").str_attr("rpc.response.status_code"),
        Some("-32602")
    );
    let crash = named(&all, "tools/call exit_now");
    assert_eq!(crash.str_attr("error.type"), Some("stream_truncated"));
    assert!(
        crash.status_message.contains("exited"),
        "{}",
        crash.status_message
    );
}
