//! `strangler relay`: carry outbox rows (or, with `--source wal`, committed row changes read
//! from PostgreSQL's logical decoding) from the legacy database to the bus until SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use strangler_bus::{KafkaPublisher, LogPublisher};
use strangler_core::config::BusKind;
use strangler_outbox::{Relay, RelayOptions, Sink};
use strangler_store::Store;
use strangler_telemetry::Shutdown;

use crate::cli::{GlobalArgs, RelayArgs};

pub async fn run(global: &GlobalArgs, args: &RelayArgs) -> anyhow::Result<ExitCode> {
    // Listen for SIGTERM and SIGINT before anything else: until a listener exists the signal's
    // default action kills the process at once (exit by signal, not a drain), and a supervisor
    // may stop a relay while it is still reading its configuration or connecting.
    let early = EarlySignals::listen();
    let config = crate::context::init(global)?;
    let legacy = config.legacy.as_ref().context(
        "the configuration has no `[legacy] url`: add [legacy] with url = \"postgres://...\" \
         (or mysql://, sqlite://) naming the database that holds the outbox table",
    )?;
    strangler_telemetry::install_metrics();
    let shutdown = Shutdown::install(&config.telemetry);
    early.forward_to(shutdown.token.clone());
    if let Some(addr) = &config.telemetry.metrics_listen {
        let addr = addr.parse().context("parsing telemetry.metrics_listen")?;
        let token = shutdown.token.clone();
        tokio::spawn(tracing::Instrument::instrument(
            strangler_telemetry::serve_metrics(addr, token),
            tracing::info_span!("metrics"),
        ));
    }

    let sink = match config.bus.kind {
        BusKind::Kafka => {
            let kafka = config
                .bus
                .kafka
                .as_ref()
                .context("bus.kind = \"kafka\" needs a [bus.kafka] table")?;
            Sink::Kafka(KafkaPublisher::new(kafka).context("creating the Kafka producer")?)
        }
        BusKind::Log => {
            let store = Store::connect(&config.store.url)
                .await
                .context("connecting to strangler's store for the built-in log")?;
            if config.store.migrate_on_start {
                store
                    .migrate()
                    .await
                    .context("migrating strangler's store")?;
            }
            Sink::Log(LogPublisher::new(store, config.bus.log_partitions))
        }
    };

    if args.source == "wal" {
        return run_wal(&config, legacy, sink, args, &shutdown).await;
    }
    let mut relay = Relay::new(
        legacy.url.clone(),
        config.outbox.clone(),
        sink.clone(),
        RelayOptions {
            once: args.once,
            drain_timeout: RelayOptions::drain_within(shutdown.grace),
            ..RelayOptions::default()
        },
    );
    if let Some(contracts) = super::contracts::relay_contracts(&config)? {
        relay = relay.with_contracts(contracts);
    }
    let token = shutdown.token.clone();
    let outcome = shutdown.drain(relay.run(&token)).await;
    sink.flush(shutdown.grace);
    match outcome {
        Some(Ok(report)) => {
            tracing::info!(
                published = report.published,
                dead_lettered = report.dead_lettered,
                retried = report.retried,
                "relay stopped"
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => Err(e).context("relaying the outbox"),
        None => {
            tracing::warn!(
                "relay did not drain within the grace period; unconfirmed rows will be published again on restart"
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// `--source wal`: change capture from the legacy database's logical replication slot.
async fn run_wal(
    config: &strangler_core::config::Config,
    legacy: &strangler_core::config::LegacyConfig,
    sink: Sink,
    args: &RelayArgs,
    shutdown: &Shutdown,
) -> anyhow::Result<ExitCode> {
    let wal = config.wal.clone().context(
        "--source wal needs a [wal] section: add [wal] with tables = [\"public.orders\"] \
         naming the tables to capture (see docs/cdc.md)",
    )?;
    if !legacy.url.starts_with("postgres") {
        anyhow::bail!(
            "--source wal reads PostgreSQL's logical decoding, but [legacy] url is not a \
             postgres:// URL: point it at the PostgreSQL database that holds the tables"
        );
    }
    let publisher: std::sync::Arc<dyn strangler_bus::Publisher> = match &sink {
        Sink::Kafka(k) => std::sync::Arc::new(k.clone()),
        Sink::Log(l) => std::sync::Arc::new(l.clone()),
    };
    let capture = strangler_cdc::Capture::new(
        legacy.url.clone(),
        wal,
        config.outbox.clone(),
        publisher,
        strangler_cdc::CaptureOptions { once: args.once },
    );
    let token = shutdown.token.clone();
    let outcome = shutdown.drain(capture.run(&token)).await;
    sink.flush(shutdown.grace);
    match outcome {
        Some(Ok(report)) => {
            tracing::info!(
                published = report.published,
                snapshot_rows = report.snapshot_rows,
                retried = report.retried,
                confirmed_lsn = report.confirmed_lsn,
                "change capture stopped"
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => Err(e).context("capturing changes from the write-ahead log"),
        None => {
            tracing::warn!(
                "change capture did not drain within the grace period; unconfirmed changes will be published again on restart"
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// SIGTERM and SIGINT listeners registered at the start of the command, so a signal that arrives
/// before [`Shutdown::install`]'s watcher runs still cancels (drains) instead of killing.
struct EarlySignals {
    #[cfg(unix)]
    signals: Vec<tokio::signal::unix::Signal>,
}

impl EarlySignals {
    fn listen() -> EarlySignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = [SignalKind::terminate(), SignalKind::interrupt()]
                .into_iter()
                .filter_map(|kind| match signal(kind) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for a shutdown signal");
                        None
                    }
                })
                .collect();
            EarlySignals { signals }
        }
        #[cfg(not(unix))]
        EarlySignals {}
    }

    /// Cancels `token` when any of the signals arrives (also one that arrived already).
    fn forward_to(self, token: tokio_util::sync::CancellationToken) {
        #[cfg(unix)]
        for mut s in self.signals {
            let token = token.clone();
            tokio::spawn(async move {
                tokio::select! {
                    Some(()) = s.recv() => {
                        tracing::info!("shutdown signal received, draining");
                        token.cancel();
                    }
                    _ = token.cancelled() => {}
                }
            });
        }
        #[cfg(not(unix))]
        let _ = token;
    }
}
