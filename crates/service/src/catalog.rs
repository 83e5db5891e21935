//! The event catalog: list the types, add one, change or deprecate one
//! (shared by `/api/v1/webhooks/events` and `hookfleet event-type`). A
//! schema must compile and the example match it; a custom retry schedule's
//! tiers are declared before the type is stored.
use crate::endpoints::present;
use crate::error::{ServiceError, ServiceResult};
use crate::{queues, Ctx, Page};
use hookfleet_store::event_types::{self as store, NewType, TypeChange};
use hookfleet_store::Pool;

pub use hookfleet_store::event_types::EventType;

/// A new type for the catalog.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EventTypeCreate)]
pub struct NewEventType {
    /// 1-128 characters of letters, digits, `.`, `_` or `-`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", example = "invoice.paid")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A JSON Schema for the events' `data`; any object when absent.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    /// An example `data` that matches the schema; `{}` when absent.
    #[schema(value_type = Option<Object>)]
    pub example: Option<serde_json::Value>,
    /// The type's own delays between attempts, e.g. `["5s", "1m", "1h"]`;
    /// null: the default schedule.
    #[schema(min_items = 1, max_items = 29)]
    pub retry_schedule: Option<Vec<String>>,
}

/// A change to a type; absent fields stay as they are.
#[derive(Debug, serde::Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EventTypeUpdate)]
pub struct EventTypePatch {
    pub description: Option<String>,
    /// A new JSON Schema; the example must match it.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub example: Option<serde_json::Value>,
    /// A deprecated type is refused at ingest and for new subscriptions.
    pub deprecated: Option<bool>,
    /// The type's own delays between attempts; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, min_items = 1, max_items = 29)]
    pub retry_schedule: Option<Option<Vec<String>>>,
}

/// Every type of the catalog, by name (one page).
pub async fn list(pool: &Pool) -> ServiceResult<Page<EventType>> {
    Ok(Page {
        data: store::list(pool).await?,
        next_cursor: None,
    })
}

fn check_retry_schedule(delays: Option<&[String]>) -> ServiceResult<Option<String>> {
    delays
        .map(|d| {
            ServiceError::check(
                "retry_schedule",
                hookfleet_core::endpoint::validate_retry_schedule(d),
            )
        })
        .transpose()
}

/// Checks a schema compiles and the example matches it.
fn check_schema(schema: &serde_json::Value, example: &serde_json::Value) -> ServiceResult<()> {
    if !schema.is_object() {
        return Err(ServiceError::invalid(
            "schema",
            "must be a JSON Schema object",
        ));
    }
    let v = hookfleet_store::catalog::compile(schema)
        .map_err(|e| ServiceError::invalid("schema", format!("does not compile: {e}")))?;
    if !example.is_object() {
        return Err(ServiceError::invalid("example", "must be a JSON object"));
    }
    if let Some(err) = hookfleet_store::catalog::first_error(&v, example) {
        return Err(ServiceError::invalid(
            "example",
            format!("does not match the schema: {err}"),
        ));
    }
    Ok(())
}

/// Adds an event type to the catalog (the caller is the admin).
pub async fn add_event_type(ctx: Ctx<'_>, b: NewEventType) -> ServiceResult<EventType> {
    ServiceError::check(
        "name",
        hookfleet_core::envelope::validate_event_type(&b.name),
    )?;
    let schema = b
        .schema
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    let example = b.example.unwrap_or_else(|| serde_json::json!({}));
    check_schema(&schema, &example)?;
    let retry = check_retry_schedule(b.retry_schedule.as_deref())?;
    queues::declare_schedule_tiers(ctx, retry.as_deref()).await?;
    let new = NewType {
        name: &b.name,
        description: &b.description,
        schema: &schema,
        example: &example,
        retry_schedule: retry.as_deref(),
    };
    store::insert(ctx.pool, &new)
        .await?
        .ok_or_else(|| ServiceError::Conflict(format!("event type `{}` already exists", b.name)))
}

/// Updates or deprecates an event type (the caller is the admin).
pub async fn update_event_type(
    ctx: Ctx<'_>,
    name: &str,
    p: EventTypePatch,
) -> ServiceResult<EventType> {
    let current = store::get(ctx.pool, name)
        .await?
        .ok_or(ServiceError::NotFound("event type"))?;
    let schema = p.schema.unwrap_or(current.schema);
    let example = p.example.unwrap_or(current.example);
    check_schema(&schema, &example)?;
    let retry = check_retry_schedule(p.retry_schedule.as_ref().and_then(|r| r.as_deref()))?;
    queues::declare_schedule_tiers(ctx, retry.as_deref()).await?;
    let change = TypeChange {
        description: p.description.as_deref(),
        schema: &schema,
        example: &example,
        deprecated: p.deprecated,
        retry_schedule: p.retry_schedule.as_ref().map(|_| retry.as_deref()),
    };
    store::update(ctx.pool, name, &change)
        .await?
        .ok_or(ServiceError::NotFound("event type"))
}
