//! The one `Config` llmtap runs with: its types, their defaults, and the YAML file they are
//! read from.
//!
//! The YAML file deserializes straight into these structs (`#[serde(default,
//! deny_unknown_fields)]`): a key left out keeps the `Default` value, which is the only place
//! a default is written; an unknown key is an error naming it. Durations are `*_secs` numbers
//! in the file. Command-line flags and their `LLMTAP_*` variables are laid over the result by
//! `cli::ProxyArgs::apply`, so precedence is defaults < file < env < flags. Every value is
//! checked here, once (`load`), so the rest of the code can trust it.

pub mod check;
mod de;
mod load;
pub mod prices;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::vocab::provider::Provider;
#[cfg(test)]
pub(crate) use load::test_env;
pub use load::{load_yaml, ConfigError, Env, ProcessEnv};

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Per-upstream timeouts (`upstreams[].timeouts`, in seconds in the file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    #[serde(rename = "connect_secs", deserialize_with = "de::secs")]
    pub connect: Duration,
    /// Until the response headers arrive. Reasoning models think for minutes, so the default
    /// is generous.
    #[serde(rename = "first_byte_secs", deserialize_with = "de::secs")]
    pub first_byte: Duration,
    /// Longest silence between two body chunks. Any bytes end a silence, SSE keep-alive
    /// comments included: upstreams send them so that proxies keep a thinking model's stream
    /// open, so they are activity. `max_stream` bounds a stream that sends only those.
    #[serde(rename = "idle_secs", deserialize_with = "de::secs")]
    pub idle: Duration,
    /// Longest a response body may take from its headers to its end, however active; past it
    /// the stream is cut (`error.type` `timeout`, `llmtap.limits.hit` `max_stream_duration`).
    #[serde(rename = "max_stream_secs", deserialize_with = "de::secs")]
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

/// USD per million tokens for one model pattern (`metrics.prices[]`, `upstreams[].prices[]`).
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

/// One upstream (`upstreams[]`). `name` and `base_url` are required in the file; the other
/// keys default as `UpstreamConfig::new` sets them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    /// Base URL without a trailing slash; `/v1/<rest>` is forwarded to `<base_url>/<rest>`.
    #[serde(deserialize_with = "de::base_url")]
    pub base_url: String,
    #[serde(default)]
    pub provider: Provider,
    /// Name of the env var holding the key that replaces the client's credential.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The key itself, read from `api_key_env` at load. Never logged (see `Secret`).
    #[serde(skip)]
    pub api_key: Option<Secret>,
    /// Inject `stream_options.include_usage` into streamed requests that lack it.
    #[serde(default = "inject_usage_default")]
    pub inject_usage: bool,
    #[serde(default, deserialize_with = "de::or_default")]
    pub timeouts: Timeouts,
    /// Price overrides for this upstream; `None` means the global table applies.
    #[serde(default)]
    pub prices: Option<Vec<Price>>,
    /// `aws_sigv4:` sign this upstream's requests with AWS SigV4 (see `crate::sigv4`).
    #[serde(default)]
    pub aws_sigv4: Option<AwsSigv4Config>,
    /// The signing settings with llmtap's own AWS credentials, resolved at load from
    /// `aws_sigv4`. Never logged (see `AwsCredentials`).
    #[serde(skip)]
    pub aws_signing: Option<crate::sigv4::AwsSigning>,
}

/// `aws_sigv4:` on an upstream (Bedrock in gateway mode).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSigv4Config {
    /// Default: from a `bedrock-runtime.{region}.amazonaws.com` base URL, else `AWS_REGION`,
    /// else `AWS_DEFAULT_REGION`.
    #[serde(default)]
    pub region: Option<String>,
    /// The signing name; default `bedrock`.
    #[serde(default)]
    pub service: Option<String>,
    /// The shared credentials file's profile; default `AWS_PROFILE`, else `default`.
    #[serde(default)]
    pub profile: Option<String>,
}

/// Streams get usage unless an upstream says otherwise.
fn inject_usage_default() -> bool {
    true
}

impl UpstreamConfig {
    /// An upstream with every optional setting at its default, as the file's defaults give.
    pub fn new(name: &str, base_url: &str, provider: Provider) -> UpstreamConfig {
        UpstreamConfig {
            name: name.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            provider,
            api_key_env: None,
            api_key: None,
            inject_usage: inject_usage_default(),
            timeouts: Timeouts::default(),
            prices: None,
            aws_sigv4: None,
            aws_signing: None,
        }
    }
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub keys: Vec<ClientKeyConfig>,
}

/// One client key (`auth.keys[]`): its SHA-256 (never the key), its tenant and its limits.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKeyConfig {
    /// 64 hex characters in the file.
    #[serde(deserialize_with = "de::sha256")]
    pub sha256: [u8; 32],
    pub tenant: String,
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
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

/// `routes[]`: requests for `model` go to `upstream`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// The `telemetry:` section: what spans carry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// Keep the built-in rules (`default_redactions`) in front of `redact`.
    pub default_redactions: bool,
    /// The file's own rules; `redaction_rules` gives the list applied.
    pub redact: Vec<RedactRule>,
    /// Baggage keys copied onto spans as `llmtap.baggage.<key>`... unless they are already attribute names.
    pub baggage_attributes: Vec<String>,
    /// Request headers copied onto spans as `llmtap.request.header.<name>` (lowercase).
    #[serde(deserialize_with = "de::lowercase_list")]
    pub header_attributes: Vec<String>,
    /// Header (lowercase) whose value becomes `gen_ai.conversation.id`.
    #[serde(deserialize_with = "de::lowercase_opt")]
    pub conversation_id_header: Option<String>,
    /// How long a requested tool call waits for its result before its span is emitted anyway.
    #[serde(rename = "tool_call_ttl_secs", deserialize_with = "de::secs")]
    pub tool_call_ttl: Duration,
    /// Most pending tool calls remembered at once (all tenants); past it the oldest is ended
    /// unanswered.
    pub max_pending_tool_calls: usize,
    /// Most pending tool calls remembered for one tenant (client keys); past it the tenant's
    /// further calls are not tracked, so no tenant can push out another's.
    pub max_pending_tool_calls_per_tenant: usize,
    /// Requests slower than this are always kept by the sampler.
    #[serde(rename = "slow_request_secs", deserialize_with = "de::secs")]
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
            default_redactions: true,
            redact: Vec::new(),
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

impl TelemetryConfig {
    /// The rules applied to captured content, in order: the built-in ones (unless
    /// `default_redactions: false`), then the file's `redact`.
    pub fn redaction_rules(&self) -> Vec<RedactRule> {
        let builtin = if self.default_redactions {
            default_redactions()
        } else {
            Vec::new()
        };
        builtin.into_iter().chain(self.redact.clone()).collect()
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

/// The `metrics:` section: what metrics carry, and the price table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Distinct model names allowed as metric attribute values before new ones become `other`.
    pub max_models: usize,
    /// Distinct `gen_ai.conversation.id` values on the `llmtap.conversation.*` counters
    /// before new ones become `other`; 0 turns those counters off.
    pub max_conversations: usize,
    /// Baggage keys that become metric attributes (opt-in, capped like models).
    pub baggage_attributes: Vec<String>,
    /// Request headers (lowercase) that become metric attributes (opt-in, capped like models).
    #[serde(deserialize_with = "de::lowercase_list")]
    pub header_attributes: Vec<String>,
    /// Distinct values per opt-in attribute before new ones become `other`.
    pub max_attribute_values: usize,
    /// The client key's tenant (`auth.keys[].tenant`) as the metric attribute `llmtap.tenant`.
    pub tenant_attribute: bool,
    /// Serve `/metrics` on the listen port.
    pub prometheus: bool,
    /// The file's own prices; `price_list` gives the table used.
    pub prices: Vec<Price>,
    /// Keep the shipped table (`prices::default_prices`) after `prices`.
    pub default_prices: bool,
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
            prices: Vec::new(),
            default_prices: true,
        }
    }
}

impl MetricsConfig {
    /// The global price table, first match wins: the file's `prices` first, so they win over
    /// the shipped table that follows them (unless `default_prices: false`).
    pub fn price_list(&self) -> Vec<Price> {
        let shipped = if self.default_prices {
            prices::default_prices()
        } else {
            Vec::new()
        };
        self.prices.iter().cloned().chain(shipped).collect()
    }
}

/// The live view at `/ui` (recent calls, one call's timeline, charts of the last minutes).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
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

/// Everything llmtap runs with; the YAML file's top level.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "de::socket_addr")]
    pub listen: SocketAddr,
    /// Serve `/metrics` on a separate address as well.
    #[serde(deserialize_with = "de::socket_addr_opt")]
    pub metrics_listen: Option<SocketAddr>,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    /// The upstream for models no route names; `None`: the first upstream
    /// (`default_upstream()`).
    pub default_upstream: Option<String>,
    pub max_body_bytes: usize,
    /// How long a client has to send a request's head, from connecting (or from the previous
    /// response on a kept-alive connection); slower clients are disconnected.
    #[serde(rename = "header_read_timeout_secs", deserialize_with = "de::secs")]
    pub header_read_timeout: Duration,
    /// How long a client has to send an inference request's whole body once its head
    /// arrived; a slower (or stalled) body is answered 408 and its key's concurrency slot freed.
    #[serde(rename = "body_read_timeout_secs", deserialize_with = "de::secs")]
    pub body_read_timeout: Duration,
    #[serde(rename = "shutdown_timeout_secs", deserialize_with = "de::secs")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM/SIGINT, how long `/readyz` answers 503 while every request is still
    /// served, so a load balancer takes the instance out of rotation before the listener
    /// closes (the Kubernetes pre-stop pattern). Zero: stop accepting at once.
    #[serde(rename = "drain_delay_secs", deserialize_with = "de::secs")]
    pub drain_delay: Duration,
    /// Threads serving connections (`--serve-threads`); `None`: the CPUs available.
    pub serve_threads: Option<usize>,
    pub log_format: LogFormat,
    /// Extra PEM CA bundle trusted for HTTPS upstreams, on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Redis shared by replicas (`redis://HOST:PORT[/DB]`, `rediss://` for TLS): pending tool
    /// calls live there so any replica can close them. `None`: each replica alone.
    pub state_url: Option<String>,
    /// Inbound TLS: PEM certificate chain, with `tls_key` (both or neither; `tls()`).
    pub tls_cert: Option<PathBuf>,
    /// Inbound TLS: the private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    #[serde(deserialize_with = "de::or_default")]
    pub telemetry: TelemetryConfig,
    #[serde(deserialize_with = "de::or_default")]
    pub metrics: MetricsConfig,
    #[serde(deserialize_with = "de::or_default")]
    pub ui: UiConfig,
    /// Client keys; `None` (the default) lets every request through.
    pub auth: Option<AuthConfig>,
    /// MCP servers llmtap relays to, each served at `/mcp/{name}` (`mcp_servers:` in the
    /// file, a map of name to URL; `--mcp-servers name=url,...`). Only these: a request never
    /// names its own URL.
    #[serde(deserialize_with = "de::mcp_servers")]
    pub mcp_servers: Vec<McpServerConfig>,
    /// Write the MCP span's trace context into each MCP request's `params._meta`
    /// (`traceparent`, `tracestate`, `baggage`; SEP-414), never over the client's own.
    pub mcp_trace_context: bool,
}

impl Default for Config {
    /// OpenAI's API as the one upstream (what `--upstream` replaces), listening on loopback.
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            upstreams: vec![UpstreamConfig::new(
                "default",
                "https://api.openai.com/v1",
                Provider::Openai,
            )],
            routes: Vec::new(),
            default_upstream: None,
            max_body_bytes: 32 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            serve_threads: None,
            log_format: LogFormat::default(),
            ca_file: None,
            state_url: None,
            tls_cert: None,
            tls_key: None,
            telemetry: TelemetryConfig::default(),
            metrics: MetricsConfig::default(),
            ui: UiConfig::default(),
            auth: None,
            mcp_servers: Vec::new(),
            mcp_trace_context: true,
        }
    }
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
    /// The defaults with one upstream, named `default`, as `--upstream URL` gives.
    pub fn with_upstream(base_url: &str, provider: Provider) -> Config {
        Config {
            upstreams: vec![UpstreamConfig::new("default", base_url, provider)],
            ..Config::default()
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

    /// Where requests go that no route claims: `default_upstream`, else the first upstream.
    pub fn default_upstream(&self) -> Option<&UpstreamConfig> {
        match &self.default_upstream {
            Some(name) => self.upstream(name),
            None => self.upstreams.first(),
        }
    }

    /// Inbound TLS, when both files are set (`validate` refuses one without the other).
    pub fn tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }
}
