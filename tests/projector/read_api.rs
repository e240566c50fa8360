//! The read API: 404, a JSON object with JSON columns, a list with a query filter, freshness
//! headers; and a real socket.

use std::collections::BTreeMap;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use strangler_projector::read_api::{LAG_HEADER, ReadApi, VERSION_HEADER, WATERMARK_HEADER, app};
use tower::ServiceExt;

use super::support::{BusKind, Env, StoreKind, T0, order_events, order_summary};

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let resp = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

async fn read_api(store: StoreKind) {
    let env = Env::new(store, BusKind::Log).await;
    env.write_projection("orders.toml", &order_summary("orders", 1, "stop"));
    let mut truth = BTreeMap::new();
    let events = order_events(300, 30, 0, &mut truth);
    let last_time = events.iter().map(|e| e.time_ms).max().unwrap();
    env.publish(&events).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;
    let router = app(ReadApi::new(env.read.clone(), &p.projections));

    let (status, _, body) = get(&router, "/orders/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not found");

    let (status, headers, body) = get(&router, "/orders/o-000007").await;
    assert_eq!(status, StatusCode::OK);
    let t = &truth["o-000007"];
    assert_eq!(body["order_id"], "o-000007");
    assert_eq!(body["total"], t.subtotal + t.tax);
    assert_eq!(body["status"], t.status);
    assert!(
        body["items"].is_array(),
        "json_columns come back as JSON: {body}"
    );
    assert_eq!(body["placed_at"], chrono_rfc3339(T0 + 7));
    let wm = headers[WATERMARK_HEADER].to_str().unwrap();
    assert_eq!(
        wm,
        chrono_rfc3339(last_time),
        "watermark is the last applied event time"
    );
    assert_eq!(headers[LAG_HEADER], "0");
    assert_eq!(headers[VERSION_HEADER], "1");

    let (status, _, body) = get(&router, "/customers/c-7/orders").await;
    assert_eq!(status, StatusCode::OK);
    let want: Vec<&String> = truth
        .keys()
        .filter(|k| k.trim_start_matches("o-").parse::<usize>().unwrap() % 97 == 7)
        .collect();
    assert_eq!(body.as_array().unwrap().len(), want.len());
    let (_, _, shipped) = get(&router, "/customers/c-7/orders?status=shipped").await;
    let n_shipped = want
        .iter()
        .filter(|k| truth[k.as_str()].status == "shipped")
        .count();
    assert_eq!(shipped.as_array().unwrap().len(), n_shipped);
    assert!(
        shipped
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "shipped")
    );
    let (_, _, none) = get(&router, "/customers/nobody/orders").await;
    assert_eq!(none, serde_json::json!([]));

    // A broken query answers 500 without leaking SQL.
    match &env.read {
        strangler_store::Store::Postgres(pool) => {
            sqlx::query("DROP TABLE orders_v1")
                .execute(pool)
                .await
                .unwrap();
        }
        strangler_store::Store::Sqlite(pool) => {
            sqlx::query("DROP TABLE orders_v1")
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let (status, _, body) = get(&router, "/orders/o-000007").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, serde_json::json!({"error": "internal error"}));
}

fn chrono_rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test]
async fn read_api_sqlite() {
    read_api(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn read_api_postgres() {
    read_api(StoreKind::Postgres).await;
}

/// Lag shows while events wait, in the header and in the status rows.
#[tokio::test]
async fn lag_is_reported_while_events_wait() {
    let env = Env::new(StoreKind::Sqlite, BusKind::Log).await;
    env.write_projection("orders.toml", &order_summary("orders", 1, "stop"));
    let mut truth = BTreeMap::new();
    env.publish(&order_events(100, 10, 0, &mut truth)).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;
    env.publish(&order_events(50, 10, 100, &mut truth)).await;
    // Record the new ends the way a running projector does, without applying anything.
    for (t, part, end) in env.ends(&p).await {
        strangler_projector::checkpoint::record_end(&env.read, "orders", 1, &t, part, end)
            .await
            .unwrap();
    }
    let rows = strangler_projector::freshness::status(
        &env.read,
        Some("orders"),
        std::time::Duration::from_secs(3600),
    )
    .await
    .unwrap();
    assert_eq!(rows.iter().map(|r| r.lag_events).sum::<i64>(), 50);
    assert!(
        rows.iter().all(|r| r.healthy),
        "lag younger than the stall limit is healthy"
    );
    let stalled = strangler_projector::freshness::status(
        &env.read,
        Some("orders"),
        std::time::Duration::ZERO,
    )
    .await
    .unwrap();
    assert!(
        stalled.iter().any(|r| !r.healthy),
        "lag that does not move past the limit is unhealthy"
    );
    let router = app(ReadApi::new(env.read.clone(), &p.projections));
    let (_, headers, _) = get(&router, "/orders/o-000001").await;
    assert!(
        headers[LAG_HEADER]
            .to_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
}

/// `[serve] routes_dir`: routes in files of their own answer over the named projection's served
/// version, and a file naming an unknown projection, a foreign table or a taken path is refused
/// with file, line and fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_from_a_routes_dir_answer_and_bad_files_are_refused() {
    use strangler_projector::definition::{load_dir, load_routes_dir};

    let env = Env::new(StoreKind::Sqlite, BusKind::Log).await;
    env.write_projection("orders.toml", &order_summary("orders", 1, "stop"));
    let mut truth = BTreeMap::new();
    env.publish(&order_events(200, 20, 0, &mut truth)).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;
    let defs = load_dir(env.dir.path()).unwrap();

    let routes = tempfile::tempdir().unwrap();
    std::fs::write(
        routes.path().join("status.toml"),
        r#"projection = "orders"

[[route]]
path = "/statuses/{status}/count"
sql = "SELECT count(*) AS orders FROM {{orders}} WHERE status = :status"
result = "one"
"#,
    )
    .unwrap();
    let files = load_routes_dir(routes.path(), &defs).unwrap();
    let router = app(ReadApi::with_route_files(
        env.read.clone(),
        &p.projections,
        &files,
    ));
    let shipped = truth.values().filter(|t| t.status == "shipped").count();
    let (status, headers, body) = get(&router, "/statuses/shipped/count").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["orders"], shipped as i64);
    assert_eq!(headers[VERSION_HEADER], "1");
    // The projection file's own routes still answer beside them.
    let (status, _, _) = get(&router, "/orders/o-000003").await;
    assert_eq!(status, StatusCode::OK);

    std::fs::write(
        routes.path().join("zbad.toml"),
        r#"projection = "ordrs"

[[route]]
path = "/orders/{id}"
sql = "SELECT * FROM {{orders}} WHERE order_id = :id"
"#,
    )
    .unwrap();
    let err = load_routes_dir(routes.path(), &defs)
        .unwrap_err()
        .to_string();
    assert!(err.contains("zbad.toml"), "{err}");
    assert!(
        err.contains("no projection named `ordrs`") && err.contains("name one of"),
        "{err}"
    );
    assert!(
        err.contains("route /orders/{id} is also served by"),
        "{err}"
    );
    assert!(err.contains(":1:"), "the problem names its line: {err}");
}
