//! `[contracts]`: the event contract registry and what the relay and the projectors do with it.

use std::path::PathBuf;

use serde::Deserialize;

use super::Validator;

/// Event contracts: versioned JSON Schemas in files (see docs/contracts.md). Without this
/// section nothing is validated.
#[derive(Debug, Clone, Deserialize)]
pub struct ContractsConfig {
    /// Registry folder (`<aggregate>/<EventType>.v<N>.json`), relative to this file.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Schemas kept in a Kafka schema registry's subject/version layout on disk, in addition to
    /// (or instead of) `dir`.
    #[serde(default)]
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// Header that carries an event's version (an outbox column listed in
    /// `outbox.additional_headers`); events without it get the highest version they match.
    #[serde(default = "default_version_header")]
    pub version_header: String,
    /// What the relay does with an outbox payload that breaks its contract.
    #[serde(default)]
    pub relay: RelayContractPolicy,
    /// Whether projectors validate and upcast events before applying them; a violation is a
    /// dead letter with reason `contract_violation` (or stops, per the projection's policy).
    #[serde(default = "default_projector")]
    pub projector: bool,
    /// Event types no contract covers: `pass` them, or treat them as violations (`reject`).
    #[serde(default)]
    pub uncovered: UncoveredPolicy,
}

/// A schema registry export on disk.
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaRegistryConfig {
    /// Folder holding `subjects/<subject>/versions/<N>.json`, relative to this file.
    pub dir: PathBuf,
    /// Subject naming strategy: `record` (`<aggregate>.<EventType>`) or `topic-record`
    /// (`<topic>-<EventType>`, the aggregate read through `outbox.topic_template`).
    #[serde(default)]
    pub naming: SubjectNaming,
}

/// Subject naming strategies strangler understands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectNaming {
    /// RecordNameStrategy: `<aggregate>.<EventType>`.
    #[default]
    Record,
    /// TopicRecordNameStrategy: `<topic>-<EventType>`.
    TopicRecord,
}

/// The relay's answer to a payload that breaks its contract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RelayContractPolicy {
    /// Do not validate in the relay.
    Off,
    /// Publish it and log a warning (counted in `strangler_relay_contract_violations_total`).
    #[default]
    Warn,
    /// Move the row to the outbox dead-letter table with the violation, and go on.
    DeadLetter,
    /// Stop the relay at the row.
    Stop,
}

/// What an event type without a contract is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UncoveredPolicy {
    /// Let it through unchecked.
    #[default]
    Pass,
    /// A contract violation.
    Reject,
}

/// `contracts/` beside the configuration file, as docs/contracts.md lays it out.
fn default_dir() -> PathBuf {
    PathBuf::from("contracts")
}

/// A header named after what it carries; add the outbox column of that name to
/// `outbox.additional_headers` to send it.
fn default_version_header() -> String {
    "schema_version".into()
}

/// Projectors validate once a registry is configured: that is what the section is for.
fn default_projector() -> bool {
    true
}

impl ContractsConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        let check_dir = |v: &mut Validator, key: &str, dir: &std::path::Path| {
            let full = if dir.is_absolute() {
                dir.to_path_buf()
            } else {
                v.base_dir().join(dir)
            };
            if !full.is_dir() {
                v.problem(
                    key,
                    format!("folder `{}` does not exist", full.display()),
                    "create it, or correct the path (relative paths resolve from the configuration file's folder)",
                );
            }
        };
        if self.schema_registry.is_none() || self.dir != default_dir() {
            check_dir(v, "contracts.dir", &self.dir);
        }
        if let Some(sr) = &self.schema_registry {
            check_dir(v, "contracts.schema_registry.dir", &sr.dir);
        }
        if self.version_header.trim().is_empty() {
            v.problem(
                "contracts.version_header",
                "the version header name is empty",
                "name the header that carries the event version, for example schema_version",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn parse(dir: &std::path::Path, text: &str) -> Result<Config, crate::ConfigError> {
        Config::parse(text, &dir.join("strangler.toml"))
    }

    #[test]
    fn the_section_turns_contracts_on_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("contracts")).unwrap();
        assert!(parse(dir.path(), "").unwrap().contracts.is_none());
        let c = parse(dir.path(), "[contracts]\n")
            .unwrap()
            .contracts
            .unwrap();
        assert_eq!(c.version_header, "schema_version");
        assert_eq!(c.relay, super::RelayContractPolicy::Warn);
        assert!(c.projector);
        assert_eq!(c.uncovered, super::UncoveredPolicy::Pass);
        let c = parse(
            dir.path(),
            "[contracts]\nrelay = \"dead-letter\"\nuncovered = \"reject\"\n",
        )
        .unwrap()
        .contracts
        .unwrap();
        assert_eq!(c.relay, super::RelayContractPolicy::DeadLetter);
        assert_eq!(c.uncovered, super::UncoveredPolicy::Reject);
    }

    #[test]
    fn every_problem_names_the_key_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse(
            dir.path(),
            "[contracts]\ndir = \"nowhere\"\nversion_header = \" \"\ncolour = 1\n\n[contracts.schema_registry]\ndir = \"schemas\"\n",
        )
        .unwrap_err();
        let text = err.to_string();
        let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
        for key in [
            "contracts.dir",
            "contracts.version_header",
            "contracts.colour",
            "contracts.schema_registry.dir",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}:\n{text}");
        }
        assert!(text.contains("strangler.toml:2:1"), "{text}");
        assert!(text.contains("nowhere` does not exist"), "{text}");
        let err = parse(dir.path(), "[contracts]\nrelay = \"shout\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown variant `shout`"), "{err}");
    }
}
