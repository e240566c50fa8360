//! Driving the demo: legacy writes and client reads through the proxy, with a progress bar.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use rand::rngs::StdRng;

use super::{DemoError, Step};
use crate::legacy::{LegacyDb, Workload};

/// What one phase of traffic did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PhaseStats {
    /// Legacy writes (each with its outbox event).
    pub writes: u64,
    /// Client reads through the proxy.
    pub reads: u64,
    /// Reads whose answer was not 200 or 404.
    pub failed_reads: u64,
    /// Reads the new path served (canary and new modes). The legacy API stamps a `request_id` on
    /// every answer and the new read API does not, so the body tells who answered.
    pub served_new: u64,
}

/// What every phase of traffic goes through.
pub struct Driver<'a> {
    /// The proxy (to wait for its mirror copies).
    pub proxy: &'a strangler_proxy::Proxy,
    /// The legacy database the writes go to.
    pub db: &'a LegacyDb,
    /// Where clients read.
    pub proxy_url: &'a str,
    /// Client reads per legacy write.
    pub reads_per_write: u64,
    /// Hide the progress bar.
    pub quiet: bool,
}

/// Interleaves `writes` legacy writes with client reads of random existing orders through the
/// proxy.
pub async fn phase(
    driver: &Driver<'_>,
    label: &str,
    rng: &mut StdRng,
    writes: u64,
) -> Result<PhaseStats, DemoError> {
    let Driver {
        proxy,
        db,
        proxy_url,
        reads_per_write,
        quiet,
    } = *driver;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(writes)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "  {prefix:>10} [{bar:30}] {pos}/{len} writes  {msg}  eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let client = Client::new();
    let workload = Workload {
        change_share: 0.3,
        customers: 50,
    };
    let mut stats = PhaseStats::default();
    let mut ids: Vec<String> = db.sample_ids(200).await.step("sampling order ids")?.0;
    for i in 0..writes {
        let ev = workload
            .step(db, rng)
            .await
            .step("writing to the legacy database")?;
        stats.writes += 1;
        if let crate::legacy::OrderEvent::Placed { order_id } = ev {
            ids.push(order_id);
        }
        for _ in 0..reads_per_write {
            if ids.is_empty() {
                break;
            }
            // Reads favour recent orders, as real traffic does, so some hit the projection's lag.
            let n = ids.len();
            let idx = if rng.gen_bool(0.5) {
                n - 1 - rng.gen_range(0..n.min(20))
            } else {
                rng.gen_range(0..n)
            };
            let (status, served_new) = client
                .get(&format!("{proxy_url}/orders/{}", ids[idx]))
                .await
                .step("reading through the proxy")?;
            stats.reads += 1;
            if status != 200 && status != 404 {
                stats.failed_reads += 1;
            }
            if served_new {
                stats.served_new += 1;
            }
        }
        // A steady write rate, as a real legacy system has, rather than one burst.
        tokio::time::sleep(Duration::from_millis(3)).await;
        if i % 16 == 0 {
            bar.set_message(format!("{} reads", stats.reads));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Let the mirror copies of the last reads finish (a lag re-ask takes the settle delay) so
    // their verdicts are in the ledger and the store.
    for _ in 0..200 {
        if proxy.status().iter().all(|c| c.mirror_in_flight == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.flush_stats().await.step("flushing verdict counts")?;
    Ok(stats)
}

pub use reqwest_like::Client;

/// A minimal keep-alive HTTP/1.1 client over hyper-util, enough for the demo's reads.
mod reqwest_like {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client as HyperClient;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    pub struct Client {
        inner: HyperClient<HttpConnector, Empty<Bytes>>,
    }

    impl Client {
        pub fn new() -> Client {
            Client {
                inner: HyperClient::builder(TokioExecutor::new()).build_http(),
            }
        }

        /// GETs `url`; returns the status and whether the new read path answered (a 200 without
        /// the legacy API's `request_id`).
        pub async fn get(
            &self,
            url: &str,
        ) -> Result<(u16, bool), Box<dyn std::error::Error + Send + Sync>> {
            let resp = self.inner.get(url.parse()?).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            let from_legacy = body.windows(12).any(|w| w == b"\"request_id\"");
            Ok((status, status == 200 && !from_legacy))
        }
    }
}
