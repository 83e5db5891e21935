//! Delivery history of a webhook and of the caller's scope, resend, stats and
//! activity; thin adapters over `hookfleet_service::deliveries`.
use crate::auth::Caller;
use crate::error::{detached, ApiResult, ErrorBody, QueryParams};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookfleet_service::deliveries as service;
use hookfleet_service::Page;
use std::sync::Arc;

pub use hookfleet_service::deliveries::{
    Activity, ActivityQuery, Attempt, Bucket, Delivery, ListQuery, Resent, ScopedDelivery, Stats,
    StatsQuery, WebhookFilter,
};

/// List a webhook's deliveries.
///
/// Newest first, each with its attempts, in cursor pages (the cursor is the
/// last delivery id seen).
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/deliveries",
    operation_id = "listDeliveries",
    tag = "deliveries",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`)."), ListQuery),
    responses(
        (status = 200, description = "A page of deliveries.", body = crate::docs::DeliveryPage),
        (status = 404, description = "No such webhook in the caller's scope (another tenant's is not found either).", body = ErrorBody),
    ),
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Page<Delivery>>> {
    Ok(Json(
        service::list(&st.pool, &caller.service(), &id, q).await?,
    ))
}

/// List the deliveries of every webhook of the caller's scope.
///
/// The deliveries of every webhook of the caller's scope (or of `webhook_id`),
/// newest first, each with its attempts and `webhook_id`, with the filters of
/// one webhook's list.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries",
    operation_id = "listAllDeliveries",
    tag = "deliveries",
    params(WebhookFilter, ListQuery),
    responses(
        (status = 200, description = "A page of deliveries.", body = crate::docs::ScopedDeliveryPage),
        (status = 404, description = "`webhook_id` names no webhook of the caller's scope.", body = ErrorBody),
    ),
)]
pub async fn list_all(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(only): QueryParams<WebhookFilter>,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Page<ScopedDelivery>>> {
    let page =
        service::list_all(&st.pool, &caller.service(), only.webhook_id.as_deref(), q).await?;
    Ok(Json(page))
}

/// Get a delivery.
///
/// One delivery with its attempts and the envelope it sent.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}",
    operation_id = "getDelivery",
    tag = "deliveries",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`)."), ("delivery_id" = String, Path, description = "The delivery's id (`dlv_…`).")),
    responses(
        (status = 200, description = "The delivery.", body = Delivery),
        (status = 404, description = "No such webhook or delivery in the caller's scope.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(
        service::get(&st.pool, &caller.service(), &id, &delivery_id).await?,
    ))
}

/// Resend a delivery.
///
/// Sends a delivery again with a fresh attempt budget and the same
/// `webhook-id`; attempt numbers continue from where they were.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/resend",
    operation_id = "resendDelivery",
    tag = "deliveries",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`)."), ("delivery_id" = String, Path, description = "The delivery's id (`dlv_…`).")),
    responses(
        (status = 202, description = "Queued again.", body = Resent),
        (status = 404, description = "No such webhook or delivery in the caller's scope.", body = ErrorBody),
    ),
)]
pub async fn resend(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Resent>)> {
    // Runs to completion even if the client goes away mid-request.
    let resent =
        detached(
            async move { service::resend(st.ctx(), &caller.service(), &id, &delivery_id).await },
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(resent)))
}

/// Get a webhook's delivery stats.
///
/// Deliveries by status, success rate, attempts and latency percentiles over
/// the last hour, day (default) or week.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/stats",
    operation_id = "webhookStats",
    tag = "deliveries",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`)."), StatsQuery),
    responses(
        (status = 200, description = "The stats.", body = Stats),
        (status = 404, description = "No such webhook in the caller's scope (another tenant's is not found either).", body = ErrorBody),
    ),
)]
pub async fn stats(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<StatsQuery>,
) -> ApiResult<Json<Stats>> {
    Ok(Json(
        service::stats(&st.pool, &caller.service(), &id, q).await?,
    ))
}

/// Get the delivery activity of the caller's webhooks.
///
/// Delivery attempts of the caller's webhooks (or of `webhook_id`) over the
/// last hour, day or week, in buckets: how many, how many succeeded, and the
/// p95 latency.
#[utoipa::path(
    get,
    path = "/api/v1/activity",
    operation_id = "activity",
    tag = "deliveries",
    params(ActivityQuery),
    responses(
        (status = 200, description = "Every bucket of the range, oldest first.", body = Activity),
        (status = 404, description = "`webhook_id` names no webhook of the caller's scope.", body = ErrorBody),
    ),
)]
pub async fn activity(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(q): QueryParams<ActivityQuery>,
) -> ApiResult<Json<Activity>> {
    Ok(Json(
        service::activity(&st.pool, &caller.service(), q).await?,
    ))
}
