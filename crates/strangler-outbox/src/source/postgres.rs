//! PostgreSQL: a commit-order fence on `transaction_id` (xid8), a session advisory lock as lease.
//!
//! Two connections: the lease connection holds the lock and completes rows; the read connection
//! reads the next batch at the same time, so the database works on both at once.

use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};
use strangler_core::config::OutboxConfig;

use super::sql::{self, Dialect};
use super::{Cursor, connect_error, decode_row, finish_batch};
use crate::{BadRow, Error, OutboxRow, Result};

async fn connect(url: &str) -> Result<PgConnection> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(connect_error(url))?;
    // A relay's statements take milliseconds. Bounds on the server's side too, so that a
    // statement the relay gave up on (a drain out of time, a connection dropped) does not wait
    // on a lock or a stalled server for ever, holding the lease session with it.
    sqlx::query(STATEMENT_BOUNDS).execute(&mut conn).await?;
    Ok(conn)
}

/// `statement_timeout` and `lock_timeout` of the relay's sessions.
const STATEMENT_BOUNDS: &str = "SELECT set_config('statement_timeout', '30s', false), set_config('lock_timeout', '10s', false)";

/// The connection that holds the advisory lock and completes rows.
pub(crate) struct PgLease {
    conn: PgConnection,
    /// The payload column is `json` or `jsonb`.
    pub(crate) payload_is_json: bool,
    table: String,
    complete_sql: String,
    dead_letter_sql: String,
}

/// The connections that read batches in commit order: a large batch's keys are found first,
/// then its rows fetched in two halves, one on each connection, so that two server processes
/// turn rows into text at once (mostly `jsonb` output: about 3 µs a 1 KB row).
pub(crate) struct PgReader {
    conn: PgConnection,
    /// The second connection of a split read, if reads are split.
    helper: Option<PgConnection>,
    read_sql: String,
    keys_sql: String,
    range_sql: String,
    headers: Vec<(String, String)>,
    pub(crate) cursor: Cursor,
}

/// Below this many rows a batch is read in one query on one connection.
const SPLIT_MIN_ROWS: usize = 256;

/// The lease connection and the reader; `split` gives the reader a second connection.
pub(crate) async fn connect_pair(
    url: &str,
    cfg: &OutboxConfig,
    split: bool,
) -> Result<(PgLease, PgReader)> {
    let mut conn = connect(url).await?;
    // Completing a batch need not wait for its WAL flush: a completion lost in a database crash
    // only publishes those rows again, which at-least-once allows. Nothing else this session
    // writes (dead letters travel with their completion) needs more.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    // PostgreSQL checks a json or jsonb value on insert, so the relay need not parse it again.
    let payload_type: Option<String> = sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped",
    )
    .bind(sql::quote(Dialect::Postgres, &cfg.table))
    .bind(&cfg.columns.payload)
    .fetch_optional(&mut conn)
    .await
    // Not knowing (older servers lack `to_regclass(text)`) only means checking every payload.
    .ok()
    .flatten();
    let lease = PgLease {
        conn,
        payload_is_json: matches!(payload_type.as_deref(), Some("json" | "jsonb")),
        table: cfg.table.clone(),
        complete_sql: sql::complete_query(Dialect::Postgres, cfg, 0),
        dead_letter_sql: sql::dead_letter_query(Dialect::Postgres, cfg),
    };
    let (keys_sql, range_sql) = sql::pg_split_read_queries(cfg);
    let reader = PgReader {
        conn: connect(url).await?,
        helper: if split {
            Some(connect(url).await?)
        } else {
            None
        },
        read_sql: sql::read_query(Dialect::Postgres, cfg),
        keys_sql,
        range_sql,
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
        let rows = if self.helper.is_none() || (limit as usize) < SPLIT_MIN_ROWS {
            sqlx::query(&self.read_sql)
                .bind(self.cursor.tx.to_string())
                .bind(self.cursor.seq)
                .bind(i64::from(limit))
                .fetch_all(&mut self.conn)
                .await?
        } else {
            self.fetch_split(limit).await?
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let tx: i64 = r.try_get(0)?;
            let seq: i64 = r.try_get(1)?;
            out.push(decode_row!(r, 2, tx, seq, self.headers));
        }
        if let Some(last) = out.last() {
            self.cursor = Cursor {
                tx: last.tx,
                seq: last.seq,
            };
        }
        Ok(out)
    }

    /// The next batch's keys below the fence, then its rows in two key ranges at once.
    async fn fetch_split(&mut self, limit: u32) -> Result<Vec<PgRow>> {
        let keys: Vec<(i64, i64)> = sqlx::query_as(&self.keys_sql)
            .bind(self.cursor.tx.to_string())
            .bind(self.cursor.seq)
            .bind(i64::from(limit))
            .fetch_all(&mut self.conn)
            .await?;
        let Some(&(tx, seq)) = keys.last() else {
            return Ok(Vec::new());
        };
        let last = Cursor { tx, seq };
        let Some(helper) = self
            .helper
            .as_mut()
            .filter(|_| keys.len() >= SPLIT_MIN_ROWS)
        else {
            return Ok(range(
                &self.range_sql,
                &mut self.conn,
                self.cursor,
                last,
                keys.len(),
            )
            .await?);
        };
        let half = keys.len() / 2;
        let (mtx, mseq) = keys[half - 1];
        let mid = Cursor { tx: mtx, seq: mseq };
        let (first, second) = tokio::join!(
            range(&self.range_sql, &mut self.conn, self.cursor, mid, half),
            range(&self.range_sql, helper, mid, last, keys.len() - half),
        );
        let mut rows = first?;
        rows.extend(second?);
        Ok(rows)
    }

    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
        if let Some(h) = self.helper {
            let _ = h.close().await;
        }
    }
}

/// The `n` rows with keys in `(lo, hi]`, in commit order.
async fn range(
    sql: &str,
    conn: &mut PgConnection,
    lo: Cursor,
    hi: Cursor,
    n: usize,
) -> Result<Vec<PgRow>, sqlx::Error> {
    sqlx::query(sql)
        .bind(lo.tx.to_string())
        .bind(lo.seq)
        .bind(hi.tx.to_string())
        .bind(hi.seq)
        .bind(n as i64)
        .fetch_all(conn)
        .await
}
