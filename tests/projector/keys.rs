//! Per-key replay: only the named keys' rows are reset and rebuilt from their events, while other
//! keys, checkpoints and a live projector are left alone; and `strangler reconcile --repair`
//! repairs seeded drift through it, then re-checks to zero.

use std::collections::BTreeMap;
use std::process::Command;

use strangler_projector::checkpoint;
use strangler_store::Store;
use strangler_test_support::pg_database;
use tokio_util::sync::CancellationToken;

use super::support::{BusKind, Env, StoreKind, drift, order_events, order_summary, rows, summary};
use crate::harness::strangler_bin;

const RESET: &str =
    "[replay]\nreset_key = [\"DELETE FROM {{orders}} WHERE order_id = :key\"]\n\n[[handler]]";

async fn exec(read: &Store, sql: &str) -> u64 {
    match read {
        Store::Postgres(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
        Store::Sqlite(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
    }
}

async fn replaying_keys_rebuilds_only_them(store: StoreKind) {
    let env = Env::new(store, BusKind::Log).await;
    let text = order_summary("orders", 1, "stop").replacen("[[handler]]", RESET, 1);
    env.write_projection("orders.toml", &text);
    let mut truth = BTreeMap::new();
    let events = order_events(6_000, 400, 0, &mut truth);
    env.publish(&events).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;
    let clean = rows(&env.read, "orders_v1").await;
    assert!(drift(&truth, &summary(&env.read, "orders_v1").await).is_empty());
    let checkpoints = checkpoint::list(&env.read, None).await.unwrap();

    // Seed drift: a missing row, a wrong total, a wrong status, and a row with no events.
    assert_eq!(
        exec(
            &env.read,
            "DELETE FROM orders_v1 WHERE order_id = 'o-000007'"
        )
        .await,
        1
    );
    exec(
        &env.read,
        "UPDATE orders_v1 SET total = total + 1 WHERE order_id = 'o-000100'",
    )
    .await;
    exec(
        &env.read,
        "UPDATE orders_v1 SET status = 'lost' WHERE order_id = 'o-000250'",
    )
    .await;
    exec(&env.read, "INSERT INTO orders_v1 SELECT 'o-999999', customer_id, status, subtotal, tax, total, items, placed_at, updated_at, version FROM orders_v1 WHERE order_id = 'o-000001'").await;
    assert_ne!(rows(&env.read, "orders_v1").await, clean);
    let keys: Vec<String> = ["o-000007", "o-000100", "o-000250", "o-999999"]
        .map(String::from)
        .to_vec();
    let one = p.one("orders", None).unwrap();
    let of_keys = events.iter().filter(|e| keys.contains(&e.order_id)).count() as u64;

    // A dry run reports and changes nothing.
    let tampered = rows(&env.read, "orders_v1").await;
    let dry = p
        .replay_keys(&one, &keys, true, &CancellationToken::new(), &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(dry.applied, of_keys);
    assert_eq!(rows(&env.read, "orders_v1").await, tampered);

    let mut progress = 0;
    let stats = p
        .replay_keys(
            &one,
            &keys,
            false,
            &CancellationToken::new(),
            &mut |read, _| progress = read,
        )
        .await
        .unwrap();
    assert_eq!(stats.keys, 4);
    assert_eq!(stats.keys_with_events, 3);
    assert_eq!(stats.keys_without_events, ["o-999999"]);
    assert_eq!(stats.applied, of_keys, "every event of the keys, once");
    assert_eq!(stats.scanned, events.len() as u64);
    assert_eq!(progress, events.len() as u64);
    assert_eq!(stats.reset_rows, 3, "three of the keys had rows");
    assert_eq!(
        rows(&env.read, "orders_v1").await,
        clean,
        "the keys are rebuilt as the live run built them, the extra row is gone, others untouched"
    );
    assert_eq!(
        checkpoint::list(&env.read, None)
            .await
            .unwrap()
            .iter()
            .map(|c| c.next_offset)
            .collect::<Vec<_>>(),
        checkpoints
            .iter()
            .map(|c| c.next_offset)
            .collect::<Vec<_>>(),
        "checkpoints do not move"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_keys_rebuilds_only_them_postgres() {
    replaying_keys_rebuilds_only_them(StoreKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_keys_rebuilds_only_them_sqlite() {
    replaying_keys_rebuilds_only_them(StoreKind::Sqlite).await;
}

/// A per-key replay while the live projector applies new events of the same keys: the replay
/// takes the checkpoint locks, reads what the live run committed meanwhile, and the end state is
/// the legacy truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_keys_beside_a_live_projector_loses_nothing() {
    let env = Env::new(StoreKind::Postgres, BusKind::Log).await;
    let text = order_summary("orders", 1, "stop").replacen("[[handler]]", RESET, 1);
    env.write_projection("orders.toml", &text);
    let mut truth = BTreeMap::new();
    let first = order_events(4_000, 50, 0, &mut truth);
    env.publish(&first).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;
    exec(&env.read, "UPDATE orders_v1 SET total = -1").await;

    let cancel = CancellationToken::new();
    let live = {
        let (p, cancel) = (p.clone(), cancel.clone());
        tokio::spawn(async move { p.run(&[], cancel).await })
    };
    let second = order_events(4_000, 50, 4_000, &mut truth);
    let keys: Vec<String> = (0..50).map(|o| format!("o-{o:06}")).collect();
    let one = p.one("orders", None).unwrap();
    let (_, replayed) = tokio::join!(env.publish(&second), async {
        p.replay_keys(
            &one,
            &keys,
            false,
            &CancellationToken::new(),
            &mut |_, _| {},
        )
        .await
        .unwrap()
    });
    assert!(replayed.applied >= first.len() as u64);
    let ends = env.ends(&p).await;
    super::support::wait_caught_up(
        &env.read,
        &[("orders".into(), 1)],
        &ends,
        std::time::Duration::from_secs(120),
        || live.is_finished(),
    )
    .await;
    cancel.cancel();
    live.await.unwrap().unwrap();
    assert_eq!(
        drift(&truth, &summary(&env.read, "orders_v1").await),
        Vec::<String>::new()
    );
}

const ACCOUNTS: &str = r#"
name = "accounts"
topics = ["@TOPIC@"]
tables = ["accounts"]

[setup]
all = "CREATE TABLE IF NOT EXISTS {{accounts}} (id BIGINT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL)"

[replay]
reset_key = ["DELETE FROM {{accounts}} WHERE id = CAST(:key AS BIGINT)"]

[[handler]]
event_type = "OrderPlaced"
sql = "INSERT INTO {{accounts}} (id, owner, balance) VALUES (CAST(:id AS BIGINT), :customer_id, :subtotal)"
params = { id = "key" }

[[handler]]
event_type = "OrderAmended"
sql = "UPDATE {{accounts}} SET balance = balance + :subtotal WHERE id = CAST(:id AS BIGINT)"
params = { id = "key" }

[[handler]]
event_type = "OrderShipped"
sql = "UPDATE {{accounts}} SET owner = owner || '+' WHERE id = CAST(:id AS BIGINT)"
params = { id = "key" }
"#;

fn reconcile(config: &std::path::Path, repair: bool) -> (i32, String) {
    let mut cmd = Command::new(strangler_bin());
    cmd.arg("--config")
        .arg(config)
        .args(["reconcile", "accounts", "--format", "json"]);
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

/// `strangler reconcile --repair` replays the drifted keys through the projection and the
/// re-check, and the next run, report zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_repair_replays_the_drifted_keys_and_rechecks_to_zero() {
    let env = Env::new(StoreKind::Postgres, BusKind::Log).await;
    env.write_projection("accounts.toml", ACCOUNTS);
    // Keys are integers (reconciliation keys), as text on the bus.
    let mut truth = BTreeMap::new();
    let mut events = order_events(3_000, 300, 0, &mut truth);
    for e in &mut events {
        e.order_id = e
            .order_id
            .trim_start_matches("o-")
            .trim_start_matches('0')
            .to_string();
        if e.order_id.is_empty() {
            e.order_id = "0".into();
        }
    }
    env.publish(&events).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;

    // The legacy truth is what a clean projection holds; seed drift after copying it.
    let legacy = pg_database().await;
    let Store::Postgres(read) = &env.read else {
        unreachable!()
    };
    let truth_rows: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT id, owner, balance FROM accounts_v1 ORDER BY id")
            .fetch_all(read)
            .await
            .unwrap();
    assert_eq!(truth_rows.len(), 300);
    let lpool = sqlx::PgPool::connect(&legacy.url).await.unwrap();
    sqlx::query("CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL)")
        .execute(&lpool)
        .await
        .unwrap();
    for (id, owner, balance) in &truth_rows {
        sqlx::query("INSERT INTO accounts VALUES ($1, $2, $3)")
            .bind(id)
            .bind(owner)
            .bind(balance)
            .execute(&lpool)
            .await
            .unwrap();
    }
    exec(&env.read, "DELETE FROM accounts_v1 WHERE id = 17").await;
    exec(
        &env.read,
        "UPDATE accounts_v1 SET balance = balance * 2 WHERE id IN (40, 41, 299)",
    )
    .await;
    exec(
        &env.read,
        "UPDATE accounts_v1 SET owner = 'nobody' WHERE id = 123",
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strangler.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
url = "{control}"

[legacy]
url = "{legacy}"

[projections]
dir = "{projections}"
read_store_url = "{read}"

[bus]
kind = "log"
log_partitions = 4

[[reconcile]]
name = "accounts"

[reconcile.legacy]
query = "SELECT id, owner, balance FROM accounts"
key = "id"

[reconcile.projection]
query = "SELECT id, owner, balance FROM accounts_v1"
key = "id"
"#,
            control = env.control_url,
            legacy = legacy.url,
            projections = env.dir.path().display(),
            read = env.read_url,
        ),
    )
    .unwrap();

    let (code, out) = reconcile(&config, false);
    assert_eq!(code, 1, "drift found: {out}");
    let (code, out) = reconcile(&config, true);
    assert_eq!(code, 0, "repaired and re-checked clean: {out}");
    assert!(
        out.contains("replayed") && out.contains("of 5 keys"),
        "{out}"
    );
    let (code, out) = reconcile(&config, false);
    assert_eq!(code, 0, "the next run is clean: {out}");
    let after: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT id, owner, balance FROM accounts_v1 ORDER BY id")
            .fetch_all(read)
            .await
            .unwrap();
    assert_eq!(after, truth_rows);
}
