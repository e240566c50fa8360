//! The registry: every contract loaded from files, looked up by event type, and the check that
//! validates a payload, upcasts it to the current version and validates the result.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::contract::{self, Contract, EventContract};
use crate::error::{Error, Problem, Result};
use crate::upcast::{CodeStep, Step};

/// Every event contract, by aggregate and event type.
#[derive(Debug, Default)]
pub struct Registry {
    events: BTreeMap<(String, String), EventContract>,
    /// Event type names (and aliases) to the contracts that define them.
    by_type: HashMap<String, Vec<(String, String)>>,
}

/// The event to check, as much as the caller knows of it.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// Aggregate type, when known (the relay knows it; a projector derives it from the topic).
    pub aggregate: Option<&'a str>,
    /// The topic the event came from; its last `.`-segment picks the aggregate when an event type
    /// is defined under several aggregates (Debezium's router writes `outbox.event.<aggregate>`).
    pub topic: Option<&'a str>,
    /// Event type.
    pub event_type: Option<&'a str>,
    /// The version the event declares (the version header), if any; without it the version is
    /// inferred as the highest whose schema the payload matches.
    pub version: Option<&'a str>,
    /// The payload.
    pub payload: &'a Value,
}

/// A payload that passed: its version and its current-version shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// `aggregate/EventType` of the contract.
    pub contract: String,
    /// The version the payload was written in.
    pub from_version: u32,
    /// Whether that version was inferred (no version header).
    pub inferred: bool,
    /// The current version it was brought to.
    pub to_version: u32,
    /// The payload in the current version's shape (equal to the input when no step ran).
    pub payload: Value,
}

/// One schema error: where in the payload, which schema rule, and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaError {
    /// JSON pointer into the payload (`""` for the whole payload).
    pub instance_path: String,
    /// JSON pointer to the failing keyword in the schema, for example `/properties/total/type`.
    pub schema_path: String,
    /// What the validator said.
    pub message: String,
}

/// Why a payload broke its contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ViolationKind {
    /// The event has no type, so no contract can be chosen.
    NoEventType,
    /// The event type is defined under several aggregates and the topic does not say which.
    Ambiguous {
        /// The candidates.
        candidates: Vec<String>,
    },
    /// The version header is not a version the registry has.
    UnknownVersion {
        /// The header's text.
        declared: String,
        /// Versions the registry has.
        known: Vec<u32>,
    },
    /// The payload does not match the version it declares.
    Invalid {
        /// The declared version.
        version: u32,
        /// The file of that version.
        file: PathBuf,
        /// The errors.
        errors: Vec<SchemaError>,
    },
    /// No version header, and the payload matches no version.
    NoVersionMatches {
        /// The current version's file.
        file: PathBuf,
        /// The errors against the current version.
        errors: Vec<SchemaError>,
    },
    /// An upcasting step failed.
    UpcastFailed {
        /// The version whose steps were running.
        to_version: u32,
        /// The step.
        step: String,
        /// Why.
        message: String,
    },
    /// After upcasting, the payload does not match the current version.
    NotCurrentAfterUpcast {
        /// The version it was written in.
        from_version: u32,
        /// The current version.
        to_version: u32,
        /// The current version's file.
        file: PathBuf,
        /// The errors.
        errors: Vec<SchemaError>,
        /// Versions on the way that declare no upcast steps.
        versions_without_steps: Vec<u32>,
    },
}

/// A payload that breaks its contract, with everything a dead letter or a report needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// `aggregate/EventType`, when a contract was found.
    pub contract: Option<String>,
    /// The event type as the event gave it.
    pub event_type: Option<String>,
    /// What went wrong.
    #[serde(flatten)]
    pub kind: ViolationKind,
}

impl Violation {
    /// The failing rule in one token, for reports: `OrderPlaced.v2.json#/required`,
    /// `upcast:add /x`, `version-header`.
    pub fn rule(&self) -> String {
        let file_rule = |file: &Path, errors: &[SchemaError]| {
            let name = file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            match errors.first() {
                Some(e) => format!("{name}#{}", e.schema_path),
                None => name,
            }
        };
        match &self.kind {
            ViolationKind::NoEventType => "event-type".into(),
            ViolationKind::Ambiguous { .. } => "aggregate".into(),
            ViolationKind::UnknownVersion { .. } => "version-header".into(),
            ViolationKind::Invalid { file, errors, .. }
            | ViolationKind::NoVersionMatches { file, errors }
            | ViolationKind::NotCurrentAfterUpcast { file, errors, .. } => file_rule(file, errors),
            ViolationKind::UpcastFailed { step, .. } => format!("upcast:{step}"),
        }
    }
}

fn list_errors(f: &mut fmt::Formatter<'_>, errors: &[SchemaError]) -> fmt::Result {
    for (i, e) in errors.iter().enumerate() {
        let at = if e.instance_path.is_empty() {
            "(payload)"
        } else {
            &e.instance_path
        };
        write!(
            f,
            "{}{at}: {} (schema {})",
            if i == 0 { "" } else { "; " },
            e.message,
            e.schema_path
        )?;
    }
    Ok(())
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self
            .contract
            .clone()
            .or_else(|| self.event_type.clone())
            .unwrap_or_else(|| "(untyped event)".into());
        write!(f, "contract violation: {name}: ")?;
        match &self.kind {
            ViolationKind::NoEventType => {
                write!(f, "the event has no type, so no contract applies")
            }
            ViolationKind::Ambiguous { candidates } => write!(
                f,
                "the event type is defined under several aggregates ({}) and the topic does not name one",
                candidates.join(", ")
            ),
            ViolationKind::UnknownVersion { declared, known } => write!(
                f,
                "the event declares version `{declared}`, which the registry does not have (versions: {})",
                known
                    .iter()
                    .map(|v| format!("v{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ViolationKind::Invalid {
                version,
                file,
                errors,
            } => {
                write!(
                    f,
                    "payload does not match v{version} ({}): ",
                    file.display()
                )?;
                list_errors(f, errors)
            }
            ViolationKind::NoVersionMatches { file, errors } => {
                write!(
                    f,
                    "payload matches no version; against the current one ({}): ",
                    file.display()
                )?;
                list_errors(f, errors)
            }
            ViolationKind::UpcastFailed {
                to_version,
                step,
                message,
            } => write!(
                f,
                "upcasting to v{to_version} failed at step `{step}`: {message}"
            ),
            ViolationKind::NotCurrentAfterUpcast {
                from_version,
                to_version,
                file,
                errors,
                versions_without_steps,
            } => {
                write!(
                    f,
                    "a v{from_version} event does not match v{to_version} ({}) after upcasting: ",
                    file.display()
                )?;
                list_errors(f, errors)?;
                if !versions_without_steps.is_empty() {
                    write!(
                        f,
                        "; no upcaster: {} declare{} no `x-strangler.upcast` steps",
                        versions_without_steps
                            .iter()
                            .map(|v| format!("v{v}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if versions_without_steps.len() == 1 {
                            "s"
                        } else {
                            ""
                        }
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Violation {}

fn schema_errors(c: &Contract, payload: &Value) -> Vec<SchemaError> {
    c.validator
        .iter_errors(payload)
        .take(8)
        .map(|e| SchemaError {
            instance_path: e.instance_path().to_string(),
            schema_path: e.schema_path().to_string(),
            message: e.to_string(),
        })
        .collect()
}

impl Registry {
    /// Loads `dir/<aggregate>/<EventType>.v<N>.json`; other files (README.md) are ignored.
    pub fn load_dir(dir: &Path) -> Result<Registry> {
        let mut found = Vec::new();
        let read = |p: &Path| {
            std::fs::read_dir(p).map_err(|source| Error::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        let mut problems = Vec::new();
        let mut aggregates: Vec<PathBuf> = Vec::new();
        for entry in read(dir)? {
            let path = entry
                .map_err(|source| Error::Read {
                    path: dir.to_path_buf(),
                    source,
                })?
                .path();
            if path.is_dir() {
                aggregates.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                problems.push(Problem {
                    file: path,
                    at: String::new(),
                    message: "contract files live in a folder named after their aggregate".into(),
                    fix: "move it to <registry>/<aggregate>/<EventType>.v<N>.json".into(),
                });
            }
        }
        aggregates.sort();
        for agg_dir in aggregates {
            let aggregate = agg_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut files: Vec<PathBuf> = Vec::new();
            for entry in read(&agg_dir)? {
                let path = entry
                    .map_err(|source| Error::Read {
                        path: agg_dir.clone(),
                        source,
                    })?
                    .path();
                if path.extension().is_some_and(|e| e == "json") {
                    files.push(path);
                }
            }
            files.sort();
            for file in files {
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some((event_type, version)) = contract::parse_file_name(&name) else {
                    problems.push(Problem {
                        file,
                        at: String::new(),
                        message: "the name does not say the event type and version".into(),
                        fix: "name it <EventType>.v<N>.json with N = 1, 2, ...".into(),
                    });
                    continue;
                };
                let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
                    path: file.clone(),
                    source,
                })?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(schema) => {
                        found.push((aggregate.clone(), event_type, version, file, schema))
                    }
                    Err(e) => problems.push(Problem {
                        file,
                        at: format!("line {} column {}", e.line(), e.column()),
                        message: format!("not JSON: {e}"),
                        fix: "correct the JSON syntax".into(),
                    }),
                }
            }
        }
        Registry::build(found, problems)
    }

    /// Builds a registry from parsed schemas: (aggregate, event type, version, file, schema).
    pub fn build(
        found: Vec<(String, String, u32, PathBuf, Value)>,
        mut problems: Vec<Problem>,
    ) -> Result<Registry> {
        let mut reg = Registry::default();
        for (aggregate, event_type, version, file, schema) in found {
            let Some(c) = contract::build(
                &aggregate,
                &event_type,
                version,
                &file,
                schema,
                &mut problems,
            ) else {
                continue;
            };
            let entry = reg
                .events
                .entry((aggregate.clone(), event_type.clone()))
                .or_insert_with(|| EventContract {
                    aggregate: aggregate.clone(),
                    event_type: event_type.clone(),
                    versions: BTreeMap::new(),
                });
            if let Some(prev) = entry.versions.get(&version) {
                problems.push(Problem {
                    file: file.clone(),
                    at: String::new(),
                    message: format!(
                        "{aggregate}/{event_type} v{version} is also defined in {}",
                        prev.file.display()
                    ),
                    fix: "keep one file per version".into(),
                });
                continue;
            }
            entry.versions.insert(version, c);
        }
        for ec in reg.events.values() {
            let max = *ec.versions.keys().next_back().expect("non-empty");
            for v in 1..max {
                if !ec.versions.contains_key(&v) {
                    problems.push(Problem {
                        file: ec.current().file.clone(),
                        at: String::new(),
                        message: format!("{} has v{max} but no v{v}", ec.name()),
                        fix: format!(
                            "restore {}.v{v}.json: upcasting goes through every version",
                            ec.event_type
                        ),
                    });
                }
            }
            let mut names = vec![ec.event_type.clone()];
            for c in ec.versions.values() {
                for alias in &c.meta.event_types {
                    if !names.contains(alias) {
                        names.push(alias.clone());
                    }
                }
            }
            for n in names {
                reg.by_type
                    .entry(n)
                    .or_default()
                    .push((ec.aggregate.clone(), ec.event_type.clone()));
            }
        }
        if problems.is_empty() {
            Ok(reg)
        } else {
            Err(Error::Invalid(problems))
        }
    }

    /// Adds every contract of `other`; a contract both define is a problem.
    pub fn merge(mut self, other: Registry) -> Result<Registry> {
        let mut problems = Vec::new();
        for (key, ec) in other.events {
            if let Some(mine) = self.events.get(&key) {
                problems.push(Problem {
                    file: ec.current().file.clone(),
                    at: String::new(),
                    message: format!(
                        "{} is also defined in {}",
                        ec.name(),
                        mine.current().file.display()
                    ),
                    fix: "define each event type in one place: the files or the schema registry"
                        .into(),
                });
                continue;
            }
            self.events.insert(key, ec);
        }
        for (k, v) in other.by_type {
            self.by_type.entry(k).or_default().extend(v);
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Error::Invalid(problems))
        }
    }

    /// Registers a Rust step under `name`, for every `{"code": name}` step in the registry.
    /// Returns how many steps it was attached to.
    pub fn register_code_step(&mut self, name: &str, step: impl CodeStep + 'static) -> usize {
        let step: Arc<dyn CodeStep> = Arc::new(step);
        let mut n = 0;
        for ec in self.events.values_mut() {
            for c in ec.versions.values_mut() {
                for s in &mut c.upcast {
                    if let Step::Code { name: have, func } = s
                        && have == name
                    {
                        *func = Some(step.clone());
                        n += 1;
                    }
                }
            }
        }
        n
    }

    /// Code steps named in files that no Rust step was registered for, as `(file, name)`.
    pub fn unregistered_code_steps(&self) -> Vec<(PathBuf, String)> {
        self.contracts()
            .flat_map(|c| {
                c.upcast.iter().filter_map(move |s| match s {
                    Step::Code { name, func: None } => Some((c.file.clone(), name.clone())),
                    _ => None,
                })
            })
            .collect()
    }

    /// Every event contract.
    pub fn events(&self) -> impl Iterator<Item = &EventContract> {
        self.events.values()
    }

    /// Every contract file, every version.
    pub fn contracts(&self) -> impl Iterator<Item = &Contract> {
        self.events.values().flat_map(|e| e.versions.values())
    }

    /// The event contract of `aggregate/EventType`.
    pub fn get(&self, aggregate: &str, event_type: &str) -> Option<&EventContract> {
        self.events
            .get(&(aggregate.to_string(), event_type.to_string()))
    }

    /// Whether the registry has no contracts.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The contract for an event: `Ok(None)` when no contract covers its type.
    fn find(&self, ev: &EventRef<'_>) -> Result<Option<&EventContract>, Box<Violation>> {
        let violation = |kind| {
            Box::new(Violation {
                contract: None,
                event_type: ev.event_type.map(str::to_string),
                kind,
            })
        };
        let Some(ty) = ev.event_type else {
            return Err(violation(ViolationKind::NoEventType));
        };
        let Some(cands) = self.by_type.get(ty) else {
            return Ok(None);
        };
        let pick = |agg: &str| cands.iter().find(|(a, _)| a == agg);
        let chosen = if let Some(agg) = ev.aggregate {
            pick(agg)
        } else if cands.len() == 1 {
            cands.first()
        } else {
            match ev.topic.and_then(|t| t.rsplit('.').next()).and_then(pick) {
                Some(c) => Some(c),
                None => {
                    return Err(violation(ViolationKind::Ambiguous {
                        candidates: cands.iter().map(|(a, t)| format!("{a}/{t}")).collect(),
                    }));
                }
            }
        };
        Ok(chosen.and_then(|k| self.events.get(k)))
    }

    /// Validates `ev` against its contract and brings it to the current version. `Ok(None)` when
    /// no contract covers the event type (the caller's policy decides what that means).
    pub fn check(&self, ev: &EventRef<'_>) -> Result<Option<Checked>, Box<Violation>> {
        let Some(ec) = self.find(ev)? else {
            return Ok(None);
        };
        let violation = |kind| {
            Box::new(Violation {
                contract: Some(ec.name()),
                event_type: ev.event_type.map(str::to_string),
                kind,
            })
        };
        let current = ec.current();
        let (from, inferred) = match ev.version {
            Some(text) => {
                let t = text.trim();
                let v = t.strip_prefix('v').unwrap_or(t).parse::<u32>().ok();
                let Some(c) = v.and_then(|v| ec.versions.get(&v)) else {
                    return Err(violation(ViolationKind::UnknownVersion {
                        declared: text.to_string(),
                        known: ec.versions.keys().copied().collect(),
                    }));
                };
                if !c.validator.is_valid(ev.payload) {
                    return Err(violation(ViolationKind::Invalid {
                        version: c.version,
                        file: c.file.clone(),
                        errors: schema_errors(c, ev.payload),
                    }));
                }
                (c.version, false)
            }
            None => match ec
                .versions
                .values()
                .rev()
                .find(|c| c.validator.is_valid(ev.payload))
            {
                Some(c) => (c.version, true),
                None => {
                    return Err(violation(ViolationKind::NoVersionMatches {
                        file: current.file.clone(),
                        errors: schema_errors(current, ev.payload),
                    }));
                }
            },
        };
        let checked = |payload| Checked {
            contract: ec.name(),
            from_version: from,
            inferred,
            to_version: current.version,
            payload,
        };
        if from == current.version {
            return Ok(Some(checked(ev.payload.clone())));
        }
        let mut payload = ev.payload.clone();
        let mut without = Vec::new();
        for (v, c) in ec.versions.range(from + 1..) {
            if c.upcast.is_empty() {
                without.push(*v);
            }
            for step in &c.upcast {
                if let Err(message) = step.apply(&mut payload) {
                    return Err(violation(ViolationKind::UpcastFailed {
                        to_version: *v,
                        step: step.describe(),
                        message,
                    }));
                }
            }
        }
        if !current.validator.is_valid(&payload) {
            return Err(violation(ViolationKind::NotCurrentAfterUpcast {
                from_version: from,
                to_version: current.version,
                file: current.file.clone(),
                errors: schema_errors(current, &payload),
                versions_without_steps: without,
            }));
        }
        Ok(Some(checked(payload)))
    }
}
