use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// Two in-memory tables of key -> row hash; counts the rows each checksum query scans.
struct Fake {
    legacy: BTreeMap<i64, u64>,
    projection: BTreeMap<i64, u64>,
    scanned: AtomicU64,
}

impl ChecksumSource for Fake {
    type Error = Infallible;

    async fn checksums(
        &self,
        side: Side,
        seg: Segment,
        width: i64,
    ) -> Result<Vec<Checksum>, Infallible> {
        let table = match side {
            Side::Legacy => &self.legacy,
            Side::Projection => &self.projection,
        };
        let mut out = vec![Checksum::default(); seg.buckets(width).len()];
        for (k, h) in table.range(seg.lo..seg.hi) {
            out[seg.bucket_of(*k, width)].add(*h);
            self.scanned.fetch_add(1, Ordering::Relaxed);
        }
        Ok(out)
    }
}

fn hash(k: i64) -> u64 {
    crate::normalize::row_hash(&k.to_string())
}

/// `n` identical rows, then `d` seeded changes spread by a fixed stride: a third changed, a third
/// deleted from the projection, a third extra in the projection.
fn seeded(n: i64, d: i64) -> (Fake, BTreeSet<i64>) {
    let legacy: BTreeMap<i64, u64> = (1..=n).map(|k| (k, hash(k))).collect();
    let mut projection = legacy.clone();
    let mut drifted = BTreeSet::new();
    let stride = n / d;
    for i in 0..d {
        let k = 1 + i * stride + (i * 7919) % stride.max(1);
        match i % 3 {
            0 => {
                projection.insert(k, hash(k) ^ 1);
            }
            1 => {
                projection.remove(&k);
            }
            _ => {
                // An extra row just past the legacy key space, or where a legacy key was removed.
                projection.insert(n + 1 + i, hash(n + 1 + i));
                drifted.insert(n + 1 + i);
                continue;
            }
        }
        drifted.insert(k);
    }
    (
        Fake {
            legacy,
            projection,
            scanned: AtomicU64::new(0),
        },
        drifted,
    )
}

fn opts() -> Options {
    Options {
        chunk_size: 10_000,
        factor: 32,
        leaf_rows: 64,
        concurrency: 4,
        root_queries: 4,
    }
}

fn covered(leaves: &[Segment], key: i64) -> bool {
    leaves.iter().any(|s| s.lo <= key && key < s.hi)
}

#[tokio::test]
async fn finds_exactly_the_seeded_differences() {
    let n = 1_000_000;
    let d = 300;
    let (fake, drifted) = seeded(n, d);
    let range = Segment {
        lo: 1,
        hi: n + 1 + d + 1,
    };
    let done = AtomicU64::new(0);
    let out = locate(&fake, range, opts(), &|w| {
        done.fetch_add(w, Ordering::Relaxed);
    })
    .await
    .unwrap();
    // Every drifted key lies in a leaf, and every leaf holds a drifted key.
    for k in &drifted {
        assert!(covered(&out.leaves, *k), "key {k} not located");
    }
    for leaf in &out.leaves {
        assert!(
            drifted.range(leaf.lo..leaf.hi).next().is_some(),
            "leaf {leaf:?} holds no drift"
        );
    }
    // Progress accounts for the whole key space exactly once.
    assert_eq!(done.load(Ordering::Relaxed), range.width());
    // O(d log n) chunks: beyond the first level, each drifted key costs at most `factor` chunks
    // per level, and there are log_factor(chunk_size) levels.
    let root_chunks = range.width().div_ceil(opts().chunk_size);
    let levels = (opts().chunk_size as f64)
        .log(f64::from(opts().factor))
        .ceil() as u64;
    let bound = root_chunks + drifted.len() as u64 * u64::from(opts().factor) * levels;
    assert!(
        out.chunks_compared <= bound,
        "{} chunks compared, bound {bound}",
        out.chunks_compared
    );
    // Rows fetched for row diffs stay a small multiple of the drift.
    let fetched: u64 = out.leaves.iter().map(Segment::width).sum();
    assert!(
        fetched <= drifted.len() as u64 * 64,
        "{fetched} keys fetched"
    );
}

#[tokio::test]
async fn identical_tables_cost_one_pass_and_no_leaves() {
    let n = 200_000;
    let (fake, _) = seeded(n, 1);
    let same = Fake {
        projection: fake.legacy.clone(),
        ..fake
    };
    let out = locate(&same, Segment { lo: 1, hi: n + 1 }, opts(), &|_| {})
        .await
        .unwrap();
    assert!(out.leaves.is_empty());
    assert_eq!(out.chunks_differing, 0);
    assert_eq!(out.queries, u64::from(opts().root_queries));
    // One scan of each table, nothing more.
    assert_eq!(same.scanned.load(Ordering::Relaxed), 2 * n as u64);
}

#[tokio::test]
async fn a_single_change_touches_a_logarithmic_number_of_chunks() {
    let n = 1_000_000;
    let legacy: BTreeMap<i64, u64> = (1..=n).map(|k| (k, hash(k))).collect();
    let mut projection = legacy.clone();
    projection.insert(777_777, 0);
    let fake = Fake {
        legacy,
        projection,
        scanned: AtomicU64::new(0),
    };
    let out = locate(&fake, Segment { lo: 1, hi: n + 1 }, opts(), &|_| {})
        .await
        .unwrap();
    assert_eq!(out.leaves.len(), 1);
    assert!(covered(&out.leaves, 777_777));
    // Root level plus at most two levels of 32 for a 10,000-key chunk down to 64 rows.
    assert!(
        out.chunks_compared <= 100 + 2 * 32,
        "{}",
        out.chunks_compared
    );
    assert_eq!(out.chunks_differing, 3);
}

#[test]
fn decide_splits_only_large_differing_chunks() {
    let o = opts();
    let big = Segment { lo: 0, hi: 10_000 };
    let c = |count, sum| Checksum { count, sum };
    assert_eq!(decide(big, c(5, 9), c(5, 9), &o), Decision::Equal);
    assert_eq!(decide(big, c(10_000, 9), c(10_000, 8), &o), Decision::Split);
    assert_eq!(decide(big, c(64, 9), c(63, 8), &o), Decision::Leaf);
    let narrow = Segment { lo: 0, hi: 32 };
    assert_eq!(decide(narrow, c(100, 1), c(100, 2), &o), Decision::Leaf);
}

#[test]
fn buckets_cover_the_range_without_overlap() {
    let s = Segment { lo: -5, hi: 100 };
    let w = s.bucket_width(7);
    let b = s.buckets(w);
    assert_eq!(b.first().unwrap().lo, -5);
    assert_eq!(b.last().unwrap().hi, 100);
    for pair in b.windows(2) {
        assert_eq!(pair[0].hi, pair[1].lo);
    }
    for k in -5..100 {
        let i = s.bucket_of(k, w);
        assert!(b[i].lo <= k && k < b[i].hi);
    }
}
