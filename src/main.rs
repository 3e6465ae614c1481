//! The `llmtap` binary: parse flags and env, build the config, run. Nothing else lives here.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use llmtap::cli::{Cli, Command, ProxyArgs};
use llmtap::config::{Env, LogFormat, ProcessEnv};
use llmtap::mock::{MockConfig, MockUpstream};
use llmtap::{AppState, Telemetry};
use tokio::net::TcpListener;

// glibc malloc was a fifth of llmtap's CPU per request under load; mimalloc cut CPU per
// non-streamed request by 17-20% in bench/run (BENCHMARKS.md). Built without transparent
// huge pages (Cargo.toml's `no_thp`): they doubled the idle RSS.
// `--features system-allocator` leaves the C allocator in place, so heap profilers that
// interpose malloc (valgrind massif, heaptrack) see every allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    llmtap::vocab::crypto::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("llmtap: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            None => run_proxy(&cli.proxy, &ProcessEnv, None).await,
            Some(Command::Demo {
                proxy,
                upstream_listen,
            }) => run_demo(&proxy, &upstream_listen).await,
            Some(Command::MockUpstream { listen, fixtures }) => {
                init_logs(LogFormat::Text);
                run_mock(&listen, fixtures).await
            }
            Some(Command::Healthcheck { url }) => healthcheck(&url).await,
            Some(Command::HashKey) => hash_key(),
            Some(Command::McpStdio {
                name,
                proxy,
                command,
            }) => run_mcp_stdio(&proxy, name, &command).await,
        }
    })
}

/// `llmtap mcp-stdio`: the child's exit code, or 2 for a config problem (one line on stderr).
async fn run_mcp_stdio(args: &ProxyArgs, name: Option<String>, command: &[String]) -> ExitCode {
    let config = match args.load(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => return config_failure(&e.0),
    };
    init_logs(config.log_format);
    let telemetry = Telemetry::start(
        &config,
        &ProcessEnv,
        llmtap::state::SharedState::from_config(&config),
    );
    let s = telemetry.settings();
    if s.traces_console || s.metrics_console {
        return config_failure(
            "mcp-stdio: the console exporters write to stdout, which carries the MCP protocol here; export over OTLP",
        );
    }
    let Some((program, rest)) = command.split_first() else {
        return config_failure("mcp-stdio: give the server's command after --");
    };
    let code = match llmtap::mcp::stdio::run(
        telemetry.clone(),
        name,
        program.clone(),
        rest.to_vec(),
    )
    .await
    {
        Ok(code) => code,
        Err(e) => {
            eprintln!("llmtap: mcp-stdio: cannot run {program}: {e}");
            127
        }
    };
    telemetry.shutdown(std::time::Duration::from_secs(5)).await;
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: log files and collectors get plain text.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        // Request-derived values cannot forge lines or colour the terminal (see logfmt).
        LogFormat::Text => builder.fmt_fields(llmtap::logfmt::EscapedFields).try_init(),
    };
}

/// A listener that could not bind, in one line; an address in use or not allowed names the
/// setting that picks another.
fn bind_failure(what: &str, e: &std::io::Error, setting: &str) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => {
            format!(
                "{what}: {e}; another process listens there: pick a free address with {setting}"
            )
        }
        ErrorKind::PermissionDenied => {
            format!("{what}: {e}; ports below 1024 need privileges: pick another with {setting}")
        }
        ErrorKind::AddrNotAvailable => {
            format!("{what}: {e}; no interface of this machine has that address: pick another with {setting}")
        }
        _ => format!("{what}: {e}"),
    }
}

/// Config errors: one line on stderr, exit status 2.
fn config_failure(msg: &str) -> ExitCode {
    eprintln!("llmtap: {msg}");
    ExitCode::from(2)
}

async fn run_proxy(args: &ProxyArgs, env: &dyn Env, banner: Option<String>) -> ExitCode {
    let config = match args.load(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => return config_failure(&e.0),
    };
    init_logs(config.log_format);
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            return config_failure(&bind_failure(
                &format!("listen {}", config.listen),
                &e,
                "--listen or LLMTAP_LISTEN",
            ))
        }
    };
    let metrics_listener = match config.metrics_listen {
        Some(a) => match TcpListener::bind(a).await {
            Ok(l) => Some(l),
            Err(e) => {
                return config_failure(&bind_failure(
                    &format!("metrics_listen {a}"),
                    &e,
                    "--metrics-listen or LLMTAP_METRICS_LISTEN",
                ))
            }
        },
        None => None,
    };
    let shared = llmtap::state::SharedState::from_config(&config);
    let telemetry = Telemetry::start(&config, env, shared.clone());
    let upstreams: Vec<String> = config
        .upstreams
        .iter()
        .map(|u| {
            format!(
                "{}={} (provider {})",
                u.name,
                u.base_url,
                u.provider.config_name()
            )
        })
        .collect();
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let scheme = if config.tls().is_some() {
        "https"
    } else {
        "http"
    };
    let described = telemetry.describe();
    // Upstream clients and TLS files are checked first: a bad one is the only line printed.
    let live_view = config.ui_enabled().then(|| {
        let at = match (config.ui.only_on_metrics_listen, config.metrics_listen) {
            (true, Some(m)) => m.to_string(),
            _ => addr.clone(),
        };
        format!(
            "live view at {scheme}://{at}/ui (last {} calls; --ui false turns it off)",
            config.ui.max_calls
        )
    });
    let state = match AppState::new(
        config,
        telemetry,
        shared,
        llmtap::vocab::prompt::PromptHasher::from_secret_or_random(
            env.get(llmtap::vocab::prompt::PROMPT_HASH_KEY_ENV)
                .as_deref(),
        ),
    ) {
        Ok(s) => s,
        Err(e) => return config_failure(&e),
    };
    tracing::info!(listen = %addr, scheme, upstreams = %upstreams.join(", "), "llmtap listening");
    tracing::info!("telemetry: {described}");
    if let Some(line) = live_view {
        tracing::info!("{line}");
    }
    if let Some(cert) = state.tls.clone() {
        tokio::spawn(llmtap::reload_tls_on_sighup(cert));
    }
    if let Some(b) = banner {
        println!("{}", b.replace("{addr}", &addr));
    }
    match llmtap::serve(listener, metrics_listener, state, llmtap::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// The demo: llmtap with console spans in front of the built-in scripted upstream, or in front
/// of `--upstream` when the user names one (then no scripted upstream is started).
async fn run_demo(args: &ProxyArgs, upstream_listen: &str) -> ExitCode {
    let mut args = args.clone();
    // The live view is the demo's point: on unless the user turned it off.
    let ui = *args.ui.get_or_insert(true);
    let scripted = args.upstream.is_none();
    let upstream_desc = if let Some(url) = &args.upstream {
        format!("the upstream at {url}")
    } else {
        let listener = match TcpListener::bind(upstream_listen).await {
            Ok(l) => l,
            Err(e) => {
                return config_failure(&bind_failure(
                    &format!("demo upstream {upstream_listen}"),
                    &e,
                    "--upstream-listen",
                ))
            }
        };
        let upstream_addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => return config_failure(&e.to_string()),
        };
        let mock = MockUpstream::new(MockConfig { fixtures_dir: None });
        tokio::spawn(mock.serve(listener, std::future::pending()));
        args.upstream = Some(format!("http://{upstream_addr}/v1"));
        format!("a scripted upstream at http://{upstream_addr}/v1")
    };
    // Spans go to the console unless the user pointed OTLP somewhere.
    let mut env: HashMap<String, String> = std::env::vars().collect();
    let otlp_set = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| env.contains_key(*k));
    if !otlp_set {
        env.entry("OTEL_TRACES_EXPORTER".into())
            .or_insert_with(|| "console".into());
        env.entry("OTEL_METRICS_EXPORTER".into())
            .or_insert_with(|| "none".into());
        // The content event, when asked for, is printed beside the spans.
        env.entry("OTEL_LOGS_EXPORTER".into())
            .or_insert_with(|| "console".into());
    }
    // A call's span should appear while the person is still looking at the terminal.
    env.entry("OTEL_BSP_SCHEDULE_DELAY".into())
        .or_insert_with(|| "200".into());
    let spans_go = if otlp_set {
        "Spans go to the OTLP endpoint you set"
    } else {
        "Spans are printed below, one JSON line each"
    };
    let try_it = if scripted {
        "Try it (no API key needed):"
    } else {
        "Try it (with your upstream's API key in the Authorization header):"
    };
    let failures = if scripted {
        "Models named mock-error-429, mock-slow, mock-cut, ... trigger scripted failures. "
    } else {
        ""
    };
    let live = if ui {
        "Live view: http://{addr}/ui (recent calls, timelines, charts)\n"
    } else {
        ""
    };
    let banner = format!(
        "llmtap demo: proxy on http://{{addr}}/v1 in front of {upstream_desc}\n\
         {live}\
         {try_it}\n  \
         curl -s http://{{addr}}/v1/chat/completions -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'\n  \
         export OPENAI_BASE_URL=http://{{addr}}/v1 OPENAI_API_KEY=sk-demo   # then run any OpenAI SDK app\n\
         {failures}{spans_go}; Prometheus metrics at http://{{addr}}/metrics"
    );
    run_proxy(&args, &env, Some(banner)).await
}

async fn run_mock(listen: &str, fixtures: Option<std::path::PathBuf>) -> ExitCode {
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            return config_failure(&bind_failure(&format!("listen {listen}"), &e, "--listen"))
        }
    };
    tracing::info!(listen = %listen, "scripted OpenAI-compatible upstream listening");
    let mock = MockUpstream::new(MockConfig {
        fixtures_dir: fixtures,
    });
    match mock.serve(listener, llmtap::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llmtap mock-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `llmtap hash-key`: one key on stdin (surrounding whitespace and the newline ignored), its
/// YAML line on stdout.
fn hash_key() -> ExitCode {
    use std::io::Read;
    if std::io::stdin().is_terminal() {
        eprintln!("llmtap hash-key: paste the client key, then Enter and Ctrl-D");
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().take(64 * 1024).read_to_end(&mut input) {
        return config_failure(&format!("hash-key: cannot read stdin: {e}"));
    }
    let key = input.trim_ascii();
    if key.is_empty() {
        return config_failure("hash-key: no key on stdin");
    }
    if key.iter().any(u8::is_ascii_whitespace) {
        return config_failure("hash-key: one key per run (the input contains whitespace)");
    }
    println!("{}", llmtap::auth::yaml_line(key));
    ExitCode::SUCCESS
}

/// Checks `/healthz` at `url`: a base URL (`http://host:8080`) gets `/healthz` appended, a URL
/// with a path is used as given. On failure prints one line saying what it got.
async fn healthcheck(url: &str) -> ExitCode {
    llmtap::vocab::crypto::install_crypto_provider();
    let url = health_url(url);
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("llmtap healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => {
            println!("llmtap healthcheck: {url} answered {}", r.status());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("llmtap healthcheck: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "llmtap healthcheck: {url}: {}",
                llmtap::error::error_chain(&e)
            );
            ExitCode::FAILURE
        }
    }
}

fn health_url(url: &str) -> String {
    // `127.0.0.1:8080` is what people type (it is how --listen is written): plain HTTP then.
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    match reqwest::Url::parse(&url) {
        Ok(mut u) if u.path() == "/" || u.path().is_empty() => {
            u.set_path("/healthz");
            u.to_string()
        }
        _ => url,
    }
}
