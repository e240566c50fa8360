//! Registry, check and compatibility tests on registries written to temporary folders.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::compat::{ChangeKind, compare};
use crate::schema_registry::{self, SubjectNaming};
use crate::{EventRef, Registry, ViolationKind};

fn write(dir: &Path, rel: &str, v: &Value) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

fn v1() -> Value {
    json!({
        "description": "a customer placed an order",
        "type": "object",
        "required": ["order_id", "total"],
        "properties": {
            "order_id": {"type": "string"},
            "total": {"type": "number"},
            "status": {"enum": ["open", "paid"]},
            "customer": {"type": "object", "properties": {"name": {"type": "string"}}}
        }
    })
}

fn with(mut base: Value, f: impl FnOnce(&mut Value)) -> Value {
    f(&mut base);
    base
}

fn ev<'a>(ty: &'a str, version: Option<&'a str>, payload: &'a Value) -> EventRef<'a> {
    EventRef {
        aggregate: None,
        topic: Some("outbox.event.order"),
        event_type: Some(ty),
        version,
        payload,
    }
}

fn registry(files: &[(&str, Value)]) -> (tempfile::TempDir, crate::Result<Registry>) {
    let dir = tempfile::tempdir().unwrap();
    for (rel, v) in files {
        write(dir.path(), rel, v);
    }
    let r = Registry::load_dir(dir.path());
    (dir, r)
}

fn v2_channel(upcast: bool) -> Value {
    with(v1(), |s| {
        s["properties"]["channel"] = json!({"type": "string"});
        s["required"] = json!(["order_id", "total", "channel"]);
        if upcast {
            s["x-strangler"] = json!({"upcast": [{"add": "/channel", "default": "web"}]});
        }
    })
}

#[test]
fn the_repository_registry_loads_and_the_demo_payload_upcasts_to_v2() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    let reg = Registry::load_dir(&root).unwrap();
    let placed = reg.get("order", "OrderPlaced").unwrap();
    assert_eq!(placed.current().version, 2);
    assert!(!placed.current().meta.does_not_imply.is_empty());
    // The payload the demo's legacy writer puts in the outbox (v1: no sales_channel).
    let payload = json!({
        "order_id": "o-1a2b", "customer_id": "c-3", "status": "open", "currency": "EUR",
        "items": [{"sku": "SKU-0001", "qty": 2, "price": 10.5}],
        "subtotal": 21.0, "tax": 4.2, "total": 25.2, "occurred_at": "2026-01-02T03:04:05.123456Z"
    });
    let c = reg
        .check(&ev("OrderPlaced", None, &payload))
        .unwrap()
        .unwrap();
    assert_eq!((c.from_version, c.to_version, c.inferred), (1, 2, true));
    assert_eq!(c.payload["sales_channel"], "web");
    let bad = with(payload, |p| p["currency"] = json!("eur "));
    let v = reg.check(&ev("OrderPlaced", None, &bad)).unwrap_err();
    assert!(
        matches!(v.kind, ViolationKind::NoVersionMatches { .. }),
        "{v}"
    );
    assert!(v.to_string().contains("/currency"), "{v}");
}

#[test]
fn old_events_upcast_through_declared_steps_and_fail_clearly_without_them() {
    let old = json!({"order_id": "o-1", "total": 3});
    let new = json!({"order_id": "o-2", "total": 4, "channel": "app"});

    let (_d, reg) = registry(&[
        ("order/OrderPlaced.v1.json", v1()),
        ("order/OrderPlaced.v2.json", v2_channel(true)),
    ]);
    let reg = reg.unwrap();
    let c = reg.check(&ev("OrderPlaced", None, &old)).unwrap().unwrap();
    assert_eq!(
        c.payload,
        json!({"order_id": "o-1", "total": 3, "channel": "web"})
    );
    let c = reg
        .check(&ev("OrderPlaced", Some("1"), &old))
        .unwrap()
        .unwrap();
    assert_eq!((c.from_version, c.inferred), (1, false));
    let c = reg.check(&ev("OrderPlaced", None, &new)).unwrap().unwrap();
    assert_eq!((c.from_version, c.payload.clone()), (2, new.clone()));

    let (_d, reg) = registry(&[
        ("order/OrderPlaced.v1.json", v1()),
        ("order/OrderPlaced.v2.json", v2_channel(false)),
    ]);
    let reg = reg.unwrap();
    let v = reg.check(&ev("OrderPlaced", None, &old)).unwrap_err();
    let text = v.to_string();
    assert!(
        matches!(
            v.kind,
            ViolationKind::NotCurrentAfterUpcast {
                from_version: 1,
                to_version: 2,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("channel") && text.contains("no upcaster: v2 declares no"),
        "{text}"
    );
    assert_eq!(v.rule(), "OrderPlaced.v2.json#/required");
    assert!(reg.check(&ev("OrderPlaced", None, &new)).is_ok());

    // A declared version is believed: a v2 payload that lacks the field is invalid, and an
    // unknown version is named.
    let v = reg.check(&ev("OrderPlaced", Some("2"), &old)).unwrap_err();
    assert!(
        matches!(v.kind, ViolationKind::Invalid { version: 2, .. }),
        "{v}"
    );
    let v = reg.check(&ev("OrderPlaced", Some("7"), &old)).unwrap_err();
    assert!(
        v.to_string().contains("version `7`") && v.to_string().contains("v1, v2"),
        "{v}"
    );
    // Types without a contract are not the registry's business.
    assert_eq!(reg.check(&ev("OrderLost", None, &old)).unwrap(), None);
}

#[test]
fn code_steps_run_once_registered() {
    let v2 = with(v2_channel(false), |s| {
        s["x-strangler"] = json!({"upcast": [{"code": "channel_from_total"}]});
    });
    let (_d, reg) = registry(&[
        ("order/OrderPlaced.v1.json", v1()),
        ("order/OrderPlaced.v2.json", v2),
    ]);
    let mut reg = reg.unwrap();
    assert_eq!(reg.unregistered_code_steps().len(), 1);
    let old = json!({"order_id": "o-1", "total": 300});
    let v = reg.check(&ev("OrderPlaced", None, &old)).unwrap_err();
    assert!(v.to_string().contains("not registered"), "{v}");
    let n = reg.register_code_step("channel_from_total", |p: &mut Value| {
        let big = p["total"].as_f64().ok_or("no total")? > 100.0;
        p["channel"] = json!(if big { "phone" } else { "web" });
        Ok(())
    });
    assert_eq!(n, 1);
    assert!(reg.unregistered_code_steps().is_empty());
    let c = reg.check(&ev("OrderPlaced", None, &old)).unwrap().unwrap();
    assert_eq!(c.payload["channel"], "phone");
}

#[test]
fn broken_registries_list_every_problem_with_the_file() {
    let (_d, r) = registry(&[
        (
            "order/OrderPlaced.v1.json",
            json!({"type": "object", "x-strangler": {"colour": 1}}),
        ),
        ("order/OrderShipped.v3.json", json!({"type": "object"})),
        ("order/Refunded.json", json!({"type": "object"})),
        ("order/Broken.v1.json", json!({"type": "objekt"})),
        (
            "order/Early.v1.json",
            json!({"x-strangler": {"upcast": [{"add": "/a", "default": 1}]}}),
        ),
        ("Loose.v1.json", json!({})),
    ]);
    let text = r.unwrap_err().to_string();
    for needle in [
        "`/x-strangler/colour`: unknown key",
        "has v3 but no v1",
        "Refunded.json: the name does not say the event type and version",
        "Broken.v1.json",
        "not a valid JSON Schema",
        "version 1 has no previous version",
        "Loose.v1.json: contract files live in a folder named after their aggregate",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn an_event_type_under_two_aggregates_is_picked_by_topic_or_named_as_ambiguous() {
    let s = json!({"type": "object", "required": ["a"]});
    let (_d, reg) = registry(&[
        ("order/Created.v1.json", s.clone()),
        (
            "invoice/Created.v1.json",
            with(s, |s| s["required"] = json!(["b"])),
        ),
    ]);
    let reg = reg.unwrap();
    let p = json!({"b": 1});
    let c = reg
        .check(&EventRef {
            aggregate: None,
            topic: Some("outbox.event.invoice"),
            event_type: Some("Created"),
            version: None,
            payload: &p,
        })
        .unwrap()
        .unwrap();
    assert_eq!(c.contract, "invoice/Created");
    let v = reg
        .check(&EventRef {
            aggregate: None,
            topic: Some("misc"),
            event_type: Some("Created"),
            version: None,
            payload: &p,
        })
        .unwrap_err();
    assert!(
        v.to_string().contains("invoice/Created, order/Created"),
        "{v}"
    );
}

fn kinds(old: Value, new: Value) -> Vec<(ChangeKind, String)> {
    let (_d, reg) = registry(&[("order/E.v1.json", old), ("order/E.v2.json", new)]);
    let reg = reg.unwrap();
    let e = reg.get("order", "E").unwrap();
    compare(&e.versions[&1], &e.versions[&2])
        .into_iter()
        .map(|c| (c.kind, c.path))
        .collect()
}

#[test]
fn compatibility_flags_each_kind_of_breaking_change() {
    use ChangeKind::*;
    assert_eq!(
        kinds(
            v1(),
            with(v1(), |s| {
                s["properties"].as_object_mut().unwrap().remove("status");
            })
        ),
        vec![(RemovedField, "/status".into())]
    );
    assert_eq!(
        kinds(
            v1(),
            with(v1(), |s| s["properties"]["total"] =
                json!({"type": "string"}))
        ),
        vec![(RetypedField, "/total".into())]
    );
    assert_eq!(
        kinds(
            v1(),
            with(
                v1(),
                |s| s["properties"]["customer"]["properties"]["name"] = json!({"type": "integer"})
            )
        ),
        vec![(RetypedField, "/customer/name".into())]
    );
    assert_eq!(
        kinds(v1(), v2_channel(false)),
        vec![(NewRequiredField, "/channel".into())]
    );
    assert_eq!(
        kinds(
            v1(),
            with(v1(), |s| s["required"] =
                json!(["order_id", "total", "status"]))
        ),
        vec![(NewRequiredField, "/status".into())]
    );
    assert_eq!(
        kinds(
            v1(),
            with(v1(), |s| s["properties"]["status"] =
                json!({"enum": ["open", "settled"]}))
        ),
        vec![(ChangedEnum, "/status".into())]
    );
    assert_eq!(
        kinds(
            v1(),
            with(v1(), |s| s["additionalProperties"] = json!(false))
        ),
        vec![(ClosedObject, "".into())]
    );
    let arr = |t: &str| json!({"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": t}}}}}});
    assert_eq!(
        kinds(arr("string"), arr("integer")),
        vec![(RetypedField, "/items/[]/sku".into())]
    );
}

#[test]
fn compatibility_passes_additions_widenings_and_changes_an_upcaster_handles() {
    use ChangeKind::*;
    // A new optional field.
    assert!(
        kinds(
            v1(),
            with(v1(), |s| s["properties"]["note"] =
                json!({"type": "string"}))
        )
        .is_empty()
    );
    // A new required field with an `add` step.
    assert!(kinds(v1(), v2_channel(true)).is_empty());
    // integer -> number widens.
    let n = |t: &str| json!({"type": "object", "properties": {"qty": {"type": t}}});
    assert!(kinds(n("integer"), n("number")).is_empty());
    // A rename, a split and a retype with their steps.
    let renamed = with(v1(), |s| {
        let p = s["properties"].as_object_mut().unwrap();
        let total = p.remove("total").unwrap();
        p.insert("amount".into(), total);
        s["required"] = json!(["order_id", "amount"]);
        s["x-strangler"] = json!({"upcast": [{"rename": "/total", "to": "/amount"}]});
    });
    assert!(kinds(v1(), renamed).is_empty());
    let cents = with(v1(), |s| {
        s["properties"]["total"] = json!({"type": "integer"});
        s["x-strangler"] =
            json!({"upcast": [{"convert": "/total", "scale": 100, "to": "integer"}]});
    });
    assert!(kinds(v1(), cents).is_empty());
    // An added enum value is a warning only.
    let k = kinds(
        v1(),
        with(v1(), |s| {
            s["properties"]["status"] = json!({"enum": ["open", "paid", "held"]})
        }),
    );
    assert_eq!(k, vec![(AddedEnumValue, "/status".into())]);
    assert!(!AddedEnumValue.breaking());
}

#[test]
fn schema_registry_subjects_load_as_json_schema_and_avro() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "subjects/outbox.event.order-OrderPlaced/versions/1.json",
        &json!({
            "subject": "outbox.event.order-OrderPlaced", "version": 1, "id": 11, "schemaType": "JSON",
            "schema": v1().to_string()
        }),
    );
    write(
        d,
        "subjects/outbox.event.order-OrderPlaced/versions/2.json",
        &v2_channel(true),
    );
    let avro = |fields: Value| {
        json!({"type": "record", "name": "Invoiced", "namespace": "invoice", "fields": fields})
            .to_string()
    };
    write(
        d,
        "subjects/outbox.event.invoice-Invoiced/versions/1.json",
        &json!({"subject": "outbox.event.invoice-Invoiced", "version": 1, "id": 21,
        "schema": avro(json!([{"name": "invoice_id", "type": "string"}, {"name": "amount", "type": "double"}]))}),
    );
    write(
        d,
        "subjects/outbox.event.invoice-Invoiced/versions/2.json",
        &json!({"subject": "outbox.event.invoice-Invoiced", "version": 2, "id": 22,
        "schema": avro(json!([{"name": "invoice_id", "type": "string"}, {"name": "amount", "type": "double"},
            {"name": "currency", "type": {"type": "enum", "name": "Cur", "symbols": ["EUR", "USD"]}, "default": "EUR"},
            {"name": "note", "type": ["null", "string"], "default": null}]))}),
    );
    let naming = SubjectNaming::TopicRecord {
        topic_template: "outbox.event.{aggregatetype}".into(),
    };
    let reg = schema_registry::load(d, &naming).unwrap();
    let old = json!({"order_id": "o-1", "total": 3});
    assert_eq!(
        reg.check(&ev("OrderPlaced", None, &old))
            .unwrap()
            .unwrap()
            .payload["channel"],
        "web"
    );
    let inv = json!({"invoice_id": "i-1", "amount": 9.5});
    let c = reg.check(&ev("Invoiced", None, &inv)).unwrap().unwrap();
    assert_eq!((c.from_version, c.to_version), (1, 2));
    assert_eq!(
        c.payload,
        json!({"invoice_id": "i-1", "amount": 9.5, "currency": "EUR", "note": null})
    );
    let bad = json!({"invoice_id": "i-1", "amount": "9.5"});
    assert!(reg.check(&ev("Invoiced", None, &bad)).is_err());

    write(
        d,
        "subjects/outbox.event.invoice-Paid/versions/1.json",
        &json!({"schemaType": "PROTOBUF", "schema": "\"syntax = proto3\""}),
    );
    write(d, "subjects/not-a-topic/versions/1.json", &json!({}));
    let text = schema_registry::load(d, &naming).unwrap_err().to_string();
    assert!(
        text.contains("schemaType PROTOBUF is not supported"),
        "{text}"
    );
    assert!(
        text.contains("subject `not-a-topic` does not follow"),
        "{text}"
    );
    assert_eq!(
        SubjectNaming::Record.split("order.OrderPlaced"),
        Some(("order".into(), "OrderPlaced".into()))
    );
}
