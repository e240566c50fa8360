//! `strangler demo` on PostgreSQL and Kafka, and the deployment recipes in `deploy/`: every example
//! configuration passes `strangler check-config` as its service would load it, and the systemd
//! units verify. (The embedded demo's own end-to-end test is in `crates/strangler-cli/tests`.)

mod deploy;
mod story;

use std::path::{Path, PathBuf};

pub(crate) use crate::harness::strangler_bin;

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
