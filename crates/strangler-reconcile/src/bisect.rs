//! Locating drift by chunked checksums and bisection, the method of data-diff.
//!
//! The key space is cut into chunks; each side reports every chunk's row count and hash sum in
//! one grouped query. Chunks whose checksums agree are done. A differing chunk with few rows
//! becomes a leaf whose rows are fetched; a larger one is cut into `factor` sub-chunks and asked
//! again. With `d` drifted keys among `n`, that touches O(d · log n) chunks. Integer keys are cut
//! arithmetically; text and uuid keys are cut at sampled keys, every `step`-th key of one side in
//! byte order ([`crate::key`]), and both sides are then checksummed over the same boundaries.
//! This module decides and drives; the [`ChecksumSource`] does the I/O, so tests can feed it a fake.

use std::future::Future;

use futures::stream::{self, StreamExt, TryStreamExt};

pub use crate::key::{Cuts, Key, Segment, Upper};

/// One chunk's checksum: row count and the sum of its 60-bit row hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    /// Rows in the chunk.
    pub count: u64,
    /// Sum of the row hashes (cannot overflow below 2^68 rows).
    pub sum: u128,
}

impl Checksum {
    /// Adds one row hash.
    pub fn add(&mut self, hash: u64) {
        self.count += 1;
        self.sum += u128::from(hash);
    }
}

/// Which database a checksum comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The legacy tables.
    Legacy,
    /// The projection.
    Projection,
}

/// Something that can checksum the buckets of a key range on each side.
pub trait ChecksumSource: Sync {
    /// The error of a failed checksum query.
    type Error: Send;

    /// For each `(segment, cuts)` of `batch`, the checksums of its buckets on `side`, one per
    /// bucket in order; empty buckets have count 0. A batch is meant to be one query.
    fn checksums(
        &self,
        side: Side,
        batch: &[(Segment, Cuts)],
    ) -> impl Future<Output = Result<Vec<Vec<Checksum>>, Self::Error>> + Send;

    /// Every `step`-th key of `seg` on `side` in key order, leaving out the first: the inner
    /// boundaries that cut the side's rows there into buckets of `step` rows (text keys).
    fn boundaries(
        &self,
        side: Side,
        seg: &Segment,
        step: u64,
    ) -> impl Future<Output = Result<Vec<Key>, Self::Error>> + Send;
}

/// How finely to cut.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// First-level chunk: keys per chunk for integer keys, legacy rows per chunk for text keys.
    pub chunk_size: u64,
    /// Sub-chunks per differing chunk.
    pub factor: u32,
    /// Largest differing chunk (in rows on either side) that is fetched instead of split.
    pub leaf_rows: u64,
    /// Grouped checksum queries in flight at once (each asks both sides).
    pub concurrency: usize,
    /// First-level chunks per query, so the first pass is a few large grouped scans.
    pub root_queries: u32,
}

/// What bisection found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Differing chunks small enough to diff row by row, in key order.
    pub leaves: Vec<Segment>,
    /// Grouped checksum queries issued (per side).
    pub queries: u64,
    /// Chunks whose checksums were compared.
    pub chunks_compared: u64,
    /// Chunks that differed.
    pub chunks_differing: u64,
}

/// What to do with a compared chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Same count and sum: equal.
    Equal,
    /// Differs and is small: fetch its rows.
    Leaf,
    /// Differs and is large: cut it again.
    Split,
}

/// Levels of splitting after which a differing chunk is fetched whatever its size; a guard,
/// since every split of a chunk with more than `leaf_rows` rows makes its larger side smaller.
const MAX_DEPTH: u32 = 48;

/// Chunks checksummed per query below the first level.
const MAX_BATCH: usize = 64;

/// The pure rule: equal checksums end the search; otherwise a small chunk is a leaf.
pub fn decide(seg: &Segment, legacy: Checksum, projection: Checksum, opts: &Options) -> Decision {
    if legacy == projection {
        Decision::Equal
    } else if legacy.count.max(projection.count) <= opts.leaf_rows
        || seg.width().is_some_and(|w| w <= u64::from(opts.factor))
    {
        Decision::Leaf
    } else {
        Decision::Split
    }
}

/// How a range of the next level is to be cut.
enum Plan {
    /// Already known.
    Ready(Cuts),
    /// At every `step`-th key of `side` (text keys).
    Sample(Side, u64),
}

/// Progress of a search, in keys for integer keys and in rows (about) for text keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// The whole (for text keys, known once the first boundaries are sampled).
    Total(u64),
    /// A range settled: equal, or handed over as a leaf.
    Settled(u64),
}

/// Finds the leaves where the two sides differ over `range`; `progress` hears of the total and of
/// every range settled.
pub async fn locate<S: ChecksumSource>(
    src: &S,
    range: Segment,
    opts: Options,
    progress: &(dyn Fn(Tick) + Sync),
) -> Result<Outcome, S::Error> {
    let resolved = |n| progress(Tick::Settled(n));
    let mut out = Outcome::default();
    if range.width() == Some(0) {
        return Ok(out);
    }
    let roots = opts.root_queries.max(1) as usize;
    // First level: a few grouped queries over large slices, each cut into chunk_size buckets.
    let mut work: Vec<(Segment, Plan, u32)> = match range.lo {
        Key::Int(_) => {
            progress(Tick::Total(range.width().unwrap_or(0)));
            range
                .buckets(&Cuts::Width(range.bucket_width(opts.root_queries)))
                .into_iter()
                .map(|s| {
                    (
                        s,
                        Plan::Ready(Cuts::Width(opts.chunk_size.max(1) as i64)),
                        0,
                    )
                })
                .collect()
        }
        Key::Text(_) => {
            let bounds = src
                .boundaries(Side::Legacy, &range, opts.chunk_size.max(1))
                .await?;
            out.queries += 1;
            progress(Tick::Total(
                (bounds.len() as u64 + 1) * opts.chunk_size.max(1),
            ));
            slices(&range, bounds, roots)
                .into_iter()
                .map(|(s, b)| (s, Plan::Ready(Cuts::At(b)), 0))
                .collect()
        }
    };
    while !work.is_empty() {
        // Few large queries at the first level; below it, differing chunks travel in batches so
        // thousands of small chunks do not cost thousands of round trips.
        let per = work
            .len()
            .div_ceil(opts.concurrency.max(1))
            .clamp(1, MAX_BATCH);
        let mut batches = Vec::new();
        let mut it = work.into_iter().peekable();
        while it.peek().is_some() {
            batches.push(it.by_ref().take(per).collect::<Vec<_>>());
        }
        out.queries += batches.len() as u64;
        type Done = (Segment, Cuts, u32, Vec<Checksum>, Vec<Checksum>);
        let results: Vec<Vec<Done>> = stream::iter(batches)
            .map(|batch| async move {
                let mut items = Vec::with_capacity(batch.len());
                for (seg, plan, depth) in batch {
                    let cuts = match plan {
                        Plan::Ready(c) => c,
                        Plan::Sample(side, step) => {
                            Cuts::At(src.boundaries(side, &seg, step).await?)
                        }
                    };
                    items.push(((seg, cuts), depth));
                }
                let asked: Vec<(Segment, Cuts)> = items.iter().map(|(sc, _)| sc.clone()).collect();
                let (l, p) = futures::join!(
                    src.checksums(Side::Legacy, &asked),
                    src.checksums(Side::Projection, &asked)
                );
                let (l, p) = (l?, p?);
                Ok::<_, S::Error>(
                    items
                        .into_iter()
                        .zip(l.into_iter().zip(p))
                        .map(|(((seg, cuts), depth), (l, p))| (seg, cuts, depth, l, p))
                        .collect(),
                )
            })
            .buffer_unordered(opts.concurrency.max(1))
            .try_collect()
            .await?;
        let mut next = Vec::new();
        for (seg, cuts, depth, l, p) in results.into_iter().flatten() {
            for (i, bucket) in seg.buckets(&cuts).into_iter().enumerate() {
                let a = l.get(i).copied().unwrap_or_default();
                let b = p.get(i).copied().unwrap_or_default();
                let size = bucket.width().unwrap_or(a.count.max(b.count));
                out.chunks_compared += 1;
                match decide(&bucket, a, b, &opts) {
                    Decision::Equal => resolved(size),
                    Decision::Split if depth < MAX_DEPTH => {
                        out.chunks_differing += 1;
                        let plan = match bucket.lo {
                            Key::Int(_) => {
                                Plan::Ready(Cuts::Width(bucket.bucket_width(opts.factor)))
                            }
                            Key::Text(_) => {
                                let (side, rows) = if a.count >= b.count {
                                    (Side::Legacy, a.count)
                                } else {
                                    (Side::Projection, b.count)
                                };
                                Plan::Sample(side, rows.div_ceil(u64::from(opts.factor.max(2))))
                            }
                        };
                        next.push((bucket, plan, depth + 1));
                    }
                    Decision::Leaf | Decision::Split => {
                        out.chunks_differing += 1;
                        out.leaves.push(bucket);
                        resolved(size);
                    }
                }
            }
        }
        work = next;
    }
    out.leaves.sort();
    Ok(out)
}

/// Groups `bounds` (the inner boundaries of `range`) into at most `parts` slices of about equal
/// numbers of buckets, each with its own inner boundaries.
fn slices(range: &Segment, bounds: Vec<Key>, parts: usize) -> Vec<(Segment, Vec<Key>)> {
    let per = (bounds.len() + 1).div_ceil(parts.max(1)).max(1);
    let mut out = Vec::new();
    let mut lo = range.lo.clone();
    let mut inner = Vec::new();
    for b in bounds {
        if inner.len() + 1 == per {
            let hi = Upper::Below(b.clone());
            out.push((
                Segment {
                    lo: std::mem::replace(&mut lo, b),
                    hi,
                },
                std::mem::take(&mut inner),
            ));
        } else {
            inner.push(b);
        }
    }
    out.push((
        Segment {
            lo,
            hi: range.hi.clone(),
        },
        inner,
    ));
    out
}

#[cfg(test)]
mod tests;
