//! The projection's watermark: how far its events have been applied, in legacy time.
//!
//! In order of precedence: `--watermark`, the configured `watermark_query`, then the projector's
//! checkpoint table (`strangler_projection_checkpoint`, migrations `0005_projector.sql`) in the
//! read store: the oldest `last_event_time_ms` over the partitions of the newest version, so a
//! lagging partition never hides a change as drift.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use crate::db::{Db, Dialect, on_db};
use crate::error::{Error, Result};
use crate::normalize::parse_timestamp;

/// Parses a watermark given on the command line (RFC 3339).
pub fn parse(s: &str) -> Result<DateTime<Utc>> {
    parse_timestamp(s).ok_or_else(|| {
        Error::Watermark(format!(
            "`{s}` is not a timestamp; write RFC 3339, e.g. 2026-01-31T12:00:00Z"
        ))
    })
}

/// Runs `query` on the projection and reads its one value: a timestamp, RFC 3339 text, or
/// milliseconds since the epoch.
pub async fn from_query(db: &Db, query: &str) -> Result<Option<DateTime<Utc>>> {
    let err = |e: sqlx::Error| Error::Watermark(format!("running watermark_query: {e}"));
    on_db!(db, pool => {
        let row = sqlx::query(query).fetch_optional(pool).await.map_err(err)?;
        let Some(row) = row else { return Ok(None) };
        if let Ok(t) = row.try_get::<Option<DateTime<Utc>>, _>(0) {
            return Ok(t);
        }
        if let Ok(t) = row.try_get::<Option<chrono::NaiveDateTime>, _>(0) {
            return Ok(t.map(|t| t.and_utc()));
        }
        if let Ok(ms) = row.try_get::<Option<i64>, _>(0) {
            return Ok(ms.and_then(DateTime::from_timestamp_millis));
        }
        let text: Option<String> = row.try_get(0).map_err(err)?;
        text.map(|t| parse(&t)).transpose()
    })
}

/// The projector's watermark for `projection`, or None when the checkpoint table does not exist
/// or holds no event time.
pub async fn from_checkpoints(db: &Db, projection: &str) -> Result<Option<DateTime<Utc>>> {
    let exists = match db.dialect() {
        Dialect::Postgres => {
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'strangler_projection_checkpoint'"
        }
        Dialect::Sqlite => {
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'strangler_projection_checkpoint'"
        }
        Dialect::MySql => return Ok(None),
    };
    let sql = include_str!("sql/watermark.sql")
        .replace("$1", ph(db, 1))
        .replace("$2", ph(db, 2));
    let err =
        |e: sqlx::Error| Error::Watermark(format!("reading the projector's checkpoints: {e}"));
    on_db!(db, pool => {
        let n: i64 = sqlx::query(exists).fetch_one(pool).await.map_err(err)?.try_get(0).map_err(err)?;
        if n == 0 {
            return Ok(None);
        }
        let row = sqlx::query(&sql).bind(projection).bind(projection).fetch_one(pool).await.map_err(err)?;
        let ms: Option<i64> = row.try_get(0).map_err(err)?;
        Ok(ms.and_then(DateTime::from_timestamp_millis))
    })
}

fn ph(db: &Db, n: usize) -> &'static str {
    match (db.dialect(), n) {
        (Dialect::Postgres, 1) => "$1",
        (Dialect::Postgres, _) => "$2",
        _ => "?",
    }
}
