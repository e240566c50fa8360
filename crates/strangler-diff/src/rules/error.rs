//! Rule-file errors: every one names the file, line, column, key and the fix.

use std::fmt;
use std::ops::Range;

/// One problem found in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The file is not valid TOML.
    #[error("{file}:{line}:{column}: key `{key}`: invalid TOML: {message}; fix: {fix}")]
    Syntax {
        /// Rule file name as given to the parser.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// Key nearest to the problem (`<root>` when none).
        key: String,
        /// What the parser reported.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// A key the schema does not know (usually a typo).
    #[error("{file}:{line}:{column}: unknown key `{key}`: {message}; fix: {fix}")]
    UnknownKey {
        /// Rule file name as given to the parser.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The offending key, qualified by its table (`number.scael`).
        key: String,
        /// What the parser reported.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// A required key is absent.
    #[error("{file}:{line}:{column}: missing key `{key}`: {message}; fix: {fix}")]
    MissingKey {
        /// Rule file name as given to the parser.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The missing key, qualified by its table.
        key: String,
        /// What the parser reported.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// A value of the wrong type or outside the allowed set.
    #[error("{file}:{line}:{column}: key `{key}` has a wrong value: {message}; fix: {fix}")]
    WrongType {
        /// Rule file name as given to the parser.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The key whose value is wrong, qualified by its table.
        key: String,
        /// What the parser reported.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// Well-typed but meaningless: bad path syntax, bad date, bad regex, conflicting keys.
    #[error("{file}:{line}:{column}: key `{key}`: {message}; fix: {fix}")]
    Invalid {
        /// Rule file name as given to the parser.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The key whose value is invalid, qualified by its table.
        key: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// The file could not be read.
    #[error(
        "{file}:1:1: key `<file>`: cannot read rule file: {message}; fix: check the path and its permissions"
    )]
    Read {
        /// Path that was read.
        file: String,
        /// The I/O error.
        message: String,
    },
}

impl RuleError {
    /// 1-based line of the problem.
    pub fn line(&self) -> usize {
        match self {
            RuleError::Syntax { line, .. }
            | RuleError::UnknownKey { line, .. }
            | RuleError::MissingKey { line, .. }
            | RuleError::WrongType { line, .. }
            | RuleError::Invalid { line, .. } => *line,
            RuleError::Read { .. } => 1,
        }
    }

    /// 1-based column of the problem.
    pub fn column(&self) -> usize {
        match self {
            RuleError::Syntax { column, .. }
            | RuleError::UnknownKey { column, .. }
            | RuleError::MissingKey { column, .. }
            | RuleError::WrongType { column, .. }
            | RuleError::Invalid { column, .. } => *column,
            RuleError::Read { .. } => 1,
        }
    }

    /// The key the error is about.
    pub fn key(&self) -> &str {
        match self {
            RuleError::Syntax { key, .. }
            | RuleError::UnknownKey { key, .. }
            | RuleError::MissingKey { key, .. }
            | RuleError::WrongType { key, .. }
            | RuleError::Invalid { key, .. } => key,
            RuleError::Read { .. } => "<file>",
        }
    }
}

/// Every problem found in one rule file (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleErrors {
    /// The problems, in the order found.
    pub errors: Vec<RuleError>,
}

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "{n} error{} in rule file", if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

/// Converts a byte offset into a 1-based line and character column.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Name of the table whose header precedes `offset` (`number` for `[[number]]`), if any.
pub(crate) fn table_at(source: &str, offset: usize) -> Option<String> {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    for line in before.lines().rev().chain(current_line(source, offset)) {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[');
            let end = name.find(']').unwrap_or(name.len());
            return Some(name[..end].trim().to_owned());
        }
    }
    None
}

fn current_line(source: &str, offset: usize) -> Option<&str> {
    let start = source.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    source[start..].lines().next()
}

/// The bare key of the nearest `key = ...` line at or above `offset`, within the current table.
pub(crate) fn key_near(source: &str, offset: usize) -> Option<String> {
    let offset = offset.min(source.len());
    let line_end = source[offset..]
        .find('\n')
        .map_or(source.len(), |i| offset + i);
    let upto = source.get(..line_end).unwrap_or(source);
    for line in upto.lines().rev().take(64) {
        let t = line.trim_start();
        if t.starts_with('[') {
            return None;
        }
        if let Some(eq) = t.find('=') {
            let key = t[..eq].trim().trim_matches('"');
            if !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Some(key.to_owned());
            }
        }
    }
    None
}

/// `table.key`, or just `key` at the top level.
pub(crate) fn qualify(table: Option<&str>, key: &str) -> String {
    match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_owned(),
    }
}

/// Text between the first pair of backticks in a serde message (`unknown field \`x\``).
pub(crate) fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// Builds errors for one file; shared by TOML decoding and semantic validation.
pub(crate) struct ErrorSink<'a> {
    pub source: &'a str,
    pub file: &'a str,
    pub errors: Vec<RuleError>,
}

impl ErrorSink<'_> {
    /// Records a semantic error at `span` for `key` (already qualified).
    pub fn invalid(&mut self, span: Range<usize>, key: &str, message: String, fix: &str) {
        let (line, column) = line_col(self.source, span.start);
        self.errors.push(RuleError::Invalid {
            file: self.file.to_owned(),
            line,
            column,
            key: key.to_owned(),
            message,
            fix: fix.to_owned(),
        });
    }

    /// Turns a TOML decoding error into a located `RuleError`; returns true for syntax errors.
    pub fn decode(&mut self, err: &toml::de::Error) -> bool {
        let span = err.span().unwrap_or(0..0);
        let (line, column) = line_col(self.source, span.start);
        let message = err.message().trim().replace('\n', " ");
        let table = table_at(self.source, span.start);
        let file = self.file.to_owned();
        let named = backticked(&message).map(str::to_owned);
        let near = key_near(self.source, span.start);
        let located = |key: Option<String>| {
            let key = key.unwrap_or_else(|| "<root>".to_owned());
            qualify(table.as_deref(), &key)
        };
        let error = if message.starts_with("unknown field") {
            let key = located(named.clone());
            let fix = format!(
                "remove `{}` or correct its spelling (see docs/shadow-rules.md for the keys of this table)",
                named.as_deref().unwrap_or("?")
            );
            RuleError::UnknownKey {
                file,
                line,
                column,
                key,
                message,
                fix,
            }
        } else if message.starts_with("missing field") {
            let key = located(named.clone());
            let fix = format!(
                "add `{} = ...` to this table",
                named.as_deref().unwrap_or("?")
            );
            RuleError::MissingKey {
                file,
                line,
                column,
                key,
                message,
                fix,
            }
        } else if message.starts_with("invalid type")
            || message.starts_with("invalid value")
            || message.starts_with("unknown variant")
            || message.starts_with("invalid length")
        {
            let key = located(near.clone());
            let fix = match near.as_deref() {
                Some("expires") => {
                    "write the date as a quoted string, e.g. expires = \"2026-06-30\"".to_owned()
                }
                Some(k) => format!("give `{k}` a value of the expected type shown in the message"),
                None => "use a value of the expected type shown in the message".to_owned(),
            };
            RuleError::WrongType {
                file,
                line,
                column,
                key,
                message,
                fix,
            }
        } else if message.starts_with("duplicate") {
            let key = located(near.or(named));
            let fix = "keep only one definition of this key".to_owned();
            RuleError::Invalid {
                file,
                line,
                column,
                key,
                message,
                fix,
            }
        } else {
            let key = located(near);
            let fix = "correct the TOML syntax at this position".to_owned();
            self.errors.push(RuleError::Syntax {
                file,
                line,
                column,
                key,
                message,
                fix,
            });
            return true;
        };
        self.errors.push(error);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_line_and_column() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        // the column counts characters, not bytes
        assert_eq!(line_col(src, src.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(src, 11), (2, 5));
    }

    #[test]
    fn keys_and_tables_are_found_from_the_source() {
        let src = "capability = \"x\"\n[[number]]\npaths = [\n  \"/a\",\n  \"b\",\n]\n";
        let off = src.find("\"b\"").unwrap();
        assert_eq!(table_at(src, off).as_deref(), Some("number"));
        assert_eq!(key_near(src, off).as_deref(), Some("paths"));
        assert_eq!(table_at(src, 3), None);
    }
}
