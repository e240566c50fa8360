//! Bearer-token authentication and roles. No token or an unknown one: 401. A viewer asking for a
//! change: 403 (and the refusal is audited).

use axum::http::HeaderMap;
use strangler_core::config::{AdminConfig, AdminRole};

use super::ApiError;

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: AdminRole,
}

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    tokens: Vec<(String, Vec<u8>, AdminRole)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.tokens.iter().map(|(n, _, r)| (n, r)))
            .finish()
    }
}

/// Compares without an early exit, so timing does not tell how much of a token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Tokens from `[admin]`.
    pub fn from_config(cfg: &AdminConfig) -> Tokens {
        Tokens {
            tokens: cfg
                .tokens
                .iter()
                .map(|t| (t.name.clone(), t.token.as_bytes().to_vec(), t.role))
                .collect(),
        }
    }

    /// The principal behind the request's bearer token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized(
                "send `Authorization: Bearer <token>`",
            ))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ))?
            .trim();
        let mut found = None;
        for (name, secret, role) in &self.tokens {
            if same(secret, token.as_bytes()) {
                found = Some(Principal {
                    name: name.clone(),
                    role: *role,
                });
            }
        }
        found.ok_or(ApiError::Unauthorized("unknown token"))
    }

    /// The principal, if its role is at least `needed`.
    pub fn authorize(&self, headers: &HeaderMap, needed: AdminRole) -> Result<Principal, ApiError> {
        let p = self.authenticate(headers)?;
        if p.role < needed {
            return Err(ApiError::Forbidden {
                name: p.name,
                role: p.role,
                needed,
            });
        }
        Ok(p)
    }
}
