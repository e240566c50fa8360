//! Per-capability counters and latencies, kept in atomics on the request path and written to the
//! control plane in one batch every `proxy.stats_flush_ms` (never one write per request), so
//! gates can read them across proxies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use strangler_diff::{Side, Verdict};
use strangler_store::cutover::{VerdictCounts, window_of};

use crate::hist::Histogram;
use crate::modes::Fallback;

/// Why a comparison was skipped or a mirror copy dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not chosen by the sample rate.
    SampledOut,
    /// The capability's mirror pool was full.
    PoolFull,
    /// A body was larger than `max_body_bytes`.
    TooLarge,
    /// A write that may not be mirrored (no sandbox configured).
    WriteUnsafe,
    /// The served answer's body did not finish within the mirror deadline.
    Deadline,
    /// The served side failed, so there was nothing to compare.
    ServedFailed,
    /// The client went away before the body was complete.
    ClientAborted,
}

impl Skip {
    /// All reasons, in counter order.
    pub const ALL: [Skip; 7] = [
        Skip::SampledOut,
        Skip::PoolFull,
        Skip::TooLarge,
        Skip::WriteUnsafe,
        Skip::Deadline,
        Skip::ServedFailed,
        Skip::ClientAborted,
    ];

    /// Metric label and stored reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::SampledOut => "sampled_out",
            Skip::PoolFull => "pool_full",
            Skip::TooLarge => "too_large",
            Skip::WriteUnsafe => "write_unsafe",
            Skip::Deadline => "deadline",
            Skip::ServedFailed => "served_failed",
            Skip::ClientAborted => "client_aborted",
        }
    }

    /// Whether a mirror copy was dropped (rather than never planned).
    fn is_drop(self) -> bool {
        !matches!(self, Skip::SampledOut | Skip::WriteUnsafe)
    }
}

/// Counters of one capability.
pub struct CapStats {
    name: Arc<str>,
    metrics: CapMetrics,
    matches: AtomicU64,
    mismatches: AtomicU64,
    stale: AtomicU64,
    errors: AtomicU64,
    new_errors: AtomicU64,
    served_new: AtomicU64,
    skipped: [AtomicU64; Skip::ALL.len()],
    fallbacks: [AtomicU64; Fallback::ALL.len()],
    legacy_window: Histogram,
    new_window: Histogram,
    legacy_total: Histogram,
    new_total: Histogram,
}

/// A point-in-time copy of a capability's counters, for the admin API, the dashboard and tests.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CapCounters {
    /// Capability.
    pub capability: String,
    /// Matching answers.
    pub matches: u64,
    /// Differing answers.
    pub mismatches: u64,
    /// Differences explained by lag.
    pub stale: u64,
    /// Either side failed.
    pub errors: u64,
    /// The new path failed.
    pub new_errors: u64,
    /// Requests answered by the new path.
    pub served_new: u64,
    /// Skips and drops by reason (`sampled_out`, `pool_full`, `too_large`, ...).
    pub skipped: Vec<(&'static str, u64)>,
    /// Fall-backs to legacy by reason (`lag`, `read_your_writes`, `mismatch`, ...).
    pub fallbacks: Vec<(&'static str, u64)>,
    /// Legacy p50 since start, ms.
    pub legacy_p50_ms: Option<f64>,
    /// Legacy p99 since start, ms.
    pub legacy_p99_ms: Option<f64>,
    /// New path p50 since start, ms.
    pub new_p50_ms: Option<f64>,
    /// New path p99 since start, ms.
    pub new_p99_ms: Option<f64>,
    /// New p99 minus legacy p99, ms.
    pub p99_delta_ms: Option<f64>,
}

impl CapCounters {
    /// Count of one skip reason.
    pub fn skipped(&self, reason: &str) -> u64 {
        self.skipped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Count of one fall-back reason.
    pub fn fallbacks(&self, reason: &str) -> u64 {
        self.fallbacks
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

/// The capability's Prometheus counters, registered once: looking a labelled counter up by name
/// (and allocating its label) on every request cost more than the counting itself.
struct CapMetrics {
    verdicts: [metrics::Counter; 4],
    skipped: [metrics::Counter; Skip::ALL.len()],
    fallbacks: [metrics::Counter; Fallback::ALL.len()],
}

impl CapMetrics {
    fn new(name: &str) -> Self {
        let verdict = |v: &'static str| {
            metrics::counter!("strangler_proxy_verdicts_total",
                "capability" => name.to_owned(), "verdict" => v)
        };
        CapMetrics {
            verdicts: ["match", "mismatch", "stale", "error"].map(verdict),
            skipped: Skip::ALL.map(|s| {
                let metric = if s.is_drop() {
                    "strangler_proxy_mirror_dropped_total"
                } else {
                    "strangler_proxy_mirror_skipped_total"
                };
                metrics::counter!(metric, "capability" => name.to_owned(), "reason" => s.as_str())
            }),
            fallbacks: Fallback::ALL.map(|f| {
                metrics::counter!("strangler_proxy_fallback_total",
                    "capability" => name.to_owned(), "reason" => f.as_str())
            }),
        }
    }
}

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|u| u as f64 / 1000.0)
}

impl CapStats {
    /// Empty counters for a capability.
    pub fn new(name: Arc<str>) -> Self {
        CapStats {
            metrics: CapMetrics::new(&name),
            name,
            matches: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            new_errors: AtomicU64::new(0),
            served_new: AtomicU64::new(0),
            skipped: Default::default(),
            fallbacks: Default::default(),
            legacy_window: Histogram::default(),
            new_window: Histogram::default(),
            legacy_total: Histogram::default(),
            new_total: Histogram::default(),
        }
    }

    /// Counts one comparison's verdict.
    pub fn verdict(&self, v: &Verdict) {
        let (counter, i) = match v {
            Verdict::Match => (&self.matches, 0),
            Verdict::Mismatch => (&self.mismatches, 1),
            Verdict::Stale { .. } => (&self.stale, 2),
            Verdict::Error { side, .. } => {
                if matches!(side, Side::Candidate | Side::Both) {
                    self.new_errors.fetch_add(1, Relaxed);
                }
                (&self.errors, 3)
            }
            Verdict::Skipped { .. } => {
                self.skip(Skip::ServedFailed);
                return;
            }
        };
        counter.fetch_add(1, Relaxed);
        self.metrics.verdicts[i].increment(1);
    }

    /// Counts a skipped comparison or dropped mirror copy.
    pub fn skip(&self, s: Skip) {
        self.skipped[s as usize].fetch_add(1, Relaxed);
        self.metrics.skipped[s as usize].increment(1);
    }

    /// Counts a request served by legacy instead of the new path.
    pub fn fallback(&self, f: Fallback) {
        self.fallbacks[f as usize].fetch_add(1, Relaxed);
        self.metrics.fallbacks[f as usize].increment(1);
    }

    /// Counts a request served by the new path.
    pub fn served_new(&self) {
        self.served_new.fetch_add(1, Relaxed);
    }

    /// Records legacy's time to response headers.
    pub fn legacy_latency(&self, d: Duration) {
        self.legacy_window.record(d);
        self.legacy_total.record(d);
    }

    /// Records the new path's time to response headers.
    pub fn new_latency(&self, d: Duration) {
        self.new_window.record(d);
        self.new_total.record(d);
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> CapCounters {
        let lp99 = self.legacy_total.quantile_us(0.99);
        let np99 = self.new_total.quantile_us(0.99);
        CapCounters {
            capability: self.name.to_string(),
            matches: self.matches.load(Relaxed),
            mismatches: self.mismatches.load(Relaxed),
            stale: self.stale.load(Relaxed),
            errors: self.errors.load(Relaxed),
            new_errors: self.new_errors.load(Relaxed),
            served_new: self.served_new.load(Relaxed),
            skipped: Skip::ALL
                .iter()
                .map(|s| (s.as_str(), self.skipped[*s as usize].load(Relaxed)))
                .collect(),
            fallbacks: Fallback::ALL
                .iter()
                .map(|f| (f.as_str(), self.fallbacks[*f as usize].load(Relaxed)))
                .collect(),
            legacy_p50_ms: ms(self.legacy_total.quantile_us(0.5)),
            legacy_p99_ms: ms(lp99),
            new_p50_ms: ms(self.new_total.quantile_us(0.5)),
            new_p99_ms: ms(np99),
            p99_delta_ms: lp99.zip(np99).map(|(l, n)| (n as f64 - l as f64) / 1000.0),
        }
    }
}

/// Turns cumulative counters into per-flush deltas for the store.
pub struct Flusher {
    proxy_id: String,
    window: Option<DateTime<Utc>>,
    last: Vec<CapCounters>,
}

impl Flusher {
    /// A flusher for `caps` capabilities.
    pub fn new(proxy_id: String, caps: usize) -> Self {
        Flusher {
            proxy_id,
            window: None,
            last: vec![CapCounters::default(); caps],
        }
    }

    /// The rows to write now; call [`Flusher::committed`] once they are stored. When a new window
    /// began, the latency windows restart after this batch.
    pub fn batch(&mut self, stats: &[CapStats], now: DateTime<Utc>) -> Pending {
        let minute = window_of(now);
        let window = *self.window.get_or_insert(minute);
        let mut rows = Vec::new();
        let mut snapshots = Vec::with_capacity(stats.len());
        for (s, last) in stats.iter().zip(&self.last) {
            let cur = s.snapshot();
            let d = |a: u64, b: u64| i64::try_from(a.saturating_sub(b)).unwrap_or(i64::MAX);
            let skipped_by_reason: Vec<(String, i64)> = cur
                .skipped
                .iter()
                .zip(last.skipped.iter().map(|x| x.1).chain(std::iter::repeat(0)))
                .filter(|((_, n), l)| n > l)
                .map(|((r, n), l)| (r.to_string(), d(*n, l)))
                .collect();
            let fallbacks: u64 = cur.fallbacks.iter().map(|x| x.1).sum();
            let last_fallbacks: u64 = last.fallbacks.iter().map(|x| x.1).sum();
            let samples = s.new_window.count();
            let q = |h: &Histogram, p| h.quantile_us(p).map_or(0, |v| v as i64);
            let row = VerdictCounts {
                capability: s.name.to_string(),
                window_start: window,
                proxy_id: self.proxy_id.clone(),
                matches: d(cur.matches, last.matches),
                mismatches: d(cur.mismatches, last.mismatches),
                stale: d(cur.stale, last.stale),
                errors: d(cur.errors, last.errors),
                new_errors: d(cur.new_errors, last.new_errors),
                skipped: skipped_by_reason.iter().map(|x| x.1).sum(),
                served_new: d(cur.served_new, last.served_new),
                fallbacks: d(fallbacks, last_fallbacks),
                latency_samples: i64::try_from(samples).unwrap_or(i64::MAX),
                legacy_p50_us: q(&s.legacy_window, 0.5),
                legacy_p99_us: q(&s.legacy_window, 0.99),
                new_p50_us: q(&s.new_window, 0.5),
                new_p99_us: q(&s.new_window, 0.99),
                skipped_by_reason,
            };
            let moved = row.matches
                + row.mismatches
                + row.stale
                + row.errors
                + row.skipped
                + row.served_new
                + row.fallbacks
                > 0;
            if moved {
                rows.push(row);
            }
            snapshots.push(cur);
        }
        Pending {
            rows,
            snapshots,
            rotate: minute != window,
            next_window: minute,
        }
    }

    /// Marks a batch as stored: its counts are not sent again.
    pub fn committed(&mut self, stats: &[CapStats], pending: Pending) {
        self.last = pending.snapshots;
        if pending.rotate {
            for s in stats {
                s.legacy_window.reset();
                s.new_window.reset();
            }
            self.window = Some(pending.next_window);
        }
    }
}

/// A batch waiting to be written.
pub struct Pending {
    /// The rows.
    pub rows: Vec<VerdictCounts>,
    snapshots: Vec<CapCounters>,
    rotate: bool,
    next_window: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_send_deltas_once_and_only_after_commit() {
        let stats = vec![CapStats::new("orders".into()), CapStats::new("idle".into())];
        let mut f = Flusher::new("p1".into(), 2);
        let now = Utc::now();
        stats[0].verdict(&Verdict::Match);
        stats[0].verdict(&Verdict::Mismatch);
        stats[0].skip(Skip::PoolFull);
        stats[0].new_latency(Duration::from_millis(3));
        let p = f.batch(&stats, now);
        assert_eq!(p.rows.len(), 1, "idle capabilities send nothing");
        assert_eq!((p.rows[0].matches, p.rows[0].mismatches), (1, 1));
        assert_eq!(
            p.rows[0].skipped_by_reason,
            vec![("pool_full".to_string(), 1)]
        );
        // Not committed (the store failed): the same counts come again, plus new ones.
        stats[0].verdict(&Verdict::Match);
        let p = f.batch(&stats, now);
        assert_eq!(p.rows[0].matches, 2);
        f.committed(&stats, p);
        stats[0].verdict(&Verdict::Match);
        let p = f.batch(&stats, now);
        assert_eq!((p.rows[0].matches, p.rows[0].mismatches), (1, 0));
        assert_eq!(p.rows[0].latency_samples, 1);
    }
}
