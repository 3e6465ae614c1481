//! The one `Config` llmtap runs with, and how it is assembled.
//!
//! Precedence is defaults < YAML file < `LLMTAP_*` environment < command-line flags. Clap
//! already merges env and flags (a flag wins over its env var), so the file is loaded first
//! and every value clap produced is laid over it. Everything is validated here, once, so the
//! rest of the code can trust the values.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::ProxyArgs;

/// What kind of server an upstream is. Drives `gen_ai.provider.name` and the credential header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Openai,
    Azure,
    Vllm,
    Ollama,
    Anthropic,
    // The docs and the YAML spell it with an underscore; clap's own spelling is hyphenated.
    #[value(alias = "openai_compatible")]
    OpenaiCompatible,
    /// Google's Gemini Developer API (`generativelanguage.googleapis.com`).
    Gemini,
    /// Google Vertex AI (`{location}-aiplatform.googleapis.com`).
    #[value(alias = "vertex_ai")]
    VertexAi,
    /// Amazon Bedrock Runtime (`bedrock-runtime.{region}.amazonaws.com`).
    Bedrock,
}

impl Provider {
    /// The spelling of the config file and `--provider` (`openai_compatible`).
    pub fn config_name(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Azure => "azure",
            Provider::Vllm => "vllm",
            Provider::Ollama => "ollama",
            Provider::Anthropic => "anthropic",
            Provider::OpenaiCompatible => "openai_compatible",
            Provider::Gemini => "gemini",
            Provider::VertexAi => "vertex_ai",
            Provider::Bedrock => "bedrock",
        }
    }

    /// The `gen_ai.provider.name` value (well-known values from semconv, custom ones otherwise).
    pub fn semconv_name(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Azure => "azure.ai.openai",
            Provider::Vllm => "vllm",
            Provider::Ollama => "ollama",
            Provider::Anthropic => "anthropic",
            Provider::OpenaiCompatible => "openai_compatible",
            Provider::Gemini => "gcp.gemini",
            Provider::VertexAi => "gcp.vertex_ai",
            Provider::Bedrock => "aws.bedrock",
        }
    }
}

/// A GenAI backend whose own attribute names are added next to the `gen_ai.*` ones
/// (`telemetry.compat`); see `telemetry::compat` for the names and where each comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CompatProfile {
    /// OpenInference (Arize Phoenix older than 15.10, Arize AX).
    Openinference,
    /// Langfuse's OTLP ingestion.
    Langfuse,
    /// OpenLIT's dashboards.
    Openlit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// Per-upstream timeouts, in seconds in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Until the response headers arrive. Reasoning models think for minutes, so the default
    /// is generous.
    pub first_byte: Duration,
    /// Longest silence between two body chunks. Any bytes end a silence, SSE keep-alive
    /// comments included: upstreams send them so that proxies keep a thinking model's stream
    /// open, so they are activity. `max_stream` bounds a stream that sends only those.
    pub idle: Duration,
    /// Longest a response body may take from its headers to its end, however active; past it
    /// the stream is cut (`error.type` `timeout`, `llmtap.limits.hit` `max_stream_duration`).
    pub max_stream: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(600),
            idle: Duration::from_secs(300),
            max_stream: Duration::from_secs(3600),
        }
    }
}

/// USD per million tokens for one model pattern.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Model name or glob (`*`, `?`).
    pub model: String,
    pub input: f64,
    /// Price of cached input tokens; defaults to the input price when absent.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Price of input tokens written to the provider's cache (Anthropic's cache writes);
    /// defaults to the input price when absent.
    #[serde(default)]
    pub cache_write_input: Option<f64>,
    pub output: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: String,
    /// Base URL without a trailing slash; `/v1/<rest>` is forwarded to `<base_url>/<rest>`.
    pub base_url: String,
    pub provider: Provider,
    /// Name of the env var holding the key that replaces the client's credential.
    pub api_key_env: Option<String>,
    /// The key itself, read from `api_key_env` at load. Never logged (see `Debug` below).
    pub api_key: Option<Secret>,
    /// Inject `stream_options.include_usage` into streamed requests that lack it.
    pub inject_usage: bool,
    pub timeouts: Timeouts,
    /// Price overrides for this upstream; `None` means the global table applies.
    pub prices: Option<Vec<Price>>,
    /// Sign requests with AWS SigV4 (`aws_sigv4:`), with llmtap's own AWS credentials.
    pub aws_signing: Option<crate::sigv4::AwsSigning>,
}

/// A credential. Its `Debug` never shows the value, so it cannot leak through a log line.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The PEM files inbound TLS is served from.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Client keys (gateway mode): when present, every proxied request must carry one.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub keys: Vec<ClientKeyConfig>,
}

/// One client key: its SHA-256 (never the key), its tenant and its limits.
#[derive(Clone, PartialEq)]
pub struct ClientKeyConfig {
    pub sha256: [u8; 32],
    pub tenant: String,
    pub requests_per_minute: Option<u32>,
    pub max_concurrent: Option<u32>,
}

impl std::fmt::Debug for ClientKeyConfig {
    // The digest is not the key, but a weak key could be found from it: show only a prefix.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeyConfig")
            .field(
                "sha256",
                &format!("{:02x}{:02x}…", self.sha256[0], self.sha256[1]),
            )
            .field("tenant", &self.tenant)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Model name or glob.
    pub model: String,
    pub upstream: String,
}

/// A redaction rule applied to captured content before export.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactRule {
    pub pattern: String,
    pub replacement: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Export prompts/completions/tool arguments (opt-in). `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` wins when set.
    pub capture_content: bool,
    /// Captured content is cut to this many characters of text per attribute.
    pub content_max_chars: usize,
    /// Write llmtap's token estimates (no usage from the upstream) to the standard usage
    /// names (`gen_ai.usage.*`, the token metrics, `llmtap.cost`), flagged
    /// `llmtap.usage.estimated=true`. Off: estimates stay under `llmtap.usage.estimated.*` and
    /// `llmtap.cost.estimated`, as the conventions count only usage the response reported.
    pub report_estimated_usage: bool,
    pub redact: Vec<RedactRule>,
    /// Baggage keys copied onto spans as `llmtap.baggage.<key>`... unless they are already attribute names.
    pub baggage_attributes: Vec<String>,
    /// Request headers copied onto spans as `llmtap.request.header.<name>`.
    pub header_attributes: Vec<String>,
    /// Header whose value becomes `gen_ai.conversation.id`.
    pub conversation_id_header: Option<String>,
    /// How long a requested tool call waits for its result before its span is emitted anyway.
    pub tool_call_ttl: Duration,
    /// Most pending tool calls remembered at once (all tenants); past it the oldest is ended
    /// unanswered.
    pub max_pending_tool_calls: usize,
    /// Most pending tool calls remembered for one tenant (client keys); past it the tenant's
    /// further calls are not tracked, so no tenant can push out another's.
    pub max_pending_tool_calls_per_tenant: usize,
    /// Requests slower than this are always kept by the sampler.
    pub slow_request: Duration,
    /// Finished requests waiting for the telemetry worker; beyond this they are dropped and counted.
    pub queue_size: usize,
    /// Backends whose own names are added to the spans (none by default).
    pub compat: Vec<CompatProfile>,
    /// Names (globs: `*`, `?`) of tools whose calls are the response's structured output, not
    /// work for the application, besides the shapes llmtap recognises itself
    /// (`telemetry::output_tools`): no pending state, no `execute_tool` span.
    pub output_tools: Vec<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            capture_content: false,
            content_max_chars: 16 * 1024,
            report_estimated_usage: false,
            redact: default_redactions(),
            baggage_attributes: Vec::new(),
            header_attributes: Vec::new(),
            conversation_id_header: None,
            tool_call_ttl: Duration::from_secs(600),
            max_pending_tool_calls: 10_000,
            max_pending_tool_calls_per_tenant: 1_000,
            slow_request: Duration::from_secs(10),
            queue_size: 8192,
            compat: Vec::new(),
            output_tools: Vec::new(),
        }
    }
}

/// Emails, OpenAI-style keys and bearer tokens: what most often leaks into prompts.
pub fn default_redactions() -> Vec<RedactRule> {
    [
        (
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
            "[REDACTED_EMAIL]",
        ),
        (r"sk-[A-Za-z0-9_-]{8,}", "[REDACTED_KEY]"),
        (r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}", "Bearer [REDACTED]"),
        (
            r#"(?i)("?api[_-]?key"?\s*[:=]\s*"?)[^"\s,}]+"#,
            "${1}[REDACTED]",
        ),
    ]
    .into_iter()
    .map(|(p, r)| RedactRule {
        pattern: p.to_string(),
        replacement: r.to_string(),
    })
    .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Distinct model names allowed as metric attribute values before new ones become `other`.
    pub max_models: usize,
    /// Distinct `gen_ai.conversation.id` values on the `llmtap.conversation.*` counters
    /// before new ones become `other`; 0 turns those counters off.
    pub max_conversations: usize,
    /// Baggage keys that become metric attributes (opt-in, capped like models).
    pub baggage_attributes: Vec<String>,
    /// Request headers that become metric attributes (opt-in, capped like models).
    pub header_attributes: Vec<String>,
    /// Distinct values per opt-in attribute before new ones become `other`.
    pub max_attribute_values: usize,
    /// The client key's tenant (`auth.keys[].tenant`) as the metric attribute `llmtap.tenant`.
    pub tenant_attribute: bool,
    /// Serve `/metrics` on the listen port.
    pub prometheus: bool,
    pub prices: Vec<Price>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            max_models: 100,
            max_conversations: 100,
            baggage_attributes: Vec::new(),
            header_attributes: Vec::new(),
            max_attribute_values: 100,
            tenant_attribute: false,
            prometheus: true,
            prices: crate::telemetry::cost::default_prices(),
        }
    }
}

/// The live view at `/ui` (recent calls, one call's timeline, charts of the last minutes).
#[derive(Debug, Clone, PartialEq)]
pub struct UiConfig {
    /// `None`: on when the listen address is loopback, off otherwise.
    pub enabled: Option<bool>,
    /// Finished calls kept in memory for the view, newest first.
    pub max_calls: usize,
    /// Trace-viewer link for a call, with `{trace_id}` (and optionally `{span_id}`) replaced.
    pub trace_url: Option<String>,
    /// Serve `/ui` only on `metrics_listen`, not on the proxy's own address.
    pub only_on_metrics_listen: bool,
    /// Baggage key (or configured header/attribute name) whose value the view shows as tenant.
    pub tenant_key: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            enabled: None,
            max_calls: 1000,
            trace_url: None,
            only_on_metrics_listen: false,
            tenant_key: "tenant".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    /// Serve `/metrics` on a separate address as well.
    pub metrics_listen: Option<SocketAddr>,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    pub default_upstream: String,
    pub max_body_bytes: usize,
    /// How long a client has to send a request's head, from connecting (or from the previous
    /// response on a kept-alive connection); slower clients are disconnected.
    pub header_read_timeout: Duration,
    /// How long a client has to send an inference request's whole body once its head
    /// arrived; a slower (or stalled) body is answered 408 and its key's concurrency slot freed.
    pub body_read_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// After SIGTERM/SIGINT, how long `/readyz` answers 503 while every request is still
    /// served, so a load balancer takes the instance out of rotation before the listener
    /// closes (the Kubernetes pre-stop pattern). Zero: stop accepting at once.
    pub drain_delay: Duration,
    /// Threads serving connections (`--serve-threads`); `None`: the CPUs available.
    pub serve_threads: Option<usize>,
    pub log_format: LogFormat,
    /// Extra PEM CA bundle trusted for HTTPS upstreams, on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Redis shared by replicas (`redis://HOST:PORT[/DB]`, `rediss://` for TLS): pending tool
    /// calls live there so any replica can close them. `None`: each replica alone.
    pub state_url: Option<String>,
    /// Inbound TLS: PEM certificate chain and private key (both or neither).
    pub tls: Option<TlsFiles>,
    pub telemetry: TelemetryConfig,
    pub metrics: MetricsConfig,
    pub ui: UiConfig,
    /// Client keys; `None` (the default) lets every request through.
    pub auth: Option<AuthConfig>,
    /// MCP servers llmtap relays to, each served at `/mcp/{name}` (`mcp_servers:` in the
    /// file, `--mcp-servers name=url,...`). Only these: a request never names its own URL.
    pub mcp_servers: Vec<McpServerConfig>,
    /// Write the MCP span's trace context into each MCP request's `params._meta`
    /// (`traceparent`, `tracestate`, `baggage`; SEP-414), never over the client's own.
    pub mcp_trace_context: bool,
}

/// One MCP server behind llmtap.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerConfig {
    /// The path segment it is served under (`/mcp/{name}`): letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Its Streamable HTTP endpoint, e.g. `http://127.0.0.1:8000/mcp`.
    pub url: String,
}

impl Config {
    /// A config with one upstream, as `--upstream URL` gives.
    pub fn with_upstream(base_url: &str, provider: Provider) -> Config {
        Config {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            metrics_listen: None,
            upstreams: vec![UpstreamConfig {
                name: "default".into(),
                base_url: base_url.trim_end_matches('/').to_string(),
                provider,
                api_key_env: None,
                api_key: None,
                inject_usage: true,
                timeouts: Timeouts::default(),
                prices: None,
                aws_signing: None,
            }],
            routes: Vec::new(),
            default_upstream: "default".into(),
            max_body_bytes: 32 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            serve_threads: None,
            log_format: LogFormat::Text,
            ca_file: None,
            state_url: None,
            tls: None,
            telemetry: TelemetryConfig::default(),
            metrics: MetricsConfig::default(),
            ui: UiConfig::default(),
            auth: None,
            mcp_servers: Vec::new(),
            mcp_trace_context: true,
        }
    }

    /// Whether `/ui` is served: as configured, else only when listening on loopback (nobody
    /// else can reach it there).
    pub fn ui_enabled(&self) -> bool {
        self.ui
            .enabled
            .unwrap_or_else(|| self.listen.ip().is_loopback())
    }

    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// A configuration problem, rendered as one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

// ---- the YAML file -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    metrics_listen: Option<String>,
    upstreams: Option<Vec<FileUpstream>>,
    routes: Option<Vec<FileRoute>>,
    default_upstream: Option<String>,
    max_body_bytes: Option<usize>,
    header_read_timeout_secs: Option<f64>,
    body_read_timeout_secs: Option<f64>,
    shutdown_timeout_secs: Option<f64>,
    drain_delay_secs: Option<f64>,
    serve_threads: Option<usize>,
    log_format: Option<LogFormat>,
    ca_file: Option<PathBuf>,
    state_url: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    telemetry: Option<FileTelemetry>,
    metrics: Option<FileMetrics>,
    ui: Option<FileUi>,
    auth: Option<FileAuth>,
    /// name -> URL.
    mcp_servers: Option<std::collections::BTreeMap<String, String>>,
    mcp_trace_context: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUi {
    enabled: Option<bool>,
    max_calls: Option<usize>,
    trace_url: Option<String>,
    only_on_metrics_listen: Option<bool>,
    tenant_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    keys: Vec<FileClientKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClientKey {
    sha256: String,
    tenant: String,
    requests_per_minute: Option<u32>,
    max_concurrent: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUpstream {
    name: String,
    base_url: String,
    provider: Option<Provider>,
    api_key_env: Option<String>,
    inject_usage: Option<bool>,
    timeouts: Option<FileTimeouts>,
    prices: Option<Vec<Price>>,
    aws_sigv4: Option<FileAwsSigv4>,
}

/// `aws_sigv4:` on an upstream: sign its requests with AWS SigV4 (see `crate::sigv4`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAwsSigv4 {
    /// Default: from a `bedrock-runtime.{region}.amazonaws.com` base URL, else `AWS_REGION`,
    /// else `AWS_DEFAULT_REGION`.
    region: Option<String>,
    /// The signing name; default `bedrock`.
    service: Option<String>,
    /// The shared credentials file's profile; default `AWS_PROFILE`, else `default`.
    profile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTimeouts {
    connect_secs: Option<f64>,
    first_byte_secs: Option<f64>,
    idle_secs: Option<f64>,
    max_stream_secs: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    model: String,
    upstream: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTelemetry {
    capture_content: Option<bool>,
    content_max_chars: Option<usize>,
    report_estimated_usage: Option<bool>,
    redact: Option<Vec<RedactRule>>,
    /// Keep the built-in redaction rules in front of `redact` (default true).
    default_redactions: Option<bool>,
    baggage_attributes: Option<Vec<String>>,
    header_attributes: Option<Vec<String>>,
    conversation_id_header: Option<String>,
    tool_call_ttl_secs: Option<f64>,
    max_pending_tool_calls: Option<usize>,
    max_pending_tool_calls_per_tenant: Option<usize>,
    slow_request_secs: Option<f64>,
    queue_size: Option<usize>,
    compat: Option<Vec<CompatProfile>>,
    output_tools: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    max_models: Option<usize>,
    max_conversations: Option<usize>,
    baggage_attributes: Option<Vec<String>>,
    header_attributes: Option<Vec<String>>,
    max_attribute_values: Option<usize>,
    tenant_attribute: Option<bool>,
    prometheus: Option<bool>,
    prices: Option<Vec<Price>>,
    /// Keep the shipped OpenAI price table under `prices` (default true).
    default_prices: Option<bool>,
}

/// The environment as a lookup, so tests can pass a map instead of mutating the process env.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

fn secs(key: &str, v: f64) -> Result<Duration, ConfigError> {
    if (0.0..1e9).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(err(format!(
            "{key}: must be a non-negative number of seconds, got {v}"
        )))
    }
}

fn threads(key: &str, v: usize) -> Result<usize, ConfigError> {
    if (1..=1024).contains(&v) {
        Ok(v)
    } else {
        Err(err(format!(
            "{key}: must be from 1 to 1024 threads, got {v}"
        )))
    }
}

fn addr(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse()
        .map_err(|_| err(format!("{key}: not a socket address (host:port): {v:?}")))
}

/// Builds the config from the parsed flags (which already include `LLMTAP_*` env values).
pub fn load(args: &ProxyArgs, env: &dyn Env) -> Result<Config, ConfigError> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    let mut cfg = from_file(file, env)?;
    apply_args(&mut cfg, args, env)?;
    validate(&cfg)?;
    Ok(cfg)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("config file {}: {e}", path.display())))?;
    parse_yaml(&text).map_err(|e| err(format!("config file {}: {}", path.display(), e.0)))
}

fn parse_yaml(text: &str) -> Result<FileConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_norway::from_str(text).map_err(|e| {
        // One line: serde_norway already names the key path (`upstreams[0]: unknown field ...`).
        err(e.to_string().replace('\n', " "))
    })
}

/// Loads only the YAML text; used by tests of shipped configs.
pub fn load_yaml(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
    let cfg = from_file(parse_yaml(text)?, env)?;
    validate(&cfg)?;
    Ok(cfg)
}

fn from_file(file: FileConfig, env: &dyn Env) -> Result<Config, ConfigError> {
    let mut cfg = Config::with_upstream("https://api.openai.com/v1", Provider::Openai);
    if let Some(v) = &file.listen {
        cfg.listen = addr("listen", v)?;
    }
    if let Some(v) = &file.metrics_listen {
        cfg.metrics_listen = Some(addr("metrics_listen", v)?);
    }
    if let Some(ups) = file.upstreams {
        cfg.upstreams = ups
            .into_iter()
            .enumerate()
            .map(|(i, u)| upstream_from_file(i, u, env))
            .collect::<Result<_, _>>()?;
        cfg.default_upstream = cfg
            .upstreams
            .first()
            .map(|u| u.name.clone())
            .unwrap_or_default();
    }
    if let Some(routes) = file.routes {
        cfg.routes = routes
            .into_iter()
            .map(|r| RouteConfig {
                model: r.model,
                upstream: r.upstream,
            })
            .collect();
    }
    if let Some(d) = file.default_upstream {
        cfg.default_upstream = d;
    }
    if let Some(v) = file.max_body_bytes {
        cfg.max_body_bytes = v;
    }
    if let Some(v) = file.header_read_timeout_secs {
        cfg.header_read_timeout = secs("header_read_timeout_secs", v)?;
        if cfg.header_read_timeout.is_zero() {
            return Err(err("header_read_timeout_secs: must be greater than 0"));
        }
    }
    if let Some(v) = file.body_read_timeout_secs {
        cfg.body_read_timeout = secs("body_read_timeout_secs", v)?;
        if cfg.body_read_timeout.is_zero() {
            return Err(err("body_read_timeout_secs: must be greater than 0"));
        }
    }
    if let Some(v) = file.shutdown_timeout_secs {
        cfg.shutdown_timeout = secs("shutdown_timeout_secs", v)?;
    }
    if let Some(v) = file.drain_delay_secs {
        cfg.drain_delay = secs("drain_delay_secs", v)?;
    }
    if let Some(v) = file.serve_threads {
        cfg.serve_threads = Some(threads("serve_threads", v)?);
    }
    if let Some(v) = file.log_format {
        cfg.log_format = v;
    }
    cfg.ca_file = file.ca_file;
    if let Some(url) = file.state_url {
        cfg.state_url = Some(check_state_url("state_url", &url)?);
    }
    cfg.tls = tls_files(file.tls_cert, file.tls_key, "tls_cert", "tls_key")?;
    if let Some(t) = file.telemetry {
        let d = &mut cfg.telemetry;
        if let Some(v) = t.capture_content {
            d.capture_content = v;
        }
        if let Some(v) = t.content_max_chars {
            d.content_max_chars = v;
        }
        if let Some(v) = t.report_estimated_usage {
            d.report_estimated_usage = v;
        }
        let mut rules = if t.default_redactions.unwrap_or(true) {
            default_redactions()
        } else {
            Vec::new()
        };
        rules.extend(t.redact.unwrap_or_default());
        d.redact = rules;
        if let Some(v) = t.baggage_attributes {
            d.baggage_attributes = v;
        }
        if let Some(v) = t.header_attributes {
            d.header_attributes = v.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        }
        d.conversation_id_header = t.conversation_id_header.map(|h| h.to_ascii_lowercase());
        if let Some(v) = t.tool_call_ttl_secs {
            d.tool_call_ttl = secs("telemetry.tool_call_ttl_secs", v)?;
        }
        if let Some(v) = t.max_pending_tool_calls {
            d.max_pending_tool_calls = v;
        }
        if let Some(v) = t.max_pending_tool_calls_per_tenant {
            d.max_pending_tool_calls_per_tenant = v;
        }
        if let Some(v) = t.slow_request_secs {
            d.slow_request = secs("telemetry.slow_request_secs", v)?;
        }
        if let Some(v) = t.queue_size {
            d.queue_size = v;
        }
        if let Some(v) = t.compat {
            d.compat = v;
        }
        if let Some(v) = t.output_tools {
            d.output_tools = v;
        }
    }
    if let Some(m) = file.metrics {
        let d = &mut cfg.metrics;
        if let Some(v) = m.max_models {
            d.max_models = v;
        }
        if let Some(v) = m.max_conversations {
            d.max_conversations = v;
        }
        if let Some(v) = m.baggage_attributes {
            d.baggage_attributes = v;
        }
        if let Some(v) = m.header_attributes {
            d.header_attributes = v.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        }
        if let Some(v) = m.max_attribute_values {
            d.max_attribute_values = v;
        }
        if let Some(v) = m.tenant_attribute {
            d.tenant_attribute = v;
        }
        if let Some(v) = m.prometheus {
            d.prometheus = v;
        }
        // User prices come first so they win over the shipped table (first match wins).
        let mut prices = m.prices.unwrap_or_default();
        if m.default_prices.unwrap_or(true) {
            prices.extend(crate::telemetry::cost::default_prices());
        }
        d.prices = prices;
    }
    if let Some(u) = file.ui {
        let d = &mut cfg.ui;
        d.enabled = u.enabled;
        if let Some(v) = u.max_calls {
            d.max_calls = v;
        }
        d.trace_url = u.trace_url;
        if let Some(v) = u.only_on_metrics_listen {
            d.only_on_metrics_listen = v;
        }
        if let Some(v) = u.tenant_key {
            d.tenant_key = v;
        }
    }
    if let Some(a) = file.auth {
        cfg.auth = Some(auth_from_file(a)?);
    }
    for (name, url) in file.mcp_servers.unwrap_or_default() {
        cfg.mcp_servers.push(McpServerConfig { name, url });
    }
    if let Some(v) = file.mcp_trace_context {
        cfg.mcp_trace_context = v;
    }
    Ok(cfg)
}

/// `name=url` pairs from `--mcp-servers` / `LLMTAP_MCP_SERVERS`: each replaces a file entry
/// of the same name or adds one.
fn apply_mcp_servers(cfg: &mut Config, key: &str, pairs: &[String]) -> Result<(), ConfigError> {
    for pair in pairs.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let Some((name, url)) = pair.split_once('=') else {
            return Err(err(format!("{key}: expected name=url, got {pair:?}")));
        };
        let (name, url) = (name.trim().to_string(), url.trim().to_string());
        cfg.mcp_servers.retain(|s| s.name != name);
        cfg.mcp_servers.push(McpServerConfig { name, url });
    }
    Ok(())
}

/// MCP server names are one path segment; URLs are http(s) with a host.
fn validate_mcp(cfg: &Config) -> Result<(), ConfigError> {
    for s in &cfg.mcp_servers {
        let key = format!("mcp_servers.{}", s.name);
        let ok_name = !s.name.is_empty()
            && s.name.len() <= 64
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.name != "."
            && s.name != "..";
        if !ok_name {
            return Err(err(format!(
                "{key}: a server name is 1-64 letters, digits, '-', '_' or '.'"
            )));
        }
        check_base_url(&key, &s.url)?;
    }
    Ok(())
}

fn auth_from_file(a: FileAuth) -> Result<AuthConfig, ConfigError> {
    if a.keys.is_empty() {
        return Err(err(
            "auth.keys: at least one key is required (leave auth out to let every request in)",
        ));
    }
    let mut keys: Vec<ClientKeyConfig> = Vec::with_capacity(a.keys.len());
    for (i, k) in a.keys.into_iter().enumerate() {
        let key = |f: &str| format!("auth.keys[{i}].{f}");
        let sha256 = parse_sha256(k.sha256.trim()).ok_or_else(|| {
            let what = if k.sha256.starts_with("sk-") {
                "looks like a key itself; put its SHA-256 here"
            } else {
                "must be 64 hex characters, the SHA-256 of the key"
            };
            err(format!(
                "{}: {what} (`llmtap hash-key` prints the line)",
                key("sha256")
            ))
        })?;
        if keys.iter().any(|o| o.sha256 == sha256) {
            return Err(err(format!("{}: the same key twice", key("sha256"))));
        }
        if k.tenant.trim().is_empty() {
            return Err(err(format!("{}: must not be empty", key("tenant"))));
        }
        if k.requests_per_minute == Some(0) {
            return Err(err(format!(
                "{}: must be at least 1 (leave it out for no limit)",
                key("requests_per_minute")
            )));
        }
        if k.max_concurrent == Some(0) {
            return Err(err(format!(
                "{}: must be at least 1 (leave it out for no limit)",
                key("max_concurrent")
            )));
        }
        keys.push(ClientKeyConfig {
            sha256,
            tenant: k.tenant,
            requests_per_minute: k.requests_per_minute,
            max_concurrent: k.max_concurrent,
        });
    }
    Ok(AuthConfig { keys })
}

fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn upstream_from_file(
    i: usize,
    u: FileUpstream,
    env: &dyn Env,
) -> Result<UpstreamConfig, ConfigError> {
    let key = |k: &str| format!("upstreams[{i}].{k}");
    let mut timeouts = Timeouts::default();
    if let Some(t) = u.timeouts {
        if let Some(v) = t.connect_secs {
            timeouts.connect = secs(&key("timeouts.connect_secs"), v)?;
        }
        if let Some(v) = t.first_byte_secs {
            timeouts.first_byte = secs(&key("timeouts.first_byte_secs"), v)?;
        }
        if let Some(v) = t.idle_secs {
            timeouts.idle = secs(&key("timeouts.idle_secs"), v)?;
        }
        if let Some(v) = t.max_stream_secs {
            timeouts.max_stream = secs(&key("timeouts.max_stream_secs"), v)?;
        }
    }
    let api_key = resolve_key(&key("api_key_env"), u.api_key_env.as_deref(), env)?;
    let aws_signing = match u.aws_sigv4 {
        None => None,
        Some(s) => {
            let host = reqwest::Url::parse(&u.base_url)
                .ok()
                .and_then(|b| b.host_str().map(str::to_owned))
                .unwrap_or_default();
            let region = s
                .region
                .or_else(|| crate::sigv4::region_from_host(&host))
                .or_else(|| env.get("AWS_REGION"))
                .or_else(|| env.get("AWS_DEFAULT_REGION"))
                .ok_or_else(|| {
                    err(format!(
                        "{}: no region (set it, use a bedrock-runtime.{{region}}.amazonaws.com base_url, or AWS_REGION)",
                        key("aws_sigv4.region")
                    ))
                })?;
            let credentials = crate::sigv4::credentials_from(|k| env.get(k), s.profile.as_deref())
                .map_err(|e| err(format!("{}: {e}", key("aws_sigv4"))))?;
            Some(crate::sigv4::AwsSigning {
                region,
                service: s.service.unwrap_or_else(|| "bedrock".to_owned()),
                credentials,
            })
        }
    };
    Ok(UpstreamConfig {
        name: u.name,
        base_url: u.base_url.trim_end_matches('/').to_string(),
        provider: u.provider.unwrap_or(Provider::OpenaiCompatible),
        api_key_env: u.api_key_env,
        api_key,
        inject_usage: u.inject_usage.unwrap_or(true),
        timeouts,
        prices: u.prices,
        aws_signing,
    })
}

fn resolve_key(key: &str, var: Option<&str>, env: &dyn Env) -> Result<Option<Secret>, ConfigError> {
    let Some(var) = var else { return Ok(None) };
    if var.starts_with("sk-") || var.contains(char::is_whitespace) {
        // A literal key pasted where the variable name goes: refuse rather than use it,
        // because keys must never live in the file.
        return Err(err(format!(
            "{key}: must name an environment variable, not contain the key itself"
        )));
    }
    match env.get(var) {
        Some(v) => Ok(Some(Secret(v))),
        None => Err(err(format!("{key}: environment variable {var} is not set"))),
    }
}

fn apply_args(cfg: &mut Config, a: &ProxyArgs, env: &dyn Env) -> Result<(), ConfigError> {
    if let Some(v) = &a.listen {
        cfg.listen = addr(&flag_key("--listen", "LLMTAP_LISTEN", v, env), v)?;
    }
    if let Some(v) = &a.metrics_listen {
        let key = flag_key("--metrics-listen", "LLMTAP_METRICS_LISTEN", v, env);
        cfg.metrics_listen = Some(addr(&key, v)?);
    }
    if let Some(url) = &a.upstream {
        check_base_url(&flag_key("--upstream", "LLMTAP_UPSTREAM", url, env), url)?;
        // The simple case replaces whatever the file said about upstreams and routes.
        let mut one = Config::with_upstream(url, a.provider.unwrap_or(Provider::Openai));
        cfg.upstreams = std::mem::take(&mut one.upstreams);
        cfg.routes.clear();
        cfg.default_upstream = "default".into();
    } else if let Some(p) = a.provider {
        for u in &mut cfg.upstreams {
            u.provider = p;
        }
    }
    if let Some(var) = &a.upstream_api_key_env {
        let k = resolve_key("--upstream-api-key-env", Some(var), env)?;
        for u in &mut cfg.upstreams {
            u.api_key_env = Some(var.clone());
            u.api_key = k.clone();
        }
    }
    for u in &mut cfg.upstreams {
        if let Some(v) = a.connect_timeout {
            u.timeouts.connect = secs("--connect-timeout", v)?;
        }
        if let Some(v) = a.first_byte_timeout {
            u.timeouts.first_byte = secs("--first-byte-timeout", v)?;
        }
        if let Some(v) = a.idle_timeout {
            u.timeouts.idle = secs("--idle-timeout", v)?;
        }
        if let Some(v) = a.inject_usage {
            u.inject_usage = v;
        }
    }
    if let Some(v) = a.max_body_bytes {
        cfg.max_body_bytes = v;
    }
    if let Some(v) = a.shutdown_timeout {
        cfg.shutdown_timeout = secs("--shutdown-timeout", v)?;
    }
    if let Some(v) = a.drain_delay {
        cfg.drain_delay = secs("--drain-delay", v)?;
    }
    if let Some(v) = a.serve_threads {
        let key = flag_key(
            "--serve-threads",
            "LLMTAP_SERVE_THREADS",
            &v.to_string(),
            env,
        );
        cfg.serve_threads = Some(threads(&key, v)?);
    }
    if let Some(v) = a.log_format {
        cfg.log_format = v;
    }
    if let Some(v) = &a.state_url {
        let key = flag_key("--state-url", "LLMTAP_STATE_URL", v, env);
        cfg.state_url = Some(check_state_url(&key, v)?);
    }
    if let Some(v) = &a.ca_file {
        cfg.ca_file = Some(v.clone());
    }
    if a.tls_cert.is_some() || a.tls_key.is_some() {
        cfg.tls = tls_files(
            a.tls_cert.clone(),
            a.tls_key.clone(),
            "--tls-cert",
            "--tls-key",
        )?;
    }
    if let Some(v) = a.capture_content {
        cfg.telemetry.capture_content = v;
    }
    if let Some(v) = a.report_estimated_usage {
        cfg.telemetry.report_estimated_usage = v;
    }
    if let Some(v) = &a.compat {
        cfg.telemetry.compat = v.clone();
    }
    if let Some(v) = a.max_models {
        cfg.metrics.max_models = v;
    }
    if let Some(v) = a.ui {
        cfg.ui.enabled = Some(v);
    }
    if let Some(v) = a.ui_max_calls {
        cfg.ui.max_calls = v;
    }
    if let Some(v) = &a.ui_trace_url {
        cfg.ui.trace_url = Some(v.clone());
    }
    if let Some(v) = a.ui_only_on_metrics_listen {
        cfg.ui.only_on_metrics_listen = v;
    }
    if let Some(v) = &a.mcp_servers {
        let joined = v.join(",");
        let key = flag_key("--mcp-servers", "LLMTAP_MCP_SERVERS", &joined, env);
        apply_mcp_servers(cfg, &key, v)?;
    }
    if let Some(v) = a.mcp_trace_context {
        cfg.mcp_trace_context = v;
    }
    Ok(())
}

/// Checks a Redis URL for the shared state.
fn check_state_url(key: &str, v: &str) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(v).map_err(|e| err(format!("{key}: {e}")))?;
    if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none() {
        return Err(err(format!(
            "{key}: must be redis://HOST:PORT[/DB] or rediss://... (TLS)"
        )));
    }
    Ok(v.to_string())
}

/// Both TLS files or neither.
fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    cert_key: &str,
    key_key: &str,
) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(err(format!("{key_key}: required with {cert_key}"))),
        (None, Some(_)) => Err(err(format!("{cert_key}: required with {key_key}"))),
    }
}

/// Checks an upstream base URL; `key` is what the user typed it under.
fn check_base_url(key: &str, v: &str) -> Result<(), ConfigError> {
    let url = reqwest::Url::parse(v).map_err(|e| err(format!("{key}: {e}: {v:?}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err(format!(
            "{key}: must be an http(s) URL with a host: {v:?}"
        )));
    }
    Ok(())
}

/// The name to report a bad flag value under: the env var when the value came from it (clap
/// has already merged the two, and a flag wins over its variable), else the flag.
fn flag_key(flag: &str, var: &str, value: &str, env: &dyn Env) -> String {
    if env.get(var).as_deref() == Some(value) {
        var.to_string()
    } else {
        flag.to_string()
    }
}

fn validate(cfg: &Config) -> Result<(), ConfigError> {
    if cfg.upstreams.is_empty() {
        return Err(err("upstreams: at least one upstream is required"));
    }
    for (i, u) in cfg.upstreams.iter().enumerate() {
        check_base_url(&format!("upstreams[{i}].base_url"), &u.base_url)?;
        if cfg.upstreams[..i].iter().any(|o| o.name == u.name) {
            return Err(err(format!(
                "upstreams[{i}].name: duplicate upstream name {:?}",
                u.name
            )));
        }
        // llmtap's own AWS credentials sign for whoever reaches it: only behind client keys.
        if u.aws_signing.is_some() && cfg.auth.is_none() {
            return Err(err(format!(
                "upstreams[{i}].aws_sigv4: signs with llmtap's own AWS credentials, so it needs client keys (auth.keys) to check who is asking"
            )));
        }
    }
    for (i, r) in cfg.routes.iter().enumerate() {
        if cfg.upstream(&r.upstream).is_none() {
            return Err(err(format!(
                "routes[{i}].upstream: no upstream named {:?}",
                r.upstream
            )));
        }
    }
    if cfg.upstream(&cfg.default_upstream).is_none() {
        return Err(err(format!(
            "default_upstream: no upstream named {:?}",
            cfg.default_upstream
        )));
    }
    if cfg.max_body_bytes == 0 {
        return Err(err("max_body_bytes: must be greater than 0"));
    }
    for (i, r) in cfg.telemetry.redact.iter().enumerate() {
        regex::Regex::new(&r.pattern)
            .map_err(|e| err(format!("telemetry.redact[{i}].pattern: {}", one_line(&e))))?;
    }
    validate_ui(cfg)?;
    validate_mcp(cfg)?;
    let prices = cfg
        .metrics
        .prices
        .iter()
        .chain(cfg.upstreams.iter().flat_map(|u| u.prices.iter().flatten()));
    for p in prices {
        let bad = |v: f64| !v.is_finite() || v < 0.0;
        if bad(p.input) || bad(p.output) || p.cached_input.is_some_and(bad) {
            return Err(err(format!(
                "prices[{}]: prices must be non-negative numbers",
                p.model
            )));
        }
    }
    Ok(())
}

/// Most calls the view keeps; each holds a finished record of a few KB.
const MAX_UI_CALLS: usize = 1_000_000;

fn validate_ui(cfg: &Config) -> Result<(), ConfigError> {
    let u = &cfg.ui;
    if !(1..=MAX_UI_CALLS).contains(&u.max_calls) {
        return Err(err(format!(
            "ui.max_calls: must be between 1 and {MAX_UI_CALLS}, got {}",
            u.max_calls
        )));
    }
    if let Some(t) = &u.trace_url {
        // The page turns it into a link: only http(s), so no `javascript:` URL can ride in.
        let ok =
            (t.starts_with("http://") || t.starts_with("https://")) && t.contains("{trace_id}");
        if !ok {
            return Err(err(format!(
                "ui.trace_url: must be an http(s) URL containing {{trace_id}}, got {t:?}"
            )));
        }
    }
    if u.only_on_metrics_listen && cfg.metrics_listen.is_none() {
        return Err(err(
            "ui.only_on_metrics_listen: needs metrics_listen (--metrics-listen) to be set",
        ));
    }
    Ok(())
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_key_names_the_key() {
        let e = load_yaml(
            "upstreams:\n  - name: a\n    base_url: http://x\n    colour: red\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(e.0.contains("colour"), "{e}");
        assert!(!e.0.contains('\n'));
    }

    #[test]
    fn api_key_comes_from_named_env_var_and_never_prints() {
        let cfg = load_yaml(
            "upstreams:\n  - name: a\n    base_url: http://x/v1\n    api_key_env: MY_KEY\n",
            &env(&[("MY_KEY", "sk-secret-value")]),
        )
        .unwrap();
        let u = &cfg.upstreams[0];
        assert_eq!(u.api_key.as_ref().unwrap().expose(), "sk-secret-value");
        assert!(!format!("{cfg:?}").contains("sk-secret-value"));
    }

    #[test]
    fn literal_key_in_file_is_refused() {
        let e = load_yaml(
            "upstreams:\n  - name: a\n    base_url: http://x\n    api_key_env: sk-abc123\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(e.0.contains("api_key_env"), "{e}");
    }

    #[test]
    fn route_to_unknown_upstream_is_refused() {
        let e = load_yaml(
            "upstreams:\n  - name: a\n    base_url: http://x\nroutes:\n  - model: gpt*\n    upstream: b\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(e.0.contains("routes[0].upstream"), "{e}");
    }

    #[test]
    fn live_view_is_on_for_loopback_only_unless_configured() {
        let on = load_yaml("listen: 127.0.0.1:8080\n", &env(&[])).unwrap();
        assert!(on.ui_enabled());
        assert_eq!(on.ui.max_calls, 1000);
        let v6 = load_yaml("listen: \"[::1]:8080\"\n", &env(&[])).unwrap();
        assert!(v6.ui_enabled());
        let off = load_yaml("listen: 0.0.0.0:8080\n", &env(&[])).unwrap();
        assert!(!off.ui_enabled());
        let asked = load_yaml("listen: 0.0.0.0:8080\nui:\n  enabled: true\n", &env(&[])).unwrap();
        assert!(asked.ui_enabled());
        let args = ProxyArgs {
            listen: Some("0.0.0.0:8080".into()),
            ui: Some(true),
            ui_max_calls: Some(50),
            ui_trace_url: Some("https://tempo.example/trace/{trace_id}".into()),
            ..Default::default()
        };
        let cfg = load(&args, &env(&[])).unwrap();
        assert!(cfg.ui_enabled());
        assert_eq!(cfg.ui.max_calls, 50);
        let args = ProxyArgs {
            ui: Some(false),
            ..Default::default()
        };
        assert!(!load(&args, &env(&[])).unwrap().ui_enabled());
    }

    #[test]
    fn mcp_servers_from_the_file_and_the_flag() {
        let yaml = "mcp_servers:\n  github: https://mcp.example/github/mcp\n  local: http://127.0.0.1:8000/mcp\nmcp_trace_context: false\n";
        let cfg = load_yaml(yaml, &env(&[])).unwrap();
        let names: Vec<&str> = cfg.mcp_servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["github", "local"]);
        assert!(!cfg.mcp_trace_context);
        assert!(Config::with_upstream("http://u/v1", Provider::Openai).mcp_trace_context);
        // The flag replaces a server of the same name and adds the others.
        let dir = std::env::temp_dir().join(format!("llmtap-mcp-cfg-{}", std::process::id()));
        std::fs::write(&dir, yaml).unwrap();
        let args = ProxyArgs {
            config: Some(dir.clone()),
            mcp_servers: Some(vec![
                "local=http://127.0.0.1:9000/mcp".into(),
                "docs=https://docs.example/mcp".into(),
            ]),
            mcp_trace_context: Some(true),
            ..Default::default()
        };
        let cfg = load(&args, &env(&[])).unwrap();
        let _ = std::fs::remove_file(&dir);
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
        for (yaml, key) in [
            ("mcp_servers:\n  a/b: http://x/mcp\n", "mcp_servers.a/b"),
            ("mcp_servers:\n  a: ftp://x/mcp\n", "mcp_servers.a"),
            ("mcp_servers:\n  ..: http://x/mcp\n", "mcp_servers..."),
        ] {
            let e = load_yaml(yaml, &env(&[])).unwrap_err();
            assert!(e.0.contains(key), "{yaml}: {e}");
        }
        let args = ProxyArgs {
            mcp_servers: Some(vec!["no-equals-sign".into()]),
            ..Default::default()
        };
        let e = load(&args, &env(&[])).unwrap_err();
        assert!(
            e.0.contains("--mcp-servers") && e.0.contains("name=url"),
            "{e}"
        );
    }

    #[test]
    fn live_view_settings_are_validated() {
        for (yaml, key) in [
            ("ui:\n  max_calls: 0\n", "ui.max_calls"),
            (
                "ui:\n  trace_url: javascript:alert(1)//{trace_id}\n",
                "ui.trace_url",
            ),
            ("ui:\n  trace_url: http://tempo/trace\n", "ui.trace_url"),
            (
                "ui:\n  only_on_metrics_listen: true\n",
                "ui.only_on_metrics_listen",
            ),
            ("ui:\n  colour: red\n", "colour"),
        ] {
            let e = load_yaml(yaml, &env(&[])).unwrap_err();
            assert!(e.0.contains(key), "{yaml}: {e}");
        }
    }

    #[test]
    fn client_keys_are_digests_with_valid_limits() {
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let cfg = load_yaml(
            &format!("auth:\n  keys:\n    - sha256: \"{}\"\n      tenant: t\n      requests_per_minute: 60\n      max_concurrent: 8\n", sha.to_uppercase()),
            &env(&[]),
        )
        .unwrap();
        let k = &cfg.auth.as_ref().unwrap().keys[0];
        assert_eq!(crate::auth::hex(&k.sha256), sha);
        assert_eq!(
            (k.requests_per_minute, k.max_concurrent),
            (Some(60), Some(8))
        );
        assert!(!format!("{cfg:?}").contains(sha));
        assert!(load_yaml("", &env(&[])).unwrap().auth.is_none());
        for (yaml, key) in [
            ("auth:\n  keys: []\n", "auth.keys"),
            ("auth:\n  keys:\n    - sha256: sk-abc\n      tenant: t\n", "looks like a key itself"),
            ("auth:\n  keys:\n    - sha256: abc\n      tenant: t\n", "auth.keys[0].sha256"),
            (&format!("auth:\n  keys:\n    - sha256: {sha}\n      tenant: \"\"\n"), "auth.keys[0].tenant"),
            (&format!("auth:\n  keys:\n    - sha256: {sha}\n      tenant: t\n      requests_per_minute: 0\n"), "requests_per_minute"),
            (&format!("auth:\n  keys:\n    - sha256: {sha}\n      tenant: t\n      max_concurrent: 0\n"), "max_concurrent"),
            (&format!("auth:\n  keys:\n    - sha256: {sha}\n      tenant: a\n    - sha256: {sha}\n      tenant: b\n"), "auth.keys[1].sha256"),
            (&format!("auth:\n  keys:\n    - sha256: {sha}\n      tenant: a\n      key: x\n"), "key"),
        ] {
            let e = load_yaml(yaml, &env(&[])).unwrap_err();
            assert!(e.0.contains(key), "{yaml}: {e}");
        }
    }

    #[test]
    fn compat_profiles_from_file_and_flag() {
        use clap::Parser;
        let cfg = load_yaml(
            "telemetry:\n  compat: [openinference, langfuse]\n",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            cfg.telemetry.compat,
            vec![CompatProfile::Openinference, CompatProfile::Langfuse]
        );
        assert!(load_yaml("telemetry:\n  compat: [phoenix]\n", &env(&[])).is_err());
        assert!(load_yaml("", &env(&[]))
            .unwrap()
            .telemetry
            .compat
            .is_empty());
        let cli =
            crate::cli::Cli::try_parse_from(["llmtap", "--compat", "openlit,langfuse"]).unwrap();
        assert_eq!(
            cli.proxy.compat,
            Some(vec![CompatProfile::Openlit, CompatProfile::Langfuse])
        );
        let cfg = load(&cli.proxy, &env(&[])).unwrap();
        assert_eq!(cfg.telemetry.compat.len(), 2);
    }

    #[test]
    fn bad_duration_is_refused() {
        let e = load_yaml("shutdown_timeout_secs: -3\n", &env(&[])).unwrap_err();
        assert!(e.0.contains("shutdown_timeout_secs"), "{e}");
    }

    #[test]
    fn aws_sigv4_needs_client_keys_and_credentials() {
        let env: HashMap<String, String> = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let up = "upstreams:\n  - name: b\n    base_url: https://bedrock-runtime.eu-west-3.amazonaws.com\n    provider: bedrock\n    aws_sigv4: {}\n";
        let e = load_yaml(up, &env).unwrap_err().to_string();
        assert!(e.contains("auth.keys"), "{e}");
        let keys = "auth:\n  keys:\n    - sha256: \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"\n      tenant: t\n";
        let cfg = load_yaml(&format!("{up}{keys}"), &env).unwrap();
        let s = cfg.upstreams[0].aws_signing.as_ref().unwrap();
        assert_eq!(
            (s.region.as_str(), s.service.as_str()),
            ("eu-west-3", "bedrock")
        );
        assert_eq!(s.credentials.access_key_id, "AKID");
        assert_eq!(cfg.upstreams[0].provider.semconv_name(), "aws.bedrock");
        let none: HashMap<String, String> = [(
            "AWS_SHARED_CREDENTIALS_FILE".to_string(),
            "/nonexistent/creds".to_string(),
        )]
        .into();
        let e = load_yaml(&format!("{up}{keys}"), &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("aws_sigv4"), "{e}");
    }
}
