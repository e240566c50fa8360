//! Reconciliation: checks a whole projection against the legacy tables it mirrors, outside the
//! request path, and repairs only what drifted.
//!
//! Both sides are keyed queries from `[[reconcile]]` in the configuration. Each database
//! normalizes its rows to one text form (see [`normalize`]) and checksums chunks of the key
//! space itself ([`checksum`]); chunks that differ are bisected ([`bisect`], the method of
//! data-diff) until they are small, and only their rows are fetched and compared through
//! strangler-diff's rules ([`rows`]), so value maps and tolerances apply. Rows changed in legacy
//! after the projection's watermark are reported as in flight, not as drift ([`watermark`]).
//! Reports render as a table, JSON or Markdown ([`report`]), with sensitive values replaced by
//! keyed hashes ([`redact`]); [`repair`] replays drifted keys through a [`Repairer`]. A projection
//! kept as groups (a ClickHouse aggregate) is checked against the legacy `GROUP BY` instead
//! ([`aggregate`] reads the legacy side).

pub mod aggregate;
pub mod bisect;
pub mod checksum;
mod db;
mod engine;
mod error;
pub mod key;
pub mod normalize;
pub mod progress;
pub mod redact;
pub mod repair;
pub mod report;
pub mod rows;
mod side;
pub mod watermark;

pub use engine::Reconciler;
pub use error::{Error, Result};
pub use key::{Key, KeyKind};
pub use progress::Progress;
pub use repair::{RepairOutcome, Repaired, Repairer, repair_and_recheck};
pub use report::{Counts, Report};

/// Exit status when no drift was found (rows in flight are not drift).
pub const EXIT_OK: u8 = 0;
/// Exit status when drift was found.
pub const EXIT_DRIFT: u8 = 1;
/// Exit status when the reconciliation could not run.
pub const EXIT_ERROR: u8 = 2;
