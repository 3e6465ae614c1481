//! Command-line interface. Every proxy flag has an `LLMTAP_*` env var; clap merges the two
//! (the flag wins), and `config::load` lays the result over the YAML file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{CompatProfile, LogFormat, Provider};

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
