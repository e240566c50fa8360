//! Plumbing every strangler service shares: logging, Prometheus metrics, and graceful shutdown.
//!
//! A service calls [`init_logging`] once, [`install_metrics`] once, serves [`metrics_router`] if
//! configured, and runs until [`shutdown_signal`] cancels its [`CancellationToken`]; then it has
//! [`Shutdown::grace`] to drain before it is aborted.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use axum::{Router, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use strangler_core::config::{LogFormat, TelemetryConfig};
pub use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber: human or JSON lines on stderr, filtered by `RUST_LOG`
/// when set, else by `default_filter`. Safe to call twice (the second call does nothing).
pub fn init_logging(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder for the `metrics` facade, once per process.
pub fn install_metrics() -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); ours then renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A router serving `GET /metrics` in the Prometheus text format; services merge it into theirs.
pub fn metrics_router() -> Router {
    let handle = install_metrics();
    Router::new().route("/metrics", get(move || std::future::ready(handle.render())))
}

/// Serves `/metrics` on its own listener until `cancel` fires.
pub async fn serve_metrics(addr: SocketAddr, cancel: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr}"))?;
    tracing::info!(%addr, "metrics endpoint listening");
    axum::serve(listener, metrics_router())
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
        .context("serving metrics")
}

/// The one cancellation source of a process, and how long it may drain.
#[derive(Clone)]
pub struct Shutdown {
    /// Cancelled on SIGINT or SIGTERM.
    pub token: CancellationToken,
    /// How long to wait for in-flight work after cancellation.
    pub grace: Duration,
}

impl Shutdown {
    /// Creates the token and spawns the signal watcher.
    pub fn install(telemetry: &TelemetryConfig) -> Shutdown {
        let token = CancellationToken::new();
        tokio::spawn(shutdown_signal(token.clone()));
        Shutdown {
            token,
            grace: Duration::from_millis(telemetry.shutdown_grace_ms),
        }
    }

    /// Waits for `work` to finish after cancellation, at most the grace period.
    /// Returns `false` when the grace period ran out and the work was abandoned.
    pub async fn drain<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            out = work => Some(out),
            _ = async { self.token.cancelled().await; tokio::time::sleep(self.grace).await } => {
                tracing::warn!(grace_ms = self.grace.as_millis() as u64, "grace period over, aborting");
                None
            }
        }
    }
}

/// Cancels `token` on the first SIGINT or SIGTERM.
pub async fn shutdown_signal(token: CancellationToken) {
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
        _ = ctrl_c => {}
        _ = term => {}
        _ = token.cancelled() => return,
    }
    tracing::info!("shutdown signal received, draining");
    token.cancel();
}
