//! The proxy's shared state: configuration, upstream clients, telemetry, shared state
//! between replicas, client keys, and the shutdown signals every in-flight request watches.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::auth::ClientKeys;
use crate::config::Config;
use crate::injection::InjectionRefusals;
use crate::telemetry::Telemetry;
use crate::upstream::Upstreams;

/// Shared by every request, the routers, the live view and the MCP relay.
pub struct AppState {
    pub config: Arc<Config>,
    pub upstreams: Upstreams,
    pub telemetry: Telemetry,
    /// False while shutting down, so `/readyz` takes the instance out of rotation.
    pub ready: AtomicBool,
    /// Set when the shutdown grace period ends: every relay still running cuts its stream
    /// and finishes its record, so no span is lost to the exit.
    pub abort: tokio::sync::watch::Sender<bool>,
    /// Upstreams that refused the injected `stream_options` lately.
    pub refusals: InjectionRefusals,
    /// Set when shutdown starts: endless responses (the live view's event stream) end then,
    /// so they never hold up the drain.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Client keys with their limiters, when `auth.keys` is configured.
    pub client_keys: Option<ClientKeys>,
    /// The inbound TLS certificate, when `tls_cert`/`tls_key` are configured.
    pub tls: Option<Arc<crate::tls::ServerCert>>,
    /// Redis shared by replicas, when `state_url` is set: client keys' rate limits span
    /// replicas through it (telemetry keeps pending tool calls there too).
    pub shared: Option<Arc<crate::state::SharedState>>,
    /// The keyed hasher for `llmtap.prompt.hash`.
    pub prompt_hasher: crate::vocab::prompt::PromptHasher,
}

impl AppState {
    /// The proxy's shared state. `shared` is the same Redis handle telemetry was started with
    /// (or `None`); `prompt_hasher` keys `llmtap.prompt.hash` (`PromptHasher::from_secret_or_random`),
    /// and is made [`unexported`](crate::vocab::prompt::PromptHasher::unexported) when spans are off.
    pub fn new(
        config: Config,
        telemetry: Telemetry,
        shared: Option<Arc<crate::state::SharedState>>,
        prompt_hasher: crate::vocab::prompt::PromptHasher,
    ) -> Result<Arc<AppState>, String> {
        let upstreams = Upstreams::new(&config)?;
        let client_keys = config.auth.as_ref().map(ClientKeys::new);
        let copied = [
            (
                "telemetry.header_attributes",
                &config.telemetry.header_attributes,
            ),
            (
                "metrics.header_attributes",
                &config.metrics.header_attributes,
            ),
        ];
        for (key, names) in copied {
            for h in names.iter().filter(|h| crate::auth::is_credential(h)) {
                tracing::warn!(
                    "{key} names {h}, which carries a credential: it is never copied onto telemetry"
                );
            }
        }
        // The span is the prompt hash's only consumer: with spans off, no HMAC per request.
        let prompt_hasher = if telemetry.enabled() {
            prompt_hasher
        } else {
            prompt_hasher.unexported()
        };
        let tls = match &config.tls() {
            Some(f) => Some(Arc::new(crate::tls::ServerCert::load(&f.cert, &f.key)?)),
            None => None,
        };
        Ok(Arc::new(AppState {
            client_keys,
            tls,
            shared,
            prompt_hasher,
            config: Arc::new(config),
            upstreams,
            telemetry,
            ready: AtomicBool::new(true),
            abort: tokio::sync::watch::channel(false).0,
            refusals: InjectionRefusals::new(),
            stopping: tokio::sync::watch::channel(false).0,
        }))
    }
}
