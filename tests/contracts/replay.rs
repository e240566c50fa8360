//! A projection replays a stream mixing v1 events (written before `channel` existed) and v2
//! events (with it), on the built-in log over SQLite: through the upcaster every event applies and
//! old rows get the default; without it the old events are contract violations, dead-lettered
//! under `skip` and stopping the projection under `stop`.

use serde_json::json;
use sqlx::Row;
use strangler_bus::{Header, LogPublisher, OutgoingRecord, Publisher};
use strangler_contracts::Registry;
use strangler_projector::contracts::ContractGate;
use strangler_projector::policy::Reason;
use strangler_projector::replay::From;
use strangler_projector::{Error, Projector, Source, dead_letter};
use strangler_store::Store;
use strangler_test_support::{TestDb, sqlite_file, unique_name};
use tokio_util::sync::CancellationToken;

const PROJECTION: &str = r#"
name = "orders_by_channel"
version = 1
topics = ["@TOPIC@"]
tables = ["orders"]

[setup]
all = "CREATE TABLE IF NOT EXISTS {{orders}} (id TEXT PRIMARY KEY, total REAL NOT NULL, channel TEXT NOT NULL)"

[policy]
on_failure = "@POLICY@"

[[handler]]
event_type = "OrderPlaced"
sql = "INSERT INTO {{orders}} (id, total, channel) VALUES (:id, :total, :channel)"
params = { id = "key" }
"#;

struct Stack {
    read: Store,
    control: Store,
    topic: String,
    _dbs: (TestDb, TestDb),
}

/// A read store and a built-in log (two SQLite files, as the embedded default keeps them), with
/// 6 v1 and 4 v2 OrderPlaced events interleaved on one topic.
async fn stack() -> Stack {
    let (read_db, control_db) = (sqlite_file(), sqlite_file());
    let read = Store::connect(&read_db.url).await.expect("read store");
    read.migrate().await.expect("migrate read store");
    let control = Store::connect(&control_db.url)
        .await
        .expect("control store");
    control.migrate().await.expect("migrate control store");
    let topic = unique_name("outbox.event.order");
    let mut batch = Vec::new();
    for i in 0..10 {
        let v2 = i % 5 >= 3;
        let mut payload = json!({"order_id": format!("o-{i}"), "total": 10 + i, "status": "open"});
        let mut headers = vec![
            Header {
                name: "id".into(),
                value: uuid::Uuid::new_v4().to_string().into_bytes(),
            },
            Header {
                name: "type".into(),
                value: b"OrderPlaced".to_vec(),
            },
        ];
        if v2 {
            payload["channel"] = json!("app");
            if i == 9 {
                headers.push(Header {
                    name: "schema_version".into(),
                    value: b"2".to_vec(),
                });
            }
        }
        batch.push(OutgoingRecord {
            topic: topic.clone(),
            key: Some(format!("o-{i}").into_bytes()),
            value: Some(payload.to_string().into_bytes()),
            headers,
            timestamp_ms: Some(1_700_000_000_000 + i),
        });
    }
    LogPublisher::new(control.clone(), 2)
        .publish(batch)
        .await
        .expect("publishing");
    Stack {
        read,
        control,
        topic,
        _dbs: (read_db, control_db),
    }
}

async fn rebuild(
    s: &Stack,
    upcaster: bool,
    policy: &str,
) -> (
    Projector,
    strangler_projector::Result<strangler_projector::runtime::RunStats>,
    tempfile::TempDir,
) {
    let contracts = tempfile::tempdir().unwrap();
    super::write_registry(
        contracts.path(),
        &[
            ("order/OrderPlaced.v1.json", super::placed_v1()),
            ("order/OrderPlaced.v2.json", super::placed_v2(upcaster)),
        ],
    );
    let projections = tempfile::tempdir().unwrap();
    std::fs::write(
        projections.path().join("orders.toml"),
        PROJECTION
            .replace("@TOPIC@", &s.topic)
            .replace("@POLICY@", policy),
    )
    .unwrap();
    let p = Projector::load(
        s.read.clone(),
        Source::Log {
            store: s.control.clone(),
        },
        projections.path(),
    )
    .expect("projection loads")
    .with_contracts(ContractGate {
        registry: Registry::load_dir(contracts.path()).expect("registry"),
        version_header: "schema_version".into(),
        reject_uncovered: false,
    });
    p.setup().await.expect("setup");
    let one = p.one("orders_by_channel", None).unwrap();
    let plan = p.plan(&one, From::Rebuild).await.expect("plan");
    assert_eq!(plan.events(), 10);
    let r = p
        .replay(
            &one,
            &plan,
            From::Rebuild,
            false,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await;
    (p, r, projections)
}

async fn rows(read: &Store) -> Vec<(String, String)> {
    let Store::Sqlite(pool) = read else {
        unreachable!("SQLite read store")
    };
    sqlx::query("SELECT id, channel FROM orders_v1 ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("reading the read model")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_replay_over_mixed_versions_applies_every_event_through_the_upcaster() {
    let s = stack().await;
    let (_p, r, _dir) = rebuild(&s, true, "stop").await;
    let stats = r.expect("the replay succeeds");
    assert_eq!((stats.applied, stats.dead_lettered), (10, 0));
    let rows = rows(&s.read).await;
    assert_eq!(rows.len(), 10);
    for (id, channel) in rows {
        let i: u32 = id[2..].parse().unwrap();
        let expect = if i % 5 >= 3 { "app" } else { "web" };
        assert_eq!(channel, expect, "{id}");
    }
}

#[tokio::test]
async fn without_an_upcaster_old_events_are_contract_violations() {
    // skip: the v1 events go to the dead letters, classified, and the v2 events apply.
    let s = stack().await;
    let (p, r, _dir) = rebuild(&s, false, "skip").await;
    let stats = r.expect("skip goes on");
    assert_eq!((stats.applied, stats.dead_lettered), (4, 6));
    assert!(rows(&s.read).await.iter().all(|(_, c)| c == "app"));
    let letters = dead_letter::list(&p.store, "orders_by_channel", false)
        .await
        .unwrap();
    assert_eq!(letters.len(), 6);
    for d in &letters {
        assert_eq!(d.reason, "contract_violation");
        assert!(
            d.detail
                .contains("contract violation: order/OrderPlaced: a v1 event does not match v2")
                && d.detail.contains("channel")
                && d.detail
                    .contains("no upcaster: v2 declares no `x-strangler.upcast` steps"),
            "{}",
            d.detail
        );
    }

    // stop: the replay stops at the first v1 event with the violation as the reason.
    let s = stack().await;
    let (_p, r, _dir) = rebuild(&s, false, "stop").await;
    match r {
        Err(Error::Stopped { reason, detail, .. }) => {
            assert_eq!(reason, Reason::ContractViolation);
            assert!(detail.contains("no upcaster"), "{detail}");
        }
        other => panic!(
            "expected a stop on a contract violation, got {:?}",
            other.map(|s| s.applied)
        ),
    }
}

/// The same through the binary: `[contracts]` in the configuration puts `strangler project
/// rebuild` behind the gate.
#[tokio::test]
async fn strangler_project_rebuild_upcasts_with_contracts_from_the_configuration() {
    let s = stack().await;
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
    std::fs::create_dir(dir.path().join("projections")).unwrap();
    std::fs::write(
        dir.path().join("projections/orders.toml"),
        PROJECTION
            .replace("@TOPIC@", &s.topic)
            .replace("@POLICY@", "stop"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("strangler.toml"),
        format!(
            "[store]\nurl = \"{}\"\n\n[projections]\nread_store_url = \"{}\"\n\n[contracts]\n",
            s._dbs.1.url, s._dbs.0.url
        ),
    )
    .unwrap();
    let out = std::process::Command::new(super::strangler_bin())
        .args(["project", "rebuild", "orders_by_channel"])
        .current_dir(dir.path())
        .env_remove("STRANGLER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = rows(&s.read).await;
    assert_eq!(rows.len(), 10);
    assert_eq!(rows.iter().filter(|(_, c)| c == "web").count(), 6);
}
