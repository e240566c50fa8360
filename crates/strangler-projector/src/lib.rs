//! Projection runtime and read API: events from the bus become read models in SQL, with an
//! exactly-once effect, and are served as JSON.
//!
//! Projections are files (`projections/*.toml`, see [`definition`]) or Rust types implementing
//! [`Projection`]. The runtime ([`runtime`]) consumes a bounded batch through
//! `strangler_bus::Consumer`, applies it in one read-store transaction together with the
//! deduplication keys ([`dedup`]; or, with `[dedup] mode = "window"`, ids held in memory by
//! [`window`]), dead letters ([`dead_letter`]) and the checkpoint ([`checkpoint`], fenced by a
//! claim generation), and commits. Failure policies live in [`policy`]; replay and rebuild in
//! [`replay`]; side-by-side versions and promotion in [`version`]; lag and health in
//! [`freshness`]; the HTTP read API in [`read_api`]. A projection may name another sink than the
//! read store (Redis, ClickHouse): [`sink`].

pub mod apply;
pub mod batch;
pub mod checkpoint;
pub mod contracts;
pub mod dead_letter;
pub mod dedup;
pub mod definition;
mod error;
pub mod event;
pub mod freshness;
pub mod keys;
pub mod policy;
pub mod projection;
pub mod read_api;
pub mod replay;
pub mod runtime;
pub mod service;
pub mod sink;
pub mod source;
pub mod sql;
pub mod store;
pub mod version;
pub mod window;

pub use error::{Error, Result};
pub use projection::{Applied, ApplyError, ManyApplied, Projection, Settings, SqlProjection};
pub use service::Projector;
pub use source::Source;
