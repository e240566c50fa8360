//! How a capability (a set of read routes) is served during the migration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Serving mode of one capability. Capabilities move legacy -> shadow -> canary -> new -> retired,
/// and back when a gate fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode", content = "percent")]
pub enum Mode {
    /// Pass-through to legacy; nothing is mirrored.
    Legacy,
    /// Serve legacy, mirror to the new read path and compare.
    Shadow,
    /// Serve the new read path for this percentage of keys, still comparing with legacy.
    Canary(u8),
    /// Serve the new read path.
    New,
    /// The legacy route is gone; only the new read path answers.
    Retired,
}

impl Mode {
    /// Whether `self -> next` is a step the cutover state machine allows without `--force`.
    ///
    /// Forward moves go one stage at a time (a canary may grow or shrink); any move back
    /// towards legacy is always allowed, because falling back must never be blocked.
    pub fn can_move_to(self, next: Mode) -> bool {
        use Mode::*;
        if next.rank() <= self.rank() {
            return true;
        }
        matches!(
            (self, next),
            (Legacy, Shadow)
                | (Shadow, Canary(_))
                | (Canary(_), Canary(_))
                | (Canary(_), New)
                | (New, Retired)
        )
    }

    /// Whether `self -> next` moves towards the new path (and so needs a promotion gate).
    pub fn is_promotion(self, next: Mode) -> bool {
        next.rank() > self.rank()
    }

    /// Whether the new path answers (some) requests in this mode.
    pub fn serves_new(self) -> bool {
        matches!(self, Mode::Canary(_) | Mode::New | Mode::Retired)
    }

    fn rank(self) -> u16 {
        match self {
            Mode::Legacy => 0,
            Mode::Shadow => 1,
            Mode::Canary(p) => 2 + u16::from(p),
            Mode::New => 200,
            Mode::Retired => 300,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Legacy => f.write_str("legacy"),
            Mode::Shadow => f.write_str("shadow"),
            Mode::Canary(p) => write!(f, "canary:{p}"),
            Mode::New => f.write_str("new"),
            Mode::Retired => f.write_str("retired"),
        }
    }
}

/// A mode string that is not one of `legacy`, `shadow`, `canary:N`, `new`, `retired`.
#[derive(Debug, thiserror::Error)]
#[error("unknown mode `{0}`: expected legacy, shadow, canary:N (N from 1 to 99), new or retired")]
pub struct ParseModeError(String);

impl FromStr for Mode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "legacy" => Ok(Mode::Legacy),
            "shadow" => Ok(Mode::Shadow),
            "new" => Ok(Mode::New),
            "retired" => Ok(Mode::Retired),
            other => {
                let pct = other
                    .strip_prefix("canary:")
                    .or_else(|| other.strip_prefix("canary="))
                    .or_else(|| other.strip_prefix("canary"))
                    .map(|p| p.trim().trim_end_matches('%'));
                match pct.and_then(|p| p.parse::<u8>().ok()) {
                    Some(p) if (1..=99).contains(&p) => Ok(Mode::Canary(p)),
                    _ => Err(ParseModeError(s.to_string())),
                }
            }
        }
    }
}

/// Read-model class, a classification common in CQRS practice; it bounds what the new path may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadModelClass {
    /// Dashboards and listings: staleness is tolerable.
    Informational,
    /// Day-to-day screens: a short freshness budget applies.
    #[default]
    Operational,
    /// Reports that drive decisions: a tight budget and a full comparison.
    DecisionSupport,
    /// The source of truth for a decision: never served from the new path.
    Authoritative,
}

/// Whether a route may be replayed against a second upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteSafety {
    /// Reads only: always safe to mirror.
    #[default]
    ReadOnly,
    /// Repeatable writes (PUT with the same body): mirrored only to a sandbox.
    Idempotent,
    /// Writes with side effects: never mirrored, unless to a configured sandbox.
    SideEffecting,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_round_trip() {
        for m in [
            Mode::Legacy,
            Mode::Shadow,
            Mode::Canary(5),
            Mode::New,
            Mode::Retired,
        ] {
            assert_eq!(m.to_string().parse::<Mode>().unwrap(), m);
        }
        assert_eq!(
            "canary 10%".replace(' ', "").parse::<Mode>().unwrap(),
            Mode::Canary(10)
        );
        assert!("canary:0".parse::<Mode>().is_err());
        assert!("canary:100".parse::<Mode>().is_err());
        assert!("blue".parse::<Mode>().is_err());
    }

    #[test]
    fn forward_moves_go_one_stage_at_a_time_and_back_is_always_allowed() {
        assert!(Mode::Legacy.can_move_to(Mode::Shadow));
        assert!(!Mode::Legacy.can_move_to(Mode::New));
        assert!(!Mode::Shadow.can_move_to(Mode::New));
        assert!(Mode::Canary(5).can_move_to(Mode::Canary(50)));
        assert!(Mode::New.can_move_to(Mode::Legacy));
        assert!(Mode::Canary(50).can_move_to(Mode::Shadow));
        assert!(Mode::Shadow.is_promotion(Mode::Canary(1)));
        assert!(Mode::Canary(5).is_promotion(Mode::Canary(6)));
        assert!(!Mode::New.is_promotion(Mode::Shadow));
        assert!(!Mode::Shadow.serves_new() && Mode::Canary(1).serves_new());
    }
}
