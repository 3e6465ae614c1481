//! The Grafana dashboard against a real Prometheus scraping llmtap: every query returns
//! data, the dashboard imports anywhere, docs/grafana.md lists every panel, and the
//! Prometheus config passes promtool.

use super::prometheus::{dashboard_traffic, wait_counted, Prometheus, REQUESTS_PER_ROUND};
use super::*;

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

/// The names of the dashboard's template variables, in order.
pub(crate) fn dashboard_variables(dashboard: &Value) -> Vec<String> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect()
}

/// Grafana's variables replaced the way "All" does (`allValue` `.*`), intervals by fixed
/// windows. Anything still starting with `$` afterwards is a variable this test does not
/// know, and fails it.
pub(crate) fn substitute(expr: &str, variables: &[String]) -> String {
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
pub(crate) fn annotation_queries(dashboard: &Value) -> Vec<String> {
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
    let variables = dashboard_variables(&dashboard);

    let Some(prometheus_bin) = tool("prometheus") else {
        return;
    };
    if common::python().is_none() {
        return;
    }
    let (_up, _rx, proxy) = start_traced("http/protobuf", None, &[]).await;
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
    let metric = regex::Regex::new(r"\b((?:llmtap|gen_ai_client)_[A-Za-z_]+)\b").unwrap();
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
                names.extend(metric.find_iter(&expr).map(|m| m.as_str().to_string()));
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
