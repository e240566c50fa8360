//! `[admin]` and `[mismatches]`: the authenticated admin API and dashboard, and the mismatch
//! store with its privacy rules.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;

use super::Validator;
use super::capability::CapabilityConfig;

/// The admin API and web dashboard, on a listener of their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on; keep it off the public interface.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer tokens and their roles.
    #[serde(default)]
    pub tokens: Vec<AdminToken>,
}

/// One bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    /// Who holds it; recorded in the audit trail.
    pub name: String,
    /// The secret; write `${ENV_VAR}` rather than the value itself.
    pub token: String,
    /// `viewer` reads; `operator` also changes modes and triages.
    pub role: AdminRole,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Read capabilities, counters, reports.
    Viewer,
    /// Also change cutover modes and triage fingerprints.
    Operator,
}

impl AdminRole {
    /// `viewer` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Viewer => "viewer",
            AdminRole::Operator => "operator",
        }
    }
}

/// 9090, apart from the client-facing proxy port.
fn default_admin_listen() -> String {
    "127.0.0.1:9090".into()
}

impl AdminConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.listen_addr("admin.listen", &self.listen);
        let mut names = HashSet::new();
        let mut secrets = HashSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if t.token.len() < 16 {
                v.problem(
                    format!("admin.tokens[{i}].token"),
                    format!("token of `{}` is shorter than 16 characters", t.name),
                    "use a long random secret, for example from `openssl rand -hex 32`",
                );
            }
            if !names.insert(t.name.as_str()) {
                v.problem(
                    format!("admin.tokens[{i}].name"),
                    format!("token name `{}` is used twice", t.name),
                    "give each token holder its own name; the audit trail records it",
                );
            }
            if !secrets.insert(t.token.as_str()) {
                v.problem(
                    format!("admin.tokens[{i}].token"),
                    format!(
                        "token of `{}` is the same secret as an earlier token",
                        t.name
                    ),
                    "give each holder a different secret so the audit trail can tell them apart",
                );
            }
        }
        if self.tokens.is_empty() {
            v.problem(
                "admin.tokens",
                "the admin API has no tokens, so nobody could use it",
                "add [[admin.tokens]] with name, token (`${ENV_VAR}`) and role = \"viewer\" or \"operator\"",
            );
        }
    }
}

/// Headers that are always redacted, whatever the configuration adds.
pub const ALWAYS_SENSITIVE_HEADERS: [&str; 3] = ["authorization", "cookie", "set-cookie"];

/// How a sensitive value is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redaction {
    /// Replaced by a keyed HMAC (`hmac:` and 16 hex digits): equal values stay comparable.
    #[default]
    Hmac,
    /// Removed entirely.
    Remove,
}

/// The mismatch store: comparisons grouped by fingerprint, with redacted exemplars.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MismatchConfig {
    /// Record judged comparisons while the proxy runs.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Days a fingerprint, its exemplars and its trend are kept after it was last seen.
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
    /// Most fingerprints kept per capability; the least recently seen go first.
    #[serde(default = "default_max_fingerprints")]
    pub max_fingerprints: u64,
    /// Exemplars kept per fingerprint (the newest).
    #[serde(default = "default_exemplars")]
    pub exemplars_per_fingerprint: u64,
    /// Largest body kept in an exemplar; longer ones are cut and marked.
    #[serde(default = "default_max_exemplar_bytes")]
    pub max_exemplar_bytes: usize,
    /// How often recorded comparisons are written, in one transaction.
    #[serde(default = "default_flush_ms")]
    pub flush_ms: u64,
    /// Key of the HMACs that replace sensitive values; write `${ENV_VAR}`. Without it the key
    /// is read from `hmac_key_file`, created with a random key on first use.
    #[serde(default)]
    pub hmac_key: Option<String>,
    /// File holding the HMAC key when `hmac_key` is not set, relative to the configuration file.
    #[serde(default = "default_hmac_key_file")]
    pub hmac_key_file: PathBuf,
    /// `hmac` (default) or `remove`.
    #[serde(default)]
    pub redaction: Redaction,
    /// Headers redacted in requests and answers, on top of Authorization, Cookie, Set-Cookie.
    #[serde(default)]
    pub sensitive_headers: Vec<String>,
    /// JSON pointers redacted in request and answer bodies and in differences; `*` matches one
    /// segment, for example `/customer/email` or `/cards/*/number`.
    #[serde(default)]
    pub sensitive_paths: Vec<String>,
    /// Query parameters redacted in stored request paths.
    #[serde(default)]
    pub sensitive_query_params: Vec<String>,
    /// Per-capability overrides, keyed by capability name.
    #[serde(default)]
    pub capability: BTreeMap<String, MismatchCapabilityConfig>,
}

/// Overrides for one capability.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MismatchCapabilityConfig {
    /// Retention in days for this capability.
    #[serde(default)]
    pub retention_days: Option<u64>,
    /// Store raw values of sensitive headers and paths for this capability. Audited at start.
    #[serde(default)]
    pub keep_raw: bool,
}

fn default_true() -> bool {
    true
}

/// Two weeks: long enough to see a weekly batch job's effect twice.
fn default_retention_days() -> u64 {
    14
}

/// 500 groups per capability: more than anyone triages, a few MB of rows.
fn default_max_fingerprints() -> u64 {
    500
}

/// Three exemplars: enough to tell one odd record from a pattern.
fn default_exemplars() -> u64 {
    3
}

/// 64 KiB per body keeps an exemplar readable and the store small.
fn default_max_exemplar_bytes() -> usize {
    64 * 1024
}

/// One second, like the proxy's verdict-count flush.
fn default_flush_ms() -> u64 {
    1_000
}

/// Beside the embedded store.
fn default_hmac_key_file() -> PathBuf {
    PathBuf::from(".strangler/hmac.key")
}

impl Default for MismatchConfig {
    fn default() -> Self {
        MismatchConfig {
            enabled: true,
            retention_days: default_retention_days(),
            max_fingerprints: default_max_fingerprints(),
            exemplars_per_fingerprint: default_exemplars(),
            max_exemplar_bytes: default_max_exemplar_bytes(),
            flush_ms: default_flush_ms(),
            hmac_key: None,
            hmac_key_file: default_hmac_key_file(),
            redaction: Redaction::Hmac,
            sensitive_headers: Vec::new(),
            sensitive_paths: Vec::new(),
            sensitive_query_params: Vec::new(),
            capability: BTreeMap::new(),
        }
    }
}

impl MismatchConfig {
    /// Retention of one capability, in days.
    pub fn retention_days_of(&self, capability: &str) -> u64 {
        self.capability
            .get(capability)
            .and_then(|c| c.retention_days)
            .unwrap_or(self.retention_days)
    }

    /// Whether raw sensitive values are kept for one capability.
    pub fn keeps_raw(&self, capability: &str) -> bool {
        self.capability.get(capability).is_some_and(|c| c.keep_raw)
    }

    pub(super) fn validate(&self, capabilities: &[CapabilityConfig], v: &mut Validator) {
        v.at_least("mismatches.retention_days", self.retention_days, 1);
        v.at_least("mismatches.max_fingerprints", self.max_fingerprints, 1);
        v.at_least("mismatches.flush_ms", self.flush_ms, 10);
        v.at_least(
            "mismatches.max_exemplar_bytes",
            self.max_exemplar_bytes as u64,
            256,
        );
        if let Some(k) = &self.hmac_key
            && k.len() < 16
        {
            v.problem(
                "mismatches.hmac_key",
                "the HMAC key is shorter than 16 characters, so redacted values could be guessed",
                "use a long random secret, for example `${STRANGLER_HMAC_KEY}` set from `openssl rand -hex 32`",
            );
        }
        for (i, h) in self.sensitive_headers.iter().enumerate() {
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                v.problem(
                    format!("mismatches.sensitive_headers[{i}]"),
                    format!("`{h}` is not a header name"),
                    "use letters, digits and - only",
                );
            }
        }
        for (i, p) in self.sensitive_paths.iter().enumerate() {
            if !p.starts_with('/') {
                v.problem(
                    format!("mismatches.sensitive_paths[{i}]"),
                    format!("`{p}` is not a JSON pointer"),
                    "start it with /, for example /customer/email or /cards/*/number",
                );
            }
        }
        for (name, c) in &self.capability {
            if !capabilities.iter().any(|k| &k.name == name) {
                v.problem(
                    format!("mismatches.capability.{name}"),
                    format!("no [[capability]] is named `{name}`"),
                    "use the name of a configured capability, or remove this table",
                );
            }
            if let Some(d) = c.retention_days {
                v.at_least(
                    &format!("mismatches.capability.{name}.retention_days"),
                    d,
                    1,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;
    use crate::config::ConfigError;

    /// Key, message and fix, and the key's line and column.
    type Found = (String, String, Option<(usize, usize)>);

    fn problems(text: &str) -> Vec<Found> {
        match Config::parse(text, Path::new("admin.toml")) {
            Err(ConfigError::Invalid { problems }) => problems
                .into_iter()
                .map(|p| (p.key, format!("{} / {}", p.message, p.fix), p.line_col))
                .collect(),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => Vec::new(),
        }
    }

    const CAP: &str = "[[capability]]\nname = \"orders\"\nroutes = [\"GET /orders/{id}\"]\n";

    #[test]
    fn full_sections_parse_with_per_capability_overrides() {
        let text = format!(
            "{CAP}[admin]\ntokens = [{{ name = \"a\", token = \"0123456789abcdef\", role = \"operator\" }}]\n\
             [mismatches]\nredaction = \"remove\"\nsensitive_paths = [\"/customer/email\"]\n\
             [mismatches.capability.orders]\nretention_days = 30\nkeep_raw = true\n"
        );
        let c = Config::parse(&text, Path::new("admin.toml")).expect("valid");
        assert_eq!(c.mismatches.retention_days_of("orders"), 30);
        assert_eq!(c.mismatches.retention_days_of("other"), 14);
        assert!(c.mismatches.keeps_raw("orders") && !c.mismatches.keeps_raw("other"));
        assert_eq!(c.mismatches.redaction, super::Redaction::Remove);
        assert_eq!(c.admin.unwrap().tokens[0].role, super::AdminRole::Operator);
    }

    #[test]
    fn every_problem_is_reported_with_its_key_and_fix() {
        let text = format!(
            "{CAP}[admin]\ntokens = [\n  {{ name = \"a\", token = \"short\", role = \"viewer\" }},\n  \
             {{ name = \"a\", token = \"0123456789abcdef\", role = \"operator\" }},\n]\n\
             [mismatches]\nhmac_key = \"tiny\"\nsensitive_headers = [\"bad header\"]\n\
             sensitive_paths = [\"customer.email\"]\nretention_days = 0\n\
             [mismatches.capability.nope]\nkeep_raw = true\n"
        );
        let p = problems(&text);
        let keys: Vec<&str> = p.iter().map(|(k, _, _)| k.as_str()).collect();
        for key in [
            "admin.tokens[0].token",
            "admin.tokens[1].name",
            "mismatches.hmac_key",
            "mismatches.sensitive_headers[0]",
            "mismatches.sensitive_paths[0]",
            "mismatches.retention_days",
            "mismatches.capability.nope",
        ] {
            assert!(keys.contains(&key), "no problem at {key}: {p:?}");
        }
        let nope = p
            .iter()
            .find(|(k, _, _)| k == "mismatches.capability.nope")
            .unwrap();
        assert!(
            nope.1.contains("no [[capability]] is named `nope`"),
            "{nope:?}"
        );
        assert!(nope.2.is_some(), "the line of the key is shown: {nope:?}");
    }

    #[test]
    fn an_admin_section_without_tokens_is_refused() {
        let p = problems("[admin]\nlisten = \"127.0.0.1:9090\"\n");
        assert!(
            p.iter()
                .any(|(k, m, _)| k == "admin.tokens" && m.contains("[[admin.tokens]]")),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let p = problems("[mismatches]\nretention = 3\n");
        assert!(p.iter().any(|(k, _, _)| k.contains("retention")), "{p:?}");
    }
}
