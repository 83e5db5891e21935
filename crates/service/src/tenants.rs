//! Tenants, their API keys and portal links (shared by `/api/v1/tenants…`,
//! `/api/v1/api-keys…` and `hookfleet tenant|key`). A key is shown once, when
//! created; only its SHA-256 hash is stored.
use crate::error::{ServiceError, ServiceResult};
use crate::{Caller, Ctx};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hookfleet_store::tenants as store;
use hookfleet_store::Pool;
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use hookfleet_store::tenants::Tenant;

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

/// Creates a tenant.
pub async fn create_tenant(pool: &Pool, id: &str) -> ServiceResult<Tenant> {
    ServiceError::check("id", hookfleet_core::envelope::validate_tenant_id(id))?;
    store::create(pool, id)
        .await?
        .ok_or_else(|| ServiceError::Conflict(format!("tenant `{id}` already exists")))
}

/// An API key, as issued (the only time it is shown).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = NewApiKey, description = "A tenant API key, as issued: the only time `key` is shown.")]
pub struct NewKey {
    #[schema(example = "key_01JDX3MGVQ8K2Z7T4R6N1B9C5D")]
    pub id: String,
    pub tenant_id: String,
    /// Shown this once.
    pub key: String,
}

async fn require_tenant(pool: &Pool, tenant: &str) -> ServiceResult<()> {
    if store::exists(pool, tenant).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound("tenant"))
    }
}

/// Issues an API key for a tenant.
pub async fn create_api_key(pool: &Pool, tenant: &str) -> ServiceResult<NewKey> {
    require_tenant(pool, tenant).await?;
    let key = generate_key();
    let id = format!("key_{}", ulid::Ulid::new());
    store::insert_api_key(pool, &id, tenant, &hash_key(&key)).await?;
    Ok(NewKey {
        id,
        tenant_id: tenant.to_owned(),
        key,
    })
}

/// Revokes a key, and with it the portal sessions opened with it or from a
/// link it issued (its unused links die with it too: opening one checks the key).
/// Returns once every API process's key cache has dropped it
/// ([`hookfleet_store::key_cache::revoke`]).
pub async fn revoke_api_key(ctx: &Ctx<'_>, key_id: &str) -> ServiceResult<()> {
    if hookfleet_store::key_cache::revoke(&ctx.settings.database.url, key_id).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound("api key"))
    }
}

/// A portal link, as issued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "A short-lived link that signs the tenant in to the portal.")]
pub struct PortalLink {
    pub tenant_id: String,
    /// Open it in a browser: it signs the tenant in to `/portal`.
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Signs portal links (the portal's token signer).
pub trait LinkSigner {
    /// The token of a link for `tenant` until `exp` (Unix seconds), issued
    /// with the API key `key_id` (`None`: the admin key), for the tenant
    /// created at `since` (Unix microseconds: its generation).
    fn sign_link(&self, tenant: &str, key_id: Option<&str>, exp: i64, since: i64) -> String;
}

/// Shortest and longest life of a portal link, in seconds.
pub const LINK_TTL_MIN: i64 = *hookfleet_core::bounds::PORTAL_LINK_TTL_SECS.start() as i64;
pub const LINK_TTL_MAX: i64 = *hookfleet_core::bounds::PORTAL_LINK_TTL_SECS.end() as i64;

/// Whether `caller` may ask for `tenant`'s portal link: the admin for any
/// tenant, a tenant for its own only.
pub fn may_link(caller: &Caller, tenant: &str) -> ServiceResult<()> {
    match caller {
        Caller::Tenant(own) if own != tenant => Err(ServiceError::Forbidden(
            "a tenant key asks for its own tenant's portal link only".into(),
        )),
        _ => Ok(()),
    }
}

/// Checks a requested link life, naming `field`.
pub fn check_link_ttl(field: &str, ttl: i64) -> ServiceResult<i64> {
    if (LINK_TTL_MIN..=LINK_TTL_MAX).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(ServiceError::invalid(
            field,
            format!("must be from {LINK_TTL_MIN} (1 minute) to {LINK_TTL_MAX} (7 days)"),
        ))
    }
}

/// A portal link for `tenant`, valid `ttl_seconds`, under `base`
/// (`scheme://host`), issued with the API key `key_id` (`None`: the admin key).
pub async fn issue_portal_link(
    pool: &Pool,
    signer: &impl LinkSigner,
    tenant: &str,
    key_id: Option<&str>,
    ttl_seconds: i64,
    base: &str,
) -> ServiceResult<PortalLink> {
    let created = store::created_at(pool, tenant)
        .await?
        .ok_or(ServiceError::NotFound("tenant"))?;
    let since = (created.unix_timestamp_nanos() / 1000) as i64;
    let now = OffsetDateTime::now_utc();
    let expires_at = now + time::Duration::seconds(ttl_seconds);
    let token = signer.sign_link(tenant, key_id, expires_at.unix_timestamp(), since);
    Ok(PortalLink {
        tenant_id: tenant.to_owned(),
        url: format!("{base}/portal/auth?token={token}"),
        expires_at: expires_at.replace_nanosecond(0).unwrap_or(expires_at),
    })
}

pub use hookfleet_store::tenants::{KeyInfo, TenantDetail};

/// The page of a tenant list or a key list.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page (only a cursor this API returned).
    pub cursor: Option<String>,
    /// Page size, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<i64>,
}

fn page<T>(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> &str) -> crate::Page<T> {
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| id(r).to_owned())
    } else {
        None
    };
    crate::Page {
        data: rows,
        next_cursor,
    }
}

/// A page of tenants, by id.
pub async fn list_tenants(pool: &Pool, q: &PageQuery) -> ServiceResult<crate::Page<Tenant>> {
    let limit = crate::page_limit(q.limit);
    let rows = store::list_page(pool, q.cursor.as_deref(), limit + 1).await?;
    Ok(page(rows, limit, |t| &t.id))
}

/// One tenant, with its webhook and live key counts.
pub async fn get_tenant(pool: &Pool, id: &str) -> ServiceResult<TenantDetail> {
    store::detail(pool, id)
        .await?
        .ok_or(ServiceError::NotFound("tenant"))
}

/// A page of a tenant's API keys (revoked ones too): ids and dates, never a
/// key or its hash.
pub async fn list_api_keys(
    pool: &Pool,
    tenant: &str,
    q: &PageQuery,
) -> ServiceResult<crate::Page<KeyInfo>> {
    require_tenant(pool, tenant).await?;
    let limit = crate::page_limit(q.limit);
    let rows = store::list_api_keys(pool, tenant, q.cursor.as_deref(), limit + 1).await?;
    Ok(page(rows, limit, |k| &k.id))
}

/// What deleting a tenant did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "What deleting a tenant did.")]
pub struct TenantDeleted {
    pub id: String,
    /// Its webhooks, deleted as `DELETE /api/v1/webhooks/{id}` does.
    pub webhooks_deleted: u64,
    /// Messages that were waiting in their queues, now dead letters.
    pub dead_lettered: u64,
    pub keys_revoked: u64,
    pub sessions_ended: u64,
}

/// Rounds of "delete the webhooks, then the tenant if none is left" before
/// giving up (a webhook created meanwhile, e.g. by the admin key acting for
/// the tenant, needs another round).
const DELETE_ROUNDS: usize = 5;

/// Deletes a tenant: revokes its keys first (every API process's key cache
/// drops them before this goes on) and ends its portal sessions, so that the
/// tenant itself can create nothing more; then deletes each of its webhooks as
/// a webhook delete does (their queues' messages go to the dead letters); then
/// the tenant row, only once it has no webhook left (its keys, sessions and
/// used portal links go by cascade). Touches only this tenant's rows.
pub async fn delete_tenant(ctx: &Ctx<'_>, id: &str) -> ServiceResult<TenantDeleted> {
    require_tenant(ctx.pool, id).await?;
    let mut done = TenantDeleted {
        id: id.to_owned(),
        webhooks_deleted: 0,
        dead_lettered: 0,
        keys_revoked: 0,
        sessions_ended: 0,
    };
    for key in store::live_key_ids(ctx.pool, id).await? {
        if hookfleet_store::key_cache::revoke(&ctx.settings.database.url, &key).await? {
            done.keys_revoked += 1;
        }
    }
    done.sessions_ended = store::end_sessions(ctx.pool, id).await?;
    for _ in 0..DELETE_ROUNDS {
        let webhooks = hookfleet_store::endpoints::list(ctx.pool, Some(Some(id))).await?;
        for ep in webhooks {
            match crate::endpoints::delete_endpoint(ctx.settings, ctx.pool, &ep.id).await {
                Ok(moved) => {
                    done.webhooks_deleted += 1;
                    done.dead_lettered += moved;
                }
                // Deleted meanwhile by someone else.
                Err(ServiceError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        match store::delete_if_empty(ctx.pool, id).await? {
            store::Deleted::Deleted | store::Deleted::Missing => return Ok(done),
            store::Deleted::HasWebhooks => continue,
        }
    }
    Err(ServiceError::Conflict(format!(
        "webhooks kept being created for tenant `{id}` while it was deleted; try again"
    )))
}
