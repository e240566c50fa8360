//! Failure policies and the classification of failures.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a projection does with an event it cannot apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Stop the projection at the event; nothing after it is applied.
    #[default]
    Stop,
    /// Dead-letter the event and go on.
    Skip,
    /// Retry, then stop.
    RetryThenStop,
    /// Retry, then dead-letter and go on.
    RetryThenSkip,
    /// Dead-letter the event and every later event of its key until it is re-driven; other keys
    /// go on.
    ParkKey,
}

/// Why an event could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The value is not the outbox format, or a parameter's JSON pointer found nothing usable.
    BadPayload,
    /// No handler for the event type.
    UnknownEventType,
    /// The SQL failed for another reason (syntax, type, a missing table).
    SqlError,
    /// A constraint (unique, foreign key, not null, check) rejected the row.
    ConstraintViolation,
    /// An earlier event of the same key is parked.
    KeyParked,
    /// The payload breaks its event contract, or cannot be upcast to the current version.
    ContractViolation,
    /// A non-SQL sink refused the event's effect (for example a Redis key of another type).
    SinkError,
    /// A non-SQL sink could not be reached or fenced the writer; never dead-lettered: the batch
    /// is abandoned and applied again later.
    SinkUnavailable,
}

impl Reason {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadPayload => "bad_payload",
            Reason::UnknownEventType => "unknown_event_type",
            Reason::SqlError => "sql_error",
            Reason::ConstraintViolation => "constraint_violation",
            Reason::KeyParked => "key_parked",
            Reason::ContractViolation => "contract_violation",
            Reason::SinkError => "sink_error",
            Reason::SinkUnavailable => "sink_unavailable",
        }
    }

    /// Classifies a database error: constraint violations apart from everything else.
    pub fn of_sql(err: &sqlx::Error) -> Reason {
        match err {
            sqlx::Error::Database(db) if db.constraint().is_some() => Reason::ConstraintViolation,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // PostgreSQL class 23 is integrity; SQLite extended codes 275..=2835 are
                // SQLITE_CONSTRAINT_*, and 19 is SQLITE_CONSTRAINT itself.
                let sqlite_constraint = code
                    .parse::<i32>()
                    .is_ok_and(|c| c == 19 || (c & 0xff) == 19);
                if code.starts_with("23") || sqlite_constraint {
                    Reason::ConstraintViolation
                } else {
                    Reason::SqlError
                }
            }
            _ => Reason::SqlError,
        }
    }

    /// Whether a retry could help: only database errors that are not about the data.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Reason::SqlError | Reason::ConstraintViolation | Reason::SinkUnavailable
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the runtime does with one failed event after retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stop the projection.
    Stop,
    /// Dead-letter as `skipped`.
    Skip,
    /// Dead-letter as `parked` and park the key.
    Park,
}

impl FailurePolicy {
    /// How many attempts after the first.
    pub fn retries(self, max_retries: u32) -> u32 {
        match self {
            FailurePolicy::RetryThenStop | FailurePolicy::RetryThenSkip => max_retries,
            _ => 0,
        }
    }

    /// What happens once attempts are exhausted.
    pub fn outcome(self) -> Outcome {
        match self {
            FailurePolicy::Stop | FailurePolicy::RetryThenStop => Outcome::Stop,
            FailurePolicy::Skip | FailurePolicy::RetryThenSkip => Outcome::Skip,
            FailurePolicy::ParkKey => Outcome::Park,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_map_to_outcomes_and_retry_budgets() {
        assert_eq!(FailurePolicy::RetryThenSkip.retries(3), 3);
        assert_eq!(FailurePolicy::Skip.retries(3), 0);
        assert_eq!(FailurePolicy::RetryThenStop.outcome(), Outcome::Stop);
        assert_eq!(FailurePolicy::ParkKey.outcome(), Outcome::Park);
        let p: FailurePolicy = serde_json::from_str("\"retry-then-skip\"").unwrap();
        assert_eq!(p, FailurePolicy::RetryThenSkip);
    }
}
