//! `[wal]`: change capture from PostgreSQL logical decoding (`strangler relay --source wal`).
//!
//! Names follow Debezium's PostgreSQL connector where one exists (`slot.name`,
//! `publication.name`, `topic.prefix`, `tombstones.on.delete`, `incremental.snapshot.chunk.size`).

use serde::Deserialize;

use super::Validator;

/// Which committed row changes to capture, where the slot and publication live, and how changes
/// become Debezium change events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfig {
    /// Tables to capture, `schema.table` (a bare name means `public`). Each needs a primary key
    /// (the record key) or `REPLICA IDENTITY FULL`.
    pub tables: Vec<String>,
    /// Logical replication slot (created with the pgoutput plugin when missing); Debezium's
    /// `slot.name`.
    #[serde(default = "default_slot")]
    pub slot: String,
    /// Publication the slot reads through; Debezium's `publication.name`.
    #[serde(default = "default_publication")]
    pub publication: String,
    /// Create the publication `FOR TABLE <tables>` when it does not exist (needs table
    /// ownership); when false, a missing publication or table is an error saying what to run.
    #[serde(default = "default_true")]
    pub create_publication: bool,
    /// Topic prefix: a change of `s.t` goes to `<prefix>.s.t`; also `source.name`. Debezium's
    /// `topic.prefix`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Send a tombstone (same key, null value) after each delete; Debezium's
    /// `tombstones.on.delete`.
    #[serde(default = "default_true")]
    pub tombstones_on_delete: bool,
    /// `initial`: read every table once (op `r`) before or while streaming; `never`: stream only.
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Rows per snapshot chunk; Debezium's `incremental.snapshot.chunk.size`.
    #[serde(default = "default_snapshot_chunk_size")]
    pub snapshot_chunk_size: u32,
    /// Table in the legacy database that remembers snapshot progress per slot and table.
    #[serde(default = "default_snapshot_table")]
    pub snapshot_table: String,
    /// Logical decoding messages (`pg_logical_emit_message`) with this prefix are outbox events,
    /// routed like outbox rows by `[outbox]`; other prefixes go to `<topic_prefix>.message`.
    #[serde(default = "default_message_prefix")]
    pub message_prefix: String,
    /// Changes read from the slot per round trip.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Pause between reads when the slot has nothing new.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How often an idle slot is moved to the server's current WAL position so that WAL written
    /// by other tables and databases is not retained.
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// WAL retained by the slot above which the relay logs a warning every heartbeat.
    #[serde(default = "default_retained_wal_warn_bytes")]
    pub retained_wal_warn_bytes: u64,
    /// Longest pause between retries while the bus or the database is away.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
}

/// Whether the relay reads existing rows before streaming.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// Read every captured table once, in chunks between watermarks (op `r`).
    #[default]
    Initial,
    /// Stream changes only.
    Never,
}

fn default_true() -> bool {
    true
}
/// One relay per legacy database is the common case; the name says who owns the slot.
fn default_slot() -> String {
    "strangler".into()
}
/// Same reasoning as the slot name.
fn default_publication() -> String {
    "strangler".into()
}
/// Debezium requires a prefix; this one names the tool that wrote the topics.
fn default_topic_prefix() -> String {
    "strangler".into()
}
/// Debezium's `incremental.snapshot.chunk.size` default.
fn default_snapshot_chunk_size() -> u32 {
    1024
}
/// Named after the tool so that a DBA sees who created it.
fn default_snapshot_table() -> String {
    "strangler_cdc_snapshot".into()
}
/// Matches `[outbox] table`'s default: the messages stand in for outbox rows.
fn default_message_prefix() -> String {
    "outbox".into()
}
/// 10,000 changes: each read decodes again from the slot's restart position, so fewer, larger
/// reads go much faster under load (docs/BENCHMARKS.md: 4.4k changes/s at 5,000, 30.7k at
/// 50,000), while a batch of typical rows stays around 10 MB.
fn default_batch_size() -> u32 {
    10_000
}
/// 100 ms, as the outbox relay: an idle slot costs ten cheap reads a second.
fn default_poll_interval_ms() -> u64 {
    100
}
/// Ten seconds: Debezium's examples use `heartbeat.interval.ms` of 10 s to 60 s.
fn default_heartbeat_interval_ms() -> u64 {
    10_000
}
/// 1 GiB: well above a busy minute of WAL on a small server, far below a full disk.
fn default_retained_wal_warn_bytes() -> u64 {
    1 << 30
}
/// Thirty seconds, as the outbox relay.
fn default_retry_max_ms() -> u64 {
    30_000
}

impl WalConfig {
    /// `(schema, table)` of each captured table.
    pub fn qualified_tables(&self) -> Vec<(String, String)> {
        self.tables
            .iter()
            .map(|t| match t.split_once('.') {
                Some((s, t)) => (s.to_string(), t.to_string()),
                None => ("public".to_string(), t.clone()),
            })
            .collect()
    }

    pub(super) fn validate(&self, v: &mut Validator) {
        let ident = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if self.tables.is_empty() {
            v.problem(
                "wal.tables",
                "no table to capture",
                "list tables as tables = [\"public.orders\"]",
            );
        }
        for t in &self.tables {
            let parts: Vec<&str> = t.split('.').collect();
            if parts.len() > 2 || !parts.iter().all(|p| ident(p)) {
                v.problem(
                    "wal.tables",
                    format!("`{t}` is not a table name"),
                    "write schema.table with letters, digits and _",
                );
            }
        }
        let slot_ok = |s: &str| {
            ident(s)
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !slot_ok(&self.slot) {
            v.problem(
                "wal.slot",
                format!("`{}` is not a replication slot name", self.slot),
                "use 1-63 lower-case letters, digits and _ (PostgreSQL's rule for slot names)",
            );
        }
        if !ident(&self.publication) {
            v.problem(
                "wal.publication",
                format!("`{}` is not a publication name", self.publication),
                "use letters, digits and _",
            );
        }
        let snapshot_parts: Vec<&str> = self.snapshot_table.split('.').collect();
        if snapshot_parts.len() > 2 || !snapshot_parts.iter().all(|p| ident(p)) {
            v.problem(
                "wal.snapshot_table",
                format!("`{}` is not a table name", self.snapshot_table),
                "use letters, digits and _ (schema.table allowed)",
            );
        }
        let topic_ok = !self.topic_prefix.is_empty()
            && self.topic_prefix.len() <= 200
            && self
                .topic_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !topic_ok {
            v.problem(
                "wal.topic_prefix",
                format!("`{}` cannot start a Kafka topic name", self.topic_prefix),
                "use 1-200 letters, digits, '.', '_' or '-'",
            );
        }
        if self.message_prefix.is_empty() {
            v.problem(
                "wal.message_prefix",
                "the message prefix is empty",
                "use for example message_prefix = \"outbox\"",
            );
        }
        if self.message_prefix.starts_with("strangler.") {
            v.problem(
                "wal.message_prefix",
                format!(
                    "`{}` is reserved for strangler's own watermarks",
                    self.message_prefix
                ),
                "pick a prefix that does not start with `strangler.`",
            );
        }
        v.at_least(
            "wal.snapshot_chunk_size",
            self.snapshot_chunk_size.into(),
            1,
        );
        v.at_least("wal.batch_size", self.batch_size.into(), 1);
        v.at_least("wal.poll_interval_ms", self.poll_interval_ms, 1);
        v.at_least("wal.heartbeat_interval_ms", self.heartbeat_interval_ms, 100);
        v.at_least("wal.retry_max_ms", self.retry_max_ms, 100);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn defaults_follow_debezium_and_tables_qualify() {
        let c = Config::parse(
            "[legacy]\nurl = \"postgres://x@h/db\"\n[wal]\ntables = [\"orders\", \"inv.items\"]\n",
            Path::new("s.toml"),
        )
        .unwrap();
        let w = c.wal.unwrap();
        assert_eq!(w.slot, "strangler");
        assert!(w.tombstones_on_delete);
        assert_eq!(w.snapshot_chunk_size, 1024);
        assert_eq!(
            w.qualified_tables(),
            [
                ("public".to_string(), "orders".to_string()),
                ("inv".to_string(), "items".to_string())
            ]
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let err = Config::parse(
            "[wal]\ntables = [\"a.b.c\"]\nslot = \"Bad-Slot\"\ntopic_prefix = \"x y\"\nbatch_size = 0\nmessage_prefix = \"strangler.wm\"\n",
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        for key in [
            "wal.tables",
            "wal.slot",
            "wal.topic_prefix",
            "wal.batch_size",
            "wal.message_prefix",
        ] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
        assert!(err.contains("lower-case"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::parse(
            "[wal]\ntables = [\"t\"]\nslots = \"x\"\n",
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("slots"), "{err}");
    }
}
