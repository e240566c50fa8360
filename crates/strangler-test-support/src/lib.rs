//! Test harness on real services.
//!
//! Each test gets what it needs fresh: a PostgreSQL database ([`pg_database`]), a MariaDB database
//! ([`mysql_database`]), a SQLite file ([`sqlite_file`]), unique topics and groups on a
//! Kafka-protocol broker ([`broker`]), and small fake HTTP upstreams ([`upstream`]). Nothing
//! depends on what another test left behind. A missing service fails the test with a message that
//! says how to start it; nothing is skipped silently.

mod broker;
pub mod clickhouse;
pub mod cpu;
mod databases;
pub mod logical_pg;
pub mod upstream;

pub use broker::{Broker, broker, unique_name};
pub use databases::{TestDb, mysql_database, pg_database, sqlite_file};

/// Builds a tokio runtime for the synchronous parts of the harness (drops, one-time setup).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a tokio runtime for the test harness")
}
