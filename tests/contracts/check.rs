//! `strangler contracts check` and `verify` as CI runs them: the binary, real files, exit codes.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use strangler_bus::{Header, LogPublisher, OutgoingRecord, Publisher};
use strangler_store::Store;
use strangler_test_support::sqlite_file;

fn run(args: &[&str], cwd: &Path) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(super::strangler_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("STRANGLER_CONFIG")
        .output()
        .expect("running strangler");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code().unwrap_or(-1), text)
}

fn check(v2: Value) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    super::write_registry(
        dir.path(),
        &[
            ("order/OrderPlaced.v1.json", super::placed_v1()),
            ("order/OrderPlaced.v2.json", v2),
        ],
    );
    run(
        &["contracts", "check", "--dir", dir.path().to_str().unwrap()],
        dir.path(),
    )
}

fn edit(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = super::placed_v1();
    f(&mut v);
    v
}

#[test]
fn check_flags_each_kind_of_breaking_change_with_exit_1() {
    for (name, v2, needle) in [
        (
            "removed",
            edit(|s| {
                s["properties"].as_object_mut().unwrap().remove("status");
            }),
            "BREAKING: removed field /status",
        ),
        (
            "retyped",
            edit(|s| s["properties"]["total"] = json!({"type": "string"})),
            "BREAKING: retyped field /total: type number became string",
        ),
        (
            "required",
            super::placed_v2(false),
            "BREAKING: new required field without an upcaster /channel",
        ),
        (
            "enum",
            edit(|s| s["properties"]["status"] = json!({"enum": ["open", "settled"]})),
            "BREAKING: changed enum value /status: \"paid\" no longer allowed",
        ),
    ] {
        let (code, out) = check(v2);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(
            out.contains("order/OrderPlaced v1 -> v2:") && out.contains(needle),
            "{name}: {out}"
        );
        assert!(out.contains("1 breaking change(s)"), "{name}: {out}");
    }
}

#[test]
fn check_passes_a_compatible_addition_and_an_upcast_required_field() {
    let (code, out) = check(edit(|s| {
        s["properties"]["note"] = json!({"type": "string"})
    }));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("order/OrderPlaced v1 -> v2: compatible"),
        "{out}"
    );
    let (code, out) = check(super::placed_v2(true));
    assert_eq!(code, 0, "{out}");
    // The repository's own registry is compatible.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (code, out) = run(&["contracts", "check", "--dir", "contracts"], &repo);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_exits_2_on_a_broken_registry_and_catches_an_edited_release() {
    let dir = tempfile::tempdir().unwrap();
    super::write_registry(
        dir.path(),
        &[("order/OrderPlaced.v2.json", super::placed_v1())],
    );
    let (code, out) = run(
        &["contracts", "check", "--dir", dir.path().to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("has v2 but no v1"), "{out}");

    // v1 was released; editing it in place to drop a field is caught with --against.
    let released = tempfile::tempdir().unwrap();
    super::write_registry(
        released.path(),
        &[("order/OrderPlaced.v1.json", super::placed_v1())],
    );
    let now = tempfile::tempdir().unwrap();
    super::write_registry(
        now.path(),
        &[(
            "order/OrderPlaced.v1.json",
            edit(|s| {
                s["properties"].as_object_mut().unwrap().remove("total");
                s["required"] = json!(["order_id"]);
            }),
        )],
    );
    let (code, out) = run(
        &[
            "contracts",
            "check",
            "--dir",
            now.path().to_str().unwrap(),
            "--against",
            released.path().to_str().unwrap(),
            "--json",
        ],
        now.path(),
    );
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(report["breaking"], 1);
    assert_eq!(report["pairs"][0]["compared"], "edited");
    assert_eq!(report["pairs"][0]["changes"][0]["kind"], "removed_field");
}

#[tokio::test]
async fn verify_reads_the_log_from_the_beginning_and_names_failing_events() {
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
    let control = sqlite_file();
    let store = Store::connect(&control.url).await.unwrap();
    store.migrate().await.unwrap();
    let bad_id = "00000000-0000-4000-8000-0000000000bd";
    let record = |id: String, payload: Value, ty: &str| OutgoingRecord {
        topic: "outbox.event.order".into(),
        key: Some(b"o-1".to_vec()),
        value: Some(payload.to_string().into_bytes()),
        headers: vec![
            Header {
                name: "id".into(),
                value: id.into_bytes(),
            },
            Header {
                name: "type".into(),
                value: ty.as_bytes().to_vec(),
            },
        ],
        timestamp_ms: None,
    };
    let mut batch: Vec<OutgoingRecord> = (0..6)
        .map(|i| {
            let mut p = json!({"order_id": "o-1", "total": i});
            if i % 2 == 1 {
                p["channel"] = json!("app");
            }
            record(uuid::Uuid::new_v4().to_string(), p, "OrderPlaced")
        })
        .collect();
    batch.push(record(
        bad_id.into(),
        json!({"order_id": "o-1"}),
        "OrderPlaced",
    ));
    batch.push(record(
        uuid::Uuid::new_v4().to_string(),
        json!({"x": 1}),
        "OrderNoted",
    ));
    LogPublisher::new(store.clone(), 2)
        .publish(batch)
        .await
        .unwrap();
    std::fs::write(
        dir.path().join("strangler.toml"),
        format!(
            "[store]\nurl = \"{}\"\nmigrate_on_start = false\n\n[contracts]\n",
            control.url
        ),
    )
    .unwrap();
    let (code, out) = run(&["contracts", "verify", "--sample", "100"], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("read 8 event(s) from outbox.event.order: 6 passed (3 upcast), 1 failed"),
        "{out}"
    );
    assert!(out.contains("order/OrderPlaced: v1: 3, v2: 3"), "{out}");
    assert!(
        out.contains("no contract for OrderNoted: 1 event(s)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("FAIL event {bad_id}"))
            && out.contains("rule OrderPlaced.v2.json#/required"),
        "{out}"
    );

    // --sample bounds the read: the first 4 events are all valid.
    let (code, out) = run(
        &["contracts", "verify", "--sample", "3", "--json"],
        dir.path(),
    );
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["read"], 3, "{out}");
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn verify_reads_a_kafka_topic_from_the_beginning() {
    use rdkafka::ClientConfig;
    use rdkafka::message::{Header as KHeader, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let broker = strangler_test_support::broker();
    let aggregate = strangler_test_support::unique_name("order").replace('-', "_");
    let topic = format!("outbox.event.{aggregate}");
    broker.create_topic(&topic, 2).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap();
    let bad_id = uuid::Uuid::new_v4().to_string();
    for i in 0..5 {
        let id = if i == 4 {
            bad_id.clone()
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        let payload = match i {
            4 => json!({"order_id": format!("o-{i}"), "total": "lots"}),
            i if i % 2 == 0 => json!({"order_id": format!("o-{i}"), "total": i}),
            _ => json!({"order_id": format!("o-{i}"), "total": i, "channel": "web"}),
        }
        .to_string();
        let key = format!("o-{i}");
        let headers = OwnedHeaders::new()
            .insert(KHeader {
                key: "id",
                value: Some(id.as_str()),
            })
            .insert(KHeader {
                key: "type",
                value: Some("OrderPlaced"),
            });
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&payload)
                    .headers(headers),
                std::time::Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
    let dir = tempfile::tempdir().unwrap();
    super::write_registry(
        dir.path(),
        &[
            (
                &format!("contracts/{aggregate}/OrderPlaced.v1.json"),
                super::placed_v1(),
            ),
            (
                &format!("contracts/{aggregate}/OrderPlaced.v2.json"),
                super::placed_v2(true),
            ),
        ],
    );
    std::fs::write(
        dir.path().join("strangler.toml"),
        format!(
            "[bus]\nkind = \"kafka\"\n\n[bus.kafka]\nbrokers = \"{}\"\n\n[contracts]\n",
            broker.bootstrap
        ),
    )
    .unwrap();
    let (code, out) = run(&["contracts", "verify", "--sample", "50"], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("read 5 event(s)") && out.contains("4 passed (2 upcast), 1 failed"),
        "{out}"
    );
    assert!(out.contains(&format!("FAIL event {bad_id}")), "{out}");
}
