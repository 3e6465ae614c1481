//! Process-wide TLS setup shared by the upstream clients, the OTLP exporter and the inbound
//! listener.

/// Installs rustls' ring provider once per process (reqwest is built without a default one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
