//! End-to-end tests of strangler on real services: PostgreSQL, MariaDB, SQLite and a
//! Kafka-protocol broker. One binary, one module per suite.

mod admin;
mod cdc;
mod contracts;
mod demo;
mod harness;
mod projector;
mod proxy;
mod reconcile;
mod relay;
mod sinks;
