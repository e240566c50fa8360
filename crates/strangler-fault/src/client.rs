//! Client traffic through the proxy: every answer is checked at once against what the legacy API
//! answered that very request, then kept as a small sample for the figures.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::legacy::{Legacy, REQ_HEADER};

/// What kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Steady traffic.
    Normal,
    /// A 4 MiB body on a GET.
    OversizedBody,
    /// A 24 KiB header.
    OversizedHeader,
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The client got exactly what legacy answered this request.
    Equal,
    /// The client got an answer that differs from legacy's.
    Differs,
    /// The proxy answered without legacy answering this request (a 502, a 4xx of its own).
    ProxyMade,
    /// No HTTP answer: refused, reset, timed out.
    Transport,
}

/// One request's outcome.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Request number.
    pub n: u64,
    /// Kind.
    pub kind: Kind,
    /// When it ended, from the run's start.
    pub end: Duration,
    /// Latency.
    pub latency: Duration,
    /// Class.
    pub class: Class,
    /// Status, when there was an answer.
    pub status: Option<u16>,
}

/// Client traffic state.
#[derive(Clone)]
pub struct Clients {
    proxy: String,
    legacy: Legacy,
    client: Client<HttpConnector, Full<Bytes>>,
    next: Arc<AtomicU64>,
    t0: Instant,
    /// Every outcome.
    pub samples: Arc<Mutex<Vec<Sample>>>,
    /// A few differing answers, for the report.
    pub differing: Arc<Mutex<Vec<String>>>,
}

impl Clients {
    /// Clients of the proxy at `proxy` (`http://host:port`); times are offsets from `t0`.
    pub fn new(proxy: String, legacy: Legacy, t0: Instant) -> Clients {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        Clients {
            proxy,
            legacy,
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(5))
                .build(http),
            next: Arc::default(),
            t0,
            samples: Arc::default(),
            differing: Arc::default(),
        }
    }

    fn pick(&self, rng: &mut StdRng) -> Option<i64> {
        let ids = self.legacy.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.is_empty() {
            return None;
        }
        // Mostly recent orders (the ones that change), sometimes any.
        let len = ids.len();
        let i = if rng.gen_bool(0.7) {
            len - 1 - rng.gen_range(0..len.min(200))
        } else {
            rng.gen_range(0..len)
        };
        Some(ids[i])
    }

    /// Sends one request and records its outcome.
    pub async fn one(&self, id: i64, kind: Kind) {
        let n = self.next.fetch_add(1, Relaxed);
        let body = match kind {
            Kind::OversizedBody => Bytes::from(vec![b'x'; 4 << 20]),
            _ => Bytes::new(),
        };
        let mut req = http::Request::get(format!("{}/orders/{id}", self.proxy))
            .header(REQ_HEADER, n.to_string());
        if kind == Kind::OversizedHeader {
            req = req.header("x-fault-pad", "p".repeat(24 << 10));
        }
        let req = req.body(Full::new(body)).expect("building a request");
        let start = Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(15), async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        })
        .await
        .unwrap_or_else(|_| Err("timed out after 15 s".into()));
        let latency = start.elapsed();
        let answer = self.legacy.take_answer(n);
        let (class, status) = match (&got, answer) {
            (Err(_), _) => (Class::Transport, None),
            (Ok((s, _)), None) => (Class::ProxyMade, Some(*s)),
            (Ok((s, b)), Some(a)) => {
                if *s == a.status && *b == a.body {
                    (Class::Equal, Some(*s))
                } else {
                    let mut d = self.differing.lock().unwrap_or_else(|e| e.into_inner());
                    if d.len() < 5 {
                        d.push(format!(
                            "request {n}: legacy {} {} / client {s} {}",
                            a.status,
                            String::from_utf8_lossy(&a.body),
                            String::from_utf8_lossy(&b[..b.len().min(300)])
                        ));
                    }
                    (Class::Differs, Some(*s))
                }
            }
        };
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Sample {
                n,
                kind,
                end: self.t0.elapsed(),
                latency,
                class,
                status,
            });
    }

    /// `clients` loops sharing `rate` requests per second until `stop`.
    pub fn spawn(
        &self,
        clients: usize,
        rate: u32,
        seed: u64,
        stop: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..clients)
            .map(|c| {
                let me = self.clone();
                let stop = stop.clone();
                let every = Duration::from_secs(1) * clients as u32 / rate.max(1);
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(seed ^ (c as u64 + 1) << 32);
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tick.tick() => {}
                        }
                        if let Some(id) = me.pick(&mut rng) {
                            me.one(id, Kind::Normal).await;
                        }
                    }
                })
            })
            .collect()
    }

    /// A burst of oversized requests, all at once.
    pub async fn oversized(&self, bodies: u32, headers: u32, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut tasks = Vec::new();
        for i in 0..bodies + headers {
            let Some(id) = self.pick(&mut rng) else {
                return;
            };
            let kind = if i < bodies {
                Kind::OversizedBody
            } else {
                Kind::OversizedHeader
            };
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.one(id, kind).await }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}
