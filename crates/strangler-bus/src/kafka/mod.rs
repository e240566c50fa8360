//! The Kafka bus, through rdkafka.

pub mod consumer;
pub mod producer;
