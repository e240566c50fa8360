//! Errors of the mismatch store, triage and reports.

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] strangler_store::Error),
    /// A query of the mismatch tables failed.
    #[error("mismatch store query failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// Cutover state could not be read or changed.
    #[error(transparent)]
    Cutover(#[from] strangler_proxy::Error),
    /// No capability of that name is configured.
    #[error("no capability is named `{0}`; see `strangler cutover show` for the configured ones")]
    UnknownCapability(String),
    /// No fingerprint of that id was stored for the capability.
    #[error("capability `{capability}` has no stored fingerprint `{fingerprint}`")]
    UnknownFingerprint {
        /// The capability.
        capability: String,
        /// The fingerprint id.
        fingerprint: String,
    },
    /// A triage request made no sense.
    #[error("{0}")]
    BadRequest(String),
    /// Re-sending the stored request showed the difference is still there.
    #[error("fingerprint `{fingerprint}` is not fixed: re-sending its request gave `{verdict}`")]
    NotFixed {
        /// The fingerprint id.
        fingerprint: String,
        /// The verdict of the replay.
        verdict: String,
        /// The differences the replay found.
        differences: Vec<strangler_diff::Difference>,
    },
    /// The HMAC key could not be read or created.
    #[error("HMAC key file {path}: {source}")]
    Key {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A stored row held something the code does not understand.
    #[error("corrupt mismatch store row: {0}")]
    Corrupt(String),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
