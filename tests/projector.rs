//! The projection runtime end to end: PostgreSQL and SQLite read stores, the built-in log and a
//! Kafka-protocol broker. Scenarios are written once over [`support::Env`] and run per backend.
//!
//! Event counts (override with environment variables; CI uses the defaults, about 2 minutes on a
//! 2-core machine): `STRANGLER_PROJECTOR_EVENTS_SQLITE_LOG` (100,000),
//! `STRANGLER_PROJECTOR_EVENTS_PG_LOG` (20,000), `STRANGLER_PROJECTOR_EVENTS_PG_KAFKA` (10,000), `..._SQLITE_KAFKA` (5,000),
//! `STRANGLER_PROJECTOR_EVENTS_KILL` (40,000).

mod drift;
mod keys;
mod kill;
mod poison;
mod read_api;
pub(crate) mod support;
mod versions;
mod window;
