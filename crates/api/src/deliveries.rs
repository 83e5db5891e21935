//! Delivery history of a webhook, resend, and statistics.
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::webhooks::{load, Page};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookfleet_broker::{headers as h, names};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Serialize)]
pub struct Attempt {
    pub attempt: i32,
    pub status: String,
    pub response_status_code: Option<i32>,
    pub response: Option<String>,
    pub error: Option<String>,
    pub latency_ms: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub attempted_at: OffsetDateTime,
}

#[derive(Serialize)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempt_count: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    pub attempts: Vec<Attempt>,
    /// The payload sent (single delivery only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

fn parse_time(field: &str, v: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            ApiError::invalid(field, "must be an RFC 3339 time, e.g. 2026-11-28T12:00:00Z")
        })
    })
    .transpose()
}

const STATUSES: &[&str] = &["pending", "succeeded", "failed", "dead"];

async fn attempts_of(
    client: &deadpool_postgres::Client,
    ids: &[&str],
) -> ApiResult<HashMap<String, Vec<Attempt>>> {
    let rows = client
        .query(
            "SELECT delivery_id, attempt, status, response_status_code, response_excerpt, error, latency_ms, attempted_at
             FROM delivery_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt, id",
            &[&ids],
        )
        .await?;
    let mut map: HashMap<String, Vec<Attempt>> = HashMap::new();
    for r in rows {
        map.entry(r.get(0)).or_default().push(Attempt {
            attempt: r.get(1),
            status: r.get(2),
            response_status_code: r.get(3),
            response: r.get(4),
            error: r.get(5),
            latency_ms: r.get(6),
            attempted_at: r.get(7),
        });
    }
    Ok(map)
}

fn delivery_from(r: &tokio_postgres::Row, attempts: Vec<Attempt>) -> Delivery {
    Delivery {
        id: r.get("id"),
        event_id: r.get("event_id"),
        event_type: r.get("event_type"),
        status: r.get("status"),
        attempt_count: r.get("attempt_count"),
        created_at: r.get("created_at"),
        last_attempt_at: r.get("last_attempt_at"),
        next_attempt_at: r.get("next_attempt_at"),
        attempts,
        payload: None,
    }
}

/// Newest first, cursor-paginated (the cursor is the last delivery id seen).
pub async fn list(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    crate::error::QueryParams(q): crate::error::QueryParams<ListQuery>,
) -> ApiResult<Json<Page<Delivery>>> {
    load(&st, &caller, &id).await?;
    list_of(&st, &[id], q).await.map(Json)
}

/// `webhook_id`: the one webhook a scope-wide read covers (all when absent).
#[derive(Deserialize)]
pub struct WebhookFilter {
    pub webhook_id: Option<String>,
}

/// A delivery with the webhook it belongs to (tenant-wide listing).
#[derive(Serialize)]
pub struct ScopedDelivery {
    pub webhook_id: String,
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// `GET /api/v1/deliveries`: the deliveries of every webhook of the caller's
/// scope (or of `webhook_id`), newest first, with the filters of one
/// webhook's list.
pub async fn list_all(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    crate::error::QueryParams(only): crate::error::QueryParams<WebhookFilter>,
    crate::error::QueryParams(q): crate::error::QueryParams<ListQuery>,
) -> ApiResult<Json<Page<ScopedDelivery>>> {
    let ids = scope_endpoints(&st, &caller, only.webhook_id.as_deref()).await?;
    let page: Page<(String, Delivery)> = list_of(&st, &ids, q).await?;
    Ok(Json(Page {
        data: page
            .data
            .into_iter()
            .map(|(webhook_id, delivery)| ScopedDelivery {
                webhook_id,
                delivery,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The webhook ids a scope-wide read covers: `only` (checked to be the
/// caller's), else every webhook of the caller's scope.
async fn scope_endpoints(
    st: &AppState,
    caller: &Caller,
    only: Option<&str>,
) -> ApiResult<Vec<String>> {
    Ok(match only.filter(|s| !s.is_empty()) {
        Some(id) => vec![load(st, caller, id).await?.id],
        None => hookfleet_store::endpoints::list(&st.pool, Some(caller.scope()))
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect(),
    })
}

async fn list_of<D: From<(String, Delivery)>>(
    st: &AppState,
    endpoint_ids: &[String],
    q: ListQuery,
) -> ApiResult<Page<D>> {
    if let Some(s) = &q.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(ApiError::invalid(
                "status",
                format!("must be one of {}", STATUSES.join(", ")),
            ));
        }
    }
    let since = parse_time("since", q.since.as_deref())?;
    let until = parse_time("until", q.until.as_deref())?;
    let limit = crate::page_limit(q.limit);
    let client = st.pool.get().await?;
    let rows = client
        .query(
            "SELECT id, event_id, event_type, status, attempt_count, created_at, last_attempt_at, next_attempt_at, endpoint_id
             FROM deliveries
             WHERE endpoint_id = ANY($1)
               AND ($2::text IS NULL OR status = $2)
               AND ($3::text IS NULL OR event_type = $3)
               AND ($4::timestamptz IS NULL OR created_at >= $4)
               AND ($5::timestamptz IS NULL OR created_at < $5)
               AND ($6::text IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7",
            &[&endpoint_ids, &q.status, &q.event_type, &since, &until, &q.cursor, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit as usize)];
    let ids: Vec<&str> = rows.iter().map(|r| r.get::<_, &str>("id")).collect();
    let mut attempts = attempts_of(&client, &ids).await?;
    let next_cursor = if more {
        ids.last().map(|s| s.to_string())
    } else {
        None
    };
    let data = rows
        .iter()
        .map(|r| {
            D::from((
                r.get("endpoint_id"),
                delivery_from(
                    r,
                    attempts.remove(r.get::<_, &str>("id")).unwrap_or_default(),
                ),
            ))
        })
        .collect();
    Ok(Page { data, next_cursor })
}

impl From<(String, Delivery)> for Delivery {
    fn from((_, d): (String, Delivery)) -> Self {
        d
    }
}

async fn load_delivery(
    st: &AppState,
    endpoint_id: &str,
    delivery_id: &str,
) -> ApiResult<(Delivery, Option<String>)> {
    let client = st.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT d.id, d.event_id, d.event_type, d.status, d.attempt_count, d.created_at, d.last_attempt_at, d.next_attempt_at,
                    e.payload::text AS payload
             FROM deliveries d LEFT JOIN events e ON e.scope = coalesce(d.tenant_id, '') AND e.id = d.event_id
             WHERE d.id = $1 AND d.endpoint_id = $2",
            &[&delivery_id, &endpoint_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let mut attempts = attempts_of(&client, &[delivery_id]).await?;
    // The join is on the delivery's tenant and event id (V8), so a payload is
    // only ever the delivery's own tenant's.
    let payload: Option<String> = row.get("payload");
    let mut d = delivery_from(&row, attempts.remove(delivery_id).unwrap_or_default());
    d.payload = payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    Ok((d, payload))
}

pub async fn get(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    load(&st, &caller, &id).await?;
    Ok(Json(load_delivery(&st, &id, &delivery_id).await?.0))
}

#[derive(Serialize)]
pub struct Resent {
    pub delivery_id: String,
    pub status: String,
}

/// Sends a delivery again with a fresh attempt budget and the same `webhook-id`;
/// attempt numbers continue from where they were.
pub async fn resend(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Resent>)> {
    let ep = load(&st, &caller, &id).await?;
    // The stored envelope (jsonb's text form: same content, canonical spacing;
    // the signature covers whatever bytes are sent).
    let (d, payload) = load_delivery(&st, &id, &delivery_id).await?;
    let payload = payload
        .ok_or_else(|| ApiError::conflict("the event of this delivery is no longer stored"))?;
    let st2 = st.clone();
    let did = d.id.clone();
    crate::error::detached(async move {
        let client = st2.pool.get().await?;
        client
            .execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = now() WHERE id = $1",
                &[&did],
            )
            .await?;
        drop(client);
        st2.publisher.declare_endpoint(&ep).await?;
        publish_again(
            &st2,
            &ep,
            &did,
            &d.event_id,
            &d.event_type,
            d.attempt_count,
            &payload,
        )
        .await
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Resent {
            delivery_id,
            status: "pending".into(),
        }),
    ))
}

/// Publishes a stored delivery to `hookfleet.deliveries` again (resend,
/// recover): the same `webhook-id`, a fresh attempt budget, attempt numbers
/// continuing after `attempts`.
pub(crate) async fn publish_again(
    st: &AppState,
    ep: &hookfleet_store::endpoints::Endpoint,
    delivery_id: &str,
    event_id: &str,
    event_type: &str,
    attempts: i32,
    payload: &str,
) -> anyhow::Result<()> {
    let props = h::delivery_properties(&h::DeliveryMeta {
        delivery_id,
        event_id,
        endpoint_id: &ep.id,
        event_type,
        tenant_id: ep.tenant_id.as_deref(),
        attempt: i64::from(attempts) + 1,
        attempt_base: i64::from(attempts),
    });
    st.publisher
        .publish(
            names::DELIVERIES_EXCHANGE,
            &ep.id,
            payload.as_bytes(),
            props,
        )
        .await
}

#[derive(Deserialize)]
pub struct StatsQuery {
    pub window: Option<String>,
}

#[derive(Serialize)]
pub struct Stats {
    pub window: String,
    pub total: i64,
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

pub async fn stats(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    crate::error::QueryParams(q): crate::error::QueryParams<StatsQuery>,
) -> ApiResult<Json<Stats>> {
    load(&st, &caller, &id).await?;
    let window = q.window.unwrap_or_else(|| "24h".into());
    let secs: f64 = match window.as_str() {
        "1h" => 3600.0,
        "24h" => 86400.0,
        "7d" => 7.0 * 86400.0,
        _ => return Err(ApiError::invalid("window", "must be 1h, 24h or 7d")),
    };
    let client = st.pool.get().await?;
    let rows = client
        .query(
            "SELECT status, count(*) FROM deliveries
             WHERE endpoint_id = $1 AND created_at > now() - make_interval(secs => $2) GROUP BY status",
            &[&id, &secs],
        )
        .await?;
    let by_status: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let lat = client
        .query_one(
            "SELECT count(*),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY a.latency_ms),
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY a.latency_ms)
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.endpoint_id = $1 AND a.attempted_at > now() - make_interval(secs => $2)",
            &[&id, &secs],
        )
        .await?;
    let last = client
        .query_opt(
            "SELECT a.error, a.attempted_at
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.endpoint_id = $1 AND a.attempted_at > now() - make_interval(secs => $2)
               AND a.status = 'failed'
             ORDER BY a.attempted_at DESC LIMIT 1",
            &[&id, &secs],
        )
        .await?;
    let ok = *by_status.get("succeeded").unwrap_or(&0);
    let finished = ok + by_status.get("failed").unwrap_or(&0) + by_status.get("dead").unwrap_or(&0);
    Ok(Json(Stats {
        window,
        total: by_status.values().sum(),
        success_rate: (finished > 0).then(|| ok as f64 / finished as f64),
        by_status,
        attempts: lat.get(0),
        latency_ms_p50: lat.get(1),
        latency_ms_p95: lat.get(2),
        last_error: last.as_ref().and_then(|r| r.get(0)),
        last_error_at: last.as_ref().map(|r| r.get(1)),
    }))
}

#[derive(Deserialize)]
pub struct ActivityQuery {
    /// `hour` (1-minute buckets), `day` (30 min) or `week` (6 h).
    pub range: Option<String>,
    pub webhook_id: Option<String>,
}

/// One bucket of [`activity`].
#[derive(Serialize)]
pub struct Bucket {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    pub attempts: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub latency_ms_p95: Option<f64>,
}

#[derive(Serialize)]
pub struct Activity {
    pub range: String,
    pub bucket_seconds: i64,
    /// Oldest first, every bucket of the range (empty ones with zeros).
    pub buckets: Vec<Bucket>,
}

/// `GET /api/v1/activity`: delivery attempts of the caller's webhooks (or of
/// `webhook_id`) over the last hour, day or week, in buckets: how many, how
/// many succeeded, and the p95 latency.
pub async fn activity(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    crate::error::QueryParams(q): crate::error::QueryParams<ActivityQuery>,
) -> ApiResult<Json<Activity>> {
    let range = q.range.unwrap_or_else(|| "day".into());
    let (span, bucket): (i64, i64) = match range.as_str() {
        "hour" => (3600, 60),
        "day" => (86_400, 1800),
        "week" => (7 * 86_400, 6 * 3600),
        _ => return Err(ApiError::invalid("range", "must be hour, day or week")),
    };
    let ids = scope_endpoints(&st, &caller, q.webhook_id.as_deref()).await?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    // Buckets aligned on their size, the newest one holding now.
    let first = (now / bucket - span / bucket + 1) * bucket;
    let client = st.pool.get().await?;
    let rows = client
        .query(
            "SELECT ((extract(epoch FROM a.attempted_at)::bigint - $2::bigint) / $3::bigint)::bigint AS b,
                    count(*), count(*) FILTER (WHERE a.status = 'succeeded'),
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY a.latency_ms)
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.endpoint_id = ANY($1) AND a.attempted_at >= to_timestamp($2::bigint)
             GROUP BY 1",
            &[&ids, &first, &bucket],
        )
        .await?;
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
        let i: i64 = r.get(0);
        if let Some(b) = usize::try_from(i).ok().and_then(|i| buckets.get_mut(i)) {
            b.attempts = r.get(1);
            b.succeeded = r.get(2);
            b.failed = b.attempts - b.succeeded;
            b.latency_ms_p95 = r.get(3);
        }
    }
    Ok(Json(Activity {
        range,
        bucket_seconds: bucket,
        buckets,
    }))
}
