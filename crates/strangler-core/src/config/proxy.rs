//! `[proxy]` and `[admin]`: the shadow proxy's listener and upstreams, and the admin API.

use serde::Deserialize;

use super::Validator;

/// The shadow proxy in front of the legacy read API.
#[derive(Debug, Clone, Deserialize)]
pub struct ProxyConfig {
    /// Address clients connect to.
    #[serde(default = "default_proxy_listen")]
    pub listen: String,
    /// The legacy read API, for example `http://legacy.internal:8080`.
    pub legacy_url: String,
    /// The new read path (strangler's read API, or your own service).
    pub new_url: String,
    /// How often the proxy re-reads cutover modes from the store.
    #[serde(default = "default_poll_ms")]
    pub mode_poll_ms: u64,
}

/// 8080, the port a legacy HTTP API most often had.
fn default_proxy_listen() -> String {
    "127.0.0.1:8080".into()
}

/// 250 ms: a cutover change reaches every proxy well within a second.
fn default_poll_ms() -> u64 {
    250
}

impl ProxyConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.listen_addr("proxy.listen", &self.listen);
        v.url("proxy.legacy_url", &self.legacy_url, &["http", "https"]);
        v.url("proxy.new_url", &self.new_url, &["http", "https"]);
        v.at_least("proxy.mode_poll_ms", self.mode_poll_ms, 10);
    }
}

/// The admin API and web dashboard, on a listener of their own.
#[derive(Debug, Clone, Deserialize)]
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
pub struct AdminToken {
    /// Who holds it; recorded in the audit trail.
    pub name: String,
    /// The secret; write `${ENV_VAR}` rather than the value itself.
    pub token: String,
    /// `viewer` reads; `operator` also changes modes and triages.
    pub role: AdminRole,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Read capabilities, counters, reports.
    Viewer,
    /// Also change cutover modes and triage fingerprints.
    Operator,
}

/// 9090, apart from the client-facing proxy port.
fn default_admin_listen() -> String {
    "127.0.0.1:9090".into()
}

impl AdminConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.listen_addr("admin.listen", &self.listen);
        for (i, t) in self.tokens.iter().enumerate() {
            if t.token.len() < 16 {
                v.problem(
                    format!("admin.tokens[{i}].token"),
                    format!("token of `{}` is shorter than 16 characters", t.name),
                    "use a long random secret, for example from `openssl rand -hex 32`",
                );
            }
        }
    }
}
