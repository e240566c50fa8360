//! The built-in log: Kafka-like topics, partitions and offsets in strangler's store.

pub mod consumer;
pub mod publisher;
