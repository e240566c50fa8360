//! Versions side by side: version N writes `<table>_vN`; the read API serves the promoted version;
//! promote swaps it in one statement; retire drops an old version's tables and state.

use strangler_store::Store;

use crate::checkpoint;
use crate::projection::Projection;
use crate::sql::physical_table;
use crate::store::{ReadTx, now_ms, on_pool, on_tx};
use crate::{Error, Result};

/// The version the read API serves: the promoted one, else the lowest defined.
pub async fn serving(store: &Store, projection: &str) -> Result<Option<u32>, sqlx::Error> {
    let v: Option<i64> = on_pool!(store, p => sqlx::query_scalar(
        "SELECT CAST(serving_version AS BIGINT) FROM strangler_projection_version WHERE projection = $1")
        .bind(projection)
        .fetch_optional(p)
        .await?);
    Ok(v.and_then(|v| u32::try_from(v).ok()))
}

/// Makes `version` the one readers see. Refuses when it is behind the version serving now on any
/// partition, unless `force`, so readers never switch to a half-built table.
pub async fn promote(
    store: &Store,
    projection: &str,
    version: u32,
    defined: &[u32],
    force: bool,
) -> Result<()> {
    if !defined.contains(&version) {
        return Err(Error::Refused(format!(
            "{projection} has no version {version} defined (defined: {defined:?})"
        )));
    }
    let current = serving(store, projection)
        .await?
        .or_else(|| defined.iter().min().copied());
    if let Some(cur) = current
        && cur != version
        && !force
    {
        let rows = checkpoint::list(store, Some(projection)).await?;
        let new: Vec<_> = rows.iter().filter(|c| c.version == version).collect();
        if new.is_empty() {
            return Err(Error::Refused(format!(
                "{projection} v{version} has not consumed anything yet; run it until it catches up"
            )));
        }
        for old in rows.iter().filter(|c| c.version == cur) {
            let caught = new
                .iter()
                .find(|n| n.topic == old.topic && n.partition == old.partition)
                .map_or(0, |n| n.next_offset);
            if caught < old.next_offset {
                return Err(Error::Refused(format!(
                    "{projection} v{version} is behind v{cur} on {}/{} ({caught} < {}); wait for it to catch up or pass --force",
                    old.topic, old.partition, old.next_offset
                )));
            }
        }
    }
    on_pool!(store, p => sqlx::query(
        "INSERT INTO strangler_projection_version (projection, serving_version, promoted_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (projection) DO UPDATE SET serving_version = excluded.serving_version, promoted_at_ms = excluded.promoted_at_ms")
        .bind(projection)
        .bind(i64::from(version))
        .bind(now_ms())
        .execute(p)
        .await?.rows_affected());
    tracing::info!(projection, version, "promoted");
    Ok(())
}

/// Drops an old version's tables, checkpoints, dedup keys and dead letters in one transaction.
/// Refuses to retire the version being served.
pub async fn retire(store: &Store, projection: &dyn Projection) -> Result<()> {
    let (name, version) = (projection.name(), projection.version());
    if serving(store, name).await? == Some(version) {
        return Err(Error::Refused(format!(
            "{name} v{version} is being served; promote another version first"
        )));
    }
    let mut tx = ReadTx::begin(store).await?;
    for t in projection.tables() {
        tx.execute_script(&format!(
            "DROP TABLE IF EXISTS {}",
            physical_table(t, version)
        ))
        .await?;
    }
    crate::dedup::forget_all(&mut tx, name, version).await?;
    for table in [
        "strangler_projection_checkpoint",
        "strangler_projection_dead_letter",
    ] {
        on_tx!(&mut tx, c => sqlx::query(&format!("DELETE FROM {table} WHERE projection = $1 AND version = $2"))
            .bind(name)
            .bind(i64::from(version))
            .execute(c)
            .await?.rows_affected());
    }
    tx.commit().await?;
    tracing::info!(projection = name, version, "retired");
    Ok(())
}
