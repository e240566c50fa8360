//! Offsets kept in ClickHouse itself: a `ReplacingMergeTree` with one row per projection, topic
//! and partition, the newest `seq` winning. Each row also keeps the claim generation of the
//! writer that stored it, so a consumer fenced by a newer claim can be refused.
//!
//! ClickHouse has no transaction spanning the rows and the offset, so the offset is written
//! *after* the batch's rows. A crash in between leaves rows ahead of the offset; the batch is then
//! consumed again, and the [`crate::Writer`] drops the rows at or below each table's stored
//! high-water position (and `FINAL` collapses any that slip through), so the effect is once.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::client::Client;
use crate::error::Result;
use crate::sql::{literal, qualified};

/// The offsets table's name.
pub const OFFSETS_TABLE: &str = "_strangler_offsets";

/// Creates the offsets table if it is missing.
pub async fn ensure_table(client: &Client) -> Result<()> {
    client
        .execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (projection String, topic String, partition Int32, \
             next_offset Int64, generation Int64, seq UInt64) \
             ENGINE = ReplacingMergeTree(seq) ORDER BY (projection, topic, partition)",
            qualified(client.database(), OFFSETS_TABLE)
        ))
        .await
}

/// What is stored for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The next offset to consume.
    pub next_offset: i64,
    /// The claim generation of the writer that stored it (0 when none).
    pub generation: i64,
}

/// The stored offsets per (topic, partition) for `projection` (the physical table's name, which
/// includes the version). Partitions never stored are absent.
pub async fn load(client: &Client, projection: &str) -> Result<BTreeMap<(String, i32), Stored>> {
    #[derive(Deserialize)]
    struct Row {
        topic: String,
        partition: i32,
        next_offset: i64,
        generation: i64,
    }
    let rows: Vec<Row> = client
        .query(&format!(
            "SELECT topic, partition, argMax(next_offset, seq) AS next_offset, \
             argMax(generation, seq) AS generation FROM {} \
             WHERE projection = {} GROUP BY topic, partition",
            qualified(client.database(), OFFSETS_TABLE),
            literal(projection)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let stored = Stored {
                next_offset: r.next_offset,
                generation: r.generation,
            };
            ((r.topic, r.partition), stored)
        })
        .collect())
}

/// Stores next offsets for `projection` in one insert. Later stores win, also when they move an
/// offset back (a replay from an earlier offset).
pub async fn store(
    client: &Client,
    projection: &str,
    next: &BTreeMap<(String, i32), Stored>,
) -> Result<()> {
    if next.is_empty() {
        return Ok(());
    }
    let seq = next_seq();
    let mut body = Vec::new();
    for ((topic, partition), stored) in next {
        let line = serde_json::json!({
            "projection": projection,
            "topic": topic,
            "partition": partition,
            "next_offset": stored.next_offset,
            "generation": stored.generation,
            "seq": seq,
        });
        serde_json::to_writer(&mut body, &line).expect("JSON serializes");
        body.push(b'\n');
    }
    client
        .insert(
            &format!(
                "INSERT INTO {} FORMAT JSONEachRow",
                qualified(client.database(), OFFSETS_TABLE)
            ),
            body.into(),
        )
        .await
}

/// Nanoseconds since the epoch, strictly increasing within this process so two stores in the
/// same nanosecond still order.
fn next_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}
