//! The shadow proxy on real sockets, between fake legacy and new upstreams on loopback, with its
//! cutover state in a real store (SQLite file, fresh PostgreSQL database).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use strangler_core::{Config, Mode};
use strangler_proxy::cutover::{self, SetRequest};
use strangler_proxy::{Error, Proxy};
use strangler_store::Store;
use strangler_test_support::upstream::{Upstream, upstream};
use strangler_test_support::{pg_database, sqlite_file};
use tokio_util::sync::CancellationToken;

mod fast;

const ORDER: &str = r#"{"id":"ID","total":10,"lines":[{"sku":"a","qty":1}]}"#;

fn order(id: &str) -> String {
    ORDER.replace("ID", id)
}

/// Legacy: orders as JSON, `x-served-by: legacy`, writes accepted.
async fn legacy() -> Upstream {
    upstream(
        Router::new()
            .route(
                "/orders/{id}",
                get(|UrlPath(id): UrlPath<String>| async move {
                    (
                        [
                            ("x-served-by", "legacy"),
                            ("content-type", "application/json"),
                        ],
                        order(&id),
                    )
                })
                .post(|| async { (StatusCode::CREATED, [("x-served-by", "legacy")], "{}") }),
            )
            .route("/echo", any(echo)),
    )
    .await
}

/// Shows what the upstream received, and answers with hop-by-hop headers of its own.
async fn echo(req: Request) -> impl IntoResponse {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().into()))
        .collect();
    let body = serde_json::json!({ "uri": req.uri().to_string(), "headers": headers });
    (
        [
            ("keep-alive", "timeout=5"),
            ("proxy-agent", "x"),
            ("x-end-to-end", "kept"),
        ],
        body.to_string(),
    )
}

/// How a fake new read path behaves, switchable while tests run.
#[derive(Default)]
struct NewPath {
    garbage: AtomicBool,
    fail: AtomicBool,
    sleep_ms: AtomicU64,
    lag_ms: AtomicU64,
    arrivals: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    shadow_headers: std::sync::Mutex<Vec<String>>,
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

async fn new_path(state: Arc<NewPath>) -> Upstream {
    let handler = move |UrlPath((kind, id)): UrlPath<(String, String)>, headers: HeaderMap| {
        let s = state.clone();
        async move {
            s.arrivals.fetch_add(1, SeqCst);
            let now = s.in_flight.fetch_add(1, SeqCst) + 1;
            s.max_in_flight.fetch_max(now, SeqCst);
            let _guard = InFlight(&s.in_flight);
            if let Some(h) = headers.get("x-strangler-shadow") {
                s.shadow_headers
                    .lock()
                    .unwrap()
                    .push(h.to_str().unwrap().to_owned());
            }
            if s.fail.load(SeqCst) {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [
                        ("x-served-by", "new".to_owned()),
                        ("x-strangler-lag-ms", "0".to_owned()),
                    ],
                    "boom".to_owned(),
                );
            }
            let sleep = s.sleep_ms.load(SeqCst);
            if sleep > 0 {
                tokio::time::sleep(Duration::from_millis(sleep)).await;
            }
            let differs = kind == "hi" && id.parse::<u32>().unwrap_or(0) % 3 == 0;
            let body = if s.garbage.load(SeqCst) {
                "<html>garbage".to_owned()
            } else if differs {
                order(&id).replace("\"total\":10", "\"total\":11")
            } else {
                order(&id)
            };
            let lag = s.lag_ms.load(SeqCst).to_string();
            (
                StatusCode::OK,
                [
                    ("x-served-by", "new".to_owned()),
                    ("x-strangler-lag-ms", lag),
                ],
                body,
            )
        }
    };
    upstream(Router::new().route("/{kind}/{id}", get(handler))).await
}

fn config(legacy: &str, new: &str, extra: &str) -> Config {
    let text = format!(
        r#"[proxy]
legacy_url = "{legacy}"
new_url = "{new}"
mode_poll_ms = 100
stats_flush_ms = 100
client_id_header = "x-user"
ryw_window_ms = 400

[[capability]]
name = "orders"
routes = ["GET /orders/{{id}}"]
canary_key_param = "id"
min_sample = 100
mismatch_budget = 0.05
max_p99_delta_ms = 1000
{extra}

[[capability]]
name = "order-writes"
routes = ["POST /orders/{{id}}"]
write_safety = "side-effecting"
ryw_affects = ["orders"]

[[capability]]
name = "hi"
routes = ["GET /hi/{{id}}"]
# Counted exactly by the gate test: a loaded CI machine must not turn copies into timeouts, nor
# drop them when the mirror lane (at a lower priority) falls behind.
mirror_timeout_ms = 30000
mirror_max_in_flight = 1000
min_sample = 100
mismatch_budget = 0.05
max_p99_delta_ms = 1000
"#
    );
    Config::parse(&text, Path::new("proxy-test.toml")).expect("test configuration is valid")
}

struct Running {
    proxy: Arc<Proxy>,
    addr: SocketAddr,
    cancel: CancellationToken,
    store: Store,
    config: Config,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn start(config: &Config, store_url: &str) -> Running {
    let store = Store::connect(store_url).await.expect("store");
    store.migrate().await.expect("migrations");
    let cancel = CancellationToken::new();
    let proxy = Proxy::new(config, store.clone(), cancel.clone()).expect("proxy");
    proxy.refresh_modes().await.expect("modes");
    proxy.spawn_background();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve(listener, Duration::from_secs(1)));
    Running {
        proxy,
        addr,
        cancel,
        store,
        config: config.clone(),
    }
}

impl Running {
    async fn set(&self, cap: &str, to: Mode, force: bool) -> Result<cutover::SetOutcome, Error> {
        let out = cutover::set(
            &self.store,
            &self.config,
            &SetRequest {
                capability: cap.into(),
                to,
                actor: "test".into(),
                reason: "e2e".into(),
                force,
            },
        )
        .await;
        self.proxy.refresh_modes().await.unwrap();
        out
    }

    fn status(&self, cap: &str) -> strangler_proxy::CapabilityStatus {
        self.proxy.capability_status(cap).unwrap()
    }

    async fn mirrors_done(&self, cap: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.status(cap).mirror_in_flight > 0 {
            assert!(Instant::now() < deadline, "mirrors of {cap} never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    elapsed: Duration,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn call(c: &HttpClient, method: &str, url: String, headers: &[(&str, &str)]) -> Answer {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let start = Instant::now();
    let resp = c
        .request(req.body(Full::default()).unwrap())
        .await
        .expect("proxy answers");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
        elapsed: start.elapsed(),
    }
}

async fn fetch(c: &HttpClient, p: &Running, path: &str, headers: &[(&str, &str)]) -> Answer {
    call(c, "GET", format!("http://{}{path}", p.addr), headers).await
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99).div_ceil(100) - 1]
}

fn served_by(a: &Answer) -> &str {
    a.headers
        .get("x-served-by")
        .map_or("?", |v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_clients_get_legacy_bytes_at_pass_through_latency_whatever_the_new_path_does() {
    let legacy = legacy().await;
    let state = Arc::new(NewPath::default());
    let new = new_path(state.clone()).await;
    // A port nothing listens on: the new path is down.
    let down = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let db = sqlite_file();
    let c = client();
    let direct = call(&c, "GET", format!("{}/orders/7", legacy.url()), &[]).await;

    let mut p99s = Vec::new();
    for (scenario, new_url) in [
        ("pass-through", new.url()),
        ("down", format!("http://{down}")),
        ("slow", new.url()),
        ("garbage", new.url()),
    ] {
        state
            .sleep_ms
            .store(if scenario == "slow" { 5_000 } else { 0 }, SeqCst);
        state.garbage.store(scenario == "garbage", SeqCst);
        let p = start(&config(&legacy.url(), &new_url, ""), &db.url).await;
        let mode = if scenario == "pass-through" {
            Mode::Legacy
        } else {
            Mode::Shadow
        };
        p.set("orders", mode, false).await.unwrap();
        let mut latencies = Vec::new();
        for _ in 0..300 {
            let a = fetch(&c, &p, "/orders/7", &[]).await;
            assert_eq!(a.status, StatusCode::OK, "{scenario}");
            assert_eq!(
                a.body, direct.body,
                "{scenario}: bytes differ from legacy's"
            );
            assert_eq!(served_by(&a), "legacy", "{scenario}");
            latencies.push(a.elapsed);
        }
        let p99 = p99(latencies);
        eprintln!("{scenario}: client p99 {p99:?}");
        p99s.push((scenario, p99));
        if scenario == "garbage" {
            p.mirrors_done("orders").await;
            let s = p.status("orders");
            assert!(
                s.counters.mismatches > 0,
                "garbage must be judged a mismatch"
            );
            assert_eq!(s.counters.matches, 0);
        }
        if scenario == "down" {
            p.mirrors_done("orders").await;
            assert!(p.status("orders").counters.new_errors > 0);
        }
    }
    let base = p99s[0].1;
    for (scenario, p99) in &p99s[1..] {
        assert!(*p99 < Duration::from_millis(100), "{scenario}: p99 {p99:?}");
        assert!(
            *p99 < base + Duration::from_millis(50),
            "{scenario}: p99 {p99:?} vs pass-through {base:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_new_path_cannot_grow_the_mirror_pool_and_every_dropped_copy_is_counted() {
    let legacy = legacy().await;
    let state = Arc::new(NewPath::default());
    state.sleep_ms.store(1_500, SeqCst);
    let new = new_path(state.clone()).await;
    let db = sqlite_file();
    let cfg = config(
        &legacy.url(),
        &new.url(),
        "mirror_max_in_flight = 8\nmirror_timeout_ms = 5000",
    );
    let p = start(&cfg, &db.url).await;
    p.set("orders", Mode::Shadow, false).await.unwrap();
    let total = 32 * 40;
    let mut clients = Vec::new();
    for w in 0..32 {
        let (c, addr) = (client(), p.addr);
        clients.push(tokio::spawn(async move {
            for i in 0..40 {
                let url = format!("http://{addr}/orders/{}", w * 100 + i);
                let a = call(&c, "GET", url, &[]).await;
                assert_eq!(a.status, StatusCode::OK);
            }
        }));
    }
    let mut high = 0;
    while clients.iter().any(|c| !c.is_finished()) {
        high = high.max(p.status("orders").mirror_in_flight);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for c in clients {
        c.await.unwrap();
    }
    p.mirrors_done("orders").await;
    let s = p.status("orders");
    let arrived = state.arrivals.load(SeqCst);
    assert!(
        high <= 8 && s.mirror_high_water <= 8,
        "pool grew to {}",
        s.mirror_high_water
    );
    assert!(state.max_in_flight.load(SeqCst) <= 8);
    let dropped = s.counters.skipped("pool_full");
    assert!(dropped > 0, "the load must overflow the pool");
    assert_eq!(
        dropped as usize + arrived,
        total,
        "every copy not mirrored is counted"
    );
    assert_eq!(
        (s.counters.matches + s.counters.mismatches) as usize,
        arrived
    );
}

async fn picked_up_by_two_proxies_within_a_second(store_url: &str) {
    let legacy = legacy().await;
    let state = Arc::new(NewPath::default());
    let new = new_path(state.clone()).await;
    let cfg = config(&legacy.url(), &new.url(), "");
    let a = start(&cfg, store_url).await;
    let b = start(&cfg, store_url).await;
    let control = Store::connect(store_url).await.unwrap();
    for (to, force) in [
        (Mode::Shadow, false),
        (Mode::New, true),
        (Mode::Legacy, false),
    ] {
        let begun = Instant::now();
        cutover::set(
            &control,
            &cfg,
            &SetRequest {
                capability: "orders".into(),
                to,
                actor: "operator".into(),
                reason: "picked up?".into(),
                force,
            },
        )
        .await
        .unwrap();
        while a.status("orders").mode != to || b.status("orders").mode != to {
            assert!(
                begun.elapsed() < Duration::from_secs(1),
                "{to} not seen within a second"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!("{to} seen by both proxies after {:?}", begun.elapsed());
        let c = client();
        for p in [&a, &b] {
            let served = served_by(&fetch(&c, p, "/orders/1", &[]).await).to_owned();
            assert_eq!(served, if to == Mode::New { "new" } else { "legacy" });
        }
    }
    let history = cutover::history(&control, &cfg, "orders", 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 3);
    assert!(history[1].forced && history[1].to_mode == "new" && history[1].gate.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_changes_reach_two_proxies_within_a_second_on_sqlite() {
    let db = sqlite_file();
    picked_up_by_two_proxies_within_a_second(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_changes_reach_two_proxies_within_a_second_on_postgres() {
    let db = pg_database().await;
    picked_up_by_two_proxies_within_a_second(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_refuse_a_high_mismatch_rate_allow_a_low_one_and_a_spiking_canary_demotes_itself() {
    let legacy = upstream(Router::new().route(
        "/{kind}/{id}",
        get(|UrlPath((_, id)): UrlPath<(String, String)>| async move {
            ([("x-served-by", "legacy")], order(&id))
        }),
    ))
    .await;
    let state = Arc::new(NewPath::default());
    let new = new_path(state.clone()).await;
    let db = sqlite_file();
    // Every copy is counted: none may be dropped while a loaded machine starves the mirror lane.
    let p = start(
        &config(&legacy.url(), &new.url(), "mirror_max_in_flight = 1000"),
        &db.url,
    )
    .await;
    p.set("orders", Mode::Shadow, false).await.unwrap();
    p.set("hi", Mode::Shadow, false).await.unwrap();
    let c = client();
    for i in 0..150 {
        fetch(&c, &p, &format!("/orders/{i}"), &[]).await;
        fetch(&c, &p, &format!("/hi/{i}"), &[]).await;
    }
    p.mirrors_done("orders").await;
    p.mirrors_done("hi").await;
    p.proxy.flush_stats().await.unwrap();
    let hi = p.status("hi").counters;
    assert_eq!(hi.mismatches, 50, "one id in three differs: {hi:?}");

    match p.set("hi", Mode::Canary(10), false).await {
        Err(Error::GateFailed { report, .. }) => {
            assert!(
                report.failures().contains("mismatch_rate_upper95"),
                "{}",
                report.failures()
            );
        }
        other => panic!("a 33% mismatch rate must be refused: {other:?}"),
    }
    let ok = p
        .set("orders", Mode::Canary(50), false)
        .await
        .expect("a clean capability passes");
    assert!(ok.gate.as_ref().unwrap().passed);

    // The new path starts answering garbage: the canary must step back by itself.
    state.garbage.store(true, SeqCst);
    let begun = Instant::now();
    let mut i = 1_000;
    while p.status("orders").mode != Mode::Shadow {
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "canary never demoted"
        );
        fetch(&c, &p, &format!("/orders/{i}"), &[]).await;
        i += 1;
        p.proxy.refresh_modes().await.unwrap();
    }
    let history = cutover::history(&p.store, &p.config, "orders", 10)
        .await
        .unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.to_mode.as_str()),
        ("strangler-proxy", "shadow")
    );
    assert!(
        last.reason.contains("mismatch_rate_lower95"),
        "{}",
        last.reason
    );
}

/// Sends requests until `cap` leaves `from`, within 20 s; returns the answers seen meanwhile.
async fn until_demoted(c: &HttpClient, p: &Running, cap: &str, from: Mode) -> Vec<Answer> {
    let begun = Instant::now();
    let mut seen = Vec::new();
    let mut i = 5_000;
    while p.status(cap).mode == from {
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "{cap} never left {from}"
        );
        seen.push(fetch(c, p, &format!("/orders/{i}"), &[]).await);
        i += 1;
        p.proxy.refresh_modes().await.unwrap();
    }
    seen
}

async fn last_audit(p: &Running, cap: &str) -> strangler_store::cutover::AuditEntry {
    let history = cutover::history(&p.store, &p.config, cap, 50)
        .await
        .unwrap();
    history.last().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capability_in_new_mode_falls_back_to_shadow_on_errors_or_mismatches() {
    let legacy = legacy().await;
    let state = Arc::new(NewPath::default());
    let new = new_path(state.clone()).await;
    let db = sqlite_file();
    let p = start(
        &config(&legacy.url(), &new.url(), "new_compare_rate = 1.0"),
        &db.url,
    )
    .await;
    p.set("orders", Mode::New, true).await.unwrap();
    let c = client();
    for i in 0..30 {
        let a = fetch(&c, &p, &format!("/orders/{i}"), &[]).await;
        assert_eq!(served_by(&a), "new", "a healthy new path serves");
    }

    // The new path starts failing: every client still gets legacy's answer, and the capability
    // steps back to shadow by itself, audited.
    state.fail.store(true, SeqCst);
    let seen = until_demoted(&c, &p, "orders", Mode::New).await;
    assert!(!seen.is_empty());
    for a in &seen {
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(served_by(a), "legacy");
    }
    let last = last_audit(&p, "orders").await;
    assert_eq!(
        (last.actor.as_str(), last.to_mode.as_str()),
        ("strangler-proxy", "shadow")
    );
    assert!(
        last.reason.contains("new gate broke") && last.reason.contains("error_rate_lower95"),
        "{}",
        last.reason
    );
    let a = fetch(&c, &p, "/orders/1", &[]).await;
    assert_eq!(served_by(&a), "legacy", "shadow serves legacy");

    // Back to new (a fresh evidence window); now the new path answers wrong data, which only
    // the reverse comparison sees: the capability falls back again, on mismatches.
    state.fail.store(false, SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    p.set("orders", Mode::New, true).await.unwrap();
    state.garbage.store(true, SeqCst);
    until_demoted(&c, &p, "orders", Mode::New).await;
    let last = last_audit(&p, "orders").await;
    assert_eq!(last.to_mode, "shadow");
    assert!(
        last.reason.contains("mismatch_rate_lower95"),
        "{}",
        last.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_reads_its_own_write_from_legacy_and_lagging_projections_fall_back() {
    let legacy = legacy().await;
    let state = Arc::new(NewPath::default());
    let new = new_path(state.clone()).await;
    let db = sqlite_file();
    let p = start(
        &config(&legacy.url(), &new.url(), "freshness_budget_ms = 1000"),
        &db.url,
    )
    .await;
    p.set("orders", Mode::New, true).await.unwrap();
    p.set("order-writes", Mode::Shadow, false).await.unwrap();
    let c = client();
    assert_eq!(
        served_by(&fetch(&c, &p, "/orders/1", &[("x-user", "ann")]).await),
        "new"
    );

    let w = call(
        &c,
        "POST",
        format!("http://{}/orders/1", p.addr),
        &[("x-user", "ann")],
    )
    .await;
    assert_eq!((w.status, served_by(&w)), (StatusCode::CREATED, "legacy"));
    assert_eq!(
        state.arrivals.load(SeqCst),
        1,
        "a side-effecting write is never mirrored"
    );
    assert_eq!(p.status("order-writes").counters.skipped("write_unsafe"), 1);
    assert_eq!(
        served_by(&fetch(&c, &p, "/orders/1", &[("x-user", "ann")]).await),
        "legacy"
    );
    assert_eq!(
        served_by(&fetch(&c, &p, "/orders/1", &[("x-user", "bob")]).await),
        "new"
    );
    assert_eq!(p.status("orders").counters.fallbacks("read_your_writes"), 1);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        served_by(&fetch(&c, &p, "/orders/1", &[("x-user", "ann")]).await),
        "new"
    );

    // The projection falls 5 s behind a 1 s budget: reads go to legacy until it recovers.
    state.lag_ms.store(5_000, SeqCst);
    assert_eq!(
        served_by(&fetch(&c, &p, "/orders/2", &[]).await),
        "new",
        "lag not yet seen"
    );
    assert!(p.status("orders").lagging);
    for _ in 0..3 {
        assert_eq!(served_by(&fetch(&c, &p, "/orders/2", &[]).await), "legacy");
    }
    assert_eq!(p.status("orders").counters.fallbacks("lag"), 3);
    p.mirrors_done("orders").await;
    state.lag_ms.store(20, SeqCst);
    // Lag fall-backs keep mirroring, so the recovery is seen.
    fetch(&c, &p, "/orders/2", &[]).await;
    p.mirrors_done("orders").await;
    assert!(!p.status("orders").lagging);
    assert_eq!(p.status("orders").lag_ms, 20);
    assert_eq!(served_by(&fetch(&c, &p, "/orders/2", &[]).await), "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writers_window_closes_once_the_projection_watermark_passes_the_write() {
    let legacy = legacy().await;
    let state = Arc::new(NewPath::default());
    let new = new_path(state.clone()).await;
    let db = sqlite_file();
    let mut cfg = config(&legacy.url(), &new.url(), "freshness_budget_ms = 60000");
    cfg.proxy.as_mut().unwrap().ryw_window_ms = 60_000;
    let p = start(&cfg, &db.url).await;
    p.set("orders", Mode::New, true).await.unwrap();
    p.set("order-writes", Mode::Shadow, false).await.unwrap();
    let c = client();
    let ann = [("x-user", "ann")];
    let w = call(&c, "POST", format!("http://{}/orders/1", p.addr), &ann).await;
    assert_eq!(w.status, StatusCode::CREATED);

    // The projection reports 30 s of lag (within its budget): its watermark is before the
    // write, so ann keeps reading legacy.
    state.lag_ms.store(30_000, SeqCst);
    for _ in 0..3 {
        assert_eq!(served_by(&fetch(&c, &p, "/orders/1", &ann).await), "legacy");
        p.mirrors_done("orders").await;
    }
    // It catches up: the next answer it gives puts its watermark past the write, and ann reads
    // the new path again long before her 60 s window ends.
    state.lag_ms.store(0, SeqCst);
    assert_eq!(served_by(&fetch(&c, &p, "/orders/1", &ann).await), "legacy");
    p.mirrors_done("orders").await;
    assert_eq!(served_by(&fetch(&c, &p, "/orders/1", &ann).await), "new");
    assert_eq!(p.status("orders").counters.fallbacks("read_your_writes"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_go_queries_stay_and_http2_clients_are_served() {
    let legacy = legacy().await;
    let state = Arc::new(NewPath::default());
    let new = new_path(state.clone()).await;
    let db = sqlite_file();
    let p = start(&config(&legacy.url(), &new.url(), ""), &db.url).await;
    p.set("orders", Mode::Shadow, false).await.unwrap();
    let c = client();
    let a = fetch(
        &c,
        &p,
        "/echo?b=2&a=%20x&a=1",
        &[
            ("connection", "x-private"),
            ("x-private", "1"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic eA=="),
            ("x-end-to-end", "yes"),
        ],
    )
    .await;
    let seen: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(seen["uri"], "/echo?b=2&a=%20x&a=1");
    let h = &seen["headers"];
    assert_eq!(h["x-end-to-end"], "yes");
    for gone in ["x-private", "te", "proxy-authorization"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    assert_eq!(a.headers["x-end-to-end"], "kept");
    assert!(a.headers.get("keep-alive").is_none() && a.headers.get("proxy-agent").is_none());

    // HTTP/2 with prior knowledge, through a capability in shadow mode.
    let h2: HttpClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let resp = h2
        .request(
            http::Request::get(format!("http://{}/orders/5?x=1", p.addr))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .expect("h2c answer");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, order("5"));
    p.mirrors_done("orders").await;
    assert_eq!(p.status("orders").counters.matches, 1);
    let shadow = state.shadow_headers.lock().unwrap().clone();
    assert_eq!(shadow.len(), 1);
    assert!(shadow[0].starts_with("orders/"), "{shadow:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_with_fall_back_serves_legacy_on_mismatch_and_kill_switches_force_legacy() {
    let legacy = legacy().await;
    let state = Arc::new(NewPath::default());
    let new = new_path(state.clone()).await;
    let db = sqlite_file();
    let p = start(
        &config(&legacy.url(), &new.url(), "fallback_on_mismatch = true"),
        &db.url,
    )
    .await;
    p.set("orders", Mode::Canary(99), true).await.unwrap();
    let c = client();
    // Ids in the canary's 99%: their bucket is below 99.
    let ids: Vec<u32> = (0..40)
        .filter(|i| strangler_proxy::modes::bucket(i.to_string().as_bytes()) < 99)
        .take(20)
        .collect();
    for id in &ids {
        assert_eq!(
            served_by(&fetch(&c, &p, &format!("/orders/{id}"), &[]).await),
            "new"
        );
    }
    let s = p.status("orders");
    assert_eq!((s.counters.served_new, s.counters.matches), (20, 20));
    // Kill switches: the capability's, then everyone's; both force legacy and both are audited.
    let path = format!("/orders/{}", ids[0]);
    for target in [Some("orders"), None] {
        cutover::kill(&p.store, &p.config, target, true, "oncall", "incident")
            .await
            .unwrap();
        p.proxy.refresh_modes().await.unwrap();
        assert_eq!(
            served_by(&fetch(&c, &p, &path, &[]).await),
            "legacy",
            "{target:?}"
        );
        assert!(p.status("orders").killed);
        cutover::kill(&p.store, &p.config, target, false, "oncall", "fixed")
            .await
            .unwrap();
        p.proxy.refresh_modes().await.unwrap();
        assert_eq!(
            served_by(&fetch(&c, &p, &path, &[]).await),
            "new",
            "{target:?}"
        );
    }
    let audit = cutover::history(&p.store, &p.config, "*", 10)
        .await
        .unwrap();
    let moves: Vec<&str> = audit.iter().map(|e| e.to_mode.as_str()).collect();
    assert_eq!(moves, ["killed", "unkilled"]);

    // The new path answers garbage: clients get legacy's bytes (by fall-back, until the canary's
    // own gate demotes it to shadow, which may happen within these requests).
    state.garbage.store(true, SeqCst);
    for id in &ids[..10] {
        let a = fetch(&c, &p, &format!("/orders/{id}"), &[]).await;
        assert_eq!(
            (served_by(&a), &a.body[..]),
            ("legacy", order(&id.to_string()).as_bytes())
        );
    }
    let s = p.status("orders");
    assert!(s.counters.fallbacks("mismatch") >= 1);
    assert!(s.counters.mismatches >= s.counters.fallbacks("mismatch"));
    assert_eq!(s.counters.served_new, 20 + 2, "garbage was never served");

    // An authoritative capability is never served by the new path, not even with --force.
    let auth = config(&legacy.url(), &new.url(), "class = \"authoritative\"");
    let refused = cutover::set(
        &p.store,
        &auth,
        &SetRequest {
            capability: "orders".into(),
            to: Mode::Canary(1),
            actor: "test".into(),
            reason: "must fail".into(),
            force: true,
        },
    )
    .await;
    assert!(
        matches!(refused, Err(Error::Authoritative { .. })),
        "{refused:?}"
    );
}

/// A new path whose projection lags behind legacy: the first time it is asked for a key, the key
/// is not projected yet (404, lag reported); asked again, it is there, with `total` 11 where
/// legacy says 10 for the `drift` keys (a projection bug) and right for the others.
async fn lagging_new_path(asked: Arc<std::sync::Mutex<Vec<String>>>) -> Upstream {
    let handler = move |UrlPath(id): UrlPath<String>| {
        let asked = asked.clone();
        async move {
            let first = {
                let mut seen = asked.lock().unwrap();
                let first = !seen.contains(&id);
                seen.push(id.clone());
                first
            };
            if first {
                return (
                    StatusCode::NOT_FOUND,
                    [
                        ("content-type", "application/json"),
                        ("x-strangler-lag-ms", "800"),
                    ],
                    r#"{"error":"not found"}"#.to_owned(),
                );
            }
            let body = if id.starts_with("drift") {
                order(&id).replace("\"total\":10", "\"total\":11")
            } else {
                order(&id)
            };
            (
                StatusCode::OK,
                [
                    ("content-type", "application/json"),
                    ("x-strangler-lag-ms", "0"),
                ],
                body,
            )
        }
    };
    upstream(Router::new().route("/orders/{id}", get(handler))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatch_the_lag_reask_confirms_is_reported_with_the_fresh_pairs_differences() {
    let legacy = legacy().await;
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let new = lagging_new_path(asked.clone()).await;
    let db = sqlite_file();
    let p = start(
        &config(&legacy.url(), &new.url(), "settle_ms = 50"),
        &db.url,
    )
    .await;
    p.set("orders", Mode::Shadow, false).await.unwrap();
    let mut feed = p.proxy.observe();
    let c = client();

    // Drift: the key was missing at first (lag), then differs in `total` only. What is reported
    // is the drift, seen in the re-asked pair, not the first pair's "missing" fields.
    let a = fetch(&c, &p, "/orders/drift-1", &[]).await;
    assert_eq!(
        a.body,
        order("drift-1").as_bytes(),
        "the client gets legacy's bytes"
    );
    let obs = tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .expect("the copy is judged")
        .unwrap();
    assert_eq!(obs.comparison.verdict.as_str(), "mismatch");
    let diffs: Vec<(&str, &str)> = obs
        .comparison
        .differences
        .iter()
        .map(|d| (d.path.as_str(), d.kind.as_str()))
        .collect();
    assert_eq!(diffs, vec![("/total", "value")], "{diffs:?}");
    let ex = obs
        .exchange
        .as_ref()
        .expect("a mismatch carries its exchange");
    assert_eq!(ex.candidate.status, StatusCode::OK);
    assert_eq!(
        ex.candidate.body,
        order("drift-1").replace("\"total\":10", "\"total\":11")
    );
    assert_eq!(ex.legacy.body, order("drift-1"));

    // Lag only: missing at first, equal when asked again: stale, not a mismatch.
    fetch(&c, &p, "/orders/late-2", &[]).await;
    let obs = tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .expect("the copy is judged")
        .unwrap();
    assert_eq!(obs.comparison.verdict.as_str(), "stale");
    p.mirrors_done("orders").await;
    let counters = p.status("orders").counters;
    assert_eq!((counters.mismatches, counters.stale), (1, 1));
    assert_eq!(
        asked.lock().unwrap().len(),
        4,
        "each key asked twice: the copy and the re-ask"
    );
}

/// SIGTERM in the middle of traffic: answers already asked for arrive whole, on whichever serving
/// thread holds their connection, and once `serve` returns no connection is accepted any more.
/// Run on the serving threads (the default) and on the shared runtime (`--threads 0`).
async fn a_shutdown_finishes_answers_in_flight_then_stops_accepting(threads: usize) {
    let slow = upstream(Router::new().route(
        "/slow/{id}",
        get(|UrlPath(id): UrlPath<String>| async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            order(&id)
        }),
    ))
    .await;
    let db = sqlite_file();
    let config = config(&slow.url(), &slow.url(), "");
    let store = Store::connect(&db.url).await.expect("store");
    store.migrate().await.expect("migrations");
    let cancel = CancellationToken::new();
    let proxy = Proxy::new(&config, store, cancel.clone()).expect("proxy");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(proxy.serve_on_threads(listener, Duration::from_secs(5), threads));

    // Eight clients, each on a connection of its own, all waiting on the slow upstream.
    let asked: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(async move {
                let c = client();
                call(&c, "GET", format!("http://{addr}/slow/{i}"), &[]).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    cancel.cancel();
    for (i, a) in asked.into_iter().enumerate() {
        let a = a.await.expect("client task");
        assert_eq!(a.status, StatusCode::OK, "answer {i}");
        assert_eq!(a.body, order(&i.to_string()), "answer {i} arrived whole");
    }
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve returns once its connections are closed")
        .expect("serve task")
        .expect("serve ends without error");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed once serve returns"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_on_serving_threads_finishes_answers_in_flight() {
    a_shutdown_finishes_answers_in_flight_then_stops_accepting(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_on_the_shared_runtime_finishes_answers_in_flight() {
    a_shutdown_finishes_answers_in_flight_then_stops_accepting(0).await;
}
