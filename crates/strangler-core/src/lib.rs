//! The shared vocabulary of strangler.
//!
//! Every other crate speaks in these types: the [`event::EventEnvelope`] that travels from the
//! legacy outbox through the bus to the projectors, the [`capability`] types that say how a set of
//! routes is served (legacy, shadow, canary, new), and the validated [`config::Config`] that wires
//! a deployment together. Nothing here does I/O beyond reading the configuration file.

pub mod capability;
pub mod config;
pub mod event;

pub use capability::{Mode, ReadModelClass, WriteSafety};
pub use config::{Config, ConfigError};
pub use event::EventEnvelope;
