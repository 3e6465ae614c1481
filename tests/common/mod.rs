//! Test harness: the scripted upstream, llmtap itself (in-process, the real `app()` and
//! `serve()`), an OTLP receiver, and the official Python SDK, all on 127.0.0.1.
#![allow(dead_code)]

pub mod bin;
pub mod mcp;
pub mod otlp;
pub mod process;
pub mod raw;
pub mod tools;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use llmtap::config::{load_yaml, Config};
use llmtap::mock::{MockConfig, MockUpstream};
use llmtap::{AppState, Telemetry};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use otlp::OtlpReceiver;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Our own provider-shaped recordings (`tests/fixtures/`), always in the repository.
pub fn provider_fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

/// The real provider recordings beside our checkouts (`../shared/fixtures/providers/`), or
/// `None` after one line on stderr when this checkout has none. With
/// `LLMTAP_REQUIRE_SHARED_FIXTURES=1` (CI) their absence is a failure instead.
pub fn shared_provider_fixtures() -> Option<PathBuf> {
    const REQUIRE: &str = "LLMTAP_REQUIRE_SHARED_FIXTURES";
    let dir = repo().join("../shared/fixtures/providers");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var(REQUIRE).is_ok_and(|v| v == "1") {
        panic!(
            "{REQUIRE}=1 but the shared provider recordings are missing: {} is not a directory",
            dir.display()
        );
    }
    eprintln!(
        "skipping the shared provider recordings: {} not found (only our tests/fixtures were walked; set {REQUIRE}=1 to make this a failure)",
        dir.display()
    );
    None
}

/// The names of the `.sse` files in `dir`, sorted.
pub fn sse_fixture_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sse"))
        .collect();
    names.sort();
    names
}

/// A free 127.0.0.1 port (bound and released; fine for tests that start a server on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A repository file as text.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// GitHub's anchor for a Markdown heading's text: lower case, spaces to `-`, punctuation
/// other than `-` and `_` dropped (backticks included), as github.com links `#section`.
pub fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The lines of a Markdown document outside fenced code blocks (```), with their text.
pub fn markdown_prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |l| {
        if l.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The anchors of a Markdown document's ATX headings (`#` lines outside code blocks); a
/// repeated heading gets `-1`, `-2`, ... as on GitHub.
pub fn markdown_anchors(text: &str) -> std::collections::BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = std::collections::BTreeSet::new();
    for line in markdown_prose(text) {
        let hashes = line.len() - line.trim_start_matches('#').len();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = github_anchor(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The Dockerfile's instructions as (upper-cased op, arguments): continuation lines joined,
/// comments and blank lines dropped.
pub fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (op, rest) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        instructions.push((op.to_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    instructions
}

/// A scratch directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("llmtap-test-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The stop signal of a server a test started in-process: sent when dropped (or by
/// [`Stopper::stop`]), so a failing assertion never leaves the server running.
struct Stopper(Option<oneshot::Sender<()>>);

impl Stopper {
    /// A stopper and the future its server awaits as its shutdown signal.
    fn new() -> (
        Stopper,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (tx, rx) = oneshot::channel::<()>();
        (Stopper(Some(tx)), async move {
            let _ = rx.await;
        })
    }

    fn stop(&mut self) {
        if let Some(s) = self.0.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Upstream {
    pub mock: MockUpstream,
    pub base: String,
    _stopper: Stopper,
}

/// A scripted upstream whose `replay` scenario reads our own `tests/fixtures/`.
pub async fn start_upstream() -> Upstream {
    start_upstream_with(provider_fixtures()).await
}

/// A scripted upstream whose `replay` scenario reads from `fixtures`.
pub async fn start_upstream_with(fixtures: PathBuf) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mock = MockUpstream::new(MockConfig {
        fixtures_dir: Some(fixtures),
    });
    let (stopper, stopped) = Stopper::new();
    tokio::spawn(mock.clone().serve(listener, stopped));
    Upstream {
        mock,
        base: format!("http://{addr}"),
        _stopper: stopper,
    }
}

/// A stand-in HTTP server built from an axum router (an MCP server, a webhook recorder, an
/// upstream scripted by request headers) on a free 127.0.0.1 port; it stops when dropped.
/// For answers no well-behaved server gives, use [`raw::RawUpstream`].
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _stopper: Stopper,
}

/// Serves `app` until the returned [`Served`] is dropped.
pub async fn serve_router(app: axum::Router) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stopper, stopped) = Stopper::new();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await;
    });
    Served {
        base: format!("http://{addr}"),
        _stopper: stopper,
    }
}

pub struct Proxy {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub state: Arc<AppState>,
    stopper: Stopper,
    done: Option<tokio::task::JoinHandle<()>>,
}

/// A change to the config after it is loaded.
pub type Tweak = Box<dyn FnOnce(&mut Config)>;

/// Options for an in-process proxy.
#[derive(Default)]
pub struct ProxyOpts {
    /// YAML config; `{upstream}` is replaced by the scripted upstream's base URL.
    pub yaml: Option<String>,
    /// Environment as llmtap sees it (OTEL_* etc.).
    pub env: Vec<(String, String)>,
    pub tweak: Option<Tweak>,
}

pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Telemetry env that exports quickly to `rx` over `protocol`.
pub fn otlp_env(rx: &OtlpReceiver, protocol: &str) -> Vec<(String, String)> {
    let endpoint = if protocol == "grpc" {
        rx.grpc_endpoint.clone()
    } else {
        rx.http_endpoint.clone()
    };
    env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ])
}

/// Telemetry off entirely, as environment pairs for the binary ([`bin::start`]).
pub const NO_TELEMETRY: &[(&str, &str)] = &[
    ("OTEL_TRACES_EXPORTER", "none"),
    ("OTEL_METRICS_EXPORTER", "none"),
];

/// Telemetry off entirely (for proxy-only tests).
pub fn no_telemetry() -> Vec<(String, String)> {
    env(NO_TELEMETRY)
}

/// Owned environment pairs ([`otlp_env`], [`no_telemetry`]) as the borrowed pairs
/// [`bin::start`] and [`bin::command`] take.
pub fn env_refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The scripted upstream and a proxy in front of it with telemetry off.
pub async fn plain_proxy() -> (Upstream, Proxy) {
    let up = start_upstream().await;
    let proxy = untraced_proxy(&up.base).await;
    (up, proxy)
}

/// A proxy in front of the upstream at `upstream_base`, with telemetry off.
pub async fn untraced_proxy(upstream_base: &str) -> Proxy {
    start_proxy(
        upstream_base,
        ProxyOpts {
            env: no_telemetry(),
            ..Default::default()
        },
    )
    .await
}

/// The scripted upstream, an OTLP receiver, and a proxy exporting to it over `protocol`,
/// with an optional YAML config and extra environment.
pub async fn start_traced(
    protocol: &str,
    yaml: Option<&str>,
    extra: &[(&str, &str)],
) -> (Upstream, OtlpReceiver, Proxy) {
    let up = start_upstream().await;
    let rx = OtlpReceiver::start().await;
    let mut e = otlp_env(&rx, protocol);
    e.extend(env(extra));
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: yaml.map(str::to_owned),
            env: e,
            ..Default::default()
        },
    )
    .await;
    (up, rx, proxy)
}

pub async fn start_proxy(upstream_base: &str, opts: ProxyOpts) -> Proxy {
    let envmap: HashMap<String, String> = opts.env.into_iter().collect();
    let mut config = match opts.yaml {
        Some(y) => load_yaml(&y.replace("{upstream}", upstream_base), &envmap)
            .unwrap_or_else(|e| panic!("test config: {e}")),
        None => Config::with_upstream(
            &format!("{upstream_base}/v1"),
            llmtap::vocab::provider::Provider::Openai,
        ),
    };
    config.shutdown_timeout = Duration::from_secs(5);
    if let Some(t) = opts.tweak {
        t(&mut config);
    }
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(TcpListener::bind(a).await.unwrap()),
        None => None,
    };
    let shared = llmtap::state::SharedState::from_config(&config);
    let telemetry = Telemetry::start(&config, &envmap, shared.clone());
    let secret = envmap.get(llmtap::vocab::prompt::PROMPT_HASH_KEY_ENV);
    let hasher =
        llmtap::vocab::prompt::PromptHasher::from_secret_or_random(secret.map(String::as_str));
    let state = AppState::new(config, telemetry, shared, hasher).expect("app state");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stopper, stopped) = Stopper::new();
    let st = state.clone();
    let done = tokio::spawn(async move {
        let _ = llmtap::serve(listener, metrics_listener, st, stopped).await;
    });
    Proxy {
        url: format!("http://{addr}"),
        addr,
        state,
        stopper,
        done: Some(done),
    }
}

impl Proxy {
    /// Graceful stop: drains, flushes telemetry, and waits for it (bounded).
    pub async fn stop(mut self) {
        self.stopper.stop();
        if let Some(d) = self.done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), d).await;
        }
    }
}

pub fn client() -> reqwest::Client {
    llmtap::vocab::crypto::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POSTs a chat completion request to llmtap at `url` with extra headers.
pub async fn post_chat(
    url: &str,
    body: serde_json::Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

/// Status and body of a chat request, read to the end (a client that reads only the status
/// and drops the body has gone away, and its span says so).
pub async fn chat_text(
    url: &str,
    body: serde_json::Value,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let r = post_chat(url, body, headers).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

/// llmtap's Prometheus exposition.
pub async fn scrape(url: &str) -> String {
    client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The Python interpreter of the test venv, or `None` (and a note) when it is not set up.
/// Under `tests/run` (LLMTAP_REQUIRE_SDK=1) a missing venv is a failure, not a skip.
pub fn python() -> Option<PathBuf> {
    match std::env::var("LLMTAP_TEST_PYTHON") {
        Ok(p) if PathBuf::from(&p).exists() => Some(PathBuf::from(p)),
        _ => {
            if std::env::var("LLMTAP_REQUIRE_SDK").is_ok() {
                panic!("LLMTAP_TEST_PYTHON is not set up; run tests via tests/run");
            }
            eprintln!("skipping SDK test: run via tests/run to set up the Python venv");
            None
        }
    }
}

/// Runs `tests/sdk/<script>` with the SDK pointed at the proxy; returns its stdout as JSON.
pub async fn run_sdk(
    script: &str,
    base_url: &str,
    extra_env: &[(&str, &str)],
) -> Option<serde_json::Value> {
    let py = python()?;
    let openai_base = format!("{base_url}/v1");
    let mut envs = vec![
        ("OPENAI_BASE_URL", openai_base.as_str()),
        ("OPENAI_API_KEY", "sk-test-not-a-real-key"),
    ];
    envs.extend_from_slice(extra_env);
    Some(run_python(&py, script, &envs).await)
}

/// Runs `tests/sdk/<script>` with `python` and `envs`, in a process group of its own that is
/// stopped whatever happens (whatever the script started goes with it); its stdout as JSON.
/// Fails the test when the script fails, prints no JSON, or runs past 120 s.
pub async fn run_python(
    python: &std::path::Path,
    script: &str,
    envs: &[(&str, &str)],
) -> serde_json::Value {
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(repo().join("tests/sdk").join(script))
        .env("NO_PROXY", "127.0.0.1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    process::own_group_tokio(&mut cmd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("the script did not start");
    let _group = process::GroupGuard::of(&child);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the script timed out")
        .expect("the script's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}\nstderr:\n{stderr}"))
}

/// Waits (bounded) until `cond` holds, polling.
pub async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
