//! Read-route files (`[serve] routes_dir`, `*.toml`): read API routes kept apart from the
//! projection files, each file naming the projection whose tables its routes read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Problem;
use super::load::parse_as;
use super::model::{ProjectionDef, RouteDef};
use super::validate::validate_route;
use crate::{Error, Result, sql};

/// One routes file.
#[derive(Debug, Clone, Deserialize)]
pub struct RoutesFile {
    /// The projection whose tables the routes read: `{{table}}` names resolve to the version
    /// being served, and answers carry that projection's freshness headers.
    pub projection: String,
    /// The routes, in the shape of a projection file's `[[route]]`.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteDef>,
}

fn check(file: &RoutesFile) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if file.routes.is_empty() {
        out.push((
            "route".into(),
            "no routes in this file".into(),
            "add [[route]] tables with path, sql and result".into(),
        ));
    }
    for (i, r) in file.routes.iter().enumerate() {
        out.extend(validate_route(&format!("route[{i}]"), r));
    }
    out
}

/// Every `*.toml` in `dir`, validated against the projections they name (`defs`): the projection
/// must exist, `{{tables}}` must be its tables, and no path may be served twice (here or by a
/// projection file). Every problem is reported with file, line:column, key and fix.
pub fn load_routes_dir(
    dir: &Path,
    defs: &[(PathBuf, ProjectionDef)],
) -> Result<Vec<(PathBuf, RoutesFile)>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut tables: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut served: BTreeMap<String, String> = BTreeMap::new();
    for (file, d) in defs {
        tables
            .entry(d.name.as_str())
            .or_default()
            .extend(d.tables.iter().map(String::as_str));
        for r in &d.routes {
            served.insert(r.path.clone(), file.display().to_string());
        }
    }
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let parsed: RoutesFile = match parse_as(&text, &path, check) {
            Ok(f) => f,
            Err(p) => {
                problems.extend(p);
                continue;
            }
        };
        let problem = |key: String, message: String, fix: String| Problem {
            file: path.clone(),
            line_col: strangler_core::config::locate::locate(
                &toml_edit::ImDocument::parse(text.clone()).expect("parsed above"),
                &text,
                &key,
            ),
            key,
            message,
            fix,
        };
        match tables.get(parsed.projection.as_str()) {
            None => problems.push(problem(
                "projection".into(),
                format!("no projection named `{}` is defined", parsed.projection),
                format!(
                    "name one of the projections in the projections folder: {}",
                    tables.keys().copied().collect::<Vec<_>>().join(", ")
                ),
            )),
            Some(own) => {
                for (i, r) in parsed.routes.iter().enumerate() {
                    for t in sql::table_names(&r.sql) {
                        if !own.contains(t.as_str()) {
                            problems.push(problem(
                                format!("route[{i}].sql"),
                                format!(
                                    "`{{{{{t}}}}}` is not a table of projection `{}`",
                                    parsed.projection
                                ),
                                format!(
                                    "use one of its tables: {}",
                                    own.iter().copied().collect::<Vec<_>>().join(", ")
                                ),
                            ));
                        }
                    }
                }
            }
        }
        for (i, r) in parsed.routes.iter().enumerate() {
            if let Some(other) = served.insert(r.path.clone(), path.display().to_string()) {
                problems.push(problem(
                    format!("route[{i}].path"),
                    format!("route {} is also served by {other}", r.path),
                    "serve each path from one file".into(),
                ));
            }
        }
        out.push((path, parsed));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Definition(problems))
    }
}
