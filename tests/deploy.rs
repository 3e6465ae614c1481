//! The deployment files against the product, with real parts only: every query of the
//! Grafana dashboard runs on a real Prometheus scraping a real llmtap that served traffic
//! from the official SDKs; every example program runs against llmtap; and the collector,
//! compose, Kubernetes and Docker files are parsed and checked for what they must say.

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

/// A Prometheus server (the real binary) scraping one llmtap every second.
struct Prometheus {
    child: tokio::process::Child,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Prometheus {
    async fn start(bin: &Path, target: SocketAddr) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
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
/// embeddings, the 429; `models.list` is not counted), tools.py 2, failures.py 2.
const REQUESTS_PER_ROUND: f64 = 14.0;

/// Traffic for every panel: plain and streamed chats (TTFT, time per chunk) on two priced
/// models (cost, per-model series), embeddings, a 429 (error share, error types), streamed
/// tool calls with a follow-up carrying the results (tool calls, tool duration), a stream
/// the upstream cuts and one the client abandons. `None` when the SDK venv is missing.
async fn dashboard_traffic(proxy: &Proxy) -> Option<()> {
    run_sdk("e2e.py", &proxy.url, &[]).await?;
    run_sdk("e2e.py", &proxy.url, &[("E2E_MODEL", "gpt-4o")]).await?;
    run_sdk("tools.py", &proxy.url, &[("TOOL_SLEEP", "0.05")]).await?;
    run_sdk("failures.py", &proxy.url, &[]).await?;
    Some(())
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
    assert_eq!(
        queries.len(),
        count_key(&dashboard, "expr"),
        "an `expr` outside panel targets (annotations? library panels?) is not checked here"
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
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            env: otlp_env(&rx, "http/protobuf"),
            ..Default::default()
        },
    )
    .await;
    let prom = Prometheus::start(&prometheus_bin, proxy.addr).await;

    // rate() and increase() need a series to grow between two samples, so the traffic
    // runs twice: the first round creates every series and is scraped, the second makes
    // each of them grow, and is scraped twice more.
    dashboard_traffic(&proxy).await.expect("SDK venv");
    wait_counted(&proxy, REQUESTS_PER_ROUND).await;
    prom.wait_two_scrapes_after(unix_now()).await;
    dashboard_traffic(&proxy).await.expect("SDK venv");
    wait_counted(&proxy, 2.0 * REQUESTS_PER_ROUND).await;
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
    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter().filter(|s| s.name.starts_with("chat ")).count() >= 2
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

    // The gateway's objects point at each other.
    let pod_labels: Vec<&Value> = deployments
        .iter()
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
                "{kind} selects no Deployment's Pods: {sel}"
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
