//! Upcasting: declarative steps that bring a payload of version N-1 to version N.
//!
//! A contract file lists its steps under `x-strangler.upcast`; they run in order on the payload of
//! the previous version. Fields are JSON pointers (`/customer/name`). Steps that need code name a
//! Rust function registered with [`crate::Registry::register_code_step`].
//!
//! | step | JSON | effect |
//! |---|---|---|
//! | add | `{"add": "/channel", "default": "web"}` | sets the field when it is absent |
//! | rename | `{"rename": "/cust", "to": "/customer_id"}` | moves the value (absent stays absent) |
//! | convert | `{"convert": "/total", "scale": 100, "to": "integer"}` | multiplies (a unit change), then converts the type (`integer`, `number`, `string`, `boolean`) |
//! | split | `{"split": "/name", "into": ["/first", "/last"], "separator": " "}` | splits a string into fields (the last part keeps the rest); `"keep": true` keeps the source, `"missing": v` fills absent parts |
//! | remove | `{"remove": "/legacy_flag"}` | drops the field |
//! | code | `{"code": "fill_region"}` | runs a registered Rust step |

use std::sync::Arc;

use serde_json::{Map, Value};

/// A Rust upcasting step, for changes no declarative step expresses.
pub trait CodeStep: Send + Sync {
    /// Changes `payload` in place; `Err` says why this payload cannot be upcast.
    fn apply(&self, payload: &mut Value) -> Result<(), String>;
}

impl<F> CodeStep for F
where
    F: Fn(&mut Value) -> Result<(), String> + Send + Sync,
{
    fn apply(&self, payload: &mut Value) -> Result<(), String> {
        self(payload)
    }
}

/// A JSON type a `convert` step produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    /// A whole number (rounded half away from zero).
    Integer,
    /// A number.
    Number,
    /// Text.
    String,
    /// `true` or `false` (from `"true"`/`"false"`, `1`/`0`).
    Boolean,
}

impl JsonType {
    fn parse(s: &str) -> Option<JsonType> {
        Some(match s {
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "string" => JsonType::String,
            "boolean" => JsonType::Boolean,
            _ => return None,
        })
    }
}

/// One upcasting step.
#[derive(Clone)]
pub enum Step {
    /// Set `field` to `default` when it is absent.
    Add {
        /// JSON pointer.
        field: String,
        /// The value for events written before the field existed.
        default: Value,
    },
    /// Move `from` to `to`.
    Rename {
        /// Old pointer.
        from: String,
        /// New pointer.
        to: String,
    },
    /// Scale a number (unit change) and/or change its type.
    Convert {
        /// JSON pointer.
        field: String,
        /// Factor to multiply by, for example 100 for units to cents.
        scale: Option<f64>,
        /// The type to convert to.
        to: Option<JsonType>,
    },
    /// Split a string field into several fields.
    Split {
        /// The source pointer.
        field: String,
        /// Target pointers, in order; the last receives the rest of the string.
        into: Vec<String>,
        /// Separator between parts.
        separator: String,
        /// Keep the source field.
        keep: bool,
        /// Value for parts the string does not have; without it, too few parts is an error.
        missing: Option<Value>,
    },
    /// Drop a field.
    Remove {
        /// JSON pointer.
        field: String,
    },
    /// A registered Rust step.
    Code {
        /// The name it was registered under.
        name: String,
        /// The function, once registered.
        func: Option<Arc<dyn CodeStep>>,
    },
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn pointer_ok(p: &str) -> bool {
    p.starts_with('/') && p.len() > 1
}

impl Step {
    /// Parses one step as written in a contract file.
    pub fn parse(v: &Value) -> Result<Step, String> {
        let obj = v
            .as_object()
            .ok_or("a step is an object such as {\"add\": \"/field\", \"default\": 0}")?;
        let ops = ["add", "rename", "convert", "split", "remove", "code"];
        let named: Vec<&str> = ops
            .iter()
            .copied()
            .filter(|k| obj.contains_key(*k))
            .collect();
        let [op] = named.as_slice() else {
            return Err(format!(
                "a step names exactly one operation of {}; found {}",
                ops.join(", "),
                if named.is_empty() {
                    "none".to_string()
                } else {
                    named.join(" and ")
                }
            ));
        };
        let allowed: &[&str] = match *op {
            "add" => &["add", "default"],
            "rename" => &["rename", "to"],
            "convert" => &["convert", "scale", "to"],
            "split" => &["split", "into", "separator", "keep", "missing"],
            "remove" => &["remove"],
            _ => &["code"],
        };
        if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "`{k}` is not a key of a `{op}` step (keys: {})",
                allowed.join(", ")
            ));
        }
        let ptr = |key: &str| -> Result<String, String> {
            match obj.get(key).and_then(Value::as_str) {
                Some(p) if pointer_ok(p) => Ok(p.to_string()),
                Some(p) => Err(format!(
                    "`{key}` must be a JSON pointer such as \"/field\", found \"{p}\""
                )),
                None => Err(format!(
                    "a `{op}` step needs `{key}` as a JSON pointer string"
                )),
            }
        };
        Ok(match *op {
            "add" => Step::Add {
                field: ptr("add")?,
                default: obj
                    .get("default")
                    .cloned()
                    .ok_or("an `add` step needs `default`: the value old events get")?,
            },
            "rename" => Step::Rename {
                from: ptr("rename")?,
                to: ptr("to")?,
            },
            "convert" => {
                let scale = match obj.get("scale") {
                    None => None,
                    Some(s) => Some(
                        s.as_f64()
                            .filter(|f| f.is_finite() && *f != 0.0)
                            .ok_or("`scale` must be a non-zero number")?,
                    ),
                };
                let to = match obj.get("to") {
                    None => None,
                    Some(t) => Some(t.as_str().and_then(JsonType::parse).ok_or(
                        "`to` must be one of \"integer\", \"number\", \"string\", \"boolean\"",
                    )?),
                };
                if scale.is_none() && to.is_none() {
                    return Err("a `convert` step needs `scale`, `to`, or both".into());
                }
                Step::Convert {
                    field: ptr("convert")?,
                    scale,
                    to,
                }
            }
            "split" => {
                let into: Vec<String> = obj
                    .get("into")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|p| match p.as_str() {
                                Some(s) if pointer_ok(s) => Ok(s.to_string()),
                                _ => Err(format!("`into` holds JSON pointers; found {p}")),
                            })
                            .collect::<Result<_, _>>()
                    })
                    .transpose()?
                    .ok_or("a `split` step needs `into`: a list of JSON pointers")?;
                if into.len() < 2 {
                    return Err("`into` names at least two fields".into());
                }
                let separator = obj
                    .get("separator")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or("a `split` step needs a non-empty `separator` string")?
                    .to_string();
                Step::Split {
                    field: ptr("split")?,
                    into,
                    separator,
                    keep: obj.get("keep").and_then(Value::as_bool).unwrap_or(false),
                    missing: obj.get("missing").cloned(),
                }
            }
            "remove" => Step::Remove {
                field: ptr("remove")?,
            },
            _ => Step::Code {
                name: obj
                    .get("code")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or("a `code` step names a registered Rust step: {\"code\": \"name\"}")?
                    .to_string(),
                func: None,
            },
        })
    }

    /// One line for messages: `add /channel = "web"`.
    pub fn describe(&self) -> String {
        match self {
            Step::Add { field, default } => format!("add {field} = {default}"),
            Step::Rename { from, to } => format!("rename {from} -> {to}"),
            Step::Convert { field, scale, to } => {
                let mut s = format!("convert {field}");
                if let Some(k) = scale {
                    s.push_str(&format!(" x{k}"));
                }
                if let Some(t) = to {
                    s.push_str(&format!(" to {t:?}").to_lowercase());
                }
                s
            }
            Step::Split { field, into, .. } => format!("split {field} -> {}", into.join(", ")),
            Step::Remove { field } => format!("remove {field}"),
            Step::Code { name, .. } => format!("code {name}"),
        }
    }

    /// Fields this step gives the payload (for the compatibility check). `None` means any field
    /// (a code step).
    pub fn produces(&self) -> Option<Vec<&str>> {
        Some(match self {
            Step::Add { field, .. } => vec![field.as_str()],
            Step::Rename { to, .. } => vec![to.as_str()],
            Step::Convert { field, .. } => vec![field.as_str()],
            Step::Split { into, .. } => into.iter().map(String::as_str).collect(),
            Step::Remove { .. } => vec![],
            Step::Code { .. } => return None,
        })
    }

    /// Fields this step takes away or rewrites on purpose. `None` means any field (a code step).
    pub fn consumes(&self) -> Option<Vec<&str>> {
        Some(match self {
            Step::Rename { from, .. } => vec![from.as_str()],
            Step::Split {
                field, keep: false, ..
            } => vec![field.as_str()],
            Step::Remove { field } => vec![field.as_str()],
            Step::Convert { field, .. } => vec![field.as_str()],
            Step::Code { .. } => return None,
            _ => vec![],
        })
    }

    /// Applies the step to `payload`.
    pub fn apply(&self, payload: &mut Value) -> Result<(), String> {
        match self {
            Step::Add { field, default } => {
                if payload.pointer(field).is_none() {
                    set(payload, field, default.clone())?;
                }
            }
            Step::Rename { from, to } => {
                if let Some(v) = take(payload, from) {
                    set(payload, to, v)?;
                }
            }
            Step::Convert { field, scale, to } => {
                let Some(v) = payload.pointer_mut(field) else {
                    return Ok(());
                };
                if v.is_null() {
                    return Ok(());
                }
                let mut out = v.clone();
                if let Some(k) = scale {
                    let n = number_of(&out)
                        .ok_or_else(|| format!("{field} is {out}, not a number to scale"))?;
                    out = float_json(n * k);
                }
                if let Some(t) = to {
                    out = convert(&out, *t).ok_or_else(|| {
                        format!("{field} = {out} cannot be converted to {t:?}").to_lowercase()
                    })?;
                }
                *v = out;
            }
            Step::Split {
                field,
                into,
                separator,
                keep,
                missing,
            } => {
                let Some(v) = payload.pointer(field) else {
                    return Ok(());
                };
                let text = v
                    .as_str()
                    .ok_or_else(|| format!("{field} is {v}, not a string to split"))?
                    .to_string();
                let parts: Vec<&str> = text.splitn(into.len(), separator.as_str()).collect();
                if parts.len() < into.len() && missing.is_none() {
                    return Err(format!(
                        "{field} = {text:?} has {} part(s) separated by {separator:?}, {} needed; give the step a `missing` value",
                        parts.len(),
                        into.len()
                    ));
                }
                if !keep {
                    take(payload, field);
                }
                for (i, target) in into.iter().enumerate() {
                    let value = match parts.get(i) {
                        Some(p) => Value::String((*p).to_string()),
                        None => missing.clone().unwrap_or(Value::Null),
                    };
                    set(payload, target, value)?;
                }
            }
            Step::Remove { field } => {
                take(payload, field);
            }
            Step::Code { name, func } => match func {
                Some(f) => f.apply(payload)?,
                None => {
                    return Err(format!(
                        "code step `{name}` is not registered in this process (Registry::register_code_step)"
                    ));
                }
            },
        }
        Ok(())
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A float as JSON, written as an integer when it is whole (so `12.5 x 100` is `1250`).
fn float_json(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

fn convert(v: &Value, to: JsonType) -> Option<Value> {
    Some(match to {
        JsonType::Integer => {
            let n = number_of(v).or_else(|| v.as_bool().map(|b| f64::from(u8::from(b))))?;
            if !n.is_finite() {
                return None;
            }
            Value::from(n.round() as i64)
        }
        JsonType::Number => float_json(number_of(v)?),
        JsonType::String => match v {
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        },
        JsonType::Boolean => match v {
            Value::Bool(b) => Value::Bool(*b),
            Value::String(s) if s == "true" => Value::Bool(true),
            Value::String(s) if s == "false" => Value::Bool(false),
            Value::Number(n) if n.as_f64() == Some(1.0) => Value::Bool(true),
            Value::Number(n) if n.as_f64() == Some(0.0) => Value::Bool(false),
            _ => return None,
        },
    })
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Removes and returns the value at `pointer`.
fn take(root: &mut Value, pointer: &str) -> Option<Value> {
    let (parent, last) = pointer.rsplit_once('/')?;
    let parent = if parent.is_empty() {
        Some(root)
    } else {
        root.pointer_mut(parent)
    }?;
    match parent {
        Value::Object(m) => m.remove(&unescape(last)),
        _ => None,
    }
}

/// Sets the value at `pointer`, creating objects on the way.
fn set(root: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    let tokens: Vec<String> = pointer.split('/').skip(1).map(unescape).collect();
    let mut cur = root;
    for (i, t) in tokens.iter().enumerate() {
        let Value::Object(m) = cur else {
            return Err(format!(
                "cannot set {pointer}: /{} is not an object",
                tokens[..i].join("/")
            ));
        };
        if i + 1 == tokens.len() {
            m.insert(t.clone(), value);
            return Ok(());
        }
        cur = m
            .entry(t.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(step: Value, mut payload: Value) -> Result<Value, String> {
        Step::parse(&step)?.apply(&mut payload)?;
        Ok(payload)
    }

    #[test]
    fn each_declarative_step_changes_only_what_it_names() {
        assert_eq!(
            run(
                json!({"add": "/channel", "default": "web"}),
                json!({"a": 1})
            )
            .unwrap(),
            json!({"a": 1, "channel": "web"})
        );
        assert_eq!(
            run(
                json!({"add": "/channel", "default": "web"}),
                json!({"channel": "app"})
            )
            .unwrap(),
            json!({"channel": "app"}),
            "add never overwrites"
        );
        assert_eq!(
            run(
                json!({"rename": "/cust", "to": "/customer/id"}),
                json!({"cust": "c-1"})
            )
            .unwrap(),
            json!({"customer": {"id": "c-1"}})
        );
        assert_eq!(
            run(
                json!({"convert": "/total", "scale": 100, "to": "integer"}),
                json!({"total": 12.34})
            )
            .unwrap(),
            json!({"total": 1234})
        );
        assert_eq!(
            run(
                json!({"convert": "/qty", "to": "integer"}),
                json!({"qty": "3"})
            )
            .unwrap(),
            json!({"qty": 3})
        );
        assert_eq!(
            run(
                json!({"convert": "/ms", "scale": 0.001}),
                json!({"ms": 1500})
            )
            .unwrap(),
            json!({"ms": 1.5})
        );
        assert_eq!(
            run(
                json!({"split": "/name", "into": ["/first", "/last"], "separator": " "}),
                json!({"name": "Ada King Lovelace"})
            )
            .unwrap(),
            json!({"first": "Ada", "last": "King Lovelace"})
        );
        assert_eq!(
            run(json!({"remove": "/x"}), json!({"x": 1, "y": 2})).unwrap(),
            json!({"y": 2})
        );
    }

    #[test]
    fn steps_that_cannot_apply_say_why() {
        let e = run(
            json!({"split": "/name", "into": ["/first", "/last"], "separator": " "}),
            json!({"name": "Cher"}),
        )
        .unwrap_err();
        assert!(e.contains("1 part(s)") && e.contains("missing"), "{e}");
        assert_eq!(
            run(
                json!({"split": "/name", "into": ["/first", "/last"], "separator": " ", "missing": ""}),
                json!({"name": "Cher"})
            )
            .unwrap(),
            json!({"first": "Cher", "last": ""})
        );
        let e = run(json!({"convert": "/t", "scale": 10}), json!({"t": "abc"})).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        let e = run(json!({"code": "fill"}), json!({})).unwrap_err();
        assert!(e.contains("not registered"), "{e}");
    }

    #[test]
    fn malformed_steps_are_rejected_with_the_fix() {
        for (step, needle) in [
            (json!({"add": "channel", "default": 1}), "JSON pointer"),
            (json!({"add": "/channel"}), "needs `default`"),
            (
                json!({"add": "/a", "rename": "/b", "default": 1}),
                "exactly one",
            ),
            (
                json!({"rename": "/a", "to": "/b", "colour": 1}),
                "`colour` is not a key",
            ),
            (json!({"convert": "/a"}), "needs `scale`, `to`"),
            (json!({"convert": "/a", "to": "date"}), "must be one of"),
            (
                json!({"split": "/a", "into": ["/b"], "separator": " "}),
                "at least two",
            ),
            (json!("add"), "is an object"),
        ] {
            let e = Step::parse(&step).unwrap_err();
            assert!(e.contains(needle), "{step}: {e}");
        }
    }
}
