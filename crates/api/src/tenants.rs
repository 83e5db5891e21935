//! `/api/v1/tenants…` and `/api/v1/api-keys…`: tenants, their API keys and
//! portal links; thin adapters over `hookfleet_service::tenants`.
use crate::auth::{self, Caller};
use crate::error::{detached, ApiResult, JsonBody, QueryParams};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookfleet_service::tenants as service;
use serde::Deserialize;
use std::sync::Arc;

pub use hookfleet_service::tenants::{
    create_api_key, create_tenant, issue_portal_link, revoke_api_key, KeyInfo, NewKey, PageQuery,
    PortalLink, Tenant, TenantDeleted, TenantDetail,
};
use hookfleet_service::Page;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub id: String,
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(b): JsonBody<NewTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    caller.service().require_admin()?;
    Ok((
        StatusCode::CREATED,
        Json(create_tenant(&st.pool, &b.id).await?),
    ))
}

/// `GET /api/v1/tenants`: a page of tenants, by id (admin key).
pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<Page<Tenant>>> {
    caller.service().require_admin()?;
    Ok(Json(service::list_tenants(&st.pool, &q).await?))
}

/// `GET /api/v1/tenants/{id}`: a tenant and its counts (admin key).
pub async fn get(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantDetail>> {
    caller.service().require_admin()?;
    Ok(Json(service::get_tenant(&st.pool, &id).await?))
}

/// `DELETE /api/v1/tenants/{id}` (admin key): its keys revoked, its portal
/// sessions ended, its webhooks deleted (queued messages to the dead
/// letters), then the tenant.
pub async fn delete(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantDeleted>> {
    caller.service().require_admin()?;
    // In a task of its own: a client that goes away must not leave the
    // deletion half done.
    let done = detached(async move { service::delete_tenant(&st.ctx(), &id).await }).await?;
    Ok(Json(done))
}

/// `GET /api/v1/tenants/{id}/api-keys`: a page of the tenant's keys, never a
/// key or its hash (admin key).
pub async fn list_keys(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(tenant): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<Page<KeyInfo>>> {
    caller.service().require_admin()?;
    Ok(Json(service::list_api_keys(&st.pool, &tenant, &q).await?))
}

pub async fn create_key(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<(StatusCode, Json<NewKey>)> {
    caller.service().require_admin()?;
    Ok((
        StatusCode::CREATED,
        Json(create_api_key(&st.pool, &tenant).await?),
    ))
}

pub async fn revoke_key(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.service().require_admin()?;
    revoke_api_key(&st.ctx(), &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalLinkBody {
    /// How long the link opens the portal; default `api.portal_link_ttl`
    /// (1 h), from 60 s to 7 days.
    pub ttl_seconds: Option<i64>,
}

impl service::LinkSigner for crate::portal::token::Keys {
    fn sign_link(&self, tenant: &str, key_id: Option<&str>, exp: i64, since: i64) -> String {
        self.sign(&crate::portal::token::Claims {
            kind: "link".into(),
            tenant: tenant.to_owned(),
            exp,
            key_id: key_id.map(str::to_owned),
            nonce: crate::portal::token::nonce(),
            since: Some(since),
        })
    }
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
    service::may_link(&caller.service(), &tenant)?;
    let b: PortalLinkBody = if body.iter().all(u8::is_ascii_whitespace) {
        PortalLinkBody::default()
    } else {
        crate::error::parse_json(&body)?
    };
    let ttl = match b.ttl_seconds {
        None => st.settings.api.portal_link_ttl.as_secs() as i64,
        Some(s) => service::check_link_ttl("ttl_seconds", s)?,
    };
    let base = crate::portal::public_base(&st.settings, &headers);
    let link =
        issue_portal_link(&st.pool, &st.links, &tenant, key_id.as_deref(), ttl, &base).await?;
    Ok((StatusCode::CREATED, Json(link)))
}
