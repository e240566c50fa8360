//! The records this crate writes against Debezium's real messages (tests/fixtures/debezium): the
//! same fields with the same JSON types, and they decode through `strangler_bus::debezium`, the
//! code path that reads the real ones.

use std::collections::BTreeSet;

use serde_json::Value;
use strangler_bus::Record;
use strangler_bus::debezium::{ChangeOp, Format, decode};

use super::*;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/debezium/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).expect(&path)).expect("fixture is JSON")
}

fn products() -> TableInfo {
    TableInfo {
        oid: 1,
        schema: "inventory".into(),
        table: "products".into(),
        columns: vec![
            ("id".into(), 23, "integer".into()),
            ("name".into(), 25, "text".into()),
            ("weight".into(), 701, "double precision".into()),
        ],
        key: vec!["id".into()],
        topic: "fullfillment.inventory.products".into(),
    }
}

fn source(snapshot: &'static str) -> SourceInfo {
    SourceInfo {
        name: "fullfillment".into(),
        db: "postgres".into(),
        ts_ms: 1_596_010_889_629,
        snapshot,
        tx_id: Some(602),
        lsn: Some(34_131_104),
    }
}

fn row(id: &str, name: &str) -> Map<String, Value> {
    let t = products();
    let names: Vec<(String, u32)> = t.columns.iter().map(|(n, o, _)| (n.clone(), *o)).collect();
    row_json(
        &names,
        &[
            Cell::Text(id.into()),
            Cell::Text(name.into()),
            Cell::Text("1.0".into()),
        ],
    )
}

fn consumed(r: &OutgoingRecord) -> Record {
    Record {
        topic: r.topic.clone(),
        partition: 0,
        offset: 3,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: Vec::new(),
        timestamp_ms: r.timestamp_ms,
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .expect("object")
        .keys()
        .filter(|k| !matches!(k.as_str(), "ts_us" | "ts_ns"))
        .cloned()
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Same fields at the top and in `source`, and every `source` field has the fixture's JSON type.
fn assert_same_shape(ours: &Value, theirs: &Value) {
    assert_eq!(keys(ours), keys(theirs), "top-level fields");
    assert_eq!(
        keys(&ours["source"]),
        keys(&theirs["source"]),
        "source fields"
    );
    for (k, v) in theirs["source"].as_object().unwrap() {
        if v.is_null() || matches!(k.as_str(), "snapshot" | "ts_us" | "ts_ns") {
            continue; // xmin is null in both; snapshot is a string here and a bool in new docs
        }
        assert_eq!(kind(&ours["source"][k]), kind(v), "source.{k}");
    }
    assert_eq!(kind(&ours["source"]["snapshot"]), "string");
}

fn value(r: &OutgoingRecord) -> Value {
    serde_json::from_slice(r.value.as_deref().unwrap()).unwrap()
}

#[test]
fn update_matches_the_real_capture_and_decodes_like_it() {
    let rec = change(
        &products(),
        RowOp::Update,
        Some(row("106", "hammer")),
        Some(row("106", "big hammer")),
        &source("false"),
        1_596_010_890_411,
    );
    let theirs = fixture("pg-update");
    assert_same_shape(&value(&rec), &theirs);
    assert_eq!(rec.topic, "fullfillment.inventory.products");
    assert_eq!(rec.key.as_deref(), Some(&br#"{"id":106}"#[..]));

    let ours = decode(&consumed(&rec)).unwrap();
    let real = decode(&Record {
        value: Some(serde_json::to_vec(&theirs).unwrap()),
        ..consumed(&rec)
    })
    .unwrap();
    assert_eq!(ours.format, Format::Change);
    assert_eq!(ours.event_type, real.event_type, "products.u on both");
    assert_eq!(ours.aggregate_id.as_deref(), Some("106"));
    assert_eq!(
        ours.occurred_at, real.occurred_at,
        "source.ts_ms read alike"
    );
    let change = ours.change.unwrap();
    assert_eq!(change.op, ChangeOp::Update);
    assert_eq!(change.after.unwrap()["name"], "big hammer");
}

#[test]
fn create_read_and_delete_match_their_captures() {
    let cases = [
        (RowOp::Create, "pg-create", "false", ChangeOp::Create),
        (
            RowOp::Read,
            "pg-snapshot-read",
            "incremental",
            ChangeOp::Read,
        ),
        (RowOp::Delete, "pg-delete", "false", ChangeOp::Delete),
    ];
    for (op, name, snapshot, decoded_op) in cases {
        let (before, after) = match op {
            RowOp::Delete => (Some(row("111", "scooter")), None),
            _ => (None, Some(row("110", "jacket"))),
        };
        let rec = change(&products(), op, before, after, &source(snapshot), 1);
        assert_same_shape(&value(&rec), &fixture(name));
        let d = decode(&consumed(&rec)).unwrap();
        assert_eq!(d.change.unwrap().op, decoded_op, "{name}");
    }
}

#[test]
fn the_tombstone_after_a_delete_decodes_under_the_deletes_key() {
    let del = change(
        &products(),
        RowOp::Delete,
        Some(row("111", "scooter")),
        None,
        &source("false"),
        1,
    );
    let t = decode(&consumed(&tombstone(&del))).unwrap();
    assert_eq!(t.format, Format::Tombstone);
    assert_eq!(t.aggregate_id.as_deref(), Some("111"));
}

#[test]
fn truncate_and_message_match_the_documented_events() {
    let t = truncate(&products(), &source("false"), 1);
    assert_same_shape(&value(&t), &fixture("pg-truncate.docs"));
    assert_eq!(t.key, None, "the docs: a truncate has no key");
    assert_eq!(
        decode(&consumed(&t)).unwrap().change.unwrap().op,
        ChangeOp::Truncate
    );

    // The documented content "Ymfy" is base64 of these bytes.
    let m = message(
        "fullfillment.message",
        "foo",
        &[0x62, 0x67, 0xf2],
        &source("false"),
        1,
    );
    let theirs = fixture("pg-message.docs");
    assert_same_shape(&value(&m), &theirs);
    assert_eq!(
        value(&m)["message"],
        theirs["message"],
        "prefix and base64 content as documented"
    );
    assert_eq!(value(&m)["source"]["table"], "");
    let d = decode(&consumed(&m)).unwrap();
    assert_eq!(d.change.unwrap().op, ChangeOp::Message);
    assert_eq!(d.aggregate_type.as_deref(), Some("foo"));
}

#[test]
fn unchanged_toast_gets_debeziums_placeholder_and_keys_follow_the_primary_key() {
    let r = row_json(
        &[("id".into(), 20), ("doc".into(), 25)],
        &[Cell::Text("9".into()), Cell::Unchanged],
    );
    assert_eq!(r["doc"], UNAVAILABLE);
    assert_eq!(key_of(&["id".into()], &r).unwrap(), br#"{"id":9}"#.to_vec());
    assert_eq!(key_of(&[], &r), None);
}
