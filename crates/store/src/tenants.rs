//! Tenants and their API keys (`tenants`, `api_keys`). Only a key's SHA-256
//! hash is stored.
use anyhow::Context as _;
use deadpool_postgres::Pool;
use serde::Serialize;
use time::OffsetDateTime;

/// A tenant as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A live (unrevoked) API key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    /// `None` for a key of no tenant (only hand-written SQL makes one).
    pub tenant_id: Option<String>,
}

/// Creates a tenant; `None` when it exists already.
pub async fn create(pool: &Pool, id: &str) -> anyhow::Result<Option<Tenant>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            "INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id, created_at",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| Tenant {
        id: r.get(0),
        created_at: r.get(1),
    }))
}

/// Whether the tenant exists.
pub async fn exists(pool: &Pool, id: &str) -> anyhow::Result<bool> {
    let client = pool.get().await.context("connecting to Postgres")?;
    Ok(client
        .query_opt("SELECT 1 FROM tenants WHERE id = $1", &[&id])
        .await?
        .is_some())
}

/// Stores a new key's hash.
pub async fn insert_api_key(
    pool: &Pool,
    id: &str,
    tenant: &str,
    key_hash: &str,
) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to Postgres")?;
    client
        .execute(
            "INSERT INTO api_keys (id, tenant_id, key_hash) VALUES ($1, $2, $3)",
            &[&id, &tenant, &key_hash],
        )
        .await?;
    Ok(())
}

/// The live key with this hash.
pub async fn live_api_key(pool: &Pool, key_hash: &str) -> anyhow::Result<Option<ApiKey>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            "SELECT id, tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            &[&key_hash],
        )
        .await?;
    Ok(row.map(|r| ApiKey {
        id: r.get(0),
        tenant_id: r.get(1),
    }))
}

/// Revokes a key, and in the same statement ends the portal sessions opened
/// with it; the key's hash, or `None` when there was no live key with that id.
/// [`crate::key_cache::revoke`] runs it and waits for the API processes' key
/// caches.
pub async fn revoke_api_key(
    client: &tokio_postgres::Client,
    key_id: &str,
) -> anyhow::Result<Option<String>> {
    let row = client
        .query_opt(
            "WITH k AS (UPDATE api_keys SET revoked_at = now() \
                        WHERE id = $1 AND revoked_at IS NULL RETURNING id, key_hash), \
                  s AS (UPDATE portal_sessions SET ended_at = now() \
                        WHERE key_id IN (SELECT id FROM k) AND ended_at IS NULL) \
             SELECT key_hash FROM k",
            &[&key_id],
        )
        .await
        .context("revoking the key")?;
    Ok(row.map(|r| r.get(0)))
}

/// When the tenant was created (its generation: a tenant deleted and created
/// again under the same id is another one), or `None` when it does not exist.
pub async fn created_at(pool: &Pool, id: &str) -> anyhow::Result<Option<OffsetDateTime>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    Ok(client
        .query_opt("SELECT created_at FROM tenants WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0)))
}

/// A page of tenants by id, after `cursor`.
pub async fn list_page(
    pool: &Pool,
    cursor: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<Tenant>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT id, created_at FROM tenants WHERE $1::text IS NULL OR id > $1 \
             ORDER BY id LIMIT $2",
            &[&cursor, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Tenant {
            id: r.get(0),
            created_at: r.get(1),
        })
        .collect())
}

/// A tenant with what it holds.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(description = "A tenant, with how many webhooks and live API keys it has.")]
pub struct TenantDetail {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Its webhooks.
    pub webhooks: i64,
    /// Its unrevoked API keys.
    pub active_keys: i64,
}

/// One tenant and its counts (two index-only counts on the tenant's rows).
pub async fn detail(pool: &Pool, id: &str) -> anyhow::Result<Option<TenantDetail>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            "SELECT t.id, t.created_at, \
                    (SELECT count(*) FROM endpoints e WHERE e.tenant_id = t.id), \
                    (SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL) \
             FROM tenants t WHERE t.id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| TenantDetail {
        id: r.get(0),
        created_at: r.get(1),
        webhooks: r.get(2),
        active_keys: r.get(3),
    }))
}

/// An API key as listed: never the key, never its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ApiKeyInfo, description = "A tenant API key as listed: never the key, never its hash.")]
pub struct KeyInfo {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last authenticated a request (to the minute), if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked: bool,
}

/// A page of a tenant's keys (revoked ones too), by id, after `cursor`.
pub async fn list_api_keys(
    pool: &Pool,
    tenant: &str,
    cursor: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<KeyInfo>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT id, created_at, last_used_at, revoked_at FROM api_keys \
             WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
            &[&tenant, &cursor, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let revoked_at: Option<OffsetDateTime> = r.get(3);
            KeyInfo {
                id: r.get(0),
                created_at: r.get(1),
                last_used_at: r.get(2),
                revoked_at,
                revoked: revoked_at.is_some(),
            }
        })
        .collect())
}

/// The ids of a tenant's live keys.
pub async fn live_key_ids(pool: &Pool, tenant: &str) -> anyhow::Result<Vec<String>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT id FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY id",
            &[&tenant],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Records that key `id` was used, unless it was within the last minute
/// (V16's trigger does not notify the key caches for this column).
pub async fn touch_api_key(pool: &Pool, id: &str) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to Postgres")?;
    client
        .execute(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1 \
             AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            &[&id],
        )
        .await?;
    Ok(())
}

/// What [`delete_if_empty`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// It still has webhooks (one was created meanwhile): delete them first.
    HasWebhooks,
    Missing,
}

/// Ends the tenant's portal sessions, and deletes it if it has no webhook
/// left (its keys, sessions and used links go by cascade; a webhook never
/// does, for its queue must be drained to the dead letters first).
pub async fn delete_if_empty(pool: &Pool, id: &str) -> anyhow::Result<Deleted> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_one(
            "WITH d AS (DELETE FROM tenants t WHERE t.id = $1 \
                 AND NOT EXISTS (SELECT 1 FROM endpoints e WHERE e.tenant_id = t.id) RETURNING 1) \
             SELECT EXISTS (SELECT 1 FROM d), EXISTS (SELECT 1 FROM tenants WHERE id = $1)",
            &[&id],
        )
        .await?;
    let (deleted, existed): (bool, bool) = (row.get(0), row.get(1));
    Ok(match (deleted, existed) {
        (true, _) => Deleted::Deleted,
        (false, true) => Deleted::HasWebhooks,
        (false, false) => Deleted::Missing,
    })
}

/// Ends every open portal session of the tenant.
pub async fn end_sessions(pool: &Pool, id: &str) -> anyhow::Result<u64> {
    let client = pool.get().await.context("connecting to Postgres")?;
    Ok(client
        .execute(
            "UPDATE portal_sessions SET ended_at = now() WHERE tenant_id = $1 AND ended_at IS NULL",
            &[&id],
        )
        .await?)
}
