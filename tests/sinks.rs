//! Projection sinks beyond SQL (#13): the same order stream projected into PostgreSQL and Redis by
//! the real runtime; SIGKILL of `strangler project run` at random moments; replay without
//! duplicates; rebuild into a fresh key namespace with an atomic switch; the read API answering
//! from Redis. Redis is the real one at 127.0.0.1:6379 (`STRANGLER_TEST_REDIS_URL` overrides);
//! every test writes under its own key prefix, so tests run in parallel.
//!
//! The kill test drives every sink through [`probe::Probe`]: adding a sink to it is one `Probe`
//! implementation and one line in [`kill::probes`].

use crate::projector::support;

mod clickhouse;
mod kill;
mod probe;
mod redis_sink;
