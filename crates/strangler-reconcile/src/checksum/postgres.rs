//! PostgreSQL: normalization with casts and `to_char`, row hashes with `md5`.

use crate::normalize::Class;

pub(super) fn norm(e: &str, class: Class, scale: u32) -> String {
    match class {
        Class::Int => format!("({e})::bigint::text"),
        Class::Decimal => format!("round(({e})::numeric, {scale})::text"),
        Class::Bool => format!("(({e})::boolean)::int::text"),
        // Sessions run in UTC, so a naive timestamp cast to timestamptz is read as UTC.
        Class::Timestamp => format!(
            "to_char(({e})::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        ),
        Class::Date => format!("to_char(({e})::date, 'YYYY-MM-DD')"),
        Class::Uuid => format!("lower(({e})::text)"),
        Class::Text => format!("({e})::text"),
    }
}

pub(super) fn row_text(fields: &[String]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("coalesce({f}, chr(30))"))
        .collect();
    format!("concat_ws(chr(31), {})", parts.join(", "))
}

/// The sum of the chunk's 60-bit row hashes, as decimal text.
pub(super) fn hash_sum(row: &str) -> String {
    format!("coalesce(sum(('x' || substr(md5({row}), 1, 15))::bit(60)::bigint), 0)::text")
}

/// The 60-bit native row hash: `hash_record_extended` over the raw columns, with no text
/// rendering at all (several times cheaper than `md5` of the normalized text). Only comparable
/// between two PostgreSQL sides whose paired columns have the same types; see [`native_column`].
pub(super) fn native_hash_sum(columns: &[String]) -> String {
    format!(
        "coalesce(sum(hash_record_extended(ROW({}), 0) & 1152921504606846975), 0)::text",
        columns.join(", ")
    )
}

/// How a column of PostgreSQL type `type_name` (as sqlx names it) enters the native row hash,
/// or None when the type has no hash function fit for it. Text is hashed under `"C"` so a
/// nondeterministic collation cannot make two different values hash alike.
pub fn native_column(expr: &str, type_name: &str) -> Option<String> {
    match type_name.to_ascii_uppercase().as_str() {
        "TEXT" | "VARCHAR" | "CHAR" | "BPCHAR" | "NAME" => Some(format!("{expr} COLLATE \"C\"")),
        "INT2" | "INT4" | "INT8" | "NUMERIC" | "FLOAT4" | "FLOAT8" | "BOOL" | "TIMESTAMPTZ"
        | "TIMESTAMP" | "DATE" | "TIME" | "UUID" | "BYTEA" | "JSONB" => Some(expr.to_string()),
        _ => None,
    }
}
