//! Outages met by a running relay: a shutdown while the broker or PostgreSQL is stalled ends within
//! the drain time and leaves every unconfirmed row in the outbox (RELIABILITY finding 4), and a
//! SQLite relay whose statements fail mid-run resumes without publishing anything twice.

use std::time::{Duration, Instant};

use sqlx::Connection;
use strangler_bus::LogPublisher;
use strangler_outbox::{Error, Relay, RelayOptions, RelayReport, Sink};
use strangler_store::Store;
use strangler_test_support::{Broker, pg_database, sqlite_file};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::support::*;

const DRAIN: Duration = Duration::from_secs(2);

fn start(
    url: &str,
    sink: Sink,
    opts: RelayOptions,
) -> (
    CancellationToken,
    JoinHandle<strangler_outbox::Result<RelayReport>>,
) {
    let relay = Relay::new(url, relay_config(), sink, opts);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    (cancel, tokio::spawn(async move { relay.run(&stop).await }))
}

/// Cancels the relay and waits for it, failing if it takes much longer than its drain time.
async fn stop_within_drain(
    cancel: CancellationToken,
    task: JoinHandle<strangler_outbox::Result<RelayReport>>,
) -> strangler_outbox::Result<RelayReport> {
    let asked = Instant::now();
    cancel.cancel();
    let out = tokio::time::timeout(DRAIN * 5, task)
        .await
        .expect("the relay kept draining far past its drain time")
        .unwrap();
    let took = asked.elapsed();
    eprintln!("relay stopped {took:?} after cancellation: {out:?}");
    assert!(
        took < DRAIN + Duration::from_secs(2),
        "drain took {took:?}, allowed {DRAIN:?}"
    );
    out
}

/// Relays what is left in the outbox with a fresh relay, to the end.
async fn drain_rest(url: &str, sink: Sink) {
    let relay = Relay::new(
        url,
        relay_config(),
        sink,
        RelayOptions {
            once: true,
            ..RelayOptions::default()
        },
    );
    let cancel = CancellationToken::new();
    tokio::time::timeout(Duration::from_secs(60), relay.run(&cancel))
        .await
        .expect("second relay drained the outbox")
        .expect("second relay ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_while_the_broker_is_stalled_ends_within_the_drain_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = OwnBroker::start(dir.path());
    let topic = "outbox.event.order";
    Broker {
        bootstrap: broker.addr.clone(),
    }
    .create_topic(topic, 4)
    .await;
    let db = pg_database().await;
    let legacy = Legacy::open(&db, "postgres").await;
    let first = write_events(&legacy, "order", 500).await;
    let (cancel, task) = start(
        &db.url,
        kafka_sink(&broker.addr),
        RelayOptions {
            drain_timeout: DRAIN,
            ..RelayOptions::default()
        },
    );
    wait_drained(&legacy, 60).await;
    // The broker stops answering; what the relay sends now is never acknowledged.
    broker.pause();
    let second = write_events_for(&legacy, "order", "second-", 500).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = stop_within_drain(cancel, task).await;
    assert!(
        matches!(out, Err(Error::DrainTimedOut { rows, .. }) if rows > 0),
        "gave up with rows unconfirmed: {out:?}"
    );
    assert_eq!(
        legacy.remaining().await,
        500,
        "no row sent to the stalled broker was deleted"
    );

    broker.resume();
    drain_rest(&db.url, kafka_sink(&broker.addr)).await;
    let mut written = first;
    written.extend(second);
    let records = consume_all(&broker.addr, topic);
    let duplicates = verify(&records, &written, topic);
    eprintln!(
        "broker stall: {} records, {duplicates} duplicates",
        records.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_while_postgres_is_stalled_ends_within_the_drain_time() {
    let db = pg_database().await;
    let legacy = Legacy::open(&db, "postgres").await;
    let store_db = sqlite_file();
    let store = Store::connect(&store_db.url).await.unwrap();
    store.migrate().await.unwrap();
    let sink = || Sink::Log(LogPublisher::new(store.clone(), 2));
    let first = write_events(&legacy, "order", 300).await;
    let (cancel, task) = start(
        &db.url,
        sink(),
        RelayOptions {
            drain_timeout: DRAIN,
            ..RelayOptions::default()
        },
    );
    wait_drained(&legacy, 60).await;
    // Another session takes the outbox table: every read and completion of the relay waits,
    // as they would on a server that stopped answering.
    let mut blocker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = stop_within_drain(cancel, task).await;
    assert!(
        matches!(out, Err(Error::DrainTimedOut { .. })),
        "gave up waiting for the stalled database: {out:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();

    let second = write_events_for(&legacy, "order", "second-", 300).await;
    drain_rest(&db.url, sink()).await;
    let mut written = first;
    written.extend(second);
    assert_eq!(
        verify(&log_records(&store).await, &written, "outbox.event.order"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_relay_resumes_after_failed_statements_without_duplicates() {
    let total = count("STRANGLER_RELAY_EVENTS_RESUME", 10_000);
    let broker = strangler_test_support::broker();
    let aggregate_type = format!("order_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let topic = format!("outbox.event.{aggregate_type}");
    broker.create_topic(&topic, 4).await;
    let db = sqlite_file();
    let legacy = Legacy::open(&db, "sqlite").await;
    let (cancel, task) = start(
        &db.url,
        kafka_sink(&broker.bootstrap),
        RelayOptions {
            sqlite_busy_timeout: Duration::from_millis(200),
            ..RelayOptions::default()
        },
    );
    let writer = {
        let legacy = legacy.clone();
        let at = aggregate_type.clone();
        tokio::spawn(async move { write_events(&legacy, &at, total).await })
    };
    // Three times during the run, another connection holds SQLite's write lock for a second, far
    // past the relay's busy timeout: its completions and lease renewals fail.
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    }
    let written = writer.await.unwrap();
    wait_drained(&legacy, 120).await;
    cancel.cancel();
    let report = task.await.unwrap().expect("relay ran");
    let records = consume_all(&broker.bootstrap, &topic);
    let duplicates = verify(&records, &written, &topic);
    eprintln!(
        "sqlite resume: {total} events, {} resumes, {duplicates} duplicates",
        report.resumed
    );
    assert!(report.resumed >= 1, "the lock made statements fail");
    assert_eq!(duplicates, 0, "a resumed relay reads nothing again");
    assert_eq!(report.published as usize, total);
}
