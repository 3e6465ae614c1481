//! HTTP clients for the upstreams (one pooled client per upstream and serving thread, since
//! the connect timeout is per upstream), and the header rules of a transparent proxy.

mod client;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

pub(crate) use client::{ConnectTimeout, RequestBody, UpstreamClient};

use crate::config::{Config, UpstreamConfig};
use crate::vocab::provider::{Provider, UpstreamInfo};

/// A client type an upstream can hold: the LLM upstreams' [`UpstreamClient`], or reqwest's
/// for the MCP servers. Each serving thread builds its own from settings made (and so
/// checked) once at start-up.
pub trait ThreadClient: Clone + Send + Sync + 'static {
    /// What one upstream's clients are built from.
    type Settings: Send + Sync + 'static;
    fn settings(
        upstream: &UpstreamConfig,
        base: &url::Url,
        tls: &Tls,
    ) -> Result<Self::Settings, String>;
    fn build(settings: &Self::Settings) -> Result<Self, String>;
}

impl ThreadClient for UpstreamClient {
    type Settings = client::Settings;

    fn settings(
        upstream: &UpstreamConfig,
        base: &url::Url,
        tls: &Tls,
    ) -> Result<client::Settings, String> {
        client::Settings::new(base, upstream.timeouts.connect, || tls.configs())
    }

    fn build(settings: &client::Settings) -> Result<UpstreamClient, String> {
        Ok(UpstreamClient::new(settings))
    }
}

/// The MCP servers' client: reqwest, with the settings the upstreams had before they moved
/// to [`UpstreamClient`].
impl ThreadClient for reqwest::Client {
    type Settings = (std::time::Duration, Vec<reqwest::Certificate>);

    fn settings(
        upstream: &UpstreamConfig,
        _base: &url::Url,
        tls: &Tls,
    ) -> Result<Self::Settings, String> {
        let roots = tls
            .extra_roots
            .iter()
            .map(|c| reqwest::Certificate::from_der(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_file: {e}"))?;
        Ok((upstream.timeouts.connect, roots))
    }

    fn build((connect, roots): &Self::Settings) -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .connect_timeout(*connect)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            // The proxy forwards what the client sent; it never follows redirects.
            .redirect(reqwest::redirect::Policy::none())
            // HTTP(S)_PROXY and NO_PROXY from the environment apply (egress gateways).
            .tls_certs_merge(roots.iter().cloned())
            .build()
            .map_err(|e| e.to_string())
    }
}

/// The TLS trust of one set of upstreams: the `ca_file` roots, and the TLS settings built
/// from them (with the system's roots) the first time an upstream needs them.
pub struct Tls {
    extra_roots: Vec<CertificateDer<'static>>,
    configs: OnceLock<Result<Arc<client::TlsConfigs>, String>>,
}

impl Tls {
    fn new(ca_file: Option<&std::path::Path>) -> Result<Tls, String> {
        let extra_roots = match ca_file {
            Some(path) => {
                let pem =
                    std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?
            }
            None => Vec::new(),
        };
        Ok(Tls {
            extra_roots,
            configs: OnceLock::new(),
        })
    }

    fn configs(&self) -> Result<Arc<client::TlsConfigs>, String> {
        self.configs
            .get_or_init(|| client::TlsConfigs::new(&self.extra_roots).map(Arc::new))
            .clone()
    }
}

pub struct Upstream<C: ThreadClient = UpstreamClient> {
    pub config: UpstreamConfig,
    /// The client built (and so checked) at start-up. Each thread builds its own with the
    /// same settings on first use ([`Upstream::with_client`]); this one is the fallback.
    client: C,
    settings: C::Settings,
    /// Tells this upstream's clients apart in each thread's cache.
    id: usize,
    pub info: Arc<UpstreamInfo>,
    /// `base_url` parsed once: requests join their path onto it instead of parsing a URL
    /// string each time (two URL parses were ~9% of a non-streamed request's instructions).
    pub base: url::Url,
    /// `scheme://host[:port]` of the base, for APIs served from the origin (Ollama's `/api`).
    pub origin: url::Url,
}

/// The configured upstreams, by name.
pub struct Upstreams<C: ThreadClient = UpstreamClient> {
    by_name: HashMap<String, Arc<Upstream<C>>>,
}

/// The MCP servers (`mcp_servers`): upstreams that keep reqwest's client.
pub type McpServer = Upstream<reqwest::Client>;
pub type McpServers = Upstreams<reqwest::Client>;

static NEXT_UPSTREAM_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    /// Each serving thread's clients, by upstream id (unique across client types).
    static CLIENTS: std::cell::RefCell<HashMap<usize, Box<dyn Any>>> =
        std::cell::RefCell::new(HashMap::new());
}

impl<C: ThreadClient> Upstream<C> {
    /// Runs `f` with this thread's client for the upstream. Each serving thread keeps its
    /// own connection pool: a pooled connection is driven by a task on the thread that
    /// opened it, so a request from another thread would hand every chunk across threads
    /// both ways.
    pub fn with_client<R>(&self, f: impl FnOnce(&C) -> R) -> R {
        CLIENTS.with(|c| {
            let mut clients = c.borrow_mut();
            let client = clients.entry(self.id).or_insert_with(|| {
                // The settings were checked at start-up; should a build fail anyway, the
                // start-up client (shared pool) still works.
                Box::new(C::build(&self.settings).unwrap_or_else(|_| self.client.clone()))
            });
            match client.downcast_ref::<C>() {
                Some(client) => f(client),
                None => f(&self.client),
            }
        })
    }

    /// This thread's client for the upstream (a cheap handle).
    pub fn client(&self) -> C {
        self.with_client(C::clone)
    }
}

impl Upstreams {
    pub fn new(config: &Config) -> Result<Upstreams, String> {
        Upstreams::build(&config.upstreams, config.ca_file.as_deref())
    }
}

impl McpServers {
    /// Clients for the configured MCP servers (`mcp_servers`), keyed by server name: each is
    /// an upstream whose base URL is the server's endpoint, with the default timeouts.
    pub fn for_mcp(config: &Config) -> Result<McpServers, String> {
        let list: Vec<UpstreamConfig> = config
            .mcp_servers
            .iter()
            .map(|s| {
                let mut u = Config::with_upstream(&s.url, Provider::OpenaiCompatible)
                    .upstreams
                    .remove(0);
                u.name.clone_from(&s.name);
                // The endpoint exactly as configured (a trailing `/` can matter to a server).
                u.base_url.clone_from(&s.url);
                u.inject_usage = false;
                u
            })
            .collect();
        Upstreams::build(&list, config.ca_file.as_deref())
    }
}

impl<C: ThreadClient> Upstreams<C> {
    fn build(
        upstreams: &[UpstreamConfig],
        ca_file: Option<&std::path::Path>,
    ) -> Result<Upstreams<C>, String> {
        crate::vocab::crypto::install_crypto_provider();
        let tls = Tls::new(ca_file)?;
        let mut by_name = HashMap::new();
        for u in upstreams {
            let url = url::Url::parse(&u.base_url).map_err(|e| e.to_string())?;
            let settings =
                C::settings(u, &url, &tls).map_err(|e| format!("upstream {}: {e}", u.name))?;
            let client = C::build(&settings).map_err(|e| format!("upstream {}: {e}", u.name))?;
            let mut origin = url.clone();
            origin.set_path("");
            origin.set_query(None);
            let info = UpstreamInfo {
                name: u.name.clone(),
                provider: u.provider,
                address: Arc::from(url.host_str().unwrap_or_default()),
                port: url.port_or_known_default().unwrap_or(0),
            };
            by_name.insert(
                u.name.clone(),
                Arc::new(Upstream {
                    config: u.clone(),
                    client,
                    settings,
                    id: NEXT_UPSTREAM_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    info: Arc::new(info),
                    base: url,
                    origin,
                }),
            );
        }
        Ok(Upstreams { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Upstream<C>>> {
        self.by_name.get(name)
    }
}

/// Headers a proxy must not forward (RFC 9110 §7.6.1), plus those the client library sets.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Header names listed in `Connection` are hop-by-hop too.
pub(crate) fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// Header llmtap reads and does not forward: the app's prompt template name.
pub const PROMPT_TEMPLATE_HEADER: &str = "x-llmtap-prompt-template";
/// The version of the prompt template named by [`PROMPT_TEMPLATE_HEADER`]
/// (`gen_ai.prompt.version`); like it, never forwarded upstream.
pub const PROMPT_VERSION_HEADER: &str = "x-llmtap-prompt-version";

/// The request headers sent upstream: the client's, minus hop-by-hop headers, `Host` (set
/// from the upstream URL) and `Content-Length` (recomputed), with the client's credential
/// replaced when the upstream has its own key. With client keys on (`client_keys`), the
/// client's credential is llmtap's, never the provider's: it is never forwarded.
pub fn request_headers(
    inbound: &HeaderMap,
    upstream: &UpstreamConfig,
    client_keys: bool,
) -> HeaderMap {
    let listed = connection_listed(inbound);
    let mut out = HeaderMap::with_capacity(inbound.len());
    for (name, value) in inbound {
        if is_hop_by_hop(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name.as_str() == PROMPT_TEMPLATE_HEADER
            || name.as_str() == PROMPT_VERSION_HEADER
            || listed.iter().any(|l| l == name.as_str())
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if client_keys {
        for h in crate::auth::CREDENTIAL_HEADERS {
            if h != "cookie" {
                out.remove(h);
            }
        }
    }
    if let Some(key) = &upstream.api_key {
        out.remove(header::AUTHORIZATION);
        out.remove("api-key");
        out.remove("x-api-key");
        out.remove("x-goog-api-key");
        let set = match upstream.provider {
            Provider::Azure => {
                HeaderValue::from_str(key.expose()).map(|v| (HeaderName::from_static("api-key"), v))
            }
            Provider::Anthropic => HeaderValue::from_str(key.expose())
                .map(|v| (HeaderName::from_static("x-api-key"), v)),
            // Vertex AI takes an OAuth access token as a bearer: the default arm.
            Provider::Gemini => HeaderValue::from_str(key.expose())
                .map(|v| (HeaderName::from_static("x-goog-api-key"), v)),
            _ => HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map(|v| (header::AUTHORIZATION, v)),
        };
        if let Ok((name, mut value)) = set {
            value.set_sensitive(true);
            out.insert(name, value);
        }
    }
    out
}

/// The response headers sent to the client: the upstream's, minus hop-by-hop headers.
/// `Content-Length` is kept: the body is relayed unchanged (except when llmtap strips its own
/// injected usage chunk, where the caller removes it).
pub fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        if is_hop_by_hop(name) || listed.iter().any(|l| l == name.as_str()) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Secret};

    #[test]
    fn header_rules() {
        let mut cfg = Config::with_upstream("http://u/v1", Provider::Openai);
        let mut h = HeaderMap::new();
        h.insert("host", "proxy:8080".parse().unwrap());
        h.insert("connection", "keep-alive, x-hop".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert("authorization", "Bearer client".parse().unwrap());
        h.insert("x-llmtap-prompt-template", "summarize".parse().unwrap());
        h.insert("openai-organization", "org".parse().unwrap());
        let out = request_headers(&h, &cfg.upstreams[0], false);
        assert!(out.get("host").is_none());
        assert!(out.get("x-hop").is_none());
        assert!(out.get("x-llmtap-prompt-template").is_none());
        assert_eq!(out.get("authorization").unwrap(), "Bearer client");
        assert_eq!(out.get("openai-organization").unwrap(), "org");

        // Client keys on, no upstream key: the client's credential goes nowhere.
        h.insert("x-api-key", "client".parse().unwrap());
        let out = request_headers(&h, &cfg.upstreams[0], true);
        assert!(out.get("authorization").is_none());
        assert!(out.get("x-api-key").is_none());
        cfg.upstreams[0].api_key = Some(test_secret("sk-gw"));
        let out = request_headers(&h, &cfg.upstreams[0], true);
        assert_eq!(out.get("authorization").unwrap(), "Bearer sk-gw");
        assert!(out.get("x-api-key").is_none());
        let out = request_headers(&h, &cfg.upstreams[0], false);
        assert_eq!(out.get("authorization").unwrap(), "Bearer sk-gw");
        cfg.upstreams[0].provider = Provider::Azure;
        let out = request_headers(&h, &cfg.upstreams[0], false);
        assert!(out.get("authorization").is_none());
        assert_eq!(out.get("api-key").unwrap(), "sk-gw");
        // Gemini: the key goes in x-goog-api-key, replacing the client's.
        h.insert("x-goog-api-key", "client".parse().unwrap());
        cfg.upstreams[0].provider = Provider::Gemini;
        let out = request_headers(&h, &cfg.upstreams[0], false);
        assert!(out.get("authorization").is_none());
        assert_eq!(out.get("x-goog-api-key").unwrap(), "sk-gw");
        // Client keys on: a client's x-goog-api-key is llmtap's key, never forwarded.
        cfg.upstreams[0].api_key = None;
        let out = request_headers(&h, &cfg.upstreams[0], true);
        assert!(out.get("x-goog-api-key").is_none());
    }

    fn test_secret(s: &str) -> Secret {
        let env: std::collections::HashMap<String, String> =
            [("K".to_string(), s.to_string())].into_iter().collect();
        crate::config::load_yaml(
            "upstreams:\n  - name: a\n    base_url: http://x\n    api_key_env: K\n",
            &env,
        )
        .unwrap()
        .upstreams[0]
            .api_key
            .clone()
            .unwrap()
    }
}
