//! `/api/v1/dead-letters…` and `/api/v1/webhooks/{id}/recover`: the API face of
//! [`crate::dlq`]. A tenant key sees and acts on its own tenant's dead letters.
use crate::auth::Caller;
use crate::dlq::{self, Action, BadFilter, DeadLetter, Filter, Report};
use crate::error::{detached, ApiError, ApiResult, JsonBody};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Narrows a filter to the caller's tenant; a tenant asking for another's is refused.
fn scoped(caller: &Caller, mut f: Filter) -> ApiResult<Filter> {
    if let Some(t) = caller.scope() {
        if f.tenant_id.as_deref().is_some_and(|want| want != t) {
            return Err(ApiError::forbidden(
                "a tenant key acts on its own tenant's dead letters only",
            ));
        }
        f.tenant_id = Some(t.to_owned());
    }
    Ok(f)
}

fn actor(caller: &Caller) -> String {
    match caller {
        Caller::Admin => "api:admin".into(),
        Caller::Tenant(t) => format!("api:tenant:{t}"),
    }
}

async fn run(
    st: &Arc<AppState>,
    caller: &Caller,
    filter: Filter,
    action: Action,
    dry_run: bool,
    payload: bool,
) -> ApiResult<Report> {
    let filter = scoped(caller, filter)?;
    let (st, actor) = (st.clone(), actor(caller));
    detached(async move {
        dlq::Run {
            amqp_url: &st.settings.amqp.url,
            pool: &st.pool,
            filter,
            action,
            dry_run,
            actor,
            include_payload: payload,
            max_scan: dlq::MAX_SCAN,
        }
        .execute()
        .await
    })
    .await
}

/// `GET /api/v1/dead-letters`: the dead letters that match, oldest first.
pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    crate::error::QueryParams(f): crate::error::QueryParams<Filter>,
) -> ApiResult<Json<Report>> {
    check(&f)?;
    Ok(Json(
        run(&st, &caller, f, Action::List, false, false).await?,
    ))
}

/// `GET /api/v1/dead-letters/{delivery_id}`: one dead letter with its payload.
pub async fn show(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(delivery_id): Path<String>,
) -> ApiResult<Json<DeadLetter>> {
    let f = Filter {
        delivery_id: Some(delivery_id),
        limit: Some(1),
        ..Default::default()
    };
    let report = run(&st, &caller, f, Action::List, false, true).await?;
    report
        .dead_letters
        .into_iter()
        .next()
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
    pub limit: Option<usize>,
    /// Replay: sends per second at most.
    pub rate: Option<f64>,
    #[serde(default)]
    pub dry_run: bool,
    /// Purge: required when no filter is given.
    #[serde(default)]
    pub all: bool,
}

impl ActionBody {
    fn split(self) -> (Filter, Option<f64>, bool, bool) {
        (
            Filter {
                endpoint_id: self.endpoint_id,
                tenant_id: self.tenant_id,
                event_type: self.event_type,
                delivery_id: self.delivery_id,
                since: self.since,
                until: self.until,
                error: self.error,
                limit: self.limit,
            },
            self.rate,
            self.dry_run,
            self.all,
        )
    }
}

/// Refuses a filter whose times or limit do not parse, naming the field (422).
fn check(f: &Filter) -> ApiResult<()> {
    f.validate()
        .map_err(|BadFilter { field, message }| ApiError::invalid(field, message))
}

/// `POST /api/v1/dead-letters/replay`
pub async fn replay(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<ActionBody>,
) -> ApiResult<Json<Report>> {
    let (f, rate, dry_run, _) = body.split();
    check(&f)?;
    if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(ApiError::invalid(
            "rate",
            "must be a positive number of sends per second",
        ));
    }
    Ok(Json(
        run(&st, &caller, f, Action::Replay { rate }, dry_run, false).await?,
    ))
}

/// `POST /api/v1/dead-letters/purge`
pub async fn purge(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<ActionBody>,
) -> ApiResult<Json<Report>> {
    let (f, _, dry_run, all) = body.split();
    check(&f)?;
    if !all && f.is_empty() {
        return Err(ApiError::invalid(
            "all",
            "give a filter, or \"all\": true to purge every dead letter",
        ));
    }
    Ok(Json(
        run(&st, &caller, f, Action::Purge, dry_run, false).await?,
    ))
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
    /// Dead letters of the endpoint sent back from `hookfleet.dead`.
    pub replayed_from_dead_letters: usize,
    /// Failed deliveries no longer in `hookfleet.dead` (purged, say), re-sent from
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
    let (st2, actor) = (st.clone(), actor(&caller));
    let (replayed, resent) = detached(async move {
        // First what is in hookfleet.dead (those deliveries become `pending`)…
        let report = dlq::replay_endpoint_since(
            &st2.settings.amqp.url,
            &st2.pool,
            &ep.id,
            since,
            actor.clone(),
        )
        .await?;
        // …then failed deliveries whose dead letter is gone, from the stored event.
        let client = st2.pool.get().await?;
        let rows = client
            .query(
                "SELECT d.id, d.event_id, d.event_type, d.attempt_count, e.payload::text
                   FROM deliveries d JOIN events e ON e.scope = coalesce(d.tenant_id, '') AND e.id = d.event_id
                  WHERE d.endpoint_id = $1 AND d.status = 'failed' AND d.created_at >= $2
                  ORDER BY d.id LIMIT $3",
                &[&ep.id, &since, &RECOVER_MAX],
            )
            .await?;
        drop(client);
        if !rows.is_empty() {
            st2.publisher.declare_endpoint(&ep).await?;
        }
        for r in &rows {
            let (did, event_id, event_type): (String, String, String) =
                (r.get(0), r.get(1), r.get(2));
            let attempts: i32 = r.get(3);
            let payload: String = r.get(4);
            crate::deliveries::publish_again(
                &st2,
                &ep,
                &did,
                &event_id,
                &event_type,
                attempts,
                &payload,
            )
            .await?;
            dlq::mark_pending(&st2.pool, &did).await?;
            let dl = DeadLetter {
                delivery_id: did,
                event_id,
                endpoint_id: ep.id.clone(),
                tenant_id: ep.tenant_id.clone(),
                event_type,
                attempts: i64::from(attempts),
                last_error: None,
                dead_at: None,
                payload_bytes: payload.len(),
                payload: None,
            };
            dlq::record(&st2.pool, "recover", &dl, &actor).await?;
            hookfleet_core::metrics::DEAD_LETTERS_REPLAYED.inc();
        }
        anyhow::Ok((report.replayed, rows.len()))
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
