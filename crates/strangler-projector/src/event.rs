//! Events as projections see them, and the values their SQL parameters bind.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use strangler_bus::Record;

/// One decoded event plus its bus coordinates.
#[derive(Debug, Clone)]
pub struct Event {
    /// The record as consumed (kept for dead letters and re-drives).
    pub record: Record,
    /// Event id (the `id` header), the deduplication key.
    pub id: Option<String>,
    /// Event type (the `type` header).
    pub event_type: Option<String>,
    /// Aggregate id (the record key as text).
    pub key: Option<String>,
    /// The payload, when it is JSON.
    pub payload: Result<serde_json::Value, String>,
    /// What the projection worked out for this event before its batch began
    /// ([`crate::Projection::prepare`]); `None` until then.
    pub prepared: Option<Preparation>,
}

/// What a projection worked out for one event ahead of its batch, opaque to the runtime: the
/// projection that made it reads it back in `apply` and `apply_many`.
#[derive(Clone)]
pub struct Preparation(pub Arc<dyn Any + Send + Sync>);

impl fmt::Debug for Preparation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Preparation(..)")
    }
}

/// Decodes a record with the relay's Debezium decoder (outbox router output, strangler's
/// envelope, change events). When the record does not decode, the event keeps what the raw record
/// says (key, `id` and `type` headers) so it can be dead-lettered under its key.
pub fn decode(record: Record) -> Event {
    match strangler_bus::debezium::decode(&record) {
        Ok(d) => Event {
            // The hyphenated form `to_string` gives, without the formatting machinery.
            id: Some(
                d.event_id
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .to_owned(),
            ),
            event_type: d.event_type,
            key: d.aggregate_id,
            payload: Ok(d.payload),
            prepared: None,
            record,
        },
        Err(e) => Event {
            id: record.header_str("id").map(str::to_string),
            event_type: record.header_str("type").map(str::to_string),
            key: record
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: Err(e.to_string()),
            prepared: None,
            record,
        },
    }
}

/// A value bound to a SQL parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// Text.
    Text(String),
}

impl Value {
    /// JSON to a bindable value: objects and arrays bind as their JSON text.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Text(s.clone()),
            other => Value::Text(other.to_string()),
        }
    }
}

/// Where a handler parameter's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamSource {
    /// A JSON pointer into the payload, for example `/total`; absent binds NULL.
    Pointer(String),
    /// The record key (aggregate id) as text.
    Key,
    /// The event id.
    EventId,
    /// The event type.
    EventType,
    /// The record timestamp as RFC 3339 text (UTC, milliseconds).
    EventTime,
    /// The record timestamp in milliseconds since the epoch.
    EventTimeMs,
    /// The topic.
    Topic,
    /// The partition.
    Partition,
    /// The offset.
    Offset,
    /// The whole payload as JSON text.
    Payload,
    /// A header's text.
    Header(String),
}

impl ParamSource {
    /// Parses a source as written in a projection file.
    pub fn parse(s: &str) -> Option<ParamSource> {
        Some(match s {
            "key" => ParamSource::Key,
            "event_id" => ParamSource::EventId,
            "event_type" => ParamSource::EventType,
            "event_time" => ParamSource::EventTime,
            "event_time_ms" => ParamSource::EventTimeMs,
            "topic" => ParamSource::Topic,
            "partition" => ParamSource::Partition,
            "offset" => ParamSource::Offset,
            "payload" => ParamSource::Payload,
            p if p.starts_with('/') => ParamSource::Pointer(p.to_string()),
            h => ParamSource::Header(h.strip_prefix("header:")?.to_string()),
        })
    }

    /// The value for `event`; `Err` when the payload is needed and is not JSON.
    pub fn value(&self, event: &Event) -> Result<Value, String> {
        let text = |s: Option<&String>| s.map_or(Value::Null, |s| Value::Text(s.clone()));
        Ok(match self {
            ParamSource::Pointer(p) => {
                let payload = event.payload.as_ref().map_err(Clone::clone)?;
                pointer(payload, p).map_or(Value::Null, Value::from_json)
            }
            ParamSource::Payload => {
                Value::Text(event.payload.as_ref().map_err(Clone::clone)?.to_string())
            }
            ParamSource::Key => text(event.key.as_ref()),
            ParamSource::EventId => text(event.id.as_ref()),
            ParamSource::EventType => text(event.event_type.as_ref()),
            ParamSource::EventTime => event
                .record
                .timestamp_ms
                .and_then(DateTime::<Utc>::from_timestamp_millis)
                .map_or(Value::Null, |t| {
                    Value::Text(t.to_rfc3339_opts(SecondsFormat::Millis, true))
                }),
            ParamSource::EventTimeMs => event.record.timestamp_ms.map_or(Value::Null, Value::Int),
            ParamSource::Topic => Value::Text(event.record.topic.clone()),
            ParamSource::Partition => Value::Int(i64::from(event.record.partition)),
            ParamSource::Offset => Value::Int(event.record.offset),
            ParamSource::Header(h) => event
                .record
                .header_str(h)
                .map_or(Value::Null, |s| Value::Text(s.to_string())),
        })
    }
}

/// `serde_json::Value::pointer` (RFC 6901) without allocating for tokens that need no
/// unescaping: it runs for every parameter of every event.
fn pointer<'v>(value: &'v serde_json::Value, pointer: &str) -> Option<&'v serde_json::Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    pointer
        .strip_prefix('/')?
        .split('/')
        .try_fold(value, |target, token| {
            let token: std::borrow::Cow<'_, str> = if token.contains('~') {
                token.replace("~1", "/").replace("~0", "~").into()
            } else {
                token.into()
            };
            match target {
                serde_json::Value::Object(map) => map.get(token.as_ref()),
                serde_json::Value::Array(list) => array_index(&token).and_then(|i| list.get(i)),
                _ => None,
            }
        })
}

/// An array index as RFC 6901 writes it: digits without a sign or leading zeros.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strangler_bus::Header;

    fn record(value: &str) -> Record {
        Record {
            topic: "order".into(),
            partition: 1,
            offset: 7,
            key: Some(b"o-1".to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![
                Header {
                    name: "id".into(),
                    value: b"0190f3a2-7d1e-7c3a-9b1e-2a8f4d5c6b7a".to_vec(),
                },
                Header {
                    name: "type".into(),
                    value: b"OrderPlaced".to_vec(),
                },
            ],
            timestamp_ms: Some(1_700_000_000_123),
        }
    }

    #[test]
    fn decodes_outbox_router_records_and_binds_sources() {
        let e = decode(record(r#"{"total": 12, "items": [1], "note": "x"}"#));
        assert_eq!(
            e.id.as_deref(),
            Some("0190f3a2-7d1e-7c3a-9b1e-2a8f4d5c6b7a")
        );
        assert_eq!(e.event_type.as_deref(), Some("OrderPlaced"));
        let get = |s: &str| ParamSource::parse(s).unwrap().value(&e).unwrap();
        assert_eq!(get("/total"), Value::Int(12));
        assert_eq!(get("/items"), Value::Text("[1]".into()));
        assert_eq!(get("/missing"), Value::Null);
        assert_eq!(get("key"), Value::Text("o-1".into()));
        assert_eq!(get("offset"), Value::Int(7));
        assert_eq!(
            get("event_time"),
            Value::Text("2023-11-14T22:13:20.123Z".into())
        );
        assert_eq!(get("header:type"), Value::Text("OrderPlaced".into()));
        assert!(ParamSource::parse("nonsense").is_none());
    }

    #[test]
    fn pointers_resolve_as_serde_json_resolves_them() {
        let doc = serde_json::json!({
            "a": {"b": [10, {"c": true}]},
            "x/y": 1,
            "m~n": 2,
            "": 3,
            "01": 4
        });
        for p in [
            "",
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1/c",
            "/a/b/2",
            "/a/b/01",
            "/a/b/+1",
            "/a/b/-",
            "/x~1y",
            "/m~0n",
            "/",
            "/01",
            "/a/x",
            "/a/b/1/c/d",
            "a",
            "/a//",
        ] {
            assert_eq!(pointer(&doc, p), doc.pointer(p), "pointer {p:?}");
        }
    }

    #[test]
    fn a_payload_that_is_a_json_string_is_unwrapped_and_garbage_is_an_error() {
        let e = decode(record(r#""{\"total\": 3}""#));
        assert_eq!(e.payload.unwrap()["total"], 3);
        let bad = decode(record("not json"));
        assert!(ParamSource::Pointer("/x".into()).value(&bad).is_err());
    }
}
