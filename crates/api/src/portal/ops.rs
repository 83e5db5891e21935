//! The one door from the portal to the operations: plain functions that take
//! the tenant (its [`Caller`]), ids and filters, and return typed results or a
//! [`PortalError`](super::error::PortalError).
//!
//! Each one calls the service layer (`hookfleet_service`) with the tenant's
//! scope, as the REST handlers do, so the portal can do nothing the API forbids
//! and another tenant's webhook is a 404 here as there. The work a REST handler
//! runs detached (a delete, a test send, a resend, a recovery, a replay) runs
//! detached here too: a browser that goes away never leaves it half done.
//! Nothing else in the portal knows about the service layer.
use super::error::PortalResult;
use crate::auth::Caller;
use crate::AppState;
use hookfleet_service::error::detached;
use hookfleet_service::{catalog, dead_letters as dl, deliveries as dv, endpoints};
use std::sync::Arc;

pub use hookfleet_service::catalog::EventType;
pub use hookfleet_service::deliveries::{Activity, Bucket, Delivery, ScopedDelivery, Stats};
pub use hookfleet_service::endpoints::{SecretOut, Webhook};
pub use hookfleet_service::replay::DeadLetter;

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
    /// A content filter as JSON; `None`: none.
    pub filter: Option<serde_json::Value>,
}

/// What the edit form changes (every field it shows; an empty number clears it).
pub struct WebhookEdit {
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub rate_limit: Option<i32>,
    pub max_in_flight: Option<i32>,
    /// The content filter; `None` (an empty field) removes it.
    pub filter: Option<serde_json::Value>,
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
    let q = endpoints::ListQuery {
        is_active: None,
        event_type: None,
        cursor: None,
        limit: Some(crate::MAX_LIMIT),
    };
    Ok(endpoints::list(&st.pool, &caller.service(), q).await?.data)
}

pub async fn webhook(st: St<'_>, caller: &Caller, id: &str) -> PortalResult<Webhook> {
    Ok(endpoints::load(&st.pool, &caller.service(), id)
        .await?
        .into())
}

pub async fn create_webhook(st: St<'_>, caller: &Caller, new: NewWebhook) -> PortalResult<Webhook> {
    let body = endpoints::CreateWebhook {
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
        filter: new.filter,
    };
    Ok(endpoints::create(st.ctx(), &caller.service(), body).await?)
}

pub async fn edit_webhook(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    edit: WebhookEdit,
) -> PortalResult<()> {
    let patch = endpoints::UpdateWebhook {
        url: Some(edit.url),
        events: Some(edit.events),
        description: Some(edit.description),
        rate_limit: Some(edit.rate_limit),
        max_in_flight: Some(edit.max_in_flight),
        filter: Some(edit.filter),
        ..Default::default()
    };
    update(st, caller, id, patch).await
}

/// Pauses (`false`) or resumes (`true`) a webhook.
pub async fn set_active(st: St<'_>, caller: &Caller, id: &str, active: bool) -> PortalResult<()> {
    let patch = endpoints::UpdateWebhook {
        is_active: Some(active),
        ..Default::default()
    };
    update(st, caller, id, patch).await
}

async fn update(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    patch: endpoints::UpdateWebhook,
) -> PortalResult<()> {
    endpoints::update(st.ctx(), &caller.service(), id, patch).await?;
    Ok(())
}

pub async fn delete_webhook(st: St<'_>, caller: &Caller, id: &str) -> PortalResult<()> {
    let (st, caller, id) = (st.clone(), caller.service(), id.to_owned());
    detached(async move { endpoints::delete(st.ctx(), &caller, &id).await }).await?;
    Ok(())
}

/// The webhook's signing secrets.
pub async fn secret(st: St<'_>, caller: &Caller, id: &str) -> PortalResult<SecretOut> {
    let keys = st.settings.encryption_keys.as_ref();
    Ok(endpoints::secret(&st.pool, keys, &caller.service(), id).await?)
}

/// A new signing secret; the old one keeps signing for `grace_seconds`.
pub async fn rotate_secret(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    grace_seconds: u64,
) -> PortalResult<()> {
    // Beyond i64 is beyond the service's range too: it refuses it as such.
    let grace = i64::try_from(grace_seconds).unwrap_or(i64::MAX);
    let keys = st.settings.encryption_keys.as_ref();
    endpoints::rotate_secret(&st.pool, keys, &caller.service(), id, Some(grace)).await?;
    Ok(())
}

/// Sends the catalog's example of `event_type`: the new delivery's id, and
/// whether the example passes the webhook's filter.
pub async fn send_test(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    event_type: String,
) -> PortalResult<dv::TestSent> {
    let (st, caller, id) = (st.clone(), caller.service(), id.to_owned());
    let body = dv::TestSend { event_type };
    Ok(detached(async move { dv::send_test(st.ctx(), &caller, &id, body).await }).await?)
}

/// Replays the webhook's dead letters and re-sends its failed deliveries since
/// `since` (RFC 3339).
pub async fn recover(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    since: String,
) -> PortalResult<Recovered> {
    let (st, caller, id) = (st.clone(), caller.service(), id.to_owned());
    let body = dl::RecoverBody { since };
    let r = detached(async move { dl::recover(st.ctx(), &caller, &id, body).await }).await?;
    Ok(Recovered {
        replayed_from_dead_letters: r.replayed_from_dead_letters,
        resent: r.resent,
    })
}

// -------------------------------------------------------------- deliveries

/// The webhook's delivery counts and latencies over the last 24 hours.
pub async fn stats_24h(st: St<'_>, caller: &Caller, id: &str) -> PortalResult<Stats> {
    let q = dv::StatsQuery {
        window: Some("24h".into()),
    };
    Ok(dv::stats(&st.pool, &caller.service(), id, q).await?)
}

/// Delivery attempts of all the tenant's webhooks over `range` (`hour`, `day`,
/// `week`), in buckets.
pub async fn activity(st: St<'_>, caller: &Caller, range: String) -> PortalResult<Activity> {
    let q = dv::ActivityQuery {
        range: Some(range),
        webhook_id: None,
    };
    Ok(dv::activity(&st.pool, &caller.service(), q).await?)
}

/// The webhook's newest `limit` deliveries.
pub async fn recent_deliveries(
    st: St<'_>,
    caller: &Caller,
    id: &str,
    limit: i64,
) -> PortalResult<Vec<Delivery>> {
    let q = dv::ListQuery {
        status: None,
        event_type: None,
        since: None,
        until: None,
        cursor: None,
        limit: Some(limit),
    };
    Ok(dv::list(&st.pool, &caller.service(), id, q).await?.data)
}

/// A page of the tenant's deliveries, and the cursor of the next one.
pub async fn deliveries(
    st: St<'_>,
    caller: &Caller,
    f: DeliveryFilter,
) -> PortalResult<(Vec<ScopedDelivery>, Option<String>)> {
    let q = dv::ListQuery {
        status: f.status,
        event_type: f.event_type,
        since: f.since,
        until: f.until,
        cursor: f.cursor,
        limit: Some(f.limit),
    };
    let only = f.webhook.as_deref();
    let p = dv::list_all(&st.pool, &caller.service(), only, q).await?;
    Ok((p.data, p.next_cursor))
}

pub async fn delivery(
    st: St<'_>,
    caller: &Caller,
    webhook: &str,
    id: &str,
) -> PortalResult<Delivery> {
    Ok(dv::get(&st.pool, &caller.service(), webhook, id).await?)
}

/// Sends a delivery again (a new attempt of the same event).
pub async fn resend(st: St<'_>, caller: &Caller, webhook: &str, id: &str) -> PortalResult<()> {
    let (st, caller) = (st.clone(), caller.service());
    let (webhook, id) = (webhook.to_owned(), id.to_owned());
    detached(async move { dv::resend(st.ctx(), &caller, &webhook, &id).await }).await?;
    Ok(())
}

// ---------------------------------------------------- catalog, dead letters

/// The event catalog.
pub async fn catalog(st: St<'_>, _caller: &Caller) -> PortalResult<Vec<EventType>> {
    Ok(catalog::list(&st.pool).await?.data)
}

/// The tenant's dead letters that match, oldest first, up to `limit`.
pub async fn dead_letters(
    st: St<'_>,
    caller: &Caller,
    f: DeadLetterFilter,
    limit: i64,
) -> PortalResult<Vec<DeadLetter>> {
    let q = dl::ListQuery {
        endpoint_id: f.webhook,
        event_type: f.event_type,
        delivery_id: f.delivery_id,
        limit: Some(limit),
        ..Default::default()
    };
    Ok(dl::list(st.ctx(), &caller.service(), q).await?.data)
}

/// Starts replaying the dead letters that match (in the background).
pub async fn replay(st: St<'_>, caller: &Caller, f: DeadLetterFilter) -> PortalResult<()> {
    let body = dl::ActionBody {
        delivery_id: f.delivery_id,
        endpoint_id: f.webhook,
        event_type: f.event_type,
        ..Default::default()
    };
    let (st, caller) = (st.clone(), caller.service());
    detached(async move { dl::replay(st.ctx(), &caller, body).await }).await?;
    Ok(())
}
