//! The legacy database side: checks, the slot and publication, reading and confirming changes,
//! watermarks and snapshot chunks. Everything runs on one ordinary connection (see docs/cdc.md
//! for why the SQL interface to logical decoding rather than the replication protocol).

use sqlx::{Connection, PgConnection, Row};
use strangler_core::config::WalConfig;

use crate::error::{Error, Result};
use crate::event::TableInfo;
use crate::pgoutput::{format_lsn, parse_lsn};

/// The prefix of strangler's watermark messages; never routed anywhere.
pub const WATERMARK_PREFIX: &str = "strangler.wm";

/// Opens the capture connection with the session settings both paths rely on: ISO dates in UTC
/// and round-trip floats, so pgoutput's text and a snapshot's `::text` agree.
pub async fn connect(url: &str) -> Result<PgConnection> {
    let mut conn = PgConnection::connect(url).await?;
    for set in [
        "SET DateStyle = ISO",
        "SET TimeZone = 'UTC'",
        "SET extra_float_digits = 3",
        "SET bytea_output = hex",
        "SET IntervalStyle = postgres",
    ] {
        sqlx::query(set).execute(&mut conn).await?;
    }
    Ok(conn)
}

/// Fails with the fix when the server cannot decode logically.
pub async fn check_wal_level(conn: &mut PgConnection) -> Result<()> {
    let level: String = sqlx::query_scalar("SELECT current_setting('wal_level')")
        .fetch_one(&mut *conn)
        .await?;
    if level == "logical" {
        Ok(())
    } else {
        Err(Error::WalLevel(level))
    }
}

/// The current database's name.
pub async fn database(conn: &mut PgConnection) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await?)
}

/// Reads a captured table's layout and key; errors say how to fix a table that cannot be
/// captured.
pub async fn describe(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    topic_prefix: &str,
) -> Result<TableInfo> {
    let row = sqlx::query(
        "SELECT c.oid::int8, c.relreplident::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
    )
    .bind(schema)
    .bind(table)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        Error::Setup(format!(
            "table {schema}.{table} (listed in wal.tables) does not exist in this database: \
             create it or remove it from wal.tables"
        ))
    })?;
    let oid: i64 = row.get(0);
    let identity: String = row.get(1);
    let columns: Vec<(String, u32, String)> = sqlx::query(
        "SELECT attname::text, atttypid::int8, format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped AND attgenerated = '' \
         ORDER BY attnum",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.get(0), r.get::<i64, _>(1) as u32, r.get(2)))
    .collect();
    let key: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.ord",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?;
    if key.is_empty() && identity != "f" {
        return Err(Error::Setup(format!(
            "table {schema}.{table} has no primary key, so its updates and deletes cannot be \
             captured (and would fail in the legacy application once published): add a primary \
             key, or run ALTER TABLE {schema}.{table} REPLICA IDENTITY FULL"
        )));
    }
    Ok(TableInfo {
        oid: oid as u32,
        schema: schema.to_string(),
        table: table.to_string(),
        columns,
        key,
        topic: format!("{topic_prefix}.{schema}.{table}"),
    })
}

fn quoted(schema: &str, table: &str) -> String {
    format!("\"{schema}\".\"{table}\"")
}

/// Makes sure the publication exists and covers every captured table.
pub async fn ensure_publication(
    conn: &mut PgConnection,
    cfg: &WalConfig,
    tables: &[TableInfo],
) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
            .bind(&cfg.publication)
            .fetch_one(&mut *conn)
            .await?;
    let list = |ts: &[&TableInfo]| {
        ts.iter()
            .map(|t| quoted(&t.schema, &t.table))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !exists {
        let all: Vec<&TableInfo> = tables.iter().collect();
        let sql = format!(
            "CREATE PUBLICATION \"{}\" FOR TABLE {}",
            cfg.publication,
            list(&all)
        );
        if !cfg.create_publication {
            return Err(Error::Setup(format!(
                "publication `{}` (wal.publication) does not exist: run `{sql}` or set \
                 wal.create_publication = true",
                cfg.publication
            )));
        }
        sqlx::query(&sql).execute(&mut *conn).await?;
        tracing::info!(publication = %cfg.publication, "created publication");
        return Ok(());
    }
    let published: Vec<(String, String)> = sqlx::query_as(
        "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
    )
    .bind(&cfg.publication)
    .fetch_all(&mut *conn)
    .await?;
    let missing: Vec<&TableInfo> = tables
        .iter()
        .filter(|t| !published.contains(&(t.schema.clone(), t.table.clone())))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "ALTER PUBLICATION \"{}\" ADD TABLE {}",
        cfg.publication,
        list(&missing)
    );
    if !cfg.create_publication {
        return Err(Error::Setup(format!(
            "publication `{}` does not cover {}: run `{sql}`",
            cfg.publication,
            list(&missing)
        )));
    }
    sqlx::query(&sql).execute(&mut *conn).await?;
    tracing::info!(publication = %cfg.publication, tables = %list(&missing), "added tables to the publication");
    Ok(())
}

/// The slot's confirmed position, creating the slot (pgoutput) when missing. `true` when created.
pub async fn ensure_slot(conn: &mut PgConnection, slot: &str) -> Result<(u64, bool)> {
    let found = sqlx::query(
        "SELECT plugin::text, database::text, confirmed_flush_lsn::text, slot_type \
         FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(r) = found {
        let plugin: Option<String> = r.get(0);
        let db: Option<String> = r.get(1);
        let confirmed: Option<String> = r.get(2);
        let here = database(conn).await?;
        if plugin.as_deref() != Some("pgoutput") || db.as_deref() != Some(here.as_str()) {
            return Err(Error::Setup(format!(
                "replication slot `{slot}` (wal.slot) exists but is not a pgoutput slot of \
                 database {here} (plugin {plugin:?}, database {db:?}): choose another wal.slot, \
                 or drop it with SELECT pg_drop_replication_slot('{slot}') if nothing else uses it"
            )));
        }
        let lsn = parse_lsn(confirmed.as_deref().unwrap_or("0/0"))?;
        return Ok((lsn, false));
    }
    let lsn: String = sqlx::query_scalar(
        "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
    )
    .bind(slot)
    .fetch_one(&mut *conn)
    .await?;
    tracing::info!(slot, lsn = %lsn, "created logical replication slot");
    Ok((parse_lsn(&lsn)?, true))
}

/// Takes the session-level lock that makes this relay the slot's only reader.
pub async fn try_lock(conn: &mut PgConnection, slot: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('strangler.cdc.' || $1))")
            .bind(slot)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Reads the next changes without consuming them: whole transactions, at least `n` changes
/// when that many are waiting. Each item is (LSN, pgoutput message).
pub async fn peek(
    conn: &mut PgConnection,
    slot: &str,
    publication: &str,
    n: u32,
) -> Result<Vec<(u64, Vec<u8>)>> {
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
         'proto_version', '1', 'publication_names', $3, 'messages', 'true')",
    )
    .bind(slot)
    .bind(n as i32)
    .bind(publication)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(l, d)| Ok((parse_lsn(&l)?, d)))
        .collect()
}

/// Confirms everything before `lsn`: the server may recycle that WAL and will not send it again.
/// Returns the position the slot actually reached: the server stops at what it has flushed
/// (with `synchronous_commit = off` a commit can be read before it is flushed), and the rest is
/// confirmed by a later call.
pub async fn advance(conn: &mut PgConnection, slot: &str, lsn: u64) -> Result<u64> {
    let reached: String =
        sqlx::query_scalar("SELECT end_lsn::text FROM pg_replication_slot_advance($1, $2::pg_lsn)")
            .bind(slot)
            .bind(format_lsn(lsn))
            .fetch_one(&mut *conn)
            .await?;
    parse_lsn(&reached)
}

/// The server's current WAL flush position: how far a peek at the slot decodes. A heartbeat may
/// move an idle slot only this far. The write position is not safe: with asynchronous commit a
/// transaction can commit before its WAL is flushed, a peek does not see it yet, and an advance
/// made after the flush caught up would skip it.
pub async fn flushed_lsn(conn: &mut PgConnection) -> Result<u64> {
    let l: String = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn()::text")
        .fetch_one(&mut *conn)
        .await?;
    parse_lsn(&l)
}

/// Bytes of WAL the slot keeps on the server (from its restart position to the current one).
pub async fn retained_wal_bytes(conn: &mut PgConnection, slot: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8 \
         FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or(0))
}

/// Writes a watermark into the WAL, in a transaction of its own.
pub async fn emit_watermark(conn: &mut PgConnection, content: &str) -> Result<()> {
    sqlx::query("SELECT pg_logical_emit_message(true, $1, $2)")
        .bind(WATERMARK_PREFIX)
        .bind(content)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Creates the snapshot progress table when missing.
pub async fn ensure_progress_table(conn: &mut PgConnection, table: &str) -> Result<()> {
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (slot text NOT NULL, table_schema text NOT NULL, \
         table_name text NOT NULL, last_key text[], done boolean NOT NULL DEFAULT false, \
         updated_at timestamptz NOT NULL DEFAULT now(), \
         PRIMARY KEY (slot, table_schema, table_name))"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Snapshot progress of one table: the last key read, and whether it is done. `None` when the
/// table has never been scheduled for this slot.
pub type Progress = Option<(Option<Vec<Option<String>>>, bool)>;

/// Forgets a slot's snapshot progress (its slot was just created) and schedules `tables`.
pub async fn schedule_snapshot(
    conn: &mut PgConnection,
    progress_table: &str,
    slot: &str,
    tables: &[TableInfo],
    reset: bool,
) -> Result<()> {
    if reset {
        sqlx::query(&format!("DELETE FROM {progress_table} WHERE slot = $1"))
            .bind(slot)
            .execute(&mut *conn)
            .await?;
    }
    for t in tables {
        sqlx::query(&format!(
            "INSERT INTO {progress_table} (slot, table_schema, table_name) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING"
        ))
        .bind(slot)
        .bind(&t.schema)
        .bind(&t.table)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Reads a table's snapshot progress.
pub async fn progress(
    conn: &mut PgConnection,
    progress_table: &str,
    slot: &str,
    t: &TableInfo,
) -> Result<Progress> {
    let row: Option<(Option<Vec<Option<String>>>, bool)> = sqlx::query_as(&format!(
        "SELECT last_key, done FROM {progress_table} \
         WHERE slot = $1 AND table_schema = $2 AND table_name = $3"
    ))
    .bind(slot)
    .bind(&t.schema)
    .bind(&t.table)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row)
}

/// Records that a table's snapshot has read up to `last_key` (and whether it is finished).
pub async fn save_progress(
    conn: &mut PgConnection,
    progress_table: &str,
    slot: &str,
    t: &TableInfo,
    last_key: Option<&[Option<String>]>,
    done: bool,
) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE {progress_table} SET last_key = COALESCE($4, last_key), done = $5, \
         updated_at = now() WHERE slot = $1 AND table_schema = $2 AND table_name = $3"
    ))
    .bind(slot)
    .bind(&t.schema)
    .bind(&t.table)
    .bind(last_key)
    .bind(done)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The next `limit` rows after `after` in primary-key order, every column as its text output.
pub async fn chunk(
    conn: &mut PgConnection,
    t: &TableInfo,
    after: Option<&[Option<String>]>,
    limit: u32,
) -> Result<Vec<Vec<Option<String>>>> {
    let cols = t
        .columns
        .iter()
        .map(|(c, _, _)| format!("\"{c}\"::text"))
        .collect::<Vec<_>>()
        .join(", ");
    let key_cols = t
        .key
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!("SELECT ARRAY[{cols}] FROM {}", quoted(&t.schema, &t.table));
    if after.is_some() {
        let params = t
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let ty = t
                    .columns
                    .iter()
                    .find(|(c, _, _)| c == k)
                    .map_or("text", |(_, _, ty)| ty.as_str());
                format!("(${})::{ty}", i + 1)
            })
            .collect::<Vec<_>>()
            .join(", ");
        sql.push_str(&format!(" WHERE ({key_cols}) > ({params})"));
    }
    sql.push_str(&format!(" ORDER BY {key_cols} LIMIT {limit}"));
    let mut q = sqlx::query_scalar::<_, Vec<Option<String>>>(&sql);
    for v in after.unwrap_or_default() {
        q = q.bind(v.clone());
    }
    Ok(q.fetch_all(&mut *conn).await?)
}
