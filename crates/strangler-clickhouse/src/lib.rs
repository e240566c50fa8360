//! ClickHouse for projections: the column store where analytical read models live.
//!
//! strangler talks to ClickHouse over its HTTP interface (port 8123) with hyper; statements travel
//! in the request body, inserts as `JSONEachRow` batches ([`Client`]). A projection's tables are
//! [`table::TableSpec`]s: **append** tables of facts, and **aggregates** (facts plus a grouped
//! `FINAL` view, for example revenue per day and region). ClickHouse cannot commit an offset in
//! the same transaction as the rows, so the exactly-once effect rests on the event position every
//! row carries: the [`Writer`] drops rows at or below each table's stored high-water position,
//! the tables are `ReplacingMergeTree`s keyed by that position, and the offsets themselves live
//! in ClickHouse ([`offsets`]), written after the rows. Rebuilds write new tables and swap them
//! in with `RENAME TABLE` ([`rebuild`]). The projection runtime's ClickHouse sink
//! (`strangler-projector`) drives this crate; the server is Debian's `clickhouse-server` 18.16.

mod client;
mod error;
pub mod offsets;
pub mod rebuild;
pub mod reconcile;
pub mod rows;
pub mod sql;
pub mod table;
pub mod writer;

pub use client::{Client, Endpoint};
pub use error::{Error, Result};
pub use rows::{Position, Row};
pub use table::{AggFn, Column, Measure, TableKind, TableSpec};
pub use writer::{WriteStats, Writer};
