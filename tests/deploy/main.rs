//! The deployment files against the product, with real parts only: every query of the
//! Grafana dashboard runs on a real Prometheus scraping a real llmtap that served traffic
//! from the official SDKs; every example program runs against llmtap; and the collector,
//! compose, Kubernetes and Docker files are parsed and checked for what they must say. The
//! alerting rules pass promtool's unit tests and, on a real Prometheus scraping llmtap, pick
//! the model whose upstream fails; the Alertmanager example routes and inhibits on a real
//! Alertmanager.
//!
//! One test binary, a module per subject (`cargo test --test deploy NAME` finds a test by
//! its name as before): [`dashboard`], [`examples`], [`configs`], [`kubernetes`],
//! [`alerting`], [`replicas`];
//! [`prometheus`] is the real Prometheus they share, and the helpers below read the files.

#[path = "../common/mod.rs"]
mod common;

mod alerting;
mod configs;
mod dashboard;
mod examples;
mod kubernetes;
mod prometheus;
mod replicas;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::otlp::spans_json;
use common::process::Service;
use common::tools::{tool, tool_dir};
use common::*;
use llmtap::telemetry::semconv as sc;
use serde::Deserialize;
use serde_json::{json, Value};

const DASHBOARD: &str = "config/grafana/dashboards/llmtap.json";
const ALERT_RULES: &str = "config/prometheus/alerts.yml";
const ALERT_TESTS: &str = "config/prometheus/alerts.test.yml";
const ALERTMANAGER: &str = "config/alertmanager.yml";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

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
