//! `/api/v1/webhooks…`: webhook CRUD, secrets and rotation, test sends; thin
//! adapters over `hookfleet_service::endpoints` and `::deliveries`.
use crate::auth::Caller;
use crate::error::{detached, ApiResult, ErrorBody, JsonBody, QueryParams};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookfleet_service::{deliveries as dv, endpoints};
use serde::Deserialize;
use std::sync::Arc;

pub use hookfleet_service::deliveries::{TestSend, TestSent};
pub use hookfleet_service::endpoints::{
    CreateWebhook, ListQuery, PreviousSecret, SecretOut, UpdateWebhook, Webhook,
};
pub use hookfleet_service::Page;

/// Create a webhook.
///
/// The webhook belongs to the caller's scope: a tenant key's tenant, or with
/// the admin key the tenant-less scope. Its queue is declared before it is
/// stored (RabbitMQ unreachable: a 503, and nothing is stored).
/// The answer carries the signing secret, shown here once (and by `GET …/secret`).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    operation_id = "createWebhook",
    tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created, with its signing secret.", body = Webhook),
        (status = 409, description = "`limit_reached`: the tenant has `api.max_endpoints_per_tenant` webhooks already.", body = ErrorBody),
    ),
)]
pub async fn create(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(b): JsonBody<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    let w = endpoints::create(st.ctx(), &caller.service(), b).await?;
    Ok((StatusCode::CREATED, Json(w)))
}

/// List webhooks.
///
/// The webhooks of the caller's scope, in cursor pages, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    operation_id = "listWebhooks",
    tag = "webhooks",
    params(ListQuery),
    responses((status = 200, description = "A page of webhooks.", body = crate::docs::WebhookPage)),
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Page<Webhook>>> {
    Ok(Json(endpoints::list(&st.pool, &caller.service(), q).await?))
}

/// Get a webhook.
///
/// One webhook of the caller's scope, without its secret.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}",
    operation_id = "getWebhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`).")),
    responses(
        (status = 200, description = "The webhook.", body = Webhook),
        (status = 404, description = "No such webhook in the caller's scope (another tenant's is not found either).", body = ErrorBody),
    ),
)]
pub async fn get(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(
        endpoints::load(&st.pool, &caller.service(), &id)
            .await?
            .into(),
    ))
}

/// Update a webhook.
///
/// Changes the fields given; absent ones stay as they are. `is_active: false`
/// pauses delivery: queued deliveries wait until it is active again.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/{id}",
    operation_id = "updateWebhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`).")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The webhook as it is now.", body = Webhook),
        (status = 404, description = "No such webhook in the caller's scope (another tenant's is not found either).", body = ErrorBody),
    ),
)]
pub async fn update(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UpdateWebhook>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(
        endpoints::update(st.ctx(), &caller.service(), &id, b).await?,
    ))
}

/// Delete a webhook.
///
/// Its queue is removed, and the messages still in it go to the dead letters
/// (`hookfleet.dead`), where they can be inspected or purged.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    operation_id = "deleteWebhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such webhook in the caller's scope (another tenant's is not found either).", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    // In a task of its own: a client that goes away must not leave the queue half moved.
    detached(async move { endpoints::delete(st.ctx(), &caller.service(), &id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get a webhook's signing secrets.
///
/// The current secret, and during a rotation the older ones that still sign
/// until their expiry.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/secret",
    operation_id = "getWebhookSecret",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`).")),
    responses(
        (status = 200, description = "The secrets.", body = SecretOut),
        (status = 404, description = "No such webhook in the caller's scope (another tenant's is not found either).", body = ErrorBody),
    ),
)]
pub async fn secret(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretOut>> {
    Ok(Json(
        endpoints::secret(
            &st.pool,
            st.settings.encryption_keys.as_ref(),
            &caller.service(),
            &id,
        )
        .await?,
    ))
}

/// The grace period of a rotation.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// How long the current secrets keep signing (default 86400 = 24 h; 0 ends them now).
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_period_seconds: Option<i64>,
}

/// Rotate a webhook's signing secret.
///
/// A new secret signs from now on; the current ones keep signing for the grace
/// period (default 24 h, `0` ends them now), so receivers can switch without
/// failing a delivery. The body is optional.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/secret/rotate",
    operation_id = "rotateWebhookSecret",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`).")),
    request_body(content = Option<Rotate>, description = "Optional: the grace period of the current secrets."),
    responses(
        (status = 200, description = "The secrets after the rotation.", body = SecretOut),
        (status = 404, description = "No such webhook in the caller's scope (another tenant's is not found either).", body = ErrorBody),
    ),
)]
pub async fn rotate(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<SecretOut>> {
    // The body is optional: an empty one means the default grace period.
    let opts: Rotate = if body.iter().all(u8::is_ascii_whitespace) {
        Rotate::default()
    } else {
        crate::error::parse_json(&body)?
    };
    let out = endpoints::rotate_secret(
        &st.pool,
        st.settings.encryption_keys.as_ref(),
        &caller.service(),
        &id,
        opts.grace_period_seconds,
    )
    .await?;
    Ok(Json(out))
}

/// Send a test event to a webhook.
///
/// Sends the catalog example of a type to this webhook only, through the worker
/// pipeline (signing, retries, attempt records), bypassing routing and the
/// webhook's filter; the answer says whether the example would pass the filter.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/test",
    operation_id = "testWebhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`).")),
    request_body = TestSend,
    responses(
        (status = 202, description = "Queued; follow it in the webhook's deliveries.", body = TestSent),
        (status = 404, description = "No such webhook in the caller's scope (another tenant's is not found either).", body = ErrorBody),
    ),
)]
pub async fn test(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<TestSend>,
) -> ApiResult<(StatusCode, Json<TestSent>)> {
    // Runs to completion even if the client goes away mid-request.
    let sent =
        detached(async move { dv::send_test(st.ctx(), &caller.service(), &id, b).await }).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}
