//! SQLite: one writer at a time, so rows commit in `seq` (AUTOINCREMENT) order; a lease row in
//! the same file fences relays, renewed in the transaction that completes rows, and renewed
//! before a batch is published once half its time has passed, so a relay that stalled past its
//! lease (and whose rows a standby may already be relaying) publishes nothing more.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use strangler_core::config::OutboxConfig;

use super::sql::{self, Dialect};
use super::{Cursor, connect_error, decode_row, finish_batch};
use crate::lease::{holder_id, now_ms};
use crate::{BadRow, Error, OutboxRow, Result};

/// The connection that holds the lease row and completes rows.
pub(crate) struct LiteLease {
    conn: SqliteConnection,
    cfg: OutboxConfig,
    complete_sql: String,
    dead_letter_sql: String,
    holder: String,
    /// When the lease was last taken or renewed (the moment the renewal started), if ever.
    renewed_at: Option<Instant>,
}

/// The connection that reads batches, beside the lease connection.
pub(crate) struct LiteReader {
    conn: SqliteConnection,
    read_sql: String,
    headers: Vec<(String, String)>,
    pub(crate) cursor: Cursor,
}

async fn connect(url: &str, busy: Duration) -> Result<SqliteConnection> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(connect_error(url))?
        .busy_timeout(busy);
    SqliteConnection::connect_with(&opts)
        .await
        .map_err(connect_error(url))
}

/// The two connections; `holder` names the relay in the lease row (a new name unless resuming).
pub(crate) async fn connect_pair(
    url: &str,
    cfg: &OutboxConfig,
    busy: Duration,
    holder: Option<String>,
) -> Result<(LiteLease, LiteReader)> {
    let lease = LiteLease {
        conn: connect(url, busy).await?,
        cfg: cfg.clone(),
        complete_sql: sql::complete_query(Dialect::Sqlite, cfg, 0),
        dead_letter_sql: sql::dead_letter_query(Dialect::Sqlite, cfg),
        holder: holder.unwrap_or_else(holder_id),
        renewed_at: None,
    };
    let reader = LiteReader {
        conn: connect(url, busy).await?,
        read_sql: sql::read_query(Dialect::Sqlite, cfg),
        headers: sql::header_columns(cfg),
        cursor: Cursor::default(),
    };
    Ok((lease, reader))
}

impl LiteLease {
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }

    /// Renews the lease only if the lease row still names this relay, expired or not: then no
    /// other relay took the outbox since this one last held it. [`Error::Fenced`] otherwise.
    pub(crate) async fn reclaim(&mut self) -> Result<()> {
        let started = Instant::now();
        let ttl = i64::try_from(self.cfg.lease_ttl_ms).unwrap_or(i64::MAX / 2);
        let done = sqlx::query(
            "UPDATE strangler_outbox_lease SET expires_at_ms = ?1 \
             WHERE outbox_table = ?2 AND holder = ?3",
        )
        .bind(now_ms() + ttl)
        .bind(&self.cfg.table)
        .bind(&self.holder)
        .execute(&mut self.conn)
        .await?;
        if done.rows_affected() == 1 {
            self.renewed_at = Some(started);
            Ok(())
        } else {
            Err(fenced())
        }
    }

    pub(crate) async fn try_lease(&mut self) -> Result<bool> {
        let started = Instant::now();
        let got = lease_query(&mut self.conn, &self.cfg, &self.holder).await?;
        if got {
            self.renewed_at = Some(started);
        }
        Ok(got)
    }

    pub(crate) async fn renew_lease(&mut self) -> Result<()> {
        if self.try_lease().await? {
            Ok(())
        } else {
            Err(fenced())
        }
    }

    /// Renews the lease when half of it has passed since the last renewal: what is published
    /// next goes out with at least half a lease to spare.
    pub(crate) async fn guard_lease(&mut self) -> Result<()> {
        let half = Duration::from_millis(self.cfg.lease_ttl_ms / 2);
        match self.renewed_at {
            Some(at) if at.elapsed() < half => Ok(()),
            _ => self.renew_lease().await,
        }
    }

    pub(crate) async fn complete(&mut self, lo: i64, hi: i64, bad: &[BadRow]) -> Result<()> {
        let started = Instant::now();
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        // Renewing inside the transaction fences: a relay whose lease was taken changes nothing.
        if !lease_query(&mut tx, &self.cfg, &self.holder).await? {
            return Err(fenced());
        }
        let complete = sqlx::query(&self.complete_sql).bind(lo).bind(hi);
        finish_batch!(tx, &self.dead_letter_sql, &self.cfg.table, bad, complete);
        self.renewed_at = Some(started);
        Ok(())
    }

    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
}

impl LiteReader {
    pub(crate) async fn read_batch(&mut self, limit: u32) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(&self.read_sql)
            .bind(self.cursor.seq)
            .bind(i64::from(limit))
            .fetch_all(&mut self.conn)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq: i64 = r.try_get(0)?;
            out.push(decode_row!(r, 1, 0, seq, self.headers));
        }
        // Only past rows handed back: a resumed relay keeps this cursor.
        if let Some(last) = out.last() {
            self.cursor = Cursor {
                tx: 0,
                seq: last.seq,
            };
        }
        Ok(out)
    }

    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
}

fn fenced() -> Error {
    Error::Fenced("the SQLite lease expired and another relay took it".into())
}

/// Takes or renews the lease; `true` when it is ours until now + `lease_ttl_ms`.
async fn lease_query(
    conn: &mut SqliteConnection,
    cfg: &OutboxConfig,
    holder: &str,
) -> Result<bool> {
    let now = now_ms();
    let ttl = i64::try_from(cfg.lease_ttl_ms).unwrap_or(i64::MAX / 2);
    let done = sqlx::query(include_str!("sql/sqlite_lease.sql"))
        .bind(&cfg.table)
        .bind(holder)
        .bind(now + ttl)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
