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
            "SELECT id, event_id, event_type, status, attempt_count, created_at, last_attempt_at, next_attempt_at
             FROM deliveries
             WHERE endpoint_id = $1
               AND ($2::text IS NULL OR status = $2)
               AND ($3::text IS NULL OR event_type = $3)
               AND ($4::timestamptz IS NULL OR created_at >= $4)
               AND ($5::timestamptz IS NULL OR created_at < $5)
               AND ($6::text IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7",
            &[&id, &q.status, &q.event_type, &since, &until, &q.cursor, &(limit + 1)],
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
            delivery_from(
                r,
                attempts.remove(r.get::<_, &str>("id")).unwrap_or_default(),
            )
        })
        .collect();
    Ok(Json(Page { data, next_cursor }))
}

async fn load_delivery(
    st: &AppState,
    endpoint_id: &str,
    delivery_id: &str,
) -> ApiResult<(Delivery, String)> {
    let client = st.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT d.id, d.event_id, d.event_type, d.status, d.attempt_count, d.created_at, d.last_attempt_at, d.next_attempt_at,
                    e.payload::text AS payload
             FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.id = $1 AND d.endpoint_id = $2",
            &[&delivery_id, &endpoint_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let mut attempts = attempts_of(&client, &[delivery_id]).await?;
    let payload: String = row.get("payload");
    let mut d = delivery_from(&row, attempts.remove(delivery_id).unwrap_or_default());
    d.payload = serde_json::from_str(&payload).ok();
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
    }))
}
