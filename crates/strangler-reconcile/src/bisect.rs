//! Locating drift by chunked checksums and bisection, the method of data-diff.
//!
//! The key space is cut into chunks; each side reports every chunk's row count and hash sum in
//! one grouped query. Chunks whose checksums agree are done. A differing chunk with few rows
//! becomes a leaf whose rows are fetched; a larger one is cut into `factor` sub-chunks and asked
//! again. With `d` drifted keys among `n`, that touches O(d · log n) chunks. This module decides
//! and drives; the [`ChecksumSource`] does the I/O, so tests can feed it a fake.

use std::future::Future;

use futures::stream::{self, StreamExt, TryStreamExt};

/// A half-open key range `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    /// First key in the range.
    pub lo: i64,
    /// First key after the range.
    pub hi: i64,
}

impl Segment {
    /// Keys the range spans.
    pub fn width(&self) -> u64 {
        (i128::from(self.hi) - i128::from(self.lo)).max(0) as u64
    }

    /// Bucket width when cut into at most `parts` pieces (at least 1).
    pub fn bucket_width(&self, parts: u32) -> i64 {
        let parts = u64::from(parts.max(1));
        self.width().div_ceil(parts).max(1) as i64
    }

    /// The buckets `[lo + i·w, lo + (i+1)·w)` of width `w` covering this range.
    pub fn buckets(&self, width: i64) -> Vec<Segment> {
        let mut out = Vec::new();
        let mut lo = i128::from(self.lo);
        let hi = i128::from(self.hi);
        while lo < hi {
            let next = (lo + i128::from(width)).min(hi);
            out.push(Segment {
                lo: lo as i64,
                hi: next as i64,
            });
            lo = next;
        }
        out
    }

    /// The bucket of `key` when cut into buckets of width `width`.
    pub fn bucket_of(&self, key: i64, width: i64) -> usize {
        ((i128::from(key) - i128::from(self.lo)) / i128::from(width)) as usize
    }
}

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

    /// Checksums of the buckets of width `width` covering `seg` on `side`, one per bucket in
    /// order; empty buckets have count 0.
    fn checksums(
        &self,
        side: Side,
        seg: Segment,
        width: i64,
    ) -> impl Future<Output = Result<Vec<Checksum>, Self::Error>> + Send;
}

/// How finely to cut.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Width of a first-level chunk in keys.
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

/// The pure rule: equal checksums end the search; otherwise a small chunk is a leaf.
pub fn decide(seg: Segment, legacy: Checksum, projection: Checksum, opts: &Options) -> Decision {
    if legacy == projection {
        Decision::Equal
    } else if legacy.count.max(projection.count) <= opts.leaf_rows
        || seg.width() <= u64::from(opts.factor)
    {
        Decision::Leaf
    } else {
        Decision::Split
    }
}

/// Finds the leaves where the two sides differ over `range`. `resolved` is called with the width
/// in keys of every range settled (equal, or handed over as a leaf), for progress.
pub async fn locate<S: ChecksumSource>(
    src: &S,
    range: Segment,
    opts: Options,
    resolved: &(dyn Fn(u64) + Sync),
) -> Result<Outcome, S::Error> {
    let mut out = Outcome::default();
    if range.width() == 0 {
        return Ok(out);
    }
    // First level: a few grouped queries over large slices, each cut into chunk_size buckets.
    let slices = range.buckets(range.bucket_width(opts.root_queries.max(1)));
    let mut work: Vec<(Segment, i64)> = slices
        .into_iter()
        .map(|s| (s, opts.chunk_size.max(1) as i64))
        .collect();
    while !work.is_empty() {
        out.queries += work.len() as u64;
        let results: Vec<(Segment, i64, Vec<Checksum>, Vec<Checksum>)> = stream::iter(work)
            .map(|(seg, width)| async move {
                let (l, p) = futures::join!(
                    src.checksums(Side::Legacy, seg, width),
                    src.checksums(Side::Projection, seg, width)
                );
                Ok::<_, S::Error>((seg, width, l?, p?))
            })
            .buffer_unordered(opts.concurrency.max(1))
            .try_collect()
            .await?;
        let mut next = Vec::new();
        for (seg, width, l, p) in results {
            for (i, bucket) in seg.buckets(width).into_iter().enumerate() {
                let a = l.get(i).copied().unwrap_or_default();
                let b = p.get(i).copied().unwrap_or_default();
                out.chunks_compared += 1;
                match decide(bucket, a, b, &opts) {
                    Decision::Equal => resolved(bucket.width()),
                    Decision::Leaf => {
                        out.chunks_differing += 1;
                        out.leaves.push(bucket);
                        resolved(bucket.width());
                    }
                    Decision::Split => {
                        out.chunks_differing += 1;
                        next.push((bucket, bucket.bucket_width(opts.factor)));
                    }
                }
            }
        }
        work = next;
    }
    out.leaves.sort();
    Ok(out)
}

#[cfg(test)]
mod tests;
