//! The shadow proxy alone, for benchmarks and profiles: what `strangler proxy` runs, without the
//! CLI's other services (metrics endpoint, mismatch store, admin API), so it builds with this
//! crate only. Sets every configured capability to MODE first (forced, audited as `bench`), then
//! serves `[proxy] listen` until SIGINT or SIGTERM, and drains.
//!
//! `cargo run --release -p strangler-proxy --example proxy_server -- CONFIG.toml MODE`
//! (`STRANGLER_PROXY_THREADS=N` sets the serving threads, as `strangler proxy --threads` does)

use std::path::Path;
use std::time::Duration;

use strangler_core::{Config, Mode};
use strangler_proxy::Proxy;
use strangler_proxy::cutover::{self, SetRequest};
use strangler_store::Store;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

fn fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("error: {what}: {e}");
    std::process::exit(1);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, mode] = &args[..] else {
        eprintln!("usage: proxy_server CONFIG.toml MODE");
        std::process::exit(2);
    };
    let config = Config::load(Path::new(path)).unwrap_or_else(|e| fail("configuration", &e));
    let mode: Mode = mode.parse().unwrap_or_else(|e| fail("mode", &e));
    let store = Store::connect(&config.store.url)
        .await
        .unwrap_or_else(|e| fail("connecting to the store", &e));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| fail("migrating the store", &e));
    for cap in &config.capabilities {
        let set = SetRequest {
            capability: cap.name.clone(),
            to: mode,
            actor: "bench".into(),
            reason: "bench".into(),
            force: true,
        };
        if let Err(e) = cutover::set(&store, &config, &set).await {
            fail("setting the mode", &e);
        }
    }
    let cancel = CancellationToken::new();
    let proxy = Proxy::new(&config, store, cancel.clone())
        .unwrap_or_else(|e| fail("building the proxy", &e));
    proxy
        .refresh_modes()
        .await
        .unwrap_or_else(|e| fail("reading modes", &e));
    proxy.spawn_background();
    let listen = &config.proxy.as_ref().expect("[proxy] was validated").listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| fail("binding the listener", &e));
    let stop = cancel.clone();
    tokio::spawn(async move {
        let (mut int, mut term) = (
            signal(SignalKind::interrupt()).expect("SIGINT handler"),
            signal(SignalKind::terminate()).expect("SIGTERM handler"),
        );
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        stop.cancel();
    });
    // As `strangler proxy --threads`: serving threads, 0 for the shared runtime.
    let threads = match std::env::var("STRANGLER_PROXY_THREADS") {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|e| fail("STRANGLER_PROXY_THREADS", &e)),
        Err(_) => strangler_proxy::default_threads(),
    };
    let served = proxy
        .serve_on_threads(listener, Duration::from_secs(5), threads)
        .await;
    if let Err(e) = served {
        fail("serving", &e);
    }
}
