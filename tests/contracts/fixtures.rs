//! Real Debezium messages (tests/fixtures/debezium, see its README for the sources) validate
//! against contracts written for them, through the same decoder and check `contracts verify` uses.

use std::path::Path;

use serde_json::Value;
use strangler_bus::{Header, Record};
use strangler_contracts::verify::{RecordOutcome, check_record};
use strangler_contracts::{EventRef, Registry};

/// One fixture as the bus would carry it: the value file plus its sidecar's topic, key, headers.
fn record(value_file: &Path) -> Record {
    let value = std::fs::read(value_file).expect("reading the fixture");
    let meta_file = value_file.with_extension("meta.json");
    let meta: Value = std::fs::read_to_string(&meta_file)
        .ok()
        .map(|t| serde_json::from_str(&t).expect("sidecar is JSON"))
        .unwrap_or(Value::Null);
    let headers = meta["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| Header {
                    name: k.clone(),
                    value: v.as_str().unwrap_or_default().as_bytes().to_vec(),
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        topic: meta["topic"].as_str().unwrap_or("fixtures").to_string(),
        partition: 0,
        offset: 0,
        key: meta["key"].as_str().map(|k| k.as_bytes().to_vec()),
        value: Some(value),
        headers,
        timestamp_ms: meta["timestamp"].as_i64(),
    }
}

fn fixtures() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/debezium");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".json") && !n.ends_with(".meta.json")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_captured_debezium_message_validates_against_its_contract() {
    let reg = Registry::load_dir(&super::debezium_registry_dir()).expect("fixture registry");
    let mut passed = Vec::new();
    for file in fixtures() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let rec = record(&file);
        match check_record(&reg, &rec, "schema_version") {
            RecordOutcome::Passed { contract, .. } => passed.push((name, contract)),
            RecordOutcome::Tombstone => assert!(name.contains("tombstone"), "{name}"),
            RecordOutcome::Failed(f) if name == "outbox-router.expanded-json.json" => {
                // The router's default sends no `type` header, so no contract can be chosen from
                // the record alone; the Debezium doc names the event OrderCreated.
                assert_eq!(f.rule, "event-type", "{f:?}");
                let payload: Value = serde_json::from_slice(rec.value.as_deref().unwrap()).unwrap();
                let c = reg
                    .check(&EventRef {
                        aggregate: None,
                        topic: Some(&rec.topic),
                        event_type: Some("OrderCreated"),
                        version: None,
                        payload: &payload,
                    })
                    .expect("valid")
                    .expect("covered");
                passed.push((name, c.contract));
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    let contracts: std::collections::BTreeSet<&str> =
        passed.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(
        contracts.into_iter().collect::<Vec<_>>(),
        vec![
            "customers/ChangeEvent",
            "foo/LogicalMessage",
            "order/OrderCreated",
            "outboxevent/ChangeEvent",
            "products/ChangeEvent"
        ]
    );
    assert_eq!(passed.len(), fixtures().len() - 1, "all but the tombstone");
}

#[test]
fn a_changed_debezium_message_fails_naming_the_rule() {
    let reg = Registry::load_dir(&super::debezium_registry_dir()).expect("fixture registry");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/debezium");
    let mut rec = record(&dir.join("pg-create.json"));
    let mut v: Value = serde_json::from_slice(rec.value.as_deref().unwrap()).unwrap();
    v["after"]["weight"] = Value::from("heavy");
    rec.value = Some(v.to_string().into_bytes());
    let RecordOutcome::Failed(f) = check_record(&reg, &rec, "schema_version") else {
        panic!("a string weight must fail");
    };
    assert_eq!(f.event_type.as_deref(), Some("products.c"));
    assert!(f.rule.starts_with("ChangeEvent.v1.json#"), "{}", f.rule);
    assert!(f.message.contains("/after"), "{}", f.message);
    assert!(f.event_id.is_some());

    // A delete whose `after` is not null breaks the op-specific rule.
    let mut rec = record(&dir.join("mysql-delete.with-schema.json"));
    let mut v: Value = serde_json::from_slice(rec.value.as_deref().unwrap()).unwrap();
    v["payload"]["after"] = v["payload"]["before"].clone();
    rec.value = Some(v.to_string().into_bytes());
    assert!(matches!(
        check_record(&reg, &rec, "schema_version"),
        RecordOutcome::Failed(_)
    ));
}
