//! The endpoint repository: create, read, pause/resume, delete. Every write fires
//! the `hookfleet_config` notification through a trigger, so routers and workers
//! pick the change up at once.
use anyhow::Context as _;
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use tokio_postgres::Row;

/// One signing secret as stored; `expires_at` is set on the old secret of a rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSecret {
    pub secret: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// An endpoint as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub id: String,
    pub tenant_id: Option<String>,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub is_active: bool,
    #[serde(skip)]
    pub secrets: Vec<StoredSecret>,
    pub headers: BTreeMap<String, String>,
    pub rate_limit: Option<i32>,
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What it takes to create an endpoint; validated by the caller.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub id: String,
    pub tenant_id: Option<String>,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub is_active: bool,
    pub secret: String,
    pub headers: BTreeMap<String, String>,
}

const COLUMNS: &str =
    "id, tenant_id, url, description, event_types, is_active, secrets, headers, rate_limit, disabled_reason, created_at, updated_at";

pub(crate) fn from_row(r: &Row) -> anyhow::Result<Endpoint> {
    Ok(Endpoint {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        event_types: r.try_get("event_types")?,
        is_active: r.try_get("is_active")?,
        secrets: serde_json::from_value(r.try_get("secrets")?).context("endpoints.secrets")?,
        headers: serde_json::from_value(r.try_get("headers")?).context("endpoints.headers")?,
        rate_limit: r.try_get("rate_limit")?,
        disabled_reason: r.try_get("disabled_reason")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Inserts an endpoint (creating its tenant when new) and returns it.
pub async fn create(pool: &Pool, new: &NewEndpoint) -> anyhow::Result<Endpoint> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    if let Some(t) = &new.tenant_id {
        tx.execute("INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING", &[t]).await?;
    }
    let secrets = serde_json::to_value([StoredSecret { secret: new.secret.clone(), expires_at: None }])?;
    let headers = serde_json::to_value(&new.headers)?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO endpoints (id, tenant_id, url, description, event_types, is_active, secrets, headers)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
            ),
            &[&new.id, &new.tenant_id, &new.url, &new.description, &new.event_types, &new.is_active, &secrets, &headers],
        )
        .await
        .context("inserting the endpoint")?;
    tx.commit().await?;
    from_row(&row)
}

/// Every endpoint, or one tenant's (`Some(None)` = the tenant-less scope).
pub async fn list(pool: &Pool, tenant: Option<Option<&str>>) -> anyhow::Result<Vec<Endpoint>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = match tenant {
        None => client.query(&format!("SELECT {COLUMNS} FROM endpoints ORDER BY id"), &[]).await?,
        Some(t) => {
            client
                .query(&format!("SELECT {COLUMNS} FROM endpoints WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY id"), &[&t])
                .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// One endpoint by id.
pub async fn get(pool: &Pool, id: &str) -> anyhow::Result<Option<Endpoint>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client.query_opt(&format!("SELECT {COLUMNS} FROM endpoints WHERE id = $1"), &[&id]).await?;
    row.as_ref().map(from_row).transpose()
}

/// Pauses (`false`, with a reason) or resumes (`true`) an endpoint. Paused
/// endpoints keep their queue: deliveries wait instead of failing.
pub async fn set_active(pool: &Pool, id: &str, active: bool, reason: Option<&str>) -> anyhow::Result<bool> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let n = client
        .execute(
            "UPDATE endpoints SET is_active = $2, disabled_reason = CASE WHEN $2 THEN NULL ELSE $3 END, updated_at = now()
             WHERE id = $1",
            &[&id, &active, &reason],
        )
        .await?;
    Ok(n == 1)
}

/// Deletes an endpoint row; its pending deliveries are marked `dead`. The caller
/// moves what is left in its queue to `hookfleet.dead` and removes the queue.
pub async fn delete(pool: &Pool, id: &str) -> anyhow::Result<bool> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    let n = tx.execute("DELETE FROM endpoints WHERE id = $1", &[&id]).await?;
    tx.execute("UPDATE deliveries SET status = 'dead' WHERE endpoint_id = $1 AND status = 'pending'", &[&id]).await?;
    tx.commit().await?;
    Ok(n == 1)
}
