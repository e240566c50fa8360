//! Deduplication by event id, in the batch's transaction: the relay delivers at least once, so
//! the same event may arrive twice (even at two offsets); it is applied once.
//!
//! On PostgreSQL the key is the projection version's 4-byte scope id (`strangler_projection_scope`,
//! migration 0008) and a 16-byte `uuid` (event ids are uuids once decoded; any other id is kept
//! as the md5 of its text, as migration 0007 converted old rows). A batch's ids go in with
//! one plain `INSERT` in a savepoint: relay duplicates are rare, so in the common case every id
//! is new and nothing else is needed. When the unique index refuses one (a duplicate, or another
//! batch of the same version recording the same id at that moment), the batch goes back to the
//! savepoint and inserts with `ON CONFLICT DO NOTHING RETURNING`, which waits for the other
//! transaction and says which ids are new. `ON CONFLICT` alone would also do it, but its
//! speculative insertion costs about twice as much per row, and this insert is the projector's
//! largest cost after the read model's own rows (docs/BENCHMARKS.md, Projector). A separate
//! "which of these are recorded" read is not used: with a 5,000-element array its plan depends
//! on the table's statistics, and on a table that grew since it was last analyzed it became a
//! sequential scan per batch.
//!
//! Each statement finds the scope id itself, in a subquery run once per statement, so a batch
//! costs no extra round trip for it. A version's first batch creates its scope. Scopes are never
//! deleted, so an id stays valid in every process that has seen it.

use std::collections::HashSet;

use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Postgres, Transaction};
use uuid::Uuid;

use crate::event::Event;
use crate::store::{ReadTx, now_ms, on_pool, on_tx};
use strangler_store::Store;

/// The scope id of a projection version in a statement whose `$1` and `$2` are its name and
/// version (NULL when it has none yet).
macro_rules! scope_of {
    () => {
        "(SELECT id FROM strangler_projection_scope WHERE projection = $1 AND version = $2)"
    };
}

/// Records ids none of which is recorded yet (the unique index refuses the batch otherwise).
/// Inserts nothing when the version has no scope yet.
const PG_ADMIT: &str = "INSERT INTO strangler_projection_dedup \
     (scope, partition, \"offset\", applied_at_ms, event_id, topic) \
     SELECT s.id, e.p, e.o, $7, e.id, e.t \
     FROM strangler_projection_scope s, \
     UNNEST($3::uuid[], $4::text[], $5::int4[], $6::int8[]) AS e(id, t, p, o) \
     WHERE s.projection = $1 AND s.version = $2";

/// The fallback when some id is recorded (or being recorded): returns the ids inserted.
const PG_ADMIT_RACING: &str = "INSERT INTO strangler_projection_dedup \
     (scope, partition, \"offset\", applied_at_ms, event_id, topic) \
     SELECT s.id, e.p, e.o, $7, e.id, e.t \
     FROM strangler_projection_scope s, \
     UNNEST($3::uuid[], $4::text[], $5::int4[], $6::int8[]) AS e(id, t, p, o) \
     WHERE s.projection = $1 AND s.version = $2 \
     ON CONFLICT DO NOTHING RETURNING event_id";

/// Gives a projection version its scope id, if it has none.
const PG_NEW_SCOPE: &str = "INSERT INTO strangler_projection_scope (projection, version) \
    VALUES ($1, $2) ON CONFLICT DO NOTHING";

const SP: &str = "SAVEPOINT strangler_dedup";
const SP_BACK: &str = "ROLLBACK TO SAVEPOINT strangler_dedup";
const SP_OK: &str = "RELEASE SAVEPOINT strangler_dedup";

/// Records the batch's event ids and returns, per event, whether it is new (the first time this
/// id is seen, in the table and within the batch). Events without an id are always new.
pub async fn admit(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    events: &[Event],
) -> Result<Vec<bool>, sqlx::Error> {
    let now = now_ms();
    let version = i64::from(version);
    match tx {
        ReadTx::Pg(t) => {
            let keys = pg_keys(t, events).await?;
            // Only an id's first occurrence in the batch can apply; only it is recorded.
            let mut first: HashSet<Uuid> = HashSet::with_capacity(events.len());
            let mut is_first = Vec::with_capacity(events.len());
            let mut rows: Vec<(Uuid, &Event)> = Vec::with_capacity(events.len());
            for (e, k) in events.iter().zip(&keys) {
                let new = k.is_some_and(|k| first.insert(k));
                is_first.push(new);
                if let (true, Some(k)) = (new, k) {
                    rows.push((*k, e));
                }
            }
            // In key order: a batch holds runs of ids from several partitions, and inserted as
            // they come each run lands between the previous run's keys, so every insert walks
            // the index from its root. Sorted, time-ordered ids go in at the index's right edge,
            // which PostgreSQL appends to without that walk (about a fifth of this statement's
            // time with four partitions; docs/BENCHMARKS.md). Which id goes in first changes
            // nothing else: the keys are a set.
            rows.sort_unstable_by_key(|(k, _)| *k);
            let ids: Vec<Uuid> = rows.iter().map(|(k, _)| *k).collect();
            let topics: Vec<&str> = rows.iter().map(|(_, e)| e.record.topic.as_str()).collect();
            let parts: Vec<i32> = rows.iter().map(|(_, e)| e.record.partition).collect();
            let offsets: Vec<i64> = rows.iter().map(|(_, e)| e.record.offset).collect();
            let recorded = if ids.is_empty() {
                HashSet::new()
            } else {
                let rows = PgKeys {
                    projection,
                    version,
                    ids: &ids,
                    topics: &topics,
                    parts: &parts,
                    offsets: &offsets,
                    now,
                };
                match rows.insert_new(t).await? {
                    Some(recorded) => recorded,
                    None => {
                        // The version's first batch: give it a scope and record its keys.
                        sqlx::query(PG_NEW_SCOPE)
                            .bind(projection)
                            .bind(version)
                            .execute(&mut **t)
                            .await?;
                        rows.insert_new(t).await?.ok_or_else(|| {
                            sqlx::Error::Protocol(format!(
                                "{projection} v{version} has no dedup scope after creating it"
                            ))
                        })?
                    }
                }
            };
            Ok(keys
                .iter()
                .zip(is_first)
                .map(|(k, first)| match k {
                    None => true,
                    Some(k) => first && !recorded.contains(k),
                })
                .collect())
        }
        ReadTx::Sqlite(t) => {
            let mut fresh: HashSet<String> = HashSet::new();
            for e in events {
                let Some(id) = &e.id else { continue };
                let n = sqlx::query(
                    "INSERT INTO strangler_projection_dedup \
                     (projection, version, event_id, topic, partition, \"offset\", applied_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(projection)
                .bind(version)
                .bind(id)
                .bind(&e.record.topic)
                .bind(e.record.partition)
                .bind(e.record.offset)
                .bind(now)
                .execute(&mut **t)
                .await?
                .rows_affected();
                if n == 1 {
                    fresh.insert(id.clone());
                }
            }
            // `fresh` holds ids inserted now; only their first occurrence in the batch applies.
            Ok(events
                .iter()
                .map(|e| match &e.id {
                    None => true,
                    Some(id) => fresh.remove(id),
                })
                .collect())
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// A batch's new keys in key order, as PostgreSQL's admit statements bind them.
struct PgKeys<'a> {
    projection: &'a str,
    version: i64,
    ids: &'a [Uuid],
    topics: &'a [&'a str],
    parts: &'a [i32],
    offsets: &'a [i64],
    now: i64,
}

impl PgKeys<'_> {
    /// The admit statements' parameters, `$1` to `$7`. Encoded per statement: the plain insert
    /// is the only one in the common case.
    fn arguments(&self) -> Result<PgArguments, sqlx::Error> {
        let mut args = PgArguments::default();
        let encoded = (|| {
            args.add(self.projection)?;
            args.add(self.version)?;
            args.add(self.ids)?;
            args.add(self.topics)?;
            args.add(self.parts)?;
            args.add(self.offsets)?;
            args.add(self.now)
        })();
        encoded.map_err(sqlx::Error::Encode)?;
        Ok(args)
    }

    /// Records the keys and returns the ids that were recorded already (by an earlier batch, or
    /// by a concurrent one that committed first); `None` when the version has no scope yet, and
    /// then nothing was recorded.
    async fn insert_new(
        &self,
        t: &mut Transaction<'static, Postgres>,
    ) -> Result<Option<HashSet<Uuid>>, sqlx::Error> {
        sqlx::Executor::execute(&mut **t, SP).await?;
        let fast = sqlx::query_with(PG_ADMIT, self.arguments()?)
            .execute(&mut **t)
            .await;
        match fast {
            Ok(done) => {
                sqlx::Executor::execute(&mut **t, SP_OK).await?;
                // The statement inserts every key or fails; no row means no scope.
                Ok((done.rows_affected() > 0).then(HashSet::new))
            }
            Err(e) if is_unique_violation(&e) => {
                sqlx::Executor::execute(&mut **t, SP_BACK).await?;
                sqlx::Executor::execute(&mut **t, SP_OK).await?;
                let inserted: HashSet<Uuid> =
                    sqlx::query_scalar_with(PG_ADMIT_RACING, self.arguments()?)
                        .fetch_all(&mut **t)
                        .await?
                        .into_iter()
                        .collect();
                Ok(Some(
                    self.ids
                        .iter()
                        .filter(|id| !inserted.contains(id))
                        .copied()
                        .collect(),
                ))
            }
            Err(e) => Err(e),
        }
    }
}

/// Each event's PostgreSQL dedup key: its id as a uuid, or the md5 of an id that is not one
/// (asked of the server, in one round trip, only when the batch holds such an id).
async fn pg_keys(
    t: &mut Transaction<'static, Postgres>,
    events: &[Event],
) -> Result<Vec<Option<Uuid>>, sqlx::Error> {
    let mut keys: Vec<Option<Uuid>> = Vec::with_capacity(events.len());
    // Owned: a borrowed `&str` bound across an await makes the future's `Send` too narrow for a
    // spawned task (rustc's higher-ranked lifetime limitation).
    let mut raw: Vec<(usize, String)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        keys.push(match e.id.as_deref() {
            None => None,
            Some(id) => match parse_hyphenated(id) {
                Some(u) => Some(u),
                None => {
                    raw.push((i, id.to_string()));
                    None
                }
            },
        });
    }
    if !raw.is_empty() {
        let texts: Vec<String> = raw.iter().map(|(_, s)| s.clone()).collect();
        let hashed: Vec<Uuid> = sqlx::query_scalar(
            "SELECT md5(r)::uuid FROM UNNEST($1::text[]) WITH ORDINALITY AS u(r, n) ORDER BY n",
        )
        .bind(&texts)
        .fetch_all(&mut **t)
        .await?;
        for ((i, _), h) in raw.iter().zip(hashed) {
            keys[*i] = Some(h);
        }
    }
    Ok(keys)
}

/// A uuid in its 36-character hyphenated form (either case), the form migration 0007 kept as is.
pub(crate) fn parse_hyphenated(id: &str) -> Option<Uuid> {
    if id.len() != 36 {
        return None;
    }
    Uuid::try_parse(id).ok()
}

/// Forgets the ids `events` recorded at their own offsets (a batch that stopped part way: its
/// unhandled events must apply after a restart). An id recorded at another offset stays.
pub async fn forget(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    events: &[Event],
) -> Result<u64, sqlx::Error> {
    let version = i64::from(version);
    match tx {
        ReadTx::Pg(t) => {
            let keys = pg_keys(t, events).await?;
            let (mut ids, mut topics, mut parts, mut offsets) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (e, k) in events.iter().zip(keys) {
                if let Some(k) = k {
                    ids.push(k);
                    topics.push(e.record.topic.clone());
                    parts.push(e.record.partition);
                    offsets.push(e.record.offset);
                }
            }
            if ids.is_empty() {
                return Ok(0);
            }
            Ok(sqlx::query(
                concat!(
                    "DELETE FROM strangler_projection_dedup d \
                     USING UNNEST($3::uuid[], $4::text[], $5::int4[], $6::int8[]) AS e(id, t, p, o) \
                     WHERE d.scope = ",
                    scope_of!(),
                    " AND d.event_id = e.id \
                     AND d.topic = e.t AND d.partition = e.p AND d.\"offset\" = e.o"
                ),
            )
            .bind(projection)
            .bind(version)
            .bind(&ids)
            .bind(&topics)
            .bind(&parts)
            .bind(&offsets)
            .execute(&mut **t)
            .await?
            .rows_affected())
        }
        ReadTx::Sqlite(t) => {
            let mut n = 0;
            for e in events {
                let Some(id) = &e.id else { continue };
                n += sqlx::query(
                    "DELETE FROM strangler_projection_dedup WHERE projection = $1 AND version = $2 \
                     AND event_id = $3 AND topic = $4 AND partition = $5 AND \"offset\" = $6",
                )
                .bind(projection)
                .bind(version)
                .bind(id)
                .bind(&e.record.topic)
                .bind(e.record.partition)
                .bind(e.record.offset)
                .execute(&mut **t)
                .await?
                .rows_affected();
            }
            Ok(n)
        }
    }
}

/// Forgets ids recorded at or after `offset` in a partition, so a replay applies them again.
pub async fn forget_from(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<u64, sqlx::Error> {
    let sql = match tx {
        ReadTx::Pg(_) => concat!(
            "DELETE FROM strangler_projection_dedup WHERE scope = ",
            scope_of!(),
            " AND topic = $3 AND partition = $4 AND \"offset\" >= $5"
        ),
        ReadTx::Sqlite(_) => {
            "DELETE FROM strangler_projection_dedup WHERE projection = $1 AND version = $2 \
             AND topic = $3 AND partition = $4 AND \"offset\" >= $5"
        }
    };
    Ok(on_tx!(tx, c => sqlx::query(sql)
        .bind(projection)
        .bind(i64::from(version))
        .bind(topic)
        .bind(partition)
        .bind(offset)
        .execute(c)
        .await?
        .rows_affected()))
}

/// Forgets every id of a projection version (a rebuild from scratch, or retiring the version).
pub async fn forget_all(
    tx: &mut ReadTx,
    projection: &str,
    version: u32,
) -> Result<u64, sqlx::Error> {
    let sql = match tx {
        ReadTx::Pg(_) => concat!(
            "DELETE FROM strangler_projection_dedup WHERE scope = ",
            scope_of!()
        ),
        ReadTx::Sqlite(_) => {
            "DELETE FROM strangler_projection_dedup WHERE projection = $1 AND version = $2"
        }
    };
    Ok(on_tx!(tx, c => sqlx::query(sql)
        .bind(projection)
        .bind(i64::from(version))
        .execute(c)
        .await?
        .rows_affected()))
}

/// Drops ids older than the retention, outside batch transactions.
pub async fn prune(
    store: &Store,
    projection: &str,
    version: u32,
    older_than_ms: i64,
) -> Result<u64, sqlx::Error> {
    let sql = match store {
        Store::Postgres(_) => concat!(
            "DELETE FROM strangler_projection_dedup WHERE scope = ",
            scope_of!(),
            " AND applied_at_ms < $3"
        ),
        Store::Sqlite(_) => {
            "DELETE FROM strangler_projection_dedup WHERE projection = $1 AND version = $2 \
             AND applied_at_ms < $3"
        }
    };
    Ok(on_pool!(store, p => sqlx::query(sql)
        .bind(projection)
        .bind(i64::from(version))
        .bind(older_than_ms)
        .execute(p)
        .await?
        .rows_affected()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use strangler_bus::Record;
    use strangler_test_support::{pg_database, sqlite_file};

    use super::*;

    const A: &str = "0190a6f4-1c2b-7d3e-8f40-5a6b7c8d9e01";
    const B: &str = "0190a6f4-1c2b-7d3e-8f40-5a6b7c8d9e02";
    const C: &str = "0190a6f4-1c2b-7d3e-8f40-5a6b7c8d9e03";

    fn ev(id: Option<&str>, partition: i32, offset: i64) -> Event {
        Event {
            record: Record {
                topic: "orders".into(),
                partition,
                offset,
                key: Some(b"k".to_vec()),
                value: Some(b"{}".to_vec()),
                headers: Vec::new(),
                timestamp_ms: None,
            },
            id: id.map(str::to_string),
            event_type: Some("T".into()),
            key: Some("k".into()),
            payload: Ok(serde_json::json!({})),
            prepared: None,
        }
    }

    async fn store(url: &str) -> Store {
        let s = Store::connect(url).await.expect("connecting");
        s.migrate().await.expect("migrating");
        s
    }

    async fn admit_committed(store: &Store, events: &[Event]) -> Vec<bool> {
        let mut tx = ReadTx::begin(store).await.expect("begin");
        let fresh = admit(&mut tx, "p", 1, events).await.expect("admit");
        tx.commit().await.expect("commit");
        fresh
    }

    /// Within a batch only an id's first occurrence applies; across batches a recorded id never
    /// applies again, whether it is a uuid (in either case) or an id that is not one.
    async fn each_id_is_admitted_once(store: &Store) {
        let first = [
            ev(Some(A), 0, 0),
            ev(Some(B), 0, 1),
            ev(Some(A), 0, 2),
            ev(Some("legacy-17"), 0, 3),
            ev(Some("legacy-17"), 0, 4),
            ev(None, 0, 5),
            ev(None, 0, 6),
        ];
        assert_eq!(
            admit_committed(store, &first).await,
            [true, true, false, true, false, true, true]
        );
        let upper_a = A.to_uppercase();
        let second = [
            ev(Some(A), 1, 10),
            ev(Some(C), 1, 11),
            ev(Some("legacy-17"), 1, 12),
            ev(Some(&upper_a), 1, 13),
            ev(Some("legacy-18"), 1, 14),
        ];
        let expected_upper = matches!(store, Store::Sqlite(_)); // SQLite keys are the text
        assert_eq!(
            admit_committed(store, &second).await,
            [false, true, false, expected_upper, true]
        );
    }

    #[tokio::test]
    async fn postgres_admits_each_id_once() {
        let db = pg_database().await;
        let s = store(&db.url).await;
        each_id_is_admitted_once(&s).await;
        let Store::Postgres(pool) = &s else {
            unreachable!()
        };
        // The key of an id that is not a uuid is the md5 of its text, as migration 0007 made it.
        let legacy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM strangler_projection_dedup WHERE event_id = md5('legacy-17')::uuid",
        )
        .fetch_one(pool)
        .await
        .expect("counting");
        assert_eq!(legacy, 1);
    }

    /// Keys recorded before migration 0008 (name and version in every key) keep refusing their
    /// duplicates after it, each under its own version's scope, and versions stay apart.
    #[tokio::test]
    async fn keys_recorded_before_the_scope_migration_still_refuse_duplicates() {
        let db = pg_database().await;
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connecting");
        let all = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/postgres");
        let earlier = tempfile::tempdir().expect("temp dir");
        for f in std::fs::read_dir(all).expect("migrations") {
            let f = f.expect("migration");
            if f.file_name().to_string_lossy().as_ref() < "0008" {
                std::fs::copy(f.path(), earlier.path().join(f.file_name())).expect("copying");
            }
        }
        sqlx::migrate::Migrator::new(earlier.path())
            .await
            .expect("reading migrations")
            .run(&pool)
            .await
            .expect("migrating to 0007");
        sqlx::query(
            "INSERT INTO strangler_projection_dedup \
             (projection, version, event_id, topic, partition, \"offset\", applied_at_ms) \
             VALUES ('p', 1, $1, 'orders', 0, 0, 1), ('p', 2, $2, 'orders', 3, 9, 1)",
        )
        .bind(Uuid::parse_str(A).expect("uuid"))
        .bind(Uuid::parse_str(B).expect("uuid"))
        .execute(&pool)
        .await
        .expect("recording keys the old way");

        let s = store(&db.url).await;
        // p v1 recorded A, not B: B is new to it.
        assert_eq!(
            admit_committed(&s, &[ev(Some(A), 0, 5), ev(Some(B), 0, 6)]).await,
            [false, true]
        );
        let mut tx = ReadTx::begin(&s).await.expect("begin");
        assert_eq!(
            admit(&mut tx, "p", 2, &[ev(Some(A), 3, 10), ev(Some(B), 3, 11)])
                .await
                .expect("admit"),
            [true, false]
        );
        // Each key kept its topic, partition and offset: B of p v2 goes at offset 9 and on.
        assert_eq!(
            forget_from(&mut tx, "p", 2, "orders", 3, 9)
                .await
                .expect("forget"),
            2
        );
        tx.commit().await.expect("commit");
    }

    /// A version's first batch creates its scope; rebuilding or retiring one version forgets
    /// its keys only, and its scope keeps serving it.
    #[tokio::test]
    async fn each_version_keeps_its_own_keys() {
        let db = pg_database().await;
        let s = store(&db.url).await;
        let batch = [ev(Some(A), 0, 0), ev(Some(B), 0, 1)];
        for version in [1, 2] {
            let mut tx = ReadTx::begin(&s).await.expect("begin");
            let fresh = admit(&mut tx, "p", version, &batch).await.expect("admit");
            assert_eq!(fresh, [true, true], "v{version} has seen nothing yet");
            tx.commit().await.expect("commit");
        }
        let mut tx = ReadTx::begin(&s).await.expect("begin");
        assert_eq!(forget_all(&mut tx, "p", 1).await.expect("forget"), 2);
        tx.commit().await.expect("commit");
        let mut tx = ReadTx::begin(&s).await.expect("begin");
        assert_eq!(
            admit(&mut tx, "p", 1, &batch).await.expect("admit"),
            [true, true]
        );
        assert_eq!(
            admit(&mut tx, "p", 2, &batch).await.expect("admit"),
            [false, false]
        );
        tx.commit().await.expect("commit");
        assert_eq!(prune(&s, "p", 2, i64::MAX).await.expect("prune"), 2);
        assert_eq!(admit_committed(&s, &batch).await, [false, false]);
    }

    #[tokio::test]
    async fn sqlite_admits_each_id_once() {
        let db = sqlite_file();
        each_id_is_admitted_once(&store(&db.url).await).await;
    }

    #[tokio::test]
    async fn forgetting_lets_the_unhandled_events_apply_again() {
        let db = pg_database().await;
        let s = store(&db.url).await;
        // Given against key order (the md5 of "x" sorts after A and B): each key keeps its own
        // offset when the batch goes in sorted.
        admit_committed(
            &s,
            &[ev(Some("x"), 0, 2), ev(Some(B), 0, 1), ev(Some(A), 0, 0)],
        )
        .await;
        let mut tx = ReadTx::begin(&s).await.expect("begin");
        // A was recorded at offset 0, not 5: a later duplicate's offset forgets nothing.
        let gone = forget(
            &mut tx,
            "p",
            1,
            &[ev(Some(B), 0, 1), ev(Some("x"), 0, 2), ev(Some(A), 0, 5)],
        )
        .await
        .expect("forget");
        assert_eq!(gone, 2);
        let fresh = admit(
            &mut tx,
            "p",
            1,
            &[ev(Some(A), 0, 0), ev(Some(B), 0, 1), ev(Some("x"), 0, 2)],
        )
        .await
        .expect("admit");
        assert_eq!(fresh, [false, true, true]);
        tx.commit().await.expect("commit");
    }

    /// Two batches of one version (different partitions) record the same id at once: the second
    /// waits for the first, then drops the id instead of failing.
    #[tokio::test]
    async fn a_racing_batch_waits_and_drops_the_id_the_other_recorded() {
        let db = pg_database().await;
        let s = store(&db.url).await;
        let mut first = ReadTx::begin(&s).await.expect("begin");
        let fresh = admit(&mut first, "p", 1, &[ev(Some(A), 0, 0)])
            .await
            .expect("admit");
        assert_eq!(fresh, [true]);
        let s2 = s.clone();
        let second = tokio::spawn(async move {
            let mut tx = ReadTx::begin(&s2).await.expect("begin");
            let fresh = admit(&mut tx, "p", 1, &[ev(Some(B), 1, 7), ev(Some(A), 1, 8)])
                .await
                .expect("admit");
            tx.commit().await.expect("commit");
            fresh
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !second.is_finished(),
            "the second batch waits for the first"
        );
        first.commit().await.expect("commit");
        assert_eq!(second.await.expect("second batch"), [true, false]);
    }
}
