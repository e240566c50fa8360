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
