//! Batched, replay-safe writes of a projection's rows.
//!
//! Each table remembers its high-water position per (topic, partition): the greatest
//! `(_offset, _seq)` stored, read from the table when the writer opens and advanced by every
//! insert. Rows at or below it are dropped before the insert, so re-consuming events whose rows
//! are already stored (a crash before the offset was written, a replay from an earlier offset)
//! inserts nothing. One insert per table per batch, rows in event order: the insert is one part,
//! and even a body cut short leaves a prefix, which the high-water mark covers. The tables'
//! `ReplacingMergeTree` key on the position is the second line of defence.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::rows::{Row, encode};
use crate::sql::qualified;
use crate::table::{Layout, TableSpec};

/// The greatest `(offset, seq)` stored per (topic, partition).
pub type HighWater = BTreeMap<(String, i32), (i64, u32)>;

struct Target {
    spec: TableSpec,
    layout: Layout,
    columns: BTreeSet<String>,
    high_water: HighWater,
}

/// What one [`Writer::write`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows dropped because their position was already stored.
    pub skipped: u64,
    /// Insert statements sent (one per table that had new rows).
    pub inserts: u64,
}

/// Writes rows into a projection's tables under one physical base name per table.
pub struct Writer {
    client: Client,
    targets: HashMap<String, Target>,
}

impl Writer {
    /// Creates the tables (and aggregate views) that are missing and reads each table's
    /// high-water position. `tables` pairs each spec with its physical base name (see
    /// [`TableSpec::layout`]).
    pub async fn open(client: Client, tables: &[(TableSpec, String)]) -> Result<Writer> {
        let mut targets = HashMap::new();
        for (spec, base) in tables {
            let layout = spec.layout(base);
            create(&client, spec, &layout).await?;
            let high_water = high_water(&client, &layout.facts).await?;
            targets.insert(
                spec.name.clone(),
                Target {
                    columns: spec.columns.iter().map(|c| c.name.clone()).collect(),
                    spec: spec.clone(),
                    layout,
                    high_water,
                },
            );
        }
        Ok(Writer { client, targets })
    }

    /// The client this writer uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Physical names of the logical table `name`.
    pub fn layout(&self, name: &str) -> Option<&Layout> {
        self.targets.get(name).map(|t| &t.layout)
    }

    /// The high-water positions of table `name`.
    pub fn high_water(&self, name: &str) -> Option<&HighWater> {
        self.targets.get(name).map(|t| &t.high_water)
    }

    /// Inserts `rows` (logical table name, row), in event order, one insert per table. A failed
    /// insert leaves the high-water mark where it was, so the batch can be written again.
    pub async fn write(&mut self, rows: &[(String, Row)]) -> Result<WriteStats> {
        let mut stats = WriteStats::default();
        let mut bodies: BTreeMap<&str, (Vec<u8>, HighWater)> = BTreeMap::new();
        for (table, row) in rows {
            let target = self
                .targets
                .get(table)
                .ok_or_else(|| unknown_table(self, table, row))?;
            let key = (row.position.topic.clone(), row.position.partition);
            let at = (row.position.offset, row.seq);
            let (body, pending) = bodies
                .entry(table.as_str())
                .or_insert_with(|| (Vec::new(), HighWater::new()));
            let stored = pending.get(&key).or_else(|| target.high_water.get(&key));
            if stored.is_some_and(|hw| at <= *hw) {
                stats.skipped += 1;
                continue;
            }
            encode(body, &target.spec.name, &target.columns, row)?;
            pending.insert(key, at);
            stats.inserted += 1;
        }
        for (table, (body, pending)) in bodies {
            if body.is_empty() {
                continue;
            }
            let target = self.targets.get_mut(table).expect("checked above");
            let insert = format!(
                "INSERT INTO {} FORMAT JSONEachRow",
                qualified(self.client.database(), &target.layout.facts)
            );
            self.client.insert(&insert, body.into()).await?;
            stats.inserts += 1;
            target.high_water.extend(pending);
        }
        Ok(stats)
    }
}

impl Writer {
    /// Inserts the rows of `rows` whose exact position is not stored yet, whatever the high-water
    /// mark says: for re-driving dead-lettered events, which sit below positions applied after
    /// them. Costs one query per table for the positions present.
    pub async fn write_missing(&mut self, rows: &[(String, Row)]) -> Result<WriteStats> {
        let mut present: BTreeSet<(String, String, i32, i64)> = BTreeSet::new();
        let mut by_table: BTreeMap<&str, BTreeSet<(String, i32, i64)>> = BTreeMap::new();
        for (table, row) in rows {
            let p = &row.position;
            by_table.entry(table.as_str()).or_default().insert((
                p.topic.clone(),
                p.partition,
                p.offset,
            ));
        }
        for (table, positions) in by_table {
            let Some(target) = self.targets.get(table) else {
                continue; // `write` below names the unknown table
            };
            #[derive(Deserialize)]
            struct At {
                _topic: String,
                _partition: i32,
                _offset: i64,
            }
            let list: Vec<String> = positions
                .iter()
                .map(|(t, p, o)| format!("({}, {p}, {o})", crate::sql::literal(t)))
                .collect();
            let found: Vec<At> = self
                .client
                .query(&format!(
                    "SELECT DISTINCT _topic, _partition, _offset FROM {} \
                     WHERE (_topic, _partition, _offset) IN ({})",
                    qualified(self.client.database(), &target.layout.facts),
                    list.join(", ")
                ))
                .await?;
            present.extend(
                found
                    .into_iter()
                    .map(|a| (table.to_string(), a._topic, a._partition, a._offset)),
            );
        }
        let mut stats = WriteStats::default();
        let mut missing = Vec::with_capacity(rows.len());
        for (table, row) in rows {
            let p = &row.position;
            if present.contains(&(table.clone(), p.topic.clone(), p.partition, p.offset)) {
                stats.skipped += 1;
            } else {
                missing.push((table.clone(), row.clone()));
            }
        }
        // Below the high-water mark on purpose: write without the filter, keep the mark.
        let mut bodies: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
        for (table, row) in &missing {
            let target = self
                .targets
                .get(table)
                .ok_or_else(|| unknown_table(self, table, row))?;
            encode(
                bodies.entry(table.as_str()).or_default(),
                &target.spec.name,
                &target.columns,
                row,
            )?;
            stats.inserted += 1;
        }
        for (table, body) in bodies {
            let target = &self.targets[table];
            let insert = format!(
                "INSERT INTO {} FORMAT JSONEachRow",
                qualified(self.client.database(), &target.layout.facts)
            );
            self.client.insert(&insert, body.into()).await?;
            stats.inserts += 1;
        }
        Ok(stats)
    }
}

fn unknown_table(w: &Writer, table: &str, row: &Row) -> Error {
    Error::Row {
        table: table.to_string(),
        position: row.position.to_string(),
        reason: format!(
            "no such table in this projection (tables: {})",
            w.targets.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Creates a table's facts and view if missing.
pub async fn create(client: &Client, spec: &TableSpec, layout: &Layout) -> Result<()> {
    client
        .execute(&spec.create_facts(client.database(), &layout.facts))
        .await?;
    if let Some(view) = spec.create_view(client.database(), layout) {
        client.execute(&view).await?;
    }
    Ok(())
}

/// Reads the greatest stored `(offset, seq)` per (topic, partition) of a facts table.
pub async fn high_water(client: &Client, facts: &str) -> Result<HighWater> {
    #[derive(Deserialize)]
    struct Top {
        _topic: String,
        _partition: i32,
        _offset: i64,
        seq: u32,
    }
    let table = qualified(client.database(), facts);
    let rows: Vec<Top> = client
        .query(&format!(
            "SELECT _topic, _partition, _offset, max(_seq) AS seq FROM {table} \
             WHERE (_topic, _partition, _offset) IN \
             (SELECT _topic, _partition, max(_offset) FROM {table} GROUP BY _topic, _partition) \
             GROUP BY _topic, _partition, _offset"
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ((r._topic, r._partition), (r._offset, r.seq)))
        .collect())
}
