//! SQLite: one writer at a time, so rows commit in `seq` (AUTOINCREMENT) order; a lease row in
//! the same file fences relays, renewed in the transaction that completes rows.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use strangler_core::config::OutboxConfig;

use super::sql::{self, Dialect};
use super::{Cursor, decode_row};
use crate::lease::{holder_id, now_ms};
use crate::{BadRow, Error, OutboxRow, Result};

pub(crate) struct LiteSource {
    conn: SqliteConnection,
    cfg: OutboxConfig,
    read_sql: String,
    dead_letter_sql: String,
    headers: Vec<(String, String)>,
    holder: String,
    pub(crate) cursor: Cursor,
}

impl LiteSource {
    pub(crate) async fn connect(url: &str, cfg: &OutboxConfig) -> Result<LiteSource> {
        let redacted = strangler_store::redact_url(url);
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|source| Error::Connect {
                url: redacted.clone(),
                source,
            })?
            .busy_timeout(Duration::from_secs(10));
        let conn = SqliteConnection::connect_with(&opts)
            .await
            .map_err(|source| Error::Connect {
                url: redacted,
                source,
            })?;
        Ok(LiteSource {
            conn,
            cfg: cfg.clone(),
            read_sql: sql::read_query(Dialect::Sqlite, cfg),
            dead_letter_sql: sql::dead_letter_query(Dialect::Sqlite, cfg),
            headers: sql::header_columns(cfg),
            holder: holder_id(),
            cursor: Cursor::default(),
        })
    }

    pub(crate) async fn try_lease(&mut self) -> Result<bool> {
        lease_query(&mut self.conn, &self.cfg, &self.holder).await
    }

    pub(crate) async fn renew_lease(&mut self) -> Result<()> {
        if self.try_lease().await? {
            Ok(())
        } else {
            Err(Error::Fenced(
                "the SQLite lease expired and another relay took it".into(),
            ))
        }
    }

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
            self.cursor = Cursor { tx: 0, seq };
        }
        Ok(out)
    }

    pub(crate) async fn complete(&mut self, seqs: &[i64], bad: &[BadRow]) -> Result<()> {
        let complete_sql = sql::complete_query(Dialect::Sqlite, &self.cfg, seqs.len());
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        // Renewing inside the transaction fences: a relay whose lease was taken changes nothing.
        let renewed = lease_query(&mut tx, &self.cfg, &self.holder).await?;
        if !renewed {
            return Err(Error::Fenced(
                "the SQLite lease expired and another relay took it".into(),
            ));
        }
        for b in bad {
            sqlx::query(&self.dead_letter_sql)
                .bind(&self.cfg.table)
                .bind(&b.row.id)
                .bind(&b.row.aggregate_type)
                .bind(&b.row.aggregate_id)
                .bind(&b.row.event_type)
                .bind(&b.row.payload)
                .bind(b.headers_json())
                .bind(&b.reason)
                .execute(&mut *tx)
                .await?;
        }
        let mut q = sqlx::query(&complete_sql);
        for s in seqs {
            q = q.bind(s);
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
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
