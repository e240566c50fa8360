//! An upstream that answers a request before reading its body (allowed by HTTP/1.1, and what an
//! axum handler that ignores the body does) and closes: a client of the proxy gets that answer,
//! as a client talking to the upstream directly does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use strangler_core::Config;
use strangler_proxy::Proxy;
use strangler_store::Store;
use tokio_util::sync::CancellationToken;

const BODY: usize = 4 << 20;

/// Legacy: answers `GET /orders/{id}` at once, never reading the request body.
async fn legacy() -> SocketAddr {
    let app = Router::new().route(
        "/orders/{id}",
        get(|UrlPath(id): UrlPath<String>| async move { format!("{{\"id\":\"{id}\"}}") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn proxy(dir: &std::path::Path, legacy: SocketAddr) -> (Arc<Proxy>, SocketAddr) {
    let text = format!(
        "[proxy]\nlegacy_url = \"http://{legacy}\"\nnew_url = \"http://{legacy}\"\n\n\
         [[capability]]\nname = \"orders\"\nroutes = [\"GET /orders/{{id}}\"]\n"
    );
    let config = Config::parse(&text, &dir.join("strangler.toml")).expect("valid configuration");
    let url = format!("sqlite://{}", dir.join("control.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let proxy = Proxy::new(&config, store, CancellationToken::new()).unwrap();
    proxy.refresh_modes().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve(listener, Duration::from_secs(1)));
    (proxy, addr)
}

/// Sends `n` GETs with 4 MiB bodies to `to`, `parallel` at a time, each next to a GET without a
/// body on the same pooled client; returns how many got anything but `200` with the expected
/// body, and the first few failures.
async fn big_gets(to: SocketAddr, n: usize, parallel: usize) -> (usize, Vec<String>) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let body = Bytes::from(vec![b'x'; BODY]);
    let mut failed = 0;
    let mut why = Vec::new();
    for round in 0..n.div_ceil(parallel) {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..2 * parallel.min(n - round * parallel) {
            let id = round * parallel + i / 2;
            let body = if i % 2 == 0 {
                body.clone()
            } else {
                Bytes::new()
            };
            let req = http::Request::get(format!("http://{to}/orders/{id}"))
                .body(Full::new(body))
                .unwrap();
            let client = client.clone();
            set.spawn(async move {
                let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
                let status = resp.status();
                let got = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("{e:?}"))?
                    .to_bytes();
                let want = format!("{{\"id\":\"{id}\"}}");
                if status != 200 || got != want.as_bytes() {
                    return Err(format!("{status} {}", String::from_utf8_lossy(&got)));
                }
                Ok(())
            });
        }
        while let Some(r) = set.join_next().await {
            if let Err(e) = r.unwrap() {
                failed += 1;
                if why.len() < 5 {
                    why.push(e);
                }
            }
        }
    }
    (failed, why)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_before_the_body_was_read_reaches_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = legacy().await;
    let (_proxy, addr) = proxy(dir.path(), legacy).await;
    let n: usize = std::env::var("EARLY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    // A client talking to legacy directly loses some of these answers (hyper fails the exchange
    // on the body write, or the reset destroys the answer): printed for comparison, not asserted.
    let direct = big_gets(legacy, n, 4).await;
    let proxied = big_gets(addr, n, 4).await;
    eprintln!("direct: {} of {} failed {:?}", direct.0, 2 * n, direct.1);
    eprintln!("proxied: {} of {} failed {:?}", proxied.0, 2 * n, proxied.1);
    assert_eq!(proxied.0, 0, "{:?}", proxied.1);
}
