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
        Class::Uuid => format!("LOWER(CAST({e} AS CHAR))"),
        // CAST AS CHAR converts to the connection's utf8mb4 whatever the column's character set,
        // so the hashed and compared bytes are UTF-8 as on the other databases.
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

/// The 60-bit hash of one row.
fn row_hash(row: &str) -> String {
    format!("CAST(CONV(SUBSTR(MD5({row}), 1, 15), 16, 10) AS UNSIGNED)")
}

/// The sum of the chunk's 60-bit row hashes, as decimal text.
pub(super) fn hash_sum(row: &str) -> String {
    format!("CAST(COALESCE(SUM({}), 0) AS CHAR)", row_hash(row))
}

/// Buckets at boundaries given as a JSON array (placeholder `json`): MySQL has no
/// `width_bucket`, so the rows and the boundaries are merged in key order and each row takes the
/// number of the last boundary at or before it (a running maximum). Boundaries sort before rows
/// with the same key, since a bucket starts at its boundary.
pub(super) fn bucketed_by_bounds(
    k: &str,
    from: &str,
    filter: &str,
    row: &str,
    json: &str,
) -> String {
    format!(
        "SELECT u.b AS b, COUNT(*) AS n, CAST(COALESCE(SUM(u.h), 0) AS CHAR) AS h FROM (\
         SELECT t.o, t.h, MAX(t.bi) OVER (ORDER BY t.k, t.o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS b FROM (\
         SELECT {k} AS k, 1 AS o, 0 AS bi, {} AS h FROM {from} WHERE {filter} \
         UNION ALL SELECT CAST(j.v AS BINARY), 0, j.i, 0 FROM JSON_TABLE({json}, '$[*]' \
         COLUMNS (i FOR ORDINALITY, v VARCHAR(3072) CHARACTER SET utf8mb4 PATH '$')) j\
         ) t) u WHERE u.o = 1 GROUP BY u.b",
        row_hash(row)
    )
}
