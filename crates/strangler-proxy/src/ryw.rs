//! Read-your-writes at the edge: after a client writes through the proxy, its reads of the
//! affected capabilities are served from legacy for a window, even in canary or new mode, so it
//! never sees a projection that has not caught up with its own write. The window closes early
//! for a capability once the new path's watermark passes the write (see
//! [`crate::freshness::Freshness::applied_since`]).
//!
//! The map is bounded (oldest client forgotten first) and entries expire; a std `Mutex` guards it
//! and is never held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::HeaderMap;
use strangler_core::config::ProxyConfig;

/// Which capabilities one write affects, indexed like the configuration's capabilities.
pub type Affects = Arc<[bool]>;

struct Entry {
    until: Instant,
    affects: Affects,
    /// Wall-clock time of the client's latest write, to compare with watermarks.
    wrote_at: DateTime<Utc>,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<String, Entry>,
    order: VecDeque<(String, Instant)>,
}

/// Clients that wrote recently.
pub struct RywMap {
    inner: Mutex<Inner>,
    window: Duration,
    max_clients: usize,
}

impl RywMap {
    /// A map remembering up to `max_clients` for `window` each.
    pub fn new(window: Duration, max_clients: usize) -> Self {
        RywMap {
            inner: Mutex::new(Inner::default()),
            window,
            max_clients: max_clients.max(1),
        }
    }

    /// Records that `client` wrote at `now` (`at` on the wall clock), affecting `affects`.
    pub fn note_write(&self, client: &str, affects: &Affects, now: Instant, at: DateTime<Utc>) {
        if self.window.is_zero() {
            return;
        }
        let until = now + self.window;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let merged = match inner.clients.get(client) {
            Some(e) if e.until > now && !Arc::ptr_eq(&e.affects, affects) => e
                .affects
                .iter()
                .zip(affects.iter())
                .map(|(a, b)| *a || *b)
                .collect(),
            _ => affects.clone(),
        };
        inner.clients.insert(
            client.to_owned(),
            Entry {
                until,
                affects: merged,
                wrote_at: at,
            },
        );
        inner.order.push_back((client.to_owned(), until));
        // Expired entries leave first; then the oldest, while over either bound.
        while let Some((front, t)) = inner.order.front().cloned() {
            let over =
                inner.clients.len() > self.max_clients || inner.order.len() > self.max_clients * 2;
            if t > now && !over {
                break;
            }
            inner.order.pop_front();
            if inner.clients.get(&front).is_some_and(|e| e.until == t) {
                inner.clients.remove(&front);
            }
        }
    }

    /// Whether `client` wrote something affecting capability `cap` within the window.
    pub fn recently_wrote(&self, client: &str, cap: usize, now: Instant) -> bool {
        self.pending_write(client, cap, now).is_some()
    }

    /// When `client` last wrote something affecting capability `cap`, if within the window.
    pub fn pending_write(&self, client: &str, cap: usize, now: Instant) -> Option<DateTime<Utc>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .clients
            .get(client)
            .filter(|e| e.until > now && e.affects.get(cap).copied().unwrap_or(false))
            .map(|e| e.wrote_at)
    }

    /// Clients remembered now (expired ones may linger until the next write).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clients
            .len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Who the client is: the configured header, else cookie, else the bearer token's `sub`.
pub fn client_id(headers: &HeaderMap, cfg: &ProxyConfig) -> Option<String> {
    if let Some(name) = &cfg.client_id_header
        && let Some(v) = headers.get(name.as_str()).and_then(|v| v.to_str().ok())
        && !v.is_empty()
    {
        return Some(format!("h:{v}"));
    }
    if let Some(name) = &cfg.client_id_cookie {
        for cookie in headers.get_all(http::header::COOKIE) {
            let Ok(cookie) = cookie.to_str() else {
                continue;
            };
            for pair in cookie.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=')
                    && k == name
                    && !v.is_empty()
                {
                    return Some(format!("c:{v}"));
                }
            }
        }
    }
    if cfg.client_id_from_token
        && let Some(auth) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        && let Some(token) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
        && let Some(sub) = jwt_subject(token.trim())
    {
        return Some(format!("t:{sub}"));
    }
    None
}

/// The `sub` claim of a JWT, read without verifying it: the proxy only routes on it.
fn jwt_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url(payload)?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match claims.get("sub")? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn base64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn affects(v: &[bool]) -> Affects {
        v.to_vec().into()
    }

    #[test]
    fn a_write_shields_affected_reads_for_the_window_only() {
        let map = RywMap::new(Duration::from_secs(5), 10);
        let t0 = Instant::now();
        map.note_write("alice", &affects(&[true, false]), t0, Utc::now());
        assert!(map.recently_wrote("alice", 0, t0 + Duration::from_secs(4)));
        assert!(!map.recently_wrote("alice", 1, t0));
        assert!(!map.recently_wrote("bob", 0, t0));
        assert!(!map.recently_wrote("alice", 0, t0 + Duration::from_secs(6)));
        let at = Utc::now();
        map.note_write("carol", &affects(&[true, true]), t0, at);
        assert_eq!(map.pending_write("carol", 1, t0), Some(at));
        assert_eq!(
            map.pending_write("carol", 1, t0 + Duration::from_secs(6)),
            None
        );
    }

    #[test]
    fn the_map_stays_bounded_and_forgets_the_oldest() {
        let map = RywMap::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let all = affects(&[true]);
        for i in 0..100 {
            map.note_write(
                &format!("c{i}"),
                &all,
                t0 + Duration::from_millis(i),
                Utc::now(),
            );
            assert!(map.len() <= 3);
        }
        assert!(map.recently_wrote("c99", 0, t0 + Duration::from_millis(100)));
        assert!(!map.recently_wrote("c0", 0, t0 + Duration::from_millis(100)));
        // One client writing repeatedly does not grow the queue without bound.
        for i in 0..1_000 {
            map.note_write(
                "busy",
                &all,
                t0 + Duration::from_millis(200 + i),
                Utc::now(),
            );
        }
        assert!(map.inner.lock().unwrap().order.len() <= 6);
        assert!(map.recently_wrote("busy", 0, t0 + Duration::from_millis(1_300)));
    }

    #[test]
    fn clients_are_identified_by_header_cookie_or_token() {
        let mut cfg: ProxyConfig = serde_json::from_value(serde_json::json!({
            "legacy_url": "http://l", "new_url": "http://n"
        }))
        .unwrap();
        cfg.client_id_header = Some("x-user".into());
        cfg.client_id_cookie = Some("sid".into());
        cfg.client_id_from_token = true;
        let mut h = HeaderMap::new();
        assert_eq!(client_id(&h, &cfg), None);
        // {"sub":"u-42"} base64url-encoded.
        h.insert(
            "authorization",
            "Bearer x.eyJzdWIiOiJ1LTQyIn0.sig".parse().unwrap(),
        );
        assert_eq!(client_id(&h, &cfg).as_deref(), Some("t:u-42"));
        h.insert("cookie", "a=1; sid=abc".parse().unwrap());
        assert_eq!(client_id(&h, &cfg).as_deref(), Some("c:abc"));
        h.insert("x-user", "7".parse().unwrap());
        assert_eq!(client_id(&h, &cfg).as_deref(), Some("h:7"));
    }
}
