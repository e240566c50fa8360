//! One outbox row and the record it becomes (pure: no I/O).

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use strangler_bus::{Header, OutgoingRecord};
use strangler_core::config::{OutboxConfig, OutboxValue};
use strangler_core::event::EventEnvelope;
use uuid::Uuid;

/// An outbox row as read, every column as text.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// PostgreSQL: the writing transaction's id (`transaction_id`); 0 elsewhere.
    pub tx: i64,
    /// The scan-order key `seq`; with `tx`, what the relay deletes or marks by.
    pub seq: i64,
    /// Event id (`id`).
    pub id: Option<String>,
    /// Aggregate type (`aggregatetype`).
    pub aggregate_type: Option<String>,
    /// Aggregate id (`aggregateid`), the record key.
    pub aggregate_id: Option<String>,
    /// Event type (`type`).
    pub event_type: Option<String>,
    /// Payload text (JSON), `None` for SQL NULL (published as a tombstone).
    pub payload: Option<String>,
    /// The timestamp column in milliseconds since the epoch, when configured.
    pub timestamp_ms: Option<i64>,
    /// Header columns (tracing context, then `additional_headers`), name and value.
    pub headers: Vec<(String, Option<String>)>,
}

/// What a row becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOutcome {
    /// A record to publish.
    Publish(OutgoingRecord),
    /// A row that cannot be published, and why.
    Bad(String),
}

/// Kafka's rule for topic names: 1-249 of `[A-Za-z0-9._-]`, not `.` or `..`.
fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Turns a row into the record Debezium's Outbox Event Router would have produced: topic from
/// the template, key = aggregate id, value = payload (or strangler's full envelope), headers
/// `id`, `type` and the header columns.
pub fn to_record(row: &OutboxRow, cfg: &OutboxConfig) -> RowOutcome {
    to_record_from(row, cfg, false)
}

/// [`to_record`], told whether the database already guarantees the payload is JSON (a `json`
/// or `jsonb` column in PostgreSQL rejects anything else on insert): then it is published as
/// read, without parsing it again.
pub(crate) fn to_record_from(
    row: &OutboxRow,
    cfg: &OutboxConfig,
    payload_is_json: bool,
) -> RowOutcome {
    let Some(id_text) = row.id.as_deref().filter(|s| !s.is_empty()) else {
        return RowOutcome::Bad("missing event id".into());
    };
    let Ok(id) = Uuid::parse_str(id_text) else {
        return RowOutcome::Bad(format!("event id `{id_text}` is not a uuid"));
    };
    let Some(aggregate_id) = row.aggregate_id.as_deref().filter(|s| !s.is_empty()) else {
        return RowOutcome::Bad("missing aggregate id".into());
    };
    let aggregate_type = row.aggregate_type.as_deref().unwrap_or_default();
    if aggregate_type.is_empty() {
        return RowOutcome::Bad("missing aggregate type: no topic to route to".into());
    }
    let topic = cfg
        .topic_template
        .replace("{aggregatetype}", aggregate_type);
    if !valid_topic(&topic) {
        return RowOutcome::Bad(format!(
            "aggregate type `{aggregate_type}` routes to `{topic}`, which is not a valid topic name"
        ));
    }
    let event_type = row.event_type.clone().unwrap_or_default();
    // The payload is published as it is, so checking that it is JSON need not build a tree;
    // only the envelope needs the parsed value.
    let payload = match (row.payload.as_deref(), cfg.value) {
        (None, _) => None,
        (Some(text), OutboxValue::Payload) if payload_is_json => {
            Some((text, serde_json::Value::Null))
        }
        (Some(text), OutboxValue::Payload) => {
            match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => Some((text, serde_json::Value::Null)),
                Err(e) => return RowOutcome::Bad(format!("payload is not JSON: {e}")),
            }
        }
        (Some(text), OutboxValue::Envelope) => {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => Some((text, v)),
                Err(e) => return RowOutcome::Bad(format!("payload is not JSON: {e}")),
            }
        }
    };
    let extra: Vec<(String, String)> = row
        .headers
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect();
    let value = match cfg.value {
        OutboxValue::Payload => payload.map(|(text, _)| text.as_bytes().to_vec()),
        OutboxValue::Envelope => {
            let env = EventEnvelope {
                id,
                aggregate_type: aggregate_type.to_string(),
                aggregate_id: aggregate_id.to_string(),
                event_type: event_type.clone(),
                payload: payload.map(|(_, v)| v).unwrap_or(serde_json::Value::Null),
                occurred_at: row
                    .timestamp_ms
                    .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
                headers: extra.iter().cloned().collect::<BTreeMap<_, _>>(),
            };
            Some(serde_json::to_vec(&env).expect("an envelope always serializes"))
        }
    };
    let mut headers = Vec::with_capacity(2 + extra.len());
    headers.push(Header {
        name: "id".into(),
        value: id.to_string().into_bytes(),
    });
    headers.push(Header {
        name: "type".into(),
        value: event_type.into_bytes(),
    });
    headers.extend(extra.into_iter().map(|(name, v)| Header {
        name,
        value: v.into_bytes(),
    }));
    RowOutcome::Publish(OutgoingRecord {
        topic,
        key: Some(aggregate_id.as_bytes().to_vec()),
        value,
        headers,
        timestamp_ms: row.timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> OutboxRow {
        OutboxRow {
            tx: 0,
            seq: 1,
            id: Some("4d47e190-0402-4048-bc2c-89dd54343cdc".into()),
            aggregate_type: Some("order".into()),
            aggregate_id: Some("1".into()),
            event_type: Some("OrderCreated".into()),
            payload: Some(r#"{"id": 1}"#.into()),
            timestamp_ms: Some(1_556_890_294_484),
            headers: vec![
                ("tracingspancontext".into(), Some("ctx".into())),
                ("tenant".into(), None),
            ],
        }
    }

    #[test]
    fn a_row_becomes_the_routers_record() {
        let RowOutcome::Publish(rec) = to_record(&row(), &OutboxConfig::default()) else {
            panic!("good row")
        };
        assert_eq!(rec.topic, "outbox.event.order");
        assert_eq!(rec.key.as_deref(), Some(&b"1"[..]));
        assert_eq!(rec.value.as_deref(), Some(&br#"{"id": 1}"#[..]));
        let names: Vec<_> = rec.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["id", "type", "tracingspancontext"],
            "NULL headers are left out"
        );
        assert_eq!(rec.timestamp_ms, Some(1_556_890_294_484));
    }

    #[test]
    fn envelope_value_carries_every_field() {
        let cfg = OutboxConfig {
            value: OutboxValue::Envelope,
            ..OutboxConfig::default()
        };
        let RowOutcome::Publish(rec) = to_record(&row(), &cfg) else {
            panic!("good row")
        };
        let env: EventEnvelope = serde_json::from_slice(rec.value.as_deref().unwrap()).unwrap();
        assert_eq!(env.event_type, "OrderCreated");
        assert_eq!(env.payload, serde_json::json!({"id": 1}));
        assert_eq!(
            env.headers.get("tracingspancontext").map(String::as_str),
            Some("ctx")
        );
    }

    #[test]
    fn null_payload_is_a_tombstone() {
        let mut r = row();
        r.payload = None;
        let RowOutcome::Publish(rec) = to_record(&r, &OutboxConfig::default()) else {
            panic!("good row")
        };
        assert_eq!(rec.value, None);
    }

    #[test]
    fn bad_rows_say_why() {
        let cfg = OutboxConfig::default();
        let bad = |f: &dyn Fn(&mut OutboxRow)| {
            let mut r = row();
            f(&mut r);
            match to_record(&r, &cfg) {
                RowOutcome::Bad(reason) => reason,
                RowOutcome::Publish(_) => panic!("should be bad"),
            }
        };
        assert!(bad(&|r| r.payload = Some("{nope".into())).starts_with("payload is not JSON"));
        assert_eq!(
            bad(&|r| r.aggregate_id = Some(String::new())),
            "missing aggregate id"
        );
        assert!(bad(&|r| r.aggregate_type = None).contains("no topic"));
        assert!(bad(&|r| r.aggregate_type = Some("a b".into())).contains("not a valid topic"));
        assert!(bad(&|r| r.id = Some("42".into())).contains("not a uuid"));
    }
}
