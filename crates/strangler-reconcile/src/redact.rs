//! Sensitive columns in exemplars: the value is replaced by a short keyed hash, so equal values
//! still look equal across rows and runs (with the same key) without being readable.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Replaces values of configured columns by `hmac:` and 16 hex digits of HMAC-SHA256.
#[derive(Clone)]
pub struct Redactor {
    columns: Vec<String>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor for `columns` with `key`; without a key, a random one for this run (hashes
    /// then only match within one report).
    pub fn new(columns: Vec<String>, key: Option<Vec<u8>>) -> Redactor {
        let key = key.unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
        Redactor { columns, key }
    }

    /// Whether `column` is sensitive.
    pub fn is_sensitive(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c == column)
    }

    /// The value to show for `column`.
    pub fn show(&self, column: &str, value: Option<&str>) -> Option<String> {
        let v = value?;
        if !self.is_sensitive(column) {
            return Some(v.to_string());
        }
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(v.as_bytes());
        Some(format!(
            "hmac:{}",
            hex::encode(&mac.finalize().into_bytes()[..8])
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::Redactor;

    #[test]
    fn sensitive_values_become_stable_keyed_hashes() {
        let r = Redactor::new(vec!["email".into()], Some(b"k".to_vec()));
        let a = r.show("email", Some("a@example.com")).unwrap();
        assert!(a.starts_with("hmac:") && a.len() == 21, "{a}");
        assert!(!a.contains("example"));
        assert_eq!(r.show("email", Some("a@example.com")).unwrap(), a);
        assert_ne!(r.show("email", Some("b@example.com")).unwrap(), a);
        assert_eq!(r.show("status", Some("open")).as_deref(), Some("open"));
        let other = Redactor::new(vec!["email".into()], Some(b"other".to_vec()));
        assert_ne!(other.show("email", Some("a@example.com")).unwrap(), a);
        assert_eq!(r.show("email", None), None);
    }
}
