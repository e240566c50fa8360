//! `[dedup] mode = "window"`: a redelivered event within the window of its partition is dropped
//! by a live run that restarted in between (its ids are read back from the bus when it claims the
//! partition), by a replay from an offset after the original, and by a rebuild; one further back
//! than the window applies again, the documented bound. Every event is of one order, so all of
//! them sit in one partition at known offsets.

use std::collections::BTreeMap;

use strangler_projector::replay::From;
use tokio_util::sync::CancellationToken;

use super::support::{
    BusKind, Env, StoreKind, drift, order_events, order_summary, replay_rebuild, rows, summary,
};

const WINDOW: usize = 300;

async fn window_dedup(store: StoreKind, bus: BusKind) {
    let env = Env::new(store, bus).await;
    env.write_projection(
        "orders.toml",
        &format!(
            "{}\n[dedup]\nmode = \"window\"\nwindow = {WINDOW}\n",
            order_summary("orders", 1, "stop")
        ),
    );
    let mut truth = BTreeMap::new();
    // Offsets 0..1000 of one partition, published 50 at a time: tansu's memory engine answers a
    // fetch from inside a record batch with the next batch, so the batches the warm-up starts in
    // must begin where it starts (Kafka returns the batch holding the offset; docs/RELIABILITY.md).
    let first = order_events(1000, 1, 0, &mut truth);
    for chunk in first.chunks(50) {
        env.publish(chunk).await;
    }
    let p = env.projector().await;
    env.run_until_caught_up(&p, &["orders"]).await;
    let applied_once = rows(&env.read, "orders_v1").await;

    // Redeliveries at offsets 1000..1010 of events at 900..990: within the window. A new run
    // claims the partition at 1000 and reads 700..1000 back first, so it drops all ten. Applied,
    // any of them would set the row's `version` to its own offset.
    let near: Vec<_> = first[900..].iter().step_by(10).cloned().collect();
    assert_eq!(near.len(), 10);
    env.publish(&near).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &["orders"]).await;
    assert_eq!(
        rows(&env.read, "orders_v1").await,
        applied_once,
        "no redelivery within the window applied"
    );
    assert_eq!(
        drift(&truth, &summary(&env.read, "orders_v1").await),
        Vec::<String>::new()
    );

    // Redeliveries at offsets 1010..1015 of events at 0..5, 1,010 offsets back: beyond the window,
    // so they apply again.
    env.publish(&first[..5]).await;
    env.run_until_caught_up(&p, &["orders"]).await;
    let live = rows(&env.read, "orders_v1").await;
    assert_ne!(live, applied_once, "a redelivery beyond the window applies");

    // A rebuild drops the same ten and applies the same five: the window is a function of the bus.
    let one = p.one("orders", None).unwrap();
    let (planned, stats) = replay_rebuild(&p, &one, false).await;
    assert_eq!(planned, 1015);
    assert_eq!((stats.applied, stats.duplicates), (1005, 10));
    assert_eq!(rows(&env.read, "orders_v1").await, live, "rebuild = live");

    // A replay from offset 1000 reads 700..1000 back before it applies anything, so the
    // redeliveries of events before its start are still dropped.
    let plan = p.plan(&one, From::Offset(1000)).await.unwrap();
    let stats = p
        .replay(
            &one,
            &plan,
            From::Offset(1000),
            false,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!((stats.applied, stats.duplicates), (5, 10));
    assert_eq!(rows(&env.read, "orders_v1").await, live, "replay = live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_dedup_postgres_log() {
    window_dedup(StoreKind::Postgres, BusKind::Log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_dedup_sqlite_log() {
    window_dedup(StoreKind::Sqlite, BusKind::Log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_dedup_postgres_kafka() {
    window_dedup(StoreKind::Postgres, BusKind::Kafka).await;
}
