//! Arbitrary bytes split in two JSON documents: comparing must never panic, a document must
//! equal itself, and swapping sides must swap missing and extra.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use strangler_diff::{RuleSet, compare_json};

const RULES: &str = include_str!("../../shadow-rules/orders.toml");

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let split = usize::from(data[0]) % data.len().max(1);
    let body = &data[1..];
    let split = split.min(body.len());
    let (a, b) = body.split_at(split);
    let (Ok(a), Ok(b)) = (serde_json::from_slice::<Value>(a), serde_json::from_slice::<Value>(b)) else {
        return;
    };
    let orders = RuleSet::parse(RULES, "orders.toml").expect("committed rules parse");
    for set in [RuleSet::empty(), orders] {
        let _ = compare_json(&a, &b, &set);
        assert!(compare_json(&a, &a, &set).is_empty(), "a document must equal itself");
    }
    let empty = RuleSet::empty();
    let mut forward: Vec<_> = compare_json(&a, &b, &empty).into_iter().map(|d| (d.path, d.kind)).collect();
    let mut backward: Vec<_> = compare_json(&b, &a, &empty).into_iter().map(|d| (d.path, d.kind.swapped())).collect();
    forward.sort();
    backward.sort();
    assert_eq!(forward, backward);
});
