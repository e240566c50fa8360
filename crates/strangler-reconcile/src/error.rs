//! The crate's one error type.

use thiserror::Error;

/// What can go wrong while reconciling.
#[derive(Debug, Error)]
pub enum Error {
    /// No `[[reconcile]]` entry has this name.
    #[error(
        "no [[reconcile]] or [[reconcile_aggregate]] entry is named `{0}`; define one in the configuration file"
    )]
    UnknownReconciliation(String),
    /// The configuration is inconsistent with what the databases return.
    #[error("reconciliation `{name}`: {message}")]
    Config {
        /// The reconciliation.
        name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A database URL has a scheme reconciliation cannot read.
    #[error("`{0}` is not a PostgreSQL, MySQL/MariaDB or SQLite URL")]
    UnsupportedUrl(String),
    /// A query failed on one side.
    #[error("{side} database: {what}: {source}")]
    Sql {
        /// `legacy` or `projection`.
        side: &'static str,
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The rules file could not be loaded.
    #[error("rules file `{path}`: {message}")]
    Rules {
        /// The file.
        path: String,
        /// Every problem found.
        message: String,
    },
    /// A watermark could not be read or parsed.
    #[error("watermark: {0}")]
    Watermark(String),
    /// Repair is not possible here.
    #[error("repair: {0}")]
    Repair(String),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
