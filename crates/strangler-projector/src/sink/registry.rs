//! The sinks of a set of projection files, built once per process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use strangler_core::config::SinksConfig;

use super::clickhouse::ClickHouseSink;
use super::redis::RedisSink;
use super::{Sink, SinkKind};
use crate::definition::{Problem, ProjectionDef};
use crate::{Error, Result};

/// Every non-SQL projection version's sink, by (name, version). SQL projections have none.
#[derive(Clone, Default)]
pub struct Sinks {
    by: BTreeMap<(String, u32), Arc<dyn Sink>>,
    /// The ClickHouse sinks again, by their own type, for what only they can do (aggregate checks).
    clickhouse: BTreeMap<(String, u32), Arc<ClickHouseSink>>,
}

impl Sinks {
    /// Builds the sinks the definitions name; a target URL comes from the file's `[sink] url`,
    /// else from the configuration's `[projections.sinks.<kind>]`. Every problem is reported
    /// with its file.
    pub fn build(defs: &[(PathBuf, ProjectionDef)], config: &SinksConfig) -> Result<Sinks> {
        let mut by: BTreeMap<(String, u32), Arc<dyn Sink>> = BTreeMap::new();
        let mut clickhouse = BTreeMap::new();
        let mut problems = Vec::new();
        for (file, def) in defs {
            let problem = |message: String, fix: &str| Problem {
                file: file.clone(),
                key: "sink.url".into(),
                line_col: None,
                message,
                fix: fix.to_string(),
            };
            match def.sink.kind {
                SinkKind::Sql => {}
                SinkKind::Redis => {
                    let url = def
                        .sink
                        .url
                        .clone()
                        .or_else(|| config.redis.as_ref().map(|r| r.url.clone()));
                    let Some(url) = url else {
                        problems.push(problem(
                            "no Redis URL for this projection".into(),
                            "add url under [sink], or [projections.sinks.redis] url to the configuration",
                        ));
                        continue;
                    };
                    match RedisSink::new(def, &url) {
                        Ok(s) => {
                            by.insert((def.name.clone(), def.version), Arc::new(s));
                        }
                        Err(e) => problems.push(problem(e, "write it as redis://host:6379/0")),
                    }
                }
                SinkKind::ClickHouse => {
                    let cfg = config.clickhouse.as_ref();
                    let url = def.sink.url.clone().or_else(|| cfg.map(|c| c.url.clone()));
                    let Some(url) = url else {
                        problems.push(problem(
                            "no ClickHouse URL for this projection".into(),
                            "add url under [sink], or [projections.sinks.clickhouse] url to the configuration",
                        ));
                        continue;
                    };
                    let database = def
                        .sink
                        .database
                        .clone()
                        .or_else(|| cfg.map(|c| c.database.clone()))
                        .unwrap_or_else(|| "default".into());
                    let user = cfg.and_then(|c| c.user.clone());
                    let password = cfg.and_then(|c| c.password.clone());
                    match ClickHouseSink::new(def, &url, &database, user, password) {
                        Ok(s) => {
                            let s = Arc::new(s);
                            by.insert((def.name.clone(), def.version), s.clone());
                            clickhouse.insert((def.name.clone(), def.version), s);
                        }
                        Err(e) => problems.push(problem(
                            e,
                            "write the URL as http://host:8123 and fix the [sink] table shape",
                        )),
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(Sinks { by, clickhouse })
        } else {
            Err(Error::Definition(problems))
        }
    }

    /// The sink of a projection version; `None` for SQL projections.
    pub fn get(&self, name: &str, version: u32) -> Option<Arc<dyn Sink>> {
        self.by.get(&(name.to_string(), version)).cloned()
    }

    /// The ClickHouse sink of a projection version; `None` when its sink is another kind.
    pub fn clickhouse(&self, name: &str, version: u32) -> Option<Arc<ClickHouseSink>> {
        self.clickhouse.get(&(name.to_string(), version)).cloned()
    }

    /// Adds (or replaces) the sink of a projection version, for projections written in code.
    pub fn insert(&mut self, name: &str, version: u32, sink: Arc<dyn Sink>) {
        self.by.insert((name.to_string(), version), sink);
    }

    /// Whether no projection has a non-SQL sink.
    pub fn is_empty(&self) -> bool {
        self.by.is_empty()
    }
}
