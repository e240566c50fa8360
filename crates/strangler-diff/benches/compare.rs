//! Throughput of `compare` (parse + normalise + compare) against parsing both bodies alone.
//!
//! Documents are order summaries in the legacy and the new shape, with every rule of
//! `shadow-rules/orders.toml` active (renames, key-matched items, money and timestamp
//! equivalence, ignores, value maps) and a few real differences. Run with
//! `cargo bench -p strangler-diff --bench compare` (see deploy/bench-diff.sh).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strangler_diff::{CompareInput, HttpAnswer, RuleSet, Verdict, compare};

const RULES: &str = include_str!("../../../shadow-rules/orders.toml");

/// Builds a legacy and a new order with `items` line items.
fn orders(items: usize) -> (Value, Value) {
    let mut legacy_items = Vec::with_capacity(items);
    let mut new_items = Vec::with_capacity(items);
    for i in 0..items {
        let price = 1.0 + (i % 97) as f64 * 0.25;
        let qty = 1 + i % 5;
        legacy_items.push(json!({
            "sku": format!("SKU-{i:06}"), "quantity": qty, "price": format!("{price:.2}"),
            "internal_ref": format!("WH-{}", i * 7), "description": "Stainless steel widget, 40mm",
        }));
        // the new path returns items in reverse order; a few prices really differ
        let new_price = if i % 50 == 7 { price + 1.0 } else { price };
        new_items.push(json!({
            "sku": format!("SKU-{i:06}"), "qty": qty, "price": new_price,
            "description": "Stainless steel widget, 40mm",
        }));
    }
    new_items.reverse();
    let legacy = json!({
        "id": "ord-1001", "cust_id": "cus-7", "status": "open", "subtotal": "1234.50",
        "tax": "246.90", "total": "1481.40", "currency": " eur ", "request_id": "req-abc",
        "created_at": "2024-03-01 10:00:00.123456", "updated_at": "2024-03-02 08:30:00.000000",
        "coupon": null, "items": legacy_items,
    });
    let candidate = json!({
        "id": "ord-1001", "customer_id": "cus-7", "status": "processing", "subtotal": 1234.5,
        "tax": 246.9, "total": 1481.4, "currency": "EUR",
        "created_at": "2024-03-01T10:00:00.123Z", "updated_at": "2024-03-02T08:30:00Z",
        "items": new_items,
    });
    (legacy, candidate)
}

/// Smallest item count whose legacy body reaches `bytes`.
fn sized(bytes: usize) -> (Vec<u8>, Vec<u8>) {
    let (mut lo, mut hi) = (1usize, 1usize);
    while serde_json::to_vec(&orders(hi).0).unwrap().len() < bytes {
        lo = hi;
        hi *= 2;
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if serde_json::to_vec(&orders(mid).0).unwrap().len() < bytes {
            lo = mid + 1
        } else {
            hi = mid
        }
    }
    let (l, c) = orders(lo);
    (
        serde_json::to_vec(&l).unwrap(),
        serde_json::to_vec(&c).unwrap(),
    )
}

/// Runs `f` repeatedly for at least `budget`; returns seconds per call.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let mut iters = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget || iters < 5 {
        f();
        iters += 1;
    }
    start.elapsed().as_secs_f64() / iters as f64
}

fn main() {
    let budget_ms = std::env::var("BENCH_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let budget = Duration::from_millis(budget_ms);
    let rules = RuleSet::parse(RULES, "shadow-rules/orders.toml").expect("orders rules parse");
    println!(
        "| document | legacy+new bytes | parse only (µs) | parse+compare (µs) | comparisons/s | MB/s (both bodies) | ratio | differences |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, target) in [
        ("2 KB", 2 * 1024),
        ("20 KB", 20 * 1024),
        ("1 MB", 1024 * 1024),
    ] {
        let (lb, cb) = sized(target);
        let legacy = HttpAnswer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: lb,
        };
        let candidate = HttpAnswer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: cb,
        };
        let bytes = legacy.body.len() + candidate.body.len();
        let parse = time(budget, || {
            let l: Value = serde_json::from_slice(black_box(&legacy.body)).unwrap();
            let c: Value = serde_json::from_slice(black_box(&candidate.body)).unwrap();
            black_box((l, c));
        });
        let mut last = None;
        let full = time(budget, || {
            let input = CompareInput {
                legacy: black_box(&legacy),
                candidate: black_box(&candidate),
                candidate_watermark: None,
            };
            last = Some(black_box(compare(input, &rules)));
        });
        let result = last.expect("ran at least once");
        assert_eq!(
            result.verdict,
            Verdict::Mismatch,
            "the injected differences must be found"
        );
        println!(
            "| {label} | {bytes} | {:.1} | {:.1} | {:.0} | {:.1} | {:.2} | {} |",
            parse * 1e6,
            full * 1e6,
            1.0 / full,
            bytes as f64 / full / 1e6,
            full / parse,
            result.differences.len()
        );
    }
}
