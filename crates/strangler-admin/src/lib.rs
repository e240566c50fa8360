//! What strangler remembers about comparisons, and who may see and act on it.
//!
//! The shadow proxy judges mirrored copies and publishes them on an in-process feed
//! (`strangler_proxy::observe`). The [`recorder`] subscribes to that feed, passes each comparison
//! through the [`privacy`] rules (sensitive headers, body paths and query parameters replaced by
//! keyed HMACs before anything is stored) and writes, in batches, into the [`store`]: mismatches
//! grouped by fingerprint with first and last seen, hourly trend and a few redacted exemplars,
//! and what each comparison rule forgave or hid. [`triage`] acknowledges fingerprints, marks
//! them expected until a date (proposing a rule), or marks them fixed after re-sending a stored
//! request to both sides. [`report`] turns the store and the verdict counts into a
//! cutover-readiness report (terminal, JSON, Markdown, self-contained HTML), and [`api`] serves
//! all of it, with token authentication, roles and an audit trail, to the web dashboard.

pub mod api;
mod error;
pub mod privacy;
pub mod recorder;
pub mod report;
pub mod service;
pub mod store;
pub mod triage;

pub use error::{Error, Result};
pub use privacy::Redactor;
pub use store::MismatchStore;
