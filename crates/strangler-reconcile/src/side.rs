//! One side of a reconciliation at run time: its pool, its shape, and the queries it answers.

use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::Row as _;

use crate::bisect::Checksum;
use crate::checksum::{Shape, Stmt};
use crate::db::{Db, on_db};
use crate::error::{Error, Result};
use crate::key::{Cuts, Key, KeyKind, Segment};
use crate::normalize::{row_hash, row_text};

/// Ranges fetched per row query: keeps statements short while sparing round trips.
const RANGES_PER_QUERY: usize = 64;

/// A query with its values bound, for whichever database runs it.
macro_rules! bound {
    ($stmt:expr) => {{
        let mut q = sqlx::query(&$stmt.sql);
        for b in &$stmt.binds {
            q = match b {
                Key::Int(i) => q.bind(*i),
                Key::Text(t) => q.bind(t.as_str()),
            };
        }
        q
    }};
}

/// A fetched row: its key and its normalized values (hashed columns, then extra columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The key.
    pub key: Key,
    /// Normalized values; None is NULL.
    pub values: Vec<Option<String>>,
}

impl Row {
    /// The row hash of the first `hashed` values, as the databases compute it.
    pub fn hash(&self, hashed: usize) -> u64 {
        row_hash(&row_text(
            self.values[..hashed].iter().map(|v| v.as_deref()),
        ))
    }
}

/// One side: pool, shape and where its hashes are computed.
#[derive(Debug, Clone)]
pub struct SideTable {
    /// `legacy` or `projection`, for messages.
    pub name: &'static str,
    /// The pool.
    pub db: Db,
    /// Query shape.
    pub shape: Shape,
    /// Whether chunks stream normalized rows and hash them in Rust instead of in SQL.
    pub hash_in_rust: bool,
}

impl SideTable {
    fn err(&self, what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
        let (side, what) = (self.name, what.into());
        move |source| Error::Sql { side, what, source }
    }

    /// Smallest and largest key, or None when the query returns no rows.
    pub async fn range(&self) -> Result<Option<(Key, Key)>> {
        let sql = self.shape.range_sql();
        let kind = self.shape.key_kind;
        let what = "reading the key range";
        let (lo, hi) = on_db!(&self.db, pool => {
            let r = sqlx::query(&sql).fetch_one(pool).await.map_err(self.err(what))?;
            (opt_key(&r, 0, kind).map_err(self.err(what))?,
             opt_key(&r, 1, kind).map_err(self.err(what))?)
        });
        Ok(lo.zip(hi))
    }

    /// Every `step`-th key of `seg` in key order, without the first.
    pub async fn boundaries(&self, seg: &Segment, step: u64) -> Result<Vec<Key>> {
        let stmt = self.shape.boundaries_stmt(seg, step);
        let kind = self.shape.key_kind;
        let what = "sampling key boundaries";
        let mut out = Vec::new();
        on_db!(&self.db, pool => {
            let rows = bound!(stmt).fetch_all(pool).await.map_err(self.err(what))?;
            for r in rows {
                if let Some(k) = opt_key(&r, 0, kind).map_err(self.err(what))? {
                    out.push(k);
                }
            }
        });
        Ok(out)
    }

    /// Checksums of the buckets of each `(segment, cuts)` of `batch`, in one query where the
    /// dialect allows it.
    pub async fn checksums(&self, batch: &[(Segment, Cuts)]) -> Result<Vec<Vec<Checksum>>> {
        let mut out: Vec<Vec<Checksum>> = batch
            .iter()
            .map(|(seg, cuts)| vec![Checksum::default(); seg.buckets(cuts).len()])
            .collect();
        let kind = self.shape.key_kind;
        if self.hash_in_rust {
            let segs: Vec<Segment> = batch.iter().map(|(s, _)| s.clone()).collect();
            let stmt = self.shape.hash_rows_stmt(&segs);
            on_db!(&self.db, pool => {
                let mut rows = bound!(stmt).fetch(pool);
                while let Some(r) = rows.try_next().await.map_err(self.err("streaming rows to hash"))? {
                    let key = key(&r, 0, kind).map_err(self.err("decoding a key"))?;
                    let text: String = r.try_get(1).map_err(self.err("decoding a row"))?;
                    if let Some(i) = segs.iter().position(|s| s.contains(&key)) {
                        let (seg, cuts) = &batch[i];
                        out[i][seg.bucket_of(&key, cuts)].add(row_hash(&text));
                    }
                }
            });
            return Ok(out);
        }
        // One query for the batch, or one per segment where the dialect cannot group a batch.
        let stmts: Vec<(usize, Stmt)> = match self.shape.bucket_stmt(batch) {
            Some(stmt) => vec![(0, stmt)],
            None => batch
                .iter()
                .enumerate()
                .filter_map(|(i, one)| {
                    Some((i, self.shape.bucket_stmt(std::slice::from_ref(one))?))
                })
                .collect(),
        };
        // Bucket numbers run on across the segments of a query: map them back.
        let mut starts = Vec::with_capacity(out.len());
        let mut total = 0;
        for o in &out {
            starts.push(total);
            total += o.len();
        }
        let what = "checksumming a chunk";
        for (first, stmt) in stmts {
            on_db!(&self.db, pool => {
                let rows = bound!(stmt).fetch_all(pool).await.map_err(self.err(what))?;
                for r in rows {
                    let b: i64 = r.try_get(0).map_err(self.err(what))?;
                    let n: i64 = r.try_get(1).map_err(self.err(what))?;
                    let h: String = r.try_get(2).map_err(self.err(what))?;
                    let sum = h.parse::<u128>().map_err(|_| Error::Config {
                        name: self.name.into(),
                        message: format!("checksum `{h}` is not a number"),
                    })?;
                    let b = starts[first] + b.max(0) as usize;
                    let seg = starts.partition_point(|s| *s <= b).saturating_sub(1);
                    if let Some(slot) = out.get_mut(seg).and_then(|o| o.get_mut(b - starts[seg])) {
                        *slot = Checksum { count: n as u64, sum };
                    }
                }
            });
        }
        Ok(out)
    }

    /// Rows within `ranges`, in key order.
    pub async fn rows(&self, ranges: &[Segment]) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        let kind = self.shape.key_kind;
        let width = self.shape.hashed.len() + self.shape.extra.len();
        for batch in ranges.chunks(RANGES_PER_QUERY) {
            let stmt = self.shape.rows_stmt(batch);
            on_db!(&self.db, pool => {
                let rows = bound!(stmt).fetch_all(pool).await.map_err(self.err("fetching rows"))?;
                for r in rows {
                    out.push(decode(&r, width, kind).map_err(self.err("decoding a row"))?);
                }
            });
        }
        Ok(out)
    }

    /// Every row, streamed in key order (the naive baseline and full listings).
    pub fn stream_all<'a>(&'a self, stmt: &'a Stmt) -> BoxStream<'a, Result<Row>> {
        let width = self.shape.hashed.len() + self.shape.extra.len();
        let kind = self.shape.key_kind;
        let name = self.name;
        let err = move |source| Error::Sql {
            side: name,
            what: "streaming rows".into(),
            source,
        };
        on_db!(&self.db, pool => bound!(stmt)
            .fetch(pool)
            .map(move |r| r.and_then(|r| decode(&r, width, kind)).map_err(err))
            .boxed())
    }
}

fn opt_key<R>(r: &R, i: usize, kind: KeyKind) -> std::result::Result<Option<Key>, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(match kind {
        KeyKind::Int => r.try_get::<Option<i64>, _>(i)?.map(Key::Int),
        KeyKind::Text | KeyKind::Uuid => r.try_get::<Option<String>, _>(i)?.map(Key::Text),
    })
}

fn key<R>(r: &R, i: usize, kind: KeyKind) -> std::result::Result<Key, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    opt_key(r, i, kind)?.ok_or_else(|| sqlx::Error::ColumnDecode {
        index: i.to_string(),
        source: "a key is NULL; keys must not be NULL".into(),
    })
}

fn decode<R>(r: &R, width: usize, kind: KeyKind) -> std::result::Result<Row, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let key = key(r, 0, kind)?;
    let mut values = Vec::with_capacity(width);
    for i in 1..=width {
        values.push(r.try_get::<Option<String>, _>(i)?);
    }
    Ok(Row { key, values })
}
