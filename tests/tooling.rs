//! Deployment checks that need tools from outside the crate: hadolint on the Dockerfile, a
//! real OpenTelemetry collector (rotel) receiving llmtap's spans and showing them back, and
//! the environment the container files set checked against what llmtap reads. (The GenAI
//! backends, Phoenix and MLflow, are in tests/backends.rs.)
//!
//! tests/run installs hadolint and rotel from tests/tools-requirements.txt into their own
//! venv and names them in LLMTAP_TEST_HADOLINT and LLMTAP_TEST_ROTEL.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde::Deserialize;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A program tests/run installs and names in `var`. Under tests/run (LLMTAP_REQUIRE_TOOLS)
/// a missing one fails the test; otherwise the test notes the skip and returns.
fn tool_from_env(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        other => {
            if std::env::var_os("LLMTAP_REQUIRE_TOOLS").is_some() {
                panic!(
                    "{var} ({other:?}) is not a file; tests/run installs it from \
                     tests/tools-requirements.txt"
                );
            }
            eprintln!("skipping: {var} is not set up (run via tests/run)");
            None
        }
    }
}

fn yaml_to_json(mut v: serde_norway::Value, what: &str) -> Value {
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{what}: merge keys: {e}"));
    serde_json::to_value(&v).unwrap_or_else(|e| panic!("{what}: not JSON-like: {e}"))
}

/// Every non-empty document of a (multi-document) YAML text, `<<` merge keys applied.
fn yaml_docs(text: &str, what: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            let v = serde_norway::Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: {e}"));
            yaml_to_json(v, what)
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The file's output so far, ANSI colour codes removed.
fn log_text(path: &Path) -> String {
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&raw, "")
        .into_owned()
}

/// Waits (bounded) until something accepts TCP connections on 127.0.0.1:`port`, failing
/// early with the log when `child` exits.
async fn wait_listening(
    what: &str,
    child: &mut tokio::process::Child,
    ports: &[u16],
    log: &Path,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}):\n{}", log_text(log));
        }
        let mut all = true;
        for port in ports {
            if tokio::net::TcpStream::connect(("127.0.0.1", *port))
                .await
                .is_err()
            {
                all = false;
                break;
            }
        }
        if all {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{what} not listening on {ports:?} within {timeout:?}:\n{}",
                log_text(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh W3C trace id (32 lowercase hex digits, not all zero).
fn new_trace_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:016x}{:08x}{n:08x}", std::process::id())
}

/// One streamed chat through the proxy as an instrumented client sends it, inside trace
/// `trace_id` (a `traceparent` header: llmtap's span joins the caller's trace, so the test
/// can find exactly this request's span). Checks the stream ended with `[DONE]`.
async fn streamed_chat(proxy: &Proxy, trace_id: &str, prompt: &str) {
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .bearer_auth("sk-test-not-a-real-key")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({
            "model": "gpt-4o-mini",
            "stream": true,
            "messages": [{"role": "user", "content": prompt}],
        }))
        .send()
        .await
        .expect("request through llmtap");
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.expect("stream body");
    let last = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .next_back();
    assert_eq!(last, Some("[DONE]"), "stream not finished:\n{body}");
}

// ---------------------------------------------------------------------------------------
// 1. hadolint
// ---------------------------------------------------------------------------------------

/// Runs hadolint on `dockerfile` with no configuration but the file's own inline ignores
/// (empty HOME, a scratch working directory, no HADOLINT_* variables); returns the exit
/// status and the findings (hadolint's JSON format).
fn hadolint(bin: &Path, dockerfile: &Path) -> (std::process::ExitStatus, Vec<Value>) {
    let scratch = TempDir::new("hadolint");
    let out = std::process::Command::new(bin)
        .args([
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "info",
        ])
        .arg(dockerfile)
        .env_clear()
        .env("HOME", scratch.path())
        .current_dir(scratch.path())
        .stdin(Stdio::null())
        .output()
        .expect("hadolint did not start");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let findings: Vec<Value> = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "hadolint printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status, findings)
}

#[test]
fn dockerfile_passes_hadolint() {
    let Some(bin) = tool_from_env("LLMTAP_TEST_HADOLINT") else {
        return;
    };

    // The linter really lints: a Dockerfile with well-known mistakes gets findings.
    let bad = TempDir::new("hadolint-bad");
    let bad_file = bad.path().join("Dockerfile");
    std::fs::write(
        &bad_file,
        "FROM debian\nRUN apt-get update && apt-get install -y curl\nCMD curl localhost\n",
    )
    .unwrap();
    let (status, findings) = hadolint(&bin, &bad_file);
    let codes: BTreeSet<&str> = findings.iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(!status.success(), "hadolint passed a bad Dockerfile");
    for code in ["DL3006", "DL3008", "DL3015"] {
        assert!(codes.contains(code), "hadolint missed {code}: {codes:?}");
    }

    let (status, findings) = hadolint(&bin, &repo().join("Dockerfile"));
    let report: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "Dockerfile:{} {} {}: {}",
                f["line"], f["code"], f["level"], f["message"]
            )
        })
        .collect();
    assert!(
        status.success() && findings.is_empty(),
        "hadolint findings ({status}):\n{}",
        report.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 2. A real OTLP collector (rotel) receives llmtap's spans and shows them back
// ---------------------------------------------------------------------------------------

/// A span as rotel's debug exporter prints it (`--debug-log traces
/// --debug-log-verbosity detailed`): `Name : ...`, `Trace ID : ...`, and attributes as
/// `-> key: Type(value)`.
#[derive(Debug, Default, Clone)]
struct PrintedSpan {
    service: String,
    trace_id: String,
    name: String,
    attributes: BTreeMap<String, String>,
}

impl PrintedSpan {
    fn attr(&self, key: &str, ty: &str) -> Option<&str> {
        self.attributes
            .get(key)?
            .strip_prefix(ty)?
            .strip_prefix('(')?
            .strip_suffix(')')
    }
}

/// Parses rotel's detailed debug output (ignores any other log lines).
fn parse_rotel_debug(text: &str) -> Vec<PrintedSpan> {
    #[derive(PartialEq)]
    enum Section {
        Resource,
        Span,
        Other,
    }
    let mut spans: Vec<PrintedSpan> = Vec::new();
    let mut service = String::new();
    let mut section = Section::Other;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("ResourceSpans #") {
            service.clear();
            section = Section::Other;
        } else if t == "Resource attributes:" {
            section = Section::Resource;
        } else if t.starts_with("Span #") {
            spans.push(PrintedSpan {
                service: service.clone(),
                ..Default::default()
            });
            section = Section::Other;
        } else if t == "Attributes:" && !spans.is_empty() {
            section = Section::Span;
        } else if let Some(kv) = t.strip_prefix("-> ") {
            let Some((k, v)) = kv.split_once(": ") else {
                continue;
            };
            match section {
                Section::Resource if k == "service.name" => {
                    service = v
                        .strip_prefix("Str(")
                        .and_then(|s| s.strip_suffix(')'))
                        .unwrap_or(v)
                        .to_string();
                }
                Section::Span => {
                    if let Some(s) = spans.last_mut() {
                        s.attributes.insert(k.to_string(), v.to_string());
                    }
                }
                _ => {}
            }
        } else if let Some((k, v)) = t.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            match (k, spans.last_mut()) {
                ("Trace ID", Some(s)) => s.trace_id = v.to_string(),
                ("Name", Some(s)) => s.name = v.to_string(),
                _ => {}
            }
            // Events, links and anything else carry their own `->` lines.
            if !v.is_empty() || !matches!(k, "Attributes" | "Resource attributes") {
                section = Section::Other;
            }
        }
    }
    spans
}

/// rotel (`rotel start`), its OTLP gRPC and HTTP receivers on free ports, printing every
/// span it receives and forwarding them over OTLP/HTTP to `forward_to`. Killed on drop.
struct Rotel {
    child: tokio::process::Child,
    grpc_endpoint: String,
    http_endpoint: String,
    out: PathBuf,
    _dir: TempDir,
    _group: common::process::GroupGuard,
}

impl Rotel {
    async fn start(bin: &Path, forward_to: &str) -> Rotel {
        let dir = TempDir::new("rotel");
        let out = dir.path().join("rotel.out");
        let out_file = std::fs::File::create(&out).unwrap();
        let (grpc, http) = (free_port(), free_port());
        let mut cmd = tokio::process::Command::new(bin);
        common::process::own_group_tokio(&mut cmd);
        let mut child = cmd
            .arg("start")
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
            .args(["--exporter", "otlp", "--otlp-exporter-endpoint", forward_to])
            // OTLP/HTTP, gzip-compressed (rotel's default compression); the test receiver
            // takes gzip over HTTP but not over gRPC.
            .args(["--otlp-exporter-protocol", "http"])
            .args(["--debug-log", "traces", "--debug-log-verbosity", "detailed"])
            .args(["--batch-timeout", "100ms"])
            // Only used with --daemon, but keep them out of the shared /tmp anyway.
            .arg("--pid-file")
            .arg(dir.path().join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.path().join("rotel.log"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out_file.try_clone().unwrap())
            .stderr(out_file)
            .kill_on_drop(true)
            .spawn()
            .expect("rotel did not start");
        let group = common::process::GroupGuard::of(&child).expect("rotel's pid");
        wait_listening(
            "rotel",
            &mut child,
            &[grpc, http],
            &out,
            Duration::from_secs(20),
        )
        .await;
        Rotel {
            child,
            grpc_endpoint: format!("http://127.0.0.1:{grpc}"),
            http_endpoint: format!("http://127.0.0.1:{http}"),
            out,
            _dir: dir,
            _group: group,
        }
    }

    fn printed(&self) -> String {
        log_text(&self.out)
    }
}

/// Telemetry env for an in-process llmtap exporting to `endpoint` quickly.
fn export_env(endpoint: &str, protocol: &str, service: &str) -> Vec<(String, String)> {
    env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_SERVICE_NAME", service),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ])
}

#[tokio::test]
async fn spans_reach_a_real_otlp_collector_over_http_and_grpc_and_read_back() {
    let Some(bin) = tool_from_env("LLMTAP_TEST_ROTEL") else {
        return;
    };
    let started = Instant::now();
    // Where rotel forwards what it receives (a collector's usual job).
    let forwarded = OtlpReceiver::start().await;
    let mut rotel = Rotel::start(&bin, &forwarded.http_endpoint).await;
    let ready_after = started.elapsed();
    let upstream = start_upstream().await;

    // One llmtap per OTLP protocol, each with its own service.name, one streamed chat each
    // inside a trace of the test's own.
    let mut sent: Vec<(&str, String)> = Vec::new();
    for (protocol, endpoint, service) in [
        ("http/protobuf", &rotel.http_endpoint, "llmtap-otlp-http"),
        ("grpc", &rotel.grpc_endpoint, "llmtap-otlp-grpc"),
    ] {
        let proxy = start_proxy(
            &upstream.base,
            ProxyOpts {
                env: export_env(endpoint, protocol, service),
                ..Default::default()
            },
        )
        .await;
        let trace_id = new_trace_id();
        streamed_chat(&proxy, &trace_id, &format!("Hello over {protocol}.")).await;
        // Graceful stop: flushes the span batch to rotel.
        proxy.stop().await;
        sent.push((service, trace_id));
    }

    // Read the spans back from rotel's own output.
    let is_ours = |s: &PrintedSpan, service: &str, trace_id: &str| {
        s.service == service && s.trace_id == trace_id && s.name == "chat gpt-4o-mini"
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let printed = loop {
        if let Ok(Some(status)) = rotel.child.try_wait() {
            panic!("rotel exited ({status}):\n{}", rotel.printed());
        }
        let spans = parse_rotel_debug(&rotel.printed());
        if sent
            .iter()
            .all(|(service, t)| spans.iter().any(|s| is_ours(s, service, t)))
        {
            break spans;
        }
        if Instant::now() >= deadline {
            panic!(
                "rotel did not show both chat spans {sent:?}; parsed {spans:#?}\noutput:\n{}",
                rotel.printed()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (service, trace_id) in &sent {
        let span = printed
            .iter()
            .find(|s| is_ours(s, service, trace_id))
            .unwrap();
        let output_tokens: i64 = span
            .attr("gen_ai.usage.output_tokens", "Int")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{service}: no Int gen_ai.usage.output_tokens: {span:#?}"));
        assert!(output_tokens > 0, "{span:#?}");
        assert_eq!(span.attr("gen_ai.operation.name", "Str"), Some("chat"));
        assert_eq!(span.attr("gen_ai.request.stream", "Bool"), Some("true"));
        assert!(span.attr("gen_ai.usage.input_tokens", "Int").is_some());
        assert!(span
            .attr("gen_ai.response.time_to_first_chunk", "Double")
            .is_some());

        // The copy rotel forwarded decodes to the same span, typed.
        let spans = forwarded
            .wait_for_spans(
                |spans| spans.iter().any(|s| s.trace_id == *trace_id),
                Duration::from_secs(10),
            )
            .await;
        let Some(copy) = spans.iter().find(|s| s.trace_id == *trace_id) else {
            panic!(
                "rotel did not forward {service}'s span; the receiver got {:?}\nrotel:\n{}",
                forwarded.requests(),
                rotel.printed()
            );
        };
        assert_eq!(copy.name, "chat gpt-4o-mini");
        assert_eq!(copy.kind, "client");
        assert_eq!(
            copy.resource_attr("service.name").and_then(|v| v.as_str()),
            Some(*service)
        );
        assert_eq!(
            copy.int_attr("gen_ai.usage.output_tokens"),
            Some(output_tokens)
        );
        println!(
            "{service}: rotel printed and forwarded `chat gpt-4o-mini` in trace {trace_id} \
             with gen_ai.usage.output_tokens={output_tokens}"
        );
    }
    println!(
        "rotel ready after {ready_after:?}; test took {:?}",
        started.elapsed()
    );
}

#[test]
fn rotel_debug_output_parser() {
    let text = "\
\x1b[2m2026\x1b[0m INFO Starting Rotel.
ResourceSpans #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(llmtap)
ScopeSpans #0
InstrumentationScope llmtap 0.1.0
Span #0
    Trace ID       : a3b9
    Parent ID      : 
    ID             : 9b4d
    Name           : chat gpt-4o-mini
    Kind           : SPAN_KIND_CLIENT
Start time: 1
End time: 2
    Status code    : STATUS_CODE_UNSET
    Status message : 
Attributes:
     -> gen_ai.usage.output_tokens: Int(10)
     -> gen_ai.response.finish_reasons: Slice(Str(stop))
Events:
SpanEvent #0
     -> Name: x
     -> event.attr: Str(y)
Span #1
    Name           : execute_tool get_weather
Attributes:
     -> gen_ai.tool.name: Str(get_weather)
";
    let spans = parse_rotel_debug(text);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert_eq!(spans[0].service, "llmtap");
    assert_eq!(spans[0].trace_id, "a3b9");
    assert_eq!(spans[0].name, "chat gpt-4o-mini");
    assert_eq!(
        spans[0].attr("gen_ai.usage.output_tokens", "Int"),
        Some("10")
    );
    assert!(!spans[0].attributes.contains_key("event.attr"));
    assert_eq!(spans[1].name, "execute_tool get_weather");
    assert_eq!(spans[1].service, "llmtap");
    assert_eq!(
        spans[1].attr("gen_ai.tool.name", "Str"),
        Some("get_weather")
    );
}

// ---------------------------------------------------------------------------------------
// 3. The environment the container files set is environment llmtap reads
// ---------------------------------------------------------------------------------------

/// What llmtap reads: `env = "LLMTAP_..."` in src/cli.rs, and the `"OTEL_..."` names in
/// src/telemetry/settings.rs outside its tests (a `{signal}` placeholder of a name built
/// with format! stands for TRACES or METRICS: llmtap exports no logs).
struct ReadByLlmtap {
    llmtap: BTreeSet<String>,
    otel: Vec<regex::Regex>,
}

impl ReadByLlmtap {
    fn load() -> ReadByLlmtap {
        let cli = read("src/cli.rs");
        let llmtap: BTreeSet<String> = regex::Regex::new(r#"env\s*=\s*"(LLMTAP_[A-Z0-9_]+)""#)
            .unwrap()
            .captures_iter(&cli)
            .map(|c| c[1].to_string())
            .collect();
        let settings = read("src/telemetry/settings.rs");
        let code = settings.split("#[cfg(test)]").next().unwrap_or(&settings);
        let placeholder = regex::Regex::new(r"\\\{[^}]*\\\}").unwrap();
        let otel: Vec<regex::Regex> = regex::Regex::new(r#""(OTEL_[A-Za-z0-9_{}]+)""#)
            .unwrap()
            .captures_iter(code)
            .map(|c| {
                let escaped = regex::escape(&c[1]);
                let pattern = placeholder.replace_all(&escaped, "(TRACES|METRICS)");
                regex::Regex::new(&format!("^{pattern}$")).unwrap()
            })
            .collect();
        let read = ReadByLlmtap { llmtap, otel };
        // The extraction itself works: names every deployment uses are found.
        for name in [
            "LLMTAP_LISTEN",
            "LLMTAP_CONFIG",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_SERVICE_NAME",
        ] {
            assert!(read.reason(name, &BTreeSet::new()).is_some(), "{name}");
        }
        for name in [
            "OTEL_NOT_A_THING",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "OPENAI_API_KEY",
        ] {
            assert!(read.reason(name, &BTreeSet::new()).is_none(), "{name}");
        }
        read
    }

    /// Why llmtap reads `name` (or `None`). `key_vars` are the variables an `api_key_env`
    /// or `--upstream-api-key-env` of the same deployment names.
    fn reason(&self, name: &str, key_vars: &BTreeSet<String>) -> Option<&'static str> {
        if self.llmtap.contains(name) {
            Some("src/cli.rs")
        } else if self.otel.iter().any(|re| re.is_match(name)) {
            Some("src/telemetry/settings.rs")
        } else if name == "RUST_LOG" {
            Some("log filter")
        } else if key_vars.contains(name) {
            Some("api_key_env")
        } else {
            None
        }
    }
}

/// The `api_key_env` values of an llmtap YAML config.
fn api_key_envs(config_yaml: &str, what: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for doc in yaml_docs(config_yaml, what) {
        for u in doc["upstreams"].as_array().into_iter().flatten() {
            if let Some(v) = u["api_key_env"].as_str() {
                out.insert(v.to_string());
            }
        }
    }
    out
}

/// `--flag VALUE` / `--flag=VALUE` in an argument list.
fn flag_value(args: &[&str], flag: &str) -> Option<String> {
    args.iter().enumerate().find_map(|(i, a)| {
        if *a == flag {
            args.get(i + 1).map(|v| v.to_string())
        } else {
            a.strip_prefix(&format!("{flag}=")).map(str::to_string)
        }
    })
}

fn str_list(v: &Value) -> Vec<&str> {
    match v {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        Value::String(s) => s.split_whitespace().collect(),
        _ => Vec::new(),
    }
}

/// One container's environment, with where each key came from.
struct ContainerEnv {
    what: String,
    vars: BTreeMap<String, String>,
    key_vars: BTreeSet<String>,
    /// Variables other values refer to as `$(NAME)` (Kubernetes dependent variables).
    referenced: BTreeSet<String>,
}

fn compose_llmtap_envs() -> Vec<ContainerEnv> {
    let compose = yaml_docs(&read("docker-compose.yml"), "docker-compose.yml")
        .pop()
        .expect("docker-compose.yml is empty");
    let services = compose["services"]
        .as_object()
        .expect("docker-compose.yml: services");
    let mut out = Vec::new();
    for (name, s) in services {
        let is_llmtap = s["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("llmtap:") || i == "llmtap")
            || s["build"]["dockerfile"].as_str() == Some("Dockerfile");
        if !is_llmtap {
            continue;
        }
        let mut vars = BTreeMap::new();
        match &s["environment"] {
            Value::Object(m) => {
                for (k, v) in m {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    vars.insert(k.clone(), v);
                }
            }
            Value::Array(a) => {
                for kv in a.iter().filter_map(Value::as_str) {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    vars.insert(k.to_string(), v.to_string());
                }
            }
            Value::Null => {}
            other => panic!("{name}: environment is {other}"),
        }
        let command = str_list(&s["command"]);
        let mut key_vars = BTreeSet::new();
        if let Some(v) = vars.get("LLMTAP_UPSTREAM_API_KEY_ENV") {
            key_vars.insert(v.clone());
        }
        key_vars.extend(flag_value(&command, "--upstream-api-key-env"));
        // The config file the service mounts, found through its volumes.
        let config = vars
            .get("LLMTAP_CONFIG")
            .cloned()
            .or_else(|| flag_value(&command, "--config"));
        if let Some(path) = config {
            let host = str_list(&s["volumes"]).into_iter().find_map(|v| {
                let mut parts = v.split(':');
                let (host, target) = (parts.next()?, parts.next()?);
                (target == path).then(|| host.trim_start_matches("./").to_string())
            });
            let host =
                host.unwrap_or_else(|| panic!("{name}: LLMTAP_CONFIG {path} is not mounted"));
            key_vars.extend(api_key_envs(&read(&host), &host));
        }
        out.push(ContainerEnv {
            what: format!("docker-compose.yml service {name}"),
            vars,
            key_vars,
            referenced: BTreeSet::new(),
        });
    }
    out
}

/// Every object in `v` that is a Pod spec (has `containers`).
fn pod_specs<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if m.get("containers").is_some_and(Value::is_array) {
                out.push(v);
            }
            m.values().for_each(|x| pod_specs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| pod_specs(x, out)),
        _ => {}
    }
}

fn kubernetes_llmtap_envs() -> Vec<ContainerEnv> {
    let dir = repo().join("examples/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let docs: Vec<(String, Value)> = files
        .iter()
        .flat_map(|p| {
            let rel = format!(
                "examples/kubernetes/{}",
                p.file_name().unwrap().to_string_lossy()
            );
            yaml_docs(&std::fs::read_to_string(p).unwrap(), &rel)
                .into_iter()
                .map(move |d| (rel.clone(), d))
        })
        .collect();
    let config_maps: HashMap<&str, &serde_json::Map<String, Value>> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "ConfigMap")
        .filter_map(|(_, d)| Some((d["metadata"]["name"].as_str()?, d["data"].as_object()?)))
        .collect();
    let dependent = regex::Regex::new(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)").unwrap();

    let mut out = Vec::new();
    for (file, doc) in &docs {
        let mut specs = Vec::new();
        pod_specs(doc, &mut specs);
        for spec in specs {
            let containers = spec["containers"]
                .as_array()
                .into_iter()
                .chain(spec["initContainers"].as_array())
                .flatten();
            for c in containers {
                let image = c["image"].as_str().unwrap_or("");
                if !image.starts_with("llmtap") {
                    continue;
                }
                let what = format!("{file} container {}", c["name"].as_str().unwrap_or("?"));
                let mut vars = BTreeMap::new();
                for from in c["envFrom"].as_array().into_iter().flatten() {
                    if let Some(cm) = from["configMapRef"]["name"].as_str() {
                        let data = config_maps
                            .get(cm)
                            .unwrap_or_else(|| panic!("{what}: no ConfigMap {cm}"));
                        for (k, v) in data.iter() {
                            vars.insert(k.clone(), v.as_str().unwrap_or("").to_string());
                        }
                    } else {
                        panic!("{what}: envFrom {from} (keys unknown to this check)");
                    }
                }
                for e in c["env"].as_array().into_iter().flatten() {
                    let k = e["name"].as_str().expect("env name").to_string();
                    vars.insert(k, e["value"].as_str().unwrap_or("").to_string());
                }
                let referenced: BTreeSet<String> = vars
                    .values()
                    .flat_map(|v| dependent.captures_iter(v).map(|c| c[1].to_string()))
                    .collect();
                let args: Vec<&str> = str_list(&c["args"])
                    .into_iter()
                    .chain(str_list(&c["command"]))
                    .collect();
                let mut key_vars = BTreeSet::new();
                if let Some(v) = vars.get("LLMTAP_UPSTREAM_API_KEY_ENV") {
                    key_vars.insert(v.clone());
                }
                key_vars.extend(flag_value(&args, "--upstream-api-key-env"));
                // The config file: a ConfigMap mounted where LLMTAP_CONFIG points.
                let config = vars
                    .get("LLMTAP_CONFIG")
                    .cloned()
                    .or_else(|| flag_value(&args, "--config"));
                if let Some(path) = config {
                    let (mount, file_name) = c["volumeMounts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find_map(|m| {
                            let dir = m["mountPath"].as_str()?.trim_end_matches('/');
                            let rest = path.strip_prefix(&format!("{dir}/"))?;
                            Some((m["name"].as_str()?, rest.to_string()))
                        })
                        .unwrap_or_else(|| panic!("{what}: LLMTAP_CONFIG {path} is not mounted"));
                    let cm = spec["volumes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|v| v["name"] == mount)
                        .and_then(|v| v["configMap"]["name"].as_str())
                        .unwrap_or_else(|| panic!("{what}: volume {mount} is not a ConfigMap"));
                    let text = config_maps
                        .get(cm)
                        .and_then(|d| d.get(&file_name))
                        .and_then(Value::as_str)
                        .unwrap_or_else(|| panic!("{what}: ConfigMap {cm} has no {file_name}"));
                    key_vars.extend(api_key_envs(text, &format!("ConfigMap {cm}/{file_name}")));
                }
                out.push(ContainerEnv {
                    what,
                    vars,
                    key_vars,
                    referenced,
                });
            }
        }
    }
    out
}

/// `ENV` keys of the Dockerfile's final stage.
fn dockerfile_env() -> ContainerEnv {
    let instructions = dockerfile_instructions();
    let last_from = instructions
        .iter()
        .rposition(|(op, _)| op == "FROM")
        .expect("FROM");
    let mut vars = BTreeMap::new();
    for (_, rest) in instructions[last_from..]
        .iter()
        .filter(|(op, _)| op == "ENV")
    {
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=').expect("ENV key=value form");
            vars.insert(k.to_string(), v.to_string());
        }
    }
    ContainerEnv {
        what: "Dockerfile (final stage)".into(),
        vars,
        key_vars: BTreeSet::new(),
        referenced: BTreeSet::new(),
    }
}

#[test]
fn container_files_set_only_environment_llmtap_reads() {
    let read_by = ReadByLlmtap::load();
    let compose = compose_llmtap_envs();
    let kubernetes = kubernetes_llmtap_envs();
    assert!(
        compose
            .iter()
            .any(|c| c.what.ends_with(" llmtap") && !c.vars.is_empty()),
        "no llmtap service with an environment in docker-compose.yml"
    );
    assert!(
        kubernetes.len() >= 2,
        "expected llmtap containers in the sidecar and gateway manifests"
    );

    let mut failures = Vec::new();
    for c in compose
        .iter()
        .chain(&kubernetes)
        .chain(std::iter::once(&dockerfile_env()))
    {
        println!("{}:", c.what);
        for key in c.vars.keys() {
            let reason = read_by.reason(key, &c.key_vars).or_else(|| {
                c.referenced
                    .contains(key)
                    .then_some("used by $(...) of another")
            });
            match reason {
                Some(r) => println!("  {key:<52} {r}"),
                None => {
                    println!("  {key:<52} NOT READ BY LLMTAP");
                    failures.push(format!("{}: {key}", c.what));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "set for llmtap but not read by it:\n{}",
        failures.join("\n")
    );
}
