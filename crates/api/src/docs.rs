//! The OpenAPI 3.1 document, generated from the code (docs/ARCHITECTURE.md
//! §26), served at `/api/v1/openapi.json`, and `/docs`, a self-contained page
//! that renders it and lets you try each call (no CDN: the machine may be
//! offline).
//!
//! - Each handler carries `#[utoipa::path]`: method, path, operationId, tag,
//!   parameters, request body and its own answers; its doc comment is the
//!   summary (first line) and the description (the rest).
//! - Each type a handler takes or answers derives `utoipa::ToSchema` (or
//!   `IntoParams` for a query) where it is defined, in `hookfleet-core`,
//!   `-store`, `-service` or here; its doc comments describe it.
//! - [`ApiDoc`] lists the handlers; [`Finish`] adds what every operation
//!   shares: the bearer scheme, the error answers that its extractors can give
//!   (401, 503, and 400/413/415/422 for a JSON body, 422 for parameters), and
//!   the `Hookfleet-Tenant` header on tenant-scoped operations.
//! - [`document`] adds, at request time, one OpenAPI 3.1 `webhooks` entry per
//!   active type of the catalog: the envelope with that type's `data` schema,
//!   and the Standard Webhooks headers.
//!
//! The sync test below keeps [`ApiDoc`] and [`crate::router`] the same set of
//! routes.
use crate::error::{ApiResult, ErrorBody};
use crate::AppState;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use hookfleet_store::catalog::Catalog;
use serde_json::{json, Map, Value};
use sha2::Digest as _;
use std::sync::Arc;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, ResponseBuilder};
use utoipa::OpenApi as _;

/// The REST API's document, without the webhooks (which come from the
/// catalog, [`document`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "hookfleet API",
        description = "Webhooks management, delivery history, dead letters, the event catalog and HTTP event \
                       ingest of hookfleet, a webhook delivery fleet.\n\n\
                       Every call needs `Authorization: Bearer <key>`, except this document and `/docs`. \
                       An admin key (`api.admin_keys`) manages tenants and the event catalog and acts on the \
                       tenant-less scope, or on a tenant's with the `Hookfleet-Tenant` header; a tenant key \
                       (`hfk_…`) sees and acts on its own tenant only.\n\n\
                       Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`, where `field` names \
                       the input at fault. A 503 (with `Retry-After`) means PostgreSQL or RabbitMQ is \
                       unreachable: retry later.\n\n\
                       The `webhooks` section describes what hookfleet sends to your endpoints: one entry per \
                       event type of this installation's catalog, signed with the Standard Webhooks scheme.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/", description = "The API that serves this document.")),
    paths(
        crate::webhooks::create,
        crate::webhooks::list,
        crate::webhooks::get,
        crate::webhooks::update,
        crate::webhooks::delete,
        crate::webhooks::secret,
        crate::webhooks::rotate,
        crate::webhooks::test,
        crate::deliveries::list,
        crate::deliveries::list_all,
        crate::deliveries::get,
        crate::deliveries::resend,
        crate::deliveries::stats,
        crate::deliveries::activity,
        crate::dead_letters::list,
        crate::dead_letters::show,
        crate::dead_letters::replay,
        crate::dead_letters::replays,
        crate::dead_letters::replay_status,
        crate::dead_letters::cancel_replay,
        crate::dead_letters::purge,
        crate::dead_letters::recover,
        crate::events::catalog,
        crate::events::create_type,
        crate::events::update_type,
        crate::events::ingest,
        crate::tenants::create,
        crate::tenants::list,
        crate::tenants::get,
        crate::tenants::delete,
        crate::tenants::create_key,
        crate::tenants::list_keys,
        crate::tenants::revoke_key,
        crate::tenants::portal_link,
        openapi,
        page,
    ),
    components(schemas(ErrorBody, hookfleet_core::Envelope)),
    modifiers(&Finish),
    security(("bearer" = [])),
    tags(
        (name = "webhooks", description = "Webhooks (endpoints): where events are delivered, their signing secrets, test sends."),
        (name = "deliveries", description = "Delivery history with every attempt, resends, stats and activity."),
        (name = "dead-letters", description = "Deliveries that ran out of attempts: list, inspect, replay, purge, recover."),
        (name = "events", description = "The event catalog (types and their JSON Schemas) and publishing events over HTTP."),
        (name = "tenants", description = "Tenants, their API keys and portal links (admin key, except a tenant's own portal link)."),
        (name = "docs", description = "This document and the interactive page that renders it."),
        (name = "receiving", description = "What hookfleet sends to your endpoints: one webhook per event type of the catalog."),
    ),
)]
pub struct ApiDoc;

/// What every operation shares, added once here instead of on each handler:
/// the bearer scheme, the error answers of the extractors and of the
/// service layer's outages, and the reusable responses they point to.
pub struct Finish;

/// The reusable error answers (`components.responses`): name, status, description.
const ERRORS: &[(&str, &str, &str)] = &[
    (
        "BadRequest",
        "400",
        "The body is not JSON (`malformed_json`) or could not be read (`bad_request`).",
    ),
    (
        "Unauthorized",
        "401",
        "Missing or invalid `Authorization: Bearer <key>`.",
    ),
    (
        "PayloadTooLarge",
        "413",
        "The body is over the size limit (`delivery.max_payload_bytes` and 16 KiB).",
    ),
    (
        "UnsupportedMediaType",
        "415",
        "The body was not sent with `Content-Type: application/json`.",
    ),
    (
        "ValidationError",
        "422",
        "A body field, a parameter or a header is invalid; `field` names it.",
    ),
    (
        "TenantForbidden",
        "403",
        "A tenant key named another tenant in `Hookfleet-Tenant`.",
    ),
    (
        "TenantNotFound",
        "404",
        "`Hookfleet-Tenant` names no tenant.",
    ),
    (
        "Unavailable",
        "503",
        "PostgreSQL or RabbitMQ is unreachable; retry after `Retry-After` seconds.",
    ),
];

impl utoipa::Modify for Finish {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin key (`api.admin_keys`) or a tenant's API key (`hfk_…`).",
                    ))
                    .build(),
            ),
        );
        for (name, _, description) in ERRORS {
            let error = RefOr::Ref(Ref::from_schema_name("Error"));
            let response = ResponseBuilder::new().description(*description).content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(error))
                    .build(),
            );
            let response = if *name == "Unavailable" {
                response.header(
                    "Retry-After",
                    utoipa::openapi::HeaderBuilder::new()
                        .schema(utoipa::openapi::schema::Object::with_type(
                            utoipa::openapi::schema::Type::Integer,
                        ))
                        .description(Some("Seconds to wait before retrying."))
                        .build(),
                )
            } else {
                response
            };
            components
                .responses
                .insert((*name).to_owned(), RefOr::T(response.build()));
        }
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                if tenant_scoped(op) {
                    tenant_header(op);
                }
                shared_errors(op);
            }
        }
    }
}

/// Every operation of a path item.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The tags whose operations act on a tenant's scope, and so take the
/// `Hookfleet-Tenant` header (`crate::auth`); and ingest, which publishes for
/// that tenant.
const TENANT_SCOPED_TAGS: &[&str] = &["webhooks", "deliveries", "dead-letters"];

fn tenant_scoped(op: &Operation) -> bool {
    op.operation_id.as_deref() == Some("ingestEvent")
        || op
            .tags
            .iter()
            .flatten()
            .any(|t| TENANT_SCOPED_TAGS.contains(&t.as_str()))
}

/// The optional `Hookfleet-Tenant` header, and what it can answer: 422 for
/// an invalid value, 404 for an unknown tenant, 403 for a tenant key that
/// names another.
fn tenant_header(op: &mut Operation) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let header = ParameterBuilder::new()
        .name("Hookfleet-Tenant")
        .parameter_in(ParameterIn::Header)
        .required(utoipa::openapi::Required::False)
        .description(Some(
            "With the admin key: act for this tenant, in its scope, as its own key would \
             (404 when the tenant does not exist). With a tenant key: may name only the key's own \
             tenant (403 otherwise). Absent: the admin key works on the tenant-less scope. An \
             invalid value is a 422 naming `Hookfleet-Tenant`.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9._-]{1,64}$"))
                .examples([serde_json::json!("acme")]),
        ))
        .build();
    op.parameters.get_or_insert_with(Vec::new).push(header);
    for (status, name) in [("403", "TenantForbidden"), ("404", "TenantNotFound")] {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
    }
}

/// Adds to `op` the errors its extractors and the service layer can answer,
/// unless the handler's annotation describes that status itself: 401 and
/// 503 on every operation that takes a key (`crate::auth`, and the database
/// behind every handler); 400, 413, 415 and 422 with a JSON body
/// (`crate::error::JsonBody`); 422 with parameters (`QueryParams`, and the
/// path guard, `crate::guard`).
fn shared_errors(op: &mut Operation) {
    // No `security` of its own: the document's, the bearer key.
    let keyed = op.security.is_none();
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();
    // An optional body is read as bytes (empty: absent), whatever its
    // content type: no 415.
    let typed_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.required == Some(utoipa::openapi::Required::True));
    let mut add = |status: &str, name: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
    };
    if has_body {
        add("400", "BadRequest");
        add("413", "PayloadTooLarge");
        if typed_body {
            add("415", "UnsupportedMediaType");
        }
    }
    if has_body || has_params {
        add("422", "ValidationError");
    }
    if keyed {
        add("401", "Unauthorized");
        add("503", "Unavailable");
    }
}

/// Declares the schema of a page of `$item`, the JSON of a
/// `hookfleet_service::Page<$item>`. (utoipa writes a generic type's
/// argument inline, so `Page<Webhook>` would repeat all of `Webhook`; a
/// page type of its own refers to it. `pages_are_pages` checks the fields.)
macro_rules! page_schema {
    ($name:ident, $item:ty, $what:literal) => {
        #[doc = concat!("One page of ", $what, ".")]
        #[derive(utoipa::ToSchema)]
        pub struct $name {
            pub data: Vec<$item>,
            /// Pass it as `cursor` for the next page; null on the last page.
            pub next_cursor: Option<String>,
        }
    };
}

page_schema!(
    WebhookPage,
    hookfleet_service::endpoints::Webhook,
    "webhooks"
);
page_schema!(
    DeliveryPage,
    hookfleet_service::deliveries::Delivery,
    "deliveries"
);
page_schema!(
    ScopedDeliveryPage,
    hookfleet_service::deliveries::ScopedDelivery,
    "deliveries, each with its webhook"
);
page_schema!(
    EventTypePage,
    hookfleet_store::event_types::EventType,
    "event types"
);
page_schema!(
    ReplayPage,
    hookfleet_store::dead_letters::Replay,
    "dead-letter replays"
);
page_schema!(TenantPage, hookfleet_store::tenants::Tenant, "tenants");
page_schema!(
    ApiKeyInfoPage,
    hookfleet_store::tenants::KeyInfo,
    "API keys"
);

/// The document without `webhooks`, as JSON (built once).
pub fn base() -> &'static Value {
    static BASE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        optional_bodies(&mut doc);
        // The filter grammar's schemas sit beside its parser, as JSON.
        if let Some(schemas) = doc
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            for (name, schema) in hookfleet_core::filter::json_schemas() {
                schemas.insert(name.to_owned(), schema);
            }
        }
        doc
    })
}

/// An optional request body (`request_body = Option<T>`) is `T` with
/// `required: false`, not `T` or JSON `null`: an empty body is what the
/// handler takes as absent.
fn optional_bodies(doc: &mut Value) {
    let null = json!({"type": "null"});
    for item in doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            let Some(body) = op.get_mut("requestBody") else {
                continue;
            };
            if body["required"] == true {
                continue;
            }
            for media in body["content"]
                .as_object_mut()
                .into_iter()
                .flat_map(|c| c.values_mut())
            {
                let one_of = media["schema"]["oneOf"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if let [a, b] = one_of.as_slice() {
                    if a == &null || b == &null {
                        media["schema"] = if a == &null { b.clone() } else { a.clone() };
                    }
                }
            }
        }
    }
}

/// The whole document: [`base`] with one `webhooks` entry per active type of
/// `catalog`.
pub fn document(catalog: &Catalog) -> Value {
    let mut doc = base().clone();
    let envelope = doc["components"]["schemas"]["Envelope"].clone();
    let mut webhooks = Map::new();
    let mut schemas = Map::new();
    for (name, t) in catalog.described() {
        let schema_name = format!("event.{name}");
        let pointer = format!("#/components/schemas/{schema_name}/properties/data");
        // The envelope's schema with this type's `type` and `data`: a schema
        // of its own rather than `allOf` the envelope, which generators
        // cannot merge (`type` a string there, a constant here).
        let mut payload = envelope.clone();
        payload["description"] =
            format!("The body of a `{name}` delivery: the envelope, with this type's `data`.")
                .into();
        let mut kind = envelope["properties"]["type"].clone();
        kind["const"] = name.clone().into();
        kind["examples"] = json!([name]);
        if let Some(k) = kind.as_object_mut() {
            k.remove("example");
        }
        payload["properties"]["type"] = kind;
        let mut data = embeddable(&t.schema, &pointer);
        if let (Some(d), false) = (data.as_object_mut(), t.description.trim().is_empty()) {
            d.entry("description").or_insert_with(|| {
                format!("The payload of `{name}`: {}", t.description.trim()).into()
            });
        }
        payload["properties"]["data"] = data;
        payload["examples"] = json!([{
            "id": "evt_01JDX3MGVQ8K2Z7T4R6N1B9C5D",
            "type": name,
            "timestamp": "2026-11-28T12:00:00Z",
            "tenant_id": "acme",
            "data": t.example,
        }]);
        schemas.insert(schema_name.clone(), payload);
        webhooks.insert(name.clone(), webhook(name, &t.description, &schema_name));
    }
    if let Some(s) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        s.extend(schemas);
    }
    doc["webhooks"] = Value::Object(webhooks);
    doc
}

/// A catalog schema made fit to sit inside the document at `pointer`: its
/// own `$schema` and `$id` dropped (the document's dialect applies), and
/// its local references (`#/$defs/…`, `#/definitions/…`) made to point
/// where it now is.
fn embeddable(schema: &Value, pointer: &str) -> Value {
    fn rebase(v: &mut Value, pointer: &str) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    match v {
                        Value::String(r) if k == "$ref" && r.starts_with('#') => {
                            *r = format!("{pointer}{}", &r[1..]);
                        }
                        _ => rebase(v, pointer),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| rebase(v, pointer)),
            _ => {}
        }
    }
    let mut s = schema.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("$schema");
        m.remove("$id");
    }
    rebase(&mut s, pointer);
    s
}

/// The `webhooks` entry of one event type.
fn webhook(name: &str, description: &str, schema_name: &str) -> Value {
    let header = |name: &str, required: bool, description: &str, example: &str| {
        json!({
            "name": name, "in": "header", "required": required, "description": description,
            "schema": {"type": "string"}, "example": example,
        })
    };
    let about = if description.trim().is_empty() {
        String::new()
    } else {
        format!("{}\n\n", description.trim())
    };
    json!({
        "post": {
            "operationId": format!("webhook_{name}"),
            "summary": format!("A `{name}` event"),
            "description": format!(
                "{about}hookfleet POSTs this to each active webhook subscribed to `{name}` (or to `*`) \
                 whose filter the event passes. Verify the signature on the raw body before parsing it, \
                 and dedupe on `webhook-id`: delivery is at least once."),
            "tags": ["receiving"],
            "security": [],
            "parameters": [
                header("webhook-id", true, "The event id, the same as the body's `id`: the key to dedupe on. Unchanged across retries, resends and replays.", "evt_01JDX3MGVQ8K2Z7T4R6N1B9C5D"),
                header("webhook-timestamp", true, "When this attempt was signed, in Unix seconds. Refuse one more than 5 minutes from your clock.", "1795867201"),
                header("webhook-signature", true, "`v1,<base64 HMAC-SHA256>` of `<webhook-id>.<webhook-timestamp>.<body>` with the webhook's secret; during a rotation one per valid secret, separated by spaces.", "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="),
                header("traceparent", false, "W3C Trace Context, when the event came with a trace or hookfleet exports traces; a receiver that uses OpenTelemetry joins the trace.", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ],
            "requestBody": {
                "required": true,
                "description": "The event envelope, compact UTF-8 JSON.",
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}},
            },
            "responses": {
                "2XX": {"description": "Received: the delivery succeeded."},
                "410": {"description": "Gone: the webhook is disabled at once and this delivery goes to the dead letters without a retry. Answer it only to mean \"stop sending\"."},
                "429": {"description": "Overloaded: this worker pauses for `Retry-After` (at most 5 min), and the retry spends no attempt. 502, 503 and 504 do the same."},
                "default": {"description": "Any other answer, a timeout or no answer: a failure, retried on the retry schedule, then dead-lettered."},
            },
        }
    })
}

/// Get this OpenAPI document.
///
/// Generated from the handlers and types (`utoipa`), with one OpenAPI 3.1
/// `webhooks` entry per active event type of the catalog. No key needed.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "docs",
    security(()),
    responses(
        (status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = Object),
        (status = 503, description = "PostgreSQL is unreachable (the webhooks come from its catalog); retry later.", body = ErrorBody),
    ),
)]
pub async fn openapi(State(st): State<Arc<AppState>>) -> ApiResult<Response> {
    let body = st.types.document(&st.pool).await?;
    Ok(([("content-type", "application/json")], body).into_response())
}

const PAGE: &str = include_str!("docs.html");

/// The page's Content-Security-Policy: its one inline script and one inline
/// style by hash, `fetch` to this origin only, and no framing.
fn csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        let hash = |open: &str, close: &str| {
            let inner = PAGE
                .split_once(open)
                .and_then(|(_, rest)| rest.split_once(close))
                .map_or("", |(inner, _)| inner);
            let d = sha2::Sha256::digest(inner.as_bytes());
            format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(d))
        };
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash("<script>", "</script>"),
            hash("<style>", "</style>"),
        )
    })
}

/// The interactive documentation page.
///
/// Lists every operation of the document and lets you try each with your
/// key. Self-contained: it loads nothing from elsewhere. No key needed.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "docs",
    security(()),
    responses(
        (status = 200, description = "The HTML page.", content_type = "text/html", body = String),
    ),
)]
pub async fn page() -> impl IntoResponse {
    (
        [
            ("content-security-policy", csp()),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ],
        Html(PAGE),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every route registered in `crate::router` (read from its source), as
    /// `method path`.
    fn routes() -> BTreeSet<String> {
        let src = include_str!("lib.rs");
        let mut routes = BTreeSet::new();
        // Each `.route(...)` call, however rustfmt wraps it: scan to its closing paren.
        for (start, _) in src.match_indices(".route(") {
            let mut depth = 0;
            let mut end = start;
            for (i, c) in src[start..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = start + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call: String = src[start..end].split_whitespace().collect();
            let path = call.split('"').nth(1).unwrap_or_default();
            for m in ["get", "post", "patch", "delete", "put"] {
                if call.contains(&format!("{m}(")) {
                    routes.insert(format!("{m} {path}"));
                }
            }
        }
        routes
    }

    /// Every route of `crate::router` is in the generated document with the
    /// same methods, and the document names nothing else: a handler added
    /// without its `#[utoipa::path]` (or left out of `ApiDoc`), or an
    /// annotation whose path or method is not the route's, fails here.
    #[test]
    fn openapi_matches_the_router() {
        let routes = routes();
        let doc = super::base();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for m in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                if m != "parameters" {
                    documented.insert(format!("{m} {path}"));
                }
            }
        }
        assert!(routes.len() > 10, "found the routes: {routes:?}");
        assert_eq!(
            routes, documented,
            "routes and the OpenAPI document disagree"
        );
    }

    /// Each operation has what the linters and the client generators need.
    #[test]
    fn every_operation_is_complete() {
        let doc = super::base();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (m, op) in item.as_object().into_iter().flatten() {
                let at = format!("{m} {path}");
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(
                    !id.is_empty() && ids.insert(id.to_owned()),
                    "{at}: operationId {id:?}"
                );
                for k in ["summary", "description"] {
                    let text = op[k].as_str().unwrap_or_default();
                    assert!(!text.trim().is_empty(), "{at}: no {k}");
                }
                assert!(
                    !op["summary"].as_str().unwrap_or_default().contains('\n'),
                    "{at}: a summary is one line"
                );
                assert_eq!(
                    op["tags"].as_array().map(Vec::len),
                    Some(1),
                    "{at}: one tag"
                );
                let responses = op["responses"].as_object().cloned().unwrap_or_default();
                assert!(responses.keys().any(|s| s.starts_with('2')), "{at}: no 2xx");
                let public = ["/api/v1/openapi.json", "/docs"].contains(&path.as_str());
                // `Hookfleet-Tenant` on exactly the tenant-scoped operations.
                let tag = op["tags"][0].as_str().unwrap_or_default();
                let scoped = super::TENANT_SCOPED_TAGS.contains(&tag) || id == "ingestEvent";
                let has_header = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == "Hookfleet-Tenant" && p["in"] == "header");
                assert_eq!(has_header, scoped, "{at}: Hookfleet-Tenant");
                // The two public GETs have no client error to answer
                // (tests/openapi-lint/.redocly.lint-ignore.yaml says so too).
                assert!(
                    public || responses.keys().any(|s| s.starts_with('4')),
                    "{at}: no 4xx"
                );
                if !public {
                    assert!(op.get("security").is_none(), "{at}: bearer, the document's");
                    for s in ["401", "503"] {
                        assert!(responses.contains_key(s), "{at}: no {s}");
                    }
                }
                if op.get("requestBody").is_some() {
                    for s in ["400", "413", "422"] {
                        assert!(responses.contains_key(s), "{at}: body but no {s}");
                    }
                }
                if path.contains('{') {
                    assert!(
                        responses.contains_key("422"),
                        "{at}: path parameter but no 422"
                    );
                    assert!(
                        public || responses.contains_key("404"),
                        "{at}: an id in the path, but no 404"
                    );
                }
            }
        }
    }

    /// Every `$ref` of the document (with a catalog's webhooks too) resolves,
    /// and every component is used.
    #[test]
    fn every_reference_resolves() {
        let doc = super::base();
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/").skip(1) {
            let pointer = part.split('"').next().unwrap_or_default();
            assert!(
                doc.pointer(&format!("/{pointer}")).is_some(),
                "dangling $ref #/{pointer}"
            );
        }
        for kind in ["schemas", "responses"] {
            for name in doc["components"][kind]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(n, _)| n)
            {
                assert!(
                    text.contains(&format!("\"#/components/{kind}/{name}\"")),
                    "unused component {kind}/{name}"
                );
            }
        }
    }

    /// A catalog schema's own references point where it sits in the document.
    #[test]
    fn an_embedded_schema_keeps_its_references() {
        let schema = serde_json::json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$id": "https://example.com/x",
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/a"}, "b": {"$ref": "https://example.com/b"}},
            "$defs": {"a": {"type": "integer"}},
        });
        let e = super::embeddable(&schema, "#/components/schemas/event.x/properties/data");
        assert!(e.get("$schema").is_none() && e.get("$id").is_none());
        assert_eq!(
            e["properties"]["a"]["$ref"],
            "#/components/schemas/event.x/properties/data/$defs/a"
        );
        assert_eq!(e["properties"]["b"]["$ref"], "https://example.com/b");
    }

    /// Each page schema has the fields a `Page` serializes.
    #[test]
    fn pages_are_pages() {
        let page = hookfleet_service::Page::<u8> {
            data: vec![],
            next_cursor: None,
        };
        let fields: BTreeSet<String> = serde_json::to_value(page)
            .unwrap_or_default()
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        let doc = super::base();
        for name in [
            "WebhookPage",
            "DeliveryPage",
            "ScopedDeliveryPage",
            "EventTypePage",
            "ReplayPage",
            "TenantPage",
            "ApiKeyInfoPage",
        ] {
            let props: BTreeSet<String> = doc["components"]["schemas"][name]["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect();
            assert_eq!(props, fields, "{name}");
            assert!(
                doc["components"]["schemas"][name]["properties"]["data"]["items"]["$ref"]
                    .is_string(),
                "{name}"
            );
        }
    }

    /// The page has exactly one inline script and one inline style (what the
    /// CSP hashes), and no inline event handler attribute, which the CSP would
    /// block.
    #[test]
    fn the_csp_covers_the_page() {
        let page = super::PAGE;
        assert_eq!(page.matches("<script").count(), 1);
        assert_eq!(page.matches("<style").count(), 1);
        assert!(!page.contains(" onclick=") && !page.contains(" onload="));
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
        let csp = super::csp();
        assert_eq!(csp.matches("'sha256-").count(), 2, "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
    }
}
