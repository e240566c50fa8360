//! Named parameters and table templates in projection SQL.
//!
//! Projection files write `:order_id` for values and `{{orders}}` for tables. Values are always
//! bound, never spliced: `:name` becomes `$n` (PostgreSQL) or `?` (SQLite) and the caller binds in
//! the returned order. Tables become `<table>_v<version>` so versions live side by side.

use std::collections::BTreeMap;

/// Which placeholder syntax to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `$1`, `$2`, ...
    Postgres,
    /// `?`, `?`, ...
    Sqlite,
}

/// SQL ready to prepare, with the parameter names to bind in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// SQL with positional placeholders.
    pub sql: String,
    /// Parameter names, one per placeholder, in order.
    pub params: Vec<String>,
}

/// The `:name` parameters of `sql`, in order of first appearance (no duplicates).
pub fn param_names(sql: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    scan(sql, |tok| {
        if let Token::Param(p) = tok
            && !out.iter().any(|o| o == p)
        {
            out.push(p.to_string());
        }
    });
    out
}

/// The `{{table}}` names of `sql`, in order of first appearance.
pub fn table_names(sql: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    scan(sql, |tok| {
        if let Token::Table(t) = tok
            && !out.iter().any(|o| o == t)
        {
            out.push(t.to_string());
        }
    });
    out
}

/// The physical name of a logical table in one version.
pub fn physical_table(table: &str, version: u32) -> String {
    format!("{table}_v{version}")
}

/// Rewrites `:name` to positional placeholders and `{{table}}` to the table of `version`.
pub fn prepare(sql: &str, dialect: Dialect, version: u32) -> Prepared {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut params = Vec::new();
    scan(sql, |tok| match tok {
        Token::Text(t) => out.push_str(t),
        Token::Param(p) => {
            params.push(p.to_string());
            match dialect {
                Dialect::Postgres => out.push_str(&format!("${}", params.len())),
                Dialect::Sqlite => out.push('?'),
            }
        }
        Token::Table(t) => out.push_str(&physical_table(t, version)),
    });
    Prepared { sql: out, params }
}

/// Replaces `{{table}}` only (for DDL, which takes no parameters).
pub fn render_tables(sql: &str, version: u32) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    scan(sql, |tok| match tok {
        Token::Text(t) => out.push_str(t),
        Token::Param(p) => {
            out.push(':');
            out.push_str(p);
        }
        Token::Table(t) => out.push_str(&physical_table(t, version)),
    });
    out
}

/// Looks each name up in `values`, in placeholder order.
pub fn bind_order<'a, V>(
    prepared: &Prepared,
    values: &'a BTreeMap<String, V>,
) -> Vec<Option<&'a V>> {
    prepared.params.iter().map(|p| values.get(p)).collect()
}

enum Token<'a> {
    Text(&'a str),
    Param(&'a str),
    Table(&'a str),
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Splits SQL into text, `:params` and `{{tables}}`, leaving string literals, quoted identifiers,
/// comments and PostgreSQL `::casts` alone.
fn scan<'a>(sql: &'a str, mut f: impl FnMut(Token<'a>)) {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b':' if b.get(i + 1) == Some(&b':') => i += 2,
            b':' if b.get(i + 1).copied().is_some_and(is_ident_start)
                && (i == 0 || !is_ident(b[i - 1])) =>
            {
                f(Token::Text(&sql[start..i]));
                let s = i + 1;
                i = s;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                f(Token::Param(&sql[s..i]));
                start = i;
            }
            b'{' if b.get(i + 1) == Some(&b'{') => {
                let s = i + 2;
                match sql[s..].find("}}") {
                    Some(len) => {
                        let name = sql[s..s + len].trim();
                        f(Token::Text(&sql[start..i]));
                        f(Token::Table(name));
                        i = s + len + 2;
                        start = i;
                    }
                    None => i += 2,
                }
            }
            _ => i += 1,
        }
    }
    if start < b.len() {
        f(Token::Text(&sql[start.min(b.len())..]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_params_per_dialect_and_tables_per_version() {
        let sql = "INSERT INTO {{orders}} (id, total) VALUES (:id, :total) \
                   ON CONFLICT (id) DO UPDATE SET total = :total";
        let pg = prepare(sql, Dialect::Postgres, 2);
        assert_eq!(
            pg.sql,
            "INSERT INTO orders_v2 (id, total) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET total = $3"
        );
        assert_eq!(pg.params, ["id", "total", "total"]);
        let lite = prepare(sql, Dialect::Sqlite, 1);
        assert!(
            lite.sql
                .starts_with("INSERT INTO orders_v1 (id, total) VALUES (?, ?)")
        );
        assert_eq!(param_names(sql), ["id", "total"]);
        assert_eq!(table_names(sql), ["orders"]);
    }

    #[test]
    fn leaves_literals_casts_and_comments_alone() {
        let sql = "SELECT ':no', \"a:b\", x::text -- :nope\n FROM t WHERE y = :yes /* :no */";
        let p = prepare(sql, Dialect::Postgres, 1);
        assert_eq!(p.params, ["yes"]);
        assert_eq!(
            p.sql,
            "SELECT ':no', \"a:b\", x::text -- :nope\n FROM t WHERE y = $1 /* :no */"
        );
    }
}
