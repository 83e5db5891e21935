//! `worker_members`: the live workers, which share the endpoint queues
//! (docs/ARCHITECTURE.md §21). Each worker renews its row every
//! `worker.heartbeat`; a row older than `worker.member_timeout` is a worker
//! that is gone, and so is one whose database connection closed (its process
//! died) and that missed a heartbeat.
use anyhow::Context as _;
use deadpool_postgres::Pool;
use std::time::Duration;

/// Renews `me` and returns the ids of every live worker, `me` included, in
/// id order: one round trip.
///
/// A worker is gone when its row is older than `timeout`, or when the backend
/// of the connection that renewed it last has exited and the row is older than
/// `grace` (V17: a killed process's connections close with it, so the others
/// see it gone in about a heartbeat instead of `timeout`).
pub async fn heartbeat(
    pool: &Pool,
    me: &str,
    timeout: Duration,
    grace: Duration,
) -> anyhow::Result<Vec<String>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let (secs, grace) = (timeout.as_secs_f64(), grace.as_secs_f64());
    // The SELECT sees the table as it was before the upsert (one snapshot), so
    // `me` is added below when it was not there yet.
    let rows = client
        .query(
            "WITH beat AS (
                 INSERT INTO worker_members (id, backend_pid) VALUES ($1, pg_backend_pid())
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), backend_pid = pg_backend_pid()
             )
             SELECT id FROM worker_members m
              WHERE heartbeat_at > now() - make_interval(secs => $2) AND id <> $1
                AND (backend_pid IS NULL
                     OR heartbeat_at > now() - make_interval(secs => $3)
                     OR EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.backend_pid))",
            &[&me, &secs, &grace],
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
