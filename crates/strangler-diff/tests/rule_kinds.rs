//! Each rule kind: what it forgives, and what it still catches.

use serde_json::{Value, json};
use strangler_diff::{DiffKind, RuleSet, compare_json, compare_json_report};

fn rules(src: &str) -> RuleSet {
    RuleSet::parse(src, "kinds.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn kinds(legacy: Value, candidate: Value, set: &RuleSet) -> Vec<(String, DiffKind)> {
    let mut out: Vec<_> = compare_json(&legacy, &candidate, set)
        .into_iter()
        .map(|d| (d.path, d.kind))
        .collect();
    out.sort();
    out
}

fn one(path: &str, kind: DiffKind) -> Vec<(String, DiffKind)> {
    vec![(path.to_owned(), kind)]
}

#[test]
fn ignore_hides_wildcard_paths_only() {
    let set =
        rules("[[ignore]]\npaths = [\"/request_id\", \"/items/*/internal_ref\", \"/debug/**\"]\n");
    let l = json!({"request_id": "a", "debug": {"x": 1}, "items": [{"internal_ref": 1, "p": 1}]});
    let c = json!({"request_id": "b", "debug": {"x": 2, "y": 3}, "items": [{"internal_ref": 2, "p": 1}]});
    assert!(kinds(l.clone(), c.clone(), &set).is_empty());
    let mut c2 = c;
    c2["items"][0]["p"] = json!(2);
    assert_eq!(kinds(l, c2, &set), one("/items/0/p", DiffKind::Value));
    // the deep wildcard also forgives extra keys below it, and the report counts what was hidden
    let report = compare_json_report(
        &json!({"debug": {"a": 1}}),
        &json!({"debug": {"b": 1}}),
        &set,
    );
    assert!(report.differences.is_empty());
    assert_eq!(report.forgiven, vec![1]);
    assert_eq!(report.hidden, vec![1]);
}

#[test]
fn arrays_as_sets_forgive_order_not_content() {
    let set = rules("[[array]]\npaths = [\"/tags\"]\nmatch = \"set\"\n");
    assert!(
        kinds(
            json!({"tags": ["a", "b", "c"]}),
            json!({"tags": ["c", "a", "b"]}),
            &set
        )
        .is_empty()
    );
    assert_eq!(
        kinds(
            json!({"tags": ["a", "b"]}),
            json!({"tags": ["b", "x"]}),
            &set
        ),
        vec![
            ("/tags/0".to_owned(), DiffKind::Missing),
            ("/tags/1".to_owned(), DiffKind::Extra),
        ]
    );
    // duplicates count: a multiset, not a set
    assert_eq!(
        kinds(json!({"tags": ["a", "a"]}), json!({"tags": ["a"]}), &set),
        one("/tags/1", DiffKind::Missing)
    );
}

#[test]
fn without_a_rule_reordering_is_one_order_only_difference() {
    let diffs = kinds(
        json!({"tags": ["a", "b", "c"]}),
        json!({"tags": ["c", "a", "b"]}),
        &RuleSet::empty(),
    );
    assert_eq!(diffs, one("/tags", DiffKind::OrderOnly));
    assert_eq!(
        kinds(json!([1, 2]), json!([1, 2, 3]), &RuleSet::empty()),
        one("", DiffKind::ArrayLength)
    );
}

#[test]
fn arrays_by_key_pair_elements_and_compare_inside() {
    let set = rules("[[array]]\npaths = [\"/items\"]\nmatch = \"key\"\nkey = \"id\"\n");
    let l = json!({"items": [{"id": 1, "q": 1}, {"id": 2, "q": 5}]});
    assert!(
        kinds(
            l.clone(),
            json!({"items": [{"id": 2, "q": 5}, {"id": 1, "q": 1}]}),
            &set
        )
        .is_empty()
    );
    let c = json!({"items": [{"id": 2, "q": 6}, {"id": 3, "q": 1}]});
    assert_eq!(
        kinds(l, c, &set),
        vec![
            ("/items/0".to_owned(), DiffKind::Missing),
            ("/items/1".to_owned(), DiffKind::Extra),
            ("/items/1/q".to_owned(), DiffKind::Value),
        ]
    );
}

#[test]
fn numbers_default_to_numeric_equality_and_strict_mode_reports_types() {
    assert!(kinds(json!({"n": 1}), json!({"n": 1.0}), &RuleSet::empty()).is_empty());
    assert_eq!(
        kinds(json!({"n": 1}), json!({"n": 2}), &RuleSet::empty()),
        one("/n", DiffKind::Value)
    );
    let strict = rules("numbers = \"strict\"\n");
    assert_eq!(
        kinds(json!({"n": 1}), json!({"n": 1.0}), &strict),
        one("/n", DiffKind::Type)
    );
    let forgiving = rules("numbers = \"strict\"\n[[number]]\npaths = [\"/n\"]\n");
    assert!(kinds(json!({"n": 1}), json!({"n": 1.0}), &forgiving).is_empty());
    // large integers compare exactly, not through f64
    assert_eq!(
        kinds(
            json!({"n": 9007199254740993u64}),
            json!({"n": 9007199254740992u64}),
            &RuleSet::empty()
        ),
        one("/n", DiffKind::Value)
    );
}

#[test]
fn number_rule_scale_tolerance_and_numeric_strings() {
    let set = rules(
        "[[number]]\npaths = [\"/price\"]\nscale = 2\nparse_strings = true\n[[number]]\npaths = [\"/weight\"]\nrel_tolerance = 0.01\n",
    );
    assert!(
        kinds(
            json!({"price": "12.50", "weight": 100}),
            json!({"price": 12.5, "weight": 100.9}),
            &set
        )
        .is_empty()
    );
    assert_eq!(
        kinds(json!({"price": "12.50"}), json!({"price": 12.51}), &set),
        one("/price", DiffKind::Type)
    );
    assert_eq!(
        kinds(json!({"weight": 100}), json!({"weight": 102}), &set),
        one("/weight", DiffKind::Value)
    );
    assert_eq!(
        kinds(json!({"other": "1"}), json!({"other": 1}), &set),
        one("/other", DiffKind::Type)
    );
}

#[test]
fn timestamp_rule_zone_precision_and_tolerance() {
    let set = rules(
        "[[timestamp]]\npaths = [\"/at\"]\ntruncate = \"seconds\"\n[[timestamp]]\npaths = [\"/seen\"]\ntolerance_ms = 2000\n",
    );
    let l = json!({"at": "2024-03-01 10:00:00.999", "seen": "2024-03-01T10:00:00Z"});
    let c = json!({"at": "2024-03-01T11:00:00+01:00", "seen": "2024-03-01T10:00:01.500Z"});
    assert!(kinds(l.clone(), c.clone(), &set).is_empty());
    let mut late = c;
    late["at"] = json!("2024-03-01T10:00:01Z");
    late["seen"] = json!("2024-03-01T10:00:03Z");
    assert_eq!(
        kinds(l, late, &set),
        vec![
            ("/at".to_owned(), DiffKind::Value),
            ("/seen".to_owned(), DiffKind::Value)
        ]
    );
}

#[test]
fn null_versus_missing() {
    assert_eq!(
        kinds(json!({"a": null}), json!({}), &RuleSet::empty()),
        one("/a", DiffKind::Missing)
    );
    let set = rules("[[null_missing]]\npaths = [\"/**\"]\n");
    assert!(kinds(json!({"a": null, "b": {"c": null}}), json!({"b": {}}), &set).is_empty());
    assert!(kinds(json!({}), json!({"a": null}), &set).is_empty());
    assert_eq!(
        kinds(json!({"a": 0}), json!({}), &set),
        one("/a", DiffKind::Missing)
    );
    assert_eq!(
        kinds(json!({"a": null}), json!({"a": 0}), &set),
        one("/a", DiffKind::Type)
    );
}

#[test]
fn string_trim_case_and_pattern() {
    let set = rules(
        "[[string]]\npaths = [\"/cur\"]\ntrim = true\ncase_insensitive = true\n[[string]]\npaths = [\"/ref\"]\npattern = \"^LEG-\"\n",
    );
    assert!(
        kinds(
            json!({"cur": " eur", "ref": "LEG-42"}),
            json!({"cur": "EUR", "ref": "42"}),
            &set
        )
        .is_empty()
    );
    assert_eq!(
        kinds(json!({"cur": "eur"}), json!({"cur": "usd"}), &set),
        one("/cur", DiffKind::Value)
    );
    assert_eq!(
        kinds(json!({"ref": "LEG-42"}), json!({"ref": "43"}), &set),
        one("/ref", DiffKind::Value)
    );
}

#[test]
fn value_map_translates_legacy_vocabulary_one_way() {
    let set = rules(
        "[[value_map]]\npaths = [\"/status\"]\nmap = { open = \"processing\", \"1\" = true }\n",
    );
    assert!(
        kinds(
            json!({"status": "open"}),
            json!({"status": "processing"}),
            &set
        )
        .is_empty()
    );
    assert!(kinds(json!({"status": 1}), json!({"status": true}), &set).is_empty());
    assert_eq!(
        kinds(json!({"status": "open"}), json!({"status": "open"}), &set),
        vec![],
        "identical still matches"
    );
    assert_eq!(
        kinds(json!({"status": "open"}), json!({"status": "closed"}), &set),
        one("/status", DiffKind::Value)
    );
    assert_eq!(
        kinds(
            json!({"status": "processing"}),
            json!({"status": "open"}),
            &set
        ),
        one("/status", DiffKind::Value)
    );
}

#[test]
fn renames_move_legacy_fields_including_inside_arrays() {
    let set = rules(
        "[[rename]]\nlegacy = \"/cust_id\"\ncandidate = \"/customer/id\"\n[[rename]]\nlegacy = \"/items/*/quantity\"\ncandidate = \"/items/*/qty\"\n",
    );
    let l = json!({"cust_id": 7, "items": [{"quantity": 1}, {"quantity": 2}]});
    let c = json!({"customer": {"id": 7}, "items": [{"qty": 1}, {"qty": 2}]});
    let report = compare_json_report(&l, &c, &set);
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    assert_eq!(report.forgiven, vec![1, 2]);
    let wrong = json!({"customer": {"id": 8}, "items": [{"qty": 1}, {"qty": 2}]});
    assert_eq!(kinds(l, wrong, &set), one("/customer/id", DiffKind::Value));
}

#[test]
fn owned_allow_list_compares_only_owned_fields() {
    let set = rules("[owned]\npaths = [\"/id\", \"/items/*/sku\"]\n");
    let l =
        json!({"id": 1, "legacy_only": true, "items": [{"sku": "a", "note": "x"}], "extra": [1]});
    let c = json!({"id": 1, "items": [{"sku": "a", "note": "y"}]});
    let report = compare_json_report(&l, &c, &set);
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    assert!(report.hidden[0] >= 3, "{report:?}");
    let wrong = json!({"id": 2, "items": [{"sku": "b"}]});
    assert_eq!(
        kinds(l, wrong, &set),
        vec![
            ("/id".to_owned(), DiffKind::Value),
            ("/items/0/sku".to_owned(), DiffKind::Value)
        ]
    );
}

#[test]
fn headers_and_status_are_compared_as_selected() {
    use strangler_diff::{CompareInput, HttpAnswer, Verdict, compare};
    let set = rules("[http]\nheaders = [\"Content-Type\"]\n");
    let mut a = HttpAnswer::json(200, &json!({"a": 1}));
    let mut b = a.clone();
    b.headers = vec![
        ("CONTENT-TYPE".into(), "application/json".into()),
        ("x-trace".into(), "t".into()),
    ];
    let c = compare(
        CompareInput {
            legacy: &a,
            candidate: &b,
            candidate_watermark: None,
        },
        &set,
    );
    assert_eq!(c.verdict, Verdict::Match, "{:?}", c.differences);
    b.headers[0].1 = "text/plain".into();
    b.status = 201;
    let c = compare(
        CompareInput {
            legacy: &a,
            candidate: &b,
            candidate_watermark: None,
        },
        &set,
    );
    let kinds: Vec<_> = c
        .differences
        .iter()
        .map(|d| (d.path.as_str(), d.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("@status", DiffKind::Status),
            ("@header/content-type", DiffKind::Header)
        ]
    );
    let no_status = rules("[http]\nstatus = false\n");
    let c = compare(
        CompareInput {
            legacy: &a,
            candidate: &b,
            candidate_watermark: None,
        },
        &no_status,
    );
    assert_eq!(c.verdict, Verdict::Match);
    a.body = b"plain\ntext\n".to_vec();
    let c = compare(
        CompareInput {
            legacy: &a,
            candidate: &b,
            candidate_watermark: None,
        },
        &no_status,
    );
    assert_eq!(c.differences[0].kind, DiffKind::Text);
    assert!(c.text_diff.as_deref().unwrap().contains("-plain"));
}
