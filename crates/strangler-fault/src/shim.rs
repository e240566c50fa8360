//! A switchable front for the new read path: the proxy's `new_url` points here and it forwards
//! to `strangler serve`, unless a fault makes it slow, answer 503, or hang.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How the new path behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward unchanged.
    Pass,
    /// Forward after a delay.
    Slow(Duration),
    /// Answer 503 without forwarding.
    Erroring,
    /// Never answer (the connection stays open until the caller gives up).
    Hung,
}

/// The shim's state: mode with its expiry, target, counters.
#[derive(Clone)]
pub struct Shim {
    mode: Arc<Mutex<(Mode, Instant)>>,
    target: String,
    client: Client<HttpConnector, Body>,
    /// Requests seen.
    pub requests: Arc<AtomicU64>,
    /// Requests answered 503 or held by a fault.
    pub faulted: Arc<AtomicU64>,
}

impl Shim {
    /// A shim forwarding to `target` (`http://host:port`).
    pub fn new(target: String) -> Shim {
        Shim {
            mode: Arc::new(Mutex::new((Mode::Pass, Instant::now()))),
            target,
            client: Client::builder(TokioExecutor::new()).build_http(),
            requests: Arc::default(),
            faulted: Arc::default(),
        }
    }

    /// Behave as `mode` for `d`, then pass again.
    pub fn set(&self, mode: Mode, d: Duration) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = (mode, Instant::now() + d);
    }

    fn mode(&self) -> Mode {
        let (m, until) = *self.mode.lock().unwrap_or_else(|e| e.into_inner());
        if Instant::now() < until {
            m
        } else {
            Mode::Pass
        }
    }

    /// The router.
    pub fn app(&self) -> Router {
        Router::new().fallback(forward).with_state(self.clone())
    }
}

async fn forward(State(s): State<Shim>, req: Request) -> Response {
    s.requests.fetch_add(1, Relaxed);
    match s.mode() {
        Mode::Pass => {}
        Mode::Slow(d) => tokio::time::sleep(d).await,
        Mode::Erroring => {
            s.faulted.fetch_add(1, Relaxed);
            return (StatusCode::SERVICE_UNAVAILABLE, "injected fault").into_response();
        }
        Mode::Hung => {
            s.faulted.fetch_add(1, Relaxed);
            // Longer than any deadline the proxy uses; bounded so the suite ends.
            tokio::time::sleep(Duration::from_secs(120)).await;
            return (StatusCode::GATEWAY_TIMEOUT, "hung").into_response();
        }
    }
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = match format!("{}{path}", s.target).parse() {
        Ok(u) => u,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    parts.headers.remove(http::header::HOST);
    match s.client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => resp.map(Body::new).into_response(),
        // The read API is down (killed): the proxy sees what it would see without the shim.
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
