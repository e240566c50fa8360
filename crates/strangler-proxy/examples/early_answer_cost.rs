//! What the early-answer wrapper costs on the pass-through path (`forward::EarlyAnswer`, the
//! transport that keeps reading after an upstream stopped reading, and `forward::drained`, the
//! client body that is drained in the background if it was left unread).
//!
//! Two upstream clients send the same requests to the same upstream, in alternating rounds:
//! `early`, the proxy's own (`forward::client`, `forward::send`, `forward::drained`), and
//! `plain`, the same hyper-util client and HTTPS-or-HTTP connector without the wrapper, behind
//! the same timeout. Each round reports wall-clock requests/s and this process's CPU time per
//! request (user + system from `/proc/self/stat`, so other processes' load changes it little);
//! the medians over the rounds and their ratio are printed last. `GET` exercises the transport
//! wrapper only (no body); `POST` with a 2 KB body also ties the request to its connection
//! (`capture_connection`) and wraps the body.
//!
//! `cargo run --release -p strangler-proxy --example early_answer_cost -- URL [REQUESTS ROUNDS CONCURRENCY]`

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use strangler_proxy::forward;

type Plain = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// The proxy's connector without the wrapper, set up as `forward::client` sets up its own.
fn plain_client() -> Plain {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Plain,
    Early,
}

/// CPU time of this process so far (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

async fn one(
    v: Variant,
    early: &forward::Client,
    plain: &Plain,
    method: &Method,
    uri: &Uri,
    body: &Bytes,
) -> bool {
    let timeout = Duration::from_secs(5);
    let make = || {
        if body.is_empty() {
            Body::empty()
        } else {
            Body::from(body.clone())
        }
    };
    let resp = match v {
        Variant::Early => {
            let req = forward::prepared(
                method.clone(),
                HeaderMap::new(),
                uri.clone(),
                forward::drained(make()),
            );
            forward::send(early, req, timeout)
                .await
                .ok()
                .map(|(r, _)| r)
        }
        Variant::Plain => {
            let mut req = http::Request::new(make());
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri.clone();
            tokio::time::timeout(timeout, plain.request(req))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|r| r.map(Body::new))
        }
    };
    match resp {
        Some(r) => r.into_body().collect().await.is_ok(),
        None => false,
    }
}

/// The two clients and the request they both send.
struct Bench<'a> {
    early: &'a forward::Client,
    plain: &'a Plain,
    method: &'a Method,
    uri: &'a Uri,
    body: &'a Bytes,
}

/// `requests` requests from `concurrency` workers; (requests/s, CPU µs per request, errors).
async fn round(
    v: Variant,
    b: &Bench<'_>,
    requests: usize,
    concurrency: usize,
) -> (f64, f64, usize) {
    let cpu = cpu_time();
    let start = Instant::now();
    let per = requests / concurrency;
    let workers = (0..concurrency).map(|_| async move {
        let mut errors = 0;
        for _ in 0..per {
            if !one(v, b.early, b.plain, b.method, b.uri, b.body).await {
                errors += 1;
            }
        }
        errors
    });
    let errors: usize = futures_join_all(workers).await.into_iter().sum();
    let wall = start.elapsed();
    let used = cpu_time().saturating_sub(cpu);
    let n = (per * concurrency) as f64;
    (n / wall.as_secs_f64(), used.as_secs_f64() * 1e6 / n, errors)
}

/// Runs futures concurrently on this task (no spawning: the runtime has one thread).
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("finished")).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = args.get(1) else {
        eprintln!("usage: early_answer_cost URL [REQUESTS ROUNDS CONCURRENCY]");
        std::process::exit(2);
    };
    let arg = |i: usize, d: usize| args.get(i).map_or(d, |a| a.parse().expect("a number"));
    let (requests, rounds, concurrency) = (arg(2, 20_000), arg(3, 6), arg(4, 8));
    let uri: Uri = url.parse().expect("a URL");
    let config = strangler_core::Config::parse(
        &format!("[proxy]\nlegacy_url = \"{url}\"\nnew_url = \"{url}\"\n"),
        Path::new("early-answer-cost.toml"),
    )
    .expect("configuration");
    let proxy = config.proxy.expect("[proxy]");
    // One thread: the CPU time read is this loop's alone.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let early = forward::client(&proxy, None, false).expect("client");
        let plain = plain_client();
        let body = Bytes::from(vec![b'x'; 2048]);
        for (method, body) in [(Method::GET, Bytes::new()), (Method::POST, body)] {
            // Warm both pools.
            let b = Bench {
                early: &early,
                plain: &plain,
                method: &method,
                uri: &uri,
                body: &body,
            };
            for v in [Variant::Plain, Variant::Early] {
                round(v, &b, concurrency * 50, concurrency).await;
            }
            let mut seen = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
            for r in 0..rounds {
                let order = if r % 2 == 0 {
                    [Variant::Plain, Variant::Early]
                } else {
                    [Variant::Early, Variant::Plain]
                };
                for v in order {
                    let (rps, cpu_us, errors) = round(v, &b, requests, concurrency).await;
                    let name = if v == Variant::Early { "early" } else { "plain" };
                    println!(
                        "{method} round {r} {name}: {rps:.0} req/s, {cpu_us:.1} CPU µs/request, {errors} errors"
                    );
                    let i = usize::from(v == Variant::Early);
                    seen[i].0.push(rps);
                    seen[i].1.push(cpu_us);
                }
            }
            let [(p_rps, p_cpu), (e_rps, e_cpu)] = seen;
            let (p_rps, p_cpu, e_rps, e_cpu) =
                (median(p_rps), median(p_cpu), median(e_rps), median(e_cpu));
            println!(
                "{method} medians: plain {p_rps:.0} req/s {p_cpu:.1} µs; early {e_rps:.0} req/s {e_cpu:.1} µs; \
                 early/plain throughput {:.3}x, CPU per request {:.3}x",
                e_rps / p_rps,
                e_cpu / p_cpu
            );
        }
    });
}
