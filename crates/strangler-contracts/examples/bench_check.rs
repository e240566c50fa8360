//! Cost of a contract check per event, beside the baseline every consumer pays anyway: parsing the
//! payload JSON. Three runs over the same payloads of the demo's `OrderPlaced` (repository
//! registry, `contracts/`): parse only; parse + check of current-version (v2) payloads (one
//! validation); parse + check of v1 payloads (inferred version: two validations, the upcast, and
//! the validation of the result). Prints events/s and the ratio to the baseline.
//!
//! `cargo run --release -p strangler-contracts --example bench_check -- [EVENTS]` (default
//! 200000), or deploy/bench-contracts.sh.

use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};
use strangler_contracts::{EventRef, Registry};

fn payload(i: usize, v2: bool) -> String {
    let currency = ["EUR", "GBP", "USD"][i % 3];
    let mut p = json!({
        "order_id": format!("o-{i:012x}"),
        "customer_id": format!("c-{}", i % 997),
        "status": "open",
        "currency": currency,
        "items": (0..(1 + i % 4)).map(|l| json!({"sku": format!("SKU-{:04}", (i + l) % 500), "qty": 1 + l, "price": 19.99})).collect::<Vec<_>>(),
        "subtotal": 59.97, "tax": 11.99, "total": 71.96,
        "occurred_at": "2026-11-22T23:15:00.123456Z",
    });
    if v2 {
        p["sales_channel"] = json!("app");
    }
    p.to_string()
}

fn run(label: &str, payloads: &[String], reg: Option<&Registry>, baseline: Option<f64>) -> f64 {
    let start = Instant::now();
    let mut upcast = 0u64;
    for text in payloads {
        let v: Value = serde_json::from_str(text).expect("json");
        if let Some(reg) = reg {
            let c = reg
                .check(&EventRef {
                    aggregate: Some("order"),
                    topic: None,
                    event_type: Some("OrderPlaced"),
                    version: None,
                    payload: &v,
                })
                .expect("valid")
                .expect("covered");
            upcast += u64::from(c.from_version != c.to_version);
        }
        std::hint::black_box(&v);
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = payloads.len() as f64 / secs;
    match baseline {
        Some(b) => println!(
            "{label:<40} {rate:>12.0} events/s  {:>5.2}x the parse-only time  (upcast: {upcast})",
            b / rate
        ),
        None if label == "warm-up" => {}
        None => println!("{label:<40} {rate:>12.0} events/s  (baseline)"),
    }
    rate
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    let reg = Registry::load_dir(&root).expect("repository registry");
    let v2: Vec<String> = (0..n).map(|i| payload(i, true)).collect();
    let v1: Vec<String> = (0..n).map(|i| payload(i, false)).collect();
    println!("{n} OrderPlaced payloads of ~{} bytes", v2[0].len());
    // Warm up allocator and caches once.
    run("warm-up", &v2[..n.min(10_000)], Some(&reg), None);
    let base = run("parse only (baseline)", &v2, None, None);
    run(
        "parse + check, current version (v2)",
        &v2,
        Some(&reg),
        Some(base),
    );
    run(
        "parse + check + upcast, v1 -> v2",
        &v1,
        Some(&reg),
        Some(base),
    );
}
