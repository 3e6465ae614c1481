//! A real Prometheus scraping one in-process llmtap, and the traffic that fills every
//! dashboard panel: shared by the dashboard and the alerting tests.

use super::*;

/// A Prometheus server (the real binary) scraping one llmtap every second, evaluating
/// `rule_files` (if any) every second too.
pub(crate) struct Prometheus {
    child: common::process::Service,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Prometheus {
    pub(crate) async fn start(
        bin: &Path,
        target: SocketAddr,
        rule_files: &[PathBuf],
    ) -> Prometheus {
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
        let mut cmd = std::process::Command::new(bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        let child = common::process::Service::spawn(&mut cmd).expect("prometheus did not start");
        let mut p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let ready = format!("{}/-/ready", p.url);
        p.child
            .wait_ready("prometheus", &ready, Duration::from_secs(60), &p.log)
            .await;
        p
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET on the HTTP API; the JSON body whatever the status (errors are JSON too).
    pub(crate) async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
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
    pub(crate) async fn query(&self, promql: &str) -> Vec<Value> {
        let r = self.api("/api/v1/query", &[("query", promql)]).await;
        assert_eq!(r["status"], "success", "query {promql}: {r}");
        r["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls an instant query (bounded) until `done` holds for its result; returns the last
    /// result either way, for the caller to assert on.
    pub(crate) async fn query_until(
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
    pub(crate) async fn scrapes_after(&self, since: f64) -> usize {
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
    pub(crate) async fn wait_two_scrapes_after(&self, since: f64) {
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

    /// Stops it now (the guard's SIGTERM, then SIGKILL), rather than at the end of scope.
    pub(crate) async fn stop(self) {
        drop(self);
    }
}

/// Sum of `llmtap_requests_total` on llmtap's own `/metrics`.
pub(crate) async fn requests_counted(proxy: &Proxy) -> f64 {
    scrape(&proxy.url)
        .await
        .lines()
        .filter(|l| {
            l.starts_with("llmtap_requests_total{") || l.starts_with("llmtap_requests_total ")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Requests one round of [`dashboard_traffic`] makes: e2e.py 5 per model (3 chats,
/// embeddings, the 429; `models.list` is not counted), tools.py 2, failures.py 2, and the
/// two calls of a coding-agent session.
pub(crate) const REQUESTS_PER_ROUND: f64 = 16.0;

/// Traffic for every panel: plain and streamed chats (TTFT, time per chunk) on two priced
/// models (cost, per-model series), embeddings, a 429 (error share, error types), streamed
/// tool calls with a follow-up carrying the results (tool calls, tool duration), a stream
/// the upstream cuts and one the client abandons, a session (the sessions panel). `None` when
/// the SDK venv is missing.
pub(crate) async fn dashboard_traffic(proxy: &Proxy) -> Option<()> {
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
    Some(())
}

/// Waits (bounded) until llmtap's telemetry worker has recorded `n` requests.
pub(crate) async fn wait_counted(proxy: &Proxy, n: f64) {
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
