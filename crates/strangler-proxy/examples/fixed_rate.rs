//! Open-loop load at a fixed rate, for `deploy/bench-proxy.sh`: latency is measured from each
//! request's scheduled start, so a stall is not hidden by the generator waiting (no coordinated
//! omission). At most CONNECTIONS requests are in flight (50 unless given, as `oha`'s default):
//! a request scheduled while all are busy waits for one, and the wait counts in its latency.
//! Without the bound, every stall opened a new connection per scheduled request (17,000 of them
//! in one run) and the generator measured its own connection storm. Prints one line:
//! `requests=N errors=E p50_us=.. p99_us=.. p999_us=.. max_us=..`.
//!
//! `cargo run --release -p strangler-proxy --example fixed_rate -- URL RATE_PER_S SECONDS [CONNECTIONS]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use strangler_proxy::hist::Histogram;
use tokio::time::{Instant, MissedTickBehavior};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, rate, seconds, connections) = match &args[..] {
        [_, url, rate, seconds] => (url, rate, seconds, "50"),
        [_, url, rate, seconds, c] => (url, rate, seconds, c.as_str()),
        _ => {
            eprintln!("usage: fixed_rate URL RATE_PER_S SECONDS [CONNECTIONS]");
            std::process::exit(2);
        }
    };
    let connections: usize = connections.parse().expect("a connection count");
    let slots = Arc::new(tokio::sync::Semaphore::new(connections.max(1)));
    let uri: http::Uri = url.parse().expect("a URL");
    let rate: u64 = rate.parse().expect("a rate");
    let seconds: u64 = seconds.parse().expect("seconds");
    let client: Client<_, Body> = Client::builder(TokioExecutor::new()).build_http();
    let hist = Arc::new(Histogram::default());
    let errors = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..rate * seconds {
        let scheduled = tick.tick().await;
        let (client, uri, hist, errors, slots) = (
            client.clone(),
            uri.clone(),
            hist.clone(),
            errors.clone(),
            slots.clone(),
        );
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            let req = http::Request::get(uri)
                .body(Body::empty())
                .expect("request");
            match client.request(req).await {
                Ok(resp) if resp.status().is_success() => {
                    let _ = resp.into_body().collect().await;
                    hist.record(Instant::now() - scheduled);
                }
                _ => {
                    errors.fetch_add(1, Relaxed);
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let q = |p| hist.quantile_us(p).unwrap_or(0);
    println!(
        "requests={} errors={} p50_us={} p99_us={} p999_us={} max_us={}",
        hist.count(),
        errors.load(Relaxed),
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0)
    );
}
