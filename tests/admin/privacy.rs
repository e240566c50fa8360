//! After a shadow run with secrets in the traffic, no stored row anywhere holds a raw sensitive
//! value, while the redacted stand-ins (keyed HMACs) are there and equal values match.

use sqlx::{Column, Row};
use strangler_admin::Redactor;
use strangler_admin::privacy::load_key;
use strangler_store::Store;
use strangler_test_support::{pg_database, sqlite_file};

use super::fixture::{Run, shadow_run};

/// Every row of every table, each rendered as text (column name and value).
async fn dump(store: &Store) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match store {
        Store::Postgres(p) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(p)
            .await
            .unwrap();
            for t in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT CAST(x.* AS TEXT) FROM \"{t}\" x"))
                        .fetch_all(p)
                        .await
                        .unwrap();
                out.extend(rows.into_iter().map(|r| (t.clone(), r)));
            }
        }
        Store::Sqlite(p) => {
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(p)
                    .await
                    .unwrap();
            for t in tables {
                let rows = sqlx::query(&format!("SELECT * FROM \"{t}\""))
                    .fetch_all(p)
                    .await
                    .unwrap();
                for r in rows {
                    let mut text = String::new();
                    for (i, c) in r.columns().iter().enumerate() {
                        let v = r
                            .try_get::<Option<String>, _>(i)
                            .map(|v| v.unwrap_or_default())
                            .or_else(|_| {
                                r.try_get::<Option<i64>, _>(i)
                                    .map(|v| v.map(|v| v.to_string()).unwrap_or_default())
                            })
                            .or_else(|_| {
                                r.try_get::<Option<f64>, _>(i)
                                    .map(|v| v.map(|v| v.to_string()).unwrap_or_default())
                            })
                            .or_else(|_| {
                                r.try_get::<Option<Vec<u8>>, _>(i).map(|v| {
                                    v.map(|v| String::from_utf8_lossy(&v).into_owned())
                                        .unwrap_or_default()
                                })
                            })
                            .unwrap_or_else(|e| {
                                panic!("column {} of {t} unreadable: {e}", c.name())
                            });
                        text.push_str(&format!("{}={v}\u{1f}", c.name()));
                    }
                    out.push((t.clone(), text));
                }
            }
        }
    }
    out
}

async fn no_raw_values_anywhere(run: Run) {
    let rows = dump(&run.store).await;
    let secrets = run.secrets.all(run.requests);
    for (table, row) in &rows {
        for s in &secrets {
            assert!(
                !row.contains(s.as_str()),
                "table {table} holds the raw value `{s}`: {row}"
            );
        }
        assert!(
            !row.contains(&run.secrets.run),
            "table {table} holds part of a secret: {row}"
        );
    }
    // The store did record the run: mismatch groups, exemplars with their redacted stand-ins.
    let count = |t: &str| rows.iter().filter(|(table, _)| table == t).count();
    assert!(
        count("strangler_fingerprint") >= 3,
        "fingerprints stored: {}",
        count("strangler_fingerprint")
    );
    assert!(
        count("strangler_exemplar") >= 3,
        "exemplars stored: {}",
        count("strangler_exemplar")
    );
    let key = load_key(&run.config.mismatches, &run.config.base_dir()).unwrap();
    let r = Redactor::new(&run.config.mismatches, key);
    let exemplars: Vec<&String> = rows
        .iter()
        .filter(|(t, _)| t == "strangler_exemplar")
        .map(|(_, r)| r)
        .collect();
    let mac_bearer = r.mac(&format!("Bearer {}", run.secrets.bearer()));
    let mac_key = r.mac(&run.secrets.api_key());
    for e in &exemplars {
        // The same credential gives the same HMAC in every exemplar: still comparable.
        assert!(
            e.contains(&mac_bearer),
            "authorization not replaced by its HMAC: {e}"
        );
        assert!(
            e.contains(&mac_key),
            "x-api-key not replaced by its HMAC: {e}"
        );
        assert!(e.contains("token=hmac:"), "query token not replaced: {e}");
        assert!(e.contains("theme") || e.contains("cookie"), "{e}");
    }
    // The e-mail difference is still visible as a difference, only without the value.
    assert!(
        rows.iter()
            .any(|(t, r)| t == "strangler_fingerprint" && r.contains("/customer/email"))
    );
}

#[tokio::test]
async fn sqlite_stores_no_raw_sensitive_value() {
    no_raw_values_anywhere(shadow_run(sqlite_file(), 30).await).await;
}

#[tokio::test]
async fn postgres_stores_no_raw_sensitive_value() {
    no_raw_values_anywhere(shadow_run(pg_database().await, 30).await).await;
}
