//! Retention: deliveries (with their attempt records), events and dead-letter
//! actions older than `retention.max_age` are deleted in small batches, each its
//! own short statement, so no lock is held for long and the tables stay online.
//!
//! Delivery ids are ULIDs, so "older than the cut-off" is a range of the primary
//! key (`id < 'dlv_<ULID of the cut-off>'`): no extra index, no table scan.
//! `pending` deliveries are kept whatever their age (they are still owed), and so
//! is any event one of them still needs. One sweeper runs at a time across all
//! replicas (a transaction-free advisory lock).
use anyhow::Context as _;
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Arbitrary, fixed: the advisory lock of the sweeper.
const LOCK_KEY: i64 = 0x686f_6f6b_7265_7431; // "hookret1"

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub deliveries: u64,
    pub events: u64,
    pub actions: u64,
}

/// Runs [`sweep`] every `interval` until `shutdown`. `max_age` zero keeps everything.
pub async fn run(
    pool: Pool,
    max_age: Duration,
    interval: Duration,
    batch: i64,
    shutdown: CancellationToken,
) {
    if max_age.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match sweep(&pool, max_age, batch).await {
            Ok(s) if s != Swept::default() => {
                tracing::info!(
                    deliveries = s.deliveries,
                    events = s.events,
                    "Retention: removed old records."
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "Retention sweep failed; next round retries."
            ),
        }
    }
}

/// Deletes what is older than `max_age`, `batch` rows per statement.
pub async fn sweep(pool: &Pool, max_age: Duration, batch: i64) -> anyhow::Result<Swept> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await?
        .get(0);
    if !locked {
        return Ok(Swept::default());
    }
    let result = sweep_locked(&client, max_age, batch.max(1)).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    result
}

async fn sweep_locked(
    client: &tokio_postgres::Client,
    max_age: Duration,
    batch: i64,
) -> anyhow::Result<Swept> {
    let cutoff = time::OffsetDateTime::now_utc() - max_age;
    let cutoff_ms = (cutoff.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    // The smallest ULID of the cut-off millisecond: every older delivery sorts below.
    let cutoff_id = format!("dlv_{}", ulid::Ulid::from_parts(cutoff_ms, 0));
    let mut swept = Swept::default();
    loop {
        let n = client
            .execute(
                "WITH d AS (SELECT id FROM deliveries WHERE id < $1 AND status <> 'pending'
                            ORDER BY id LIMIT $2),
                      a AS (DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM d))
                 DELETE FROM deliveries WHERE id IN (SELECT id FROM d)",
                &[&cutoff_id, &batch],
            )
            .await
            .context("deleting old deliveries")?;
        swept.deliveries += n;
        if (n as i64) < batch {
            break;
        }
    }
    loop {
        let n = client
            .execute(
                "DELETE FROM events WHERE (scope, id) IN (
                    SELECT e.scope, e.id FROM events e
                     WHERE e.received_at < $1
                       AND NOT EXISTS (SELECT 1 FROM deliveries d
                                        WHERE d.event_id = e.id AND coalesce(d.tenant_id, '') = e.scope)
                     LIMIT $2)",
                &[&cutoff, &batch],
            )
            .await
            .context("deleting old events")?;
        swept.events += n;
        if (n as i64) < batch {
            break;
        }
    }
    loop {
        let n = client
            .execute(
                "DELETE FROM dead_letter_actions WHERE id IN (
                    SELECT id FROM dead_letter_actions WHERE at < $1 ORDER BY id LIMIT $2)",
                &[&cutoff, &batch],
            )
            .await
            .context("deleting old dead-letter actions")?;
        swept.actions += n;
        if (n as i64) < batch {
            break;
        }
    }
    Ok(swept)
}
