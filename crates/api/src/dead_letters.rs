//! `/api/v1/dead-letters…` and `/api/v1/webhooks/{id}/recover`: thin adapters
//! over `hookfleet_service::dead_letters`. A tenant key sees and acts on its
//! own tenant's dead letters only.
use crate::auth::Caller;
use crate::error::{detached, ApiResult, ErrorBody, JsonBody, QueryParams};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::Json;
use hookfleet_service::dead_letters::{self as service, Replayed};
use hookfleet_store::dead_letters::Replay;
use std::sync::Arc;

pub use hookfleet_service::dead_letters::{
    ActionBody, Counted, DeadLetter, ListQuery, Page, RecoverBody, Recovered,
};

/// List dead letters.
///
/// The kept dead letters that match every given filter, oldest first, in
/// cursor pages. A tenant key sees its own tenant's only.
#[utoipa::path(
    get,
    path = "/api/v1/dead-letters",
    operation_id = "listDeadLetters",
    tag = "dead-letters",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of dead letters.", body = Page),
        (status = 403, description = "A tenant key named another tenant.", body = ErrorBody),
    ),
)]
pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Page>> {
    Ok(Json(service::list(st.ctx(), &caller.service(), q).await?))
}

/// Get a dead letter.
///
/// One dead letter with its payload, by the id of its delivery.
#[utoipa::path(
    get,
    path = "/api/v1/dead-letters/{delivery_id}",
    operation_id = "getDeadLetter",
    tag = "dead-letters",
    params(("delivery_id" = String, Path, description = "The id of the dead-lettered delivery (`dlv_…`).")),
    responses(
        (status = 200, description = "The dead letter.", body = DeadLetter),
        (status = 404, description = "No dead letter kept for this delivery in the caller's scope.", body = ErrorBody),
    ),
)]
pub async fn show(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(delivery_id): Path<String>,
) -> ApiResult<Json<DeadLetter>> {
    Ok(Json(
        service::show(st.ctx(), &caller.service(), &delivery_id).await?,
    ))
}

/// Replay dead letters.
///
/// Starts replaying the matching dead letters in the background, each with a
/// fresh attempt budget and the same `webhook-id`; each is removed only once
/// its copy is confirmed. Answers 202 with the replay's record: follow it with
/// `GET /api/v1/dead-letters/replays/{id}`, stop it with `POST …/cancel`.
/// With `dry_run`, answers 200 with the count and changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/dead-letters/replay",
    operation_id = "replayDeadLetters",
    tag = "dead-letters",
    request_body = ActionBody,
    responses(
        (status = 200, description = "Dry run: how many would be replayed.", body = Counted),
        (status = 202, description = "The replay, started.", body = Replay),
        (status = 403, description = "A tenant key named another tenant.", body = ErrorBody),
        (status = 409, description = "The filter's `endpoint_id` names a webhook that no longer exists: purge its dead letters instead.", body = ErrorBody),
    ),
)]
pub async fn replay(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<ActionBody>,
) -> ApiResult<Response> {
    let done =
        detached(async move { service::replay(st.ctx(), &caller.service(), body).await }).await?;
    Ok(match done {
        Replayed::DryRun(counted) => Json(counted).into_response(),
        Replayed::Started(replay) => (StatusCode::ACCEPTED, Json(replay)).into_response(),
    })
}

/// List dead-letter replays.
///
/// The caller's 100 newest replays, newest first. A tenant key sees its own
/// replays only.
#[utoipa::path(
    get,
    path = "/api/v1/dead-letters/replays",
    operation_id = "listReplays",
    tag = "dead-letters",
    responses((status = 200, description = "Replays, newest first (one page).", body = crate::docs::ReplayPage)),
)]
pub async fn replays(
    State(st): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<hookfleet_service::Page<Replay>>> {
    let data = service::replays(st.ctx(), &caller.service()).await?;
    Ok(Json(hookfleet_service::Page {
        data,
        next_cursor: None,
    }))
}

/// Get a replay's progress.
///
/// `running`, then `done`, `cancelled`, `failed` or `interrupted` (its process
/// went away; what it did not send is still kept).
#[utoipa::path(
    get,
    path = "/api/v1/dead-letters/replays/{id}",
    operation_id = "getReplay",
    tag = "dead-letters",
    params(("id" = String, Path, description = "The replay's id.")),
    responses(
        (status = 200, description = "The replay.", body = Replay),
        (status = 404, description = "No such replay in the caller's scope.", body = ErrorBody),
    ),
)]
pub async fn replay_status(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Replay>> {
    Ok(Json(
        service::replay_status(st.ctx(), &caller.service(), &id).await?,
    ))
}

/// Cancel a replay.
///
/// Stops a running replay after the send in progress: what it sent stays sent;
/// the rest stays kept.
#[utoipa::path(
    post,
    path = "/api/v1/dead-letters/replays/{id}/cancel",
    operation_id = "cancelReplay",
    tag = "dead-letters",
    params(("id" = String, Path, description = "The replay's id.")),
    responses(
        (status = 202, description = "The replay as it is now.", body = Replay),
        (status = 404, description = "No such replay in the caller's scope.", body = ErrorBody),
    ),
)]
pub async fn cancel_replay(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Replay>)> {
    let r = service::cancel_replay(st.ctx(), &caller.service(), &id).await?;
    Ok((StatusCode::ACCEPTED, Json(r)))
}

/// Purge dead letters.
///
/// Removes the matching dead letters for good, each recorded first. Without a
/// filter, `"all": true` is required. With `dry_run`, counts and changes
/// nothing.
#[utoipa::path(
    post,
    path = "/api/v1/dead-letters/purge",
    operation_id = "purgeDeadLetters",
    tag = "dead-letters",
    request_body = ActionBody,
    responses(
        (status = 200, description = "What was (with `dry_run`, would be) removed.", body = Counted),
        (status = 403, description = "A tenant key named another tenant.", body = ErrorBody),
    ),
)]
pub async fn purge(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<ActionBody>,
) -> ApiResult<Json<Counted>> {
    Ok(Json(
        service::purge(st.ctx(), &caller.service(), body).await?,
    ))
}

/// Recover a webhook's failed deliveries.
///
/// Re-sends every failed delivery of the webhook since a time, with a fresh
/// attempt budget and the same `webhook-id`: its dead letters first, then the
/// failed deliveries no longer kept as dead letters, from the stored event.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/recover",
    operation_id = "recoverWebhook",
    tag = "dead-letters",
    params(("id" = String, Path, description = "The webhook's id (`ep_…`).")),
    request_body = RecoverBody,
    responses(
        (status = 202, description = "Queued again.", body = Recovered),
        (status = 404, description = "No such webhook in the caller's scope (another tenant's is not found either).", body = ErrorBody),
    ),
)]
pub async fn recover(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RecoverBody>,
) -> ApiResult<(StatusCode, Json<Recovered>)> {
    let r = detached(async move { service::recover(st.ctx(), &caller.service(), &id, body).await })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(r)))
}
