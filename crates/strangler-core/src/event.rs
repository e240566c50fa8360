//! The event envelope: one domain event as it travels from the outbox to the projectors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One domain event, independent of the bus that carried it.
///
/// Field names follow Debezium's Outbox Event Router so an envelope maps one to one onto an
/// outbox row and onto the Kafka record the router would have produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Unique event id (the outbox row's `id`); projectors deduplicate on it.
    pub id: Uuid,
    /// Aggregate type (`aggregatetype`), which picks the topic.
    pub aggregate_type: String,
    /// Aggregate id (`aggregateid`), the record key: one aggregate stays in one partition.
    pub aggregate_id: String,
    /// Event type (`type`), which picks the projection handler.
    pub event_type: String,
    /// The event body, as JSON.
    pub payload: serde_json::Value,
    /// When the legacy application wrote the event, if the outbox records it.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Extra columns carried as headers (tracing context and configured additions).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Where an event sits on the bus: the coordinates a projector checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Partition within the topic (the built-in log has partitions too).
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}
