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
