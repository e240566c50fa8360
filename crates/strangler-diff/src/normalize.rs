//! Value normalisers and equivalences used by rules: numbers, timestamps, strings, value maps.
//!
//! Each normaliser is a pure function from a JSON value to a JSON value and is idempotent
//! (normalising twice equals normalising once); the comparison walk uses the `equivalent`
//! forms, which also apply tolerances.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Timelike, Utc,
};
use regex::Regex;
use serde_json::Value;

/// A JSON number read for comparison: exact when integral, `f64` otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    pub(crate) fn of(n: &serde_json::Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            // precision loss above 2^53 is acceptable: exact compare happens before this
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// Numeric equality: integers exactly, otherwise as `f64`.
    pub(crate) fn same(self, other: Num) -> bool {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a == b,
            _ => self.as_f64() == other.as_f64(),
        }
    }
}

/// Reads a number, or a numeric string when `parse_strings` is on.
pub(crate) fn read_number(v: &Value, parse_strings: bool) -> Option<Num> {
    match v {
        Value::Number(n) => Some(Num::of(n)),
        Value::String(s) if parse_strings => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i128>() {
                Some(Num::Int(i))
            } else {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Num::Float)
            }
        }
        _ => None,
    }
}

/// `[[number]]`: when two numbers count as equal.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberRule {
    /// Round both sides to this many decimal places first.
    pub scale: Option<u32>,
    /// Equal when `|a - b| <= abs_tolerance`.
    pub abs_tolerance: f64,
    /// Equal when `|a - b| <= rel_tolerance * max(|a|, |b|)`.
    pub rel_tolerance: f64,
    /// Read numeric strings as numbers.
    pub parse_strings: bool,
}

fn round_to(x: f64, scale: u32) -> f64 {
    let factor = 10f64.powi(scale.min(300) as i32);
    let scaled = (x * factor).round() / factor;
    if scaled.is_finite() { scaled } else { x }
}

impl NumberRule {
    fn prepared(&self, v: &Value) -> Option<Num> {
        let n = read_number(v, self.parse_strings)?;
        Some(match (self.scale, n) {
            (Some(s), Num::Float(f)) => Num::Float(round_to(f, s)),
            _ => n,
        })
    }

    /// Normalised form: numbers (and numeric strings, if enabled) rounded to `scale`.
    pub fn normalize(&self, v: &Value) -> Value {
        match self.prepared(v) {
            Some(Num::Int(i)) => i64::try_from(i)
                .map(Value::from)
                .or_else(|_| u64::try_from(i).map(Value::from))
                .unwrap_or_else(|_| Value::from(i as f64)),
            Some(Num::Float(f)) => {
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
            None => v.clone(),
        }
    }

    /// True when both sides are numbers that this rule considers equal.
    pub fn equivalent(&self, a: &Value, b: &Value) -> bool {
        let (Some(x), Some(y)) = (self.prepared(a), self.prepared(b)) else {
            return false;
        };
        if x.same(y) {
            return true;
        }
        let (x, y) = (x.as_f64(), y.as_f64());
        let diff = (x - y).abs();
        diff <= self.abs_tolerance || diff <= self.rel_tolerance * x.abs().max(y.abs())
    }
}

/// Precision to which timestamps are truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Whole minutes.
    Minutes,
    /// Whole seconds.
    Seconds,
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
}

/// Unit of numeric epoch timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EpochUnit {
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Millis,
}

/// Zoned formats tried after RFC 3339 and RFC 2822.
const ZONED_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f %z",
];
/// Formats without a zone; `naive_offset` applies.
const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y/%m/%d %H:%M:%S%.f",
];

/// `[[timestamp]]`: when two timestamps count as equal.
#[derive(Debug, Clone, PartialEq)]
pub struct TimestampRule {
    /// Extra `strftime` formats, tried before the built-in ones.
    pub formats: Vec<String>,
    /// Offset assumed for timestamps that carry none.
    pub naive_offset: FixedOffset,
    /// Truncation applied to both sides.
    pub truncate: Option<Precision>,
    /// Allowed distance after truncation, in milliseconds.
    pub tolerance_ms: u64,
    /// Unit for numeric epoch values; `None` leaves numbers alone.
    pub epoch: Option<EpochUnit>,
}

impl Default for TimestampRule {
    fn default() -> Self {
        TimestampRule {
            formats: Vec::new(),
            naive_offset: FixedOffset::east_opt(0).expect("zero offset is valid"),
            truncate: None,
            tolerance_ms: 0,
            epoch: None,
        }
    }
}

/// Parses a timestamp string with RFC 3339, RFC 2822, then common database formats.
pub fn parse_timestamp(
    s: &str,
    extra_formats: &[String],
    naive_offset: FixedOffset,
) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.with_timezone(&Utc));
    }
    let extra = extra_formats.iter().map(String::as_str);
    for fmt in extra.clone().chain(ZONED_FORMATS.iter().copied()) {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let local = |n: NaiveDateTime| {
        naive_offset
            .from_local_datetime(&n)
            .single()
            .map(|t| t.with_timezone(&Utc))
    };
    for fmt in extra.clone().chain(NAIVE_FORMATS.iter().copied()) {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return local(n);
        }
    }
    for fmt in extra.chain(std::iter::once("%Y-%m-%d")) {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return local(d.and_hms_opt(0, 0, 0)?);
        }
    }
    None
}

impl TimestampRule {
    /// Reads and truncates a timestamp; `None` when the value is not one.
    pub fn read(&self, v: &Value) -> Option<DateTime<Utc>> {
        let t = match v {
            Value::String(s) => parse_timestamp(s, &self.formats, self.naive_offset)?,
            Value::Number(n) => {
                let unit = self.epoch?;
                let x = n.as_f64()?;
                let millis = match unit {
                    EpochUnit::Seconds => x * 1000.0,
                    EpochUnit::Millis => x,
                };
                if !millis.is_finite() || millis.abs() > 8.0e15 {
                    return None;
                }
                DateTime::from_timestamp_millis(millis.round() as i64)?
            }
            _ => return None,
        };
        Some(truncate(t, self.truncate))
    }

    /// Normalised form: an RFC 3339 UTC string at the rule's precision, or the value unchanged.
    pub fn normalize(&self, v: &Value) -> Value {
        match self.read(v) {
            Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => v.clone(),
        }
    }

    /// True when both sides are timestamps within the tolerance.
    pub fn equivalent(&self, a: &Value, b: &Value) -> bool {
        let (Some(x), Some(y)) = (self.read(a), self.read(b)) else {
            return false;
        };
        let tolerance = i64::try_from(self.tolerance_ms)
            .ok()
            .and_then(chrono::TimeDelta::try_milliseconds)
            .unwrap_or(chrono::TimeDelta::MAX);
        (x - y).abs() <= tolerance
    }
}

fn truncate(t: DateTime<Utc>, precision: Option<Precision>) -> DateTime<Utc> {
    let nanos = t.nanosecond();
    let kept = match precision {
        None => return t,
        Some(Precision::Micros) => nanos - nanos % 1_000,
        Some(Precision::Millis) => nanos - nanos % 1_000_000,
        Some(Precision::Seconds) | Some(Precision::Minutes) => 0,
    };
    let t = t.with_nanosecond(kept).unwrap_or(t);
    if precision == Some(Precision::Minutes) {
        t.with_second(0).unwrap_or(t)
    } else {
        t
    }
}

/// `[[string]]`: string normalisation.
#[derive(Debug, Clone)]
pub struct StringRule {
    /// Strip surrounding whitespace.
    pub trim: bool,
    /// Compare in Unicode lowercase.
    pub case_insensitive: bool,
    /// Regex whose matches are replaced by `replace`.
    pub pattern: Option<Regex>,
    /// Replacement text for `pattern` (`$1` refers to groups).
    pub replace: String,
}

impl StringRule {
    /// Trims, applies the regex replacement (trimming again), then lowercases.
    pub fn normalize_str<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = if self.trim {
            Cow::Borrowed(s.trim())
        } else {
            Cow::Borrowed(s)
        };
        if let Some(re) = &self.pattern
            && let Cow::Owned(replaced) = re.replace_all(&out, self.replace.as_str())
        {
            out = Cow::Owned(if self.trim {
                replaced.trim().to_owned()
            } else {
                replaced
            });
        }
        if self.case_insensitive && out.chars().any(|c| c.to_lowercase().ne(std::iter::once(c))) {
            out = Cow::Owned(out.to_lowercase());
        }
        out
    }

    /// Normalised form of a JSON value: strings normalised, anything else unchanged.
    pub fn normalize(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.normalize_str(s).into_owned()),
            _ => v.clone(),
        }
    }
}

/// `[[value_map]]`: legacy values (as text) and the new value each stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueMap {
    /// Legacy text to new value.
    pub map: BTreeMap<String, Value>,
}

impl ValueMap {
    /// The new value a legacy value maps to, if any.
    pub fn lookup(&self, v: &Value) -> Option<&Value> {
        match v {
            Value::String(s) => self.map.get(s.as_str()),
            Value::Number(n) => self.map.get(&n.to_string()),
            Value::Bool(b) => self.map.get(if *b { "true" } else { "false" }),
            _ => None,
        }
    }
}

/// The JSON type name, with numbers split into integer and float when `strict`.
pub(crate) fn type_name(v: &Value, strict: bool) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if strict && !n.is_f64() => "integer",
        Value::Number(n) if strict && n.is_f64() => "float",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Deep equality without rules: numbers numerically (unless `strict`), object key order ignored.
pub(crate) fn plain_equal(a: &Value, b: &Value, strict: bool) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if strict && x.is_f64() != y.is_f64() {
                return false;
            }
            Num::of(x).same(Num::of(y))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| plain_equal(p, q, strict))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| plain_equal(p, q, strict)))
        }
        _ => a == b,
    }
}

/// Number of leaf values (scalars and empty containers) in a value.
pub(crate) fn leaves(v: &Value) -> u64 {
    match v {
        Value::Array(a) if !a.is_empty() => a.iter().map(leaves).sum(),
        Value::Object(o) if !o.is_empty() => o.values().map(leaves).sum(),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn number_rule_forgives_scale_and_tolerance_but_not_more() {
        let rule = NumberRule {
            scale: Some(2),
            abs_tolerance: 0.0,
            rel_tolerance: 0.0,
            parse_strings: true,
        };
        assert!(rule.equivalent(&json!(12.5), &json!("12.50")));
        assert!(rule.equivalent(&json!(12.499), &json!(12.5)));
        assert!(!rule.equivalent(&json!(12.49), &json!(12.5)));
        let tol = NumberRule {
            scale: None,
            abs_tolerance: 0.01,
            rel_tolerance: 0.0,
            parse_strings: false,
        };
        assert!(tol.equivalent(&json!(10.0), &json!(10.01)));
        assert!(!tol.equivalent(&json!(10.0), &json!(10.02)));
        assert!(
            !tol.equivalent(&json!(10), &json!("10")),
            "strings stay strings without parse_strings"
        );
        let rel = NumberRule {
            scale: None,
            abs_tolerance: 0.0,
            rel_tolerance: 0.001,
            parse_strings: false,
        };
        assert!(rel.equivalent(&json!(1000), &json!(1001)));
        assert!(!rel.equivalent(&json!(1000), &json!(1002)));
    }

    #[test]
    fn timestamps_parse_common_formats_and_zones() {
        let rule = TimestampRule::default();
        let a = json!("2024-03-01T10:00:00Z");
        assert!(rule.equivalent(&a, &json!("2024-03-01T12:00:00+02:00")));
        assert!(rule.equivalent(&a, &json!("2024-03-01 10:00:00")));
        assert!(rule.equivalent(&a, &json!("Fri, 01 Mar 2024 10:00:00 +0000")));
        assert!(!rule.equivalent(&a, &json!("2024-03-01T10:00:01Z")));
        assert!(!rule.equivalent(&a, &json!("not a time")));
        let paris = TimestampRule {
            naive_offset: FixedOffset::east_opt(3600).unwrap(),
            ..TimestampRule::default()
        };
        assert!(paris.equivalent(&a, &json!("2024-03-01 11:00:00")));
    }

    #[test]
    fn timestamp_truncation_and_tolerance() {
        let secs = TimestampRule {
            truncate: Some(Precision::Seconds),
            ..TimestampRule::default()
        };
        assert!(secs.equivalent(
            &json!("2024-03-01T10:00:00.999Z"),
            &json!("2024-03-01T10:00:00Z")
        ));
        assert!(!secs.equivalent(
            &json!("2024-03-01T10:00:01.000Z"),
            &json!("2024-03-01T10:00:00.999Z")
        ));
        let tol = TimestampRule {
            tolerance_ms: 1500,
            ..TimestampRule::default()
        };
        assert!(tol.equivalent(
            &json!("2024-03-01T10:00:01.000Z"),
            &json!("2024-03-01T10:00:00.000Z")
        ));
        assert!(!tol.equivalent(
            &json!("2024-03-01T10:00:02.000Z"),
            &json!("2024-03-01T10:00:00.000Z")
        ));
        let epoch = TimestampRule {
            epoch: Some(EpochUnit::Seconds),
            ..TimestampRule::default()
        };
        assert!(epoch.equivalent(&json!(1709287200), &json!("2024-03-01T10:00:00Z")));
    }

    #[test]
    fn string_rule_trims_folds_case_and_replaces() {
        let rule = StringRule {
            trim: true,
            case_insensitive: true,
            pattern: Some(Regex::new("-v[0-9]+$").unwrap()),
            replace: String::new(),
        };
        assert_eq!(rule.normalize_str("  SKU-1-v2 "), "sku-1");
        assert_eq!(rule.normalize_str("sku-1"), "sku-1");
    }
}
