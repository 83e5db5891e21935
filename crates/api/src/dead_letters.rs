//! `/api/v1/dead-letters…` and `/api/v1/webhooks/{id}/recover`: thin adapters
//! over `hookfleet_service::dead_letters`. A tenant key sees and acts on its
//! own tenant's dead letters only.
use crate::auth::Caller;
use crate::error::{detached, ApiResult, JsonBody, QueryParams};
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

/// `GET /api/v1/dead-letters`: the dead letters that match, oldest first,
/// in cursor pages.
pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Page>> {
    Ok(Json(service::list(st.ctx(), &caller.service(), q).await?))
}

/// `GET /api/v1/dead-letters/{delivery_id}`: one dead letter with its payload.
pub async fn show(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(delivery_id): Path<String>,
) -> ApiResult<Json<DeadLetter>> {
    Ok(Json(
        service::show(st.ctx(), &caller.service(), &delivery_id).await?,
    ))
}

/// `POST /api/v1/dead-letters/replay`: starts a replay and answers 202 with
/// its record (`GET /api/v1/dead-letters/replays/{id}` follows it). A dry run
/// answers 200 with the count instead.
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

/// `GET /api/v1/dead-letters/replays`: the caller's 100 newest replays.
pub async fn replays(
    State(st): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<serde_json::Value>> {
    let data = service::replays(st.ctx(), &caller.service()).await?;
    Ok(Json(
        serde_json::json!({ "data": data, "next_cursor": null }),
    ))
}

/// `GET /api/v1/dead-letters/replays/{id}`: a replay's progress.
pub async fn replay_status(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Replay>> {
    Ok(Json(
        service::replay_status(st.ctx(), &caller.service(), &id).await?,
    ))
}

/// `POST /api/v1/dead-letters/replays/{id}/cancel`: stops a running replay
/// after the send in progress (what it sent stays sent; the rest stays kept).
pub async fn cancel_replay(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Replay>)> {
    let r = service::cancel_replay(st.ctx(), &caller.service(), &id).await?;
    Ok((StatusCode::ACCEPTED, Json(r)))
}

/// `POST /api/v1/dead-letters/purge`
pub async fn purge(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<ActionBody>,
) -> ApiResult<Json<Counted>> {
    Ok(Json(
        service::purge(st.ctx(), &caller.service(), body).await?,
    ))
}

/// `POST /api/v1/webhooks/{id}/recover`: re-sends every failed delivery of the
/// endpoint since a time, with a fresh attempt budget and the same `webhook-id`.
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
