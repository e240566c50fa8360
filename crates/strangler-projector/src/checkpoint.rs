//! Checkpoints: the next offset per projection version and partition, kept in the read store and
//! written in the same transaction as the rows, with a fencing generation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sqlx::Row;
use strangler_bus::StartOffsets;
use strangler_store::Store;

use crate::store::{ReadTx, now_ms, on_pool, on_tx};

/// Generations this process holds, per (topic, partition), for one projection version, and where
/// each claim starts applying.
#[derive(Debug, Default)]
pub struct Claims {
    map: Mutex<HashMap<(String, i32), Claim>>,
}

/// One claimed partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claim {
    /// The fencing generation.
    pub generation: i64,
    /// The first offset the claim applies (its checkpoint when claimed, or a replay's start);
    /// `None` when not recorded.
    pub start: Option<i64>,
}

impl Claims {
    /// The generation held for a partition, if claimed.
    pub fn generation(&self, topic: &str, partition: i32) -> Option<i64> {
        self.claim(topic, partition).map(|c| c.generation)
    }

    /// The claim held on a partition, if any.
    pub fn claim(&self, topic: &str, partition: i32) -> Option<Claim> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(topic.to_string(), partition)).copied()
    }

    /// Records a claim on a partition, replacing any earlier one.
    pub(crate) fn set(&self, topic: &str, partition: i32, claim: Claim) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.insert((topic.to_string(), partition), claim);
    }
}

/// Claims a partition: bumps its generation (fencing any previous owner) and returns
/// `(next_offset, generation)`.
pub async fn claim(
    store: &Store,
    projection: &str,
    version: u32,
    topic: &str,
    partition: i32,
    owner: &str,
) -> Result<(i64, i64), sqlx::Error> {
    const SQL: &str = "INSERT INTO strangler_projection_checkpoint \
        (projection, version, topic, partition, next_offset, generation, owner) \
        VALUES ($1, $2, $3, $4, 0, 1, $5) \
        ON CONFLICT (projection, version, topic, partition) DO UPDATE \
        SET generation = strangler_projection_checkpoint.generation + 1, owner = excluded.owner \
        RETURNING next_offset, generation";
    on_pool!(store, p => {
        let row = sqlx::query(SQL)
            .bind(projection)
            .bind(i64::from(version))
            .bind(topic)
            .bind(partition)
            .bind(owner)
            .fetch_one(p)
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    })
}

/// Claims a partition inside `tx` and returns its new generation (replays claim in the
/// transaction that resets the checkpoint).
pub async fn claim_in(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    topic: &str,
    partition: i32,
    owner: &str,
) -> Result<i64, sqlx::Error> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "UPDATE strangler_projection_checkpoint SET generation = generation + 1, owner = $1 \
         WHERE projection = $2 AND version = $3 AND topic = $4 AND partition = $5 RETURNING generation")
        .bind(owner)
        .bind(projection)
        .bind(i64::from(version))
        .bind(topic)
        .bind(partition)
        .fetch_one(c)
        .await?))
}

/// Progress of one partition within a batch.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset after the last event of the batch in this partition.
    pub next_offset: i64,
    /// Event time of that last event.
    pub last_event_time_ms: Option<i64>,
    /// Events of this partition in the batch.
    pub events: i64,
}

/// Advances a checkpoint inside the batch's transaction, only while `generation` is still the
/// current one. Returns `false` when another consumer claimed the partition since.
pub async fn advance(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    generation: i64,
    p: &Progress,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE strangler_projection_checkpoint \
        SET next_offset = $1, last_event_time_ms = COALESCE($2, last_event_time_ms), \
            applied_at_ms = $3, events_applied = events_applied + $4 \
        WHERE projection = $5 AND version = $6 AND topic = $7 AND partition = $8 AND generation = $9";
    let n = on_tx!(tx, c => sqlx::query(SQL)
        .bind(p.next_offset)
        .bind(p.last_event_time_ms)
        .bind(now_ms())
        .bind(p.events)
        .bind(projection)
        .bind(i64::from(version))
        .bind(&p.topic)
        .bind(p.partition)
        .bind(generation)
        .execute(c)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// Advances the checkpoints of a batch's partitions, each only while its generation is still the
/// current one; returns the first partition another consumer claimed since, if any. PostgreSQL
/// updates them all in one statement (one round trip per batch, not one per partition).
pub async fn advance_all(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    progress: &[(i64, &Progress)],
) -> Result<Option<(String, i32)>, sqlx::Error> {
    let ReadTx::Pg(t) = tx else {
        for (generation, p) in progress {
            if !advance(tx, projection, version, *generation, p).await? {
                return Ok(Some((p.topic.clone(), p.partition)));
            }
        }
        return Ok(None);
    };
    const SQL: &str = "UPDATE strangler_projection_checkpoint c \
        SET next_offset = u.next_offset, \
            last_event_time_ms = COALESCE(u.last_ms, c.last_event_time_ms), \
            applied_at_ms = $3, events_applied = c.events_applied + u.events \
        FROM UNNEST($4::text[], $5::int4[], $6::int8[], $7::int8[], $8::int8[], $9::int8[]) \
            AS u(topic, partition, next_offset, last_ms, events, generation) \
        WHERE c.projection = $1 AND c.version = $2 AND c.topic = u.topic \
            AND c.partition = u.partition AND c.generation = u.generation \
        RETURNING c.topic, c.partition";
    let topics: Vec<&str> = progress.iter().map(|(_, p)| p.topic.as_str()).collect();
    let partitions: Vec<i32> = progress.iter().map(|(_, p)| p.partition).collect();
    let next: Vec<i64> = progress.iter().map(|(_, p)| p.next_offset).collect();
    let last: Vec<Option<i64>> = progress.iter().map(|(_, p)| p.last_event_time_ms).collect();
    let events: Vec<i64> = progress.iter().map(|(_, p)| p.events).collect();
    let generations: Vec<i64> = progress.iter().map(|(g, _)| *g).collect();
    let advanced: Vec<(String, i32)> = sqlx::query_as(SQL)
        .bind(projection)
        .bind(i64::from(version))
        .bind(now_ms())
        .bind(&topics)
        .bind(&partitions)
        .bind(&next)
        .bind(&last)
        .bind(&events)
        .bind(&generations)
        .fetch_all(&mut **t)
        .await?;
    Ok(progress
        .iter()
        .map(|(_, p)| (p.topic.clone(), p.partition))
        .find(|k| !advanced.contains(k)))
}

/// Locks the checkpoint rows of `parts` for the rest of `tx`, in (topic, partition) order, so
/// every writer of a version's rows takes its locks in one order (no deadlock between a batch and
/// a per-key replay). SQLite needs nothing: `BEGIN IMMEDIATE` already holds the writer lock.
pub async fn lock(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    parts: &[(String, i32)],
) -> Result<(), sqlx::Error> {
    let ReadTx::Pg(t) = tx else { return Ok(()) };
    let (topics, partitions): (Vec<String>, Vec<i32>) = parts.iter().cloned().unzip();
    sqlx::query(
        "SELECT c.partition FROM strangler_projection_checkpoint c \
         JOIN UNNEST($3::text[], $4::int4[]) AS u(t, p) ON c.topic = u.t AND c.partition = u.p \
         WHERE c.projection = $1 AND c.version = $2 ORDER BY c.topic, c.partition FOR UPDATE OF c",
    )
    .bind(projection)
    .bind(i64::from(version))
    .bind(topics)
    .bind(partitions)
    .fetch_all(&mut **t)
    .await?;
    Ok(())
}

/// Locks every checkpoint row of a version (same order as [`lock`]) and returns each
/// partition's next offset.
pub async fn lock_all(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
) -> Result<HashMap<(String, i32), i64>, sqlx::Error> {
    let lock = match tx {
        ReadTx::Pg(_) => " FOR UPDATE",
        ReadTx::Sqlite(_) => "",
    };
    let sql = format!(
        "SELECT topic, partition, next_offset FROM strangler_projection_checkpoint \
         WHERE projection = $1 AND version = $2 ORDER BY topic, partition{lock}"
    );
    let rows: Vec<(String, i32, i64)> = on_tx!(tx, c => sqlx::query_as(&sql)
        .bind(projection)
        .bind(i64::from(version))
        .fetch_all(c)
        .await?);
    Ok(rows.into_iter().map(|(t, p, n)| ((t, p), n)).collect())
}

/// Sets the next offset of partitions (replay), creating rows that do not exist.
pub async fn reset(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    topic: &str,
    partition: i32,
    next_offset: i64,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO strangler_projection_checkpoint \
        (projection, version, topic, partition, next_offset) VALUES ($1, $2, $3, $4, $5) \
        ON CONFLICT (projection, version, topic, partition) DO UPDATE \
        SET next_offset = excluded.next_offset, generation = strangler_projection_checkpoint.generation + 1";
    on_tx!(tx, c => sqlx::query(SQL)
        .bind(projection)
        .bind(i64::from(version))
        .bind(topic)
        .bind(partition)
        .bind(next_offset)
        .execute(c)
        .await?.rows_affected());
    Ok(())
}

/// Records the bus's end offset for lag (outside batch transactions; no fencing needed).
pub async fn record_end(
    store: &Store,
    projection: &str,
    version: u32,
    topic: &str,
    partition: i32,
    end_offset: i64,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE strangler_projection_checkpoint SET end_offset = $1, end_checked_at_ms = $2 \
        WHERE projection = $3 AND version = $4 AND topic = $5 AND partition = $6";
    on_pool!(store, p => sqlx::query(SQL)
        .bind(end_offset)
        .bind(now_ms())
        .bind(projection)
        .bind(i64::from(version))
        .bind(topic)
        .bind(partition)
        .execute(p)
        .await?.rows_affected());
    Ok(())
}

/// One checkpoint row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checkpoint {
    /// Projection.
    pub projection: String,
    /// Version.
    pub version: u32,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to apply.
    pub next_offset: i64,
    /// Event time of the last applied event.
    pub last_event_time_ms: Option<i64>,
    /// When the last batch committed.
    pub applied_at_ms: Option<i64>,
    /// The bus's end offset when last looked at.
    pub end_offset: Option<i64>,
    /// Events applied since the row was created.
    pub events_applied: i64,
}

/// Every checkpoint, optionally of one projection, ordered.
pub async fn list(store: &Store, projection: Option<&str>) -> Result<Vec<Checkpoint>, sqlx::Error> {
    const SQL: &str = "SELECT projection, CAST(version AS BIGINT), topic, partition, next_offset, last_event_time_ms, \
        applied_at_ms, end_offset, events_applied FROM strangler_projection_checkpoint \
        WHERE ($1 IS NULL OR projection = $1) ORDER BY projection, version, topic, partition";
    on_pool!(store, p => {
        let rows = sqlx::query(SQL).bind(projection).fetch_all(p).await?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    projection: r.try_get(0)?,
                    version: u32::try_from(r.try_get::<i64, _>(1)?).unwrap_or(0),
                    topic: r.try_get(2)?,
                    partition: r.try_get(3)?,
                    next_offset: r.try_get(4)?,
                    last_event_time_ms: r.try_get(5)?,
                    applied_at_ms: r.try_get(6)?,
                    end_offset: r.try_get(7)?,
                    events_applied: r.try_get(8)?,
                })
            })
            .collect()
    })
}

/// Answers a consumer's "where do I start" by claiming the partition in the read store.
pub struct CheckpointStarts {
    /// The read store.
    pub store: Store,
    /// Projection.
    pub projection: String,
    /// Version.
    pub version: u32,
    /// This process's owner id (host, pid, random suffix).
    pub owner: String,
    /// Where claimed generations are recorded for the runtime.
    pub claims: Arc<Claims>,
    /// How many offsets before the checkpoint the consumer starts, so the runtime can read back
    /// the ids of a dedup window (`[dedup] mode = "window"`); 0 otherwise.
    pub lead: i64,
}

#[async_trait]
impl StartOffsets for CheckpointStarts {
    async fn start_offset(
        &self,
        topic: &str,
        partition: i32,
    ) -> strangler_bus::Result<Option<i64>> {
        let (next, generation) = claim(
            &self.store,
            &self.projection,
            self.version,
            topic,
            partition,
            &self.owner,
        )
        .await?;
        let start = Some(next);
        self.claims
            .set(topic, partition, Claim { generation, start });
        tracing::info!(projection = %self.projection, version = self.version, topic, partition, next_offset = next, generation, "claimed partition");
        Ok(Some(crate::window::read_back_from(next, self.lead)))
    }
}
