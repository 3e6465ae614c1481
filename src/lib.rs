//! llmtap: an auto-instrumenting, OpenAI-compatible reverse proxy. Every LLM call through it
//! becomes an OpenTelemetry gen_ai span and metrics, without touching the application.
//!
//! `app()` builds the whole service as an axum `Router`, so tests start the real thing
//! in-process; `serve()` adds the listener, graceful shutdown and the telemetry flush.

pub(crate) mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dialect;
pub mod error;
pub(crate) mod exchange;
pub(crate) mod inbound;
pub(crate) mod injection;
pub(crate) mod listen;
pub mod logfmt;
pub mod mcp;
pub mod mock;
pub(crate) mod path;
pub(crate) mod respond;
pub(crate) mod route;
pub(crate) mod sigv4;
pub mod state;
pub mod stream;
pub mod telemetry;
pub(crate) mod tls;
pub(crate) mod ui;
pub(crate) mod upstream;
pub mod vocab;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

pub use app::AppState;
pub use config::Config;
pub use telemetry::Telemetry;

/// The proxy as a router: health, readiness, `/metrics`, everything under `/v1` and
/// `/openai`, `/mcp/{name}` for each configured MCP server, and the live view `/ui` unless
/// it is served only on the metrics listener.
pub fn app(state: Arc<AppState>) -> Router {
    let router = inbound::router(state.clone()).merge(mcp::routes(state.clone()));
    let ui = (!state.config.ui.only_on_metrics_listen)
        .then(|| ui::routes(state.clone(), state.config.listen.ip().is_loopback()))
        .flatten();
    match ui {
        Some(ui) => router.merge(ui),
        None => router,
    }
}

/// The `--metrics-listen` router: `/metrics`, and `/ui` when it is served only there.
pub fn metrics_app(state: Arc<AppState>) -> Router {
    let ui = match state.config.metrics_listen {
        Some(a) if state.config.ui.only_on_metrics_listen => {
            ui::routes(state.clone(), a.ip().is_loopback())
        }
        _ => None,
    };
    let router = inbound::metrics_router(state);
    match ui {
        Some(ui) => router.merge(ui),
        None => router,
    }
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting, gives
/// in-flight requests (streams included) up to the configured shutdown timeout, and flushes
/// telemetry. Returns when everything is done.
pub async fn serve(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.config.shutdown_timeout;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signalled = {
        let state = state.clone();
        async move {
            shutdown.await;
            state.ready.store(false, Ordering::Release);
            // The drain window: still serving, but `/readyz` says 503, so a load balancer
            // stops sending new work before the listener closes.
            let delay = state.config.drain_delay;
            if !delay.is_zero() {
                tracing::info!(
                    drain_delay_secs = delay.as_secs_f64(),
                    "/readyz answers 503; still serving until the drain delay ends"
                );
                tokio::time::sleep(delay).await;
            }
            let _ = state.stopping.send(true);
            let _ = stop_tx.send(true);
        }
    };
    tokio::spawn(signalled);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let limits = listen::ConnLimits {
        header_read_timeout: state.config.header_read_timeout,
    };
    let tls = match &state.tls {
        Some(cert) => Some(cert.acceptor().map_err(std::io::Error::other)?),
        None => None,
    };
    let threads = Arc::new(listen::ServingThreads::start(
        listen::ServingThreads::count(state.config.serve_threads),
    )?);

    // `/metrics` on its own address stays plain HTTP (scrapers inside the pod or cluster).
    let metrics_task = metrics_listener.map(|l| {
        let router = metrics_app(state.clone());
        tokio::spawn(listen::serve(
            l,
            router,
            limits,
            None,
            stop_rx.clone(),
            threads.clone(),
        ))
    });

    let server = listen::serve(
        listener,
        app(state.clone()),
        limits,
        tls,
        stop_rx.clone(),
        threads.clone(),
    );
    tokio::pin!(server);
    // Serving itself cannot fail (accept errors are retried): the result is for the caller's
    // sake, should that change.
    let result: std::io::Result<()> = tokio::select! {
        () = &mut server => Ok(()),
        _ = wait_stop(stop_rx.clone()) => {
            // Stopped accepting; in-flight requests get the grace period, then are cut.
            match tokio::time::timeout(grace, &mut server).await {
                Ok(()) => Ok(()),
                Err(_) => {
                    tracing::warn!(grace_secs = grace.as_secs_f64(), "in-flight requests still running at the shutdown timeout; closing them");
                    // Cut what is left; each relay ends its record with error.type=shutdown.
                    let _ = state.abort.send(true);
                    let _ = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
                    Ok(())
                }
            }
        }
    };
    if let Some(t) = metrics_task {
        t.abort();
    }
    // Give records dropped by the cut a moment to reach the worker, then flush.
    tokio::task::yield_now().await;
    state.telemetry.shutdown(Duration::from_secs(10)).await;
    result
}

/// Reloads the inbound TLS certificate on every SIGHUP, for as long as the process runs.
/// A reload that fails keeps the certificate in use, with a warning saying why.
pub async fn reload_tls_on_sighup(cert: Arc<tls::ServerCert>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; the TLS certificate will not be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            match cert.reload() {
                Ok(()) => {
                    tracing::info!(cert = %cert.cert_file().display(), "TLS certificate reloaded")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS certificate not reloaded; the previous one stays in use")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = cert;
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining");
}
