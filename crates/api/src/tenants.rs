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

/// 404 unless `tenant` exists.
async fn require_tenant(client: &deadpool_postgres::Client, tenant: &str) -> ApiResult<()> {
    match client
        .query_opt("SELECT 1 FROM tenants WHERE id = $1", &[&tenant])
        .await?
    {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("tenant")),
    }
}

/// Issues an API key for a tenant; shared with `hookfleet key create`.
pub async fn create_api_key(pool: &hookfleet_store::Pool, tenant: &str) -> ApiResult<NewKey> {
    let client = pool.get().await?;
    require_tenant(&client, tenant).await?;
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

/// Revokes a key, and in the same statement ends the portal sessions opened
/// with it or from a link it issued (its unused links die with it too: opening
/// one checks the key); shared with `hookfleet key revoke`.
pub async fn revoke_api_key(pool: &hookfleet_store::Pool, key_id: &str) -> ApiResult<()> {
    let client = pool.get().await?;
    let n: i64 = client
        .query_one(
            "WITH k AS (UPDATE api_keys SET revoked_at = now() \
                        WHERE id = $1 AND revoked_at IS NULL RETURNING id), \
                  s AS (UPDATE portal_sessions SET ended_at = now() \
                        WHERE key_id IN (SELECT id FROM k) AND ended_at IS NULL) \
             SELECT count(*) FROM k",
            &[&key_id],
        )
        .await?
        .get(0);
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalLinkBody {
    /// How long the link opens the portal; default `api.portal_link_ttl`
    /// (1 h), from 60 s to 7 days.
    pub ttl_seconds: Option<i64>,
}

#[derive(Serialize)]
pub struct PortalLink {
    pub tenant_id: String,
    /// Open it in a browser: it signs the tenant in to `/portal`.
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `POST /api/v1/tenants/{id}/portal-link`: a short-lived link that signs the
/// tenant in to the portal. The admin key asks for any tenant's; a tenant key
/// for its own tenant's only. A link a tenant key asked for dies with that
/// key: revoked, the link opens nothing, and the sessions opened from it end.
pub async fn portal_link(
    State(st): State<Arc<AppState>>,
    auth::KeyedCaller { caller, key_id }: auth::KeyedCaller,
    Path(tenant): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<PortalLink>)> {
    if let Caller::Tenant(own) = &caller {
        if own != &tenant {
            return Err(ApiError::forbidden(
                "a tenant key asks for its own tenant's portal link only",
            ));
        }
    }
    let b: PortalLinkBody = if body.iter().all(u8::is_ascii_whitespace) {
        PortalLinkBody::default()
    } else {
        crate::error::parse_json(&body)?
    };
    let ttl = match b.ttl_seconds {
        None => st.settings.api.portal_link_ttl.as_secs() as i64,
        Some(s)
            if u64::try_from(s)
                .is_ok_and(|s| hookfleet_core::bounds::PORTAL_LINK_TTL_SECS.contains(&s)) =>
        {
            s
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "ttl_seconds",
                "must be from 60 (1 minute) to 604800 (7 days)",
            ))
        }
    };
    let base = crate::portal::public_base(&st.settings, &headers);
    let link =
        issue_portal_link(&st.pool, &st.signer, &tenant, key_id.as_deref(), ttl, &base).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// A portal link for `tenant`, valid `ttl_seconds`, under `base`
/// (`scheme://host`), issued with the API key `key_id` (`None`: the admin key);
/// shared with `hookfleet tenant portal-link`.
pub async fn issue_portal_link(
    pool: &hookfleet_store::Pool,
    signer: &crate::portal::token::Signer,
    tenant: &str,
    key_id: Option<&str>,
    ttl_seconds: i64,
    base: &str,
) -> ApiResult<PortalLink> {
    let client = pool.get().await?;
    require_tenant(&client, tenant).await?;
    let now = OffsetDateTime::now_utc();
    let expires_at = now + time::Duration::seconds(ttl_seconds);
    let token = signer.sign(&crate::portal::token::Claims {
        kind: "link".into(),
        tenant: tenant.to_owned(),
        exp: expires_at.unix_timestamp(),
        key_id: key_id.map(str::to_owned),
        nonce: crate::portal::token::nonce(),
    });
    Ok(PortalLink {
        tenant_id: tenant.to_owned(),
        url: format!("{base}/portal/auth?token={token}"),
        expires_at: expires_at.replace_nanosecond(0).unwrap_or(expires_at),
    })
}
