//! Repair: replay the events of drifted keys through the projection, then check those keys again.
//!
//! The projector owns replay; this crate only says which keys and verifies the result, through
//! [`Repairer`], so the CLI can wire whichever replay the projector offers.

use std::future::Future;

use serde::Serialize;

use crate::error::Result;

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairOutcome {
    /// Keys whose events were replayed.
    pub keys: u64,
    /// Events applied again.
    pub events: u64,
}

/// Replays the events of a set of keys through the projection.
pub trait Repairer: Sync {
    /// Replays every event of `keys` (aggregate ids, as text) and waits until they are applied.
    fn repair(&self, keys: &[String]) -> impl Future<Output = Result<RepairOutcome>> + Send;
}

/// What `--repair` did: the replay, and the re-check of exactly the replayed keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Repaired {
    /// The replay.
    pub outcome: RepairOutcome,
    /// The re-check of the drifted keys after the replay.
    pub recheck: crate::report::Report,
}

/// Replays the drifted keys of `report` through `repairer`, then re-checks only those keys.
pub async fn repair_and_recheck<R: Repairer>(
    reconciler: &crate::Reconciler,
    report: &crate::report::Report,
    repairer: &R,
) -> Result<Repaired> {
    let keys: Vec<String> = report
        .drifted_keys
        .iter()
        .map(ToString::to_string)
        .collect();
    let outcome = repairer.repair(&keys).await?;
    let recheck = reconciler.recheck(&report.drifted_keys).await?;
    Ok(Repaired { outcome, recheck })
}
