//! One side of a reconciliation at run time: its pool, its shape, and the queries it answers.

use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::Row as _;

use crate::bisect::{Checksum, Segment};
use crate::checksum::Shape;
use crate::db::{Db, on_db};
use crate::error::{Error, Result};
use crate::normalize::{row_hash, row_text};

/// Ranges fetched per row query: keeps statements short while sparing round trips.
const RANGES_PER_QUERY: usize = 64;

/// A fetched row: its key and its normalized values (hashed columns, then extra columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The key.
    pub key: i64,
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
    pub async fn range(&self) -> Result<Option<(i64, i64)>> {
        let sql = self.shape.range_sql();
        let (lo, hi): (Option<i64>, Option<i64>) = on_db!(&self.db, pool => {
            let r = sqlx::query(&sql).fetch_one(pool).await.map_err(self.err("reading the key range"))?;
            (r.try_get(0).map_err(self.err("reading the key range"))?,
             r.try_get(1).map_err(self.err("reading the key range"))?)
        });
        Ok(lo.zip(hi))
    }

    /// Checksums of the buckets of width `width` covering `seg`.
    pub async fn checksums(&self, seg: Segment, width: i64) -> Result<Vec<Checksum>> {
        let mut out = vec![Checksum::default(); seg.buckets(width).len()];
        if self.hash_in_rust {
            let sql = self.shape.hash_rows_sql();
            on_db!(&self.db, pool => {
                let mut rows = sqlx::query(&sql).bind(seg.lo).bind(seg.hi).fetch(pool);
                while let Some(r) = rows.try_next().await.map_err(self.err("streaming rows to hash"))? {
                    let key: i64 = r.try_get(0).map_err(self.err("decoding a key"))?;
                    let text: String = r.try_get(1).map_err(self.err("decoding a row"))?;
                    out[seg.bucket_of(key, width)].add(row_hash(&text));
                }
            });
            return Ok(out);
        }
        let sql = self.shape.bucket_sql();
        let what = "checksumming a chunk";
        on_db!(&self.db, pool => {
            let rows = sqlx::query(&sql)
                .bind(seg.lo)
                .bind(width)
                .bind(seg.lo)
                .bind(seg.hi)
                .fetch_all(pool)
                .await
                .map_err(self.err(what))?;
            for r in rows {
                let b: i64 = r.try_get(0).map_err(self.err(what))?;
                let n: i64 = r.try_get(1).map_err(self.err(what))?;
                let h: String = r.try_get(2).map_err(self.err(what))?;
                let sum = h.parse::<u128>().map_err(|_| Error::Config {
                    name: self.name.into(),
                    message: format!("checksum `{h}` is not a number"),
                })?;
                if let Some(slot) = out.get_mut(b as usize) {
                    *slot = Checksum { count: n as u64, sum };
                }
            }
        });
        Ok(out)
    }

    /// Rows within `ranges`, in key order.
    pub async fn rows(&self, ranges: &[Segment]) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        for batch in ranges.chunks(RANGES_PER_QUERY) {
            let sql = self.shape.rows_sql(batch.len());
            let width = self.shape.hashed.len() + self.shape.extra.len();
            on_db!(&self.db, pool => {
                let mut q = sqlx::query(&sql);
                for s in batch {
                    q = q.bind(s.lo).bind(s.hi);
                }
                let rows = q.fetch_all(pool).await.map_err(self.err("fetching rows"))?;
                for r in rows {
                    out.push(decode(&r, width).map_err(self.err("decoding a row"))?);
                }
            });
        }
        Ok(out)
    }

    /// Every row, streamed in key order (the naive baseline and full listings).
    pub fn stream_all<'a>(&'a self, sql: &'a str) -> BoxStream<'a, Result<Row>> {
        let width = self.shape.hashed.len() + self.shape.extra.len();
        let name = self.name;
        let err = move |source| Error::Sql {
            side: name,
            what: "streaming rows".into(),
            source,
        };
        on_db!(&self.db, pool => sqlx::query(sql)
            .fetch(pool)
            .map(move |r| r.and_then(|r| decode(&r, width)).map_err(err))
            .boxed())
    }
}

fn decode<R>(r: &R, width: usize) -> std::result::Result<Row, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let key: i64 = r.try_get(0)?;
    let mut values = Vec::with_capacity(width);
    for i in 1..=width {
        values.push(r.try_get::<Option<String>, _>(i)?);
    }
    Ok(Row { key, values })
}
