//! Field renames: moves legacy values to where the new model keeps them, before the walk.

use serde_json::Value;

use crate::rules::{RuleKind, RuleSet};

/// Applies every rename rule to (a copy of) the legacy document.
///
/// A rename is credited as forgiving a difference when the candidate has the new path and not
/// the old one: without the rule that would have been one `missing` and one `extra`.
pub(crate) fn apply(
    mut legacy: Value,
    candidate: &Value,
    rules: &RuleSet,
    forgiven: &mut [u32],
) -> Value {
    for &idx in &rules.renames {
        let RuleKind::Rename(rename) = &rules.rules[idx].kind else {
            continue;
        };
        let from = rename.legacy.literal_segments();
        let to = rename.candidate.literal_segments();
        if let (Some((old, parent)), Some((new, same))) = (from.split_last(), to.split_last())
            && parent == same
            && let (Some(old), Some(new)) = (old, new)
        {
            // Same parent, new key: move in place, no path bookkeeping.
            forgiven[idx] += rename_in_place(&mut legacy, Some(candidate), parent, old, new);
            continue;
        }
        let mut found = Vec::new();
        collect(&legacy, &from, &mut Vec::new(), &mut Vec::new(), &mut found);
        for (path, captures) in found {
            let mut captured = captures.iter();
            let target: Vec<String> = to
                .iter()
                .map(|seg| match seg {
                    Some(lit) => (*lit).to_owned(),
                    None => captured.next().cloned().unwrap_or_default(),
                })
                .collect();
            if lookup(&legacy, &target).is_some() || lookup(candidate, &path).is_some() {
                continue; // the legacy answer already has the new field: leave both alone
            }
            let Some(value) = take(&mut legacy, &path) else {
                continue;
            };
            let credit = lookup(candidate, &target).is_some();
            match put(&mut legacy, &target, value) {
                Ok(()) if credit => forgiven[idx] += 1,
                Ok(()) => {}
                Err(value) => {
                    // target unreachable (e.g. through a scalar): restore the original
                    let _ = put(&mut legacy, &path, value);
                }
            }
        }
    }
    legacy
}

/// Renames `old` to `new` in every object reached through `parent`; returns the credited count.
fn rename_in_place(
    v: &mut Value,
    candidate: Option<&Value>,
    parent: &[Option<&str>],
    old: &str,
    new: &str,
) -> u32 {
    let Some((head, rest)) = parent.split_first() else {
        let Value::Object(m) = v else { return 0 };
        let cand = candidate.and_then(Value::as_object);
        // Leave it when the legacy already has the new name or the candidate kept the old one.
        if m.contains_key(new) || cand.is_some_and(|c| c.contains_key(old)) {
            return 0;
        }
        let Some(value) = m.shift_remove(old) else {
            return 0;
        };
        m.insert(new.to_owned(), value);
        let credit = cand.is_some_and(|c| c.contains_key(new));
        return u32::from(credit);
    };
    match (head, v) {
        (Some(lit), v) => match child_mut(v, lit) {
            Some(next) => {
                rename_in_place(next, candidate.and_then(|c| child(c, lit)), rest, old, new)
            }
            None => 0,
        },
        (None, Value::Object(m)) => m
            .iter_mut()
            .map(|(k, next)| {
                rename_in_place(next, candidate.and_then(|c| child(c, k)), rest, old, new)
            })
            .sum(),
        (None, Value::Array(a)) => a
            .iter_mut()
            .enumerate()
            .map(|(i, next)| {
                rename_in_place(
                    next,
                    candidate.and_then(|c| c.as_array()?.get(i)),
                    rest,
                    old,
                    new,
                )
            })
            .sum(),
        _ => 0,
    }
}

/// Every concrete path matching `pattern` (`None` = `*`), with the captured `*` segments.
fn collect(
    v: &Value,
    pattern: &[Option<&str>],
    path: &mut Vec<String>,
    caps: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Vec<String>)>,
) {
    let Some((head, rest)) = pattern.split_first() else {
        out.push((path.clone(), caps.clone()));
        return;
    };
    let mut descend = |key: String,
                       child: &Value,
                       captured: bool,
                       path: &mut Vec<String>,
                       caps: &mut Vec<String>| {
        path.push(key.clone());
        if captured {
            caps.push(key);
        }
        collect(child, rest, path, caps, out);
        path.pop();
        if captured {
            caps.pop();
        }
    };
    match (head, v) {
        (Some(lit), Value::Object(m)) => {
            if let Some(child) = m.get(*lit) {
                descend((*lit).to_owned(), child, false, path, caps);
            }
        }
        (Some(lit), Value::Array(a)) => {
            if let Some(child) = lit.parse::<usize>().ok().and_then(|i| a.get(i)) {
                descend((*lit).to_owned(), child, false, path, caps);
            }
        }
        (None, Value::Object(m)) => {
            for (k, child) in m {
                descend(k.clone(), child, true, path, caps);
            }
        }
        (None, Value::Array(a)) => {
            for (i, child) in a.iter().enumerate() {
                descend(i.to_string(), child, true, path, caps);
            }
        }
        _ => {}
    }
}

fn child<'a>(v: &'a Value, seg: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => a.get(seg.parse::<usize>().ok()?),
        _ => None,
    }
}

fn child_mut<'a>(v: &'a mut Value, seg: &str) -> Option<&'a mut Value> {
    match v {
        Value::Object(m) => m.get_mut(seg),
        Value::Array(a) => a.get_mut(seg.parse::<usize>().ok()?),
        _ => None,
    }
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, seg| child(v, seg))
}

fn take(v: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let parent = parents.iter().try_fold(v, |v, seg| child_mut(v, seg))?;
    parent.as_object_mut()?.shift_remove(last.as_str())
}

fn put(v: &mut Value, path: &[String], value: Value) -> Result<(), Value> {
    let Some((last, parents)) = path.split_last() else {
        return Err(value);
    };
    let mut cur = v;
    for seg in parents {
        let next = match cur {
            Value::Object(m) => m
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Default::default())),
            Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(x) => x,
                None => return Err(value),
            },
            _ => return Err(value),
        };
        cur = next;
    }
    match cur.as_object_mut() {
        Some(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        None => Err(value),
    }
}
