//! The relay checks outbox payloads against the registry before publishing: `dead-letter` moves a
//! violating row to the outbox dead-letter table with the violation as the reason and publishes
//! the rest; `stop` stops the relay at it; `warn` publishes it.

use serde_json::json;
use sqlx::Row;
use strangler_bus::LogPublisher;
use strangler_contracts::Registry;
use strangler_core::config::{OutboxConfig, RelayContractPolicy};
use strangler_outbox::contracts::RelayContracts;
use strangler_outbox::{Relay, RelayOptions, Sink};
use strangler_store::Store;
use strangler_test_support::sqlite_file;
use tokio_util::sync::CancellationToken;

const OUTBOX_DDL: &str = include_str!("../../migrations/outbox/sqlite.sql");

/// Runs a relay once over an outbox holding two valid OrderPlaced payloads (a v1 and a v2) and
/// one that breaks the contract; returns the result, the rows left in the dead-letter table and
/// the events on the log.
async fn relay_once(
    policy: RelayContractPolicy,
) -> (
    strangler_outbox::Result<strangler_outbox::RelayReport>,
    Vec<String>,
    i64,
) {
    let legacy = sqlite_file();
    let pool = sqlx::SqlitePool::connect(&legacy.url).await.unwrap();
    sqlx::raw_sql(OUTBOX_DDL).execute(&pool).await.unwrap();
    for (i, payload) in [
        json!({"order_id": "o-1", "total": 5}),
        json!({"order_id": "o-2", "total": "five"}),
        json!({"order_id": "o-3", "total": 7, "channel": "app"}),
    ]
    .iter()
    .enumerate()
    {
        sqlx::query("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (?, 'order', ?, 'OrderPlaced', ?)")
            .bind(format!("00000000-0000-4000-8000-00000000000{i}"))
            .bind(format!("o-{}", i + 1))
            .bind(payload.to_string())
            .execute(&pool)
            .await
            .unwrap();
    }
    let control_db = sqlite_file();
    let control = Store::connect(&control_db.url).await.unwrap();
    control.migrate().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    super::write_registry(
        dir.path(),
        &[
            ("order/OrderPlaced.v1.json", super::placed_v1()),
            ("order/OrderPlaced.v2.json", super::placed_v2(true)),
        ],
    );
    let relay = Relay::new(
        legacy.url.clone(),
        OutboxConfig::default(),
        Sink::Log(LogPublisher::new(control.clone(), 1)),
        RelayOptions {
            once: true,
            ..RelayOptions::default()
        },
    )
    .with_contracts(RelayContracts {
        registry: Registry::load_dir(dir.path()).unwrap(),
        version_header: "schema_version".into(),
        policy,
        reject_uncovered: false,
    });
    let result = relay.run(&CancellationToken::new()).await;
    let reasons = sqlx::query("SELECT id, reason FROM outbox_dead_letter ORDER BY dead_letter_id")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();
    let Store::Sqlite(c) = &control else {
        unreachable!()
    };
    let published: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM strangler_log")
        .fetch_one(c)
        .await
        .unwrap();
    (result, reasons, published)
}

#[tokio::test]
async fn the_relay_dead_letters_stops_or_warns_on_a_payload_that_breaks_its_contract() {
    let (r, reasons, published) = relay_once(RelayContractPolicy::DeadLetter).await;
    let report = r.expect("dead-letter goes on");
    assert_eq!(
        (report.published, report.dead_lettered, published),
        (2, 1, 2)
    );
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].starts_with(
            "00000000-0000-4000-8000-000000000001 contract violation: order/OrderPlaced"
        ),
        "{reasons:?}"
    );
    assert!(reasons[0].contains("/total"), "{reasons:?}");

    let (r, _, published) = relay_once(RelayContractPolicy::Stop).await;
    let err = r.expect_err("stop stops").to_string();
    assert!(
        err.contains("00000000-0000-4000-8000-000000000001") && err.contains("contract violation"),
        "{err}"
    );
    assert_eq!(
        published, 1,
        "the row before the violation is published, nothing after it"
    );

    let (r, reasons, published) = relay_once(RelayContractPolicy::Warn).await;
    assert_eq!(r.expect("warn publishes").published, 3);
    assert!(reasons.is_empty());
    assert_eq!(published, 3);
}

/// The same through the binary: `[contracts] relay = "dead-letter"` in the configuration file is
/// what turns the check on for `strangler relay`.
#[tokio::test]
async fn strangler_relay_reads_the_contract_policy_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    super::write_registry(
        dir.path(),
        &[
            ("contracts/order/OrderPlaced.v1.json", super::placed_v1()),
            (
                "contracts/order/OrderPlaced.v2.json",
                super::placed_v2(true),
            ),
        ],
    );
    let (legacy, control) = (sqlite_file(), sqlite_file());
    let pool = sqlx::SqlitePool::connect(&legacy.url).await.unwrap();
    sqlx::raw_sql(OUTBOX_DDL).execute(&pool).await.unwrap();
    for (id, payload) in [
        (
            "00000000-0000-4000-8000-00000000000a",
            json!({"order_id": "o-1", "total": 5}),
        ),
        (
            "00000000-0000-4000-8000-00000000000b",
            json!({"order_id": "o-2"}),
        ),
    ] {
        sqlx::query("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (?, 'order', 'o', 'OrderPlaced', ?)")
            .bind(id)
            .bind(payload.to_string())
            .execute(&pool)
            .await
            .unwrap();
    }
    std::fs::write(
        dir.path().join("strangler.toml"),
        format!(
            "[store]\nurl = \"{}\"\n\n[legacy]\nurl = \"{}\"\n\n[contracts]\nrelay = \"dead-letter\"\n",
            control.url, legacy.url
        ),
    )
    .unwrap();
    let out = std::process::Command::new(super::strangler_bin())
        .args(["relay", "--once"])
        .current_dir(dir.path())
        .env_remove("STRANGLER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM outbox_dead_letter WHERE id = '00000000-0000-4000-8000-00000000000b'",
    )
    .fetch_one(&pool)
    .await
    .expect("row b dead-lettered");
    assert!(
        reason.starts_with("contract violation: order/OrderPlaced"),
        "{reason}"
    );
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        left, 0,
        "a published and deleted, b moved to the dead letters"
    );
}
