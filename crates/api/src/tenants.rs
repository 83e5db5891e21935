//! `/api/v1/tenants…` and `/api/v1/api-keys…`: tenants, their API keys and
//! portal links; thin adapters over `hookfleet_service::tenants`.
use crate::auth::{self, Caller};
use crate::error::{detached, ApiResult, ErrorBody, JsonBody, QueryParams};
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

/// A new tenant.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TenantCreate)]
pub struct NewTenant {
    /// 1-64 characters of letters, digits, `.`, `_` or `-`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "acme")]
    pub id: String,
}

/// Create a tenant.
///
/// Admin key only.
#[utoipa::path(
    post,
    path = "/api/v1/tenants",
    operation_id = "createTenant",
    tag = "tenants",
    request_body = NewTenant,
    responses(
        (status = 201, description = "Created.", body = Tenant),
        (status = 403, description = "Only the admin key may do this.", body = ErrorBody),
        (status = 409, description = "The tenant exists already.", body = ErrorBody),
    ),
)]
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

/// List tenants.
///
/// A page of tenants, by id. Admin key only.
#[utoipa::path(
    get,
    path = "/api/v1/tenants",
    operation_id = "listTenants",
    tag = "tenants",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of tenants.", body = crate::docs::TenantPage),
        (status = 403, description = "Only the admin key may do this.", body = ErrorBody),
    ),
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<Page<Tenant>>> {
    caller.service().require_admin()?;
    Ok(Json(service::list_tenants(&st.pool, &q).await?))
}

/// Get a tenant.
///
/// A tenant with how many webhooks and live API keys it has. Admin key only.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}",
    operation_id = "getTenant",
    tag = "tenants",
    params(("id" = String, Path, description = "The tenant's id.")),
    responses(
        (status = 200, description = "The tenant.", body = TenantDetail),
        (status = 403, description = "Only the admin key may do this.", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantDetail>> {
    caller.service().require_admin()?;
    Ok(Json(service::get_tenant(&st.pool, &id).await?))
}

/// Delete a tenant.
///
/// Revokes its keys, ends its portal sessions, deletes its webhooks (the
/// messages queued for them go to the dead letters, as a webhook delete does),
/// then the tenant. Admin key only.
#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{id}",
    operation_id = "deleteTenant",
    tag = "tenants",
    params(("id" = String, Path, description = "The tenant's id.")),
    responses(
        (status = 200, description = "Deleted; what it took.", body = TenantDeleted),
        (status = 403, description = "Only the admin key may do this.", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody),
    ),
)]
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

/// List a tenant's API keys.
///
/// A page of the tenant's keys, revoked ones too, by id: ids and dates, never
/// a key or its hash. Admin key only.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/api-keys",
    operation_id = "listApiKeys",
    tag = "tenants",
    params(("id" = String, Path, description = "The tenant's id."), PageQuery),
    responses(
        (status = 200, description = "A page of keys.", body = crate::docs::ApiKeyInfoPage),
        (status = 403, description = "Only the admin key may do this.", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody),
    ),
)]
pub async fn list_keys(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(tenant): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<Page<KeyInfo>>> {
    caller.service().require_admin()?;
    Ok(Json(service::list_api_keys(&st.pool, &tenant, &q).await?))
}

/// Issue an API key for a tenant.
///
/// The key is in this answer only; hookfleet keeps its hash. Admin key only.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/api-keys",
    operation_id = "createApiKey",
    tag = "tenants",
    params(("id" = String, Path, description = "The tenant's id.")),
    responses(
        (status = 201, description = "Created; the key is shown this once.", body = NewKey),
        (status = 403, description = "Only the admin key may do this.", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody),
    ),
)]
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

/// Revoke an API key.
///
/// The key stops working on every API process before the answer, and the
/// portal sessions and links it opened end with it. Admin key only.
#[utoipa::path(
    delete,
    path = "/api/v1/api-keys/{key_id}",
    operation_id = "revokeApiKey",
    tag = "tenants",
    params(("key_id" = String, Path, description = "The key's id (`key_…`).")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 403, description = "Only the admin key may do this.", body = ErrorBody),
        (status = 404, description = "No such key.", body = ErrorBody),
    ),
)]
pub async fn revoke_key(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.service().require_admin()?;
    revoke_api_key(&st.ctx(), &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long a portal link opens the portal.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalLinkBody {
    /// How long the link opens the portal; default `api.portal_link_ttl`
    /// (1 h), from 60 s to 7 days.
    #[schema(minimum = 60, maximum = 604800)]
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

/// Create a portal link for a tenant.
///
/// A short-lived link that signs the tenant in to the portal (`/portal`). The
/// admin key asks for any tenant's; a tenant key for its own tenant's only. A
/// link a tenant key asked for dies with that key: revoked, the link opens
/// nothing, and the sessions opened from it end.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/portal-link",
    operation_id = "createPortalLink",
    tag = "tenants",
    params(("id" = String, Path, description = "The tenant's id.")),
    request_body(content = Option<PortalLinkBody>, description = "Optional: how long the link opens the portal."),
    responses(
        (status = 201, description = "Created.", body = PortalLink),
        (status = 403, description = "A tenant key asked for another tenant's link.", body = ErrorBody),
        (status = 404, description = "No such tenant.", body = ErrorBody),
    ),
)]
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
