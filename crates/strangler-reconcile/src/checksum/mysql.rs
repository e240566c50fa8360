//! MySQL and MariaDB: normalization with `CAST` and `DATE_FORMAT`, row hashes with `MD5`.

use crate::normalize::Class;

pub(super) fn norm(e: &str, class: Class, scale: u32) -> String {
    match class {
        Class::Int => format!("CAST(CAST({e} AS SIGNED) AS CHAR)"),
        Class::Decimal => format!("CAST(CAST({e} AS DECIMAL(65, {scale})) AS CHAR)"),
        Class::Bool => format!("CAST(({e}) <> 0 AS CHAR)"),
        // DATETIME has no zone and is read as UTC; sqlx sets the session to +00:00, so
        // TIMESTAMP columns come out in UTC too.
        Class::Timestamp => format!(
            "CONCAT(DATE_FORMAT({e}, '%Y-%m-%dT%H:%i:%s.'), LPAD(FLOOR(MICROSECOND({e}) / 1000), 3, '0'), 'Z')"
        ),
        Class::Date => format!("DATE_FORMAT({e}, '%Y-%m-%d')"),
        Class::Text => format!("CAST({e} AS CHAR)"),
    }
}

pub(super) fn row_text(fields: &[String]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("COALESCE({f}, CHAR(30 USING utf8mb4))"))
        .collect();
    format!("CONCAT_WS(CHAR(31 USING utf8mb4), {})", parts.join(", "))
}

pub(super) fn bucket_exprs(k: &str, lo: &str, width: &str, row: &str) -> (String, String, String) {
    (
        format!("CAST(({k} - {lo}) DIV {width} AS SIGNED)"),
        "COUNT(*)".into(),
        format!(
            "CAST(COALESCE(SUM(CAST(CONV(SUBSTR(MD5({row}), 1, 15), 16, 10) AS UNSIGNED)), 0) AS CHAR)"
        ),
    )
}
