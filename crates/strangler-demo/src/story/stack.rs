//! Starting the demo's components in this process: legacy API, relay, projector, read API, proxy.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use strangler_bus::{KafkaPublisher, LogPublisher};
use strangler_core::Config;
use strangler_core::config::BusKind;
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

/// Runs the relay from the legacy outbox to the configured bus until `cancel`.
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
    let sink = match (config.bus.kind, &config.bus.kafka) {
        (BusKind::Kafka, Some(kafka)) => {
            Sink::Kafka(KafkaPublisher::new(kafka).step("creating the Kafka producer")?)
        }
        _ => Sink::Log(LogPublisher::new(control, config.bus.log_partitions)),
    };
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

/// A projector over the files in `dir`, reading the configured bus.
pub async fn projector(
    config: &Config,
    read: Store,
    control: Store,
    dir: &Path,
) -> Result<Projector, DemoError> {
    let source = match (config.bus.kind, &config.bus.kafka) {
        (BusKind::Kafka, Some(kafka)) => strangler_projector::Source::Kafka {
            config: kafka.clone(),
            group_prefix: config.projections.group_prefix.clone(),
        },
        _ => strangler_projector::Source::Log { store: control },
    };
    let p = Projector::load(read, source, dir).step("loading the demo projection")?;
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

/// Places one order and waits until the new read API serves it: the relay, the bus and the
/// projector are all flowing (a Kafka consumer has joined its group). Returns how long it took.
pub async fn wait_live(
    db: &crate::legacy::LegacyDb,
    new_url: &str,
    rng: &mut rand::rngs::StdRng,
) -> Result<std::time::Duration, DemoError> {
    let started = std::time::Instant::now();
    let id = db
        .place_order(rng, 50)
        .await
        .step("placing the pipeline probe order")?;
    let client = super::traffic::Client::new();
    let url = format!("{new_url}/orders/{id}");
    while started.elapsed() < std::time::Duration::from_secs(60) {
        let (status, _) = client
            .get(&url)
            .await
            .step("asking the read API for the probe order")?;
        if status == 200 {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    Err(DemoError::msg(format!(
        "order {id} did not reach the read API within 60 s: the relay, the bus or the projector is not flowing"
    )))
}
