//! Privacy before storage: sensitive headers, body paths and query parameters are replaced by
//! keyed HMACs (or removed) before a comparison is written anywhere.
//!
//! An HMAC keeps equal values comparable ("the same customer saw both mismatches") without the
//! value: `hmac:` and the first 16 hex digits of HMAC-SHA256 under a key that never leaves the
//! configuration or its key file. Every raw value redacted from one comparison is also remembered
//! as a *taint*, and every text that is stored is scrubbed of it at the end, so an upstream that
//! echoes a token into its body or a difference that quotes it cannot leak it either.
//!
//! Pure: no I/O apart from [`load_key`].

use std::collections::HashSet;
use std::path::Path;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use strangler_core::config::{ALWAYS_SENSITIVE_HEADERS, MismatchConfig, Redaction};
use strangler_diff::Difference;

use crate::error::{Error, Result};

/// Prefix of every HMAC written in place of a value.
pub const HMAC_PREFIX: &str = "hmac:";
/// What replaces a removed value when something must stand in its place (a header's value).
pub const REMOVED: &str = "[removed]";
/// Raw values shorter than this are not scrubbed from free text (they would match everywhere).
const MIN_TAINT_LEN: usize = 4;

/// The configured privacy rules and the HMAC key.
#[derive(Clone)]
pub struct Redactor {
    key: Vec<u8>,
    mode: Redaction,
    headers: HashSet<String>,
    paths: Vec<Vec<String>>,
    query: HashSet<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("mode", &self.mode)
            .field("headers", &self.headers)
            .field("paths", &self.paths)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

/// Raw values found in one comparison, scrubbed from every stored text at the end.
#[derive(Debug, Default)]
pub struct Taint {
    values: Vec<String>,
}

impl Taint {
    fn add(&mut self, v: &str) {
        let v = v.trim();
        if v.len() >= MIN_TAINT_LEN
            && !v.starts_with(HMAC_PREFIX)
            && !self.values.iter().any(|x| x == v)
        {
            self.values.push(v.to_owned());
        }
    }

    /// Whether nothing sensitive was seen.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn segments(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Whether `pattern` (with `*` for one segment and `**` for any number) matches `path` exactly.
fn matches(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|i| matches(rest, &path[i..])),
        Some((p, rest)) => match path.split_first() {
            Some((s, tail)) => (p == "*" || p == s) && matches(rest, tail),
            None => false,
        },
    }
}

/// Whether `pattern` matches `path` or something above it (a rule on an object covers its fields).
fn covers(pattern: &[String], path: &[String]) -> bool {
    (0..=path.len()).any(|i| matches(pattern, &path[..i]))
}

/// Whether `path` is above something `pattern` could match (so its value may hold a match).
fn may_hold(pattern: &[String], path: &[String]) -> bool {
    let mut pi = 0;
    for seg in path {
        match pattern.get(pi) {
            None => return false,
            Some(p) if p == "**" => return true,
            Some(p) if p == "*" || p == seg => pi += 1,
            Some(_) => return false,
        }
    }
    true
}

impl Redactor {
    /// Rules from the `[mismatches]` section, with the HMAC key.
    pub fn new(cfg: &MismatchConfig, key: Vec<u8>) -> Redactor {
        let headers = ALWAYS_SENSITIVE_HEADERS
            .iter()
            .map(|h| h.to_string())
            .chain(cfg.sensitive_headers.iter().map(|h| h.to_ascii_lowercase()))
            .collect();
        Redactor {
            key,
            mode: cfg.redaction,
            headers,
            paths: cfg.sensitive_paths.iter().map(|p| segments(p)).collect(),
            query: cfg.sensitive_query_params.iter().cloned().collect(),
        }
    }

    /// `hmac:` and 16 hex digits of HMAC-SHA256(key, value).
    pub fn mac(&self, value: &str) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        m.update(value.as_bytes());
        let out = m.finalize().into_bytes();
        format!("{HMAC_PREFIX}{}", hex::encode(&out[..8]))
    }

    fn replace(&self, raw: &str, taint: &mut Taint) -> Option<String> {
        taint.add(raw);
        match self.mode {
            Redaction::Hmac => Some(self.mac(raw)),
            Redaction::Remove => None,
        }
    }

    /// Whether a header is sensitive.
    pub fn is_sensitive_header(&self, name: &str) -> bool {
        self.headers.contains(&name.to_ascii_lowercase())
    }

    /// Headers with sensitive values replaced (or dropped, with `remove`).
    pub fn headers<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        taint: &mut Taint,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            if !self.headers.contains(&lower) {
                out.push((lower, value.to_owned()));
                continue;
            }
            // Parts of the value are tainted too: the token after `Bearer`, each cookie's value.
            if let Some((_, rest)) = value.split_once(' ') {
                taint.add(rest);
            }
            for part in value.split(';') {
                if let Some((_, v)) = part.split_once('=') {
                    taint.add(v);
                }
            }
            if let Some(v) = self.replace(value, taint) {
                out.push((lower, v));
            }
        }
        out
    }

    /// A path and query with sensitive query parameters' values replaced.
    pub fn path_and_query(&self, pq: &str, taint: &mut Taint) -> String {
        let Some((path, query)) = pq.split_once('?') else {
            return pq.to_owned();
        };
        if self.query.is_empty() {
            return pq.to_owned();
        }
        let parts: Vec<String> = query
            .split('&')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                if !self.query.contains(k) {
                    return Some(kv.to_owned());
                }
                self.replace(v, taint).map(|m| format!("{k}={m}"))
            })
            .collect();
        if parts.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", parts.join("&"))
        }
    }

    /// Redacts every sensitive path inside `value`, which sits at `at` in its document.
    pub fn json_at(&self, value: &mut Value, at: &[String], taint: &mut Taint) {
        if self.paths.is_empty() {
            return;
        }
        if self.paths.iter().any(|p| covers(p, at)) {
            self.replace_value(value, taint);
            return;
        }
        if !self.paths.iter().any(|p| may_hold(p, at)) {
            return;
        }
        let mut path = at.to_vec();
        match value {
            Value::Object(map) => {
                let mut removed = Vec::new();
                for (k, v) in map.iter_mut() {
                    path.push(k.clone());
                    if self.mode == Redaction::Remove && self.paths.iter().any(|p| covers(p, &path))
                    {
                        collect_taint(v, taint);
                        removed.push(k.clone());
                    } else {
                        self.json_at(v, &path, taint);
                    }
                    path.pop();
                }
                for k in removed {
                    map.remove(&k);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    self.json_at(v, &path, taint);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn replace_value(&self, value: &mut Value, taint: &mut Taint) {
        collect_taint(value, taint);
        let raw = match &*value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        *value = match self.replace(&raw, taint) {
            Some(m) => Value::String(m),
            None => Value::String(REMOVED.into()),
        };
    }

    /// A body for storage: JSON with sensitive paths redacted, or text; cut at `max` bytes.
    pub fn body(&self, body: &[u8], max: usize, taint: &mut Taint) -> String {
        let text = match serde_json::from_slice::<Value>(body) {
            Ok(mut v) => {
                self.json_at(&mut v, &[], taint);
                serde_json::to_string(&v).unwrap_or_default()
            }
            Err(_) => String::from_utf8_lossy(body).into_owned(),
        };
        cut(text, max)
    }

    /// Differences with sensitive values redacted (header differences of sensitive headers too).
    pub fn differences(&self, diffs: &[Difference], taint: &mut Taint) -> Vec<Difference> {
        diffs
            .iter()
            .map(|d| {
                let mut d = d.clone();
                let sensitive_header = d
                    .path
                    .strip_prefix("@header/")
                    .is_some_and(|h| self.is_sensitive_header(h));
                for v in [&mut d.legacy, &mut d.candidate].into_iter().flatten() {
                    if sensitive_header {
                        self.replace_value(v, taint);
                    } else if !d.path.starts_with('@') {
                        self.json_at(v, &segments(&d.path), taint);
                    }
                }
                d
            })
            .collect()
    }

    /// Replaces every tainted raw value left in `text` by its HMAC (or `[removed]`).
    pub fn scrub(&self, text: &str, taint: &Taint) -> String {
        let mut out = text.to_owned();
        for raw in &taint.values {
            if out.contains(raw.as_str()) {
                let with = match self.mode {
                    Redaction::Hmac => self.mac(raw),
                    Redaction::Remove => REMOVED.to_owned(),
                };
                out = out.replace(raw.as_str(), &with);
            }
        }
        out
    }
}

fn collect_taint(v: &Value, taint: &mut Taint) {
    match v {
        Value::String(s) => taint.add(s),
        Value::Number(n) => taint.add(&n.to_string()),
        Value::Array(a) => a.iter().for_each(|v| collect_taint(v, taint)),
        Value::Object(m) => m.values().for_each(|v| collect_taint(v, taint)),
        _ => {}
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(" …[cut]");
    text
}

/// The HMAC key: `hmac_key` when set, else the key file, created with 32 random bytes (hex,
/// mode 0600) on first use.
pub fn load_key(cfg: &MismatchConfig, base_dir: &Path) -> Result<Vec<u8>> {
    if let Some(k) = &cfg.hmac_key {
        return Ok(k.as_bytes().to_vec());
    }
    let path = if cfg.hmac_key_file.is_absolute() {
        cfg.hmac_key_file.clone()
    } else {
        base_dir.join(&cfg.hmac_key_file)
    };
    let err = |source| Error::Key {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 16 => Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "holds fewer than 16 characters; delete it to have a new key made, or set mismatches.hmac_key",
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            let key = hex::encode(rand::random::<[u8; 32]>());
            write_private(&path, &key).map_err(err)?;
            tracing::info!(file = %path.display(), "created a new HMAC key for redaction");
            Ok(key.into_bytes())
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor(mode: Redaction) -> Redactor {
        let cfg = MismatchConfig {
            redaction: mode,
            sensitive_headers: vec!["X-Api-Key".into()],
            sensitive_paths: vec!["/customer/email".into(), "/cards/*/number".into()],
            sensitive_query_params: vec!["token".into()],
            ..MismatchConfig::default()
        };
        Redactor::new(&cfg, b"0123456789abcdef0123".to_vec())
    }

    #[test]
    fn equal_values_give_equal_macs_and_different_keys_differ() {
        let r = redactor(Redaction::Hmac);
        assert_eq!(r.mac("secret"), r.mac("secret"));
        assert_ne!(r.mac("secret"), r.mac("secret2"));
        let other = Redactor::new(&MismatchConfig::default(), b"another key 123456".to_vec());
        assert_ne!(r.mac("secret"), other.mac("secret"));
        assert!(r.mac("x").starts_with(HMAC_PREFIX) && r.mac("x").len() == 21);
    }

    #[test]
    fn headers_default_and_configured_are_redacted() {
        let r = redactor(Redaction::Hmac);
        let mut t = Taint::default();
        let out = r.headers(
            [
                ("Authorization", "Bearer tok-very-secret"),
                ("cookie", "session=sess-abcdef; theme=dark"),
                ("x-api-key", "key-12345"),
                ("accept", "application/json"),
            ],
            &mut t,
        );
        let text = format!("{out:?}");
        for raw in ["tok-very-secret", "sess-abcdef", "key-12345"] {
            assert!(!text.contains(raw), "{raw} leaked: {text}");
        }
        assert!(text.contains("application/json"));
        // The echo of a token in a body is scrubbed by the taint.
        assert!(
            !r.scrub("{\"echo\":\"tok-very-secret\"}", &t)
                .contains("tok-very-secret")
        );
        let removed =
            redactor(Redaction::Remove).headers([("authorization", "Bearer x-123456")], &mut t);
        assert!(removed.is_empty());
    }

    #[test]
    fn body_paths_with_wildcards_are_redacted_and_others_kept() {
        let r = redactor(Redaction::Hmac);
        let mut t = Taint::default();
        let body = json!({"customer": {"email": "ann@example.com", "name": "Ann"},
            "cards": [{"number": "4111111111111111", "brand": "visa"}]});
        let out = r.body(body.to_string().as_bytes(), 10_000, &mut t);
        assert!(!out.contains("ann@example.com") && !out.contains("4111111111111111"));
        assert!(out.contains("Ann") && out.contains("visa"));
        assert!(out.contains(&r.mac("ann@example.com")));
        let removed = redactor(Redaction::Remove).body(body.to_string().as_bytes(), 10_000, &mut t);
        let v: Value = serde_json::from_str(&removed).unwrap();
        assert!(v["customer"].get("email").is_none());
        assert_eq!(v["cards"][0]["brand"], "visa");
    }

    #[test]
    fn differences_under_and_above_sensitive_paths_are_redacted() {
        let r = redactor(Redaction::Hmac);
        let mut t = Taint::default();
        let diffs = vec![
            Difference {
                path: "/customer/email".into(),
                kind: strangler_diff::DiffKind::Value,
                legacy: Some(json!("ann@example.com")),
                candidate: Some(json!("ANN@example.com")),
            },
            Difference {
                path: "/customer".into(),
                kind: strangler_diff::DiffKind::Missing,
                legacy: Some(json!({"email": "bob@example.com"})),
                candidate: None,
            },
            Difference {
                path: "@header/authorization".into(),
                kind: strangler_diff::DiffKind::Header,
                legacy: Some(json!("Bearer abcdefgh")),
                candidate: None,
            },
        ];
        let out = serde_json::to_string(&r.differences(&diffs, &mut t)).unwrap();
        for raw in [
            "ann@example.com",
            "ANN@example.com",
            "bob@example.com",
            "abcdefgh",
        ] {
            assert!(!out.contains(raw), "{raw} leaked: {out}");
        }
    }

    #[test]
    fn query_parameters_are_redacted() {
        let r = redactor(Redaction::Hmac);
        let mut t = Taint::default();
        let pq = r.path_and_query("/orders/1?token=qwerty123&page=2", &mut t);
        assert!(!pq.contains("qwerty123") && pq.contains("page=2") && pq.contains("token=hmac:"));
        assert_eq!(r.path_and_query("/orders/1", &mut t), "/orders/1");
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("héllo".into(), 2), "h …[cut]");
        assert_eq!(cut("abc".into(), 3), "abc");
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = MismatchConfig::default();
        let k1 = load_key(&cfg, dir.path()).unwrap();
        let k2 = load_key(&cfg, dir.path()).unwrap();
        assert_eq!(k1, k2);
        assert_eq!(k1.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(".strangler/hmac.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
