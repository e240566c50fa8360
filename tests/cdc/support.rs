//! Shared pieces of the change-capture suite: the captured table and its writers, reading the
//! built-in log back, replaying change events into a table image, and the real binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rand::Rng;
use serde_json::{Map, Value};
use sqlx::{PgPool, Row};
use strangler_bus::debezium::{ChangeOp, Format, decode};
use strangler_bus::{Header, LogPublisher, Record};
use strangler_cdc::{Capture, CaptureOptions};
use strangler_core::config::{Config, OutboxConfig, WalConfig};
use strangler_store::Store;

pub(crate) const DDL: &str = "CREATE TABLE items (id bigint PRIMARY KEY, qty integer NOT NULL, \
    note text, price numeric(10,2), flag boolean, at timestamptz, day date)";

/// A `[wal]` section for `items` with the given extra lines.
pub(crate) fn wal_config(extra: &str) -> WalConfig {
    let text = format!("[wal]\ntables = [\"public.items\"]\ntopic_prefix = \"app\"\n{extra}");
    Config::parse(&text, Path::new("cdc.toml"))
        .expect("test config parses")
        .wal
        .expect("wal section")
}

pub(crate) async fn store(url: &str) -> Store {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

pub(crate) fn capture(legacy_url: &str, wal: WalConfig, store: &Store, once: bool) -> Capture {
    Capture::new(
        legacy_url.to_string(),
        wal,
        OutboxConfig::default(),
        Arc::new(LogPublisher::new(store.clone(), 4)),
        CaptureOptions { once },
    )
}

/// Inserts rows `from..to` with recognisable values.
pub(crate) async fn seed(pool: &PgPool, from: i64, to: i64) {
    sqlx::query(
        "INSERT INTO items (id, qty, note, price, flag, at, day) \
         SELECT g, g % 97, 'n' || g, g * 1.25, g % 2 = 0, \
         timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', date '2024-01-01' + (g % 30)::int \
         FROM generate_series($1::bigint, $2::bigint - 1) g",
    )
    .bind(from)
    .bind(to)
    .execute(pool)
    .await
    .unwrap();
}

/// `txns` random transactions of 1-3 statements by writer `w` of `writers`, over the ids
/// `0..ids` that are `w` modulo `writers` (writers never wait on each other's rows): inserts of
/// missing ids, updates, primary-key changes to ids of its own, deletes.
pub(crate) async fn churn(pool: PgPool, ids: i64, txns: usize, w: i64, writers: i64) {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64 + 17);
    let mut moved = 0i64;
    for _ in 0..txns {
        let mut tx = pool.begin().await.unwrap();
        for _ in 0..rng.gen_range(1..=3) {
            let id = rng.gen_range(0..ids / writers) * writers + w;
            let qty = rng.gen_range(0..1000i64);
            let (sql, second) = match rng.gen_range(0..10) {
                0..=2 => (
                    "INSERT INTO items (id, qty, note, flag) VALUES ($1, $2, 'new', true) \
                     ON CONFLICT (id) DO UPDATE SET qty = excluded.qty",
                    qty,
                ),
                3..=6 => (
                    "UPDATE items SET qty = $2, note = note || '+', price = price + 1 WHERE id = $1",
                    qty,
                ),
                7 => {
                    moved += 1;
                    (
                        "UPDATE items SET id = $2 WHERE id = $1",
                        1_000_000 * (w + 1) + moved,
                    )
                }
                _ => ("DELETE FROM items WHERE id = $1 AND $2 >= 0", qty),
            };
            sqlx::query(sql)
                .bind(id)
                .bind(second)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
}

/// Every record of the built-in log, per partition in offset order.
pub(crate) async fn log_records(store: &Store) -> Vec<Record> {
    let Store::Postgres(pool) = store else {
        panic!("the suite keeps its log on PostgreSQL")
    };
    sqlx::query(
        "SELECT topic, partition, \"offset\", key, value, CAST(headers AS TEXT) \
         FROM strangler_log ORDER BY partition, \"offset\"",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let headers: Vec<(String, String)> = serde_json::from_str(&r.get::<String, _>(5)).unwrap();
        Record {
            topic: r.get(0),
            partition: r.get(1),
            offset: r.get(2),
            key: r.get(3),
            value: r.get(4),
            headers: headers
                .into_iter()
                .map(|(name, v)| Header {
                    name,
                    value: v.into_bytes(),
                })
                .collect(),
            timestamp_ms: None,
        }
    })
    .collect()
}

/// Applies change events of `topic` in log order (per key, which the partitioning keeps) the
/// way a projection would, decoding each with the code that reads Debezium's real messages.
pub(crate) fn replay(records: &[Record], topic: &str) -> BTreeMap<String, Map<String, Value>> {
    let mut table = BTreeMap::new();
    for r in records.iter().filter(|r| r.topic == topic) {
        let d = decode(r).expect("every record decodes");
        let key = d.aggregate_id.clone().expect("every row event has a key");
        match d.format {
            Format::Tombstone => {
                table.remove(&key);
            }
            Format::Change => {
                let c = d.change.unwrap();
                match c.op {
                    ChangeOp::Create | ChangeOp::Update | ChangeOp::Read => {
                        let after = c.after.unwrap();
                        table.insert(key, after.as_object().unwrap().clone());
                    }
                    ChangeOp::Delete => {
                        table.remove(&key);
                    }
                    other => panic!("unexpected op {other:?} on {topic}"),
                }
            }
            other => panic!("unexpected format {other:?} on {topic}"),
        }
    }
    table
}

/// The table as it stands, each row converted as capture converts it, keyed like events.
pub(crate) async fn table_image(url: &str) -> BTreeMap<String, Map<String, Value>> {
    let mut conn = strangler_cdc::pg::connect(url).await.unwrap();
    let t = strangler_cdc::pg::describe(&mut conn, "public", "items", "app")
        .await
        .unwrap();
    let names: Vec<(String, u32)> = t.columns.iter().map(|(n, o, _)| (n.clone(), *o)).collect();
    strangler_cdc::pg::chunk(&mut conn, &t, None, u32::MAX >> 1)
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            let cells: Vec<_> = row
                .into_iter()
                .map(|c| {
                    c.map_or(
                        strangler_cdc::pgoutput::Cell::Null,
                        strangler_cdc::pgoutput::Cell::Text,
                    )
                })
                .collect();
            let m = strangler_cdc::event::row_json(&names, &cells);
            (m["id"].to_string(), m)
        })
        .collect()
}

pub(crate) use crate::harness::strangler_bin;

/// A configuration file for the binary: legacy = the captured database, the built-in log on
/// `store_url`.
pub(crate) fn write_config(dir: &Path, legacy: &str, store_url: &str, wal_extra: &str) -> PathBuf {
    let path = dir.join("strangler.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\nurl = \"{store_url}\"\n[legacy]\nurl = \"{legacy}\"\n[bus]\nkind = \"log\"\n\
             [wal]\ntables = [\"public.items\"]\ntopic_prefix = \"app\"\n{wal_extra}"
        ),
    )
    .unwrap();
    path
}

pub(crate) fn relay(config: &Path, log: &Path, once: bool) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut c = Command::new(strangler_bin());
    c.args([
        "--config",
        config.to_str().unwrap(),
        "relay",
        "--source",
        "wal",
    ]);
    if once {
        c.arg("--once");
    }
    c.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(log);
    c
}

pub(crate) fn spawn(mut cmd: Command) -> Child {
    cmd.spawn().expect("starting strangler relay --source wal")
}

/// Waits until the capture has created its slot, so that later writes are streamed changes.
pub(crate) async fn wait_for_slot(pool: &PgPool, slot: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while sqlx::query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1")
        .bind(slot)
        .fetch_optional(pool)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the capture did not create slot {slot} within a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
