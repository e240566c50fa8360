//! The mismatch store on each backend (one scenario, run on SQLite and PostgreSQL): grouping by
//! fingerprint with first and last seen, counts and trend, bounded exemplars, triage states
//! (expected expires, fixed reopens on a regression), rule hits, retention and the size bound.

use std::collections::BTreeMap;

use strangler_admin::store::{Batch, Exemplar, FingerprintDelta, HOUR_MS, MismatchStore, Status};
use strangler_core::config::{MismatchCapabilityConfig, MismatchConfig};
use strangler_store::Store;
use strangler_test_support::{TestDb, pg_database, sqlite_file};

const DAY_MS: i64 = 24 * HOUR_MS;

fn delta(path: &str, at: i64, n: i64) -> FingerprintDelta {
    FingerprintDelta {
        path: path.into(),
        kind: "value".into(),
        value_class: "number->number".into(),
        first_ms: at,
        last_ms: at,
        hourly: BTreeMap::from([(at / HOUR_MS * HOUR_MS, n)]),
    }
}

fn exemplar(cap: &str, fp: &str, at: i64) -> Exemplar {
    Exemplar {
        id: 0,
        capability: cap.into(),
        fingerprint: fp.into(),
        seen_ms: at,
        verdict: "mismatch".into(),
        method: "GET".into(),
        path_and_query: format!("/orders/{at}"),
        request_headers: vec![("accept".into(), "application/json".into())],
        request_body: String::new(),
        legacy_status: 200,
        legacy_headers: vec![],
        legacy_body: r#"{"total":10}"#.into(),
        candidate_status: 200,
        candidate_headers: vec![],
        candidate_body: r#"{"total":11}"#.into(),
        differences: vec![],
        raw: false,
    }
}

fn batch(cap: &str, fps: &[(&str, &str, i64, i64)]) -> Batch {
    let mut b = Batch::default();
    for (fp, path, at, n) in fps {
        b.fingerprints
            .insert((cap.into(), (*fp).into()), delta(path, *at, *n));
        b.exemplars.push(exemplar(cap, fp, *at));
    }
    b
}

async fn scenario(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let cfg = MismatchConfig {
        exemplars_per_fingerprint: 2,
        max_fingerprints: 3,
        retention_days: 7,
        capability: BTreeMap::from([(
            "short".to_owned(),
            MismatchCapabilityConfig {
                retention_days: Some(1),
                keep_raw: false,
            },
        )]),
        ..MismatchConfig::default()
    };
    let m = MismatchStore::new(store.clone(), cfg);
    let now = 1_900_000_000_000_i64 / HOUR_MS * HOUR_MS;

    // Three sightings of one fingerprint over two hours, one of another.
    m.write(&batch(
        "orders",
        &[("aaaa", "/total", now - 2 * HOUR_MS, 2)],
    ))
    .await
    .unwrap();
    m.write(&batch(
        "orders",
        &[
            ("aaaa", "/total", now - HOUR_MS, 1),
            ("bbbb", "/name", now - HOUR_MS, 1),
        ],
    ))
    .await
    .unwrap();
    let mut last = batch("orders", &[("aaaa", "/total", now, 4)]);
    last.rule_hits.insert(
        ("orders".into(), "ignore-request-id".into(), now),
        (5, 5, 0),
    );
    last.rule_hits
        .insert(("orders".into(), "owned".into(), now), (2, 0, 40));
    m.write(&last).await.unwrap();
    m.write(&Batch {
        rule_hits: [(
            ("orders".into(), "ignore-request-id".into(), now),
            (1, 1, 0),
        )]
        .into(),
        ..Batch::default()
    })
    .await
    .unwrap();

    let fps = m.fingerprints("orders", now + 1).await.unwrap();
    assert_eq!(fps.len(), 2);
    let a = &fps[0];
    assert_eq!(
        (a.fingerprint.as_str(), a.count),
        ("aaaa", 7),
        "most frequent first"
    );
    assert_eq!((a.first_seen_ms, a.last_seen_ms), (now - 2 * HOUR_MS, now));
    assert_eq!(&a.trend[21..], &[2, 1, 4], "hourly trend, oldest first");
    assert_eq!(a.trend[..21].iter().sum::<i64>(), 0);
    let ex = m.exemplars("orders", "aaaa").await.unwrap();
    assert_eq!(ex.len(), 2, "only the newest exemplars are kept");
    assert_eq!((ex[0].seen_ms, ex[1].seen_ms), (now, now - HOUR_MS));
    assert_eq!(
        ex[0].request_headers,
        vec![("accept".to_owned(), "application/json".to_owned())]
    );

    let hits = m.rule_hits("orders", now - DAY_MS).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(
        (hits[0].rule.as_str(), hits[0].comparisons, hits[0].forgiven),
        ("ignore-request-id", 6, 6)
    );
    assert_eq!(
        (hits[1].rule.as_str(), hits[1].hidden_leaves),
        ("owned", 40)
    );

    // Expected until a time: open again after it. Fixed: open again when seen again.
    assert!(
        m.set_status(
            "orders",
            "bbbb",
            Status::Expected,
            Some(now + 10),
            "ann",
            "known",
            now
        )
        .await
        .unwrap()
    );
    assert_eq!(
        m.fingerprint("orders", "bbbb", now + 5)
            .await
            .unwrap()
            .status,
        Status::Expected
    );
    assert_eq!(
        m.fingerprint("orders", "bbbb", now + 11)
            .await
            .unwrap()
            .status,
        Status::Open
    );
    assert!(
        m.set_status("orders", "aaaa", Status::Fixed, None, "ann", "", now)
            .await
            .unwrap()
    );
    assert_eq!(
        m.fingerprint("orders", "aaaa", now).await.unwrap().status,
        Status::Fixed
    );
    m.write(&batch("orders", &[("aaaa", "/total", now + HOUR_MS, 1)]))
        .await
        .unwrap();
    assert_eq!(
        m.fingerprint("orders", "aaaa", now + HOUR_MS)
            .await
            .unwrap()
            .status,
        Status::Open,
        "a regression reopens it"
    );
    assert!(
        !m.set_status("orders", "zzzz", Status::Fixed, None, "ann", "", now)
            .await
            .unwrap()
    );

    // The size bound keeps the most recently seen; retention is per capability.
    for (i, fp) in ["c1", "c2", "c3"].iter().enumerate() {
        m.write(&batch(
            "orders",
            &[(fp, "/x", now + 2 * HOUR_MS + i as i64, 1)],
        ))
        .await
        .unwrap();
    }
    m.write(&batch(
        "short",
        &[("s1", "/y", now - 2 * DAY_MS, 1), ("s2", "/y", now, 1)],
    ))
    .await
    .unwrap();
    let removed = m
        .prune(&["orders".into(), "short".into()], now + 3 * HOUR_MS)
        .await
        .unwrap();
    assert_eq!(
        removed, 3,
        "aaaa and bbbb over the bound of 3, s1 past one day"
    );
    let left: Vec<String> = m
        .fingerprints("orders", now)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.fingerprint)
        .collect();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|f| f.starts_with('c')), "{left:?}");
    assert!(
        m.exemplars("orders", "aaaa").await.unwrap().is_empty(),
        "exemplars go with their fingerprint"
    );
    let short: Vec<String> = m
        .fingerprints("short", now)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.fingerprint)
        .collect();
    assert_eq!(short, vec!["s2".to_owned()]);

    m.audit(
        now,
        "otto",
        "operator",
        "expect",
        "orders/bbbb",
        "ok",
        &serde_json::json!({"until": "2099-01-01"}),
    )
    .await
    .unwrap();
    let trail = m.audit_trail(10).await.unwrap();
    assert_eq!(
        (trail[0].actor.as_str(), trail[0].detail["until"].as_str()),
        ("otto", Some("2099-01-01"))
    );
    store.close().await;
}

#[tokio::test]
async fn sqlite_mismatch_store() {
    scenario(sqlite_file()).await;
}

#[tokio::test]
async fn postgres_mismatch_store() {
    scenario(pg_database().await).await;
}
