//! Sinks: where a projection's effects land. The SQL read store is the default sink (the handlers'
//! SQL runs in the batch's transaction, as before); other sinks (Redis, ClickHouse) implement
//! [`Sink`] and keep exactly-once effect themselves: every write carries the events' positions,
//! the sink stores its own next offset per partition atomically with the writes, and skips events
//! it has already applied. The read store still holds checkpoints, dedup keys, dead letters,
//! claims and freshness for every sink, so the runtime, policies, replay, versions and the read
//! API's freshness headers work the same whichever sink a projection names. Reference:
//! docs/sinks.md.

mod bind;
pub mod clickhouse;
pub mod config;
mod interface;
pub mod redis;
mod registry;
pub mod template;

#[cfg(test)]
mod tests;

pub use bind::Bound;
pub use config::{ClickHouseColumn, ClickHouseShape, SinkDef, SinkKind, SinkOp};
pub use interface::{Binding, Build, Mode, Sink, SinkError, SinkPosition, SinkRead};
pub use registry::Sinks;
