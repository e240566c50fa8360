//! Reading the outbox in commit order, one module per database, and completing rows (delete or
//! mark, plus dead letters) on the connection that holds the lease.

mod mysql;
mod postgres;
pub(crate) mod sql;
mod sqlite;

use strangler_core::config::OutboxConfig;

use crate::{BadRow, Error, OutboxRow, Result};

/// Which database the outbox lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// PostgreSQL 13+.
    Postgres,
    /// MySQL 8 or MariaDB 10.6+.
    Mysql,
    /// SQLite.
    Sqlite,
}

impl SourceKind {
    /// The kind a URL names.
    pub fn from_url(url: &str) -> Result<SourceKind> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "postgres" | "postgresql" => Ok(SourceKind::Postgres),
            "mysql" | "mariadb" => Ok(SourceKind::Mysql),
            "sqlite" => Ok(SourceKind::Sqlite),
            _ => Err(Error::UnsupportedUrl(strangler_store::redact_url(url))),
        }
    }
}

/// Where the relay has read up to: all rows at or before it were handed to the bus.
/// PostgreSQL orders by (transaction id, seq); the others by seq alone (`tx` stays 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// PostgreSQL transaction id (`xid8`) of the last row read.
    pub tx: i64,
    /// `seq` of the last row read.
    pub seq: i64,
}

/// One connection to the legacy database, holding (or waiting for) the outbox lease.
pub struct Source {
    inner: Inner,
}

enum Inner {
    Postgres(postgres::PgSource),
    Mysql(mysql::MySource),
    Sqlite(sqlite::LiteSource),
}

impl Source {
    /// Connects to the outbox at `url`.
    pub async fn connect(url: &str, cfg: &OutboxConfig) -> Result<Source> {
        let inner = match SourceKind::from_url(url)? {
            SourceKind::Postgres => Inner::Postgres(postgres::PgSource::connect(url, cfg).await?),
            SourceKind::Mysql => Inner::Mysql(mysql::MySource::connect(url, cfg).await?),
            SourceKind::Sqlite => Inner::Sqlite(sqlite::LiteSource::connect(url, cfg).await?),
        };
        Ok(Source { inner })
    }

    /// The database kind.
    pub fn kind(&self) -> SourceKind {
        match &self.inner {
            Inner::Postgres(_) => SourceKind::Postgres,
            Inner::Mysql(_) => SourceKind::Mysql,
            Inner::Sqlite(_) => SourceKind::Sqlite,
        }
    }

    /// Tries once to take the lease; `false` means another relay holds it.
    pub async fn try_lease(&mut self) -> Result<bool> {
        match &mut self.inner {
            Inner::Postgres(s) => s.try_lease().await,
            Inner::Mysql(s) => s.try_lease().await,
            Inner::Sqlite(s) => s.try_lease().await,
        }
    }

    /// Confirms the lease is still ours (and renews it where it expires); [`Error::Fenced`] if not.
    pub async fn renew_lease(&mut self) -> Result<()> {
        match &mut self.inner {
            Inner::Postgres(s) => s.check_lease().await,
            Inner::Mysql(s) => s.check_lease().await,
            Inner::Sqlite(s) => s.renew_lease().await,
        }
    }

    /// Reads up to `limit` rows after the cursor, in commit order, and moves the cursor past them.
    pub async fn read_batch(&mut self, limit: u32) -> Result<Vec<OutboxRow>> {
        match &mut self.inner {
            Inner::Postgres(s) => s.read_batch(limit).await,
            Inner::Mysql(s) => s.read_batch(limit).await,
            Inner::Sqlite(s) => s.read_batch(limit).await,
        }
    }

    /// The read cursor.
    pub fn cursor(&self) -> Cursor {
        match &self.inner {
            Inner::Postgres(s) => s.cursor,
            Inner::Mysql(s) => s.cursor,
            Inner::Sqlite(s) => s.cursor,
        }
    }

    /// Moves the read cursor back (after a failed delivery) so those rows are read again.
    pub fn rewind(&mut self, to: Cursor) {
        match &mut self.inner {
            Inner::Postgres(s) => s.cursor = to,
            Inner::Mysql(s) => s.rewind(to),
            Inner::Sqlite(s) => s.cursor = to,
        }
    }

    /// Whether rows are being held back behind a gap (MySQL/MariaDB): not drained yet.
    pub fn holding_gap(&self) -> bool {
        match &self.inner {
            Inner::Mysql(s) => s.holding_gap(),
            _ => false,
        }
    }

    /// In one transaction: inserts the dead letters, then deletes or marks `seqs` and the bad
    /// rows. Runs on the lease connection, so a relay that lost its lease cannot complete rows.
    pub async fn complete(&mut self, done: &[Cursor], bad: &[BadRow]) -> Result<()> {
        if done.is_empty() && bad.is_empty() {
            return Ok(());
        }
        let mut all: Vec<Cursor> = Vec::with_capacity(done.len() + bad.len());
        all.extend_from_slice(done);
        all.extend(bad.iter().map(|b| Cursor {
            tx: b.row.tx,
            seq: b.row.seq,
        }));
        match &mut self.inner {
            Inner::Postgres(s) => {
                // A batch is a contiguous range below the fence: no other row can be inside it.
                let lo = all.iter().min().copied().unwrap_or_default();
                let hi = all.iter().max().copied().unwrap_or_default();
                s.complete(lo, hi, all.len(), bad).await
            }
            Inner::Mysql(s) => s.complete(&seqs(&all), bad).await,
            Inner::Sqlite(s) => s.complete(&seqs(&all), bad).await,
        }
    }

    /// Closes the connection, releasing the lease.
    pub async fn close(self) {
        match self.inner {
            Inner::Postgres(s) => s.close().await,
            Inner::Mysql(s) => s.close().await,
            Inner::Sqlite(s) => s.close().await,
        }
    }
}

fn seqs(c: &[Cursor]) -> Vec<i64> {
    c.iter().map(|c| c.seq).collect()
}

/// Decodes the common columns of a read query, starting at column `at`.
macro_rules! decode_row {
    ($row:expr, $at:expr, $tx:expr, $seq:expr, $headers:expr) => {{
        use sqlx::Row as _;
        let r = $row;
        let at: usize = $at;
        let mut headers = Vec::with_capacity($headers.len());
        for (i, (name, _)) in $headers.iter().enumerate() {
            headers.push((name.clone(), r.try_get::<Option<String>, _>(at + 6 + i)?));
        }
        crate::OutboxRow {
            tx: $tx,
            seq: $seq,
            id: r.try_get(at)?,
            aggregate_type: r.try_get(at + 1)?,
            aggregate_id: r.try_get(at + 2)?,
            event_type: r.try_get(at + 3)?,
            payload: r.try_get(at + 4)?,
            timestamp_ms: r.try_get(at + 5)?,
            headers,
        }
    }};
}
pub(crate) use decode_row;
