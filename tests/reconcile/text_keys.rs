//! Text and uuid keys: chunks are cut at keys sampled in the database and compared in byte order
//! on every side, so a case-insensitive MariaDB collation, a latin1 column, PostgreSQL's locale
//! and SQLite all agree on the boundaries; seeded drift is found exactly, identical tables are
//! clean, and `strangler reconcile --repair` fixes drift keyed by text through per-key replay.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use strangler_core::Config;
use strangler_reconcile::{Key, Progress, Reconciler, Report};
use strangler_test_support::{TestDb, mysql_database, pg_database, sqlite_file};

use super::exec;

/// Key prefixes whose byte order differs from case-insensitive and locale orders: upper case
/// sorts before lower case, and `Ä`/`é` after every ASCII letter.
const PREFIXES: [&str; 7] = ["alpha", "Beta", "Ärger", "beta", "émile", "Zulu", "a"];

fn code(i: usize) -> String {
    format!("{}-{i:05}", PREFIXES[i % PREFIXES.len()])
}

/// `(code, name, balance in cents)` rows.
fn customers(n: usize) -> Vec<(String, String, i64)> {
    (0..n)
        .map(|i| {
            (
                code(i),
                format!("customer {i}"),
                (i as i64 * 7_919) % 100_000,
            )
        })
        .collect()
}

fn values(rows: &[(String, String, i64)]) -> Vec<String> {
    rows.iter()
        .map(|(c, n, b)| format!("('{c}', '{n}', {}.{:02})", b / 100, b % 100))
        .collect()
}

fn table(ddl: &str, rows: &[(String, String, i64)]) -> Vec<String> {
    let mut out = vec![ddl.to_string()];
    for chunk in values(rows).chunks(500) {
        out.push(format!("INSERT INTO customers VALUES {}", chunk.join(", ")));
    }
    out
}

const PG_TABLE: &str =
    "CREATE TABLE customers (code TEXT PRIMARY KEY, name TEXT, balance NUMERIC(12,2))";
const LITE_TABLE: &str = "CREATE TABLE customers (code TEXT PRIMARY KEY, name TEXT, balance REAL)";
/// A case- and accent-insensitive collation, in latin1: neither its order nor its bytes are
/// PostgreSQL's.
const MARIA_TABLE: &str = "CREATE TABLE customers (code VARCHAR(40) CHARACTER SET latin1 \
     COLLATE latin1_general_ci PRIMARY KEY, name VARCHAR(40), balance DECIMAL(12,2))";

/// One `[[reconcile]]` named `t` over `query` on both sides, keyed by `key`, cut finely.
fn config(dir: &Path, legacy: &TestDb, projection: &TestDb, query: &str, key: &str) -> Config {
    let text = format!(
        r#"
[[reconcile]]
name = "t"
chunk_size = 100
bisection_factor = 4
leaf_rows = 8

[reconcile.legacy]
url = "{}"
query = "{query}"
key = "{key}"

[reconcile.projection]
url = "{}"
query = "{query}"
key = "{key}"
"#,
        legacy.url, projection.url
    );
    let path = dir.join("strangler.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

async fn run(cfg: &Config) -> Report {
    let r = Reconciler::connect(cfg, "t", None).await.unwrap();
    r.reconcile(&Progress::hidden()).await.unwrap()
}

fn drifted(report: &Report) -> BTreeSet<String> {
    report.drifted_keys.iter().map(Key::to_string).collect()
}

/// Seeds drift in the projection: two keys missing, two changed, two extra (one before every
/// legacy key in byte order, one after). Returns the drifted keys.
async fn seed(projection: &TestDb) -> BTreeSet<String> {
    exec(
        projection,
        &[
            format!(
                "DELETE FROM customers WHERE code IN ('{}', '{}')",
                code(3),
                code(1_234)
            ),
            format!(
                "UPDATE customers SET balance = balance + 1 WHERE code = '{}'",
                code(500)
            ),
            format!(
                "UPDATE customers SET name = 'renamed' WHERE code = '{}'",
                code(2_999)
            ),
            "INSERT INTO customers VALUES ('AAA-first', 'x', 1.00), ('\u{fb01}nal', 'y', 2.00)"
                .into(),
        ],
    )
    .await;
    [
        code(3),
        code(1_234),
        code(500),
        code(2_999),
        "AAA-first".into(),
        "\u{fb01}nal".into(),
    ]
    .into_iter()
    .collect()
}

const QUERY: &str = "SELECT code, name, balance FROM customers";
const N: usize = 3_000;

#[tokio::test]
async fn text_keys_postgres_against_sqlite_clean_then_drift_found_exactly() {
    let (legacy, projection) = (pg_database().await, sqlite_file());
    let rows = customers(N);
    exec(&legacy, &table(PG_TABLE, &rows)).await;
    exec(&projection, &table(LITE_TABLE, &rows)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &legacy, &projection, QUERY, "code");

    let clean = run(&cfg).await;
    assert_eq!(clean.counts, Default::default(), "{}", clean.to_table());
    // Same boundaries and the same hashes on both sides: no chunk differed.
    assert_eq!(clean.stats.chunks_differing, 0);
    assert!(clean.stats.chunks_compared >= (N / 100) as u64);

    let want = seed(&projection).await;
    let report = run(&cfg).await;
    assert_eq!(drifted(&report), want, "{}", report.to_table());
    assert_eq!(
        (
            report.counts.missing,
            report.counts.extra,
            report.counts.different
        ),
        (2, 2, 2)
    );
    assert_eq!(
        report
            .columns
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["balance", "name"]
    );
    // Bisection fetched a small part of the rows.
    assert!(
        report.stats.rows_fetched < 400,
        "{} rows fetched",
        report.stats.rows_fetched
    );
}

#[tokio::test]
async fn text_keys_in_a_latin1_case_insensitive_mariadb_match_postgres() {
    let (legacy, projection) = (mysql_database().await, pg_database().await);
    let rows = customers(N);
    exec(&legacy, &table(MARIA_TABLE, &rows)).await;
    exec(&projection, &table(PG_TABLE, &rows)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &legacy, &projection, QUERY, "code");

    let clean = run(&cfg).await;
    assert_eq!(clean.counts, Default::default(), "{}", clean.to_table());
    assert_eq!(clean.stats.chunks_differing, 0, "{}", clean.to_table());
    assert_eq!(
        (
            clean.stats.legacy_hashing.as_str(),
            clean.stats.projection_hashing.as_str()
        ),
        ("sql", "sql")
    );

    let want = seed(&projection).await;
    let report = run(&cfg).await;
    assert_eq!(drifted(&report), want, "{}", report.to_table());
    assert_eq!(report.counts.drift(), 6);
}

fn uuids(n: u128) -> Vec<uuid::Uuid> {
    // Spread over the whole uuid space, in no particular order.
    (0..n)
        .map(|i| uuid::Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
        .collect()
}

#[tokio::test]
async fn uuid_keys_match_across_mariadb_text_postgres_uuid_and_sqlite() {
    let ids = uuids(2_000);
    let insert = |upper: bool| -> Vec<String> {
        ids.chunks(500)
            .map(|c| {
                let v: Vec<String> = c
                    .iter()
                    .enumerate()
                    .map(|(i, u)| {
                        let s = u.to_string();
                        let s = if upper { s.to_uppercase() } else { s };
                        format!("('{s}', {})", i % 10)
                    })
                    .collect();
                format!("INSERT INTO accounts VALUES {}", v.join(", "))
            })
            .collect()
    };
    let with = |ddl: &str, upper: bool| {
        let mut v = vec![ddl.to_string()];
        v.extend(insert(upper));
        v
    };
    // Legacy MariaDB keeps uuids as upper-case CHAR(36); the projection has PostgreSQL's uuid.
    let (maria, pg, lite) = (mysql_database().await, pg_database().await, sqlite_file());
    exec(
        &maria,
        &with(
            "CREATE TABLE accounts (id CHAR(36) PRIMARY KEY, tier INT)",
            true,
        ),
    )
    .await;
    exec(
        &pg,
        &with(
            "CREATE TABLE accounts (id UUID PRIMARY KEY, tier INT)",
            false,
        ),
    )
    .await;
    exec(
        &lite,
        &with(
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, tier INTEGER)",
            false,
        ),
    )
    .await;
    let q = "SELECT id, tier FROM accounts";
    let dir = tempfile::tempdir().unwrap();

    let maria_pg = config(dir.path(), &maria, &pg, q, "id");
    let clean = run(&maria_pg).await;
    assert_eq!(clean.counts, Default::default(), "{}", clean.to_table());
    assert_eq!(clean.stats.chunks_differing, 0);

    let (gone, changed) = (ids[17], ids[1_500]);
    let extra = uuid::Uuid::from_u128(u128::MAX);
    exec(
        &pg,
        &[
            format!("DELETE FROM accounts WHERE id = '{gone}'"),
            format!("UPDATE accounts SET tier = tier + 1 WHERE id = '{changed}'"),
            format!("INSERT INTO accounts VALUES ('{extra}', 1)"),
        ],
    )
    .await;
    let report = run(&maria_pg).await;
    let want: BTreeSet<String> = [gone, changed, extra]
        .iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(drifted(&report), want, "{}", report.to_table());

    // PostgreSQL's uuid against SQLite text: the same keys drifted, nothing else.
    let cfg = config(dir.path(), &pg, &lite, q, "id");
    let report = run(&cfg).await;
    assert_eq!(drifted(&report), want, "{}", report.to_table());
    assert_eq!(
        (
            report.counts.missing,
            report.counts.extra,
            report.counts.different
        ),
        (1, 1, 1),
        "the legacy side is PostgreSQL here, so its missing row is SQLite's extra one"
    );
}

// ---------------------------------------------------------------------------------------------
// Repair through the real binary: the order_summary projection is keyed by text order ids.

use crate::projector::support;

const RESET: &str =
    "[replay]\nreset_key = [\"DELETE FROM {{orders}} WHERE order_id = :key\"]\n\n[[handler]]";

fn reconcile_bin(config: &Path, repair: bool) -> (i32, String) {
    let mut cmd = Command::new(crate::harness::strangler_bin());
    cmd.arg("--config")
        .arg(config)
        .args(["reconcile", "orders", "--format", "json"]);
    if repair {
        cmd.arg("--repair");
    }
    let out = cmd
        .env("RUST_LOG", "warn")
        .output()
        .expect("running strangler reconcile");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Legacy truth on MariaDB (a case-insensitive VARCHAR key), the projection on PostgreSQL built
/// by the projector from the built-in log; `reconcile --repair` replays the drifted text keys and
/// the re-check and the next run report zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_replays_drifted_text_keys_and_rechecks_to_zero() {
    use support::{BusKind, Env, StoreKind, order_events, order_summary};
    let env = Env::new(StoreKind::Postgres, BusKind::Log).await;
    let text = order_summary("orders", 1, "stop").replacen("[[handler]]", RESET, 1);
    env.write_projection("orders.toml", &text);
    let mut truth = BTreeMap::new();
    let events = order_events(3_000, 300, 0, &mut truth);
    env.publish(&events).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;

    let strangler_store::Store::Postgres(read) = &env.read else {
        unreachable!("a PostgreSQL read store")
    };
    let select = "SELECT order_id, status, subtotal, tax, total FROM orders_v1 ORDER BY order_id";
    let clean: Vec<(String, String, i64, i64, i64)> =
        sqlx::query_as(select).fetch_all(read).await.unwrap();
    assert_eq!(clean.len(), 300);
    let legacy = mysql_database().await;
    let mut sqls = vec![
        "CREATE TABLE orders (order_id VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, \
         status VARCHAR(20), subtotal BIGINT, tax BIGINT, total BIGINT)"
            .to_string(),
    ];
    sqls.push(format!(
        "INSERT INTO orders VALUES {}",
        clean
            .iter()
            .map(|(o, s, a, b, c)| format!("('{o}', '{s}', {a}, {b}, {c})"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    exec(&legacy, &sqls).await;
    for sql in [
        "DELETE FROM orders_v1 WHERE order_id = 'o-000007'",
        "UPDATE orders_v1 SET total = total + 1 WHERE order_id = 'o-000100'",
        "UPDATE orders_v1 SET status = 'lost' WHERE order_id = 'o-000250'",
        "INSERT INTO orders_v1 SELECT 'o-999999', customer_id, status, subtotal, tax, total, items, \
         placed_at, updated_at, version FROM orders_v1 WHERE order_id = 'o-000001'",
    ] {
        sqlx::query(sql).execute(read).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strangler.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
url = "{control}"

[projections]
dir = "{projections}"
read_store_url = "{read}"

[bus]
kind = "log"
log_partitions = {partitions}

[[reconcile]]
name = "orders"
chunk_size = 50
bisection_factor = 4
leaf_rows = 8

[reconcile.legacy]
url = "{legacy}"
query = "SELECT order_id, status, subtotal, tax, total FROM orders"
key = "order_id"

[reconcile.projection]
query = "SELECT order_id, status, subtotal, tax, total FROM orders_v1"
key = "order_id"
"#,
            control = env.control_url,
            legacy = legacy.url,
            projections = env.dir.path().display(),
            read = env.read_url,
            partitions = support::PARTITIONS,
        ),
    )
    .unwrap();

    let (code, out) = reconcile_bin(&config, false);
    assert_eq!(code, 1, "drift found: {out}");
    for key in ["o-000007", "o-000100", "o-000250", "o-999999"] {
        assert!(out.contains(key), "{key} reported: {out}");
    }
    assert!(
        out.contains(r#""missing": 1"#) && out.contains(r#""different": 2"#),
        "{out}"
    );
    let (code, out) = reconcile_bin(&config, true);
    assert_eq!(code, 0, "repaired and re-checked clean: {out}");
    assert!(out.contains("of 4 keys"), "{out}");
    let (code, out) = reconcile_bin(&config, false);
    assert_eq!(code, 0, "the next run is clean: {out}");
    let after: Vec<(String, String, i64, i64, i64)> =
        sqlx::query_as(select).fetch_all(read).await.unwrap();
    assert_eq!(after, clean);
}
