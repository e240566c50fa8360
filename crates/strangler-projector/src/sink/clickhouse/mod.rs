//! The ClickHouse sink: analytical read models (append tables and aggregates) in ClickHouse,
//! through `strangler-clickhouse`. Reference: docs/clickhouse.md.

mod sink;

pub use sink::ClickHouseSink;
