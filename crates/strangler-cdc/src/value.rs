//! Column text to the JSON value Debezium's PostgreSQL connector writes (pure).
//!
//! Streaming (pgoutput's text tuples) and the snapshot (`col::text`) both hand this module the
//! type's text output, so a row reads the same whichever path it came by. The mapping is
//! Debezium's with schemas disabled and these connector settings, chosen because they need no
//! schema to interpret: `decimal.handling.mode=string`, `binary.handling.mode=base64`,
//! `time.precision.mode=adaptive_time_microseconds` (timestamps as microseconds), JSON as text.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Number, Value};

/// Debezium's placeholder for an unchanged TOASTed column (`unavailable.value.placeholder`).
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const OID: u32 = 26;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const DATE: u32 = 1082;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;

/// The JSON value for a column's text output.
pub fn to_json(type_oid: u32, text: &str) -> Value {
    let as_text = || Value::String(text.to_string());
    match type_oid {
        BOOL => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => as_text(),
        },
        INT2 | INT4 | INT8 | OID => text
            .parse::<i64>()
            .map(|n| Value::Number(n.into()))
            .unwrap_or_else(|_| as_text()),
        FLOAT4 | FLOAT8 => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(as_text, Value::Number),
        BYTEA => text
            .strip_prefix("\\x")
            .and_then(|h| hex::decode(h).ok())
            .map_or_else(as_text, |b| Value::String(base64(&b))),
        DATE => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(|d| (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days())
            .map_or_else(as_text, |days| Value::Number(days.into())),
        TIMESTAMP => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc().timestamp_micros())
            .map_or_else(as_text, |us| Value::Number(us.into())),
        TIMESTAMPTZ => parse_timestamptz(text).map_or_else(as_text, |t| {
            Value::String(t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string())
        }),
        _ => as_text(),
    }
}

/// PostgreSQL prints `2024-01-02 03:04:05.123+00` (offset hours, sometimes `+05:30`).
fn parse_timestamptz(text: &str) -> Option<DateTime<Utc>> {
    let cut = text.rfind(['+', '-']).filter(|i| *i > 10)?;
    let (stamp, offset) = text.split_at(cut);
    let offset = if offset.len() == 3 {
        format!("{offset}:00")
    } else {
        offset.to_string()
    };
    DateTime::parse_from_str(&format!("{stamp}{offset}"), "%Y-%m-%d %H:%M:%S%.f%:z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Standard base64 with padding (what Kafka Connect's JSON converter writes for bytes).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_map_as_debezium_writes_them() {
        assert_eq!(to_json(BOOL, "t"), json!(true));
        assert_eq!(
            to_json(BOOL, "false"),
            json!(false),
            "the snapshot's ::text"
        );
        assert_eq!(to_json(INT8, "-42"), json!(-42));
        assert_eq!(to_json(FLOAT8, "1.5"), json!(1.5));
        assert_eq!(to_json(FLOAT8, "NaN"), json!("NaN"));
        assert_eq!(
            to_json(1700, "12.340"),
            json!("12.340"),
            "numeric stays exact"
        );
        assert_eq!(to_json(BYTEA, "\\x666f6f"), json!("Zm9v"));
        assert_eq!(to_json(DATE, "1970-01-11"), json!(10));
        assert_eq!(
            to_json(TIMESTAMP, "1970-01-01 00:00:01.5"),
            json!(1_500_000)
        );
        assert_eq!(
            to_json(TIMESTAMPTZ, "2024-01-02 03:04:05.25+02"),
            json!("2024-01-02T01:04:05.250Z")
        );
        assert_eq!(
            to_json(TIMESTAMPTZ, "2024-01-02 03:04:05+05:30"),
            json!("2024-01-01T21:34:05Z")
        );
        assert_eq!(to_json(25, "plain"), json!("plain"));
        assert_eq!(to_json(DATE, "infinity"), json!("infinity"));
    }

    #[test]
    fn base64_pads_like_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"Bar"), "QmFy");
    }
}
