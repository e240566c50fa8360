//! The Redis sink through the runtime in process: replay from an offset adds nothing twice,
//! rebuild fills a fresh namespace while readers keep the old one and then switch at once,
//! versions promote, and the read API answers routes from Redis with freshness headers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use redis::AsyncCommands;
use strangler_projector::read_api::{ReadApi, VERSION_HEADER, WATERMARK_HEADER, app};
use strangler_projector::replay::From;
use strangler_projector::sink::Build;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::probe::{Probe, RedisProbe, connection, drop_prefix, dump, live_namespace, projector};
use super::support::{BusKind, Env, StoreKind, order_events};

async fn get(
    router: &axum::Router,
    path: &str,
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let resp = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or_default(),
    )
}

/// A Redis projection over `n` order events (plus relay duplicates), run until caught up.
async fn projected(n: usize) -> (Env, RedisProbe, BTreeMap<String, super::support::Truth>) {
    let env = Env::new(StoreKind::Postgres, BusKind::Log).await;
    let probe = RedisProbe::new("orders_cache");
    env.write_projection("orders_cache.toml", &probe.file(1));
    let mut truth = BTreeMap::new();
    let events = order_events(n, 200, 0, &mut truth);
    env.publish(&events).await;
    env.publish(&events[..100]).await;
    let p = projector(&env).await;
    env.run_until_caught_up(&p, &["orders_cache"]).await;
    (env, probe, truth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_an_offset_into_redis_adds_no_duplicates() {
    let (env, probe, truth) = projected(4_000).await;
    let p = projector(&env).await;
    assert_eq!(probe.drift(&env.read, &truth).await, Vec::<String>::new());
    let before = probe.snapshot(&env.read).await;
    let ns = live_namespace(&probe.prefix).await;
    let mut con = connection().await;
    let ids_before: i64 = con.hlen(format!("{ns}__ids")).await.unwrap();
    assert_eq!(
        ids_before, 4_000,
        "each event id applied once, duplicates dropped"
    );

    let one = p.one("orders_cache", None).unwrap();
    let plan = p.plan(&one, From::Offset(300)).await.unwrap();
    assert!(plan.events() > 0);
    let stats = p
        .replay(
            &one,
            &plan,
            From::Offset(300),
            false,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert!(
        stats.applied > 0,
        "the replay applied events again: {stats:?}"
    );
    assert_eq!(
        probe.snapshot(&env.read).await,
        before,
        "same keys, same values, no extra members"
    );
    let ids_after: i64 = con.hlen(format!("{ns}__ids")).await.unwrap();
    assert_eq!(ids_after, ids_before, "no event recorded twice");
    let positions = p
        .sinks
        .get("orders_cache", 1)
        .unwrap()
        .positions(1, &Build::Live)
        .await
        .unwrap();
    let ends = env.ends(&p).await;
    for (topic, partition, end) in ends {
        let at = positions
            .iter()
            .find(|s| s.topic == topic && s.partition == partition)
            .map_or(0, |s| s.next_offset);
        // Trailing relay duplicates never reach the sink, so its position may stop short of
        // the end, never past it.
        assert!(
            at > 0 && at <= end,
            "the sink's own position {at} on {topic}/{partition} is within the bus (end {end})"
        );
    }

    // A dry run writes nothing to Redis either.
    let (_, dry) = super::support::replay_rebuild(&p, &one, true).await;
    assert!(dry.applied > 0);
    assert_eq!(
        live_namespace(&probe.prefix).await,
        ns,
        "a dry rebuild switches nothing"
    );
    assert_eq!(probe.snapshot(&env.read).await, before);
    drop_prefix(&probe.prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_fills_a_fresh_namespace_and_readers_switch_at_once() {
    let (env, probe, truth) = projected(6_000).await;
    let p = projector(&env).await;
    let before = probe.snapshot(&env.read).await;
    let old_ns = live_namespace(&probe.prefix).await;
    let router = app(ReadApi::new(env.read.clone(), &p.projections).with_sinks(p.sinks.clone()));
    let full = get(&router, "/cache/orders/o-000007").await.2;

    // A reader polls one order all through the rebuild: it never sees it absent or partial.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let router = router.clone();
        let stop = stop.clone();
        let full = full.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let (status, _, body) = get(&router, "/cache/orders/o-000007").await;
                assert_eq!(status, StatusCode::OK, "absent during the rebuild");
                assert_eq!(body, full, "a half-built value was served");
                reads += 1;
            }
            reads
        })
    };
    super::support::rebuild(&p, "orders_cache").await;
    stop.store(true, Ordering::Relaxed);
    let reads = reader.await.unwrap();
    assert!(reads > 0);

    let new_ns = live_namespace(&probe.prefix).await;
    assert_ne!(new_ns, old_ns, "the rebuild went to a fresh namespace");
    assert_eq!(
        probe.snapshot(&env.read).await,
        before,
        "the rebuild equals the live run"
    );
    assert!(
        dump(&old_ns).await.is_empty(),
        "the old namespace is dropped"
    );
    assert_eq!(probe.drift(&env.read, &truth).await, Vec::<String>::new());
    drop_prefix(&probe.prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_api_serves_redis_routes_and_follows_promotion() {
    let (env, probe, truth) = projected(2_000).await;
    // Version 2 builds beside version 1 under the same prefix.
    env.write_projection("orders_cache_v2.toml", &probe.file(2));
    let p = projector(&env).await;
    let router = app(ReadApi::new(env.read.clone(), &p.projections).with_sinks(p.sinks.clone()));

    let (status, headers, body) = get(&router, "/cache/orders/o-000003").await;
    assert_eq!(status, StatusCode::OK);
    let t = &truth["o-000003"];
    assert_eq!(body["status"], t.status.as_str());
    assert_eq!(body["subtotal"], t.subtotal.to_string());
    assert_eq!(body["tax"], t.tax.to_string());
    assert_eq!(headers[VERSION_HEADER], "1");
    assert!(
        headers.contains_key(WATERMARK_HEADER),
        "freshness headers on Redis routes"
    );

    let (status, headers, _) = get(&router, "/cache/orders/o-999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers.contains_key(WATERMARK_HEADER),
        "a 404 carries the watermark too"
    );

    let (status, _, list) = get(&router, "/cache/customers/c-5/orders").await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (0..200)
        .filter(|o| o % 97 == 5)
        .map(|o| format!("o-{o:06}"))
        .collect();
    assert_eq!(listed, want);

    // Promotion is refused while v2 is behind, then switches readers at once.
    assert!(p.promote("orders_cache", 2, false).await.is_err());
    env.run_until_caught_up(&p, &["orders_cache"]).await;
    p.promote("orders_cache", 2, false).await.unwrap();
    let (status, headers, body2) = get(&router, "/cache/orders/o-000003").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[VERSION_HEADER], "2");
    assert_eq!(
        body2, body,
        "v2, built from the same events, answers the same"
    );
    // The served version cannot be retired; the old one can, and its keys go.
    let v2 = p.one("orders_cache", Some(2)).unwrap();
    assert!(p.retire(&v2).await.is_err());
    let v1 = p.one("orders_cache", Some(1)).unwrap();
    p.retire(&v1).await.unwrap();
    assert!(dump(&format!("{}:v1.", probe.prefix)).await.is_empty());
    assert_eq!(
        get(&router, "/cache/orders/o-000003").await.0,
        StatusCode::OK
    );
    drop_prefix(&probe.prefix).await;
}
