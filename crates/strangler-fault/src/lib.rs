//! The whole-pipeline fault suite: the real `strangler` binaries (relay, projector, read API,
//! proxy in shadow mode) on PostgreSQL and a tansu broker, a legacy orders system writing at a
//! steady rate, client traffic through the proxy, and faults on a schedule drawn from a fixed
//! seed. At the end the run is reduced to figures and checked against the promises the system
//! makes: every legacy event in the read model exactly once, every client answer equal to
//! legacy's, faults behind the proxy invisible to clients, memory bounded, and every dropped
//! shadow copy and dead-lettered event counted.
//!
//! `tests/fault.rs` runs the short profile in CI; `deploy/fault-suite.sh` runs the long one.
//! Results of a long run are recorded in docs/RELIABILITY.md.

pub mod client;
pub mod cluster;
pub mod figures;
pub mod files;
pub mod legacy;
pub mod profile;
pub mod scenario;
pub mod schedule;
pub mod shim;

pub use figures::Figures;
pub use profile::Profile;
