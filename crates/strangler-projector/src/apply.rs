//! Applying one batch inside one transaction: dedup, parked keys, the handlers, dead letters and
//! the checkpoint, so a batch's effect is all or nothing.

use std::collections::HashSet;
use std::time::Duration;

use crate::checkpoint::{self, Claims, Progress};
use crate::dead_letter::{self, Status};
use crate::event::Event;
use crate::policy::{Outcome, Reason};
use crate::projection::{Applied, Projection};
use crate::store::ReadTx;
use crate::window::Window;
use crate::{Error, Result};

/// What a batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    /// Events whose handlers ran.
    pub applied: u64,
    /// Events dropped as duplicates of an applied event id.
    pub duplicates: u64,
    /// Events consumed but deliberately ignored.
    pub ignored: u64,
    /// Events dead-lettered (skipped or parked).
    pub dead_lettered: u64,
    /// Rows the handlers touched.
    pub rows: u64,
    /// Per-partition progress committed.
    pub progress: Vec<Progress>,
}

impl BatchStats {
    /// Adds what a later part of the same batch did: counts add up, and each partition's
    /// progress moves to the later part's.
    pub fn absorb(&mut self, later: BatchStats) {
        self.applied += later.applied;
        self.duplicates += later.duplicates;
        self.ignored += later.ignored;
        self.dead_lettered += later.dead_lettered;
        self.rows += later.rows;
        for p in later.progress {
            advance(
                &mut self.progress,
                &p.topic,
                p.partition,
                p.next_offset,
                p.last_event_time_ms,
                p.events,
            );
        }
    }
}

/// How the batch went.
pub enum BatchResult {
    /// Everything in the batch was handled.
    Done(BatchStats),
    /// The fast path hit a failure; roll back and run again with `careful = true`.
    NeedCareful,
    /// The policy says stop: the events before the failing one are handled (commit them), and the
    /// projection must stop with this error.
    Stopped(BatchStats, Error),
}

const SP_EVENT: &str = "SAVEPOINT strangler_event";
const SP_EVENT_BACK: &str = "ROLLBACK TO SAVEPOINT strangler_event";
const SP_EVENT_OK: &str = "RELEASE SAVEPOINT strangler_event";

/// Applies `events` (in offset order per partition) inside `tx`. Duplicates are recognised by the
/// ids recorded in the read store, or by `window` when the projection keeps its ids in memory
/// (the caller then records what the commit consumed, [`Window::record`]).
///
/// The fast path (`careful = false`) runs the handlers without savepoints and gives up on the
/// first failure; the careful path wraps each event in a savepoint so one failure can be retried,
/// skipped or parked without losing the others.
pub async fn apply_batch(
    tx: &mut ReadTx,
    projection: &dyn Projection,
    claims: &Claims,
    events: &[Event],
    parked: &mut HashSet<String>,
    careful: bool,
    window: Option<&Window>,
) -> Result<BatchResult> {
    let name = projection.name();
    let version = projection.version();
    let settings = projection.settings();
    let partitions: Vec<(String, i32)> = progress_of(events)
        .into_iter()
        .map(|p| (p.topic, p.partition))
        .collect();
    checkpoint::lock(tx, name, version, &partitions).await?;
    let admitted = match window {
        Some(w) => w.admit(events),
        None => crate::dedup::admit(tx, name, version, events).await?,
    };
    let mut stats = BatchStats::default();
    let mut stop: Option<(usize, Error)> = None;

    if !careful {
        // Many events per statement; any failure sends the batch down the careful path.
        let mut run: Vec<&Event> = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            if !admitted[i] {
                stats.duplicates += 1;
                continue;
            }
            if parked.contains(event.key.as_deref().unwrap_or_default()) {
                dead_letter::insert(
                    tx,
                    name,
                    version,
                    event,
                    Status::Parked,
                    Reason::KeyParked,
                    "an earlier event of this key is parked",
                )
                .await?;
                stats.dead_lettered += 1;
                continue;
            }
            run.push(event);
        }
        match projection.apply_many(tx, &run).await {
            Ok(m) => {
                stats.applied += m.applied;
                stats.ignored += m.ignored;
                stats.rows += m.rows;
            }
            Err(_) => return Ok(BatchResult::NeedCareful),
        }
    }

    // The careful path: one event at a time, each in a savepoint.
    let one_by_one: &[Event] = if careful { events } else { &[] };
    for (i, event) in one_by_one.iter().enumerate() {
        if !admitted[i] {
            stats.duplicates += 1;
            continue;
        }
        let key = event.key.clone().unwrap_or_default();
        if parked.contains(&key) {
            dead_letter::insert(
                tx,
                name,
                version,
                event,
                Status::Parked,
                Reason::KeyParked,
                "an earlier event of this key is parked",
            )
            .await?;
            stats.dead_lettered += 1;
            continue;
        }
        let retries = settings
            .policy
            .on_failure
            .retries(settings.policy.max_retries);
        let mut attempt = 0;
        let failure = loop {
            tx.execute_script(SP_EVENT).await?;
            match projection.apply(tx, event).await {
                Ok(applied) => {
                    tx.execute_script(SP_EVENT_OK).await?;
                    match applied {
                        Applied::Rows(n) => {
                            stats.applied += 1;
                            stats.rows += n;
                        }
                        Applied::Ignored => stats.ignored += 1,
                    }
                    break None;
                }
                Err(e) => {
                    tx.execute_script(SP_EVENT_BACK).await?;
                    tx.execute_script(SP_EVENT_OK).await?;
                    if attempt < retries && e.reason.retryable() {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(settings.policy.retry_backoff_ms))
                            .await;
                        continue;
                    }
                    break Some(e);
                }
            }
        };
        let Some(e) = failure else { continue };
        if e.reason == Reason::SinkUnavailable {
            // Not about the event: dead-lettering it would lose it. Abandon the batch (the caller
            // rolls back); the sink skips what it already applied when the batch comes again.
            return Err(Error::Sink(crate::sink::SinkError::Unavailable {
                sink: format!("the sink of {name} v{version}"),
                detail: e.detail,
            }));
        }
        metrics::counter!("strangler_projection_failures_total", "projection" => name.to_string(), "reason" => e.reason.as_str()).increment(1);
        match settings.policy.on_failure.outcome() {
            Outcome::Stop => {
                tracing::error!(projection = name, version, topic = %event.record.topic, partition = event.record.partition, offset = event.record.offset, reason = %e.reason, detail = %e.detail, "projection stops at a failing event");
                stop = Some((
                    i,
                    Error::Stopped {
                        projection: name.to_string(),
                        version,
                        topic: event.record.topic.clone(),
                        partition: event.record.partition,
                        offset: event.record.offset,
                        reason: e.reason,
                        detail: e.detail,
                    },
                ));
                break;
            }
            Outcome::Skip => {
                tracing::warn!(projection = name, key = %key, offset = event.record.offset, reason = %e.reason, "event skipped to the dead letters");
                dead_letter::insert(
                    tx,
                    name,
                    version,
                    event,
                    Status::Skipped,
                    e.reason,
                    &e.detail,
                )
                .await?;
                stats.dead_lettered += 1;
            }
            Outcome::Park => {
                tracing::warn!(projection = name, key = %key, offset = event.record.offset, reason = %e.reason, "key parked behind a failing event");
                dead_letter::insert(
                    tx,
                    name,
                    version,
                    event,
                    Status::Parked,
                    e.reason,
                    &e.detail,
                )
                .await?;
                parked.insert(key);
                stats.dead_lettered += 1;
            }
        }
    }

    let handled = match &stop {
        Some((i, _)) => &events[..*i],
        None => events,
    };
    if let (Some((i, _)), None) = (&stop, window) {
        // The unhandled events' ids were admitted above; forget them so a restart applies them.
        // (A window only remembers what the commit consumed.)
        crate::dedup::forget(tx, name, version, &events[*i..]).await?;
    }
    stats.progress = progress_of(handled);
    let fenced = |topic: &str, partition: i32| Error::Fenced {
        projection: name.to_string(),
        version,
        topic: topic.to_string(),
        partition,
    };
    let mut held = Vec::with_capacity(stats.progress.len());
    for p in &stats.progress {
        let generation = claims
            .generation(&p.topic, p.partition)
            .ok_or_else(|| fenced(&p.topic, p.partition))?;
        held.push((generation, p));
    }
    if let Some((topic, partition)) = checkpoint::advance_all(tx, name, version, &held).await? {
        return Err(fenced(&topic, partition));
    }
    Ok(match stop {
        Some((_, err)) => BatchResult::Stopped(stats, err),
        None => BatchResult::Done(stats),
    })
}

/// The furthest offset and latest event time per partition, in (topic, partition) order (the
/// order the batch locks its checkpoints in).
fn progress_of(events: &[Event]) -> Vec<Progress> {
    let mut progress: Vec<Progress> = Vec::new();
    for e in events {
        let r = &e.record;
        advance(
            &mut progress,
            &r.topic,
            r.partition,
            r.offset + 1,
            r.timestamp_ms,
            1,
        );
    }
    progress.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    progress
}

/// Moves one partition's progress on to `next_offset` and `event_time` (whichever is further)
/// and counts `events` more, adding the partition when `progress` lacks it. A batch holds runs of
/// one partition, and its few partitions are searched from the latest added.
fn advance(
    progress: &mut Vec<Progress>,
    topic: &str,
    partition: i32,
    next_offset: i64,
    event_time_ms: Option<i64>,
    events: i64,
) {
    let i = match progress
        .iter()
        .rposition(|p| p.partition == partition && p.topic == topic)
    {
        Some(i) => i,
        None => {
            progress.push(Progress {
                topic: topic.to_string(),
                partition,
                next_offset,
                last_event_time_ms: event_time_ms,
                events: 0,
            });
            progress.len() - 1
        }
    };
    let p = &mut progress[i];
    p.next_offset = p.next_offset.max(next_offset);
    p.last_event_time_ms = p.last_event_time_ms.max(event_time_ms);
    p.events += events;
}

#[cfg(test)]
mod tests {
    use strangler_bus::Record;

    use super::*;

    fn ev(topic: &str, partition: i32, offset: i64, at: i64) -> Event {
        Event {
            record: Record {
                topic: topic.into(),
                partition,
                offset,
                key: None,
                value: None,
                headers: Vec::new(),
                timestamp_ms: Some(at),
            },
            id: None,
            event_type: None,
            key: None,
            payload: Ok(serde_json::Value::Null),
            prepared: None,
        }
    }

    /// A partition's progress as one comparable tuple: topic, partition, next offset, last event
    /// time, events.
    fn summary(p: &Progress) -> (String, i32, i64, Option<i64>, i64) {
        (
            p.topic.clone(),
            p.partition,
            p.next_offset,
            p.last_event_time_ms,
            p.events,
        )
    }

    /// The halves of a batch that failed as a whole add up to what the whole would have done.
    #[test]
    fn a_later_part_of_a_batch_moves_progress_on_and_adds_its_counts() {
        let events = [
            ev("orders", 0, 3, 100),
            ev("orders", 1, 10, 500),
            ev("orders", 0, 4, 90),
            ev("orders", 1, 11, 400),
            ev("refunds", 0, 1, 20),
        ];
        let (first, second) = events.split_at(2);
        let part = |events: &[Event], applied: u64| BatchStats {
            applied,
            duplicates: 1,
            rows: 2 * applied,
            progress: progress_of(events),
            ..BatchStats::default()
        };
        let mut stats = part(first, 2);
        stats.absorb(part(second, 3));
        let whole = part(&events, 5);
        assert_eq!((stats.applied, stats.duplicates, stats.rows), (5, 2, 10));
        let mut got: Vec<_> = stats.progress.iter().map(summary).collect();
        got.sort();
        let want: Vec<_> = whole.progress.iter().map(summary).collect();
        assert_eq!(got, want);
    }

    /// Runs of one partition interleave with others, and a partition may come back later in the
    /// batch: each partition gets one entry, with its highest offset and time and all its events.
    #[test]
    fn progress_counts_each_partition_once_however_its_events_interleave() {
        let events = [
            ev("orders", 1, 10, 500),
            ev("orders", 1, 11, 400),
            ev("orders", 0, 3, 100),
            ev("refunds", 1, 7, 50),
            ev("orders", 1, 12, 450),
            ev("orders", 0, 4, 90),
            ev("orders", 0, 5, 300),
        ];
        let got: Vec<_> = progress_of(&events).iter().map(summary).collect();
        assert_eq!(
            got,
            [
                ("orders".to_string(), 0, 6, Some(300), 3),
                ("orders".to_string(), 1, 13, Some(500), 3),
                ("refunds".to_string(), 1, 8, Some(50), 1),
            ]
        );
    }
}
