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
    /// with the API key `key_id` (`None`: the admin key).
    fn sign_link(&self, tenant: &str, key_id: Option<&str>, exp: i64) -> String;
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
    require_tenant(pool, tenant).await?;
    let now = OffsetDateTime::now_utc();
    let expires_at = now + time::Duration::seconds(ttl_seconds);
    let token = signer.sign_link(tenant, key_id, expires_at.unix_timestamp());
    Ok(PortalLink {
        tenant_id: tenant.to_owned(),
        url: format!("{base}/portal/auth?token={token}"),
        expires_at: expires_at.replace_nanosecond(0).unwrap_or(expires_at),
    })
}
