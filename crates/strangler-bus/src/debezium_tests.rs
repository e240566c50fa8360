//! `decode` against every Debezium fixture in `tests/fixtures/debezium` (real captures and
//! documentation examples; see the README there), plus strangler's own formats.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::Header;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/debezium")
}

/// The record a consumer would have read: the value file plus its sidecar (topic, key text,
/// headers, timestamp), when there is one.
fn fixture(name: &str) -> Record {
    let dir = fixtures_dir();
    let value = std::fs::read(dir.join(format!("{name}.json"))).expect("fixture value");
    let meta: Value = std::fs::read(dir.join(format!("{name}.meta.json")))
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("sidecar is JSON"))
        .unwrap_or(Value::Null);
    let headers = meta
        .get("headers")
        .and_then(Value::as_object)
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
        topic: meta
            .get("topic")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string(),
        partition: 0,
        offset: 7,
        key: meta
            .get("key")
            .and_then(Value::as_str)
            .map(|k| k.as_bytes().to_vec()),
        value: Some(value),
        headers,
        timestamp_ms: meta.get("timestamp").and_then(Value::as_i64),
    }
}

struct Expect {
    name: &'static str,
    event_type: Option<&'static str>,
    aggregate_id: Option<&'static str>,
    occurred_ms: Option<i64>,
    /// A value from the row the projector would apply (`after`, else `before`), or the payload.
    probe: (&'static str, Value),
}

const CHANGE: &[(&str, ChangeOp)] = &[
    ("mysql-create.with-schema", ChangeOp::Create),
    ("mysql-delete.with-schema", ChangeOp::Delete),
    ("mysql-snapshot-read.engine", ChangeOp::Read),
    ("mysql-snapshot-read.with-schema.docs", ChangeOp::Read),
    ("mysql-update.engine", ChangeOp::Update),
    ("mysql-update.with-schema", ChangeOp::Update),
    ("outbox-raw-create.v0.9", ChangeOp::Create),
    ("pg-create", ChangeOp::Create),
    ("pg-create.with-schema.docs", ChangeOp::Create),
    ("pg-delete.docs", ChangeOp::Delete),
    ("pg-delete", ChangeOp::Delete),
    ("pg-delete.with-schema", ChangeOp::Delete),
    ("pg-message.docs", ChangeOp::Message),
    ("pg-snapshot-read", ChangeOp::Read),
    ("pg-snapshot-read.with-schema", ChangeOp::Read),
    ("pg-truncate.docs", ChangeOp::Truncate),
    ("pg-update.docs", ChangeOp::Update),
    ("pg-update", ChangeOp::Update),
];

fn expectations() -> Vec<Expect> {
    let e = |name, event_type, aggregate_id, occurred_ms, probe: (&'static str, Value)| Expect {
        name,
        event_type,
        aggregate_id,
        occurred_ms,
        probe,
    };
    vec![
        e(
            "mysql-create.with-schema",
            Some("customers.c"),
            Some("1005"),
            Some(1_490_635_153_000),
            ("id", json!(1005)),
        ),
        e(
            "mysql-delete.with-schema",
            Some("customers.d"),
            Some("1004"),
            Some(1_490_635_100_000),
            ("id", json!(1004)),
        ),
        e(
            "mysql-snapshot-read.engine",
            Some("customers.r"),
            None,
            Some(1_731_327_511_000),
            ("email", json!("annek@noanswer.org")),
        ),
        e(
            "mysql-snapshot-read.with-schema.docs",
            Some("customers.r"),
            Some("1004"),
            Some(1_486_500_577_691),
            ("first_name", json!("Anne")),
        ),
        e(
            "mysql-update.engine",
            Some("customers.u"),
            None,
            Some(1_731_327_659_000),
            ("id", json!(1001)),
        ),
        e(
            "mysql-update.with-schema",
            Some("customers.u"),
            Some("1004"),
            Some(1_490_635_059_000),
            ("id", json!(1004)),
        ),
        e(
            "outbox-raw-create.v0.9",
            Some("outboxevent.c"),
            Some("406c07f3-26f0-4eea-a50c-109940064b8f"),
            Some(1_556_890_294_448),
            ("type", json!("OrderCreated")),
        ),
        e(
            "pg-create",
            Some("products.c"),
            None,
            Some(1_596_010_946_488),
            ("name", json!("jacket")),
        ),
        e(
            "pg-create.with-schema.docs",
            Some("customers.c"),
            None,
            Some(1_559_033_904_863),
            ("id", json!(1)),
        ),
        e(
            "pg-delete.docs",
            Some("customers.d"),
            None,
            Some(1_559_033_904_863),
            ("id", json!(1)),
        ),
        e(
            "pg-delete",
            Some("products.d"),
            None,
            Some(1_596_010_988_168),
            ("description", json!("Big 2-wheel scooter ")),
        ),
        e(
            "pg-delete.with-schema",
            Some("products.d"),
            None,
            Some(1_596_010_988_168),
            ("id", json!(111)),
        ),
        e(
            "pg-message.docs",
            Some("foo.m"),
            None,
            Some(1_559_033_904_863),
            ("op", json!("m")),
        ),
        e(
            "pg-snapshot-read",
            Some("products.r"),
            None,
            Some(1_596_001_099_434),
            ("id", json!(101)),
        ),
        e(
            "pg-snapshot-read.with-schema",
            Some("products.r"),
            None,
            Some(1_596_001_099_434),
            ("id", json!(101)),
        ),
        e(
            "pg-truncate.docs",
            Some("customers.t"),
            None,
            Some(1_559_033_904_863),
            ("op", json!("t")),
        ),
        e(
            "pg-update.docs",
            Some("customers.u"),
            None,
            Some(1_559_033_904_863),
            ("first_name", json!("Anne Marie")),
        ),
        e(
            "pg-update",
            Some("products.u"),
            None,
            Some(1_596_010_889_629),
            ("id", json!(106)),
        ),
        e(
            "outbox-router.expanded-json",
            None,
            Some("1"),
            Some(1_556_890_294_484),
            ("customerId", json!(123)),
        ),
        e(
            "outbox-router.v0.9-eventtype-envelope",
            Some("OrderCreated"),
            Some("1"),
            Some(1_556_890_294_484),
            ("orderDate", json!("2019-01-31T12:13:01")),
        ),
    ]
}

#[test]
fn every_fixture_is_covered() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && !n.ends_with(".meta.json"))
        .map(|n| n.trim_end_matches(".json").to_string())
        .collect();
    on_disk.sort();
    let mut covered: Vec<String> = expectations().iter().map(|e| e.name.to_string()).collect();
    covered.push("mysql-tombstone.legacy-envelope".into());
    covered.sort();
    assert_eq!(on_disk, covered, "each fixture needs an expectation here");
}

#[test]
fn decodes_every_fixture() {
    for exp in expectations() {
        let rec = fixture(exp.name);
        let ev = decode(&rec).unwrap_or_else(|e| panic!("{}: {e}", exp.name));
        assert_eq!(
            ev.event_type.as_deref(),
            exp.event_type,
            "{} event type",
            exp.name
        );
        assert_eq!(
            ev.aggregate_id.as_deref(),
            exp.aggregate_id,
            "{} aggregate id",
            exp.name
        );
        assert_eq!(
            ev.occurred_at.map(|t| t.timestamp_millis()),
            exp.occurred_ms,
            "{} occurred at",
            exp.name
        );
        let (field, want) = &exp.probe;
        let got = match &ev.change {
            Some(c) => c
                .after
                .as_ref()
                .or(c.before.as_ref())
                .and_then(|row| row.get(*field))
                .or_else(|| ev.payload.get(*field)),
            None => ev.payload.get(*field),
        };
        assert_eq!(got, Some(want), "{} field {field}", exp.name);
        // Decoding is deterministic: the same record gives the same id (dedup on redelivery).
        assert_eq!(decode(&rec).unwrap().event_id, ev.event_id, "{}", exp.name);
        match CHANGE.iter().find(|(n, _)| *n == exp.name) {
            Some((_, op)) => {
                assert_eq!(ev.format, Format::Change, "{}", exp.name);
                assert_eq!(ev.change.as_ref().map(|c| c.op), Some(*op), "{}", exp.name);
            }
            None => assert!(ev.change.is_none(), "{}", exp.name),
        }
    }
}

#[test]
fn router_output_keeps_the_outbox_id_and_expands_string_payloads() {
    let ev = decode(&fixture("outbox-router.expanded-json")).unwrap();
    assert_eq!(ev.format, Format::OutboxRouter);
    assert_eq!(
        ev.event_id.to_string(),
        "4d47e190-0402-4048-bc2c-89dd54343cdc"
    );
    assert_eq!(ev.aggregate_type.as_deref(), Some("order"));
    let v09 = decode(&fixture("outbox-router.v0.9-eventtype-envelope")).unwrap();
    assert_eq!(v09.format, Format::OutboxRouterEventType);
    // The 0.9 payload was an escaped JSON string; both decode to the same document.
    assert_eq!(v09.payload, ev.payload);
    assert_eq!(v09.event_id, ev.event_id);
}

#[test]
fn change_event_ids_differ_per_change_and_ignore_the_wrapper() {
    let bare = decode(&fixture("pg-delete")).unwrap();
    let wrapped = decode(&fixture("pg-delete.with-schema")).unwrap();
    assert_eq!(bare.event_id, wrapped.event_id, "same change, same id");
    assert_eq!(bare.payload, wrapped.payload);
    let other = decode(&fixture("pg-create")).unwrap();
    assert_ne!(bare.event_id, other.event_id);
    assert_eq!(bare.change.unwrap().after, None);
}

#[test]
fn tombstones_null_and_legacy() {
    let legacy = decode(&fixture("mysql-tombstone.legacy-envelope")).unwrap();
    assert_eq!(legacy.format, Format::Tombstone);
    assert_eq!(legacy.aggregate_id.as_deref(), Some("1004"));
    let mut rec = fixture("mysql-delete.with-schema");
    rec.value = None;
    let null = decode(&rec).unwrap();
    assert_eq!(null.format, Format::Tombstone);
    assert_eq!(null.aggregate_id.as_deref(), Some("1004"));
    assert_eq!(null.payload, Value::Null);
}

#[test]
fn strangler_envelope_and_relay_output() {
    let env = EventEnvelope {
        id: Uuid::new_v4(),
        aggregate_type: "order".into(),
        aggregate_id: "42".into(),
        event_type: "OrderPlaced".into(),
        payload: json!({"total": 10}),
        occurred_at: ms_to_time(1_700_000_000_000),
        headers: Default::default(),
    };
    let header = |n: &str, v: &str| Header {
        name: n.into(),
        value: v.as_bytes().to_vec(),
    };
    let mut rec = Record {
        topic: "outbox.event.order".into(),
        partition: 1,
        offset: 3,
        key: Some(b"42".to_vec()),
        value: Some(serde_json::to_vec(&env).unwrap()),
        headers: vec![
            header("id", &env.id.to_string()),
            header("type", "OrderPlaced"),
        ],
        timestamp_ms: Some(1_700_000_000_000),
    };
    let ev = decode(&rec).unwrap();
    assert_eq!(ev.format, Format::Envelope);
    assert_eq!(
        (ev.event_id, ev.payload.clone()),
        (env.id, env.payload.clone())
    );
    // The relay's default value: the payload alone, with id and type headers, key = aggregate id.
    rec.value = Some(br#"{"total": 10}"#.to_vec());
    let ev = decode(&rec).unwrap();
    assert_eq!(ev.format, Format::OutboxRouter);
    assert_eq!(ev.event_id, env.id);
    assert_eq!(ev.event_type.as_deref(), Some("OrderPlaced"));
    assert_eq!(ev.aggregate_id.as_deref(), Some("42"));
    assert_eq!(ev.aggregate_type.as_deref(), Some("order"));
}

#[test]
fn rejects_what_it_cannot_read() {
    let mut rec = fixture("outbox-router.expanded-json");
    rec.value = Some(b"not json".to_vec());
    assert!(matches!(decode(&rec), Err(DecodeError::NotJson(_))));
    rec.value = Some(b"{}".to_vec());
    rec.headers[0].value = b"nope".to_vec();
    assert_eq!(decode(&rec), Err(DecodeError::BadId("nope".into())));
    rec.headers.clear();
    assert!(matches!(decode(&rec), Err(DecodeError::UnknownFormat(_))));
    rec.value = Some(br#"{"op":"x","source":{}}"#.to_vec());
    assert_eq!(decode(&rec), Err(DecodeError::UnknownOp("x".into())));
}
