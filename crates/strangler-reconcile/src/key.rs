//! Keys and key ranges, in the one order every database kind agrees on.
//!
//! Integer keys compare as numbers. Text and uuid keys compare by the bytes of their UTF-8 text
//! (uuids in lowercase): that is PostgreSQL under `COLLATE "C"` (and its uuid type), MySQL and
//! MariaDB on `BINARY` strings, SQLite under its `BINARY` collation, and Rust's `str` ordering.
//! So both sides cut the key space at the same boundaries and the merge in Rust sees the rows in
//! the order the databases sent them, whatever collation (case-insensitive, padded, locale) the
//! tables declare.

use std::fmt;

use serde::Serialize;

/// A key value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Key {
    /// An integer key.
    Int(i64),
    /// A text or uuid key, normalized (uuids in lowercase).
    Text(String),
}

impl Key {
    /// The integer, for integer keys.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Key::Int(i) => Some(*i),
            Key::Text(_) => None,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Text(s) => f.write_str(s),
        }
    }
}

impl From<i64> for Key {
    fn from(i: i64) -> Key {
        Key::Int(i)
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::Text(s.to_string())
    }
}

/// How a reconciliation's keys are compared, the same on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Integers: chunks are arithmetic ranges of keys.
    Int,
    /// Text in byte order: chunks are cut at sampled keys.
    Text,
    /// Uuids as lowercase text in byte order (the uuid type's own order): cut like text.
    Uuid,
}

/// The upper end of a key range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Upper {
    /// Up to this key, not including it.
    Below(Key),
    /// Up to and including this key.
    Through(Key),
}

/// A key range `[lo, hi)` or `[lo, hi]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    /// First key in the range.
    pub lo: Key,
    /// Where the range ends.
    pub hi: Upper,
}

/// How a range is cut into buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cuts {
    /// Integer keys: buckets `[lo + i·w, lo + (i+1)·w)` of this width.
    Width(i64),
    /// Buckets `[lo, b1)`, `[b1, b2)`, …, `[bn, hi)` at these ascending inner boundaries.
    At(Vec<Key>),
}

impl Segment {
    /// The integer range `[lo, hi)`.
    pub fn ints(lo: i64, hi: i64) -> Segment {
        Segment {
            lo: Key::Int(lo),
            hi: Upper::Below(Key::Int(hi)),
        }
    }

    /// `[lo, hi)` as integers with an exclusive end, for integer ranges.
    fn int_bounds(&self) -> Option<(i128, i128)> {
        match (&self.lo, &self.hi) {
            (Key::Int(lo), Upper::Below(Key::Int(hi))) => Some((i128::from(*lo), i128::from(*hi))),
            (Key::Int(lo), Upper::Through(Key::Int(hi))) => {
                Some((i128::from(*lo), i128::from(*hi) + 1))
            }
            _ => None,
        }
    }

    /// Keys the range spans, for integer ranges.
    pub fn width(&self) -> Option<u64> {
        self.int_bounds().map(|(lo, hi)| (hi - lo).max(0) as u64)
    }

    /// Bucket width when an integer range is cut into at most `parts` pieces (at least 1).
    pub fn bucket_width(&self, parts: u32) -> i64 {
        let parts = u64::from(parts.max(1));
        self.width().unwrap_or(0).div_ceil(parts).max(1) as i64
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &Key) -> bool {
        *key >= self.lo
            && match &self.hi {
                Upper::Below(h) => key < h,
                Upper::Through(h) => key <= h,
            }
    }

    /// The buckets covering this range, in key order.
    pub fn buckets(&self, cuts: &Cuts) -> Vec<Segment> {
        match cuts {
            Cuts::Width(width) => {
                let Some((mut lo, hi)) = self.int_bounds() else {
                    return vec![self.clone()];
                };
                let mut out = Vec::new();
                while lo < hi {
                    let next = (lo + i128::from((*width).max(1))).min(hi);
                    out.push(Segment::ints(lo as i64, next as i64));
                    lo = next;
                }
                out
            }
            Cuts::At(bounds) => {
                let mut out = Vec::with_capacity(bounds.len() + 1);
                let mut lo = self.lo.clone();
                for b in bounds {
                    out.push(Segment {
                        lo: std::mem::replace(&mut lo, b.clone()),
                        hi: Upper::Below(b.clone()),
                    });
                }
                out.push(Segment {
                    lo,
                    hi: self.hi.clone(),
                });
                out
            }
        }
    }

    /// The index of the bucket holding `key` (which lies in the range).
    pub fn bucket_of(&self, key: &Key, cuts: &Cuts) -> usize {
        match (cuts, key, &self.lo) {
            (Cuts::Width(w), Key::Int(k), Key::Int(lo)) => {
                ((i128::from(*k) - i128::from(*lo)) / i128::from((*w).max(1))) as usize
            }
            (Cuts::At(bounds), _, _) => bounds.partition_point(|b| b <= key),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_buckets_follow_byte_order() {
        let seg = Segment {
            lo: "A".into(),
            hi: Upper::Through("z".into()),
        };
        let cuts = Cuts::At(vec!["B".into(), "a".into()]);
        let b = seg.buckets(&cuts);
        assert_eq!(b.len(), 3);
        // Byte order: upper case before lower case, `é` (0xC3 0xA9) after every ASCII letter.
        assert_eq!(seg.bucket_of(&"Z".into(), &cuts), 1);
        assert_eq!(seg.bucket_of(&"a".into(), &cuts), 2);
        assert_eq!(seg.bucket_of(&"B".into(), &cuts), 1);
        assert!(Key::from("é") > Key::from("z"));
        assert!(b[1].contains(&"Z".into()) && !b[1].contains(&"a".into()));
        assert!(b[2].contains(&"z".into()));
    }

    #[test]
    fn integer_buckets_are_arithmetic() {
        let seg = Segment::ints(10, 35);
        let b = seg.buckets(&Cuts::Width(10));
        assert_eq!(
            b,
            vec![
                Segment::ints(10, 20),
                Segment::ints(20, 30),
                Segment::ints(30, 35)
            ]
        );
        assert_eq!(seg.bucket_of(&Key::Int(29), &Cuts::Width(10)), 1);
        assert_eq!(seg.width(), Some(25));
    }
}
