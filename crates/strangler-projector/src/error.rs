//! The one error type of the projector.

use std::path::PathBuf;

/// What can go wrong running, replaying or serving a projection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Projection files could not be read or are invalid; every problem is listed.
    #[error("{}", render_problems(.0))]
    Definition(Vec<crate::definition::Problem>),
    /// A projection file could not be read.
    #[error("cannot read projection file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No projection with this name (and version) is defined.
    #[error("no projection named `{0}` is defined in the projections folder")]
    UnknownProjection(String),
    /// The read store failed.
    #[error("read store query failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// Connecting to or migrating the read store failed.
    #[error(transparent)]
    Store(#[from] strangler_store::Error),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] strangler_bus::Error),
    /// A non-SQL sink (Redis, ClickHouse) failed outside one event's effect.
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    /// Another consumer claimed a partition this one was applying; the batch was rolled back.
    #[error(
        "projection {projection} v{version}: partition {topic}/{partition} was claimed by another consumer; this one stops"
    )]
    Fenced {
        /// The projection.
        projection: String,
        /// Its version.
        version: u32,
        /// Topic of the partition.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The failure policy is `stop` (or retries ran out under `retry-then-stop`).
    #[error(
        "projection {projection} v{version} stopped at {topic}/{partition}@{offset}: {reason}: {detail}"
    )]
    Stopped {
        /// The projection.
        projection: String,
        /// Its version.
        version: u32,
        /// Topic of the failing event.
        topic: String,
        /// Partition of the failing event.
        partition: i32,
        /// Offset of the failing event.
        offset: i64,
        /// Classified reason.
        reason: crate::policy::Reason,
        /// The underlying message.
        detail: String,
    },
    /// An operator request that cannot be carried out as asked.
    #[error("{0}")]
    Refused(String),
}

fn render_problems(problems: &[crate::definition::Problem]) -> String {
    let mut out = format!(
        "projection definitions have {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string().replace('\n', "\n  "));
    }
    out
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
