//! Reading the outbox in commit order, one module per database, and completing rows (delete or
//! mark, plus dead letters) on the connection that holds the lease.

mod mysql;
mod postgres;
pub(crate) mod sql;
mod sqlite;

use std::time::Duration;

use strangler_core::config::OutboxConfig;

use tracing::Instrument as _;

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

/// The relay's two connections to the legacy database: one holds (or waits for) the outbox lease
/// and completes rows, the other reads the next batch meanwhile.
pub struct Source {
    inner: Inner,
    /// Whether the last read ran beside a completion that succeeded, which proves the lock was
    /// still held after that read began.
    lease_proven: bool,
    url: String,
    cfg: OutboxConfig,
    tuning: Tuning,
}

/// How long the relay's statements may wait on the legacy database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// SQLite: how long a statement waits for the write lock before failing with "busy".
    pub(crate) sqlite_busy: Duration,
    /// PostgreSQL: fetch a large batch's rows in two halves on two connections at once.
    pub(crate) pg_split_reads: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            // SQLite's busy handler is not a queue: under many writers on a loaded machine the
            // relay can lose the write lock for seconds at a time. A busy error resumes on new
            // connections with the cursor kept (see `Source::resume`), so this only sets how
            // often that happens.
            sqlite_busy: Duration::from_secs(60),
            pg_split_reads: true,
        }
    }
}

/// What one round on the legacy database did: the completion's outcome and the read's, apart,
/// so that a failed read does not hide a completion that committed (or the other way round).
pub(crate) struct Round {
    pub(crate) completed: Result<()>,
    pub(crate) read: Result<Option<Vec<OutboxRow>>>,
}

/// The lease connection and the read connection (out only while a read task has it).
enum Inner {
    Postgres(postgres::PgLease, Option<postgres::PgReader>),
    Mysql(mysql::MyLease, Option<mysql::MyReader>),
    Sqlite(sqlite::LiteLease, Option<sqlite::LiteReader>),
}

/// A connection that reads batches in commit order.
trait Reader: Send + 'static {
    fn read_batch(&mut self, limit: u32) -> impl Future<Output = Result<Vec<OutboxRow>>> + Send;
}

impl Reader for postgres::PgReader {
    fn read_batch(&mut self, limit: u32) -> impl Future<Output = Result<Vec<OutboxRow>>> + Send {
        postgres::PgReader::read_batch(self, limit)
    }
}

impl Reader for mysql::MyReader {
    fn read_batch(&mut self, limit: u32) -> impl Future<Output = Result<Vec<OutboxRow>>> + Send {
        mysql::MyReader::read_batch(self, limit)
    }
}

impl Reader for sqlite::LiteReader {
    fn read_batch(&mut self, limit: u32) -> impl Future<Output = Result<Vec<OutboxRow>>> + Send {
        sqlite::LiteReader::read_batch(self, limit)
    }
}

/// Runs a completion and a read at once, on their two connections. The read runs as a task of
/// its own, so decoding rows takes another core while this task completes and publishes.
async fn both<R: Reader>(
    complete: impl Future<Output = Result<()>>,
    reader: &mut Option<R>,
    read: Option<u32>,
) -> Round {
    let Some(limit) = read else {
        return Round {
            completed: complete.await,
            read: Ok(None),
        };
    };
    let Some(mut r) = reader.take() else {
        return Round {
            completed: complete.await,
            read: Err(Error::ReaderLost),
        };
    };
    let task = tokio::spawn(
        async move {
            let rows = r.read_batch(limit).await;
            (r, rows)
        }
        .in_current_span(),
    );
    let completed = complete.await;
    let (r, rows) = match task.await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => {
            return Round {
                completed,
                read: Err(Error::ReaderLost),
            };
        }
    };
    *reader = Some(r);
    Round {
        completed,
        read: rows.map(Some),
    }
}

impl Source {
    /// Connects to the outbox at `url`.
    pub async fn connect(url: &str, cfg: &OutboxConfig) -> Result<Source> {
        Source::connect_tuned(url, cfg, Tuning::default()).await
    }

    pub(crate) async fn connect_tuned(
        url: &str,
        cfg: &OutboxConfig,
        tuning: Tuning,
    ) -> Result<Source> {
        let inner = match SourceKind::from_url(url)? {
            SourceKind::Postgres => {
                let (l, r) = postgres::connect_pair(url, cfg, tuning.pg_split_reads).await?;
                Inner::Postgres(l, Some(r))
            }
            SourceKind::Mysql => {
                let (l, r) = mysql::connect_pair(url, cfg).await?;
                Inner::Mysql(l, Some(r))
            }
            SourceKind::Sqlite => {
                let (l, r) = sqlite::connect_pair(url, cfg, tuning.sqlite_busy, None).await?;
                Inner::Sqlite(l, Some(r))
            }
        };
        Ok(Source {
            inner,
            lease_proven: false,
            url: url.to_string(),
            cfg: cfg.clone(),
            tuning,
        })
    }

    /// After a failed statement, opens new connections and carries on where this relay was —
    /// cursor, and the batches it has in flight — if it can prove the outbox stayed its own in
    /// between, so nothing it handed to the bus is read and published again. SQLite only: its
    /// lease is a row that names this relay, and a lease row still naming it (expired or not)
    /// proves no other relay took the outbox meanwhile. PostgreSQL and MySQL/MariaDB hold their
    /// lock on a session, which a new connection cannot inherit: `Ok(false)`, start afresh.
    /// [`Error::Fenced`] when another relay took the lease.
    pub(crate) async fn resume(&mut self) -> Result<bool> {
        let Inner::Sqlite(l, Some(r)) = &self.inner else {
            return Ok(false);
        };
        let (holder, cursor) = (l.holder().to_string(), r.cursor);
        let (mut lease, mut reader) =
            sqlite::connect_pair(&self.url, &self.cfg, self.tuning.sqlite_busy, Some(holder))
                .await?;
        lease.reclaim().await?;
        reader.cursor = cursor;
        let old = std::mem::replace(&mut self.inner, Inner::Sqlite(lease, Some(reader)));
        self.lease_proven = false;
        // The old connections may be stuck behind the lock that failed them: let them go
        // without waiting.
        drop(old);
        Ok(true)
    }

    /// Whether the payload column's type makes the database reject anything but JSON.
    pub fn payload_is_json(&self) -> bool {
        match &self.inner {
            Inner::Postgres(l, _) => l.payload_is_json,
            _ => false,
        }
    }

    /// The database kind.
    pub fn kind(&self) -> SourceKind {
        match &self.inner {
            Inner::Postgres(..) => SourceKind::Postgres,
            Inner::Mysql(..) => SourceKind::Mysql,
            Inner::Sqlite(..) => SourceKind::Sqlite,
        }
    }

    /// Tries once to take the lease; `false` means another relay holds it.
    pub async fn try_lease(&mut self) -> Result<bool> {
        match &mut self.inner {
            Inner::Postgres(l, _) => l.try_lease().await,
            Inner::Mysql(l, _) => l.try_lease().await,
            Inner::Sqlite(l, _) => l.try_lease().await,
        }
    }

    /// Confirms the lease is still ours (and renews it where it expires); [`Error::Fenced`] if not.
    pub async fn renew_lease(&mut self) -> Result<()> {
        match &mut self.inner {
            Inner::Postgres(l, _) => l.check_lease().await,
            Inner::Mysql(l, _) => l.check_lease().await,
            Inner::Sqlite(l, _) => l.renew_lease().await,
        }
    }

    /// Makes sure the lease is still ours before the batch read last is published;
    /// [`Error::Fenced`] if another relay took it. PostgreSQL and MySQL/MariaDB hold their lock
    /// as long as the lease connection lives: a completion that ran beside the read proves it,
    /// else the lock is checked. SQLite renews its lease once half of it has passed.
    pub async fn guard_lease(&mut self) -> Result<()> {
        match &mut self.inner {
            Inner::Sqlite(l, _) => l.guard_lease().await,
            Inner::Postgres(l, _) if !self.lease_proven => l.check_lease().await,
            Inner::Mysql(l, _) if !self.lease_proven => l.check_lease().await,
            _ => Ok(()),
        }
    }

    /// Reads up to `limit` rows after the cursor, in commit order, and moves the cursor past them.
    pub async fn read_batch(&mut self, limit: u32) -> Result<Vec<OutboxRow>> {
        let round = self.complete_and_read(&[], &[], Some(limit)).await;
        round.completed?;
        round.read.map(Option::unwrap_or_default)
    }

    /// The read cursor.
    pub fn cursor(&self) -> Cursor {
        match &self.inner {
            Inner::Postgres(_, r) => r.as_ref().map(|r| r.cursor),
            Inner::Mysql(_, r) => r.as_ref().map(|r| r.cursor),
            Inner::Sqlite(_, r) => r.as_ref().map(|r| r.cursor),
        }
        .unwrap_or_default()
    }

    /// Moves the read cursor back (after a failed delivery) so those rows are read again.
    pub fn rewind(&mut self, to: Cursor) {
        match &mut self.inner {
            Inner::Postgres(_, Some(r)) => r.cursor = to,
            Inner::Mysql(_, Some(r)) => r.rewind(to),
            Inner::Sqlite(_, Some(r)) => r.cursor = to,
            _ => {}
        }
    }

    /// Whether rows are being held back behind a gap (MySQL/MariaDB): not drained yet.
    pub fn holding_gap(&self) -> bool {
        match &self.inner {
            Inner::Mysql(_, Some(r)) => r.holding_gap(),
            _ => false,
        }
    }

    /// At once, on the two connections: completes a batch (in one transaction on the lease
    /// connection: inserts the dead letters, then deletes or marks the published rows `done` and
    /// the bad rows) and, with `read = Some(limit)`, reads the next one. A relay that lost its
    /// lease cannot complete rows: the completion needs the lease connection (and, on SQLite,
    /// renews the lease in its transaction). Each outcome is returned on its own; the caller
    /// publishes the rows read only if the completion succeeded too.
    pub(crate) async fn complete_and_read(
        &mut self,
        done: &[Cursor],
        bad: &[BadRow],
        read: Option<u32>,
    ) -> Round {
        let bad_cursors = bad.iter().map(|b| Cursor {
            tx: b.row.tx,
            seq: b.row.seq,
        });
        let all = || done.iter().copied().chain(bad_cursors.clone());
        let range = all().min().zip(all().max());
        let rows = done.len() + bad.len();
        self.lease_proven = false;
        let read = match &mut self.inner {
            Inner::Postgres(l, r) => {
                let complete = async {
                    match range {
                        // A batch is a contiguous range below the fence: no other row can be
                        // inside it.
                        Some((lo, hi)) => l.complete(lo, hi, rows, bad).await,
                        None => Ok(()),
                    }
                };
                both(complete, r, read).await
            }
            Inner::Mysql(l, r) => {
                let seqs: Vec<i64> = all().map(|c| c.seq).collect();
                let complete = async {
                    match range {
                        Some(_) => l.complete(&seqs, bad).await,
                        None => Ok(()),
                    }
                };
                both(complete, r, read).await
            }
            Inner::Sqlite(l, r) => {
                let complete = async {
                    match range {
                        Some((lo, hi)) => l.complete(lo.seq, hi.seq, bad).await,
                        None => Ok(()),
                    }
                };
                both(complete, r, read).await
            }
        };
        self.lease_proven = range.is_some() && read.completed.is_ok();
        read
    }

    /// Closes both connections, releasing the lease.
    pub async fn close(self) {
        match self.inner {
            Inner::Postgres(l, r) => {
                l.close().await;
                if let Some(r) = r {
                    r.close().await;
                }
            }
            Inner::Mysql(l, r) => {
                l.close().await;
                if let Some(r) = r {
                    r.close().await;
                }
            }
            Inner::Sqlite(l, r) => {
                l.close().await;
                if let Some(r) = r {
                    r.close().await;
                }
            }
        }
    }
}

/// The error for a failed connection to `url`, its password removed.
pub(crate) fn connect_error(url: &str) -> impl FnOnce(sqlx::Error) -> Error {
    let url = strangler_store::redact_url(url);
    move |source| Error::Connect { url, source }
}

/// Finishes a batch in the open transaction `$tx`: inserts each bad row into the dead-letter
/// table (`$dead_letter_sql`, 8 parameters), runs `$complete` (the delete or mark, parameters
/// bound) and commits; returns early with the error if any step fails. One macro for the three drivers, whose connection types differ.
macro_rules! finish_batch {
    ($tx:ident, $dead_letter_sql:expr, $table:expr, $bad:expr, $complete:expr) => {{
        for b in $bad {
            sqlx::query($dead_letter_sql)
                .bind($table)
                .bind(&b.row.id)
                .bind(&b.row.aggregate_type)
                .bind(&b.row.aggregate_id)
                .bind(&b.row.event_type)
                .bind(&b.row.payload)
                .bind(b.headers_json())
                .bind(&b.reason)
                .execute(&mut *$tx)
                .await?;
        }
        $complete.execute(&mut *$tx).await?;
        $tx.commit().await?;
    }};
}
pub(crate) use finish_batch;

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
