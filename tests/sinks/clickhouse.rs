//! The ClickHouse sink end to end: the real `strangler project run` SIGKILLed at random moments
//! ten times while order events (with relay duplicates) keep arriving, projecting an aggregate
//! (revenue per day and region) and an append table into a fresh ClickHouse database. Afterwards
//! no row is stored twice (`count()` equals `count() FINAL`), the aggregate equals the legacy
//! database's own `GROUP BY` (`strangler reconcile` on a `[[reconcile_aggregate]]`), a clean
//! rebuild swapped in equals what the killed runs left, and a replay from offset 0 adds nothing.
//!
//! Event count: `STRANGLER_SINKS_EVENTS_CLICKHOUSE` (default 11,000).

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rand::Rng;
use strangler_bus::{Header, LogPublisher, OutgoingRecord, Publisher};
use strangler_clickhouse::Client;
use strangler_core::config::{ClickHouseSinkConfig, SinksConfig};
use strangler_projector::replay::From;
use strangler_projector::{Projector, Source};
use strangler_store::Store;
use strangler_test_support::clickhouse::{clickhouse_addr, clickhouse_database};
use strangler_test_support::{pg_database, unique_name};
use tokio_util::sync::CancellationToken;

use super::support::start_project_run;

const REGIONS: [&str; 4] = ["eu-west", "eu-north", "us-east", "ap-south"];

const REVENUE: &str = r#"
name = "revenue"
topics = ["@TOPIC@"]

[sink]
kind = "clickhouse"
table = "revenue"
shape = "aggregate"
columns = [
  { name = "day", type = "Date" },
  { name = "region", type = "String" },
  { name = "amount_cents", type = "Int64" },
]
order_by = ["day", "region"]
sum = ["amount_cents"]

[batch]
max_events = 400

[[handler]]
event_type = "OrderPlaced"
op = "insert"
fields = { day = "/placed_at", region = "/region", amount_cents = "/total_cents" }

[[handler]]
event_type = "OrderRefunded"
op = "insert"
fields = { day = "/placed_at", region = "/region", amount_cents = "/refund_cents" }
"#;

const ORDER_LOG: &str = r#"
name = "order_log"
topics = ["@TOPIC@"]

[sink]
kind = "clickhouse"
table = "order_log"
shape = "append"
columns = [
  { name = "order_id", type = "String" },
  { name = "event", type = "String" },
  { name = "at", type = "DateTime" },
  { name = "amount_cents", type = "Int64" },
]
order_by = ["order_id"]

[batch]
max_events = 300

[[handler]]
event_type = "OrderPlaced"
op = "insert"
fields = { order_id = "key", event = "header:type", at = "/placed_at", amount_cents = "/total_cents" }

[[handler]]
event_type = "OrderRefunded"
op = "insert"
fields = { order_id = "key", event = "header:type", at = "/placed_at", amount_cents = "/refund_cents" }
"#;

/// One legacy order.
struct Legacy {
    region: &'static str,
    placed_at: String,
    total_cents: i64,
    refunded_cents: i64,
}

/// The legacy writer: orders placed and refunded, the legacy table written, and the outbox
/// events (as records for the built-in log) that say the same.
struct Writer {
    next: usize,
    orders: BTreeMap<String, Legacy>,
}

impl Writer {
    fn events(&mut self, n: usize, topic: &str) -> Vec<OutgoingRecord> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let i = self.next;
            self.next += 1;
            let (order_id, event_type, payload) = if i % 5 == 4 {
                // A partial refund of an order placed three events ago.
                let order_id = format!("o-{:06}", i - 3);
                let o = self.orders.get_mut(&order_id).expect("placed earlier");
                let refund = 100 + (i as i64 % 7) * 10;
                o.refunded_cents += refund;
                let payload = serde_json::json!({
                    "region": o.region, "placed_at": o.placed_at, "refund_cents": -refund,
                });
                (order_id, "OrderRefunded", payload)
            } else {
                let order_id = format!("o-{i:06}");
                let o = Legacy {
                    region: REGIONS[i % REGIONS.len()],
                    placed_at: format!(
                        "2026-11-{:02}T{:02}:{:02}:00Z",
                        1 + (i / 13) % 7,
                        i % 24,
                        i % 60
                    ),
                    total_cents: 1000 + (i as i64 * 37) % 9000,
                    refunded_cents: 0,
                };
                let payload = serde_json::json!({
                    "region": o.region, "placed_at": o.placed_at, "total_cents": o.total_cents,
                });
                self.orders.insert(order_id.clone(), o);
                (order_id, "OrderPlaced", payload)
            };
            out.push(OutgoingRecord {
                topic: topic.to_string(),
                key: Some(order_id.into_bytes()),
                value: Some(payload.to_string().into_bytes()),
                headers: vec![
                    Header {
                        name: "id".into(),
                        value: uuid::Uuid::from_u128(0xc1c1_0000_0000_0000 | i as u128)
                            .to_string()
                            .into_bytes(),
                    },
                    Header {
                        name: "type".into(),
                        value: event_type.as_bytes().to_vec(),
                    },
                ],
                timestamp_ms: Some(1_780_000_000_000 + i as i64),
            });
        }
        out
    }

    /// The legacy database's orders, whose own `GROUP BY` the aggregate check runs.
    async fn fill_legacy(&self, pg: &sqlx::PgPool) {
        sqlx::query("CREATE TABLE IF NOT EXISTS legacy_orders (order_id TEXT PRIMARY KEY, region TEXT NOT NULL, placed_at TIMESTAMPTZ NOT NULL, total_cents BIGINT NOT NULL, refunded_cents BIGINT NOT NULL)")
            .execute(pg)
            .await
            .unwrap();
        sqlx::query("TRUNCATE legacy_orders")
            .execute(pg)
            .await
            .unwrap();
        for (id, o) in &self.orders {
            sqlx::query("INSERT INTO legacy_orders VALUES ($1, $2, $3::timestamptz, $4, $5)")
                .bind(id)
                .bind(o.region)
                .bind(&o.placed_at)
                .bind(o.total_cents)
                .bind(o.refunded_cents)
                .execute(pg)
                .await
                .unwrap();
        }
    }
}

struct Setup {
    store: Store,
    pg: sqlx::PgPool,
    ch: Client,
    ch_database: String,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    _config_dir: tempfile::TempDir,
    topic: String,
}

impl Setup {
    fn sinks(&self) -> SinksConfig {
        SinksConfig {
            clickhouse: Some(ClickHouseSinkConfig {
                url: format!("http://{}", clickhouse_addr()),
                database: self.ch_database.clone(),
                user: None,
                password: None,
            }),
            ..SinksConfig::default()
        }
    }

    fn projector(&self) -> Projector {
        Projector::load_with_sinks(
            self.store.clone(),
            Source::Log {
                store: self.store.clone(),
            },
            self.dir.path(),
            &self.sinks(),
        )
        .expect("loading the projections")
    }

    fn start(&self) -> Child {
        start_project_run(&self.config)
    }

    /// Events applied (next offsets summed over partitions) per projection.
    async fn applied(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for c in strangler_projector::checkpoint::list(&self.store, None)
            .await
            .unwrap()
        {
            *out.entry(c.projection).or_insert(0) += c.next_offset;
        }
        out
    }

    async fn count(&self, table: &str, fin: bool) -> u64 {
        let f = if fin { " FINAL" } else { "" };
        let r: Vec<serde_json::Value> = self
            .ch
            .query(&format!(
                "SELECT count() AS n FROM `{}`.`{table}`{f}",
                self.ch_database
            ))
            .await
            .unwrap();
        r[0]["n"].as_u64().expect("a count")
    }

    /// `strangler reconcile revenue-vs-legacy --format json`: the aggregate check of the
    /// readers' `revenue` against the legacy `GROUP BY` (sums arrive as PostgreSQL `numeric`).
    fn reconcile_cli(&self) -> (i32, serde_json::Value) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        if !text.contains("[[reconcile_aggregate]]") {
            let check = "\n[[reconcile_aggregate]]\nname = \"revenue-vs-legacy\"\nprojection = \"revenue\"\n\
                         legacy_query = \"SELECT to_char(placed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, \
                         region, sum(total_cents - refunded_cents) AS amount_cents FROM legacy_orders \
                         GROUP BY 1, 2\"\n";
            let url = text
                .lines()
                .find_map(|l| l.strip_prefix("url = \""))
                .and_then(|l| l.strip_suffix('"'))
                .expect("the store URL");
            std::fs::write(
                &self.config,
                format!("{text}\n[legacy]\nurl = \"{url}\"\n{check}"),
            )
            .unwrap();
        }
        let out = Command::new(crate::harness::strangler_bin())
            .args(["--config"])
            .arg(&self.config)
            .args(["reconcile", "revenue-vs-legacy", "--format", "json"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "not a JSON report ({e}): {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), report)
    }

    /// Every row of a table or view as JSON text, sorted (what readers see).
    async fn rows(&self, table: &str) -> Vec<String> {
        let rows: Vec<serde_json::Value> = self
            .ch
            .query(&format!("SELECT * FROM `{}`.`{table}`", self.ch_database))
            .await
            .unwrap();
        let mut out: Vec<String> = rows.into_iter().map(|v| v.to_string()).collect();
        out.sort();
        out
    }
}

async fn setup() -> (
    Setup,
    strangler_test_support::TestDb,
    strangler_test_support::clickhouse::TestClickHouse,
) {
    let db = pg_database().await;
    let ch_db = clickhouse_database();
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let Store::Postgres(pg) = &store else {
        unreachable!("a PostgreSQL store")
    };
    let pg = pg.clone();
    let topic = unique_name("ch_orders");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("revenue.toml"),
        REVENUE.replace("@TOPIC@", &topic),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("order_log.toml"),
        ORDER_LOG.replace("@TOPIC@", &topic),
    )
    .unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("strangler.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{url}\"\n\n[projections]\ndir = \"{}\"\nread_store_url = \"{url}\"\n\n\
             [projections.sinks.clickhouse]\nurl = \"http://{}\"\ndatabase = \"{}\"\n\n\
             [bus]\nkind = \"log\"\nlog_partitions = 4\n\n[telemetry]\nshutdown_grace_ms = 10000\n",
            dir.path().display(),
            clickhouse_addr(),
            ch_db.name(),
            url = db.url,
        ),
    )
    .unwrap();
    let s = Setup {
        store,
        pg,
        ch: Client::connect(&ch_db.url).unwrap(),
        ch_database: ch_db.name().to_string(),
        dir,
        config,
        _config_dir: config_dir,
        topic,
    };
    (s, db, ch_db)
}

fn count_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn wait_applied(s: &Setup, total: i64, timeout: Duration) {
    let start = Instant::now();
    loop {
        let a = s.applied().await;
        if ["revenue", "order_log"]
            .iter()
            .all(|p| a.get(*p).copied().unwrap_or(0) >= total)
        {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "not caught up with {total} events within {timeout:?}: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_sink_survives_ten_sigkills_without_duplicates() {
    let (s, _db, _ch) = setup().await;
    let publisher = LogPublisher::new(s.store.clone(), 4);
    let mut writer = Writer {
        next: 0,
        orders: BTreeMap::new(),
    };
    let total = count_env("STRANGLER_SINKS_EVENTS_CLICKHOUSE", 11_000);
    let per_round = total / 11;
    let mut rng = rand::thread_rng();
    let mut published: Vec<OutgoingRecord> = Vec::new();
    let mut on_bus = 0i64;
    let mut progress: Vec<(i64, i64)> = vec![(0, 0)];
    for _round in 0..10 {
        let batch = writer.events(per_round, &s.topic);
        // The relay delivers at least once: some events arrive again, later, at new offsets.
        let dups: Vec<OutgoingRecord> = (0..30)
            .filter_map(|_| {
                published
                    .get(rng.gen_range(0..published.len().max(1)))
                    .cloned()
            })
            .collect();
        on_bus += (batch.len() + dups.len()) as i64;
        publisher.publish(batch.clone()).await.unwrap();
        publisher.publish(dups).await.unwrap();
        published.extend(batch);

        let mut child = s.start();
        let before = progress.last().map_or(0, |p| p.0);
        let deadline = Instant::now() + Duration::from_secs(90);
        let min = |a: &BTreeMap<String, i64>| {
            ["revenue", "order_log"]
                .iter()
                .map(|p| a.get(*p).copied().unwrap_or(0))
                .min()
                .unwrap_or(0)
        };
        while min(&s.applied().await) <= before {
            assert!(
                Instant::now() < deadline,
                "the projector made no progress in 90 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..200))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping");
        progress.push((min(&s.applied().await), on_bus));
    }
    let mid_run = progress
        .windows(2)
        .filter(|w| w[1].0 > w[0].0 && w[1].0 < w[1].1)
        .count();
    assert!(
        mid_run >= 3,
        "kills did not interrupt a running projector often enough: {progress:?}"
    );
    let last = writer.events(total - 10 * per_round, &s.topic);
    on_bus += last.len() as i64;
    publisher.publish(last).await.unwrap();
    let mut child = s.start();
    wait_applied(&s, on_bus, Duration::from_secs(180)).await;
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "SIGTERM drains and exits");

    // No row stored twice, even before merges: the high-water filter dropped every row of a
    // re-applied batch. One row per distinct event (relay duplicates were dropped by id).
    let events = writer.next as u64;
    for table in ["revenue_v1_facts", "order_log_v1"] {
        assert_eq!(
            s.count(table, false).await,
            s.count(table, true).await,
            "{table}: rows stored twice"
        );
        assert_eq!(
            s.count(table, true).await,
            events,
            "{table}: one row per event"
        );
    }

    // The aggregate equals the legacy database's own GROUP BY (`strangler reconcile`).
    writer.fill_legacy(&s.pg).await;
    let p = s.projector();
    let (code, report) = s.reconcile_cli();
    assert_eq!(code, 0, "aggregate vs legacy: {report:#}");
    assert!(report["groups"].as_u64().unwrap() > 20, "{report:#}");

    // A clean run (a rebuild into a fresh table, swapped in) equals what the killed runs left.
    let before_agg = s.rows("revenue").await;
    let before_log = s.rows("order_log").await;
    for name in ["revenue", "order_log"] {
        super::support::rebuild(&p, name).await;
    }
    assert_eq!(
        s.rows("revenue").await,
        before_agg,
        "aggregate equals a clean run"
    );
    assert_eq!(
        s.rows("order_log").await,
        before_log,
        "append table equals a clean run"
    );
    assert_eq!(s.count("order_log_v1", false).await, events);

    // Replay from offset 0: every event consumed again, nothing inserted twice.
    for name in ["revenue", "order_log"] {
        let one = p.one(name, None).unwrap();
        let plan = p.plan(&one, From::Offset(0)).await.unwrap();
        assert!(plan.events() > 0);
        p.replay(
            &one,
            &plan,
            From::Offset(0),
            false,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await
        .unwrap();
    }
    for table in ["revenue_v1_facts", "order_log_v1"] {
        assert_eq!(s.count(table, false).await, events, "{table} after replay");
    }
    assert_eq!(s.rows("revenue").await, before_agg);

    // The check notices drift: one stray fact in ClickHouse is named by its group.
    s.ch.execute(&format!(
        "INSERT INTO `{}`.revenue_v1_facts VALUES ('2026-11-01', 'eu-west', 5, 'stray', 0, 0, 0)",
        s.ch_database
    ))
    .await
    .unwrap();
    let (code, report) = s.reconcile_cli();
    assert_eq!(code, 1, "drift exits 1: {report:#}");
    let m = &report["mismatches"];
    assert_eq!(m.as_array().map(Vec::len), Some(1), "{report:#}");
    assert_eq!(m[0]["kind"], "measure_differs");
    assert_eq!(m[0]["group"], serde_json::json!(["2026-11-01", "eu-west"]));
    assert_eq!(
        m[0]["clickhouse"].as_f64().unwrap() - m[0]["legacy"].as_f64().unwrap(),
        5.0
    );

    // A legacy query that does not return the aggregate's shape is an error (exit 2) that says
    // what to return.
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        text.replace(", region, sum(", ", sum(")
            .replace("GROUP BY 1, 2", "GROUP BY 1"),
    )
    .unwrap();
    let out = Command::new(crate::harness::strangler_bin())
        .arg("--config")
        .arg(&s.config)
        .args(["reconcile", "revenue-vs-legacy"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("legacy_query returns 2 columns")
            && stderr.contains("2 group columns and 1 measures"),
        "{stderr}"
    );
}

/// ClickHouse probes for the shared kill test ([`super::kill`]): the order stream appended as
/// facts, and aggregated per customer. Each owns a fresh ClickHouse database; its projection file
/// names the server and database itself, so the test's in-process projector needs no
/// `[projections.sinks.clickhouse]`.
// Listed in kill.rs's `probes` by the kill test's owner; until then only this file names them.
#[allow(dead_code)]
pub mod probes {
    use std::collections::BTreeMap;

    use strangler_clickhouse::Client;
    use strangler_store::Store;
    use strangler_test_support::clickhouse::{
        TestClickHouse, clickhouse_addr, clickhouse_database,
    };

    use super::super::probe::{Fut, Probe};
    use super::super::support::Truth;

    /// Which ClickHouse projection of the order stream.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Shape {
        /// Every event as a row.
        Append,
        /// Orders and placed subtotal per customer.
        Aggregate,
    }

    /// A ClickHouse projection of the order stream in its own database.
    pub struct ClickHouseProbe {
        name: String,
        shape: Shape,
        db: TestClickHouse,
        client: Client,
    }

    impl ClickHouseProbe {
        /// A probe named `name` of `shape`, with a fresh database.
        pub fn new(name: &str, shape: Shape) -> ClickHouseProbe {
            let db = clickhouse_database();
            ClickHouseProbe {
                client: Client::connect(&db.url).expect("ClickHouse URL"),
                name: name.into(),
                shape,
                db,
            }
        }

        async fn json(&self, sql: &str) -> Vec<serde_json::Value> {
            self.client.query(sql).await.expect("querying ClickHouse")
        }

        /// Rows stored more than once (0 when the position key and the filter held).
        async fn doubles(&self) -> u64 {
            let facts = match self.shape {
                Shape::Append => format!("{}_v1", self.name),
                Shape::Aggregate => format!("{}_v1_facts", self.name),
            };
            let db = self.db.name();
            let n: Vec<serde_json::Value> = self
                .client
                .query(&format!(
                    "SELECT (SELECT count() FROM `{db}`.`{facts}`) AS total, \
                     (SELECT count() FROM `{db}`.`{facts}` FINAL) AS fin"
                ))
                .await
                .expect("counting");
            let get = |k: &str| n[0][k].as_u64().expect("a count");
            get("total") - get("fin")
        }
    }

    impl Probe for ClickHouseProbe {
        fn projection(&self) -> &str {
            &self.name
        }

        fn file(&self, version: u32) -> String {
            let head = format!(
                "name = \"{}\"\nversion = {version}\ntopics = [\"@TOPIC@\"]\n\n[policy]\non_failure = \"stop\"\n\n\
                 [sink]\nkind = \"clickhouse\"\nurl = \"http://{}\"\ndatabase = \"{}\"\ntable = \"{}\"\n",
                self.name,
                clickhouse_addr(),
                self.db.name(),
                self.name
            );
            let body = match self.shape {
                Shape::Append => {
                    r#"shape = "append"
columns = [
  { name = "order_id", type = "String" },
  { name = "event", type = "String" },
  { name = "subtotal", type = "Nullable(Int64)" },
  { name = "tax", type = "Nullable(Int64)" },
  { name = "at", type = "DateTime" },
]
order_by = ["order_id"]

[[handler]]
event_type = "OrderPlaced"
op = "insert"
fields = { order_id = "key", event = "event_type", subtotal = "/subtotal", tax = "/tax", at = "event_time" }

[[handler]]
event_type = "OrderAmended"
op = "insert"
fields = { order_id = "key", event = "event_type", subtotal = "/subtotal", tax = "/tax", at = "event_time" }

[[handler]]
event_type = "OrderShipped"
op = "insert"
fields = { order_id = "key", event = "event_type", at = "event_time" }
"#
                }
                Shape::Aggregate => {
                    r#"shape = "aggregate"
columns = [
  { name = "customer", type = "String" },
  { name = "placed_subtotal", type = "Int64" },
]
order_by = ["customer"]
sum = ["placed_subtotal"]
count = "orders"

[[handler]]
event_type = "OrderPlaced"
op = "insert"
fields = { customer = "/customer_id", placed_subtotal = "/subtotal" }
"#
                }
            };
            let ignore = if self.shape == Shape::Aggregate {
                "ignore_event_types = [\"OrderAmended\", \"OrderShipped\"]\n"
            } else {
                ""
            };
            // Top-level keys go before the first table.
            head.replacen("\n\n[policy]", &format!("\n{ignore}\n[policy]"), 1) + body
        }

        fn config(&self) -> String {
            String::new()
        }

        fn snapshot<'a>(&'a self, _read: &'a Store) -> Fut<'a, Vec<String>> {
            Box::pin(async move {
                let rows = self
                    .json(&format!(
                        "SELECT * FROM `{}`.`{}`",
                        self.db.name(),
                        self.name
                    ))
                    .await;
                let mut out: Vec<String> = rows.into_iter().map(|r| r.to_string()).collect();
                out.sort();
                out
            })
        }

        fn drift<'a>(
            &'a self,
            _read: &'a Store,
            truth: &'a BTreeMap<String, Truth>,
        ) -> Fut<'a, Vec<String>> {
            Box::pin(async move {
                let mut out = Vec::new();
                let doubles = self.doubles().await;
                if doubles > 0 {
                    out.push(format!("{doubles} rows stored twice"));
                }
                let db = self.db.name();
                match self.shape {
                    Shape::Append => {
                        let rows: Vec<serde_json::Value> = self
                            .client
                            .query(&format!(
                                "SELECT order_id, countIf(event = 'OrderShipped') AS shipped, \
                                 argMaxIf(subtotal, _offset, event != 'OrderShipped') AS subtotal, \
                                 argMaxIf(tax, _offset, event != 'OrderShipped') AS tax \
                                 FROM `{db}`.`{}_v1` FINAL GROUP BY order_id",
                                self.name
                            ))
                            .await
                            .expect("orders from the facts");
                        let got: BTreeMap<String, (String, i64, i64)> = rows
                            .into_iter()
                            .map(|o| {
                                let shipped = o["shipped"].as_u64().unwrap_or(0) > 0;
                                let status = if shipped { "shipped" } else { "placed" };
                                let v = (
                                    status.to_string(),
                                    o["subtotal"].as_i64().unwrap_or(-1),
                                    o["tax"].as_i64().unwrap_or(-1),
                                );
                                (o["order_id"].as_str().unwrap_or_default().to_string(), v)
                            })
                            .collect();
                        for (id, t) in truth {
                            let want = (t.status.clone(), t.subtotal, t.tax);
                            match got.get(id) {
                                Some(g) if *g == want => {}
                                g => out.push(format!("{id}: want {want:?}, got {g:?}")),
                            }
                        }
                        if got.len() != truth.len() {
                            out.push(format!(
                                "{} orders, {} in the truth",
                                got.len(),
                                truth.len()
                            ));
                        }
                    }
                    Shape::Aggregate => {
                        let rows: Vec<serde_json::Value> = self
                            .client
                            .query(&format!(
                                "SELECT customer, orders FROM `{db}`.`{}`",
                                self.name
                            ))
                            .await
                            .expect("the aggregate");
                        let got: BTreeMap<String, u64> = rows
                            .into_iter()
                            .map(|c| {
                                let customer = c["customer"].as_str().unwrap_or_default();
                                (customer.to_string(), c["orders"].as_u64().unwrap_or(0))
                            })
                            .collect();
                        let mut want: BTreeMap<String, u64> = BTreeMap::new();
                        for id in truth.keys() {
                            let o: u64 = id.trim_start_matches("o-").parse().expect("order number");
                            *want.entry(format!("c-{}", o % 97)).or_default() += 1;
                        }
                        if got != want {
                            out.push(format!("orders per customer: want {want:?}, got {got:?}"));
                        }
                    }
                }
                out
            })
        }
    }
}
