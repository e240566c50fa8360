//! Backends, an order event stream with its legacy truth, and helpers to run projections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::Row;
use strangler_bus::{Header, LogPublisher, OutgoingRecord, Publisher};
use strangler_core::config::KafkaConfig;
use strangler_projector::{Projector, Source};
use strangler_store::Store;
use strangler_test_support::{TestDb, broker, pg_database, sqlite_file, unique_name};
use tokio_util::sync::CancellationToken;

use crate::harness::strangler_bin;

pub fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    Log,
    Kafka,
}

/// A read store, a bus with one fresh 4-partition topic, and a folder for projection files.
pub struct Env {
    pub read: Store,
    pub read_url: String,
    pub control_url: String,
    pub source: Source,
    pub topic: String,
    pub dir: tempfile::TempDir,
    pub log: Option<LogPublisher>,
    pub kafka: Option<FutureProducer>,
    /// Offset after the last delivered record per partition (Kafka): tansu's ListOffsets
    /// reports a high watermark of 1, so tests take ends from delivery reports.
    kafka_ends: std::sync::Mutex<BTreeMap<i32, i64>>,
    _dbs: Vec<TestDb>,
}

pub const PARTITIONS: i32 = 4;

impl Env {
    pub async fn new(store: StoreKind, bus: BusKind) -> Env {
        let read_db = match store {
            StoreKind::Postgres => pg_database().await,
            StoreKind::Sqlite => sqlite_file(),
        };
        let read = Store::connect(&read_db.url).await.expect("read store");
        read.migrate().await.expect("migrating the read store");
        let topic = unique_name("orders");
        let mut dbs = vec![];
        let (source, log, kafka, control_url) = match bus {
            BusKind::Log => {
                // The embedded default keeps the log apart from the read store; PostgreSQL shares one.
                let (control, url) = match store {
                    StoreKind::Postgres => (read.clone(), read_db.url.clone()),
                    StoreKind::Sqlite => {
                        let db = sqlite_file();
                        let s = Store::connect(&db.url).await.expect("control store");
                        s.migrate().await.expect("migrating the control store");
                        let url = db.url.clone();
                        dbs.push(db);
                        (s, url)
                    }
                };
                (
                    Source::Log {
                        store: control.clone(),
                    },
                    Some(LogPublisher::new(control, PARTITIONS as u32)),
                    None,
                    url,
                )
            }
            BusKind::Kafka => {
                let b = broker();
                b.create_topic(&topic, PARTITIONS).await;
                let producer: FutureProducer = ClientConfig::new()
                    .set("bootstrap.servers", &b.bootstrap)
                    .set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set("linger.ms", "5")
                    .create()
                    .expect("producer");
                let config = KafkaConfig {
                    brokers: b.bootstrap.clone(),
                    properties: BTreeMap::new(),
                };
                (
                    Source::Kafka {
                        config,
                        group_prefix: unique_name("strangler-test"),
                    },
                    None,
                    Some(producer),
                    String::new(),
                )
            }
        };
        let read_url = read_db.url.clone();
        dbs.push(read_db);
        Env {
            read,
            read_url,
            control_url,
            source,
            topic,
            dir: tempfile::tempdir().expect("temp dir"),
            log,
            kafka,
            kafka_ends: Default::default(),
            _dbs: dbs,
        }
    }

    /// Writes a projection file (with `@TOPIC@` replaced) into the folder.
    pub fn write_projection(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, text.replace("@TOPIC@", &self.topic))
            .expect("writing projection file");
        path
    }

    pub async fn projector(&self) -> Projector {
        let p = Projector::load(self.read.clone(), self.source.clone(), self.dir.path())
            .expect("projections load");
        p.setup().await.expect("setup");
        p
    }

    /// Publishes events in order, the way the relay does (Debezium outbox-router shape).
    pub async fn publish(&self, events: &[OrderEvent]) {
        if let Some(log) = &self.log {
            for chunk in events.chunks(5000) {
                let batch = chunk.iter().map(|e| e.record(&self.topic)).collect();
                log.publish(batch).await.expect("publishing to the log");
            }
        } else if let Some(p) = &self.kafka {
            for chunk in events.chunks(2000) {
                let mut pending = Vec::with_capacity(chunk.len());
                for e in chunk {
                    let value = e.payload.to_string();
                    let headers = OwnedHeaders::new()
                        .insert(KHeader {
                            key: "id",
                            value: Some(e.id.as_str()),
                        })
                        .insert(KHeader {
                            key: "type",
                            value: Some(e.event_type),
                        });
                    let rec = FutureRecord::to(&self.topic)
                        .key(&e.order_id)
                        .payload(&value)
                        .headers(headers)
                        .timestamp(e.time_ms);
                    pending.push(p.send_result(rec).expect("enqueueing"));
                }
                for d in pending {
                    let delivered = d
                        .await
                        .expect("delivery")
                        .map_err(|(e, _)| e)
                        .expect("delivered");
                    let (part, off) = (delivered.partition, delivered.offset);
                    let mut ends = self.kafka_ends.lock().unwrap();
                    let e = ends.entry(part).or_insert(0);
                    *e = (*e).max(off + 1);
                }
            }
        }
    }

    /// Offset after the last event per partition.
    pub async fn ends(&self, p: &Projector) -> Vec<(String, i32, i64)> {
        if self.kafka.is_some() {
            let ends = self.kafka_ends.lock().unwrap();
            return (0..PARTITIONS)
                .map(|q| (self.topic.clone(), q, ends.get(&q).copied().unwrap_or(0)))
                .collect();
        }
        let one = p.projections[0].clone();
        self.source
            .partitions(one.as_ref())
            .await
            .expect("partitions")
    }

    /// Runs `names` until every partition's checkpoint reaches the bus's end, then stops them.
    pub async fn run_until_caught_up(&self, p: &Projector, names: &[&str]) {
        let ends = self.ends(p).await;
        let cancel = CancellationToken::new();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let task = {
            let p = p.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move { p.run(&names, cancel).await })
        };
        let selected: Vec<(String, u32)> = p
            .projections
            .iter()
            .map(|x| (x.definition().name.clone(), x.definition().version))
            .collect();
        wait_caught_up(
            &self.read,
            &selected,
            &ends,
            Duration::from_secs(240),
            || task.is_finished(),
        )
        .await;
        cancel.cancel();
        task.await.expect("join").expect("projections ran cleanly");
    }
}

/// Waits until each (projection, version) has checkpoints at the ends.
pub async fn wait_caught_up(
    read: &Store,
    which: &[(String, u32)],
    ends: &[(String, i32, i64)],
    timeout: Duration,
    stopped: impl Fn() -> bool,
) {
    let start = Instant::now();
    loop {
        let cps = strangler_projector::checkpoint::list(read, None)
            .await
            .expect("checkpoints");
        let done = which.iter().all(|(name, v)| {
            ends.iter().all(|(t, part, end)| {
                *end == 0
                    || cps.iter().any(|c| {
                        &c.projection == name
                            && c.version == *v
                            && &c.topic == t
                            && c.partition == *part
                            && c.next_offset >= *end
                    })
            })
        });
        if done {
            return;
        }
        assert!(!stopped(), "the projector stopped before catching up");
        assert!(
            start.elapsed() < timeout,
            "not caught up within {timeout:?}: {cps:?} vs {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One order event as the legacy application wrote it.
#[derive(Debug, Clone)]
pub struct OrderEvent {
    pub id: String,
    pub order_id: String,
    pub event_type: &'static str,
    pub payload: serde_json::Value,
    pub time_ms: i64,
}

impl OrderEvent {
    pub fn record(&self, topic: &str) -> OutgoingRecord {
        OutgoingRecord {
            topic: topic.to_string(),
            key: Some(self.order_id.clone().into_bytes()),
            value: Some(self.payload.to_string().into_bytes()),
            headers: vec![
                Header {
                    name: "id".into(),
                    value: self.id.clone().into_bytes(),
                },
                Header {
                    name: "type".into(),
                    value: self.event_type.as_bytes().to_vec(),
                },
            ],
            timestamp_ms: Some(self.time_ms),
        }
    }
}

/// The legacy database's view of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    pub status: String,
    pub subtotal: i64,
    pub tax: i64,
}

pub const T0: i64 = 1_780_000_000_000;

/// A deterministic stream: orders placed, amended, shipped, with the legacy truth after it.
/// `start` numbers events so several streams can follow one another.
pub fn order_events(
    n: usize,
    orders: usize,
    start: usize,
    truth: &mut BTreeMap<String, Truth>,
) -> Vec<OrderEvent> {
    let mut out = Vec::with_capacity(n);
    for i in start..start + n {
        let o = i % orders;
        let order_id = format!("o-{o:06}");
        let id = uuid::Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0000 | i as u128)
            .to_string();
        let time_ms = T0 + i as i64;
        let (event_type, payload) = match truth.get(&order_id) {
            None => {
                let subtotal = 1000 + (i as i64 * 37) % 9000;
                let tax = subtotal / 5;
                truth.insert(
                    order_id.clone(),
                    Truth {
                        status: "placed".into(),
                        subtotal,
                        tax,
                    },
                );
                (
                    "OrderPlaced",
                    serde_json::json!({
                        "customer_id": format!("c-{}", o % 97),
                        "subtotal": subtotal,
                        "tax": tax,
                        "items": [{"sku": format!("sku-{}", i % 13), "qty": 1 + i % 3}],
                    }),
                )
            }
            Some(t) if i % 7 == 3 && t.status == "placed" => {
                truth.get_mut(&order_id).expect("present").status = "shipped".into();
                ("OrderShipped", serde_json::json!({}))
            }
            Some(_) => {
                let subtotal = 500 + (i as i64 * 53) % 7000;
                let tax = subtotal / 10 + 1;
                let t = truth.get_mut(&order_id).expect("present");
                t.subtotal = subtotal;
                t.tax = tax;
                (
                    "OrderAmended",
                    serde_json::json!({ "subtotal": subtotal, "tax": tax }),
                )
            }
        };
        out.push(OrderEvent {
            id,
            order_id,
            event_type,
            payload,
            time_ms,
        });
    }
    out
}

/// The example projection, pointed at the test topic.
pub fn order_summary(name: &str, version: u32, policy: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../projections/order_summary.toml"),
    )
    .expect("projections/order_summary.toml");
    text.replace("name = \"order_summary\"", &format!("name = \"{name}\""))
        .replace("version = 1\n", &format!("version = {version}\n"))
        .replace("topics = [\"order\"]", "topics = [\"@TOPIC@\"]")
        .replace(
            "on_failure = \"park-key\"",
            &format!("on_failure = \"{policy}\""),
        )
}

/// Every row of a version's orders table, as text, ordered by order id.
pub async fn rows(read: &Store, table: &str) -> Vec<String> {
    let sql = format!(
        "SELECT order_id || '|' || customer_id || '|' || status || '|' || subtotal || '|' || tax || '|' || total \
         || '|' || items || '|' || placed_at || '|' || updated_at || '|' || version FROM {table} ORDER BY order_id"
    );
    match read {
        Store::Postgres(p) => sqlx::query_scalar(&sql)
            .fetch_all(p)
            .await
            .expect("reading rows"),
        Store::Sqlite(p) => sqlx::query_scalar(&sql)
            .fetch_all(p)
            .await
            .expect("reading rows"),
    }
}

/// (order_id, status, subtotal, tax, total) of every row.
pub async fn summary(read: &Store, table: &str) -> BTreeMap<String, (String, i64, i64, i64)> {
    let sql = format!("SELECT order_id, status, subtotal, tax, total FROM {table}");
    let map = |r: Vec<(String, String, i64, i64, i64)>| {
        r.into_iter()
            .map(|(o, s, a, b, c)| (o, (s, a, b, c)))
            .collect()
    };
    match read {
        Store::Postgres(p) => map(sqlx::query_as(&sql).fetch_all(p).await.expect("summary")),
        Store::Sqlite(p) => map(sqlx::query_as(&sql).fetch_all(p).await.expect("summary")),
    }
}

/// Rows that differ from the legacy truth (with total = subtotal + tax).
pub fn drift(
    truth: &BTreeMap<String, Truth>,
    got: &BTreeMap<String, (String, i64, i64, i64)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (id, t) in truth {
        let want = (t.status.clone(), t.subtotal, t.tax, t.subtotal + t.tax);
        match got.get(id) {
            Some(g) if *g == want => {}
            other => out.push(format!("{id}: want {want:?}, got {other:?}")),
        }
    }
    if got.len() != truth.len() {
        out.push(format!("row count {} != {}", got.len(), truth.len()));
    }
    out
}

pub async fn scalar_i64(read: &Store, sql: &str) -> i64 {
    match read {
        Store::Postgres(p) => sqlx::query(sql)
            .fetch_one(p)
            .await
            .expect(sql)
            .get::<i64, _>(0),
        Store::Sqlite(p) => sqlx::query(sql)
            .fetch_one(p)
            .await
            .expect(sql)
            .get::<i64, _>(0),
    }
}

/// `strangler --config <config> project run` as a child process (the kill tests SIGKILL it).
pub fn start_project_run(config: &Path) -> Child {
    Command::new(strangler_bin())
        .arg("--config")
        .arg(config)
        .args(["project", "run"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting strangler project run")
}

/// Rebuilds projection `name` (its highest version) from the start of the bus, as
/// `strangler project rebuild` does, until caught up.
pub async fn rebuild(p: &Projector, name: &str) {
    let one = p.one(name, None).unwrap();
    replay_rebuild(p, &one, false).await;
}

/// Plans a rebuild of `one` and replays it until caught up; with `dry_run` inside one
/// transaction that is rolled back. Returns the events the plan covered and the run's figures.
pub async fn replay_rebuild(
    p: &Projector,
    one: &std::sync::Arc<strangler_projector::SqlProjection>,
    dry_run: bool,
) -> (u64, strangler_projector::runtime::RunStats) {
    use strangler_projector::replay::From;
    let plan = p.plan(one, From::Rebuild).await.unwrap();
    let stats = p
        .replay(
            one,
            &plan,
            From::Rebuild,
            dry_run,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await
        .unwrap();
    (plan.events(), stats)
}
