//! The drift story: a bug drops the tax from totals; the SQL is fixed; a replay from the offset
//! where the bug started makes the read model equal to the legacy truth and to a from-scratch
//! rebuild, row for row.

use std::collections::BTreeMap;

use strangler_projector::replay::From;
use tokio_util::sync::CancellationToken;

use super::support::{
    BusKind, Env, StoreKind, count, drift, order_events, order_summary, replay_rebuild, rows,
    summary,
};

const BUGGY: &str = "total = :subtotal + :tax,\n    updated_at";
const BUG: &str = "total = :subtotal,\n    updated_at";

async fn drift_story(store: StoreKind, bus: BusKind, events: usize) {
    let env = Env::new(store, bus).await;
    let good = order_summary("orders", 1, "stop");
    assert!(
        good.contains(BUGGY),
        "the example's amend handler changed; update this test"
    );
    env.write_projection("orders.toml", &good);
    let orders = (events / 10).max(10);
    let mut truth = BTreeMap::new();

    // The first half runs with correct SQL.
    let first = order_events(events / 2, orders, 0, &mut truth);
    env.publish(&first).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;
    assert!(
        drift(&truth, &summary(&env.read, "orders_v1").await).is_empty(),
        "correct before the bug"
    );

    // A deploy drops the tax from amended totals: the bug starts at these offsets.
    let bug_starts = strangler_projector::checkpoint::list(&env.read, Some("orders"))
        .await
        .unwrap();
    let bug_from = bug_starts.iter().map(|c| c.next_offset).min().unwrap();
    env.write_projection("orders.toml", &good.replace(BUGGY, BUG));
    let second = order_events(events - events / 2, orders, events / 2, &mut truth);
    env.publish(&second).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;
    let drifted = drift(&truth, &summary(&env.read, "orders_v1").await);
    assert!(
        drifted.len() > orders / 4,
        "the bug must show: only {} rows drifted",
        drifted.len()
    );

    // Fix the SQL, replay from where the bug started.
    env.write_projection("orders.toml", &good);
    let p = env.projector().await;
    let one = p.one("orders", None).unwrap();
    let plan = p.plan(&one, From::Offset(bug_from)).await.unwrap();
    assert!(plan.parts.iter().all(|x| x.start == bug_from));
    let stats = p
        .replay(
            &one,
            &plan,
            From::Offset(bug_from),
            false,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        stats.consumed(),
        plan.events(),
        "every planned event is consumed once"
    );
    let replayed = rows(&env.read, "orders_v1").await;
    assert_eq!(
        drift(&truth, &summary(&env.read, "orders_v1").await),
        Vec::<String>::new(),
        "replay fixes the drift"
    );

    // A rebuild from scratch gives the same rows, byte for byte (determinism).
    let (planned, stats) = replay_rebuild(&p, &one, false).await;
    assert_eq!(planned as usize, events);
    assert_eq!(stats.applied as usize, events);
    assert_eq!(
        rows(&env.read, "orders_v1").await,
        replayed,
        "rebuild equals the replayed live run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_story_sqlite_log() {
    drift_story(
        StoreKind::Sqlite,
        BusKind::Log,
        count("STRANGLER_PROJECTOR_EVENTS_SQLITE_LOG", 100_000),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_story_postgres_log() {
    drift_story(
        StoreKind::Postgres,
        BusKind::Log,
        count("STRANGLER_PROJECTOR_EVENTS_PG_LOG", 20_000),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_story_postgres_kafka() {
    drift_story(
        StoreKind::Postgres,
        BusKind::Kafka,
        count("STRANGLER_PROJECTOR_EVENTS_PG_KAFKA", 10_000),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_story_sqlite_kafka() {
    drift_story(
        StoreKind::Sqlite,
        BusKind::Kafka,
        count("STRANGLER_PROJECTOR_EVENTS_SQLITE_KAFKA", 5_000),
    )
    .await;
}

async fn dry_run_changes_nothing(store: StoreKind) {
    let env = Env::new(store, BusKind::Log).await;
    env.write_projection("orders.toml", &order_summary("orders", 1, "stop"));
    let mut truth = BTreeMap::new();
    env.publish(&order_events(2000, 200, 0, &mut truth)).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;
    let before = rows(&env.read, "orders_v1").await;
    let cps = strangler_projector::checkpoint::list(&env.read, None)
        .await
        .unwrap();
    let one = p.one("orders", None).unwrap();
    let (_, stats) = replay_rebuild(&p, &one, true).await;
    assert_eq!(
        stats.applied, 2000,
        "a dry run applies every event inside its transaction"
    );
    assert!(
        stats.rows >= 2000,
        "and counts the rows it touched: {}",
        stats.rows
    );
    assert_eq!(
        rows(&env.read, "orders_v1").await,
        before,
        "but writes nothing"
    );
    let after = strangler_projector::checkpoint::list(&env.read, None)
        .await
        .unwrap();
    assert_eq!(
        cps.iter().map(|c| c.next_offset).collect::<Vec<_>>(),
        after.iter().map(|c| c.next_offset).collect::<Vec<_>>(),
        "checkpoints are untouched"
    );
}

#[tokio::test]
async fn dry_run_rebuild_changes_nothing_sqlite() {
    dry_run_changes_nothing(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn dry_run_rebuild_changes_nothing_postgres() {
    dry_run_changes_nothing(StoreKind::Postgres).await;
}
