//! Freshness budgets: the new read path reports how far behind its projection is
//! (`X-Strangler-Lag-Ms`, or `X-Strangler-Watermark` as the RFC 3339 time of the last applied
//! event). While the last reported lag exceeds the capability's budget, its reads fall back to
//! legacy; mirrored copies keep asking the new path, so recovery is seen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use chrono::{DateTime, Utc};
use http::HeaderMap;
use strangler_diff::Watermark;

/// Lag header of the new read path, in milliseconds.
pub const LAG_HEADER: &str = "x-strangler-lag-ms";
/// Watermark header of the new read path.
pub const WATERMARK_HEADER: &str = "x-strangler-watermark";

/// The last lag the new path reported for one capability.
pub struct Freshness {
    name: Arc<str>,
    budget_ms: u64,
    lag_ms: AtomicU64,
    lagging: AtomicBool,
    lag_gauge: metrics::Gauge,
    /// Newest watermark seen, as Unix microseconds (`i64::MIN` before any).
    watermark_us: AtomicI64,
}

impl Freshness {
    /// Tracks a capability with this freshness budget.
    pub fn new(name: Arc<str>, budget_ms: u64) -> Self {
        Freshness {
            budget_ms,
            lag_ms: AtomicU64::new(0),
            lagging: AtomicBool::new(false),
            watermark_us: AtomicI64::new(i64::MIN),
            lag_gauge: metrics::gauge!("strangler_proxy_lag_ms", "capability" => name.to_string()),
            name,
        }
    }

    /// Whether the new path is currently over budget.
    pub fn lagging(&self) -> bool {
        self.lagging.load(Relaxed)
    }

    /// The last reported lag, ms.
    pub fn lag_ms(&self) -> u64 {
        self.lag_ms.load(Relaxed)
    }

    /// Whether the new path has applied everything up to `at`: its newest reported watermark
    /// (the watermark header's time, or the answer's time minus the lag it reported) is after
    /// `at` (strictly, so an answer given in the same instant as a write does not count).
    pub fn applied_since(&self, at: DateTime<Utc>) -> bool {
        self.watermark_us.load(Relaxed) > at.timestamp_micros()
    }

    /// Reads a new-path answer's headers; returns the lag they report, if any.
    pub fn observe(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<u64> {
        let lag = lag_of(headers, now)?;
        let watermark = match watermark_of(headers) {
            Some(Watermark::Time(t)) => t.timestamp_micros(),
            _ => now
                .timestamp_micros()
                .saturating_sub(i64::try_from(lag).unwrap_or(i64::MAX).saturating_mul(1000)),
        };
        self.watermark_us.fetch_max(watermark, Relaxed);
        self.lag_ms.store(lag, Relaxed);
        let over = lag > self.budget_ms;
        let was = self.lagging.swap(over, Relaxed);
        if was != over {
            metrics::gauge!("strangler_proxy_lagging", "capability" => self.name.to_string())
                .set(if over { 1.0 } else { 0.0 });
            if over {
                tracing::warn!(capability = %self.name, lag_ms = lag, budget_ms = self.budget_ms, "projection lags past its freshness budget; serving legacy");
            } else {
                tracing::info!(capability = %self.name, lag_ms = lag, budget_ms = self.budget_ms, "projection back within its freshness budget");
            }
        }
        self.lag_gauge.set(lag as f64);
        Some(lag)
    }
}

/// The lag an answer reports: the lag header, else now minus the watermark time.
pub fn lag_of(headers: &HeaderMap, now: DateTime<Utc>) -> Option<u64> {
    if let Some(ms) = headers
        .get(LAG_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(ms.max(0.0) as u64);
    }
    match watermark_of(headers)? {
        Watermark::Time(t) => Some(
            u64::try_from((now - t.with_timezone(&Utc)).num_milliseconds().max(0)).unwrap_or(0),
        ),
        Watermark::Offset(_) => None,
    }
}

/// The watermark an answer reports.
pub fn watermark_of(headers: &HeaderMap) -> Option<Watermark> {
    headers
        .get(WATERMARK_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(Watermark::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_comes_from_the_header_or_the_watermark() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:10Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = HeaderMap::new();
        assert_eq!(lag_of(&h, now), None);
        h.insert(WATERMARK_HEADER, "2026-01-01T00:00:07.5Z".parse().unwrap());
        assert_eq!(lag_of(&h, now), Some(2_500));
        h.insert(LAG_HEADER, "120".parse().unwrap());
        assert_eq!(lag_of(&h, now), Some(120));
    }

    #[test]
    fn over_budget_flips_and_recovers() {
        let f = Freshness::new("orders".into(), 1_000);
        let mut h = HeaderMap::new();
        h.insert(LAG_HEADER, "5000".parse().unwrap());
        f.observe(&h, Utc::now());
        assert!(f.lagging());
        let before = Utc::now();
        h.insert(LAG_HEADER, "10".parse().unwrap());
        f.observe(&h, Utc::now());
        assert!(!f.lagging());
        assert_eq!(f.lag_ms(), 10);
        // 10 ms behind the time of the answer: a write a second ago is applied, one later not.
        assert!(f.applied_since(before - chrono::TimeDelta::seconds(1)));
        assert!(!f.applied_since(Utc::now() + chrono::TimeDelta::seconds(1)));
        // An absurd lag does not overflow: nothing counts as applied by it.
        let g = Freshness::new("orders".into(), 1_000);
        h.insert(LAG_HEADER, "1e300".parse().unwrap());
        g.observe(&h, Utc::now());
        assert!(!g.applied_since(before));
    }
}
