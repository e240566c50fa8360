//! The short fault profile (CI): the whole pipeline under every fault kind, then the invariants.
//! `STRANGLER_FAULT_PROFILE=long` (or `deploy/fault-suite.sh`) runs the soak profile instead.

use strangler_fault::{Profile, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipeline_keeps_its_promises_under_faults() {
    let profile = Profile::from_env();
    let figures = scenario::run(&profile).await;
    eprintln!("{figures}");
    if let Ok(path) = std::env::var("STRANGLER_FAULT_REPORT") {
        std::fs::write(&path, figures.to_string()).expect("writing the report");
    }
    let failed = figures.failed();
    assert!(
        failed.is_empty(),
        "{} invariant(s) broken (replay with STRANGLER_FAULT_SEED={} STRANGLER_FAULT_PROFILE={}):\n{}",
        failed.len(),
        profile.seed,
        profile.name,
        failed
            .iter()
            .map(|c| format!("- {}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
