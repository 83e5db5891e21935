//! Tenant portal sign-ins (`portal_sessions`, `portal_links_used`): a session
//! row per sign-in, and each portal link recorded once used.
use anyhow::Context as _;
use deadpool_postgres::Pool;
use time::OffsetDateTime;

/// What [`open`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    Opened,
    /// The key behind the sign-in is revoked (or not the tenant's).
    KeyRevoked,
    /// The link was used already.
    LinkUsed,
    /// The tenant was deleted (or deleted and created again since the link
    /// was issued: another tenant under the same id).
    TenantGone,
}

/// A portal link being used: its id and expiry.
#[derive(Debug, Clone, Copy)]
pub struct LinkUse<'a> {
    pub id: &'a str,
    pub expires_at: OffsetDateTime,
    /// The `created_at` of the tenant the link was issued for (its
    /// generation); `None` for links issued before V16.
    pub tenant_since: Option<OffsetDateTime>,
}

/// Whether session `id` of `tenant` is open, unexpired, and its key (if any)
/// not revoked.
pub async fn is_live(pool: &Pool, id: &str, tenant: &str) -> anyhow::Result<bool> {
    let client = pool.get().await.context("connecting to Postgres")?;
    Ok(client
        .query_opt(
            "SELECT 1 FROM portal_sessions s \
             WHERE s.id = $1 AND s.tenant_id = $2 AND s.ended_at IS NULL AND s.expires_at > now() \
               AND (s.key_id IS NULL OR EXISTS (SELECT 1 FROM api_keys k \
                    WHERE k.id = s.key_id AND k.revoked_at IS NULL))",
            &[&id, &tenant],
        )
        .await?
        .is_some())
}

/// Opens session `id` for `tenant` (checking `key_id` is live, and recording
/// `link` as used) in one transaction; prunes expired rows.
pub async fn open(
    pool: &Pool,
    id: &str,
    tenant: &str,
    key_id: Option<&str>,
    expires_at: OffsetDateTime,
    link: Option<LinkUse<'_>>,
) -> anyhow::Result<Opened> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    tx.execute("DELETE FROM portal_sessions WHERE expires_at < now()", &[])
        .await?;
    tx.execute(
        "DELETE FROM portal_links_used WHERE expires_at < now()",
        &[],
    )
    .await?;
    // The tenant, locked against a concurrent delete until the commit: a
    // session never outlives its tenant, nor opens on a new tenant under a
    // deleted one's id.
    let since = link.and_then(|l| l.tenant_since);
    let tenant_ok = tx
        .query_opt(
            "SELECT 1 FROM tenants WHERE id = $1 \
             AND ($2::timestamptz IS NULL OR created_at = $2) FOR KEY SHARE",
            &[&tenant, &since],
        )
        .await?;
    if tenant_ok.is_none() {
        return Ok(Opened::TenantGone);
    }
    let n = tx
        .execute(
            "INSERT INTO portal_sessions (id, tenant_id, key_id, expires_at) \
             SELECT $1, $2, $3, $4 \
             WHERE $3::text IS NULL OR EXISTS (SELECT 1 FROM api_keys \
                   WHERE id = $3 AND tenant_id = $2 AND revoked_at IS NULL)",
            &[&id, &tenant, &key_id, &expires_at],
        )
        .await?;
    if n == 0 {
        return Ok(Opened::KeyRevoked);
    }
    if let Some(l) = link {
        let n = tx
            .execute(
                "INSERT INTO portal_links_used (id, tenant_id, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
                &[&l.id, &tenant, &l.expires_at],
            )
            .await?;
        if n == 0 {
            return Ok(Opened::LinkUsed);
        }
    }
    tx.commit().await?;
    Ok(Opened::Opened)
}

/// Ends a session (sign-out).
pub async fn end(pool: &Pool, id: &str) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to Postgres")?;
    client
        .execute(
            "UPDATE portal_sessions SET ended_at = now() WHERE id = $1 AND ended_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(())
}
