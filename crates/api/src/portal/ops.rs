//! The one door from the portal to the operations: plain functions that take
//! the tenant (its [`Caller`]), ids and filters, and return typed results or a
//! [`PortalError`].
//!
//! Today each one calls the REST handler that does the same thing, with the
//! extractors built here, so the portal can do nothing the API forbids and
//! another tenant's webhook is a 404 here as there. Nothing else in the portal
//! knows about handlers or extractors: pointing the portal at a service layer
//! changes this file only.
use super::error::PortalResult;
use crate::auth::Caller;
use crate::error::{JsonBody, QueryParams};
use crate::{dead_letters as dl, deliveries as dv, events as ev, webhooks as wh, AppState};
use axum::extract::{Path, State};
use axum::Json;
use std::sync::Arc;

pub use crate::deliveries::{Activity, Bucket, Delivery, ScopedDelivery, Stats};
pub use crate::dlq::DeadLetter;
pub use crate::events::EventType;
pub use crate::webhooks::{SecretOut, Webhook};

type St<'a> = &'a Arc<AppState>;

/// A new webhook, as the portal's form gives it.
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub rate_limit: Option<i32>,
    pub max_in_flight: Option<i32>,
    /// `parallel` or `fifo`; `None`: the default.
    pub ordering: Option<String>,
}

/// What the edit form changes (every field it shows; an empty number clears it).
pub struct WebhookEdit {
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub rate_limit: Option<i32>,
    pub max_in_flight: Option<i32>,
}

/// A page of deliveries across the tenant's webhooks, newest first.
#[derive(Default)]
pub struct DeliveryFilter {
    /// One webhook only.
    pub webhook: Option<String>,
    pub status: Option<String>,
    pub event_type: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub limit: i64,
}

/// Which dead letters (all the tenant's when every field is `None`).
#[derive(Default)]
pub struct DeadLetterFilter {
    pub webhook: Option<String>,
    pub event_type: Option<String>,
    pub delivery_id: Option<String>,
}

/// What a recovery did.
pub struct Recovered {
    pub replayed_from_dead_letters: i64,
    pub resent: usize,
}

// ---------------------------------------------------------------- webhooks

/// Every webhook of the tenant (up to the largest page).
pub async fn webhooks(st: St<'_>, caller: &Caller) -> PortalResult<Vec<Webhook>> {
    let q = wh::ListQuery {
        is_active: None,
        event_type: None,
        cursor: None,
        limit: Some(crate::MAX_LIMIT),
    };
    let Json(page) = wh::list(State(st.clone()), caller.clone(), QueryParams(q)).await?;
    Ok(page.data)
}

pub async fn webhook(st: St<'_>, caller: &Caller, id: &str) -> PortalResult<Webhook> {
    let Json(w) = wh::get(State(st.clone()), caller.clone(), Path(id.to_owned())).await?;
    Ok(w)
}

pub async fn create_webhook(st: St<'_>, caller: &Caller, new: NewWebhook) -> PortalResult<Webhook> {
    let body = wh::CreateWebhook {
        url: new.url,
        events: new.events,
        description: new.description,
        is_active: None,
        headers: Default::default(),
        metadata: None,
        secret: None,
        rate_limit: new.rate_limit,
        max_in_flight: new.max_in_flight,
        retry_schedule: None,
        ordering: new.ordering,
    };
    let (_, Json(w)) = wh::create(State(st.clone()), caller.clone(), JsonBody(body)).await?;
    Ok(w)
}

pub async fn edit_webhook(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    edit: WebhookEdit,
) -> PortalResult<()> {
    let patch = wh::UpdateWebhook {
        url: Some(edit.url),
        events: Some(edit.events),
        description: Some(edit.description),
        rate_limit: Some(edit.rate_limit),
        max_in_flight: Some(edit.max_in_flight),
        ..Default::default()
    };
    update(st, caller, id, patch).await
}

/// Pauses (`false`) or resumes (`true`) a webhook.
pub async fn set_active(st: St<'_>, caller: &Caller, id: &str, active: bool) -> PortalResult<()> {
    let patch = wh::UpdateWebhook {
        is_active: Some(active),
        ..Default::default()
    };
    update(st, caller, id, patch).await
}

async fn update(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    patch: wh::UpdateWebhook,
) -> PortalResult<()> {
    let path = Path(id.to_owned());
    let Json(_) = wh::update(State(st.clone()), caller.clone(), path, JsonBody(patch)).await?;
    Ok(())
}

pub async fn delete_webhook(st: St<'_>, caller: &Caller, id: &str) -> PortalResult<()> {
    wh::delete(State(st.clone()), caller.clone(), Path(id.to_owned())).await?;
    Ok(())
}

/// The webhook's signing secrets.
pub async fn secret(st: St<'_>, caller: &Caller, id: &str) -> PortalResult<SecretOut> {
    let Json(s) = wh::secret(State(st.clone()), caller.clone(), Path(id.to_owned())).await?;
    Ok(s)
}

/// A new signing secret; the old one keeps signing for `grace_seconds`.
pub async fn rotate_secret(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    grace_seconds: u64,
) -> PortalResult<()> {
    let body = serde_json::json!({ "grace_period_seconds": grace_seconds }).to_string();
    let path = Path(id.to_owned());
    let Json(_) = wh::rotate(State(st.clone()), caller.clone(), path, body.into()).await?;
    Ok(())
}

/// Sends the catalog's example of `event_type`; the new delivery's id.
pub async fn send_test(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    event_type: String,
) -> PortalResult<String> {
    let body = JsonBody(wh::TestSend { event_type });
    let path = Path(id.to_owned());
    let (_, Json(sent)) = wh::test(State(st.clone()), caller.clone(), path, body).await?;
    Ok(sent.delivery_id)
}

/// Replays the webhook's dead letters and re-sends its failed deliveries since
/// `since` (RFC 3339).
pub async fn recover(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    since: String,
) -> PortalResult<Recovered> {
    let body = JsonBody(dl::RecoverBody { since });
    let path = Path(id.to_owned());
    let (_, Json(r)) = dl::recover(State(st.clone()), caller.clone(), path, body).await?;
    Ok(Recovered {
        replayed_from_dead_letters: r.replayed_from_dead_letters,
        resent: r.resent,
    })
}

// -------------------------------------------------------------- deliveries

/// The webhook's delivery counts and latencies over the last 24 hours.
pub async fn stats_24h(st: St<'_>, caller: &Caller, id: &str) -> PortalResult<Stats> {
    let q = QueryParams(dv::StatsQuery {
        window: Some("24h".into()),
    });
    let Json(s) = dv::stats(State(st.clone()), caller.clone(), Path(id.to_owned()), q).await?;
    Ok(s)
}

/// Delivery attempts of all the tenant's webhooks over `range` (`hour`, `day`,
/// `week`), in buckets.
pub async fn activity(st: St<'_>, caller: &Caller, range: String) -> PortalResult<Activity> {
    let q = QueryParams(dv::ActivityQuery {
        range: Some(range),
        webhook_id: None,
    });
    let Json(a) = dv::activity(State(st.clone()), caller.clone(), q).await?;
    Ok(a)
}

/// The webhook's newest `limit` deliveries.
pub async fn recent_deliveries(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    limit: i64,
) -> PortalResult<Vec<Delivery>> {
    let q = QueryParams(dv::ListQuery {
        status: None,
        event_type: None,
        since: None,
        until: None,
        cursor: None,
        limit: Some(limit),
    });
    let Json(p) = dv::list(State(st.clone()), caller.clone(), Path(id.to_owned()), q).await?;
    Ok(p.data)
}

/// A page of the tenant's deliveries, and the cursor of the next one.
pub async fn deliveries(
    st: St<'_>,
    caller: &Caller,
    f: DeliveryFilter,
) -> PortalResult<(Vec<ScopedDelivery>, Option<String>)> {
    let only = QueryParams(dv::WebhookFilter {
        webhook_id: f.webhook,
    });
    let q = QueryParams(dv::ListQuery {
        status: f.status,
        event_type: f.event_type,
        since: f.since,
        until: f.until,
        cursor: f.cursor,
        limit: Some(f.limit),
    });
    let Json(p) = dv::list_all(State(st.clone()), caller.clone(), only, q).await?;
    Ok((p.data, p.next_cursor))
}

pub async fn delivery(
    st: St<'_>,
    caller: &Caller,
    webhook: &str,
    id: &str,
) -> PortalResult<Delivery> {
    let path = Path((webhook.to_owned(), id.to_owned()));
    let Json(d) = dv::get(State(st.clone()), caller.clone(), path).await?;
    Ok(d)
}

/// Sends a delivery again (a new attempt of the same event).
pub async fn resend(st: St<'_>, caller: &Caller, webhook: &str, id: &str) -> PortalResult<()> {
    let path = Path((webhook.to_owned(), id.to_owned()));
    let (_, Json(_)) = dv::resend(State(st.clone()), caller.clone(), path).await?;
    Ok(())
}

// ---------------------------------------------------- catalog, dead letters

/// The event catalog.
pub async fn catalog(st: St<'_>, caller: &Caller) -> PortalResult<Vec<EventType>> {
    let Json(page) = ev::catalog(State(st.clone()), caller.clone()).await?;
    Ok(page.data)
}

/// The tenant's dead letters that match, oldest first, up to `limit`.
pub async fn dead_letters(
    st: St<'_>,
    caller: &Caller,
    f: DeadLetterFilter,
    limit: i64,
) -> PortalResult<Vec<DeadLetter>> {
    let q = QueryParams(dl::ListQuery {
        endpoint_id: f.webhook,
        event_type: f.event_type,
        delivery_id: f.delivery_id,
        limit: Some(limit),
        ..Default::default()
    });
    let Json(page) = dl::list(State(st.clone()), caller.clone(), q).await?;
    Ok(page.data)
}

/// Starts replaying the dead letters that match (in the background).
pub async fn replay(st: St<'_>, caller: &Caller, f: DeadLetterFilter) -> PortalResult<()> {
    let body = dl::ActionBody {
        delivery_id: f.delivery_id,
        endpoint_id: f.webhook,
        event_type: f.event_type,
        ..Default::default()
    };
    dl::replay(State(st.clone()), caller.clone(), JsonBody(body)).await?;
    Ok(())
}
