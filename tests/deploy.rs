//! The deployment files against the product, with real parts only: every query of the
//! Grafana dashboard runs on a real Prometheus scraping a real llmtap that served traffic
//! from the official SDKs; every example program runs against llmtap; and the collector,
//! compose, Kubernetes and Docker files are parsed and checked for what they must say. The
//! alerting rules pass promtool's unit tests and, on a real Prometheus scraping llmtap, pick
//! the model whose upstream fails; the Alertmanager example routes and inhibits on a real
//! Alertmanager.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::otlp::spans_json;
use common::*;
use llmtap::telemetry::semconv as sc;
use serde::Deserialize;
use serde_json::{json, Value};

const DASHBOARD: &str = "config/grafana/dashboards/llmtap.json";
const ALERT_RULES: &str = "config/prometheus/alerts.yml";
const ALERT_TESTS: &str = "config/prometheus/alerts.test.yml";
const ALERTMANAGER: &str = "config/alertmanager.yml";

/// Every span attribute llmtap writes (src/telemetry/semconv.rs); the collector's redaction
/// may only name these.
const EXPORTED_SPAN_ATTRIBUTES: &[&str] = &[
    sc::GEN_AI_OPERATION_NAME,
    sc::GEN_AI_PROVIDER_NAME,
    sc::GEN_AI_REQUEST_MODEL,
    sc::GEN_AI_REQUEST_MAX_TOKENS,
    sc::GEN_AI_REQUEST_TEMPERATURE,
    sc::GEN_AI_REQUEST_TOP_P,
    sc::GEN_AI_REQUEST_FREQUENCY_PENALTY,
    sc::GEN_AI_REQUEST_PRESENCE_PENALTY,
    sc::GEN_AI_REQUEST_SEED,
    sc::GEN_AI_REQUEST_STOP_SEQUENCES,
    sc::GEN_AI_REQUEST_CHOICE_COUNT,
    sc::GEN_AI_REQUEST_STREAM,
    sc::GEN_AI_RESPONSE_ID,
    sc::GEN_AI_RESPONSE_MODEL,
    sc::GEN_AI_RESPONSE_FINISH_REASONS,
    sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    sc::GEN_AI_USAGE_INPUT_TOKENS,
    sc::GEN_AI_USAGE_OUTPUT_TOKENS,
    sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    sc::GEN_AI_CONVERSATION_ID,
    sc::GEN_AI_INPUT_MESSAGES,
    sc::GEN_AI_OUTPUT_MESSAGES,
    sc::GEN_AI_SYSTEM_INSTRUCTIONS,
    sc::GEN_AI_TOOL_DEFINITIONS,
    sc::GEN_AI_TOOL_NAME,
    sc::GEN_AI_TOOL_CALL_ID,
    sc::GEN_AI_TOOL_TYPE,
    sc::GEN_AI_TOOL_CALL_ARGUMENTS,
    sc::GEN_AI_TOOL_CALL_RESULT,
    sc::OPENAI_API_TYPE,
    sc::OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
    sc::OPENAI_RESPONSE_SERVICE_TIER,
    sc::SERVER_ADDRESS,
    sc::SERVER_PORT,
    sc::ERROR_TYPE,
    sc::HTTP_RESPONSE_STATUS_CODE,
    sc::LLMTAP_UPSTREAM,
    sc::LLMTAP_CHUNK_COUNT,
    sc::LLMTAP_USAGE_INJECTED,
    sc::LLMTAP_USAGE_ESTIMATED,
    sc::LLMTAP_PROMPT_LENGTH,
    sc::LLMTAP_PROMPT_MESSAGES,
    sc::LLMTAP_PROMPT_HASH,
    sc::LLMTAP_PROMPT_TEMPLATE,
    sc::LLMTAP_TOOL_RESULT_RECEIVED,
    sc::LLMTAP_COST_USD,
];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// An external program from PATH. Under `tests/run` (LLMTAP_REQUIRE_TOOLS=1) a missing one
/// is a failure; otherwise the test notes the skip and returns.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("LLMTAP_REQUIRE_TOOLS").is_some() {
            panic!("`{name}` is not on PATH; tests/run installs it");
        }
        eprintln!("skipping: `{name}` is not on PATH (run via tests/run)");
    }
    found
}

/// A directory that tests/run sets up and names in `var`; missing is a skip or a failure
/// as for [`tool`].
fn tool_dir(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_dir() => Some(p),
        _ => {
            if std::env::var_os("LLMTAP_REQUIRE_TOOLS").is_some() {
                panic!("{var} is not set up; run via tests/run");
            }
            eprintln!("skipping: {var} is not set up (run via tests/run)");
            None
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One YAML document as JSON, with `<<` merge keys applied (compose uses them).
fn yaml_to_json(mut v: serde_norway::Value, what: &str) -> Value {
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{what}: merge keys: {e}"));
    serde_json::to_value(&v).unwrap_or_else(|e| panic!("{what}: not JSON-like: {e}"))
}

fn yaml_file(rel: &str) -> Value {
    let v: serde_norway::Value =
        serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    yaml_to_json(v, rel)
}

/// Every non-empty document of a multi-document YAML file.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            let v = serde_norway::Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}"));
            yaml_to_json(v, rel)
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Every string anywhere in `v`.
fn strings(v: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

/// How many times `key` occurs as an object key anywhere in `v`.
fn count_key(v: &Value, key: &str) -> usize {
    match v {
        Value::Array(a) => a.iter().map(|x| count_key(x, key)).sum(),
        Value::Object(m) => {
            usize::from(m.contains_key(key)) + m.values().map(|x| count_key(x, key)).sum::<usize>()
        }
        _ => 0,
    }
}

fn str_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Runs a program to completion (bounded); panics with its output unless it exits 0.
async fn run_ok(what: &str, mut cmd: tokio::process::Command) -> (String, String) {
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let head: Vec<&str> = stdout.lines().take(30).collect();
    println!("--- {what} (first 30 lines) ---\n{}", head.join("\n"));
    (stdout, stderr)
}

/// An example's command, pointed at llmtap the way its docstring says.
fn example_cmd(program: &Path, proxy: &Proxy) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env("OPENAI_BASE_URL", format!("{}/v1", proxy.url))
        .env("OPENAI_API_KEY", "sk-test-not-a-real-key")
        .env_remove("OPENAI_MODEL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    cmd
}

// ---------------------------------------------------------------------------------------
// 1. The dashboard against a real Prometheus scraping llmtap
// ---------------------------------------------------------------------------------------

/// One PromQL query of the dashboard, as written there.
struct DashboardQuery {
    panel: String,
    expr: String,
}

fn panel_queries(panels: &[Value], out: &mut Vec<DashboardQuery>) {
    for p in panels {
        let title = p["title"].as_str().unwrap_or("(untitled)");
        let panel_ds = p["datasource"]["type"].as_str();
        for t in p["targets"].as_array().into_iter().flatten() {
            let ds = t["datasource"]["type"].as_str().or(panel_ds);
            match (ds, t["expr"].as_str()) {
                (Some("prometheus"), Some(expr)) => out.push(DashboardQuery {
                    panel: title.to_string(),
                    expr: expr.to_string(),
                }),
                (Some("prometheus"), None) => {
                    panic!("panel {title:?}: a Prometheus target without expr: {t}")
                }
                (other, Some(_)) => {
                    panic!("panel {title:?}: an expr for data source {other:?}: {t}")
                }
                // Tempo and other non-PromQL targets.
                (_, None) => {}
            }
        }
        // Rows (collapsed ones hold their panels) and any other nesting.
        if let Some(inner) = p["panels"].as_array() {
            panel_queries(inner, out);
        }
    }
}

/// Grafana's variables replaced the way "All" does (`allValue` `.*`), intervals by fixed
/// windows. Anything still starting with `$` afterwards is a variable this test does not
/// know, and fails it.
fn substitute(expr: &str, variables: &[String]) -> String {
    let replace = |s: &str, name: &str, with: &str| -> String {
        let n = regex::escape(name);
        let re = regex::Regex::new(&format!(
            r"\$\{{{n}(?::[^}}]*)?\}}|\[\[{n}(?::[^\]]*)?\]\]|\${n}\b"
        ))
        .unwrap();
        re.replace_all(s, regex::NoExpand(with)).into_owned()
    };
    let mut s = expr.to_string();
    for (builtin, window) in [
        ("__rate_interval", "1m"),
        ("__interval", "1m"),
        ("__range", "1h"),
    ] {
        s = replace(&s, builtin, window);
    }
    for v in variables {
        s = replace(&s, v, ".*");
    }
    assert!(
        !s.contains('$'),
        "unknown variable left in a dashboard query: {s}"
    );
    s
}

/// The PromQL of the dashboard's Prometheus annotations: `target.expr`, or the top-level
/// `expr` of the older format (Grafana moves it into `target`).
fn annotation_queries(dashboard: &Value) -> Vec<String> {
    dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["datasource"]["type"] == "prometheus")
        .map(|a| {
            a["target"]["expr"]
                .as_str()
                .or_else(|| a["expr"].as_str())
                .unwrap_or_else(|| panic!("a Prometheus annotation without expr: {a}"))
                .to_string()
        })
        .collect()
}

/// Names of recorded series (`level:metric:operation`) in a PromQL expression (label
/// values and Grafana's `${var:format}` aside).
fn recorded_names(expr: &str) -> BTreeSet<String> {
    let aside = regex::Regex::new(r#""[^"]*"|\$\{[^}]*\}"#).unwrap();
    let re = regex::Regex::new(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]+").unwrap();
    let expr = aside.replace_all(expr, "");
    re.find_iter(&expr)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// A Prometheus server (the real binary) scraping one llmtap every second, evaluating
/// `rule_files` (if any) every second too.
struct Prometheus {
    child: tokio::process::Child,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Prometheus {
    async fn start(bin: &Path, target: SocketAddr, rule_files: &[PathBuf]) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let config = dir.path().join("prometheus.yml");
        let rules: String = rule_files
            .iter()
            .map(|f| {
                format!(
                    "  - {}\n",
                    serde_json::to_string(&f.to_string_lossy()).unwrap()
                )
            })
            .collect();
        let rules = if rules.is_empty() {
            String::new()
        } else {
            format!("rule_files:\n{rules}")
        };
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 {rules}\
                 scrape_configs:\n  - job_name: llmtap\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let port = free_port();
        let child = tokio::process::Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus did not start");
        let mut p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", p.log_text());
            }
            let ready = client()
                .get(format!("{}/-/ready", p.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return p;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("prometheus not ready in 60 s:\n{}", p.log_text());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET on the HTTP API; the JSON body whatever the status (errors are JSON too).
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.url), params)
            .expect("Prometheus API URL");
        let resp = client()
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("prometheus {path} -> {status}, not JSON ({e}): {text}"))
    }

    /// The result of an instant query; panics unless the query succeeds.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let r = self.api("/api/v1/query", &[("query", promql)]).await;
        assert_eq!(r["status"], "success", "query {promql}: {r}");
        r["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls an instant query (bounded) until `done` holds for its result; returns the last
    /// result either way, for the caller to assert on.
    async fn query_until(
        &self,
        promql: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let result = self.query(promql).await;
            if done(&result) || tokio::time::Instant::now() >= deadline {
                return result;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Successful scrapes of llmtap that started after `since` (unix seconds), from the
    /// raw samples of `up`.
    async fn scrapes_after(&self, since: f64) -> usize {
        let r = self
            .api("/api/v1/query", &[("query", r#"up{job="llmtap"}[5m]"#)])
            .await;
        r["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| series["values"].as_array().into_iter().flatten())
            .filter(|v| v[0].as_f64().is_some_and(|t| t > since) && v[1] == "1")
            .count()
    }

    /// Waits (bounded) until llmtap has been scraped twice after `since`.
    async fn wait_two_scrapes_after(&self, since: f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if self.scrapes_after(since).await >= 2 {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let targets = self.api("/api/v1/targets", &[]).await;
                panic!(
                    "prometheus did not scrape llmtap twice in 30 s; targets: {targets}\nlog:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Sum of `llmtap_requests_total` on llmtap's own `/metrics`.
async fn requests_counted(proxy: &Proxy) -> f64 {
    let text = client()
        .get(format!("{}/metrics", proxy.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("llmtap_requests_total{") || l.starts_with("llmtap_requests_total ")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Requests one round of [`dashboard_traffic`] makes: e2e.py 5 per model (3 chats,
/// embeddings, the 429; `models.list` is not counted), tools.py 2, failures.py 2, and the
/// two calls of a coding-agent session.
const REQUESTS_PER_ROUND: f64 = 16.0;

/// MCP `tools/call` requests one round of [`dashboard_traffic`] makes: one that succeeds,
/// one that fails with a tool error.
const MCP_TOOL_CALLS_PER_ROUND: f64 = 2.0;

/// Traffic for every panel: plain and streamed chats (TTFT, time per chunk) on two priced
/// models (cost, per-model series), embeddings, a 429 (error share, error types), streamed
/// tool calls with a follow-up carrying the results (tool calls, tool duration), a stream
/// the upstream cuts and one the client abandons, a session (the sessions panel). `None` when
/// the SDK venv is missing.
async fn dashboard_traffic(proxy: &Proxy) -> Option<()> {
    run_sdk("e2e.py", &proxy.url, &[]).await?;
    run_sdk("e2e.py", &proxy.url, &[("E2E_MODEL", "gpt-4o")]).await?;
    run_sdk("tools.py", &proxy.url, &[("TOOL_SLEEP", "0.05")]).await?;
    run_sdk("failures.py", &proxy.url, &[]).await?;
    // Two calls of one session (the header a coding agent sends), for the sessions panel.
    for _ in 0..2 {
        let r = client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .header("x-session-id", "dashboard-session")
            .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .ok()?;
        assert_eq!(r.status(), 200);
        r.bytes().await.ok()?;
    }
    // The MCP row: a tool list, a tool that works and one that fails, through `/mcp/tools`
    // (the scripted MCP server of tests/common/mcp.rs).
    for (id, method, params) in [
        (1, "tools/list", json!({})),
        (
            2,
            "tools/call",
            json!({"name": "get_weather", "arguments": {"city": "Paris"}}),
        ),
        (3, "tools/call", json!({"name": "failing", "arguments": {}})),
    ] {
        let r = client()
            .post(format!("{}/mcp/tools", proxy.url))
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .send()
            .await
            .ok()?;
        assert_eq!(r.status(), 200);
        r.bytes().await.ok()?;
    }
    Some(())
}

/// Waits (bounded) until llmtap has counted `n` MCP `tools/call` requests on `/metrics`.
async fn wait_mcp_counted(proxy: &Proxy, n: f64) {
    let counted = || async {
        client()
            .get(format!("{}/metrics", proxy.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("llmtap_mcp_tool_calls_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    for _ in 0..300 {
        if counted().await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "llmtap counted {} MCP tool calls, expected {n}",
        counted().await
    );
}

/// Waits (bounded) until llmtap's telemetry worker has recorded `n` requests.
async fn wait_counted(proxy: &Proxy, n: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen = requests_counted(proxy).await;
        if seen >= n {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("llmtap counted {seen} requests, expected {n}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let mut queries = Vec::new();
    panel_queries(
        dashboard["panels"].as_array().expect("dashboard panels"),
        &mut queries,
    );
    assert!(!queries.is_empty());
    // Annotation queries are extracted too ("Firing alerts"), but checked apart: they are
    // empty whenever no alert fires, which is their normal state, so they must be valid
    // PromQL rather than return data (the alert test below shows one returning data).
    let annotations = annotation_queries(&dashboard);
    assert_eq!(
        queries.len() + annotations.len(),
        count_key(&dashboard, "expr"),
        "an `expr` outside panel targets and annotations (library panels?) is not checked here"
    );
    let variables: Vec<String> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();

    let Some(prometheus_bin) = tool("prometheus") else {
        return;
    };
    if common::python().is_none() {
        return;
    }
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let (mcp_url, _) = common::mcp::scripted_server(Duration::from_millis(5)).await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: otlp_env(&rx, "http/protobuf"),
            tweak: Some(Box::new(move |c| {
                c.mcp_servers = vec![llmtap::config::McpServerConfig {
                    name: "tools".into(),
                    url: mcp_url,
                }];
            })),
            ..Default::default()
        },
    )
    .await;
    // Without config/prometheus/alerts.yml: a Prometheus of someone else's, scraping llmtap
    // and knowing none of our recording rules, must fill every panel.
    let prom = Prometheus::start(&prometheus_bin, proxy.addr, &[]).await;
    let rules = prom.api("/api/v1/rules", &[]).await;
    assert!(
        rules["data"]["groups"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "a Prometheus with rules: {rules}"
    );

    // rate() and increase() need a series to grow between two samples, so the traffic
    // runs twice: the first round creates every series and is scraped, the second makes
    // each of them grow, and is scraped twice more.
    dashboard_traffic(&proxy).await.expect("SDK venv");
    wait_counted(&proxy, REQUESTS_PER_ROUND).await;
    wait_mcp_counted(&proxy, MCP_TOOL_CALLS_PER_ROUND).await;
    prom.wait_two_scrapes_after(unix_now()).await;
    dashboard_traffic(&proxy).await.expect("SDK venv");
    wait_counted(&proxy, 2.0 * REQUESTS_PER_ROUND).await;
    wait_mcp_counted(&proxy, 2.0 * MCP_TOOL_CALLS_PER_ROUND).await;
    prom.wait_two_scrapes_after(unix_now()).await;

    let mut failures = Vec::new();
    println!("dashboard queries (series returned):");
    for q in &queries {
        let promql = substitute(&q.expr, &variables);
        let r = prom.api("/api/v1/query", &[("query", &promql)]).await;
        let result = r["data"]["result"].as_array().cloned().unwrap_or_default();
        let finite = result.iter().any(|s| {
            s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(f64::is_finite)
        });
        println!("{:>3} series  {}", result.len(), q.expr);
        if r["status"] != "success" || result.is_empty() || !finite {
            failures.push(format!(
                "panel {:?}\n  query:    {promql}\n  response: {r}",
                q.panel
            ));
        }
    }

    for expr in &annotations {
        let promql = substitute(expr, &variables);
        let r = prom.api("/api/v1/query", &[("query", &promql)]).await;
        let n = r["data"]["result"].as_array().map_or(0, Vec::len);
        println!("{n:>3} series  [annotation, may be empty] {expr}");
        if r["status"] != "success" {
            failures.push(format!("annotation\n  query:    {promql}\n  response: {r}"));
        }
    }

    // Template variables: `label_values(selector, label)` as Grafana runs it.
    let mut models = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let name = var["name"].as_str().unwrap_or("?");
        assert_eq!(
            var["datasource"]["type"], "prometheus",
            "variable {name}: only Prometheus variables are checked"
        );
        let query = var["query"]
            .as_str()
            .or_else(|| var["query"]["query"].as_str())
            .unwrap_or_else(|| panic!("variable {name}: no query"));
        let inner = query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: not label_values(...): {query}"));
        let (selector, label) = match inner.rsplit_once(',') {
            Some((sel, label)) => (Some(substitute(sel.trim(), &variables)), label.trim()),
            None => (None, inner.trim()),
        };
        let mut params = Vec::new();
        if let Some(sel) = &selector {
            params.push(("match[]", sel.as_str()));
        }
        let r = prom
            .api(&format!("/api/v1/label/{label}/values"), &params)
            .await;
        let values: Vec<String> = str_list(&r["data"])
            .into_iter()
            .map(str::to_owned)
            .collect();
        println!("{:>3} values  {query}  -> {values:?}", values.len());
        if r["status"] != "success" || values.is_empty() {
            failures.push(format!(
                "variable {name}\n  query:    {query}\n  response: {r}"
            ));
        }
        if label == "gen_ai_request_model" {
            models = values;
        }
    }
    trace_to_metrics_links(&prom, &mut failures).await;
    prom.stop().await;
    assert!(
        failures.is_empty(),
        "{} dashboard queries returned no data:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for m in ["gpt-4o-mini", "gpt-4o"] {
        assert!(
            models.iter().any(|v| v == m),
            "model variable lacks {m}: {models:?}"
        );
    }
    proxy.stop().await;
}

/// Percent-decoding (`%7B` to `{`) of a URL written in the dashboard, for reading the JSON
/// that Explore links carry in their query string.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every place the dashboard names a data source, with where it is: `datasource` objects
/// (panels, targets, variables, annotations), `datasourceUid` keys, and the `"datasource"` /
/// `"uid"` fields of the JSON inside link URLs.
fn data_source_references(v: &Value, at: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = format!("{at}.{k}");
                if k == "datasource" || k == "datasourceUid" {
                    out.push((here.clone(), child.clone()));
                }
                if k != "datasource" {
                    data_source_references(child, &here, out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                data_source_references(child, &format!("{at}[{i}]"), out);
            }
        }
        Value::String(s) => {
            let field = regex::Regex::new(r#""(datasource|uid)"\s*:\s*"([^"]*)""#).unwrap();
            for c in field.captures_iter(&percent_decoded(s)) {
                out.push((format!("{at} ({})", &c[1]), Value::String(c[2].to_string())));
            }
        }
        _ => {}
    }
}

/// The dashboard imports into anyone's Grafana: its data sources are two variables of type
/// `datasource` (Prometheus and Tempo) and every reference to a data source, in panels,
/// queries, variables, annotations and link URLs, is one of those variables, never a UID of
/// our compose stack; no panel reads a recording rule's series (config/prometheus/alerts.yml
/// is for alerts, and someone else's Prometheus does not have it). The compose stack's
/// provisioning gives the variables one data source of each type to pick.
#[test]
fn dashboard_is_importable_anywhere() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    let ds_vars: HashMap<String, String> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter(|v| v["type"] == "datasource")
        .map(|v| {
            (
                v["name"].as_str().expect("variable name").to_string(),
                v["query"]
                    .as_str()
                    .expect("data source variable query")
                    .to_string(),
            )
        })
        .collect();
    let mut types: Vec<&str> = ds_vars.values().map(String::as_str).collect();
    types.sort();
    assert_eq!(
        types,
        ["prometheus", "tempo"],
        "data source variables: {ds_vars:?}"
    );
    // A variable must be defined before the variables whose queries use it.
    let first_query_var = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .position(|v| v["type"] == "query");
    let last_ds_var = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .rposition(|v| v["type"] == "datasource");
    assert!(
        last_ds_var < first_query_var,
        "data source variables come first"
    );
    assert!(
        dashboard.get("__inputs").is_none(),
        "__inputs (${{DS_...}}) are filled only by the UI's import, not by file provisioning"
    );

    let uid_of_var = regex::Regex::new(r"^\$\{([A-Za-z0-9_]+)\}$").unwrap();
    let mut refs = Vec::new();
    data_source_references(&dashboard, "dashboard", &mut refs);
    assert!(refs.len() > 20, "{refs:?}");
    let mut bad = Vec::new();
    for (at, r) in &refs {
        // Grafana's own annotation source ("Annotations & Alerts") exists in every Grafana.
        if r["type"] == "grafana" && r["uid"] == "-- Grafana --" {
            continue;
        }
        let (kind, uid) = match r {
            Value::Object(_) => (r["type"].as_str(), r["uid"].as_str()),
            Value::String(s) => (None, Some(s.as_str())),
            _ => (None, None),
        };
        let var = uid
            .and_then(|u| uid_of_var.captures(u))
            .map(|c| c[1].to_string());
        let ok = match (&var, kind) {
            (Some(name), Some(kind)) => ds_vars.get(name).is_some_and(|t| t == kind),
            (Some(name), None) => ds_vars.contains_key(name),
            (None, _) => false,
        };
        if !ok || at.ends_with(".datasourceUid") {
            bad.push(format!("{at}: {r}"));
        }
    }
    assert!(
        bad.is_empty(),
        "data sources named other than by the dashboard's variables:\n{}",
        bad.join("\n")
    );

    let mut queries = Vec::new();
    panel_queries(dashboard["panels"].as_array().unwrap(), &mut queries);
    for q in &queries {
        assert!(
            recorded_names(&q.expr).is_empty(),
            "panel {:?} reads a recorded series: {}",
            q.panel,
            q.expr
        );
    }

    // Compose: one provisioned data source of each type, for the variables to pick.
    let provisioning = yaml_file("config/grafana/provisioning/datasources/datasources.yaml");
    for kind in ["prometheus", "tempo"] {
        let n = provisioning["datasources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["type"] == kind)
            .count();
        assert_eq!(n, 1, "provisioned {kind} data sources");
    }
}

/// docs/grafana.md's table "Which metrics each panel reads" names every panel of the
/// dashboard, under its row, with exactly the llmtap metrics its queries read.
#[test]
fn docs_grafana_lists_every_panel() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    let metric =
        regex::Regex::new(r"\b((?:llmtap|gen_ai_client|mcp_client)_[A-Za-z_]+)\b").unwrap();
    // In a query, a metric is a name with a selector or a range after it; `llmtap_mcp_server`
    // in `by (...)` is a label.
    let selected =
        regex::Regex::new(r"\b((?:llmtap|gen_ai_client|mcp_client)_[A-Za-z_]+)\s*[{\[]").unwrap();
    let quoted = regex::Regex::new(r#""[^"]*""#).unwrap();
    let mut panels: Vec<(String, String, BTreeSet<String>)> = Vec::new();
    let mut row = String::new();
    for p in dashboard["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap_or("").to_string();
        if p["type"] == "row" {
            row = title;
            continue;
        }
        let mut names = BTreeSet::new();
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                let expr = quoted.replace_all(expr, "");
                names.extend(selected.captures_iter(&expr).map(|c| c[1].to_string()));
            }
        }
        panels.push((row.clone(), title, names));
    }
    let doc = read("docs/grafana.md");
    let table = doc
        .split("## Which metrics each panel reads")
        .nth(1)
        .expect("docs/grafana.md: section \"Which metrics each panel reads\"");
    let mut listed: Vec<(String, String, BTreeSet<String>)> = Vec::new();
    for line in table.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() != 3 || cells[0] == "row" || cells[0].starts_with("---") {
            continue;
        }
        let names = metric
            .find_iter(cells[2])
            .map(|m| m.as_str().to_string())
            .collect();
        listed.push((cells[0].to_string(), cells[1].to_string(), names));
    }
    assert_eq!(
        listed, panels,
        "docs/grafana.md's panel table against {DASHBOARD}"
    );
}

/// The Tempo data source's links from a span to its model's metrics
/// (`tracesToMetrics` in the Grafana provisioning) query the same Prometheus. Grafana fills
/// `$__tags` from the span; here from a gpt-4o-mini span, which the traffic gave streams,
/// tool calls and no errors: every link must return data for it (an error share of 0, not
/// "No data"), and every metric it names must exist.
async fn trace_to_metrics_links(prom: &Prometheus, failures: &mut Vec<String>) {
    let rel = "config/grafana/provisioning/datasources/datasources.yaml";
    let provisioning = yaml_file(rel);
    let span_attrs = HashMap::from([
        (sc::GEN_AI_REQUEST_MODEL, "gpt-4o-mini"),
        (sc::GEN_AI_PROVIDER_NAME, "openai"),
    ]);
    let metric = regex::Regex::new(r"([A-Za-z_:][A-Za-z0-9_:]*)\{").unwrap();
    let links: Vec<&Value> = provisioning["datasources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["jsonData"].get("tracesToMetrics"))
        .collect();
    for link in links {
        let tags: Vec<String> = link["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let key = t["key"].as_str().expect("tag key");
                let label = t["value"].as_str().unwrap_or(key);
                let value = span_attrs.get(key).unwrap_or_else(|| {
                    panic!("{rel}: tag {key} is not a span attribute this test fills")
                });
                format!("{label}=\"{value}\"")
            })
            .collect();
        for q in link["queries"].as_array().into_iter().flatten() {
            let written = q["query"].as_str().expect("query");
            // `$$` is the provisioning file's escape for a literal `$`.
            let promql = written
                .replace("$$", "$")
                .replace("$__tags", &tags.join(", "));
            let r = prom.api("/api/v1/query", &[("query", &promql)]).await;
            let n = r["data"]["result"].as_array().map_or(0, Vec::len);
            println!("{n:>3} series  [trace-to-metrics link] {written}");
            if r["status"] != "success" || n == 0 {
                failures.push(format!("{rel} link\n  query:    {promql}\n  response: {r}"));
            }
            for name in metric.captures_iter(&promql).map(|c| c[1].to_string()) {
                let r = prom.api("/api/v1/series", &[("match[]", &name)]).await;
                if r["data"].as_array().is_none_or(Vec::is_empty) {
                    failures.push(format!(
                        "{rel} link names {name}, which has no series: {written}"
                    ));
                }
            }
        }
    }
}

#[test]
fn prometheus_config_passes_promtool() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let out = std::process::Command::new(promtool)
        .args(["check", "config"])
        .arg(repo().join("config/prometheus.yml"))
        .output()
        .expect("promtool did not start");
    assert!(
        out.status.success(),
        "promtool check config failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// 2. The examples run against llmtap
// ---------------------------------------------------------------------------------------

async fn proxy_with_receiver() -> (Upstream, OtlpReceiver, Proxy) {
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: otlp_env(&rx, "http/protobuf"),
            ..Default::default()
        },
    )
    .await;
    (up, rx, proxy)
}

#[tokio::test]
async fn python_examples_run_and_the_queue_example_continues_the_producers_trace() {
    let Some(py) = common::python() else {
        return;
    };
    let (_up, rx, proxy) = proxy_with_receiver().await;
    let example = |name: &str| repo().join("examples/python").join(name);

    let mut cmd = example_cmd(&py, &proxy);
    cmd.arg(example("chat.py"));
    let (out, _) = run_ok("examples/python/chat.py", cmd).await;
    assert!(out.contains("[plain] model="), "{out}");
    assert!(out.contains("[stream]"), "{out}");

    let mut cmd = example_cmd(&py, &proxy);
    cmd.arg(example("tools.py"));
    let (out, _) = run_ok("examples/python/tools.py", cmd).await;
    assert!(out.contains("tool get_weather("), "{out}");
    assert!(out.contains("answer:"), "{out}");

    let mut cmd = example_cmd(&py, &proxy);
    cmd.arg(example("async_queue.py"));
    let (out, _) = run_ok("examples/python/async_queue.py", cmd).await;
    let line = |prefix: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
            .trim()
            .to_string()
    };
    let producer_trace = line("producer trace id:");
    let traceparent = line("traceparent sent to llmtap:");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    let worker_span = parts[2];

    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter().any(|s| s.trace_id == producer_trace)
                    && s.iter()
                        .any(|s| s.str_attr(sc::LLMTAP_PROMPT_TEMPLATE).is_some())
                    && s.iter().any(|s| s.name == "execute_tool get_weather")
            },
            Duration::from_secs(15),
        )
        .await;
    let dump = spans_json(&spans);
    let queued: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == producer_trace)
        .collect();
    assert_eq!(
        queued.len(),
        1,
        "llmtap's span in the producer's trace:\n{dump}"
    );
    assert_eq!(queued[0].name, "chat gpt-4o-mini", "{dump}");
    assert_eq!(
        queued[0].parent_span_id, worker_span,
        "child of the worker's span: {dump}"
    );
    // chat.py names its prompt template; tools.py's tool run becomes an execute_tool span.
    assert!(
        spans
            .iter()
            .any(|s| s.str_attr(sc::LLMTAP_PROMPT_TEMPLATE) == Some("summarize-v1")),
        "{dump}"
    );
    assert!(
        spans.iter().any(|s| s.name == "execute_tool get_weather"
            && s.bool_attr(sc::LLMTAP_TOOL_RESULT_RECEIVED) != Some(false)),
        "{dump}"
    );

    // The load generator, bounded.
    let mut cmd = example_cmd(&py, &proxy);
    cmd.arg(example("loadgen.py"))
        .env("LOADGEN_SECONDS", "2")
        .env("LOADGEN_CONCURRENCY", "2")
        .env("LOADGEN_PAUSE", "0.1");
    let (out, err) = run_ok("examples/python/loadgen.py", cmd).await;
    assert!(!err.contains("Traceback"), "loadgen raised:\n{err}");
    let last = out
        .lines()
        .rev()
        .find(|l| l.contains(" calls: "))
        .unwrap_or_else(|| panic!("no report line:\n{out}"));
    let (_, tallies) = last.split_once(" calls: ").unwrap();
    assert!(!tallies.trim().is_empty(), "no call made: {last}");
    for tally in tallies.split(", ") {
        let (kind, _) = tally.split_once('=').unwrap_or((tally, ""));
        // Only the scripted upstream errors are expected to fail.
        assert!(
            !kind.contains(':') || kind.starts_with("upstream_error:http_"),
            "unexpected failure {tally} in: {last}"
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn node_example_runs() {
    let (Some(node), Some(node_modules)) = (tool("node"), tool_dir("LLMTAP_TEST_NODE_PATH")) else {
        return;
    };
    let (_up, proxy) = plain_proxy().await;
    // ES modules ignore NODE_PATH: `import "openai"` resolves from the script's directory
    // upwards, so the script runs from a directory whose node_modules is the test install.
    let dir = TempDir::new("node");
    std::os::unix::fs::symlink(&node_modules, dir.path().join("node_modules")).unwrap();
    std::fs::copy(
        repo().join("examples/node/chat.mjs"),
        dir.path().join("chat.mjs"),
    )
    .unwrap();
    let mut cmd = example_cmd(&node, &proxy);
    cmd.arg("chat.mjs")
        .current_dir(dir.path())
        .env("NODE_PATH", &node_modules);
    let (out, _) = run_ok("examples/node/chat.mjs", cmd).await;
    assert!(out.contains("[plain] model="), "{out}");
    assert!(out.contains("content chunks"), "{out}");
    proxy.stop().await;
}

#[tokio::test]
async fn curl_example_runs() {
    let (Some(bash), Some(_curl)) = (tool("bash"), tool("curl")) else {
        return;
    };
    let (_up, proxy) = plain_proxy().await;
    let mut cmd = example_cmd(&bash, &proxy);
    cmd.arg(repo().join("examples/curl/chat.sh"));
    let (out, _) = run_ok("examples/curl/chat.sh", cmd).await;
    for needle in [
        "chat.completion",
        "data: [DONE]",
        "\"embedding\"",
        "== models",
    ] {
        assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    }
    proxy.stop().await;
}

// ---------------------------------------------------------------------------------------
// 3. The config files say what they must
// ---------------------------------------------------------------------------------------

/// Processor names under `processors:` whose type (before any `/`) is `kind`.
fn processors_of<'a>(processors: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    processors
        .as_object()
        .expect("processors")
        .iter()
        .filter(|(name, _)| name.split('/').next() == Some(kind))
        .collect()
}

/// The attribute names the collector's transform processors rewrite.
fn redacted_attributes(collector: &Value) -> BTreeSet<String> {
    let re = regex::Regex::new(r#"attributes\["([^"]+)"\]"#).unwrap();
    let transforms = processors_of(&collector["processors"], "transform");
    assert!(!transforms.is_empty(), "no transform processor");
    transforms
        .iter()
        .flat_map(|(_, t)| strings(t))
        .flat_map(|s| re.captures_iter(s).map(|c| c[1].to_string()))
        .collect()
}

#[test]
fn collector_config_says_what_it_must() {
    let c = yaml_file("config/otel-collector.yaml");
    let protocols = &c["receivers"]["otlp"]["protocols"];
    assert!(protocols["grpc"].is_object(), "otlp grpc: {protocols}");
    assert!(protocols["http"].is_object(), "otlp http: {protocols}");

    let processors = &c["processors"];
    assert!(processors["memory_limiter"].is_object());
    let batch = &processors["batch"];
    assert_eq!(batch["timeout"], "1s", "{batch}");
    assert_eq!(batch["send_batch_size"], 1000, "{batch}");

    let filters = processors_of(processors, "filter");
    assert!(
        filters.iter().any(|(_, f)| strings(f)
            .iter()
            .any(|s| s.contains("span.") && s.contains("\"/healthz\""))),
        "no filter drops /healthz spans"
    );

    let redacted = redacted_attributes(&c);
    assert!(!redacted.is_empty(), "transform names no attribute");
    for a in &redacted {
        assert!(
            EXPORTED_SPAN_ATTRIBUTES.contains(&a.as_str()),
            "the collector redacts {a:?}, which llmtap never exports"
        );
    }
    for must in [sc::GEN_AI_INPUT_MESSAGES, sc::GEN_AI_OUTPUT_MESSAGES] {
        assert!(redacted.contains(must), "{must} is not redacted");
    }

    let ts = processors_of(processors, "tail_sampling");
    assert_eq!(ts.len(), 1, "one tail_sampling processor");
    let policies = ts[0].1["policies"].as_array().expect("policies");
    let has = |ty: &str| policies.iter().any(|p| p["type"] == ty);
    assert!(
        policies.iter().any(|p| p["type"] == "status_code"
            && str_list(&p["status_code"]["status_codes"]).contains(&"ERROR")),
        "no error policy: {policies:?}"
    );
    assert!(has("latency"), "no latency policy");
    assert!(has("probabilistic"), "no probabilistic policy");

    let pipelines = c["service"]["pipelines"].as_object().expect("pipelines");
    for (name, p) in pipelines {
        let procs = str_list(&p["processors"]);
        assert_eq!(
            procs.first(),
            Some(&"memory_limiter"),
            "{name} pipeline must start with memory_limiter: {procs:?}"
        );
        for (section, key) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            for used in str_list(&p[key]) {
                assert!(
                    c[section].get(used).is_some(),
                    "{name} pipeline uses {used}, not defined under {section}"
                );
            }
        }
    }
    let traces = str_list(&c["service"]["pipelines"]["traces"]["processors"]);
    for needed in [
        "filter/healthchecks",
        "transform/redact",
        "tail_sampling",
        "batch",
    ] {
        let p = traces.iter().position(|p| *p == needed);
        assert!(p.is_some(), "traces pipeline lacks {needed}: {traces:?}");
    }

    // Prometheus scrapes the collector's exporter; the dashboard's names hold only if the
    // exporter adds no namespace (config/grafana/METRICS.md).
    let prom = &c["exporters"]["prometheus"];
    assert!(prom.is_object(), "no prometheus exporter");
    assert!(
        prom.get("namespace").is_none(),
        "namespace renames every metric"
    );
    let port = prom["endpoint"]
        .as_str()
        .and_then(|e| e.rsplit_once(':'))
        .map(|(_, p)| p.to_string())
        .expect("prometheus exporter endpoint");
    let scrape = yaml_file("config/prometheus.yml");
    let targets: Vec<&str> = scrape["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|j| j["static_configs"].as_array().into_iter().flatten())
        .flat_map(|s| str_list(&s["targets"]))
        .collect();
    assert!(
        targets.contains(&format!("otel-collector:{port}").as_str()),
        "config/prometheus.yml does not scrape the collector's exporter: {targets:?}"
    );
}

/// The attributes the collector redacts are really on llmtap's spans once content capture
/// is on (a chat with a system prompt and tools, and the follow-up with the tool result).
#[tokio::test]
async fn collector_redaction_targets_attributes_llmtap_exports() {
    let redacted = redacted_attributes(&yaml_file("config/otel-collector.yaml"));
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let mut e = otlp_env(&rx, "http/protobuf");
    e.extend(env(&[(
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "true",
    )]));
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: e,
            ..Default::default()
        },
    )
    .await;
    let url = format!("{}/v1/chat/completions", proxy.url);
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let mut messages = vec![
        json!({"role": "system", "content": "You are terse."}),
        json!({"role": "user", "content": "Weather in Paris?"}),
    ];
    let first: Value = client()
        .post(&url)
        .json(&json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let msg = first["choices"][0]["message"].clone();
    let calls = msg["tool_calls"].as_array().cloned().unwrap_or_default();
    assert!(!calls.is_empty(), "{first}");
    messages.push(msg);
    for c in &calls {
        messages
            .push(json!({"role": "tool", "tool_call_id": c["id"], "content": "{\"temp\": 21}"}));
    }
    let resp = client()
        .post(&url)
        .json(&json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let _ = resp.bytes().await;
    // Chat completions keep the system prompt among the input messages; the APIs that carry
    // it apart (Anthropic's `system`) fill gen_ai.system_instructions.
    let resp = client()
        .post(format!("{}/v1/messages", proxy.url))
        .json(
            &json!({"model": "claude-haiku-4-5", "max_tokens": 32, "system": "You are terse.",
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let _ = resp.bytes().await;
    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter().filter(|s| s.name.starts_with("chat ")).count() >= 3
                    && s.iter().any(|s| s.name.starts_with("execute_tool "))
            },
            Duration::from_secs(15),
        )
        .await;
    let seen: HashSet<&str> = spans
        .iter()
        .flat_map(|s| s.attributes.iter().map(|(k, _)| k.as_str()))
        .collect();
    for a in &redacted {
        assert!(
            seen.contains(a.as_str()),
            "the collector redacts {a}, but no span carried it:\n{}",
            spans_json(&spans)
        );
    }
    proxy.stop().await;
}

/// `image: name:tag` (or a digest), never `latest` or untagged.
fn pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    matches!(last.split_once(':'), Some((_, tag)) if !tag.is_empty() && tag != "latest")
}

/// Seconds in a compose duration such as `40s`, `1m30s`.
fn compose_secs(d: &str) -> u64 {
    let re = regex::Regex::new(r"(\d+)(h|m|s)").unwrap();
    re.captures_iter(d)
        .map(|c| {
            let n: u64 = c[1].parse().unwrap();
            n * match &c[2] {
                "h" => 3600,
                "m" => 60,
                _ => 1,
            }
        })
        .sum()
}

#[test]
fn compose_file_pins_images_and_wires_the_stack() {
    let compose = yaml_file("docker-compose.yml");
    let services = compose["services"].as_object().expect("services");
    for s in [
        "llmtap",
        "mock-upstream",
        "otel-collector",
        "tempo",
        "prometheus",
        "grafana",
        "loadgen",
    ] {
        assert!(services.contains_key(s), "service {s} missing");
    }
    for (name, s) in services {
        let image = s["image"]
            .as_str()
            .unwrap_or_else(|| panic!("service {name} has no image"));
        assert!(
            pinned(image),
            "service {name}: image {image:?} is not pinned"
        );
        // Bind-mounted files and folders of this repository exist.
        for v in str_list(&s["volumes"]) {
            if let Some(src) = v.split(':').next().filter(|p| p.starts_with("./")) {
                assert!(
                    repo().join(src).exists(),
                    "service {name} mounts {src}, which does not exist"
                );
            }
        }
    }
    let compose_text = read("docker-compose.yml");
    let image_lines: Vec<&str> = compose_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image:"))
        .map(str::trim)
        .collect();
    assert!(!image_lines.is_empty());
    for i in &image_lines {
        assert!(pinned(i.trim_matches('"')), "image {i:?} is not pinned");
    }

    for (name, s) in services.iter().filter(|(n, _)| n.starts_with("llmtap")) {
        let test = str_list(&s["healthcheck"]["test"]).join(" ");
        assert!(
            test.contains("llmtap healthcheck") && test.contains("/healthz"),
            "{name}: healthcheck {test:?}"
        );
        let shutdown: u64 = s["environment"]["LLMTAP_SHUTDOWN_TIMEOUT"]
            .as_str()
            .map(|v| v.parse().unwrap())
            .unwrap_or(30);
        let grace = compose_secs(s["stop_grace_period"].as_str().unwrap_or("10s"));
        assert!(
            grace > shutdown,
            "{name}: stop_grace_period {grace}s must exceed LLMTAP_SHUTDOWN_TIMEOUT {shutdown}s"
        );
        // Telemetry goes to the collector's OTLP receiver on the port the protocol uses.
        let env = &s["environment"];
        let endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
            .as_str()
            .expect("endpoint");
        let port = if env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc" {
            "4317"
        } else {
            "4318"
        };
        assert_eq!(endpoint, format!("http://otel-collector:{port}"), "{name}");
    }
    let loadgen = &services["loadgen"];
    assert!(
        strings(&loadgen["command"])
            .iter()
            .any(|c| c.contains("loadgen.py")),
        "loadgen runs examples/python/loadgen.py"
    );
}

/// The path a probe checks: `httpGet.path`, or the `--url` of an `llmtap healthcheck`
/// exec probe (its default is /healthz).
fn probe_path(probe: &Value) -> String {
    if let Some(p) = probe["httpGet"]["path"].as_str() {
        return p.to_string();
    }
    let cmd = str_list(&probe["exec"]["command"]);
    assert!(
        cmd.contains(&"healthcheck"),
        "probe is neither httpGet nor `llmtap healthcheck`: {probe}"
    );
    match cmd.iter().position(|a| *a == "--url") {
        Some(i) => {
            let url = cmd.get(i + 1).expect("--url value");
            let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
            rest.find('/')
                .map(|i| &rest[i..])
                .unwrap_or("/")
                .to_string()
        }
        None => "/healthz".to_string(),
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| &labels[k] == v))
}

#[test]
fn kubernetes_manifests_are_complete_and_keep_keys_in_secrets() {
    let mut docs: Vec<(String, Value)> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    for f in &files {
        let rel = f
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .to_string();
        for d in yaml_docs(&rel) {
            docs.push((rel.clone(), d));
        }
    }
    let kinds: HashSet<&str> = docs
        .iter()
        .filter_map(|(_, d)| d["kind"].as_str())
        .collect();
    for k in [
        "Deployment",
        "Service",
        "Ingress",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ConfigMap",
    ] {
        assert!(
            kinds.contains(k),
            "no {k} in examples/kubernetes: {kinds:?}"
        );
    }
    let of_kind = |k: &str| -> Vec<&Value> {
        docs.iter()
            .filter(|(_, d)| d["kind"] == k)
            .map(|(_, d)| d)
            .collect()
    };
    let config_maps: HashMap<&str, &Value> = of_kind("ConfigMap")
        .into_iter()
        .map(|d| (d["metadata"]["name"].as_str().unwrap(), d))
        .collect();

    // No key material in Secrets or ConfigMaps.
    let key = regex::Regex::new(r"sk-[A-Za-z0-9_-]{8,}").unwrap();
    for s in of_kind("Secret") {
        use base64::Engine as _;
        let mut values: Vec<String> = strings(&s["stringData"])
            .into_iter()
            .map(str::to_owned)
            .collect();
        for v in strings(&s["data"]) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(v)
                .unwrap_or_default();
            values.push(String::from_utf8_lossy(&decoded).into_owned());
        }
        for v in values {
            assert!(!key.is_match(&v), "a Secret holds a literal key: {s}");
        }
    }
    for cm in config_maps.values() {
        for v in strings(&cm["data"]) {
            assert!(!key.is_match(v), "a ConfigMap holds a literal key: {v}");
        }
    }

    // The llmtap.yaml in the ConfigMap loads, and names the variables its keys come from.
    let mut api_key_envs: Vec<String> = Vec::new();
    for cm in config_maps.values() {
        let Some(text) = cm["data"]["llmtap.yaml"].as_str() else {
            continue;
        };
        let file: Value = yaml_to_json(serde_norway::from_str(text).unwrap(), "llmtap.yaml");
        for u in file["upstreams"].as_array().into_iter().flatten() {
            if let Some(v) = u["api_key_env"].as_str() {
                api_key_envs.push(v.to_string());
            }
        }
        let envmap: HashMap<String, String> = api_key_envs
            .iter()
            .map(|k| (k.clone(), "sk-test-not-a-real-key".to_string()))
            .collect();
        llmtap::config::load_yaml(text, &envmap)
            .unwrap_or_else(|e| panic!("ConfigMap llmtap.yaml does not load: {e}"));
    }
    assert!(!api_key_envs.is_empty(), "no api_key_env in the ConfigMap");

    let deployments = of_kind("Deployment");
    let mut llmtap_containers = 0;
    for d in &deployments {
        let name = d["metadata"]["name"].as_str().unwrap_or("?");
        let pod = &d["spec"]["template"]["spec"];
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        let containers = pod["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(pod["containers"].as_array().into_iter().flatten());
        for c in containers.filter(|c| c["image"].as_str().is_some_and(|i| i.contains("llmtap"))) {
            llmtap_containers += 1;
            let what = format!("{name}/{}", c["name"].as_str().unwrap_or("?"));
            // Env as the container sees it: envFrom ConfigMaps, then env values.
            let mut envs: HashMap<String, Value> = HashMap::new();
            for from in c["envFrom"].as_array().into_iter().flatten() {
                if let Some(cm) = from["configMapRef"]["name"].as_str() {
                    let cm = config_maps
                        .get(cm)
                        .unwrap_or_else(|| panic!("{what}: ConfigMap {cm} is not shipped"));
                    for (k, v) in cm["data"].as_object().into_iter().flatten() {
                        envs.insert(k.clone(), v.clone());
                    }
                }
            }
            for e in c["env"].as_array().into_iter().flatten() {
                envs.insert(e["name"].as_str().unwrap().to_string(), e.clone());
            }
            let env_value = |k: &str| -> Option<String> {
                let v = envs.get(k)?;
                v.as_str()
                    .or_else(|| v["value"].as_str())
                    .map(str::to_owned)
            };

            for (probe, path) in [
                ("startupProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
                ("livenessProbe", "/healthz"),
            ] {
                let p = &c[probe];
                assert!(p.is_object(), "{what}: no {probe}");
                assert_eq!(probe_path(p), path, "{what}: {probe}");
            }

            let shutdown: u64 = env_value("LLMTAP_SHUTDOWN_TIMEOUT")
                .map(|v| v.parse().unwrap())
                .unwrap_or(30);
            let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
                .as_u64()
                .unwrap_or(0);
            assert!(
                grace > shutdown + pre_stop,
                "{what}: terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop} \
                 + LLMTAP_SHUTDOWN_TIMEOUT {shutdown}"
            );

            for k in &api_key_envs {
                let e = envs
                    .get(k)
                    .unwrap_or_else(|| panic!("{what}: {k} (api_key_env) is not set"));
                assert!(
                    e["valueFrom"]["secretKeyRef"]["name"].is_string() && e.get("value").is_none(),
                    "{what}: {k} must come from a secretKeyRef: {e}"
                );
            }

            // LLMTAP_CONFIG names a file of a mounted ConfigMap.
            if let Some(path) = env_value("LLMTAP_CONFIG") {
                let (dir, file) = path.rsplit_once('/').unwrap();
                let mount = c["volumeMounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|m| m["mountPath"] == dir)
                    .unwrap_or_else(|| panic!("{what}: nothing mounted at {dir}"));
                let volume = pod["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|v| v["name"] == mount["name"])
                    .unwrap_or_else(|| panic!("{what}: no volume {}", mount["name"]));
                let cm = volume["configMap"]["name"]
                    .as_str()
                    .expect("configMap volume");
                assert!(
                    config_maps
                        .get(cm)
                        .is_some_and(|m| m["data"][file].is_string()),
                    "{what}: ConfigMap {cm} has no {file}"
                );
            }
        }
    }
    assert!(llmtap_containers >= 2, "sidecar and gateway");

    // The gateway's objects point at each other (Redis, redis.yaml, is a StatefulSet).
    let pod_labels: Vec<&Value> = deployments
        .iter()
        .chain(of_kind("StatefulSet").iter())
        .map(|d| &d["spec"]["template"]["metadata"]["labels"])
        .collect();
    for kind in ["Service", "PodDisruptionBudget"] {
        for o in of_kind(kind) {
            let sel = if kind == "Service" {
                &o["spec"]["selector"]
            } else {
                &o["spec"]["selector"]["matchLabels"]
            };
            assert!(
                pod_labels.iter().any(|l| labels_match(sel, l)),
                "{kind} selects no Deployment's or StatefulSet's Pods: {sel}"
            );
        }
    }
    let deployment_names: Vec<&str> = deployments
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    for h in of_kind("HorizontalPodAutoscaler") {
        let target = h["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or("");
        assert!(deployment_names.contains(&target), "HPA targets {target}");
    }
    let services = of_kind("Service");
    for i in of_kind("Ingress") {
        for b in i["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
        {
            let svc = &b["backend"]["service"];
            let ok = services.iter().any(|s| {
                s["metadata"]["name"] == svc["name"]
                    && s["spec"]["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| {
                            p["name"] == svc["port"]["name"] || p["port"] == svc["port"]["number"]
                        })
            });
            assert!(ok, "Ingress backend {svc} is no Service port");
        }
    }
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_healthcheck_and_exec_entrypoint() {
    let instructions = dockerfile_instructions();
    let all = |op: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, r)| r.as_str())
            .collect()
    };
    let froms = all("FROM");
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last_from = instructions.iter().rposition(|(o, _)| o == "FROM").unwrap();
    let final_stage = &instructions[last_from..];
    assert!(
        final_stage
            .iter()
            .any(|(o, r)| o == "COPY" && r.starts_with("--from=")),
        "the final stage copies the binary from the build stage"
    );
    let user = final_stage
        .iter()
        .rev()
        .find(|(o, _)| o == "USER")
        .map(|(_, r)| r.as_str())
        .expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap_or(user);
    assert!(uid != "root" && uid != "0", "USER {user} is root");

    let exposed = all("EXPOSE");
    assert!(!exposed.is_empty(), "no EXPOSE");
    let listen_port = all("ENV")
        .iter()
        .find_map(|e| {
            e.split_whitespace()
                .find_map(|kv| kv.strip_prefix("LLMTAP_LISTEN="))
                .map(|a| a.rsplit(':').next().unwrap().to_string())
        })
        .expect("ENV LLMTAP_LISTEN");
    assert!(
        exposed.iter().any(|e| e
            .split_whitespace()
            .any(|p| p.trim_end_matches("/tcp") == listen_port)),
        "EXPOSE {exposed:?} is not the listen port {listen_port}"
    );

    let health = all("HEALTHCHECK");
    assert_eq!(health.len(), 1, "{health:?}");
    let cmd = health[0]
        .split_once("CMD")
        .map(|(_, c)| c.trim())
        .expect("HEALTHCHECK CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("HEALTHCHECK CMD in exec form");
    assert!(cmd[0].ends_with("/llmtap"), "{cmd:?}");
    assert_eq!(
        cmd.get(1).map(String::as_str),
        Some("healthcheck"),
        "{cmd:?}"
    );

    let entry = all("ENTRYPOINT");
    assert_eq!(entry.len(), 1, "{entry:?}");
    let entry: Vec<String> =
        serde_json::from_str(entry[0]).expect("ENTRYPOINT in exec form (a JSON array)");
    assert!(entry[0].ends_with("/llmtap"), "{entry:?}");
}

// ---------------------------------------------------------------------------------------
// 4. Alerting: the rules and their unit tests, Alertmanager, and the rules on real traffic
// ---------------------------------------------------------------------------------------

/// Every rule of config/prometheus/alerts.yml (recording and alerting), in file order.
fn alert_file_rules() -> Vec<Value> {
    let file = yaml_file(ALERT_RULES);
    file["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn alerting_rules() -> Vec<Value> {
    alert_file_rules()
        .into_iter()
        .filter(|r| r["alert"].is_string())
        .collect()
}

fn alerting_rule(name: &str) -> Value {
    alerting_rules()
        .into_iter()
        .find(|r| r["alert"] == name)
        .unwrap_or_else(|| panic!("no alert {name} in {ALERT_RULES}"))
}

/// The Prometheus series names METRICS.md lists (histograms with `_sum` and `_count`).
fn documented_series() -> BTreeSet<String> {
    let re = regex::Regex::new(r"`((?:llmtap|gen_ai_client|mcp_client)_[A-Za-z_]+)`").unwrap();
    let mut names = BTreeSet::new();
    for c in re.captures_iter(&read("config/grafana/METRICS.md")) {
        let name = c[1].to_string();
        if let Some(stem) = name.strip_suffix("_bucket") {
            names.insert(format!("{stem}_sum"));
            names.insert(format!("{stem}_count"));
        }
        names.insert(name);
    }
    names
}

/// Alertmanager: `alertmanager` from upstream, `prometheus-alertmanager` from Debian.
fn alertmanager_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("alertmanager"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| tool("prometheus-alertmanager"))
}

fn repo_cmd(bin: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args).current_dir(repo());
    cmd
}

#[tokio::test]
async fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let (out, err) = run_ok(
        "promtool check rules",
        repo_cmd(&promtool, &["check", "rules", ALERT_RULES]),
    )
    .await;
    let n = alert_file_rules().len();
    assert!(
        format!("{out}{err}").contains(&format!("SUCCESS: {n} rules found")),
        "{out}{err}"
    );
    let (out, err) = run_ok(
        "promtool test rules",
        repo_cmd(&promtool, &["test", "rules", ALERT_TESTS]),
    )
    .await;
    let text = format!("{out}{err}");
    assert!(
        text.contains("SUCCESS") && !text.contains("FAILED"),
        "{text}"
    );
}

/// The alerts the issue asks for, each with a severity, annotations that name what it is
/// about, a runbook section that exists, llmtap's real metric names, and unit tests that
/// both fire it and keep it quiet.
#[test]
fn every_alert_is_documented_uses_real_metrics_and_is_unit_tested_both_ways() {
    let rules = alert_file_rules();
    let records: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| r["record"].as_str().map(str::to_owned))
        .collect();
    let alerts = alerting_rules();

    // Which labels each alert's summary must name (the cost alert is one total).
    let named: &[(&str, &[&str])] = &[
        ("LLMTapHighErrorRate", &["gen_ai_request_model"]),
        ("LLMTapUpstreamRateLimited", &["server_address"]),
        ("LLMTapStreamingLatencyP99High", &["gen_ai_request_model"]),
        ("LLMTapTimeToFirstTokenSlow", &["gen_ai_request_model"]),
        (
            "LLMTapToolCallSpike",
            &["gen_ai_tool_name", "gen_ai_request_model"],
        ),
        ("LLMTapTelemetryDropped", &["instance", "signal"]),
        ("LLMTapTargetDown", &["job", "instance"]),
        ("LLMTapCostBurnAboveBudget", &[]),
        (
            "LLMTapMcpToolErrorRate",
            &["gen_ai_tool_name", "llmtap_mcp_server"],
        ),
        ("LLMTapMcpLatencyHigh", &["llmtap_mcp_server"]),
    ];
    let names: BTreeSet<&str> = alerts.iter().filter_map(|a| a["alert"].as_str()).collect();
    let expected: BTreeSet<&str> = named.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected, "alerts in {ALERT_RULES}");
    assert_eq!(
        alerting_rule("LLMTapHighErrorRate")["labels"]["severity"],
        "page",
        "the seed: an error rate above 1% pages"
    );

    // The runbooks live in the operations page, one heading per alert.
    const RUNBOOKS: &str = "docs/operations.md";
    let anchors = markdown_anchors(&read(RUNBOOKS));
    for (name, labels) in named {
        let a = alerting_rule(name);
        let severity = a["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["page", "ticket"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        let ann = &a["annotations"];
        for key in ["summary", "description", "runbook"] {
            assert!(
                ann[key].as_str().is_some_and(|s| !s.trim().is_empty()),
                "{name}: no {key} annotation"
            );
        }
        for label in *labels {
            let templ = format!("$labels.{label}");
            assert!(
                ann["summary"].as_str().unwrap().contains(&templ),
                "{name}: the summary does not name {label}"
            );
        }
        let runbook = ann["runbook"].as_str().unwrap();
        let anchor = runbook
            .strip_prefix(RUNBOOKS)
            .and_then(|a| a.strip_prefix('#'))
            .unwrap_or_else(|| panic!("{name}: runbook {runbook:?} is not {RUNBOOKS}#<section>"));
        assert!(
            anchors.contains(anchor),
            "{name}: {RUNBOOKS} has no section #{anchor}"
        );
    }

    // Metric names: llmtap's (METRICS.md) or rules recorded in the same file.
    let known = documented_series();
    let quoted = regex::Regex::new(r#""[^"]*""#).unwrap();
    let ident = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").unwrap();
    for r in &rules {
        let expr = quoted.replace_all(r["expr"].as_str().expect("expr"), "");
        for name in ident.find_iter(&expr).map(|m| m.as_str()) {
            if name.contains(':') {
                assert!(records.contains(name), "{expr}: {name} is recorded nowhere");
            } else if ["llmtap_", "gen_ai_client_", "mcp_client_"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                assert!(
                    known.contains(name),
                    "{expr}: {name} is not in config/grafana/METRICS.md"
                );
            }
        }
    }
    // The dashboard reads no recorded series (dashboard_is_importable_anywhere), so it works
    // on a Prometheus without these rules.

    // Unit tests: every alert fires in one case and stays quiet in another.
    let tests = yaml_file(ALERT_TESTS);
    assert_eq!(str_list(&tests["rule_files"]), ["alerts.yml"]);
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .collect();
    for name in &names {
        let of = |fires: bool| {
            cases.iter().any(|c| {
                c["alertname"] == *name
                    && c["exp_alerts"]
                        .as_array()
                        .is_some_and(|a| a.is_empty() != fires)
            })
        };
        assert!(of(true), "{ALERT_TESTS}: no case where {name} fires");
        assert!(of(false), "{ALERT_TESTS}: no case where {name} stays quiet");
    }
}

#[tokio::test]
async fn alertmanager_config_passes_amtool_and_routes_pages_and_tickets() {
    let Some(amtool) = tool("amtool") else {
        return;
    };
    run_ok(
        "amtool check-config",
        repo_cmd(&amtool, &["check-config", ALERTMANAGER]),
    )
    .await;

    let am = yaml_file(ALERTMANAGER);
    let receiver_with = |kind: &str| -> String {
        let found: Vec<&str> = am["receivers"]
            .as_array()
            .expect("receivers")
            .iter()
            .filter(|r| r[kind].is_array())
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(found.len(), 1, "one receiver with {kind}: {found:?}");
        found[0].to_string()
    };
    let pager = receiver_with("pagerduty_configs");
    let tickets = receiver_with("webhook_configs");
    // The routing key comes from a file, never from this file.
    for r in am["receivers"].as_array().unwrap() {
        for pd in r["pagerduty_configs"].as_array().into_iter().flatten() {
            assert!(pd["routing_key_file"].is_string(), "{pd}");
            assert!(
                pd.get("routing_key").is_none() && pd.get("service_key").is_none(),
                "an inline PagerDuty key: {pd}"
            );
        }
    }
    assert!(
        str_list(&am["route"]["group_by"]).contains(&"gen_ai_request_model"),
        "notifications are grouped by model"
    );
    let inhibits = am["inhibit_rules"].as_array().expect("inhibit_rules");
    assert!(
        inhibits.iter().any(|i| {
            str_list(&i["source_matchers"]).contains(&"severity=\"page\"")
                && str_list(&i["target_matchers"]).contains(&"severity=\"ticket\"")
                && str_list(&i["equal"]) == ["gen_ai_request_model"]
        }),
        "no inhibition of a model's tickets by its page: {inhibits:?}"
    );

    // Every alert of the rules reaches the receiver of its severity, with the labels its
    // annotations name (the ones it carries).
    let config_flag = format!("--config.file={ALERTMANAGER}");
    let named = regex::Regex::new(r"\$labels\.([A-Za-z_]+)").unwrap();
    for a in alerting_rules() {
        let name = a["alert"].as_str().unwrap();
        let severity = a["labels"]["severity"].as_str().unwrap();
        let want = if severity == "page" { &pager } else { &tickets };
        let mut labels = vec![format!("alertname={name}"), format!("severity={severity}")];
        let carried: BTreeSet<&str> = strings(&a["annotations"])
            .into_iter()
            .flat_map(|t| named.captures_iter(t).map(|c| c.get(1).unwrap().as_str()))
            .collect();
        labels.extend(carried.iter().map(|l| format!("{l}=x")));
        let mut args = vec![
            "config",
            "routes",
            "test",
            config_flag.as_str(),
            "--verify.receivers",
            want.as_str(),
        ];
        args.extend(labels.iter().map(String::as_str));
        run_ok(&format!("amtool routes {name}"), repo_cmd(&amtool, &args)).await;
    }
}

#[test]
fn compose_prometheus_loads_the_rules_and_sends_alerts_to_alertmanager() {
    let prom_cfg = yaml_file("config/prometheus.yml");
    let compose = yaml_file("docker-compose.yml");
    let services = &compose["services"];
    // `src:dst[:mode]` bind mounts of a service, as (src, dst).
    let mounts = |svc: &str| -> Vec<(String, String)> {
        str_list(&services[svc]["volumes"])
            .iter()
            .filter_map(|v| {
                let mut parts = v.split(':');
                Some((parts.next()?.to_string(), parts.next()?.to_string()))
            })
            .collect()
    };
    let flag = |svc: &str, name: &str| -> String {
        str_list(&services[svc]["command"])
            .iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("{svc}: no --{name}"))
            .to_string()
    };
    // Where the repository file `rel` appears in `svc`'s container, if it does.
    let in_container = |svc: &str, rel: &str| -> Option<String> {
        mounts(svc).into_iter().find_map(|(src, dst)| {
            let src = src.strip_prefix("./")?;
            let rest = rel.strip_prefix(src)?;
            (rest.is_empty() || rest.starts_with('/')).then(|| format!("{dst}{rest}"))
        })
    };

    // rule_files are relative to prometheus.yml, so the same path works for promtool here
    // (config/…) and in the container (next to the mounted prometheus.yml).
    let config_in_container = flag("prometheus", "config.file");
    assert_eq!(
        in_container("prometheus", "config/prometheus.yml").as_deref(),
        Some(config_in_container.as_str())
    );
    let config_dir = config_in_container.rsplit_once('/').unwrap().0;
    let rule_files = str_list(&prom_cfg["rule_files"]);
    assert!(
        rule_files
            .iter()
            .any(|f| repo().join("config").join(f) == repo().join(ALERT_RULES)),
        "config/prometheus.yml does not load {ALERT_RULES}: {rule_files:?}"
    );
    for f in &rule_files {
        assert!(
            !f.starts_with('/'),
            "{f}: absolute, so promtool check config skips it"
        );
        let rel = format!("config/{f}");
        assert!(repo().join(&rel).is_file(), "{rel} does not exist");
        assert_eq!(
            in_container("prometheus", &rel),
            Some(format!("{config_dir}/{f}")),
            "compose does not mount {rel} where prometheus.yml's rule_files looks"
        );
    }

    // Prometheus sends to the alertmanager service, which loads config/alertmanager.yml.
    let targets: Vec<&str> = prom_cfg["alerting"]["alertmanagers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["static_configs"].as_array().into_iter().flatten())
        .flat_map(|s| str_list(&s["targets"]))
        .collect();
    assert_eq!(targets, ["alertmanager:9093"]);
    assert!(
        services["alertmanager"].is_object(),
        "no alertmanager service"
    );
    assert_eq!(
        in_container("alertmanager", ALERTMANAGER),
        Some(flag("alertmanager", "config.file"))
    );
    for p in str_list(&services["alertmanager"]["ports"]) {
        assert!(
            p.starts_with("127.0.0.1:"),
            "published beyond localhost: {p}"
        );
    }
}

/// The alerting rules on a real Prometheus scraping llmtap, while the scripted upstream
/// rate-limits every call for one model: the error-rate alert's expression returns that
/// model and not the healthy one (the `for:` wait is the unit tests' business).
#[tokio::test]
async fn error_rate_alert_picks_the_failing_model_on_a_real_prometheus() {
    let Some(prometheus_bin) = tool("prometheus") else {
        return;
    };
    const FAILING: &str = "gpt-4o";
    const HEALTHY: &str = "gpt-4o-mini";
    let (_up, proxy) = plain_proxy().await;
    let prom = Prometheus::start(&prometheus_bin, proxy.addr, &[repo().join(ALERT_RULES)]).await;

    // One call per model first, so the first scrape sees the counters near 0; then 60
    // more each. rate() over [5m] divides by the whole window: 60 calls in a few seconds
    // read as 0.2 requests/s, above the alert's minimum of 0.1.
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "Hi."}]});
    let mut sent = 0.0;
    for per_model in [1u32, 60] {
        for _ in 0..per_model {
            let (status, body) = chat_text(
                &proxy.url,
                chat(FAILING),
                &[("x-mock-scenario", "error-429")],
            )
            .await;
            assert_eq!(status, 429, "{body}");
            let (status, body) = chat_text(&proxy.url, chat(HEALTHY), &[]).await;
            assert_eq!(status, 200, "{body}");
        }
        sent += 2.0 * f64::from(per_model);
        wait_counted(&proxy, sent).await;
        prom.wait_two_scrapes_after(unix_now()).await;
    }

    let model_of = |s: &Value| {
        s["metric"]["gen_ai_request_model"]
            .as_str()
            .map(str::to_owned)
    };
    let value_of = |s: &Value| {
        s["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let by_model = |r: &[Value]| -> HashMap<String, f64> {
        r.iter()
            .filter_map(|s| Some((model_of(s)?, value_of(s))))
            .collect()
    };

    let expr = alerting_rule("LLMTapHighErrorRate")["expr"]
        .as_str()
        .unwrap()
        .to_string();
    let firing = prom
        .query_until(&expr, Duration::from_secs(30), |r| !r.is_empty())
        .await;
    println!("LLMTapHighErrorRate expression -> {firing:?}");
    let models: BTreeSet<String> = firing.iter().filter_map(model_of).collect();
    assert_eq!(
        models,
        BTreeSet::from([FAILING.to_string()]),
        "{expr}\n-> {firing:?}\nlog:\n{}",
        prom.log_text()
    );
    // The healthy model is out because of its error share, not for lack of traffic.
    let ratio = by_model(&prom.query("model:llmtap_request_error_ratio:rate5m").await);
    let rate = by_model(&prom.query("model:llmtap_requests:rate5m").await);
    println!("error ratio {ratio:?}, requests/s {rate:?}");
    assert_eq!(ratio.get(FAILING), Some(&1.0), "{ratio:?}");
    assert_eq!(ratio.get(HEALTHY), Some(&0.0), "{ratio:?}");
    assert!(rate.get(HEALTHY).is_some_and(|r| *r >= 0.1), "{rate:?}");

    // llmtap's error.type for the mock's 429 is one the rate-limit rule counts: half of
    // the upstream's calls.
    let expr = alerting_rule("LLMTapUpstreamRateLimited")["expr"]
        .as_str()
        .unwrap()
        .to_string();
    let limited = prom
        .query_until(&expr, Duration::from_secs(30), |r| !r.is_empty())
        .await;
    println!("LLMTapUpstreamRateLimited expression -> {limited:?}");
    assert_eq!(limited.len(), 1, "{expr}\n-> {limited:?}");
    let share = value_of(&limited[0]);
    assert!((0.4..=0.6).contains(&share), "rate-limited share {share}");
    assert!(limited[0]["metric"]["server_address"].is_string());

    // The alert itself is pending (for: 5m) for the failing model only, and the dashboard's
    // annotation query finds it once `firing` reads `pending`.
    let alert_models = || async {
        let r = prom.api("/api/v1/alerts", &[]).await;
        r["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == "LLMTapHighErrorRate")
            .map(|a| {
                (
                    a["labels"]["gen_ai_request_model"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    a["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut pending = alert_models().await;
    while pending.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        pending = alert_models().await;
    }
    assert_eq!(pending, [(FAILING.to_string(), "pending".to_string())]);

    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    let variables: Vec<String> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    let annotations = annotation_queries(&dashboard);
    assert_eq!(annotations.len(), 1, "{annotations:?}");
    assert!(
        annotations[0].contains("alertstate=\"firing\""),
        "{}",
        annotations[0]
    );
    let promql = substitute(&annotations[0], &variables)
        .replace("alertstate=\"firing\"", "alertstate=\"pending\"");
    let shown: BTreeSet<(String, String)> = prom
        .query(&promql)
        .await
        .iter()
        .map(|s| {
            (
                s["metric"]["alertname"].as_str().unwrap_or("").to_string(),
                s["metric"]["gen_ai_request_model"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    assert!(
        shown.contains(&("LLMTapHighErrorRate".to_string(), FAILING.to_string())),
        "{promql} -> {shown:?}"
    );
    assert!(!shown.iter().any(|(_, m)| m == HEALTHY), "{shown:?}");

    // Every rule evaluated on these real series without an error.
    let r = prom.api("/api/v1/rules", &[]).await;
    let mut evaluated = 0;
    for g in r["data"]["groups"].as_array().into_iter().flatten() {
        for rule in g["rules"].as_array().into_iter().flatten() {
            evaluated += 1;
            assert_eq!(
                rule["health"], "ok",
                "rule {} ({}): {}",
                rule["name"], rule["health"], rule["lastError"]
            );
        }
    }
    assert_eq!(evaluated, alert_file_rules().len());
    prom.stop().await;
    proxy.stop().await;
}

/// What a local HTTP endpoint received: (path, JSON body) per request.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>;

/// A 127.0.0.1 HTTP server recording every POST (PagerDuty's Events API and the ticket
/// webhook stand-ins); answers 202 like PagerDuty.
async fn recording_server() -> (String, Received, tokio::sync::oneshot::Sender<()>) {
    use axum::extract::State;
    let received: Received = Default::default();
    let app = axum::Router::new()
        .fallback(
            |State(log): State<Received>, uri: axum::http::Uri, body: String| async move {
                let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
                log.lock().unwrap().push((uri.path().to_string(), json));
                axum::http::StatusCode::ACCEPTED
            },
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    (format!("http://{addr}"), received, tx)
}

/// config/alertmanager.yml on a real Alertmanager, its endpoints pointed at a local
/// recorder and its group waits shortened (routes, receivers' kinds, grouping and
/// inhibition as shipped): a page goes to PagerDuty with the key read from the file, a
/// ticket for another model goes to the webhook, grouped by model, and the paged model's
/// ticket is held back.
#[tokio::test]
async fn alertmanager_pages_tickets_and_holds_back_a_paged_models_tickets() {
    let Some(bin) = alertmanager_bin() else {
        return;
    };
    let (base, received, stop_recorder) = recording_server().await;
    let dir = TempDir::new("alertmanager");
    let key_file = dir.path().join("pagerduty-routing-key");
    std::fs::write(&key_file, "test-routing-key-from-file\n").unwrap();

    let mut config = yaml_file(ALERTMANAGER);
    config["route"]["group_wait"] = json!("1s");
    config["route"]["group_interval"] = json!("1s");
    for r in config["receivers"].as_array_mut().unwrap() {
        for pd in r["pagerduty_configs"].as_array_mut().into_iter().flatten() {
            pd["routing_key_file"] = json!(key_file.to_string_lossy());
            pd["url"] = json!(format!("{base}/pagerduty"));
        }
        for wh in r["webhook_configs"].as_array_mut().into_iter().flatten() {
            wh["url"] = json!(format!("{base}/webhook"));
        }
    }
    // JSON is YAML.
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();

    let port = free_port();
    let log = dir.path().join("alertmanager.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut child = tokio::process::Command::new(&bin)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .expect("alertmanager did not start");
    let url = format!("http://127.0.0.1:{port}");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("alertmanager exited ({status}):\n{}", log_text());
        }
        let ready = client()
            .get(format!("{url}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alertmanager not ready in 30 s:\n{}",
            log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // As the rules label them.
    let alert = |name: &str, extra: &[(&str, &str)]| {
        let rule = alerting_rule(name);
        let mut labels = json!({"alertname": name, "severity": rule["labels"]["severity"]});
        for (k, v) in extra {
            labels[*k] = json!(v);
        }
        json!({"labels": labels, "annotations": {"summary": format!("{name} {extra:?}"), "runbook": rule["annotations"]["runbook"]}})
    };
    let alerts = json!([
        alert(
            "LLMTapHighErrorRate",
            &[
                ("gen_ai_request_model", "gpt-4o"),
                ("gen_ai_provider_name", "openai")
            ]
        ),
        alert(
            "LLMTapStreamingLatencyP99High",
            &[
                ("gen_ai_request_model", "gpt-4o"),
                ("gen_ai_provider_name", "openai")
            ]
        ),
        alert(
            "LLMTapTimeToFirstTokenSlow",
            &[
                ("gen_ai_request_model", "gpt-4o-mini"),
                ("gen_ai_provider_name", "openai")
            ]
        ),
        alert(
            "LLMTapTargetDown",
            &[("job", "llmtap"), ("instance", "10.0.0.7:8080")]
        ),
    ]);
    let resp = client()
        .post(format!("{url}/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "{}",
        resp.text().await.unwrap_or_default()
    );

    // Wait (bounded) for the page and the two tickets that must go out.
    let webhook_alerts = |got: &[(String, Value)]| -> Vec<(String, String)> {
        got.iter()
            .filter(|(p, _)| p == "/webhook")
            .flat_map(|(_, b)| b["alerts"].as_array().cloned().unwrap_or_default())
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                    a["labels"]["gen_ai_request_model"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = received.lock().unwrap().clone();
        let tickets = webhook_alerts(&got);
        let done = got.iter().any(|(p, _)| p == "/pagerduty")
            && tickets
                .iter()
                .any(|(a, _)| a == "LLMTapTimeToFirstTokenSlow")
            && tickets.iter().any(|(a, _)| a == "LLMTapTargetDown");
        if done || tokio::time::Instant::now() >= deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (path, body) in &got {
        println!("received on {path}: {body}");
    }
    let pages: Vec<&Value> = got
        .iter()
        .filter(|(p, _)| p == "/pagerduty")
        .map(|(_, b)| b)
        .collect();
    assert!(!pages.is_empty(), "no page sent:\n{}", log_text());
    for p in &pages {
        assert_eq!(p["routing_key"], "test-routing-key-from-file", "{p}");
        assert!(
            p["payload"]["summary"]
                .as_str()
                .is_some_and(|s| s.contains("LLMTapHighErrorRate")),
            "{p}"
        );
    }
    let tickets = webhook_alerts(&got);
    assert!(
        tickets.contains(&("LLMTapTimeToFirstTokenSlow".into(), "gpt-4o-mini".into()))
            && tickets.contains(&("LLMTapTargetDown".into(), String::new())),
        "tickets sent: {tickets:?}\n{}",
        log_text()
    );
    assert!(
        !tickets.iter().any(|(_, m)| m == "gpt-4o"),
        "a ticket for the paged model went out: {tickets:?}"
    );
    assert!(
        !tickets.iter().any(|(a, _)| a == "LLMTapHighErrorRate"),
        "the page also went to the webhook: {tickets:?}"
    );
    // Grouped by model: the gpt-4o-mini notification is that model's group.
    assert!(
        got.iter().any(|(p, b)| p == "/webhook"
            && b["groupLabels"] == json!({"gen_ai_request_model": "gpt-4o-mini"})),
        "{got:?}"
    );
    // And Alertmanager says why the gpt-4o ticket was not sent.
    let r: Value = client()
        .get(format!("{url}/api/v2/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held = r
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["labels"]["alertname"] == "LLMTapStreamingLatencyP99High")
        .expect("the ticket alert");
    assert_eq!(held["status"]["state"], "suppressed", "{held}");
    assert!(
        held["status"]["inhibitedBy"]
            .as_array()
            .is_some_and(|i| !i.is_empty()),
        "{held}"
    );

    let _ = child.kill().await;
    let _ = stop_recorder.send(());
}

// ---------------------------------------------------------------------------------------
// 5. Many replicas: the two-tier collector, the compose profile, nginx, Kubernetes, Redis
// ---------------------------------------------------------------------------------------

const GATEWAY_COLLECTOR: &str = "config/otel-collector-gateway.yaml";
const SAMPLING_COLLECTOR: &str = "config/otel-collector-sampling.yaml";
const NGINX_REPLICAS: &str = "config/nginx-replicas.conf";

/// Components of one kind (`receivers`, `processors`, `exporters`) whose type, the part of
/// the name before any `/`, is `ty`.
fn components_of<'a>(c: &'a Value, section: &str, ty: &str) -> Vec<(&'a String, &'a Value)> {
    c[section]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.split('/').next() == Some(ty))
        .collect()
}

/// Every pipeline starts with memory_limiter, uses only defined components, and every defined
/// component is used by some pipeline (or listed as an extension).
fn check_pipelines(c: &Value, what: &str) {
    let pipelines = c["service"]["pipelines"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no pipelines"));
    assert!(!pipelines.is_empty(), "{what}: no pipelines");
    let mut used: HashSet<(&str, &str)> = HashSet::new();
    for (name, p) in pipelines {
        let procs = str_list(&p["processors"]);
        assert_eq!(
            procs.first(),
            Some(&"memory_limiter"),
            "{what}: {name} pipeline must start with memory_limiter: {procs:?}"
        );
        for section in ["receivers", "processors", "exporters"] {
            let list = str_list(&p[section]);
            if section != "processors" {
                assert!(!list.is_empty(), "{what}: {name} pipeline has no {section}");
            }
            for u in list {
                assert!(
                    c[section].get(u).is_some(),
                    "{what}: {name} pipeline uses {u}, not defined under {section}"
                );
                used.insert((section, u));
            }
        }
    }
    for section in ["receivers", "processors", "exporters"] {
        for name in c[section].as_object().into_iter().flatten().map(|(n, _)| n) {
            assert!(
                used.contains(&(section, name.as_str())),
                "{what}: {section}.{name} is defined but no pipeline uses it"
            );
        }
    }
    for e in str_list(&c["service"]["extensions"]) {
        assert!(
            c["extensions"].get(e).is_some(),
            "{what}: extension {e} is not defined"
        );
    }
    assert!(
        c["extensions"]["health_check"]["endpoint"]
            .as_str()
            .is_some_and(|e| e.ends_with(":13133")),
        "{what}: health_check on :13133 (the image has no shell for a probe)"
    );
}

/// `host:port` of an endpoint written `host:port` or `scheme://host:port[/...]`.
fn host_port(endpoint: &str) -> (String, u16) {
    let rest = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint);
    let rest = rest.split('/').next().unwrap();
    let (host, port) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {endpoint:?}"));
    (host.to_string(), port.parse().expect("port"))
}

fn grpc_port(c: &Value, what: &str) -> u16 {
    let e = c["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no OTLP/gRPC receiver"));
    host_port(e).1
}

/// The gateway tier routes traces by trace id to the sampling tier and samples nothing; the
/// sampling tier samples with exactly the single-tier config's policies and redacts exactly
/// what it redacts; every pipeline of both is complete.
#[test]
fn two_tier_collector_routes_by_trace_id_then_samples_like_the_single_tier() {
    let single = yaml_file("config/otel-collector.yaml");
    let gw = yaml_file(GATEWAY_COLLECTOR);
    let samp = yaml_file(SAMPLING_COLLECTOR);
    check_pipelines(&gw, GATEWAY_COLLECTOR);
    check_pipelines(&samp, SAMPLING_COLLECTOR);

    // ---- gateway tier
    let protocols = &gw["receivers"]["otlp"]["protocols"];
    assert!(protocols["grpc"].is_object() && protocols["http"].is_object());
    assert!(
        processors_of(&gw["processors"], "tail_sampling").is_empty(),
        "the gateway tier holds no traces: no tail_sampling"
    );
    let lb = components_of(&gw, "exporters", "loadbalancing");
    assert_eq!(lb.len(), 1, "one loadbalancing exporter: {lb:?}");
    let (lb_name, lb) = lb[0];
    assert_eq!(lb["routing_key"], "traceID", "{lb}");
    let otlp = &lb["protocol"]["otlp"];
    assert!(otlp.is_object(), "protocol.otlp: {lb}");
    assert!(
        otlp.get("endpoint").is_none(),
        "the resolver gives the endpoints"
    );
    let resolver = lb["resolver"].as_object().expect("resolver");
    assert_eq!(resolver.len(), 1, "one resolver: {resolver:?}");
    let sampling_port = grpc_port(&samp, SAMPLING_COLLECTOR);
    match resolver.iter().next().unwrap() {
        (k, dns) if k == "dns" => {
            assert!(dns["hostname"].as_str().is_some_and(|h| !h.is_empty()));
            let port: u16 = match &dns["port"] {
                Value::String(p) => p.parse().unwrap(),
                Value::Number(n) => n.as_u64().unwrap() as u16,
                _ => 4317,
            };
            assert_eq!(
                port, sampling_port,
                "resolver port vs the sampling receiver"
            );
        }
        (k, st) if k == "static" => {
            let hosts = str_list(&st["hostnames"]);
            assert!(hosts.len() >= 2, "{hosts:?}");
            for h in hosts {
                assert_eq!(host_port(h).1, sampling_port, "{h}");
            }
        }
        (k, k8s) if k == "k8s" => assert!(k8s["service"].is_string()),
        (k, _) => panic!("unknown resolver {k}"),
    }
    let gp = &gw["service"]["pipelines"];
    let traces = gp["traces"].as_object().expect("gateway traces pipeline");
    assert_eq!(str_list(&traces["exporters"]), [lb_name.as_str()]);
    // Health-check spans dropped before the hop, with the single tier's conditions.
    assert!(str_list(&traces["processors"]).contains(&"filter/healthchecks"));
    assert_eq!(
        gw["processors"]["filter/healthchecks"], single["processors"]["filter/healthchecks"],
        "the gateway's health-check filter differs from config/otel-collector.yaml's"
    );
    // Metrics go straight on: no routing, no sampling, no filtering.
    let metrics = gp["metrics"].as_object().expect("gateway metrics pipeline");
    assert!(!str_list(&metrics["exporters"]).contains(&lb_name.as_str()));
    for p in str_list(&metrics["processors"]) {
        assert!(
            ["memory_limiter", "batch"].contains(&p),
            "metrics pass through {p}"
        );
    }
    for (name, p) in gp.as_object().unwrap() {
        if str_list(&p["exporters"]).contains(&lb_name.as_str()) {
            assert!(
                name.starts_with("traces") || name.starts_with("logs"),
                "routing by trace id in a {name} pipeline"
            );
        }
    }

    // ---- sampling tier
    let sp = &samp["service"]["pipelines"];
    assert!(
        sp.as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("metrics")),
        "metrics never reach the sampling tier"
    );
    let ts = processors_of(&samp["processors"], "tail_sampling");
    assert_eq!(ts.len(), 1, "one tail_sampling processor");
    let single_ts = &single["processors"]["tail_sampling"];
    assert_eq!(
        ts[0].1["policies"], single_ts["policies"],
        "the sampling tier's policies differ from config/otel-collector.yaml's"
    );
    assert_eq!(ts[0].1["decision_wait"], single_ts["decision_wait"]);
    let wait = compose_secs(ts[0].1["decision_wait"].as_str().unwrap());
    let per_sec = ts[0].1["expected_new_traces_per_sec"].as_u64().unwrap();
    let held = ts[0].1["num_traces"].as_u64().unwrap();
    assert!(
        held >= per_sec * wait,
        "num_traces {held} cannot hold {per_sec}/s for {wait} s"
    );
    assert_eq!(
        redacted_attributes(&samp),
        redacted_attributes(&single),
        "the sampling tier redacts other attributes than the single tier"
    );
    assert_eq!(
        samp["processors"]["transform/redact"], single["processors"]["transform/redact"],
        "the redaction statements differ from config/otel-collector.yaml's"
    );
    let st = str_list(&sp["traces"]["processors"]);
    for needed in ["tail_sampling", "transform/redact", "batch"] {
        assert!(
            st.contains(&needed),
            "sampling traces pipeline lacks {needed}: {st:?}"
        );
    }
    assert_eq!(st.last(), Some(&"batch"), "{st:?}");
    assert_eq!(
        samp["exporters"]["otlp_grpc/tempo"], single["exporters"]["otlp_grpc/tempo"],
        "the sampling tier exports to Tempo like the single tier"
    );
    assert_eq!(
        str_list(&sp["traces"]["exporters"]),
        ["otlp_grpc/tempo"],
        "{sp}"
    );
}

/// The repository file a compose service mounts at a path ending in `target_suffix`.
fn mounted(s: &Value, target_suffix: &str) -> Option<String> {
    str_list(&s["volumes"]).into_iter().find_map(|v| {
        let mut parts = v.split(':');
        let (host, target) = (parts.next()?, parts.next()?);
        target
            .ends_with(target_suffix)
            .then(|| host.trim_start_matches("./").to_string())
    })
}

/// The `server host:port` lines of the nginx config's upstream blocks.
fn nginx_upstream_servers(conf: &str) -> Vec<(String, u16)> {
    let comment = regex::Regex::new(r"(?m)#.*$").unwrap();
    let conf = comment.replace_all(conf, "");
    let block = regex::Regex::new(r"upstream\s+[A-Za-z0-9_]+\s*\{([^}]*)\}").unwrap();
    let server = regex::Regex::new(r"server\s+([A-Za-z0-9_.-]+):(\d+)[^;]*;").unwrap();
    block
        .captures_iter(&conf)
        .flat_map(|b| {
            server
                .captures_iter(&b[1])
                .map(|s| (s[1].to_string(), s[2].parse().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A directive's arguments in the nginx config (comments removed), one entry per occurrence.
fn nginx_directive(conf: &str, name: &str) -> Vec<String> {
    let comment = regex::Regex::new(r"(?m)#.*$").unwrap();
    let conf = comment.replace_all(conf, "");
    let re = regex::Regex::new(&format!(r"(?m)^\s*{}\s+([^;]*);", regex::escape(name))).unwrap();
    re.captures_iter(&conf)
        .map(|c| c[1].trim().to_string())
        .collect()
}

/// Seconds in an nginx time such as `900s`, `15m` or `900`.
fn nginx_secs(t: &str) -> u64 {
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    n.parse::<u64>().unwrap()
        * match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            other => panic!("nginx time unit {other:?}"),
        }
}

/// docker-compose.yml's profile `replicas`: two or more llmtap replicas sharing a pinned,
/// health-checked Redis through LLMTAP_STATE_URL, behind nginx round robin (unbuffered, long
/// timeouts), exporting to the gateway tier, which finds a sampling tier of two or more.
#[test]
fn compose_replicas_profile_wires_replicas_redis_nginx_and_both_collector_tiers() {
    let compose = yaml_file("docker-compose.yml");
    let services = compose["services"].as_object().expect("services");
    let profile: Vec<(&String, &Value)> = services
        .iter()
        .filter(|(_, s)| str_list(&s["profiles"]).contains(&"replicas"))
        .collect();
    assert!(!profile.is_empty(), "no service in the profile `replicas`");
    // A service of the profile, or one that always runs (no profile).
    let reachable = |name: &str| {
        services.get(name).is_some_and(|s| {
            s["profiles"].is_null() || str_list(&s["profiles"]).contains(&"replicas")
        })
    };
    let instances = |s: &Value| {
        s["deploy"]["replicas"]
            .as_u64()
            .or_else(|| s["scale"].as_u64())
            .unwrap_or(1)
    };
    let image = |s: &Value| s["image"].as_str().unwrap_or("").to_string();
    let by_image = |prefix: &str| -> Vec<(&String, &Value)> {
        profile
            .iter()
            .filter(|(_, s)| image(s).starts_with(prefix))
            .copied()
            .collect()
    };
    let collector_image = |s: &Value| image(s).starts_with("otel/opentelemetry-collector");

    for (name, s) in &profile {
        let img = image(s);
        assert!(pinned(&img), "{name}: image {img:?} is not pinned");
        // Every server is probed (a client such as the load generator serves nothing).
        // Docker can only probe images with something to run; the collector's is FROM
        // scratch, and its config must then have the health_check extension (checked in
        // two_tier_collector_routes_by_trace_id_then_samples_like_the_single_tier).
        let serves = !s["expose"].is_null() || !s["ports"].is_null();
        if serves && !collector_image(s) {
            assert!(
                !str_list(&s["healthcheck"]["test"]).is_empty(),
                "{name}: no healthcheck"
            );
        }
        for p in str_list(&s["ports"]) {
            assert!(
                p.starts_with("127.0.0.1:"),
                "{name}: port {p} not on 127.0.0.1"
            );
        }
        for (dep, _) in s["depends_on"].as_object().into_iter().flatten() {
            assert!(
                reachable(dep),
                "{name} depends on {dep}, which this profile does not run"
            );
        }
    }

    // ---- Redis
    let redis = by_image("redis:");
    assert_eq!(redis.len(), 1, "one Redis in the profile");
    let (redis_name, redis_svc) = redis[0];
    let redis_image = image(redis_svc);
    assert!(
        regex::Regex::new(r"^redis:7\.\d+\.\d+-alpine$")
            .unwrap()
            .is_match(&redis_image),
        "Redis pinned to a 7.x.y alpine tag: {redis_image}"
    );
    let probe = str_list(&redis_svc["healthcheck"]["test"]).join(" ");
    assert!(
        probe.contains("redis-cli") && probe.contains("ping"),
        "Redis healthcheck: {probe}"
    );
    let redis_cmd = str_list(&redis_svc["command"]);
    let arg = |flag: &str| {
        redis_cmd
            .iter()
            .position(|a| *a == flag)
            .and_then(|i| redis_cmd.get(i + 1).copied())
    };
    assert_eq!(
        arg("--maxmemory-policy"),
        Some("noeviction"),
        "a full Redis must refuse (counted by llmtap), not evict pending calls silently"
    );
    let redis_port: u16 = arg("--port").map_or(6379, |p| p.parse().unwrap());

    // ---- the llmtap replicas
    let cli = read("src/cli.rs");
    let settings = read("src/telemetry/settings.rs");
    let replicas = by_image("llmtap:");
    let count: u64 = replicas.iter().map(|(_, s)| instances(s)).sum();
    assert!(count >= 2, "at least two llmtap replicas: {count}");
    let mut instance_ids = HashSet::new();
    let mut gateway_endpoints = HashSet::new();
    let mut listen_ports = HashSet::new();
    for (name, s) in &replicas {
        let env = s["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: environment"));
        let var = |k: &str| env.get(k).and_then(Value::as_str);
        for k in env.keys() {
            let read_by_llmtap = if k.starts_with("LLMTAP_") {
                cli.contains(&format!("env = \"{k}\""))
            } else if k.starts_with("OTEL_") {
                settings.contains(&format!("\"{k}\""))
            } else {
                k == "RUST_LOG"
            };
            assert!(read_by_llmtap, "{name}: llmtap does not read {k}");
        }
        let state =
            var("LLMTAP_STATE_URL").unwrap_or_else(|| panic!("{name}: no LLMTAP_STATE_URL"));
        let url = reqwest::Url::parse(state).expect("LLMTAP_STATE_URL is a URL");
        assert!(["redis", "rediss"].contains(&url.scheme()), "{state}");
        assert_eq!(url.host_str(), Some(redis_name.as_str()), "{name}: {state}");
        assert_eq!(url.port().unwrap_or(6379), redis_port, "{name}: {state}");
        assert_eq!(
            s["depends_on"][redis_name.as_str()]["condition"],
            "service_healthy",
            "{name} starts after Redis is healthy"
        );
        let test = str_list(&s["healthcheck"]["test"]).join(" ");
        assert!(
            test.contains("llmtap healthcheck") && test.contains("/healthz"),
            "{name}: healthcheck {test:?}"
        );
        let shutdown: u64 = var("LLMTAP_SHUTDOWN_TIMEOUT").map_or(30, |v| v.parse().unwrap());
        let grace = compose_secs(s["stop_grace_period"].as_str().unwrap_or("10s"));
        assert!(
            grace > shutdown,
            "{name}: stop_grace_period {grace}s <= {shutdown}s"
        );
        // One sampling decision, in the collector.
        assert_eq!(var("OTEL_TRACES_SAMPLER_ARG"), Some("1.0"), "{name}");
        let id = var("OTEL_RESOURCE_ATTRIBUTES")
            .unwrap_or("")
            .split(',')
            .find_map(|kv| kv.strip_prefix("service.instance.id="))
            .unwrap_or_else(|| panic!("{name}: no service.instance.id"));
        assert!(
            instance_ids.insert(id.to_string()),
            "{name}: service.instance.id {id} taken"
        );
        assert_eq!(var("OTEL_EXPORTER_OTLP_PROTOCOL"), Some("grpc"), "{name}");
        gateway_endpoints.insert(host_port(var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap()));
        let listen = var("LLMTAP_LISTEN").expect("LLMTAP_LISTEN");
        listen_ports.insert(((*name).clone(), host_port(listen).1));
    }
    assert_eq!(
        instance_ids.len() as u64,
        count,
        "each replica its own service.instance.id"
    );
    // Otherwise the replicas are configured alike.
    let alike = |s: &Value| {
        let mut e = s["environment"].as_object().unwrap().clone();
        e.remove("OTEL_RESOURCE_ATTRIBUTES");
        e
    };
    for (name, s) in &replicas[1..] {
        assert_eq!(
            alike(s),
            alike(replicas[0].1),
            "{name}'s environment differs from {}'s",
            replicas[0].0
        );
    }

    // ---- the collector tiers
    let gateway: Vec<&(&String, &Value)> = profile
        .iter()
        .filter(|(_, s)| mounted(s, "config.yaml").as_deref() == Some(GATEWAY_COLLECTOR))
        .collect();
    assert_eq!(gateway.len(), 1, "one service runs {GATEWAY_COLLECTOR}");
    let (gateway_name, _) = gateway[0];
    let gw = yaml_file(GATEWAY_COLLECTOR);
    assert_eq!(
        gateway_endpoints,
        HashSet::from([((*gateway_name).clone(), grpc_port(&gw, GATEWAY_COLLECTOR))]),
        "the replicas export to the gateway tier's OTLP/gRPC receiver"
    );
    let sampling: Vec<&(&String, &Value)> = profile
        .iter()
        .filter(|(_, s)| mounted(s, "config.yaml").as_deref() == Some(SAMPLING_COLLECTOR))
        .collect();
    let sampling_instances: u64 = sampling.iter().map(|(_, s)| instances(s)).sum();
    assert!(
        sampling_instances >= 2,
        "two or more sampling-tier collectors: {sampling_instances}"
    );
    let (_, lb) = components_of(&gw, "exporters", "loadbalancing")[0];
    let sampling_names: HashSet<&str> = sampling.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(h) = lb["resolver"]["dns"]["hostname"].as_str() {
        // Docker's DNS answers a service name with the address of every replica.
        assert!(
            sampling_names.contains(h),
            "DNS resolver {h} vs {sampling_names:?}"
        );
    } else {
        let hosts: HashSet<String> = str_list(&lb["resolver"]["static"]["hostnames"])
            .into_iter()
            .map(|h| host_port(h).0)
            .collect();
        assert_eq!(
            hosts,
            sampling_names.iter().map(|s| s.to_string()).collect(),
            "static resolver vs the sampling services"
        );
    }
    for exporter in gw["exporters"].as_object().unwrap().values() {
        if let Some(e) = exporter["endpoint"].as_str() {
            let host = host_port(e).0;
            assert!(
                reachable(&host),
                "the gateway exports to {host}, not run with this profile"
            );
        }
    }
    let samp = yaml_file(SAMPLING_COLLECTOR);
    for exporter in samp["exporters"].as_object().unwrap().values() {
        if let Some(e) = exporter["endpoint"].as_str() {
            let host = host_port(e).0;
            assert!(
                reachable(&host),
                "the sampling tier exports to {host}, not run here"
            );
        }
    }

    // ---- nginx in front of the replicas
    let lbs: Vec<&(&String, &Value)> = profile
        .iter()
        .filter(|(_, s)| mounted(s, ".conf").as_deref() == Some(NGINX_REPLICAS))
        .collect();
    assert_eq!(lbs.len(), 1, "one service runs {NGINX_REPLICAS}");
    let (lb_name, lb_svc) = lbs[0];
    assert!(image(lb_svc).starts_with("nginx:"), "{lb_name}");
    let conf = read(NGINX_REPLICAS);
    let servers: HashSet<(String, u16)> = nginx_upstream_servers(&conf).into_iter().collect();
    assert_eq!(
        servers, listen_ports,
        "{NGINX_REPLICAS}'s upstream servers vs the replicas' LLMTAP_LISTEN"
    );
    for r in servers.iter().map(|(n, _)| n) {
        assert_eq!(
            lb_svc["depends_on"][r.as_str()]["condition"],
            "service_healthy",
            "nginx resolves {r} at start: it must start after it"
        );
    }
    assert_eq!(
        nginx_directive(&conf, "proxy_buffering"),
        ["off"],
        "streams unbuffered"
    );
    assert_eq!(nginx_directive(&conf, "proxy_http_version"), ["1.1"]);
    let first_byte = llmtap::config::Timeouts::default().first_byte.as_secs();
    for d in ["proxy_read_timeout", "proxy_send_timeout"] {
        let v = nginx_directive(&conf, d);
        assert_eq!(v.len(), 1, "{d}: {v:?}");
        assert!(
            nginx_secs(&v[0]) > first_byte,
            "{d} {} must outlast llmtap's first-byte timeout ({first_byte} s)",
            v[0]
        );
    }
    assert_eq!(nginx_directive(&conf, "client_max_body_size"), ["32m"]);
    let listen: Vec<u16> = nginx_directive(&conf, "listen")
        .iter()
        .map(|l| l.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    for p in str_list(&lb_svc["ports"]) {
        let container: u16 = p.rsplit(':').next().unwrap().parse().unwrap();
        assert!(
            listen.contains(&container),
            "{lb_name} publishes {p}; nginx listens on {listen:?}"
        );
    }
    let probe = str_list(&lb_svc["healthcheck"]["test"]).join(" ");
    let probe_path = probe.split_whitespace().last().unwrap_or("").to_string();
    let health_path = probe_path
        .rsplit_once(":8080")
        .map(|(_, p)| p)
        .unwrap_or("");
    assert!(
        conf.contains(&format!("location = {health_path} ")),
        "{lb_name}: healthcheck {probe:?} probes no location of {NGINX_REPLICAS}"
    );

    // ---- traffic: a load generator through nginx, so tool turns cross replicas.
    let lb_port = listen[0];
    assert!(
        profile
            .iter()
            .any(|(_, s)| s["environment"]["OPENAI_BASE_URL"]
                .as_str()
                .is_some_and(|u| u == format!("http://{lb_name}:{lb_port}/v1"))),
        "no load generator sends through {lb_name}"
    );
}

/// nginx from PATH or /usr/sbin (Debian installs it there); a skip or a failure like [`tool`].
fn nginx_bin() -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.is_file() {
        return Some(sbin);
    }
    tool("nginx")
}

/// config/nginx-replicas.conf on a real nginx (Debian's), its two server names pointed at
/// two llmtap processes on 127.0.0.1: it loads, answers its health location, spreads
/// requests over both replicas (whatever the client's keep-alive), and passes a stream's
/// chunks on as they come rather than when the response ends.
#[tokio::test]
async fn shipped_nginx_config_round_robins_and_streams_through_two_llmtap_replicas() {
    let Some(bin) = nginx_bin() else {
        return;
    };
    let (_up, a) = plain_proxy().await;
    let (_up2, b) = plain_proxy().await;
    let dir = TempDir::new("nginx-replicas");
    let lb_port = free_port();
    let conf = read(NGINX_REPLICAS);
    let servers = nginx_upstream_servers(&conf);
    assert_eq!(servers.len(), 2, "{servers:?}");
    let mut site = conf.clone();
    for ((host, port), proxy) in servers.iter().zip([&a, &b]) {
        let from = format!("server {host}:{port};");
        assert!(site.contains(&from), "{from}");
        site = site.replace(&from, &format!("server {};", proxy.addr));
    }
    let listen = nginx_directive(&conf, "listen");
    assert_eq!(listen.len(), 1, "{listen:?}");
    site = site.replace(
        &format!("listen {};", listen[0]),
        &format!("listen 127.0.0.1:{lb_port};"),
    );
    let site_path = dir.path().join("site.conf");
    std::fs::write(&site_path, site).unwrap();
    let main = dir.path().join("nginx.conf");
    let tmp = dir.path().display();
    std::fs::write(
        &main,
        format!(
            "worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n\
             events {{ worker_connections 128; }}\n\
             http {{\n  client_body_temp_path {tmp}/client;\n  proxy_temp_path {tmp}/proxy;\n\
             fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n\
             include {};\n}}\n",
            site_path.display()
        ),
    )
    .unwrap();
    let prefix = dir.path().to_str().unwrap().to_string();
    let main_s = main.to_str().unwrap().to_string();
    let mut check = tokio::process::Command::new(&bin);
    check.args(["-t", "-c", &main_s, "-p", &prefix]);
    run_ok("nginx -t on config/nginx-replicas.conf", check).await;

    let access = dir.path().join("access.log");
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["-c", &main_s, "-p", &prefix, "-g", "daemon off;"])
        .stdin(Stdio::null())
        // The site logs to /dev/stdout, as in the container.
        .stdout(std::fs::File::create(&access).unwrap())
        .stderr(Stdio::null());
    // Master and worker in one group, stopped together (a master killed alone left its
    // worker running, orphaned and listening).
    let mut nginx = common::process::Service::spawn(&mut cmd).expect("nginx did not start");
    let lb = format!("http://127.0.0.1:{lb_port}");
    let c = client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = nginx.0.try_wait() {
            panic!(
                "nginx exited ({status}):\n{}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
        }
        let ok = c
            .get(format!("{lb}/lb-healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "nginx not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One client, one keep-alive connection: the requests still alternate.
    for i in 0..6 {
        let (status, body) = chat_text(
            &lb,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("Hi {i}")}]}),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let r = c.get(format!("{lb}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "/readyz passes through to a replica");

    // A stream of 6 chunks 250 ms apart: the first arrives long before the last.
    let started = std::time::Instant::now();
    let mut resp = c
        .post(format!("{lb}/v1/chat/completions"))
        .header("x-mock-chunks", "6")
        .header("x-mock-chunk-delay-ms", "250")
        .json(&json!({"model": "gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": "Stream, please."}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut first = None;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        if first.is_none() && chunk.windows(5).any(|w| w == b"data:") {
            first = Some(started.elapsed());
        }
        body.extend_from_slice(&chunk);
    }
    let total = started.elapsed();
    let first = first.expect("no SSE event");
    println!("stream through nginx: first event after {first:?}, done after {total:?}");
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    assert!(
        total >= Duration::from_millis(1200) && first + Duration::from_millis(900) < total,
        "buffered: first event after {first:?}, end after {total:?}"
    );

    // Stopped (TERM, so it flushes its log) before the access log is read.
    drop(nginx);
    let log = std::fs::read_to_string(&access).unwrap_or_default();
    let served = |p: &Proxy| {
        log.lines()
            .filter(|l| l.contains(&format!("upstream={}", p.addr)))
            .count()
    };
    println!("access log:\n{log}");
    assert!(
        served(&a) >= 3 && served(&b) >= 3,
        "round robin: {} and {} requests\n{log}",
        served(&a),
        served(&b)
    );
    a.stop().await;
    b.stop().await;
}

/// Every document of examples/kubernetes/*.yaml, with its file.
fn kubernetes_docs() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .to_string();
        for d in yaml_docs(&rel) {
            docs.push((rel.clone(), d));
        }
    }
    docs
}

/// Bytes in a Kubernetes quantity (`512Mi`, `1G`) or a Redis size (`400mb`, `1gb`).
fn bytes_of(q: &str) -> u64 {
    let q = q.to_ascii_lowercase();
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let n: u64 = q[..split].parse().unwrap();
    n * match &q[split..] {
        "" | "b" => 1,
        // Redis reads kb, mb, gb as powers of 1024 (k, m, g as powers of 1000), Kubernetes
        // Ki, Mi, Gi as powers of 1024 and k, M, G as powers of 1000.
        "kb" | "ki" => 1 << 10,
        "k" => 1000,
        "mb" | "mi" => 1 << 20,
        "m" => 1_000_000,
        "gb" | "gi" => 1 << 30,
        "g" => 1_000_000_000,
        other => panic!("unit {other:?} in {q}"),
    }
}

/// The gateway runs three or more replicas (HPA from three, a PDB that lets one drain at a
/// time, spread over nodes) whose LLMTAP_STATE_URL names the shipped Redis Service, which
/// selects a StatefulSet running a pinned Redis 7 that refuses rather than evicts when full
/// and is reachable by the gateway's Pods.
#[test]
fn kubernetes_gateway_runs_three_replicas_sharing_the_shipped_redis() {
    let docs = kubernetes_docs();
    let of_kind = |k: &str| -> Vec<&Value> {
        docs.iter()
            .filter(|(_, d)| d["kind"] == k)
            .map(|(_, d)| d)
            .collect()
    };
    let config_maps: HashMap<&str, &Value> = of_kind("ConfigMap")
        .into_iter()
        .map(|d| (d["metadata"]["name"].as_str().unwrap(), d))
        .collect();
    let gateway = of_kind("Deployment")
        .into_iter()
        .find(|d| {
            d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
        })
        .expect("the gateway Deployment");
    let name = gateway["metadata"]["name"].as_str().unwrap();
    let pod_labels = &gateway["spec"]["template"]["metadata"]["labels"];
    let replicas = gateway["spec"]["replicas"].as_u64().expect("spec.replicas");
    assert!(replicas >= 3, "gateway replicas: {replicas}");

    let hpa = of_kind("HorizontalPodAutoscaler")
        .into_iter()
        .find(|h| h["spec"]["scaleTargetRef"]["name"] == name)
        .expect("an HPA for the gateway");
    let min = hpa["spec"]["minReplicas"].as_u64().unwrap_or(1);
    assert!(min >= 3, "HPA minReplicas {min}");
    assert!(hpa["spec"]["maxReplicas"].as_u64().unwrap() > min);
    assert!(
        hpa["spec"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["resource"]["name"] == "cpu"),
        "HPA on CPU"
    );
    let pdb = of_kind("PodDisruptionBudget")
        .into_iter()
        .find(|p| labels_match(&p["spec"]["selector"]["matchLabels"], pod_labels))
        .expect("a PDB for the gateway");
    let allowed = match (
        pdb["spec"]["maxUnavailable"].as_u64(),
        pdb["spec"]["minAvailable"].as_u64(),
    ) {
        (Some(m), _) => m,
        (None, Some(m)) => min.saturating_sub(m),
        _ => panic!("PDB without maxUnavailable/minAvailable: {pdb}"),
    };
    assert!(
        (1..min).contains(&allowed),
        "the PDB lets {allowed} of {min} Pods go at once: a drain must proceed and never empty the gateway"
    );
    let pod = &gateway["spec"]["template"]["spec"];
    assert!(
        pod["topologySpreadConstraints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["topologyKey"] == "kubernetes.io/hostname"
                && labels_match(&t["labelSelector"]["matchLabels"], pod_labels)),
        "replicas spread over nodes"
    );

    // LLMTAP_STATE_URL as the llmtap container sees it.
    let c = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["image"].as_str().is_some_and(|i| i.contains("llmtap")))
        .expect("llmtap container");
    assert_eq!(probe_path(&c["readinessProbe"]), "/readyz");
    let mut state: Option<Value> = None;
    for from in c["envFrom"].as_array().into_iter().flatten() {
        if let Some(cm) = from["configMapRef"]["name"].as_str() {
            if let Some(v) = config_maps
                .get(cm)
                .and_then(|m| m["data"].get("LLMTAP_STATE_URL"))
            {
                state = Some(v.clone());
            }
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        if e["name"] == "LLMTAP_STATE_URL" {
            state = Some(e.get("value").cloned().unwrap_or_else(|| e.clone()));
        }
    }
    let state = state.expect("LLMTAP_STATE_URL for the gateway");
    let Some(url) = state.as_str() else {
        // From a Secret: nothing more to check here.
        assert!(
            state["valueFrom"]["secretKeyRef"]["name"].is_string(),
            "{state}"
        );
        return;
    };
    let url = reqwest::Url::parse(url).expect("LLMTAP_STATE_URL is a URL");
    assert!(["redis", "rediss"].contains(&url.scheme()), "{url}");
    assert!(
        url.password().is_none(),
        "a Redis password in a ConfigMap or plain env: use a secretKeyRef ({url})"
    );
    let host = url.host_str().unwrap();
    let svc_name = host.split('.').next().unwrap();
    let port = url.port().unwrap_or(6379);
    let svc = of_kind("Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == svc_name)
        .unwrap_or_else(|| panic!("LLMTAP_STATE_URL names Service {svc_name}, not shipped"));
    let svc_port = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_u64() == Some(u64::from(port)))
        .unwrap_or_else(|| panic!("Service {svc_name} has no port {port}"));

    let sts = of_kind("StatefulSet")
        .into_iter()
        .find(|s| {
            labels_match(
                &svc["spec"]["selector"],
                &s["spec"]["template"]["metadata"]["labels"],
            )
        })
        .unwrap_or_else(|| panic!("Service {svc_name} selects no StatefulSet"));
    let governing = sts["spec"]["serviceName"].as_str().expect("serviceName");
    assert!(
        of_kind("Service")
            .iter()
            .any(|s| s["metadata"]["name"] == governing && s["spec"]["clusterIP"] == "None"),
        "the StatefulSet's serviceName {governing} is no shipped headless Service"
    );
    let redis = &sts["spec"]["template"]["spec"]["containers"][0];
    let image = redis["image"].as_str().unwrap();
    assert!(
        regex::Regex::new(r"^redis:7\.\d+\.\d+(-alpine)?$")
            .unwrap()
            .is_match(image),
        "Redis 7, pinned: {image}"
    );
    let target = &svc_port["targetPort"];
    assert!(
        redis["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| &p["name"] == target || &p["containerPort"] == target),
        "Service targetPort {target} is no port of the Redis container"
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        let cmd = strings(&redis[probe]["exec"]["command"]).join(" ");
        assert!(
            cmd.contains("redis-cli") && cmd.contains("ping"),
            "{probe}: {cmd}"
        );
    }
    let args: Vec<&str> = str_list(&redis["args"])
        .into_iter()
        .chain(str_list(&redis["command"]))
        .collect();
    let arg = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1).copied())
    };
    assert_eq!(arg("--maxmemory-policy"), Some("noeviction"));
    let maxmemory = bytes_of(arg("--maxmemory").expect("--maxmemory"));
    let limit = bytes_of(
        redis["resources"]["limits"]["memory"]
            .as_str()
            .expect("memory limit"),
    );
    assert!(
        maxmemory < limit,
        "Redis maxmemory {maxmemory} must stay under the container limit {limit}"
    );
    // A NetworkPolicy on Redis, if any, lets the gateway in.
    let redis_labels = &sts["spec"]["template"]["metadata"]["labels"];
    for np in of_kind("NetworkPolicy") {
        if !labels_match(&np["spec"]["podSelector"]["matchLabels"], redis_labels) {
            continue;
        }
        let admits = np["spec"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|rule| {
                rule["from"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|f| labels_match(&f["podSelector"]["matchLabels"], pod_labels))
            });
        assert!(
            admits,
            "NetworkPolicy {} keeps the gateway out of Redis",
            np["metadata"]["name"]
        );
    }
}

/// The size of a pending call in Redis that docs/deployment.md ("Scale on paper") states is
/// what llmtap stores for a typical one: an OpenAI-style call id, a tool name and a one-line
/// description, its arguments hash (for MCP executions), content capture off.
#[test]
fn the_deployment_page_states_the_size_of_a_stored_tool_call() {
    let call = llmtap::state::StoredCall {
        call_id: "call_Xk3fT9qLmA2bC7dE1gH5jK8n".into(),
        name: "get_weather".into(),
        kind: "function".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        parent_span_id: "00f067aa0ba902b7".into(),
        trace_state: String::new(),
        keep: true,
        requested_unix_nanos: 1_796_000_086_760_215_803,
        request_model: Some("gpt-4o-mini".into()),
        arguments: None,
        description: Some("Current weather for a city, in Celsius.".into()),
        tenant: None,
        arguments_key: Some(12_437_920_938_117_394_207),
        executed: false,
    };
    let json = serde_json::to_string(&call).unwrap();
    let doc = read("docs/deployment.md");
    let phrase = format!("{} bytes of JSON", json.len());
    assert!(
        doc.contains(&phrase),
        "docs/deployment.md (\"Scale on paper\") should say \"{phrase}\" for:\n{json}"
    );
}
