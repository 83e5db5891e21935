//! Who is calling. `Authorization: Bearer <key>` is either the admin key from
//! configuration (`api.admin_key`) or a tenant's API key (`hfk_…`), of which only a
//! SHA-256 hash is stored. The admin key acting on webhooks works on the
//! tenant-less scope; a tenant key sees only its tenant.
use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Tenant(String),
}

impl Caller {
    /// The tenant scope for webhooks and deliveries: `None` = tenant-less.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Caller::Admin => None,
            Caller::Tenant(t) => Some(t),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant(_) => Err(ApiError::forbidden("this call needs the admin key")),
        }
    }
}

/// A new tenant API key: `hfk_` + 32 random bytes, URL-safe base64.
pub fn generate_key() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("hfk_{}", URL_SAFE_NO_PAD.encode(b))
}

/// What is stored for a key.
pub fn hash_key(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller and, for a tenant key, that key's id (portal links remember the
/// key that issued them, and die with it).
pub struct KeyedCaller {
    pub caller: Caller,
    pub key_id: Option<String>,
}

impl FromRequestParts<Arc<AppState>> for KeyedCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let key = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        if constant_time_eq(key.as_bytes(), state.admin_key.as_bytes()) {
            return Ok(KeyedCaller {
                caller: Caller::Admin,
                key_id: None,
            });
        }
        if !key.starts_with("hfk_") {
            return Err(ApiError::unauthorized());
        }
        let client = state.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT id, tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                &[&hash_key(key)],
            )
            .await?;
        match row.and_then(|r| Some((r.get::<_, String>(0), r.get::<_, Option<String>>(1)?))) {
            Some((id, t)) => Ok(KeyedCaller {
                caller: Caller::Tenant(t),
                key_id: Some(id),
            }),
            None => Err(ApiError::unauthorized()),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(KeyedCaller::from_request_parts(parts, state).await?.caller)
    }
}
