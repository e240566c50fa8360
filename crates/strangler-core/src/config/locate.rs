//! Line and column of a key path such as `capability[2].rules` in a TOML document, shared by
//! every file strangler validates (the configuration, projection definitions).

use toml_edit::{ArrayOfTables, ImDocument, Item, TableLike, Value};

enum Cur<'a> {
    Table(&'a dyn TableLike),
    Aot(&'a ArrayOfTables),
    Value(&'a Value),
}

/// Where `key` (or its deepest existing ancestor) starts, 1-based.
pub fn locate(doc: &ImDocument<String>, text: &str, key: &str) -> Option<(usize, usize)> {
    let mut best: Option<std::ops::Range<usize>> = None;
    let mut cur = Cur::Table(doc.as_table());
    for seg in segments(key) {
        let next = match (seg, cur) {
            (Seg::Key(k), Cur::Table(t)) => t.get_key_value(k).map(|(kk, child)| {
                best = kk.span().or_else(|| child.span()).or(best.clone());
                item_cur(child)
            }),
            (Seg::Key(k), Cur::Value(Value::InlineTable(t))) => {
                t.get_key_value(k).map(|(kk, child)| {
                    best = kk.span().or_else(|| child.span()).or(best.clone());
                    item_cur(child)
                })
            }
            (Seg::Index(i), Cur::Aot(aot)) => aot.get(i).map(|t| {
                best = t.span().or(best.clone());
                Some(Cur::Table(t as &dyn TableLike))
            }),
            (Seg::Index(i), Cur::Value(Value::Array(arr))) => arr.get(i).map(|v| {
                best = v.span().or(best.clone());
                Some(Cur::Value(v))
            }),
            _ => None,
        };
        match next.flatten() {
            Some(c) => cur = c,
            None => break,
        }
    }
    best.map(|s| line_col(text, s.start))
}

fn item_cur(item: &Item) -> Option<Cur<'_>> {
    match item {
        Item::Table(t) => Some(Cur::Table(t)),
        Item::ArrayOfTables(a) => Some(Cur::Aot(a)),
        Item::Value(v) => Some(Cur::Value(v)),
        Item::None => None,
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(key: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            out.push(Seg::Key(name));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

/// Turns serde's `a.0.b` paths into the `a[0].b` form problems use.
pub fn path_to_key(path: &str) -> String {
    let mut out = String::new();
    for seg in path.split('.') {
        if seg.is_empty() || seg == "?" {
            continue;
        }
        if seg.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_inside_arrays_of_tables_inline_tables_and_arrays() {
        let text = "[store]\nurl = \"x\"\n\n[[capability]]\nname = \"a\"\n\n[[capability]]\nname = \"b\"\nroutes = [\"GET /a\", \"GET /b\"]\nlimits = { max = 3 }\n";
        let doc = ImDocument::parse(text.to_string()).unwrap();
        assert_eq!(locate(&doc, text, "store.url"), Some((2, 1)));
        assert_eq!(locate(&doc, text, "capability[1].name"), Some((8, 1)));
        assert_eq!(locate(&doc, text, "capability[1].routes[1]"), Some((9, 21)));
        assert_eq!(
            locate(&doc, text, "capability[1].limits.max"),
            Some((10, 12))
        );
        // A key that is not in the file is reported where its deepest ancestor is.
        assert_eq!(locate(&doc, text, "capability[1].rules"), Some((7, 1)));
    }
}
