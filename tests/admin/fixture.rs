//! A shadow run with secrets in the traffic: fake legacy and new upstreams, the real proxy with
//! the mismatch store subscribed, requests carrying credentials, cookies, an API key, a token in
//! the query and e-mail addresses in the answers. The new path differs on some orders (a total,
//! an upper-cased e-mail at a sensitive path, and an echo of the caller's token).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::HeaderMap;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use strangler_admin::api::{AdminState, Tokens};
use strangler_core::{Config, Mode};
use strangler_proxy::Proxy;
use strangler_proxy::cutover::{self, SetRequest};
use strangler_store::Store;
use strangler_test_support::TestDb;
use strangler_test_support::upstream::{Upstream, upstream};
use tokio_util::sync::CancellationToken;

pub const VIEWER: &str = "viewer-token-0123456789";
pub const OPERATOR: &str = "operator-token-0123456789";

/// Raw values that must never be stored.
pub struct Secrets {
    pub run: String,
    /// Once set, the new path answers like legacy (the bug was fixed).
    pub fixed: AtomicBool,
}

impl Secrets {
    pub fn bearer(&self) -> String {
        format!("sk-live-{}", self.run)
    }
    pub fn session(&self) -> String {
        format!("sess-{}", self.run)
    }
    pub fn api_key(&self) -> String {
        format!("apikey-{}", self.run)
    }
    pub fn query_token(&self) -> String {
        format!("qtok-{}", self.run)
    }
    pub fn server_cookie(&self) -> String {
        format!("srv-{}", self.run)
    }
    pub fn email(&self, id: u32) -> String {
        format!("ann.{id}.{}@example.com", self.run)
    }
    /// Every raw value the traffic of `requests` orders carried.
    pub fn all(&self, requests: u32) -> Vec<String> {
        let mut v = vec![
            self.bearer(),
            self.session(),
            self.api_key(),
            self.query_token(),
            self.server_cookie(),
        ];
        for id in 0..requests {
            v.push(self.email(id));
            v.push(self.email(id).to_uppercase());
        }
        v
    }
}

fn order(id: u32, secrets: &Secrets, new: bool, auth: &str) -> serde_json::Value {
    let differs = new && id.is_multiple_of(3) && !secrets.fixed.load(Ordering::SeqCst);
    let email = if differs {
        secrets.email(id).to_uppercase()
    } else {
        secrets.email(id)
    };
    let mut v = json!({
        "id": id.to_string(),
        "total": if differs { 11 } else { 10 },
        "customer": { "email": email, "name": "Ann" },
        "lines": [{ "sku": "a", "qty": 1 }]
    });
    if !new {
        v["request_id"] = json!(format!("req-{id}-{}", rand::random::<u32>()));
    }
    if differs {
        // A careless new path echoes the caller's credentials into its answer.
        v["debug_auth"] = json!(auth);
    }
    v
}

pub async fn side(secrets: Arc<Secrets>, new: bool) -> Upstream {
    upstream(Router::new().route(
        "/orders/{id}",
        get(move |UrlPath(id): UrlPath<u32>, headers: HeaderMap| {
            let s = secrets.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                (
                    [
                        ("content-type", "application/json".to_owned()),
                        ("set-cookie", format!("srv={}; HttpOnly", s.server_cookie())),
                    ],
                    order(id, &s, new, &auth).to_string(),
                )
            }
        }),
    ))
    .await
}

pub fn config(legacy: &str, new: &str, run: &str) -> Config {
    Config::parse(&config_text(legacy, new, run), Path::new("admin-test.toml"))
        .expect("test configuration is valid")
}

/// The configuration of a run, as a file would hold it.
pub fn config_text(legacy: &str, new: &str, run: &str) -> String {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/admin/orders-rules.toml");
    format!(
        r#"[proxy]
legacy_url = "{legacy}"
new_url = "{new}"
mode_poll_ms = 50
stats_flush_ms = 100

[admin]
listen = "127.0.0.1:0"
tokens = [
  {{ name = "vera", token = "{VIEWER}", role = "viewer" }},
  {{ name = "otto", token = "{OPERATOR}", role = "operator" }},
]

[mismatches]
flush_ms = 50
hmac_key = "test-hmac-key-{run}"
sensitive_headers = ["x-api-key"]
sensitive_paths = ["/customer/email"]
sensitive_query_params = ["token"]

[[capability]]
name = "orders"
routes = ["GET /orders/{{id}}"]
min_sample = 10
mismatch_budget = 0.9
max_p99_delta_ms = 5000
rules = "{rules}"
"#
    )
}

/// A finished shadow run: the store holds its counts and mismatches.
pub struct Run {
    pub store: Store,
    pub config: Config,
    pub secrets: Arc<Secrets>,
    pub requests: u32,
    /// The configuration file's text (without `[store]`).
    pub config_text: String,
    /// The store's URL.
    pub store_url: String,
    _legacy: Upstream,
    _new: Upstream,
    _db: TestDb,
}

impl Run {
    pub fn admin_state(&self) -> AdminState {
        AdminState {
            config: Arc::new(self.config.clone()),
            mismatches: strangler_admin::service::mismatch_store(&self.config, self.store.clone()),
            proxy: None,
            tokens: Tokens::from_config(self.config.admin.as_ref().unwrap()),
        }
    }

    /// Serves the admin API and dashboard on a loopback port until the token is cancelled.
    pub async fn serve_admin(&self, cancel: CancellationToken) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(strangler_admin::api::serve(
            self.admin_state(),
            listener,
            cancel,
        ));
        addr
    }
}

/// Sends `requests` orders through a shadowing proxy with secrets in every request.
pub async fn shadow_run(db: TestDb, requests: u32) -> Run {
    let secrets = Arc::new(Secrets {
        run: format!("SECRET{:08x}", rand::random::<u32>()),
        fixed: AtomicBool::new(false),
    });
    let legacy = side(secrets.clone(), false).await;
    let new = side(secrets.clone(), true).await;
    let config_text = config_text(&legacy.url(), &new.url(), &secrets.run);
    let config = config(&legacy.url(), &new.url(), &secrets.run);
    let store = Store::connect(&db.url).await.expect("store");
    store.migrate().await.expect("migrations");
    cutover::set(
        &store,
        &config,
        &SetRequest {
            capability: "orders".into(),
            to: Mode::Shadow,
            actor: "test".into(),
            reason: "e2e".into(),
            force: false,
        },
    )
    .await
    .expect("shadow mode");
    let cancel = CancellationToken::new();
    let proxy = Proxy::new(&config, store.clone(), cancel.clone()).expect("proxy");
    proxy.refresh_modes().await.expect("modes");
    let recorder =
        strangler_admin::service::start_recorder(&config, store.clone(), &proxy, cancel.clone())
            .expect("recorder")
            .expect("the mismatch store is enabled by default");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(proxy.clone().serve(listener, Duration::from_secs(5)));

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    for id in 0..requests {
        let req = http::Request::get(format!(
            "http://{addr}/orders/{id}?token={}&page=1",
            secrets.query_token()
        ))
        .header("authorization", format!("Bearer {}", secrets.bearer()))
        .header(
            "cookie",
            format!("session={}; theme=dark", secrets.session()),
        )
        .header("x-api-key", secrets.api_key())
        .body(Full::default())
        .unwrap();
        let resp = client.request(req).await.expect("the proxy answers");
        assert_eq!(resp.status(), 200);
        let _ = resp.into_body().collect().await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = proxy.capability_status("orders").unwrap();
        let judged =
            s.counters.matches + s.counters.mismatches + s.counters.stale + s.counters.errors;
        if judged >= u64::from(requests) && s.mirror_in_flight == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "mirrors never finished: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.flush_stats().await.expect("flushing verdict counts");
    // Cancelling makes the recorder write what it holds and stop.
    cancel.cancel();
    recorder.await.expect("recorder task");
    let _ = serving.await;
    Run {
        store,
        config,
        secrets,
        requests,
        config_text,
        store_url: db.url.clone(),
        _legacy: legacy,
        _new: new,
        _db: db,
    }
}
