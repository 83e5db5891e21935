//! Reads of the delivery history (`deliveries`, `delivery_attempts`, the
//! stored `events`) for the API, the portal and `/recover`: pages of
//! deliveries with their attempts, one delivery with its payload, an
//! endpoint's statistics and activity buckets. The writes of the hot path are
//! [`crate::deliveries`].
use anyhow::Context as _;
use deadpool_postgres::Pool;
use std::collections::HashMap;
use time::OffsetDateTime;

/// One attempt of a delivery (shown as it is stored).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(description = "One attempt of a delivery.")]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: i32,
    /// `succeeded` or `failed`.
    #[schema(example = "succeeded")]
    pub status: String,
    /// The receiver's HTTP status; null when none came (a timeout, a refused connection).
    pub response_status_code: Option<i32>,
    /// The start of the receiver's answer (`delivery.response_excerpt_bytes`).
    pub response: Option<String>,
    /// Why it failed (`HTTP 500`, `timed out`, …); null on success.
    pub error: Option<String>,
    pub latency_ms: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub attempted_at: OffsetDateTime,
}

/// A delivery with its attempts (oldest first).
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempt_count: i32,
    pub created_at: OffsetDateTime,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub attempts: Vec<Attempt>,
    /// The stored envelope's text (jsonb's text form), single reads only;
    /// `None` when the event is no longer stored.
    pub payload: Option<String>,
}

/// The filters of a delivery list; all optional.
#[derive(Debug, Clone, Default)]
pub struct ListFilter<'a> {
    pub status: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// The last delivery id of the previous page.
    pub cursor: Option<&'a str>,
}

fn delivery_from(r: &tokio_postgres::Row) -> DeliveryRow {
    DeliveryRow {
        id: r.get("id"),
        endpoint_id: r.get("endpoint_id"),
        event_id: r.get("event_id"),
        event_type: r.get("event_type"),
        status: r.get("status"),
        attempt_count: r.get("attempt_count"),
        created_at: r.get("created_at"),
        last_attempt_at: r.get("last_attempt_at"),
        next_attempt_at: r.get("next_attempt_at"),
        attempts: Vec::new(),
        payload: None,
    }
}

async fn attempts_of(
    client: &deadpool_postgres::Client,
    ids: &[&str],
) -> anyhow::Result<HashMap<String, Vec<Attempt>>> {
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

/// Up to `limit` deliveries of `endpoint_ids`, newest first, with their attempts.
pub async fn list(
    pool: &Pool,
    endpoint_ids: &[String],
    f: &ListFilter<'_>,
    limit: i64,
) -> anyhow::Result<Vec<DeliveryRow>> {
    let client = pool.get().await.context("connecting to Postgres")?;
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
            &[&endpoint_ids, &f.status, &f.event_type, &f.since, &f.until, &f.cursor, &limit],
        )
        .await?;
    let ids: Vec<&str> = rows.iter().map(|r| r.get::<_, &str>("id")).collect();
    let mut attempts = attempts_of(&client, &ids).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut d = delivery_from(r);
            d.attempts = attempts.remove(&d.id).unwrap_or_default();
            d
        })
        .collect())
}

/// One delivery of an endpoint, with its attempts and its stored payload.
pub async fn get(
    pool: &Pool,
    endpoint_id: &str,
    delivery_id: &str,
) -> anyhow::Result<Option<DeliveryRow>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    // The join is on the delivery's tenant and event id (V8), so a payload is
    // only ever the delivery's own tenant's.
    let Some(row) = client
        .query_opt(
            "SELECT d.id, d.endpoint_id, d.event_id, d.event_type, d.status, d.attempt_count, d.created_at,
                    d.last_attempt_at, d.next_attempt_at, e.payload::text AS payload
             FROM deliveries d LEFT JOIN events e ON e.scope = coalesce(d.tenant_id, '') AND e.id = d.event_id
             WHERE d.id = $1 AND d.endpoint_id = $2",
            &[&delivery_id, &endpoint_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let mut d = delivery_from(&row);
    d.attempts = attempts_of(&client, &[delivery_id])
        .await?
        .remove(delivery_id)
        .unwrap_or_default();
    d.payload = row.get("payload");
    Ok(Some(d))
}

/// Marks a delivery pending again, due now (resend).
pub async fn mark_pending(pool: &Pool, delivery_id: &str) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to Postgres")?;
    client
        .execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = now() WHERE id = $1",
            &[&delivery_id],
        )
        .await?;
    Ok(())
}

/// A failed delivery with no dead letter kept, and its stored event.
#[derive(Debug, Clone)]
pub struct FailedDelivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub attempt_count: i32,
    pub payload: String,
}

/// Up to `max` failed deliveries of an endpoint created at or after `since`
/// with no dead letter kept (purged, say), by id (`/recover`'s second pass).
pub async fn failed_without_dead_letter(
    pool: &Pool,
    endpoint_id: &str,
    since: OffsetDateTime,
    max: i64,
) -> anyhow::Result<Vec<FailedDelivery>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT d.id, d.event_id, d.event_type, d.attempt_count, e.payload::text
               FROM deliveries d JOIN events e ON e.scope = coalesce(d.tenant_id, '') AND e.id = d.event_id
              WHERE d.endpoint_id = $1 AND d.status = 'failed' AND d.created_at >= $2
                AND NOT EXISTS (SELECT 1 FROM dead_letters x WHERE x.delivery_id = d.id)
              ORDER BY d.id LIMIT $3",
            &[&endpoint_id, &since, &max],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| FailedDelivery {
            id: r.get(0),
            event_id: r.get(1),
            event_type: r.get(2),
            attempt_count: r.get(3),
            payload: r.get(4),
        })
        .collect())
}

/// An endpoint's deliveries and attempts over a window.
#[derive(Debug, Clone, Default)]
pub struct StatsRow {
    /// Deliveries created in the window, by status.
    pub by_status: HashMap<String, i64>,
    /// Attempts made in the window.
    pub attempts: i64,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    /// The newest failed attempt's error and time.
    pub last_error: Option<String>,
    pub last_error_at: Option<OffsetDateTime>,
}

/// Statistics of an endpoint over the last `secs` seconds.
pub async fn stats(pool: &Pool, endpoint_id: &str, secs: f64) -> anyhow::Result<StatsRow> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT status, count(*) FROM deliveries
             WHERE endpoint_id = $1 AND created_at > now() - make_interval(secs => $2) GROUP BY status",
            &[&endpoint_id, &secs],
        )
        .await?;
    let lat = client
        .query_one(
            "SELECT count(*),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY a.latency_ms),
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY a.latency_ms)
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.endpoint_id = $1 AND a.attempted_at > now() - make_interval(secs => $2)",
            &[&endpoint_id, &secs],
        )
        .await?;
    let last = client
        .query_opt(
            "SELECT a.error, a.attempted_at
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.endpoint_id = $1 AND a.attempted_at > now() - make_interval(secs => $2)
               AND a.status = 'failed'
             ORDER BY a.attempted_at DESC LIMIT 1",
            &[&endpoint_id, &secs],
        )
        .await?;
    Ok(StatsRow {
        by_status: rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        attempts: lat.get(0),
        latency_ms_p50: lat.get(1),
        latency_ms_p95: lat.get(2),
        last_error: last.as_ref().and_then(|r| r.get(0)),
        last_error_at: last.as_ref().map(|r| r.get(1)),
    })
}

/// The attempts of one activity bucket.
#[derive(Debug, Clone)]
pub struct BucketRow {
    /// The bucket's index from the first.
    pub index: i64,
    pub attempts: i64,
    pub succeeded: i64,
    pub latency_ms_p95: Option<f64>,
}

/// Attempts of `endpoint_ids` since `first` (Unix seconds) in buckets of
/// `bucket` seconds; only buckets with attempts are returned.
pub async fn activity(
    pool: &Pool,
    endpoint_ids: &[String],
    first: i64,
    bucket: i64,
) -> anyhow::Result<Vec<BucketRow>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT ((extract(epoch FROM a.attempted_at)::bigint - $2::bigint) / $3::bigint)::bigint AS b,
                    count(*), count(*) FILTER (WHERE a.status = 'succeeded'),
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY a.latency_ms)
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.endpoint_id = ANY($1) AND a.attempted_at >= to_timestamp($2::bigint)
             GROUP BY 1",
            &[&endpoint_ids, &first, &bucket],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| BucketRow {
            index: r.get(0),
            attempts: r.get(1),
            succeeded: r.get(2),
            latency_ms_p95: r.get(3),
        })
        .collect())
}
