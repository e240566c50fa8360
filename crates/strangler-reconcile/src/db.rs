//! Connections to the three database kinds, behind one enum.

use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::error::{Error, Result};

/// Which SQL dialect a side speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

/// A pool on one side.
#[derive(Debug, Clone)]
pub enum Db {
    /// PostgreSQL.
    Postgres(PgPool),
    /// MySQL or MariaDB.
    MySql(MySqlPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

/// Runs the same code against whichever pool a [`Db`] holds.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::MySql($pool) => $body,
            $crate::db::Db::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_db;

impl Db {
    /// Connects with at most `max` connections. PostgreSQL sessions run in UTC so naive
    /// timestamps read as UTC; sqlx already sets MySQL sessions to `+00:00`.
    pub async fn connect(url: &str, max: u32, side: &'static str) -> Result<Db> {
        let sql_err = |source| Error::Sql {
            side,
            what: format!("connecting to {}", redact_url(url)),
            source,
        };
        let scheme = url.split(':').next().unwrap_or_default();
        Ok(match scheme {
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url)
                    .map_err(sql_err)?
                    .options([("TimeZone", "UTC")]);
                Db::Postgres(
                    PgPoolOptions::new()
                        .max_connections(max)
                        .connect_with(opts)
                        .await
                        .map_err(sql_err)?,
                )
            }
            "mysql" | "mariadb" => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                let opts = MySqlConnectOptions::from_str(&url).map_err(sql_err)?;
                Db::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(max)
                        .connect_with(opts)
                        .await
                        .map_err(sql_err)?,
                )
            }
            "sqlite" => {
                let opts = SqliteConnectOptions::from_str(url).map_err(sql_err)?;
                Db::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(max)
                        .connect_with(opts)
                        .await
                        .map_err(sql_err)?,
                )
            }
            _ => return Err(Error::UnsupportedUrl(redact_url(url))),
        })
    }

    /// The dialect of this pool.
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::MySql(_) => Dialect::MySql,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Column names and declared type names of a query, without running it.
    pub async fn describe(&self, sql: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
        use sqlx::{Column, Executor, TypeInfo};
        on_db!(self, pool => {
            let d = pool.describe(sql).await?;
            Ok(d.columns()
                .iter()
                .map(|c| (c.name().to_string(), c.type_info().name().to_string()))
                .collect())
        })
    }
}

/// A URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((creds, host)) => {
                let user = creds.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}
