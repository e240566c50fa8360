//! The shadow proxy and per-capability cutover.
//!
//! Clients talk to the proxy instead of the legacy read API. Requests whose route belongs to no
//! capability stream straight through to legacy. For a capability, its serving mode (from the
//! control-plane store, re-read every `mode_poll_ms`) decides who answers: legacy, legacy with a
//! mirrored copy to the new read path (`shadow`), the new path for a stable share of keys
//! (`canary`), or the new path (`new`). Mirrored copies run in bounded pools off the client's
//! path and are judged by `strangler-diff`, lag-aware; verdict counts and latencies are flushed to
//! the store in batches, where promotion gates ([`gate`]) read them across proxies.
//!
//! The modules follow the request: [`router`] (which capability), [`modes`] (who serves),
//! `serve` (serving threads, each with its own upstream pool), [`forward`] (streaming to
//! upstreams), [`mirror`] (the copy and its comparison, on the
//! [`lane`], a lower-priority thread of its own), [`freshness`]
//! (lag budgets), [`ryw`] (read-your-writes), [`stats`] and [`hist`] (counters), and
//! [`cutover`] (the API that changes modes, and canary self-demotion).

pub mod config;
pub mod cutover;
mod error;
mod fast;
pub mod forward;
pub mod freshness;
pub mod gate;
mod handler;
pub mod hist;
pub mod lane;
pub mod mirror;
pub mod modes;
pub mod observe;
pub mod router;
pub mod ryw;
mod serve;
mod state;
pub mod stats;

pub use error::{Error, ProxyError, Result};
pub use observe::Observation;
pub use router::app;
pub use serve::default_threads;
pub use state::{CapabilityStatus, Proxy};
