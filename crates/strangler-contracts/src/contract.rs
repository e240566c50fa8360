//! One contract file: a JSON Schema for one version of one event type, with its meaning and the
//! upcasting steps from the version before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::Problem;
use crate::upcast::Step;

/// What an event means, beyond its shape (`x-strangler` in the schema, plus `description`).
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// What the event means (`x-strangler.means`, else the schema's `description`).
    pub means: Option<String>,
    /// What a reader must not conclude from it (`x-strangler.does_not_imply`).
    pub does_not_imply: Vec<String>,
    /// How it maps into each read model (`x-strangler.read_models`), free-form, for people.
    pub read_models: BTreeMap<String, Value>,
    /// More event type names this contract covers (`x-strangler.event_types`), for example
    /// `customers.c` and `customers.u` for one table's change events.
    pub event_types: Vec<String>,
}

/// One version of one event type.
pub struct Contract {
    /// Aggregate type (the folder).
    pub aggregate: String,
    /// Event type (the file name before `.v<N>.json`).
    pub event_type: String,
    /// Version (`<N>`).
    pub version: u32,
    /// The file it came from.
    pub file: PathBuf,
    /// The JSON Schema.
    pub schema: Value,
    /// Meaning and mappings.
    pub meta: Meta,
    /// Steps from the previous version to this one.
    pub upcast: Vec<Step>,
    pub(crate) validator: jsonschema::Validator,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("aggregate", &self.aggregate)
            .field("event_type", &self.event_type)
            .field("version", &self.version)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Every version of one event type, oldest first.
#[derive(Debug)]
pub struct EventContract {
    /// Aggregate type.
    pub aggregate: String,
    /// Event type.
    pub event_type: String,
    /// Versions by number.
    pub versions: BTreeMap<u32, Contract>,
}

impl EventContract {
    /// The current (highest) version.
    pub fn current(&self) -> &Contract {
        self.versions
            .values()
            .next_back()
            .expect("an event contract has at least one version")
    }

    /// `aggregate/EventType`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.aggregate, self.event_type)
    }
}

/// Splits `OrderPlaced.v2.json` into (`OrderPlaced`, 2).
pub(crate) fn parse_file_name(name: &str) -> Option<(String, u32)> {
    let stem = name.strip_suffix(".json")?;
    let (ty, v) = stem.rsplit_once(".v")?;
    let version: u32 = v.parse().ok()?;
    (!ty.is_empty() && version > 0 && v == version.to_string()).then(|| (ty.to_string(), version))
}

/// Builds a contract from a parsed schema; `problems` collects everything wrong.
pub(crate) fn build(
    aggregate: &str,
    event_type: &str,
    version: u32,
    file: &Path,
    mut schema: Value,
    problems: &mut Vec<Problem>,
) -> Option<Contract> {
    let problem = |at: &str, message: String, fix: &str| Problem {
        file: file.to_path_buf(),
        at: at.to_string(),
        message,
        fix: fix.to_string(),
    };
    let before = problems.len();
    if !schema.is_object() {
        problems.push(problem(
            "",
            "the file is not a JSON Schema object".into(),
            "write a JSON object with \"type\": \"object\" and \"properties\"",
        ));
        return None;
    }
    let ext = schema
        .as_object_mut()
        .and_then(|o| o.remove("x-strangler"))
        .unwrap_or(Value::Null);
    let mut meta = Meta {
        means: schema
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..Meta::default()
    };
    let mut upcast = Vec::new();
    match &ext {
        Value::Null => {}
        Value::Object(m) => {
            for (k, v) in m {
                let at = format!("/x-strangler/{k}");
                match k.as_str() {
                    "means" => match v.as_str() {
                        Some(s) => meta.means = Some(s.to_string()),
                        None => problems.push(problem(
                            &at,
                            "must be a string".into(),
                            "describe what the event means in one or two sentences",
                        )),
                    },
                    "does_not_imply" => match v.as_array().and_then(|a| {
                        a.iter()
                            .map(|x| x.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                    }) {
                        Some(list) => meta.does_not_imply = list,
                        None => problems.push(problem(
                            &at,
                            "must be a list of strings".into(),
                            "list what readers must not conclude, one sentence each",
                        )),
                    },
                    "event_types" => match v.as_array().and_then(|a| {
                        a.iter()
                            .map(|x| x.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                    }) {
                        Some(list) => meta.event_types = list,
                        None => problems.push(problem(
                            &at,
                            "must be a list of event type names".into(),
                            "for example [\"customers.c\", \"customers.u\"]",
                        )),
                    },
                    "read_models" => match v.as_object() {
                        Some(o) => {
                            meta.read_models =
                                o.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                        }
                        None => problems.push(problem(
                            &at,
                            "must be an object keyed by read model".into(),
                            "for example {\"order_summary\": {\"orders.total\": \"/total\"}}",
                        )),
                    },
                    "upcast" => match v.as_array() {
                        Some(steps) => {
                            if version == 1 && !steps.is_empty() {
                                problems.push(problem(
                                    &at,
                                    "version 1 has no previous version to upcast from".into(),
                                    "move these steps to the file of the version they lead to",
                                ));
                            }
                            for (i, s) in steps.iter().enumerate() {
                                match Step::parse(s) {
                                    Ok(step) => upcast.push(step),
                                    Err(e) => problems.push(problem(
                                        &format!("{at}/{i}"),
                                        e,
                                        "see docs/contracts.md for the step forms",
                                    )),
                                }
                            }
                        }
                        None => problems.push(problem(
                            &at,
                            "must be a list of steps".into(),
                            "for example [{\"add\": \"/channel\", \"default\": \"web\"}]",
                        )),
                    },
                    _ => problems.push(problem(
                        &at,
                        "unknown key".into(),
                        "x-strangler takes means, does_not_imply, event_types, read_models, upcast",
                    )),
                }
            }
        }
        _ => problems.push(problem(
            "/x-strangler",
            "must be an object".into(),
            "write \"x-strangler\": {\"means\": ..., \"upcast\": [...]}",
        )),
    }
    let validator = match jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
    {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(problem(
                &e.schema_path().to_string(),
                format!("not a valid JSON Schema: {e}"),
                "correct the schema (draft 2020-12 unless $schema names another draft)",
            ));
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(Contract {
        aggregate: aggregate.to_string(),
        event_type: event_type.to_string(),
        version,
        file: file.to_path_buf(),
        schema,
        meta,
        upcast,
        validator: validator?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_type_and_version() {
        assert_eq!(
            parse_file_name("OrderPlaced.v2.json"),
            Some(("OrderPlaced".into(), 2))
        );
        assert_eq!(
            parse_file_name("customers.c.v1.json"),
            Some(("customers.c".into(), 1))
        );
        for bad in [
            "OrderPlaced.json",
            "OrderPlaced.v0.json",
            "OrderPlaced.v02.json",
            ".v1.json",
            "OrderPlaced.v1.yaml",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }
}
