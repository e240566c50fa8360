//! One reconciliation end to end: set up both sides from the configuration, locate drift by
//! checksums and bisection, diff the rows of differing leaves, and re-check repaired keys.

use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use strangler_core::Config;
use strangler_core::config::ReconcileConfig;
use strangler_diff::RuleSet;

use crate::bisect::{self, Checksum, ChecksumSource, Side, Tick};
use crate::checksum::{Column, Shape, native_column};
use crate::db::{Db, Dialect};
use crate::error::{Error, Result};
use crate::key::{Cuts, Key, KeyKind, Segment, Upper};
use crate::normalize::Class;
use crate::progress::Progress;
use crate::redact::Redactor;
use crate::report::Report;
use crate::rows::{Differ, Pair};
use crate::side::SideTable;
use crate::watermark;

/// Leaves fetched per row query pair.
const LEAVES_PER_FETCH: usize = 64;

/// A configured reconciliation, connected to both databases.
#[derive(Debug)]
pub struct Reconciler {
    name: String,
    legacy: SideTable,
    projection: SideTable,
    pairs: Vec<Pair>,
    rules: RuleSet,
    opts: bisect::Options,
    updated_at: Option<usize>,
    watermark: Option<DateTime<Utc>>,
    redactor: Redactor,
    exemplars: usize,
}

impl Reconciler {
    /// Connects the reconciliation `name` of `config`; `watermark` (RFC 3339) overrides the
    /// configured and the projector's watermark.
    pub async fn connect(
        config: &Config,
        name: &str,
        watermark: Option<&str>,
    ) -> Result<Reconciler> {
        let rc = config
            .reconcile
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| Error::UnknownReconciliation(name.into()))?;
        let cfg_err = |message: String| Error::Config {
            name: rc.name.clone(),
            message,
        };
        let legacy_url = rc
            .legacy
            .url
            .clone()
            .or_else(|| config.legacy.as_ref().map(|l| l.url.clone()))
            .ok_or_else(|| {
                cfg_err("no legacy database: set legacy.url here or [legacy] url".into())
            })?;
        let projection_url = rc
            .projection
            .url
            .clone()
            .unwrap_or_else(|| config.projections.read_store_url.clone());
        let max = rc.concurrency as u32 + 1;
        let (ldb, pdb) = tokio::try_join!(
            Db::connect(&legacy_url, max, "legacy"),
            Db::connect(&projection_url, max, "projection")
        )?;
        let describe = |db: &Db, side: &'static str, q: &str| {
            let (db, q) = (db.clone(), q.to_string());
            async move {
                db.describe(&q).await.map_err(|source| Error::Sql {
                    side,
                    what: "describing the query".into(),
                    source,
                })
            }
        };
        let (lcols, pcols) = tokio::try_join!(
            describe(&ldb, "legacy", &rc.legacy.query),
            describe(&pdb, "projection", &rc.projection.query)
        )?;
        let key_kind = key_kind(rc, &lcols, &pcols);
        let (pairs, classes) = pair_columns(rc, &lcols, &pcols, key_kind).map_err(cfg_err)?;
        let hashed = |names: &dyn Fn(&Pair) -> String| -> Vec<Column> {
            pairs
                .iter()
                .zip(&classes)
                .map(|(p, c)| Column {
                    name: names(p),
                    class: *c,
                })
                .collect()
        };
        let extra: Vec<Column> = rc
            .updated_at_column
            .iter()
            .map(|c| Column {
                name: c.clone(),
                class: Class::Timestamp,
            })
            .collect();
        if let Some(u) = &rc.updated_at_column
            && !lcols.iter().any(|(n, _)| n == u)
        {
            return Err(cfg_err(format!(
                "updated_at_column `{u}` is not a column of the legacy query; add it to the SELECT"
            )));
        }
        let side = |name,
                    db: Db,
                    s: &strangler_core::config::ReconcileSide,
                    cols: &[(String, String)],
                    hashed,
                    extra| {
            let dialect = db.dialect();
            let native_uuid = dialect == Dialect::Postgres
                && key_kind == KeyKind::Uuid
                && cols
                    .iter()
                    .any(|(n, t)| *n == s.key && t.eq_ignore_ascii_case("uuid"));
            let hash_in_rust = match s.checksum.as_str() {
                "rust" => true,
                "sql" if dialect == Dialect::Sqlite => {
                    return Err(cfg_err(format!(
                        "{name}.checksum = \"sql\" is impossible on SQLite (no md5); use auto or rust"
                    )));
                }
                "sql" => false,
                _ => dialect == Dialect::Sqlite,
            };
            Ok(SideTable {
                name,
                db,
                shape: Shape {
                    dialect,
                    query: s.query.clone(),
                    key: s.key.clone(),
                    key_kind,
                    native_uuid,
                    native: None,
                    hashed,
                    extra,
                    scale: rc.decimal_scale,
                },
                hash_in_rust,
            })
        };
        let mut legacy = side(
            "legacy",
            ldb,
            &rc.legacy,
            &lcols,
            hashed(&|p| p.legacy.clone()),
            extra,
        )?;
        let mut projection = side(
            "projection",
            pdb,
            &rc.projection,
            &pcols,
            hashed(&|p| p.projection.clone()),
            Vec::new(),
        )?;
        if let Some((l, p)) = native_columns(&legacy, &projection, &pairs, &lcols, &pcols)
            && has_record_hash(&legacy.db).await
            && has_record_hash(&projection.db).await
        {
            legacy.shape.native = Some(l);
            projection.shape.native = Some(p);
        }
        let rules = match &rc.rules {
            Some(path) => {
                let full = config.resolve(path);
                RuleSet::load(&full).map_err(|e| Error::Rules {
                    path: full.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => RuleSet::empty(),
        };
        let watermark = match (watermark, &rc.watermark_query) {
            (Some(w), _) => Some(watermark::parse(w)?),
            (None, Some(q)) => watermark::from_query(&projection.db, q).await?,
            (None, None) => {
                let pname = rc.projection_name.as_deref().unwrap_or(&rc.name);
                watermark::from_checkpoints(&projection.db, pname).await?
            }
        };
        let key = std::env::var(&rc.redact_key_env)
            .ok()
            .map(String::into_bytes);
        Ok(Reconciler {
            name: rc.name.clone(),
            updated_at: rc.updated_at_column.as_ref().map(|_| pairs.len()),
            legacy,
            projection,
            pairs,
            rules,
            opts: bisect::Options {
                chunk_size: rc.chunk_size,
                factor: rc.bisection_factor,
                leaf_rows: rc.leaf_rows,
                concurrency: rc.concurrency,
                root_queries: rc.concurrency as u32,
            },
            watermark,
            redactor: Redactor::new(rc.sensitive_columns.clone(), key),
            exemplars: rc.exemplars,
        })
    }

    /// The watermark in effect.
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.watermark
    }

    fn differ(&self) -> Differ<'_> {
        Differ {
            pairs: &self.pairs,
            rules: &self.rules,
            watermark: self.watermark,
            updated_at: self.updated_at,
            redactor: &self.redactor,
            exemplars: self.exemplars,
        }
    }

    fn empty_report(&self, method: &str) -> Report {
        let mode = |s: &SideTable| {
            match (s.hash_in_rust, &s.shape.native) {
                (true, _) => "rust",
                (false, Some(_)) => "native",
                (false, None) => "sql",
            }
            .to_string()
        };
        let mut r = Report {
            name: self.name.clone(),
            watermark: self
                .watermark
                .map(|w| w.to_rfc3339_opts(SecondsFormat::Millis, true)),
            ..Report::default()
        };
        r.stats.method = method.into();
        r.stats.legacy_hashing = mode(&self.legacy);
        r.stats.projection_hashing = mode(&self.projection);
        r
    }

    /// Compares the whole key space: checksums, bisection, then row diffs of differing leaves.
    pub async fn reconcile(&self, progress: &Progress) -> Result<Report> {
        let start = Instant::now();
        let mut report = self.empty_report("bisect");
        let (l, p) = tokio::try_join!(self.legacy.range(), self.projection.range())?;
        let Some((lo, hi)) = [l, p]
            .into_iter()
            .flatten()
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
        else {
            report.stats.elapsed_ms = start.elapsed().as_millis() as u64;
            return Ok(report);
        };
        report.stats.key_range = Some((lo.clone(), hi.clone()));
        let range = match (&lo, &hi) {
            (Key::Int(lo), Key::Int(hi)) => Segment::ints(*lo, hi.saturating_add(1)),
            _ => Segment {
                lo,
                hi: Upper::Through(hi),
            },
        };
        progress.start(&format!("reconcile {}", self.name), 0);
        let found = bisect::locate(self, range, self.opts, &|t| match t {
            Tick::Total(n) => progress.set_length(n),
            Tick::Settled(n) => progress.inc(n),
        })
        .await?;
        report.stats.checksum_queries = found.queries;
        report.stats.chunks_compared = found.chunks_compared;
        report.stats.chunks_differing = found.chunks_differing;
        self.diff_segments(&found.leaves, &mut report).await?;
        progress.finish();
        report.stats.elapsed_ms = start.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Compares only `keys`, row by row (after a repair).
    pub async fn recheck(&self, keys: &[Key]) -> Result<Report> {
        let start = Instant::now();
        let mut report = self.empty_report("recheck");
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        let mut segs: Vec<Segment> = Vec::new();
        for k in keys {
            match (segs.last_mut(), &k) {
                (Some(s), Key::Int(i)) if s.hi == Upper::Below(Key::Int(*i)) => {
                    s.hi = Upper::Below(Key::Int(i + 1));
                }
                (_, Key::Int(i)) => segs.push(Segment::ints(*i, i + 1)),
                (_, Key::Text(_)) => segs.push(Segment {
                    lo: k.clone(),
                    hi: Upper::Through(k),
                }),
            }
        }
        self.diff_segments(&segs, &mut report).await?;
        report.stats.elapsed_ms = start.elapsed().as_millis() as u64;
        Ok(report)
    }

    async fn diff_segments(&self, segs: &[Segment], report: &mut Report) -> Result<()> {
        let fetched: Vec<_> = stream::iter(segs.chunks(LEAVES_PER_FETCH))
            .map(|batch| async move {
                tokio::try_join!(self.legacy.rows(batch), self.projection.rows(batch))
            })
            .buffered(self.opts.concurrency.max(1))
            .try_collect()
            .await?;
        let differ = self.differ();
        for (l, p) in fetched {
            report.stats.rows_fetched += (l.len() + p.len()) as u64;
            differ.merge(&l, &p, report);
        }
        Ok(())
    }

    /// The naive baseline: streams both sides in full, in key order, and compares in memory.
    pub async fn naive(&self) -> Result<Report> {
        let start = Instant::now();
        let mut report = self.empty_report("naive");
        let (lsql, psql) = (
            self.legacy.shape.rows_stmt(&[]),
            self.projection.shape.rows_stmt(&[]),
        );
        let mut ls = self.legacy.stream_all(&lsql);
        let mut ps = self.projection.stream_all(&psql);
        let differ = self.differ();
        let (mut l, mut p) = tokio::try_join!(ls.try_next(), ps.try_next())?;
        loop {
            match (l.take(), p.take()) {
                (None, None) => break,
                (Some(a), Some(b)) if a.key == b.key => {
                    differ.both(&a, &b, &mut report);
                    (l, p) = tokio::try_join!(ls.try_next(), ps.try_next())?;
                    report.stats.rows_fetched += 2;
                }
                (Some(a), b) if b.as_ref().is_none_or(|b| a.key < b.key) => {
                    differ.legacy_only(&a, &mut report);
                    (l, p) = (ls.try_next().await?, b);
                    report.stats.rows_fetched += 1;
                }
                (a, Some(b)) => {
                    differ.projection_only(&b, &mut report);
                    (l, p) = (a, ps.try_next().await?);
                    report.stats.rows_fetched += 1;
                }
                (Some(_), None) => unreachable!("handled by the guard above"),
            }
        }
        report.stats.elapsed_ms = start.elapsed().as_millis() as u64;
        Ok(report)
    }
}

impl ChecksumSource for Reconciler {
    type Error = Error;

    async fn checksums(&self, side: Side, batch: &[(Segment, Cuts)]) -> Result<Vec<Vec<Checksum>>> {
        match side {
            Side::Legacy => self.legacy.checksums(batch).await,
            Side::Projection => self.projection.checksums(batch).await,
        }
    }

    async fn boundaries(&self, side: Side, seg: &Segment, step: u64) -> Result<Vec<Key>> {
        match side {
            Side::Legacy => self.legacy.boundaries(seg, step).await,
            Side::Projection => self.projection.boundaries(seg, step).await,
        }
    }
}

/// Pairs legacy columns with projection columns (through `columns`, skipping `ignore_columns`
/// and an unpaired `updated_at_column`), key first, and picks each pair's class.
fn pair_columns(
    rc: &ReconcileConfig,
    lcols: &[(String, String)],
    pcols: &[(String, String)],
    key_kind: KeyKind,
) -> std::result::Result<(Vec<Pair>, Vec<Class>), String> {
    let ptype = |n: &str| pcols.iter().find(|(c, _)| c == n).map(|(_, t)| t.as_str());
    if !lcols.iter().any(|(c, _)| *c == rc.legacy.key) {
        return Err(format!(
            "legacy.key `{}` is not a column of the legacy query",
            rc.legacy.key
        ));
    }
    if ptype(&rc.projection.key).is_none() {
        return Err(format!(
            "projection.key `{}` is not a column of the projection query",
            rc.projection.key
        ));
    }
    let mapped = |l: &str| rc.columns.get(l).cloned().unwrap_or_else(|| l.to_string());
    if mapped(&rc.legacy.key) != rc.projection.key {
        return Err(format!(
            "legacy.key `{}` pairs with `{}`, not with projection.key `{}`; map it in columns",
            rc.legacy.key,
            mapped(&rc.legacy.key),
            rc.projection.key
        ));
    }
    let mut pairs = Vec::new();
    let mut classes = Vec::new();
    let mut unpaired = Vec::new();
    let key_first = lcols
        .iter()
        .filter(|(c, _)| *c == rc.legacy.key)
        .chain(lcols.iter().filter(|(c, _)| *c != rc.legacy.key));
    for (l, ltype) in key_first {
        if rc.ignore_columns.contains(l) {
            continue;
        }
        let p = mapped(l);
        let Some(pt) = ptype(&p) else {
            if rc.updated_at_column.as_ref() != Some(l) {
                unpaired.push(format!("`{l}`"));
            }
            continue;
        };
        let class = match rc.column_types.get(l).and_then(|t| Class::parse(t)) {
            Some(c) => c,
            _ if *l == rc.legacy.key => match key_kind {
                KeyKind::Int => Class::Int,
                KeyKind::Text => Class::Text,
                KeyKind::Uuid => Class::Uuid,
            },
            None => Class::unify(Class::of_type_name(ltype), Class::of_type_name(pt)),
        };
        pairs.push(Pair {
            legacy: l.clone(),
            projection: p,
        });
        classes.push(class);
    }
    if !unpaired.is_empty() {
        return Err(format!(
            "legacy columns {} have no projection column; map them in columns or list them in ignore_columns",
            unpaired.join(", ")
        ));
    }
    Ok((pairs, classes))
}

/// How keys compare, the same on both sides: `column_types` of the legacy key when given;
/// otherwise uuid when either side declares a uuid, integer when both declare integers, and text
/// (in byte order) for anything else.
fn key_kind(
    rc: &ReconcileConfig,
    lcols: &[(String, String)],
    pcols: &[(String, String)],
) -> KeyKind {
    let declared = |cols: &[(String, String)], key: &str| {
        cols.iter()
            .find(|(n, _)| n == key)
            .map_or(Class::Text, |(_, t)| Class::of_type_name(t))
    };
    let configured = rc
        .column_types
        .get(&rc.legacy.key)
        .and_then(|t| Class::parse(t));
    let (l, p) = (
        declared(lcols, &rc.legacy.key),
        declared(pcols, &rc.projection.key),
    );
    match configured {
        Some(Class::Int) => KeyKind::Int,
        Some(Class::Uuid) => KeyKind::Uuid,
        Some(_) => KeyKind::Text,
        None if l == Class::Uuid || p == Class::Uuid => KeyKind::Uuid,
        None if l == Class::Int && p == Class::Int => KeyKind::Int,
        None => KeyKind::Text,
    }
}

/// The native row-hash columns of both sides, when both are PostgreSQL hashing in SQL and every
/// pair of columns has the same declared type with a hash function: then equal rows hash alike
/// without being rendered as text.
fn native_columns(
    legacy: &SideTable,
    projection: &SideTable,
    pairs: &[Pair],
    lcols: &[(String, String)],
    pcols: &[(String, String)],
) -> Option<(Vec<String>, Vec<String>)> {
    let sql_pg = |s: &SideTable| s.shape.dialect == Dialect::Postgres && !s.hash_in_rust;
    if !sql_pg(legacy) || !sql_pg(projection) {
        return None;
    }
    let ty = |cols: &[(String, String)], n: &str| {
        cols.iter()
            .find(|(c, _)| c == n)
            .map(|(_, t)| t.to_ascii_uppercase())
    };
    let mut l = Vec::with_capacity(pairs.len());
    let mut p = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let (lt, pt) = (ty(lcols, &pair.legacy)?, ty(pcols, &pair.projection)?);
        if lt != pt {
            return None;
        }
        l.push(native_column(&legacy.shape.column(&pair.legacy), &lt)?);
        p.push(native_column(
            &projection.shape.column(&pair.projection),
            &pt,
        )?);
    }
    Some((l, p))
}

/// Whether a PostgreSQL server has `hash_record_extended` (version 14 and later).
async fn has_record_hash(db: &Db) -> bool {
    let Db::Postgres(pool) = db else {
        return false;
    };
    sqlx::query_scalar::<_, String>("SELECT current_setting('server_version_num')")
        .fetch_one(pool)
        .await
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|v| v >= 140_000)
}
