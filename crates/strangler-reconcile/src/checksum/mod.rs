//! SQL that normalizes and checksums rows inside each database, one module per dialect.
//!
//! Every builder wraps the configured query as a derived table `s` and filters on its key, so
//! the database pushes the key range into an index scan. Identifiers are validated as plain
//! names when the configuration loads and quoted here; key bounds are always bound parameters.

mod mysql;
mod postgres;
mod sqlite;

use crate::db::Dialect;
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
    /// The integer key column.
    pub key: String,
    /// Columns hashed and compared, in pairing order (the key first).
    pub hashed: Vec<Column>,
    /// Columns fetched with each row but not hashed (the legacy `updated_at`).
    pub extra: Vec<Column>,
    /// Decimal places for decimals.
    pub scale: u32,
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

    /// The `n`th (1-based) bind placeholder.
    fn ph(&self, n: usize) -> String {
        match self.dialect {
            Dialect::Postgres => format!("${n}"),
            _ => "?".into(),
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

    /// The key as a 64-bit integer.
    fn key_i64(&self) -> String {
        let k = self.col(&self.key);
        match self.dialect {
            Dialect::Postgres => format!("({k})::bigint"),
            Dialect::MySql => format!("CAST({k} AS SIGNED)"),
            Dialect::Sqlite => format!("CAST({k} AS INTEGER)"),
        }
    }

    fn from(&self) -> String {
        format!("({}) s", self.query.trim())
    }

    /// `SELECT min(key), max(key)`.
    pub fn range_sql(&self) -> String {
        let k = self.key_i64();
        format!("SELECT min({k}), max({k}) FROM {}", self.from())
    }

    /// Per bucket of width `$2` from `$1` within `[$3, $4)`: bucket index, row count and the sum
    /// of the 60-bit row hashes as decimal text, computed in the database.
    pub fn bucket_sql(&self) -> String {
        let (k, lo, width, lo2, hi) = (
            self.key_i64(),
            self.ph(1),
            self.ph(2),
            self.ph(3),
            self.ph(4),
        );
        let row = self.row_text();
        let (bucket, count, sum) = match self.dialect {
            Dialect::Postgres => postgres::bucket_exprs(&k, &lo, &width, &row),
            Dialect::MySql => mysql::bucket_exprs(&k, &lo, &width, &row),
            Dialect::Sqlite => unreachable!("SQLite chunks are hashed in Rust"),
        };
        format!(
            "SELECT {bucket} AS b, {count} AS n, {sum} AS h FROM {} WHERE {k} >= {lo2} AND {k} < {hi} GROUP BY 1",
            self.from()
        )
    }

    /// Key and normalized row text within `[$1, $2)`, for hashing in Rust.
    pub fn hash_rows_sql(&self) -> String {
        let k = self.key_i64();
        format!(
            "SELECT {k}, {} FROM {} WHERE {k} >= {} AND {k} < {}",
            self.row_text(),
            self.from(),
            self.ph(1),
            self.ph(2)
        )
    }

    /// Key, then every hashed and extra column normalized, within `ranges` key ranges (bound as
    /// lo, hi pairs), in key order.
    pub fn rows_sql(&self, ranges: usize) -> String {
        let k = self.key_i64();
        let cols: Vec<String> = self
            .hashed
            .iter()
            .chain(&self.extra)
            .map(|c| self.norm(c))
            .collect();
        let filter = if ranges == 0 {
            "1 = 1".to_string()
        } else {
            (0..ranges)
                .map(|i| {
                    format!(
                        "({k} >= {} AND {k} < {})",
                        self.ph(2 * i + 1),
                        self.ph(2 * i + 2)
                    )
                })
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        format!(
            "SELECT {k}, {} FROM {} WHERE {filter} ORDER BY {k}",
            cols.join(", "),
            self.from()
        )
    }

    /// Whether this dialect can hash rows in SQL.
    pub fn can_hash_in_sql(&self) -> bool {
        self.dialect != Dialect::Sqlite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(dialect: Dialect) -> Shape {
        Shape {
            dialect,
            query: "SELECT id, total FROM orders".into(),
            key: "id".into(),
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
        let pg = shape(Dialect::Postgres).bucket_sql();
        assert!(pg.contains("s.\"total\""), "{pg}");
        assert!(pg.contains("$4"), "{pg}");
        let my = shape(Dialect::MySql).rows_sql(2);
        assert!(my.contains("s.`id`"), "{my}");
        assert_eq!(my.matches('?').count(), 4, "{my}");
    }
}
