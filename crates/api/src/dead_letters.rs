//! `/api/v1/dead-letters…` and `/api/v1/webhooks/{id}/recover`: the API face of
//! [`crate::dlq`]. A tenant key sees and acts on its own tenant's dead letters
//! only: its scope is part of every query, whatever the filter says.
use crate::auth::Caller;
use crate::dlq::{self, BadFilter, DeadLetter, Page};
use crate::error::{detached, ApiError, ApiResult, JsonBody};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookfleet_store::dead_letters::{self as store, Filter, Replay, Scope};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The caller's scope; a tenant naming another tenant is refused.
fn scope<'a>(caller: &'a Caller, f: &Filter) -> ApiResult<Scope<'a>> {
    match caller {
        Caller::Admin => Ok(Scope::All),
        Caller::Tenant(t) => {
            if f.tenant_id.as_deref().is_some_and(|want| want != t) {
                return Err(ApiError::forbidden(
                    "a tenant key acts on its own tenant's dead letters only",
                ));
            }
            Ok(Scope::Tenant(t))
        }
    }
}

fn actor(caller: &Caller) -> String {
    match caller {
        Caller::Admin => "api:admin".into(),
        Caller::Tenant(t) => format!("api:tenant:{t}"),
    }
}

/// Refuses a filter whose times do not parse, naming the field (422).
fn check(f: &Filter) -> ApiResult<()> {
    f.validate()
        .map_err(|BadFilter { field, message }| ApiError::invalid(field, message))
}

/// Largest page of a dead-letter list.
const MAX_PAGE: i64 = 1000;

/// `GET /api/v1/dead-letters` query: a filter, and a page.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub endpoint_id: Option<String>,
    pub tenant_id: Option<String>,
    pub event_type: Option<String>,
    pub delivery_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub error: Option<String>,
    /// Page size: 1 to 1000, 100 by default.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    fn split(self) -> ApiResult<(Filter, Option<i64>, i64)> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be from 1 to {MAX_PAGE}"),
            ));
        }
        let cursor =
            self.cursor
                .map(|c| {
                    c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                        ApiError::invalid("cursor", "not a cursor this API returned")
                    })
                })
                .transpose()?;
        let f = Filter {
            endpoint_id: self.endpoint_id,
            tenant_id: self.tenant_id,
            event_type: self.event_type,
            delivery_id: self.delivery_id,
            since: self.since,
            until: self.until,
            error: self.error,
            received_since_ms: None,
        };
        check(&f)?;
        Ok((f, cursor, limit))
    }
}

/// `GET /api/v1/dead-letters`: the dead letters that match, oldest first,
/// in cursor pages.
pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    crate::error::QueryParams(q): crate::error::QueryParams<ListQuery>,
) -> ApiResult<Json<Page>> {
    let (f, cursor, limit) = q.split()?;
    let scope = scope(&caller, &f)?;
    Ok(Json(store::list(&st.pool, scope, &f, cursor, limit).await?))
}

/// `GET /api/v1/dead-letters/{delivery_id}`: one dead letter with its payload.
pub async fn show(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(delivery_id): Path<String>,
) -> ApiResult<Json<DeadLetter>> {
    let scope = scope(&caller, &Filter::default())?;
    store::show(&st.pool, scope, &delivery_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("dead letter"))
}

/// The body of replay and purge: a filter, plus how to act.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub endpoint_id: Option<String>,
    pub tenant_id: Option<String>,
    pub event_type: Option<String>,
    pub delivery_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub error: Option<String>,
    /// At most this many dead letters are acted on.
    pub limit: Option<i64>,
    /// Replay: sends per second at most (0.1 to 100000); unpaced when absent.
    pub rate: Option<f64>,
    #[serde(default)]
    pub dry_run: bool,
    /// Purge: required when no filter is given.
    #[serde(default)]
    pub all: bool,
}

impl ActionBody {
    fn filter(&self) -> ApiResult<Filter> {
        if self.limit.is_some_and(|l| l < 1) {
            return Err(ApiError::invalid("limit", "must be at least 1"));
        }
        let f = Filter {
            endpoint_id: self.endpoint_id.clone(),
            tenant_id: self.tenant_id.clone(),
            event_type: self.event_type.clone(),
            delivery_id: self.delivery_id.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            error: self.error.clone(),
            received_since_ms: None,
        };
        check(&f)?;
        Ok(f)
    }
}

/// What a dry run or a purge did.
#[derive(Debug, Serialize, Deserialize)]
pub struct Counted {
    pub dry_run: bool,
    /// Dead letters that match (at most `limit`).
    pub matched: i64,
    /// Removed (0 in a dry run).
    pub purged: i64,
}

/// `POST /api/v1/dead-letters/replay`: starts a replay and answers 202 with
/// its record (`GET /api/v1/dead-letters/replays/{id}` follows it). A dry run
/// answers 200 with the count instead.
pub async fn replay(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<ActionBody>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let f = body.filter()?;
    dlq::check_rate(body.rate)
        .map_err(|BadFilter { field, message }| ApiError::invalid(field, message))?;
    let scope = scope(&caller, &f)?;
    if body.dry_run {
        let n = store::count(&st.pool, scope, &f).await?;
        let matched = body.limit.map_or(n, |l| n.min(l));
        return Ok(Json(Counted {
            dry_run: true,
            matched,
            purged: 0,
        })
        .into_response());
    }
    let req = dlq::ReplayRequest {
        filter: f,
        rate: body.rate,
        limit: body.limit,
        actor: actor(&caller),
    };
    let tenant = caller.scope().map(str::to_owned);
    let st2 = st.clone();
    let replay = detached(async move {
        let scope = Scope::of(tenant.as_deref());
        dlq::start_replay(&st2.settings.amqp.url, &st2.pool, scope, req).await
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(replay)).into_response())
}

/// `GET /api/v1/dead-letters/replays`: the caller's 100 newest replays.
pub async fn replays(
    State(st): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<serde_json::Value>> {
    dlq::interrupt_stale(&st.pool).await;
    let scope = scope(&caller, &Filter::default())?;
    let data = store::list_replays(&st.pool, scope).await?;
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
    dlq::interrupt_stale(&st.pool).await;
    let scope = scope(&caller, &Filter::default())?;
    store::get_replay(&st.pool, scope, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("replay"))
}

/// `POST /api/v1/dead-letters/replays/{id}/cancel`: stops a running replay
/// after the send in progress (what it sent stays sent; the rest stays kept).
pub async fn cancel_replay(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Replay>)> {
    let scope = scope(&caller, &Filter::default())?;
    store::cancel_replay(&st.pool, scope, &id)
        .await?
        .map(|r| (StatusCode::ACCEPTED, Json(r)))
        .ok_or_else(|| ApiError::not_found("replay"))
}

/// `POST /api/v1/dead-letters/purge`
pub async fn purge(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<ActionBody>,
) -> ApiResult<Json<Counted>> {
    let f = body.filter()?;
    if !body.all && f.is_empty() {
        return Err(ApiError::invalid(
            "all",
            "give a filter, or \"all\": true to purge every dead letter",
        ));
    }
    let scope = scope(&caller, &f)?;
    if body.dry_run {
        let n = store::count(&st.pool, scope, &f).await?;
        let matched = body.limit.map_or(n, |l| n.min(l));
        return Ok(Json(Counted {
            dry_run: true,
            matched,
            purged: 0,
        }));
    }
    let n = store::purge(&st.pool, scope, &f, body.limit, &actor(&caller)).await? as i64;
    hookfleet_core::metrics::DEAD_LETTERS_PURGED.inc_by(n as u64);
    Ok(Json(Counted {
        dry_run: false,
        matched: n,
        purged: n,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverBody {
    /// RFC 3339: deliveries whose event reached hookfleet at or after this time.
    pub since: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Recovered {
    pub endpoint_id: String,
    pub since: String,
    /// Dead letters of the endpoint sent back.
    pub replayed_from_dead_letters: i64,
    /// Failed deliveries with no dead letter kept (purged, say), re-sent from
    /// the stored event.
    pub resent: usize,
}

/// Largest number of stored failed deliveries one `/recover` re-sends.
const RECOVER_MAX: i64 = 10_000;

/// `POST /api/v1/webhooks/{id}/recover`: re-sends every failed delivery of the
/// endpoint since a time, with a fresh attempt budget and the same `webhook-id`.
pub async fn recover(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RecoverBody>,
) -> ApiResult<(StatusCode, Json<Recovered>)> {
    let ep = crate::webhooks::load(&st, &caller, &id).await?;
    let since = OffsetDateTime::parse(&body.since, &Rfc3339)
        .map_err(|e| ApiError::invalid("since", format!("not an RFC 3339 time ({e})")))?;
    let (st2, actor, tenant) = (
        st.clone(),
        actor(&caller),
        caller.scope().map(str::to_owned),
    );
    let (replayed, resent) = detached(async move {
        let scope = Scope::of(tenant.as_deref());
        // First the kept dead letters (those deliveries become `pending`)…
        let since_ms = (since.unix_timestamp_nanos() / 1_000_000) as i64;
        let replayed =
            dlq::replay_endpoint_since(&st2.settings.amqp.url, &st2.pool, scope, &ep.id, since_ms, actor.clone())
                .await?;
        // …then failed deliveries with no dead letter kept, from the stored event.
        let client = st2.pool.get().await?;
        let rows = client
            .query(
                "SELECT d.id, d.event_id, d.event_type, d.attempt_count, e.payload::text
                   FROM deliveries d JOIN events e ON e.scope = coalesce(d.tenant_id, '') AND e.id = d.event_id
                  WHERE d.endpoint_id = $1 AND d.status = 'failed' AND d.created_at >= $2
                    AND NOT EXISTS (SELECT 1 FROM dead_letters x WHERE x.delivery_id = d.id)
                  ORDER BY d.id LIMIT $3",
                &[&ep.id, &since, &RECOVER_MAX],
            )
            .await?;
        drop(client);
        if !rows.is_empty() {
            st2.publisher.declare_endpoint(&ep).await?;
        }
        for r in &rows {
            let (did, event_id, event_type): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let attempts: i32 = r.get(3);
            let payload: String = r.get(4);
            crate::deliveries::publish_again(&st2, &ep, &did, &event_id, &event_type, attempts, &payload)
                .await?;
            let dl = DeadLetter {
                delivery_id: did,
                event_id,
                endpoint_id: ep.id.clone(),
                tenant_id: ep.tenant_id.clone(),
                event_type,
                attempts: i64::from(attempts),
                last_error: None,
                dead_at: String::new(),
                payload: None,
            };
            store::recovered(&st2.pool, &dl, &actor).await?;
            hookfleet_core::metrics::DEAD_LETTERS_REPLAYED.inc();
        }
        anyhow::Ok((replayed, rows.len()))
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Recovered {
            endpoint_id: id,
            since: body.since,
            replayed_from_dead_letters: replayed,
            resent,
        }),
    ))
}
