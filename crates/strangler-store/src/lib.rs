//! strangler's own database: connection, migrations, and the control-plane tables.
//!
//! The same schema lives in PostgreSQL (many machines share one control plane) and SQLite (the
//! embedded default). Migrations are embedded from `migrations/postgres` and `migrations/sqlite`.

pub mod cutover;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// strangler's migrations for PostgreSQL.
pub static PG_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");
/// strangler's migrations for SQLite.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL names a database kind the store does not support.
    #[error("unsupported store URL `{0}`: use sqlite://FILE or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// The database could not be reached.
    #[error("cannot connect to the store at {url}: {source}")]
    Connect {
        /// The URL, with any password removed.
        url: String,
        /// The driver error.
        source: sqlx::Error,
    },
    /// Applying migrations failed.
    #[error("migrating the store failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("store query failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// A row held a value the code does not understand.
    #[error("corrupt store row: {0}")]
    Corrupt(String),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connection pool to strangler's store, PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub enum Store {
    /// PostgreSQL: the control plane for many machines.
    Postgres(PgPool),
    /// SQLite: the embedded default for one machine.
    Sqlite(SqlitePool),
}

impl Store {
    /// Connects to `url`, creating a SQLite file (and its folder) when it does not exist.
    pub async fn connect(url: &str) -> Result<Store> {
        let redacted = redact_url(url);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|source| Error::Connect {
                    url: redacted,
                    source,
                })?;
            Ok(Store::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(connect_sqlite(url).await?))
        } else {
            Err(Error::UnsupportedUrl(redacted))
        }
    }

    /// Applies strangler's migrations for this database kind.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Postgres(pool) => PG_MIGRATOR.run(pool).await?,
            Store::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// `postgres` or `sqlite`, for logs and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(_) => "sqlite",
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match self {
            Store::Postgres(p) => p.close().await,
            Store::Sqlite(p) => p.close().await,
        }
    }
}

/// Opens a SQLite pool tuned for one writer and many readers (WAL, a busy timeout).
pub async fn connect_sqlite(url: &str) -> Result<SqlitePool> {
    let redacted = redact_url(url);
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|source| Error::Connect {
            url: redacted.clone(),
            source,
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    if let Some(parent) = Path::new(opts.get_filename()).parent()
        && !parent.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(parent);
    }
    SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await
        .map_err(|source| Error::Connect {
            url: redacted,
            source,
        })
}

/// Removes the password from a database URL so it can be logged.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
