//! The event catalog and HTTP ingest (`POST /api/v1/events`).
use crate::auth::Caller;
use crate::error::{detached, ApiError, ApiResult, ErrorBody};
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

/// List the event catalog.
///
/// Every event type, deprecated ones included, by name, with the JSON Schema
/// of its `data` and an example.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/events",
    operation_id = "listEventTypes",
    tag = "events",
    responses((status = 200, description = "The event types (one page).", body = crate::docs::EventTypePage)),
)]
pub async fn catalog(
    State(st): State<Arc<AppState>>,
    _caller: Caller,
) -> ApiResult<Json<Page<EventType>>> {
    Ok(Json(hookfleet_service::catalog::list(&st.pool).await?))
}

/// The compiled catalog, cached for two seconds (ingest checks every event),
/// and the OpenAPI document built from it (`crate::docs::document`), built
/// again only when the catalog was reloaded.
///
/// One request at a time reloads an expired catalog (a query and a compile of
/// every schema); the requests that arrive meanwhile use the old copy instead
/// of each reloading it too. Only the first load, with no copy yet, is waited for.
#[derive(Default)]
pub struct TypeCache {
    catalog: std::sync::Mutex<Option<(Instant, Arc<Catalog>)>>,
    reload: tokio::sync::Mutex<()>,
    document: std::sync::Mutex<Option<(Arc<Catalog>, Bytes)>>,
}

impl TypeCache {
    /// The cached copy and whether it is still fresh.
    fn cached(&self) -> Option<(bool, Arc<Catalog>)> {
        self.catalog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(at, set)| (at.elapsed() < Duration::from_secs(2), set.clone()))
    }

    pub(crate) async fn get(&self, pool: &hookfleet_store::Pool) -> ApiResult<Arc<Catalog>> {
        let _reloading = match self.cached() {
            Some((true, set)) => return Ok(set),
            Some((false, old)) => match self.reload.try_lock() {
                Ok(guard) => guard,
                // Another request is reloading it.
                Err(_) => return Ok(old),
            },
            None => self.reload.lock().await,
        };
        // Loaded by the request that held the lock before this one?
        if let Some((true, set)) = self.cached() {
            return Ok(set);
        }
        let set = Arc::new(Catalog::load(pool).await?);
        *self.catalog.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), set.clone()));
        Ok(set)
    }

    /// The OpenAPI document as JSON, with the webhooks of the current catalog.
    pub(crate) async fn document(&self, pool: &hookfleet_store::Pool) -> ApiResult<Bytes> {
        let catalog = self.get(pool).await?;
        let mut cached = self.document.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((of, doc)) = cached.as_ref() {
            if Arc::ptr_eq(of, &catalog) {
                return Ok(doc.clone());
            }
        }
        let doc = Bytes::from(crate::docs::document(&catalog).to_string());
        *cached = Some((catalog, doc.clone()));
        Ok(doc)
    }
}

/// An event, accepted.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The event id (sent to receivers as `webhook-id`).
    #[schema(example = "evt_01JDX3MGVQ8K2Z7T4R6N1B9C5D")]
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

/// Publish an event.
///
/// Accepts one envelope and answers 202 only once RabbitMQ has confirmed it.
/// A retried POST with the same envelope `id` or `Idempotency-Key` carries the
/// same event id, and the router never creates a second delivery for it. A
/// tenant key publishes for its own tenant only. The request's `traceparent`
/// and `tracestate` go on with the event.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    operation_id = "ingestEvent",
    tag = "events",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters: the same key in the same scope always gives the same event id, so a retried POST is never a second event."),
        ("traceparent" = Option<String>, Header, description = "W3C Trace Context: the event's trace continues from it."),
        ("tracestate" = Option<String>, Header, description = "W3C Trace Context, with `traceparent`."),
    ),
    request_body = hookfleet_core::envelope::Incoming,
    responses((status = 202, description = "Accepted: RabbitMQ confirmed the event.", body = Accepted)),
)]
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

/// Add an event type to the catalog.
///
/// The schema must compile and the example match it. Admin key only.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/events",
    operation_id = "createEventType",
    tag = "events",
    request_body = NewEventType,
    responses(
        (status = 201, description = "Created.", body = EventType),
        (status = 403, description = "Only the admin key may do this.", body = ErrorBody),
        (status = 409, description = "A type of this name exists already.", body = ErrorBody),
    ),
)]
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

/// Update or deprecate an event type.
///
/// Changes the fields given; a new schema must still accept the example.
/// Admin key only.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/events/{name}",
    operation_id = "updateEventType",
    tag = "events",
    params(("name" = String, Path, description = "The event type's name.")),
    request_body = EventTypePatch,
    responses(
        (status = 200, description = "The type as it is now.", body = EventType),
        (status = 403, description = "Only the admin key may do this.", body = ErrorBody),
        (status = 404, description = "No such event type.", body = ErrorBody),
    ),
)]
pub async fn update_type(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    axum::extract::Path(name): axum::extract::Path<String>,
    crate::error::JsonBody(p): crate::error::JsonBody<EventTypePatch>,
) -> ApiResult<Json<EventType>> {
    caller.service().require_admin()?;
    Ok(Json(update_event_type(st.ctx(), &name, p).await?))
}
