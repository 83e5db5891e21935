//! Tenants and their API keys (admin key only). A key is shown once, when
//! created; only its SHA-256 hash is stored.
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult, JsonBody};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub id: String,
}

#[derive(Serialize)]
pub struct Tenant {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Creates a tenant; shared with `hookfleet tenant create`.
pub async fn create_tenant(pool: &hookfleet_store::Pool, id: &str) -> ApiResult<Tenant> {
    hookfleet_core::envelope::validate_tenant_id(id).map_err(|e| ApiError::invalid("id", e))?;
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id, created_at",
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::conflict(format!("tenant `{id}` already exists")))?;
    Ok(Tenant {
        id: row.get(0),
        created_at: row.get(1),
    })
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(b): JsonBody<NewTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    caller.require_admin()?;
    Ok((
        StatusCode::CREATED,
        Json(create_tenant(&st.pool, &b.id).await?),
    ))
}

#[derive(Serialize)]
pub struct NewKey {
    pub id: String,
    pub tenant_id: String,
    /// Shown this once.
    pub key: String,
}

/// Issues an API key for a tenant; shared with `hookfleet key create`.
pub async fn create_api_key(pool: &hookfleet_store::Pool, tenant: &str) -> ApiResult<NewKey> {
    let client = pool.get().await?;
    if client
        .query_opt("SELECT 1 FROM tenants WHERE id = $1", &[&tenant])
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("tenant"));
    }
    let key = auth::generate_key();
    let id = format!("key_{}", ulid::Ulid::new());
    client
        .execute(
            "INSERT INTO api_keys (id, tenant_id, key_hash) VALUES ($1, $2, $3)",
            &[&id, &tenant, &auth::hash_key(&key)],
        )
        .await?;
    Ok(NewKey {
        id,
        tenant_id: tenant.to_owned(),
        key,
    })
}

pub async fn create_key(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<(StatusCode, Json<NewKey>)> {
    caller.require_admin()?;
    Ok((
        StatusCode::CREATED,
        Json(create_api_key(&st.pool, &tenant).await?),
    ))
}

/// Revokes a key; shared with `hookfleet key revoke`.
pub async fn revoke_api_key(pool: &hookfleet_store::Pool, key_id: &str) -> ApiResult<()> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
            &[&key_id],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::not_found("api key"));
    }
    Ok(())
}

pub async fn revoke_key(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    revoke_api_key(&st.pool, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
