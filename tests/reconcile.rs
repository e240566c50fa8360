//! Reconciliation on real databases: seeded drift is found exactly, identical tables are clean,
//! checksums agree across database kinds, rules forgive semantic renames, in-flight rows are not
//! drift, and a repair is re-checked key by key.

use std::collections::BTreeSet;
use std::path::Path;

use strangler_core::Config;
use strangler_reconcile::{
    Key, Progress, Reconciler, RepairOutcome, Repairer, Report, repair_and_recheck,
};
use strangler_test_support::{TestDb, mysql_database, pg_database, sqlite_file};

mod text_keys;

/// Database kinds a side can live on.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Pg,
    Maria,
    Lite,
}

/// One order as both sides hold it.
#[derive(Clone)]
struct Order {
    id: i64,
    customer: i64,
    status: &'static str,
    total_cents: i64,
    paid: bool,
    /// Milliseconds after 2024-01-01T00:00:00Z.
    created_ms: i64,
    email: String,
}

fn orders(n: i64) -> Vec<Order> {
    (1..=n)
        .map(|i| Order {
            id: i,
            customer: i % 97,
            status: ["paid", "shipped", "cancelled"][(i % 3) as usize],
            total_cents: (i * 7_919) % 1_000_000,
            paid: i % 2 == 0,
            created_ms: i * 60_123,
            email: format!("customer{i}@example.com"),
        })
        .collect()
}

fn ts(kind: Kind, ms: i64) -> String {
    let secs = 1_704_067_200 + ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s, frac) = (rem / 3600, rem % 3600 / 60, rem % 60, ms.rem_euclid(1000));
    let sep = if kind == Kind::Lite { 'T' } else { ' ' };
    let zone = match kind {
        Kind::Pg => "+00",
        Kind::Lite => "Z",
        Kind::Maria => "",
    };
    format!("{y:04}-{m:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}.{frac:03}{zone}")
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn boolean(kind: Kind, b: bool) -> &'static str {
    match (kind, b) {
        (Kind::Pg, true) => "true",
        (Kind::Pg, false) => "false",
        (_, true) => "1",
        (_, false) => "0",
    }
}

/// Creates the legacy `orders` table with `rows`; `updated_ms` gives each row's last change.
fn legacy_sql(kind: Kind, rows: &[Order], updated_ms: &dyn Fn(&Order) -> i64) -> Vec<String> {
    let ddl = match kind {
        Kind::Pg => {
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT, status TEXT, total NUMERIC(12,2), paid BOOLEAN, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, email TEXT)"
        }
        Kind::Maria => {
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT, status VARCHAR(20), total DECIMAL(12,2), paid BOOLEAN, created_at DATETIME(3), updated_at DATETIME(3), email VARCHAR(100))"
        }
        Kind::Lite => {
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT, total NUMERIC, paid BOOLEAN, created_at DATETIME, updated_at DATETIME, email TEXT)"
        }
    };
    let values: Vec<String> = rows
        .iter()
        .map(|o| {
            format!(
                "({}, {}, '{}', {}, {}, '{}', '{}', '{}')",
                o.id,
                o.customer,
                o.status,
                money(o.total_cents),
                boolean(kind, o.paid),
                ts(kind, o.created_ms),
                ts(kind, updated_ms(o)),
                o.email
            )
        })
        .collect();
    batches(ddl, "INSERT INTO orders VALUES ", &values)
}

/// Creates the projection's `order_summary` table: renamed key, wider decimals, no `updated_at`.
fn projection_sql(kind: Kind, rows: &[Order]) -> Vec<String> {
    let ddl = match kind {
        Kind::Pg => {
            "CREATE TABLE order_summary (order_id BIGINT PRIMARY KEY, customer_id BIGINT, status TEXT, total NUMERIC(14,4), paid BOOLEAN, created_at TIMESTAMPTZ, email TEXT)"
        }
        Kind::Lite => {
            "CREATE TABLE order_summary (order_id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT, total REAL, paid BOOLEAN, created_at TEXT, email TEXT)"
        }
        Kind::Maria => unreachable!("projections live on PostgreSQL or SQLite"),
    };
    let values: Vec<String> = rows.iter().map(|o| projection_values(kind, o)).collect();
    batches(ddl, "INSERT INTO order_summary VALUES ", &values)
}

fn projection_values(kind: Kind, o: &Order) -> String {
    format!(
        "({}, {}, '{}', {}, {}, '{}', '{}')",
        o.id,
        o.customer,
        o.status,
        money(o.total_cents),
        boolean(kind, o.paid),
        ts(kind, o.created_ms),
        o.email
    )
}

fn batches(ddl: &str, insert: &str, values: &[String]) -> Vec<String> {
    let mut out = vec![ddl.to_string()];
    for chunk in values.chunks(500) {
        out.push(format!("{insert}{}", chunk.join(", ")));
    }
    out
}

async fn exec(db: &TestDb, sqls: &[String]) {
    if db.url.starts_with("postgres") {
        let c = sqlx::PgPool::connect(&db.url).await.unwrap();
        for s in sqls {
            sqlx::raw_sql(s).execute(&c).await.unwrap();
        }
    } else if db.url.starts_with("mysql") {
        let c = sqlx::MySqlPool::connect(&db.url).await.unwrap();
        for s in sqls {
            sqlx::raw_sql(s).execute(&c).await.unwrap();
        }
    } else {
        let c = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        for s in sqls {
            sqlx::raw_sql(s).execute(&c).await.unwrap();
        }
    }
}

const LEGACY_QUERY: &str =
    "SELECT id, customer_id, status, total, paid, created_at, updated_at, email FROM orders";
const PROJECTION_QUERY: &str =
    "SELECT order_id, customer_id, status, total, paid, created_at, email FROM order_summary";

const STATUS_RULES: &str = r#"
capability = "orders"

[[value_map]]
name = "status-vocabulary"
reason = "the new model renamed legacy order states"
paths = ["/status"]
map = { open = "processing" }
"#;

/// A configuration with one `[[reconcile]]` named `orders`; `extra` is appended to its table.
fn config(dir: &Path, legacy: &TestDb, projection: &TestDb, extra: &str) -> Config {
    std::fs::write(dir.join("rules.toml"), STATUS_RULES).unwrap();
    let text = format!(
        r#"
[[reconcile]]
name = "orders"
chunk_size = 500
leaf_rows = 16
bisection_factor = 8
columns = {{ id = "order_id" }}
updated_at_column = "updated_at"
sensitive_columns = ["email"]
{extra}

[reconcile.legacy]
url = "{}"
query = "{LEGACY_QUERY}"
key = "id"

[reconcile.projection]
url = "{}"
query = "{PROJECTION_QUERY}"
key = "order_id"
"#,
        legacy.url, projection.url
    );
    let path = dir.join("strangler.toml");
    std::fs::write(&path, &text).unwrap();
    Config::load(&path).unwrap()
}

async fn reconcile(config: &Config, watermark: Option<&str>) -> (Reconciler, Report) {
    let r = Reconciler::connect(config, "orders", watermark)
        .await
        .unwrap();
    let report = r.reconcile(&Progress::hidden()).await.unwrap();
    (r, report)
}

fn keys(report: &Report) -> BTreeSet<i64> {
    report
        .drifted_keys
        .iter()
        .map(|k| k.as_int().expect("integer keys"))
        .collect()
}

const N: i64 = 5_000;

#[tokio::test]
async fn seeded_drift_is_found_exactly_and_nothing_else() {
    let (legacy, projection) = (pg_database().await, pg_database().await);
    let mut rows = orders(N);
    // Five legacy orders are `open`; the projection calls that state `processing` (rules).
    for id in [11, 1_200, 2_500, 3_333, 4_999] {
        rows[id as usize - 1].status = "open";
    }
    exec(&legacy, &legacy_sql(Kind::Pg, &rows, &|o| o.created_ms)).await;
    let mut proj: Vec<Order> = rows
        .iter()
        .filter(|o| ![100, 2_000, 4_321].contains(&o.id))
        .cloned()
        .collect();
    for o in &mut proj {
        if o.status == "open" {
            o.status = "processing";
        }
        if [7, 3_001].contains(&o.id) {
            o.total_cents += 1;
        }
        if o.id == 1_500 {
            o.status = "cancelled"; // legacy says paid: a wrong status mapping
        }
    }
    let mut extra = orders(N + 2).split_off(N as usize);
    proj.append(&mut extra);
    exec(&projection, &projection_sql(Kind::Pg, &proj)).await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &legacy, &projection, r#"rules = "rules.toml""#);
    let (_, report) = reconcile(&cfg, None).await;
    assert_eq!(report.counts.missing, 3, "{}", report.to_table());
    assert_eq!(report.counts.extra, 2);
    assert_eq!(report.counts.different, 3);
    assert_eq!(report.counts.in_flight, 0);
    assert_eq!(
        keys(&report),
        BTreeSet::from([7, 100, 1_500, 2_000, 3_001, 4_321, N + 1, N + 2])
    );
    assert_eq!(report.columns.get("total"), Some(&2));
    assert_eq!(report.columns.get("status"), Some(&1));
    assert_eq!(report.columns.len(), 2);
    // Bisection fetched a small part of the 5,000 rows.
    assert!(
        report.stats.rows_fetched < 1_000,
        "{} rows fetched",
        report.stats.rows_fetched
    );
    // Exemplars redact the sensitive column.
    let json = report.to_json();
    assert!(!json.contains("@example.com"), "{json}");
    assert!(json.contains("hmac:"));
    assert!(report.to_markdown().contains("| missing | 3 |"));
}

#[tokio::test]
async fn identical_tables_report_zero_differences_across_pg_and_sqlite() {
    let (legacy, projection) = (pg_database().await, sqlite_file());
    let rows = orders(N);
    exec(&legacy, &legacy_sql(Kind::Pg, &rows, &|o| o.created_ms)).await;
    exec(&projection, &projection_sql(Kind::Lite, &rows)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &legacy, &projection, "");
    let (_, report) = reconcile(&cfg, None).await;
    assert_eq!(report.counts, Default::default(), "{}", report.to_table());
    // PostgreSQL hashed in SQL and SQLite in Rust agree on every chunk: nothing was bisected.
    assert_eq!(report.stats.chunks_differing, 0);
    assert_eq!(report.stats.rows_fetched, 0);
    assert_eq!(
        (
            report.stats.legacy_hashing.as_str(),
            report.stats.projection_hashing.as_str()
        ),
        ("sql", "rust")
    );
}

#[tokio::test]
async fn sql_and_rust_hashing_agree_on_the_same_database() {
    let (legacy, projection) = (pg_database().await, pg_database().await);
    let rows = orders(2_000);
    exec(&legacy, &legacy_sql(Kind::Pg, &rows, &|o| o.created_ms)).await;
    exec(&projection, &projection_sql(Kind::Pg, &rows)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &legacy, &projection, "");
    cfg.reconcile[0].projection.checksum = "rust".into();
    let (_, report) = reconcile(&cfg, None).await;
    assert_eq!(report.stats.projection_hashing, "rust");
    assert_eq!(report.stats.chunks_differing, 0, "{}", report.to_table());
}

#[tokio::test]
async fn mariadb_legacy_matches_postgres_projection_and_drift_is_found() {
    let (legacy, projection) = (mysql_database().await, pg_database().await);
    let rows = orders(N);
    exec(&legacy, &legacy_sql(Kind::Maria, &rows, &|o| o.created_ms)).await;
    exec(&projection, &projection_sql(Kind::Pg, &rows)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &legacy, &projection, "");
    let (_, clean) = reconcile(&cfg, None).await;
    assert_eq!(clean.counts, Default::default(), "{}", clean.to_table());
    // DECIMAL(12,2) vs NUMERIC(14,4), DATETIME(3) vs TIMESTAMPTZ, TINYINT(1) vs BOOLEAN hash alike.
    assert_eq!(clean.stats.chunks_differing, 0);

    exec(
        &projection,
        &[
            "UPDATE order_summary SET total = total + 0.01 WHERE order_id = 42".into(),
            "UPDATE order_summary SET paid = NOT paid WHERE order_id = 4242".into(),
            "UPDATE order_summary SET created_at = created_at + interval '1 second' WHERE order_id = 777".into(),
        ],
    )
    .await;
    let (_, drift) = reconcile(&cfg, None).await;
    assert_eq!(
        keys(&drift),
        BTreeSet::from([42, 777, 4242]),
        "{}",
        drift.to_table()
    );
    assert_eq!(drift.counts.different, 3);
    assert_eq!(
        drift.columns.keys().map(String::as_str).collect::<Vec<_>>(),
        ["created_at", "paid", "total"]
    );
}

#[tokio::test]
async fn a_value_map_in_the_rules_file_is_not_drift() {
    let (legacy, projection) = (sqlite_file(), pg_database().await);
    let mut rows = orders(1_000);
    for o in rows.iter_mut().filter(|o| o.id % 10 == 0) {
        o.status = "open";
    }
    exec(&legacy, &legacy_sql(Kind::Lite, &rows, &|o| o.created_ms)).await;
    let proj: Vec<Order> = rows
        .iter()
        .cloned()
        .map(|mut o| {
            if o.status == "open" {
                o.status = "processing";
            }
            o
        })
        .collect();
    exec(&projection, &projection_sql(Kind::Pg, &proj)).await;
    let dir = tempfile::tempdir().unwrap();
    let without = config(dir.path(), &legacy, &projection, "");
    let (_, raw) = reconcile(&without, None).await;
    assert_eq!(raw.counts.different, 100, "{}", raw.to_table());
    let with = config(dir.path(), &legacy, &projection, r#"rules = "rules.toml""#);
    let (_, forgiven) = reconcile(&with, None).await;
    assert_eq!(
        forgiven.counts,
        Default::default(),
        "{}",
        forgiven.to_table()
    );
}

#[tokio::test]
async fn legacy_rows_changed_after_the_watermark_are_in_flight() {
    let (legacy, projection) = (pg_database().await, sqlite_file());
    let rows = orders(N);
    // Rows 10 and 20 changed after the projection's watermark; row 30 long before it.
    let watermark_ms = 400_000_000;
    let late = |o: &Order| {
        if [10, 20].contains(&o.id) {
            watermark_ms + 5_000
        } else {
            o.created_ms.min(watermark_ms - 1)
        }
    };
    exec(&legacy, &legacy_sql(Kind::Pg, &rows, &late)).await;
    let proj: Vec<Order> = rows
        .iter()
        .filter(|o| o.id != 20)
        .cloned()
        .map(|mut o| {
            if [10, 30].contains(&o.id) {
                o.total_cents += 100;
            }
            o
        })
        .collect();
    exec(&projection, &projection_sql(Kind::Lite, &proj)).await;
    let watermark = ts(Kind::Lite, watermark_ms);

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &legacy, &projection, "");
    let (_, report) = reconcile(&cfg, Some(&watermark)).await;
    assert_eq!(report.counts.in_flight, 2, "{}", report.to_table());
    assert_eq!(report.in_flight_keys, vec![Key::Int(10), Key::Int(20)]);
    assert_eq!(keys(&report), BTreeSet::from([30]));

    // The same watermark read from the projector's checkpoint table in the read store.
    exec(
        &projection,
        &[
            // The columns reconciliation reads, as migrations/*/0005_projector.sql creates them.
            "CREATE TABLE strangler_projection_checkpoint (projection TEXT NOT NULL, version INTEGER NOT NULL, \
             topic TEXT NOT NULL, partition INTEGER NOT NULL, last_event_time_ms BIGINT, \
             PRIMARY KEY (projection, version, topic, partition))"
                .to_string(),
            format!(
                "INSERT INTO strangler_projection_checkpoint (projection, version, topic, partition, last_event_time_ms) \
                 VALUES ('orders', 1, 'orders', 0, {}), ('orders', 1, 'orders', 1, {})",
                1_704_067_200_000i64 + watermark_ms,
                1_704_067_200_000i64 + watermark_ms + 60_000
            ),
        ],
    )
    .await;
    let (r, from_checkpoints) = reconcile(&cfg, None).await;
    assert_eq!(
        r.watermark().map(|w| w.timestamp_millis()),
        Some(1_704_067_200_000 + watermark_ms)
    );
    assert_eq!(from_checkpoints.counts.in_flight, 2);
    assert_eq!(keys(&from_checkpoints), BTreeSet::from([30]));
}

/// Rewrites the projection rows of the keys from legacy, so this test checks what reconciliation
/// does around a repair (which keys, the re-check) apart from the replay; the real per-key replay
/// through `strangler reconcile --repair` is tested in `projector::keys`.
struct CopyFromLegacy<'a> {
    legacy: &'a TestDb,
    projection: &'a TestDb,
}

impl Repairer for CopyFromLegacy<'_> {
    async fn repair(&self, keys: &[String]) -> strangler_reconcile::Result<RepairOutcome> {
        let legacy = sqlx::PgPool::connect(&self.legacy.url).await.unwrap();
        let mut sqls = vec![format!(
            "DELETE FROM order_summary WHERE order_id IN ({})",
            keys.join(",")
        )];
        let rows: Vec<(i64, i32, String, String, bool, String, String)> = sqlx::query_as(&format!(
            "SELECT id, customer_id, status, total::text, paid, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), email FROM orders WHERE id IN ({})",
            keys.join(",")
        ))
        .fetch_all(&legacy)
        .await
        .unwrap();
        for (id, c, s, t, p, at, e) in &rows {
            sqls.push(format!(
                "INSERT INTO order_summary VALUES ({id}, {c}, '{s}', {t}, {}, '{at}', '{e}')",
                i32::from(*p)
            ));
        }
        exec(self.projection, &sqls).await;
        Ok(RepairOutcome {
            keys: keys.len() as u64,
            events: rows.len() as u64,
        })
    }
}

#[tokio::test]
async fn repair_rechecks_only_the_drifted_keys_and_the_next_run_is_clean() {
    let (legacy, projection) = (pg_database().await, sqlite_file());
    let rows = orders(N);
    exec(&legacy, &legacy_sql(Kind::Pg, &rows, &|o| o.created_ms)).await;
    let mut proj: Vec<Order> = rows.iter().filter(|o| o.id != 99).cloned().collect();
    proj[500].total_cents = 1;
    proj.push(orders(N + 1).pop().unwrap());
    exec(&projection, &projection_sql(Kind::Lite, &proj)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &legacy, &projection, "");
    let (r, before) = reconcile(&cfg, None).await;
    assert_eq!(keys(&before), BTreeSet::from([99, 502, N + 1]));

    let repairer = CopyFromLegacy {
        legacy: &legacy,
        projection: &projection,
    };
    let repaired = repair_and_recheck(&r, &before, &repairer).await.unwrap();
    assert_eq!(repaired.outcome.keys, 3);
    assert_eq!(
        repaired.recheck.counts,
        Default::default(),
        "{}",
        repaired.recheck.to_table()
    );
    // Only the three keys were fetched again: two legacy rows (N+1 is not in legacy), two
    // projection rows (the extra one is gone).
    assert_eq!(repaired.recheck.stats.rows_fetched, 4);
    let (_, after) = reconcile(&cfg, None).await;
    assert_eq!(after.counts, Default::default(), "{}", after.to_table());
}

/// Two PostgreSQL tables with the same column types are checksummed on raw values (no text
/// rendering); a difference that normalization forgives (microseconds below the compared
/// milliseconds) makes its chunks differ but is not reported, and real drift still is, exactly.
#[tokio::test]
async fn same_typed_postgres_tables_hash_natively_and_report_only_real_drift() {
    let (legacy, projection) = (pg_database().await, pg_database().await);
    let rows = orders(N);
    exec(&legacy, &legacy_sql(Kind::Pg, &rows, &|o| o.created_ms)).await;
    // Now every compared column has the projection's type (NUMERIC's scale is no part of it).
    exec(
        &legacy,
        &["ALTER TABLE orders ALTER COLUMN customer_id TYPE BIGINT".into()],
    )
    .await;
    exec(&projection, &projection_sql(Kind::Pg, &rows)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &legacy, &projection, "");
    let (_, clean) = reconcile(&cfg, None).await;
    assert_eq!(
        (
            clean.stats.legacy_hashing.as_str(),
            clean.stats.projection_hashing.as_str()
        ),
        ("native", "native")
    );
    assert_eq!(clean.counts, Default::default(), "{}", clean.to_table());
    assert_eq!(clean.stats.chunks_differing, 0);

    exec(
        &projection,
        &[
            "UPDATE order_summary SET created_at = created_at + interval '200 microseconds' WHERE order_id % 1000 = 1".into(),
            "UPDATE order_summary SET total = total + 0.01 WHERE order_id IN (42, 4242)".into(),
            "DELETE FROM order_summary WHERE order_id = 3000".into(),
        ],
    )
    .await;
    let (_, drift) = reconcile(&cfg, None).await;
    assert_eq!(
        keys(&drift),
        BTreeSet::from([42, 3000, 4242]),
        "{}",
        drift.to_table()
    );
    // The forgiven microseconds cost row fetches in their chunks, nothing more.
    assert!(drift.stats.chunks_differing > 3, "{}", drift.to_table());
}
