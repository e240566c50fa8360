//! `strangler proxy`: the shadow proxy in front of the legacy read API, until SIGINT/SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use strangler_proxy::Proxy;
use strangler_store::{Store, redact_url};
use strangler_telemetry::Shutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::cli::{GlobalArgs, ProxyArgs};

pub async fn run(global: &GlobalArgs, args: &ProxyArgs) -> anyhow::Result<ExitCode> {
    let config = crate::context::init(global)?;
    let proxy_cfg = config
        .proxy
        .as_ref()
        .context("the configuration has no [proxy] section (legacy_url, new_url)")?;
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| proxy_cfg.listen.clone());
    let shutdown = Shutdown::install(&config.telemetry);
    strangler_telemetry::install_metrics();
    if let Some(addr) = &config.telemetry.metrics_listen {
        let addr = addr.parse().context("parsing telemetry.metrics_listen")?;
        tokio::spawn(
            strangler_telemetry::serve_metrics(addr, shutdown.token.clone())
                .instrument(tracing::info_span!("metrics")),
        );
    }

    let store = Store::connect(&config.store.url).await.with_context(|| {
        format!(
            "connecting to the store at {}",
            redact_url(&config.store.url)
        )
    })?;
    if config.store.migrate_on_start {
        store.migrate().await.context("migrating the store")?;
    }
    let proxy =
        Proxy::new(&config, store.clone(), shutdown.token.clone()).context("building the proxy")?;
    proxy
        .refresh_modes()
        .await
        .context("reading cutover modes from the store")?;
    let mut background = proxy.spawn_background();
    // The mismatch store and the admin API (strangler-admin), beside the proxy.
    background.extend(
        strangler_admin::service::start_recorder(
            &config,
            store.clone(),
            &proxy,
            shutdown.token.clone(),
        )
        .context("starting the mismatch store")?,
    );
    if let Some((_, admin)) = strangler_admin::service::start_admin(
        &config,
        store.clone(),
        Some(proxy.clone()),
        None,
        shutdown.token.clone(),
    )
    .await
    .context("starting the admin API")?
    {
        background.push(admin);
    }
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding the proxy listener on {listen}"))?;
    tracing::info!(
        listen = %listen,
        legacy = %proxy_cfg.legacy_url,
        new = %proxy_cfg.new_url,
        capabilities = config.capabilities.len(),
        "shadow proxy listening"
    );

    let threads = args
        .threads
        .unwrap_or_else(strangler_proxy::default_threads);
    let served = shutdown
        .drain(
            proxy
                .clone()
                .serve_on_threads(listener, shutdown.grace, threads),
        )
        .await;
    for task in background {
        let _ = task.await;
    }
    store.close().await;
    match served {
        Some(result) => result.context("serving the proxy")?,
        None => tracing::warn!("connections still open after the grace period were closed"),
    }
    Ok(ExitCode::SUCCESS)
}
