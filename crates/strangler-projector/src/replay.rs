//! Replay and rebuild: move a projection version's checkpoints back (to an offset, a time, or the
//! beginning after emptying its tables), then consume until caught up with the bus as it was.

use std::collections::HashMap;

use crate::Result;
use crate::checkpoint;
use crate::dedup;
use crate::projection::Projection;
use crate::sql::physical_table;
use crate::store::{ReadTx, on_tx};

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// This offset on every partition (clamped to the partition's end).
    Offset(i64),
    /// The first event at or after this time (ms since the epoch), per partition.
    TimeMs(i64),
    /// The beginning, after emptying the tables (rebuild).
    Rebuild,
}

/// One partition of a replay plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPart {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset to apply again.
    pub start: i64,
    /// Offset after the last event when the replay began.
    pub end: i64,
}

/// The starts and ends of a replay, and how many events it covers.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Per partition.
    pub parts: Vec<PlanPart>,
}

impl Plan {
    /// Events to apply again.
    pub fn events(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| (p.end - p.start).max(0) as u64)
            .sum()
    }

    /// Start offsets by partition.
    pub fn starts(&self) -> HashMap<(String, i32), i64> {
        self.parts
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.start))
            .collect()
    }

    /// End offsets by partition.
    pub fn ends(&self) -> HashMap<(String, i32), i64> {
        self.parts
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.end))
            .collect()
    }
}

/// Resets a projection version inside `tx` for the plan: empties its tables (rebuild), moves its
/// checkpoints to the starts and forgets the dedup keys of the events to apply again, so they
/// apply once more while relay duplicates of earlier events stay dropped.
pub async fn reset(
    tx: &mut ReadTx,
    projection: &dyn Projection,
    plan: &Plan,
    from: From,
) -> Result<()> {
    let (name, version) = (projection.name(), projection.version());
    projection.setup(tx).await?;
    if from == From::Rebuild {
        for t in projection.tables() {
            tx.execute_script(&format!("DELETE FROM {}", physical_table(t, version)))
                .await?;
        }
        dedup::forget_all(tx, name, version).await?;
        on_tx!(tx, c => sqlx::query(
            "DELETE FROM strangler_projection_dead_letter WHERE projection = $1 AND version = $2")
            .bind(name)
            .bind(i64::from(version))
            .execute(c)
            .await?.rows_affected());
    }
    for p in &plan.parts {
        checkpoint::reset(tx, name, version, &p.topic, p.partition, p.start).await?;
        dedup::forget_from(tx, name, version, &p.topic, p.partition, p.start).await?;
    }
    Ok(())
}
