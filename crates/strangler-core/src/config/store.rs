//! `[store]`: where strangler keeps its own state.

use serde::Deserialize;

use super::Validator;

/// strangler's control plane: cutover flags and their audit trail, the mismatch store, and the
/// built-in log when no Kafka is configured. PostgreSQL for many machines, SQLite for one.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreConfig {
    /// Database URL: `sqlite://path/to/file.db` or `postgres://user@host/db`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// Apply strangler's migrations when a service starts (`--no-migrate` turns it off per run).
    #[serde(default = "default_true")]
    pub migrate_on_start: bool,
}

/// The embedded default: a SQLite file beside the working directory, created on first use.
fn default_store_url() -> String {
    "sqlite://.strangler/control.db".into()
}

fn default_true() -> bool {
    true
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
            migrate_on_start: true,
        }
    }
}

impl StoreConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.url(
            "store.url",
            &self.url,
            &["sqlite", "postgres", "postgresql"],
        );
    }
}
