//! `strangler demo` on PostgreSQL and Kafka, and the deployment recipes in `deploy/`: every example
//! configuration passes `strangler check-config` as its service would load it, and the systemd
//! units verify. (The embedded demo's own end-to-end test is in `crates/strangler-cli/tests`.)

mod deploy;
mod story;

use std::path::{Path, PathBuf};

/// The `strangler` binary this test run uses.
fn strangler_bin() -> PathBuf {
    std::env::var("CARGO_BIN_EXE_strangler")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| repo().join("target"));
            let bin = target.join("debug/strangler");
            assert!(
                bin.exists(),
                "{} is missing: run `cargo build -p strangler-cli` first (deploy/test.sh does)",
                bin.display()
            );
            bin
        })
}

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
