//! One interface over the two buses strangler carries events on: Kafka (through rdkafka) and the
//! built-in log (a table in strangler's store, for one machine without Kafka).
//!
//! The relay publishes through [`Publisher`]; projectors consume through [`Consumer`]. Neither
//! knows which bus runs underneath. Records keep Kafka's shape (topic, partition, offset, key,
//! value, headers) on both, so a projector's checkpoint means the same thing on either.

pub mod debezium;
pub mod kafka;
pub mod log;
mod record;

pub use kafka::consumer::KafkaConsumer;
pub use kafka::producer::{KafkaPublisher, PendingDelivery};
pub use log::consumer::LogConsumer;
pub use log::publisher::LogPublisher;
pub use record::{Header, OutgoingRecord, Record, log_partition_for};

use std::time::Duration;

use async_trait::async_trait;
use strangler_core::event::Position;

/// What can go wrong on a bus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker or the log's database is unreachable or refused the operation; retry later.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// A record was rejected for good (too large, unknown topic, not authorized).
    #[error("record rejected by the bus: {0}")]
    Rejected(String),
    /// The consumer lost its partitions to another member; it must stop applying them.
    #[error("partition assignment revoked: {0}")]
    Revoked(String),
    /// The built-in log's database failed.
    #[error("built-in log query failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// Kafka client error.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Publishes records durably. Implementations keep per-key order within a call and across calls.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes `batch` in order and returns once every record is acknowledged (Kafka: its
    /// delivery report with `acks=all`; the log: its transaction committed), with each record's
    /// position in the same order. On error, some records may have been published: callers
    /// retry the whole batch, which is why the guarantee is at-least-once.
    async fn publish(&self, batch: Vec<OutgoingRecord>) -> Result<Vec<Position>>;
}

/// Where a consumer starts reading a partition it has just been given.
#[async_trait]
pub trait StartOffsets: Send + Sync {
    /// The next offset to read for `topic`/`partition`, or `None` to start from the beginning.
    /// Projectors answer from their checkpoint table in the read store.
    async fn start_offset(&self, topic: &str, partition: i32) -> Result<Option<i64>>;
}

/// Reads records from topics, in order per partition.
#[async_trait]
pub trait Consumer: Send {
    /// Waits up to `max_wait` for records and returns at most `max_records`, in offset order per
    /// partition. An empty batch means nothing arrived in time.
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>>;

    /// Moves the read position of one partition (replay from an offset).
    async fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()>;

    /// The partitions this consumer currently reads, as (topic, partition).
    fn assignment(&self) -> Vec<(String, i32)>;

    /// The offset after the last record of each assigned partition, for lag (high watermark).
    async fn end_offsets(&self) -> Result<Vec<(String, i32, i64)>>;

    /// Records that everything before `position` in `topic` is applied (Kafka: commits the group
    /// offset, for tooling; the source of truth stays the read store's checkpoint).
    async fn mark_applied(&mut self, topic: &str, position: Position) -> Result<()>;
}
