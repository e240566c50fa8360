//! The projection loop: poll a bounded batch, apply it in one transaction with its checkpoint,
//! commit, repeat; until cancelled or, for replays, until caught up.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strangler_bus::{Consumer, Record};
use strangler_store::Store;
use tokio_util::sync::CancellationToken;

use crate::apply::{BatchResult, BatchStats, apply_batch};
use crate::checkpoint::{self, Claims};
use crate::event::{Event, decode};
use crate::projection::Projection;
use crate::store::{ReadTx, now_ms};
use crate::window::Window;
use crate::{Error, Result, dead_letter, dedup, freshness};

/// When a run ends.
#[derive(Debug, Clone)]
pub enum Until {
    /// When the token is cancelled (`project run`).
    Cancelled,
    /// When every listed partition's next offset reaches its end offset (replay, rebuild),
    /// starting from the given offsets.
    CaughtUp {
        /// Where each partition starts.
        starts: HashMap<(String, i32), i64>,
        /// Where each partition ends.
        ends: HashMap<(String, i32), i64>,
    },
}

/// Whether batches commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Each batch commits.
    Commit,
    /// Everything runs in one transaction that is rolled back at the end (`--dry-run`).
    DryRun,
}

/// Totals of a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStats {
    /// Events whose handlers ran.
    pub applied: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Ignored event types.
    pub ignored: u64,
    /// Events dead-lettered.
    pub dead_lettered: u64,
    /// Rows the handlers touched.
    pub rows: u64,
    /// Batches committed (or, in a dry run, applied).
    pub batches: u64,
}

impl RunStats {
    fn add(&mut self, b: &BatchStats) {
        self.applied += b.applied;
        self.duplicates += b.duplicates;
        self.ignored += b.ignored;
        self.dead_lettered += b.dead_lettered;
        self.rows += b.rows;
        self.batches += 1;
    }

    /// Events consumed in all.
    pub fn consumed(&self) -> u64 {
        self.applied + self.duplicates + self.ignored + self.dead_lettered
    }
}

/// Decodes records into events and lets the projection prepare each one.
fn ready(projection: &dyn Projection, records: Vec<Record>) -> Vec<Event> {
    records
        .into_iter()
        .map(|r| {
            let mut e = decode(r);
            e.prepared = projection.prepare(&e);
            e
        })
        .collect()
}

/// Runs one projection version over a consumer.
pub struct Runner {
    /// The read store.
    pub store: Store,
    /// The projection.
    pub projection: Arc<dyn Projection>,
    /// Generations claimed by the consumer's start offsets.
    pub claims: Arc<Claims>,
    /// The projection's sink when it is not the read store (its applied ids are pruned too).
    pub sink: Option<Arc<dyn crate::sink::Sink>>,
    /// Recent ids per partition, when the projection deduplicates by a window of offsets
    /// (`[dedup] mode = "window"`) rather than by ids recorded in the read store.
    pub window: Option<Window>,
}

/// A batch whose many-events-per-statement attempt failed is halved until a part holds at most
/// this many events, and only such a part goes one event at a time: one failing event in a
/// 20,000-event batch costs about two more attempts of the batch's size and a few hundred
/// savepoints, not 20,000.
const CAREFUL_AT_MOST: usize = 256;

/// A batch (or part of one) being applied: what it did, and the error that stops the projection
/// if the policy said stop. Boxed because a failing batch applies its halves the same way.
type Applying<'a> = Pin<Box<dyn Future<Output = Result<(BatchStats, Option<Error>)>> + Send + 'a>>;

const SP_BATCH: &str = "SAVEPOINT strangler_batch";
const SP_BATCH_BACK: &str = "ROLLBACK TO SAVEPOINT strangler_batch";
const SP_BATCH_OK: &str = "RELEASE SAVEPOINT strangler_batch";

impl Runner {
    /// Consumes and applies until `until` says stop or `cancel` fires. A batch in flight when
    /// `cancel` fires is finished (committed) before returning; the caller bounds that with its
    /// grace period. `on_batch` sees every applied batch (progress bars). With `dry_tx`, every
    /// batch runs inside that transaction, which is rolled back at the end (`--dry-run`).
    pub async fn run(
        &self,
        consumer: &mut dyn Consumer,
        until: Until,
        dry_tx: Option<ReadTx>,
        cancel: &CancellationToken,
        on_batch: &mut (dyn FnMut(&BatchStats) + Send),
    ) -> Result<RunStats> {
        let p = self.projection.as_ref();
        let (name, version) = (p.name().to_string(), p.version());
        let settings = p.settings().clone();
        let mut positions: HashMap<(String, i32), i64> = match &until {
            Until::CaughtUp { starts, .. } => starts.clone(),
            Until::Cancelled => HashMap::new(),
        };
        let mut parked = dead_letter::parked_keys(&self.store, &name, version).await?;
        let mut stats = RunStats::default();
        let mut buffer: Vec<Event> = Vec::new();
        let mode = if dry_tx.is_some() {
            Mode::DryRun
        } else {
            Mode::Commit
        };
        let mut dry_tx = dry_tx;
        let mut last_fresh = Instant::now() - Duration::from_secs(3600);
        let mut last_prune = Instant::now();
        let caught_up = |positions: &HashMap<(String, i32), i64>| match &until {
            Until::Cancelled => false,
            Until::CaughtUp { ends, .. } => ends
                .iter()
                .all(|(k, end)| positions.get(k).copied().unwrap_or(0) >= *end),
        };

        loop {
            if cancel.is_cancelled() || caught_up(&positions) {
                break;
            }
            let deadline = Instant::now() + settings.batch_max_wait;
            let mut revoked = false;
            while buffer.len() < settings.batch_max_events && !cancel.is_cancelled() {
                let now = Instant::now();
                if now >= deadline && !buffer.is_empty() {
                    break;
                }
                let wait = deadline
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(10));
                let max = settings.batch_max_events - buffer.len();
                let polled = tokio::select! {
                    r = consumer.poll(max, wait) => r,
                    _ = cancel.cancelled() => Ok(Vec::new()),
                };
                match polled {
                    Ok(records) => {
                        let empty = records.is_empty();
                        buffer.extend(ready(p, records));
                        if empty || Instant::now() >= deadline {
                            break;
                        }
                    }
                    Err(strangler_bus::Error::Revoked(why)) => {
                        tracing::info!(projection = %name, version, %why, "assignment changed; dropping the in-flight batch");
                        buffer.clear();
                        revoked = true;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if revoked {
                continue;
            }
            if mode == Mode::Commit && last_fresh.elapsed() >= Duration::from_secs(1) {
                last_fresh = Instant::now();
                self.refresh_ends(consumer).await;
            }
            if last_prune.elapsed() >= Duration::from_secs(600) && mode == Mode::Commit {
                last_prune = Instant::now();
                let cutoff = now_ms() - settings.dedup_retention.as_millis() as i64;
                if self.window.is_none()
                    && let Err(e) = dedup::prune(&self.store, &name, version, cutoff).await
                {
                    tracing::warn!(projection = %name, error = %e, "pruning dedup keys failed");
                }
                if let Some(sink) = &self.sink
                    && let Err(e) = sink.prune(version, cutoff).await
                {
                    tracing::warn!(projection = %name, error = %e, "pruning the sink's applied ids failed");
                }
            }
            if buffer.is_empty() {
                continue;
            }
            if !parked.is_empty() {
                // Re-drives elsewhere unpark keys; pick that up before applying.
                parked = dead_letter::parked_keys(&self.store, &name, version).await?;
            }
            let mut batch = std::mem::take(&mut buffer);
            if let Some(w) = &self.window {
                // Records before a claim's start were applied under an earlier claim: they are
                // read back only for the window's ids.
                let read = batch.len();
                batch = w.warm(&self.claims, batch);
                freshness::count_window(&name, version, (read - batch.len()) as u64, w.len());
                if batch.is_empty() {
                    continue;
                }
            }
            // Read the next records while this batch applies: the consumer and the read store
            // wait on different connections. Prefetched records are only buffered, so dropping
            // them (stop, revocation, caught up) loses nothing the checkpoint claims.
            let apply = self.apply(dry_tx.as_mut(), &batch, &mut parked);
            let prefetch = async {
                if cancel.is_cancelled() || caught_up(&positions) {
                    return Ok(Vec::new());
                }
                let polled = tokio::select! {
                    r = consumer.poll(settings.batch_max_events, Duration::from_millis(1)) => r,
                    _ = cancel.cancelled() => Ok(Vec::new()),
                };
                // Decoded and prepared (parameter values worked out) on a blocking thread while
                // the batch's statements wait on the read store: done on this task, it held up
                // the batch's next statement whenever an answer came back during it.
                let records = polled?;
                if records.is_empty() {
                    return Ok(Vec::new());
                }
                let projection = Arc::clone(&self.projection);
                match tokio::task::spawn_blocking(move || ready(projection.as_ref(), records)).await
                {
                    Ok(events) => Ok(events),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // The runtime is shutting down. The records were only prefetched, so dropping
                    // them loses nothing the checkpoint claims.
                    Err(_) => Ok(Vec::new()),
                }
            };
            let (applied, prefetched) = tokio::join!(apply, prefetch);
            let (batch_stats, stopped) = applied?;
            match prefetched {
                Ok(events) => buffer.extend(events),
                Err(strangler_bus::Error::Revoked(why)) => {
                    tracing::info!(projection = %name, version, %why, "assignment changed; dropping the prefetched records");
                }
                Err(e) => return Err(e.into()),
            }
            for pr in &batch_stats.progress {
                positions.insert((pr.topic.clone(), pr.partition), pr.next_offset);
                if mode == Mode::Commit {
                    let pos = strangler_core::event::Position {
                        partition: pr.partition,
                        offset: pr.next_offset,
                    };
                    if let Err(e) = consumer.mark_applied(&pr.topic, pos).await {
                        tracing::debug!(error = %e, "marking the bus offset failed (the read store's checkpoint stays the truth)");
                    }
                }
            }
            freshness::count_batch(&name, version, &batch_stats);
            stats.add(&batch_stats);
            on_batch(&batch_stats);
            if let Some(err) = stopped {
                if let Some(tx) = dry_tx.take() {
                    tx.rollback().await?;
                }
                return Err(err);
            }
        }
        if let Some(tx) = dry_tx.take() {
            tx.rollback().await?;
        } else {
            self.refresh_ends(consumer).await;
        }
        Ok(stats)
    }

    /// Applies a batch: all events in a few statements, and when that fails, each half again
    /// the same way, down to [`CAREFUL_AT_MOST`] events, which go one at a time (retried,
    /// skipped, parked or stopping per policy). Each attempt commits on its own (see
    /// [`Runner::attempt`]), one after the other, in order, so every partition's events still
    /// apply in offset order; a half that stops the projection leaves the later halves
    /// unapplied, for a restart to read again.
    fn apply<'a>(
        &'a self,
        mut dry: Option<&'a mut ReadTx>,
        batch: &'a [Event],
        parked: &'a mut HashSet<String>,
    ) -> Applying<'a> {
        Box::pin(async move {
            let mut parked_try = parked.clone();
            if let BatchResult::Done(s) = self
                .attempt(dry.as_deref_mut(), batch, &mut parked_try, false)
                .await?
            {
                *parked = parked_try;
                return Ok((s, None));
            }
            if batch.len() > CAREFUL_AT_MOST {
                let (first, second) = batch.split_at(batch.len() / 2);
                let (mut stats, stopped) = self.apply(dry.as_deref_mut(), first, parked).await?;
                if stopped.is_some() {
                    return Ok((stats, stopped));
                }
                let (rest, stopped) = self.apply(dry, second, parked).await?;
                stats.absorb(rest);
                return Ok((stats, stopped));
            }
            match self.attempt(dry, batch, parked, true).await? {
                BatchResult::Done(s) => Ok((s, None)),
                BatchResult::Stopped(s, err) => Ok((s, Some(err))),
                BatchResult::NeedCareful => unreachable!("the careful path never asks for itself"),
            }
        })
    }

    /// One attempt at `batch` ([`apply_batch`]) in its own transaction, or, in a dry run, in a
    /// savepoint of the dry run's one transaction. What it did is kept when it is done or
    /// stopped, and undone when the fast path gives up; an error undoes it (a dry run's caller
    /// rolls back the whole transaction).
    async fn attempt(
        &self,
        dry: Option<&mut ReadTx>,
        batch: &[Event],
        parked: &mut HashSet<String>,
        careful: bool,
    ) -> Result<BatchResult> {
        let p = self.projection.as_ref();
        let Some(tx) = dry else {
            let mut tx = ReadTx::begin(&self.store).await?;
            let window = self.window.as_ref();
            return match apply_batch(&mut tx, p, &self.claims, batch, parked, careful, window).await
            {
                Ok(BatchResult::NeedCareful) => {
                    tx.rollback().await?;
                    Ok(BatchResult::NeedCareful)
                }
                Ok(kept) => {
                    tx.commit().await?;
                    self.remember(batch, &kept);
                    Ok(kept)
                }
                Err(e) => {
                    tx.rollback().await?;
                    Err(e)
                }
            };
        };
        tx.execute_script(SP_BATCH).await?;
        let window = self.window.as_ref();
        let r = apply_batch(tx, p, &self.claims, batch, parked, careful, window).await?;
        if let BatchResult::NeedCareful = r {
            tx.execute_script(SP_BATCH_BACK).await?;
        }
        tx.execute_script(SP_BATCH_OK).await?;
        self.remember(batch, &r);
        Ok(r)
    }

    /// Puts the ids a kept attempt consumed into the window (when there is one).
    fn remember(&self, batch: &[Event], r: &BatchResult) {
        let (Some(w), BatchResult::Done(s) | BatchResult::Stopped(s, _)) = (&self.window, r) else {
            return;
        };
        w.record(batch, &s.progress);
    }

    /// Records the bus's end offsets for lag, and publishes freshness gauges.
    async fn refresh_ends(&self, consumer: &mut dyn Consumer) {
        let p = self.projection.as_ref();
        match consumer.end_offsets().await {
            Ok(ends) => {
                for (topic, partition, end) in ends {
                    if let Err(e) = checkpoint::record_end(
                        &self.store,
                        p.name(),
                        p.version(),
                        &topic,
                        partition,
                        end,
                    )
                    .await
                    {
                        tracing::warn!(error = %e, "recording end offsets failed");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(projection = p.name(), error = %e, "reading end offsets failed")
            }
        }
        match freshness::status(&self.store, Some(p.name()), p.settings().stall_after).await {
            Ok(rows) => freshness::publish(&rows),
            Err(e) => tracing::warn!(error = %e, "reading freshness failed"),
        }
    }
}
