//! `/api/v1/webhooks`: create, list, read, update, delete, secret, rotation, test.
use crate::admin::{self, EndpointInput, FieldError};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, JsonBody};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookfleet_broker::{headers as h, names};
use hookfleet_core::sealing::Keyring;
use hookfleet_store::endpoints::{self, Endpoint, EndpointPatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// A webhook as the API shows it.
#[derive(Serialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub is_active: bool,
    pub headers: BTreeMap<String, String>,
    pub metadata: serde_json::Value,
    pub tenant_id: Option<String>,
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The circuit breaker: closed (delivering), open (deliveries wait until
    /// `next_probe_at`), half_open (one probe delivery is deciding).
    pub circuit: hookfleet_core::Circuit,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_probe_at: Option<OffsetDateTime>,
    /// Deliveries per second, all workers together; null: no limit.
    pub rate_limit: Option<i32>,
    /// Concurrent deliveries, all workers together; null: the workers' default.
    pub max_in_flight: Option<i32>,
    /// The delays between attempts; null: the default schedule.
    pub retry_schedule: Option<Vec<String>>,
    /// `parallel` (default) or `fifo`: one at a time, in publish order.
    pub ordering: hookfleet_core::Ordering,
    /// Only when created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<Endpoint> for Webhook {
    fn from(e: Endpoint) -> Self {
        Webhook {
            id: e.id,
            url: e.url,
            description: e.description,
            events: e.event_types,
            is_active: e.is_active,
            headers: e.headers,
            metadata: e.metadata,
            tenant_id: e.tenant_id,
            disabled_reason: e.disabled_reason,
            created_at: e.created_at,
            updated_at: e.updated_at,
            circuit: e.circuit,
            next_probe_at: e.next_probe_at,
            rate_limit: e.rate_limit,
            max_in_flight: e.max_in_flight,
            retry_schedule: e
                .retry_schedule
                .map(|s| s.split(',').map(str::to_owned).collect()),
            ordering: e.ordering,
            secret: None,
        }
    }
}

pub(crate) fn field_error(e: anyhow::Error) -> ApiError {
    let e = match e.downcast::<admin::LimitReached>() {
        Ok(l) => return ApiError::new(StatusCode::CONFLICT, "limit_reached", l.0),
        Err(e) => e,
    };
    match e.downcast::<FieldError>() {
        Ok(f) => ApiError::invalid(f.field, f.message),
        Err(e) => e.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    pub url: String,
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
    pub is_active: Option<bool>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub metadata: Option<serde_json::Value>,
    /// Bring your own `whsec_` secret; generated when absent.
    pub secret: Option<String>,
    pub rate_limit: Option<i32>,
    pub max_in_flight: Option<i32>,
    pub retry_schedule: Option<Vec<String>>,
    /// `parallel` (default) or `fifo`; fixed for the webhook's life.
    pub ordering: Option<String>,
}

/// For PATCH: absent → `None` (unchanged), `null` → `Some(None)` (cleared).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(b): JsonBody<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    let input = EndpointInput {
        url: b.url,
        events: b.events,
        tenant_id: caller.scope().map(str::to_owned),
        description: b.description,
        secret: b.secret,
        is_active: b.is_active.unwrap_or(true),
        headers: b.headers,
        metadata: b.metadata,
        rate_limit: b.rate_limit,
        max_in_flight: b.max_in_flight,
        retry_schedule: b.retry_schedule,
        ordered: admin::parse_ordering(b.ordering.as_deref())
            .map_err(|f| ApiError::invalid(f.field, f.message))?,
    };
    let (ep, secret) =
        admin::create_endpoint_with(&st.settings, &st.pool, input, Some(&st.publisher))
            .await
            .map_err(field_error)?;
    let mut w = Webhook::from(ep);
    w.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(w)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub is_active: Option<bool>,
    pub event_type: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    crate::error::QueryParams(q): crate::error::QueryParams<ListQuery>,
) -> ApiResult<Json<Page<Webhook>>> {
    let limit = crate::page_limit(q.limit);
    let mut rows = endpoints::list_page(
        &st.pool,
        caller.scope(),
        q.is_active,
        q.event_type.as_deref(),
        q.cursor.as_deref(),
        limit + 1,
    )
    .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok(Json(Page {
        data: rows.into_iter().map(Webhook::from).collect(),
        next_cursor,
    }))
}

pub(crate) async fn load(st: &AppState, caller: &Caller, id: &str) -> ApiResult<Endpoint> {
    endpoints::get_scoped(&st.pool, id, caller.scope())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

pub async fn get(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(load(&st, &caller, &id).await?.into()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub headers: Option<BTreeMap<String, String>>,
    pub metadata: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    pub rate_limit: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub max_in_flight: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub retry_schedule: Option<Option<Vec<String>>>,
    /// Accepted only when it is the webhook's own: ordering is fixed at creation.
    pub ordering: Option<String>,
}

pub async fn update(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UpdateWebhook>,
) -> ApiResult<Json<Webhook>> {
    admin::validate_parts(
        &st.settings.api,
        b.url.as_deref(),
        b.events.as_deref(),
        b.description.as_deref(),
        b.headers.as_ref(),
        b.metadata.as_ref(),
    )
    .map_err(|f| ApiError::invalid(f.field, f.message))?;
    let retry_schedule = admin::validate_control(
        b.rate_limit.flatten(),
        b.max_in_flight.flatten(),
        b.retry_schedule.as_ref().and_then(|s| s.as_deref()),
    )
    .map_err(|f| ApiError::invalid(f.field, f.message))?;
    if let Some(ev) = &b.events {
        admin::check_known_types(&st.pool, ev)
            .await
            .map_err(field_error)?;
    }
    if let Some(o) = b.ordering.as_deref() {
        let wanted =
            admin::parse_ordering(Some(o)).map_err(|f| ApiError::invalid(f.field, f.message))?;
        if wanted != load(&st, &caller, &id).await?.ordered() {
            return Err(ApiError::invalid(
                "ordering",
                "is fixed when a webhook is created (its queue is declared for it); create a new webhook with the ordering you want",
            ));
        }
    }
    if b.retry_schedule.as_ref().is_some_and(Option::is_some) {
        load(&st, &caller, &id).await?;
        admin::declare_schedule_tiers(&st.settings, Some(&st.publisher), retry_schedule.as_deref())
            .await?;
    }
    let events_changed = b.events.is_some();
    let patch = EndpointPatch {
        url: b.url,
        description: b.description,
        event_types: b.events,
        is_active: b.is_active,
        headers: b.headers,
        metadata: b.metadata,
        rate_limit: b.rate_limit,
        max_in_flight: b.max_in_flight,
        retry_schedule: b.retry_schedule.map(|s| s.and(retry_schedule)),
    };
    let ep = endpoints::update(&st.pool, &id, caller.scope(), &patch)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    if ep.ordered() && events_changed {
        // Before answering: events of a newly subscribed type published after
        // this answer must reach the ordered router.
        admin::sync_ordered(&st.pool, &st.publisher).await;
    }
    Ok(Json(ep.into()))
}

pub async fn delete(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    load(&st, &caller, &id).await?;
    // In a task of its own: a client that goes away must not leave the queue half moved.
    let st2 = st.clone();
    let id2 = id.clone();
    crate::error::detached(
        async move { admin::delete_endpoint(&st2.settings, &st2.pool, &id2).await },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct SecretOut {
    /// The newest secret: the one to verify with.
    pub key: String,
    /// Older secrets that still sign during a rotation, with their expiry.
    pub previous: Vec<PreviousSecret>,
}

#[derive(Serialize)]
pub struct PreviousSecret {
    pub key: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

fn secret_out(ep: &Endpoint, keys: Option<&Keyring>) -> SecretOut {
    let now = OffsetDateTime::now_utc();
    let secrets = ep.secrets(keys);
    let mut live = secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|e| e > now));
    let key = live.next().map(|s| s.secret.clone()).unwrap_or_default();
    SecretOut {
        key,
        previous: live
            .map(|s| PreviousSecret {
                key: s.secret.clone(),
                expires_at: s.expires_at,
            })
            .collect(),
    }
}

pub async fn secret(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretOut>> {
    Ok(Json(secret_out(
        &load(&st, &caller, &id).await?,
        st.settings.encryption_keys.as_ref(),
    )))
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
    use hookfleet_core::bounds::{ROTATION_GRACE_DEFAULT, ROTATION_GRACE_MAX};
    let grace = opts
        .grace_period_seconds
        .unwrap_or(ROTATION_GRACE_DEFAULT.as_secs() as i64);
    if !(0..=ROTATION_GRACE_MAX.as_secs() as i64).contains(&grace) {
        return Err(ApiError::invalid(
            "grace_period_seconds",
            "must be between 0 and 604800 (7 days)",
        ));
    }
    let new = hookfleet_core::Secret::generate();
    let expires = OffsetDateTime::now_utc() + time::Duration::seconds(grace);
    if !endpoints::rotate_secret(
        &st.pool,
        st.settings.encryption_keys.as_ref(),
        &id,
        caller.scope(),
        new.expose(),
        expires,
    )
    .await?
    {
        return Err(ApiError::not_found("webhook"));
    }
    Ok(Json(secret_out(
        &load(&st, &caller, &id).await?,
        st.settings.encryption_keys.as_ref(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSend {
    pub event_type: String,
}

#[derive(Serialize)]
pub struct TestSent {
    pub delivery_id: String,
    pub event_id: String,
}

/// Sends the catalog example of a type to this endpoint only, through the worker
/// pipeline (signing, retries, attempt records), bypassing routing.
pub async fn test(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<TestSend>,
) -> ApiResult<(StatusCode, Json<TestSent>)> {
    let ep = load(&st, &caller, &id).await?;
    let client = st.pool.get().await?;
    let example: serde_json::Value = client
        .query_opt(
            "SELECT example FROM event_types WHERE name = $1",
            &[&b.event_type],
        )
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| {
            ApiError::invalid(
                "event_type",
                format!("unknown event type `{}`", b.event_type),
            )
        })?;
    drop(client);
    let event_id = hookfleet_core::ids::event_id();
    let delivery_id = hookfleet_core::ids::delivery_id();
    let body = serde_json::json!({
        "id": event_id, "type": b.event_type, "timestamp": hookfleet_core::envelope::now_rfc3339(),
        "tenant_id": ep.tenant_id, "data": example,
    })
    .to_string();
    let st2 = st.clone();
    let (eid, did) = (event_id.clone(), delivery_id.clone());
    // Runs to completion even if the client goes away mid-request.
    crate::error::detached(async move {
        let ev = hookfleet_store::deliveries::NewEvent {
            id: &eid,
            tenant_id: ep.tenant_id.as_deref(),
            event_type: &b.event_type,
            payload: &body,
        };
        let d = hookfleet_store::deliveries::NewDelivery {
            id: did.clone(),
            event_id: &eid,
            endpoint_id: &ep.id,
            tenant_id: ep.tenant_id.as_deref(),
            event_type: &b.event_type,
        };
        hookfleet_store::deliveries::store_routed(
            &st2.pool,
            &[ev],
            &[d],
            &Default::default(),
            ep.ordering,
        )
        .await?;
        let props = h::delivery_properties(&h::DeliveryMeta {
            delivery_id: &did,
            event_id: &eid,
            endpoint_id: &ep.id,
            event_type: &b.event_type,
            tenant_id: ep.tenant_id.as_deref(),
            attempt: 1,
            attempt_base: 0,
        });
        st2.publisher.declare_endpoint(&ep).await?;
        st2.publisher
            .publish(names::DELIVERIES_EXCHANGE, &ep.id, body.as_bytes(), props)
            .await
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestSent {
            delivery_id,
            event_id,
        }),
    ))
}
