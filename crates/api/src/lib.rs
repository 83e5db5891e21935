//! The management REST API (the SoundHash guide's `/api/v1/webhooks`) and HTTP
//! event ingest, served by `hookfleet api` and inside `hookfleet all`.
//!
//! The handlers are thin adapters over the service layer (`hookfleet-service`):
//! each extracts its input, calls one operation with the [`auth::Caller`], and
//! answers its result; a `ServiceError` becomes an [`error::ApiError`] in one
//! place (`From`). No SQL lives here: the service calls `hookfleet-store`.
//!
//! Layout:
//! - [`error`]: the one error shape, the mapping of `ServiceError` to it, and
//!   the JSON and query extractors that use it.
//! - [`auth`]: admin key or tenant API key → [`auth::Caller`] and its scope.
//! - [`webhooks`]: webhook CRUD, secret rotation, test sends.
//! - [`deliveries`]: delivery history, resend, stats, activity.
//! - [`dead_letters`]: `/api/v1/dead-letters…` and `/webhooks/{id}/recover`.
//! - [`events`]: the event catalog and `POST /api/v1/events` (HTTP ingest).
//! - [`tenants`]: tenants, their API keys and portal links.
//! - [`admin`], [`dlq`], [`publisher`]: the service layer's endpoint
//!   administration, replay and publisher under their former paths, for the CLI.
//! - [`docs`]: the OpenAPI document, generated from the handlers'
//!   `#[utoipa::path]` and the types' `ToSchema` (ARCHITECTURE §26), and `/docs`.
//! - [`conn`]: the listener: connection cap, header-read and idle timeouts.
//! - [`telemetry`]: request ids, access logs and the request metrics, around
//!   every route.
//! - [`guard`]: NUL and non-UTF-8 path parameters refused before any handler;
//!   every `/api` error in the JSON shape.
//! - [`portal`]: the tenant portal (`/portal`), server-rendered HTML on top of
//!   the handlers above.
#![forbid(unsafe_code)]

pub mod auth;
pub mod conn;
pub mod dead_letters;
pub mod deliveries;
pub mod docs;
pub mod error;
pub mod events;
pub mod guard;
pub mod portal;
pub mod telemetry;
pub mod tenants;
pub mod webhooks;

use hookfleet_service::publisher;
pub use hookfleet_service::{page_limit, DEFAULT_LIMIT, MAX_LIMIT};

use axum::routing::{get, post};
use hookfleet_core::Settings;
use hookfleet_store::Pool;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Shared by every handler.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    /// Every valid admin key (`api.admin_keys`).
    pub admin_keys: Vec<String>,
    pub publisher: publisher::Publisher,
    pub types: events::TypeCache,
    /// Signs portal sessions, CSRF and form tokens (`api.session_keys`, else
    /// the first admin key).
    pub signer: portal::token::Keys,
    /// Signs portal links (the first admin key) and opens them (any).
    pub links: portal::token::Keys,
    /// The live tenant API keys, kept by `serve` (`auth`).
    pub keys: Arc<hookfleet_store::key_cache::KeyCache>,
    /// When this process last wrote each key's `last_used_at`.
    pub key_uses: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How often a key's `last_used_at` is written, at most, by one process.
pub const KEY_USE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl AppState {
    /// Records that the key `id` authenticated a request: `last_used_at` is
    /// written in the background, at most once per [`KEY_USE_EVERY`] per key
    /// and process (never a write per request, never a wait for it).
    pub fn key_used(&self, id: &str) {
        let now = std::time::Instant::now();
        {
            let mut uses = self.key_uses.lock().unwrap_or_else(|p| p.into_inner());
            if uses
                .get(id)
                .is_some_and(|t| now.duration_since(*t) < KEY_USE_EVERY)
            {
                return;
            }
            // Bounded: entries of keys long unused (or revoked) go.
            if uses.len() >= 100_000 {
                uses.retain(|_, t| now.duration_since(*t) < KEY_USE_EVERY);
            }
            uses.insert(id.to_owned(), now);
        }
        let (pool, id) = (self.pool.clone(), id.to_owned());
        tokio::spawn(async move {
            if let Err(e) = hookfleet_store::tenants::touch_api_key(&pool, &id).await {
                tracing::debug!(key_id = %id, error = %e, "Could not record an API key's use.");
            }
        });
    }

    /// Whether `key` is the admin key, compared in constant time.
    pub fn is_admin_key(&self, key: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        // Every key compared, whichever matches.
        let found = self
            .admin_keys
            .iter()
            .fold(subtle::Choice::from(0), |found, k| {
                found | key.as_bytes().ct_eq(k.as_bytes())
            });
        bool::from(found)
    }

    /// What the service layer's operations work with.
    pub fn ctx(&self) -> hookfleet_service::Ctx<'_> {
        hookfleet_service::Ctx {
            settings: &self.settings,
            pool: &self.pool,
            publisher: Some(&self.publisher),
        }
    }
}

/// The API's routes. Each handler here is annotated with `#[utoipa::path]`
/// and listed in [`docs::ApiDoc`]; the sync test `docs::openapi_matches_the_router`
/// reads these `.route(...)` calls, so the table stays one function: a
/// route added elsewhere would escape that test.
pub fn router(state: Arc<AppState>) -> axum::Router {
    let body_limit = state.settings.delivery.max_payload_bytes + 16 * 1024;
    axum::Router::new()
        .route(
            "/api/v1/webhooks/events",
            get(events::catalog).post(events::create_type),
        )
        .route(
            "/api/v1/webhooks/events/{name}",
            axum::routing::patch(events::update_type),
        )
        .route(
            "/api/v1/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/api/v1/webhooks/{id}/secret", get(webhooks::secret))
        .route(
            "/api/v1/webhooks/{id}/secret/rotate",
            post(webhooks::rotate),
        )
        .route("/api/v1/webhooks/{id}/test", post(webhooks::test))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries::list))
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}",
            get(deliveries::get),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/resend",
            post(deliveries::resend),
        )
        .route("/api/v1/webhooks/{id}/stats", get(deliveries::stats))
        .route("/api/v1/webhooks/{id}/recover", post(dead_letters::recover))
        .route("/api/v1/dead-letters", get(dead_letters::list))
        .route("/api/v1/dead-letters/replay", post(dead_letters::replay))
        .route("/api/v1/dead-letters/purge", post(dead_letters::purge))
        .route("/api/v1/dead-letters/replays", get(dead_letters::replays))
        .route(
            "/api/v1/dead-letters/replays/{id}",
            get(dead_letters::replay_status),
        )
        .route(
            "/api/v1/dead-letters/replays/{id}/cancel",
            post(dead_letters::cancel_replay),
        )
        .route(
            "/api/v1/dead-letters/{delivery_id}",
            get(dead_letters::show),
        )
        .route("/api/v1/events", post(events::ingest))
        .route("/api/v1/tenants", post(tenants::create).get(tenants::list))
        .route(
            "/api/v1/tenants/{id}",
            get(tenants::get).delete(tenants::delete),
        )
        .route(
            "/api/v1/tenants/{id}/api-keys",
            post(tenants::create_key).get(tenants::list_keys),
        )
        .route(
            "/api/v1/tenants/{id}/portal-link",
            post(tenants::portal_link),
        )
        .route("/api/v1/deliveries", get(deliveries::list_all))
        .route("/api/v1/activity", get(deliveries::activity))
        .route(
            "/api/v1/api-keys/{key_id}",
            axum::routing::delete(tenants::revoke_key),
        )
        .route("/api/v1/openapi.json", get(docs::openapi))
        .route("/docs", get(docs::page))
        .merge(portal::routes())
        .fallback(|| async { error::ApiError::not_found("route") })
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(guard::guard))
        // Outermost, so it times and counts what the guard and the body limit
        // answer too. `Router::layer` wraps each route (and the fallback), so
        // the matched route template is known by then.
        .layer(axum::middleware::from_fn(telemetry::telemetry))
        .with_state(state)
}

/// Builds the state; refuses to start without an admin key.
pub fn state(settings: Arc<Settings>, pool: Pool) -> anyhow::Result<Arc<AppState>> {
    let admin_keys: Vec<String> = settings
        .api
        .admin_keys
        .iter()
        .map(|k| k.expose().to_owned())
        .collect();
    let links = portal::token::Keys::new(admin_keys.iter().map(String::as_str))
        .ok_or_else(|| anyhow::anyhow!("api.admin_keys or api.admin_key (env HOOKFLEET__API__ADMIN_KEY) must be set: the API refuses to start without one"))?;
    let signer = match portal::token::Keys::new(
        settings.api.session_keys.iter().map(|k| k.expose()),
    ) {
        Some(keys) => keys,
        None => {
            tracing::warn!(
                "api.session_keys is not set: portal sessions are signed with a key derived from the first admin key, and all of them end when it is rotated. Set api.session_keys to keep them across a rotation."
            );
            portal::token::Keys::new(admin_keys.iter().take(1).map(String::as_str))
                .ok_or_else(|| anyhow::anyhow!("no admin key"))?
        }
    };
    let publisher = publisher::Publisher::new(&settings);
    Ok(Arc::new(AppState {
        signer,
        links,
        settings,
        pool,
        admin_keys,
        publisher,
        types: Default::default(),
        keys: Default::default(),
        key_uses: Default::default(),
    }))
}

/// Serves until `shutdown`, with `api.max_connections`, `api.header_read_timeout`
/// and `api.idle_timeout` applied to every connection ([`conn`]).
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "API listening.");
    let grace = state.settings.shutdown_grace;
    tokio::spawn(
        state
            .keys
            .clone()
            .run(state.settings.database.url.clone(), shutdown.clone()),
    );
    let limits = conn::Limits::of(&state.settings.api);
    // On shutdown, requests in progress get `shutdown.grace` to finish (work they
    // started runs detached and completes anyway), then the server stops.
    conn::serve(listener, router(state), limits, shutdown, grace).await;
    Ok(())
}
