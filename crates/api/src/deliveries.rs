//! Delivery history of a webhook and of the caller's scope, resend, stats and
//! activity; thin adapters over `hookfleet_service::deliveries`.
use crate::auth::Caller;
use crate::error::{detached, ApiResult, QueryParams};
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

/// Newest first, cursor-paginated (the cursor is the last delivery id seen).
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

/// `GET /api/v1/deliveries`: the deliveries of every webhook of the caller's
/// scope (or of `webhook_id`), newest first, with the filters of one
/// webhook's list.
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

pub async fn get(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(
        service::get(&st.pool, &caller.service(), &id, &delivery_id).await?,
    ))
}

/// Sends a delivery again with a fresh attempt budget and the same `webhook-id`;
/// attempt numbers continue from where they were.
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

/// `GET /api/v1/activity`: delivery attempts of the caller's webhooks (or of
/// `webhook_id`) over the last hour, day or week, in buckets: how many, how
/// many succeeded, and the p95 latency.
pub async fn activity(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(q): QueryParams<ActivityQuery>,
) -> ApiResult<Json<Activity>> {
    Ok(Json(
        service::activity(&st.pool, &caller.service(), q).await?,
    ))
}
