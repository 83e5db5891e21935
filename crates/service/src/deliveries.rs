//! Deliveries: the history of a webhook or of the caller's whole scope, one
//! delivery with its payload, statistics and activity over a window, resend,
//! and test sends. Reads come from `hookfleet_store::history`; a resend or a
//! test send publishes one delivery straight to `hookfleet.deliveries`.
use crate::endpoints::load;
use crate::error::{ServiceError, ServiceResult};
use crate::{Caller, Ctx, Page, Publisher, SEVEN_DAYS};
use hookfleet_broker::{headers as h, names};
use hookfleet_core::trace;
use hookfleet_store::endpoints::Endpoint;
use hookfleet_store::history::{self, DeliveryRow, ListFilter};
use tracing::Instrument as _;

pub use hookfleet_store::history::Attempt;
use hookfleet_store::Pool;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One event's delivery to one webhook, with its attempts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "One event's delivery to one webhook, with its attempts (oldest first).")]
pub struct Delivery {
    #[schema(example = "dlv_01JDX3MGVQ8K2Z7T4R6N1B9C5D")]
    pub id: String,
    /// The event id, sent as `webhook-id`.
    pub event_id: String,
    pub event_type: String,
    #[schema(value_type = hookfleet_core::DeliveryStatus)]
    pub status: String,
    pub attempt_count: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    pub attempts: Vec<Attempt>,
    /// The envelope sent (one delivery's read only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<hookfleet_core::Envelope>)]
    pub payload: Option<serde_json::Value>,
}

impl From<DeliveryRow> for Delivery {
    fn from(d: DeliveryRow) -> Self {
        Delivery {
            payload: d
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok()),
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempt_count: d.attempt_count,
            created_at: d.created_at,
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
            attempts: d.attempts,
        }
    }
}

/// A delivery with the webhook it belongs to (scope-wide listing).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "A delivery, with the webhook it belongs to.")]
pub struct ScopedDelivery {
    pub webhook_id: String,
    #[serde(flatten)]
    pub delivery: Delivery,
}

impl From<DeliveryRow> for ScopedDelivery {
    fn from(d: DeliveryRow) -> Self {
        ScopedDelivery {
            webhook_id: d.endpoint_id.clone(),
            delivery: d.into(),
        }
    }
}

/// The filters and page of a delivery list.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the deliveries in this status.
    #[param(value_type = Option<hookfleet_core::DeliveryStatus>)]
    pub status: Option<String>,
    /// Only the deliveries of this event type.
    pub event_type: Option<String>,
    /// Created at or after (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Created before (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// `next_cursor` of the previous page (only a cursor this API returned).
    pub cursor: Option<String>,
    /// Page size, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<i64>,
}

/// `webhook_id`: the one webhook a scope-wide read covers (all when absent).
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookFilter {
    /// Only this webhook's (all of the caller's scope when absent).
    pub webhook_id: Option<String>,
}

fn parse_time(field: &str, v: Option<&str>) -> ServiceResult<Option<OffsetDateTime>> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            ServiceError::invalid(field, "must be an RFC 3339 time, e.g. 2026-11-28T12:00:00Z")
        })
    })
    .transpose()
}

const STATUSES: &[&str] = &["pending", "succeeded", "failed", "dead"];

/// Deliveries of one webhook of the caller's, newest first, cursor-paginated
/// (the cursor is the last delivery id seen).
pub async fn list(
    pool: &Pool,
    caller: &Caller,
    webhook_id: &str,
    q: ListQuery,
) -> ServiceResult<Page<Delivery>> {
    load(pool, caller, webhook_id).await?;
    list_of(pool, &[webhook_id.to_owned()], q).await
}

/// The deliveries of every webhook of the caller's scope (or of `only`),
/// newest first, with the filters of one webhook's list.
pub async fn list_all(
    pool: &Pool,
    caller: &Caller,
    only: Option<&str>,
    q: ListQuery,
) -> ServiceResult<Page<ScopedDelivery>> {
    let ids = scope_endpoints(pool, caller, only).await?;
    list_of(pool, &ids, q).await
}

/// The webhook ids a scope-wide read covers: `only` (checked to be the
/// caller's), else every webhook of the caller's scope.
async fn scope_endpoints(
    pool: &Pool,
    caller: &Caller,
    only: Option<&str>,
) -> ServiceResult<Vec<String>> {
    Ok(match only.filter(|s| !s.is_empty()) {
        Some(id) => vec![load(pool, caller, id).await?.id],
        None => hookfleet_store::endpoints::list(pool, Some(caller.scope()))
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect(),
    })
}

async fn list_of<D: From<DeliveryRow>>(
    pool: &Pool,
    endpoint_ids: &[String],
    q: ListQuery,
) -> ServiceResult<Page<D>> {
    if let Some(s) = &q.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(ServiceError::invalid(
                "status",
                format!("must be one of {}", STATUSES.join(", ")),
            ));
        }
    }
    let filter = ListFilter {
        status: q.status.as_deref(),
        event_type: q.event_type.as_deref(),
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        cursor: q.cursor.as_deref(),
    };
    let limit = crate::page_limit(q.limit);
    let mut rows = history::list(pool, endpoint_ids, &filter, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|d| d.id.clone())
    } else {
        None
    };
    Ok(Page {
        data: rows.into_iter().map(D::from).collect(),
        next_cursor,
    })
}

async fn load_delivery(
    pool: &Pool,
    endpoint_id: &str,
    delivery_id: &str,
) -> ServiceResult<DeliveryRow> {
    history::get(pool, endpoint_id, delivery_id)
        .await?
        .ok_or(ServiceError::NotFound("delivery"))
}

/// One delivery of a webhook of the caller's, with its payload.
pub async fn get(
    pool: &Pool,
    caller: &Caller,
    webhook_id: &str,
    delivery_id: &str,
) -> ServiceResult<Delivery> {
    load(pool, caller, webhook_id).await?;
    Ok(load_delivery(pool, webhook_id, delivery_id).await?.into())
}

/// A delivery queued again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Resent {
    pub delivery_id: String,
    /// `pending`: queued again.
    #[schema(example = "pending")]
    pub status: String,
}

fn publisher<'a>(ctx: &Ctx<'a>) -> ServiceResult<&'a Publisher> {
    ctx.publisher.ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!("this operation needs the shared publisher"))
    })
}

/// Sends a delivery again with a fresh attempt budget and the same
/// `webhook-id`; attempt numbers continue from where they were.
pub async fn resend(
    ctx: Ctx<'_>,
    caller: &Caller,
    webhook_id: &str,
    delivery_id: &str,
) -> ServiceResult<Resent> {
    let publisher = publisher(&ctx)?;
    let ep = load(ctx.pool, caller, webhook_id).await?;
    // The stored envelope (jsonb's text form: same content, canonical spacing;
    // the signature covers whatever bytes are sent).
    let d = load_delivery(ctx.pool, webhook_id, delivery_id).await?;
    let payload = d.payload.as_deref().ok_or_else(|| {
        ServiceError::Conflict("the event of this delivery is no longer stored".into())
    })?;
    history::mark_pending(ctx.pool, &d.id).await?;
    publisher.declare_endpoint(&ep).await?;
    let again = Again {
        delivery_id: &d.id,
        event_id: &d.event_id,
        event_type: &d.event_type,
        attempts: d.attempt_count,
        payload,
    };
    publish_again(publisher, &ep, &again, Origin::Resend).await?;
    Ok(Resent {
        delivery_id: delivery_id.to_owned(),
        status: "pending".into(),
    })
}

/// A stored delivery to publish again.
pub(crate) struct Again<'a> {
    pub delivery_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// Attempts made so far.
    pub attempts: i32,
    pub payload: &'a str,
}

/// Who sends a delivery besides the router and a replay. Each starts a trace
/// of its own (its span, named after it, is a root; the stored event kept no
/// trace context), which the delivery's attempts continue, as they continue a
/// `replay` (docs/ARCHITECTURE.md §23).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    /// `POST …/deliveries/{id}/resend`.
    Resend,
    /// `POST …/test`.
    TestSend,
    /// `POST …/recover`, the deliveries re-sent from the stored event.
    Recover,
}

/// What a delivery sent by `origin` is, for its span's attributes.
pub(crate) struct Sent<'a> {
    pub delivery_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub attempt: i64,
}

/// The span of `origin` sending `d` to `ep`, and the trace headers its
/// message carries: none when tracing is off (nothing is made then).
pub(crate) fn origin_span(
    origin: Origin,
    ep: &Endpoint,
    d: &Sent<'_>,
) -> (tracing::Span, Option<trace::Headers>) {
    if !trace::enabled() {
        return (tracing::Span::none(), None);
    }
    let span = match origin {
        Origin::Resend => tracing::info_span!(
            target: trace::TARGET,
            "resend",
            trace_id = tracing::field::Empty,
            otel.kind = "producer"
        ),
        Origin::TestSend => tracing::info_span!(
            target: trace::TARGET,
            "test_send",
            trace_id = tracing::field::Empty,
            otel.kind = "producer"
        ),
        Origin::Recover => tracing::info_span!(
            target: trace::TARGET,
            "recover",
            trace_id = tracing::field::Empty,
            otel.kind = "producer"
        ),
    };
    trace::continue_from(&span, &trace::Headers::default());
    trace::attr(&span, "hookfleet.delivery.id", d.delivery_id.to_owned());
    trace::attr(&span, "hookfleet.endpoint.id", ep.id.clone());
    trace::attr(&span, "hookfleet.event.id", d.event_id.to_owned());
    trace::attr(&span, "hookfleet.event.type", d.event_type.to_owned());
    if let Some(t) = &ep.tenant_id {
        trace::attr(&span, "hookfleet.tenant.id", t.clone());
    }
    trace::attr(&span, "hookfleet.attempt", d.attempt);
    let next = trace::headers_of(&span);
    (span, next)
}

/// Publishes a stored delivery to `hookfleet.deliveries` again (resend,
/// recover): the same `webhook-id`, a fresh attempt budget, attempt numbers
/// continuing after `attempts`, in a span of `origin`.
pub(crate) async fn publish_again(
    publisher: &Publisher,
    ep: &Endpoint,
    d: &Again<'_>,
    origin: Origin,
) -> anyhow::Result<()> {
    let sent = Sent {
        delivery_id: d.delivery_id,
        event_id: d.event_id,
        event_type: d.event_type,
        attempt: i64::from(d.attempts) + 1,
    };
    let base = i64::from(d.attempts);
    publish_sent(publisher, ep, &sent, base, d.payload.as_bytes(), origin).await
}

/// Publishes `payload` as delivery `d` of `ep` to `hookfleet.deliveries`, in
/// the span of `origin` (attempt numbers continue after `attempt_base`): what
/// a test send, a resend and a recover share.
async fn publish_sent(
    publisher: &Publisher,
    ep: &Endpoint,
    d: &Sent<'_>,
    attempt_base: i64,
    payload: &[u8],
    origin: Origin,
) -> anyhow::Result<()> {
    let (span, next) = origin_span(origin, ep, d);
    let props = h::delivery_properties(&h::DeliveryMeta {
        delivery_id: d.delivery_id,
        event_id: d.event_id,
        endpoint_id: &ep.id,
        event_type: d.event_type,
        tenant_id: ep.tenant_id.as_deref(),
        attempt: d.attempt,
        attempt_base,
        trace: next.as_ref(),
    });
    let sent = publisher
        .publish(names::DELIVERIES_EXCHANGE, &ep.id, payload, props)
        .instrument(span.clone())
        .await;
    if let Err(e) = &sent {
        trace::error(&span, format!("{e:#}"));
    }
    sent
}

/// The window of a webhook's stats.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// `1h`, `24h` (default) or `7d`.
    #[param(pattern = "^(1h|24h|7d)$", example = "24h")]
    pub window: Option<String>,
}

/// A webhook's deliveries and attempts over a window.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "A webhook's deliveries and attempts over a window.")]
pub struct Stats {
    /// `1h`, `24h` or `7d`.
    #[schema(example = "24h")]
    pub window: String,
    /// Deliveries created in the window.
    pub total: i64,
    /// Those deliveries by status.
    pub by_status: HashMap<String, i64>,
    /// Succeeded over finished (succeeded + failed + dead); null when none finished.
    pub success_rate: Option<f64>,
    pub attempts: i64,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    /// The newest failed attempt's error in the window (`HTTP 500`, `timed out`, …).
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
}

/// A webhook's deliveries and attempts over `1h`, `24h` (default) or `7d`.
pub async fn stats(
    pool: &Pool,
    caller: &Caller,
    webhook_id: &str,
    q: StatsQuery,
) -> ServiceResult<Stats> {
    load(pool, caller, webhook_id).await?;
    let window = q.window.unwrap_or_else(|| "24h".into());
    let secs: f64 = match window.as_str() {
        "1h" => 3600.0,
        "24h" => 86400.0,
        "7d" => SEVEN_DAYS as f64,
        _ => return Err(ServiceError::invalid("window", "must be 1h, 24h or 7d")),
    };
    let s = history::stats(pool, webhook_id, secs).await?;
    let count = |k: &str| s.by_status.get(k).copied().unwrap_or(0);
    let ok = count("succeeded");
    let finished = ok + count("failed") + count("dead");
    Ok(Stats {
        window,
        total: s.by_status.values().sum(),
        success_rate: (finished > 0).then(|| ok as f64 / finished as f64),
        by_status: s.by_status,
        attempts: s.attempts,
        latency_ms_p50: s.latency_ms_p50,
        latency_ms_p95: s.latency_ms_p95,
        last_error: s.last_error,
        last_error_at: s.last_error_at,
    })
}

/// The range and the webhook of an activity read.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// `hour` (1-minute buckets), `day` (30 min, the default) or `week` (6 h).
    #[param(pattern = "^(hour|day|week)$", example = "day")]
    pub range: Option<String>,
    /// Only this webhook's attempts (all of the caller's scope when absent).
    pub webhook_id: Option<String>,
}

/// One bucket of [`activity`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "Delivery attempts in one bucket of time.")]
pub struct Bucket {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    pub attempts: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub latency_ms_p95: Option<f64>,
}

/// Delivery attempts over a range, in buckets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(
    description = "Delivery attempts over a range, in buckets: how many, how many succeeded, and the p95 latency."
)]
pub struct Activity {
    /// `hour`, `day` or `week`.
    #[schema(example = "day")]
    pub range: String,
    pub bucket_seconds: i64,
    /// Oldest first, every bucket of the range (empty ones with zeros).
    pub buckets: Vec<Bucket>,
}

/// Delivery attempts of the caller's webhooks (or of `webhook_id`) over the
/// last hour, day or week, in buckets: how many, how many succeeded, and the
/// p95 latency.
pub async fn activity(pool: &Pool, caller: &Caller, q: ActivityQuery) -> ServiceResult<Activity> {
    let range = q.range.unwrap_or_else(|| "day".into());
    let (span, bucket): (i64, i64) = match range.as_str() {
        "hour" => (3600, 60),
        "day" => (86_400, 1800),
        "week" => (SEVEN_DAYS, 6 * 3600),
        _ => return Err(ServiceError::invalid("range", "must be hour, day or week")),
    };
    let ids = scope_endpoints(pool, caller, q.webhook_id.as_deref()).await?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    // Buckets aligned on their size, the newest one holding now.
    let first = (now / bucket - span / bucket + 1) * bucket;
    let rows = history::activity(pool, &ids, first, bucket).await?;
    let n = (span / bucket) as usize;
    let mut buckets: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            start: OffsetDateTime::from_unix_timestamp(first + i as i64 * bucket)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            attempts: 0,
            succeeded: 0,
            failed: 0,
            latency_ms_p95: None,
        })
        .collect();
    for r in rows {
        if let Some(b) = usize::try_from(r.index)
            .ok()
            .and_then(|i| buckets.get_mut(i))
        {
            b.attempts = r.attempts;
            b.succeeded = r.succeeded;
            b.failed = r.attempts - r.succeeded;
            b.latency_ms_p95 = r.latency_ms_p95;
        }
    }
    Ok(Activity {
        range,
        bucket_seconds: bucket,
        buckets,
    })
}

/// Which catalog example a test send sends.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSend {
    /// A type from the catalog; its example is sent.
    #[schema(example = "match.found")]
    pub event_type: String,
}

/// A test delivery, queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestSent {
    pub delivery_id: String,
    pub event_id: String,
    /// Whether the example passes the webhook's filter (`true` without one).
    /// A test is sent either way; an event like it published for real would
    /// reach the webhook only when this is `true`.
    pub filter_matched: bool,
    /// Said when the example does not pass the filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The note of a test send whose example the webhook's filter refuses.
pub const FILTER_REFUSED_NOTE: &str = "The example does not pass this webhook's filter: it was sent because this is a test, but a published event like it would not be delivered to this webhook.";

/// Sends the catalog example of a type to this webhook only, through the
/// worker pipeline (signing, retries, attempt records), bypassing routing.
pub async fn send_test(
    ctx: Ctx<'_>,
    caller: &Caller,
    webhook_id: &str,
    b: TestSend,
) -> ServiceResult<TestSent> {
    let publisher = publisher(&ctx)?;
    let ep = load(ctx.pool, caller, webhook_id).await?;
    let example = hookfleet_store::event_types::example(ctx.pool, &b.event_type)
        .await?
        .ok_or_else(|| {
            ServiceError::invalid(
                "event_type",
                format!("unknown event type `{}`", b.event_type),
            )
        })?;
    let event_id = hookfleet_core::ids::event_id();
    let delivery_id = hookfleet_core::ids::delivery_id();
    let timestamp = hookfleet_core::envelope::now_rfc3339();
    let filter_matched = passes_filter(
        &ep,
        &hookfleet_core::filter::Event {
            id: &event_id,
            event_type: &b.event_type,
            tenant_id: ep.tenant_id.as_deref(),
            timestamp: &timestamp,
            data: &example,
        },
    );
    let body = serde_json::json!({
        "id": event_id, "type": b.event_type, "timestamp": timestamp,
        "tenant_id": ep.tenant_id, "data": example,
    })
    .to_string();
    let ev = hookfleet_store::deliveries::NewEvent {
        id: &event_id,
        tenant_id: ep.tenant_id.as_deref(),
        event_type: &b.event_type,
        payload: &body,
    };
    let d = hookfleet_store::deliveries::NewDelivery {
        id: delivery_id.clone(),
        event_id: &event_id,
        endpoint_id: &ep.id,
        tenant_id: ep.tenant_id.as_deref(),
        event_type: &b.event_type,
    };
    hookfleet_store::deliveries::store_routed(
        ctx.pool,
        &[ev],
        &[d],
        &Default::default(),
        ep.ordering,
    )
    .await?;
    publisher.declare_endpoint(&ep).await?;
    let sent = Sent {
        delivery_id: &delivery_id,
        event_id: &event_id,
        event_type: &b.event_type,
        attempt: 1,
    };
    publish_sent(publisher, &ep, &sent, 0, body.as_bytes(), Origin::TestSend).await?;
    Ok(TestSent {
        delivery_id,
        event_id,
        filter_matched,
        note: (!filter_matched).then(|| FILTER_REFUSED_NOTE.to_owned()),
    })
}

/// Whether `ev` passes the endpoint's filter, as the router decides it.
fn passes_filter(ep: &Endpoint, ev: &hookfleet_core::filter::Event<'_>) -> bool {
    use hookfleet_core::filter::Filter;
    ep.filter.as_ref().is_none_or(|f| {
        Filter::compile(f)
            .unwrap_or_else(|_| Filter::nothing())
            .matches(ev)
    })
}
