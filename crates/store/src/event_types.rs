//! The event catalog's rows (`event_types`): listing, adding and changing
//! types. The compiled form the router and ingest check against is
//! [`crate::catalog`].
use anyhow::Context as _;
use deadpool_postgres::Pool;
use serde::Serialize;
use std::collections::HashSet;

/// An event type as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(description = "An event type of the catalog.")]
pub struct EventType {
    #[schema(example = "match.found")]
    pub name: String,
    pub description: String,
    /// The JSON Schema that every event's `data` must match.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// An example `data`, matching the schema; test sends use it.
    #[schema(value_type = Object)]
    pub example: serde_json::Value,
    /// A deprecated type is refused at ingest and for new subscriptions.
    pub deprecated: bool,
    /// The type's own retry schedule (delays between attempts); null: the
    /// default. An endpoint's own schedule wins over it.
    pub retry_schedule: Option<Vec<String>>,
}

/// A type to add (checked by the caller).
#[derive(Debug, Clone)]
pub struct NewType<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub schema: &'a serde_json::Value,
    pub example: &'a serde_json::Value,
    /// Stored form (`5s,1m`).
    pub retry_schedule: Option<&'a str>,
}

/// A change to a type: `None` leaves a field as it is.
#[derive(Debug, Clone)]
pub struct TypeChange<'a> {
    pub description: Option<&'a str>,
    pub schema: &'a serde_json::Value,
    pub example: &'a serde_json::Value,
    pub deprecated: Option<bool>,
    /// `Some(None)` clears the schedule.
    pub retry_schedule: Option<Option<&'a str>>,
}

const COLUMNS: &str = "name, description, schema, example, deprecated, retry_schedule";

fn from_row(r: &tokio_postgres::Row) -> EventType {
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

/// Every type, by name.
pub async fn list(pool: &Pool) -> anyhow::Result<Vec<EventType>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM event_types ORDER BY name"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// One type.
pub async fn get(pool: &Pool, name: &str) -> anyhow::Result<Option<EventType>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM event_types WHERE name = $1"),
            &[&name],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Adds a type; `None` when one of that name exists.
pub async fn insert(pool: &Pool, t: &NewType<'_>) -> anyhow::Result<Option<EventType>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO event_types (name, description, schema, example, retry_schedule) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
            ),
            &[&t.name, &t.description, t.schema, t.example, &t.retry_schedule],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Changes a type; `None` when there is none of that name.
pub async fn update(
    pool: &Pool,
    name: &str,
    c: &TypeChange<'_>,
) -> anyhow::Result<Option<EventType>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            &format!(
                "UPDATE event_types SET description = COALESCE($2, description), schema = $3, example = $4,
                        deprecated = COALESCE($5, deprecated),
                        retry_schedule = CASE WHEN $6 THEN $7 ELSE retry_schedule END, updated_at = now()
                 WHERE name = $1 RETURNING {COLUMNS}"
            ),
            &[
                &name,
                &c.description,
                c.schema,
                c.example,
                &c.deprecated,
                &c.retry_schedule.is_some(),
                &c.retry_schedule.flatten(),
            ],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// The first of `names` that is not in the catalog.
pub async fn first_unknown(pool: &Pool, names: &[&str]) -> anyhow::Result<Option<String>> {
    if names.is_empty() {
        return Ok(None);
    }
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT name FROM event_types WHERE name = ANY($1)",
            &[&names],
        )
        .await?;
    let known: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(names
        .iter()
        .find(|n| !known.contains(**n))
        .map(|n| (*n).to_owned()))
}

/// A type's example payload (test sends).
pub async fn example(pool: &Pool, name: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    Ok(client
        .query_opt("SELECT example FROM event_types WHERE name = $1", &[&name])
        .await?
        .map(|r| r.get(0)))
}
