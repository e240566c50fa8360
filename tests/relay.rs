//! The outbox relay on real databases and a real broker: commit-order reads under concurrent
//! writers, per-aggregate order, Debezium's outbox format, crashes, a broker restart, fencing and
//! bad rows.
//!
//! Event counts are constants overridable by environment variables, so a longer soak is one
//! variable away: `STRANGLER_RELAY_EVENTS_PG`, `..._MYSQL` and `..._SQLITE` (50,000 each, as the
//! issue asks), `..._LOG` (10,000), `..._KILL` (3,000; the crash test's broker keeps its data in
//! SQLite so that it survives the restart, and tansu's SQLite storage took 2.6k-2.8k 1 KB records/s
//! from a bare producer on the shared 2-core machine: 50,000 events are one variable away, not the
//! default, until a run shows them under a minute), `..._RESUME` (10,000).

mod bad_rows;
mod fencing;
mod outages;
mod support;

use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::Connection;
use strangler_bus::LogPublisher;
use strangler_outbox::{Relay, RelayOptions, Sink};
use strangler_store::Store;
use strangler_test_support::{Broker, mysql_database, pg_database, sqlite_file};
use tokio_util::sync::CancellationToken;

use support::*;

async fn concurrent_writers_to_kafka(kind: &str, total: usize, broker: &Broker) {
    let db = match kind {
        "postgres" => pg_database().await,
        "mysql" => mysql_database().await,
        _ => sqlite_file(),
    };
    let legacy = Legacy::open(&db, kind).await;
    let aggregate_type = format!("order_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let topic = format!("outbox.event.{aggregate_type}");
    broker.create_topic(&topic, 4).await;
    let started = Instant::now();
    let written = relay_while_writing(
        &db,
        &legacy,
        kafka_sink(&broker.bootstrap),
        &aggregate_type,
        total,
    )
    .await;
    let relayed_in = started.elapsed();
    let records = consume_all(&broker.bootstrap, &topic);
    let duplicates = verify(&records, &written, &topic);
    eprintln!(
        "{kind}: {total} events from {WRITERS} writers relayed in {relayed_in:?}, {duplicates} duplicates"
    );
    assert_eq!(duplicates, 0, "no crash, no duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_postgres_to_kafka_keeps_every_event_in_order() {
    let total = count("STRANGLER_RELAY_EVENTS_PG", 50_000);
    concurrent_writers_to_kafka("postgres", total, &strangler_test_support::broker()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_mariadb_to_kafka_keeps_every_event_in_order() {
    let total = count("STRANGLER_RELAY_EVENTS_MYSQL", 50_000);
    concurrent_writers_to_kafka("mysql", total, &strangler_test_support::broker()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_sqlite_to_kafka_keeps_every_event_in_order() {
    let total = count("STRANGLER_RELAY_EVENTS_SQLITE", 50_000);
    concurrent_writers_to_kafka("sqlite", total, &strangler_test_support::broker()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_postgres_to_builtin_log_keeps_every_event_in_order() {
    let total = count("STRANGLER_RELAY_EVENTS_LOG", 10_000);
    let db = pg_database().await;
    let legacy = Legacy::open(&db, "postgres").await;
    let store_db = pg_database().await;
    let store = Store::connect(&store_db.url).await.unwrap();
    store.migrate().await.unwrap();
    let sink = Sink::Log(LogPublisher::new(store.clone(), 4));
    let written = relay_while_writing(&db, &legacy, sink, "order", total).await;
    let records = log_records(&store).await;
    assert_eq!(verify(&records, &written, "outbox.event.order"), 0);
    let Store::Postgres(pool) = &store else {
        unreachable!()
    };
    let heads: i64 = sqlx::query_scalar("SELECT SUM(next_offset)::bigint FROM strangler_log_head")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(heads as usize, total, "log heads agree with the rows");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_survives_ten_sigkills_and_a_broker_restart() {
    let total = count("STRANGLER_RELAY_EVENTS_KILL", 3_000);
    let max_in_flight = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = OwnBroker::start(dir.path());
    let topic = "outbox.event.order";
    Broker {
        bootstrap: broker.addr.clone(),
    }
    .create_topic(topic, 4)
    .await;
    let db = pg_database().await;
    let legacy = Legacy::open(&db, "postgres").await;
    let config = write_config(dir.path(), &db.url, &broker.addr, max_in_flight);
    let log = dir.path().join("relay.log");
    let mut spawned_at = log_len(&log);
    let mut relay = spawn_relay(&config, &log);

    let writer = {
        let legacy = legacy.clone();
        tokio::spawn(async move { write_events(&legacy, "order", total).await })
    };
    let kills = 10;
    for k in 0..kills {
        let pause = Duration::from_millis(rand::thread_rng().gen_range(200..900));
        tokio::time::sleep(pause).await;
        relay.kill().expect("SIGKILL");
        relay.wait().unwrap();
        if k == 4 {
            broker.restart();
        }
        spawned_at = log_len(&log);
        relay = spawn_relay(&config, &log);
    }
    let written = writer.await.unwrap();
    wait_drained(&legacy, 120).await;
    // When the killed relay had drained the outbox already, SIGTERM could otherwise reach the new
    // process before it listens for it.
    wait_relaying(&log, spawned_at, 60).await;
    sigterm(&mut relay);
    assert!(
        relay.wait().unwrap().success(),
        "relay exits cleanly on SIGTERM"
    );

    let records = consume_all(&broker.addr, topic);
    let duplicates = verify(&records, &written, topic);
    eprintln!(
        "kill test: {total} events, {kills} SIGKILLs, 1 broker restart: {} records, {duplicates} duplicates",
        records.len()
    );
    // At-least-once: only rows delivered but not yet deleted when a relay died are sent again,
    // and at most max_in_flight of them can be outstanding per crash (and per broker restart).
    assert!(
        duplicates <= (kills + 1) * max_in_flight as usize,
        "{duplicates} duplicates exceed the bound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standby_waits_for_the_lease_and_takes_over_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let broker = strangler_test_support::broker();
    let topic = "outbox.event.fence";
    broker.create_topic(topic, 2).await;
    let db = pg_database().await;
    let legacy = Legacy::open(&db, "postgres").await;
    let config = write_config(dir.path(), &db.url, &broker.bootstrap, 1000);
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = spawn_relay(&config, &log_a);
    let first = write_events(&legacy, "fence", 500).await;
    wait_drained(&legacy, 60).await;
    let mut b = spawn_relay(&config, &log_b);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log_b)
        .unwrap_or_default()
        .contains("standing by")
    {
        assert!(
            Instant::now() < deadline,
            "relay B never reported standing by"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Legacy::Pg(pool) = &legacy else {
        unreachable!()
    };
    let holders: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(holders, 1, "exactly one relay holds the lease");
    assert!(
        !std::fs::read_to_string(&log_b)
            .unwrap()
            .contains("holding the outbox lease")
    );

    a.kill().unwrap();
    a.wait().unwrap();
    let second = write_events_for(&legacy, "fence", "second-", 500).await;
    wait_drained(&legacy, 60).await;
    assert!(
        std::fs::read_to_string(&log_b)
            .unwrap()
            .contains("holding the outbox lease"),
        "B took over"
    );
    sigterm(&mut b);
    let mut written = first;
    written.extend(second);
    let records = consume_all(&broker.bootstrap, topic);
    assert_eq!(verify(&records, &written, topic), 0);
}

// ---- the MySQL gap-hold strategy ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_holds_rows_behind_an_open_transaction_and_passes_a_rollback() {
    let db = mysql_database().await;
    let legacy = Legacy::open(&db, "mysql").await;
    let Legacy::My(pool) = &legacy else {
        unreachable!()
    };
    let insert = "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (?, 'gap', ?, 'Changed', '{}')";
    // seq 1: an open transaction; seq 2: committed; seq 3: rolled back; seq 4: committed.
    let mut open = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut open).await.unwrap();
    let late = uuid::Uuid::new_v4().to_string();
    sqlx::query(insert)
        .bind(&late)
        .bind("a")
        .execute(&mut open)
        .await
        .unwrap();
    sqlx::query(insert)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind("a")
        .execute(pool)
        .await
        .unwrap();
    let mut rolled = pool.begin().await.unwrap();
    sqlx::query(insert)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind("b")
        .execute(&mut *rolled)
        .await
        .unwrap();
    rolled.rollback().await.unwrap();
    sqlx::query(insert)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind("b")
        .execute(pool)
        .await
        .unwrap();

    let store_db = sqlite_file();
    let store = Store::connect(&store_db.url).await.unwrap();
    store.migrate().await.unwrap();
    let relay = Relay::new(
        db.url.clone(),
        relay_config(),
        Sink::Log(LogPublisher::new(store.clone(), 1)),
        RelayOptions::default(),
    );
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(async move { relay.run(&stop).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Only committed rows count: seq 2 and 4 are still there, held behind seq 1.
    assert_eq!(
        legacy.remaining().await,
        2,
        "seq 2 and 4 wait behind the open transaction of seq 1"
    );
    let Store::Sqlite(p) = &store else {
        unreachable!()
    };
    let published: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM strangler_log")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(published, 0, "nothing passes the open transaction's gap");
    sqlx::query("COMMIT").execute(&mut open).await.unwrap();
    wait_drained(&legacy, 30).await;
    cancel.cancel();
    assert_eq!(
        task.await.unwrap().unwrap().published,
        3,
        "seq 1, 2, 4 published; the rollback (3) passed"
    );
    let first: Vec<u8> =
        sqlx::query_scalar("SELECT value FROM strangler_log ORDER BY \"offset\" LIMIT 1")
            .fetch_one(p)
            .await
            .unwrap();
    let firsts: Vec<String> =
        sqlx::query_scalar("SELECT headers FROM strangler_log ORDER BY \"offset\"")
            .fetch_all(p)
            .await
            .unwrap();
    assert!(
        firsts[0].contains(&late),
        "the late commit is published first, in seq order"
    );
    assert_eq!(first, b"{}");
}
