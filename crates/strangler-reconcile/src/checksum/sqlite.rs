//! SQLite: normalization in SQL with `printf` and `strftime`; it has no MD5, so chunks stream
//! the normalized row text and strangler hashes it (no functions are registered in the database).

use crate::normalize::Class;

pub(super) fn norm(e: &str, class: Class, scale: u32) -> String {
    match class {
        Class::Int => format!("CAST(CAST({e} AS INTEGER) AS TEXT)"),
        Class::Decimal => format!("printf('%.{scale}f', {e})"),
        Class::Bool => format!(
            "CASE WHEN {e} IS NULL THEN NULL WHEN {e} IN (1, '1', 't', 'true', 'TRUE') THEN '1' ELSE '0' END"
        ),
        Class::Timestamp => format!("strftime('%Y-%m-%dT%H:%M:%fZ', {e})"),
        Class::Date => format!("strftime('%Y-%m-%d', {e})"),
        // lower() folds ASCII only, which is all a uuid's text holds.
        Class::Uuid => format!("lower(CAST({e} AS TEXT))"),
        Class::Text => format!("CAST({e} AS TEXT)"),
    }
}

pub(super) fn row_text(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("coalesce({f}, char(30))"))
        .collect::<Vec<_>>()
        .join(" || char(31) || ")
}
