//! `/api/v1/webhooks…`: webhook CRUD, secrets and rotation, test sends; thin
//! adapters over `hookfleet_service::endpoints` and `::deliveries`.
use crate::auth::Caller;
use crate::error::{detached, ApiResult, JsonBody, QueryParams};
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

pub async fn create(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(b): JsonBody<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    let w = endpoints::create(st.ctx(), &caller.service(), b).await?;
    Ok((StatusCode::CREATED, Json(w)))
}

pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Page<Webhook>>> {
    Ok(Json(endpoints::list(&st.pool, &caller.service(), q).await?))
}

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

pub async fn delete(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    // In a task of its own: a client that goes away must not leave the queue half moved.
    detached(async move { endpoints::delete(st.ctx(), &caller.service(), &id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// How long the current secrets keep signing (default 86400 = 24 h; 0 ends them now).
    pub grace_period_seconds: Option<i64>,
}

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

/// Sends the catalog example of a type to this endpoint only, through the worker
/// pipeline (signing, retries, attempt records), bypassing routing.
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
