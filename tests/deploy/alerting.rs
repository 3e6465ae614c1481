//! Alerting: the rules and their unit tests, Alertmanager, and the rules on real traffic.

use super::dashboard::{annotation_queries, dashboard_variables, substitute};
use super::prometheus::{wait_counted, Prometheus};
use super::*;

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
    let re = regex::Regex::new(r"`((?:llmtap|gen_ai_client)_[A-Za-z_]+)`").unwrap();
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
    common::tools::find_tool("alertmanager").or_else(|| tool("prometheus-alertmanager"))
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
            } else if name.starts_with("llmtap_") || name.starts_with("gen_ai_client_") {
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
    let variables = dashboard_variables(&dashboard);
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
async fn recording_server() -> (String, Received, Served) {
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
    let served = serve_router(app).await;
    (served.base.clone(), received, served)
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
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    let mut alertmanager = Service::spawn(&mut cmd).expect("alertmanager did not start");
    let url = format!("http://127.0.0.1:{port}");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    alertmanager
        .wait_ready(
            "alertmanager",
            &format!("{url}/-/ready"),
            Duration::from_secs(30),
            &log,
        )
        .await;

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

    drop(alertmanager);
    drop(stop_recorder);
}
