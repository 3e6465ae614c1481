//! Command-line interface. Every proxy flag has an `LLMTAP_*` env var; clap merges the two
//! (the flag wins), and `ProxyArgs::apply` lays the result over the YAML file's config.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    check, CompatProfile, Config, ConfigError, Env, LogFormat, McpServerConfig, UpstreamConfig,
};
use crate::vocab::provider::Provider;

#[derive(Debug, Parser)]
#[command(
    name = "llmtap",
    version,
    about = "OpenAI-compatible reverse proxy that emits OpenTelemetry gen_ai traces and metrics",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy in front of the built-in scripted upstream, printing spans to the console.
    Demo {
        #[command(flatten)]
        proxy: Box<ProxyArgs>,
        /// Address of the built-in scripted upstream.
        #[arg(
            long,
            env = "LLMTAP_DEMO_UPSTREAM_LISTEN",
            default_value = "127.0.0.1:0"
        )]
        upstream_listen: String,
    },
    /// Run only the scripted OpenAI-compatible upstream (for examples, tests, docker-compose).
    MockUpstream {
        #[arg(long, env = "LLMTAP_MOCK_LISTEN", default_value = "127.0.0.1:9000")]
        listen: String,
        /// Directory of SSE files the `replay` scenario may stream.
        #[arg(long, env = "LLMTAP_MOCK_FIXTURES")]
        fixtures: Option<PathBuf>,
    },
    /// Run a stdio MCP server as a child, relaying stdin and stdout byte for byte and tracing
    /// every message (an agent's MCP config swaps `command` for `llmtap mcp-stdio -- command`).
    /// Exits with the child's status. Telemetry settings as for the proxy (OTLP; the console
    /// exporters are refused, since stdout is the protocol's).
    McpStdio {
        /// The server's name on spans and metrics (`llmtap.mcp.server`) [default: the
        /// command's file name].
        #[arg(long, env = "LLMTAP_MCP_NAME")]
        name: Option<String>,
        #[command(flatten)]
        proxy: Box<ProxyArgs>,
        /// The server's command and its arguments, after `--`.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Read a client key from stdin and print its `sha256:` line for `auth.keys` in the
    /// config (so the key itself never goes in a file).
    HashKey,
    /// Exit 0 when the `/healthz` endpoint at URL answers 200 (for container health checks).
    Healthcheck {
        #[arg(
            long,
            env = "LLMTAP_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:8080/healthz"
        )]
        url: String,
    },
}

/// Flags of the proxy itself. `None` means "not given": the file or the default applies.
#[derive(Debug, Default, Clone, Args)]
pub struct ProxyArgs {
    /// YAML configuration file.
    #[arg(long, env = "LLMTAP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "LLMTAP_LISTEN")]
    pub listen: Option<String>,
    /// Upstream base URL, e.g. https://api.openai.com/v1 (replaces the file's upstreams).
    #[arg(long, env = "LLMTAP_UPSTREAM")]
    pub upstream: Option<String>,
    /// Provider of the upstream [default: openai].
    #[arg(long, env = "LLMTAP_PROVIDER", value_enum)]
    pub provider: Option<Provider>,
    /// Name of an env var holding a key that replaces the client's credential (gateway mode).
    #[arg(long, env = "LLMTAP_UPSTREAM_API_KEY_ENV")]
    pub upstream_api_key_env: Option<String>,
    /// Also serve Prometheus `/metrics` on this address.
    #[arg(long, env = "LLMTAP_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Largest request body accepted, in bytes [default: 33554432].
    #[arg(long, env = "LLMTAP_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT [default: 30].
    #[arg(long, env = "LLMTAP_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<f64>,
    /// Seconds after SIGTERM/SIGINT during which `/readyz` answers 503 and requests are still
    /// served, before the listener closes (a load balancer's drain window) [default: 0].
    #[arg(long, env = "LLMTAP_DRAIN_DELAY")]
    pub drain_delay: Option<f64>,
    /// Threads serving connections, each a single-threaded runtime that keeps a connection
    /// and its upstream requests on one thread [default: the CPUs available].
    #[arg(long, env = "LLMTAP_SERVE_THREADS")]
    pub serve_threads: Option<usize>,
    /// Upstream connect timeout in seconds [default: 10].
    #[arg(long, env = "LLMTAP_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<f64>,
    /// Seconds to wait for the upstream's response headers [default: 600].
    #[arg(long, env = "LLMTAP_FIRST_BYTE_TIMEOUT")]
    pub first_byte_timeout: Option<f64>,
    /// Longest silence between two response chunks, in seconds [default: 300].
    #[arg(long, env = "LLMTAP_IDLE_TIMEOUT")]
    pub idle_timeout: Option<f64>,
    /// Inject stream_options.include_usage into streamed requests [default: true].
    #[arg(long, env = "LLMTAP_INJECT_USAGE")]
    pub inject_usage: Option<bool>,
    /// Log format [default: text].
    #[arg(long, env = "LLMTAP_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Redis shared by replicas, redis://HOST:PORT[/DB] or rediss:// (pending tool calls).
    #[arg(long, env = "LLMTAP_STATE_URL")]
    pub state_url: Option<String>,
    /// Extra PEM CA bundle to trust for HTTPS upstreams.
    #[arg(long, env = "LLMTAP_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Serve TLS with this PEM certificate chain (with --tls-key; SIGHUP reloads both).
    #[arg(long, env = "LLMTAP_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, env = "LLMTAP_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Export prompt and completion text (off by default).
    #[arg(long, env = "LLMTAP_CAPTURE_CONTENT")]
    pub capture_content: Option<bool>,
    /// Report llmtap's token estimates (no usage from the upstream) as usage, flagged
    /// llmtap.usage.estimated=true [default: false].
    #[arg(long, env = "LLMTAP_REPORT_ESTIMATED_USAGE")]
    pub report_estimated_usage: Option<bool>,
    /// Also write these backends' own span attributes next to the gen_ai ones, a comma
    /// list of openinference, langfuse, openlit [default: none].
    #[arg(long, env = "LLMTAP_COMPAT", value_enum, value_delimiter = ',')]
    pub compat: Option<Vec<CompatProfile>>,
    /// Distinct model names kept as metric attribute values before others become `other` [default: 100].
    #[arg(long, env = "LLMTAP_MAX_MODELS")]
    pub max_models: Option<usize>,
    /// Serve the live view at /ui [default: on when listening on loopback, and in `demo`].
    #[arg(long, env = "LLMTAP_UI", num_args = 0..=1, default_missing_value = "true")]
    pub ui: Option<bool>,
    /// Recent calls the live view keeps in memory [default: 1000].
    #[arg(long, env = "LLMTAP_UI_MAX_CALLS")]
    pub ui_max_calls: Option<usize>,
    /// Trace-viewer URL for a call's trace id, e.g. http://localhost:3000/explore?traceId={trace_id}.
    #[arg(long, env = "LLMTAP_UI_TRACE_URL")]
    pub ui_trace_url: Option<String>,
    /// Serve /ui only on --metrics-listen, not on the proxy's address [default: false].
    #[arg(long, env = "LLMTAP_UI_ONLY_ON_METRICS_LISTEN")]
    pub ui_only_on_metrics_listen: Option<bool>,
    /// MCP servers to relay, as name=url pairs (comma-separated); each is served at
    /// /mcp/NAME. Adds to (or replaces by name) the file's `mcp_servers`.
    #[arg(long, env = "LLMTAP_MCP_SERVERS", value_delimiter = ',')]
    pub mcp_servers: Option<Vec<String>>,
    /// Write trace context into MCP requests' params._meta [default: true].
    #[arg(long, env = "LLMTAP_MCP_TRACE_CONTEXT")]
    pub mcp_trace_context: Option<bool>,
}

impl ProxyArgs {
    /// The config to run with: the defaults, the `--config` file over them, these flags (and
    /// their variables) over that, then checked as a whole. Errors are one line naming the
    /// key, flag or variable.
    pub fn load(&self, env: &dyn Env) -> Result<Config, ConfigError> {
        let mut cfg = match &self.config {
            Some(path) => Config::from_file(path, env)?,
            None => Config::default(),
        };
        self.apply(&mut cfg, env)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Lays the flags that were given over `cfg`; one not given leaves `cfg`'s value. Each
    /// value is checked here, and a bad one is reported under the name it was given as: the
    /// `LLMTAP_*` variable when `env` holds that value, else the flag (clap has already
    /// merged the two, the flag winning).
    pub fn apply(&self, cfg: &mut Config, env: &dyn Env) -> Result<(), ConfigError> {
        let given = Given(env);
        self.apply_upstreams(cfg, &given)?;
        if let Some(v) = &self.listen {
            cfg.listen = given.check("listen", v.as_str(), check::socket_addr)?;
        }
        if let Some(v) = &self.metrics_listen {
            let addr = given.check("metrics_listen", v.as_str(), check::socket_addr)?;
            cfg.metrics_listen = Some(addr);
        }
        copy(&mut cfg.max_body_bytes, &self.max_body_bytes);
        if let Some(v) = self.shutdown_timeout {
            cfg.shutdown_timeout = given.check("shutdown_timeout", &v, secs)?;
        }
        if let Some(v) = self.drain_delay {
            cfg.drain_delay = given.check("drain_delay", &v, secs)?;
        }
        if let Some(v) = self.serve_threads {
            let n = given.check("serve_threads", &v, |&n| check::threads(n))?;
            cfg.serve_threads = Some(n);
        }
        copy(&mut cfg.log_format, &self.log_format);
        if let Some(v) = &self.state_url {
            given.check("state_url", v.as_str(), check::state_url)?;
            cfg.state_url = Some(v.clone());
        }
        copy_some(&mut cfg.ca_file, &self.ca_file);
        if self.tls_cert.is_some() || self.tls_key.is_some() {
            let (cert, key) = (self.tls_cert.as_ref(), self.tls_key.as_ref());
            check::tls_pair(cert, key, ("--tls-cert", "--tls-key")).map_err(ConfigError)?;
            cfg.tls_cert.clone_from(&self.tls_cert);
            cfg.tls_key.clone_from(&self.tls_key);
        }
        self.apply_telemetry(cfg);
        self.apply_mcp(cfg, &given)
    }

    /// `--upstream` replaces the file's upstreams and routes; the other upstream flags apply
    /// to every upstream there is.
    fn apply_upstreams(&self, cfg: &mut Config, given: &Given) -> Result<(), ConfigError> {
        if let Some(url) = &self.upstream {
            given.check("upstream", url.as_str(), check::http_url)?;
            let provider = self.provider.unwrap_or(Provider::Openai);
            cfg.upstreams = vec![UpstreamConfig::new("default", url, provider)];
            cfg.routes.clear();
            cfg.default_upstream = None;
        } else if let Some(p) = self.provider {
            cfg.upstreams.iter_mut().for_each(|u| u.provider = p);
        }
        let key = match &self.upstream_api_key_env {
            Some(var) => {
                let k = given.check("upstream_api_key_env", var.as_str(), |v| {
                    check::api_key(v, given.0)
                })?;
                Some((var, k))
            }
            None => None,
        };
        let timeout = |id, v: Option<f64>| v.map(|v| given.check(id, &v, secs)).transpose();
        let connect = timeout("connect_timeout", self.connect_timeout)?;
        let first_byte = timeout("first_byte_timeout", self.first_byte_timeout)?;
        let idle = timeout("idle_timeout", self.idle_timeout)?;
        for u in &mut cfg.upstreams {
            if let Some((var, k)) = &key {
                u.api_key_env = Some(var.to_string());
                u.api_key = Some(k.clone());
            }
            copy(&mut u.timeouts.connect, &connect);
            copy(&mut u.timeouts.first_byte, &first_byte);
            copy(&mut u.timeouts.idle, &idle);
            copy(&mut u.inject_usage, &self.inject_usage);
        }
        Ok(())
    }

    /// What telemetry, metrics and the live view record and show.
    fn apply_telemetry(&self, cfg: &mut Config) {
        copy(&mut cfg.telemetry.capture_content, &self.capture_content);
        copy(
            &mut cfg.telemetry.report_estimated_usage,
            &self.report_estimated_usage,
        );
        copy(&mut cfg.telemetry.compat, &self.compat);
        copy(&mut cfg.metrics.max_models, &self.max_models);
        copy_some(&mut cfg.ui.enabled, &self.ui);
        copy(&mut cfg.ui.max_calls, &self.ui_max_calls);
        copy_some(&mut cfg.ui.trace_url, &self.ui_trace_url);
        copy(
            &mut cfg.ui.only_on_metrics_listen,
            &self.ui_only_on_metrics_listen,
        );
    }

    /// `--mcp-servers name=url,...`: each pair replaces the file's server of that name or
    /// adds one (names and URLs are checked with the file's in `validate`).
    fn apply_mcp(&self, cfg: &mut Config, given: &Given) -> Result<(), ConfigError> {
        copy(&mut cfg.mcp_trace_context, &self.mcp_trace_context);
        let Some(pairs) = &self.mcp_servers else {
            return Ok(());
        };
        let parsed = given.check("mcp_servers", pairs.join(",").as_str(), |_| {
            pairs
                .iter()
                .map(|p| p.trim())
                .filter(|p| !p.is_empty())
                .map(|pair| match pair.split_once('=') {
                    Some((name, url)) => Ok(McpServerConfig {
                        name: name.trim().to_string(),
                        url: url.trim().to_string(),
                    }),
                    None => Err(format!("expected name=url, got {pair:?}")),
                })
                .collect::<Result<Vec<_>, String>>()
        })?;
        for server in parsed {
            cfg.mcp_servers.retain(|s| s.name != server.name);
            cfg.mcp_servers.push(server);
        }
        Ok(())
    }
}

/// `slot = value` when the flag was given.
fn copy<T: Clone>(slot: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        slot.clone_from(v);
    }
}

/// `slot = value` when the flag was given, for settings that are optional in the config.
fn copy_some<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
    if value.is_some() {
        slot.clone_from(value);
    }
}

fn secs(v: &f64) -> Result<std::time::Duration, String> {
    check::secs(*v)
}

/// The environment a flag's value may have come from.
struct Given<'e>(&'e dyn Env);

impl Given<'_> {
    /// The value of the `ProxyArgs` field `id` through `check`; an error names what the
    /// user typed it under.
    fn check<T: ToString + ?Sized, U>(
        &self,
        id: &str,
        value: &T,
        check: impl FnOnce(&T) -> Result<U, String>,
    ) -> Result<U, ConfigError> {
        check(value).map_err(|m| ConfigError(format!("{}: {m}", self.name_of(id, value))))
    }

    /// `--flag`, or its `LLMTAP_*` variable when that holds the value; both come from the
    /// clap definition above, so they cannot drift from what `--help` shows.
    fn name_of<T: ToString + ?Sized>(&self, id: &str, value: &T) -> String {
        let cmd = ProxyArgs::augment_args(clap::Command::new("llmtap"));
        let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == id) else {
            return id.to_string();
        };
        let var = arg.get_env().and_then(|v| v.to_str());
        match var {
            Some(var) if self.0.get(var).as_deref() == Some(value.to_string().as_str()) => {
                var.to_string()
            }
            _ => format!("--{}", arg.get_long().unwrap_or(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{load_yaml, test_env as env};

    /// A YAML file in the temp dir, removed when dropped.
    struct TempYaml(PathBuf);

    impl TempYaml {
        fn new(name: &str, text: &str) -> TempYaml {
            let path =
                std::env::temp_dir().join(format!("llmtap-cli-{name}-{}.yaml", std::process::id()));
            std::fs::write(&path, text).unwrap();
            TempYaml(path)
        }
    }

    impl Drop for TempYaml {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// The flags' half of `config::tests::live_view_is_on_for_loopback_only_unless_configured`.
    #[test]
    fn live_view_flags() {
        let args = ProxyArgs {
            listen: Some("0.0.0.0:8080".into()),
            ui: Some(true),
            ui_max_calls: Some(50),
            ui_trace_url: Some("https://tempo.example/trace/{trace_id}".into()),
            ..Default::default()
        };
        let cfg = args.load(&env(&[])).unwrap();
        assert!(cfg.ui_enabled());
        assert_eq!(cfg.ui.max_calls, 50);
        let args = ProxyArgs {
            ui: Some(false),
            ..Default::default()
        };
        assert!(!args.load(&env(&[])).unwrap().ui_enabled());
    }

    /// The flag's half of `config::tests::mcp_servers_from_the_file`.
    #[test]
    fn mcp_servers_flag() {
        let yaml = "mcp_servers:\n  github: https://mcp.example/github/mcp\n  local: http://127.0.0.1:8000/mcp\nmcp_trace_context: false\n";
        let file = TempYaml::new("mcp", yaml);
        // The flag replaces a server of the same name and adds the others.
        let args = ProxyArgs {
            config: Some(file.0.clone()),
            mcp_servers: Some(vec![
                "local=http://127.0.0.1:9000/mcp".into(),
                "docs=https://docs.example/mcp".into(),
            ]),
            mcp_trace_context: Some(true),
            ..Default::default()
        };
        let cfg = args.load(&env(&[])).unwrap();
        let urls: Vec<(&str, &str)> = cfg
            .mcp_servers
            .iter()
            .map(|s| (s.name.as_str(), s.url.as_str()))
            .collect();
        assert_eq!(
            urls,
            [
                ("github", "https://mcp.example/github/mcp"),
                ("local", "http://127.0.0.1:9000/mcp"),
                ("docs", "https://docs.example/mcp")
            ]
        );
        assert!(cfg.mcp_trace_context);
        let args = ProxyArgs {
            mcp_servers: Some(vec!["no-equals-sign".into()]),
            ..Default::default()
        };
        let e = args.load(&env(&[])).unwrap_err();
        assert!(
            e.0.contains("--mcp-servers") && e.0.contains("name=url"),
            "{e}"
        );
    }

    /// The flag's half of `config::tests::compat_profiles_from_file`.
    #[test]
    fn compat_profiles_flag() {
        let cli = Cli::try_parse_from(["llmtap", "--compat", "openlit,langfuse"]).unwrap();
        assert_eq!(
            cli.proxy.compat,
            Some(vec![CompatProfile::Openlit, CompatProfile::Langfuse])
        );
        let cfg = cli.proxy.load(&env(&[])).unwrap();
        assert_eq!(cfg.telemetry.compat.len(), 2);
    }

    /// A bad value is reported under the variable it came from, else under the flag.
    #[test]
    fn a_bad_value_names_the_flag_or_the_variable() {
        let args = ProxyArgs {
            serve_threads: Some(0),
            ..Default::default()
        };
        let e = args.load(&env(&[])).unwrap_err();
        assert!(e.0.starts_with("--serve-threads: must be from 1"), "{e}");
        let e = args
            .load(&env(&[("LLMTAP_SERVE_THREADS", "0")]))
            .unwrap_err();
        assert!(e.0.starts_with("LLMTAP_SERVE_THREADS: "), "{e}");
        // Every checked flag, by the name `--help` shows.
        for (flag, bad) in [
            ("--listen", "nowhere"),
            ("--metrics-listen", "nowhere"),
            ("--upstream", "ftp://x"),
            ("--upstream-api-key-env", "sk-literal"),
            ("--connect-timeout", "-1"),
            ("--first-byte-timeout", "-1"),
            ("--idle-timeout", "-1"),
            ("--shutdown-timeout", "-1"),
            ("--drain-delay", "1e10"),
            ("--serve-threads", "2000"),
            ("--state-url", "http://x"),
            ("--mcp-servers", "a"),
        ] {
            let cli = Cli::try_parse_from(["llmtap".to_string(), format!("{flag}={bad}")]);
            let e = cli.unwrap().proxy.load(&env(&[])).unwrap_err();
            assert!(e.0.starts_with(&format!("{flag}: ")), "{flag}: {e}");
        }
        let args = ProxyArgs {
            tls_key: Some("/k.pem".into()),
            ..Default::default()
        };
        let e = args.load(&env(&[])).unwrap_err();
        assert!(e.0.contains("--tls-cert: required with --tls-key"), "{e}");
    }

    /// The file under test: a value for each key `flags_and_env_beat_the_file` checks.
    const PRECEDENCE_FILE: &str = "upstreams:\n  - name: a\n    base_url: http://file/v1\n    timeouts:\n      idle_secs: 11\n  - name: b\n    base_url: http://file-b/v1\nshutdown_timeout_secs: 12\nmax_body_bytes: 13\ntelemetry:\n  compat: [langfuse]\nui:\n  max_calls: 14\n";

    /// Default < file < `LLMTAP_*` variable < flag, for a `*_secs` key, a per-upstream
    /// duration, a number, a list and the live view's size. clap reads the variables from
    /// the process environment, so the variable's rung runs in a child process of this test
    /// binary (`env_rung`) rather than changing this process's environment under the other
    /// tests.
    #[test]
    fn flags_and_env_beat_the_file_which_beats_defaults() {
        let default = Cli::try_parse_from(["llmtap"])
            .unwrap()
            .proxy
            .load(&env(&[]));
        let default = default.unwrap();
        assert_eq!(default.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(default.upstreams[0].timeouts.idle, Duration::from_secs(300));
        assert!(default.telemetry.compat.is_empty());

        let file = TempYaml::new("precedence", PRECEDENCE_FILE);
        let path = file.0.to_str().unwrap();
        let from_file = Cli::try_parse_from(["llmtap", "--config", path]).unwrap();
        let cfg = from_file.proxy.load(&env(&[])).unwrap();
        assert_eq!(cfg, load_yaml(PRECEDENCE_FILE, &env(&[])).unwrap());
        assert_eq!(cfg.shutdown_timeout, Duration::from_secs(12));
        assert_eq!(cfg.upstreams[0].timeouts.idle, Duration::from_secs(11));
        assert_eq!(cfg.upstreams[1].timeouts.idle, Duration::from_secs(300));
        assert_eq!(cfg.max_body_bytes, 13);
        assert_eq!(cfg.telemetry.compat, [CompatProfile::Langfuse]);
        assert_eq!(cfg.ui.max_calls, 14);

        let flags = Cli::try_parse_from([
            "llmtap",
            "--config",
            path,
            "--shutdown-timeout",
            "2.5",
            "--idle-timeout",
            "3",
            "--max-body-bytes",
            "4",
            "--compat",
            "openlit,openinference",
            "--ui-max-calls",
            "5",
        ])
        .unwrap();
        let cfg = flags.proxy.load(&env(&[])).unwrap();
        assert_eq!(cfg.shutdown_timeout, Duration::from_millis(2500));
        assert!(cfg
            .upstreams
            .iter()
            .all(|u| u.timeouts.idle == Duration::from_secs(3)));
        assert_eq!(cfg.max_body_bytes, 4);
        assert_eq!(
            cfg.telemetry.compat,
            [CompatProfile::Openlit, CompatProfile::Openinference]
        );
        assert_eq!(cfg.ui.max_calls, 5);
        // The rest of the file stands.
        assert_eq!(cfg.upstreams[0].base_url, "http://file/v1");

        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "cli::tests::env_rung",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LLMTAP_TEST_PRECEDENCE_FILE", path)
            .env("LLMTAP_SHUTDOWN_TIMEOUT", "7")
            .env("LLMTAP_IDLE_TIMEOUT", "8")
            .env("LLMTAP_MAX_BODY_BYTES", "9")
            .env("LLMTAP_COMPAT", "openlit")
            .env("LLMTAP_UI_MAX_CALLS", "10")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        // The child ran the rung (a filter that matched nothing would pass too).
        assert!(stdout.contains("1 passed"), "{stdout}");
    }

    /// The variables' rung of `flags_and_env_beat_the_file_which_beats_defaults`, run in a
    /// child with the variables set; a no-op when run on its own.
    #[test]
    fn env_rung() {
        let Ok(path) = std::env::var("LLMTAP_TEST_PRECEDENCE_FILE") else {
            return;
        };
        let vars = Cli::try_parse_from(["llmtap", "--config", &path]).unwrap();
        let cfg = vars.proxy.load(&crate::config::ProcessEnv).unwrap();
        assert_eq!(cfg.shutdown_timeout, Duration::from_secs(7));
        assert!(cfg
            .upstreams
            .iter()
            .all(|u| u.timeouts.idle == Duration::from_secs(8)));
        assert_eq!(cfg.max_body_bytes, 9);
        assert_eq!(cfg.telemetry.compat, [CompatProfile::Openlit]);
        assert_eq!(cfg.ui.max_calls, 10);
        assert_eq!(cfg.upstreams[0].base_url, "http://file/v1");
        // A flag beats its variable.
        let both = Cli::try_parse_from([
            "llmtap",
            "--config",
            &path,
            "--shutdown-timeout",
            "1",
            "--compat",
            "langfuse,openlit",
        ])
        .unwrap();
        let cfg = both.proxy.load(&crate::config::ProcessEnv).unwrap();
        assert_eq!(cfg.shutdown_timeout, Duration::from_secs(1));
        assert_eq!(
            cfg.telemetry.compat,
            [CompatProfile::Langfuse, CompatProfile::Openlit]
        );
        assert_eq!(cfg.max_body_bytes, 9);
    }
}
