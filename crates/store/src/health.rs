//! `endpoint_health` (V4): the circuit breaker and failure streak of each
//! endpoint, shared by every worker replica. No row means closed and healthy.
//! The rules that drive these writes are in the worker (`health`, `decide`).
use anyhow::Context as _;
use deadpool_postgres::Pool;
use hookfleet_core::Circuit;
use std::time::Duration;

/// A success: the streak is over and the circuit closed. `true` when there was
/// something to clear.
pub async fn close(pool: &Pool, endpoint_id: &str) -> anyhow::Result<bool> {
    let n = pool
        .get()
        .await?
        .execute(
            "UPDATE endpoint_health SET consecutive_failures = 0, failing_since = NULL,
                    circuit = 'closed', next_probe_at = NULL, cooldown_seconds = 0,
                    last_success_at = now()
              WHERE endpoint_id = $1 AND (consecutive_failures > 0 OR circuit <> 'closed')",
            &[&endpoint_id],
        )
        .await
        .context("closing the circuit")?;
    Ok(n > 0)
}

/// An endpoint's state after one more failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Failures in a row, this one included.
    pub failures: i32,
    pub circuit: Circuit,
    /// The current cool-down (0 when the circuit never opened in this streak).
    pub cooldown_seconds: i32,
    /// The streak started more than `auto_disable_after` ago.
    pub overdue: bool,
}

/// Counts one failure (starting a streak when there is none).
pub async fn count_failure(
    pool: &Pool,
    endpoint_id: &str,
    auto_disable_after: Duration,
) -> anyhow::Result<Failure> {
    let row = pool
        .get()
        .await?
        .query_one(
            "INSERT INTO endpoint_health (endpoint_id, consecutive_failures, failing_since)
             VALUES ($1, 1, now())
             ON CONFLICT (endpoint_id) DO UPDATE
                SET consecutive_failures = endpoint_health.consecutive_failures + 1,
                    failing_since = COALESCE(endpoint_health.failing_since, now())
             RETURNING consecutive_failures, circuit, cooldown_seconds,
                       failing_since < now() - make_interval(secs => $2) AS overdue",
            &[&endpoint_id, &auto_disable_after.as_secs_f64()],
        )
        .await
        .context("counting a failure")?;
    let circuit: &str = row.try_get(1)?;
    Ok(Failure {
        failures: row.try_get(0)?,
        circuit: circuit.parse().context("endpoint_health.circuit")?,
        cooldown_seconds: row.try_get(2)?,
        overdue: row.try_get(3)?,
    })
}

/// Opens the circuit for `cooldown_seconds`, if it is still `from` (one
/// replica wins the transition). `true` when this call opened it.
pub async fn open(
    pool: &Pool,
    endpoint_id: &str,
    cooldown_seconds: i32,
    from: Circuit,
) -> anyhow::Result<bool> {
    let n = pool
        .get()
        .await?
        .execute(
            "UPDATE endpoint_health SET circuit = 'open', opened_at = now(), cooldown_seconds = $2,
                    next_probe_at = now() + make_interval(secs => $2::int4::float8)
              WHERE endpoint_id = $1 AND circuit = $3",
            &[&endpoint_id, &cooldown_seconds, &from.as_str()],
        )
        .await
        .context("opening the circuit")?;
    Ok(n > 0)
}

/// Claims the probe of an open endpoint whose cool-down is over; `true` when
/// this caller won it (no other replica will probe until `hold` passes).
pub async fn claim_probe(pool: &Pool, endpoint_id: &str, hold: Duration) -> anyhow::Result<bool> {
    let n = pool
        .get()
        .await?
        .execute(
            "UPDATE endpoint_health SET circuit = 'half_open',
                    next_probe_at = now() + make_interval(secs => $2)
              WHERE endpoint_id = $1 AND circuit IN ('open', 'half_open') AND next_probe_at <= now()",
            &[&endpoint_id, &hold.as_secs_f64()],
        )
        .await
        .context("claiming a probe")?;
    Ok(n == 1)
}
