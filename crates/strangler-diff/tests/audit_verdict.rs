//! Verdicts, fingerprints and the rule audit over a stream of comparisons.

use chrono::NaiveDate;
use serde_json::json;
use strangler_diff::{
    CompareInput, HttpAnswer, RuleAudit, RuleSet, Side, Verdict, Watermark, compare,
};

const RULES: &str = r#"
capability = "orders"
[freshness]
legacy_changed_at = "/version"
[[ignore]]
name = "request-id"
paths = ["/request_id"]
owner = "orders-team"
expires = "2024-06-30"
[[number]]
name = "money"
paths = ["/total"]
abs_tolerance = 0.01
[[ignore]]
name = "never-used"
paths = ["/nothing_here"]
"#;

fn run(
    set: &RuleSet,
    l: serde_json::Value,
    c: serde_json::Value,
    wm: Option<Watermark>,
) -> strangler_diff::Comparison {
    let (a, b) = (HttpAnswer::json(200, &l), HttpAnswer::json(200, &c));
    compare(
        CompareInput {
            legacy: &a,
            candidate: &b,
            candidate_watermark: wm,
        },
        set,
    )
}

#[test]
fn audit_counts_changed_verdicts_forgiven_diffs_and_hidden_share() {
    let set = RuleSet::parse(RULES, "orders.toml").unwrap();
    let mut audit = RuleAudit::new(&set);
    // 1: only the request id differs -> match thanks to `request-id`
    let c1 = run(
        &set,
        json!({"request_id": "a", "total": 1.0, "x": 1}),
        json!({"request_id": "b", "total": 1.0, "x": 1}),
        None,
    );
    assert_eq!(c1.verdict, Verdict::Match);
    assert!(
        (c1.hidden_share - 1.0 / 3.0).abs() < 1e-9,
        "{}",
        c1.hidden_share
    );
    // 2: request id and total within tolerance -> match thanks to both
    let c2 = run(
        &set,
        json!({"request_id": "a", "total": 1.0}),
        json!({"request_id": "b", "total": 1.005}),
        None,
    );
    assert_eq!(c2.verdict, Verdict::Match);
    // 3: a real difference remains -> no rule changed the verdict, though one forgave
    let c3 = run(
        &set,
        json!({"request_id": "a", "x": 1}),
        json!({"request_id": "b", "x": 2}),
        None,
    );
    assert_eq!(c3.verdict, Verdict::Mismatch);
    // 4: identical ids -> the ignore rule hid a leaf but forgave nothing
    let c4 = run(
        &set,
        json!({"request_id": "a"}),
        json!({"request_id": "a"}),
        None,
    );
    for c in [&c1, &c2, &c3, &c4] {
        audit.observe(c);
    }
    audit.observe(&strangler_diff::Comparison::error(
        &set,
        Side::Candidate,
        "timeout",
    ));
    let report = audit.report(NaiveDate::from_ymd_opt(2024, 7, 1).unwrap());
    assert_eq!((report.comparisons, report.not_compared), (4, 1));
    let by = |n: &str| report.rules.iter().find(|r| r.name == n).unwrap().clone();
    let rid = by("request-id");
    assert_eq!((rid.comparisons_changed, rid.diffs_forgiven), (2, 3));
    // leaves: c1 3, c2 2, c3 2, c4 1 = 8; request_id hidden in all four
    assert!(
        (rid.hidden_share - 4.0 / 8.0).abs() < 1e-9,
        "{}",
        rid.hidden_share
    );
    let money = by("money");
    assert_eq!(
        (
            money.comparisons_changed,
            money.diffs_forgiven,
            money.hidden_share
        ),
        (1, 1, 0.0)
    );
    let warned: Vec<_> = report.warnings.iter().map(|w| w.rule.as_str()).collect();
    assert_eq!(
        warned,
        vec!["request-id", "never-used"],
        "{:#?}",
        report.warnings
    );
    assert!(report.warnings[0].message.contains("expired on 2024-06-30"));
    // the same audit a day before expiry warns only about the unused rule
    let early = audit.report(NaiveDate::from_ymd_opt(2024, 6, 30).unwrap());
    assert_eq!(early.warnings.len(), 1);
    assert!(
        serde_json::to_string(&report)
            .unwrap()
            .contains("\"comparisons_changed\":2")
    );
}

#[test]
fn verdicts_for_failures_staleness_and_offsets() {
    let set = RuleSet::parse(RULES, "orders.toml").unwrap();
    let ok = HttpAnswer::json(200, &json!({"version": 10}));
    let broken = HttpAnswer {
        status: 503,
        headers: vec![],
        body: b"down".to_vec(),
    };
    let c = compare(
        CompareInput {
            legacy: &ok,
            candidate: &broken,
            candidate_watermark: None,
        },
        &set,
    );
    assert_eq!(
        c.verdict,
        Verdict::Error {
            side: Side::Candidate,
            reason: "candidate answered 503".into()
        }
    );
    let c = compare(
        CompareInput {
            legacy: &broken,
            candidate: &ok,
            candidate_watermark: None,
        },
        &set,
    );
    assert!(matches!(
        c.verdict,
        Verdict::Error {
            side: Side::Legacy,
            ..
        }
    ));
    // the legacy shows version 12; the projection had applied offset 11 -> stale, 12 -> mismatch
    let behind = run(
        &set,
        json!({"version": 12, "x": 1}),
        json!({"version": 11, "x": 0}),
        Watermark::parse("11"),
    );
    assert_eq!(
        behind.verdict,
        Verdict::Stale {
            legacy_changed_at: "12".into(),
            candidate_watermark: "11".into()
        }
    );
    let caught_up = run(
        &set,
        json!({"version": 12, "x": 1}),
        json!({"version": 12, "x": 0}),
        Watermark::parse("12"),
    );
    assert_eq!(caught_up.verdict, Verdict::Mismatch);
    // no difference -> match, whatever the watermark
    let same = run(
        &set,
        json!({"version": 12}),
        json!({"version": 12}),
        Watermark::parse("1"),
    );
    assert_eq!(same.verdict, Verdict::Match);
    let skipped = strangler_diff::Comparison::skipped(&set, "POST is not mirrored");
    assert_eq!(skipped.verdict.as_str(), "skipped");
    let text = serde_json::to_value(&behind.verdict).unwrap();
    assert_eq!(text["verdict"], "stale");
}

#[test]
fn fingerprints_are_stable_and_group_by_shape() {
    let set = RuleSet::parse(RULES, "orders.toml").unwrap();
    let a = run(
        &set,
        json!({"items": [{"p": 1}, {"p": 2}]}),
        json!({"items": [{"p": 1}, {"p": 3}]}),
        None,
    );
    let b = run(
        &set,
        json!({"items": [{"p": 5}]}),
        json!({"items": [{"p": 6}]}),
        None,
    );
    assert_eq!(a.fingerprints.len(), 1);
    assert_eq!(a.fingerprints[0].id, b.fingerprints[0].id);
    assert_eq!(a.fingerprints[0].path, "/items/*/p");
    // Golden value: FNV-1a over "orders\0/items/*/p\0value\0number->number\0". A change here
    // regroups every stored mismatch, so it must be deliberate.
    // (computed independently with a Python FNV-1a.)
    assert_eq!(a.fingerprints[0].id.to_string(), "ce53ab10557416e5");
    assert_eq!(
        serde_json::to_value(a.fingerprints[0].id).unwrap(),
        json!(a.fingerprints[0].id.to_string())
    );
}
