//! Reconciliation benchmark on PostgreSQL: verifying two identical large tables, and locating
//! sparse drift in two 1,000,000-row tables, each beside the naive baseline (stream both tables
//! in full, in key order, and compare in memory). Run through `deploy/bench-reconcile.sh`.
//!
//! Arguments: `--pg URL` (an admin URL; a scratch database is created and dropped),
//! `--identical-rows N` (default 10,000,000), `--drift-rows N` (default 1,000,000),
//! `--drift-every N` (one changed row in N, default 1,000: 0.1%), `--skip-naive-identical`,
//! `--chunk-size N` and `--leaf-rows N` (override the `[[reconcile]]` defaults).

use std::time::Instant;

use sqlx::Connection;
use strangler_core::Config;
use strangler_reconcile::{Progress, Reconciler, Report};

struct Args {
    pg: String,
    identical_rows: i64,
    drift_rows: i64,
    drift_every: i64,
    naive_identical: bool,
    /// Extra `[[reconcile]]` settings (`--chunk-size`, `--leaf-rows`), to compare cuts.
    settings: String,
}

fn args() -> Args {
    let mut a = Args {
        pg: std::env::var("STRANGLER_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        identical_rows: 10_000_000,
        drift_rows: 1_000_000,
        drift_every: 1_000,
        naive_identical: true,
        settings: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = || it.next().and_then(|v| v.parse().ok()).expect("a number");
        match flag.as_str() {
            "--pg" => a.pg = it.next().expect("a URL"),
            "--identical-rows" => a.identical_rows = num(),
            "--drift-rows" => a.drift_rows = num(),
            "--drift-every" => a.drift_every = num(),
            "--skip-naive-identical" => a.naive_identical = false,
            "--chunk-size" => a.settings += &format!("chunk_size = {}\n", num()),
            "--leaf-rows" => a.settings += &format!("leaf_rows = {}\n", num()),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// One table of `n` orders, built inside PostgreSQL; `customer` is the customer column's type.
fn table_sql(name: &str, n: i64, customer: &str) -> String {
    format!(
        "CREATE TABLE {name} AS SELECT g::bigint AS id, (g % 97)::{customer} AS customer_id, \
         (ARRAY['paid','shipped','cancelled'])[g % 3 + 1] AS status, \
         (((g * 7919) % 1000000) / 100.0)::numeric(12,2) AS total, g % 2 = 0 AS paid, \
         timestamptz '2024-01-01' + g * interval '60 ms' AS created_at, \
         'customer' || g || '@example.com' AS email \
         FROM generate_series(1::bigint, {n}) g; ALTER TABLE {name} ADD PRIMARY KEY (id)"
    )
}

fn config(url: &str, legacy: &str, projection: &str, settings: &str) -> Config {
    let q = |t: &str| {
        format!("SELECT id, customer_id, status, total, paid, created_at, email FROM {t}")
    };
    let text = format!(
        r#"
[[reconcile]]
name = "bench"
{settings}
[reconcile.legacy]
url = "{url}"
query = "{}"
key = "id"
[reconcile.projection]
url = "{url}"
query = "{}"
key = "id"
"#,
        q(legacy),
        q(projection)
    );
    Config::parse(&text, std::path::Path::new("bench.toml")).expect("bench configuration")
}

async fn run(cfg: &Config, naive: bool) -> (Report, Option<Report>) {
    let r = Reconciler::connect(cfg, "bench", None)
        .await
        .expect("connecting");
    let fast = r.reconcile(&Progress::stderr()).await.expect("reconciling");
    let slow = if naive {
        Some(r.naive().await.expect("naive baseline"))
    } else {
        None
    };
    (fast, slow)
}

fn line(case: &str, rows: i64, fast: &Report, slow: Option<&Report>) {
    let t = &fast.stats;
    let (naive_s, speedup) = match slow {
        Some(s) => (
            format!("{:.2}", s.stats.elapsed_ms as f64 / 1000.0),
            format!(
                "{:.1}x",
                s.stats.elapsed_ms as f64 / t.elapsed_ms.max(1) as f64
            ),
        ),
        None => ("not run".into(), "-".into()),
    };
    println!(
        "| {case} | {rows} | {} | {} | {:.2} | {naive_s} | {speedup} | {} | {} | {} |",
        t.legacy_hashing,
        fast.counts.drift(),
        t.elapsed_ms as f64 / 1000.0,
        t.checksum_queries,
        t.chunks_differing,
        t.rows_fetched
    );
    if let Some(s) = slow {
        assert_eq!(
            s.counts, fast.counts,
            "bisection and the naive baseline disagree"
        );
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let db = format!("bench_reconcile_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&a.pg)
        .await
        .expect("PostgreSQL");
    sqlx::raw_sql(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut u = a.pg.clone();
    u.truncate(u.rfind('/').expect("a database in the URL"));
    let url = format!("{u}/{db}");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();

    println!(
        "| case | rows per table | row hash | drifted rows found | bisect (s) | naive (s) | speed-up | checksum queries | chunks differing | rows fetched |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");

    let t = Instant::now();
    for name in ["big_legacy", "big_projection"] {
        sqlx::raw_sql(&table_sql(name, a.identical_rows, "int"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&mut conn)
        .await
        .unwrap();
    eprintln!(
        "generated 2 x {} rows in {:.1} s",
        a.identical_rows,
        t.elapsed().as_secs_f64()
    );
    let (fast, slow) = run(
        &config(&url, "big_legacy", "big_projection", &a.settings),
        a.naive_identical,
    )
    .await;
    line(
        "identical, same types",
        a.identical_rows,
        &fast,
        slow.as_ref(),
    );
    sqlx::raw_sql("DROP TABLE big_legacy; DROP TABLE big_projection")
        .execute(&mut conn)
        .await
        .unwrap();

    // The drift case twice: with the same column types on both sides (PostgreSQL's native row
    // hash), and with one column typed differently (bigint against int), which takes the
    // portable path every pair of different database kinds takes (md5 of normalized text).
    let every = a.drift_every;
    for (case, customer) in [("same types", "int"), ("one type differs", "bigint")] {
        sqlx::raw_sql("DROP TABLE IF EXISTS d_legacy; DROP TABLE IF EXISTS d_projection")
            .execute(&mut conn)
            .await
            .unwrap();
        for (name, ty) in [("d_legacy", "int"), ("d_projection", customer)] {
            sqlx::raw_sql(&table_sql(name, a.drift_rows, ty))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::raw_sql(&format!(
            "UPDATE d_projection SET total = total + 1 WHERE id % {every} = 7; \
             DELETE FROM d_projection WHERE id % {every} = 500 AND id % (3 * {every}) = 500"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::raw_sql("VACUUM ANALYZE")
            .execute(&mut conn)
            .await
            .unwrap();
        let (fast, slow) = run(&config(&url, "d_legacy", "d_projection", &a.settings), true).await;
        line(
            &format!("drift 1 in {every}, {case}"),
            a.drift_rows,
            &fast,
            slow.as_ref(),
        );
    }

    drop(conn);
    sqlx::raw_sql(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
