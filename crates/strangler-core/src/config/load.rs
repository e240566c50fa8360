//! Reading a configuration file into a [`Config`], collecting every problem with its location.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::{line_col, path_to_key};
use super::{Config, Validator};

/// One thing wrong with a configuration file, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Dotted key path, for example `capability[1].rules`.
    pub key: String,
    /// 1-based line and column of the key, when the file shows it.
    pub line_col: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": `{}`: {}", self.key, self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n    fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// Why a configuration could not be used: the file could not be read, or it has problems.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read and has one or more problems, all listed.
    #[error("{}", render(problems))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found, empty when the file could not be read.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems } => problems,
        }
    }
}

/// The parser's message, or a description of its own when the parser gives none (toml_edit does
/// so for some stray characters, a lone carriage return among them).
fn syntax_message(message: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        "invalid TOML: unexpected character (a stray control character such as a lone carriage \
         return?)"
            .to_string()
    } else {
        message.to_string()
    }
}

fn render(problems: &[Problem]) -> String {
    let mut out = format!(
        "configuration has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string().replace('\n', "\n  "));
    }
    out
}

pub(super) fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path, &|name| std::env::var(name).ok())
}

pub(super) fn load_str(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let problem = |key: String, line_col, message: String, fix: &str| Problem {
        file: file.to_path_buf(),
        key,
        line_col,
        message,
        fix: fix.to_string(),
    };

    let doc = match toml_edit::ImDocument::parse(text.to_string()) {
        Ok(doc) => doc,
        Err(e) => {
            let line_col = e.span().map(|s| line_col(text, s.start));
            return Err(ConfigError::Invalid {
                problems: vec![problem(
                    "(syntax)".into(),
                    line_col,
                    syntax_message(e.message()),
                    "correct the TOML syntax at this position",
                )],
            });
        }
    };
    let locate = |key: &str| super::locate::locate(&doc, text, key);

    let mut problems = Vec::new();
    let mut value: toml::Value = match toml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let line_col = e.span().map(|s| line_col(text, s.start));
            return Err(ConfigError::Invalid {
                problems: vec![problem(
                    "(syntax)".into(),
                    line_col,
                    syntax_message(e.message()),
                    "correct the TOML syntax",
                )],
            });
        }
    };

    let mut missing_env = Vec::new();
    interpolate(&mut value, String::new(), env, &mut missing_env);
    for (key, var) in missing_env {
        problems.push(problem(
            key.clone(),
            locate(&key),
            format!("environment variable `{var}` is not set"),
            &format!("export {var}=..., or write `${{{var}:-default}}` to give a default"),
        ));
    }

    let mut unknown = Vec::new();
    let parsed = {
        let mut record =
            |path: serde_ignored::Path<'_>| unknown.push(path_to_key(&path.to_string()));
        let ignored = serde_ignored::Deserializer::new(value, &mut record);
        serde_path_to_error::deserialize::<_, Config>(ignored)
    };
    for key in unknown {
        problems.push(problem(
            key.clone(),
            locate(&key),
            "unknown key".into(),
            "remove it, or check its spelling against the configuration reference in README.md",
        ));
    }

    match parsed {
        Err(e) => {
            let key = path_to_key(&e.path().to_string());
            problems.push(problem(
                key.clone(),
                locate(&key),
                e.inner().to_string(),
                "give this key a value of the type the configuration reference shows",
            ));
            Err(ConfigError::Invalid { problems })
        }
        Ok(mut config) => {
            config.source = Some(file.to_path_buf());
            let mut v = Validator::new(config.base_dir());
            config.validate(&mut v);
            for (key, message, fix) in v.into_problems() {
                problems.push(problem(key.clone(), locate(&key), message, &fix));
            }
            if problems.is_empty() {
                Ok(config)
            } else {
                Err(ConfigError::Invalid { problems })
            }
        }
    }
}

/// Replaces `${NAME}` and `${NAME:-default}` in every string value; `$${` writes a literal `${`.
///
/// Interpolation happens after parsing, so a secret holding quotes or newlines cannot change the
/// structure of the file.
fn interpolate(
    value: &mut toml::Value,
    key: String,
    env: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<(String, String)>,
) {
    match value {
        toml::Value::String(s) if s.contains('$') => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(i) = rest.find('$') {
                out.push_str(&rest[..i]);
                let after = &rest[i..];
                if let Some(lit) = after.strip_prefix("$${") {
                    out.push_str("${");
                    rest = lit;
                } else if let (Some(body), Some(end)) = (after.strip_prefix("${"), after.find('}'))
                {
                    let expr = &body[..end - 2];
                    let (name, default) = match expr.split_once(":-") {
                        Some((n, d)) => (n, Some(d)),
                        None => (expr, None),
                    };
                    match env(name).or_else(|| default.map(str::to_string)) {
                        Some(v) => out.push_str(&v),
                        None => missing.push((key.clone(), name.to_string())),
                    }
                    rest = &after[end + 1..];
                } else {
                    out.push('$');
                    rest = &after[1..];
                }
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, format!("{key}[{i}]"), env, missing);
            }
        }
        toml::Value::Table(table) => {
            for (k, item) in table.iter_mut() {
                let child = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                interpolate(item, child, env, missing);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    /// Found by the config_parse fuzz target: toml_edit rejects a lone carriage return with an
    /// empty message; the problem must still say what is wrong and where.
    #[test]
    fn a_syntax_error_without_a_parser_message_still_says_what_is_wrong() {
        let err = Config::parse("\r", Path::new("strangler.toml")).unwrap_err();
        let problems = err.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "(syntax)");
        assert!(
            problems[0].message.contains("invalid TOML"),
            "{}",
            problems[0].message
        );
        assert!(problems[0].line_col.is_some());
    }
}
