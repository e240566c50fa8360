//! The harness itself works against each real service.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::Row;
use strangler_store::Store;
use strangler_test_support::{broker, mysql_database, pg_database, sqlite_file, unique_name};

#[tokio::test]
async fn broker_round_trips_a_message_through_a_consumer_group() {
    let broker = broker();
    let topic = broker.unique_topic("harness", 2).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("order-1").payload("hello"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("delivery report");

    let group = unique_name("harness-group");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a message within 30 s")
        .expect("consuming");
    assert_eq!(msg.key(), Some(&b"order-1"[..]));
    assert_eq!(msg.payload(), Some(&b"hello"[..]));
    consumer
        .commit_message(&msg, CommitMode::Sync)
        .expect("committing the offset");
    let committed = consumer
        .committed(Duration::from_secs(10))
        .expect("reading committed offsets");
    let offset = committed
        .elements_for_topic(&topic)
        .iter()
        .find(|e| e.partition() == msg.partition())
        .map(|e| e.offset());
    assert_eq!(offset, Some(rdkafka::Offset::Offset(msg.offset() + 1)));
}

async fn cutover_table_is_usable(store: &Store) {
    store.migrate().await.expect("migrating");
    // Applying twice is a no-op, as `strangler migrate` on every start requires.
    store.migrate().await.expect("migrating again");
    match store {
        Store::Postgres(pool) => {
            sqlx::query("INSERT INTO strangler_cutover (capability, mode, updated_by) VALUES ($1, 'shadow', 'test')")
                .bind("orders")
                .execute(pool)
                .await
                .unwrap();
            let row = sqlx::query("SELECT mode FROM strangler_cutover WHERE capability = $1")
                .bind("orders")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(row.get::<String, _>(0), "shadow");
        }
        Store::Sqlite(pool) => {
            sqlx::query("INSERT INTO strangler_cutover (capability, mode, updated_by) VALUES (?, 'shadow', 'test')")
                .bind("orders")
                .execute(pool)
                .await
                .unwrap();
            let row = sqlx::query("SELECT mode FROM strangler_cutover WHERE capability = ?")
                .bind("orders")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(row.get::<String, _>(0), "shadow");
        }
    }
}

#[tokio::test]
async fn migrations_apply_and_query_on_postgres() {
    let db = pg_database().await;
    let store = Store::connect(&db.url).await.unwrap();
    cutover_table_is_usable(&store).await;
    store.close().await;
}

#[tokio::test]
async fn migrations_apply_and_query_on_sqlite() {
    let db = sqlite_file();
    let store = Store::connect(&db.url).await.unwrap();
    cutover_table_is_usable(&store).await;
    store.close().await;
}

#[tokio::test]
async fn outbox_ddl_applies_and_queries_on_mariadb() {
    use sqlx::Connection;
    let db = mysql_database().await;
    let mut conn = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
    let ddl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/outbox/mysql.sql"
    ))
    .unwrap();
    sqlx::raw_sql(&ddl)
        .execute(&mut conn)
        .await
        .expect("applying the MySQL outbox DDL");
    sqlx::query("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (UUID(), 'order', '42', 'OrderPlaced', '{\"total\": 10}')")
        .execute(&mut conn)
        .await
        .unwrap();
    let row = sqlx::query("SELECT aggregateid, JSON_EXTRACT(payload, '$.total') FROM outbox")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "42");
}

#[tokio::test]
async fn each_test_database_is_fresh() {
    let a = pg_database().await;
    let b = pg_database().await;
    assert_ne!(a.url, b.url);
    let store = Store::connect(&a.url).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let other = Store::connect(&b.url).await.unwrap();
    let Store::Postgres(pool) = &other else {
        unreachable!()
    };
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'strangler_cutover'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(n, 0, "a fresh database must not see another test's tables");
    other.close().await;
}

/// The `strangler` binary this test run uses (`deploy/test.sh` builds it first).
pub(crate) fn strangler_bin() -> std::path::PathBuf {
    std::env::var("CARGO_BIN_EXE_strangler")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|_| {
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
                });
            let bin = target.join("debug/strangler");
            assert!(
                bin.exists(),
                "{} is missing: run `cargo build -p strangler-cli` first (deploy/test.sh does)",
                bin.display()
            );
            bin
        })
}
