//! Endpoint health, shared by every worker replica through `endpoint_health`:
//! the circuit breaker, auto-disable, and `410 Gone`.
//!
//! - A failure (connection error, timeout, 429, 5xx) adds one to the endpoint's
//!   streak; at `circuit.failure_threshold` the circuit opens: workers stop
//!   consuming its queue (the NOTIFY of the transition reloads every registry),
//!   so messages wait there and spend no attempts.
//! - After the cool-down one worker claims the probe (an atomic UPDATE), takes a
//!   single message from the queue and delivers it: success closes the circuit,
//!   failure opens it again for twice as long (up to `circuit.max_cooldown`).
//! - A streak older than `circuit.auto_disable_after` disables the endpoint.
//! - `410 Gone` disables it at once (Standard Webhooks' recommendation).
//!
//! Successes cost no query unless the endpoint has a streak to clear.
use anyhow::Context as _;
use hookfleet_core::config::CircuitSettings;
use hookfleet_store::registry::RegEndpoint;
use hookfleet_store::{Circuit, Pool};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// What one attempt says about its endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Success,
    /// Counts towards the circuit: no answer, 429 or 5xx.
    Failure,
    /// Another 4xx: the endpoint answered; its health is not in question.
    Neutral,
    /// 410 Gone: disable now.
    Gone,
}

impl Signal {
    pub fn of(status: Option<u16>, success: bool) -> Signal {
        match status {
            _ if success => Signal::Success,
            Some(410) => Signal::Gone,
            None | Some(429) | Some(500..=599) => Signal::Failure,
            Some(_) => Signal::Neutral,
        }
    }
}

/// A change of an endpoint's state that its tenant hears about (an
/// operational event, `hookfleet_core::operational`).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Disabled {
        reason: String,
    },
    CircuitOpened {
        failures: i32,
        next_probe_in: Duration,
    },
}

pub struct Health {
    pool: Pool,
    settings: CircuitSettings,
    /// Endpoints this worker saw fail since their last recorded success.
    streaks: Mutex<HashSet<String>>,
}

impl Health {
    pub fn new(pool: Pool, settings: CircuitSettings) -> Self {
        Health {
            pool,
            settings,
            streaks: Mutex::default(),
        }
    }

    fn mark(&self, id: &str, failing: bool) -> bool {
        let mut s = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        if failing {
            s.insert(id.to_owned())
        } else {
            s.remove(id)
        }
    }

    /// Records what an attempt says. Errors are logged: health bookkeeping never
    /// holds up a delivery.
    pub async fn record(&self, ep: &RegEndpoint, signal: Signal) -> Option<Notice> {
        let r = match signal {
            Signal::Neutral => return None,
            Signal::Success => {
                let had = self.mark(&ep.id, false);
                if !had && ep.consecutive_failures == 0 && ep.circuit == Circuit::Closed {
                    return None;
                }
                self.close(&ep.id).await.map(|()| None)
            }
            Signal::Failure => {
                self.mark(&ep.id, true);
                self.failure(ep).await
            }
            Signal::Gone => self.disable(&ep.id, "the endpoint answered 410 Gone").await,
        };
        r.unwrap_or_else(|e| {
            tracing::warn!(endpoint_id = %ep.id, error = format!("{e:#}"), "Could not record endpoint health.");
            None
        })
    }

    /// A success: the streak is over and the circuit closed.
    pub async fn close(&self, id: &str) -> anyhow::Result<()> {
        let n = self
            .pool
            .get()
            .await?
            .execute(
                "UPDATE endpoint_health SET consecutive_failures = 0, failing_since = NULL,
                        circuit = 'closed', next_probe_at = NULL, cooldown_seconds = 0,
                        last_success_at = now()
                  WHERE endpoint_id = $1 AND (consecutive_failures > 0 OR circuit <> 'closed')",
                &[&id],
            )
            .await
            .context("closing the circuit")?;
        if n > 0 {
            tracing::info!(endpoint_id = %id, "Endpoint healthy again; circuit closed.");
        }
        Ok(())
    }

    async fn failure(&self, ep: &RegEndpoint) -> anyhow::Result<Option<Notice>> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "INSERT INTO endpoint_health (endpoint_id, consecutive_failures, failing_since)
                 VALUES ($1, 1, now())
                 ON CONFLICT (endpoint_id) DO UPDATE
                    SET consecutive_failures = endpoint_health.consecutive_failures + 1,
                        failing_since = COALESCE(endpoint_health.failing_since, now())
                 RETURNING consecutive_failures, circuit, cooldown_seconds,
                           failing_since < now() - make_interval(secs => $2) AS overdue",
                &[&ep.id, &self.settings.auto_disable_after.as_secs_f64()],
            )
            .await
            .context("counting a failure")?;
        let (failures, circuit, cooldown, overdue): (i32, String, i32, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        drop(client);
        if overdue {
            let days = self.settings.auto_disable_after.as_secs_f64() / 86_400.0;
            return self
                .disable(
                    &ep.id,
                    &format!(
                        "every attempt failed for {days:.1} days (circuit.auto_disable_after)"
                    ),
                )
                .await;
        }
        let base = self.settings.cooldown.as_secs().max(1) as i32;
        let max = self.settings.max_cooldown.as_secs().max(1) as i32;
        let next = match circuit.as_str() {
            // The probe failed: open again, for longer.
            "half_open" => Some((cooldown.saturating_mul(2)).clamp(base, max.max(base))),
            "closed" if failures as u32 >= self.settings.failure_threshold => Some(base),
            _ => None,
        };
        if let Some(secs) = next {
            let n = self
                .pool
                .get()
                .await?
                .execute(
                    "UPDATE endpoint_health SET circuit = 'open', opened_at = now(), cooldown_seconds = $2,
                            next_probe_at = now() + make_interval(secs => $2::int4::float8)
                      WHERE endpoint_id = $1 AND circuit = $3",
                    &[&ep.id, &secs, &circuit],
                )
                .await
                .context("opening the circuit")?;
            if n > 0 {
                hookfleet_core::metrics::CIRCUIT_OPENED.inc();
                tracing::warn!(endpoint_id = %ep.id, failures, cooldown_s = secs, "Circuit opened: the endpoint's queue waits until a probe succeeds.");
                // The tenant hears when deliveries stop, not of every failed probe.
                if circuit == "closed" {
                    return Ok(Some(Notice::CircuitOpened {
                        failures,
                        next_probe_in: Duration::from_secs(secs.max(0) as u64),
                    }));
                }
            }
        }
        Ok(None)
    }

    async fn disable(&self, id: &str, reason: &str) -> anyhow::Result<Option<Notice>> {
        if hookfleet_store::endpoints::set_active(&self.pool, id, false, Some(reason)).await? {
            tracing::warn!(endpoint_id = %id, reason, "Endpoint disabled.");
            return Ok(Some(Notice::Disabled {
                reason: reason.to_owned(),
            }));
        }
        Ok(None)
    }

    /// Claims the probe of an open endpoint whose cool-down is over; `true` when
    /// this worker won it (no other replica will probe until `hold` passes).
    pub async fn claim_probe(&self, id: &str, hold: Duration) -> anyhow::Result<bool> {
        let n = self
            .pool
            .get()
            .await?
            .execute(
                "UPDATE endpoint_health SET circuit = 'half_open',
                        next_probe_at = now() + make_interval(secs => $2)
                  WHERE endpoint_id = $1 AND circuit IN ('open', 'half_open') AND next_probe_at <= now()",
                &[&id, &hold.as_secs_f64()],
            )
            .await
            .context("claiming a probe")?;
        Ok(n == 1)
    }
}
