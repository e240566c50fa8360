//! Shared pieces of the relay suite: legacy databases and concurrent writers, a consumer that
//! reads a topic to its end, the checks every run makes, and the real `strangler` binary with a
//! tansu broker of its own.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use strangler_bus::debezium::{Format, decode};
use strangler_bus::{KafkaPublisher, Record};
use strangler_core::config::{KafkaConfig, OutboxConfig};
use strangler_outbox::{Relay, RelayOptions, Sink};
use strangler_test_support::TestDb;
use tokio_util::sync::CancellationToken;

pub(crate) fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) const WRITERS: usize = 8;
pub(crate) const AGGREGATES_PER_WRITER: usize = 40;

pub(crate) fn ddl(kind: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../migrations/outbox/{kind}.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("outbox DDL")
}

/// One event the writers produced: its aggregate and its number within that aggregate.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub(crate) aggregate: String,
    pub(crate) n: u64,
}

#[derive(Clone)]
pub(crate) enum Legacy {
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
    Lite(sqlx::SqlitePool),
}

impl Legacy {
    pub(crate) async fn open(db: &TestDb, kind: &str) -> Legacy {
        let url = &db.url;
        let legacy = match kind {
            "postgres" => Legacy::Pg(sqlx::PgPool::connect(url).await.unwrap()),
            "mysql" => Legacy::My(sqlx::MySqlPool::connect(url).await.unwrap()),
            _ => Legacy::Lite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(WRITERS as u32)
                    .connect_with(
                        url.parse::<sqlx::sqlite::SqliteConnectOptions>()
                            .unwrap()
                            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                            // WAL's usual setting: commits do not wait for fsync, so eight
                            // writers get 50,000 events in within seconds.
                            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                            .busy_timeout(Duration::from_secs(30)),
                    )
                    .await
                    .unwrap(),
            ),
        };
        let ddl = ddl(kind);
        match &legacy {
            Legacy::Pg(p) => sqlx::raw_sql(&ddl).execute(p).await.map(|_| ()),
            Legacy::My(p) => sqlx::raw_sql(&ddl).execute(p).await.map(|_| ()),
            Legacy::Lite(p) => sqlx::raw_sql(&ddl).execute(p).await.map(|_| ()),
        }
        .expect("applying the outbox DDL");
        legacy
    }

    pub(crate) async fn remaining(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM outbox").await
    }

    /// Runs one statement.
    pub(crate) async fn exec(&self, sql: &str) {
        match self {
            Legacy::Pg(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Legacy::My(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Legacy::Lite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The one integer `sql` returns.
    pub(crate) async fn count(&self, sql: &str) -> i64 {
        match self {
            Legacy::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Legacy::My(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Legacy::Lite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    /// The text columns of every row `sql` returns.
    pub(crate) async fn texts(&self, sql: &str) -> Vec<Vec<String>> {
        fn take<R: sqlx::Row>(r: &R) -> Vec<String>
        where
            for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            (0..r.len()).map(|i| r.get::<String, _>(i)).collect()
        }
        match self {
            Legacy::Pg(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(take)
                .collect(),
            Legacy::My(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(take)
                .collect(),
            Legacy::Lite(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(take)
                .collect(),
        }
    }

    /// Inserts one event with `?` placeholders (MySQL/MariaDB, SQLite) or `$n` (PostgreSQL),
    /// labelled in its `tracingspancontext` column.
    pub(crate) async fn insert_labelled(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        payload: &str,
        label: &str,
    ) {
        let id = uuid::Uuid::new_v4().to_string();
        macro_rules! run {
            ($pool:expr, $sql:expr) => {
                sqlx::query($sql)
                    .bind(&id)
                    .bind(aggregate_type)
                    .bind(aggregate_id)
                    .bind(payload)
                    .bind(label)
                    .execute($pool)
                    .await
                    .map(|_| ())
            };
        }
        let q = "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, tracingspancontext) \
                 VALUES (?, ?, ?, 'Changed', ?, ?)";
        match self {
            Legacy::Pg(p) => run!(
                p,
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, tracingspancontext) \
                 VALUES ($1::uuid, $2, $3, 'Changed', $4::jsonb, $5)"
            ),
            Legacy::My(p) => run!(p, q),
            Legacy::Lite(p) => run!(p, q),
        }
        .expect("inserting an outbox row");
    }

    /// Inserts `rows` (id, aggregate type, aggregate id, type, payload) in one transaction that
    /// waits `delay` before committing, so commits land out of id order across writers.
    pub(crate) async fn insert_tx(
        &self,
        rows: &[(String, String, String, String, String)],
        delay: Duration,
    ) {
        macro_rules! run {
            ($pool:expr, $sql:expr) => {{
                let mut tx = $pool.begin().await.unwrap();
                for (id, at, aid, ty, payload) in rows {
                    sqlx::query($sql)
                        .bind(id)
                        .bind(at)
                        .bind(aid)
                        .bind(ty)
                        .bind(payload)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tokio::time::sleep(delay).await;
                tx.commit().await.unwrap();
            }};
        }
        match self {
            Legacy::Pg(p) => run!(
                p,
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1::uuid, $2, $3, $4, $5::jsonb)"
            ),
            Legacy::My(p) => run!(
                p,
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (?, ?, ?, ?, ?)"
            ),
            Legacy::Lite(p) => run!(
                p,
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (?, ?, ?, ?, ?)"
            ),
        }
    }
}

/// Eight writers, each owning its aggregates, insert `total` events in transactions of 1-4
/// events with random commit delays. Returns every event by id.
pub(crate) async fn write_events(
    legacy: &Legacy,
    aggregate_type: &str,
    total: usize,
) -> HashMap<String, Written> {
    write_events_for(legacy, aggregate_type, "", total).await
}

/// [`write_events`] with aggregate ids prefixed by `prefix`, for a second round on one topic.
pub(crate) async fn write_events_for(
    legacy: &Legacy,
    aggregate_type: &str,
    prefix: &str,
    total: usize,
) -> HashMap<String, Written> {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let legacy = legacy.clone();
        let at = aggregate_type.to_string();
        let prefix = prefix.to_string();
        let mine = total / WRITERS + usize::from(w < total % WRITERS);
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::with_capacity(mine);
            let mut next = vec![0u64; AGGREGATES_PER_WRITER];
            let mut left = mine;
            while left > 0 {
                let (rows, delay) = {
                    let mut rng = rand::thread_rng();
                    let n = rng.gen_range(1..=4).min(left);
                    let mut rows = Vec::with_capacity(n);
                    for _ in 0..n {
                        let a = rng.gen_range(0..AGGREGATES_PER_WRITER);
                        let aggregate = format!("{prefix}w{w}-a{a}");
                        let id = uuid::Uuid::new_v4().to_string();
                        let payload =
                            format!(r#"{{"aggregate": "{aggregate}", "n": {}}}"#, next[a]);
                        written.push((
                            id.clone(),
                            Written {
                                aggregate: aggregate.clone(),
                                n: next[a],
                            },
                        ));
                        next[a] += 1;
                        rows.push((id, at.clone(), aggregate, "Changed".to_string(), payload));
                    }
                    // Most transactions commit at once; some linger so later ids commit first.
                    let delay = if rng.gen_bool(0.1) {
                        Duration::from_millis(rng.gen_range(1..20))
                    } else {
                        Duration::ZERO
                    };
                    (rows, delay)
                };
                legacy.insert_tx(&rows, delay).await;
                left -= rows.len();
            }
            written
        }));
    }
    let mut all = HashMap::with_capacity(total);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Reads every record of `topic` from the beginning up to the high watermarks.
pub(crate) fn consume_all(bootstrap: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            strangler_test_support::unique_name("relay-check"),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .unwrap();
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions: Vec<i32> = meta.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut high = HashMap::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
        let (_, hi) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .unwrap();
        high.insert(*p, hi);
    }
    consumer.assign(&tpl).unwrap();
    let mut next: HashMap<i32, i64> = partitions.iter().map(|p| (*p, 0)).collect();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last_message = Instant::now();
    loop {
        if partitions.iter().all(|p| next[p] >= high[p]) {
            // tansu can report a high watermark that lags its last records: past the watermark,
            // keep reading until the topic has been quiet for three seconds.
            if last_message.elapsed() > Duration::from_secs(3) {
                break;
            }
            for p in &partitions {
                let (_, hi) = consumer
                    .fetch_watermarks(topic, *p, Duration::from_secs(10))
                    .unwrap();
                high.insert(*p, hi.max(high[p]));
            }
        }
        assert!(
            Instant::now() < deadline,
            "consuming {topic} timed out at {} records",
            out.len()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        last_message = Instant::now();
        let m = msg.expect("consuming");
        next.insert(m.partition(), m.offset() + 1);
        out.push(Record {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| strangler_bus::Header {
                            name: h.key.to_string(),
                            value: h.value.unwrap_or_default().to_vec(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            timestamp_ms: m.timestamp().to_millis(),
        });
    }
    out
}

/// Checks records against what was written: Debezium's outbox format on every record, every
/// event present, per-aggregate order of first deliveries intact. Returns the duplicates.
pub(crate) fn verify(records: &[Record], written: &HashMap<String, Written>, topic: &str) -> usize {
    let mut first_seen: HashMap<String, &Record> = HashMap::new();
    let mut next_n: HashMap<String, u64> = HashMap::new();
    let mut duplicates = 0;
    let mut ordered: Vec<&Record> = records.iter().collect();
    ordered.sort_by_key(|r| (r.partition, r.offset));
    for rec in ordered {
        assert_eq!(rec.topic, topic);
        let id = rec.header_str("id").expect("header id").to_string();
        let w = written
            .get(&id)
            .unwrap_or_else(|| panic!("unknown event {id}"));
        // The Outbox Event Router's shape: key = aggregate id, headers id and type, value = payload.
        assert_eq!(rec.key.as_deref(), Some(w.aggregate.as_bytes()));
        assert_eq!(rec.header_str("type"), Some("Changed"));
        let payload: serde_json::Value =
            serde_json::from_slice(rec.value.as_deref().unwrap()).unwrap();
        assert_eq!(payload["n"], w.n, "value is the payload column");
        // The projector's decoder reads it back.
        let ev = decode(rec).expect("decodes");
        assert_eq!(
            (ev.format, ev.event_id.to_string()),
            (Format::OutboxRouter, id.clone())
        );
        assert_eq!(ev.aggregate_id.as_deref(), Some(w.aggregate.as_str()));
        if let Some(first) = first_seen.get(&id) {
            duplicates += 1;
            assert_eq!(
                (&first.key, &first.value),
                (&rec.key, &rec.value),
                "a duplicate is an exact copy"
            );
            continue;
        }
        first_seen.insert(id, rec);
        let expect = next_n.entry(w.aggregate.clone()).or_insert(0);
        assert_eq!(
            w.n, *expect,
            "aggregate {} out of order at partition {} offset {}",
            w.aggregate, rec.partition, rec.offset
        );
        *expect += 1;
    }
    let missing: Vec<_> = written
        .iter()
        .filter(|(id, _)| !first_seen.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} events missing ({} records read), e.g. {:?}",
        missing.len(),
        written.len(),
        records.len(),
        &missing[..missing.len().min(3)]
    );
    duplicates
}

/// Every record of the built-in log in `store`, by partition and offset; checks that offsets
/// are dense per partition.
pub(crate) async fn log_records(store: &strangler_store::Store) -> Vec<Record> {
    use sqlx::Row as _;
    let q = "SELECT topic, partition, \"offset\", key, value, CAST(headers AS TEXT) \
             FROM strangler_log ORDER BY partition, \"offset\"";
    macro_rules! read {
        ($pool:expr) => {
            sqlx::query(q)
                .fetch_all($pool)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    let headers: Vec<(String, String)> =
                        serde_json::from_str(&r.get::<String, _>(5)).unwrap();
                    Record {
                        topic: r.get(0),
                        partition: r.get(1),
                        offset: r.get(2),
                        key: r.get(3),
                        value: r.get(4),
                        headers: headers
                            .into_iter()
                            .map(|(name, v)| strangler_bus::Header {
                                name,
                                value: v.into_bytes(),
                            })
                            .collect(),
                        timestamp_ms: None,
                    }
                })
                .collect::<Vec<_>>()
        };
    }
    let records = match store {
        strangler_store::Store::Postgres(p) => read!(p),
        strangler_store::Store::Sqlite(p) => read!(p),
    };
    let mut dense: HashMap<i32, i64> = HashMap::new();
    for r in &records {
        let expect = dense.entry(r.partition).or_insert(0);
        assert_eq!(r.offset, *expect, "offsets are dense per partition");
        *expect += 1;
    }
    records
}

/// An idempotent Kafka publisher with the relay's defaults.
pub(crate) fn kafka_sink(bootstrap: &str) -> Sink {
    Sink::Kafka(
        KafkaPublisher::new(&KafkaConfig {
            brokers: bootstrap.to_string(),
            properties: BTreeMap::new(),
        })
        .unwrap(),
    )
}

pub(crate) fn relay_config() -> OutboxConfig {
    OutboxConfig {
        poll_interval_ms: 20,
        batch_size: 1000,
        gap_grace_ms: 300,
        ..OutboxConfig::default()
    }
}

/// Runs a relay beside the writers, waits until the outbox is empty, stops the relay.
pub(crate) async fn relay_while_writing(
    db: &TestDb,
    legacy: &Legacy,
    sink: Sink,
    aggregate_type: &str,
    total: usize,
) -> HashMap<String, Written> {
    let relay = Relay::new(
        db.url.clone(),
        relay_config(),
        sink,
        RelayOptions::default(),
    );
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(async move { relay.run(&stop).await });
    let written = write_events(legacy, aggregate_type, total).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while legacy.remaining().await > 0 {
        assert!(
            Instant::now() < deadline,
            "outbox not drained: {} rows left",
            legacy.remaining().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    let report = task.await.unwrap().expect("relay ran");
    assert_eq!(
        report.published as usize, total,
        "every row published once by the relay"
    );
    written
}

// ---- the real binary: crashes, a broker restart, fencing ----

pub(crate) use crate::harness::strangler_bin;

/// A tansu broker of our own with SQLite storage, so its data survives a restart.
pub(crate) struct OwnBroker {
    child: Child,
    pub(crate) addr: String,
    /// The folder holding its SQLite file.
    storage: String,
}

impl OwnBroker {
    pub(crate) fn start(dir: &Path) -> OwnBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        // tansu resolves a SQLite path against its working directory.
        let storage = dir.display().to_string();
        let child = Self::spawn(&addr, &storage);
        OwnBroker {
            child,
            addr,
            storage,
        }
    }

    fn spawn(addr: &str, storage: &str) -> Child {
        let home = std::env::var("HOME").unwrap_or_default();
        let bin = std::env::var("TANSU_BIN").unwrap_or_else(|_| format!("{home}/.cargo/bin/tansu"));
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://{addr}"),
                "--advertised-listener-url",
                &format!("tcp://{addr}"),
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(storage)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tansu");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
        child
    }

    /// Stops the broker process (SIGSTOP): connections stay open, nothing is answered.
    pub(crate) fn pause(&self) {
        signal(self.child.id(), "-STOP");
    }

    /// Lets a paused broker run again (SIGCONT).
    pub(crate) fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }

    pub(crate) fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.addr, &self.storage);
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn write_config(
    dir: &Path,
    legacy_url: &str,
    brokers: &str,
    max_in_flight: u32,
) -> PathBuf {
    let path = dir.join("strangler.toml");
    std::fs::write(
        &path,
        format!(
            "[legacy]\nurl = \"{legacy_url}\"\n\n[outbox]\nbatch_size = 500\nmax_in_flight = {max_in_flight}\npoll_interval_ms = 20\nretry_max_ms = 1000\n\n\
             [bus]\nkind = \"kafka\"\n\n[bus.kafka]\nbrokers = \"{brokers}\"\n\n[telemetry]\nshutdown_grace_ms = 30000\n"
        ),
    )
    .unwrap();
    path
}

pub(crate) fn spawn_relay(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(strangler_bin())
        .args(["--config", config.to_str().unwrap(), "relay"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting strangler relay")
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

pub(crate) fn sigterm(child: &mut Child) {
    signal(child.id(), "-TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "relay did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The length of `log` now: what a relay spawned next writes comes after it.
pub(crate) fn log_len(log: &Path) -> usize {
    std::fs::metadata(log).map_or(0, |m| m.len() as usize)
}

/// Waits until `log`, past its first `from` bytes, says the relay holds the lease and relays. A
/// relay that logged it listens for SIGTERM; one signalled while still starting up (before its
/// process installed a listener) dies of the signal instead of draining.
pub(crate) async fn wait_relaying(log: &Path, from: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let bytes = std::fs::read(log).unwrap_or_default();
        if String::from_utf8_lossy(bytes.get(from..).unwrap_or_default())
            .contains("holding the outbox lease")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not take the lease within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn wait_drained(legacy: &Legacy, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while legacy.remaining().await > 0 {
        assert!(
            Instant::now() < deadline,
            "outbox not drained: {} rows left",
            legacy.remaining().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
