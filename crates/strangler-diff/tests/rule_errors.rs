//! Rule-file errors: each names file, line, column, key and a fix; all are collected.

use strangler_diff::{RuleError, RuleSet};

fn errors(src: &str) -> Vec<RuleError> {
    match RuleSet::parse(src, "shadow-rules/test.toml") {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(e) => e.errors,
    }
}

fn assert_located(e: &RuleError, line: usize, column: usize, key: &str) {
    let text = e.to_string();
    assert_eq!(
        (e.line(), e.column(), e.key()),
        (line, column, key),
        "{text}"
    );
    assert!(
        text.starts_with(&format!("shadow-rules/test.toml:{line}:{column}: ")),
        "{text}"
    );
    assert!(text.contains(&format!("`{key}`")), "{text}");
    assert!(text.contains("fix: "), "{text}");
}

#[test]
fn unknown_key_is_reported_with_location_and_key() {
    let errs = errors("capability = \"orders\"\n[[number]]\npaths = [\"/total\"]\nscael = 2\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(matches!(errs[0], RuleError::UnknownKey { .. }));
    assert_located(&errs[0], 4, 1, "number.scael");
}

#[test]
fn unknown_top_level_key_is_reported() {
    let errs = errors("capabilty = \"orders\"\n");
    assert!(matches!(errs[0], RuleError::UnknownKey { .. }), "{errs:?}");
    assert_located(&errs[0], 1, 1, "capabilty");
}

#[test]
fn wrong_type_names_the_key() {
    let errs = errors("[[number]]\npaths = [\"/total\"]\nscale = \"two\"\n");
    assert!(matches!(errs[0], RuleError::WrongType { .. }), "{errs:?}");
    assert_located(&errs[0], 3, 9, "number.scale");
}

#[test]
fn unknown_enum_value_is_a_wrong_value() {
    let errs = errors("[[array]]\npaths = [\"/items\"]\nmatch = \"bag\"\n");
    assert!(matches!(errs[0], RuleError::WrongType { .. }), "{errs:?}");
    assert_located(&errs[0], 3, 9, "array.match");
    assert!(errs[0].to_string().contains("bag"));
}

#[test]
fn bad_path_points_at_the_string() {
    let errs = errors("[[ignore]]\npaths = [\"/ok\", \"items/*/x\", \"/it*ms\"]\n");
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_located(&errs[0], 2, 17, "ignore.paths");
    assert!(errs[0].to_string().contains("must start with '/'"));
    assert_located(&errs[1], 2, 30, "ignore.paths");
    assert!(errs[1].to_string().contains("whole segment"));
}

#[test]
fn bad_date_is_reported_and_unquoted_date_gets_a_hint() {
    let errs = errors("[[ignore]]\npaths = [\"/a\"]\nexpires = \"2026-13-01\"\n");
    assert_located(&errs[0], 3, 11, "ignore.expires");
    assert!(errs[0].to_string().contains("YYYY-MM-DD"));
    let errs = errors("[[ignore]]\npaths = [\"/a\"]\nexpires = 2026-06-30\n");
    assert!(matches!(errs[0], RuleError::WrongType { .. }), "{errs:?}");
    assert_located(&errs[0], 3, 11, "ignore.expires");
    assert!(errs[0].to_string().contains("quoted string"));
}

#[test]
fn bad_regex_and_bad_offset_are_reported() {
    let errs = errors(
        "[[string]]\npaths = [\"/a\"]\npattern = \"([a-z\"\n[[timestamp]]\npaths = [\"/t\"]\nnaive_offset = \"CET\"\n",
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    let keys: Vec<_> = errs.iter().map(|e| e.key().to_owned()).collect();
    assert!(
        keys.contains(&"string.pattern".to_owned())
            && keys.contains(&"timestamp.naive_offset".to_owned()),
        "{keys:?}"
    );
    let regex = errs.iter().find(|e| e.key() == "string.pattern").unwrap();
    assert_located(regex, 3, 11, "string.pattern");
}

#[test]
fn missing_required_key_is_reported() {
    let errs = errors("[[rename]]\nlegacy = \"/cust_id\"\n");
    assert!(matches!(errs[0], RuleError::MissingKey { .. }), "{errs:?}");
    assert_eq!(errs[0].key(), "rename.candidate");
    assert_eq!(errs[0].line(), 1);
}

#[test]
fn every_broken_table_is_reported_in_one_run() {
    let src = "capability = \"orders\"\n\
               [[ignore]]\npaths = [\"/a\"]\ncolour = 1\n\
               [[number]]\npaths = [\"/b\"]\nscale = -1\n\
               [[timestamp]]\npaths = [\"nope\"]\n\
               [[array]]\npaths = [\"/items\"]\nmatch = \"key\"\n";
    let errs = errors(src);
    let located: Vec<_> = errs
        .iter()
        .map(|e| (e.line(), e.key().to_owned()))
        .collect();
    assert_eq!(
        located,
        vec![
            (4, "ignore.colour".to_owned()),
            (7, "number.scale".to_owned()),
            (9, "timestamp.paths".to_owned()),
            (12, "array.key".to_owned()),
        ],
        "{errs:#?}"
    );
}

#[test]
fn duplicate_rule_names_and_syntax_errors_are_reported() {
    let errs = errors(
        "[[ignore]]\nname = \"x\"\npaths = [\"/a\"]\n[[ignore]]\nname = \"x\"\npaths = [\"/b\"]\n",
    );
    assert_located(&errs[0], 5, 8, "ignore.name");
    let errs = errors("capability = \"orders\"\n[[ignore]\n");
    assert!(matches!(errs[0], RuleError::Syntax { .. }), "{errs:?}");
    assert_eq!(errs[0].line(), 2);
}

#[test]
fn valid_file_parses_and_reports_expired_rules() {
    let set = RuleSet::parse(
        "capability = \"c\"\nowner = \"team\"\n[[ignore]]\nname = \"old\"\npaths = [\"/a\"]\nexpires = \"2024-01-31\"\n",
        "c.toml",
    )
    .unwrap();
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    assert!(
        set.expired(d("2024-01-31")).is_empty(),
        "valid through its expiry day"
    );
    let w = set.expired(d("2024-02-01"));
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].rule, "old");
    assert_eq!(w[0].location, "c.toml:3");
    assert_eq!(w[0].owner.as_deref(), Some("team"));
}
