//! What can go wrong while capturing changes.

/// Errors of change capture. Setup errors say what to change; the rest are retried by the relay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server is not configured for logical decoding.
    #[error(
        "PostgreSQL has wal_level = `{0}`; logical decoding needs wal_level = logical. Fix: run \
         `ALTER SYSTEM SET wal_level = logical;` as a superuser (or set it in postgresql.conf), \
         make sure max_replication_slots and max_wal_senders are at least 1, then restart \
         PostgreSQL"
    )]
    WalLevel(String),
    /// The database, a table, the slot or the publication is not as the configuration says.
    #[error("{0}")]
    Setup(String),
    /// pgoutput sent bytes this decoder does not understand.
    #[error("pgoutput protocol: {0}")]
    Protocol(String),
    /// An outbox message could not be published and `[outbox] bad_rows = "stop"`.
    #[error("logical message at {lsn} cannot be published as an outbox event: {reason}")]
    BadMessage {
        /// The message's LSN.
        lsn: String,
        /// Why.
        reason: String,
    },
    /// The legacy database failed.
    #[error("legacy database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] strangler_bus::Error),
}

impl Error {
    /// Errors that a retry may cure (the database or the bus was away); the others need a person.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Sql(e) => {
                !matches!(
                    e,
                    sqlx::Error::Configuration(_) | sqlx::Error::ColumnDecode { .. }
                ) && !is_permission(e)
            }
            Error::Bus(e) => !matches!(e, strangler_bus::Error::Rejected(_)),
            _ => false,
        }
    }
}

fn is_permission(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "42501" || c == "28000" || c == "3D000" || c == "55000")
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
