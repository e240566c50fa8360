//! Freshness: how far each projection is behind its bus, per partition, from the checkpoint rows;
//! published as gauges, shown by `project status`, and sent as headers by the read API.

use std::time::Duration;

use serde::Serialize;
use strangler_store::Store;

use crate::apply::BatchStats;
use crate::checkpoint;
use crate::store::now_ms;

/// Freshness of one projection version on one partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionFreshness {
    /// Projection.
    pub projection: String,
    /// Version.
    pub version: u32,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to apply (the last applied offset is one less).
    pub next_offset: i64,
    /// The bus's end offset when last looked at.
    pub end_offset: Option<i64>,
    /// Events waiting: end offset minus next offset.
    pub lag_events: i64,
    /// Zero when caught up; otherwise how long since the last applied event happened, in ms.
    pub lag_ms: i64,
    /// Event time of the last applied event (ms since the epoch).
    pub last_event_time_ms: Option<i64>,
    /// When the last batch committed (ms since the epoch).
    pub applied_at_ms: Option<i64>,
    /// Events applied in all.
    pub events_applied: i64,
    /// False when events wait and nothing has been applied for longer than the stall limit.
    pub healthy: bool,
}

/// Freshness of every partition (of one projection, when named). `stall_after` decides health.
pub async fn status(
    store: &Store,
    projection: Option<&str>,
    stall_after: Duration,
) -> Result<Vec<PartitionFreshness>, sqlx::Error> {
    let now = now_ms();
    let rows = checkpoint::list(store, projection).await?;
    Ok(rows
        .into_iter()
        .map(|c| {
            let lag_events = c.end_offset.map_or(0, |e| (e - c.next_offset).max(0));
            let lag_ms = if lag_events == 0 {
                0
            } else {
                c.last_event_time_ms.map_or(0, |t| (now - t).max(0))
            };
            let idle_ms = c.applied_at_ms.map_or(i64::MAX, |t| now - t);
            let healthy = lag_events == 0 || idle_ms <= stall_after.as_millis() as i64;
            PartitionFreshness {
                projection: c.projection,
                version: c.version,
                topic: c.topic,
                partition: c.partition,
                next_offset: c.next_offset,
                end_offset: c.end_offset,
                lag_events,
                lag_ms,
                last_event_time_ms: c.last_event_time_ms,
                applied_at_ms: c.applied_at_ms,
                events_applied: c.events_applied,
                healthy,
            }
        })
        .collect())
}

/// Sets the freshness gauges.
pub fn publish(rows: &[PartitionFreshness]) {
    for r in rows {
        let labels = [
            ("projection", r.projection.clone()),
            ("version", r.version.to_string()),
            ("topic", r.topic.clone()),
            ("partition", r.partition.to_string()),
        ];
        metrics::gauge!("strangler_projection_lag_events", &labels).set(r.lag_events as f64);
        metrics::gauge!("strangler_projection_lag_seconds", &labels).set(r.lag_ms as f64 / 1000.0);
        metrics::gauge!("strangler_projection_next_offset", &labels).set(r.next_offset as f64);
        if let Some(t) = r.last_event_time_ms {
            metrics::gauge!("strangler_projection_last_event_time_seconds", &labels)
                .set(t as f64 / 1000.0);
        }
        metrics::gauge!("strangler_projection_healthy", &labels).set(if r.healthy {
            1.0
        } else {
            0.0
        });
    }
}

/// Counts a batch's events.
pub fn count_batch(projection: &str, version: u32, b: &BatchStats) {
    let labels = [
        ("projection", projection.to_string()),
        ("version", version.to_string()),
    ];
    metrics::counter!("strangler_projection_events_applied_total", &labels).increment(b.applied);
    metrics::counter!("strangler_projection_duplicates_total", &labels).increment(b.duplicates);
    metrics::counter!("strangler_projection_dead_letters_total", &labels)
        .increment(b.dead_lettered);
}

/// Counts the records a dedup window read back (`[dedup] mode = "window"`: records before a
/// claim's start, remembered for their ids only) and publishes how many ids it holds.
pub fn count_window(projection: &str, version: u32, read_back: u64, ids: usize) {
    let labels = [
        ("projection", projection.to_string()),
        ("version", version.to_string()),
    ];
    metrics::counter!("strangler_projection_dedup_window_read_back_total", &labels)
        .increment(read_back);
    metrics::gauge!("strangler_projection_dedup_window_ids", &labels).set(ids as f64);
}

/// The watermark and lag of a projection version as the read API reports them: the latest event
/// time applied on any partition, and the largest lag.
pub fn summary(rows: &[PartitionFreshness], projection: &str, version: u32) -> (Option<i64>, i64) {
    // The watermark is a low watermark: every event at or before it has been applied. A partition
    // with events waiting holds it at its last applied event time (the epoch if it applied none);
    // partitions that are caught up do not hold it back. A projection that has applied nothing
    // reports the epoch, so "absent" answers read as "not projected yet", never as drift.
    let mine: Vec<_> = rows
        .iter()
        .filter(|r| r.projection == projection && r.version == version)
        .collect();
    let lag = mine.iter().map(|r| r.lag_ms).max().unwrap_or(0);
    let behind = mine
        .iter()
        .filter(|r| r.lag_events > 0)
        .map(|r| r.last_event_time_ms.unwrap_or(0))
        .min();
    let watermark = match behind {
        Some(w) => Some(w),
        None => Some(
            mine.iter()
                .filter_map(|r| r.last_event_time_ms)
                .max()
                .unwrap_or(0),
        ),
    };
    (watermark, lag)
}
