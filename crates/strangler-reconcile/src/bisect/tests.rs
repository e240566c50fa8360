use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// Two in-memory tables of key -> row hash; counts the rows each checksum query scans.
struct Fake {
    legacy: BTreeMap<Key, u64>,
    projection: BTreeMap<Key, u64>,
    scanned: AtomicU64,
}

impl Fake {
    fn table(&self, side: Side) -> &BTreeMap<Key, u64> {
        match side {
            Side::Legacy => &self.legacy,
            Side::Projection => &self.projection,
        }
    }
}

impl ChecksumSource for Fake {
    type Error = Infallible;

    async fn checksums(
        &self,
        side: Side,
        batch: &[(Segment, Cuts)],
    ) -> Result<Vec<Vec<Checksum>>, Infallible> {
        let mut all = Vec::new();
        for (seg, cuts) in batch {
            let mut out = vec![Checksum::default(); seg.buckets(cuts).len()];
            for (k, h) in self.table(side).range(seg.lo.clone()..) {
                if !seg.contains(k) {
                    break;
                }
                out[seg.bucket_of(k, cuts)].add(*h);
                self.scanned.fetch_add(1, Ordering::Relaxed);
            }
            all.push(out);
        }
        Ok(all)
    }

    async fn boundaries(
        &self,
        side: Side,
        seg: &Segment,
        step: u64,
    ) -> Result<Vec<Key>, Infallible> {
        Ok(self
            .table(side)
            .range(seg.lo.clone()..)
            .take_while(|(k, _)| seg.contains(k))
            .map(|(k, _)| k.clone())
            .enumerate()
            .filter(|(i, _)| *i > 0 && (*i as u64).is_multiple_of(step))
            .map(|(_, k)| k)
            .collect())
    }
}

fn hash(k: i64) -> u64 {
    crate::normalize::row_hash(&k.to_string())
}

/// `n` identical rows, then `d` seeded changes spread by a fixed stride: a third changed, a third
/// deleted from the projection, a third extra in the projection.
fn seeded(n: i64, d: i64) -> (Fake, BTreeSet<i64>) {
    let legacy: BTreeMap<Key, u64> = (1..=n).map(|k| (Key::Int(k), hash(k))).collect();
    let mut projection = legacy.clone();
    let mut drifted = BTreeSet::new();
    let stride = n / d;
    for i in 0..d {
        let k = 1 + i * stride + (i * 7919) % stride.max(1);
        match i % 3 {
            0 => {
                projection.insert(Key::Int(k), hash(k) ^ 1);
            }
            1 => {
                projection.remove(&Key::Int(k));
            }
            _ => {
                // An extra row just past the legacy key space, or where a legacy key was removed.
                projection.insert(Key::Int(n + 1 + i), hash(n + 1 + i));
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

fn covered(leaves: &[Segment], key: impl Into<Key>) -> bool {
    let key = key.into();
    leaves.iter().any(|s| s.contains(&key))
}

#[tokio::test]
async fn finds_exactly_the_seeded_differences() {
    let n = 1_000_000;
    let d = 300;
    let (fake, drifted) = seeded(n, d);
    let range = Segment::ints(1, n + 1 + d + 1);
    let done = AtomicU64::new(0);
    let out = locate(&fake, range.clone(), opts(), &|t| {
        if let Tick::Settled(w) = t {
            done.fetch_add(w, Ordering::Relaxed);
        }
    })
    .await
    .unwrap();
    // Every drifted key lies in a leaf, and every leaf holds a drifted key.
    for k in &drifted {
        assert!(covered(&out.leaves, *k), "key {k} not located");
    }
    for leaf in &out.leaves {
        assert!(
            drifted.iter().any(|k| leaf.contains(&Key::Int(*k))),
            "leaf {leaf:?} holds no drift"
        );
    }
    // Progress accounts for the whole key space exactly once.
    assert_eq!(Some(done.load(Ordering::Relaxed)), range.width());
    // O(d log n) chunks: beyond the first level, each drifted key costs at most `factor` chunks
    // per level, and there are log_factor(chunk_size) levels.
    let root_chunks = range.width().unwrap().div_ceil(opts().chunk_size);
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
    let fetched: u64 = out.leaves.iter().filter_map(Segment::width).sum();
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
    let out = locate(&same, Segment::ints(1, n + 1), opts(), &|_| {})
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
    let legacy: BTreeMap<Key, u64> = (1..=n).map(|k| (Key::Int(k), hash(k))).collect();
    let mut projection = legacy.clone();
    projection.insert(Key::Int(777_777), 0);
    let fake = Fake {
        legacy,
        projection,
        scanned: AtomicU64::new(0),
    };
    let out = locate(&fake, Segment::ints(1, n + 1), opts(), &|_| {})
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
    let big = &Segment::ints(0, 10_000);
    let c = |count, sum| Checksum { count, sum };
    assert_eq!(decide(big, c(5, 9), c(5, 9), &o), Decision::Equal);
    assert_eq!(decide(big, c(10_000, 9), c(10_000, 8), &o), Decision::Split);
    assert_eq!(decide(big, c(64, 9), c(63, 8), &o), Decision::Leaf);
    let narrow = &Segment::ints(0, 32);
    assert_eq!(decide(narrow, c(100, 1), c(100, 2), &o), Decision::Leaf);
}

#[test]
fn buckets_cover_the_range_without_overlap() {
    let s = Segment::ints(-5, 100);
    let w = Cuts::Width(s.bucket_width(7));
    let b = s.buckets(&w);
    assert_eq!(b.first().unwrap().lo, Key::Int(-5));
    assert_eq!(b.last().unwrap().hi, Upper::Below(Key::Int(100)));
    for pair in b.windows(2) {
        assert_eq!(pair[0].hi, Upper::Below(pair[1].lo.clone()));
    }
    for k in -5..100 {
        let i = s.bucket_of(&Key::Int(k), &w);
        assert!(b[i].contains(&Key::Int(k)));
    }
}

/// Text keys that share long prefixes (where cutting by key arithmetic fails) and mix cases, so
/// byte order differs from any case-insensitive or locale order.
fn text_key(i: u64) -> Key {
    Key::Text(format!(
        "{}rder-{i:07}",
        if i.is_multiple_of(2) { "O" } else { "o" }
    ))
}

#[tokio::test]
async fn text_keys_are_cut_at_sampled_boundaries_and_drift_is_found_exactly() {
    let n = 200_000;
    let legacy: BTreeMap<Key, u64> = (0..n)
        .map(|i| (text_key(i), crate::normalize::row_hash(&i.to_string())))
        .collect();
    let mut projection = legacy.clone();
    let mut drifted = BTreeSet::new();
    for i in (0..n).step_by(9_973) {
        projection.insert(text_key(i), 1);
        drifted.insert(text_key(i));
    }
    projection.remove(&text_key(77));
    drifted.insert(text_key(77));
    // Extra rows past both ends of legacy's keys, one with a non-ASCII key.
    for k in ["Aardvark", "zz-\u{e9}t\u{e9}"] {
        projection.insert(Key::from(k), 5);
        drifted.insert(Key::from(k));
    }
    let fake = Fake {
        legacy,
        projection,
        scanned: AtomicU64::new(0),
    };
    let lo = fake.projection.keys().next().unwrap().clone();
    let hi = fake.projection.keys().next_back().unwrap().clone();
    let range = Segment {
        lo,
        hi: Upper::Through(hi),
    };
    let mut o = opts();
    o.chunk_size = 256;
    o.factor = 16;
    o.leaf_rows = 32;
    let out = locate(&fake, range, o, &|_| {}).await.unwrap();
    for k in &drifted {
        assert!(covered(&out.leaves, k.clone()), "key {k} not located");
    }
    for leaf in &out.leaves {
        assert!(
            drifted.iter().any(|k| leaf.contains(k)),
            "leaf {leaf:?} holds no drift"
        );
    }
    // Leaves are small: a sampled split cuts by rows, whatever the keys look like.
    let fetched: usize = out
        .leaves
        .iter()
        .map(|l| fake.legacy.keys().filter(|k| l.contains(k)).count())
        .sum();
    assert!(fetched <= drifted.len() * 32, "{fetched} rows fetched");
    // The first pass scans each table once; the rest touches a small part of it.
    assert!(
        fake.scanned.load(Ordering::Relaxed) < 2 * n + 2 * n / 5,
        "{} rows scanned",
        fake.scanned.load(Ordering::Relaxed)
    );
}
