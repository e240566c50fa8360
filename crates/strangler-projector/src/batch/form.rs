//! Which handler statements run for many events at once, and the multi-row SQL they become.
//!
//! Two shapes batch, on PostgreSQL, and only when the multi-row statement has the effect of
//! running the single-row one once per event in order:
//! - `INSERT INTO t (cols) VALUES (exprs) [ON CONFLICT ...]`, one row, no subquery, no
//!   `RETURNING`, no parameter after `VALUES (...)` (write `excluded.col` there). It becomes
//!   `INSERT INTO t (cols) SELECT exprs FROM UNNEST(arrays) WITH ORDINALITY ... ORDER BY ordinal
//!   [ON CONFLICT ...]`: rows go in event order; an `ON CONFLICT DO UPDATE` that would touch one
//!   row twice fails, and the batch then runs again event by event.
//! - `UPDATE t SET ... WHERE ... AND col = :key AND ...`, where a top-level conjunct compares a
//!   column with a parameter bound to the event key, with no subquery, `FROM`, `OR` at top level,
//!   `CASE` or `BETWEEN`. A step holds at most one event per key, so the rows each event updates
//!   are disjoint, which is what makes `UPDATE ... FROM UNNEST(...)` equal to one update each.
//!
//! Anything else runs one statement per event, still inside the batch's transaction.

use std::collections::HashMap;

use super::lex::{Kind, Tok, lex};
use crate::event::{ParamSource, Value};
use crate::sql::physical_table;

/// The element type of one parameter's array in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayType {
    /// BIGINT (also a parameter that is NULL for every event: the single-row path binds NULL as
    /// BIGINT too).
    Int8,
    /// DOUBLE PRECISION.
    Float8,
    /// BOOLEAN.
    Bool,
    /// TEXT.
    Text,
}

impl ArrayType {
    fn pg(self) -> &'static str {
        match self {
            ArrayType::Int8 => "int8[]",
            ArrayType::Float8 => "float8[]",
            ArrayType::Bool => "bool[]",
            ArrayType::Text => "text[]",
        }
    }

    /// The one type of a column of values, or `None` when they mix kinds (the single-row path
    /// binds each with its own type, which a multi-row statement cannot reproduce).
    pub fn of<'a>(values: impl Iterator<Item = &'a Value>) -> Option<ArrayType> {
        let mut ty: Option<ArrayType> = None;
        for v in values {
            let t = match v {
                Value::Null => continue,
                Value::Int(_) => ArrayType::Int8,
                Value::Float(_) => ArrayType::Float8,
                Value::Bool(_) => ArrayType::Bool,
                Value::Text(_) => ArrayType::Text,
            };
            match ty {
                None => ty = Some(t),
                Some(prev) if prev != t => return None,
                Some(_) => {}
            }
        }
        Some(ty.unwrap_or(ArrayType::Int8))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Insert,
    Update,
}

/// A handler statement's multi-row form for one version's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchForm {
    shape: Shape,
    /// SQL before the `UNNEST(...)` source.
    before: String,
    /// SQL after it.
    after: String,
    /// Parameter names, in array order.
    pub names: Vec<String>,
}

const ALIAS: &str = "strangler_u";

impl BatchForm {
    /// The statement for a step whose arrays have these types (one per name, in order).
    pub fn render(&self, types: &[ArrayType]) -> String {
        let mut sql = String::with_capacity(self.before.len() + self.after.len() + 96);
        sql.push_str(&self.before);
        sql.push_str("UNNEST(");
        for (i, t) in types.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}::{}", i + 1, t.pg()));
        }
        sql.push(')');
        if self.shape == Shape::Insert {
            sql.push_str(" WITH ORDINALITY");
        }
        sql.push_str(&format!(" AS {ALIAS}("));
        for i in 0..types.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("strangler_p{i}"));
        }
        if self.shape == Shape::Insert {
            if !types.is_empty() {
                sql.push_str(", ");
            }
            sql.push_str("strangler_ord");
        }
        sql.push(')');
        sql.push_str(&self.after);
        sql
    }
}

fn solid<'a>(toks: &'a [Tok<'a>]) -> Vec<&'a Tok<'a>> {
    toks.iter().filter(|t| t.kind != Kind::Space).collect()
}

/// Renders tokens with parameters as the alias's columns and tables as `version`'s.
fn render(toks: &[&Tok<'_>], names: &mut Vec<String>, version: u32) -> String {
    let mut out = String::new();
    for t in toks {
        match &t.kind {
            Kind::Param(p) => {
                let i = match names.iter().position(|n| n == p) {
                    Some(i) => i,
                    None => {
                        names.push((*p).to_string());
                        names.len() - 1
                    }
                };
                out.push_str(&format!("{ALIAS}.strangler_p{i}"));
            }
            Kind::Table(t) => out.push_str(&physical_table(t, version)),
            _ => out.push_str(t.text),
        }
        out.push(' ');
    }
    out
}

/// Index of the `)` closing the `(` at `open`.
fn closing(toks: &[&Tok<'_>], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The multi-row form of `sql` for `version`, when it has one. `sources` says where each
/// parameter comes from (the `UPDATE` shape needs one bound to the key).
pub fn classify(
    sql: &str,
    sources: &HashMap<String, ParamSource>,
    version: u32,
) -> Option<BatchForm> {
    let toks = lex(sql)?;
    let mut toks = solid(&toks);
    if toks.last().is_some_and(|t| t.kind == Kind::Punct(b';')) {
        toks.pop();
    }
    const BANNED: [&str; 4] = ["SELECT", "WITH", "RETURNING", "DEFAULT"];
    if toks.iter().any(|t| {
        matches!(t.kind, Kind::Punct(b';' | b'$' | b'?')) || BANNED.iter().any(|kw| t.is_word(kw))
    }) {
        return None;
    }
    match toks.first() {
        Some(t) if t.is_word("INSERT") => insert(&toks, version),
        Some(t) if t.is_word("UPDATE") => update(&toks, sources, version),
        _ => None,
    }
}

fn insert(toks: &[&Tok<'_>], version: u32) -> Option<BatchForm> {
    if !toks.get(1)?.is_word("INTO") {
        return None;
    }
    let cols_open = toks.iter().position(|t| t.kind == Kind::Punct(b'('))?;
    let target = &toks[2..cols_open];
    if target.is_empty()
        || target
            .iter()
            .any(|t| matches!(t.kind, Kind::Param(_)) || t.is_word("VALUES"))
    {
        return None;
    }
    let cols_close = closing(toks, cols_open)?;
    let cols = &toks[cols_open..=cols_close];
    if cols.iter().any(|t| matches!(t.kind, Kind::Param(_))) {
        return None;
    }
    if !toks.get(cols_close + 1)?.is_word("VALUES") {
        return None;
    }
    let values_open = cols_close + 2;
    if toks.get(values_open)?.kind != Kind::Punct(b'(') {
        return None;
    }
    let values_close = closing(toks, values_open)?;
    let rest = &toks[values_close + 1..];
    if rest.first().is_some_and(|t| t.kind == Kind::Punct(b',')) {
        return None; // several VALUES rows
    }
    if rest.iter().any(|t| matches!(t.kind, Kind::Param(_))) {
        return None;
    }
    if !rest.is_empty() && !rest[0].is_word("ON") {
        return None;
    }
    let mut names = Vec::new();
    let head = render(&toks[..=cols_close], &mut names, version);
    let exprs = render(&toks[values_open + 1..values_close], &mut names, version);
    let tail = render(rest, &mut names, version);
    Some(BatchForm {
        shape: Shape::Insert,
        before: format!("{head}SELECT {exprs}FROM "),
        after: format!(" ORDER BY {ALIAS}.strangler_ord {tail}")
            .trim_end()
            .to_string(),
        names,
    })
}

fn update(
    toks: &[&Tok<'_>],
    sources: &HashMap<String, ParamSource>,
    version: u32,
) -> Option<BatchForm> {
    const BANNED: [&str; 5] = ["FROM", "CASE", "BETWEEN", "CURRENT", "USING"];
    if toks.iter().any(|t| BANNED.iter().any(|kw| t.is_word(kw))) {
        return None;
    }
    let set = toks.iter().position(|t| t.is_word("SET"))?;
    if toks[1..set]
        .iter()
        .any(|t| matches!(t.kind, Kind::Param(_)))
    {
        return None;
    }
    let mut depth = 0i32;
    let mut where_at = None;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') => depth -= 1,
            _ if depth == 0 && t.is_word("WHERE") => {
                where_at = Some(i);
                break;
            }
            _ => {}
        }
    }
    let where_at = where_at?;
    let cond = &toks[where_at + 1..];
    // Split the condition into top-level conjuncts; a top-level OR makes them meaningless.
    let mut conjuncts: Vec<&[&Tok<'_>]> = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, t) in cond.iter().enumerate() {
        match t.kind {
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') => depth -= 1,
            _ if depth == 0 && t.is_word("OR") => return None,
            _ if depth == 0 && t.is_word("AND") => {
                conjuncts.push(&cond[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    conjuncts.push(&cond[start..]);
    let is_column = |c: &[&Tok<'_>]| match c {
        [a] => matches!(a.kind, Kind::Word | Kind::Quoted),
        [a, dot, b] => {
            matches!(a.kind, Kind::Word | Kind::Quoted | Kind::Table(_))
                && dot.kind == Kind::Punct(b'.')
                && matches!(b.kind, Kind::Word | Kind::Quoted)
        }
        _ => false,
    };
    let is_key = |t: &Tok<'_>| match t.kind {
        Kind::Param(p) => matches!(sources.get(p), Some(ParamSource::Key)),
        _ => false,
    };
    let keyed = conjuncts.iter().any(|c| {
        let n = c.len();
        n >= 3
            && ((c[n - 2].kind == Kind::Punct(b'=') && is_key(c[n - 1]) && is_column(&c[..n - 2]))
                || (is_key(c[0]) && c[1].kind == Kind::Punct(b'=') && is_column(&c[2..])))
    });
    if !keyed {
        return None;
    }
    let mut names = Vec::new();
    let head = render(&toks[..where_at], &mut names, version);
    let cond = render(cond, &mut names, version);
    Some(BatchForm {
        shape: Shape::Update,
        before: format!("{head}FROM "),
        after: format!(" WHERE {}", cond.trim_end()),
        names,
    })
}
