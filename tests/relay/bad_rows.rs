//! Bad rows (payload not JSON, no aggregate id, no route) on MariaDB and SQLite: dead-lettered
//! with their reason in the transaction that removes them, or the relay stops before them.

use strangler_bus::LogPublisher;
use strangler_core::config::BadRowPolicy;
use strangler_outbox::{Relay, RelayOptions, RelayReport, Sink};
use strangler_store::Store;
use strangler_test_support::{TestDb, mysql_database, sqlite_file};
use tokio_util::sync::CancellationToken;

use super::support::{Legacy, relay_config};

struct Run {
    legacy: Legacy,
    result: Result<RelayReport, strangler_outbox::Error>,
    store: Store,
    _dbs: (TestDb, TestDb),
}

/// Five rows, three of them bad, relayed once to the built-in log under `policy`.
async fn run(kind: &str, policy: BadRowPolicy) -> Run {
    let db = match kind {
        "mysql" => mysql_database().await,
        _ => sqlite_file(),
    };
    let legacy = Legacy::open(&db, kind).await;
    let rows = [
        ("good-1", "order", "1", r#"{"n": 0}"#),
        ("not-json", "order", "1", "{oops"),
        ("no-aggregate-id", "order", "", r#"{"n": 1}"#),
        ("no-route", "bad type!", "2", r#"{"n": 2}"#),
        ("good-2", "order", "1", r#"{"n": 1}"#),
    ];
    for (label, aggregate_type, aggregate_id, payload) in rows {
        legacy
            .insert_labelled(aggregate_type, aggregate_id, payload, label)
            .await;
    }
    let store_db = sqlite_file();
    let store = Store::connect(&store_db.url).await.unwrap();
    store.migrate().await.unwrap();
    let mut cfg = relay_config();
    cfg.bad_rows = policy;
    cfg.columns.tracing_span_context = Some("tracingspancontext".into());
    let relay = Relay::new(
        db.url.clone(),
        cfg,
        Sink::Log(LogPublisher::new(store.clone(), 1)),
        RelayOptions {
            once: true,
            ..RelayOptions::default()
        },
    );
    let result = relay.run(&CancellationToken::new()).await;
    Run {
        legacy,
        result,
        store,
        _dbs: (db, store_db),
    }
}

/// The labels of the published records, in log order.
async fn published_labels(store: &Store) -> Vec<String> {
    let Store::Sqlite(p) = store else {
        unreachable!()
    };
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT headers FROM strangler_log ORDER BY \"offset\"")
            .fetch_all(p)
            .await
            .unwrap();
    rows.iter()
        .map(|h| {
            let hs: Vec<(String, String)> = serde_json::from_str(h).unwrap();
            hs.into_iter()
                .find(|(n, _)| n == "tracingspancontext")
                .unwrap()
                .1
        })
        .collect()
}

async fn dead_lettered_with_reason(kind: &str) {
    let run = run(kind, BadRowPolicy::DeadLetter).await;
    let report = run.result.expect("dead-lettering does not stop the relay");
    assert_eq!((report.published, report.dead_lettered), (2, 3), "{kind}");
    assert_eq!(published_labels(&run.store).await, ["good-1", "good-2"]);
    let dead = run
        .legacy
        .texts(
            "SELECT outbox_table, reason, headers, payload FROM outbox_dead_letter \
             ORDER BY dead_letter_id",
        )
        .await;
    assert_eq!(dead.len(), 3, "{kind}: {dead:?}");
    let expect = [
        ("not-json", "payload is not JSON"),
        ("no-aggregate-id", "missing aggregate id"),
        (
            "no-route",
            "aggregate type `bad type!` routes to `outbox.event.bad type!`",
        ),
    ];
    for (d, (label, reason)) in dead.iter().zip(expect) {
        assert_eq!(d[0], "outbox", "{kind}: {d:?}");
        assert!(d[1].starts_with(reason), "{kind}: {d:?}");
        let headers: serde_json::Value = serde_json::from_str(&d[2]).unwrap();
        assert_eq!(headers["tracingspancontext"], label, "{kind}: {d:?}");
    }
    assert_eq!(dead[0][3], "{oops", "{kind}: the payload is kept as it was");
    assert_eq!(
        run.legacy.remaining().await,
        0,
        "{kind}: dead-lettered rows leave the outbox in the same transaction"
    );
}

async fn stop_before_the_bad_row(kind: &str) {
    let run = run(kind, BadRowPolicy::Stop).await;
    let err = run.result.expect_err("stop policy stops");
    assert!(
        matches!(err, strangler_outbox::Error::BadRow { ref reason, .. } if reason.starts_with("payload is not JSON")),
        "{kind}: {err}"
    );
    assert_eq!(
        published_labels(&run.store).await,
        ["good-1"],
        "{kind}: rows before the bad one are published"
    );
    let left: Vec<String> = run
        .legacy
        .texts("SELECT tracingspancontext FROM outbox ORDER BY seq")
        .await
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect();
    assert_eq!(
        left,
        ["not-json", "no-aggregate-id", "no-route", "good-2"],
        "{kind}: nothing after it moves"
    );
    let dead = run
        .legacy
        .count("SELECT COUNT(*) FROM outbox_dead_letter")
        .await;
    assert_eq!(dead, 0, "{kind}");
}

#[tokio::test]
async fn sqlite_bad_rows_are_dead_lettered_with_their_reason() {
    dead_lettered_with_reason("sqlite").await;
}

#[tokio::test]
async fn mariadb_bad_rows_are_dead_lettered_with_their_reason() {
    dead_lettered_with_reason("mysql").await;
}

#[tokio::test]
async fn sqlite_bad_row_policy_stop_stops_before_the_bad_row() {
    stop_before_the_bad_row("sqlite").await;
}

#[tokio::test]
async fn mariadb_bad_row_policy_stop_stops_before_the_bad_row() {
    stop_before_the_bad_row("mysql").await;
}
