//! The endpoint repository: create, read, pause/resume, delete. Every write fires
//! the `hookfleet_config` notification through a trigger, so routers and workers
//! pick the change up at once.
use anyhow::Context as _;
use deadpool_postgres::Pool;
use hookfleet_core::sealing::{self, Keyring};
use hookfleet_core::{Circuit, Ordering};
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
    /// The signing secrets as stored: sealed when `secrets.encryption_keys` is
    /// set. [`Endpoint::secrets`] opens them.
    #[serde(skip)]
    pub sealed_secrets: Vec<StoredSecret>,
    pub headers: BTreeMap<String, String>,
    pub metadata: serde_json::Value,
    /// Deliveries per second, all workers together; `None`: no limit.
    pub rate_limit: Option<i32>,
    /// Concurrent deliveries, all workers together; `None`: the worker's prefetch.
    pub max_in_flight: Option<i32>,
    /// The delays between attempts (`"5s,1m,1h"`); `None`: the default schedule.
    pub retry_schedule: Option<String>,
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The circuit breaker: `closed` (delivering), `open` (waiting for
    /// `next_probe_at`), `half_open` (one probe delivery is deciding).
    pub circuit: Circuit,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_probe_at: Option<OffsetDateTime>,
    /// Failures since the last success.
    pub consecutive_failures: i32,
    /// `fifo`: delivered one at a time in publish order; else `parallel`.
    pub ordering: Ordering,
    /// The content filter as its owner wrote it (`hookfleet_core::filter`);
    /// `None`: every event of the subscribed types.
    pub filter: Option<serde_json::Value>,
}

impl Endpoint {
    /// Delivered one at a time, in publish order.
    pub fn ordered(&self) -> bool {
        self.ordering == Ordering::Fifo
    }

    /// The signing secrets, opened with `keys` (see `hookfleet_core::sealing`).
    /// One that cannot be opened is logged and left empty: the endpoint is not
    /// signed with it, and a delivery with no usable secret is not sent.
    pub fn secrets(&self, keys: Option<&Keyring>) -> Vec<StoredSecret> {
        self.sealed_secrets
            .iter()
            .map(|s| StoredSecret {
                secret: sealing::open(keys, &self.id, &s.secret).unwrap_or_else(|e| {
                    tracing::error!(endpoint_id = %self.id, error = %e, "A signing secret cannot be opened.");
                    String::new()
                }),
                expires_at: s.expires_at,
            })
            .collect()
    }
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
    pub metadata: serde_json::Value,
    pub control: Control,
    /// Fixed for the endpoint's life.
    pub ordering: Ordering,
    /// A content filter, already validated (`hookfleet_core::filter`).
    pub filter: Option<serde_json::Value>,
}

/// Delivery control of an endpoint, validated by the caller.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub rate_limit: Option<i32>,
    pub max_in_flight: Option<i32>,
    pub retry_schedule: Option<String>,
}

const COLUMNS: &str =
    "id, tenant_id, url, description, event_types, is_active, secrets, headers, metadata, rate_limit, max_in_flight, retry_schedule, disabled_reason, created_at, updated_at, ordering, filter,
     COALESCE((SELECT h.circuit FROM endpoint_health h WHERE h.endpoint_id = endpoints.id), 'closed') AS circuit,
     (SELECT h.next_probe_at FROM endpoint_health h WHERE h.endpoint_id = endpoints.id) AS next_probe_at,
     COALESCE((SELECT h.consecutive_failures FROM endpoint_health h WHERE h.endpoint_id = endpoints.id), 0) AS consecutive_failures";

pub(crate) fn from_row(r: &Row) -> anyhow::Result<Endpoint> {
    Ok(Endpoint {
        sealed_secrets: serde_json::from_value(r.try_get("secrets")?)
            .context("endpoints.secrets")?,
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        event_types: r.try_get("event_types")?,
        is_active: r.try_get("is_active")?,
        headers: serde_json::from_value(r.try_get("headers")?).context("endpoints.headers")?,
        metadata: r.try_get("metadata")?,
        rate_limit: r.try_get("rate_limit")?,
        max_in_flight: r.try_get("max_in_flight")?,
        retry_schedule: r.try_get("retry_schedule")?,
        disabled_reason: r.try_get("disabled_reason")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        circuit: text_column(r, "circuit")?,
        next_probe_at: r.try_get("next_probe_at")?,
        consecutive_failures: r.try_get("consecutive_failures")?,
        ordering: text_column(r, "ordering")?,
        filter: r.try_get("filter")?,
    })
}

/// A column stored as the text of one of core's enums (`hookfleet_core::status`).
fn text_column<T>(r: &Row, column: &str) -> anyhow::Result<T>
where
    T: std::str::FromStr<Err = hookfleet_core::status::UnknownValue>,
{
    let text: &str = r.try_get(column)?;
    text.parse().with_context(|| format!("endpoints.{column}"))
}

/// Inserts an endpoint (creating its tenant when new) and returns it; `None`
/// when its tenant has `max_per_tenant` endpoints already (0: no limit). The
/// count and the insert are serialized per tenant by an advisory lock.
pub async fn create(
    pool: &Pool,
    keys: Option<&Keyring>,
    new: &NewEndpoint,
    max_per_tenant: usize,
) -> anyhow::Result<Option<Endpoint>> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    if max_per_tenant > 0 {
        // Serializes the creates of one scope, so the count below (a statement
        // after it, with a snapshot taken after the lock) sees every row of the
        // scope committed before.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('hookfleet.endpoints:' || COALESCE($1, '')))",
            &[&new.tenant_id],
        )
        .await?;
    }
    let secrets = serde_json::to_value([StoredSecret {
        secret: sealing::seal(keys, &new.id, &new.secret),
        expires_at: None,
    }])?;
    let headers = serde_json::to_value(&new.headers)?;
    // The tenant's row (if new), the count and the insert in one statement
    // (issue #16: four round trips per create instead of six). At most
    // `max_per_tenant` rows are counted, through the tenant index (`IS NOT
    // DISTINCT FROM` cannot use it: the tenant-less scope would be a scan of
    // every endpoint per create). The tenant's row is inserted by a CTE: the
    // foreign key is checked at the end of the statement, when it is there.
    let scope = match &new.tenant_id {
        Some(_) => "tenant_id = $2::text",
        None => "tenant_id IS NULL",
    };
    let limit = max_per_tenant as i64;
    let row = tx
        .query_opt(
            &format!(
                "WITH tenant AS (
                     INSERT INTO tenants (id) SELECT $2::text WHERE $2::text IS NOT NULL
                     ON CONFLICT DO NOTHING
                 )
                 INSERT INTO endpoints (id, tenant_id, url, description, event_types, is_active, secrets, headers, metadata,
                                        rate_limit, max_in_flight, retry_schedule, ordering, filter)
                 SELECT $1::text, $2::text, $3::text, $4::text, $5::text[], $6::boolean, $7::jsonb, $8::jsonb, $9::jsonb,
                        $10::integer, $11::integer, $12::text, $13::text, $14::jsonb
                  WHERE $15::bigint = 0
                     OR (SELECT count(*) FROM (SELECT 1 FROM endpoints WHERE {scope} LIMIT $15) s) < $15
                 RETURNING {COLUMNS}"
            ),
            &[&new.id, &new.tenant_id, &new.url, &new.description, &new.event_types, &new.is_active, &secrets, &headers, &new.metadata,
              &new.control.rate_limit, &new.control.max_in_flight, &new.control.retry_schedule,
              &new.ordering.as_str(), &new.filter, &limit],
        )
        .await
        .context("inserting the endpoint")?;
    let Some(row) = row else {
        return Ok(None); // the scope is at its limit; the transaction rolls back
    };
    tx.commit().await?;
    from_row(&row).map(Some)
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

/// Every endpoint, handed to `f` one at a time as its row arrives: the
/// registry's full load, which never holds all the rows, or all the
/// `Endpoint`s, at once (issue #16: at 100,000 endpoints that peak was the
/// largest thing a process ever held, and the allocator keeps it).
pub async fn for_each(pool: &Pool, mut f: impl FnMut(Endpoint)) -> anyhow::Result<()> {
    use futures::TryStreamExt as _;
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query_raw(
            &format!("SELECT {COLUMNS} FROM endpoints"),
            std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>(),
        )
        .await?;
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows.try_next().await? {
        f(from_row(&row)?);
    }
    Ok(())
}

/// The endpoints of `ids` that exist (the registry's incremental update).
pub async fn get_many(pool: &Pool, ids: &[String]) -> anyhow::Result<Vec<Endpoint>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM endpoints WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// One endpoint by id.
pub async fn get(pool: &Pool, id: &str) -> anyhow::Result<Option<Endpoint>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM endpoints WHERE id = $1"),
            &[&id],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Pauses (`false`, with a reason) or resumes (`true`) an endpoint. Paused
/// endpoints keep their queue: deliveries wait instead of failing.
pub async fn set_active(
    pool: &Pool,
    id: &str,
    active: bool,
    reason: Option<&str>,
) -> anyhow::Result<bool> {
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
    let n = tx
        .execute("DELETE FROM endpoints WHERE id = $1", &[&id])
        .await?;
    tx.execute(
        "UPDATE deliveries SET status = 'dead' WHERE endpoint_id = $1 AND status = 'pending'",
        &[&id],
    )
    .await?;
    tx.commit().await?;
    Ok(n == 1)
}

/// One endpoint within a tenant scope (`None` = tenant-less): another scope's
/// endpoint is indistinguishable from a missing one.
pub async fn get_scoped(
    pool: &Pool,
    id: &str,
    scope: Option<&str>,
) -> anyhow::Result<Option<Endpoint>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(&format!("SELECT {COLUMNS} FROM endpoints WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2"), &[&id, &scope])
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A page of a scope's endpoints, by id, after `cursor`.
pub async fn list_page(
    pool: &Pool,
    scope: Option<&str>,
    is_active: Option<bool>,
    event_type: Option<&str>,
    cursor: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<Endpoint>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM endpoints
                 WHERE tenant_id IS NOT DISTINCT FROM $1
                   AND ($2::boolean IS NULL OR is_active = $2)
                   AND ($3::text IS NULL OR $3 = ANY(event_types) OR '*' = ANY(event_types))
                   AND ($4::text IS NULL OR id > $4)
                 ORDER BY id LIMIT $5"
            ),
            &[&scope, &is_active, &event_type, &cursor, &limit],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// Fields a PATCH may change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub is_active: Option<bool>,
    pub headers: Option<BTreeMap<String, String>>,
    pub metadata: Option<serde_json::Value>,
    /// `Some(None)` clears the setting.
    pub rate_limit: Option<Option<i32>>,
    pub max_in_flight: Option<Option<i32>>,
    pub retry_schedule: Option<Option<String>>,
    /// A validated content filter; `Some(None)` removes it.
    pub filter: Option<Option<serde_json::Value>>,
}

/// Applies a patch within a scope; `None` when there is no such endpoint there.
pub async fn update(
    pool: &Pool,
    id: &str,
    scope: Option<&str>,
    p: &EndpointPatch,
) -> anyhow::Result<Option<Endpoint>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let headers = p.headers.as_ref().map(serde_json::to_value).transpose()?;
    let row = client
        .query_opt(
            &format!(
                "UPDATE endpoints SET
                    url = COALESCE($3, url),
                    description = COALESCE($4, description),
                    event_types = COALESCE($5, event_types),
                    is_active = COALESCE($6, is_active),
                    disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason WHEN $6 THEN NULL ELSE 'paused through the API' END,
                    headers = COALESCE($7, headers),
                    metadata = COALESCE($8, metadata),
                    rate_limit = CASE WHEN $9 THEN $10 ELSE rate_limit END,
                    max_in_flight = CASE WHEN $11 THEN $12 ELSE max_in_flight END,
                    retry_schedule = CASE WHEN $13 THEN $14 ELSE retry_schedule END,
                    filter = CASE WHEN $15 THEN $16 ELSE filter END,
                    updated_at = now()
                 WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2
                 RETURNING {COLUMNS}"
            ),
            &[&id, &scope, &p.url, &p.description, &p.event_types, &p.is_active, &headers, &p.metadata,
              &p.rate_limit.is_some(), &p.rate_limit.flatten(),
              &p.max_in_flight.is_some(), &p.max_in_flight.flatten(),
              &p.retry_schedule.is_some(), &p.retry_schedule.clone().flatten(),
              &p.filter.is_some(), &p.filter.clone().flatten()],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Adds `new_secret` as the primary signing secret; every current secret keeps
/// signing until `old_expires_at`. Returns `false` when there is no such endpoint.
pub async fn rotate_secret(
    pool: &Pool,
    keys: Option<&Keyring>,
    id: &str,
    scope: Option<&str>,
    new_secret: &str,
    old_expires_at: OffsetDateTime,
) -> anyhow::Result<bool> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt("SELECT secrets FROM endpoints WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2 FOR UPDATE", &[&id, &scope])
        .await?
    else {
        return Ok(false);
    };
    let now = OffsetDateTime::now_utc();
    let mut secrets: Vec<StoredSecret> = serde_json::from_value(row.get(0))?;
    secrets.retain(|s| s.expires_at.is_none_or(|e| e > now));
    for s in &mut secrets {
        s.expires_at = Some(
            s.expires_at
                .map_or(old_expires_at, |e| e.min(old_expires_at)),
        );
    }
    secrets.insert(
        0,
        StoredSecret {
            secret: sealing::seal(keys, id, new_secret),
            expires_at: None,
        },
    );
    tx.execute(
        "UPDATE endpoints SET secrets = $2, updated_at = now() WHERE id = $1",
        &[&id, &serde_json::to_value(&secrets)?],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// What [`reseal_all`] did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Resealed {
    /// Secrets now sealed under the current key (they were plain or under an older key).
    pub resealed: u64,
    /// Already under the current key.
    pub current: u64,
    /// Could not be opened (their key is not configured); left as they were.
    pub failed: u64,
}

/// Rewrites every endpoint's secrets under the current key of `keys`
/// (`secrets.encryption_keys`: the key rotation's last step), in one transaction.
pub async fn reseal_all(pool: &Pool, keys: &Keyring) -> anyhow::Result<Resealed> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT id, secrets FROM endpoints ORDER BY id FOR UPDATE",
            &[],
        )
        .await?;
    let mut out = Resealed::default();
    for r in rows {
        let id: String = r.get(0);
        let mut secrets: Vec<StoredSecret> = serde_json::from_value(r.get(1))?;
        let mut changed = false;
        for s in &mut secrets {
            if keys.is_current(&s.secret) {
                out.current += 1;
                continue;
            }
            match sealing::open(Some(keys), &id, &s.secret) {
                Ok(plain) => {
                    s.secret = keys.seal(&id, &plain);
                    changed = true;
                    out.resealed += 1;
                }
                Err(e) => {
                    tracing::error!(endpoint_id = %id, error = %e, "Cannot reseal a signing secret.");
                    out.failed += 1;
                }
            }
        }
        if changed {
            tx.execute(
                "UPDATE endpoints SET secrets = $2 WHERE id = $1",
                &[&id, &serde_json::to_value(&secrets)?],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// Keeps the bindings of the ordered router's queue equal to the event types
/// FIFO endpoints subscribe to. Under an advisory lock, so concurrent callers
/// (the API after a create or update, every router on each registry change)
/// cannot undo each other: reads the wanted keys and the keys bound last time,
/// calls `apply(to_bind, to_unbind)` (which changes the broker's bindings), and
/// records the new set only when `apply` succeeded. `key` maps a subscribed
/// type to its binding key.
pub async fn sync_ordered_bindings<F, Fut>(
    pool: &Pool,
    key: fn(&str) -> &str,
    apply: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Vec<String>, Vec<String>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('hookfleet.ordered_bindings'))",
        &[],
    )
    .await?;
    let wanted: std::collections::BTreeSet<String> = tx
        .query(
            "SELECT DISTINCT unnest(event_types) FROM endpoints WHERE ordering = 'fifo'",
            &[],
        )
        .await?
        .iter()
        .map(|r| key(r.get::<_, &str>(0)).to_owned())
        .collect();
    let bound: std::collections::BTreeSet<String> = tx
        .query("SELECT routing_key FROM ordered_bindings", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Binding is idempotent: every wanted key, so a binding lost with a broker
    // that forgot its definitions comes back.
    let to_bind: Vec<String> = wanted.iter().cloned().collect();
    let to_unbind: Vec<String> = bound.difference(&wanted).cloned().collect();
    let changed = wanted != bound;
    apply(to_bind, to_unbind).await?;
    if changed {
        tx.execute("DELETE FROM ordered_bindings", &[]).await?;
        let keys: Vec<&str> = wanted.iter().map(String::as_str).collect();
        tx.execute(
            "INSERT INTO ordered_bindings (routing_key) SELECT unnest($1::text[])",
            &[&keys],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
