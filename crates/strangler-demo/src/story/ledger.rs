//! What the demo saw the proxy judge: verdicts and differing paths, from the proxy's comparison feed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use strangler_diff::Verdict;
use strangler_proxy::Proxy;
use tokio::sync::broadcast::error::RecvError;

/// Verdicts and differing paths since the last reset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Comparisons seen.
    pub compared: u64,
    /// Answers equal under the rules.
    pub matches: u64,
    /// Answers that differ.
    pub mismatches: u64,
    /// Differences explained by projection lag.
    pub stale: u64,
    /// A side failed.
    pub errors: u64,
    /// Not compared.
    pub skipped: u64,
    /// Observations the feed dropped because the demo read too slowly (counted, never silent).
    pub dropped: u64,
    /// Mismatching paths, most frequent first.
    pub paths: Vec<PathCount>,
}

/// One differing path.
#[derive(Debug, Clone, Serialize)]
pub struct PathCount {
    /// JSON path, array indices as `*`.
    pub path: String,
    /// Difference kind.
    pub kind: String,
    /// Mismatching comparisons with this path.
    pub count: u64,
    /// One example: the request, and the legacy and new values.
    pub example: (String, String, String),
}

impl Snapshot {
    /// Share of mismatches among decided comparisons.
    pub fn mismatch_rate(&self) -> f64 {
        let decided = self.matches + self.mismatches;
        if decided == 0 {
            0.0
        } else {
            self.mismatches as f64 / decided as f64
        }
    }

    /// `N compared: M match, K mismatch, S stale`.
    pub fn one_line(&self) -> String {
        format!(
            "{} compared: {} match, {} mismatch ({:.1}%), {} stale (projection behind), {} error, {} skipped",
            self.compared,
            self.matches,
            self.mismatches,
            self.mismatch_rate() * 100.0,
            self.stale,
            self.errors,
            self.skipped
        )
    }

    /// The most frequent differing paths, one per line.
    pub fn top_paths(&self, width: usize) -> String {
        let mut s = String::new();
        for p in self.paths.iter().take(5) {
            let line = format!(
                "   drift on {} ({}) in {} answers, e.g. {}: legacy {} vs new {}",
                p.path, p.kind, p.count, p.example.0, p.example.1, p.example.2
            );
            s.push_str(&line.chars().take(width + 40).collect::<String>());
            s.push('\n');
        }
        s.trim_end().to_string()
    }
}

#[derive(Default)]
struct State {
    snap: Snapshot,
    paths: BTreeMap<(String, String), PathCount>,
}

/// Follows one capability's comparisons.
#[derive(Clone)]
pub struct Ledger {
    state: Arc<Mutex<State>>,
}

impl Ledger {
    /// Subscribes to the proxy's comparison feed for `capability`.
    pub fn follow(proxy: &Proxy, capability: &str) -> Ledger {
        let state = Arc::new(Mutex::new(State::default()));
        let mut rx = proxy.observe();
        let cap = capability.to_string();
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(obs) if *obs.capability == *cap => record(&st, &obs),
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => st.lock().expect("ledger lock").snap.dropped += n,
                    Err(RecvError::Closed) => break,
                }
            }
        });
        Ledger { state }
    }

    /// Starts a new window.
    pub fn reset(&self) {
        *self.state.lock().expect("ledger lock") = State::default();
    }

    /// The window so far.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.state.lock().expect("ledger lock");
        let mut snap = st.snap.clone();
        snap.paths = st.paths.values().cloned().collect();
        snap.paths
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.path.cmp(&b.path)));
        snap
    }
}

fn short(v: &Option<serde_json::Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) => {
            let s = v.to_string();
            if s.len() > 40 {
                format!("{}…", &s[..40])
            } else {
                s
            }
        }
    }
}

fn record(state: &Mutex<State>, obs: &strangler_proxy::Observation) {
    let mut st = state.lock().expect("ledger lock");
    st.snap.compared += 1;
    match &obs.comparison.verdict {
        Verdict::Match => st.snap.matches += 1,
        Verdict::Stale { .. } => st.snap.stale += 1,
        Verdict::Error { .. } => st.snap.errors += 1,
        Verdict::Skipped { .. } => st.snap.skipped += 1,
        Verdict::Mismatch => {
            st.snap.mismatches += 1;
            for d in &obs.comparison.differences {
                let path = strangler_diff::normalize_path(&d.path);
                let kind = format!("{:?}", d.kind).to_lowercase();
                let entry = st
                    .paths
                    .entry((path.clone(), kind.clone()))
                    .or_insert_with(|| PathCount {
                        path,
                        kind,
                        count: 0,
                        example: (obs.request.clone(), short(&d.legacy), short(&d.candidate)),
                    });
                entry.count += 1;
            }
        }
    }
}
