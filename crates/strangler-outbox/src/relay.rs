//! The relay loop: take the lease, read batches in commit order, publish, complete rows in order
//! once acknowledged; back off while the broker or the database is away; drain on shutdown.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use strangler_bus::OutgoingRecord;
use strangler_core::config::{BadRowPolicy, OutboxConfig};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::sink::Pending;
use crate::source::Cursor;
use crate::{BadRow, Error, Result, RowOutcome, Sink, Source, metrics, to_record};

/// How a relay runs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Return once the outbox is drained instead of polling forever.
    pub once: bool,
    /// How often a standby tries to take the lease.
    pub standby_poll: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            once: false,
            standby_poll: Duration::from_millis(500),
        }
    }
}

/// What a relay did before it returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Rows acknowledged by the bus and deleted or marked.
    pub published: u64,
    /// Rows moved to the dead-letter table.
    pub dead_lettered: u64,
    /// Rows whose delivery failed and were read again (each may be published twice).
    pub retried: u64,
}

/// Relays one outbox to one bus.
pub struct Relay {
    url: String,
    cfg: OutboxConfig,
    sink: Sink,
    opts: RelayOptions,
    pub(crate) contracts: Option<std::sync::Arc<crate::contracts::RelayContracts>>,
}

/// Rows read from the outbox, not yet handed to the bus.
struct Read {
    rows: Vec<crate::OutboxRow>,
    cursor_after: Cursor,
    at: Instant,
}

/// A batch handed to the bus and not yet completed in the outbox.
struct InFlight {
    done: Vec<Cursor>,
    bad: Vec<BadRow>,
    cursor_after: Cursor,
    pending: Pending,
    read_at: Instant,
    oldest_ms: Option<i64>,
}

impl InFlight {
    fn rows(&self) -> usize {
        self.done.len() + self.bad.len()
    }
}

/// Sleeps for `d`; `true` if cancelled first.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}

impl Relay {
    /// A relay from the legacy database at `url` (the `[legacy] url`) to `sink`.
    pub fn new(url: impl Into<String>, cfg: OutboxConfig, sink: Sink, opts: RelayOptions) -> Relay {
        Relay {
            url: url.into(),
            cfg,
            sink,
            opts,
            contracts: None,
        }
    }

    /// Runs until `cancel` fires (then finishes the batches in flight), until the outbox is
    /// drained with `once`, or until an error retrying cannot fix (a bad row with
    /// `bad_rows = "stop"`, a fatal producer error, an unsupported URL).
    pub async fn run(&self, cancel: &CancellationToken) -> Result<RelayReport> {
        let mut report = RelayReport::default();
        let mut backoff = Backoff::new(Duration::from_millis(self.cfg.retry_max_ms));
        let url = strangler_store::redact_url(&self.url);
        loop {
            if cancel.is_cancelled() {
                return Ok(report);
            }
            // Nothing is in flight yet: a connection attempt (which can hang while the host
            // drops packets) is abandoned on cancellation.
            let connected = tokio::select! {
                _ = cancel.cancelled() => return Ok(report),
                c = Source::connect(&self.url, &self.cfg) => c,
            };
            let mut src = match connected {
                Ok(s) => s,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(legacy = %url, error = %e, "legacy database unavailable, retrying");
                    if sleep_or_cancel(backoff.next_delay(), cancel).await {
                        return Ok(report);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let res = match self.wait_for_lease(&mut src, cancel).await {
                Ok(true) => {
                    tracing::info!(outbox = %self.cfg.table, kind = ?src.kind(), "holding the outbox lease, relaying");
                    metrics::leader(true);
                    let res = self.lead(&mut src, cancel, &mut report, &mut backoff).await;
                    metrics::leader(false);
                    res
                }
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            };
            src.close().await;
            match res {
                Ok(()) => return Ok(report),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "relay interrupted, reconnecting");
                    if sleep_or_cancel(backoff.next_delay(), cancel).await {
                        return Ok(report);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits as a standby until the lease is ours (`true`) or we are cancelled (`false`).
    async fn wait_for_lease(&self, src: &mut Source, cancel: &CancellationToken) -> Result<bool> {
        let mut announced = false;
        loop {
            // A standby holds no rows: it stops at once, even mid-query (closing the connection
            // releases a lock taken meanwhile).
            let got = tokio::select! {
                _ = cancel.cancelled() => return Ok(false),
                got = src.try_lease() => got?,
            };
            if got {
                return Ok(true);
            }
            if !announced {
                tracing::info!(outbox = %self.cfg.table, "another relay holds the outbox lease; standing by");
                announced = true;
            }
            if sleep_or_cancel(self.opts.standby_poll, cancel).await {
                return Ok(false);
            }
        }
    }

    /// Splits rows into records and bad rows; with `bad_rows = "stop"` the batch ends before the
    /// first bad row, which is returned as the error to stop with.
    fn classify(
        &self,
        rows: Vec<crate::OutboxRow>,
    ) -> (Vec<OutgoingRecord>, Vec<Cursor>, Vec<BadRow>, Option<Error>) {
        let mut records = Vec::with_capacity(rows.len());
        let mut done = Vec::with_capacity(rows.len());
        let mut bad = Vec::new();
        for row in rows {
            let (outcome, contract_stop) = crate::contracts::screen(
                self.contracts.as_deref(),
                &self.cfg.table,
                &row,
                to_record(&row, &self.cfg),
            );
            match outcome {
                RowOutcome::Publish(rec) => {
                    records.push(rec);
                    done.push(Cursor {
                        tx: row.tx,
                        seq: row.seq,
                    });
                }
                RowOutcome::Bad(reason) => {
                    let b = BadRow { row, reason };
                    if self.cfg.bad_rows == BadRowPolicy::Stop || contract_stop {
                        b.log(&self.cfg.table, true);
                        let err = Error::BadRow {
                            id: b.display_id(),
                            reason: b.reason,
                        };
                        return (records, done, bad, Some(err));
                    }
                    b.log(&self.cfg.table, false);
                    bad.push(b);
                }
            }
        }
        (records, done, bad, None)
    }

    /// Classifies rows read earlier and hands the good ones to the bus: the batch in flight, and
    /// the error to stop with when a bad row met `bad_rows = "stop"`.
    async fn publish(&self, read: Read) -> (InFlight, Option<Error>) {
        let oldest_ms = read.rows.iter().filter_map(|r| r.timestamp_ms).min();
        let (records, done, bad, stop) = self.classify(read.rows);
        let batch = InFlight {
            cursor_after: read.cursor_after,
            pending: self.sink.start(records).await,
            done,
            bad,
            read_at: read.at,
            oldest_ms,
        };
        (batch, stop)
    }

    /// The leader's pipeline. Each round, at once: the lease connection completes the oldest batch
    /// the bus acknowledged, the read connection reads the next batch, and the rows read the
    /// round before are classified and handed to the bus.
    async fn lead(
        &self,
        src: &mut Source,
        cancel: &CancellationToken,
        report: &mut RelayReport,
        backoff: &mut Backoff,
    ) -> Result<()> {
        let max_in_flight = self.cfg.max_in_flight.max(1) as usize;
        let mut queue: VecDeque<InFlight> = VecDeque::new();
        let mut in_flight_rows = 0usize;
        // Read, not yet handed to the bus.
        let mut ahead: Option<Read> = None;
        let mut committed = src.cursor();
        let mut stop: Option<Error> = None;
        let mut last_renew = Instant::now();
        let renew_every = Duration::from_millis(self.cfg.lease_ttl_ms / 3);
        let mut idle = false;
        loop {
            let draining = cancel.is_cancelled() || stop.is_some();
            if draining {
                // Not handed to the bus: read again by whoever relays next.
                ahead = None;
            }
            let ahead_rows = ahead.as_ref().map_or(0, |r| r.rows.len());
            let has_room = |in_flight_rows: usize, batches: usize| {
                !draining
                    && in_flight_rows + ahead_rows < max_in_flight
                    && batches < self.sink.max_batches()
            };
            self.record_age(queue.front());

            // Settle the oldest batch once it is acknowledged, or wait for it when nothing else
            // can move (full, idle, or draining).
            let must_wait = !has_room(in_flight_rows, queue.len()) || (idle && ahead.is_none());
            let front = match queue.front() {
                Some(f) if f.pending.is_ready() || must_wait => queue.pop_front(),
                _ => None,
            };
            let mut acked = None;
            if let Some(batch) = front {
                in_flight_rows -= batch.rows();
                let InFlight {
                    done,
                    bad,
                    cursor_after,
                    pending,
                    read_at,
                    ..
                } = batch;
                match pending.wait().await {
                    Ok(_) => acked = Some((done, bad, cursor_after, read_at)),
                    Err(e) => {
                        // Everything after the failed batch is read again, in order, so that no
                        // aggregate's later event is completed before an earlier one is delivered.
                        let mut failed = done.len();
                        for other in queue.drain(..) {
                            failed += other.done.len();
                            let _ = other.pending.wait().await;
                        }
                        ahead = None;
                        in_flight_rows = 0;
                        src.rewind(committed);
                        metrics::rows_failed(failed);
                        report.retried += failed as u64;
                        if let Some(fatal) = self.sink.fatal_error() {
                            return Err(Error::ProducerFatal(fatal));
                        }
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %e, rows = failed, retry_in_ms = delay.as_millis() as u64,
                            "delivery failed; will publish again from the last confirmed row");
                        if stop.is_none() {
                            sleep_or_cancel(delay, cancel).await;
                        }
                        idle = false;
                        continue;
                    }
                }
            }

            if acked.is_none() && ahead.is_none() && queue.is_empty() {
                if draining {
                    return match stop.take() {
                        Some(e) => Err(e),
                        None => Ok(()),
                    };
                }
                if idle {
                    if self.opts.once && !src.holding_gap() {
                        return Ok(());
                    }
                    if last_renew.elapsed() >= renew_every {
                        src.renew_lease().await?;
                        last_renew = Instant::now();
                    }
                    sleep_or_cancel(Duration::from_millis(self.cfg.poll_interval_ms), cancel).await;
                }
            }
            if ahead.is_some() {
                src.guard_lease().await?;
            }
            // The batch being handed over now counts against the room for the next read.
            let read_next = has_room(in_flight_rows, queue.len() + usize::from(ahead.is_some()));
            let limit = self
                .cfg
                .batch_size
                .min(max_in_flight.saturating_sub(in_flight_rows + ahead_rows) as u32)
                .max(1);
            // The legacy connection: complete the acknowledged batch, then read the next one.
            let db = async {
                let (done, bad) = acked
                    .as_ref()
                    .map_or((&[][..], &[][..]), |a| (&a.0[..], &a.1[..]));
                let rows = src
                    .complete_and_read(done, bad, read_next.then_some(limit))
                    .await?;
                Ok::<_, Error>(rows.map(|rows| Read {
                    rows,
                    cursor_after: src.cursor(),
                    at: Instant::now(),
                }))
            };
            // Meanwhile: the rows read last round go to the bus.
            let bus = async {
                match ahead.take() {
                    Some(read) => Some(self.publish(read).await),
                    None => None,
                }
            };
            let (read, published) = tokio::join!(db, bus);
            if let Some((batch, stop_now)) = published {
                in_flight_rows += batch.rows();
                queue.push_back(batch);
                if stop_now.is_some() {
                    stop = stop_now;
                }
            }
            let read = read?;
            if let Some((done, bad, cursor_after, read_at)) = acked {
                committed = cursor_after;
                metrics::rows_published(done.len());
                metrics::rows_dead_lettered(bad.len());
                metrics::batch_latency(read_at.elapsed());
                report.published += done.len() as u64;
                report.dead_lettered += bad.len() as u64;
                last_renew = Instant::now();
                backoff.reset();
            }
            match read {
                Some(r) if r.rows.is_empty() => idle = true,
                Some(r) => {
                    idle = false;
                    metrics::rows_read(r.rows.len());
                    // After a bad row with `bad_rows = "stop"` nothing more is published.
                    if stop.is_none() {
                        ahead = Some(r);
                    }
                }
                None => {}
            }
        }
    }

    fn record_age(&self, front: Option<&InFlight>) {
        let age = match front {
            None => Duration::ZERO,
            Some(b) => match b.oldest_ms {
                Some(ms) => {
                    Duration::from_millis((chrono::Utc::now().timestamp_millis() - ms).max(0) as u64)
                }
                None => b.read_at.elapsed(),
            },
        };
        metrics::oldest_unpublished_age(age);
    }
}
