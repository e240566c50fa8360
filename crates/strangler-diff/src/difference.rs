//! One difference between the legacy and the candidate answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What kind of difference was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Same JSON type, different value.
    Value,
    /// Different JSON types (`"12"` versus `12`).
    Type,
    /// Present in the legacy answer, absent from the candidate.
    Missing,
    /// Absent from the legacy answer, present in the candidate.
    Extra,
    /// Ordered arrays of different lengths (values are the lengths).
    ArrayLength,
    /// Same elements, different order.
    OrderOnly,
    /// Different HTTP status codes.
    Status,
    /// A selected header differs.
    Header,
    /// Non-JSON bodies differ as text.
    Text,
}

impl DiffKind {
    /// Stable lowercase name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Value => "value",
            DiffKind::Type => "type",
            DiffKind::Missing => "missing",
            DiffKind::Extra => "extra",
            DiffKind::ArrayLength => "array_length",
            DiffKind::OrderOnly => "order_only",
            DiffKind::Status => "status",
            DiffKind::Header => "header",
            DiffKind::Text => "text",
        }
    }

    /// The kind seen from the other side (legacy and candidate swapped).
    pub fn swapped(self) -> DiffKind {
        match self {
            DiffKind::Missing => DiffKind::Extra,
            DiffKind::Extra => DiffKind::Missing,
            other => other,
        }
    }
}

/// A difference at one location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// JSON pointer into the body (`/items/0/price`, `""` for the root), `@status`, or
    /// `@header/<name>` for envelope differences.
    pub path: String,
    /// What differs.
    pub kind: DiffKind,
    /// The legacy value, when there is one.
    pub legacy: Option<Value>,
    /// The candidate value, when there is one.
    pub candidate: Option<Value>,
}

impl Difference {
    /// The same difference seen with legacy and candidate swapped.
    pub fn swapped(&self) -> Difference {
        Difference {
            path: self.path.clone(),
            kind: self.kind.swapped(),
            legacy: self.candidate.clone(),
            candidate: self.legacy.clone(),
        }
    }
}
