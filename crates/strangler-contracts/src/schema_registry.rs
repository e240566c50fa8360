//! Schemas from a Kafka schema registry's subject/version layout on disk.
//!
//! The layout mirrors the registry's REST paths, as a backup or an export writes them:
//! `<dir>/subjects/<subject>/versions/<N>.json` (the `subjects/` level is optional). A version
//! file is either the REST answer (`{"subject", "version", "id", "schemaType", "schema": "<schema
//! as a string>"}`) or the schema itself.
//!
//! Supported: **JSON Schema** (`schemaType: "JSON"`, or a bare schema object) as is, and **Avro**
//! (`schemaType` absent or `"AVRO"`, as the registry writes it) for records whose events travel
//! as JSON: an Avro record becomes the equivalent JSON Schema, and a field a later version adds
//! with a `default` becomes an `add` upcast step, which is Avro's own schema resolution. Not
//! supported: Protobuf subjects, Avro named-type references and schema references across subjects;
//! each is reported with the file.
//!
//! Subjects map to event types by naming strategy: `record` (RecordNameStrategy,
//! `<aggregate>.<EventType>`) or `topic-record` (TopicRecordNameStrategy, `<topic>-<EventType>`,
//! the aggregate read from the topic through the outbox topic template).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::{Error, Problem, Result};
use crate::registry::Registry;

/// How subject names map to aggregate and event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectNaming {
    /// `<aggregate>.<EventType>` (RecordNameStrategy with the aggregate as namespace).
    Record,
    /// `<topic>-<EventType>` (TopicRecordNameStrategy); the topic gives the aggregate through
    /// this template (`outbox.event.{aggregatetype}`).
    TopicRecord {
        /// The outbox topic template.
        topic_template: String,
    },
}

impl SubjectNaming {
    /// (aggregate, event type) of a subject.
    pub fn split(&self, subject: &str) -> Option<(String, String)> {
        match self {
            SubjectNaming::Record => {
                let (a, t) = subject.rsplit_once('.')?;
                (!a.is_empty() && !t.is_empty()).then(|| (a.to_string(), t.to_string()))
            }
            SubjectNaming::TopicRecord { topic_template } => {
                let (topic, ty) = subject.rsplit_once('-')?;
                let (pre, post) = topic_template.split_once("{aggregatetype}")?;
                let agg = topic.strip_prefix(pre)?.strip_suffix(post)?;
                (!agg.is_empty() && !ty.is_empty()).then(|| (agg.to_string(), ty.to_string()))
            }
        }
    }
}

/// Loads every subject under `dir` into a registry.
pub fn load(dir: &Path, naming: &SubjectNaming) -> Result<Registry> {
    let root = if dir.join("subjects").is_dir() {
        dir.join("subjects")
    } else {
        dir.to_path_buf()
    };
    let read = |p: &Path| {
        std::fs::read_dir(p).map_err(|source| Error::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let mut problems = Vec::new();
    let mut found = Vec::new();
    let mut subjects: Vec<PathBuf> = read(&root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subjects.sort();
    for sdir in subjects {
        let subject = sdir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((aggregate, event_type)) = naming.split(&subject) else {
            problems.push(Problem {
                file: sdir.clone(),
                at: String::new(),
                message: format!("subject `{subject}` does not follow the configured naming ({naming:?})"),
                fix: "rename the subject, or set contracts.schema_registry.naming to the strategy the registry uses".into(),
            });
            continue;
        };
        let vdir = sdir.join("versions");
        let mut files: Vec<PathBuf> = match read(&vdir) {
            Ok(r) => r.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => {
                problems.push(Problem {
                    file: vdir,
                    at: String::new(),
                    message: "a subject folder needs a versions/ folder".into(),
                    fix: "lay it out as subjects/<subject>/versions/<N>.json".into(),
                });
                continue;
            }
        };
        files.sort();
        let mut previous_avro: Option<Value> = None;
        let mut versions: Vec<(u32, PathBuf)> = files
            .into_iter()
            .filter_map(|f| {
                let v = f.file_stem()?.to_str()?.parse::<u32>().ok()?;
                (f.extension().is_some_and(|e| e == "json") && v > 0).then_some((v, f))
            })
            .collect();
        versions.sort();
        for (version, file) in versions {
            let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
                path: file.clone(),
                source,
            })?;
            let body: Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(Problem {
                        file,
                        at: String::new(),
                        message: format!("not JSON: {e}"),
                        fix: "correct the JSON syntax".into(),
                    });
                    continue;
                }
            };
            let (kind, schema) = match body.get("schema").and_then(Value::as_str) {
                Some(s) => {
                    let kind = body
                        .get("schemaType")
                        .and_then(Value::as_str)
                        .unwrap_or("AVRO")
                        .to_string();
                    match serde_json::from_str::<Value>(s) {
                        Ok(v) => (kind, v),
                        Err(e) => {
                            problems.push(Problem {
                                file,
                                at: "/schema".into(),
                                message: format!("the schema string is not JSON: {e}"),
                                fix: "export the subject again".into(),
                            });
                            continue;
                        }
                    }
                }
                None => ("JSON".to_string(), body),
            };
            if body_has_references(&text) {
                problems.push(Problem {
                    file: file.clone(),
                    at: "/references".into(),
                    message: "schema references across subjects are not supported".into(),
                    fix: "inline the referenced schema".into(),
                });
                continue;
            }
            match kind.as_str() {
                "JSON" => found.push((aggregate.clone(), event_type.clone(), version, file, schema)),
                "AVRO" => match avro_to_json_schema(&schema) {
                    Ok(mut js) => {
                        let steps = previous_avro.as_ref().map(|p| added_defaults(p, &schema)).unwrap_or_default();
                        if !steps.is_empty() {
                            js["x-strangler"] = json!({ "upcast": steps });
                        }
                        previous_avro = Some(schema);
                        found.push((aggregate.clone(), event_type.clone(), version, file, js));
                    }
                    Err(e) => problems.push(Problem { file, at: String::new(), message: format!("Avro schema not supported: {e}"), fix: "use a JSON Schema subject, or flatten the Avro schema (no named-type references)".into() }),
                },
                other => problems.push(Problem {
                    file,
                    at: "/schemaType".into(),
                    message: format!("schemaType {other} is not supported"),
                    fix: "strangler reads JSON Schema and Avro subjects; write a JSON Schema contract for this event".into(),
                }),
            }
        }
    }
    Registry::build(found, problems)
}

fn body_has_references(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|b| {
            b.get("references")
                .and_then(Value::as_array)
                .map(|a| !a.is_empty())
        })
        .unwrap_or(false)
}

/// `add` steps for fields `new` has with a default and `old` does not have (top level).
fn added_defaults(old: &Value, new: &Value) -> Vec<Value> {
    let names = |v: &Value| -> Vec<String> {
        v.get("fields")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(|x| x.get("name")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let old_names = names(old);
    new.get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let name = f.get("name")?.as_str()?;
            let default = f.get("default")?;
            (!old_names.iter().any(|n| n == name))
                .then(|| json!({"add": format!("/{name}"), "default": default}))
        })
        .collect()
}

/// Converts an Avro schema to the JSON Schema its JSON-encoded values match.
pub fn avro_to_json_schema(avro: &Value) -> Result<Value, String> {
    let mut s = avro_type(avro)?;
    if let Some(o) = s.as_object_mut() {
        o.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        if let Some(doc) = avro.get("doc").and_then(Value::as_str) {
            o.insert("description".into(), json!(doc));
        }
    }
    Ok(s)
}

fn avro_type(t: &Value) -> Result<Value, String> {
    Ok(match t {
        Value::String(name) => match name.as_str() {
            "null" => json!({"type": "null"}),
            "boolean" => json!({"type": "boolean"}),
            "int" | "long" => json!({"type": "integer"}),
            "float" | "double" => json!({"type": "number"}),
            "string" | "bytes" => json!({"type": "string"}),
            other => return Err(format!("named type reference `{other}`")),
        },
        Value::Array(branches) => {
            let parts: Vec<Value> = branches.iter().map(avro_type).collect::<Result<_, _>>()?;
            json!({ "anyOf": parts })
        }
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("record") => {
                let mut props = Map::new();
                let mut required = Vec::new();
                for f in o
                    .get("fields")
                    .and_then(Value::as_array)
                    .ok_or("a record without fields")?
                {
                    let name = f
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or("a field without a name")?;
                    let mut ft = avro_type(
                        f.get("type")
                            .ok_or_else(|| format!("field `{name}` has no type"))?,
                    )?;
                    if let (Some(doc), Some(m)) =
                        (f.get("doc").and_then(Value::as_str), ft.as_object_mut())
                    {
                        m.insert("description".into(), json!(doc));
                    }
                    // An Avro writer writes every field; `default` only serves readers of
                    // older data, which the `add` steps derived from it do here.
                    required.push(json!(name));
                    props.insert(name.to_string(), ft);
                }
                json!({"type": "object", "properties": props, "required": required})
            }
            Some("enum") => {
                json!({"type": "string", "enum": o.get("symbols").cloned().unwrap_or(json!([]))})
            }
            Some("array") => {
                json!({"type": "array", "items": avro_type(o.get("items").ok_or("an array without items")?)?})
            }
            Some("map") => {
                json!({"type": "object", "additionalProperties": avro_type(o.get("values").ok_or("a map without values")?)?})
            }
            Some("fixed") => json!({"type": "string"}),
            Some(_) => avro_type(o.get("type").expect("checked"))?,
            None => return Err("a type object without `type`".into()),
        },
        other => return Err(format!("unexpected Avro type {other}")),
    })
}
