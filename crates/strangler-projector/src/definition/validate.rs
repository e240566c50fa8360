//! Cross-field rules of projection files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Problem;
use super::model::{DedupMode, ProjectionDef, RouteDef};
use crate::event::ParamSource;
use crate::sql;

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Problems of one definition as (key, message, fix).
pub fn validate(def: &ProjectionDef) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut p = |k: String, m: String, f: &str| out.push((k, m, f.to_string()));
    if !is_ident(&def.name) {
        p(
            "name".into(),
            format!("`{}` is not a valid projection name", def.name),
            "use letters, digits and `_`, starting with a letter",
        );
    }
    if def.version == 0 {
        p(
            "version".into(),
            "version must be at least 1".into(),
            "number versions from 1",
        );
    }
    if def.topics.is_empty() {
        p(
            "topics".into(),
            "no topics to consume".into(),
            "list the topics, for example topics = [\"order\"]",
        );
    }
    if def.batch.max_events == 0 {
        p(
            "batch.max_events".into(),
            "must be at least 1".into(),
            "use a batch of 100 to 10000 events",
        );
    }
    if def.dedup.mode == DedupMode::Window && def.dedup.window == 0 {
        p(
            "dedup.window".into(),
            "must be at least 1".into(),
            "use at least the relay's outbox.max_in_flight, for example window = 100000",
        );
    }
    if def.sink.kind != crate::sink::SinkKind::Sql {
        // Tables, setup DDL and SQL belong to the SQL sink; the sink checks its own shape.
        out.extend(crate::sink::template::validate_def(def));
        return out;
    }
    for (i, t) in def.tables.iter().enumerate() {
        if !is_ident(t) {
            p(
                format!("tables[{i}]"),
                format!("`{t}` is not a valid table name"),
                "use letters, digits and `_`",
            );
        }
    }
    if def.tables.is_empty() {
        p(
            "tables".into(),
            "no tables declared".into(),
            "list the tables the SQL writes as `{{name}}`, for example tables = [\"orders\"]",
        );
    }
    if def.setup.all.is_none() && def.setup.postgres.is_none() && def.setup.sqlite.is_none() {
        p(
            "setup".into(),
            "no setup DDL".into(),
            "add [setup] all = \"CREATE TABLE IF NOT EXISTS {{orders}} (...)\"",
        );
    }
    let check_tables = |key: String, text: &str, out: &mut Vec<(String, String, String)>| {
        for t in sql::table_names(text) {
            if !def.tables.contains(&t) {
                out.push((
                    key.clone(),
                    format!("`{{{{{t}}}}}` is not one of the declared tables"),
                    format!("add \"{t}\" to `tables`, or fix the name"),
                ));
            }
        }
    };
    for (k, text) in [
        ("setup.all", &def.setup.all),
        ("setup.postgres", &def.setup.postgres),
        ("setup.sqlite", &def.setup.sqlite),
    ] {
        if let Some(text) = text {
            check_tables(k.into(), text, &mut out);
        }
    }
    for (i, h) in def.handlers.iter().enumerate() {
        let key = format!("handler[{i}]");
        check_tables(format!("{key}.sql"), &h.sql, &mut out);
        let used = sql::param_names(&h.sql);
        for (name, src) in &h.params {
            if ParamSource::parse(src).is_none() {
                out.push((format!("{key}.params.{name}"), format!("`{src}` is not a parameter source"), "use a JSON pointer (`/total`), key, event_id, event_type, event_time, event_time_ms, topic, partition, offset, payload or header:NAME".into()));
            }
            if !used.contains(name) {
                out.push((
                    format!("{key}.params.{name}"),
                    format!("`:{name}` does not appear in the SQL"),
                    "remove the entry, or use the parameter in `sql`".into(),
                ));
            }
        }
        if h.sql.trim().is_empty() {
            out.push((
                format!("{key}.sql"),
                "empty SQL".into(),
                "write one statement".into(),
            ));
        }
    }
    for (i, text) in def.replay.reset_key.iter().enumerate() {
        let key = format!("replay.reset_key[{i}]");
        check_tables(key.clone(), text, &mut out);
        for name in sql::param_names(text) {
            if name != "key" {
                out.push((
                    key.clone(),
                    format!("`:{name}` is not available here; only `:key` is bound"),
                    "select the key's rows with `:key`, for example WHERE order_id = :key".into(),
                ));
            }
        }
    }
    for (i, r) in def.routes.iter().enumerate() {
        let key = format!("route[{i}]");
        check_tables(format!("{key}.sql"), &r.sql, &mut out);
        out.extend(validate_route(&key, r));
    }
    out.extend(crate::sink::template::validate_sql_def(def));
    out
}

/// Problems of one route that need nothing but the route: path, parameters, SELECT.
pub fn validate_route(key: &str, r: &RouteDef) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if !r.path.starts_with('/') {
        out.push((
            format!("{key}.path"),
            format!("`{}` does not start with `/`", r.path),
            "write the path as /orders/{id}".into(),
        ));
    }
    let captures = path_captures(&r.path);
    if let Some(template) = &r.key {
        // A key lookup (Redis sinks): the key's `{name}` parts are captures or query parameters.
        out.extend(crate::sink::template::validate_route_key(
            key, template, &r.sql, &captures, &r.query,
        ));
        return out;
    }
    for name in sql::param_names(&r.sql) {
        if !captures.contains(&name) && !r.query.contains(&name) {
            out.push((
                format!("{key}.sql"),
                format!("`:{name}` is neither a path capture nor a query parameter"),
                format!("add `{{{name}}}` to the path, or \"{name}\" to `query`"),
            ));
        }
    }
    let head = r.sql.trim_start().to_ascii_lowercase();
    if !head.starts_with("select") && !head.starts_with("with") {
        out.push((
            format!("{key}.sql"),
            "a route runs a SELECT".into(),
            "write a SELECT (or WITH ... SELECT) statement".into(),
        ));
    }
    out
}

/// The `{name}` captures of a route path.
pub fn path_captures(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

/// Problems across files: a name and version defined twice, a route path served twice.
pub fn validate_set(defs: &[(PathBuf, ProjectionDef)]) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<(String, u32), &PathBuf> = BTreeMap::new();
    let mut paths: BTreeMap<&str, &str> = BTreeMap::new();
    let mut sinks: BTreeMap<&str, (&crate::sink::SinkDef, &PathBuf)> = BTreeMap::new();
    for (file, def) in defs {
        // Readers switch between versions through one pointer: every version names one target.
        if let Some((first, first_file)) = sinks.insert(&def.name, (&def.sink, file))
            && (first.kind != def.sink.kind || first.prefix != def.sink.prefix)
        {
            out.push(Problem {
                file: file.clone(),
                key: "sink".into(),
                line_col: None,
                message: format!(
                    "{} names another sink kind or prefix than {}",
                    def.name,
                    first_file.display()
                ),
                fix: "give every version of a projection the same [sink] kind and prefix".into(),
            });
        }
        if let Some(first) = seen.insert((def.name.clone(), def.version), file) {
            out.push(Problem {
                file: file.clone(),
                key: "version".into(),
                line_col: None,
                message: format!(
                    "{} v{} is also defined in {}",
                    def.name,
                    def.version,
                    first.display()
                ),
                fix: "give the new file a higher version, or remove one of them".into(),
            });
        }
        for r in &def.routes {
            if let Some(other) = paths.insert(&r.path, &def.name)
                && other != def.name
            {
                out.push(Problem {
                    file: file.clone(),
                    key: "route.path".into(),
                    line_col: None,
                    message: format!("route {} is also served by projection {other}", r.path),
                    fix: "serve each path from one projection".into(),
                });
            }
        }
    }
    out
}
