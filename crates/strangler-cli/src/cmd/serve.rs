//! `strangler serve`: the read API over the projections' promoted versions.

use std::process::ExitCode;

use anyhow::Context;
use strangler_projector::SqlProjection;
use strangler_projector::definition::{load_dir, load_routes_dir};
use strangler_projector::read_api::{ReadApi, app};
use strangler_projector::sink::Sinks;
use strangler_store::{Store, redact_url};
use strangler_telemetry::Shutdown;

use crate::cli::{GlobalArgs, ServeArgs};

pub async fn run(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = crate::context::init(global)?;
    strangler_telemetry::install_metrics();
    let shutdown = Shutdown::install(&config.telemetry);
    let url = &config.projections.read_store_url;
    let store = Store::connect(url)
        .await
        .with_context(|| format!("connecting to the read store at {}", redact_url(url)))?;
    if config.store.migrate_on_start {
        store.migrate().await.context("migrating the read store")?;
    }
    let dir = config.resolve(&config.projections.dir);
    let defs =
        load_dir(&dir).with_context(|| format!("loading projections from {}", dir.display()))?;
    let route_files = match config.serve.as_ref().and_then(|s| s.routes_dir.as_ref()) {
        Some(routes_dir) => {
            let routes_dir = config.resolve(routes_dir);
            load_routes_dir(&routes_dir, &defs).with_context(|| {
                format!(
                    "loading read routes from {} ([serve] routes_dir)",
                    routes_dir.display()
                )
            })?
        }
        None => Vec::new(),
    };
    let sinks = Sinks::build(&defs, &config.projections.sinks)
        .with_context(|| format!("loading projection sinks from {}", dir.display()))?;
    let projections: Vec<_> = defs
        .into_iter()
        .map(|(_, d)| std::sync::Arc::new(SqlProjection::new(d)))
        .collect();
    let api = ReadApi::with_route_files(store, &projections, &route_files).with_sinks(sinks);
    let listen = args
        .listen
        .clone()
        .or_else(|| config.serve.as_ref().map(|s| s.listen.clone()))
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding the read API on {listen}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, routes = ?api.paths(), "read API listening");
    println!("read API listening on http://{addr}");
    let router = app(api).merge(strangler_telemetry::metrics_router());
    let token = shutdown.token.clone();
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move { token.cancelled().await });
    match shutdown.drain(async { server.await }).await {
        Some(r) => r.context("serving the read API")?,
        None => anyhow::bail!("in-flight requests did not finish within the grace period"),
    }
    Ok(ExitCode::SUCCESS)
}
