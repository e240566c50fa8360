//! Reading a rule file: TOML decoding with error recovery, then semantic validation.
//!
//! serde stops at the first decoding error, so after each one the offending table (or top-level
//! key) is blanked out, byte for byte so later spans stay valid, and decoding is retried. That
//! way one run reports every broken table, not just the first.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use chrono::{FixedOffset, NaiveDate};
use regex::Regex;
use toml::Spanned;

use super::error::{ErrorSink, RuleErrors, line_col};
use super::model::{ArrayMatch, Rename, Rule, RuleKind, RuleSet};
use super::path::PathPattern;
use super::raw::{NumbersMode, RawArrayMatch, RawEpoch, RawFile, RawPrecision};
use crate::normalize::{EpochUnit, NumberRule, Precision, StringRule, TimestampRule, ValueMap};

/// Stop collecting after this many decoding errors; the rest are likely consequences.
const MAX_DECODE_ERRORS: usize = 32;

pub(crate) fn parse(source: &str, file: &str) -> Result<RuleSet, RuleErrors> {
    let mut sink = ErrorSink {
        source,
        file,
        errors: Vec::new(),
    };
    let mut text = source.to_owned();
    let raw = loop {
        match toml::from_str::<RawFile>(&text) {
            Ok(raw) => break Some(raw),
            Err(e) => {
                let syntax = sink.decode(&e);
                if syntax || sink.errors.len() >= MAX_DECODE_ERRORS {
                    break None;
                }
                let Some(span) = e.span() else { break None };
                if !blank_region(&mut text, span.start) {
                    break None;
                }
            }
        }
    };
    let set = raw.map(|raw| build(raw, &mut sink));
    sink.errors.sort_by_key(|e| (e.line(), e.column()));
    match set {
        Some(set) if sink.errors.is_empty() => Ok(set),
        _ => Err(RuleErrors {
            errors: sink.errors,
        }),
    }
}

/// Replaces the table (or top-level key) around `offset` with spaces; false if nothing changed.
fn blank_region(text: &mut String, offset: usize) -> bool {
    let offset = offset.min(text.len());
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|&i| i <= text.len())
        .collect();
    let line_of = |off: usize| line_starts.partition_point(|&s| s <= off).saturating_sub(1);
    let is_header = |i: usize| text[line_starts[i]..].trim_start().starts_with('[');
    let is_key = |i: usize| {
        let line = text[line_starts[i]..].lines().next().unwrap_or("");
        let t = line.trim_start();
        !t.is_empty() && !t.starts_with('#') && !t.starts_with(']') && t.contains('=')
    };
    let here = line_of(offset);
    let header = (0..=here).rev().find(|&i| is_header(i));
    let (first, stop_at_key) = match header {
        Some(h) => (h, false),
        None => (here, true),
    };
    let last = (first + 1..line_starts.len())
        .find(|&i| is_header(i) || (stop_at_key && is_key(i)))
        .unwrap_or(line_starts.len());
    let start = line_starts[first];
    let end = line_starts.get(last).copied().unwrap_or(text.len());
    let mut bytes = std::mem::take(text).into_bytes();
    let mut changed = false;
    for b in &mut bytes[start..end] {
        if *b != b'\n' && *b != b' ' {
            *b = b' ';
            changed = true;
        }
    }
    // Only whole lines were blanked with ASCII spaces, so the text stays valid UTF-8.
    *text = String::from_utf8(bytes).unwrap_or_default();
    changed
}

fn span_of<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

/// Semantic validation; errors go to the sink, and the returned set is used only if none.
fn build(raw: RawFile, sink: &mut ErrorSink<'_>) -> RuleSet {
    let mut set = RuleSet::empty();
    set.file = sink.file.to_owned();
    set.capability = raw.capability.map(|c| {
        if c.get_ref().trim().is_empty() {
            sink.invalid(
                span_of(&c),
                "capability",
                "capability is empty".into(),
                "name the capability, e.g. capability = \"orders\"",
            );
        }
        c.into_inner()
    });
    set.numbers_strict = raw.numbers == Some(NumbersMode::Strict);
    if let Some(http) = raw.http {
        set.compare_status = http.status;
        for h in http.headers {
            let name = h.get_ref().trim().to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                sink.invalid(
                    span_of(&h),
                    "http.headers",
                    format!("`{}` is not a header name", h.get_ref()),
                    "list header names such as \"content-type\"",
                );
            }
            set.headers.push(name);
        }
    }
    if let Some(f) = raw.freshness {
        match PathPattern::parse_concrete(f.legacy_changed_at.get_ref()) {
            Ok(p) => set.freshness = Some(p),
            Err(e) => sink.invalid(
                span_of(&f.legacy_changed_at),
                "freshness.legacy_changed_at",
                e.to_string(),
                "name one field without wildcards, e.g. \"/updated_at\"",
            ),
        }
    }

    let mut b = Builder {
        sink,
        set,
        names: HashSet::new(),
        default_owner: raw.owner,
    };
    if let Some(owned) = raw.owned {
        let span = owned.span();
        let line = line_col(b.sink.source, span.start).0;
        let o = owned.into_inner();
        let paths = b.paths("owned", &o.paths, &span);
        let idx = b.push(
            "owned",
            0,
            line,
            Common {
                name: o.name,
                reason: o.reason,
                owner: o.owner,
                expires: o.expires,
            },
            RuleKind::Owned,
            paths,
        );
        b.set.owned_rule = Some(idx);
    }
    for (n, t) in raw.ignore.into_iter().enumerate() {
        let span = t.span();
        let line = line_col(b.sink.source, span.start).0;
        let r = t.into_inner();
        let paths = b.paths("ignore", &r.paths, &span);
        b.push(
            "ignore",
            n,
            line,
            Common {
                name: r.name,
                reason: r.reason,
                owner: r.owner,
                expires: r.expires,
            },
            RuleKind::Ignore,
            paths,
        );
    }
    for (n, t) in raw.array.into_iter().enumerate() {
        let span = t.span();
        let line = line_col(b.sink.source, span.start).0;
        let r = t.into_inner();
        let paths = b.paths("array", &r.paths, &span);
        let mode = match (*r.mode.get_ref(), &r.key) {
            (RawArrayMatch::Key, Some(key)) => {
                let k = key.get_ref().trim();
                let pointer = if k.starts_with('/') {
                    k.to_owned()
                } else {
                    format!("/{k}")
                };
                if k.is_empty() || PathPattern::parse_concrete(&pointer).is_err() {
                    b.sink.invalid(
                        span_of(key),
                        "array.key",
                        format!("`{}` is not a field name or JSON pointer", key.get_ref()),
                        "name the identifying field, e.g. key = \"sku\"",
                    );
                }
                ArrayMatch::Key(pointer)
            }
            (RawArrayMatch::Key, None) => {
                b.sink.invalid(
                    span_of(&r.mode),
                    "array.key",
                    "match = \"key\" needs a `key`".into(),
                    "add key = \"<field>\" naming the identifying field",
                );
                ArrayMatch::Set
            }
            (other, Some(key)) => {
                b.sink.invalid(
                    span_of(key),
                    "array.key",
                    format!("`key` only applies to match = \"key\", not {other:?}"),
                    "remove `key` or set match = \"key\"",
                );
                ArrayMatch::Set
            }
            (RawArrayMatch::Set, None) => ArrayMatch::Set,
            (RawArrayMatch::Ordered, None) => ArrayMatch::Ordered,
        };
        b.push(
            "array",
            n,
            line,
            Common {
                name: r.name,
                reason: r.reason,
                owner: r.owner,
                expires: r.expires,
            },
            RuleKind::Array(mode),
            paths,
        );
    }
    for (n, t) in raw.number.into_iter().enumerate() {
        let span = t.span();
        let line = line_col(b.sink.source, span.start).0;
        let r = t.into_inner();
        let paths = b.paths("number", &r.paths, &span);
        let mut tolerance = |v: &Option<Spanned<f64>>, key: &str| match v {
            Some(s) if !(s.get_ref().is_finite() && *s.get_ref() >= 0.0) => {
                b.sink.invalid(
                    span_of(s),
                    key,
                    format!("{} is not a tolerance", s.get_ref()),
                    "use a finite number >= 0",
                );
                0.0
            }
            Some(s) => *s.get_ref(),
            None => 0.0,
        };
        let abs_tolerance = tolerance(&r.abs_tolerance, "number.abs_tolerance");
        let rel_tolerance = tolerance(&r.rel_tolerance, "number.rel_tolerance");
        if let Some(scale) = &r.scale
            && *scale.get_ref() > 17
        {
            b.sink.invalid(
                span_of(scale),
                "number.scale",
                format!("scale {} exceeds f64 precision", scale.get_ref()),
                "use a scale between 0 and 17",
            );
        }
        let rule = NumberRule {
            scale: r.scale.map(|s| s.into_inner()),
            abs_tolerance,
            rel_tolerance,
            parse_strings: r.parse_strings,
        };
        b.push(
            "number",
            n,
            line,
            Common {
                name: r.name,
                reason: r.reason,
                owner: r.owner,
                expires: r.expires,
            },
            RuleKind::Number(rule),
            paths,
        );
    }
    for (n, t) in raw.timestamp.into_iter().enumerate() {
        let span = t.span();
        let line = line_col(b.sink.source, span.start).0;
        let r = t.into_inner();
        let paths = b.paths("timestamp", &r.paths, &span);
        let mut formats = Vec::new();
        for f in &r.formats {
            if let Err(message) = check_format(f.get_ref()) {
                b.sink.invalid(
                    span_of(f),
                    "timestamp.formats",
                    message,
                    "use chrono strftime items, e.g. \"%d.%m.%Y %H:%M\"",
                );
            }
            formats.push(f.get_ref().clone());
        }
        let mut rule = TimestampRule {
            formats,
            tolerance_ms: r.tolerance_ms,
            ..TimestampRule::default()
        };
        if let Some(offset) = &r.naive_offset {
            match offset.get_ref().parse::<FixedOffset>() {
                Ok(o) => rule.naive_offset = o,
                Err(_) => b.sink.invalid(
                    span_of(offset),
                    "timestamp.naive_offset",
                    format!("`{}` is not a UTC offset", offset.get_ref()),
                    "write an offset like \"+02:00\" or \"-05:00\"",
                ),
            }
        }
        rule.truncate = r.truncate.map(|p| match p {
            RawPrecision::Minutes => Precision::Minutes,
            RawPrecision::Seconds => Precision::Seconds,
            RawPrecision::Millis => Precision::Millis,
            RawPrecision::Micros => Precision::Micros,
        });
        rule.epoch = r.epoch.map(|e| match e {
            RawEpoch::Seconds => EpochUnit::Seconds,
            RawEpoch::Millis => EpochUnit::Millis,
        });
        b.push(
            "timestamp",
            n,
            line,
            Common {
                name: r.name,
                reason: r.reason,
                owner: r.owner,
                expires: r.expires,
            },
            RuleKind::Timestamp(rule),
            paths,
        );
    }
    for (n, t) in raw.null_missing.into_iter().enumerate() {
        let span = t.span();
        let line = line_col(b.sink.source, span.start).0;
        let r = t.into_inner();
        let paths = b.paths("null_missing", &r.paths, &span);
        b.push(
            "null_missing",
            n,
            line,
            Common {
                name: r.name,
                reason: r.reason,
                owner: r.owner,
                expires: r.expires,
            },
            RuleKind::NullMissing,
            paths,
        );
    }
    for (n, t) in raw.string.into_iter().enumerate() {
        let span = t.span();
        let line = line_col(b.sink.source, span.start).0;
        let r = t.into_inner();
        let paths = b.paths("string", &r.paths, &span);
        let pattern = r
            .pattern
            .as_ref()
            .and_then(|p| match Regex::new(p.get_ref()) {
                Ok(re) => Some(re),
                Err(e) => {
                    let msg = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("invalid regex")
                        .trim()
                        .to_owned();
                    b.sink.invalid(
                        span_of(p),
                        "string.pattern",
                        format!("bad regex `{}`: {msg}", p.get_ref()),
                        "fix the regular expression (Rust regex syntax)",
                    );
                    None
                }
            });
        if r.replace.is_some() && r.pattern.is_none() {
            b.sink.invalid(
                span.clone(),
                "string.replace",
                "`replace` without `pattern`".into(),
                "add pattern = \"<regex>\" or remove `replace`",
            );
        }
        let rule = StringRule {
            trim: r.trim,
            case_insensitive: r.case_insensitive,
            pattern,
            replace: r.replace.unwrap_or_default(),
        };
        b.push(
            "string",
            n,
            line,
            Common {
                name: r.name,
                reason: r.reason,
                owner: r.owner,
                expires: r.expires,
            },
            RuleKind::String(rule),
            paths,
        );
    }
    for (n, t) in raw.value_map.into_iter().enumerate() {
        let span = t.span();
        let line = line_col(b.sink.source, span.start).0;
        let r = t.into_inner();
        let paths = b.paths("value_map", &r.paths, &span);
        let map: BTreeMap<String, serde_json::Value> = r.map;
        b.push(
            "value_map",
            n,
            line,
            Common {
                name: r.name,
                reason: r.reason,
                owner: r.owner,
                expires: r.expires,
            },
            RuleKind::ValueMap(ValueMap { map }),
            paths,
        );
    }
    for (n, t) in raw.rename.into_iter().enumerate() {
        let span = t.span();
        let line = line_col(b.sink.source, span.start).0;
        let r = t.into_inner();
        let legacy = b.rename_path(&r.legacy, "rename.legacy");
        let candidate = b.rename_path(&r.candidate, "rename.candidate");
        let common = Common {
            name: r.name,
            reason: r.reason,
            owner: r.owner,
            expires: r.expires,
        };
        if let (Some(l), Some(c)) = (legacy, candidate) {
            if l.single_wildcards() != c.single_wildcards() {
                b.sink.invalid(
                    span_of(&r.candidate),
                    "rename.candidate",
                    format!(
                        "`{c}` has {} `*` but `{l}` has {}",
                        c.single_wildcards(),
                        l.single_wildcards()
                    ),
                    "use the same number of `*` segments on both sides",
                );
            }
            let idx = b.push(
                "rename",
                n,
                line,
                common,
                RuleKind::Rename(Rename {
                    legacy: l.clone(),
                    candidate: c,
                }),
                vec![l],
            );
            b.set.renames.push(idx);
        }
    }
    b.set
}

/// Rejects strftime strings chrono cannot use.
fn check_format(fmt: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if fmt.trim().is_empty() {
        return Err("empty timestamp format".into());
    }
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        return Err(format!("`{fmt}` is not a valid strftime format"));
    }
    Ok(())
}

/// Fields every rule table shares.
struct Common {
    name: Option<Spanned<String>>,
    reason: Option<String>,
    owner: Option<String>,
    expires: Option<Spanned<String>>,
}

struct Builder<'s, 'a> {
    sink: &'s mut ErrorSink<'a>,
    set: RuleSet,
    names: HashSet<String>,
    default_owner: Option<String>,
}

impl Builder<'_, '_> {
    fn paths(
        &mut self,
        table: &str,
        raw: &[Spanned<String>],
        table_span: &Range<usize>,
    ) -> Vec<PathPattern> {
        let key = format!("{table}.paths");
        if raw.is_empty() {
            self.sink.invalid(
                table_span.clone(),
                &key,
                "the rule lists no paths".into(),
                "add paths = [\"/field\"] or remove the rule",
            );
        }
        raw.iter()
            .filter_map(|p| match PathPattern::parse(p.get_ref()) {
                Ok(pattern) => Some(pattern),
                Err(e) => {
                    self.sink.invalid(p.span(), &key, e.to_string(), "write a JSON pointer such as \"/items/*/price\" (`*` one segment, `**` any depth)");
                    None
                }
            })
            .collect()
    }

    fn rename_path(&mut self, raw: &Spanned<String>, key: &str) -> Option<PathPattern> {
        match PathPattern::parse(raw.get_ref()) {
            Ok(p) if p.has_deep_wildcard() => {
                self.sink.invalid(
                    raw.span(),
                    key,
                    format!("`{p}` uses `**`"),
                    "renames may use `*` but not `**`",
                );
                None
            }
            Ok(p) if p.literal_segments().last().is_none_or(|s| s.is_none()) => {
                self.sink.invalid(
                    raw.span(),
                    key,
                    format!("`{p}` does not end in a field name"),
                    "end the path with the field being renamed",
                );
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                self.sink.invalid(
                    raw.span(),
                    key,
                    e.to_string(),
                    "write a JSON pointer such as \"/customer/id\"",
                );
                None
            }
        }
    }

    fn push(
        &mut self,
        table: &str,
        n: usize,
        line: usize,
        common: Common,
        kind: RuleKind,
        paths: Vec<PathPattern>,
    ) -> usize {
        let name = match &common.name {
            Some(s) => {
                let name = s.get_ref().trim().to_owned();
                if name.is_empty() || !self.names.insert(name.clone()) {
                    self.sink.invalid(
                        s.span(),
                        &format!("{table}.name"),
                        format!("rule name `{name}` is empty or already used"),
                        "give every rule a unique, non-empty name",
                    );
                }
                name
            }
            None => {
                let name = if table == "owned" {
                    "owned".to_owned()
                } else {
                    format!("{table}[{n}]")
                };
                self.names.insert(name.clone());
                name
            }
        };
        let expires = common.expires.as_ref().and_then(|e| {
            match NaiveDate::parse_from_str(e.get_ref().trim(), "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(err) => {
                    self.sink.invalid(
                        e.span(),
                        &format!("{table}.expires"),
                        format!("`{}` is not a date: {err}", e.get_ref()),
                        "write the date as \"YYYY-MM-DD\", e.g. expires = \"2026-06-30\"",
                    );
                    None
                }
            }
        });
        let idx = self.set.rules.len();
        if !matches!(kind, RuleKind::Rename(_)) {
            for p in &paths {
                self.set.patterns.push(p.clone());
                self.set.pattern_rule.push(idx);
            }
        }
        self.set.rules.push(Rule {
            name,
            kind,
            paths,
            owner: common.owner.or_else(|| self.default_owner.clone()),
            expires,
            reason: common.reason,
            line,
        });
        idx
    }
}
