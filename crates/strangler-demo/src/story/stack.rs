//! Starting the demo's components in this process: legacy API, relay, projector, read API, proxy.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use strangler_bus::LogPublisher;
use strangler_core::Config;
use strangler_outbox::{Relay, RelayOptions, Sink};
use strangler_projector::Projector;
use strangler_projector::read_api::{self, ReadApi};
use strangler_proxy::Proxy;
use strangler_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{DemoError, Step};

/// Binds a loopback listener on a free port.
pub async fn listener() -> Result<(TcpListener, SocketAddr), DemoError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .step("binding a loopback port")?;
    let addr = l.local_addr().step("reading the bound address")?;
    Ok((l, addr))
}

/// Serves `router` on `listener` until `cancel`.
pub fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(
        async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { cancel.cancelled().await })
                .await;
        }
        .instrument(tracing::info_span!("demo_server", name)),
    )
}

/// Runs the relay from the legacy outbox to the built-in log until `cancel`.
pub fn relay(
    config: &Config,
    control: Store,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, DemoError> {
    let legacy = config
        .legacy
        .as_ref()
        .map(|l| l.url.clone())
        .ok_or_else(|| DemoError::msg("demo config has no [legacy]"))?;
    let sink = Sink::Log(LogPublisher::new(control, config.bus.log_partitions));
    let relay = Relay::new(legacy, config.outbox.clone(), sink, RelayOptions::default());
    Ok(tokio::spawn(
        async move {
            if let Err(e) = relay.run(&cancel).await {
                tracing::error!(error = %e, "demo relay stopped");
            }
        }
        .instrument(tracing::info_span!("demo_relay")),
    ))
}

/// A projector over the files in `dir`, reading the built-in log.
pub async fn projector(read: Store, control: Store, dir: &Path) -> Result<Projector, DemoError> {
    let p = Projector::load(
        read,
        strangler_projector::Source::Log { store: control },
        dir,
    )
    .step("loading the demo projection")?;
    p.setup().await.step("creating the projection's tables")?;
    Ok(p)
}

/// Runs every projection until `cancel`.
pub fn run_projector(p: Projector, cancel: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(
        async move {
            if let Err(e) = p.run(&[], cancel).await {
                tracing::error!(error = %e, "demo projector stopped");
            }
        }
        .instrument(tracing::info_span!("demo_projector")),
    )
}

/// The read API over the projector's read store.
pub fn read_api_router(p: &Projector) -> Router {
    read_api::app(ReadApi::new(p.store.clone(), &p.projections))
}

/// The shadow proxy, serving on `listener` until `cancel`.
pub fn proxy(
    config: &Config,
    control: Store,
    listener: TcpListener,
    cancel: CancellationToken,
) -> Result<(Arc<Proxy>, JoinHandle<()>), DemoError> {
    let proxy = Proxy::new(config, control, cancel).step("building the proxy")?;
    proxy.spawn_background();
    let serving = proxy.clone();
    let task = tokio::spawn(
        async move {
            if let Err(e) = serving
                .serve(listener, std::time::Duration::from_secs(2))
                .await
            {
                tracing::error!(error = %e, "demo proxy stopped");
            }
        }
        .instrument(tracing::info_span!("demo_proxy")),
    );
    Ok((proxy, task))
}
