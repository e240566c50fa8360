//! The fault schedule: a pure function of the seed and the profile, so a failing run replays with
//! the same faults at the same offsets.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::profile::Profile;

/// A strangler process the suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// `strangler relay`.
    Relay,
    /// `strangler project run`.
    Projector,
    /// `strangler serve`.
    ReadApi,
    /// `strangler proxy`.
    Proxy,
}

impl Component {
    /// All four, in start order.
    pub const ALL: [Component; 4] = [
        Component::ReadApi,
        Component::Projector,
        Component::Relay,
        Component::Proxy,
    ];

    /// The subcommand that runs it.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Component::Relay => &["relay"],
            Component::Projector => &["project", "run"],
            Component::ReadApi => &["serve"],
            Component::Proxy => &["proxy"],
        }
    }

    /// Short name for logs and figures.
    pub fn name(self) -> &'static str {
        match self {
            Component::Relay => "relay",
            Component::Projector => "projector",
            Component::ReadApi => "read-api",
            Component::Proxy => "proxy",
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, stay down for `down_ms`, start again.
    Kill { component: Component, down_ms: u64 },
    /// SIGKILL the broker (SQLite storage, so its data survives), start it again.
    BrokerRestart { down_ms: u64 },
    /// Immediate shutdown of PostgreSQL (crash recovery on start), start it again.
    PostgresRestart { down_ms: u64 },
    /// The new read path answers `delay_ms` late for `for_ms`.
    UpstreamSlow { delay_ms: u64, for_ms: u64 },
    /// The new read path answers 503 for `for_ms`.
    UpstreamErroring { for_ms: u64 },
    /// The new read path accepts requests and never answers, for `for_ms`.
    UpstreamHung { for_ms: u64 },
    /// Bad events: outbox rows the relay must dead-letter, rows whose handler fails, and records
    /// that are not JSON written straight to the topic.
    MalformedBurst {
        relay_bad: u32,
        handler_bad: u32,
        not_json: u32,
    },
    /// Requests with 4 MiB bodies and with 24 KiB headers.
    OversizedBurst { bodies: u32, headers: u32 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill { component, down_ms } => {
                write!(f, "SIGKILL {} (down {down_ms} ms)", component.name())
            }
            Fault::BrokerRestart { down_ms } => write!(f, "broker restart (down {down_ms} ms)"),
            Fault::PostgresRestart { down_ms } => {
                write!(f, "PostgreSQL immediate restart (down {down_ms} ms)")
            }
            Fault::UpstreamSlow { delay_ms, for_ms } => {
                write!(f, "new upstream slow +{delay_ms} ms for {for_ms} ms")
            }
            Fault::UpstreamErroring { for_ms } => {
                write!(f, "new upstream answers 503 for {for_ms} ms")
            }
            Fault::UpstreamHung { for_ms } => write!(f, "new upstream hangs for {for_ms} ms"),
            Fault::MalformedBurst {
                relay_bad,
                handler_bad,
                not_json,
            } => write!(
                f,
                "malformed events: {relay_bad} outbox rows without aggregate id, {handler_bad} failing handlers, {not_json} non-JSON records"
            ),
            Fault::OversizedBurst { bodies, headers } => write!(
                f,
                "oversized requests: {bodies} with 4 MiB bodies, {headers} with 24 KiB headers"
            ),
        }
    }
}

/// A fault at an offset from the start of the fault phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// When, from the start of the fault phase.
    pub at: Duration,
    /// What.
    pub fault: Fault,
}

/// Names of the fault kinds, for `STRANGLER_FAULT_ONLY`, in kind-number order.
pub const KIND_NAMES: [&str; 11] = [
    "kill-relay",
    "kill-projector",
    "kill-read-api",
    "kill-proxy",
    "broker",
    "slow",
    "erroring",
    "hung",
    "malformed",
    "oversized",
    "postgres",
];

/// The kinds a schedule draws from.
fn kinds(p: &Profile) -> Vec<u8> {
    (0..KIND_NAMES.len() as u8)
        .filter(|k| *k != 10 || p.postgres_restarts)
        .filter(|k| p.only.is_empty() || p.only.iter().any(|o| o == KIND_NAMES[*k as usize]))
        .filter(|k| !p.skip.iter().any(|(s, _)| s == KIND_NAMES[*k as usize]))
        .collect()
}

fn draw(kind: u8, rng: &mut StdRng) -> Fault {
    let down = |rng: &mut StdRng| rng.gen_range(200..1_500);
    match kind {
        0..=3 => Fault::Kill {
            component: [
                Component::Relay,
                Component::Projector,
                Component::ReadApi,
                Component::Proxy,
            ][kind as usize],
            down_ms: down(rng),
        },
        4 => Fault::BrokerRestart { down_ms: down(rng) },
        5 => Fault::UpstreamSlow {
            delay_ms: rng.gen_range(300..1_500),
            for_ms: rng.gen_range(2_000..6_000),
        },
        6 => Fault::UpstreamErroring {
            for_ms: rng.gen_range(2_000..6_000),
        },
        7 => Fault::UpstreamHung {
            for_ms: rng.gen_range(2_000..6_000),
        },
        8 => Fault::MalformedBurst {
            relay_bad: rng.gen_range(1..=5),
            handler_bad: rng.gen_range(1..=10),
            not_json: rng.gen_range(1..=5),
        },
        9 => Fault::OversizedBurst {
            bodies: rng.gen_range(4..=12),
            headers: rng.gen_range(4..=12),
        },
        _ => Fault::PostgresRestart {
            down_ms: rng.gen_range(500..2_000),
        },
    }
}

/// The faults of a run: every kind once in a seeded order first (so even the short profile covers
/// them all), then kinds drawn at random until the fault phase is over. Faults with a duration
/// overlap the ones that follow them.
pub fn schedule(p: &Profile) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut deck = kinds(p);
    deck.shuffle(&mut rng);
    let all = kinds(p);
    if all.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    // The last faults need time to be recovered from before the drain begins.
    let end = p.faults.saturating_sub(Duration::from_secs(5));
    let mut at = Duration::from_millis(rng.gen_range(500..1_500));
    while at < end {
        let kind = match deck.pop() {
            Some(k) => k,
            None => all[rng.gen_range(0..all.len())],
        };
        out.push(Planned {
            at,
            fault: draw(kind, &mut rng),
        });
        at += Duration::from_millis(rng.gen_range(p.fault_gap_ms.0..=p.fault_gap_ms.1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_schedule_and_another_seed_a_different_one() {
        let a = schedule(&Profile::short(7));
        assert_eq!(a, schedule(&Profile::short(7)));
        assert_ne!(a, schedule(&Profile::short(8)));
    }

    #[test]
    fn the_short_profile_covers_every_fault_kind_within_its_phase() {
        for seed in 0..50 {
            let mut p = Profile::short(seed);
            p.skip.clear();
            let s = schedule(&p);
            let kinds: std::collections::HashSet<_> =
                s.iter().map(|f| std::mem::discriminant(&f.fault)).collect();
            assert_eq!(kinds.len(), 8, "seed {seed}: every fault kind runs");
            assert!(s.iter().all(|f| f.at < p.faults));
            let kills: std::collections::BTreeSet<_> = s
                .iter()
                .filter_map(|f| match f.fault {
                    Fault::Kill { component, .. } => Some(component),
                    _ => None,
                })
                .collect();
            assert_eq!(kills.len(), 4, "seed {seed}: every component is killed");
            assert!(
                s.iter()
                    .any(|f| matches!(f.fault, Fault::PostgresRestart { .. })),
                "seed {seed}: PostgreSQL restarts"
            );
            assert!(
                s.iter()
                    .any(|f| matches!(f.fault, Fault::OversizedBurst { .. })),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn skipped_kinds_are_never_scheduled() {
        let mut p = Profile::short(9);
        p.skip = vec![("kill-projector".into(), "an open finding".into())];
        let s = schedule(&p);
        assert!(s.len() > 2);
        assert!(!s.iter().any(|f| matches!(
            f.fault,
            Fault::Kill {
                component: Component::Projector,
                ..
            }
        )));
    }

    #[test]
    fn only_narrows_the_schedule_to_the_named_kinds() {
        let mut p = Profile::short(5);
        p.only = vec!["broker".into(), "kill-proxy".into()];
        let s = schedule(&p);
        assert!(s.len() > 2);
        assert!(s.iter().all(|f| matches!(
            f.fault,
            Fault::BrokerRestart { .. }
                | Fault::Kill {
                    component: Component::Proxy,
                    ..
                }
        )));
    }

    #[test]
    fn without_postgres_restarts_none_is_scheduled() {
        let mut p = Profile::long(3);
        p.postgres_restarts = false;
        assert!(
            !schedule(&p)
                .iter()
                .any(|f| matches!(f.fault, Fault::PostgresRestart { .. }))
        );
    }
}
