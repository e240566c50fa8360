//! Rendering events into the ops the write script runs.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::definition::ProjectionDef;
use crate::event::{Event, ParamSource};
use crate::policy::Reason;
use crate::projection::ApplyError;
use crate::sink::SinkOp;
use crate::sink::template::{FieldSource, Template, text_of};

/// One op as the script reads it (every field present, so the script needs no nil checks).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireOp {
    /// `hset`, `set`, `del`, `sadd` or `srem`.
    pub c: &'static str,
    /// The key under the build's namespace.
    pub k: String,
    /// `hset`: field, value, field, value, ...
    pub f: Vec<String>,
    /// `hset`: fields to remove (their value was null).
    pub d: Vec<String>,
    /// `set`: the JSON text.
    pub v: String,
    /// `sadd`/`srem`: the member.
    pub m: String,
    /// Expiry in seconds, 0 for none.
    pub t: u64,
}

/// One event as the script reads it.
#[derive(Debug, Clone, Serialize)]
pub struct WireEvent {
    /// `topic/partition`.
    pub p: String,
    /// Offset.
    pub o: i64,
    /// Event id, empty when the event has none.
    pub id: String,
    /// What to do.
    pub ops: Vec<WireOp>,
}

struct Compiled {
    op: SinkOp,
    key: Template,
    fields: Vec<(String, FieldSource)>,
    member: Option<ParamSource>,
    ttl: u64,
}

/// A Redis projection's handlers, compiled.
pub struct Renderer {
    handlers: HashMap<String, Vec<Compiled>>,
    ignored: HashSet<String>,
}

fn bad(detail: String) -> ApplyError {
    ApplyError {
        reason: Reason::BadPayload,
        detail,
    }
}

impl Renderer {
    /// Compiles a validated definition.
    pub fn new(def: &ProjectionDef) -> Renderer {
        let mut handlers: HashMap<String, Vec<Compiled>> = HashMap::new();
        let default_ttl = def.sink.ttl_secs.unwrap_or(0);
        for h in &def.handlers {
            let (Some(op), Some(key)) = (h.op, h.key.as_deref()) else {
                continue;
            };
            let Ok(key) = Template::parse(key) else {
                continue;
            };
            let fields = h
                .fields
                .iter()
                .filter_map(|(name, src)| Some((name.clone(), FieldSource::parse(src)?)))
                .collect();
            handlers
                .entry(h.event_type.clone())
                .or_default()
                .push(Compiled {
                    op,
                    key,
                    fields,
                    member: h.member.as_deref().and_then(ParamSource::parse),
                    ttl: h.ttl_secs.unwrap_or(default_ttl),
                });
        }
        Renderer {
            handlers,
            ignored: def.ignore_event_types.iter().cloned().collect(),
        }
    }

    /// The ops of one event: `Ok(None)` for an ignored type; a failure is classified like a SQL
    /// handler's (bad payload, unknown event type).
    pub fn render(&self, event: &Event) -> Result<Option<WireEvent>, ApplyError> {
        let Some(ty) = event.event_type.as_deref() else {
            return Err(bad("no `type` header".into()));
        };
        let Some(handlers) = self.handlers.get(ty) else {
            if self.ignored.contains(ty) {
                return Ok(None);
            }
            return Err(ApplyError {
                reason: Reason::UnknownEventType,
                detail: format!("no handler for event type `{ty}`"),
            });
        };
        let mut ops = Vec::with_capacity(handlers.len());
        for h in handlers {
            let key = h.key.render(event).map_err(bad)?;
            let mut op = WireOp {
                c: h.op.as_str(),
                k: key,
                f: Vec::new(),
                d: Vec::new(),
                v: String::new(),
                m: String::new(),
                t: h.ttl,
            };
            match h.op {
                SinkOp::Hset => {
                    for (name, src) in &h.fields {
                        match text_of(&src.value(event).map_err(bad)?) {
                            Some(v) => {
                                op.f.push(name.clone());
                                op.f.push(v);
                            }
                            None => op.d.push(name.clone()),
                        }
                    }
                }
                SinkOp::Set => {
                    let mut obj = serde_json::Map::new();
                    for (name, src) in &h.fields {
                        obj.insert(name.clone(), src.json(event).map_err(bad)?);
                    }
                    op.v = serde_json::Value::Object(obj).to_string();
                }
                SinkOp::Sadd | SinkOp::Srem => {
                    let src = h.member.as_ref().ok_or_else(|| bad("no member".into()))?;
                    op.m = text_of(&src.value(event).map_err(bad)?)
                        .ok_or_else(|| bad(format!("the member of `{}` is null", h.op.as_str())))?;
                }
                SinkOp::Del => {}
                SinkOp::Insert => {
                    return Err(ApplyError {
                        reason: Reason::SinkError,
                        detail: "`insert` is a ClickHouse op".into(),
                    });
                }
            }
            ops.push(op);
        }
        Ok(Some(WireEvent {
            p: format!("{}/{}", event.record.topic, event.record.partition),
            o: event.record.offset,
            id: event.id.clone().unwrap_or_default(),
            ops,
        }))
    }
}
