//! The capture loop: read the slot, publish, confirm; snapshot chunks between watermarks;
//! heartbeats; retries.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use strangler_bus::Publisher;
use strangler_core::config::{OutboxConfig, SnapshotMode, WalConfig};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::event::TableInfo;
use crate::metrics;
use crate::pg;
use crate::pgoutput::format_lsn;
use crate::stream::{Chunk, Decoder, DecoderConfig, Output};

/// How the capture runs.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Stop once the snapshot is done and the slot has nothing left to read (tests, one-off
    /// catch-up runs, benchmarks).
    pub once: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureReport {
    /// Records acknowledged by the bus (events, tombstones, outbox events).
    pub published: u64,
    /// Snapshot reads among them.
    pub snapshot_rows: u64,
    /// Sessions that ended in an error and were retried.
    pub retried: u64,
    /// The slot's confirmed position when the run ended.
    pub confirmed_lsn: u64,
}

/// Change capture from one database's slot to the bus.
pub struct Capture {
    url: String,
    wal: WalConfig,
    outbox: OutboxConfig,
    publisher: Arc<dyn Publisher>,
    options: CaptureOptions,
}

impl Capture {
    /// A capture of `wal.tables` in the database at `url`, publishing through `publisher`;
    /// outbox messages are routed by `outbox`.
    pub fn new(
        url: String,
        wal: WalConfig,
        outbox: OutboxConfig,
        publisher: Arc<dyn Publisher>,
        options: CaptureOptions,
    ) -> Capture {
        Capture {
            url,
            wal,
            outbox,
            publisher,
            options,
        }
    }

    /// Runs until `token` is cancelled (or, with `once`, until caught up). Database and bus
    /// outages are retried with backoff from the slot's confirmed position; setup errors
    /// (wal_level, missing table, foreign slot) end the run with what to fix.
    pub async fn run(&self, token: &CancellationToken) -> Result<CaptureReport> {
        let mut report = CaptureReport::default();
        let mut attempt = 0u32;
        loop {
            match self.session(token, &mut report, &mut attempt).await {
                Ok(()) => return Ok(report),
                Err(e) if e.is_transient() => {
                    metrics::error();
                    report.retried += 1;
                    let pause = Duration::from_millis(100)
                        .saturating_mul(1 << attempt.min(16))
                        .min(Duration::from_millis(self.wal.retry_max_ms));
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "change capture interrupted; resuming from the confirmed position");
                    tokio::select! {
                        _ = token.cancelled() => return Ok(report),
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn session(
        &self,
        token: &CancellationToken,
        report: &mut CaptureReport,
        attempt: &mut u32,
    ) -> Result<()> {
        let cfg = &self.wal;
        let mut conn = pg::connect(&self.url).await?;
        pg::check_wal_level(&mut conn).await?;
        let db = pg::database(&mut conn).await?;
        let mut tables = Vec::new();
        for (schema, table) in cfg.qualified_tables() {
            let t = pg::describe(&mut conn, &schema, &table, &cfg.topic_prefix).await?;
            if cfg.snapshot == SnapshotMode::Initial && t.key.is_empty() {
                return Err(Error::Setup(format!(
                    "table {schema}.{table} has no primary key to read it in chunks: add one, or \
                     set wal.snapshot = \"never\" to stream its changes only"
                )));
            }
            tables.push(t);
        }
        let mut waited = false;
        while !pg::try_lock(&mut conn, &cfg.slot).await? {
            if !waited {
                tracing::info!(slot = %cfg.slot, "another relay reads this slot; waiting as a standby");
                waited = true;
            }
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        pg::ensure_publication(&mut conn, cfg, &tables).await?;
        let (mut confirmed, created) = pg::ensure_slot(&mut conn, &cfg.slot).await?;
        metrics::confirmed(confirmed);
        let mut pending: VecDeque<TableInfo> = VecDeque::new();
        if cfg.snapshot == SnapshotMode::Initial {
            pg::ensure_progress_table(&mut conn, &cfg.snapshot_table).await?;
            pg::schedule_snapshot(&mut conn, &cfg.snapshot_table, &cfg.slot, &tables, created)
                .await?;
            for t in &tables {
                let p = pg::progress(&mut conn, &cfg.snapshot_table, &cfg.slot, t).await?;
                if !p.is_some_and(|(_, done)| done) {
                    pending.push_back(t.clone());
                }
            }
        }
        tracing::info!(slot = %cfg.slot, confirmed = %format_lsn(confirmed), tables = tables.len(), snapshot_tables = pending.len(), "change capture started");

        let mut decoder = Decoder::new(
            DecoderConfig {
                topic_prefix: cfg.topic_prefix.clone(),
                db,
                slot: cfg.slot.clone(),
                tombstones: cfg.tombstones_on_delete,
                message_prefix: cfg.message_prefix.clone(),
                outbox: self.outbox.clone(),
            },
            tables,
        );
        let heartbeat = Duration::from_millis(cfg.heartbeat_interval_ms);
        let mut last_heartbeat = Instant::now();
        let mut heartbeat_due = true;
        loop {
            if token.is_cancelled() {
                return Ok(());
            }
            if decoder.chunk.is_none()
                && let Some(t) = pending.front().cloned()
            {
                decoder.chunk = Some(self.next_chunk(&mut conn, &decoder, &t).await?);
            }
            // Read before the peek: the peek then sees every change committed before it.
            let idle_lsn = if heartbeat_due {
                Some(pg::flushed_lsn(&mut conn).await?)
            } else {
                None
            };
            let changes = pg::peek(&mut conn, &cfg.slot, &cfg.publication, cfg.batch_size).await?;
            let now_ms = chrono::Utc::now().timestamp_millis();
            let mut out = Output::default();
            for (lsn, data) in &changes {
                decoder.feed(*lsn, data, now_ms, &mut out)?;
            }
            let records = std::mem::take(&mut out.records);
            if !records.is_empty() {
                let mut counts: Vec<(&'static str, u64)> = Vec::new();
                let mut batch = Vec::with_capacity(records.len());
                for (r, op) in records {
                    match counts.iter_mut().find(|(o, _)| *o == op) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((op, 1)),
                    }
                    batch.push(r);
                }
                let n = batch.len() as u64;
                self.publisher.publish(batch).await?;
                report.published += n;
                for (op, k) in counts {
                    metrics::events(op, k);
                    if op == "r" {
                        report.snapshot_rows += k;
                    }
                }
            }
            if let Some(lsn) = out.safe_lsn.filter(|l| *l > confirmed) {
                confirmed = pg::advance(&mut conn, &cfg.slot, lsn).await?;
                // Delivered but not yet flushed on the server (asynchronous commit): wait for
                // the flush rather than read and publish the same transactions again.
                while confirmed < lsn && !token.is_cancelled() {
                    tokio::time::sleep(Duration::from_millis(cfg.poll_interval_ms)).await;
                    confirmed = pg::advance(&mut conn, &cfg.slot, lsn).await?;
                }
                metrics::confirmed(confirmed);
            }
            report.confirmed_lsn = confirmed;
            *attempt = 0;
            if let Some(done) = out.completed {
                let finished = done.exhausted;
                pg::save_progress(
                    &mut conn,
                    &cfg.snapshot_table,
                    &cfg.slot,
                    &done.table,
                    done.last_key.as_deref(),
                    finished,
                )
                .await?;
                metrics::snapshot_chunk();
                if finished {
                    tracing::info!(table = %format!("{}.{}", done.table.schema, done.table.table), "snapshot of table finished");
                    pending.pop_front();
                }
            }
            if heartbeat_due {
                if changes.is_empty()
                    && let Some(l) = idle_lsn.filter(|l| *l > confirmed)
                {
                    // Nothing captured committed before `l` (flushed before the peek began):
                    // moving there releases WAL that other tables and databases wrote.
                    confirmed = pg::advance(&mut conn, &cfg.slot, l).await?;
                    metrics::confirmed(confirmed);
                    report.confirmed_lsn = confirmed;
                }
                let retained = pg::retained_wal_bytes(&mut conn, &cfg.slot).await?;
                metrics::retained_wal(retained);
                if retained > 0 && retained as u64 > cfg.retained_wal_warn_bytes {
                    tracing::warn!(slot = %cfg.slot, retained_bytes = retained, threshold = cfg.retained_wal_warn_bytes, "the replication slot retains more WAL than wal.retained_wal_warn_bytes; the relay is behind or the bus is slow");
                }
                last_heartbeat = Instant::now();
            }
            heartbeat_due = last_heartbeat.elapsed() >= heartbeat;
            if changes.is_empty() {
                if self.options.once && pending.is_empty() && decoder.chunk.is_none() {
                    return Ok(());
                }
                tokio::select! {
                    _ = token.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(cfg.poll_interval_ms)) => {}
                }
            }
        }
    }

    /// Selects the next chunk of `t` between a low and a high watermark.
    async fn next_chunk(
        &self,
        conn: &mut PgConnection,
        decoder: &Decoder,
        t: &TableInfo,
    ) -> Result<Chunk> {
        let cfg = &self.wal;
        let after = pg::progress(conn, &cfg.snapshot_table, &cfg.slot, t)
            .await?
            .and_then(|(k, _)| k);
        let id = uuid::Uuid::new_v4().simple().to_string();
        pg::emit_watermark(conn, &decoder.watermark("low", &id)).await?;
        let rows = pg::chunk(conn, t, after.as_deref(), cfg.snapshot_chunk_size).await?;
        pg::emit_watermark(conn, &decoder.watermark("high", &id)).await?;
        tracing::debug!(table = %t.table, rows = rows.len(), "snapshot chunk selected");
        Ok(Chunk::new(id, t.clone(), rows, cfg.snapshot_chunk_size))
    }
}
