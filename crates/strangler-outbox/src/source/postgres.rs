//! PostgreSQL: a commit-order fence on `transaction_id` (xid8), a session advisory lock as lease.
//!
//! Two connections: the lease connection holds the lock and completes rows; the read connection
//! reads the next batch at the same time, so the database works on both at once.

use sqlx::{Connection, PgConnection, Row};
use strangler_core::config::OutboxConfig;

use super::sql::{self, Dialect};
use super::{Cursor, connect_error, decode_row, finish_batch};
use crate::{BadRow, Error, OutboxRow, Result};

async fn connect(url: &str) -> Result<PgConnection> {
    PgConnection::connect(url).await.map_err(connect_error(url))
}

/// The connection that holds the advisory lock and completes rows.
pub(crate) struct PgLease {
    conn: PgConnection,
    table: String,
    complete_sql: String,
    dead_letter_sql: String,
}

/// The connection that reads batches in commit order.
pub(crate) struct PgReader {
    conn: PgConnection,
    read_sql: String,
    headers: Vec<(String, String)>,
    pub(crate) cursor: Cursor,
}

pub(crate) async fn connect_pair(url: &str, cfg: &OutboxConfig) -> Result<(PgLease, PgReader)> {
    let mut conn = connect(url).await?;
    // Completing a batch need not wait for its WAL flush: a completion lost in a database crash
    // only publishes those rows again, which at-least-once allows. Nothing else this session
    // writes (dead letters travel with their completion) needs more.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    let lease = PgLease {
        conn,
        table: cfg.table.clone(),
        complete_sql: sql::complete_query(Dialect::Postgres, cfg, 0),
        dead_letter_sql: sql::dead_letter_query(Dialect::Postgres, cfg),
    };
    let reader = PgReader {
        conn: connect(url).await?,
        read_sql: sql::read_query(Dialect::Postgres, cfg),
        headers: sql::header_columns(cfg),
        cursor: Cursor::default(),
    };
    Ok((lease, reader))
}

impl PgLease {
    fn lock_name(&self) -> String {
        format!("strangler-outbox:{}", self.table)
    }

    /// A session-level advisory lock: released when this connection ends, however it ends.
    pub(crate) async fn try_lease(&mut self) -> Result<bool> {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(self.lock_name())
            .fetch_one(&mut self.conn)
            .await?;
        Ok(got)
    }

    pub(crate) async fn check_lease(&mut self) -> Result<()> {
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
             AND pid = pg_backend_pid() AND granted \
             AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0))",
        )
        .bind(self.lock_name())
        .fetch_one(&mut self.conn)
        .await?;
        if held {
            Ok(())
        } else {
            Err(Error::Fenced("the advisory lock is no longer held".into()))
        }
    }

    pub(crate) async fn complete(
        &mut self,
        lo: Cursor,
        hi: Cursor,
        rows: usize,
        bad: &[BadRow],
    ) -> Result<()> {
        let complete = sqlx::query(&self.complete_sql)
            .bind(lo.tx.to_string())
            .bind(lo.seq)
            .bind(hi.tx.to_string())
            .bind(hi.seq)
            .bind(rows as i64);
        let mut tx = self.conn.begin().await?;
        finish_batch!(tx, &self.dead_letter_sql, &self.table, bad, complete);
        Ok(())
    }

    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
}

impl PgReader {
    pub(crate) async fn read_batch(&mut self, limit: u32) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(&self.read_sql)
            .bind(self.cursor.tx.to_string())
            .bind(self.cursor.seq)
            .bind(i64::from(limit))
            .fetch_all(&mut self.conn)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let tx: i64 = r.try_get(0)?;
            let seq: i64 = r.try_get(1)?;
            out.push(decode_row!(r, 2, tx, seq, self.headers));
            self.cursor = Cursor { tx, seq };
        }
        Ok(out)
    }

    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
}
