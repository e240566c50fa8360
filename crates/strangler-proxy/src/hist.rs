//! A small lock-free latency histogram: log-linear buckets (16 per power of two, so about 6%
//! relative error) over microseconds, recorded with relaxed atomics from any task.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (SUB as usize) * (64 - SUB_BITS as usize + 1);

/// Latency histogram in microseconds.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn index(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let power = 63 - us.leading_zeros();
    let sub = (us >> (power - SUB_BITS)) - SUB;
    (SUB + u64::from(power - SUB_BITS) * SUB + sub) as usize
}

/// The middle of bucket `i`, in microseconds.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let power = (i - SUB) / SUB + u64::from(SUB_BITS);
    let sub = (i - SUB) % SUB;
    let low = (SUB + sub) << (power - u64::from(SUB_BITS));
    let width = 1u64 << (power - u64::from(SUB_BITS));
    low + width / 2
}

impl Histogram {
    /// Records one latency.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[index(us)].fetch_add(1, Relaxed);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The `q` quantile (0 to 1) in microseconds, `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(value(i));
            }
        }
        Some(value(BUCKETS - 1))
    }

    /// Forgets everything (a new window begins).
    pub fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            15,
            16,
            17,
            100,
            999,
            1_000,
            12_345,
            5_000_000,
            u64::MAX / 2,
        ] {
            let i = index(us);
            assert!(i >= last, "index must not go down at {us}");
            last = i;
            let v = value(i) as f64;
            let err = (v - us as f64).abs() / (us as f64).max(1.0);
            assert!(err <= 0.07, "{us} came back as {v}");
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile_us(0.5).unwrap() as f64;
        let p99 = h.quantile_us(0.99).unwrap() as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.07, "p50 {p50}");
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.07, "p99 {p99}");
        assert_eq!(h.count(), 100);
        h.reset();
        assert_eq!(h.quantile_us(0.5), None);
    }
}
