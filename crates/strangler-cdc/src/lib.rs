//! Change capture without touching the legacy application: committed row changes read from a
//! PostgreSQL logical replication slot (pgoutput, through a publication) and published as
//! Debezium change events, so projections can start from the tables the legacy system has.
//!
//! [`Capture`] reads the slot over an ordinary connection with the SQL interface to logical
//! decoding (`pg_logical_slot_peek_binary_changes`), publishes each batch through
//! [`strangler_bus::Publisher`] (Kafka or the built-in log), and only then confirms it with
//! `pg_replication_slot_advance`: delivery is at-least-once from the slot's confirmed position,
//! and a redelivered change carries the same `source` (LSN, txId), from which projectors derive
//! the same event id and drop it. An initial snapshot runs in chunks between watermarks written
//! into the WAL (DBLog, Debezium's incremental snapshot), so it hands over to streaming with no
//! gap. Logical decoding messages with the outbox prefix become outbox events routed like outbox
//! rows. See docs/cdc.md.

mod capture;
mod error;
pub mod event;
mod metrics;
pub mod pg;
pub mod pgoutput;
pub mod stream;
pub mod value;

pub use capture::{Capture, CaptureOptions, CaptureReport};
pub use error::{Error, Result};
