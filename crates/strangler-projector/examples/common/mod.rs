//! What the projector benchmarks share (`mod common;` in each): events published to the built-in
//! log, and a rebuild timed through the runtime. Not an example of its own.

use std::sync::Arc;
use std::time::Instant;

use strangler_bus::{Header, LogPublisher, OutgoingRecord, Publisher};
use strangler_projector::replay::From;
use strangler_projector::{Projector, SqlProjection};
use strangler_store::Store;
use tokio_util::sync::CancellationToken;

/// One event: its key, its JSON payload and its time (ms), if it has one.
pub struct Event {
    pub key: String,
    pub payload: serde_json::Value,
    pub at_ms: Option<i64>,
}

/// Publishes events `0..n` of type `OrderPlaced` to `topic` on the built-in log (4 partitions),
/// 20,000 a call, with `id(i)` as the `id` header; prints how long it took.
pub async fn publish(
    store: &Store,
    topic: &str,
    n: usize,
    event: impl Fn(usize) -> Event,
    id: impl Fn(usize) -> String,
) {
    let t = Instant::now();
    let publisher = LogPublisher::new(store.clone(), 4);
    for chunk in (0..n).collect::<Vec<_>>().chunks(20_000) {
        let records = chunk
            .iter()
            .map(|&i| {
                let e = event(i);
                OutgoingRecord {
                    topic: topic.into(),
                    key: Some(e.key.into_bytes()),
                    value: Some(e.payload.to_string().into_bytes()),
                    headers: vec![
                        Header {
                            name: "id".into(),
                            value: id(i).into_bytes(),
                        },
                        Header {
                            name: "type".into(),
                            value: b"OrderPlaced".to_vec(),
                        },
                    ],
                    timestamp_ms: e.at_ms,
                }
            })
            .collect();
        publisher.publish(records).await.expect("publishing");
    }
    eprintln!(
        "published {n} events to the built-in log in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// The `id` header of event `i` in publishing order, as UUIDv7 outbox ids are.
pub fn seq_id(i: usize) -> String {
    uuid::Uuid::from_u128(i as u128 + 1).to_string()
}

/// Rebuilds `projection` (truncate, then replay every event of the log) and checks that all `n`
/// events were handled (applied, or dead-lettered); returns the replay's wall time in seconds.
pub async fn timed_rebuild(p: &Projector, projection: &Arc<SqlProjection>, n: usize) -> f64 {
    let plan = p.plan(projection, From::Rebuild).await.expect("plan");
    assert_eq!(plan.events() as usize, n);
    let t = Instant::now();
    let stats = p
        .replay(
            projection,
            &plan,
            From::Rebuild,
            false,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await
        .expect("replay");
    let seconds = t.elapsed().as_secs_f64();
    // Every event applied, or dead-lettered when the benchmark poisoned it.
    assert_eq!((stats.applied + stats.dead_lettered) as usize, n);
    seconds
}
