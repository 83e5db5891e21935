//! The event catalog and HTTP ingest (`POST /api/v1/events`).
use crate::auth::Caller;
use crate::error::{detached, ApiError, ApiResult};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookfleet_core::envelope::InvalidEnvelope;
use hookfleet_core::{trace, Envelope};
use hookfleet_service::Page;
use hookfleet_store::catalog::Catalog;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument as _;

pub use hookfleet_service::catalog::{
    add_event_type, update_event_type, EventType, EventTypePatch, NewEventType,
};

pub async fn catalog(
    State(st): State<Arc<AppState>>,
    _caller: Caller,
) -> ApiResult<Json<Page<EventType>>> {
    Ok(Json(hookfleet_service::catalog::list(&st.pool).await?))
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

/// `application/json`, parameters (`; charset=utf-8`) allowed; checked
/// before the body is read.
fn require_json(headers: &HeaderMap) -> ApiResult<()> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if json {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the envelope with Content-Type: application/json",
    ))
}

/// The event id an `Idempotency-Key` stands for: the same key in the same
/// scope always gives the same id, so a retried POST is never a second event.
fn idempotent_id(headers: &HeaderMap, caller: &Caller) -> ApiResult<Option<String>> {
    let idem = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => return Ok(None),
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => k,
        Some(_) => {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "must be 1-255 visible ASCII characters",
            ))
        }
    };
    let d = Sha256::digest(format!("{}\n{idem}", caller.scope().unwrap_or("")).as_bytes());
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Ok(Some(format!("evt_idem_{hex}")))
}

/// Parses the envelope and puts it in the caller's scope: a tenant's events
/// are its own (a `tenant_id` naming another tenant is refused).
fn parse_envelope(
    body: &[u8],
    caller: &Caller,
    derived_id: Option<&str>,
    max: usize,
) -> ApiResult<Envelope> {
    let mut env = Envelope::parse(body, "", derived_id, max).map_err(envelope_error)?;
    if let Some(t) = caller.scope() {
        match &env.tenant_id {
            Some(given) if given != t => {
                return Err(ApiError::invalid(
                    "tenant_id",
                    match caller {
                        Caller::AdminFor(_) => {
                            "must be absent or the Hookfleet-Tenant header's tenant"
                        }
                        _ => "must be absent or your own tenant",
                    },
                ))
            }
            _ => env.tenant_id = Some(t.to_owned()),
        }
    }
    Ok(env)
}

/// Accepts one envelope (docs/ARCHITECTURE.md §20.1) and answers 202 only once RabbitMQ has
/// confirmed it. The publish runs in a task of its own, so a client that goes away
/// mid-request cannot leave it half done. A retried POST with the same envelope
/// `id` or `Idempotency-Key` carries the same event id, and the router never
/// creates a second delivery for it.
///
/// The request's `traceparent` and `tracestate` go on with the event: while
/// tracing is on, as the parent of an `ingest` span whose context the event
/// carries; while it is off, unchanged.
pub async fn ingest(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let incoming = trace::Headers::new(header(trace::TRACEPARENT), header(trace::TRACESTATE));
    if !trace::enabled() {
        return accept(st, caller, &headers, body, incoming).await;
    }
    let span = tracing::info_span!(
        target: trace::TARGET,
        "ingest",
        trace_id = tracing::field::Empty,
        otel.kind = "server"
    );
    trace::continue_from(&span, &incoming);
    trace::attr(&span, "http.request.method", "POST");
    trace::attr(&span, "http.route", "/api/v1/events");
    let next = trace::headers_of(&span).unwrap_or(incoming);
    let result = accept(st, caller, &headers, body, next)
        .instrument(span.clone())
        .await;
    let status = match &result {
        Ok((status, _)) => *status,
        Err(e) => e.status,
    };
    trace::attr(
        &span,
        "http.response.status_code",
        i64::from(status.as_u16()),
    );
    if status.is_server_error() {
        trace::error(&span, status.to_string());
    }
    result
}

/// [`ingest`] itself: `trace` is what the published event carries.
async fn accept(
    st: Arc<AppState>,
    caller: Caller,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    trace: trace::Headers,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    require_json(headers)?;
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
    let derived_id = idempotent_id(headers, &caller)?;
    let env = parse_envelope(&body, &caller, derived_id.as_deref(), max)?;
    let env = st
        .types
        .get(&st.pool)
        .await?
        .check(env)
        .map_err(envelope_error)?;
    let id = env.id.clone();
    if trace::enabled() {
        let span = tracing::Span::current();
        trace::attr(&span, "hookfleet.event.id", env.id.clone());
        trace::attr(&span, "hookfleet.event.type", env.event_type.clone());
        if let Some(t) = &env.tenant_id {
            trace::attr(&span, "hookfleet.tenant.id", t.clone());
        }
    }
    detached(async move {
        let props = hookfleet_broker::headers::traced_event_properties(&env.id, Some(&trace));
        let published = st
            .publisher
            .publish(
                hookfleet_broker::names::EVENTS_EXCHANGE,
                &env.event_type,
                &env.to_body(),
                props,
            )
            .await;
        Ok(published?)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { id })))
}

pub async fn create_type(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    crate::error::JsonBody(b): crate::error::JsonBody<NewEventType>,
) -> ApiResult<(StatusCode, Json<EventType>)> {
    caller.service().require_admin()?;
    Ok((
        StatusCode::CREATED,
        Json(add_event_type(st.ctx(), b).await?),
    ))
}

pub async fn update_type(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    axum::extract::Path(name): axum::extract::Path<String>,
    crate::error::JsonBody(p): crate::error::JsonBody<EventTypePatch>,
) -> ApiResult<Json<EventType>> {
    caller.service().require_admin()?;
    Ok(Json(update_event_type(st.ctx(), &name, p).await?))
}
