//! Decoding Debezium's record formats into one event shape, for projectors and tests.
//!
//! [`decode`] understands, by looking at the record itself:
//! - the **Outbox Event Router** output: value = the outbox `payload` (expanded JSON, or a JSON
//!   string holding JSON), header `id` (uuid) and usually `type`, key = aggregate id; also the
//!   0.9-era `{"eventType": ..., "payload": "<escaped JSON>"}` value;
//! - **strangler's full envelope** (`[outbox] value = "envelope"`): a serialized
//!   [`EventEnvelope`];
//! - **change events** (`before`/`after`/`source`/`op`/`ts_ms`), bare or inside the
//!   `JsonConverter` `{schema, payload}` wrapper, op `c`/`u`/`d`/`r`/`t`/`m`;
//! - **tombstones**: a null value, or the legacy `{"schema":null,"payload":null}`.
//!
//! Change events carry no event id, so one is derived from the source position (connector,
//! database, table, LSN or binlog file/position/row, transaction) and the key: the same change
//! read twice gets the same id, which lets projectors deduplicate redeliveries.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use strangler_core::event::EventEnvelope;
use uuid::Uuid;

use crate::Record;

/// Which format a record was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Outbox Event Router output (current shape: value = payload).
    OutboxRouter,
    /// Outbox Event Router output of Debezium 0.9 to 1.1: `{"eventType", "payload"}`.
    OutboxRouterEventType,
    /// strangler's full envelope.
    Envelope,
    /// A Debezium change event.
    Change,
    /// A tombstone: the key's aggregate was deleted; there is no value.
    Tombstone,
}

/// A change event's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// `c`: insert.
    Create,
    /// `u`: update.
    Update,
    /// `d`: delete.
    Delete,
    /// `r`: read during a snapshot.
    Read,
    /// `t`: truncate.
    Truncate,
    /// `m`: logical decoding message.
    Message,
}

impl ChangeOp {
    /// The one-letter code Debezium writes.
    pub fn code(self) -> &'static str {
        match self {
            ChangeOp::Create => "c",
            ChangeOp::Update => "u",
            ChangeOp::Delete => "d",
            ChangeOp::Read => "r",
            ChangeOp::Truncate => "t",
            ChangeOp::Message => "m",
        }
    }

    fn parse(code: &str) -> Option<ChangeOp> {
        Some(match code {
            "c" => ChangeOp::Create,
            "u" => ChangeOp::Update,
            "d" => ChangeOp::Delete,
            "r" => ChangeOp::Read,
            "t" => ChangeOp::Truncate,
            "m" => ChangeOp::Message,
            _ => return None,
        })
    }
}

/// The parts of a change event a projector applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The operation.
    pub op: ChangeOp,
    /// The row before the change (`null` for inserts, snapshots, truncates).
    pub before: Option<Value>,
    /// The row after the change (`null` for deletes and truncates).
    pub after: Option<Value>,
    /// The `source` block (connector, database, table, position).
    pub source: Value,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEvent {
    /// The format the record was in.
    pub format: Format,
    /// Event id: the outbox `id` header or envelope field; for change events and tombstones, a
    /// deterministic id derived from the source position (or topic/partition/offset) and key.
    pub event_id: Uuid,
    /// Event type: header `type` (or `eventType`), the envelope's, or `<table>.<op>` for change
    /// events. `None` when the router was not configured to send the type (its default).
    pub event_type: Option<String>,
    /// Aggregate type: the envelope's, the table of a change event, or the `<x>` of the router's
    /// default topic `outbox.event.<x>`.
    pub aggregate_type: Option<String>,
    /// Aggregate id: the record key as text (JSON string quotes and the `JsonConverter` wrapper
    /// removed; a one-field key struct gives that field's value).
    pub aggregate_id: Option<String>,
    /// The event body: the outbox payload, or the change event's `payload` (before, after,
    /// source, op); `Null` for tombstones.
    pub payload: Value,
    /// When the event happened: the envelope's time, the change's `source.ts_ms`, or the record
    /// timestamp for router output.
    pub occurred_at: Option<DateTime<Utc>>,
    /// For change events, the operation and rows.
    pub change: Option<Change>,
    /// Every record header as text.
    pub headers: BTreeMap<String, String>,
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The value is not JSON.
    #[error("record value is not JSON: {0}")]
    NotJson(String),
    /// The header `id` is not a uuid.
    #[error("header `id` is not a uuid: `{0}`")]
    BadId(String),
    /// A change event's `op` is not one Debezium writes.
    #[error("unknown change event op `{0}`")]
    UnknownOp(String),
    /// The value is JSON but matches none of the known formats.
    #[error("record matches no Debezium format: {0}")]
    UnknownFormat(String),
    /// The value claims to be strangler's envelope but does not deserialize.
    #[error("malformed strangler envelope: {0}")]
    BadEnvelope(String),
}

/// Decodes one record in any of the formats this module understands.
pub fn decode(record: &Record) -> Result<DecodedEvent, DecodeError> {
    let headers: BTreeMap<String, String> = record
        .headers
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                String::from_utf8_lossy(&h.value).into_owned(),
            )
        })
        .collect();
    let key = record.key.as_deref().and_then(key_text);

    let Some(bytes) = record.value.as_deref() else {
        return Ok(tombstone(record, key, headers));
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let value = match unwrap_converter(value) {
        Unwrapped::Tombstone => return Ok(tombstone(record, key, headers)),
        Unwrapped::Value(v) => v,
    };

    if let Some(env) = as_envelope(&value)? {
        return Ok(DecodedEvent {
            format: Format::Envelope,
            event_id: env.id,
            event_type: Some(env.event_type),
            aggregate_type: Some(env.aggregate_type),
            aggregate_id: Some(env.aggregate_id),
            payload: env.payload,
            occurred_at: env.occurred_at,
            change: None,
            headers,
        });
    }
    if let Some(obj) = value.as_object()
        && let (Some(Value::String(op)), Some(Value::Object(_))) =
            (obj.get("op"), obj.get("source"))
    {
        return change_event(record, obj, op, key, headers);
    }

    let id_text = headers.get("id").ok_or_else(|| {
        DecodeError::UnknownFormat(
            "not a change event or strangler envelope, and no `id` header for outbox router output"
                .into(),
        )
    })?;
    let event_id = Uuid::parse_str(id_text).map_err(|_| DecodeError::BadId(id_text.clone()))?;
    let mut event_type = headers
        .get("type")
        .or_else(|| headers.get("eventType"))
        .cloned();
    let (format, payload) = match &value {
        Value::Object(obj)
            if obj.len() == 2 && obj.contains_key("eventType") && obj.contains_key("payload") =>
        {
            if let Some(Value::String(t)) = obj.get("eventType") {
                event_type.get_or_insert_with(|| t.clone());
            }
            (
                Format::OutboxRouterEventType,
                expand_string(obj["payload"].clone()),
            )
        }
        _ => (Format::OutboxRouter, expand_string(value)),
    };
    Ok(DecodedEvent {
        format,
        event_id,
        event_type,
        aggregate_type: record
            .topic
            .strip_prefix("outbox.event.")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        aggregate_id: key,
        payload,
        occurred_at: record.timestamp_ms.and_then(ms_to_time),
        change: None,
        headers,
    })
}

enum Unwrapped {
    Tombstone,
    Value(Value),
}

/// Removes Kafka Connect's `JsonConverter` wrapper `{"schema": ..., "payload": ...}`.
fn unwrap_converter(value: Value) -> Unwrapped {
    let is_wrapper = value.as_object().is_some_and(|o| {
        o.len() == 2
            && o.contains_key("payload")
            && matches!(o.get("schema"), Some(Value::Null) | Some(Value::Object(_)))
            && o.get("schema")
                .is_some_and(|s| s.is_null() || s.get("type").is_some())
    });
    if !is_wrapper {
        return Unwrapped::Value(value);
    }
    let Value::Object(mut o) = value else {
        unreachable!("checked above")
    };
    match o.remove("payload") {
        Some(Value::Null) | None => Unwrapped::Tombstone,
        Some(p) => Unwrapped::Value(p),
    }
}

fn as_envelope(value: &Value) -> Result<Option<EventEnvelope>, DecodeError> {
    let Some(obj) = value.as_object() else {
        return Ok(None);
    };
    let is_envelope = [
        "id",
        "aggregate_type",
        "aggregate_id",
        "event_type",
        "payload",
    ]
    .iter()
    .all(|k| obj.contains_key(*k));
    if !is_envelope {
        return Ok(None);
    }
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|e| DecodeError::BadEnvelope(e.to_string()))
}

/// A payload sent as a JSON string holding JSON (the router without `expand.json.payload`)
/// becomes that JSON; any other string stays a string.
fn expand_string(v: Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    }
}

/// The aggregate id in a key: a JSON string's text, a converter-wrapped or bare one-field struct's
/// field, compact JSON for other structs, or the raw UTF-8 text.
fn key_text(bytes: &[u8]) -> Option<String> {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return std::str::from_utf8(bytes).ok().map(str::to_string);
    };
    let v = match unwrap_converter(v) {
        Unwrapped::Tombstone => return None,
        Unwrapped::Value(v) => v,
    };
    Some(match v {
        Value::String(s) => s,
        Value::Object(o) if o.len() == 1 => scalar_text(o.values().next().expect("one field")),
        other => scalar_text(&other),
    })
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn ms_to_time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

fn change_event(
    record: &Record,
    obj: &Map<String, Value>,
    op: &str,
    key: Option<String>,
    headers: BTreeMap<String, String>,
) -> Result<DecodedEvent, DecodeError> {
    let op = ChangeOp::parse(op).ok_or_else(|| DecodeError::UnknownOp(op.to_string()))?;
    let source = obj.get("source").cloned().unwrap_or(Value::Null);
    let table = source
        .get("table")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .or_else(|| {
            obj.get("message")
                .and_then(|m| m.get("prefix"))
                .and_then(Value::as_str)
        })
        .map(str::to_string);
    // MySQL snapshot reads write `ts_sec: 0`: zero means "not known", not 1970.
    let int = |v: Option<&Value>| v.and_then(Value::as_i64).filter(|n| *n > 0);
    let occurred_ms = int(source.get("ts_ms"))
        .or_else(|| int(source.get("ts_usec")).map(|us| us / 1000))
        .or_else(|| int(source.get("ts_sec")).map(|s| s * 1000))
        .or_else(|| int(obj.get("ts_ms")));
    let not_null = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();

    // The position fields that identify one change, whatever the connector.
    let mut ident = String::new();
    for field in [
        "connector",
        "name",
        "db",
        "schema",
        "table",
        "txId",
        "lsn",
        "sequence",
        "file",
        "pos",
        "row",
        "gtid",
        "ts_ms",
        "ts_usec",
        "ts_sec",
        "change_lsn",
        "commit_lsn",
        "event_serial_no",
    ] {
        if let Some(v) = source.get(field).filter(|v| !v.is_null()) {
            ident.push_str(field);
            ident.push('=');
            ident.push_str(&v.to_string());
            ident.push('\u{1f}');
        }
    }
    ident.push_str(op.code());
    ident.push('\u{1f}');
    if let Some(k) = record.key.as_deref() {
        ident.push_str(&String::from_utf8_lossy(k));
    }
    if let Some(m) = obj.get("message") {
        ident.push('\u{1f}');
        ident.push_str(&m.to_string());
    }

    Ok(DecodedEvent {
        format: Format::Change,
        event_id: derived_id(ident.as_bytes()),
        event_type: table.as_ref().map(|t| format!("{t}.{}", op.code())),
        aggregate_type: table,
        aggregate_id: key,
        payload: Value::Object(obj.clone()),
        occurred_at: occurred_ms.and_then(ms_to_time),
        change: Some(Change {
            op,
            before: not_null(obj.get("before")),
            after: not_null(obj.get("after")),
            source,
        }),
        headers,
    })
}

fn tombstone(
    record: &Record,
    key: Option<String>,
    headers: BTreeMap<String, String>,
) -> DecodedEvent {
    let mut ident = format!(
        "tombstone\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}",
        record.topic, record.partition, record.offset
    );
    if let Some(k) = record.key.as_deref() {
        ident.push_str(&String::from_utf8_lossy(k));
    }
    DecodedEvent {
        format: Format::Tombstone,
        event_id: derived_id(ident.as_bytes()),
        event_type: None,
        aggregate_type: None,
        aggregate_id: key,
        payload: Value::Null,
        occurred_at: record.timestamp_ms.and_then(ms_to_time),
        change: None,
        headers,
    }
}

/// A stable uuid (version 8, RFC 9562 "custom") from bytes: FNV-1a 128-bit. Stable across
/// releases and platforms, which `std`'s hashers do not promise.
fn derived_id(bytes: &[u8]) -> Uuid {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    uuid::Builder::from_custom_bytes(h.to_be_bytes()).into_uuid()
}

#[cfg(test)]
#[path = "debezium_tests.rs"]
mod tests;
