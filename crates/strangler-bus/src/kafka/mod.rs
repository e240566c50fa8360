//! The Kafka bus, through rdkafka.

pub mod producer;
