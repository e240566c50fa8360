//! Version 2 builds beside version 1 while events keep arriving and readers keep reading; promote
//! switches readers atomically; retire drops version 1.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use strangler_projector::read_api::{ReadApi, VERSION_HEADER, app};
use strangler_projector::version;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::support::{
    BusKind, Env, StoreKind, order_events, order_summary, summary, wait_caught_up,
};

async fn versioned_rebuild(store: StoreKind) {
    let env = Env::new(store, BusKind::Log).await;
    env.write_projection("orders.toml", &order_summary("orders", 1, "stop"));
    let mut truth = BTreeMap::new();
    env.publish(&order_events(3000, 300, 0, &mut truth)).await;
    let p1 = env.projector().await;
    env.run_until_caught_up(&p1, &[]).await;

    // v2 adds a column: its own table, beside v1.
    let v2 = order_summary("orders", 2, "stop")
        .replace(
            "    version     BIGINT NOT NULL\n",
            "    version     BIGINT NOT NULL,\n    grand_total BIGINT\n",
        )
        .replace(
            "SELECT order_id, customer_id, status,",
            "SELECT order_id, customer_id, status, 2 AS v,",
        );
    env.write_projection("orders_v2.toml", &v2);
    let p = env.projector().await;
    let cancel = CancellationToken::new();
    let run = {
        let p = p.clone();
        let c = cancel.clone();
        tokio::spawn(async move { p.run(&[], c).await })
    };

    // Readers hammer one order throughout; every answer must be complete.
    let router = app(ReadApi::new(env.read.clone(), &p.projections));
    let stop = Arc::new(AtomicBool::new(false));
    let seen_v2 = Arc::new(AtomicU64::new(0));
    let reader = {
        let (router, stop, seen_v2) = (router.clone(), stop.clone(), seen_v2.clone());
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let resp = router
                    .clone()
                    .oneshot(
                        Request::get("/orders/o-000001")
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    resp.status(),
                    200,
                    "a reader saw a missing row (half-built table)"
                );
                let v = resp.headers()[VERSION_HEADER].to_str().unwrap().to_string();
                let body: serde_json::Value =
                    serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes())
                        .unwrap();
                if v == "2" {
                    assert_eq!(body["v"], 2);
                    seen_v2.fetch_add(1, Ordering::Relaxed);
                } else {
                    assert!(body.get("v").is_none());
                }
                reads += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            reads
        })
    };
    // Events keep arriving while v2 builds.
    for round in 0..5 {
        env.publish(&order_events(400, 300, 3000 + round * 400, &mut truth))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Promoting a version that is behind is refused (unless forced), unless it has caught up by now.
    let early = version::promote(&env.read, "orders", 2, &[1, 2], false).await;
    if let Err(e) = &early {
        assert!(
            e.to_string().contains("behind") || e.to_string().contains("not consumed"),
            "{e}"
        );
    }
    let ends = env.ends(&p).await;
    let which = vec![("orders".to_string(), 1), ("orders".to_string(), 2)];
    wait_caught_up(&env.read, &which, &ends, Duration::from_secs(120), || {
        run.is_finished()
    })
    .await;
    version::promote(&env.read, "orders", 2, &[1, 2], false)
        .await
        .expect("promote after catching up");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let reads = reader.await.expect("every read was complete");
    assert!(
        reads > 10 && seen_v2.load(Ordering::Relaxed) > 0,
        "reads {reads}, on v2 {}",
        seen_v2.load(Ordering::Relaxed)
    );
    cancel.cancel();
    run.await.unwrap().unwrap();

    assert_eq!(
        summary(&env.read, "orders_v1").await,
        summary(&env.read, "orders_v2").await,
        "v2 equals v1"
    );
    assert_eq!(
        version::serving(&env.read, "orders").await.unwrap(),
        Some(2)
    );
    // Retire v1: refused while served (it is not), then its tables go.
    let v1 = p.one("orders", Some(1)).unwrap();
    version::retire(&env.read, v1.as_ref()).await.unwrap();
    let v2p = p.one("orders", Some(2)).unwrap();
    assert!(
        version::retire(&env.read, v2p.as_ref()).await.is_err(),
        "the served version cannot be retired"
    );
    let gone = match &env.read {
        strangler_store::Store::Postgres(pool) => sqlx::query("SELECT 1 FROM orders_v1")
            .execute(pool)
            .await
            .is_err(),
        strangler_store::Store::Sqlite(pool) => sqlx::query("SELECT 1 FROM orders_v1")
            .execute(pool)
            .await
            .is_err(),
    };
    assert!(gone, "orders_v1 is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_2_builds_beside_version_1_then_promotes_sqlite() {
    versioned_rebuild(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_2_builds_beside_version_1_then_promotes_postgres() {
    versioned_rebuild(StoreKind::Postgres).await;
}
