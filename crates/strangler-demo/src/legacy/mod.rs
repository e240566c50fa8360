//! The legacy orders application: schema, writer, and HTTP read API, on SQLite or PostgreSQL.

mod api;
mod writer;

pub use api::app as read_api;
pub use writer::{LegacyDb, LegacyPool, OrderEvent, Workload};
