//! `[proxy]`: the shadow proxy's listener and upstreams (`[admin]` lives in `admin.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::Validator;

/// The shadow proxy in front of the legacy read API.
#[derive(Debug, Clone, Deserialize)]
pub struct ProxyConfig {
    /// Address clients connect to.
    #[serde(default = "default_proxy_listen")]
    pub listen: String,
    /// The legacy read API, for example `http://legacy.internal:8080` or `https://...`.
    pub legacy_url: String,
    /// The new read path (strangler's read API, or your own service), `http://` or `https://`.
    pub new_url: String,
    /// PEM file of the certificate authorities trusted for `https://` upstreams (legacy, new,
    /// sandboxes), relative to this file; without it, the system's trust store.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// How often the proxy re-reads cutover modes from the store.
    #[serde(default = "default_poll_ms")]
    pub mode_poll_ms: u64,
    /// How often verdict counts and latencies are written to the store (in one batch), and
    /// canary gates re-checked.
    #[serde(default = "default_stats_flush_ms")]
    pub stats_flush_ms: u64,
    /// Deadline for legacy's response headers; past it the client gets a 502.
    #[serde(default = "default_upstream_timeout_ms")]
    pub upstream_timeout_ms: u64,
    /// How long an idle pooled upstream connection is kept.
    #[serde(default = "default_pool_idle_timeout_ms")]
    pub pool_idle_timeout_ms: u64,
    /// Forward plain HTTP/1.1 `GET`s that nothing compares (no route, or a capability in
    /// `legacy` mode or killed) with strangler's own HTTP/1.1 code on the serving threads, not
    /// through hyper: the same bytes reach legacy and the client, at about half the instructions per
    /// request (docs/BENCHMARKS.md, "Shadow proxy"). Anything
    /// else on the connection (a body, another method, HTTP/2, an upgrade, a capability that is
    /// compared) is served by hyper from then on. Applies to an `http://` legacy only. Turn it off
    /// to rule it out when troubleshooting.
    #[serde(default = "default_true")]
    pub fast_pass_through: bool,
    /// Headers set on every mirrored request (added or replaced), for example to route it to a
    /// test tenant or mark it for the new path's logs.
    #[serde(default)]
    pub mirror_headers: BTreeMap<String, String>,
    /// `Host` header of mirrored requests; without it the new path's own host is used.
    #[serde(default)]
    pub mirror_host: Option<String>,
    /// Request header that identifies a client for read-your-writes (for example `X-User-Id`).
    #[serde(default)]
    pub client_id_header: Option<String>,
    /// Cookie that identifies a client for read-your-writes, used when the header is absent.
    #[serde(default)]
    pub client_id_cookie: Option<String>,
    /// Identify a client by the `sub` claim of its `Authorization: Bearer` JWT (not verified:
    /// the proxy only routes on it), used when the header and cookie are absent.
    #[serde(default)]
    pub client_id_from_token: bool,
    /// After a client's write, how long at most its reads are served from legacy; a capability's
    /// window closes earlier once the new path's watermark passes the write.
    #[serde(default = "default_ryw_window_ms")]
    pub ryw_window_ms: u64,
    /// Most clients remembered for read-your-writes; the oldest is forgotten first.
    #[serde(default = "default_ryw_max_clients")]
    pub ryw_max_clients: usize,
}

/// One second: fine-grained enough for gates, and one small batch per second per proxy.
fn default_stats_flush_ms() -> u64 {
    1_000
}

/// 30 s, the common default of reverse proxies (nginx `proxy_read_timeout` is 60 s).
fn default_upstream_timeout_ms() -> u64 {
    30_000
}

/// On: the pass-through path is the busiest, and what it skips is what pass-through never uses.
fn default_true() -> bool {
    true
}

/// 90 s, hyper-util's own default for idle pooled connections.
fn default_pool_idle_timeout_ms() -> u64 {
    90_000
}

/// 5 s: longer than a healthy projection's lag, so a client sees its own write.
fn default_ryw_window_ms() -> u64 {
    5_000
}

/// 100,000 clients: a few MB at most.
fn default_ryw_max_clients() -> usize {
    100_000
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
        // Upstreams are spoken to in HTTP/1.1, in clear or over TLS.
        v.url("proxy.legacy_url", &self.legacy_url, &["http", "https"]);
        v.url("proxy.new_url", &self.new_url, &["http", "https"]);
        if let Some(ca) = &self.tls_ca_file {
            v.existing_file("proxy.tls_ca_file", ca);
            let full = v.base_dir().join(ca);
            if let Ok(text) = std::fs::read_to_string(&full)
                && !text.contains("-----BEGIN CERTIFICATE-----")
            {
                v.problem(
                    "proxy.tls_ca_file",
                    format!("`{}` holds no PEM certificate", full.display()),
                    "point it at a PEM bundle of CA certificates (-----BEGIN CERTIFICATE-----)",
                );
            }
        }
        v.at_least("proxy.mode_poll_ms", self.mode_poll_ms, 10);
        v.at_least("proxy.stats_flush_ms", self.stats_flush_ms, 100);
        v.at_least("proxy.upstream_timeout_ms", self.upstream_timeout_ms, 1);
        v.at_least("proxy.ryw_max_clients", self.ryw_max_clients as u64, 1);
        for name in self.mirror_headers.keys() {
            if http_token(name).is_none() {
                v.problem(
                    format!("proxy.mirror_headers.{name}"),
                    format!("`{name}` is not a header name"),
                    "use letters, digits and - only",
                );
            }
        }
        if let Some(h) = &self.client_id_header
            && http_token(h).is_none()
        {
            v.problem(
                "proxy.client_id_header",
                format!("`{h}` is not a header name"),
                "use letters, digits and - only",
            );
        }
    }
}

fn http_token(name: &str) -> Option<&str> {
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(name)
}
