//! Batched writes on the hot path: the router stores events and their deliveries
//! in one transaction per batch; workers record attempts and delivery state in one
//! transaction per batch. Arrays passed to `unnest` make one statement of a batch.
use anyhow::Context as _;
use deadpool_postgres::Pool;
use hookfleet_core::{DeliveryStatus, Ordering};
use std::collections::HashSet;
use time::OffsetDateTime;

/// An event to store.
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub tenant_id: Option<&'a str>,
    pub event_type: &'a str,
    /// The envelope as endpoints receive it (JSON text).
    pub payload: &'a str,
}

/// A delivery to create: one event to one endpoint.
pub struct NewDelivery<'a> {
    pub id: String,
    pub event_id: &'a str,
    pub endpoint_id: &'a str,
    pub tenant_id: Option<&'a str>,
    pub event_type: &'a str,
}

/// A delivery to publish after the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Routed {
    pub delivery_id: String,
    /// The event's tenant: with `event_id`, it names the event (V8).
    pub tenant_id: Option<String>,
    pub event_id: String,
    pub endpoint_id: String,
}

impl Routed {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        Routed {
            delivery_id: r.get(0),
            tenant_id: r.get(1),
            event_id: r.get(2),
            endpoint_id: r.get(3),
        }
    }
}

/// An event as the router knows it: its tenant (None without one) and its id.
/// Two tenants' events with the same id are different events.
pub type EventKey<'a> = (Option<&'a str>, &'a str);

/// Deliveries that should be published after the transaction: those created now,
/// plus, for `redelivered_events`, existing deliveries never attempted (their
/// first publish may have been lost with a router that died before acking).
#[derive(Debug, Default)]
pub struct ToPublish {
    pub deliveries: Vec<Routed>,
}

/// Stores a batch of events and their deliveries in one transaction. `ordering`
/// names the router by the endpoints it serves: the ordered one republishes only
/// FIFO endpoints' deliveries of a redelivered event, the parallel ones only the
/// others' (each router sees every event it routes, and must not resend the
/// other's).
pub async fn store_routed(
    pool: &Pool,
    events: &[NewEvent<'_>],
    deliveries: &[NewDelivery<'_>],
    redelivered_events: &HashSet<EventKey<'_>>,
    ordering: Ordering,
) -> anyhow::Result<ToPublish> {
    let timer = hookfleet_core::metrics::BATCH_WRITE
        .with_label_values(&["events"])
        .start_timer();
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    let ids: Vec<&str> = events.iter().map(|e| e.id).collect();
    let tenants: Vec<Option<&str>> = events.iter().map(|e| e.tenant_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
    let payloads: Vec<&str> = events.iter().map(|e| e.payload).collect();
    tx.execute(
        "INSERT INTO events (id, tenant_id, type, payload)
         SELECT i, t, ty, p::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(i, t, ty, p)
         ON CONFLICT (scope, id) DO NOTHING",
        &[&ids, &tenants, &types, &payloads],
    )
    .await
    .context("inserting events")?;

    let mut out = ToPublish::default();
    if !deliveries.is_empty() {
        let d_ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
        let d_events: Vec<&str> = deliveries.iter().map(|d| d.event_id).collect();
        let d_endpoints: Vec<&str> = deliveries.iter().map(|d| d.endpoint_id).collect();
        let d_tenants: Vec<Option<&str>> = deliveries.iter().map(|d| d.tenant_id).collect();
        let d_types: Vec<&str> = deliveries.iter().map(|d| d.event_type).collect();
        let rows = tx
            .query(
                "INSERT INTO deliveries (id, event_id, endpoint_id, tenant_id, event_type)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                 ON CONFLICT (event_id, endpoint_id) DO NOTHING
                 RETURNING id, tenant_id, event_id, endpoint_id",
                &[&d_ids, &d_events, &d_endpoints, &d_tenants, &d_types],
            )
            .await
            .context("inserting deliveries")?;
        out.deliveries = rows.iter().map(Routed::from_row).collect();
    }
    if !redelivered_events.is_empty() {
        let created: HashSet<String> = out
            .deliveries
            .iter()
            .map(|d| d.delivery_id.clone())
            .collect();
        let scopes: Vec<&str> = redelivered_events
            .iter()
            .map(|(t, _)| t.unwrap_or(""))
            .collect();
        let evs: Vec<&str> = redelivered_events.iter().map(|(_, id)| *id).collect();
        let rows = tx
            .query(
                "SELECT d.id, d.tenant_id, d.event_id, d.endpoint_id
                   FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
                  WHERE (coalesce(d.tenant_id, ''), d.event_id) IN
                        (SELECT * FROM unnest($1::text[], $2::text[]))
                    AND d.status = 'pending' AND d.attempt_count = 0
                    AND e.ordering = $3",
                &[&scopes, &evs, &ordering.as_str()],
            )
            .await
            .context("finding unattempted deliveries of redelivered events")?;
        let again = rows
            .iter()
            .map(Routed::from_row)
            .filter(|d| !created.contains(&d.delivery_id));
        out.deliveries.extend(again);
    }
    tx.commit().await.context("committing events")?;
    timer.observe_duration();
    Ok(out)
}

/// The state a delivery moves to after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Succeeded,
    /// Failed, a retry is scheduled.
    Retrying,
    /// Failed, attempts exhausted, in `hookfleet.dead`.
    Failed,
}

impl DeliveryState {
    /// The `deliveries.status` this attempt leaves.
    pub fn status(self) -> DeliveryStatus {
        match self {
            Self::Succeeded => DeliveryStatus::Succeeded,
            Self::Retrying => DeliveryStatus::Pending,
            Self::Failed => DeliveryStatus::Failed,
        }
    }

    /// The outcome, as logs and `hookfleet_attempts_total` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retrying => "retried",
            Self::Failed => "dead",
        }
    }
}

/// One attempt to record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: hookfleet_core::DeliveryId,
    pub attempt: i32,
    pub state: DeliveryState,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub latency_ms: i32,
    pub attempted_at: OffsetDateTime,
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// Records a batch of attempts and moves their deliveries, in one transaction.
/// A delivery that already succeeded stays succeeded (a duplicate message can
/// produce a late attempt).
pub async fn record_attempts(pool: &Pool, batch: &[AttemptRecord]) -> anyhow::Result<()> {
    let timer = hookfleet_core::metrics::BATCH_WRITE
        .with_label_values(&["attempts"])
        .start_timer();
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    let ids: Vec<&str> = batch.iter().map(|a| a.delivery_id.as_str()).collect();
    let attempts: Vec<i32> = batch.iter().map(|a| a.attempt).collect();
    // An attempt's own status: `succeeded` or `failed` (`delivery_attempts.status`).
    let outcome: Vec<&str> = batch
        .iter()
        .map(|a| match a.state {
            DeliveryState::Succeeded => DeliveryStatus::Succeeded.as_str(),
            DeliveryState::Retrying | DeliveryState::Failed => DeliveryStatus::Failed.as_str(),
        })
        .collect();
    let codes: Vec<Option<i32>> = batch.iter().map(|a| a.status_code).collect();
    let errors: Vec<Option<&str>> = batch.iter().map(|a| a.error.as_deref()).collect();
    let excerpts: Vec<Option<&str>> = batch
        .iter()
        .map(|a| a.response_excerpt.as_deref())
        .collect();
    let latency: Vec<i32> = batch.iter().map(|a| a.latency_ms).collect();
    let at: Vec<OffsetDateTime> = batch.iter().map(|a| a.attempted_at).collect();
    tx.execute(
        "INSERT INTO delivery_attempts
           (delivery_id, attempt, status, response_status_code, error, response_excerpt, latency_ms, attempted_at)
         SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::int4[], $8::timestamptz[])",
        &[&ids, &attempts, &outcome, &codes, &errors, &excerpts, &latency, &at],
    )
    .await
    .context("inserting attempts")?;
    let status: Vec<&str> = batch.iter().map(|a| a.state.status().as_str()).collect();
    let next: Vec<Option<OffsetDateTime>> = batch.iter().map(|a| a.next_attempt_at).collect();
    tx.execute(
        "UPDATE deliveries d SET
             status = CASE WHEN d.status = 'succeeded' THEN d.status ELSE u.status END,
             attempt_count = GREATEST(d.attempt_count, u.attempt),
             last_attempt_at = u.at,
             next_attempt_at = u.next
         FROM unnest($1::text[], $2::text[], $3::int4[], $4::timestamptz[], $5::timestamptz[]) AS u(id, status, attempt, at, next)
         WHERE d.id = u.id",
        &[&ids, &status, &attempts, &at, &next],
    )
    .await
    .context("updating deliveries")?;
    tx.commit().await.context("committing attempts")?;
    timer.observe_duration();
    Ok(())
}

/// Where a delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub status: DeliveryStatus,
    /// Attempts recorded so far.
    pub attempt_count: i32,
    /// When the next attempt is due, with a retry scheduled.
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// Where a delivery stands; `None` when there is no such delivery. An ordered
/// endpoint's worker reads it when a message comes back redelivered, to carry
/// on from its last attempt.
pub async fn progress(pool: &Pool, delivery_id: &str) -> anyhow::Result<Option<Progress>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            "SELECT status, attempt_count, next_attempt_at FROM deliveries WHERE id = $1",
            &[&delivery_id],
        )
        .await?;
    let Some(r) = row else { return Ok(None) };
    let status: &str = r.try_get(0)?;
    Ok(Some(Progress {
        status: status.parse().context("deliveries.status")?,
        attempt_count: r.try_get(1)?,
        next_attempt_at: r.try_get(2)?,
    }))
}
