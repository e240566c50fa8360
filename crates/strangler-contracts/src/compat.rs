//! Compatibility of a new version with the previous one: which changes break readers.
//!
//! The question asked is the one a replay asks: can every event written in the old version, after
//! the new version's upcast steps, be read as the new version, and does a reader of the new
//! version still find what readers of the old one used? Breaking:
//! - a **removed field** (unless an upcast step renames, splits or removes it on purpose),
//! - a **retyped field** (old types not all accepted by the new schema, unless a `convert` step
//!   handles it; `integer` to `number` widens and is fine),
//! - a **new required field** (or an optional field made required) that no upcast step produces,
//! - a **changed enum value** (an old value no longer allowed) or a changed `const`,
//! - an object **closed** to fields it used to allow (`additionalProperties: false` added).
//!
//! Added enum values are reported as warnings: new readers accept them, old readers may not.
//! Nested objects (`properties`) and array items (`items`) are compared recursively; local
//! `$ref`s (`#/$defs/...`, `#/definitions/...`) are followed.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::contract::Contract;
use crate::upcast::Step;

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A field of the old version is gone.
    RemovedField,
    /// A field accepts other types than before.
    RetypedField,
    /// A field is required now and old events do not have it, and no upcast step gives it.
    NewRequiredField,
    /// An enum lost (or changed) a value, or a `const` changed.
    ChangedEnum,
    /// The object no longer accepts fields it used to.
    ClosedObject,
    /// An enum gained a value (warning).
    AddedEnumValue,
}

impl ChangeKind {
    /// Whether this change breaks readers (else it is a warning).
    pub fn breaking(self) -> bool {
        !matches!(self, ChangeKind::AddedEnumValue)
    }

    fn label(self) -> &'static str {
        match self {
            ChangeKind::RemovedField => "removed field",
            ChangeKind::RetypedField => "retyped field",
            ChangeKind::NewRequiredField => "new required field without an upcaster",
            ChangeKind::ChangedEnum => "changed enum value",
            ChangeKind::ClosedObject => "closed object",
            ChangeKind::AddedEnumValue => "added enum value",
        }
    }
}

/// One change between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What kind.
    pub kind: ChangeKind,
    /// Where: a path of field names (`/customer/name`, `/items/[]/sku` for array items).
    pub path: String,
    /// What changed, in words.
    pub detail: String,
    /// Whether it breaks readers.
    pub breaking: bool,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {}: {}",
            if self.breaking { "BREAKING" } else { "warning" },
            self.kind.label(),
            if self.path.is_empty() {
                "(payload)"
            } else {
                &self.path
            },
            self.detail
        )
    }
}

struct Ctx<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    produced: BTreeSet<String>,
    consumed: BTreeSet<String>,
    any_code: bool,
    out: Vec<Change>,
}

/// Compares `new` with `old` (its previous version) and lists every change found.
pub fn compare(old: &Contract, new: &Contract) -> Vec<Change> {
    let mut produced = BTreeSet::new();
    let mut consumed = BTreeSet::new();
    let mut any_code = false;
    for s in &new.upcast {
        match (s.produces(), s.consumes()) {
            (Some(p), Some(c)) => {
                produced.extend(p.into_iter().map(str::to_string));
                consumed.extend(c.into_iter().map(str::to_string));
            }
            _ => any_code = true,
        }
        if let Step::Convert { field, .. } = s {
            produced.insert(field.clone());
        }
    }
    let mut ctx = Ctx {
        old_root: &old.schema,
        new_root: &new.schema,
        produced,
        consumed,
        any_code,
        out: Vec::new(),
    };
    ctx.node(&old.schema, &new.schema, "", true);
    ctx.out
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut cur = node;
    for _ in 0..16 {
        match cur.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with("#/") => match root.pointer(&r[1..]) {
                Some(target) => cur = target,
                None => return cur,
            },
            _ => return cur,
        }
    }
    cur
}

fn types(node: &Value) -> Option<BTreeSet<String>> {
    match node.get("type")? {
        Value::String(s) => Some(std::iter::once(s.clone()).collect()),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    }
}

fn strings(node: &Value, key: &str) -> BTreeSet<String> {
    node.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Ctx<'_> {
    fn push(&mut self, kind: ChangeKind, path: &str, detail: String) {
        self.out.push(Change {
            kind,
            path: path.to_string(),
            detail,
            breaking: kind.breaking(),
        });
    }

    /// `top` says the path is reachable by upcast pointers (no array on the way).
    fn node(&mut self, old: &Value, new: &Value, path: &str, top: bool) {
        let old = resolve(self.old_root, old);
        let new = resolve(self.new_root, new);
        let handled =
            |set: &BTreeSet<String>, any_code: bool| top && (any_code || set.contains(path));

        if let (Some(o), Some(n)) = (types(old), types(new)) {
            let lost: Vec<&String> = o
                .iter()
                .filter(|t| !(n.contains(*t) || (t.as_str() == "integer" && n.contains("number"))))
                .collect();
            if !lost.is_empty() && !handled(&self.produced, self.any_code) {
                self.push(
                    ChangeKind::RetypedField,
                    path,
                    format!(
                        "type {} became {}; old events with {} no longer match (add a `convert` upcast step)",
                        join(&o),
                        join(&n),
                        lost.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        } else if types(old).is_none()
            && let Some(n) = types(new)
            && !path.is_empty()
            && !handled(&self.produced, self.any_code)
        {
            self.push(
                ChangeKind::RetypedField,
                path,
                format!("any type became {}", join(&n)),
            );
        }

        if let (Some(Value::Array(o)), Some(Value::Array(n))) = (old.get("enum"), new.get("enum")) {
            let removed: Vec<String> = o
                .iter()
                .filter(|v| !n.contains(v))
                .map(Value::to_string)
                .collect();
            let added: Vec<String> = n
                .iter()
                .filter(|v| !o.contains(v))
                .map(Value::to_string)
                .collect();
            if !removed.is_empty() && !handled(&self.produced, self.any_code) {
                self.push(
                    ChangeKind::ChangedEnum,
                    path,
                    format!(
                        "{} no longer allowed{}",
                        removed.join(", "),
                        if added.is_empty() {
                            String::new()
                        } else {
                            format!(" ({} added)", added.join(", "))
                        }
                    ),
                );
            } else if !added.is_empty() {
                self.push(
                    ChangeKind::AddedEnumValue,
                    path,
                    format!(
                        "{} added; readers of the old version may not know it",
                        added.join(", ")
                    ),
                );
            }
        } else if old.get("enum").is_none()
            && new.get("enum").is_some()
            && !handled(&self.produced, self.any_code)
        {
            self.push(
                ChangeKind::ChangedEnum,
                path,
                "an enum now restricts the values".into(),
            );
        }
        if let Some(oc) = old.get("const")
            && new.get("const").is_some_and(|nc| nc != oc)
            && !handled(&self.produced, self.any_code)
        {
            self.push(
                ChangeKind::ChangedEnum,
                path,
                format!("const {oc} became {}", new["const"]),
            );
        }

        let empty = serde_json::Map::new();
        let op = old
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let np = new
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let open = |n: &Value| !matches!(n.get("additionalProperties"), Some(Value::Bool(false)));
        if open(old) && !open(new) {
            self.push(
                ChangeKind::ClosedObject,
                path,
                "`additionalProperties: false` rejects fields old events may carry".into(),
            );
        }
        for (name, o_child) in op {
            let child = format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"));
            match np.get(name) {
                Some(n_child) => self.node(o_child, n_child, &child, top),
                None => {
                    let consumed = top && (self.any_code || self.consumed.contains(&child));
                    if !consumed {
                        self.push(
                            ChangeKind::RemovedField,
                            &child,
                            "readers that use it lose it; rename it with an upcast step, or keep it".into(),
                        );
                    }
                }
            }
        }
        let o_req = strings(old, "required");
        for name in strings(new, "required").difference(&o_req) {
            let child = format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"));
            let produced = top && (self.any_code || self.produced.contains(&child));
            if produced {
                continue;
            }
            let detail = if op.contains_key(name) {
                "was optional; old events without it no longer match (add an `add` upcast step with a default)"
            } else {
                "old events do not have it (add an `add` upcast step with a default, or make it optional)"
            };
            self.push(ChangeKind::NewRequiredField, &child, detail.into());
        }
        if let (Some(oi), Some(ni)) = (old.get("items"), new.get("items"))
            && oi.is_object()
            && ni.is_object()
        {
            self.node(oi, ni, &format!("{path}/[]"), false);
        }
    }
}

fn join(s: &BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join("|")
}
