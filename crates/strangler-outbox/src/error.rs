//! What can go wrong in the relay.

/// Errors of the outbox relay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The legacy database URL names a database the relay does not read.
    #[error(
        "unsupported legacy database URL `{0}`: use postgres://, mysql:// (MySQL or MariaDB) or sqlite://"
    )]
    UnsupportedUrl(String),
    /// The legacy database could not be reached.
    #[error("cannot connect to the legacy database at {url}: {source}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// The driver error.
        source: sqlx::Error,
    },
    /// A query on the legacy database failed.
    #[error("outbox query failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// Publishing failed.
    #[error("publishing failed: {0}")]
    Bus(#[from] strangler_bus::Error),
    /// Another relay holds the outbox now; this one must stop writing.
    #[error("lost the outbox lease: {0}")]
    Fenced(String),
    /// A row cannot be published and `bad_rows = "stop"`.
    #[error(
        "outbox row {id} cannot be published: {reason} (bad_rows = \"stop\"; fix or remove the row, or set bad_rows = \"dead-letter\")"
    )]
    BadRow {
        /// The row's event id (or `seq` when the id is unreadable).
        id: String,
        /// Why it cannot be published.
        reason: String,
    },
    /// The read connection's task ended without handing the connection back.
    #[error("the outbox read task was cancelled; reconnecting")]
    ReaderLost,
    /// Shutting down, the relay ran out of drain time with batches still unconfirmed.
    #[error(
        "gave up draining after {after_ms} ms with {rows} rows unconfirmed by the bus or the database; they stay in the outbox and are published again when a relay next runs"
    )]
    DrainTimedOut {
        /// Rows handed to the bus and not completed in the outbox.
        rows: usize,
        /// The drain time allowed.
        after_ms: u64,
    },
    /// The Kafka producer hit a fatal error and cannot keep its ordering guarantee.
    #[error("the Kafka producer failed fatally: {0}; restart the relay")]
    ProducerFatal(String),
}

impl Error {
    /// Whether retrying (after a pause, on a fresh connection) can help.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Error::UnsupportedUrl(_)
                | Error::BadRow { .. }
                | Error::ProducerFatal(_)
                | Error::DrainTimedOut { .. }
        )
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
