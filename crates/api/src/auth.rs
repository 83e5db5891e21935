//! Who is calling. `Authorization: Bearer <key>` is either the admin key from
//! configuration (`api.admin_key`) or a tenant's API key (`hfk_…`), of which only a
//! SHA-256 hash is stored. The admin key acting on webhooks works on the
//! tenant-less scope, or on a tenant's when the request names it in the
//! [`TENANT_HEADER`] (`Hookfleet-Tenant: acme`): one primary-key lookup checks
//! that the tenant exists. A tenant key sees only its tenant (the header may
//! name it, never another). Tenant keys are looked up in the process's copy of
//! the live keys ([`hookfleet_store::key_cache`]), not in PostgreSQL at each
//! request.
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
    /// The admin key with `Hookfleet-Tenant`: that tenant's scope, still the
    /// admin for admin-only calls.
    AdminFor(String),
    Tenant(String),
}

/// The request header with which the admin key acts for a tenant.
pub const TENANT_HEADER: &str = "hookfleet-tenant";

impl Caller {
    /// The caller the service layer's operations take.
    pub fn service(&self) -> hookfleet_service::Caller {
        match self {
            Caller::Admin => hookfleet_service::Caller::Admin,
            Caller::AdminFor(t) => hookfleet_service::Caller::AdminFor(t.clone()),
            Caller::Tenant(t) => hookfleet_service::Caller::Tenant(t.clone()),
        }
    }

    /// The tenant scope for webhooks and deliveries: `None` = tenant-less.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Caller::Admin => None,
            Caller::AdminFor(t) | Caller::Tenant(t) => Some(t),
        }
    }
}

/// The tenant the request names in [`TENANT_HEADER`], validated; `None`
/// without the header.
pub fn named_tenant(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(TENANT_HEADER).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    let bad = |why: &str| ApiError::invalid("Hookfleet-Tenant", why);
    if values.next().is_some() {
        return Err(bad("must be given once"));
    }
    let t = v
        .to_str()
        .map_err(|_| bad("must be 1-64 characters of letters, digits, `.`, `_` or `-`"))?;
    hookfleet_core::envelope::validate_tenant_id(t).map_err(|why| bad(&why))?;
    Ok(Some(t.to_owned()))
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
        if state.is_admin_key(key) {
            let caller = match named_tenant(&parts.headers)? {
                None => Caller::Admin,
                Some(t) => {
                    let exists = hookfleet_store::tenants::exists(&state.pool, &t)
                        .await
                        .map_err(hookfleet_service::ServiceError::from)?;
                    if !exists {
                        return Err(ApiError::not_found("tenant"));
                    }
                    Caller::AdminFor(t)
                }
            };
            return Ok(KeyedCaller {
                caller,
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
            }) => {
                if named_tenant(&parts.headers)?.is_some_and(|n| n != t) {
                    return Err(ApiError::forbidden(
                        "a tenant key acts for its own tenant only: Hookfleet-Tenant names another",
                    ));
                }
                state.key_used(&id);
                Ok(KeyedCaller {
                    caller: Caller::Tenant(t),
                    key_id: Some(id),
                })
            }
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
