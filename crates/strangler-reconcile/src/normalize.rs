//! The normalized text form of a row, shared by every database kind.
//!
//! Checksums of two different databases only agree when both hash the same bytes for the same
//! logical row, so every value is first rendered as text by one rule per class:
//! integers in decimal; decimals and floats rounded to a fixed scale (`12.500000`); booleans as
//! `0`/`1`; timestamps in UTC as `YYYY-MM-DDTHH:MM:SS.mmmZ` (milliseconds, naive values read as
//! UTC); dates as `YYYY-MM-DD`; uuids in lowercase; text as UTF-8. Fields are joined with U+001F and NULL is U+001E,
//! characters that do not occur in real text columns. The row hash is the first 15 hex digits of
//! the MD5 of that text (60 bits), summed over a chunk with the row count beside it.

use chrono::{DateTime, NaiveDateTime, Utc};
use md5::{Digest, Md5};

/// Field separator of the normalized row text (ASCII unit separator).
pub const FIELD_SEP: char = '\u{1f}';
/// Stands for NULL in the normalized row text (ASCII record separator).
pub const NULL_MARK: char = '\u{1e}';

/// How a column's values are rendered before hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Integers, in decimal.
    Int,
    /// Exact or floating-point numbers, rounded to the configured scale.
    Decimal,
    /// Booleans, as `0` or `1`.
    Bool,
    /// Timestamps, in UTC with milliseconds.
    Timestamp,
    /// Calendar dates.
    Date,
    /// Uuids, as lowercase text with hyphens (whatever type or case a side stores them in).
    Uuid,
    /// Everything else, as text.
    Text,
}

impl Class {
    /// The class of a database type name as sqlx reports it (PostgreSQL, MySQL or SQLite).
    pub fn of_type_name(name: &str) -> Class {
        let n = name.to_ascii_uppercase();
        if n.contains("BOOL") {
            Class::Bool
        } else if n.contains("TIMESTAMP") || n.contains("DATETIME") {
            Class::Timestamp
        } else if n == "UUID" {
            Class::Uuid
        } else if n == "DATE" {
            Class::Date
        } else if n.contains("INT") || n == "SERIAL" || n == "BIGSERIAL" {
            Class::Int
        } else if ["NUMERIC", "DECIMAL", "FLOAT", "DOUBLE", "REAL"]
            .iter()
            .any(|t| n.contains(t))
        {
            Class::Decimal
        } else {
            Class::Text
        }
    }

    /// The class named in `column_types`.
    pub fn parse(name: &str) -> Option<Class> {
        Some(match name {
            "int" => Class::Int,
            "decimal" => Class::Decimal,
            "bool" => Class::Bool,
            "timestamp" => Class::Timestamp,
            "date" => Class::Date,
            "text" => Class::Text,
            "uuid" => Class::Uuid,
            _ => return None,
        })
    }

    /// The class both sides use when their declared types disagree: the more specific one, so a
    /// decimal kept as text on one side is still rounded on both.
    pub fn unify(a: Class, b: Class) -> Class {
        fn rank(c: Class) -> u8 {
            match c {
                Class::Decimal => 6,
                Class::Uuid => 5,
                Class::Timestamp => 4,
                Class::Date => 3,
                Class::Bool => 2,
                Class::Int => 1,
                Class::Text => 0,
            }
        }
        if rank(a) >= rank(b) { a } else { b }
    }
}

/// Joins normalized field values (None = NULL) into the row text that is hashed.
pub fn row_text<'a>(fields: impl IntoIterator<Item = Option<&'a str>>) -> String {
    let mut out = String::new();
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(FIELD_SEP);
        }
        match f {
            Some(s) => out.push_str(s),
            None => out.push(NULL_MARK),
        }
    }
    out
}

/// The 60-bit row hash: the first 15 hex digits of the MD5 of the row text, as the databases
/// compute it with `substr(md5(text), 1, 15)`.
pub fn row_hash(text: &str) -> u64 {
    let digest = Md5::digest(text.as_bytes());
    let mut v = 0u64;
    for b in &digest[..7] {
        v = (v << 8) | u64::from(*b);
    }
    // 7 bytes are 14 hex digits; the 15th is the high nibble of the 8th byte.
    (v << 4) | u64::from(digest[7] >> 4)
}

/// Parses a normalized timestamp (or any RFC 3339 / `YYYY-MM-DD HH:MM:SS[.f]` text, naive = UTC).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_hash_is_the_first_15_hex_digits_of_md5() {
        // md5("abc") = 900150983cd24fb0d6963f7d28e17f72
        assert_eq!(row_hash("abc"), 0x900150983cd24fb);
    }

    #[test]
    fn row_text_separates_fields_and_marks_null() {
        assert_eq!(row_text([Some("1"), None, Some("")]), "1\u{1f}\u{1e}\u{1f}");
    }

    #[test]
    fn classes_from_type_names_of_each_database() {
        assert_eq!(Class::of_type_name("INT8"), Class::Int);
        assert_eq!(Class::of_type_name("BIGINT UNSIGNED"), Class::Int);
        assert_eq!(Class::of_type_name("NUMERIC"), Class::Decimal);
        assert_eq!(Class::of_type_name("DECIMAL"), Class::Decimal);
        assert_eq!(Class::of_type_name("FLOAT8"), Class::Decimal);
        assert_eq!(Class::of_type_name("BOOLEAN"), Class::Bool);
        assert_eq!(Class::of_type_name("TIMESTAMPTZ"), Class::Timestamp);
        assert_eq!(Class::of_type_name("DATETIME"), Class::Timestamp);
        assert_eq!(Class::of_type_name("DATE"), Class::Date);
        assert_eq!(Class::of_type_name("VARCHAR"), Class::Text);
        assert_eq!(Class::unify(Class::Text, Class::Decimal), Class::Decimal);
        assert_eq!(Class::unify(Class::Bool, Class::Int), Class::Bool);
    }

    #[test]
    fn timestamps_parse_naive_as_utc() {
        let a = parse_timestamp("2024-05-01T10:00:00.123Z").unwrap();
        let b = parse_timestamp("2024-05-01 12:00:00.123+02:00").unwrap();
        let c = parse_timestamp("2024-05-01 10:00:00.123").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }
}
