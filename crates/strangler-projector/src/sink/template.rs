//! Key templates (`order:{key}`, `customer:{/customer_id}:orders`) and the validation of
//! projection files whose sink is not SQL.

use crate::definition::ProjectionDef;
use crate::event::{Event, ParamSource, Value};

use super::{SinkKind, SinkOp};

/// One part of a key template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Slot(String),
}

/// A key with `{name}` slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; `Err` names the problem (an unclosed or empty `{}`).
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("`{{` at byte {open} of `{text}` is not closed"))?;
            let name = after[..close].trim();
            if name.is_empty() {
                return Err(format!("`{text}` has an empty `{{}}`"));
            }
            parts.push(Part::Slot(name.to_string()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("the key is empty".into());
        }
        Ok(Template { parts })
    }

    /// The slot names, in order.
    pub fn slots(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Slot(s) => Some(s.as_str()),
                Part::Text(_) => None,
            })
            .collect()
    }

    /// Fills the slots with `value(name)`; a slot with no value fails with its name.
    pub fn fill(&self, mut value: impl FnMut(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Slot(s) => out.push_str(
                    &value(s).ok_or_else(|| format!("the key part `{{{s}}}` has no value"))?,
                ),
            }
        }
        Ok(out)
    }

    /// Renders for an event: each slot is a value source (`key`, `/pointer`, `header:NAME`, ...).
    pub fn render(&self, event: &Event) -> Result<String, String> {
        let mut failure = None;
        let out = self.fill(|slot| {
            let src = ParamSource::parse(slot)?;
            match src.value(event) {
                Ok(v) => text_of(&v),
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => out,
        }
    }
}

/// Where a field's value comes from: a value source, or `=text` for a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSource {
    /// `=placed`: the text after `=`.
    Literal(String),
    /// A value source (`key`, `/pointer`, `offset`, ...).
    Source(ParamSource),
}

impl FieldSource {
    /// Parses a field's source as written in a projection file.
    pub fn parse(s: &str) -> Option<FieldSource> {
        match s.strip_prefix('=') {
            Some(lit) => Some(FieldSource::Literal(lit.to_string())),
            None => ParamSource::parse(s).map(FieldSource::Source),
        }
    }

    /// The value for `event`.
    pub fn value(&self, event: &Event) -> Result<Value, String> {
        match self {
            FieldSource::Literal(s) => Ok(Value::Text(s.clone())),
            FieldSource::Source(src) => src.value(event),
        }
    }

    /// The value as JSON: a payload pointer keeps the payload's JSON as it is (objects, arrays,
    /// numbers).
    pub fn json(&self, event: &Event) -> Result<serde_json::Value, String> {
        if let FieldSource::Source(ParamSource::Pointer(p)) = self {
            let payload = event.payload.as_ref().map_err(Clone::clone)?;
            return Ok(payload
                .pointer(p)
                .cloned()
                .unwrap_or(serde_json::Value::Null));
        }
        Ok(json_of(&self.value(event)?))
    }
}

/// A value as key text; `None` for null.
pub fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Text(s) => Some(s.clone()),
    }
}

/// A value as JSON.
pub fn json_of(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Value::from(*f),
        Value::Text(s) => serde_json::Value::String(s.clone()),
    }
}

type Found = (String, String, String);

const SOURCES: &str = "use `=text` for a literal (fields only), or a JSON pointer (`/total`), key, event_id, event_type, event_time, event_time_ms, topic, partition, offset, payload or header:NAME";

fn is_prefix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'))
}

/// Problems of a projection whose sink is not SQL, as (key, message, fix).
pub fn validate_def(def: &ProjectionDef) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let kind = def.sink.kind;
    let mut push = |k: &str, m: String, f: &str| out.push((k.to_string(), m, f.to_string()));
    if !def.tables.is_empty() {
        push(
            "tables",
            format!("a {} projection owns no SQL tables", kind.as_str()),
            "remove `tables`; the sink's target is named in [sink]",
        );
    }
    if def.setup.all.is_some() || def.setup.postgres.is_some() || def.setup.sqlite.is_some() {
        push(
            "setup",
            format!("a {} projection runs no SQL setup", kind.as_str()),
            "remove [setup]; the sink creates its own target",
        );
    }
    if !def.replay.reset_key.is_empty() {
        push(
            "replay.reset_key",
            "per-key reset statements are SQL".into(),
            "remove [replay] reset_key; per-key replay is for SQL sinks",
        );
    }
    match kind {
        SinkKind::Redis => {
            match &def.sink.prefix {
                None => push(
                    "sink.prefix",
                    "a Redis sink needs a key prefix".into(),
                    "add prefix = \"<app>:<projection>\" under [sink]",
                ),
                Some(p) if !is_prefix(p) => push(
                    "sink.prefix",
                    format!("`{p}` is not a usable key prefix"),
                    "use letters, digits, `_`, `-`, `:` and `.`",
                ),
                Some(_) => {}
            }
            for k in ["database", "table", "shape", "columns", "order_by", "sum"] {
                let set = match k {
                    "database" => def.sink.database.is_some(),
                    "table" => def.sink.table.is_some(),
                    "shape" => def.sink.shape.is_some(),
                    "columns" => !def.sink.columns.is_empty(),
                    "order_by" => !def.sink.order_by.is_empty(),
                    _ => !def.sink.sum.is_empty(),
                };
                if set {
                    push(
                        &format!("sink.{k}"),
                        "a ClickHouse key in a Redis sink".into(),
                        "remove it, or set kind = \"clickhouse\"",
                    );
                }
            }
        }
        SinkKind::ClickHouse => {
            if def.sink.table.is_none() {
                push(
                    "sink.table",
                    "a ClickHouse sink needs a table".into(),
                    "add table = \"<name>\" under [sink]",
                );
            }
            if def.sink.prefix.is_some() || def.sink.ttl_secs.is_some() {
                push(
                    "sink.prefix",
                    "a Redis key in a ClickHouse sink".into(),
                    "remove prefix and ttl_secs, or set kind = \"redis\"",
                );
            }
        }
        SinkKind::Sql => {}
    }
    if def.handlers.is_empty() {
        out.push((
            "handler".into(),
            "no handlers".into(),
            "add [[handler]] tables with event_type and op".into(),
        ));
    }
    for (i, h) in def.handlers.iter().enumerate() {
        let key = format!("handler[{i}]");
        let mut push = |k: String, m: String, f: String| out.push((k, m, f));
        if !h.sql.trim().is_empty() || !h.params.is_empty() {
            push(
                format!("{key}.sql"),
                format!("a {} handler runs no SQL", kind.as_str()),
                "remove sql and params; use op, key and fields".into(),
            );
        }
        let Some(op) = h.op else {
            push(
                format!("{key}.op"),
                "no op".into(),
                match kind {
                    SinkKind::ClickHouse => "add op = \"insert\"".into(),
                    _ => "add op = \"hset\" (or set, del, sadd, srem)".into(),
                },
            );
            continue;
        };
        if op.kind() != kind {
            push(
                format!("{key}.op"),
                format!("`{}` is not an op of a {} sink", op.as_str(), kind.as_str()),
                match kind {
                    SinkKind::ClickHouse => "use op = \"insert\"".into(),
                    _ => "use hset, set, del, sadd or srem".into(),
                },
            );
        }
        match (&h.key, op) {
            (None, SinkOp::Insert) => {}
            (None, _) => push(
                format!("{key}.key"),
                format!("`{}` needs a key", op.as_str()),
                "add key = \"order:{key}\"".into(),
            ),
            (Some(_), SinkOp::Insert) => push(
                format!("{key}.key"),
                "an insert writes rows, not keys".into(),
                "remove key".into(),
            ),
            (Some(t), _) => match Template::parse(t) {
                Err(e) => push(
                    format!("{key}.key"),
                    e,
                    "write the key as order:{key}".into(),
                ),
                Ok(t) => {
                    for slot in t.slots() {
                        if ParamSource::parse(slot).is_none() {
                            push(
                                format!("{key}.key"),
                                format!("`{{{slot}}}` is not a value source"),
                                SOURCES.into(),
                            );
                        }
                    }
                }
            },
        }
        let wants_fields = matches!(op, SinkOp::Hset | SinkOp::Set | SinkOp::Insert);
        if wants_fields && h.fields.is_empty() {
            push(
                format!("{key}.fields"),
                format!("`{}` needs fields", op.as_str()),
                "add fields = { status = \"/status\" }".into(),
            );
        }
        if !wants_fields && !h.fields.is_empty() {
            push(
                format!("{key}.fields"),
                format!("`{}` writes no fields", op.as_str()),
                "remove fields".into(),
            );
        }
        for (name, src) in &h.fields {
            if FieldSource::parse(src).is_none() {
                push(
                    format!("{key}.fields.{name}"),
                    format!("`{src}` is not a value source"),
                    SOURCES.into(),
                );
            }
        }
        match (op, &h.member) {
            (SinkOp::Sadd | SinkOp::Srem, None) => push(
                format!("{key}.member"),
                format!("`{}` needs a member", op.as_str()),
                "add member = \"key\"".into(),
            ),
            (SinkOp::Sadd | SinkOp::Srem, Some(m)) if ParamSource::parse(m).is_none() => push(
                format!("{key}.member"),
                format!("`{m}` is not a value source"),
                SOURCES.into(),
            ),
            (SinkOp::Sadd | SinkOp::Srem, Some(_)) | (_, None) => {}
            (_, Some(_)) => push(
                format!("{key}.member"),
                format!("`{}` takes no member", op.as_str()),
                "remove member".into(),
            ),
        }
        if h.ttl_secs.is_some() && kind != SinkKind::Redis {
            push(
                format!("{key}.ttl_secs"),
                "expiry is a Redis setting".into(),
                "remove ttl_secs".into(),
            );
        }
    }
    for (i, r) in def.routes.iter().enumerate() {
        let key = format!("route[{i}]");
        if kind == SinkKind::Redis && r.key.is_none() {
            out.push((
                format!("{key}.key"),
                "a route over a Redis sink looks up a key".into(),
                "add key = \"order:{id}\" and remove sql".into(),
            ));
        }
        out.extend(crate::definition::validate_route(&key, r));
    }
    out
}

/// Problems of sink-only keys in a projection whose sink is SQL.
pub fn validate_sql_def(def: &ProjectionDef) -> Vec<Found> {
    let mut out = Vec::new();
    let sink = &def.sink;
    if sink.url.is_some()
        || sink.prefix.is_some()
        || sink.ttl_secs.is_some()
        || sink.database.is_some()
        || sink.table.is_some()
    {
        out.push((
            "sink".into(),
            "target keys for another sink kind, but kind is sql".into(),
            "set kind = \"redis\" or \"clickhouse\", or remove them".into(),
        ));
    }
    for (i, h) in def.handlers.iter().enumerate() {
        if h.op.is_some()
            || h.key.is_some()
            || !h.fields.is_empty()
            || h.member.is_some()
            || h.ttl_secs.is_some()
        {
            out.push((
                format!("handler[{i}].op"),
                "op, key, fields, member and ttl_secs are for Redis and ClickHouse sinks".into(),
                "write the handler as sql, or name the sink under [sink] kind".into(),
            ));
        }
    }
    for (i, r) in def.routes.iter().enumerate() {
        if r.key.is_some() {
            out.push((
                format!("route[{i}].key"),
                "key lookups are for Redis sinks".into(),
                "write the route as sql".into(),
            ));
        }
    }
    out
}

/// Problems of a route that looks up a key.
pub fn validate_route_key(
    key: &str,
    template: &str,
    sql: &str,
    captures: &[String],
    query: &[String],
) -> Vec<Found> {
    let mut out = Vec::new();
    if !sql.trim().is_empty() {
        out.push((
            format!("{key}.sql"),
            "a route has either sql or key".into(),
            "remove one of them".into(),
        ));
    }
    match Template::parse(template) {
        Err(e) => out.push((
            format!("{key}.key"),
            e,
            "write the key as order:{id}".into(),
        )),
        Ok(t) => {
            for slot in t.slots() {
                if !captures.iter().any(|c| c == slot) && !query.iter().any(|q| q == slot) {
                    out.push((
                        format!("{key}.key"),
                        format!("`{{{slot}}}` is neither a path capture nor a query parameter"),
                        format!("add `{{{slot}}}` to the path, or \"{slot}\" to `query`"),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_fill_and_report_bad_braces() {
        let t = Template::parse("customer:{/customer}:orders").unwrap();
        assert_eq!(t.slots(), ["/customer"]);
        assert_eq!(
            t.fill(|s| (s == "/customer").then(|| "c-1".into()))
                .unwrap(),
            "customer:c-1:orders"
        );
        assert!(t.fill(|_| None).unwrap_err().contains("/customer"));
        assert!(Template::parse("order:{key").is_err());
        assert!(Template::parse("order:{}").is_err());
        assert_eq!(
            Template::parse("plain").unwrap().slots(),
            Vec::<&str>::new()
        );
    }
}
