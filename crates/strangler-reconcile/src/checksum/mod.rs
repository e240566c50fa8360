//! SQL that normalizes and checksums rows inside each database, one module per dialect.
//!
//! Every builder wraps the configured query as a derived table `s` and filters on its key, so
//! the database pushes the key range into an index scan. Identifiers are validated as plain
//! names when the configuration loads and quoted here; key bounds are always bound parameters.

mod mysql;
mod postgres;
mod sqlite;

pub use postgres::native_column;

use crate::db::Dialect;
use crate::key::{Cuts, Key, KeyKind, Segment, Upper};
use crate::normalize::Class;

/// A column to normalize: its name on this side and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Name as the side's query returns it.
    pub name: String,
    /// Normalization class.
    pub class: Class,
}

/// What the builders need to know about one side.
#[derive(Debug, Clone)]
pub struct Shape {
    /// SQL dialect.
    pub dialect: Dialect,
    /// The configured `SELECT`.
    pub query: String,
    /// The key column.
    pub key: String,
    /// How keys compare (the same on both sides).
    pub key_kind: KeyKind,
    /// Whether this side's key column has PostgreSQL's uuid type, whose own order is the byte
    /// order of its lowercase text; ranges then compare it natively and can use its index.
    pub native_uuid: bool,
    /// Columns hashed and compared, in pairing order (the key first).
    pub hashed: Vec<Column>,
    /// Columns fetched with each row but not hashed (the legacy `updated_at`).
    pub extra: Vec<Column>,
    /// Decimal places for decimals.
    pub scale: u32,
    /// When both sides are PostgreSQL with the same column types: each hashed column as it
    /// enters the native row hash (see [`native_column`]), in pairing order. Chunk checksums
    /// then hash raw values; rows are still compared normalized, so a chunk that differs only
    /// in what normalization forgives costs a row fetch, never a false report.
    pub native: Option<Vec<String>>,
}

/// SQL text with its bind values, in placeholder order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// The statement.
    pub sql: String,
    /// Values for its placeholders.
    pub binds: Vec<Key>,
}

/// Collects bind values while a statement is written.
struct Params<'a> {
    shape: &'a Shape,
    binds: Vec<Key>,
}

impl Params<'_> {
    /// A placeholder for a plain value.
    fn value(&mut self, v: Key) -> String {
        self.binds.push(v);
        self.shape.ph(self.binds.len())
    }

    /// A placeholder for a key bound, typed like the key expression it is compared with.
    fn key(&mut self, k: &Key) -> String {
        let ph = self.value(k.clone());
        if self.shape.native_uuid {
            format!("{ph}::uuid")
        } else {
            ph
        }
    }

    /// `lo <= key < hi` (or `<= hi`) over the key's order.
    fn range(&mut self, seg: &Segment) -> String {
        let k = self.shape.key_order();
        let lo = self.key(&seg.lo);
        let (op, hi) = match &seg.hi {
            Upper::Below(h) => ("<", h),
            Upper::Through(h) => ("<=", h),
        };
        let hi = self.key(hi);
        format!("({k} >= {lo} AND {k} {op} {hi})")
    }

    fn done(self, sql: String) -> Stmt {
        Stmt {
            sql,
            binds: self.binds,
        }
    }
}

impl Shape {
    fn quote(&self, ident: &str) -> String {
        match self.dialect {
            Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    fn col(&self, name: &str) -> String {
        format!("s.{}", self.quote(name))
    }

    /// A column of the query as the builders refer to it.
    pub fn column(&self, name: &str) -> String {
        self.col(name)
    }

    /// The `n`th (1-based) bind placeholder.
    fn ph(&self, n: usize) -> String {
        match self.dialect {
            Dialect::Postgres => format!("${n}"),
            _ => "?".into(),
        }
    }

    fn params(&self) -> Params<'_> {
        Params {
            shape: self,
            binds: Vec::new(),
        }
    }

    /// The normalized text of one column.
    fn norm(&self, c: &Column) -> String {
        let e = self.col(&c.name);
        match self.dialect {
            Dialect::Postgres => postgres::norm(&e, c.class, self.scale),
            Dialect::MySql => mysql::norm(&e, c.class, self.scale),
            Dialect::Sqlite => sqlite::norm(&e, c.class, self.scale),
        }
    }

    /// The normalized row text (see [`crate::normalize`]) of the hashed columns.
    fn row_text(&self) -> String {
        let fields: Vec<String> = self.hashed.iter().map(|c| self.norm(c)).collect();
        match self.dialect {
            Dialect::Postgres => postgres::row_text(&fields),
            Dialect::MySql => mysql::row_text(&fields),
            Dialect::Sqlite => sqlite::row_text(&fields),
        }
    }

    /// The key as it is returned: a 64-bit integer, or its normalized text.
    fn key_out(&self) -> String {
        let k = self.col(&self.key);
        match (self.key_kind, self.dialect) {
            (KeyKind::Int, Dialect::Postgres) => format!("({k})::bigint"),
            (KeyKind::Int, Dialect::MySql) => format!("CAST({k} AS SIGNED)"),
            (KeyKind::Int, Dialect::Sqlite) => format!("CAST({k} AS INTEGER)"),
            (KeyKind::Text, _) => self.norm(&Column {
                name: self.key.clone(),
                class: Class::Text,
            }),
            (KeyKind::Uuid, Dialect::Postgres) if self.native_uuid => format!("({k})::text"),
            (KeyKind::Uuid, _) => self.norm(&Column {
                name: self.key.clone(),
                class: Class::Uuid,
            }),
        }
    }

    /// The key as it is compared and ordered: integers as numbers, text by its UTF-8 bytes
    /// whatever collation the column declares (see [`crate::key`]).
    fn key_order(&self) -> String {
        if self.key_kind == KeyKind::Int {
            return self.key_out();
        }
        if self.native_uuid {
            return self.col(&self.key);
        }
        let t = self.key_out();
        match self.dialect {
            Dialect::Postgres => format!("({t}) COLLATE \"C\""),
            Dialect::MySql => format!("CAST({t} AS BINARY)"),
            Dialect::Sqlite => format!("({t}) COLLATE BINARY"),
        }
    }

    fn from(&self) -> String {
        format!("({}) s", self.query.trim())
    }

    /// The smallest and the largest key.
    pub fn range_sql(&self) -> String {
        let (out, order, from) = (self.key_out(), self.key_order(), self.from());
        if self.key_kind == KeyKind::Int {
            return format!("SELECT min({out}), max({out}) FROM {from}");
        }
        format!(
            "SELECT (SELECT {out} FROM {from} ORDER BY {order} LIMIT 1), \
             (SELECT {out} FROM {from} ORDER BY {order} DESC LIMIT 1)"
        )
    }

    /// Every `step`-th key of `seg` in key order, without the first (quantile boundaries,
    /// computed by the database).
    pub fn boundaries_stmt(&self, seg: &Segment, step: u64) -> Stmt {
        let mut p = self.params();
        let filter = p.range(seg);
        let sql = format!(
            "SELECT t.k FROM (SELECT {} AS k, ROW_NUMBER() OVER (ORDER BY {}) AS rn FROM {} \
             WHERE {filter}) t WHERE t.rn > 1 AND (t.rn - 1) % {} = 0 ORDER BY t.rn",
            self.key_out(),
            self.key_order(),
            self.from(),
            step.max(1)
        );
        p.done(sql)
    }

    /// Per bucket of every `(segment, cuts)` of `batch`, numbered on from one segment to the
    /// next: bucket number, row count and the sum of the 60-bit row hashes as decimal text,
    /// computed in the database in one grouped query. None when the dialect cannot bucket the
    /// batch in one query (MySQL with text boundaries in a batch of several segments).
    pub fn bucket_stmt(&self, batch: &[(Segment, Cuts)]) -> Option<Stmt> {
        let mut p = self.params();
        let (k, row, from) = (self.key_order(), self.row_text(), self.from());
        let sampled = |c: &Cuts| matches!(c, Cuts::At(b) if !b.is_empty());
        if self.dialect != Dialect::Postgres && batch.iter().any(|(_, c)| sampled(c)) {
            let [(seg, Cuts::At(bounds))] = batch else {
                return None;
            };
            let filter = p.range(seg);
            let json = p.value(Key::Text(bounds_json(bounds)));
            return Some(p.done(mysql::bucketed_by_bounds(&k, &from, &filter, &row, &json)));
        }
        let bucket = if let [(seg, cuts)] = batch {
            self.bucket_expr(&mut p, seg, cuts)
        } else {
            let mut arms = Vec::with_capacity(batch.len());
            let mut base = 0;
            for (seg, cuts) in batch {
                let cond = p.range(seg);
                let expr = self.bucket_expr(&mut p, seg, cuts);
                arms.push(format!("WHEN {cond} THEN {base} + {expr}"));
                base += seg.buckets(cuts).len();
            }
            format!("CASE {} END", arms.join(" "))
        };
        let filter = batch
            .iter()
            .map(|(seg, _)| p.range(seg))
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = self.grouped(&bucket, &from, &filter, &row);
        Some(p.done(sql))
    }

    /// A row's bucket within `seg` cut by `cuts` (integer widths on any dialect, boundaries on
    /// PostgreSQL).
    fn bucket_expr(&self, p: &mut Params<'_>, seg: &Segment, cuts: &Cuts) -> String {
        let k = self.key_order();
        match cuts {
            Cuts::Width(width) => {
                let lo = p.value(Key::Int(seg.lo.as_int().unwrap_or_default()));
                let width = p.value(Key::Int(*width));
                match self.dialect {
                    Dialect::Postgres => format!("(({k} - {lo}::bigint) / {width}::bigint)"),
                    _ => format!("CAST(({k} - {lo}) DIV {width} AS SIGNED)"),
                }
            }
            Cuts::At(bounds) if bounds.is_empty() => "0".into(),
            Cuts::At(bounds) => {
                let json = p.value(Key::Text(bounds_json(bounds)));
                let cast = if self.native_uuid { "::uuid" } else { "" };
                format!(
                    "width_bucket({k}, ARRAY(SELECT value{cast} FROM jsonb_array_elements_text({json}::jsonb)))"
                )
            }
        }
    }

    fn grouped(&self, bucket: &str, from: &str, filter: &str, row: &str) -> String {
        let (count, sum) = match (self.dialect, &self.native) {
            (Dialect::Postgres, Some(cols)) => (
                "count(*)::bigint".to_string(),
                postgres::native_hash_sum(cols),
            ),
            (Dialect::Postgres, None) => ("count(*)::bigint".to_string(), postgres::hash_sum(row)),
            _ => ("COUNT(*)".to_string(), mysql::hash_sum(row)),
        };
        let bucket = match self.dialect {
            Dialect::Postgres => format!("({bucket})::bigint"),
            _ => format!("CAST({bucket} AS SIGNED)"),
        };
        format!(
            "SELECT {bucket} AS b, {count} AS n, {sum} AS h FROM {from} WHERE {filter} GROUP BY 1"
        )
    }

    /// Key and normalized row text within `segs`, for hashing in Rust.
    pub fn hash_rows_stmt(&self, segs: &[Segment]) -> Stmt {
        let mut p = self.params();
        let filter = segs
            .iter()
            .map(|s| p.range(s))
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!(
            "SELECT {}, {} FROM {} WHERE {filter}",
            self.key_out(),
            self.row_text(),
            self.from()
        );
        p.done(sql)
    }

    /// Key, then every hashed and extra column normalized, within `ranges` (every row when
    /// empty), in key order.
    pub fn rows_stmt(&self, ranges: &[Segment]) -> Stmt {
        let mut p = self.params();
        let cols: Vec<String> = self
            .hashed
            .iter()
            .chain(&self.extra)
            .map(|c| self.norm(c))
            .collect();
        let filter = if ranges.is_empty() {
            "1 = 1".to_string()
        } else {
            ranges
                .iter()
                .map(|s| p.range(s))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        let sql = format!(
            "SELECT {}, {} FROM {} WHERE {filter} ORDER BY {}",
            self.key_out(),
            cols.join(", "),
            self.from(),
            self.key_order()
        );
        p.done(sql)
    }

    /// Whether this dialect can hash rows in SQL.
    pub fn can_hash_in_sql(&self) -> bool {
        self.dialect != Dialect::Sqlite
    }
}

/// Boundaries as a JSON array of strings, bound as one parameter.
fn bounds_json(bounds: &[Key]) -> String {
    serde_json::Value::Array(
        bounds
            .iter()
            .map(|b| serde_json::Value::String(b.to_string()))
            .collect(),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(dialect: Dialect) -> Shape {
        Shape {
            dialect,
            query: "SELECT id, total FROM orders".into(),
            key: "id".into(),
            key_kind: KeyKind::Int,
            native_uuid: false,
            native: None,
            hashed: vec![
                Column {
                    name: "id".into(),
                    class: Class::Int,
                },
                Column {
                    name: "total".into(),
                    class: Class::Decimal,
                },
            ],
            extra: vec![],
            scale: 2,
        }
    }

    #[test]
    fn identifiers_are_quoted_and_bounds_bound() {
        let seg = Segment::ints(1, 100);
        let pg = shape(Dialect::Postgres)
            .bucket_stmt(&[(seg.clone(), Cuts::Width(10))])
            .unwrap();
        assert!(pg.sql.contains("s.\"total\""), "{}", pg.sql);
        assert!(pg.sql.contains("$4"), "{}", pg.sql);
        assert_eq!(pg.binds.len(), 4);
        let my = shape(Dialect::MySql).rows_stmt(&[seg.clone(), Segment::ints(200, 300)]);
        assert!(my.sql.contains("s.`id`"), "{}", my.sql);
        assert_eq!(my.sql.matches('?').count(), 4, "{}", my.sql);
        assert_eq!(my.binds.len(), 4);
    }

    #[test]
    fn text_keys_compare_in_byte_order_on_every_dialect() {
        let seg = Segment {
            lo: "a".into(),
            hi: Upper::Through("b".into()),
        };
        let text = |d| Shape {
            key_kind: KeyKind::Text,
            ..shape(d)
        };
        let pg = text(Dialect::Postgres)
            .rows_stmt(std::slice::from_ref(&seg))
            .sql;
        assert!(pg.contains("COLLATE \"C\" <= $2"), "{pg}");
        let my = text(Dialect::MySql)
            .rows_stmt(std::slice::from_ref(&seg))
            .sql;
        assert!(my.contains("AS BINARY) >= ?"), "{my}");
        let lite = text(Dialect::Sqlite)
            .rows_stmt(std::slice::from_ref(&seg))
            .sql;
        assert!(lite.contains("COLLATE BINARY"), "{lite}");
        let uuid = Shape {
            key_kind: KeyKind::Uuid,
            native_uuid: true,
            ..shape(Dialect::Postgres)
        };
        let b = uuid
            .bucket_stmt(&[(seg.clone(), Cuts::At(vec!["ab".into()]))])
            .unwrap();
        assert!(b.sql.contains("s.\"id\" >= $2::uuid"), "{}", b.sql);
        assert!(b.sql.contains("value::uuid"), "{}", b.sql);
        assert_eq!(b.binds.first(), Some(&Key::Text(r#"["ab"]"#.into())));
        // A batch numbers its buckets on from segment to segment, in one query.
        let two = shape(Dialect::MySql)
            .bucket_stmt(&[
                (Segment::ints(0, 10), Cuts::Width(5)),
                (Segment::ints(50, 60), Cuts::Width(5)),
            ])
            .unwrap();
        assert!(two.sql.contains("THEN 2 + CAST("), "{}", two.sql);
        assert_eq!(two.sql.matches('?').count(), two.binds.len());
        let mysql_text = Shape {
            key_kind: KeyKind::Text,
            ..shape(Dialect::MySql)
        };
        let at = Cuts::At(vec!["ab".into()]);
        assert!(
            mysql_text
                .bucket_stmt(&[(seg.clone(), at.clone())])
                .is_some()
        );
        assert!(
            mysql_text
                .bucket_stmt(&[(seg.clone(), at.clone()), (seg, at)])
                .is_none()
        );
    }
}
