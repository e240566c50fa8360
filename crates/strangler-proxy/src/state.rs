//! The running proxy: shared state, background loops (mode poll, stats flush and serving
//! gates), serving on a listener, and draining on shutdown.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::serve::ListenerExt;
use chrono::Utc;
use http::{HeaderName, HeaderValue};
use serde::Serialize;
use strangler_core::{Config, Mode};
use strangler_store::Store;
use tokio::net::TcpListener;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Settings;
use crate::error::Result;
use crate::forward::Client;
use crate::freshness::Freshness;
use crate::mirror::MirrorPool;
use crate::modes::ModeTable;
use crate::router::RouteTable;
use crate::ryw::RywMap;
use crate::stats::{CapCounters, CapStats, Flusher};

/// The shadow proxy's shared state; cheap to share as `Arc<Proxy>`.
pub struct Proxy {
    pub(crate) settings: Settings,
    pub(crate) routes: RouteTable,
    pub(crate) client: Client,
    pub(crate) lane: crate::lane::Lane,
    pub(crate) modes: Arc<ModeTable>,
    pub(crate) stats: Vec<CapStats>,
    pub(crate) pools: Vec<Arc<MirrorPool>>,
    pub(crate) fresh: Vec<Freshness>,
    pub(crate) ryw: RywMap,
    pub(crate) mirror_headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) store: Store,
    pub(crate) tasks: TaskTracker,
    pub(crate) cancel: CancellationToken,
    pub(crate) observers: tokio::sync::broadcast::Sender<Arc<crate::observe::Observation>>,
    flusher: Mutex<Flusher>,
    proxy_id: String,
    shadow_seq: AtomicU64,
}

/// What the admin API and dashboard show for one capability on this proxy.
#[derive(Debug, Clone, Serialize)]
pub struct CapabilityStatus {
    /// Counters and latencies since start.
    #[serde(flatten)]
    pub counters: CapCounters,
    /// Mode in force on this proxy.
    pub mode: Mode,
    /// Kill switch (this capability's or the global one).
    pub killed: bool,
    /// Last lag the new path reported, ms.
    pub lag_ms: u64,
    /// Whether reads fall back to legacy for lag.
    pub lagging: bool,
    /// Mirror tasks running now.
    pub mirror_in_flight: usize,
    /// Most mirror tasks that ever ran at once.
    pub mirror_high_water: usize,
}

impl Proxy {
    /// Builds the proxy from a validated configuration. `cancel` stops mirrors and loops.
    pub fn new(config: &Config, store: Store, cancel: CancellationToken) -> Result<Arc<Proxy>> {
        let settings = Settings::from_config(config)?;
        let routes = RouteTable::new(
            settings
                .caps
                .iter()
                .flat_map(|c| c.cfg.routes.iter().map(move |r| (c.index, r.as_str()))),
        );
        let mut mirror_headers = Vec::new();
        for (k, v) in &settings.proxy.mirror_headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                mirror_headers.push((k, v));
            }
        }
        if let Some(host) = &settings.proxy.mirror_host
            && let Ok(v) = HeaderValue::from_str(host)
        {
            mirror_headers.push((http::header::HOST, v));
        }
        let proxy_id = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        );
        let client = settings.upstream_client()?;
        let lane = crate::lane::Lane::start(
            &settings.proxy,
            settings.tls_ca_pem.as_deref(),
            settings.needs_tls(),
        )
        .map_err(|e| match e {
            crate::lane::LaneError::Tls(e) => crate::Error::Tls {
                reason: e.to_string(),
            },
            crate::lane::LaneError::Thread(e) => crate::Error::MirrorLane {
                reason: e.to_string(),
            },
        })?;
        Ok(Arc::new(Proxy {
            client,
            lane,
            modes: Arc::new(ModeTable::new(
                settings.caps.iter().map(|c| c.cfg.name.clone()).collect(),
            )),
            stats: settings
                .caps
                .iter()
                .map(|c| CapStats::new(c.name.clone()))
                .collect(),
            pools: settings
                .caps
                .iter()
                .map(|c| MirrorPool::new(c.cfg.mirror_max_in_flight))
                .collect(),
            fresh: settings
                .caps
                .iter()
                .map(|c| Freshness::new(c.name.clone(), c.cfg.freshness_budget_ms))
                .collect(),
            ryw: RywMap::new(
                Duration::from_millis(settings.proxy.ryw_window_ms),
                settings.proxy.ryw_max_clients,
            ),
            flusher: Mutex::new(Flusher::new(proxy_id.clone(), settings.caps.len())),
            mirror_headers,
            routes,
            settings,
            store,
            tasks: TaskTracker::new(),
            cancel,
            observers: crate::observe::channel(),
            proxy_id,
            shadow_seq: AtomicU64::new(0),
        }))
    }

    /// Subscribes to the comparisons this proxy judges (see [`crate::observe`]).
    pub fn observe(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::observe::Observation>> {
        self.observers.subscribe()
    }

    /// This process's id in the verdict counts.
    pub fn proxy_id(&self) -> &str {
        &self.proxy_id
    }

    pub(crate) fn next_shadow_id(&self) -> String {
        format!(
            "{}-{}",
            self.proxy_id,
            self.shadow_seq.fetch_add(1, Relaxed)
        )
    }

    /// Status of every capability on this proxy.
    pub fn status(&self) -> Vec<CapabilityStatus> {
        let snap = self.modes.current();
        self.settings
            .caps
            .iter()
            .map(|c| {
                let i = c.index;
                CapabilityStatus {
                    counters: self.stats[i].snapshot(),
                    mode: snap.caps[i].mode,
                    killed: snap.caps[i].killed || snap.all_killed,
                    lag_ms: self.fresh[i].lag_ms(),
                    lagging: self.fresh[i].lagging(),
                    mirror_in_flight: self.pools[i].in_flight(),
                    mirror_high_water: self.pools[i].high_water(),
                }
            })
            .collect()
    }

    /// The status of one capability.
    pub fn capability_status(&self, name: &str) -> Option<CapabilityStatus> {
        self.status()
            .into_iter()
            .find(|s| s.counters.capability == name)
    }

    /// Re-reads modes from the store now (the poll loop does this every `mode_poll_ms`).
    pub async fn refresh_modes(&self) -> Result<bool> {
        Ok(self.modes.refresh(&self.store).await?)
    }

    /// Writes the counters gathered since the last flush, in one transaction. Returns the rows.
    pub async fn flush_stats(&self) -> Result<usize> {
        let pending = self
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .batch(&self.stats, Utc::now());
        let n = pending.rows.len();
        self.store.add_verdict_counts(&pending.rows).await?;
        self.flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .committed(&self.stats, pending);
        Ok(n)
    }

    /// Starts the mode poll and the flush-and-gate loop; both stop on `cancel`.
    pub fn spawn_background(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let poll = self.modes.clone().spawn_poll(
            self.store.clone(),
            Duration::from_millis(self.settings.proxy.mode_poll_ms),
            self.cancel.clone(),
        );
        let me = self.clone();
        let flush = tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(
                    me.settings.proxy.stats_flush_ms,
                ));
                tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = me.cancel.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    if let Err(e) = me.flush_stats().await {
                        metrics::counter!("strangler_proxy_stats_flush_errors_total").increment(1);
                        tracing::warn!(error = %e, "writing verdict counts failed; retrying next tick");
                    }
                    crate::cutover::check_serving_gates(&me).await;
                }
            }
            .instrument(tracing::info_span!("stats_flush")),
        );
        vec![poll, flush]
    }

    /// Serves on `listener` (HTTP/1.1 keep-alive and HTTP/2 prior knowledge) until `cancel`,
    /// on one serving thread per core, then lets mirror tasks finish within `grace` and flushes
    /// the counters a last time.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, grace: Duration) -> Result<()> {
        self.serve_on_threads(listener, grace, crate::serve::default_threads())
            .await
    }

    /// As [`Proxy::serve`], on `threads` serving threads of the proxy's own, each with its own
    /// upstream connection pool; `0` serves on the caller's runtime instead.
    pub async fn serve_on_threads(
        self: Arc<Self>,
        listener: TcpListener,
        grace: Duration,
        threads: usize,
    ) -> Result<()> {
        if threads == 0 {
            let cancel = self.cancel.clone();
            let app = crate::router::app(self.clone());
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { cancel.cancelled().await })
                .await?;
        } else {
            crate::serve::on_threads(self.clone(), listener, threads, grace).await?;
        }
        self.drain(grace).await;
        Ok(())
    }

    /// The upstream client of the calling thread: a serving thread's own pool, else the shared
    /// one.
    pub(crate) fn client(&self) -> Client {
        crate::serve::local_client().unwrap_or_else(|| self.client.clone())
    }

    /// Waits for mirror tasks (at most `grace`) and writes the last counters.
    pub async fn drain(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.tasks.len(),
                "mirror tasks still running after the grace period"
            );
        }
        if let Err(e) = self.flush_stats().await {
            tracing::warn!(error = %e, "last flush of verdict counts failed");
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "proxy".into())
}
