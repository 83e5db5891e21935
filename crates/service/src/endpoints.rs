//! Webhook (endpoint) administration, shared by the API, the portal and the
//! CLI: validation whose errors name the field, create, list, read, update,
//! delete, and the signing secrets. `Endpoint` is the stored row
//! (`hookfleet_store`); [`Webhook`] is how callers are shown one.
use crate::error::{ServiceError, ServiceResult};
use crate::{queues, Caller, Ctx, Page, SEVEN_DAYS};
use hookfleet_core::sealing::Keyring;
use hookfleet_core::{envelope, Circuit, Ordering, Secret, Settings};
use hookfleet_store::endpoints::{self, Endpoint, EndpointPatch, NewEndpoint};
use hookfleet_store::Pool;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub use crate::endpoint_rules::{
    is_hop_by_hop, parse_ordering, validate_control, validate_filter, validate_parts,
    MAX_DESCRIPTION, MAX_METADATA_BYTES,
};

/// Input for a new endpoint, before validation.
#[derive(Debug, Default, Clone)]
pub struct EndpointInput {
    pub url: String,
    pub events: Vec<String>,
    pub tenant_id: Option<String>,
    pub description: String,
    pub secret: Option<String>,
    pub is_active: bool,
    pub headers: BTreeMap<String, String>,
    pub metadata: Option<serde_json::Value>,
    pub rate_limit: Option<i32>,
    pub max_in_flight: Option<i32>,
    /// Delays between attempts, e.g. `["5s", "1m", "1h"]`.
    pub retry_schedule: Option<Vec<String>>,
    /// `Fifo`: delivered one at a time in publish order.
    pub ordering: Ordering,
    /// A content filter (`hookfleet_core::filter`); `None`: every event of
    /// the subscribed types.
    pub filter: Option<serde_json::Value>,
}

/// A webhook as callers see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "A webhook: where the events of the subscribed types are delivered.")]
pub struct Webhook {
    #[schema(example = "ep_01JDX3MGVQ8K2Z7T4R6N1B9C5D")]
    pub id: String,
    #[schema(example = "https://example.com/webhooks")]
    pub url: String,
    pub description: String,
    /// Event types, or `["*"]` for all.
    #[schema(example = json!(["match.found"]))]
    pub events: Vec<String>,
    /// An inactive webhook receives nothing.
    pub is_active: bool,
    /// Extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// Free JSON for the caller's own use.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The tenant it belongs to; null in the tenant-less scope.
    pub tenant_id: Option<String>,
    /// Why hookfleet disabled it (e.g. its receiver answered 410 Gone).
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The circuit breaker: closed (delivering), open (deliveries wait until
    /// `next_probe_at`, spending no attempts), half_open (one probe delivery
    /// is deciding).
    pub circuit: Circuit,
    /// When an open circuit is probed next.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_probe_at: Option<OffsetDateTime>,
    /// Deliveries per second to this webhook, all workers together; excess deliveries wait, never fail. null: no limit.
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit: Option<i32>,
    /// Concurrent deliveries to this webhook, all workers together. null: each worker's prefetch window (`amqp.worker_prefetch`).
    #[schema(minimum = 1, maximum = 1000)]
    pub max_in_flight: Option<i32>,
    /// This webhook's own retry schedule: the delays between attempts (at most 29, so 30 attempts), each from 1s to 24h, e.g. `["5s", "1m", "1h"]`. Overrides the event type's schedule and the default. null: those.
    pub retry_schedule: Option<Vec<String>>,
    /// `fifo`: delivered one at a time, strictly in publish order; a failing delivery is retried in place and holds the ones after it until it succeeds or is dead-lettered. `parallel` (default): delivered concurrently. Fixed when the webhook is created.
    pub ordering: Ordering,
    /// The content filter; null: every event of the subscribed types.
    #[schema(schema_with = hookfleet_core::filter::nullable_schema_ref)]
    pub filter: Option<serde_json::Value>,
    /// The signing secret: only in the answer to create (later: `GET …/secret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
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
            filter: e.filter,
            secret: None,
        }
    }
}

/// A new webhook of the caller's scope.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookCreate, description = "A new webhook of the caller's scope.")]
pub struct CreateWebhook {
    /// Where to deliver: `https://` (or `http://` where allowed by `delivery.allow_http`).
    #[schema(
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://",
        example = "https://example.com/webhooks"
    )]
    pub url: String,
    /// Event types from the catalog, or `["*"]` for all.
    #[schema(min_items = 1, example = json!(["match.found"]))]
    pub events: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
    /// Default true.
    pub is_active: Option<bool>,
    /// Extra headers sent with every delivery (`api.max_custom_headers`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Free JSON object for the caller's own use, at most 4096 bytes.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Bring your own secret: `whsec_` and the base64 of 24 to 64 random
    /// bytes; generated when absent.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{32,88}={0,2}$")]
    pub secret: Option<String>,
    /// Deliveries per second to this webhook, all workers together; excess deliveries wait, never fail. null: no limit.
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit: Option<i32>,
    /// Concurrent deliveries to this webhook, all workers together. null: each worker's prefetch window (`amqp.worker_prefetch`).
    #[schema(minimum = 1, maximum = 1000)]
    pub max_in_flight: Option<i32>,
    /// This webhook's own retry schedule: the delays between attempts (at most 29, so 30 attempts), each from 1s to 24h, e.g. `["5s", "1m", "1h"]`. Overrides the event type's schedule and the default. null: those.
    #[schema(min_items = 1, max_items = 29)]
    pub retry_schedule: Option<Vec<String>>,
    /// `fifo`: delivered one at a time, strictly in publish order; a failing delivery is retried in place and holds the ones after it until it succeeds or is dead-lettered. `parallel` (default): delivered concurrently. Fixed when the webhook is created.
    #[schema(value_type = Option<Ordering>)]
    pub ordering: Option<String>,
    /// Deliver only the events that pass this filter; absent or null: every
    /// event of the subscribed types.
    #[schema(schema_with = hookfleet_core::filter::nullable_schema_ref)]
    pub filter: Option<serde_json::Value>,
}

/// For a change: absent → `None` (unchanged), `null` → `Some(None)` (cleared).
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A change to a webhook; absent fields stay as they are.
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookUpdate, description = "A change to a webhook: absent fields stay as they are.")]
pub struct UpdateWebhook {
    #[schema(max_length = 2048, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub url: Option<String>,
    /// Event types from the catalog, or `["*"]` for all.
    #[schema(min_items = 1)]
    pub events: Option<Vec<String>>,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    pub is_active: Option<bool>,
    /// Replaces every custom header.
    pub headers: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Deliveries per second to this webhook, all workers together; excess deliveries wait, never fail. null: no limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 100000)]
    pub rate_limit: Option<Option<i32>>,
    /// Concurrent deliveries to this webhook, all workers together. null: each worker's prefetch window (`amqp.worker_prefetch`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 1000)]
    pub max_in_flight: Option<Option<i32>>,
    /// This webhook's own retry schedule: the delays between attempts (at most 29, so 30 attempts), each from 1s to 24h, e.g. `["5s", "1m", "1h"]`. Overrides the event type's schedule and the default. null: those.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, min_items = 1, max_items = 29)]
    pub retry_schedule: Option<Option<Vec<String>>>,
    /// Accepted only when it is the webhook's own: ordering is fixed at creation.
    #[schema(value_type = Option<Ordering>)]
    pub ordering: Option<String>,
    /// A new content filter; null removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = hookfleet_core::filter::nullable_schema_ref)]
    pub filter: Option<Option<serde_json::Value>>,
}

/// The filters and page of a webhook list.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only active (true) or inactive (false) webhooks.
    pub is_active: Option<bool>,
    /// Only the webhooks that receive this type.
    pub event_type: Option<String>,
    /// `next_cursor` of the previous page (only a cursor this API returned).
    pub cursor: Option<String>,
    /// Page size, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<i64>,
}

/// Refuses event types missing from the catalog (`*` is always fine).
pub async fn check_known_types(pool: &Pool, events: &[String]) -> ServiceResult<()> {
    let named: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| *e != "*")
        .collect();
    match hookfleet_store::event_types::first_unknown(pool, &named).await? {
        None => Ok(()),
        Some(unknown) => Err(ServiceError::invalid(
            "events",
            format!("unknown event type `{unknown}` (see GET /api/v1/webhooks/events)"),
        )),
    }
}

/// Validates, stores, and declares the queue of a new endpoint. Returns the
/// endpoint and its secret (shown once). The CLI's entry; the API's is [`create`].
pub async fn create_endpoint(
    settings: &Settings,
    pool: &Pool,
    input: EndpointInput,
) -> ServiceResult<(Endpoint, String)> {
    create_with(Ctx::standalone(settings, pool), input).await
}

/// [`create_endpoint`] with the broker work through `ctx`.
pub async fn create_with(ctx: Ctx<'_>, input: EndpointInput) -> ServiceResult<(Endpoint, String)> {
    let settings = ctx.settings;
    validate_parts(
        &settings.api,
        Some(&input.url),
        Some(&input.events),
        Some(&input.description),
        Some(&input.headers),
        input.metadata.as_ref(),
    )?;
    if let Some(t) = &input.tenant_id {
        ServiceError::check("tenant_id", envelope::validate_tenant_id(t))?;
    }
    if let Some(f) = &input.filter {
        validate_filter(f)?;
    }
    let retry_schedule = validate_control(
        input.rate_limit,
        input.max_in_flight,
        input.retry_schedule.as_deref(),
    )?;
    let secret = match &input.secret {
        Some(s) => Secret::parse(s).map_err(|e| ServiceError::invalid("secret", e.to_string()))?,
        None => Secret::generate(),
    };
    check_known_types(ctx.pool, &input.events).await?;
    queues::declare_schedule_tiers(ctx, retry_schedule.as_deref()).await?;
    let new = NewEndpoint {
        id: hookfleet_core::ids::endpoint_id(),
        tenant_id: input.tenant_id,
        url: input.url,
        description: input.description,
        event_types: input.events,
        is_active: input.is_active,
        secret: secret.expose().to_owned(),
        headers: input.headers,
        metadata: input.metadata.unwrap_or_else(|| serde_json::json!({})),
        control: endpoints::Control {
            rate_limit: input.rate_limit,
            max_in_flight: input.max_in_flight,
            retry_schedule,
        },
        ordering: input.ordering,
        filter: input.filter,
    };
    let max = settings.api.max_endpoints_per_tenant;
    // The queue first: a process that sees the row can count on its queue,
    // so routers and workers never declare it again (ARCHITECTURE §21).
    queues::declare_queue(ctx, &new.id, new.ordering == Ordering::Fifo).await?;
    let stored = endpoints::create(ctx.pool, settings.encryption_keys.as_ref(), &new, max).await;
    let ep = match stored {
        Ok(Some(ep)) => ep,
        Ok(None) => {
            queues::forget_queue(ctx, &new.id).await;
            return Err(ServiceError::LimitReached(format!(
                "{} already has {max} webhooks, the most api.max_endpoints_per_tenant allows; delete one first",
                new.tenant_id
                    .as_deref()
                    .map_or("the tenant-less scope".to_owned(), |t| format!("tenant `{t}`")),
            )));
        }
        Err(e) => {
            queues::forget_queue(ctx, &new.id).await;
            return Err(e.into());
        }
    };
    queues::bind_ordered(ctx, &ep).await;
    Ok((ep, secret.expose().to_owned()))
}

/// Creates a webhook in the caller's scope; the answer carries its secret.
pub async fn create(ctx: Ctx<'_>, caller: &Caller, b: CreateWebhook) -> ServiceResult<Webhook> {
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
        ordering: parse_ordering(b.ordering.as_deref())?,
        filter: b.filter,
    };
    let (ep, secret) = create_with(ctx, input).await?;
    let mut w = Webhook::from(ep);
    w.secret = Some(secret);
    Ok(w)
}

/// A page of the caller's webhooks, by id.
pub async fn list(pool: &Pool, caller: &Caller, q: ListQuery) -> ServiceResult<Page<Webhook>> {
    let limit = crate::page_limit(q.limit);
    let mut rows = endpoints::list_page(
        pool,
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
    Ok(Page {
        data: rows.into_iter().map(Webhook::from).collect(),
        next_cursor,
    })
}

/// One endpoint of the caller's scope; another scope's is not found.
pub async fn load(pool: &Pool, caller: &Caller, id: &str) -> ServiceResult<Endpoint> {
    endpoints::get_scoped(pool, id, caller.scope())
        .await?
        .ok_or(ServiceError::NotFound("webhook"))
}

/// Changes a webhook of the caller's scope.
pub async fn update(
    ctx: Ctx<'_>,
    caller: &Caller,
    id: &str,
    b: UpdateWebhook,
) -> ServiceResult<Webhook> {
    validate_parts(
        &ctx.settings.api,
        b.url.as_deref(),
        b.events.as_deref(),
        b.description.as_deref(),
        b.headers.as_ref(),
        b.metadata.as_ref(),
    )?;
    let retry_schedule = validate_control(
        b.rate_limit.flatten(),
        b.max_in_flight.flatten(),
        b.retry_schedule.as_ref().and_then(|s| s.as_deref()),
    )?;
    if let Some(Some(f)) = &b.filter {
        validate_filter(f)?;
    }
    if let Some(ev) = &b.events {
        check_known_types(ctx.pool, ev).await?;
    }
    if let Some(o) = b.ordering.as_deref() {
        let wanted = parse_ordering(Some(o))?;
        if wanted != load(ctx.pool, caller, id).await?.ordering {
            return Err(ServiceError::invalid(
                "ordering",
                "is fixed when a webhook is created (its queue is declared for it); create a new webhook with the ordering you want",
            ));
        }
    }
    if b.retry_schedule.as_ref().is_some_and(Option::is_some) {
        load(ctx.pool, caller, id).await?;
        queues::declare_schedule_tiers(ctx, retry_schedule.as_deref()).await?;
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
        filter: b.filter,
    };
    let ep = endpoints::update(ctx.pool, id, caller.scope(), &patch)
        .await?
        .ok_or(ServiceError::NotFound("webhook"))?;
    if let (true, true, Some(p)) = (ep.ordered(), events_changed, ctx.publisher) {
        // Before answering: events of a newly subscribed type published after
        // this answer must reach the ordered router.
        queues::sync_ordered(ctx.pool, p).await;
    }
    Ok(ep.into())
}

/// Deletes an endpoint: the row goes (workers stop consuming on the NOTIFY),
/// what is left in its queue moves to `hookfleet.dead`, and the queue is
/// removed. Returns how many messages were dead-lettered. The CLI's entry;
/// the API's is [`delete`].
pub async fn delete_endpoint(settings: &Settings, pool: &Pool, id: &str) -> ServiceResult<u64> {
    if !endpoints::delete(pool, id).await? {
        return Err(ServiceError::NotFound("endpoint"));
    }
    Ok(queues::drain_deleted(settings, id).await?)
}

/// Deletes a webhook of the caller's scope ([`delete_endpoint`]).
pub async fn delete(ctx: Ctx<'_>, caller: &Caller, id: &str) -> ServiceResult<u64> {
    load(ctx.pool, caller, id).await?;
    delete_endpoint(ctx.settings, ctx.pool, id).await
}

/// A webhook's signing secrets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Secret, description = "A webhook's signing secrets.")]
pub struct SecretOut {
    /// The newest secret: the one to verify with.
    pub key: String,
    /// Older secrets that still sign during a rotation, with their expiry.
    pub previous: Vec<PreviousSecret>,
}

/// An older secret that still signs until `expires_at`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviousSecret {
    pub key: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl SecretOut {
    /// The endpoint's live secrets, opened with `keys`.
    pub fn of(ep: &Endpoint, keys: Option<&Keyring>) -> Self {
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
}

/// The secrets of a webhook of the caller's scope.
pub async fn secret(
    pool: &Pool,
    keys: Option<&Keyring>,
    caller: &Caller,
    id: &str,
) -> ServiceResult<SecretOut> {
    Ok(SecretOut::of(&load(pool, caller, id).await?, keys))
}

/// The default grace period of a rotation: 24 hours.
pub const DEFAULT_GRACE_SECS: i64 = hookfleet_core::bounds::ROTATION_GRACE_DEFAULT.as_secs() as i64;

/// Rotates a webhook's secret: a new one signs from now on, and the current
/// ones keep signing for `grace_seconds` (default 24 h; 0 ends them now).
pub async fn rotate_secret(
    pool: &Pool,
    keys: Option<&Keyring>,
    caller: &Caller,
    id: &str,
    grace_seconds: Option<i64>,
) -> ServiceResult<SecretOut> {
    let grace = grace_seconds.unwrap_or(DEFAULT_GRACE_SECS);
    if !(0..=SEVEN_DAYS).contains(&grace) {
        return Err(ServiceError::invalid(
            "grace_period_seconds",
            format!("must be between 0 and {SEVEN_DAYS} (7 days)"),
        ));
    }
    let new = Secret::generate();
    let expires = OffsetDateTime::now_utc() + time::Duration::seconds(grace);
    if !endpoints::rotate_secret(pool, keys, id, caller.scope(), new.expose(), expires).await? {
        return Err(ServiceError::NotFound("webhook"));
    }
    secret(pool, keys, caller, id).await
}
