//! Reading projection files, collecting every problem with file, line:col, key and fix.

use std::path::{Path, PathBuf};

use super::Problem;
use super::model::ProjectionDef;
use super::validate::{validate, validate_set};
use crate::{Error, Result};
use strangler_core::config::locate::{line_col, locate, path_to_key};

/// Parses and validates one projection file's text; `file` names it in problems.
pub fn parse(text: &str, file: &Path) -> Result<ProjectionDef, Vec<Problem>> {
    parse_as(text, file, validate)
}

/// Parses a TOML file into `T`, reporting syntax errors, unknown keys, type errors and what
/// `check` finds, each with its line and column.
pub(super) fn parse_as<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
    check: impl Fn(&T) -> Vec<(String, String, String)>,
) -> Result<T, Vec<Problem>> {
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
            return Err(vec![problem(
                "(syntax)".into(),
                e.span().map(|s| line_col(text, s.start)),
                e.message().trim().to_string(),
                "correct the TOML syntax at this position",
            )]);
        }
    };
    let value: toml::Value = match toml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Err(vec![problem(
                "(syntax)".into(),
                e.span().map(|s| line_col(text, s.start)),
                e.message().to_string(),
                "correct the TOML syntax",
            )]);
        }
    };
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let parsed = {
        let mut record =
            |path: serde_ignored::Path<'_>| unknown.push(path_to_key(&path.to_string()));
        let ignored = serde_ignored::Deserializer::new(value, &mut record);
        serde_path_to_error::deserialize::<_, T>(ignored)
    };
    for key in unknown {
        problems.push(problem(
            key.clone(),
            locate(&doc, text, &key),
            "unknown key".into(),
            "remove it, or check its spelling against projections/README.md",
        ));
    }
    match parsed {
        Err(e) => {
            let key = path_to_key(&e.path().to_string());
            problems.push(problem(
                key.clone(),
                locate(&doc, text, &key),
                e.inner().to_string(),
                "give this key a value of the type projections/README.md shows",
            ));
            Err(problems)
        }
        Ok(def) => {
            for (key, message, fix) in check(&def) {
                problems.push(problem(
                    key.clone(),
                    locate(&doc, text, &key),
                    message,
                    &fix,
                ));
            }
            if problems.is_empty() {
                Ok(def)
            } else {
                Err(problems)
            }
        }
    }
}

/// Every `*.toml` in `dir`, parsed and validated together (names, versions and routes must not
/// collide across files). Files are read in name order so the result is deterministic.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, ProjectionDef)>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut problems = Vec::new();
    let mut defs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        match parse(&text, &path) {
            Ok(def) => defs.push((path, def)),
            Err(p) => problems.extend(p),
        }
    }
    problems.extend(validate_set(&defs));
    if problems.is_empty() {
        Ok(defs)
    } else {
        Err(Error::Definition(problems))
    }
}
