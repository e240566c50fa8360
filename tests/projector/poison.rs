//! Poison events: parked (later events of the key wait) or skipped per policy while other keys
//! flow; re-driving after a fix applies each once. Also `stop`, and fencing of a stale consumer.

use std::collections::BTreeMap;
use std::sync::Arc;

use strangler_projector::Projection;
use strangler_projector::dead_letter;

use super::support::{
    BusKind, Env, OrderEvent, StoreKind, T0, drift, order_events, order_summary, summary,
};

/// `subtotal: null` violates NOT NULL; the fix treats a missing subtotal as 0.
const STRICT: &str =
    "VALUES (:order_id, :customer_id, 'placed', :subtotal, :tax, :subtotal + :tax,";
const FIXED: &str = "VALUES (:order_id, :customer_id, 'placed', COALESCE(:subtotal, 0), :tax, COALESCE(:subtotal, 0) + :tax,";

fn poison_stream(truth: &mut BTreeMap<String, super::support::Truth>) -> Vec<OrderEvent> {
    let mut events = order_events(400, 40, 0, truth);
    // A second placement of a fresh order with a null subtotal, then two amendments of it.
    let poison_key = "o-poison".to_string();
    let mk = |i: u128, ty: &'static str, payload: serde_json::Value| OrderEvent {
        id: uuid::Uuid::from_u128(0xbad0_0000_0000_0000_0000_0000_0000_0000 | i).to_string(),
        order_id: poison_key.clone(),
        event_type: ty,
        payload,
        time_ms: T0 + 10_000 + i as i64,
    };
    events.push(mk(
        1,
        "OrderPlaced",
        serde_json::json!({"customer_id": "c-1", "subtotal": null, "tax": 5, "items": []}),
    ));
    events.push(mk(
        2,
        "OrderAmended",
        serde_json::json!({"subtotal": 70, "tax": 7}),
    ));
    events.push(mk(3, "OrderShipped", serde_json::json!({})));
    let more = order_events(400, 40, 400, truth);
    events.extend(more);
    truth.insert(
        poison_key,
        super::support::Truth {
            status: "shipped".into(),
            subtotal: 70,
            tax: 7,
        },
    );
    events
}

async fn poison(store: StoreKind, policy: &str) {
    let env = Env::new(store, BusKind::Log).await;
    let strict = order_summary("orders", 1, policy);
    assert!(strict.contains(STRICT));
    env.write_projection("orders.toml", &strict);
    let mut truth = BTreeMap::new();
    let events = poison_stream(&mut truth);
    env.publish(&events).await;
    let p = env.projector().await;
    env.run_until_caught_up(&p, &[]).await;

    // Every other key flowed.
    let got = summary(&env.read, "orders_v1").await;
    let others: Vec<String> = drift(&truth, &got)
        .into_iter()
        .filter(|d| !d.starts_with("o-poison") && !d.starts_with("row count"))
        .collect();
    assert!(others.is_empty(), "other keys must flow: {others:?}");
    let letters = dead_letter::list(&env.read, "orders", false).await.unwrap();
    match policy {
        "park-key" => {
            assert_eq!(letters.len(), 3, "{letters:?}");
            assert!(
                letters
                    .iter()
                    .all(|d| d.status == "parked" && d.key.as_deref() == Some("o-poison"))
            );
            assert_eq!(letters[0].reason, "constraint_violation");
            assert_eq!(letters[1].reason, "key_parked");
            assert!(!got.contains_key("o-poison"));
        }
        "skip" => {
            assert_eq!(letters.len(), 1, "{letters:?}");
            assert_eq!(
                (letters[0].status.as_str(), letters[0].reason.as_str()),
                ("skipped", "constraint_violation")
            );
            // Later events of the key went on (they matched no row).
            assert!(!got.contains_key("o-poison"));
        }
        _ => unreachable!(),
    }

    // Fix the SQL and re-drive: each dead letter applies exactly once, in order.
    env.write_projection("orders.toml", &strict.replace(STRICT, FIXED));
    let p = env.projector().await;
    let one = p.one("orders", None).unwrap();
    let r = dead_letter::redrive(&env.read, one.as_ref() as &dyn Projection, None)
        .await
        .unwrap();
    assert_eq!((r.applied, r.failed), (letters.len() as u64, 0));
    let again = dead_letter::redrive(&env.read, one.as_ref() as &dyn Projection, None)
        .await
        .unwrap();
    assert_eq!(again.applied, 0, "re-driven letters never apply twice");
    let got = summary(&env.read, "orders_v1").await;
    match policy {
        "park-key" => assert_eq!(drift(&truth, &got), Vec::<String>::new()),
        _ => assert_eq!(
            got["o-poison"],
            ("placed".to_string(), 0, 5, 5),
            "skip lost the later events by design"
        ),
    }
    assert!(
        dead_letter::list(&env.read, "orders", false)
            .await
            .unwrap()
            .is_empty()
    );

    // The key is unparked: new events for it apply.
    let mut t2 = truth.clone();
    let later = vec![OrderEvent {
        id: uuid::Uuid::from_u128(0xbad1).to_string(),
        order_id: "o-poison".into(),
        event_type: "OrderAmended",
        payload: serde_json::json!({"subtotal": 90, "tax": 9}),
        time_ms: T0 + 99_999,
    }];
    t2.get_mut("o-poison").unwrap().subtotal = 90;
    t2.get_mut("o-poison").unwrap().tax = 9;
    env.publish(&later).await;
    env.run_until_caught_up(&p, &[]).await;
    assert_eq!(summary(&env.read, "orders_v1").await["o-poison"].3, 99);
}

#[tokio::test]
async fn poison_event_parks_its_key_sqlite() {
    poison(StoreKind::Sqlite, "park-key").await;
}

#[tokio::test]
async fn poison_event_parks_its_key_postgres() {
    poison(StoreKind::Postgres, "park-key").await;
}

#[tokio::test]
async fn poison_event_is_skipped_postgres() {
    poison(StoreKind::Postgres, "skip").await;
}

#[tokio::test]
async fn poison_event_is_skipped_sqlite() {
    poison(StoreKind::Sqlite, "skip").await;
}

async fn stop_policy(store: StoreKind) {
    let env = Env::new(store, BusKind::Log).await;
    env.write_projection(
        "orders.toml",
        &order_summary("orders", 1, "retry-then-stop"),
    );
    let mut truth = BTreeMap::new();
    let events = poison_stream(&mut truth);
    env.publish(&events).await;
    let p = env.projector().await;
    let err = p
        .run(&[], tokio_util::sync::CancellationToken::new())
        .await
        .expect_err("the projection stops");
    let msg = err.to_string();
    assert!(
        msg.contains("stopped at") && msg.contains("constraint_violation"),
        "{msg}"
    );
    // Everything before the poison in its partition is applied; the checkpoint points at it.
    let poison_part = strangler_bus::log_partition_for(Some(b"o-poison"), 4);
    let cps = strangler_projector::checkpoint::list(&env.read, None)
        .await
        .unwrap();
    let cp = cps.iter().find(|c| c.partition == poison_part).unwrap();
    let at = cp.next_offset;
    let control = match &env.source {
        strangler_projector::Source::Log { store } => store.clone(),
        _ => unreachable!(),
    };
    let key: Vec<u8> = match &control {
        strangler_store::Store::Postgres(pool) => sqlx::query_scalar(
            "SELECT key FROM strangler_log WHERE topic = $1 AND partition = $2 AND \"offset\" = $3",
        )
        .bind(&env.topic)
        .bind(poison_part)
        .bind(at)
        .fetch_one(pool)
        .await
        .unwrap(),
        strangler_store::Store::Sqlite(pool) => sqlx::query_scalar(
            "SELECT key FROM strangler_log WHERE topic = $1 AND partition = $2 AND \"offset\" = $3",
        )
        .bind(&env.topic)
        .bind(poison_part)
        .bind(at)
        .fetch_one(pool)
        .await
        .unwrap(),
    };
    assert_eq!(
        key, b"o-poison",
        "the checkpoint stops exactly at the poison event"
    );
    assert!(
        dead_letter::list(&env.read, "orders", true)
            .await
            .unwrap()
            .is_empty(),
        "stop writes no dead letter"
    );
}

#[tokio::test]
async fn stop_policy_halts_at_the_poison_event_sqlite() {
    stop_policy(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn stop_policy_halts_at_the_poison_event_postgres() {
    stop_policy(StoreKind::Postgres).await;
}

/// A second consumer claims the partitions; the first one's next commit is refused.
#[tokio::test]
async fn a_stale_consumer_cannot_commit() {
    let env = Env::new(StoreKind::Sqlite, BusKind::Log).await;
    env.write_projection("orders.toml", &order_summary("orders", 1, "stop"));
    let mut truth = BTreeMap::new();
    env.publish(&order_events(100, 10, 0, &mut truth)).await;
    let p = env.projector().await;
    let one: Arc<dyn Projection> = p.one("orders", None).unwrap();
    let claims_a = Arc::new(strangler_projector::checkpoint::Claims::default());
    let starts_a = Arc::new(strangler_projector::checkpoint::CheckpointStarts {
        store: env.read.clone(),
        projection: "orders".into(),
        version: 1,
        owner: "a".into(),
        claims: claims_a.clone(),
        lead: 0,
    });
    let mut consumer_a = env.source.subscribe(one.as_ref(), starts_a).unwrap();
    // A polls (and so claims) first.
    let first = consumer_a
        .poll(50, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    assert!(!first.is_empty());
    // B claims every partition after A.
    for part in 0..4 {
        strangler_projector::checkpoint::claim(&env.read, "orders", 1, &env.topic, part, "b")
            .await
            .unwrap();
    }
    let events: Vec<_> = first
        .into_iter()
        .map(strangler_projector::event::decode)
        .collect();
    let mut tx = strangler_projector::store::ReadTx::begin(&env.read)
        .await
        .unwrap();
    let r = strangler_projector::apply::apply_batch(
        &mut tx,
        one.as_ref(),
        &claims_a,
        &events,
        &mut Default::default(),
        false,
        None,
    )
    .await;
    assert!(
        matches!(r, Err(strangler_projector::Error::Fenced { .. })),
        "the stale consumer is fenced"
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        super::support::scalar_i64(&env.read, "SELECT COUNT(*) FROM orders_v1").await,
        0,
        "nothing it applied is visible"
    );
}
