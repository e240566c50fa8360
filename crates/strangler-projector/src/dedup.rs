//! Deduplication by event id, in the batch's transaction: the relay delivers at least once, so
//! the same event may arrive twice (even at two offsets); it is applied once.

use std::collections::HashSet;

use crate::event::Event;
use crate::store::{ReadTx, now_ms, on_pool, on_tx};
use strangler_store::Store;

/// Records the batch's event ids and returns, per event, whether it is new (the first time this
/// id is seen, in the table and within the batch). Events without an id are always new.
pub async fn admit(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    events: &[Event],
) -> Result<Vec<bool>, sqlx::Error> {
    let now = now_ms();
    let version = i64::from(version);
    let mut fresh: HashSet<String> = HashSet::new();
    match tx {
        ReadTx::Pg(t) => {
            let mut ids = Vec::new();
            let mut topics = Vec::new();
            let mut parts = Vec::new();
            let mut offsets = Vec::new();
            for e in events {
                if let Some(id) = &e.id {
                    ids.push(id.clone());
                    topics.push(e.record.topic.clone());
                    parts.push(e.record.partition);
                    offsets.push(e.record.offset);
                }
            }
            if !ids.is_empty() {
                let rows: Vec<String> = sqlx::query_scalar(
                    "INSERT INTO strangler_projection_dedup \
                     (projection, version, event_id, topic, partition, \"offset\", applied_at_ms) \
                     SELECT $1, $2, e.id, e.t, e.p, e.o, $3 \
                     FROM UNNEST($4::text[], $5::text[], $6::int4[], $7::int8[]) AS e(id, t, p, o) \
                     ON CONFLICT DO NOTHING RETURNING event_id",
                )
                .bind(projection)
                .bind(version)
                .bind(now)
                .bind(&ids)
                .bind(&topics)
                .bind(&parts)
                .bind(&offsets)
                .fetch_all(&mut **t)
                .await?;
                fresh.extend(rows);
            }
        }
        ReadTx::Sqlite(t) => {
            for e in events {
                let Some(id) = &e.id else { continue };
                let n = sqlx::query(
                    "INSERT INTO strangler_projection_dedup \
                     (projection, version, event_id, topic, partition, \"offset\", applied_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(projection)
                .bind(version)
                .bind(id)
                .bind(&e.record.topic)
                .bind(e.record.partition)
                .bind(e.record.offset)
                .bind(now)
                .execute(&mut **t)
                .await?
                .rows_affected();
                if n == 1 {
                    fresh.insert(id.clone());
                }
            }
        }
    }
    // `fresh` holds ids inserted now; only their first occurrence in the batch applies.
    Ok(events
        .iter()
        .map(|e| match &e.id {
            None => true,
            Some(id) => fresh.remove(id),
        })
        .collect())
}

/// Forgets ids recorded at or after `offset` in a partition, so a replay applies them again.
pub async fn forget_from(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<u64, sqlx::Error> {
    Ok(on_tx!(tx, c => sqlx::query(
        "DELETE FROM strangler_projection_dedup WHERE projection = $1 AND version = $2 \
         AND topic = $3 AND partition = $4 AND \"offset\" >= $5")
        .bind(projection)
        .bind(i64::from(version))
        .bind(topic)
        .bind(partition)
        .bind(offset)
        .execute(c)
        .await?
        .rows_affected()))
}

/// Drops ids older than the retention, outside batch transactions.
pub async fn prune(
    store: &Store,
    projection: &str,
    version: u32,
    older_than_ms: i64,
) -> Result<u64, sqlx::Error> {
    Ok(on_pool!(store, p => sqlx::query(
        "DELETE FROM strangler_projection_dedup WHERE projection = $1 AND version = $2 \
         AND applied_at_ms < $3")
        .bind(projection)
        .bind(i64::from(version))
        .bind(older_than_ms)
        .execute(p)
        .await?
        .rows_affected()))
}
