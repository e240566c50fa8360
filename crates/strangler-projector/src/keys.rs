//! Per-key replay: apply again only the events of some keys (repairing drift that
//! reconciliation found), without moving checkpoints or touching other keys.
//!
//! The bus has no index by key, so the projection's partitions are scanned from their start to
//! the checkpoint (what the projection has applied) and the keys' events kept. Then, in one
//! read-store transaction that first locks the version's checkpoint rows (so a live projector
//! cannot commit a batch in between; it waits, in the same lock order, and goes on after), the
//! events that arrived during the scan are read too, each key's rows are removed with the
//! projection's `[replay] reset_key` statements, and the keys' events are applied in order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::event::{Event, Value, decode};
use crate::projection::{Projection, SqlProjection};
use crate::replay::{Plan, PlanPart};
use crate::service::Projector;
use crate::sql;
use crate::store::ReadTx;
use crate::{Error, Result, checkpoint, dead_letter};

/// A scan that sees nothing new for this long has read everything the bus will give.
const SCAN_IDLE: Duration = Duration::from_secs(5);

/// What a per-key replay did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeyReplayStats {
    /// Keys asked for.
    pub keys: u64,
    /// Keys with at least one event on the bus.
    pub keys_with_events: u64,
    /// Keys with no event on the bus (only reset).
    pub keys_without_events: Vec<String>,
    /// Records read from the bus to find them.
    pub scanned: u64,
    /// Events of the keys applied again.
    pub applied: u64,
    /// Events of the keys whose type is ignored.
    pub ignored: u64,
    /// Duplicate deliveries (same event id) not applied twice.
    pub duplicates: u64,
    /// Rows the reset statements removed.
    pub reset_rows: u64,
    /// Rows the handlers touched.
    pub rows: u64,
    /// Whether the changes were rolled back (`--dry-run`).
    pub dry_run: bool,
}

impl Projector {
    /// Replays every event of `keys` through projection version `p`: scans the bus up to the
    /// version's checkpoints, then in one transaction resets the keys' rows and applies their
    /// events in order. Checkpoints, dedup keys and other keys stay as they are. With `dry_run`
    /// the transaction is rolled back. `on_scan(read, total)` reports scan progress.
    pub async fn replay_keys(
        &self,
        p: &Arc<SqlProjection>,
        keys: &[String],
        dry_run: bool,
        cancel: &CancellationToken,
        on_scan: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<KeyReplayStats> {
        let wanted: BTreeSet<String> = keys.iter().cloned().collect();
        let mut stats = KeyReplayStats {
            keys: wanted.len() as u64,
            dry_run,
            ..KeyReplayStats::default()
        };
        if wanted.is_empty() {
            return Ok(stats);
        }
        let parked = dead_letter::parked_keys(&self.store, p.name(), p.version()).await?;
        let blocked: Vec<&String> = wanted.iter().filter(|k| parked.contains(*k)).collect();
        if !blocked.is_empty() {
            return Err(Error::Refused(format!(
                "keys {blocked:?} of {} v{} are parked behind dead letters; re-drive or discard \
                 them first (`strangler project dead-letters`)",
                p.name(),
                p.version()
            )));
        }

        // Scan without holding anything: up to where the checkpoints are now.
        let first = applied_ends(&self.store, p.as_ref()).await?;
        let plan = Plan {
            parts: first
                .iter()
                .filter(|(_, end)| **end > 0)
                .map(|((topic, partition), end)| PlanPart {
                    topic: topic.clone(),
                    partition: *partition,
                    start: 0,
                    end: *end,
                })
                .collect(),
        };
        let mut found = self
            .scan(p, &plan, &wanted, cancel, &mut stats, on_scan)
            .await?;

        let mut tx = ReadTx::begin(&self.store).await?;
        let now = checkpoint::lock_all(&mut tx, p.name(), p.version()).await?;
        // Batches committed during the scan: read their events too, while the lock holds.
        let delta = Plan {
            parts: now
                .iter()
                .filter_map(|((topic, partition), end)| {
                    let start = first
                        .get(&(topic.clone(), *partition))
                        .copied()
                        .unwrap_or(0);
                    (*end > start).then(|| PlanPart {
                        topic: topic.clone(),
                        partition: *partition,
                        start,
                        end: *end,
                    })
                })
                .collect(),
        };
        if !delta.parts.is_empty() {
            found.extend(
                self.scan(p, &delta, &wanted, cancel, &mut stats, on_scan)
                    .await?,
            );
        }

        found.sort_by(|a, b| {
            (&a.record.topic, a.record.partition, a.record.offset).cmp(&(
                &b.record.topic,
                b.record.partition,
                b.record.offset,
            ))
        });
        let mut seen_ids: HashSet<String> = HashSet::new();
        let mut events: Vec<&Event> = Vec::with_capacity(found.len());
        let mut with_events: BTreeSet<&str> = BTreeSet::new();
        for e in &found {
            if let Some(id) = &e.id
                && !seen_ids.insert(id.clone())
            {
                stats.duplicates += 1;
                continue;
            }
            if let Some(k) = e.key.as_deref() {
                with_events.insert(k);
            }
            events.push(e);
        }
        stats.keys_with_events = with_events.len() as u64;
        stats.keys_without_events = wanted
            .iter()
            .filter(|k| !with_events.contains(k.as_str()))
            .cloned()
            .collect();

        let resets: Vec<sql::Prepared> = p
            .definition()
            .replay
            .reset_key
            .iter()
            .map(|s| sql::prepare(s, tx.dialect(), p.version()))
            .collect();
        for key in &wanted {
            for r in &resets {
                let values: Vec<Value> =
                    r.params.iter().map(|_| Value::Text(key.clone())).collect();
                stats.reset_rows += tx.execute(&r.sql, &values).await?;
            }
        }
        // Through the contract gate, as the runtime applies events.
        let gated = self.contracted(p.clone());
        match gated.apply_many(&mut tx, &events).await {
            Ok(m) => {
                stats.applied = m.applied;
                stats.ignored = m.ignored;
                stats.rows = m.rows;
            }
            Err(e) => {
                tx.rollback().await?;
                return Err(Error::Refused(format!(
                    "replaying the keys' events through {} v{} failed ({}): {}; nothing was changed",
                    p.name(),
                    p.version(),
                    e.reason,
                    e.detail
                )));
            }
        }
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        tracing::info!(
            projection = p.name(),
            version = p.version(),
            keys = stats.keys,
            applied = stats.applied,
            reset_rows = stats.reset_rows,
            dry_run,
            "replayed the events of a key set"
        );
        Ok(stats)
    }

    /// Reads the plan's ranges and keeps the events of `wanted` keys.
    async fn scan(
        &self,
        p: &Arc<SqlProjection>,
        plan: &Plan,
        wanted: &BTreeSet<String>,
        cancel: &CancellationToken,
        stats: &mut KeyReplayStats,
        on_scan: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Vec<Event>> {
        if plan.parts.is_empty() {
            return Ok(Vec::new());
        }
        let total = plan.events();
        let ends = plan.ends();
        let mut pos = plan.starts();
        let mut consumer = self.source.assign(p.as_ref(), plan).await?;
        let mut found = Vec::new();
        let mut idle_since = Instant::now();
        let mut read = 0u64;
        while !ends
            .iter()
            .all(|(k, end)| pos.get(k).copied().unwrap_or(0) >= *end)
        {
            if cancel.is_cancelled() {
                return Err(Error::Refused(
                    "cancelled while scanning the bus; nothing was changed".into(),
                ));
            }
            let records = consumer.poll(5000, Duration::from_millis(500)).await?;
            if records.is_empty() {
                if idle_since.elapsed() >= SCAN_IDLE {
                    tracing::warn!(
                        projection = p.name(),
                        "the bus returned nothing more before the checkpoints; the scan ends at what it read"
                    );
                    break;
                }
                continue;
            }
            idle_since = Instant::now();
            for r in records {
                let k = (r.topic.clone(), r.partition);
                let Some(end) = ends.get(&k).copied() else {
                    continue;
                };
                if r.offset >= end {
                    continue;
                }
                let at = pos.entry(k).or_insert(0);
                *at = (*at).max(r.offset + 1);
                read += 1;
                let e = decode(r);
                if e.key.as_deref().is_some_and(|key| wanted.contains(key)) {
                    found.push(e);
                }
            }
            on_scan(read, total);
        }
        stats.scanned += read;
        Ok(found)
    }
}

/// Each partition's checkpoint (next offset to apply) of one version, read without locking.
async fn applied_ends(
    store: &strangler_store::Store,
    p: &dyn Projection,
) -> Result<HashMap<(String, i32), i64>> {
    Ok(checkpoint::list(store, Some(p.name()))
        .await?
        .into_iter()
        .filter(|c| c.version == p.version())
        .map(|c| ((c.topic, c.partition), c.next_offset))
        .collect())
}
