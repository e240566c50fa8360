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

pub(super) fn bucket_exprs(k: &str, lo: &str, width: &str, row: &str) -> (String, String, String) {
    (
        format!("(({k} - {lo}::bigint) / {width}::bigint)"),
        "count(*)::bigint".into(),
        format!("coalesce(sum(('x' || substr(md5({row}), 1, 15))::bit(60)::bigint), 0)::text"),
    )
}
