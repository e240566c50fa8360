//! One run: start everything, a fault-free baseline, the fault schedule, drain, check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::client::Clients;
use crate::cluster::{Broker, Postgres, Proc, Rss, broker_answers, free_port, rss_kib};
use crate::figures::{self, Executed, Figures};
use crate::files::{self, Urls};
use crate::legacy::Legacy;
use crate::profile::Profile;
use crate::schedule::{Component, Fault, schedule};
use crate::shim::{Mode, Shim};

/// The topic the relay writes order events to.
pub const TOPIC: &str = "outbox.event.order";

/// Everything a run starts, shared with the fault executor and the memory sampler.
struct Stack {
    procs: Mutex<BTreeMap<Component, Proc>>,
    broker: Mutex<Broker>,
    pg: Postgres,
    rss: Mutex<BTreeMap<String, Rss>>,
    /// Processes that exited without the suite killing them: (when, component, status, log tail).
    unplanned: Mutex<Vec<String>>,
    stop_sampling: AtomicBool,
    t0: Instant,
}

impl Stack {
    fn sample(&self) {
        let mut samples = Vec::new();
        {
            let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
            for p in procs.values_mut() {
                if let Some(status) = p.exited() {
                    let note = format!(
                        "{:.1}s {} exited on its own ({status}); log tail:\n{}",
                        self.t0.elapsed().as_secs_f64(),
                        p.component.name(),
                        p.log_tail(15)
                    );
                    eprintln!("fault suite: {note}");
                    self.unplanned
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(note);
                    // Act as a supervisor would, so the run goes on.
                    p.kill();
                    p.kills -= 1;
                    p.up();
                }
                if let Some(pid) = p.pid()
                    && let Some(kib) = rss_kib(pid)
                {
                    samples.push((p.component.name().to_string(), p.starts, kib));
                }
            }
        }
        if let Some(pid) = self.broker.lock().unwrap_or_else(|e| e.into_inner()).pid()
            && let Some(kib) = rss_kib(pid)
        {
            samples.push(("broker (tansu)".into(), 0, kib));
        }
        let mut rss = self.rss.lock().unwrap_or_else(|e| e.into_inner());
        for (name, start, kib) in samples {
            rss.entry(name)
                .or_default()
                .by_start
                .entry(start)
                .or_default()
                .push(kib);
        }
    }
}

fn strangler(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(crate::cluster::strangler_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running strangler {args:?}: {e}"))
}

fn must(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "strangler {what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn serve(router: axum::Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let addr = l.local_addr().expect("local address").to_string();
    tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    addr
}

async fn produce_not_json(brokers: &str, burst: u32, n: u32) -> u32 {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "30000")
        .create()
        .expect("creating a producer");
    let mut sent = 0;
    for i in 0..n {
        let key = format!("junk-{burst}-{i}");
        let rec = FutureRecord::to(TOPIC)
            .key(&key)
            .payload(b"{not json \xff" as &[u8]);
        if producer.send(rec, Duration::from_secs(30)).await.is_ok() {
            sent += 1;
        }
    }
    sent
}

/// Runs the scenario of `profile` and returns its figures.
pub async fn run(profile: &Profile) -> Figures {
    let t0 = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("strangler-fault")
        .tempdir()
        .expect("creating the run folder");
    let root: PathBuf = dir.path().to_path_buf();
    eprintln!(
        "fault suite: profile {} seed {}, files in {}",
        profile.name,
        profile.seed,
        root.display()
    );
    let pg = tokio::task::spawn_blocking(Postgres::start)
        .await
        .expect("starting PostgreSQL");
    let private_pg = matches!(pg, Postgres::Private(_));
    let mut profile = profile.clone();
    if !private_pg {
        // The shared server carries other tests: never restart it.
        profile.postgres_restarts = false;
    }
    let plan = schedule(&profile);
    let (legacy_db, control_db, read_db) = (
        pg.database("legacy").await,
        pg.database("control").await,
        pg.database("read").await,
    );
    let broker_dir = root.join("broker");
    std::fs::create_dir_all(&broker_dir).expect("creating the broker folder");
    let broker = tokio::task::spawn_blocking(move || Broker::start(&broker_dir))
        .await
        .expect("starting tansu");
    let brokers = broker.addr.clone();
    strangler_test_support::Broker {
        bootstrap: brokers.clone(),
    }
    .create_topic(TOPIC, 4)
    .await;

    let legacy = Legacy::open(&legacy_db).await;
    let legacy_api = serve(legacy.app()).await;
    let serve_addr = format!("127.0.0.1:{}", free_port());
    let shim = Shim::new(format!("http://{serve_addr}"));
    let new_api = serve(shim.app()).await;
    let proxy_addr = format!("127.0.0.1:{}", free_port());
    std::fs::create_dir_all(root.join("projections")).expect("creating projections/");
    std::fs::write(root.join("projections/orders.toml"), files::PROJECTION).expect("writing");
    std::fs::write(root.join("rules.toml"), files::RULES).expect("writing");
    let config = root.join("strangler.toml");
    std::fs::write(
        &config,
        files::config(&Urls {
            legacy_db: legacy_db.clone(),
            control_db: control_db.clone(),
            read_db: read_db.clone(),
            brokers: brokers.clone(),
            proxy: proxy_addr.clone(),
            serve: serve_addr.clone(),
            legacy_api,
            new_api,
        }),
    )
    .expect("writing strangler.toml");
    must(strangler(&config, &["check-config"]), "check-config");
    must(strangler(&config, &["migrate"]), "migrate");
    must(
        strangler(
            &config,
            &[
                "cutover",
                "set",
                "orders",
                "shadow",
                "--reason",
                "fault suite",
                "--actor",
                "fault-suite",
            ],
        ),
        "cutover set orders shadow",
    );

    let procs = {
        let config = config.clone();
        let root = root.clone();
        let (serve_addr, proxy_addr) = (serve_addr.clone(), proxy_addr.clone());
        tokio::task::spawn_blocking(move || {
            let mut m = BTreeMap::new();
            for c in Component::ALL {
                let addr = match c {
                    Component::ReadApi => Some(serve_addr.clone()),
                    Component::Proxy => Some(proxy_addr.clone()),
                    _ => None,
                };
                m.insert(c, Proc::start(c, &config, &root, addr));
            }
            m
        })
        .await
        .expect("starting the strangler components")
    };
    let stack = Arc::new(Stack {
        procs: Mutex::new(procs),
        broker: Mutex::new(broker),
        pg,
        rss: Mutex::default(),
        unplanned: Mutex::default(),
        stop_sampling: AtomicBool::new(false),
        t0,
    });
    let sampler = {
        let s = stack.clone();
        std::thread::spawn(move || {
            while !s.stop_sampling.load(Relaxed) {
                s.sample();
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };

    // The broker's supervisor: tansu 0.6 can lose its storage task and then reset every
    // connection until restarted (finding 6 in docs/RELIABILITY.md); a broker that answers no
    // metadata request twice in a row is started again, as a liveness probe would, and counted.
    let watchdog = {
        let s = stack.clone();
        std::thread::spawn(move || {
            let mut failed = 0;
            while !s.stop_sampling.load(Relaxed) {
                std::thread::sleep(Duration::from_secs(2));
                let mut broker = s.broker.lock().unwrap_or_else(|e| e.into_inner());
                if broker_answers(&broker.addr, Duration::from_secs(5)) {
                    failed = 0;
                    continue;
                }
                failed += 1;
                if failed >= 2 {
                    eprintln!(
                        "fault suite: {:.1}s the broker answers nothing; starting it again",
                        s.t0.elapsed().as_secs_f64()
                    );
                    broker.revive();
                    failed = 0;
                }
            }
        })
    };

    // ---- traffic and the fault-free baseline ----
    let stop = CancellationToken::new();
    let writer = legacy.spawn_writer(profile.write_rate, profile.seed, stop.clone());
    let clients = Clients::new(format!("http://{proxy_addr}"), legacy.clone(), t0);
    let client_tasks = clients.spawn(
        profile.clients,
        profile.read_rate,
        profile.seed.wrapping_add(1),
        stop.clone(),
    );
    let baseline_start = t0.elapsed();
    tokio::time::sleep(profile.baseline).await;
    let faults_start = t0.elapsed();
    eprintln!(
        "fault suite: baseline done at {:.1}s; {} faults scheduled",
        faults_start.as_secs_f64(),
        plan.len()
    );

    // ---- the fault phase ----
    let mut executed = Vec::new();
    let mut expected = figures::Injected::default();
    let mut background = Vec::new();
    // A fault that takes long to inject (a restart waiting for its service) delays the rest of
    // the plan by as much, so the planned gaps between faults hold instead of a burst of every
    // overdue fault at once.
    let mut slip = Duration::ZERO;
    for (i, planned) in plan.iter().enumerate() {
        let due = faults_start + planned.at + slip;
        match due.checked_sub(t0.elapsed()) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => slip += t0.elapsed() - due,
        }
        let start = t0.elapsed();
        eprintln!("fault suite: {:.1}s {}", start.as_secs_f64(), planned.fault);
        match planned.fault.clone() {
            Fault::Kill { component, down_ms } => {
                let s = stack.clone();
                tokio::task::spawn_blocking(move || {
                    s.procs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(&component)
                        .expect("a started component")
                        .kill();
                    std::thread::sleep(Duration::from_millis(down_ms));
                    s.procs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(&component)
                        .expect("a started component")
                        .up();
                })
                .await
                .expect("killing and restarting a component");
            }
            Fault::BrokerRestart { down_ms } => {
                let s = stack.clone();
                tokio::task::spawn_blocking(move || {
                    s.broker
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .restart(Duration::from_millis(down_ms));
                })
                .await
                .expect("restarting the broker");
            }
            Fault::PostgresRestart { down_ms } => {
                let s = stack.clone();
                tokio::task::spawn_blocking(move || {
                    if let Postgres::Private(p) = &s.pg {
                        p.restart(Duration::from_millis(down_ms));
                    }
                })
                .await
                .expect("restarting PostgreSQL");
            }
            Fault::UpstreamSlow { delay_ms, for_ms } => shim.set(
                Mode::Slow(Duration::from_millis(delay_ms)),
                Duration::from_millis(for_ms),
            ),
            Fault::UpstreamErroring { for_ms } => {
                shim.set(Mode::Erroring, Duration::from_millis(for_ms));
            }
            Fault::UpstreamHung { for_ms } => shim.set(Mode::Hung, Duration::from_millis(for_ms)),
            Fault::MalformedBurst {
                relay_bad,
                handler_bad,
                not_json,
            } => {
                // Retried while PostgreSQL may be restarting: the burst must land to be counted.
                let mut landed = false;
                for _ in 0..100 {
                    if legacy
                        .malformed(relay_bad, handler_bad, i as u32)
                        .await
                        .is_ok()
                    {
                        landed = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                assert!(landed, "the malformed burst could not be written in 20 s");
                expected.relay_dead_letters += u64::from(relay_bad);
                expected.handler_dead_letters += u64::from(handler_bad);
                let sent = produce_not_json(&brokers, i as u32, not_json).await;
                expected.not_json_dead_letters += u64::from(sent);
                expected.not_json_unsent += u64::from(not_json - sent);
            }
            Fault::OversizedBurst { bodies, headers } => {
                let c = clients.clone();
                let seed = profile.seed ^ i as u64;
                background.push(tokio::spawn(async move {
                    c.oversized(bodies, headers, seed).await;
                }));
            }
        }
        executed.push(Executed {
            start,
            end: t0.elapsed(),
            fault: planned.fault.clone(),
        });
    }
    // The phase ends at its planned length, or later when slipped faults ran past it.
    let faults_end = (faults_start + profile.faults).max(t0.elapsed());
    if let Some(wait) = faults_end.checked_sub(t0.elapsed()) {
        tokio::time::sleep(wait).await;
    }
    for b in background {
        let _ = b.await;
    }

    // ---- drain ----
    stop.cancel();
    let _ = writer.await;
    for t in client_tasks {
        let _ = t.await;
    }
    let traffic_end = t0.elapsed();
    eprintln!(
        "fault suite: traffic stopped at {:.1}s, draining",
        traffic_end.as_secs_f64()
    );
    let read = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&read_db)
        .await
        .expect("connecting to the read store");
    let drain_start = Instant::now();
    let (mut legacy_events, mut applied, mut outbox_left) = (0i64, 0i64, 0i64);
    while drain_start.elapsed() < profile.drain {
        outbox_left = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&legacy.pool)
            .await
            .unwrap_or(-1);
        legacy_events = sqlx::query_scalar("SELECT COALESCE(SUM(version), 0)::bigint FROM orders")
            .fetch_one(&legacy.pool)
            .await
            .unwrap_or(-1);
        applied = sqlx::query_scalar("SELECT COALESCE(SUM(events), 0)::bigint FROM orders_v1")
            .fetch_one(&read)
            .await
            .unwrap_or(-1);
        if outbox_left == 0 && applied >= legacy_events {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained_in = drain_start.elapsed();
    // Dead letters of the last burst may still be on their way behind the good events.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // ---- stop everything cleanly, the proxy first so its last counters are written ----
    let clean_exits = {
        let s = stack.clone();
        tokio::task::spawn_blocking(move || {
            let mut procs = s.procs.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = BTreeMap::new();
            for c in [
                Component::Proxy,
                Component::Relay,
                Component::Projector,
                Component::ReadApi,
            ] {
                let p = procs.get_mut(&c).expect("a started component");
                out.insert(c.name().to_string(), p.stop(Duration::from_secs(30)));
            }
            out
        })
        .await
        .expect("stopping the components")
    };
    stack.stop_sampling.store(true, Relaxed);
    let _ = sampler.join();
    let _ = watchdog.join();

    let reconcile = strangler(&config, &["reconcile", "orders", "--format", "json"]);
    let dead_letters = strangler(
        &config,
        &["project", "dead-letters", "list", "orders", "--json"],
    );

    let control = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&control_db)
        .await
        .expect("connecting to the control store");
    let samples = clients
        .samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let differing = clients
        .differing
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let rss = stack.rss.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let starts = stack
        .procs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(c, p)| (c.name().to_string(), (p.starts, p.kills)))
        .collect();
    let unplanned = stack
        .unplanned
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let broker_revived = stack
        .broker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .revived;
    let figures = figures::collect(figures::Inputs {
        profile: &profile,
        private_pg,
        t0,
        baseline: (baseline_start, faults_start),
        faults: (faults_start, faults_end),
        traffic_end,
        executed,
        expected,
        samples,
        differing,
        legacy: &legacy,
        control: &control,
        read: &read,
        legacy_events,
        applied,
        drained_in,
        outbox_left,
        reconcile,
        dead_letters,
        rss,
        starts,
        unplanned,
        broker_revived,
        clean_exits,
        shim_faulted: shim.faulted.load(Relaxed),
        shadow_legacy_requests: legacy.shadow_requests.load(Relaxed),
        write_failures: legacy.write_failures.load(Relaxed),
    })
    .await;
    read.close().await;
    control.close().await;
    legacy.pool.close().await;
    stack
        .pg
        .drop_databases(&[&legacy_db, &control_db, &read_db])
        .await;
    if std::env::var("STRANGLER_FAULT_KEEP").as_deref() == Ok("1") {
        let kept = dir.keep();
        eprintln!("fault suite: files kept in {}", kept.display());
    }
    figures
}
