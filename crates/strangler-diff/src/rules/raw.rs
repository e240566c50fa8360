//! The on-disk shape of a `shadow-rules/*.toml` file, exactly as serde reads it.
//!
//! Every table rejects unknown keys; values that need checking beyond their type (paths, dates,
//! regexes, offsets) keep their byte span so validation errors can point at them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

fn default_true() -> bool {
    // Status codes are part of the answer a client sees, so they are compared unless opted out.
    true
}

/// Top level of a rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    /// Capability these rules govern (e.g. `orders`); used in fingerprints and reports.
    pub capability: Option<Spanned<String>>,
    /// Default owner for every rule that does not name its own.
    pub owner: Option<String>,
    /// How numbers compare without a `[[number]]` rule: `numeric` (default) or `strict`.
    pub numbers: Option<NumbersMode>,
    /// Which parts of the HTTP envelope are compared.
    pub http: Option<RawHttp>,
    /// Where the legacy answer records its last change, for the `stale` verdict.
    pub freshness: Option<RawFreshness>,
    /// Allow-list: compare only the fields the new model owns.
    pub owned: Option<Spanned<RawOwned>>,
    /// Paths whose differences are ignored.
    #[serde(default)]
    pub ignore: Vec<Spanned<RawIgnore>>,
    /// How arrays are matched (ordered, as sets, or by key).
    #[serde(default)]
    pub array: Vec<Spanned<RawArray>>,
    /// Number equivalence (scale, tolerances, numeric strings).
    #[serde(default)]
    pub number: Vec<Spanned<RawNumber>>,
    /// Timestamp equivalence (formats, time zone, truncation, tolerance).
    #[serde(default)]
    pub timestamp: Vec<Spanned<RawTimestamp>>,
    /// Paths where `null` and an absent key mean the same.
    #[serde(default)]
    pub null_missing: Vec<Spanned<RawNullMissing>>,
    /// String normalisation (trim, case, regex replace).
    #[serde(default)]
    pub string: Vec<Spanned<RawString>>,
    /// Semantic value maps (legacy `open` equals new `processing`).
    #[serde(default)]
    pub value_map: Vec<Spanned<RawValueMap>>,
    /// Field renames from the legacy shape to the new one.
    #[serde(default)]
    pub rename: Vec<Spanned<RawRename>>,
}

/// Number comparison without a `[[number]]` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NumbersMode {
    /// `1` equals `1.0`: JSON has a single number type.
    Numeric,
    /// `1` versus `1.0` is a `type` difference (integer versus float).
    Strict,
}

/// `[http]`: the envelope around the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    /// Compare status codes (default true).
    #[serde(default = "default_true")]
    pub status: bool,
    /// Header names compared case-insensitively; all others are ignored.
    #[serde(default)]
    pub headers: Vec<Spanned<String>>,
}

/// `[freshness]`: lets a mismatch be classified as stale.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFreshness {
    /// Concrete path in the legacy body holding the last-change time or version.
    pub legacy_changed_at: Spanned<String>,
}

/// How an array is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawArrayMatch {
    /// Element by element, order matters (the default for every array).
    Ordered,
    /// As a multiset: order never matters.
    Set,
    /// Elements paired by the value at `key`.
    Key,
}

/// Precision to which timestamps are truncated before comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawPrecision {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawEpoch {
    /// Seconds since 1970-01-01T00:00:00Z.
    Seconds,
    /// Milliseconds since 1970-01-01T00:00:00Z.
    Millis,
}

/// Declares a rule table with the fields every rule shares.
macro_rules! rule_table {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            /// Unique rule name for audit reports; defaults to `<kind>[<n>]`.
            pub name: Option<Spanned<String>>,
            /// Why the rule exists (shown in audit reports).
            pub reason: Option<String>,
            /// Team or person answerable for the rule; defaults to the file's `owner`.
            pub owner: Option<String>,
            /// Date (`YYYY-MM-DD`, quoted) after which the audit warns that the rule expired.
            pub expires: Option<Spanned<String>>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }
    };
}

rule_table!(
    /// `[[ignore]]`: differences at or below these paths are hidden.
    RawIgnore {
        /// Path patterns to ignore (`*` one segment, `**` any depth).
        paths: Vec<Spanned<String>>,
    }
);

rule_table!(
    /// `[owned]`: only these paths (and what lies below them) are compared.
    RawOwned {
        /// Path patterns the new model owns.
        paths: Vec<Spanned<String>>,
    }
);

rule_table!(
    /// `[[array]]`: array matching strategy.
    RawArray {
        /// Path patterns of the arrays.
        paths: Vec<Spanned<String>>,
        /// `ordered`, `set` or `key`.
        #[serde(rename = "match")]
        mode: Spanned<RawArrayMatch>,
        /// Field (or relative JSON pointer) identifying an element; required for `match = "key"`.
        key: Option<Spanned<String>>,
    }
);

rule_table!(
    /// `[[number]]`: number equivalence.
    RawNumber {
        /// Path patterns of the numbers.
        paths: Vec<Spanned<String>>,
        /// Round both sides to this many decimal places first.
        scale: Option<Spanned<u32>>,
        /// Equal when `|a - b| <= abs_tolerance`.
        abs_tolerance: Option<Spanned<f64>>,
        /// Equal when `|a - b| <= rel_tolerance * max(|a|, |b|)`.
        rel_tolerance: Option<Spanned<f64>>,
        /// Read numeric strings (`"12.50"`) as numbers.
        #[serde(default)]
        parse_strings: bool,
    }
);

rule_table!(
    /// `[[timestamp]]`: timestamp equivalence.
    RawTimestamp {
        /// Path patterns of the timestamps.
        paths: Vec<Spanned<String>>,
        /// Extra chrono `strftime` formats tried after RFC 3339, RFC 2822 and the built-in ones.
        #[serde(default)]
        formats: Vec<Spanned<String>>,
        /// Offset (`+02:00`) assumed for timestamps without a zone; default UTC.
        naive_offset: Option<Spanned<String>>,
        /// Truncate both sides to this precision before comparing.
        truncate: Option<RawPrecision>,
        /// Equal when at most this many milliseconds apart (after truncation).
        #[serde(default)]
        tolerance_ms: u64,
        /// Read JSON numbers as epoch timestamps in this unit.
        epoch: Option<RawEpoch>,
    }
);

rule_table!(
    /// `[[null_missing]]`: a `null` on one side equals an absent key on the other.
    RawNullMissing {
        /// Path patterns of the keys concerned.
        paths: Vec<Spanned<String>>,
    }
);

rule_table!(
    /// `[[string]]`: string normalisation.
    RawString {
        /// Path patterns of the strings.
        paths: Vec<Spanned<String>>,
        /// Strip leading and trailing whitespace.
        #[serde(default)]
        trim: bool,
        /// Compare case-insensitively (Unicode lowercase).
        #[serde(default)]
        case_insensitive: bool,
        /// Regex whose matches are replaced by `replace` on both sides.
        pattern: Option<Spanned<String>>,
        /// Replacement for `pattern` (default empty: delete the match).
        replace: Option<String>,
    }
);

rule_table!(
    /// `[[value_map]]`: legacy values that mean a given new value.
    RawValueMap {
        /// Path patterns of the values.
        paths: Vec<Spanned<String>>,
        /// Legacy value (as text) to the equivalent new value.
        map: BTreeMap<String, serde_json::Value>,
    }
);

rule_table!(
    /// `[[rename]]`: a legacy field now lives at another path.
    RawRename {
        /// Legacy path; `*` segments are captured in order.
        legacy: Spanned<String>,
        /// New path; its `*` segments receive the captured segments in order.
        candidate: Spanned<String>,
    }
);
