//! Names and literals in ClickHouse SQL. ClickHouse 18.16 has no bound query parameters over HTTP,
//! so every name is checked and every string literal escaped here, in one place.

use crate::error::{Error, Result};

/// Accepts `[A-Za-z_][A-Za-z0-9_]*` up to 120 characters; anything else is refused with the name.
pub fn check_name(what: &'static str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = name.len() <= 120
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Name {
            what,
            name: name.to_string(),
        })
    }
}

/// `` `db`.`table` `` for a checked database and table name.
pub fn qualified(database: &str, table: &str) -> String {
    format!("`{database}`.`{table}`")
}

/// A single-quoted string literal with `\` and `'` escaped.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_literals_escaped() {
        assert!(check_name("table", "revenue_by_day_v1").is_ok());
        assert!(check_name("table", "_x").is_ok());
        for bad in ["", "1x", "a-b", "a b", "a`b", "t;DROP"] {
            assert!(check_name("table", bad).is_err(), "{bad}");
        }
        assert_eq!(literal(r"it's a\b"), r"'it\'s a\\b'");
    }
}
