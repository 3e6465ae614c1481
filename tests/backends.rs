//! llmtap in front of real GenAI backends: Arize Phoenix and MLflow's tracking server, each
//! started on 127.0.0.1 from the venv tests/run installs (tests/phoenix-requirements.txt,
//! tests/mlflow-requirements.txt; named in LLMTAP_TEST_PHOENIX_PYTHON and
//! LLMTAP_TEST_MLFLOW_PYTHON). The real binary relays the official openai SDK's traffic
//! (tests/sdk/backends.py) to the scripted upstream (`llmtap mock-upstream`) and exports its
//! spans over OTLP/HTTP protobuf to the backend; every assertion reads the backend's own API,
//! after the backend has translated the `gen_ai.*` names itself (no compat profile).
//!
//! Under tests/run (LLMTAP_REQUIRE_TOOLS) a missing venv fails; under plain `cargo test` the
//! tests print one line and return.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::Service;
use common::*;
use serde_json::{json, Value};

const CONVERSATION_HEADER: &str = "x-conversation-id";
const CONVERSATION: &str = "conv-backends-7";
const USER: &str = "u-backends-42";
const SYSTEM_PROMPT: &str = "You are the backend test's assistant. Answer briefly.";
/// The long conversation's text is well over this, so llmtap cuts it in the export.
const CONTENT_MAX_CHARS: usize = 2000;
const LONG_TURNS: usize = 6;
const LONG_TURN_CHARS: usize = 400;
/// System prompt, six question/answer pairs, the last question.
const LONG_MESSAGES: usize = 1 + 2 * LONG_TURNS + 1;

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// A backend server in a process group of its own, stopped with SIGTERM to the whole group
/// (then SIGKILL) on drop by the guard: MLflow's `server` forks uvicorn, and killing only
/// the parent would leave the workers holding the port.
struct Server {
    what: &'static str,
    child: Service,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Server {
    /// Starts `cmd` in `dir` (its scratch directory, removed on drop) and waits, bounded,
    /// until `url` + `health` answers 2xx.
    async fn start(
        what: &'static str,
        mut cmd: Command,
        dir: TempDir,
        url: String,
        health: &str,
    ) -> Server {
        let log = dir.path().join(format!("{what}.log"));
        let file = std::fs::File::create(&log).unwrap();
        cmd.current_dir(dir.path())
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child =
            Service::spawn(&mut cmd).unwrap_or_else(|e| panic!("{what} did not start: {e}"));
        let mut server = Server {
            what,
            child,
            url,
            log,
            _dir: dir,
        };
        // Both import a few hundred MB of Python; on a busy 2-core machine that alone has
        // taken over a minute.
        let started = Instant::now();
        let health_url = format!("{}{health}", server.url);
        server
            .child
            .wait_ready(what, &health_url, Duration::from_secs(240), &server.log)
            .await;
        println!("{what} ready after {:?}", started.elapsed());
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.0.try_wait() {
            panic!("{} exited ({status}):\n{}", self.what, self.log_text());
        }
    }

    /// Every TCP socket listening in the server's process group is on loopback.
    fn assert_listens_only_on_loopback(&self) {
        let listening = listening_sockets_of_group(self.child.0.id());
        assert!(
            !listening.is_empty(),
            "{}: found no listening socket of its process group",
            self.what
        );
        for (addr, port) in &listening {
            assert!(
                addr == "127.0.0.1" || addr == "::ffff:127.0.0.1" || addr == "::1",
                "{} listens on {addr} port {port}, beyond loopback; all: {listening:?}",
                self.what
            );
        }
        println!("{} listens only on {listening:?}", self.what);
    }

    async fn get(&self, path: &str) -> Value {
        self.get_unless_404(path)
            .await
            .unwrap_or_else(|| panic!("{} GET {path}: 404", self.what))
    }

    /// As `get`, `None` for a 404 (Phoenix knows a project only once its first span is
    /// stored, a moment after the export).
    async fn get_unless_404(&self, path: &str) -> Option<Value> {
        let r = client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} GET {path}: {e}", self.what));
        let status = r.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        let text = r.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "{} GET {path}: {status}: {text}",
            self.what
        );
        Some(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} GET {path}: not JSON ({e}): {text}", self.what)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = client()
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} POST {path}: {e}", self.what));
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "{} POST {path}: {status}: {text}",
            self.what
        );
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} POST {path}: not JSON ({e}): {text}", self.what))
    }
}

/// (address, port) of the TCP sockets in LISTEN state owned by processes of group `pgid`,
/// from /proc: the group's socket inodes matched against /proc/net/tcp and tcp6.
fn listening_sockets_of_group(pgid: u32) -> BTreeSet<(String, u16)> {
    let mut inodes = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, pgrp.
        let group = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if group != Some(pgid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                {
                    inodes.insert(inode.to_string());
                }
            }
        }
    }
    let mut listening = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A (LISTEN), inode.
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                continue;
            }
            let Some((addr, port)) = f[1].split_once(':') else {
                continue;
            };
            let port = u16::from_str_radix(port, 16).unwrap_or(0);
            listening.insert((proc_net_addr(addr), port));
        }
    }
    listening
}

/// An address as /proc/net/tcp{,6} writes it (32-bit words in host order, little-endian
/// here) in the usual notation.
fn proc_net_addr(hex: &str) -> String {
    let words: Vec<[u8; 4]> = (0..hex.len() / 8)
        .map(|i| {
            u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16)
                .unwrap_or(0)
                .to_le_bytes()
        })
        .collect();
    match words.as_slice() {
        [w] => std::net::Ipv4Addr::from(*w).to_string(),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(w);
            }
            std::net::Ipv6Addr::from(bytes).to_string()
        }
        _ => hex.to_string(),
    }
}

#[test]
fn proc_net_addresses_read_as_usual() {
    assert_eq!(proc_net_addr("0100007F"), "127.0.0.1");
    assert_eq!(proc_net_addr("00000000"), "0.0.0.0");
    assert_eq!(
        proc_net_addr("0000000000000000FFFF00000100007F"),
        "::ffff:127.0.0.1"
    );
    assert_eq!(proc_net_addr("00000000000000000000000001000000"), "::1");
    assert_eq!(proc_net_addr("00000000000000000000000000000000"), "::");
}

/// `phoenix serve` through tests/backends/phoenix_serve.py, which keeps its OTLP/gRPC
/// receiver on 127.0.0.1 (Phoenix binds it to every interface and has no setting for that).
async fn start_phoenix(python: &Path) -> (Server, u16) {
    let dir = TempDir::new("phoenix");
    let (http, grpc) = (free_port(), free_port());
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("tests/backends/phoenix_serve.py"))
        .env("PHOENIX_WORKING_DIR", dir.path())
        .env("PHOENIX_HOST", "127.0.0.1")
        .env("PHOENIX_PORT", http.to_string())
        .env("PHOENIX_GRPC_PORT", grpc.to_string())
        .env("PHOENIX_TELEMETRY_ENABLED", "false");
    let server = Server::start(
        "phoenix",
        cmd,
        dir,
        format!("http://127.0.0.1:{http}"),
        "/healthz",
    )
    .await;
    (server, grpc)
}

/// `mlflow server` with a SQLite store (traces need a database store).
async fn start_mlflow(python: &Path) -> Server {
    let dir = TempDir::new("mlflow");
    let port = free_port();
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--workers",
        "1",
    ])
    .args(["--port", &port.to_string()])
    .arg("--backend-store-uri")
    .arg(format!(
        "sqlite:///{}",
        dir.path().join("mlflow.db").display()
    ))
    .arg("--default-artifact-root")
    .arg(dir.path().join("artifacts"))
    // Its job runner (scheduled evaluations) is another process the test does not need.
    .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    .env("MLFLOW_DISABLE_TELEMETRY", "true");
    Server::start(
        "mlflow",
        cmd,
        dir,
        format!("http://127.0.0.1:{port}"),
        "/health",
    )
    .await
}

/// A backend's venv Python from `var`. Under tests/run (LLMTAP_REQUIRE_TOOLS) a missing one
/// fails the test; otherwise the test prints one line and returns.
fn backend_python(var: &str, requirements: &str) -> Option<PathBuf> {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        other => {
            if std::env::var_os("LLMTAP_REQUIRE_TOOLS").is_some() {
                panic!(
                    "{var} ({other:?}) is not a file; tests/run installs it from {requirements}"
                );
            }
            eprintln!(
                "skipping: {var} is not set up (run via tests/run, which installs {requirements})"
            );
            None
        }
    }
}

/// The scripted upstream and llmtap (both the real binary) exporting spans to a backend.
struct Llmtap {
    _upstream: bin::Proc,
    proc: Option<bin::Proc>,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Llmtap {
    async fn start(otlp_env: &[(&str, &str)]) -> Llmtap {
        let dir = TempDir::new("backends-llmtap");
        let upstream_listen = format!("127.0.0.1:{}", free_port());
        let upstream = bin::Proc::spawn(&mut bin::command(
            &["mock-upstream", "--listen", &upstream_listen],
            &[],
            &dir.path().join("upstream.log"),
        ))
        .expect("mock-upstream starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(&upstream_listen)
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "mock-upstream not listening");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let config = dir.path().join("llmtap.yaml");
        std::fs::write(
            &config,
            format!(
                r#"
upstreams:
  - name: openai
    base_url: "http://{upstream_listen}/v1"
    provider: openai
telemetry:
  capture_content: true
  content_max_chars: {CONTENT_MAX_CHARS}
  conversation_id_header: {CONVERSATION_HEADER}
  baggage_attributes: [user.id]
"#
            ),
        )
        .unwrap();
        let log = dir.path().join("llmtap.log");
        let mut envs = vec![
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            // The backends take traces only.
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ];
        envs.extend_from_slice(otlp_env);
        let (proc, url) = bin::start(&["--config", config.to_str().unwrap()], &envs, &log).await;
        Llmtap {
            _upstream: upstream,
            proc: Some(proc),
            url,
            log,
            _dir: dir,
        }
    }

    /// SIGTERM and wait (bounded) for the exit: llmtap flushes its spans before exiting.
    fn stop(&mut self) {
        let Some(mut proc) = self.proc.take() else {
            return;
        };
        proc.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = proc.0.try_wait() {
                assert!(
                    status.success(),
                    "llmtap exited with {status}:\n{}",
                    self.log_text()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "llmtap did not exit within 20 s of SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// tests/sdk/backends.py through this llmtap; what the SDK saw.
    async fn drive(&self) -> Value {
        let long_turns = LONG_TURNS.to_string();
        let turn_chars = LONG_TURN_CHARS.to_string();
        let sdk = run_sdk(
            "backends.py",
            &self.url,
            &[
                ("BACKENDS_CONVERSATION_HEADER", CONVERSATION_HEADER),
                ("BACKENDS_CONVERSATION_ID", CONVERSATION),
                ("BACKENDS_USER_ID", USER),
                ("BACKENDS_SYSTEM_PROMPT", SYSTEM_PROMPT),
                ("BACKENDS_LONG_TURNS", &long_turns),
                ("BACKENDS_LONG_TURN_CHARS", &turn_chars),
            ],
        )
        .await
        .expect("checked at the start of the test");
        assert_eq!(sdk["error"]["status"], 429, "{sdk:#}");
        assert_eq!(sdk["tools"]["calls"][0]["name"], "get_weather", "{sdk:#}");
        assert_eq!(sdk["long"]["messages"], LONG_MESSAGES, "{sdk:#}");
        sdk
    }
}

/// The first user message's text of each scenario in tests/sdk/backends.py starts with its
/// tag; the test finds each call's span in a backend by it.
const TAGS: [&str; 6] = [
    "[plain]",
    "[streamed]",
    "[tools]",
    "[embeddings]",
    "[error]",
    "[long]",
];

/// What every backend must show of the long conversation: every message, in order, with its
/// role and some of its own text; the system prompt (short) whole, the long turns cut to
/// their fair share, and the last question whole (issue 30: a conversation cut by
/// `content_max_chars` keeps the question it ends on).
fn assert_long_conversation(backend: &str, roles: &[String], texts: &[String]) {
    let mut expected = vec!["system".to_string()];
    for _ in 0..LONG_TURNS {
        expected.extend(["user".to_string(), "assistant".to_string()]);
    }
    expected.push("user".into());
    assert_eq!(roles, expected, "{backend}: the long conversation's roles");
    assert_eq!(texts[0], SYSTEM_PROMPT, "{backend}");
    assert!(
        texts[1].starts_with("[long] question 0 xxx"),
        "{backend}: {}",
        texts[1]
    );
    assert!(
        texts[1].ends_with("…[truncated]"),
        "{backend}: the long turns are cut: {}",
        texts[1]
    );
    for (i, t) in texts.iter().enumerate() {
        assert!(
            t.chars().count() > "…[truncated]".chars().count(),
            "{backend}: message {i} kept none of its text: {t:?}"
        );
    }
    let last = texts.last().unwrap();
    assert_eq!(
        last, "[long] last question",
        "{backend}: the last message must be visible whole"
    );
}

// ---------------------------------------------------------------------------------------
// Arize Phoenix
// ---------------------------------------------------------------------------------------

const PHOENIX_PROJECT: &str = "llmtap-backends";

/// An attribute of a span from Phoenix's REST API (flat keys, OpenInference names beside
/// llmtap's gen_ai ones).
fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

/// `llm.input_messages.N.message.{role,content}` (or output), in order.
fn oi_messages(span: &Value, which: &str) -> (Vec<String>, Vec<String>) {
    let (mut roles, mut texts) = (Vec::new(), Vec::new());
    for i in 0.. {
        let role = attr(span, &format!("llm.{which}_messages.{i}.message.role"));
        let Some(role) = role.as_str() else { break };
        roles.push(role.to_string());
        texts.push(
            attr(span, &format!("llm.{which}_messages.{i}.message.content"))
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    (roles, texts)
}

fn first_user_text(span: &Value) -> String {
    let (roles, texts) = oi_messages(span, "input");
    roles
        .iter()
        .zip(texts)
        .find(|(r, _)| *r == "user")
        .map(|(_, t)| t)
        .unwrap_or_default()
}

#[tokio::test]
async fn phoenix_shows_llmtaps_spans_as_llm_tool_and_embedding_spans_with_sessions_users_and_cost()
{
    let Some(python) = backend_python(
        "LLMTAP_TEST_PHOENIX_PYTHON",
        "tests/phoenix-requirements.txt",
    ) else {
        return;
    };
    // The SDK's venv drives the traffic (its absence skips or fails as in every SDK test).
    if common::python().is_none() {
        return;
    }
    let started = Instant::now();
    let (mut phoenix, grpc_port) = start_phoenix(&python).await;
    phoenix.assert_listens_only_on_loopback();

    // OTLP/HTTP protobuf to /v1/traces, the project named by a resource attribute.
    let endpoint = format!("{}/v1/traces", phoenix.url);
    let project = format!("openinference.project.name={PHOENIX_PROJECT}");
    let mut llmtap = Llmtap::start(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_RESOURCE_ATTRIBUTES", &project),
    ])
    .await;
    let sdk = llmtap.drive().await;
    llmtap.stop();
    // Its gRPC receiver (on loopback here) takes the same spans.
    let grpc_endpoint = format!("http://127.0.0.1:{grpc_port}");
    let mut over_grpc = Llmtap::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc_endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_RESOURCE_ATTRIBUTES", &project),
    ])
    .await;
    let (status, body) = chat_text(
        &over_grpc.url,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "[grpc] Hello"}]}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    over_grpc.stop();

    // Plain, streamed, the tool loop's two calls and its tool span, embeddings, the 429, the
    // long conversation, and the gRPC one.
    let path = format!("/v1/projects/{PHOENIX_PROJECT}/spans?limit=1000");
    let deadline = Instant::now() + Duration::from_secs(60);
    let spans = loop {
        phoenix.assert_running();
        let got = phoenix
            .get_unless_404(&path)
            .await
            .and_then(|v| v["data"].as_array().cloned())
            .unwrap_or_default();
        if got.len() >= 9 {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "phoenix lists {} of 9 spans after 60 s: {got:#?}\n{}",
            got.len(),
            phoenix.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let dump = serde_json::to_string_pretty(&spans).unwrap();
    assert_eq!(spans.len(), 9, "{dump}");
    let tagged = |tag: &str| -> Vec<&Value> {
        spans
            .iter()
            .filter(|s| first_user_text(s).starts_with(tag))
            .collect()
    };
    let one = |tag: &str| -> &Value {
        let found = tagged(tag);
        assert_eq!(found.len(), 1, "one span for {tag}:\n{dump}");
        found[0]
    };
    for tag in TAGS.iter().chain(&["[grpc]"]) {
        assert!(!tagged(tag).is_empty(), "no span for {tag}:\n{dump}");
    }

    // Every call is in the conversation's session, for the baggage's user.
    for s in spans.iter().filter(|s| s["span_kind"] != "TOOL") {
        if first_user_text(s).starts_with("[grpc]") {
            continue;
        }
        assert_eq!(attr(s, "session.id"), CONVERSATION, "{s:#}");
        assert_eq!(attr(s, "user.id"), USER, "{s:#}");
    }

    // Plain chat: an LLM span with the model, tokens as the SDK saw them, the system prompt
    // as the first input message, and the answer as the output message.
    let plain = one("[plain]");
    assert_eq!(plain["span_kind"], "LLM", "{plain:#}");
    assert_eq!(attr(plain, "llm.model_name"), "gpt-4o-mini", "{plain:#}");
    let usage = &sdk["plain"]["usage"];
    assert_eq!(
        attr(plain, "llm.token_count.prompt"),
        &usage["prompt_tokens"]
    );
    assert_eq!(
        attr(plain, "llm.token_count.completion"),
        &usage["completion_tokens"]
    );
    assert_eq!(attr(plain, "llm.token_count.total"), &usage["total_tokens"]);
    let (roles, texts) = oi_messages(plain, "input");
    assert_eq!(roles, ["system", "user"], "{plain:#}");
    assert_eq!(texts[0], SYSTEM_PROMPT);
    let (roles, texts) = oi_messages(plain, "output");
    assert_eq!(roles, ["assistant"], "{plain:#}");
    assert_eq!(texts[0], sdk["plain"]["text"].as_str().unwrap());

    let streamed = one("[streamed]");
    assert_eq!(streamed["span_kind"], "LLM");
    assert_eq!(attr(streamed, "gen_ai.request.stream"), true);
    assert!(attr(streamed, "llm.token_count.completion").as_i64() > Some(0));
    let (_, texts) = oi_messages(streamed, "output");
    assert_eq!(texts, [sdk["streamed"]["text"].as_str().unwrap()]);

    // The tool loop: the call that asked for the tool has the tool call as its output, the
    // TOOL span is its child in its trace, and the follow-up carries the result.
    let tool_calls = tagged("[tools]");
    assert_eq!(tool_calls.len(), 2, "{dump}");
    let (ask, follow_up) = if oi_messages(tool_calls[0], "input").0.len() == 1 {
        (tool_calls[0], tool_calls[1])
    } else {
        (tool_calls[1], tool_calls[0])
    };
    assert_eq!(
        attr(
            ask,
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name"
        ),
        "get_weather",
        "{ask:#}"
    );
    let tools: Vec<&Value> = spans.iter().filter(|s| s["span_kind"] == "TOOL").collect();
    assert_eq!(tools.len(), 1, "{dump}");
    let tool = tools[0];
    assert_eq!(attr(tool, "tool.name"), "get_weather", "{tool:#}");
    assert_eq!(tool["context"]["trace_id"], ask["context"]["trace_id"]);
    assert_eq!(tool["parent_id"], ask["context"]["span_id"], "{tool:#}");
    assert!(
        attr(tool, "output.value")
            .as_str()
            .is_some_and(|v| v.contains("rainy")),
        "the tool's result: {tool:#}"
    );
    let (roles, texts) = oi_messages(follow_up, "input");
    assert_eq!(roles, ["user", "assistant", "tool"], "{follow_up:#}");
    assert!(texts[2].contains("rainy"), "{follow_up:#}");

    let embeddings = spans
        .iter()
        .find(|s| s["span_kind"] == "EMBEDDING")
        .unwrap_or_else(|| panic!("no EMBEDDING span:\n{dump}"));
    assert_eq!(
        attr(embeddings, "embedding.model_name"),
        "text-embedding-3-small"
    );
    assert_eq!(
        attr(embeddings, "llm.token_count.prompt"),
        &sdk["embeddings"]["usage"]["prompt_tokens"]
    );

    let error = one("[error]");
    assert_eq!(error["span_kind"], "LLM");
    assert_eq!(error["status_code"], "ERROR", "{error:#}");

    let long = one("[long]");
    let (roles, texts) = oi_messages(long, "input");
    assert_long_conversation("phoenix", &roles, &texts);
    assert_eq!(oi_messages(long, "output").0, ["assistant"], "{long:#}");

    // Phoenix's own cost (from its price table, by llm.model_name) and its session view,
    // through its GraphQL API.
    let query = r#"{ projects(first: 20) { edges { node { name
        sessions(first: 10) { edges { node { sessionId userId numTraces } } }
        spans(first: 100) { edges { node { name spanKind context { spanId }
            costSummary { total { cost tokens } } } } } } } } }"#;
    let graph = phoenix.post("/graphql", json!({ "query": query })).await;
    let project = graph["data"]["projects"]["edges"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["node"]["name"] == PHOENIX_PROJECT))
        .unwrap_or_else(|| panic!("no project {PHOENIX_PROJECT}: {graph:#}"));
    let sessions = project["node"]["sessions"]["edges"].as_array().unwrap();
    assert_eq!(
        sessions.len(),
        1,
        "one session (the gRPC call had none): {graph:#}"
    );
    let session = &sessions[0]["node"];
    assert_eq!(session["sessionId"], CONVERSATION, "{session:#}");
    assert_eq!(session["userId"], USER, "{session:#}");
    // Plain, streamed, both tool-loop calls, embeddings, the 429, the long conversation.
    assert_eq!(session["numTraces"], 7, "{session:#}");
    let plain_cost = project["node"]["spans"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["context"]["spanId"] == plain["context"]["span_id"])
        .map(|e| e["node"]["costSummary"]["total"].clone())
        .unwrap_or_else(|| panic!("the plain chat's span in GraphQL: {graph:#}"));
    assert!(
        plain_cost["cost"].as_f64().is_some_and(|c| c > 0.0),
        "phoenix prices gpt-4o-mini: {plain_cost:#}"
    );
    assert_eq!(
        plain_cost["tokens"].as_f64(),
        usage["total_tokens"].as_f64()
    );
    println!(
        "phoenix: 9 spans (LLM, TOOL under its chat span, EMBEDDING, the 429 as ERROR), \
         session {CONVERSATION} of user {USER} with 7 traces, the plain chat's cost {}; \
         test took {:?}",
        plain_cost["cost"],
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// MLflow
// ---------------------------------------------------------------------------------------

/// An OTLP `AnyValue` in protobuf JSON (as MLflow's REST API returns span attributes) as
/// plain JSON.
fn any_value(v: &Value) -> Value {
    if let Some(s) = v.get("string_value") {
        return s.clone();
    }
    for k in ["int_value", "double_value", "bool_value"] {
        if let Some(x) = v.get(k) {
            // Protobuf JSON writes 64-bit integers as strings.
            return match x.as_str().and_then(|t| t.parse::<i64>().ok()) {
                Some(n) => json!(n),
                None => x.clone(),
            };
        }
    }
    if let Some(items) = v["array_value"]["values"].as_array() {
        return Value::Array(items.iter().map(any_value).collect());
    }
    if let Some(items) = v["kvlist_value"]["values"].as_array() {
        return Value::Object(
            items
                .iter()
                .map(|kv| {
                    let key = kv["key"].as_str().unwrap_or_default().to_string();
                    (key, any_value(&kv["value"]))
                })
                .collect(),
        );
    }
    Value::Null
}

/// A span from MLflow's `traces/get`, its attributes as a JSON object.
struct MlflowSpan {
    name: String,
    span_id: String,
    parent_span_id: String,
    status: Value,
    attributes: serde_json::Map<String, Value>,
}

impl MlflowSpan {
    fn from(v: &Value) -> MlflowSpan {
        let attributes = v["attributes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|kv| {
                        let key = kv["key"].as_str().unwrap_or_default().to_string();
                        (key, any_value(&kv["value"]))
                    })
                    .collect()
            })
            .unwrap_or_default();
        MlflowSpan {
            name: v["name"].as_str().unwrap_or_default().to_string(),
            span_id: v["span_id"].as_str().unwrap_or_default().to_string(),
            parent_span_id: v["parent_span_id"].as_str().unwrap_or_default().to_string(),
            status: v["status"].clone(),
            attributes,
        }
    }

    fn attr(&self, key: &str) -> &Value {
        self.attributes.get(key).unwrap_or(&Value::Null)
    }

    /// The semconv messages MLflow shows as the span's inputs or outputs: (roles, texts).
    fn messages(&self, key: &str) -> (Vec<String>, Vec<String>) {
        let messages = self.attr(key).as_array().cloned().unwrap_or_default();
        let roles = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap_or_default().to_string())
            .collect();
        let texts = messages
            .iter()
            .map(|m| {
                m["parts"][0]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        (roles, texts)
    }
}

/// One MLflow trace: its info (from search) and its spans (from get).
struct MlflowTrace {
    info: Value,
    spans: Vec<MlflowSpan>,
}

impl MlflowTrace {
    fn root(&self) -> &MlflowSpan {
        let roots: Vec<&MlflowSpan> = self
            .spans
            .iter()
            .filter(|s| s.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 1, "one root span: {:#}", self.info);
        roots[0]
    }

    fn first_user_text(&self) -> String {
        let (roles, texts) = self.root().messages("mlflow.spanInputs");
        roles
            .iter()
            .zip(texts)
            .find(|(r, _)| *r == "user")
            .map(|(_, t)| t)
            .unwrap_or_default()
    }

    fn metadata_json(&self, key: &str) -> Value {
        self.info["trace_metadata"][key]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null)
    }
}

#[tokio::test]
async fn mlflow_shows_llmtaps_spans_as_chat_tool_and_embedding_spans_with_sessions_and_users() {
    let Some(python) = backend_python("LLMTAP_TEST_MLFLOW_PYTHON", "tests/mlflow-requirements.txt")
    else {
        return;
    };
    // The SDK's venv drives the traffic (its absence skips or fails as in every SDK test).
    if common::python().is_none() {
        return;
    }
    let started = Instant::now();
    let mut mlflow = start_mlflow(&python).await;
    mlflow.assert_listens_only_on_loopback();
    let experiment = mlflow
        .post(
            "/api/2.0/mlflow/experiments/create",
            json!({"name": "llmtap-backends"}),
        )
        .await["experiment_id"]
        .as_str()
        .expect("experiment id")
        .to_string();

    // OTLP/HTTP protobuf to /v1/traces, the experiment named by a header.
    let endpoint = format!("{}/v1/traces", mlflow.url);
    let headers = format!("x-mlflow-experiment-id={experiment}");
    let mut llmtap = Llmtap::start(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", &headers),
    ])
    .await;
    let sdk = llmtap.drive().await;
    llmtap.stop();

    // Seven traces (plain, streamed, the tool loop's two calls, embeddings, the 429, the
    // long conversation), the first tool-loop call's with its tool span: eight spans.
    let search = json!({"locations": [{"type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": experiment}}], "max_results": 100});
    let deadline = Instant::now() + Duration::from_secs(60);
    let traces = loop {
        mlflow.assert_running();
        let infos = mlflow
            .post("/api/3.0/mlflow/traces/search", search.clone())
            .await["traces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut traces = Vec::new();
        for info in infos {
            let id = info["trace_id"].as_str().unwrap_or_default().to_string();
            let got = mlflow
                .get(&format!("/api/3.0/mlflow/traces/get?trace_id={id}"))
                .await;
            let spans = got["trace"]["spans"]
                .as_array()
                .map(|a| a.iter().map(MlflowSpan::from).collect())
                .unwrap_or_default();
            traces.push(MlflowTrace { info, spans });
        }
        let spans: usize = traces.iter().map(|t| t.spans.len()).sum();
        if traces.len() >= 7 && spans >= 8 {
            break traces;
        }
        assert!(
            Instant::now() < deadline,
            "mlflow has {} traces and {spans} spans after 60 s, not 7 and 8:\n{}",
            traces.len(),
            mlflow.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let dump: Vec<&Value> = traces.iter().map(|t| &t.info).collect();
    assert_eq!(traces.len(), 7, "{dump:#?}");
    let tagged = |tag: &str| -> Vec<&MlflowTrace> {
        traces
            .iter()
            .filter(|t| t.first_user_text().starts_with(tag))
            .collect()
    };
    let one = |tag: &str| -> &MlflowTrace {
        let found = tagged(tag);
        assert_eq!(found.len(), 1, "one trace for {tag}: {dump:#?}");
        found[0]
    };

    // Session and user of every trace, from gen_ai.conversation.id and baggage user.id.
    for t in &traces {
        assert_eq!(
            t.info["trace_metadata"]["mlflow.trace.session"], CONVERSATION,
            "{:#}",
            t.info
        );
        assert_eq!(
            t.info["trace_metadata"]["mlflow.trace.user"], USER,
            "{:#}",
            t.info
        );
    }

    // Plain chat: a CHAT_MODEL span, the response model, tokens as the SDK saw them, MLflow's
    // own cost, the system prompt as the first input message, the answer as the output.
    let plain = one("[plain]");
    let span = plain.root();
    assert_eq!(
        span.attr("mlflow.spanType"),
        "CHAT_MODEL",
        "{:#?}",
        span.attributes
    );
    assert_eq!(span.attr("mlflow.llm.model"), "gpt-4o-mini-2024-07-18");
    let usage = &sdk["plain"]["usage"];
    let tokens = span.attr("mlflow.chat.tokenUsage");
    assert_eq!(tokens["input_tokens"], usage["prompt_tokens"], "{tokens}");
    assert_eq!(
        tokens["output_tokens"], usage["completion_tokens"],
        "{tokens}"
    );
    assert_eq!(tokens["total_tokens"], usage["total_tokens"], "{tokens}");
    let cost = plain.metadata_json("mlflow.trace.cost");
    assert!(
        cost["total_cost"].as_f64().is_some_and(|c| c > 0.0),
        "mlflow prices gpt-4o-mini: {:#}",
        plain.info
    );
    let (roles, texts) = span.messages("mlflow.spanInputs");
    assert_eq!(roles, ["system", "user"], "{:#?}", span.attributes);
    assert_eq!(texts[0], SYSTEM_PROMPT);
    let (roles, texts) = span.messages("mlflow.spanOutputs");
    assert_eq!(roles, ["assistant"]);
    assert_eq!(texts[0], sdk["plain"]["text"].as_str().unwrap());

    let streamed = one("[streamed]").root();
    assert_eq!(streamed.attr("mlflow.spanType"), "CHAT_MODEL");
    let (_, texts) = streamed.messages("mlflow.spanOutputs");
    assert_eq!(texts, [sdk["streamed"]["text"].as_str().unwrap()]);

    // The tool loop: the TOOL span is a child of the chat span that asked for it, in its
    // trace, with the arguments and the result as its inputs and outputs.
    let calls = tagged("[tools]");
    assert_eq!(calls.len(), 2, "{dump:#?}");
    let (ask, follow_up) = if calls[0].spans.len() == 2 {
        (calls[0], calls[1])
    } else {
        (calls[1], calls[0])
    };
    assert_eq!(
        ask.spans.len(),
        2,
        "the chat span and its tool span: {:#}",
        ask.info
    );
    let tool = ask
        .spans
        .iter()
        .find(|s| s.attr("mlflow.spanType") == "TOOL")
        .unwrap_or_else(|| panic!("no TOOL span: {:#}", ask.info));
    assert_eq!(tool.name, "execute_tool get_weather");
    assert_eq!(tool.parent_span_id, ask.root().span_id);
    assert_eq!(ask.root().attr("mlflow.spanType"), "CHAT_MODEL");
    assert!(
        tool.attr("mlflow.spanOutputs")
            .to_string()
            .contains("rainy"),
        "the tool's result: {:#?}",
        tool.attributes
    );
    let (roles, _) = follow_up.root().messages("mlflow.spanInputs");
    assert_eq!(roles, ["user", "assistant", "tool"]);

    let embeddings = traces
        .iter()
        .find(|t| t.root().attr("mlflow.spanType") == "EMBEDDING")
        .unwrap_or_else(|| panic!("no EMBEDDING span: {dump:#?}"));
    assert_eq!(
        embeddings.root().attr("mlflow.llm.model"),
        "text-embedding-3-small"
    );
    assert_eq!(
        embeddings.metadata_json("mlflow.trace.tokenUsage")["input_tokens"],
        sdk["embeddings"]["usage"]["prompt_tokens"]
    );

    let error = one("[error]");
    assert_eq!(error.info["state"], "ERROR", "{:#}", error.info);
    assert_eq!(error.root().attr("mlflow.spanType"), "CHAT_MODEL");
    assert_eq!(
        error.root().status["code"],
        "STATUS_CODE_ERROR",
        "{:#}",
        error.root().status
    );

    let long = one("[long]").root();
    let (roles, texts) = long.messages("mlflow.spanInputs");
    assert_long_conversation("mlflow", &roles, &texts);
    assert_eq!(long.messages("mlflow.spanOutputs").0, ["assistant"]);
    println!(
        "mlflow: 7 traces in experiment {experiment} (CHAT_MODEL, TOOL under its chat span, \
         EMBEDDING, the 429 as ERROR), session {CONVERSATION} and user {USER} on each, the \
         plain chat's cost {}; test took {:?}",
        cost["total_cost"],
        started.elapsed()
    );
}
