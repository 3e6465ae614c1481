//! What a newcomer meets in the first hour: nothing fails silently (collector trouble is
//! logged, every request has its access line, a path missing `/v1` says so), the CLI accepts
//! what the README says and reports errors under the name the user typed, logs carry no colour
//! codes off a terminal, the demo's console spans read well, and the span details found on the
//! way (finish reasons of cut streams, embeddings encoding formats, the keyed prompt hash, the
//! link from a tool result back to the call that asked for it).
//!
//! Log checks run the real binary with stderr written to a file and read that file.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::bin::{self, command as llmtap, Proc, BIN};
use common::*;
use serde_json::{json, Value};

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// JSON log lines (LLMTAP_LOG_FORMAT=json) of the file.
fn json_lines(path: &Path) -> Vec<Value> {
    read_log(path)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
}

// ---------------------------------------------------------------------------------------
// 3. Nothing fails silently
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_failing_collector_is_warned_about_once_a_minute_and_its_recovery_noted() {
    let dir = TempDir::new("collector-warn");
    let log = dir.path().join("stderr.log");
    let up = start_upstream().await;
    let rx = common::otlp::OtlpReceiver::start().await;
    rx.set_failing(true);
    let upstream = format!("{}/v1", up.base);
    let (proc, base) = bin::start(
        &["--upstream", &upstream],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.http_endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
        &log,
    )
    .await;
    let c = client();
    // Several batches, each failing: one WARN, not one per batch.
    for _ in 0..6 {
        let r = c
            .post(format!("{base}/v1/chat/completions"))
            .json(&chat_body("gpt-4o-mini"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a failing collector never fails a request");
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    eventually("the export failures", Duration::from_secs(10), || {
        rx.requests().len() >= 3 && read_log(&log).contains("OTLP export failed")
    })
    .await;
    // Later failures within the minute must not add lines; give them time to try.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let warns: Vec<String> = read_log(&log)
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("OTLP export failed"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warns.len(), 1, "one WARN per minute: {warns:#?}");
    assert!(
        warns[0].contains(&rx.http_endpoint) && warns[0].contains("503"),
        "the WARN names the endpoint and the error: {}",
        warns[0]
    );

    // The collector recovers: one INFO line says so.
    rx.set_failing(false);
    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    rx.wait_for_spans(|s| !s.is_empty(), Duration::from_secs(10))
        .await;
    eventually("the recovery line", Duration::from_secs(5), || {
        read_log(&log).contains("OTLP export succeeds again")
    })
    .await;
    let text = read_log(&log);
    let info = text
        .lines()
        .find(|l| l.contains("OTLP export succeeds again"))
        .unwrap();
    assert!(
        info.contains("INFO") && info.contains(&rx.http_endpoint),
        "{info}"
    );
    drop(proc);
}

#[tokio::test]
async fn every_request_has_an_access_line_with_its_real_size_and_a_v1_hint_when_it_lacks_v1() {
    let dir = TempDir::new("access-lines");
    let log = dir.path().join("stderr.log");
    // Nothing listens on the upstream port: llmtap answers 502 itself.
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    let (proc, base) = bin::start(
        &["--upstream", &dead, "--log-format", "json"],
        NO_TELEMETRY,
        &log,
    )
    .await;
    let c = client();
    let r = c
        .post(format!("{base}/chat/completions"))
        .json(&chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body_404 = r.bytes().await.unwrap();
    let err: Value = serde_json::from_slice(&body_404).unwrap();
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("did you mean /v1/chat/completions? (the base URL usually ends in /v1)"),
        "{msg}"
    );
    assert_eq!(err["error"]["code"], "not_found");

    // A path that is not an API path anywhere gets no hint.
    let r = c.get(format!("{base}/favicon.ico")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body_plain = r.bytes().await.unwrap();
    assert!(!String::from_utf8_lossy(&body_plain).contains("did you mean"));

    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body_502 = r.bytes().await.unwrap();

    let access = |path: &str| -> Value {
        json_lines(&log)
            .into_iter()
            .find(|v| v["target"] == "llmtap::access" && v["fields"]["path"] == path)
            .unwrap_or_else(|| panic!("no access line for {path}:\n{}", read_log(&log)))
    };
    eventually("three access lines", Duration::from_secs(5), || {
        json_lines(&log)
            .iter()
            .filter(|v| v["target"] == "llmtap::access")
            .count()
            >= 3
    })
    .await;
    let a = access("/chat/completions");
    let f = &a["fields"];
    assert_eq!(f["status"], 404);
    assert_eq!(f["bytes_out"], body_404.len() as u64, "{a}");
    assert_eq!(f["error"], "not_found");
    assert!(
        f["hint"]
            .as_str()
            .is_some_and(|h| h.contains("did you mean /v1/chat/completions?")),
        "{a}"
    );
    let a = access("/favicon.ico");
    assert_eq!(a["fields"]["bytes_out"], body_plain.len() as u64);
    assert!(a["fields"].get("hint").is_none(), "{a}");
    let a = access("/v1/chat/completions");
    let f = &a["fields"];
    assert_eq!(f["status"], 502);
    assert_eq!(f["bytes_out"], body_502.len() as u64, "{a}");
    assert_eq!(f["error"], "upstream_unreachable");
    assert_eq!(f["model"], "gpt-4o-mini");
    drop(proc);
}

#[tokio::test]
async fn demo_with_an_upstream_uses_it() {
    let dir = TempDir::new("demo-upstream");
    let log = dir.path().join("stderr.log");
    let up = start_upstream().await;
    let upstream = format!("{}/v1", up.base);
    let (_proc, mut lines) = bin::spawn_reading_stdout(
        &["demo", "--listen", "127.0.0.1:0", "--upstream", &upstream],
        &[],
        &log,
    );
    let mut banner = String::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(10), lines.recv()).await {
        if line.starts_with("llmtap demo: proxy on ") {
            banner = line;
            break;
        }
    }
    assert!(
        banner.contains(&format!("in front of the upstream at {upstream}")),
        "banner: {banner:?}\nstderr: {}",
        read_log(&log)
    );
    let url = banner
        .trim_start_matches("llmtap demo: proxy on ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let r = client()
        .post(format!("{url}/chat/completions"))
        .json(&chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    // Our scripted upstream answered (its ids start with chatcmpl-mock).
    assert!(
        v["id"].as_str().unwrap().starts_with("chatcmpl-mock"),
        "{v}"
    );
    let mut span = None;
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(10), lines.recv()).await {
        if line.starts_with('{') && line.contains("\"chat gpt-4o-mini\"") {
            span = Some(line);
            break;
        }
    }
    let span: Value = serde_json::from_str(&span.expect("the demo prints the span")).unwrap();
    assert_eq!(span["status"], "OK");
    assert_eq!(
        span["attributes"]["server.port"],
        up.base.rsplit(':').next().unwrap().parse::<i64>().unwrap()
    );
}

// ---------------------------------------------------------------------------------------
// 4. Output people read
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn provider_spellings_and_the_start_up_line_use_the_readmes_words() {
    let dir = TempDir::new("startup-line");
    let up = start_upstream().await;
    let upstream = format!("{}/v1", up.base);
    for (i, (args, envs)) in [
        (vec!["--provider", "openai_compatible"], vec![]),
        (vec![], vec![("LLMTAP_PROVIDER", "openai_compatible")]),
        (vec!["--provider", "openai-compatible"], vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        let log = dir.path().join(format!("stderr-{i}.log"));
        let mut a = vec!["--upstream", upstream.as_str()];
        a.extend(args);
        let mut e = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ];
        e.extend(envs);
        let (proc, _) = bin::start(&a, &e, &log).await;
        drop(proc);
        let text = read_log(&log);
        assert!(
            text.contains(&format!("default={upstream} (provider openai_compatible)")),
            "{text}"
        );
        assert!(
            text.contains("traces -> otlp http/protobuf http://127.0.0.1:9/v1/traces"),
            "{text}"
        );
        assert!(text.contains("metrics -> /metrics for scraping"), "{text}");
        for rust_name in ["HttpProtobuf", "OpenaiCompatible", "none every", "Some("] {
            assert!(!text.contains(rust_name), "{rust_name:?} in: {text}");
        }
        // Not a terminal: no colour codes.
        assert!(
            !text.contains('\u{1b}'),
            "ANSI codes in a log file: {text:?}"
        );
    }
}

#[test]
fn colour_only_at_a_terminal_and_never_with_no_color() {
    // `script` gives the binary a pseudo-terminal, as a person's shell would.
    let Some(script) = common::tools::tool("script") else {
        return;
    };
    let run = |no_color: bool| -> String {
        // Started for real (a config error exits before logging) and interrupted after 1 s.
        let port = free_port();
        let inner = format!(
            "timeout -s INT 1 {BIN} --listen 127.0.0.1:{port} --upstream http://127.0.0.1:9/v1"
        );
        let mut c = Command::new(&script);
        c.args(["-qec", &inner, "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("OTEL_TRACES_EXPORTER", "none")
            .env("OTEL_METRICS_EXPORTER", "none")
            .stdin(Stdio::null());
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = c.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tty = run(false);
    assert!(tty.contains("llmtap listening"), "{tty}");
    assert!(tty.contains('\u{1b}'), "a terminal gets colour: {tty:?}");
    let plain = run(true);
    assert!(plain.contains("llmtap listening"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "NO_COLOR honoured: {plain:?}");
}

#[tokio::test]
async fn healthcheck_takes_a_base_url_and_says_what_went_wrong() {
    let dir = TempDir::new("healthcheck");
    let log = dir.path().join("stderr.log");
    let (proc, base) =
        bin::start(&["--upstream", "http://127.0.0.1:9/v1"], NO_TELEMETRY, &log).await;
    // With or without a scheme (`127.0.0.1:8080` is how --listen is written): plain HTTP.
    let bare = base.trim_start_matches("http://").to_string();
    for url in [
        base.clone(),
        format!("{base}/"),
        format!("{base}/healthz"),
        bare.clone(),
        format!("{bare}/healthz"),
    ] {
        let out = llmtap(
            &["healthcheck", "--url", &url],
            &[],
            &dir.path().join("hc.log"),
        )
        .stdout(Stdio::piped())
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{url}: {}",
            read_log(&dir.path().join("hc.log"))
        );
        // Success says so, in one line naming what was checked.
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(said.trim().lines().count(), 1, "{said}");
        assert!(
            said.contains(&format!("{base}/healthz")) && said.contains("200"),
            "{url}: {said}"
        );
    }
    // A path that is not /healthz answers 404: the one line says so.
    let hc_log = dir.path().join("hc-404.log");
    let out = llmtap(
        &["healthcheck", "--url", &format!("{base}/nope")],
        &[],
        &hc_log,
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let text = read_log(&hc_log);
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(text.contains("404"), "{text}");
    drop(proc);
    let closed = format!("http://127.0.0.1:{}", free_port());
    let hc_log = dir.path().join("hc-closed.log");
    let out = llmtap(&["healthcheck", "--url", &closed], &[], &hc_log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = read_log(&hc_log);
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(text.contains(&format!("{closed}/healthz")), "{text}");
}

#[test]
fn a_bad_upstream_is_reported_under_the_name_the_user_typed() {
    let dir = TempDir::new("bad-upstream");
    let log = dir.path().join("flag.log");
    let out = llmtap(&["--upstream", "ftp://x"], &[], &log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = read_log(&log);
    assert!(text.starts_with("llmtap: --upstream: "), "{text}");
    assert_eq!(text.trim().lines().count(), 1);

    let log = dir.path().join("env.log");
    let out = llmtap(&[], &[("LLMTAP_UPSTREAM", "not a url")], &log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = read_log(&log);
    assert!(text.starts_with("llmtap: LLMTAP_UPSTREAM: "), "{text}");

    // The flag wins over the variable, and the error names the flag.
    let log = dir.path().join("both.log");
    let out = llmtap(
        &["--upstream", "ftp://x"],
        &[("LLMTAP_UPSTREAM", "http://ok/v1")],
        &log,
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(read_log(&log).starts_with("llmtap: --upstream: "));
}

#[tokio::test]
async fn console_spans_read_ok_or_error_with_rounded_milliseconds() {
    let dir = TempDir::new("console");
    let log = dir.path().join("stderr.log");
    let (_proc, mut lines) = bin::spawn_reading_stdout(
        &["demo", "--listen", "127.0.0.1:0"],
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
        &log,
    );
    let mut url = None;
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(10), lines.recv()).await {
        if let Some(rest) = line.strip_prefix("llmtap demo: proxy on ") {
            url = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let url = url.expect("demo banner");
    let c = client();
    for model in ["gpt-4o-mini", "mock-error-429"] {
        let _ = c
            .post(format!("{url}/chat/completions"))
            .json(&chat_body(model))
            .send()
            .await
            .unwrap()
            .bytes()
            .await;
    }
    let mut spans: Vec<(String, Value)> = Vec::new();
    while spans.len() < 2 {
        let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(10), lines.recv()).await
        else {
            break;
        };
        if line.starts_with('{') {
            spans.push((line.clone(), serde_json::from_str(&line).unwrap()));
        }
    }
    assert_eq!(spans.len(), 2, "{spans:?}");
    for (line, span) in &spans {
        // Name, status and duration come first, so a reader scanning the lines sees them.
        assert!(line.starts_with("{\"name\":"), "{line}");
        let ms = span["duration_ms"].as_f64().unwrap();
        let text = span["duration_ms"].to_string();
        let decimals = text.split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 2, "duration_ms {text} not rounded");
        assert!(ms >= 0.0);
    }
    let ok = &spans
        .iter()
        .find(|(_, s)| s["name"] == "chat gpt-4o-mini")
        .unwrap()
        .1;
    assert_eq!(ok["status"], "OK");
    let err = &spans
        .iter()
        .find(|(_, s)| s["name"] == "chat mock-error-429")
        .unwrap()
        .1;
    let status = err["status"].as_str().unwrap();
    assert!(status.starts_with("ERROR: "), "{status}");
}

/// Paths named in the docs, shipped configs and comments exist, so none points a reader at
/// a file that is not there.
#[test]
fn files_named_in_docs_and_comments_exist() {
    let root = repo();
    let mut files = vec![
        "README.md".to_string(),
        "BENCHMARKS.md".to_string(),
        "Dockerfile".to_string(),
        "docker-compose.yml".to_string(),
    ];
    for dir in [
        "docs", "config", "examples", "src", "tests", "bench", "benches",
    ] {
        collect(&root.join(dir), &root, &mut files);
    }
    let re = regex::Regex::new(
        // A path of this repository starts a token: `src/...` inside another project's path
        // (`python/.../src/openinference/...`) is not ours.
        r"(?:^|[^A-Za-z0-9_./-])((?:src|tests|config|examples|bench|benches)/[A-Za-z0-9_./-]+\.(?:rs|py|yaml|yml|json|mjs|sh|md|txt))\b",
    )
    .unwrap();
    let mut missing = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(root.join(f)) else {
            continue;
        };
        for m in re.captures_iter(&text) {
            let named = &m[1];
            if !root.join(named).exists() {
                missing.push(format!("{f} names {named}"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");

    fn collect(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            // This file names paths that must NOT exist in the checkout (ignored ones).
            if name == "node_modules"
                || name == "fixtures"
                || name == "first_hour.rs"
                || name.starts_with('.')
            {
                continue;
            }
            if p.is_dir() {
                collect(&p, root, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
}

/// The Markdown pages a reader follows: the README and every page under docs/.
fn markdown_pages() -> Vec<String> {
    let mut pages = vec!["README.md".to_string()];
    let entries = std::fs::read_dir(repo().join("docs")).expect("docs/");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            pages.push(format!("docs/{name}"));
        }
    }
    pages.sort();
    pages
}

/// Every Markdown link in the README and docs/ leads somewhere: a relative target exists
/// (resolved from the linking page's folder, as GitHub does), and a `#section` matches a
/// heading of the page it points into. Links inside code (fenced or inline) are not links.
#[test]
fn links_in_the_readme_and_docs_lead_somewhere() {
    let root = repo();
    let pages = markdown_pages();
    assert!(pages.len() > 1, "no pages under docs/: {pages:?}");
    let link = regex::Regex::new(r"\]\(([^()\s]+)\)").unwrap();
    let inline_code = regex::Regex::new(r"`[^`]*`").unwrap();
    let (mut checked, mut broken) = (0, Vec::new());
    for page in &pages {
        let text = read(page);
        let dir = Path::new(page).parent().unwrap_or(Path::new(""));
        for line in markdown_prose(&text) {
            let line = inline_code.replace_all(line, "");
            for m in link.captures_iter(&line) {
                let target = &m[1];
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, section) = match target.split_once('#') {
                    Some((f, s)) => (f, Some(s)),
                    None => (target, None),
                };
                let path = if file.is_empty() {
                    root.join(page)
                } else {
                    root.join(dir).join(file)
                };
                if !path.exists() {
                    broken.push(format!("{page}: {target}: no such file"));
                    continue;
                }
                let Some(section) = section else { continue };
                let is_md = path.extension().is_some_and(|e| e == "md");
                let anchors = if is_md {
                    markdown_anchors(&std::fs::read_to_string(&path).unwrap_or_default())
                } else {
                    Default::default()
                };
                if !anchors.contains(section) {
                    broken.push(format!("{page}: {target}: no heading #{section}"));
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} links found in {pages:?}");
    assert!(broken.is_empty(), "{broken:#?}");
}

/// The README's prerequisites name the Rust version `Cargo.toml` requires (`rust-version`),
/// so a newcomer's first build does not fail on an older toolchain the README allowed.
#[test]
fn the_readme_names_the_rust_version_cargo_requires() {
    let manifest = read("Cargo.toml");
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim().trim_matches('"'))
        .expect("rust-version in Cargo.toml");
    let readme = read("README.md");
    let prerequisites = readme
        .split("## Prerequisites")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Prerequisites section in README.md");
    assert!(
        prerequisites.contains(&format!("Rust {version} or later")),
        "README.md's prerequisites should say \"Rust {version} or later\":\n{prerequisites}"
    );
}

/// The YAML configurations shown in the README and docs/ (blocks with `upstreams:`) load, as
/// the shipped files do.
#[test]
fn yaml_configs_shown_in_the_docs_load() {
    let env: std::collections::HashMap<String, String> = Default::default();
    let mut loaded = 0;
    for page in markdown_pages() {
        let text = read(&page);
        let mut block: Option<String> = None;
        for line in text.lines() {
            match (&mut block, line.trim_start()) {
                (None, l) if l.starts_with("```yaml") => block = Some(String::new()),
                (Some(b), l) if l.starts_with("```") => {
                    if b.lines().any(|l| l.starts_with("upstreams:")) {
                        llmtap::config::load_yaml(b, &env)
                            .unwrap_or_else(|e| panic!("{page}: {e}\n{b}"));
                        loaded += 1;
                    }
                    block = None;
                }
                (Some(b), _) => {
                    b.push_str(line);
                    b.push('\n');
                }
                (None, _) => {}
            }
        }
    }
    assert!(loaded >= 1, "no YAML configuration found in the docs");
}

/// `npm install` in examples/node leaves node_modules and a lock file: both are ignored, so
/// running the example leaves `git status` clean.
#[test]
fn running_the_node_example_leaves_no_untracked_file() {
    let out = Command::new("git")
        .current_dir(repo())
        .args([
            "check-ignore",
            "examples/node/node_modules/openai/index.js",
            "examples/node/package-lock.json",
        ])
        .output();
    let Ok(out) = out else {
        eprintln!("skipping: git not available");
        return;
    };
    if !repo().join(".git").exists() {
        eprintln!("skipping: not a git checkout");
        return;
    }
    let ignored = String::from_utf8_lossy(&out.stdout);
    assert_eq!(ignored.lines().count(), 2, "not ignored: {ignored}");
}

// ---------------------------------------------------------------------------------------
// 5. Span details
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn cut_streams_report_error_as_the_finish_reason_never_an_empty_string() {
    let (_up, rx, proxy) = start_traced("grpc", None, &[]).await;
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&json!({"model": "mock-cut", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    let _ = r.bytes().await;
    let spans = rx
        .wait_for_spans(|s| !s.is_empty(), Duration::from_secs(10))
        .await;
    let span = &spans[0];
    let reasons = span
        .str_array_attr("gen_ai.response.finish_reasons")
        .unwrap_or_default();
    assert!(!reasons.iter().any(String::is_empty), "{reasons:?}");
    assert!(
        reasons.is_empty() || reasons.iter().all(|r| r == "error"),
        "{reasons:?}"
    );
    assert_eq!(span.status_code, "error");
    proxy.stop().await;
}

#[tokio::test]
async fn embeddings_spans_carry_the_encoding_format() {
    let (_up, rx, proxy) = start_traced("grpc", None, &[]).await;
    let c = client();
    for fmt in [Some("base64"), Some("float"), None] {
        let mut body = json!({"model": "text-embedding-3-small", "input": "hello"});
        if let Some(f) = fmt {
            body["encoding_format"] = json!(f);
        }
        let r = c
            .post(format!("{}/v1/embeddings", proxy.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let spans = rx
        .wait_for_spans(|s| s.len() >= 3, Duration::from_secs(10))
        .await;
    let mut formats: Vec<Option<Vec<String>>> = spans
        .iter()
        .map(|s| s.str_array_attr("gen_ai.request.encoding_formats"))
        .collect();
    formats.sort();
    assert_eq!(
        formats,
        vec![
            None,
            Some(vec!["base64".to_string()]),
            Some(vec!["float".to_string()])
        ]
    );
    proxy.stop().await;
}

#[tokio::test]
async fn prompt_hashes_group_under_a_shared_key_and_differ_without_one() {
    let body = chat_body("gpt-4o-mini");
    let mut hashes = Vec::new();
    for key in [Some("k-shared"), Some("k-shared"), None, None] {
        let extra: Vec<(&str, &str)> = key
            .map(|k| vec![("LLMTAP_PROMPT_HASH_KEY", k)])
            .unwrap_or_default();
        let (_up, rx, proxy) = start_traced("grpc", None, &extra).await;
        let r = client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let spans = rx
            .wait_for_spans(|s| !s.is_empty(), Duration::from_secs(10))
            .await;
        hashes.push(
            spans[0]
                .str_attr("llmtap.prompt.hash")
                .expect("prompt hash")
                .to_string(),
        );
        proxy.stop().await;
    }
    assert_eq!(hashes[0].len(), 64);
    assert_eq!(hashes[0], hashes[1], "replicas sharing a key agree");
    assert_ne!(hashes[2], hashes[3], "random per-process keys");
    assert_ne!(hashes[0], hashes[2]);
}

#[tokio::test]
async fn a_tool_result_links_its_call_to_the_call_that_asked_for_the_tool() {
    let (_up, rx, proxy) = start_traced("grpc", None, &[]).await;
    let c = client();
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let mut messages = vec![json!({"role": "user", "content": "Weather in Paris?"})];
    let first: Value = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assistant = first["choices"][0]["message"].clone();
    let call_id = assistant["tool_calls"][0]["id"]
        .as_str()
        .expect("the mock asks for a tool")
        .to_string();
    messages.push(assistant);
    messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": "18 C"}));
    // No traceparent: the app has no tracing, so each call starts its own trace.
    let r = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let spans = rx
        .wait_for_spans(
            |s| s.iter().filter(|s| s.name == "chat gpt-4o-mini").count() >= 2,
            Duration::from_secs(10),
        )
        .await;
    let dump = common::otlp::spans_json(&spans);
    let mut chats: Vec<&common::otlp::SpanView> = spans
        .iter()
        .filter(|s| s.name == "chat gpt-4o-mini")
        .collect();
    chats.sort_by_key(|s| s.start_unix_nanos);
    let (asked, answered) = (chats[0], chats[1]);
    assert_ne!(asked.trace_id, answered.trace_id, "two traces: {dump}");
    assert!(asked.links.is_empty());
    assert_eq!(
        answered.links,
        vec![(asked.trace_id.clone(), asked.span_id.clone())],
        "{dump}"
    );
    proxy.stop().await;
}

/// The official SDKs' stream helpers (openai's `responses.stream` and `chat.completions.stream`,
/// anthropic's `messages.stream`) rebuild whole responses from the demo's scripted streams:
/// every event those helpers rely on is there, for text and for tool calls.
#[tokio::test]
async fn the_demos_streams_satisfy_every_official_sdk_stream_helper() {
    if python().is_none() {
        return;
    }
    let dir = TempDir::new("demo-helpers");
    let log = dir.path().join("stderr.log");
    let listen = format!("127.0.0.1:{}", free_port());
    let _proc =
        Proc::spawn(&mut llmtap(&["demo", "--listen", &listen], &[], &log)).expect("llmtap starts");
    let base = format!("http://{listen}");
    bin::wait_healthy(&base, &log).await;
    let out = run_sdk(
        "helpers.py",
        &base,
        &[("ANTHROPIC_BASE_URL", base.as_str())],
    )
    .await
    .expect("python");
    for (case, finish_key, finish) in [
        ("responses_text", "status", "completed"),
        ("chat_text", "finish", "stop"),
        ("messages_text", "stop", "end_turn"),
    ] {
        let c = &out[case];
        assert!(c["deltas"].as_u64().unwrap() > 1, "{case}: {c}");
        assert!(!c["joined"].as_str().unwrap().is_empty(), "{case}: {c}");
        if let Some(text) = c.get("text") {
            assert_eq!(text, &c["joined"], "{case}: the final text is the deltas'");
        }
        assert_eq!(c[finish_key], finish, "{case}: {c}");
    }
    for (case, args) in [
        ("responses_tool", "arguments"),
        ("chat_tool", "arguments"),
        ("messages_tool", "input"),
    ] {
        let calls = out[case]["calls"].as_array().unwrap();
        assert!(!calls.is_empty(), "{case}: {}", out[case]);
        assert_eq!(calls[0]["name"], "get_weather", "{case}");
        assert!(
            calls[0][args]["city"].is_string(),
            "{case}: the helper assembled the arguments: {}",
            out[case]
        );
    }
    assert_eq!(out["responses_tool"]["done_args"], 1);
    assert_eq!(out["chat_tool"]["finish"], "tool_calls");
    assert_eq!(out["messages_tool"]["stop"], "tool_use");
}

/// A listen address already in use says which setting picks another, in one line, exit 2.
#[test]
fn a_busy_port_names_the_setting_that_picks_another() {
    let dir = TempDir::new("busy-port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let log = dir.path().join("stderr.log");
    let out = llmtap(
        &["--listen", &addr, "--upstream", "http://127.0.0.1:9/v1"],
        NO_TELEMETRY,
        &log,
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = read_log(&log);
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(
        text.starts_with(&format!("llmtap: listen {addr}: ")),
        "{text}"
    );
    assert!(text.contains("--listen or LLMTAP_LISTEN"), "{text}");
}
