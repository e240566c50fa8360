//! Consuming the built-in log: poll `strangler_log` in offset order per partition from the
//! positions the consumer's [`StartOffsets`] gives (a projector's checkpoint).
//!
//! One consumer per projection reads every partition of its topics: the log has no group
//! coordinator, so two instances of one projection are not balanced, they are fenced (the
//! projector's checkpoint claim lets only the latest claimant commit).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::Row;
use strangler_core::event::Position;
use strangler_store::Store;

use crate::{Consumer, Header, Record, Result, StartOffsets};

/// How often partitions of the topics are looked up again (a topic's first record creates them).
const DISCOVER_EVERY: Duration = Duration::from_secs(1);
/// Pause between empty reads while waiting for records.
const IDLE_POLL: Duration = Duration::from_millis(25);

/// A consumer of built-in log topics.
pub struct LogConsumer {
    store: Store,
    topics: Vec<String>,
    group: Option<String>,
    starts: Arc<dyn StartOffsets>,
    /// Next offset to read per (topic, partition).
    positions: BTreeMap<(String, i32), i64>,
    /// When set, only these partitions are read (replay); otherwise all are discovered.
    fixed: bool,
    last_discovery: Option<Instant>,
}

impl LogConsumer {
    /// Reads every partition of `topics`, now and as they appear. `group`, when set, names the
    /// row in `strangler_log_group_offset` that [`Consumer::mark_applied`] advances for tooling.
    pub fn new(
        store: Store,
        topics: Vec<String>,
        group: Option<String>,
        starts: Arc<dyn StartOffsets>,
    ) -> LogConsumer {
        LogConsumer {
            store,
            topics,
            group,
            starts,
            positions: BTreeMap::new(),
            fixed: false,
            last_discovery: None,
        }
    }

    /// Reads exactly these partitions (replay): each is claimed through `starts`, then read from
    /// the given offset.
    pub async fn assign(
        store: Store,
        partitions: Vec<(String, i32, i64)>,
        starts: Arc<dyn StartOffsets>,
    ) -> Result<LogConsumer> {
        let mut c = LogConsumer::new(store, Vec::new(), None, starts);
        c.fixed = true;
        for (topic, partition, offset) in partitions {
            c.starts.start_offset(&topic, partition).await?;
            c.positions.insert((topic, partition), offset);
        }
        Ok(c)
    }

    async fn discover(&mut self) -> Result<()> {
        if self.fixed
            || self
                .last_discovery
                .is_some_and(|t| t.elapsed() < DISCOVER_EVERY)
        {
            return Ok(());
        }
        self.last_discovery = Some(Instant::now());
        for topic in self.topics.clone() {
            for (partition, _) in partitions(&self.store, &topic).await? {
                let key = (topic.clone(), partition);
                if !self.positions.contains_key(&key) {
                    let start = self
                        .starts
                        .start_offset(&topic, partition)
                        .await?
                        .unwrap_or(0);
                    self.positions.insert(key, start);
                }
            }
        }
        Ok(())
    }

    async fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        limit: i64,
    ) -> Result<Vec<Record>> {
        let rows = match &self.store {
            Store::Postgres(p) => {
                sqlx::query(
                    "SELECT \"offset\", key, value, headers::text, timestamp_ms FROM strangler_log \
                     WHERE topic = $1 AND partition = $2 AND \"offset\" >= $3 ORDER BY \"offset\" LIMIT $4",
                )
                .bind(topic)
                .bind(partition)
                .bind(from)
                .bind(limit)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| row(topic, partition, r))
                .collect::<Result<Vec<_>>>()?
            }
            Store::Sqlite(p) => {
                sqlx::query(
                    "SELECT \"offset\", key, value, headers, timestamp_ms FROM strangler_log \
                     WHERE topic = $1 AND partition = $2 AND \"offset\" >= $3 ORDER BY \"offset\" LIMIT $4",
                )
                .bind(topic)
                .bind(partition)
                .bind(from)
                .bind(limit)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| row(topic, partition, r))
                .collect::<Result<Vec<_>>>()?
            }
        };
        Ok(rows)
    }
}

fn row<R: Row>(topic: &str, partition: i32, r: &R) -> Result<Record>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let headers: String = r.try_get(3)?;
    let headers: Vec<(String, String)> = serde_json::from_str(&headers).unwrap_or_default();
    Ok(Record {
        topic: topic.to_string(),
        partition,
        offset: r.try_get(0)?,
        key: r.try_get(1)?,
        value: r.try_get(2)?,
        headers: headers
            .into_iter()
            .map(|(name, v)| Header {
                name,
                value: v.into_bytes(),
            })
            .collect(),
        timestamp_ms: Some(r.try_get(4)?),
    })
}

/// The partitions of a log topic with their end offsets (next offset to be written).
pub async fn partitions(store: &Store, topic: &str) -> Result<Vec<(i32, i64)>> {
    const SQL: &str =
        "SELECT partition, next_offset FROM strangler_log_head WHERE topic = $1 ORDER BY partition";
    Ok(match store {
        Store::Postgres(p) => sqlx::query_as(SQL).bind(topic).fetch_all(p).await?,
        Store::Sqlite(p) => sqlx::query_as(SQL).bind(topic).fetch_all(p).await?,
    })
}

/// The first offset of a partition whose timestamp is at or after `ms` (its end when none is).
pub async fn offset_for_time(store: &Store, topic: &str, partition: i32, ms: i64) -> Result<i64> {
    const SQL: &str = "SELECT COALESCE(MIN(\"offset\"), (SELECT next_offset FROM strangler_log_head \
        WHERE topic = $1 AND partition = $2), 0) FROM strangler_log \
        WHERE topic = $1 AND partition = $2 AND timestamp_ms >= $3";
    Ok(match store {
        Store::Postgres(p) => {
            sqlx::query_scalar(SQL)
                .bind(topic)
                .bind(partition)
                .bind(ms)
                .fetch_one(p)
                .await?
        }
        Store::Sqlite(p) => {
            sqlx::query_scalar(SQL)
                .bind(topic)
                .bind(partition)
                .bind(ms)
                .fetch_one(p)
                .await?
        }
    })
}

#[async_trait]
impl Consumer for LogConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>> {
        let deadline = Instant::now() + max_wait;
        loop {
            self.discover().await?;
            let mut out = Vec::new();
            let parts: Vec<(String, i32, i64)> = self
                .positions
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, *o))
                .collect();
            let share = (max_records / parts.len().max(1)).max(1);
            for (topic, partition, from) in parts {
                let room = max_records.saturating_sub(out.len());
                if room == 0 {
                    break;
                }
                let recs = self
                    .read(&topic, partition, from, room.min(share) as i64)
                    .await?;
                if let Some(last) = recs.last() {
                    self.positions.insert((topic, partition), last.offset + 1);
                }
                out.extend(recs);
            }
            if !out.is_empty() || Instant::now() >= deadline {
                return Ok(out);
            }
            tokio::time::sleep(IDLE_POLL.min(deadline.saturating_duration_since(Instant::now())))
                .await;
        }
    }

    async fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        self.positions
            .insert((topic.to_string(), partition), offset);
        Ok(())
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.positions.keys().cloned().collect()
    }

    async fn end_offsets(&self) -> Result<Vec<(String, i32, i64)>> {
        let mut out = Vec::new();
        let topics: Vec<String> = if self.fixed {
            let mut t: Vec<String> = self.positions.keys().map(|(t, _)| t.clone()).collect();
            t.dedup();
            t
        } else {
            self.topics.clone()
        };
        for topic in topics {
            for (partition, end) in partitions(&self.store, &topic).await? {
                if self.positions.contains_key(&(topic.clone(), partition)) {
                    out.push((topic.clone(), partition, end));
                }
            }
        }
        Ok(out)
    }

    async fn mark_applied(&mut self, topic: &str, position: Position) -> Result<()> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        const SQL: &str = "INSERT INTO strangler_log_group_offset (group_id, topic, partition, next_offset) \
            VALUES ($1, $2, $3, $4) ON CONFLICT (group_id, topic, partition) \
            DO UPDATE SET next_offset = excluded.next_offset";
        match &self.store {
            Store::Postgres(p) => {
                sqlx::query(SQL)
                    .bind(group)
                    .bind(topic)
                    .bind(position.partition)
                    .bind(position.offset)
                    .execute(p)
                    .await?;
            }
            Store::Sqlite(p) => {
                sqlx::query(SQL)
                    .bind(group)
                    .bind(topic)
                    .bind(position.partition)
                    .bind(position.offset)
                    .execute(p)
                    .await?;
            }
        }
        Ok(())
    }
}
