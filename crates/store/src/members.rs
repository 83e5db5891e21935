//! `worker_members`: the live workers, which share the endpoint queues
//! (docs/ARCHITECTURE.md §21). Each worker renews its row every
//! `worker.heartbeat`; a row older than `worker.member_timeout` is a worker
//! that is gone.
use anyhow::Context as _;
use deadpool_postgres::Pool;
use std::time::Duration;

/// Renews `me` and returns the ids of every live worker, `me` included, in
/// id order: one round trip.
pub async fn heartbeat(pool: &Pool, me: &str, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let secs = timeout.as_secs_f64();
    // The SELECT sees the table as it was before the upsert (one snapshot), so
    // `me` is added below when it was not there yet.
    let rows = client
        .query(
            "WITH beat AS (
                 INSERT INTO worker_members (id) VALUES ($1)
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
             )
             SELECT id FROM worker_members
              WHERE heartbeat_at > now() - make_interval(secs => $2) AND id <> $1",
            &[&me, &secs],
        )
        .await
        .context("renewing the worker's membership")?;
    let mut ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    ids.push(me.to_owned());
    ids.sort();
    Ok(ids)
}

/// Removes `me` (on the way out: the others take its endpoints at their next
/// heartbeat instead of after `member_timeout`).
pub async fn leave(pool: &Pool, me: &str) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to Postgres")?;
    client
        .execute("DELETE FROM worker_members WHERE id = $1", &[&me])
        .await?;
    Ok(())
}

/// Deletes the rows of workers silent for an hour (killed ones never leave).
pub async fn forget_stale(pool: &Pool) -> anyhow::Result<u64> {
    let client = pool.get().await.context("connecting to Postgres")?;
    Ok(client
        .execute(
            "DELETE FROM worker_members WHERE heartbeat_at < now() - interval '1 hour'",
            &[],
        )
        .await?)
}
