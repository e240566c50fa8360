//! Cost of recording a mismatching comparison for the mismatch store (redaction, exemplar, batch
//! entry) against the comparison itself (`strangler_diff::compare`, the work every mirrored copy
//! already pays), and the rate at which batches of them are written to SQLite.
//!
//! Run with `cargo bench -p strangler-admin --bench record` (see deploy/bench-admin.sh).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use strangler_admin::store::{Batch, MismatchStore};
use strangler_admin::{Redactor, recorder};
use strangler_core::config::MismatchConfig;
use strangler_diff::{CompareInput, HttpAnswer, RuleSet, compare};
use strangler_proxy::observe::{Answer, Exchange, Observation};

fn order(items: usize, differ: bool) -> Value {
    let lines: Vec<Value> = (0..items)
        .map(|i| {
            json!({"sku": format!("SKU-{i:06}"), "qty": 1 + i % 5, "price": 1.5 + (i % 7) as f64,
            "description": "Stainless steel widget, 40mm"})
        })
        .collect();
    json!({"id": "ord-1001", "total": if differ { 11 } else { 10 }, "status": "open",
        "customer": {"email": "ann@example.com", "name": "Ann"}, "lines": lines})
}

fn time<F: FnMut()>(mut f: F) -> Duration {
    for _ in 0..20 {
        f();
    }
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let n = 200;
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(start.elapsed() / n);
    }
    best
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(strangler_store::Store::connect(&format!(
            "sqlite://{}/bench.db",
            dir.path().display()
        )))
        .unwrap();
    rt.block_on(store.migrate()).unwrap();
    let cfg = MismatchConfig {
        sensitive_paths: vec!["/customer/email".into()],
        exemplars_per_fingerprint: 3,
        ..MismatchConfig::default()
    };
    let mismatches = MismatchStore::new(store, cfg.clone());
    let redactor = Redactor::new(&cfg, b"bench-key-0123456789".to_vec());
    let rules = RuleSet::empty();
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer sk-live-0123456789abcdef"),
    );
    headers.insert(
        "cookie",
        HeaderValue::from_static("session=abcdef0123456789; theme=dark"),
    );
    headers.insert("accept", HeaderValue::from_static("application/json"));
    let mut resp_headers = HeaderMap::new();
    resp_headers.insert("content-type", HeaderValue::from_static("application/json"));

    println!(
        "{:<10} {:>14} {:>14} {:>8}",
        "body", "compare", "record", "ratio"
    );
    for items in [10usize, 120] {
        let legacy = Bytes::from(order(items, false).to_string());
        let candidate = Bytes::from(order(items, true).to_string());
        let l = HttpAnswer {
            status: 200,
            headers: vec![],
            body: legacy.to_vec(),
        };
        let c = HttpAnswer {
            status: 200,
            headers: vec![],
            body: candidate.to_vec(),
        };
        let compare_once = || {
            compare(
                CompareInput {
                    legacy: &l,
                    candidate: &c,
                    candidate_watermark: None,
                },
                &rules,
            )
        };
        let comparison = compare_once();
        let obs = Observation {
            capability: Arc::from("orders"),
            request: "GET /orders/ord-1001".into(),
            comparison,
            exchange: Some(Arc::new(Exchange {
                method: Method::GET,
                path_and_query: "/orders/ord-1001?token=abc".into(),
                request_headers: headers.clone(),
                request_body: Bytes::new(),
                legacy: Answer {
                    status: StatusCode::OK,
                    headers: resp_headers.clone(),
                    body: legacy.clone(),
                },
                candidate: Answer {
                    status: StatusCode::OK,
                    headers: resp_headers.clone(),
                    body: candidate.clone(),
                },
            })),
        };
        let t_compare = time(|| {
            black_box(compare_once());
        });
        let t_record = time(|| {
            // A fresh batch each time: the exemplar is built, as for the first sighting in a flush.
            let mut batch = Batch::default();
            recorder::record(
                &mut batch,
                black_box(&obs),
                &redactor,
                &mismatches,
                1_700_000_000_000,
            );
            black_box(batch);
        });
        println!(
            "{:<10} {:>11.1} µs {:>11.1} µs {:>7.2}x",
            format!("{} B", legacy.len()),
            t_compare.as_secs_f64() * 1e6,
            t_record.as_secs_f64() * 1e6,
            t_record.as_secs_f64() / t_compare.as_secs_f64()
        );

        // A flush as the recorder writes it: 1,000 sightings of 50 fingerprints in one batch.
        let mut batch = Batch::default();
        for i in 0..1000 {
            let mut o = obs.clone();
            for f in &mut o.comparison.fingerprints {
                f.id = strangler_diff::FingerprintId(f.id.0 ^ (i % 50));
            }
            recorder::record(
                &mut batch,
                &o,
                &redactor,
                &mismatches,
                1_700_000_000_000 + i as i64,
            );
        }
        let start = Instant::now();
        rt.block_on(mismatches.write(&batch)).unwrap();
        let took = start.elapsed();
        println!(
            "{:<10} flush of 1000 sightings ({} fingerprints, {} exemplars) to SQLite: {:.1} ms, {:.0} sightings/s",
            "",
            batch.fingerprints.len(),
            batch.exemplars.len(),
            took.as_secs_f64() * 1e3,
            1000.0 / took.as_secs_f64()
        );
    }
}
