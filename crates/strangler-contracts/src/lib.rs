//! Event contracts: what each event means, which shapes it has had, and how old shapes become the
//! current one.
//!
//! Events are the contract between the legacy write model and every read model. A registry in
//! files ([`Registry::load_dir`], `contracts/<aggregate>/<EventType>.v<N>.json`) holds one JSON
//! Schema per event version, with a description of what the event means and what it does not
//! imply, and the declarative [`upcast`] steps that bring the previous version to this one.
//! [`Registry::check`] validates a payload, upcasts it to the current version and validates the
//! result, so a projection only ever sees the current shape; the relay and the projector call it
//! (`strangler-outbox`, `strangler-projector`). [`compat`] compares consecutive versions and names
//! breaking changes for `strangler contracts check`; [`verify`] samples real events from the bus
//! for `strangler contracts verify`. Schemas can also come from a Kafka schema registry's
//! subject/version layout on disk ([`schema_registry`]).
//!
//! Everything here is pure apart from reading the registry's files; the bus is reached through
//! `strangler_bus::Consumer` only in [`verify`].

pub mod compat;
mod contract;
mod error;
mod registry;
pub mod schema_registry;
pub mod upcast;
pub mod verify;

#[cfg(test)]
mod tests;

pub use contract::{Contract, EventContract, Meta};
pub use error::{Error, Problem, Result};
pub use registry::{Checked, EventRef, Registry, SchemaError, Violation, ViolationKind};
pub use upcast::{CodeStep, Step};
