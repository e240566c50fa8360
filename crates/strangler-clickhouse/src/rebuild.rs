//! Rebuild into new tables and swap them in.
//!
//! A rebuild writes a projection's events from the start into tables under a second base name
//! (`<base>__rebuild`) while readers keep querying the live ones. The swap is one `RENAME TABLE`
//! statement (ClickHouse 18.16 has no `EXCHANGE TABLES`): live facts to `<base>__old`, rebuilt
//! facts to the live name; then the old facts are dropped. An aggregate's view names the facts
//! table and resolves it at query time, so it reads the rebuilt facts from the rename on.

use crate::client::Client;
use crate::error::Result;
use crate::sql::qualified;
use crate::table::TableSpec;

/// The base name a rebuild of `base` writes under.
pub fn rebuild_base(base: &str) -> String {
    format!("{base}__rebuild")
}

/// Drops whatever an earlier, unfinished rebuild of `base` left, so a rebuild starts empty.
pub async fn reset(client: &Client, spec: &TableSpec, base: &str) -> Result<()> {
    let layout = spec.layout(&rebuild_base(base));
    if let Some(view) = &layout.view {
        client
            .execute(&format!(
                "DROP TABLE IF EXISTS {}",
                qualified(client.database(), view)
            ))
            .await?;
    }
    client
        .execute(&format!(
            "DROP TABLE IF EXISTS {}",
            qualified(client.database(), &layout.facts)
        ))
        .await
}

/// Swaps the rebuilt facts of `base` in for the live ones and drops the old facts and the
/// rebuild's own view.
pub async fn swap(client: &Client, spec: &TableSpec, base: &str) -> Result<()> {
    let db = client.database();
    let live = spec.layout(base);
    let rebuilt = spec.layout(&rebuild_base(base));
    let old = format!("{}__old", live.facts);
    client
        .execute(&format!("DROP TABLE IF EXISTS {}", qualified(db, &old)))
        .await?;
    // The live table may not exist yet (the first build of a new version ran as a rebuild).
    crate::writer::create(client, spec, &live).await?;
    client
        .execute(&format!(
            "RENAME TABLE {} TO {}, {} TO {}",
            qualified(db, &live.facts),
            qualified(db, &old),
            qualified(db, &rebuilt.facts),
            qualified(db, &live.facts)
        ))
        .await?;
    client
        .execute(&format!("DROP TABLE IF EXISTS {}", qualified(db, &old)))
        .await?;
    if let Some(view) = &rebuilt.view {
        client
            .execute(&format!("DROP TABLE IF EXISTS {}", qualified(db, view)))
            .await?;
    }
    Ok(())
}
