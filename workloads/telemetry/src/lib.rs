//! Logs, metrics, health and shutdown for every shopstream workload.
//!
//! - [`init_tracing`]: `tracing` logs, human-readable on a terminal, JSON lines otherwise,
//!   filtered by `RUST_LOG` (default `info`).
//! - [`serve`]: an HTTP server with `/metrics` (Prometheus text format of the given registry),
//!   `/healthz` (the process is alive) and `/readyz` (200 once [`Health::set_ready`] was called
//!   with `true`, 503 before and while not ready).
//! - [`shutdown_signal`]: resolves on SIGTERM or Ctrl-C, so a workload can flush and commit;
//!   [`shutdown_on_signals`]: the same as a cancellation token, for the workloads' loops.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use thiserror::Error;
use tokio::task::JoinHandle;

pub use prometheus;

/// Errors of the telemetry server.
#[derive(Debug, Error)]
pub enum Error {
    /// The metrics address could not be bound.
    #[error("binding the metrics server to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Sets up `tracing` once for the process: JSON when stderr is not a terminal.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber is already set (tests); that one is kept.
    let _ = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    };
}

/// Readiness shared between a workload and its health endpoint.
#[derive(Debug, Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// A new handle, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the workload ready (connected, serving) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the workload is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    health: Health,
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut body) {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Starts the metrics and health server on `addr` (port 0 picks a free port) and returns the
/// bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    health: Health,
) -> Result<(SocketAddr, JoinHandle<()>), Error> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(AppState { registry, health });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    tracing::info!(%bound, "metrics and health endpoints listening");
    Ok((bound, task))
}

/// Resolves when the process receives SIGTERM or Ctrl-C.
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
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// A token cancelled on SIGTERM or Ctrl-C (SIGINT): what the gate, sink and processor loops
/// watch to finish the batch in hand and stop.
pub fn shutdown_on_signals() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing the batch in hand, then stopping");
        t.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_answer() {
        let registry = Registry::new();
        let counter =
            prometheus::IntCounter::new("test_records_total", "records").expect("counter");
        registry.register(Box::new(counter.clone())).expect("register");
        counter.inc_by(3);
        let health = Health::new();
        let (addr, _task) = serve("127.0.0.1:0".parse().expect("addr"), registry, health.clone())
            .await
            .expect("serve");
        let client = reqwest::Client::new();
        let get = |path: &str| client.get(format!("http://{addr}{path}")).send();

        let body = get("/metrics").await.expect("metrics").text().await.expect("body");
        assert!(body.contains("test_records_total 3"), "{body}");
        assert_eq!(get("/healthz").await.expect("healthz").status(), 200);
        assert_eq!(get("/readyz").await.expect("readyz").status(), 503);
        health.set_ready(true);
        assert_eq!(get("/readyz").await.expect("readyz").status(), 200);
    }
}
