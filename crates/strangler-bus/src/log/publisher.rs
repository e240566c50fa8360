//! Appending to the built-in log: one transaction per batch, dense offsets per partition.
//!
//! Offsets come from `strangler_log_head`, whose rows are locked for the transaction on
//! PostgreSQL (`SELECT ... FOR UPDATE`, in a fixed order so two writers cannot deadlock) and
//! written under SQLite's single writer lock taken up front (`BEGIN IMMEDIATE`), so two
//! publishers never hand out one offset twice and readers never see a hole.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::Row;
use strangler_core::event::Position;
use strangler_store::Store;

use crate::{OutgoingRecord, Publisher, Result, log_partition_for};

/// Publishes to the built-in log in strangler's store.
#[derive(Debug, Clone)]
pub struct LogPublisher {
    store: Store,
    partitions: u32,
}

impl LogPublisher {
    /// A publisher over `store` (migrated) with `partitions` partitions per topic
    /// (`bus.log_partitions`).
    pub fn new(store: Store, partitions: u32) -> LogPublisher {
        LogPublisher {
            store,
            partitions: partitions.max(1),
        }
    }

    /// The partition a record goes to.
    pub fn partition_for(&self, rec: &OutgoingRecord) -> i32 {
        log_partition_for(rec.key.as_deref(), self.partitions)
    }
}

/// Records of one batch grouped by (topic, partition), each with its index in the batch.
type Groups<'a> = BTreeMap<(&'a str, i32), Vec<(usize, &'a OutgoingRecord)>>;

fn headers_json(rec: &OutgoingRecord) -> String {
    let pairs: Vec<(&str, String)> = rec
        .headers
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                String::from_utf8_lossy(&h.value).into_owned(),
            )
        })
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[async_trait]
impl Publisher for LogPublisher {
    async fn publish(&self, batch: Vec<OutgoingRecord>) -> Result<Vec<Position>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut groups: Groups<'_> = BTreeMap::new();
        for (i, rec) in batch.iter().enumerate() {
            groups
                .entry((rec.topic.as_str(), self.partition_for(rec)))
                .or_default()
                .push((i, rec));
        }
        let mut positions = vec![
            Position {
                partition: 0,
                offset: 0
            };
            batch.len()
        ];
        match &self.store {
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                for ((topic, partition), recs) in &groups {
                    sqlx::query(
                        "INSERT INTO strangler_log_head (topic, partition) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(topic)
                    .bind(partition)
                    .execute(&mut *tx)
                    .await?;
                    let next: i64 = sqlx::query(
                        "SELECT next_offset FROM strangler_log_head \
                         WHERE topic = $1 AND partition = $2 FOR UPDATE",
                    )
                    .bind(topic)
                    .bind(partition)
                    .fetch_one(&mut *tx)
                    .await?
                    .get(0);
                    let mut offsets = Vec::with_capacity(recs.len());
                    let mut keys = Vec::with_capacity(recs.len());
                    let mut values = Vec::with_capacity(recs.len());
                    let mut headers = Vec::with_capacity(recs.len());
                    let mut stamps = Vec::with_capacity(recs.len());
                    for (n, (i, rec)) in recs.iter().enumerate() {
                        let offset = next + n as i64;
                        positions[*i] = Position {
                            partition: *partition,
                            offset,
                        };
                        offsets.push(offset);
                        keys.push(rec.key.clone());
                        values.push(rec.value.clone());
                        headers.push(headers_json(rec));
                        stamps.push(rec.timestamp_ms.unwrap_or_else(now_ms));
                    }
                    sqlx::query(include_str!("sql/pg_append.sql"))
                        .bind(topic)
                        .bind(partition)
                        .bind(&offsets)
                        .bind(&keys)
                        .bind(&values)
                        .bind(&headers)
                        .bind(&stamps)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE strangler_log_head SET next_offset = $3 \
                         WHERE topic = $1 AND partition = $2",
                    )
                    .bind(topic)
                    .bind(partition)
                    .bind(next + recs.len() as i64)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
            Store::Sqlite(pool) => {
                use sqlx::Connection;
                let mut conn = pool.acquire().await?;
                // IMMEDIATE takes the write lock now: the head rows cannot change under us.
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                for ((topic, partition), recs) in &groups {
                    let next: i64 = sqlx::query(
                        "SELECT next_offset FROM strangler_log_head WHERE topic = ? AND partition = ?",
                    )
                    .bind(topic)
                    .bind(partition)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.get(0))
                    .unwrap_or(0);
                    for (n, (i, rec)) in recs.iter().enumerate() {
                        let offset = next + n as i64;
                        positions[*i] = Position {
                            partition: *partition,
                            offset,
                        };
                        sqlx::query(
                            "INSERT INTO strangler_log (topic, partition, \"offset\", key, value, headers, timestamp_ms) \
                             VALUES (?, ?, ?, ?, ?, ?, ?)",
                        )
                        .bind(topic)
                        .bind(partition)
                        .bind(offset)
                        .bind(rec.key.as_deref())
                        .bind(rec.value.as_deref())
                        .bind(headers_json(rec))
                        .bind(rec.timestamp_ms.unwrap_or_else(now_ms))
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query(
                        "INSERT INTO strangler_log_head (topic, partition, next_offset) VALUES (?, ?, ?) \
                         ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                    )
                    .bind(topic)
                    .bind(partition)
                    .bind(next + recs.len() as i64)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(positions)
    }
}
