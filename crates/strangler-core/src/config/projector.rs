//! `[projections]` and `[serve]`: projection definitions and the read API over them.

use std::path::PathBuf;

use serde::Deserialize;

use super::Validator;

/// Where projection definitions live and where they write.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectionsConfig {
    /// Folder of projection definition files (`*.toml`), relative to this file.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// The read store projections write to: `sqlite://...` or `postgres://...`.
    #[serde(default = "default_read_store")]
    pub read_store_url: String,
    /// Kafka consumer group prefix; each projection's group is `<prefix>.<projection>`.
    #[serde(default = "default_group_prefix")]
    pub group_prefix: String,
    /// Connections of the sinks other than the read store that projection files name with
    /// `[sink] kind` (a file's own `[sink] url` wins).
    #[serde(default)]
    pub sinks: SinksConfig,
}

/// `[projections.sinks]`: where Redis and ClickHouse sinks connect by default.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SinksConfig {
    /// `[projections.sinks.redis]`: the Redis of `kind = "redis"` projections.
    #[serde(default)]
    pub redis: Option<RedisSinkConfig>,
    /// `[projections.sinks.clickhouse]`: the ClickHouse of `kind = "clickhouse"` projections.
    #[serde(default)]
    pub clickhouse: Option<ClickHouseSinkConfig>,
}

/// A Redis connection.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSinkConfig {
    /// `redis://[user:password@]host:port/db` (or `rediss://` for TLS).
    pub url: String,
}

/// A ClickHouse connection over its HTTP interface.
#[derive(Debug, Clone, Deserialize)]
pub struct ClickHouseSinkConfig {
    /// The HTTP interface, for example `http://127.0.0.1:8123`.
    pub url: String,
    /// The database projection tables live in, unless a file names another.
    #[serde(default = "default_clickhouse_database")]
    pub database: String,
    /// User name; absent uses ClickHouse's `default` user.
    #[serde(default)]
    pub user: Option<String>,
    /// Password of `user`.
    #[serde(default)]
    pub password: Option<String>,
}

/// ClickHouse's own default database.
fn default_clickhouse_database() -> String {
    "default".into()
}

/// `projections/` beside the configuration file.
fn default_dir() -> PathBuf {
    PathBuf::from("projections")
}

/// The embedded default: a SQLite file apart from the control store, so readers and the relay do
/// not contend for one SQLite writer lock.
fn default_read_store() -> String {
    "sqlite://.strangler/read.db".into()
}

/// Groups named after the tool make them easy to find in broker tooling.
fn default_group_prefix() -> String {
    "strangler".into()
}

impl Default for ProjectionsConfig {
    fn default() -> Self {
        ProjectionsConfig {
            dir: default_dir(),
            read_store_url: default_read_store(),
            group_prefix: default_group_prefix(),
            sinks: SinksConfig::default(),
        }
    }
}

impl ProjectionsConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.url(
            "projections.read_store_url",
            &self.read_store_url,
            &["sqlite", "postgres", "postgresql"],
        );
        if let Some(r) = &self.sinks.redis {
            v.url("projections.sinks.redis.url", &r.url, &["redis", "rediss"]);
        }
        if let Some(c) = &self.sinks.clickhouse {
            v.url(
                "projections.sinks.clickhouse.url",
                &c.url,
                &["http", "https"],
            );
        }
    }
}

/// The read API (`strangler serve`): JSON routes over the read store.
#[derive(Debug, Clone, Deserialize)]
pub struct ServeConfig {
    /// Address to listen on.
    #[serde(default = "default_serve_listen")]
    pub listen: String,
    /// Folder of read-route files (`*.toml`), relative to this file; absent means routes come
    /// from the projection definitions only.
    #[serde(default)]
    pub routes_dir: Option<PathBuf>,
}

/// 8081: beside the proxy's 8080.
fn default_serve_listen() -> String {
    "127.0.0.1:8081".into()
}

impl ServeConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.listen_addr("serve.listen", &self.listen);
    }
}
