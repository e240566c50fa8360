//! The outbox relay: carries domain events from the legacy database's outbox table to the bus.
//!
//! The legacy application writes each event to an outbox table in the same transaction as its
//! change. The relay reads those rows in commit order (PostgreSQL: a transaction-id fence;
//! MySQL/MariaDB: `seq` with gaps held back until they fill or prove to be rollbacks; SQLite: its
//! single writer's `seq` order), publishes them in Debezium's Outbox Event Router format through
//! [`strangler_bus`] (Kafka or the built-in log), and deletes or marks each row only after the
//! bus acknowledged it. One relay per outbox holds a lease; others wait as standbys. Rows that
//! cannot be published go to a dead-letter table with the reason, or stop the relay.
//!
//! Delivery is at-least-once: a crash between the acknowledgement and the delete publishes those
//! rows again on restart. Per-aggregate order holds because the key is the aggregate id.

mod backoff;
pub mod contracts;
mod dead_letter;
mod error;
mod lease;
pub mod metrics;
mod relay;
mod row;
mod sink;
mod source;

pub use dead_letter::BadRow;
pub use error::{Error, Result};
pub use relay::{Relay, RelayOptions, RelayReport};
pub use row::{OutboxRow, RowOutcome, to_record};
pub use sink::Sink;
pub use source::{Source, SourceKind};
