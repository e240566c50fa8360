//! The relay loop: take the lease, read batches in commit order, publish, complete rows in order
//! once acknowledged; back off while the broker or the database is away; drain on shutdown.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use strangler_bus::OutgoingRecord;
use strangler_core::config::{BadRowPolicy, OutboxConfig};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::row::to_record_from;
use crate::sink::Pending;
use crate::source::{Cursor, Round, Tuning};
use crate::{BadRow, Error, Result, RowOutcome, Sink, Source, SourceKind, metrics};

/// How a relay runs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Return once the outbox is drained instead of polling forever.
    pub once: bool,
    /// How often a standby tries to take the lease.
    pub standby_poll: Duration,
    /// After cancellation, how long the relay may wait for acknowledgements from the bus and
    /// completions in the database before it gives up on the batches in flight: they stay in
    /// the outbox, unpublished as far as it knows, and whoever relays next publishes them again.
    /// Keep it below the process's shutdown grace.
    pub drain_timeout: Duration,
    /// SQLite: how long a statement waits for the write lock before it fails (and the relay
    /// resumes on new connections, its cursor and batches in flight kept while the lease is
    /// still its own).
    pub sqlite_busy_timeout: Duration,
    /// PostgreSQL: fetch each large batch's rows in two halves on two connections at once, so
    /// two server processes prepare them (a third connection to the legacy database).
    pub pg_split_reads: bool,
}

impl RelayOptions {
    /// The drain time for a process with shutdown grace `grace`: four fifths of it, leaving the
    /// rest to close connections and flush the producer.
    pub fn drain_within(grace: Duration) -> Duration {
        grace.mul_f64(0.8)
    }
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            once: false,
            standby_poll: Duration::from_millis(500),
            // Below the default shutdown grace (`telemetry.shutdown_grace_ms`, 10 s), leaving
            // time to close connections and flush.
            drain_timeout: Duration::from_secs(8),
            sqlite_busy_timeout: Tuning::default().sqlite_busy,
            pg_split_reads: Tuning::default().pg_split_reads,
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
    /// Times a failed statement was survived on new connections with the cursor and the
    /// batches in flight kept (SQLite; nothing read again).
    pub resumed: u64,
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
    /// The payload column's type guarantees JSON.
    payload_is_json: bool,
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

/// When a draining relay gives up: `drain_timeout` after cancellation, fixed at first use.
struct DrainClock<'a> {
    cancel: &'a CancellationToken,
    timeout: Duration,
    deadline: OnceLock<Instant>,
}

impl DrainClock<'_> {
    /// Runs `f` to its end, unless the relay is cancelled and the drain time runs out first
    /// (`None`; `f` is dropped mid-way).
    async fn bound<F: Future>(&self, f: F) -> Option<F::Output> {
        let mut f = std::pin::pin!(f);
        if !self.cancel.is_cancelled() {
            tokio::select! {
                biased;
                out = &mut f => return Some(out),
                _ = self.cancel.cancelled() => {}
            }
        }
        let deadline = *self.deadline.get_or_init(|| Instant::now() + self.timeout);
        tokio::time::timeout_at(deadline.into(), f).await.ok()
    }

    fn out_of_time(&self, unconfirmed: usize) -> Error {
        Error::DrainTimedOut {
            rows: unconfirmed,
            after_ms: self.timeout.as_millis() as u64,
        }
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
                c = Source::connect_tuned(&self.url, &self.cfg, Tuning {
                    sqlite_busy: self.opts.sqlite_busy_timeout,
                    pg_split_reads: self.opts.pg_split_reads,
                }) => c,
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
            match &res {
                // Its connections may be stuck in the statements it gave up on.
                Err(Error::DrainTimedOut { .. }) => drop(src),
                _ => src.close().await,
            }
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
        payload_is_json: bool,
    ) -> (Vec<OutgoingRecord>, Vec<Cursor>, Vec<BadRow>, Option<Error>) {
        let mut records = Vec::with_capacity(rows.len());
        let mut done = Vec::with_capacity(rows.len());
        let mut bad = Vec::new();
        for row in rows {
            let (outcome, contract_stop) = crate::contracts::screen(
                self.contracts.as_deref(),
                &self.cfg.table,
                &row,
                to_record_from(&row, &self.cfg, payload_is_json),
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
        let (records, done, bad, stop) = self.classify(read.rows, read.payload_is_json);
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
    /// round before are classified and handed to the bus. After cancellation every wait is
    /// bounded by `drain_timeout`.
    async fn lead(
        &self,
        src: &mut Source,
        cancel: &CancellationToken,
        report: &mut RelayReport,
        backoff: &mut Backoff,
    ) -> Result<()> {
        let max_in_flight = self.cfg.max_in_flight.max(1) as usize;
        let clock = DrainClock {
            cancel,
            timeout: self.opts.drain_timeout,
            deadline: OnceLock::new(),
        };
        let mut queue: VecDeque<InFlight> = VecDeque::new();
        let mut in_flight_rows = 0usize;
        // Read, not yet handed to the bus.
        let mut ahead: Option<Read> = None;
        let mut committed = src.cursor();
        let mut stop: Option<Error> = None;
        let mut last_renew = Instant::now();
        let renew_every = Duration::from_millis(self.cfg.lease_ttl_ms / 3);
        let mut idle = false;
        // Gives up the batches in flight when the drain runs out of time: librdkafka forgets
        // them (so the producer's final flush does not wait for them either), and their rows
        // stay in the outbox.
        let out_of_time = |unconfirmed: usize| {
            self.sink.abandon();
            let e = clock.out_of_time(unconfirmed);
            tracing::warn!(rows = unconfirmed, error = %e, "giving up the drain");
            e
        };
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
                let rows = batch.rows();
                let InFlight {
                    done,
                    bad,
                    cursor_after,
                    pending,
                    read_at,
                    oldest_ms,
                } = batch;
                let Some(delivered) = clock.bound(pending.wait()).await else {
                    return Err(out_of_time(in_flight_rows));
                };
                in_flight_rows -= rows;
                match delivered {
                    Ok(_) => {
                        acked = Some(InFlight {
                            done,
                            bad,
                            cursor_after,
                            pending: Pending::Done(Ok(Vec::new())),
                            read_at,
                            oldest_ms,
                        })
                    }
                    Err(e) => {
                        // Everything after the failed batch is read again, in order, so that no
                        // aggregate's later event is completed before an earlier one is delivered.
                        let mut failed = done.len();
                        for other in queue.drain(..) {
                            failed += other.done.len();
                            if clock.bound(other.pending.wait()).await.is_none() {
                                return Err(out_of_time(in_flight_rows));
                            }
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
                        match clock.bound(src.renew_lease()).await {
                            Some(Ok(())) => {}
                            Some(Err(e)) => {
                                self.resume(src, &clock, backoff, report, e).await?;
                                continue;
                            }
                            None => return Err(out_of_time(0)),
                        }
                        last_renew = Instant::now();
                    }
                    sleep_or_cancel(Duration::from_millis(self.cfg.poll_interval_ms), cancel).await;
                }
            }
            if ahead.is_some() {
                match clock.bound(src.guard_lease()).await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        // The rows read ahead stay ahead; they are published once the lease is
                        // proven ours again.
                        if let Some(a) = acked.take() {
                            in_flight_rows += a.rows();
                            queue.push_front(a);
                        }
                        self.resume(src, &clock, backoff, report, e).await?;
                        continue;
                    }
                    None => return Err(out_of_time(in_flight_rows)),
                }
            }
            // The batch being handed over now counts against the room for the next read.
            let read_next = has_room(in_flight_rows, queue.len() + usize::from(ahead.is_some()));
            let limit = self
                .cfg
                .batch_size
                .min(max_in_flight.saturating_sub(in_flight_rows + ahead_rows) as u32)
                .max(1);
            let cursor_before = src.cursor();
            // The legacy connection: complete the acknowledged batch, then read the next one.
            let db = async {
                let (done, bad) = acked
                    .as_ref()
                    .map_or((&[][..], &[][..]), |a| (&a.done[..], &a.bad[..]));
                let round = src
                    .complete_and_read(done, bad, read_next.then_some(limit))
                    .await;
                (round, src.cursor(), Instant::now())
            };
            // Meanwhile: the rows read last round go to the bus.
            let bus = async {
                match ahead.take() {
                    Some(read) => Some(self.publish(read).await),
                    None => None,
                }
            };
            let Some(((round, cursor_after, at), published)) =
                clock.bound(async { tokio::join!(db, bus) }).await
            else {
                return Err(out_of_time(in_flight_rows));
            };
            if let Some((batch, stop_now)) = published {
                in_flight_rows += batch.rows();
                queue.push_back(batch);
                if stop_now.is_some() {
                    stop = stop_now;
                }
            }
            let Round { completed, read } = round;
            if let Err(e) = completed {
                // The acknowledged batch is still to be completed, and rows read beside the
                // failed completion are read again.
                if let Some(a) = acked.take() {
                    in_flight_rows += a.rows();
                    queue.push_front(a);
                }
                if read.as_ref().is_ok_and(Option::is_some) {
                    src.rewind(cursor_before);
                }
                self.resume(src, &clock, backoff, report, e).await?;
                continue;
            }
            if let Some(a) = acked {
                committed = a.cursor_after;
                metrics::rows_published(a.done.len());
                metrics::rows_dead_lettered(a.bad.len());
                metrics::batch_latency(a.read_at.elapsed());
                report.published += a.done.len() as u64;
                report.dead_lettered += a.bad.len() as u64;
                last_renew = Instant::now();
                backoff.reset();
            }
            match read {
                Err(e) => self.resume(src, &clock, backoff, report, e).await?,
                Ok(Some(rows)) if rows.is_empty() => idle = true,
                Ok(Some(rows)) => {
                    idle = false;
                    metrics::rows_read(rows.len());
                    // After a bad row with `bad_rows = "stop"` nothing more is published.
                    if stop.is_none() {
                        ahead = Some(Read {
                            rows,
                            cursor_after,
                            at,
                            payload_is_json: src.payload_is_json(),
                        });
                    }
                }
                Ok(None) => {}
            }
        }
    }

    /// After a failed statement: resumes on new connections with the cursor and the batches in
    /// flight kept, when the source can prove the outbox stayed ours (SQLite), retrying with
    /// backoff while the database stays unavailable. Otherwise returns the error, and the relay
    /// starts afresh from what it completed.
    async fn resume(
        &self,
        src: &mut Source,
        clock: &DrainClock<'_>,
        backoff: &mut Backoff,
        report: &mut RelayReport,
        error: Error,
    ) -> Result<()> {
        if src.kind() != SourceKind::Sqlite || !matches!(error, Error::Sql(_)) {
            return Err(error);
        }
        tracing::warn!(error = %error, "outbox statement failed; reconnecting with the cursor kept");
        loop {
            if sleep_or_cancel(backoff.next_delay(), clock.cancel).await {
                return Err(error);
            }
            match clock.bound(src.resume()).await {
                Some(Ok(true)) => {
                    report.resumed += 1;
                    tracing::info!("resumed on new connections; nothing is read again");
                    return Ok(());
                }
                Some(Ok(false)) => return Err(error),
                Some(Err(e)) if e.is_retryable() && !matches!(e, Error::Fenced(_)) => {
                    tracing::warn!(error = %e, "legacy database still unavailable, retrying");
                }
                Some(Err(e)) => return Err(e),
                None => return Err(error),
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
