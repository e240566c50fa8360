//! The read store: one transaction type over PostgreSQL and SQLite, so the runtime is written
//! once. SQL here uses `$n` placeholders, which both drivers accept.

use sqlx::{Postgres, Sqlite, Transaction};
use strangler_store::Store;

use crate::batch::ArrayType;
use crate::event::Value;
use crate::sql::Dialect;

/// Runs `$body` with `$c` bound to the transaction's connection, whichever kind it is. The body
/// compiles once per driver, so it may use driver-generic sqlx calls.
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::store::ReadTx::Pg(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::ReadTx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// Runs `$body` with `$p` bound to the store's pool, whichever kind it is.
macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match $store {
            strangler_store::Store::Postgres($p) => $body,
            strangler_store::Store::Sqlite($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Binds `Value`s in order onto a `sqlx::query`.
macro_rules! bind_values {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for v in $params {
            q = match v {
                $crate::event::Value::Null => q.bind(None::<i64>),
                $crate::event::Value::Bool(b) => q.bind(*b),
                $crate::event::Value::Int(i) => q.bind(*i),
                $crate::event::Value::Float(f) => q.bind(*f),
                $crate::event::Value::Text(s) => q.bind(s.clone()),
            };
        }
        q
    }};
}

/// One parameter's values for a step, as a typed array (PostgreSQL). Text borrows the units'
/// values: a step's text arrays are most of its bytes, and copying them cost an allocation per
/// value.
#[derive(Debug, Clone, PartialEq)]
pub enum Array<'a> {
    /// BIGINT[].
    Int(Vec<Option<i64>>),
    /// DOUBLE PRECISION[].
    Float(Vec<Option<f64>>),
    /// BOOLEAN[].
    Bool(Vec<Option<bool>>),
    /// TEXT[].
    Text(Vec<Option<&'a str>>),
}

impl<'a> Array<'a> {
    /// Collects values of one type (`ArrayType::of` checked them); others become NULL.
    pub fn collect(ty: ArrayType, values: impl Iterator<Item = &'a Value>) -> Array<'a> {
        match ty {
            ArrayType::Int8 => Array::Int(
                values
                    .map(|v| match v {
                        Value::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect(),
            ),
            ArrayType::Float8 => Array::Float(
                values
                    .map(|v| match v {
                        Value::Float(f) => Some(*f),
                        _ => None,
                    })
                    .collect(),
            ),
            ArrayType::Bool => Array::Bool(
                values
                    .map(|v| match v {
                        Value::Bool(b) => Some(*b),
                        _ => None,
                    })
                    .collect(),
            ),
            ArrayType::Text => Array::Text(
                values
                    .map(|v| match v {
                        Value::Text(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect(),
            ),
        }
    }
}

/// An open transaction on the read store.
pub enum ReadTx {
    /// PostgreSQL.
    Pg(Transaction<'static, Postgres>),
    /// SQLite.
    Sqlite(Transaction<'static, Sqlite>),
}

impl ReadTx {
    /// Begins a transaction (SQLite: `BEGIN IMMEDIATE`, so the writer lock is taken up front and
    /// a concurrent writer waits instead of failing at commit).
    pub async fn begin(store: &Store) -> Result<ReadTx, sqlx::Error> {
        Ok(match store {
            Store::Postgres(p) => ReadTx::Pg(p.begin().await?),
            Store::Sqlite(p) => ReadTx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// Which placeholder syntax user SQL must be rewritten to.
    pub fn dialect(&self) -> Dialect {
        match self {
            ReadTx::Pg(_) => Dialect::Postgres,
            ReadTx::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs one statement with bound values; returns rows affected.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, sqlx::Error> {
        on_tx!(self, c => {
            let q = bind_values!(sqlx::query(sql), params);
            Ok(q.execute(c).await?.rows_affected())
        })
    }

    /// Runs one statement with arrays bound in order (PostgreSQL only; multi-row statements).
    pub async fn execute_arrays(
        &mut self,
        sql: &str,
        arrays: Vec<Array<'_>>,
    ) -> Result<u64, sqlx::Error> {
        let ReadTx::Pg(t) = self else {
            return Err(sqlx::Error::Protocol(
                "array parameters need a PostgreSQL read store".into(),
            ));
        };
        let mut q = sqlx::query(sql);
        for a in arrays {
            q = match a {
                Array::Int(v) => q.bind(v),
                Array::Float(v) => q.bind(v),
                Array::Bool(v) => q.bind(v),
                Array::Text(v) => q.bind(v),
            };
        }
        Ok(q.execute(&mut **t).await?.rows_affected())
    }

    /// Runs SQL text without parameters (DDL, possibly several statements).
    pub async fn execute_script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        on_tx!(self, c => { sqlx::Executor::execute(c, sql).await?; Ok(()) })
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            ReadTx::Pg(t) => t.commit().await,
            ReadTx::Sqlite(t) => t.commit().await,
        }
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            ReadTx::Pg(t) => t.rollback().await,
            ReadTx::Sqlite(t) => t.rollback().await,
        }
    }
}

/// The placeholder dialect of a store.
pub fn dialect(store: &Store) -> Dialect {
    match store {
        Store::Postgres(_) => Dialect::Postgres,
        Store::Sqlite(_) => Dialect::Sqlite,
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
