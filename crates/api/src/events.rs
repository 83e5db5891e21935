//! The event catalog and HTTP ingest (`POST /api/v1/events`).
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::webhooks::Page;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookfleet_core::envelope::InvalidEnvelope;
use hookfleet_core::Envelope;
use hookfleet_store::catalog::Catalog;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Serialize)]
pub struct EventType {
    pub name: String,
    pub description: String,
    pub schema: serde_json::Value,
    pub example: serde_json::Value,
    pub deprecated: bool,
    /// The type's own retry schedule (delays between attempts); null: the
    /// default. An endpoint's own schedule wins over it.
    pub retry_schedule: Option<Vec<String>>,
}

const TYPE_COLUMNS: &str = "name, description, schema, example, deprecated, retry_schedule";

pub async fn catalog(
    State(st): State<Arc<AppState>>,
    _caller: Caller,
) -> ApiResult<Json<Page<EventType>>> {
    let client = st.pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {TYPE_COLUMNS} FROM event_types ORDER BY name"),
            &[],
        )
        .await?;
    let data = rows.iter().map(row_to_type).collect();
    Ok(Json(Page {
        data,
        next_cursor: None,
    }))
}

/// The compiled catalog, cached for two seconds (ingest checks every event).
pub struct TypeCache(std::sync::Mutex<Option<(Instant, Arc<Catalog>)>>);

impl Default for TypeCache {
    fn default() -> Self {
        Self(std::sync::Mutex::new(None))
    }
}

impl TypeCache {
    async fn get(&self, pool: &hookfleet_store::Pool) -> ApiResult<Arc<Catalog>> {
        if let Some((at, set)) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if at.elapsed() < Duration::from_secs(2) {
                return Ok(set.clone());
            }
        }
        let set = Arc::new(Catalog::load(pool).await?);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), set.clone()));
        Ok(set)
    }
}

#[derive(Serialize)]
pub struct Accepted {
    pub id: String,
}

fn envelope_error(e: InvalidEnvelope) -> ApiError {
    match e {
        InvalidEnvelope::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            e.to_string(),
        ),
        InvalidEnvelope::NotJson(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string())
        }
        InvalidEnvelope::Missing(f) => ApiError::invalid(f, e.to_string()),
        InvalidEnvelope::BadField { field, .. } => ApiError::invalid(field, e.to_string()),
        InvalidEnvelope::TypeMismatch { .. } | InvalidEnvelope::UnknownType(_) => {
            ApiError::invalid("type", e.to_string())
        }
        InvalidEnvelope::DataSchema { .. } => ApiError::invalid("data", e.to_string()),
    }
}

/// Accepts one envelope (DESIGN.md §2.1) and answers 202 only once RabbitMQ has
/// confirmed it. The publish runs in a task of its own, so a client that goes away
/// mid-request cannot leave it half done. A retried POST with the same envelope
/// `id` or `Idempotency-Key` carries the same event id, and the router never
/// creates a second delivery for it.
pub async fn ingest(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    // `application/json`, parameters (`; charset=utf-8`) allowed; checked
    // before the body is read.
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the envelope with Content-Type: application/json",
        ));
    }
    let max = st.settings.delivery.max_payload_bytes;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the envelope exceeds the limit of {max} bytes"),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
        }
    })?;
    let idem = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Some(k.to_owned()),
        Some(_) => {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "must be 1-255 visible ASCII characters",
            ))
        }
    };
    let derived_id = idem.map(|k| {
        let d = Sha256::digest(format!("{}\n{k}", caller.scope().unwrap_or("")).as_bytes());
        format!(
            "evt_idem_{}",
            d.iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    });
    let mut env = Envelope::parse(&body, "", derived_id.as_deref(), max).map_err(envelope_error)?;
    if let Caller::Tenant(t) = &caller {
        match &env.tenant_id {
            Some(given) if given != t => {
                return Err(ApiError::invalid(
                    "tenant_id",
                    "must be absent or your own tenant",
                ))
            }
            _ => env.tenant_id = Some(t.clone()),
        }
    }
    let env = st
        .types
        .get(&st.pool)
        .await?
        .check(env)
        .map_err(envelope_error)?;
    let id = env.id.clone();
    let st2 = st.clone();
    crate::error::detached(async move {
        let props = hookfleet_broker::headers::event_properties(&env.id);
        st2.publisher
            .publish(
                hookfleet_broker::names::EVENTS_EXCHANGE,
                &env.event_type,
                &env.to_body(),
                props,
            )
            .await
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { id })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEventType {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub schema: Option<serde_json::Value>,
    pub example: Option<serde_json::Value>,
    pub retry_schedule: Option<Vec<String>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EventTypePatch {
    pub description: Option<String>,
    pub schema: Option<serde_json::Value>,
    pub example: Option<serde_json::Value>,
    pub deprecated: Option<bool>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "crate::webhooks::present")]
    pub retry_schedule: Option<Option<Vec<String>>>,
}

fn check_retry_schedule(delays: Option<&[String]>) -> ApiResult<Option<String>> {
    delays
        .map(|d| {
            hookfleet_core::endpoint::validate_retry_schedule(d)
                .map_err(|e| ApiError::invalid("retry_schedule", e))
        })
        .transpose()
}

/// Checks a schema compiles and the example (if any) matches it.
fn check_schema(schema: &serde_json::Value, example: Option<&serde_json::Value>) -> ApiResult<()> {
    if !schema.is_object() {
        return Err(ApiError::invalid("schema", "must be a JSON Schema object"));
    }
    let v = hookfleet_store::catalog::compile(schema)
        .map_err(|e| ApiError::invalid("schema", format!("does not compile: {e}")))?;
    if let Some(ex) = example {
        if !ex.is_object() {
            return Err(ApiError::invalid("example", "must be a JSON object"));
        }
        if let Some(err) = hookfleet_store::catalog::first_error(&v, ex) {
            return Err(ApiError::invalid(
                "example",
                format!("does not match the schema: {err}"),
            ));
        }
    }
    Ok(())
}

fn row_to_type(r: &tokio_postgres::Row) -> EventType {
    EventType {
        name: r.get(0),
        description: r.get(1),
        schema: r.get(2),
        example: r.get(3),
        deprecated: r.get(4),
        retry_schedule: r
            .get::<_, Option<String>>(5)
            .map(|s| s.split(',').map(str::to_owned).collect()),
    }
}

/// Adds an event type to the catalog; shared with `hookfleet event-type add`.
/// A custom retry schedule's tiers are declared (through `publisher`, else on a
/// connection of its own) before the type is stored.
pub async fn add_event_type(
    settings: &hookfleet_core::Settings,
    pool: &hookfleet_store::Pool,
    publisher: Option<&crate::publisher::Publisher>,
    b: NewEventType,
) -> ApiResult<EventType> {
    hookfleet_core::envelope::validate_event_type(&b.name)
        .map_err(|e| ApiError::invalid("name", e))?;
    let schema = b
        .schema
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    let example = b.example.unwrap_or_else(|| serde_json::json!({}));
    check_schema(&schema, Some(&example))?;
    let retry = check_retry_schedule(b.retry_schedule.as_deref())?;
    crate::admin::declare_schedule_tiers(settings, publisher, retry.as_deref()).await?;
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO event_types (name, description, schema, example, retry_schedule) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO NOTHING RETURNING {TYPE_COLUMNS}"
            ),
            &[&b.name, &b.description, &schema, &example, &retry],
        )
        .await?
        .ok_or_else(|| ApiError::conflict(format!("event type `{}` already exists", b.name)))?;
    Ok(row_to_type(&row))
}

/// Updates or deprecates an event type; shared with `hookfleet event-type`.
pub async fn update_event_type(
    settings: &hookfleet_core::Settings,
    pool: &hookfleet_store::Pool,
    publisher: Option<&crate::publisher::Publisher>,
    name: &str,
    p: EventTypePatch,
) -> ApiResult<EventType> {
    let client = pool.get().await?;
    let current = client
        .query_opt(
            &format!("SELECT {TYPE_COLUMNS} FROM event_types WHERE name = $1"),
            &[&name],
        )
        .await?
        .map(|r| row_to_type(&r))
        .ok_or_else(|| ApiError::not_found("event type"))?;
    let schema = p.schema.unwrap_or(current.schema);
    let example = p.example.unwrap_or(current.example);
    check_schema(&schema, Some(&example))?;
    let retry = check_retry_schedule(p.retry_schedule.as_ref().and_then(|r| r.as_deref()))?;
    crate::admin::declare_schedule_tiers(settings, publisher, retry.as_deref()).await?;
    let row = client
        .query_one(
            &format!(
                "UPDATE event_types SET description = COALESCE($2, description), schema = $3, example = $4,
                        deprecated = COALESCE($5, deprecated),
                        retry_schedule = CASE WHEN $6 THEN $7 ELSE retry_schedule END, updated_at = now()
                 WHERE name = $1 RETURNING {TYPE_COLUMNS}"
            ),
            &[&name, &p.description, &schema, &example, &p.deprecated, &p.retry_schedule.is_some(), &retry],
        )
        .await?;
    Ok(row_to_type(&row))
}

pub async fn create_type(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    crate::error::JsonBody(b): crate::error::JsonBody<NewEventType>,
) -> ApiResult<(StatusCode, Json<EventType>)> {
    caller.require_admin()?;
    Ok((
        StatusCode::CREATED,
        Json(add_event_type(&st.settings, &st.pool, Some(&st.publisher), b).await?),
    ))
}

pub async fn update_type(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    axum::extract::Path(name): axum::extract::Path<String>,
    crate::error::JsonBody(p): crate::error::JsonBody<EventTypePatch>,
) -> ApiResult<Json<EventType>> {
    caller.require_admin()?;
    Ok(Json(
        update_event_type(&st.settings, &st.pool, Some(&st.publisher), &name, p).await?,
    ))
}
