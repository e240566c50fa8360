//! Properties of the comparison that must hold for every document.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use strangler_diff::normalize::{NumberRule, Precision, StringRule, TimestampRule};
use strangler_diff::{Difference, RuleSet, compare_json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-c]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]{1,2}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn sorted(mut d: Vec<Difference>) -> Vec<(String, String, Option<Value>, Option<Value>)> {
    d.sort_by(|a, b| a.path.cmp(&b.path).then(a.kind.cmp(&b.kind)));
    d.into_iter()
        .map(|d| (d.path, d.kind.as_str().to_owned(), d.legacy, d.candidate))
        .collect()
}

fn reversed_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m.iter().rev() {
                out.insert(k.clone(), reversed_keys(x));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(reversed_keys).collect()),
        other => other.clone(),
    }
}

fn rule_set() -> RuleSet {
    RuleSet::parse(
        "[[ignore]]\npaths = [\"/a/**\"]\n[[array]]\npaths = [\"/b\"]\nmatch = \"set\"\n[[number]]\npaths = [\"/**\"]\nabs_tolerance = 0.5\n[[null_missing]]\npaths = [\"/**\"]\n[[string]]\npaths = [\"/**\"]\ntrim = true\ncase_insensitive = true\n",
        "props.toml",
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_document_equals_itself(doc in arb_json()) {
        prop_assert!(compare_json(&doc, &doc, &RuleSet::empty()).is_empty());
        prop_assert!(compare_json(&doc, &doc, &rule_set()).is_empty());
    }

    #[test]
    fn swapping_sides_swaps_missing_and_extra(a in arb_json(), b in arb_json()) {
        for set in [RuleSet::empty(), rule_set()] {
            let forward = compare_json(&a, &b, &set);
            let backward: Vec<Difference> = compare_json(&b, &a, &set).iter().map(Difference::swapped).collect();
            let (f, r) = (sorted(forward), sorted(backward));
            // paths and kinds always agree; values too except inside set-matched arrays,
            // where which element is "missing" depends on greedy pairing order
            let fk: Vec<_> = f.iter().map(|x| (&x.0, &x.1)).collect();
            let rk: Vec<_> = r.iter().map(|x| (&x.0, &x.1)).collect();
            prop_assert_eq!(fk, rk);
        }
    }

    #[test]
    fn object_key_order_never_matters(a in arb_json(), b in arb_json()) {
        for set in [RuleSet::empty(), rule_set()] {
            let base = sorted(compare_json(&a, &b, &set));
            let shuffled = sorted(compare_json(&reversed_keys(&a), &reversed_keys(&b), &set));
            prop_assert_eq!(base, shuffled);
        }
    }

    #[test]
    fn differing_documents_are_noticed(a in arb_json(), b in arb_json()) {
        let diffs = compare_json(&a, &b, &RuleSet::empty());
        prop_assert_eq!(diffs.is_empty(), a == b || numerically_equal(&a, &b));
    }

    #[test]
    fn number_normalizer_is_idempotent(x in -1e9f64..1e9, scale in 0u32..6, s in any::<bool>()) {
        let rule = NumberRule { scale: Some(scale), abs_tolerance: 0.0, rel_tolerance: 0.0, parse_strings: s };
        for v in [json!(x), json!(x.to_string())] {
            let once = rule.normalize(&v);
            prop_assert_eq!(rule.normalize(&once), once.clone());
            prop_assert!(rule.equivalent(&v, &once) || !s && v.is_string());
        }
    }

    #[test]
    fn timestamp_normalizer_is_idempotent(secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000, p in 0usize..5, fmt in 0usize..3) {
        let t = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
        let text = match fmt {
            0 => t.to_rfc3339(),
            1 => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            _ => t.with_timezone(&chrono::FixedOffset::east_opt(-5 * 3600).unwrap()).to_rfc3339(),
        };
        let truncate = [None, Some(Precision::Minutes), Some(Precision::Seconds), Some(Precision::Millis), Some(Precision::Micros)][p];
        let rule = TimestampRule { truncate, ..TimestampRule::default() };
        let once = rule.normalize(&json!(text));
        prop_assert!(once.is_string());
        prop_assert_eq!(rule.normalize(&once), once.clone());
        prop_assert!(rule.equivalent(&json!(text), &once));
    }

    #[test]
    fn string_normalizer_is_idempotent(s in "\\PC{0,12}", trim in any::<bool>(), ci in any::<bool>()) {
        let rule = StringRule { trim, case_insensitive: ci, pattern: Some(regex::Regex::new("[0-9]+").unwrap()), replace: String::new() };
        let once = rule.normalize(&json!(s));
        prop_assert_eq!(rule.normalize(&once), once);
    }
}

fn numerically_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) => p == q,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| numerically_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| numerically_equal(p, q)))
        }
        _ => a == b,
    }
}
