//! The committed `shadow-rules/orders.toml` against realistic legacy and new order answers.

use std::path::Path;

use serde_json::{Value, json};
use strangler_diff::{
    CompareInput, DiffKind, HttpAnswer, RuleSet, Verdict, Watermark, compare, compare_json,
};

fn orders_rules() -> RuleSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shadow-rules/orders.toml");
    RuleSet::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn legacy_order() -> Value {
    json!({
        "id": "ord-1001",
        "cust_id": "cus-7",
        "status": "open",
        "subtotal": "40.00",
        "tax": "8.00",
        "total": "48.00",
        "currency": " eur ",
        "created_at": "2024-03-01 10:00:00.123456",
        "updated_at": "2024-03-02 08:30:00.000000",
        "request_id": "req-abc",
        "legacy_flags": 3,
        "coupon": null,
        "items": [
            { "sku": "B-2", "quantity": 1, "price": "15.00", "internal_ref": "WH-9" },
            { "sku": "A-1", "quantity": 2, "price": "12.50", "internal_ref": "WH-3" }
        ]
    })
}

fn new_order() -> Value {
    json!({
        "id": "ord-1001",
        "customer_id": "cus-7",
        "status": "processing",
        "subtotal": 40,
        "tax": 8.0,
        "total": 48.001,
        "currency": "EUR",
        "created_at": "2024-03-01T10:00:00.123Z",
        "updated_at": "2024-03-02T08:30:00Z",
        "items": [
            { "sku": "A-1", "qty": 2, "price": 12.5 },
            { "sku": "B-2", "qty": 1, "price": 15 }
        ]
    })
}

#[test]
fn equivalent_orders_match_under_the_committed_rules() {
    let rules = orders_rules();
    assert_eq!(rules.capability(), Some("orders"));
    let diffs = compare_json(&legacy_order(), &new_order(), &rules);
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
fn either_shape_compared_with_itself_matches() {
    // Found by the compare_json fuzz target: renames must not fire when the candidate
    // kept the legacy field name.
    let rules = orders_rules();
    assert!(compare_json(&legacy_order(), &legacy_order(), &rules).is_empty());
    assert!(compare_json(&new_order(), &new_order(), &rules).is_empty());
}

#[test]
fn without_rules_the_same_orders_differ_widely() {
    let diffs = compare_json(&legacy_order(), &new_order(), &RuleSet::empty());
    assert!(diffs.len() > 10, "{diffs:#?}");
}

#[test]
fn real_regressions_are_still_caught() {
    let rules = orders_rules();
    let mut wrong = new_order();
    wrong["total"] = json!(48.10);
    wrong["items"][0]["qty"] = json!(3);
    wrong["status"] = json!("cancelled");
    let mut paths: Vec<_> = compare_json(&legacy_order(), &wrong, &rules)
        .into_iter()
        .map(|d| (d.path, d.kind))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            ("/items/1/qty".to_owned(), DiffKind::Value),
            ("/status".to_owned(), DiffKind::Value),
            // a numeric string against a number that no rule reconciles stays a type difference
            ("/total".to_owned(), DiffKind::Type),
        ]
    );
}

#[test]
fn stale_when_the_projection_has_not_seen_the_legacy_change() {
    let rules = orders_rules();
    let legacy = HttpAnswer::json(200, &legacy_order());
    let mut behind = new_order();
    behind["status"] = json!("dispatched");
    let candidate = HttpAnswer::json(200, &behind);
    let before = Watermark::parse("2024-03-02T08:00:00Z");
    let after = Watermark::parse("2024-03-02T09:00:00Z");
    let stale = compare(
        CompareInput {
            legacy: &legacy,
            candidate: &candidate,
            candidate_watermark: before,
        },
        &rules,
    );
    assert!(
        matches!(stale.verdict, Verdict::Stale { .. }),
        "{:?}",
        stale.verdict
    );
    let late = compare(
        CompareInput {
            legacy: &legacy,
            candidate: &candidate,
            candidate_watermark: after,
        },
        &rules,
    );
    assert_eq!(late.verdict, Verdict::Mismatch);
    let unknown = compare(
        CompareInput {
            legacy: &legacy,
            candidate: &candidate,
            candidate_watermark: None,
        },
        &rules,
    );
    assert_eq!(unknown.verdict, Verdict::Mismatch);
}
