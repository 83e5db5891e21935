//! Who is calling. `Authorization: Bearer <key>` is either the admin key from
//! configuration (`api.admin_key`) or a tenant's API key (`hfk_…`), of which only a
//! SHA-256 hash is stored. The admin key acting on webhooks works on the
//! tenant-less scope; a tenant key sees only its tenant. Tenant keys are
//! looked up in the process's copy of the live keys
//! ([`hookfleet_store::key_cache`]), not in PostgreSQL at each request.
use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::Arc;

pub use hookfleet_service::tenants::{generate_key, hash_key};

/// Who is calling, as the request's extractor. The service layer has the same
/// enum ([`hookfleet_service::Caller`]); this one exists because axum's
/// extractor trait cannot be implemented for a type of another crate here
/// (the orphan rule), and the service crate has no axum. [`Caller::service`]
/// converts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Tenant(String),
}

impl Caller {
    /// The caller the service layer's operations take.
    pub fn service(&self) -> hookfleet_service::Caller {
        match self {
            Caller::Admin => hookfleet_service::Caller::Admin,
            Caller::Tenant(t) => hookfleet_service::Caller::Tenant(t.clone()),
        }
    }

    /// The tenant scope for webhooks and deliveries: `None` = tenant-less.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Caller::Admin => None,
            Caller::Tenant(t) => Some(t),
        }
    }
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
        let found = state
            .keys
            .lookup(&state.pool, key)
            .await
            .map_err(hookfleet_service::ServiceError::from)?;
        match found {
            Some(hookfleet_store::tenants::ApiKey {
                id,
                tenant_id: Some(t),
            }) => Ok(KeyedCaller {
                caller: Caller::Tenant(t),
                key_id: Some(id),
            }),
            _ => Err(ApiError::unauthorized()),
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
