//! MySQL/MariaDB: `seq` order with gap holding, `GET_LOCK` as lease.
//!
//! InnoDB draws AUTO_INCREMENT values at insert time but transactions commit in any order, so a
//! reader can see `seq` 7 before 6 commits. When a batch has a gap, the rows after it are held
//! back. The gap is passed only when it has existed for `gap_grace_ms` *and* a READ UNCOMMITTED
//! look finds no row in it, committed or not: then the insert that drew that value rolled back
//! (or the row was deleted), and nothing can fill the gap any more.

use std::time::{Duration, Instant};

use sqlx::{Connection, MySqlConnection, Row};
use strangler_core::config::{OutboxConfig, OutboxRetention};

use super::sql::{self, Dialect, quote};
use super::{Cursor, connect_error, decode_row, finish_batch};
use crate::{BadRow, Error, OutboxRow, Result};

async fn connect(url: &str) -> Result<MySqlConnection> {
    let mut conn = MySqlConnection::connect(url)
        .await
        .map_err(connect_error(url))?;
    // A completion waiting on a row lock gives up after 10 s instead of InnoDB's 50 s default,
    // so a relay draining at shutdown is not held past its grace by someone else's lock.
    sqlx::query("SET SESSION innodb_lock_wait_timeout = 10")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// The connection that holds `GET_LOCK` and completes rows.
pub(crate) struct MyLease {
    conn: MySqlConnection,
    cfg: OutboxConfig,
    dead_letter_sql: String,
}

/// The connection that reads batches and judges gaps, beside the lease connection.
pub(crate) struct MyReader {
    conn: MySqlConnection,
    table: String,
    read_sql: String,
    headers: Vec<(String, String)>,
    pub(crate) cursor: Cursor,
    /// First missing `seq` and when the gap was first seen.
    gap: Option<(i64, Instant)>,
    grace: Duration,
}

pub(crate) async fn connect_pair(url: &str, cfg: &OutboxConfig) -> Result<(MyLease, MyReader)> {
    let lease = MyLease {
        conn: connect(url).await?,
        cfg: cfg.clone(),
        dead_letter_sql: sql::dead_letter_query(Dialect::Mysql, cfg),
    };
    let mut conn = connect(url).await?;
    // Published rows (mark) were completed in `seq` order: everything up to the last one is done.
    let start: i64 = if cfg.retention == OutboxRetention::Mark {
        sqlx::query_scalar(&format!(
            "SELECT CAST(COALESCE(MAX(seq), 0) AS SIGNED) FROM {} WHERE {} IS NOT NULL",
            quote(Dialect::Mysql, &cfg.table),
            quote(Dialect::Mysql, &cfg.columns.published_at)
        ))
        .fetch_one(&mut conn)
        .await?
    } else {
        0
    };
    let reader = MyReader {
        conn,
        table: cfg.table.clone(),
        read_sql: sql::read_query(Dialect::Mysql, cfg),
        headers: sql::header_columns(cfg),
        cursor: Cursor { tx: 0, seq: start },
        gap: None,
        grace: Duration::from_millis(cfg.gap_grace_ms),
    };
    Ok((lease, reader))
}

impl MyLease {
    const LOCK: &'static str =
        "SELECT GET_LOCK(CONCAT('strangler-', LEFT(SHA1(CONCAT(DATABASE(), '.', ?)), 40)), 0)";

    pub(crate) async fn try_lease(&mut self) -> Result<bool> {
        let got: Option<i64> = sqlx::query_scalar(Self::LOCK)
            .bind(&self.cfg.table)
            .fetch_one(&mut self.conn)
            .await?;
        Ok(got == Some(1))
    }

    pub(crate) async fn check_lease(&mut self) -> Result<()> {
        let mine: Option<i64> = sqlx::query_scalar(
            "SELECT IS_USED_LOCK(CONCAT('strangler-', LEFT(SHA1(CONCAT(DATABASE(), '.', ?)), 40))) = CONNECTION_ID()",
        )
        .bind(&self.cfg.table)
        .fetch_one(&mut self.conn)
        .await?;
        if mine == Some(1) {
            Ok(())
        } else {
            Err(Error::Fenced("GET_LOCK is no longer held".into()))
        }
    }

    pub(crate) async fn complete(&mut self, seqs: &[i64], bad: &[BadRow]) -> Result<()> {
        // By the list, not a range: a row that turned up in a gap judged to be a rollback stays
        // visible in the outbox instead of being deleted unpublished.
        let complete_sql = sql::complete_query(Dialect::Mysql, &self.cfg, seqs.len());
        let mut complete = sqlx::query(&complete_sql);
        for s in seqs {
            complete = complete.bind(s);
        }
        let mut tx = self.conn.begin().await?;
        finish_batch!(tx, &self.dead_letter_sql, &self.cfg.table, bad, complete);
        Ok(())
    }

    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
}

impl MyReader {
    pub(crate) fn holding_gap(&self) -> bool {
        self.gap.is_some()
    }

    pub(crate) fn rewind(&mut self, to: Cursor) {
        self.cursor = to;
        self.gap = None;
    }

    /// Whether any row, committed or not, exists with `from <= seq < to`.
    async fn gap_has_rows(&mut self, from: i64, to: i64) -> Result<bool> {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
            .execute(&mut self.conn)
            .await?;
        let mut tx = self.conn.begin().await?;
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE seq >= ? AND seq < ?",
            quote(Dialect::Mysql, &self.table)
        ))
        .bind(from)
        .bind(to)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n > 0)
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
            let expected = self.cursor.seq + 1;
            if seq > expected {
                let first_seen = match self.gap {
                    Some((start, at)) if start == expected => at,
                    _ => {
                        tracing::debug!(
                            from = expected,
                            to = seq - 1,
                            "gap in outbox seq, holding later rows"
                        );
                        self.gap = Some((expected, Instant::now()));
                        break;
                    }
                };
                if first_seen.elapsed() < self.grace || self.gap_has_rows(expected, seq).await? {
                    if first_seen.elapsed() > self.grace * 30 {
                        tracing::warn!(
                            from = expected,
                            to = seq - 1,
                            held_s = first_seen.elapsed().as_secs(),
                            "outbox rows held behind a transaction that is still open"
                        );
                    }
                    break;
                }
                tracing::debug!(
                    from = expected,
                    to = seq - 1,
                    "gap is a rollback or a deleted row, moving on"
                );
            }
            self.gap = None;
            self.cursor = Cursor { tx: 0, seq };
            let published: i64 = r.try_get(1)?;
            if published == 0 {
                out.push(decode_row!(r, 2, 0, seq, self.headers));
            }
        }
        Ok(out)
    }

    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
}
