//! The sample legacy system behaves like the legacy system the demo story needs.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use strangler_demo::legacy::{LegacyDb, OrderEvent, Workload, read_api};
use tower::ServiceExt;

/// The legacy system on a fresh SQLite file.
async fn sqlite() -> (LegacyDb, strangler_test_support::TestDb) {
    let file = strangler_test_support::sqlite_file();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&file.url)
        .await
        .unwrap();
    (LegacyDb::open(pool).await.unwrap(), file)
}

/// The legacy system on a fresh PostgreSQL database (`strangler demo --postgres`).
async fn postgres() -> (LegacyDb, strangler_test_support::TestDb) {
    let db = strangler_test_support::pg_database().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect(&db.url)
        .await
        .unwrap();
    (LegacyDb::open(pool).await.unwrap(), db)
}

async fn get(db: &LegacyDb, uri: &str) -> (StatusCode, Value) {
    let resp = read_api(db.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn every_write_commits_with_exactly_one_outbox_event_sqlite() {
    let (db, _f) = sqlite().await;
    every_write_commits_with_exactly_one_outbox_event(&db).await;
}

#[tokio::test]
async fn every_write_commits_with_exactly_one_outbox_event_postgres() {
    let (db, _f) = postgres().await;
    every_write_commits_with_exactly_one_outbox_event(&db).await;
}

async fn every_write_commits_with_exactly_one_outbox_event(db: &LegacyDb) {
    let mut rng = StdRng::seed_from_u64(7);
    let workload = Workload {
        change_share: 0.4,
        customers: 5,
    };
    let mut writes = 0;
    for _ in 0..200 {
        workload.step(db, &mut rng).await.unwrap();
        writes += 1;
    }
    let events: i64 = db.count("SELECT count(*) FROM outbox").await.unwrap();
    assert_eq!(events, writes);
    let placed: i64 = db
        .count("SELECT count(*) FROM outbox WHERE type = 'OrderPlaced'")
        .await
        .unwrap();
    let orders: i64 = db.count("SELECT count(*) FROM orders").await.unwrap();
    assert_eq!(placed, orders);
    let changed: i64 = db
        .count("SELECT count(*) FROM orders WHERE status <> 'open'")
        .await
        .unwrap();
    let change_events: i64 = db
        .count("SELECT count(*) FROM outbox WHERE type <> 'OrderPlaced'")
        .await
        .unwrap();
    assert_eq!(
        changed, change_events,
        "each order changes at most once, each change has its event"
    );
}

#[tokio::test]
async fn the_read_api_answers_with_legacy_quirks_sqlite() {
    let (db, _f) = sqlite().await;
    the_read_api_answers_with_legacy_quirks(&db).await;
}

#[tokio::test]
async fn the_read_api_answers_with_legacy_quirks_postgres() {
    let (db, _f) = postgres().await;
    the_read_api_answers_with_legacy_quirks(&db).await;
}

async fn the_read_api_answers_with_legacy_quirks(db: &LegacyDb) {
    let mut rng = StdRng::seed_from_u64(1);
    let id = db.place_order(&mut rng, 3).await.unwrap();

    let (status, body) = get(db, &format!("/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], id.as_str());
    assert!(body["request_id"].is_string());
    assert!(body["cust_id"].as_str().unwrap().starts_with("c-"));
    assert_eq!(body["status"], "open");
    let money = |k: &str| body[k].as_str().unwrap().parse::<f64>().unwrap();
    assert!((money("subtotal") + money("tax") - money("total")).abs() < 1e-9);
    assert!(
        body["total"].as_str().unwrap().contains('.'),
        "money is a DECIMAL string"
    );
    assert!(
        !body["created_at"].as_str().unwrap().contains('T'),
        "naive legacy timestamp"
    );
    assert!(body["items"][0]["quantity"].is_i64());

    let (status, _) = get(db, "/orders/o-missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let customer = body["cust_id"].as_str().unwrap().to_string();
    let (_, list) = get(db, &format!("/customers/{customer}/orders")).await;
    assert_eq!(list["orders"][0]["id"], id.as_str());

    let ev = db.change_random_order(&mut rng).await.unwrap().unwrap();
    let changed = match ev {
        OrderEvent::Shipped { order_id } | OrderEvent::Cancelled { order_id } => order_id,
        OrderEvent::Placed { .. } => unreachable!(),
    };
    assert_eq!(changed, id);
    let (_, open) = get(db, "/orders?status=open").await;
    assert_eq!(open["orders"].as_array().unwrap().len(), 0);
}
