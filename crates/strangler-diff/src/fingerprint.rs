//! Stable fingerprints that group mismatches across runs and machines.
//!
//! The hash is 64-bit FNV-1a over fixed fields, never std's randomly seeded hasher, so the same
//! mismatch prints the same short hex id in every process.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::difference::{DiffKind, Difference};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// A fingerprint id, printed (and serialised) as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FingerprintId(pub u64);

impl fmt::Display for FingerprintId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for FingerprintId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What groups a mismatch with others of its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Fingerprint {
    /// Short stable id derived from the other fields.
    pub id: FingerprintId,
    /// Capability the comparison belonged to (empty when unknown).
    pub capability: String,
    /// Path with array indices replaced by `*`.
    pub path: String,
    /// Difference kind.
    pub kind: DiffKind,
    /// `legacy->candidate` value classes, e.g. `number->string` or `null->absent`.
    pub value_class: String,
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.id,
            self.kind.as_str(),
            self.path,
            self.value_class
        )
    }
}

/// Replaces every all-digit segment of a JSON pointer with `*`.
pub fn normalize_path(path: &str) -> String {
    if !path.bytes().any(|b| b.is_ascii_digit()) {
        return path.to_owned();
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('*');
        } else {
            out.push_str(seg);
        }
    }
    out
}

fn class(v: Option<&Value>) -> &'static str {
    match v {
        None => "absent",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

impl Fingerprint {
    /// Fingerprints one difference of a capability.
    pub fn of(capability: &str, diff: &Difference) -> Fingerprint {
        let path = normalize_path(&diff.path);
        let value_class = match diff.kind {
            DiffKind::OrderOnly => "array->array".to_owned(),
            _ => format!(
                "{}->{}",
                class(diff.legacy.as_ref()),
                class(diff.candidate.as_ref())
            ),
        };
        let mut key = Vec::with_capacity(capability.len() + path.len() + value_class.len() + 16);
        for part in [
            capability,
            path.as_str(),
            diff.kind.as_str(),
            value_class.as_str(),
        ] {
            key.extend_from_slice(part.as_bytes());
            key.push(0);
        }
        Fingerprint {
            id: FingerprintId(fnv1a(&key)),
            capability: capability.to_owned(),
            path,
            kind: diff.kind,
            value_class,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn indices_are_normalised_so_items_group_together() {
        let a = Difference {
            path: "/items/0/price".into(),
            kind: DiffKind::Value,
            legacy: Some(json!(1)),
            candidate: Some(json!(2)),
        };
        let b = Difference {
            path: "/items/7/price".into(),
            kind: DiffKind::Value,
            legacy: Some(json!(5)),
            candidate: Some(json!(9)),
        };
        let fa = Fingerprint::of("orders", &a);
        assert_eq!(fa.id, Fingerprint::of("orders", &b).id);
        assert_eq!(fa.path, "/items/*/price");
        assert_eq!(fa.id.to_string().len(), 16);
        assert_ne!(fa.id, Fingerprint::of("invoices", &a).id);
        let typed = Difference {
            candidate: Some(json!("2")),
            kind: DiffKind::Type,
            ..a.clone()
        };
        assert_ne!(fa.id, Fingerprint::of("orders", &typed).id);
        assert_eq!(
            Fingerprint::of("orders", &typed).value_class,
            "number->string"
        );
    }
}
