//! Dead letters: events a projection skipped or parked, with a classified reason, and re-driving
//! them once the cause is fixed.

use std::collections::HashSet;

use serde::Serialize;
use sqlx::Row;
use strangler_bus::{Header, Record};
use strangler_store::Store;

use crate::Result;
use crate::event::{Event, decode};
use crate::policy::Reason;
use crate::projection::Projection;
use crate::store::{ReadTx, now_ms, on_pool, on_tx};

/// Whether a dead letter holds its key back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Dead-lettered and passed over.
    Skipped,
    /// Dead-lettered, and later events of the key wait behind it.
    Parked,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Skipped => "skipped",
            Status::Parked => "parked",
        }
    }
}

/// Writes one dead letter inside the batch's transaction.
pub async fn insert(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    event: &Event,
    status: Status,
    reason: Reason,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let r = &event.record;
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                String::from_utf8_lossy(&h.value).into_owned(),
            )
        })
        .collect();
    let headers = serde_json::to_string(&headers).unwrap_or_else(|_| "[]".into());
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO strangler_projection_dead_letter (projection, version, topic, partition, \"offset\", \
         event_key, event_id, event_type, status, reason, detail, key_bytes, value, headers, timestamp_ms, \
         created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)")
        .bind(projection)
        .bind(i64::from(version))
        .bind(&r.topic)
        .bind(r.partition)
        .bind(r.offset)
        .bind(&event.key)
        .bind(&event.id)
        .bind(&event.event_type)
        .bind(status.as_str())
        .bind(reason.as_str())
        .bind(detail)
        .bind(&r.key)
        .bind(&r.value)
        .bind(headers)
        .bind(r.timestamp_ms)
        .bind(now_ms())
        .execute(c)
        .await?.rows_affected());
    Ok(())
}

/// Keys that have a parked dead letter.
pub async fn parked_keys(
    store: &Store,
    projection: &str,
    version: u32,
) -> Result<HashSet<String>, sqlx::Error> {
    on_pool!(store, p => {
        let keys: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT DISTINCT event_key FROM strangler_projection_dead_letter \
             WHERE projection = $1 AND version = $2 AND status = 'parked'")
            .bind(projection)
            .bind(i64::from(version))
            .fetch_all(p)
            .await?;
        Ok(keys.into_iter().map(|k| k.unwrap_or_default()).collect())
    })
}

/// One dead letter as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Row id, for `show` and `redrive`.
    pub id: i64,
    /// Projection.
    pub projection: String,
    /// Version.
    pub version: u32,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Aggregate id.
    pub key: Option<String>,
    /// Event id.
    pub event_id: Option<String>,
    /// Event type.
    pub event_type: Option<String>,
    /// parked, skipped or redriven.
    pub status: String,
    /// Classified reason.
    pub reason: String,
    /// The underlying error.
    pub detail: String,
    /// The event value as text (`show` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

const COLUMNS: &str = "id, projection, CAST(version AS BIGINT), topic, partition, \"offset\", event_key, event_id, \
    event_type, status, reason, detail, value, key_bytes, headers, timestamp_ms";

fn from_row<R: Row>(r: &R) -> Result<(DeadLetter, Record), sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let value: Option<Vec<u8>> = r.try_get(12)?;
    let headers: String = r.try_get(14)?;
    let headers: Vec<(String, String)> = serde_json::from_str(&headers).unwrap_or_default();
    let dl = DeadLetter {
        id: r.try_get(0)?,
        projection: r.try_get(1)?,
        version: u32::try_from(r.try_get::<i64, _>(2)?).unwrap_or(0),
        topic: r.try_get(3)?,
        partition: r.try_get(4)?,
        offset: r.try_get(5)?,
        key: r.try_get(6)?,
        event_id: r.try_get(7)?,
        event_type: r.try_get(8)?,
        status: r.try_get(9)?,
        reason: r.try_get(10)?,
        detail: r.try_get(11)?,
        value: value
            .as_deref()
            .map(|v| String::from_utf8_lossy(v).into_owned()),
    };
    let record = Record {
        topic: dl.topic.clone(),
        partition: dl.partition,
        offset: dl.offset,
        key: r.try_get(13)?,
        value,
        headers: headers
            .into_iter()
            .map(|(name, v)| Header {
                name,
                value: v.into_bytes(),
            })
            .collect(),
        timestamp_ms: r.try_get(15)?,
    };
    Ok((dl, record))
}

/// Dead letters of a projection (all statuses when `all`, else parked and skipped), oldest first.
pub async fn list(store: &Store, projection: &str, all: bool) -> Result<Vec<DeadLetter>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM strangler_projection_dead_letter WHERE projection = $1 \
         AND ($2 OR status IN ('parked', 'skipped')) ORDER BY id"
    );
    let rows = on_pool!(store, p => {
        let rows = sqlx::query(&sql).bind(projection).bind(all).fetch_all(p).await?;
        rows.iter().map(|r| from_row(r).map(|(mut d, _)| { d.value = None; d })).collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(rows)
}

/// One dead letter with its value.
pub async fn show(store: &Store, id: i64) -> Result<Option<DeadLetter>> {
    let sql = format!("SELECT {COLUMNS} FROM strangler_projection_dead_letter WHERE id = $1");
    Ok(on_pool!(store, p => {
        match sqlx::query(&sql).bind(id).fetch_optional(p).await? {
            Some(r) => Some(from_row(&r)?.0),
            None => None,
        }
    }))
}

/// What a re-drive did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Redrive {
    /// Dead letters applied and marked `redriven`.
    pub applied: u64,
    /// Dead letters that failed again and stay as they were.
    pub failed: u64,
}

/// Re-applies dead letters of `projection`'s version (one id, or every open one), oldest first,
/// each in its own transaction that also marks it `redriven`, so it applies exactly once. When a
/// parked event fails again, the later events of its key stay parked.
pub async fn redrive(
    store: &Store,
    projection: &dyn Projection,
    id: Option<i64>,
) -> Result<Redrive> {
    let sql = format!(
        "SELECT {COLUMNS} FROM strangler_projection_dead_letter WHERE projection = $1 AND version = $2 \
         AND status IN ('parked', 'skipped') AND ($3 IS NULL OR id = $3) ORDER BY id"
    );
    let letters: Vec<(DeadLetter, Record)> = on_pool!(store, p => {
        let rows = sqlx::query(&sql)
            .bind(projection.name())
            .bind(i64::from(projection.version()))
            .bind(id)
            .fetch_all(p)
            .await?;
        rows.iter().map(from_row).collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    let mut out = Redrive::default();
    let mut blocked: HashSet<Option<String>> = HashSet::new();
    for (dl, record) in letters {
        if dl.status == "parked" && blocked.contains(&dl.key) {
            out.failed += 1;
            continue;
        }
        let event = decode(record);
        let mut tx = ReadTx::begin(store).await?;
        match projection.apply(&mut tx, &event).await {
            Ok(_) => {
                on_tx!(&mut tx, c => sqlx::query(
                    "UPDATE strangler_projection_dead_letter SET status = 'redriven', resolved_at_ms = $1 \
                     WHERE id = $2 AND status IN ('parked', 'skipped')")
                    .bind(now_ms())
                    .bind(dl.id)
                    .execute(c)
                    .await?.rows_affected());
                tx.commit().await?;
                out.applied += 1;
                tracing::info!(projection = projection.name(), id = dl.id, key = ?dl.key, "re-driven dead letter applied");
            }
            Err(e) => {
                tx.rollback().await?;
                out.failed += 1;
                if dl.status == "parked" {
                    blocked.insert(dl.key.clone());
                }
                tracing::warn!(projection = projection.name(), id = dl.id, reason = %e.reason, detail = %e.detail, "re-driven dead letter failed again");
            }
        }
    }
    Ok(out)
}
