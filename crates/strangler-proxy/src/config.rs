//! The proxy's runtime settings, compiled once from the validated configuration: upstream
//! addresses, capabilities with their loaded rule sets and read-your-writes fan-out.

use std::sync::Arc;

use http::Uri;
use http::uri::{Authority, Scheme};
use strangler_core::Config;
use strangler_core::config::{CapabilityConfig, ProxyConfig};
use strangler_diff::RuleSet;

use crate::error::{Error, Result};
use crate::ryw::Affects;

/// An HTTP upstream: scheme, host and port, and a path prefix.
#[derive(Debug, Clone)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    prefix: String,
}

impl Upstream {
    /// Parses `http://host:port/prefix` or `https://host:port/prefix`.
    pub fn parse(url: &str) -> Result<Upstream> {
        let bad = |reason: &str| Error::BadUpstream {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URI"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| bad("no scheme"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(bad("only http:// and https:// upstreams are supported"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Upstream {
            scheme,
            authority,
            prefix,
        })
    }

    /// The upstream URI for a client's path and query.
    pub fn uri(&self, path_and_query: &str) -> Uri {
        let pq = if self.prefix.is_empty() {
            path_and_query.to_owned()
        } else {
            format!("{}{path_and_query}", self.prefix)
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// The upstream URI for a client's URI: its path and query are shared, not copied and
    /// parsed again, when the upstream has no path prefix.
    pub fn uri_of(&self, client: &Uri) -> Uri {
        let pq = client.path_and_query();
        if self.prefix.is_empty()
            && let Some(pq) = pq
        {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(self.scheme.clone());
            parts.authority = Some(self.authority.clone());
            parts.path_and_query = Some(pq.clone());
            if let Ok(uri) = Uri::from_parts(parts) {
                return uri;
            }
        }
        self.uri(pq.map_or("/", |pq| pq.as_str()))
    }

    /// Whether it is spoken to over TLS.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// `host:port`, the `Host` header for this upstream.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The path every request's own path is appended to (empty for none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// One capability, ready for the request path.
pub struct Capability {
    /// Its index in the configuration.
    pub index: usize,
    /// Its name, shared with metrics labels.
    pub name: Arc<str>,
    /// The configuration section.
    pub cfg: CapabilityConfig,
    /// Comparison rules.
    pub rules: RuleSet,
    /// Where its unsafe writes may be mirrored.
    pub sandbox: Option<Upstream>,
    /// Capabilities whose reads a write here affects.
    pub affects: Affects,
}

/// Everything the proxy needs from the configuration.
pub struct Settings {
    /// The `[proxy]` section.
    pub proxy: ProxyConfig,
    /// The legacy read API.
    pub legacy: Upstream,
    /// The new read path.
    pub new: Upstream,
    /// Capabilities in configuration order.
    pub caps: Vec<Capability>,
    /// The PEM bundle of `proxy.tls_ca_file`, read once at start.
    pub tls_ca_pem: Option<Vec<u8>>,
}

impl Settings {
    /// Whether any upstream (legacy, new, a sandbox) is `https://`.
    pub fn needs_tls(&self) -> bool {
        self.legacy.is_https()
            || self.new.is_https()
            || self
                .caps
                .iter()
                .any(|c| c.sandbox.as_ref().is_some_and(Upstream::is_https))
    }

    /// A new upstream client (its own connection pool) for these upstreams.
    pub fn upstream_client(&self) -> Result<crate::forward::Client> {
        crate::forward::client(&self.proxy, self.tls_ca_pem.as_deref(), self.needs_tls()).map_err(
            |e| crate::Error::Tls {
                reason: e.to_string(),
            },
        )
    }

    /// Compiles the settings, loading every capability's rules file.
    pub fn from_config(config: &Config) -> Result<Settings> {
        let proxy = config.proxy.clone().ok_or(Error::NoProxySection)?;
        let legacy = Upstream::parse(&proxy.legacy_url)?;
        let tls_ca_pem = match &proxy.tls_ca_file {
            Some(path) => {
                let full = config.resolve(path);
                Some(std::fs::read(&full).map_err(|e| Error::Tls {
                    reason: format!("reading proxy.tls_ca_file `{}`: {e}", full.display()),
                })?)
            }
            None => None,
        };
        let new = Upstream::parse(&proxy.new_url)?;
        let n = config.capabilities.len();
        let mut caps = Vec::with_capacity(n);
        for (index, cfg) in config.capabilities.iter().enumerate() {
            let rules = match &cfg.rules {
                Some(path) => RuleSet::load(&config.resolve(path)).map_err(|e| Error::Rules {
                    capability: cfg.name.clone(),
                    message: e.to_string(),
                })?,
                None => RuleSet::empty(),
            };
            let affects: Affects = (0..n)
                .map(|j| {
                    cfg.ryw_affects.is_empty()
                        || cfg
                            .ryw_affects
                            .iter()
                            .any(|a| *a == config.capabilities[j].name)
                })
                .collect();
            caps.push(Capability {
                index,
                name: Arc::from(cfg.name.as_str()),
                sandbox: cfg
                    .sandbox_url
                    .as_deref()
                    .map(Upstream::parse)
                    .transpose()?,
                cfg: cfg.clone(),
                rules,
                affects,
            });
        }
        Ok(Settings {
            proxy,
            legacy,
            new,
            caps,
            tls_ca_pem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uris_keep_the_prefix_path_and_query() {
        let u = Upstream::parse("http://127.0.0.1:9000/api/").unwrap();
        assert_eq!(
            u.uri("/orders/1?x=1&y=%20").to_string(),
            "http://127.0.0.1:9000/api/orders/1?x=1&y=%20"
        );
        assert_eq!(
            Upstream::parse("https://x/api")
                .unwrap()
                .uri("/a")
                .to_string(),
            "https://x/api/a"
        );
        assert!(Upstream::parse("ftp://x").is_err());
        assert!(Upstream::parse("nohost").is_err());
    }
}
