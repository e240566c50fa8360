//! From pgoutput messages to the records to publish, in commit order (pure: no I/O).
//!
//! The [`Decoder`] also runs the snapshot's watermark window (DBLog, as Debezium's incremental
//! snapshots do): a chunk of rows is selected between a low and a high watermark written into the
//! WAL; while the stream is between the two, any captured change to a row of the chunk removes
//! that row from it (the change is newer than, or concurrent with, what the select saw); at the
//! high watermark the remaining rows are emitted as reads (`op = r`). Every row thus reaches the
//! bus in an order consistent with the log: no gap, and no stale read after a newer change.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use strangler_bus::{Header, OutgoingRecord};
use strangler_core::config::{BadRowPolicy, OutboxConfig};
use strangler_outbox::{OutboxRow, RowOutcome, to_record};

use crate::error::{Error, Result};
use crate::event::{self, RowOp, SourceInfo, TableInfo};
use crate::pg::WATERMARK_PREFIX;
use crate::pgoutput::{Cell, Message, Relation, format_lsn, parse, pg_micros_to_unix_ms};

/// What the decoder needs to know about the deployment.
#[derive(Debug, Clone)]
pub struct DecoderConfig {
    /// `source.name` and the first part of every topic.
    pub topic_prefix: String,
    /// `source.db`.
    pub db: String,
    /// The slot; watermarks of other slots are ignored.
    pub slot: String,
    /// Send a tombstone after each delete.
    pub tombstones: bool,
    /// Logical messages with this prefix are outbox events.
    pub message_prefix: String,
    /// How outbox events are routed and what happens to bad ones.
    pub outbox: OutboxConfig,
}

/// A selected row: its record key and its columns.
type KeyedRow = (Option<Vec<u8>>, Map<String, Value>);

/// A snapshot chunk between its watermarks.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Watermark id.
    pub id: String,
    /// The table it belongs to.
    pub table: TableInfo,
    rows: Vec<KeyedRow>,
    removed: HashSet<Vec<u8>>,
    in_window: bool,
    /// The key of the chunk's last row as text, where the next chunk starts.
    pub last_key: Option<Vec<Option<String>>>,
    /// Fewer rows than asked for came back: the table is done after this chunk.
    pub exhausted: bool,
}

impl Chunk {
    /// A chunk from rows selected as text in `table`'s column order.
    pub fn new(id: String, table: TableInfo, rows: Vec<Vec<Option<String>>>, limit: u32) -> Chunk {
        let names: Vec<(String, u32)> = table
            .columns
            .iter()
            .map(|(n, o, _)| (n.clone(), *o))
            .collect();
        let key_idx = table.key_indexes();
        let exhausted = rows.len() < limit as usize;
        let last_key = rows
            .last()
            .map(|r| key_idx.iter().map(|i| r[*i].clone()).collect());
        let rows = rows
            .into_iter()
            .map(|r| {
                let cells: Vec<Cell> = r
                    .into_iter()
                    .map(|c| c.map_or(Cell::Null, Cell::Text))
                    .collect();
                let row = event::row_json(&names, &cells);
                (event::key_of(&table.key, &row), row)
            })
            .collect();
        Chunk {
            id,
            table,
            rows,
            removed: HashSet::new(),
            in_window: false,
            last_key,
            exhausted,
        }
    }

    /// Rows selected.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows selected.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn observe(&mut self, table: &TableInfo, key: Option<&Vec<u8>>) {
        if self.in_window
            && self.table.schema == table.schema
            && self.table.table == table.table
            && let Some(k) = key
        {
            self.removed.insert(k.clone());
        }
    }
}

/// What one read from the slot produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Records to publish, in order, each with the op it counts under.
    pub records: Vec<(OutgoingRecord, &'static str)>,
    /// The position everything read so far is covered by: confirm it once the records are
    /// delivered. Only moves at transaction boundaries.
    pub safe_lsn: Option<u64>,
    /// A chunk whose high watermark was reached (its reads are in `records`).
    pub completed: Option<Chunk>,
}

/// Turns pgoutput messages into records; keeps relations, the open transaction and the chunk.
#[derive(Debug)]
pub struct Decoder {
    cfg: DecoderConfig,
    tables: Vec<TableInfo>,
    by_oid: HashMap<u32, usize>,
    relations: HashMap<u32, Relation>,
    tx: Option<(u32, i64)>,
    /// The chunk being snapshotted, if any.
    pub chunk: Option<Chunk>,
}

impl Decoder {
    /// A decoder for the captured `tables`.
    pub fn new(cfg: DecoderConfig, tables: Vec<TableInfo>) -> Decoder {
        let by_oid = tables.iter().enumerate().map(|(i, t)| (t.oid, i)).collect();
        Decoder {
            cfg,
            tables,
            by_oid,
            relations: HashMap::new(),
            tx: None,
            chunk: None,
        }
    }

    fn source(&self, lsn: u64, snapshot: &'static str, now_ms: i64) -> SourceInfo {
        SourceInfo {
            name: self.cfg.topic_prefix.clone(),
            db: self.cfg.db.clone(),
            ts_ms: self.tx.map_or(now_ms, |(_, ts)| ts),
            snapshot,
            tx_id: self.tx.map(|(x, _)| x),
            lsn: Some(lsn),
        }
    }

    /// The watermark text this relay writes.
    pub fn watermark(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.cfg.slot)
    }

    fn row(&self, oid: u32, cells: &[Cell]) -> Result<(usize, Map<String, Value>)> {
        let rel = self.relations.get(&oid).ok_or_else(|| {
            Error::Protocol(format!("change for relation {oid} before its description"))
        })?;
        let idx = *self
            .by_oid
            .get(&oid)
            .ok_or_else(|| Error::Protocol(format!("relation {oid} is not captured")))?;
        let names: Vec<(String, u32)> = rel
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.type_oid))
            .collect();
        Ok((idx, event::row_json(&names, cells)))
    }

    /// Decodes one message read at `lsn` into `out`.
    pub fn feed(&mut self, lsn: u64, data: &[u8], now_ms: i64, out: &mut Output) -> Result<()> {
        match parse(data)? {
            Message::Begin { commit_ts, xid, .. } => {
                self.tx = Some((xid, pg_micros_to_unix_ms(commit_ts)));
            }
            Message::Commit { end_lsn, .. } => {
                self.tx = None;
                out.safe_lsn = Some(end_lsn);
            }
            Message::Origin | Message::Type => {}
            Message::Relation(r) => {
                if let Some(i) = self
                    .tables
                    .iter()
                    .position(|t| t.schema == r.schema && t.table == r.name)
                {
                    self.by_oid.insert(r.oid, i);
                }
                self.relations.insert(r.oid, r);
            }
            Message::Insert { oid, new } => {
                let (i, after) = self.row(oid, &new)?;
                self.emit(i, RowOp::Create, lsn, None, Some(after), now_ms, out);
            }
            Message::Update { oid, old, new } => {
                let (i, after) = self.row(oid, &new)?;
                let before = match old {
                    Some(cells) => Some(self.row(oid, &cells)?.1),
                    None => None,
                };
                self.emit(i, RowOp::Update, lsn, before, Some(after), now_ms, out);
            }
            Message::Delete { oid, old } => {
                let (i, before) = self.row(oid, &old)?;
                self.emit(i, RowOp::Delete, lsn, Some(before), None, now_ms, out);
            }
            Message::Truncate { oids } => {
                for oid in oids {
                    let Some(&i) = self.by_oid.get(&oid) else {
                        continue;
                    };
                    let t = &self.tables[i];
                    if let Some(c) = self.chunk.as_mut().filter(|c| {
                        c.in_window && c.table.schema == t.schema && c.table.table == t.table
                    }) {
                        c.rows.clear();
                    }
                    let src = self.source(lsn, "false", now_ms);
                    out.records
                        .push((event::truncate(&self.tables[i], &src, now_ms), "t"));
                }
            }
            Message::LogicalMessage {
                transactional,
                lsn: msg_lsn,
                prefix,
                content,
            } => {
                if prefix == WATERMARK_PREFIX {
                    self.watermark_seen(msg_lsn, &content, now_ms, out);
                } else if prefix == self.cfg.message_prefix {
                    self.outbox(msg_lsn, &prefix, &content, now_ms, out)?;
                } else {
                    let src = self.source(msg_lsn, "false", now_ms);
                    let topic = format!("{}.message", self.cfg.topic_prefix);
                    out.records
                        .push((event::message(&topic, &prefix, &content, &src, now_ms), "m"));
                }
                if !transactional && self.tx.is_none() {
                    // Decoding skips records that start before the confirmed position.
                    out.safe_lsn = Some(msg_lsn + 1);
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        i: usize,
        op: RowOp,
        lsn: u64,
        before: Option<Map<String, Value>>,
        after: Option<Map<String, Value>>,
        now_ms: i64,
        out: &mut Output,
    ) {
        let table = &self.tables[i];
        let src = self.source(lsn, "false", now_ms);
        let key =
            |r: &Option<Map<String, Value>>| r.as_ref().and_then(|r| event::key_of(&table.key, r));
        let (kb, ka) = (key(&before), key(&after));
        let delete = |before| {
            let d = event::change(table, RowOp::Delete, before, None, &src, now_ms);
            let t = self.cfg.tombstones.then(|| event::tombstone(&d));
            std::iter::once((d, "d")).chain(t.map(|t| (t, "tombstone")))
        };
        match op {
            RowOp::Delete => out.records.extend(delete(before)),
            RowOp::Update if kb.is_some() && ka.is_some() && kb != ka => {
                // The primary key changed: Debezium's delete + tombstone + create.
                out.records.extend(delete(before));
                out.records.push((
                    event::change(table, RowOp::Create, None, after, &src, now_ms),
                    "c",
                ));
            }
            _ => out.records.push((
                event::change(table, op, before, after, &src, now_ms),
                op_code(op),
            )),
        }
        let table = self.tables[i].clone();
        if let Some(c) = self.chunk.as_mut() {
            c.observe(&table, kb.as_ref());
            c.observe(&table, ka.as_ref());
        }
    }

    fn watermark_seen(&mut self, lsn: u64, content: &[u8], now_ms: i64, out: &mut Output) {
        let text = String::from_utf8_lossy(content);
        let Some(chunk) = self.chunk.as_ref() else {
            return; // a watermark of a chunk from before a restart: redone from saved progress
        };
        if text == self.watermark("low", &chunk.id) {
            if let Some(c) = self.chunk.as_mut() {
                c.in_window = true;
            }
        } else if text == self.watermark("high", &chunk.id) {
            let src = self.source(lsn, "incremental", now_ms);
            let chunk = self.chunk.take().expect("checked above");
            for (key, row) in &chunk.rows {
                if key.as_ref().is_some_and(|k| chunk.removed.contains(k)) {
                    continue;
                }
                out.records.push((
                    event::change(
                        &chunk.table,
                        RowOp::Read,
                        None,
                        Some(row.clone()),
                        &src,
                        now_ms,
                    ),
                    "r",
                ));
            }
            out.completed = Some(chunk);
        }
    }

    fn outbox(
        &mut self,
        lsn: u64,
        prefix: &str,
        content: &[u8],
        now_ms: i64,
        out: &mut Output,
    ) -> Result<()> {
        let cols = &self.cfg.outbox.columns;
        let reason = match serde_json::from_slice::<Value>(content) {
            Err(e) => format!("content is not JSON: {e}"),
            Ok(v) => {
                let field = |name: &str| {
                    v.get(name).filter(|x| !x.is_null()).map(|x| match x {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                };
                let row = OutboxRow {
                    tx: self.tx.map_or(0, |(x, _)| i64::from(x)),
                    seq: lsn as i64,
                    id: field(&cols.id),
                    aggregate_type: field(&cols.aggregate_type),
                    aggregate_id: field(&cols.aggregate_id),
                    event_type: field(&cols.event_type),
                    payload: field(&cols.payload),
                    timestamp_ms: Some(self.tx.map_or(now_ms, |(_, ts)| ts)),
                    headers: Vec::new(),
                };
                match to_record(&row, &self.cfg.outbox) {
                    RowOutcome::Publish(rec) => {
                        out.records.push((rec, "outbox"));
                        return Ok(());
                    }
                    RowOutcome::Bad(reason) => reason,
                }
            }
        };
        if self.cfg.outbox.bad_rows == BadRowPolicy::Stop {
            return Err(Error::BadMessage {
                lsn: format_lsn(lsn),
                reason,
            });
        }
        tracing::error!(lsn = %format_lsn(lsn), %reason, "outbox message dead-lettered");
        crate::metrics::bad_message();
        let src = self.source(lsn, "false", now_ms);
        let topic = format!("{}.message.dead_letter", self.cfg.topic_prefix);
        let mut rec = event::message(&topic, prefix, content, &src, now_ms);
        rec.headers.push(Header {
            name: "strangler.error".into(),
            value: reason.into_bytes(),
        });
        out.records.push((rec, "m"));
        Ok(())
    }
}

fn op_code(op: RowOp) -> &'static str {
    match op {
        RowOp::Create => "c",
        RowOp::Update => "u",
        RowOp::Delete => "d",
        RowOp::Read => "r",
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
