//! Serving modes: the table every request reads (refreshed from the store by a poll loop), and
//! the pure decision of which side serves a request and whether the other side is compared.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use strangler_core::{Mode, ReadModelClass};
use strangler_store::Store;
use strangler_store::cutover::ALL;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The mode of one capability as last read from the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapMode {
    /// Serving mode (`legacy` when the store has no row).
    pub mode: Mode,
    /// Kill switch of this capability.
    pub killed: bool,
    /// Row version (0 without a row).
    pub version: i64,
    /// When the mode last changed, the start of a gate's evidence window.
    pub since: Option<DateTime<Utc>>,
}

impl CapMode {
    /// Whether its requests only go to legacy, with nothing compared or counted: `legacy`
    /// mode, or killed (by its own switch or, `all_killed`, the global one).
    pub fn legacy_only(&self, all_killed: bool) -> bool {
        self.mode == Mode::Legacy || self.killed || all_killed
    }
}

impl Default for CapMode {
    fn default() -> Self {
        CapMode {
            mode: Mode::Legacy,
            killed: false,
            version: 0,
            since: None,
        }
    }
}

/// Modes of every capability, in configuration order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModeSnapshot {
    /// Per capability.
    pub caps: Vec<CapMode>,
    /// The global kill switch.
    pub all_killed: bool,
    /// The store's change counter this snapshot was read at.
    pub version: i64,
}

/// The current snapshot, swapped whole so a request never sees half an update.
pub struct ModeTable {
    names: Vec<String>,
    current: RwLock<Arc<ModeSnapshot>>,
}

impl ModeTable {
    /// A table for these capabilities, all in `legacy` until the first refresh.
    pub fn new(names: Vec<String>) -> Self {
        let caps = vec![CapMode::default(); names.len()];
        ModeTable {
            names,
            current: RwLock::new(Arc::new(ModeSnapshot {
                caps,
                all_killed: false,
                version: -1,
            })),
        }
    }

    /// The snapshot requests read.
    pub fn current(&self) -> Arc<ModeSnapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One capability's mode and whether every capability is killed, without taking a
    /// reference to the snapshot (the request path's read: no reference count moves).
    pub fn serving(&self, cap: usize) -> (CapMode, bool) {
        let snap = self.current.read().unwrap_or_else(|e| e.into_inner());
        (snap.caps[cap], snap.all_killed)
    }

    /// Re-reads the modes when the store's change counter moved. Returns whether anything changed.
    pub async fn refresh(&self, store: &Store) -> strangler_store::Result<bool> {
        let version = store.cutover_version().await?;
        if version == self.current().version {
            return Ok(false);
        }
        let rows = store.cutover_all().await?;
        let mut snap = ModeSnapshot {
            caps: vec![CapMode::default(); self.names.len()],
            all_killed: false,
            version,
        };
        for row in rows {
            if row.capability == ALL {
                snap.all_killed = row.killed;
            } else if let Some(i) = self.names.iter().position(|n| *n == row.capability) {
                snap.caps[i] = CapMode {
                    mode: row.mode,
                    killed: row.killed,
                    version: row.version,
                    since: Some(row.updated_at),
                };
            }
        }
        let changed = *self.current() != snap;
        if changed {
            for (name, m) in self.names.iter().zip(&snap.caps) {
                tracing::info!(capability = %name, mode = %m.mode, killed = m.killed, all_killed = snap.all_killed, "cutover mode loaded");
            }
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snap);
        Ok(changed)
    }

    /// Polls the store every `every` until `cancel`; a failed poll keeps the last known modes.
    pub fn spawn_poll(
        self: Arc<Self>,
        store: Store,
        every: Duration,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    if let Err(e) = self.refresh(&store).await {
                        metrics::counter!("strangler_proxy_mode_poll_errors_total").increment(1);
                        tracing::warn!(error = %e, "reading cutover modes failed; keeping the last ones");
                    }
                }
            }
            .instrument(tracing::info_span!("mode_poll")),
        )
    }
}

/// Which upstream answers the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// The legacy read API.
    Legacy,
    /// The new read path.
    New,
}

/// Why a request that would have gone to the new path was served by legacy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The capability is authoritative.
    Authoritative,
    /// The client wrote within the read-your-writes window.
    ReadYourWrites,
    /// The projection lags past the freshness budget.
    Lag,
    /// The new answer differed (canary with fall-back).
    Mismatch,
    /// The new path failed.
    Error,
}

impl Fallback {
    /// All reasons, in counter order.
    pub const ALL: [Fallback; 5] = [
        Fallback::Authoritative,
        Fallback::ReadYourWrites,
        Fallback::Lag,
        Fallback::Mismatch,
        Fallback::Error,
    ];

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Authoritative => "authoritative",
            Fallback::ReadYourWrites => "read_your_writes",
            Fallback::Lag => "lag",
            Fallback::Mismatch => "mismatch",
            Fallback::Error => "error",
        }
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Who answers.
    pub serve: Serve,
    /// Ask the other side too and compare (off the client's path).
    pub compare: bool,
    /// Canary with fall-back: ask both, serve legacy unless the answers match.
    pub fallback_on_mismatch: bool,
    /// Why legacy serves a request meant for the new path.
    pub fallback: Option<Fallback>,
}

/// Facts about one request the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// The capability's mode and kill switch.
    pub mode: Mode,
    /// This capability's or the global kill switch is on.
    pub killed: bool,
    /// The capability's read-model class.
    pub class: ReadModelClass,
    /// A read (safe method, or a capability declared read-only).
    pub is_read: bool,
    /// The request's canary bucket, 0 to 99.
    pub bucket: u8,
    /// Chosen for comparison by the capability's sample rate.
    pub sampled: bool,
    /// Chosen for reverse comparison in `new` mode.
    pub new_sampled: bool,
    /// Canary falls back to legacy on mismatch or error.
    pub fallback_on_mismatch: bool,
}

/// Decides who serves a request. `ryw` and `lagging` are asked only when the new path would
/// serve, since finding the client and reading the lag cost a little.
pub fn plan(f: &Facts, ryw: impl FnOnce() -> bool, lagging: impl FnOnce() -> bool) -> Plan {
    let legacy = |compare, fallback| Plan {
        serve: Serve::Legacy,
        compare,
        fallback_on_mismatch: false,
        fallback,
    };
    if f.killed {
        return legacy(false, None);
    }
    let wants_new = match f.mode {
        Mode::Legacy => return legacy(false, None),
        _ if !f.is_read => return legacy(f.sampled, None),
        Mode::Shadow => return legacy(f.sampled, None),
        Mode::Canary(p) => f.bucket < p,
        Mode::New => true,
        Mode::Retired => {
            return Plan {
                serve: Serve::New,
                compare: false,
                fallback_on_mismatch: false,
                fallback: None,
            };
        }
    };
    if !wants_new {
        return legacy(f.sampled, None);
    }
    if f.class == ReadModelClass::Authoritative {
        return legacy(f.sampled, Some(Fallback::Authoritative));
    }
    if ryw() {
        return legacy(f.sampled, Some(Fallback::ReadYourWrites));
    }
    if lagging() {
        // Keep asking the new path so its lag is seen to recover.
        return legacy(true, Some(Fallback::Lag));
    }
    match f.mode {
        Mode::Canary(_) => Plan {
            serve: Serve::New,
            compare: f.sampled || f.fallback_on_mismatch,
            fallback_on_mismatch: f.fallback_on_mismatch,
            fallback: None,
        },
        _ => Plan {
            serve: Serve::New,
            compare: f.new_sampled,
            fallback_on_mismatch: false,
            fallback: None,
        },
    }
}

/// Stable 64-bit FNV-1a, so a key lands in the same bucket on every proxy and every release.
pub fn stable_hash(key: &[u8]) -> u64 {
    strangler_diff::fnv1a(key)
}

/// The canary bucket (0 to 99) of a key.
pub fn bucket(key: &[u8]) -> u8 {
    (stable_hash(key) % 100) as u8
}

/// Whether a request is sampled at `rate`: by its key (always the same answer for one key) or
/// at random.
pub fn sampled(rate: f64, by_key: Option<&[u8]>) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    match by_key {
        // A different salt from the canary bucket, so sampled keys are not all canary keys.
        Some(key) => {
            let mut salted = Vec::with_capacity(key.len() + 7);
            salted.extend_from_slice(b"sample:");
            salted.extend_from_slice(key);
            (stable_hash(&salted) % 1_000_000) < (rate * 1_000_000.0) as u64
        }
        None => rand::random::<f64>() < rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(mode: Mode) -> Facts {
        Facts {
            mode,
            killed: false,
            class: ReadModelClass::Operational,
            is_read: true,
            bucket: 10,
            sampled: true,
            new_sampled: false,
            fallback_on_mismatch: false,
        }
    }

    fn no() -> bool {
        false
    }

    fn yes() -> bool {
        true
    }

    #[test]
    fn each_mode_serves_from_its_side() {
        assert_eq!(plan(&facts(Mode::Legacy), no, no).serve, Serve::Legacy);
        assert!(!plan(&facts(Mode::Legacy), no, no).compare);
        let shadow = plan(&facts(Mode::Shadow), no, no);
        assert_eq!((shadow.serve, shadow.compare), (Serve::Legacy, true));
        assert_eq!(plan(&facts(Mode::Canary(11)), no, no).serve, Serve::New);
        assert_eq!(plan(&facts(Mode::Canary(10)), no, no).serve, Serve::Legacy);
        let new = plan(&facts(Mode::New), no, no);
        assert_eq!((new.serve, new.compare), (Serve::New, false));
        assert_eq!(plan(&facts(Mode::Retired), yes, yes).serve, Serve::New);
    }

    #[test]
    fn kill_switch_writes_and_authoritative_force_legacy() {
        let mut f = facts(Mode::New);
        f.killed = true;
        assert_eq!(
            plan(&f, no, no),
            Plan {
                serve: Serve::Legacy,
                compare: false,
                fallback_on_mismatch: false,
                fallback: None
            }
        );
        let mut f = facts(Mode::New);
        f.is_read = false;
        assert_eq!(plan(&f, no, no).serve, Serve::Legacy);
        let mut f = facts(Mode::New);
        f.class = ReadModelClass::Authoritative;
        assert_eq!(plan(&f, no, no).fallback, Some(Fallback::Authoritative));
    }

    #[test]
    fn recent_writers_and_lag_fall_back_to_legacy() {
        let p = plan(&facts(Mode::New), yes, no);
        assert_eq!(
            (p.serve, p.fallback),
            (Serve::Legacy, Some(Fallback::ReadYourWrites))
        );
        let p = plan(&facts(Mode::Canary(50)), no, yes);
        assert_eq!(
            (p.serve, p.fallback, p.compare),
            (Serve::Legacy, Some(Fallback::Lag), true)
        );
        // Questions are not asked when legacy serves anyway.
        let p = plan(&facts(Mode::Shadow), || panic!("asked"), || panic!("asked"));
        assert_eq!(p.serve, Serve::Legacy);
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket(b"customer-1"), bucket(b"customer-1"));
        let mut counts = [0u32; 100];
        for i in 0..10_000 {
            counts[bucket(format!("k{i}").as_bytes()) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (50..=150).contains(&c)),
            "{counts:?}"
        );
        let hits = (0..10_000)
            .filter(|i| sampled(0.25, Some(format!("k{i}").as_bytes())))
            .count();
        assert!((2_200..=2_800).contains(&hits), "{hits}");
        assert!(sampled(0.3, Some(b"x")) == sampled(0.3, Some(b"x")));
    }
}
