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
use hookfleet_core::config::CircuitSettings;
use hookfleet_core::Circuit;
use hookfleet_store::health as store;
use hookfleet_store::registry::RegEndpoint;
use hookfleet_store::Pool;
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
        if store::close(&self.pool, id).await? {
            tracing::info!(endpoint_id = %id, "Endpoint healthy again; circuit closed.");
        }
        Ok(())
    }

    async fn failure(&self, ep: &RegEndpoint) -> anyhow::Result<Option<Notice>> {
        let f = store::count_failure(&self.pool, &ep.id, self.settings.auto_disable_after).await?;
        if f.overdue {
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
        let Some(secs) = self.cooldown_after(&f) else {
            return Ok(None);
        };
        if !store::open(&self.pool, &ep.id, secs, f.circuit).await? {
            return Ok(None);
        }
        hookfleet_core::metrics::CIRCUIT_OPENED.inc();
        tracing::warn!(endpoint_id = %ep.id, failures = f.failures, cooldown_s = secs, "Circuit opened: the endpoint's queue waits until a probe succeeds.");
        // The tenant hears when deliveries stop, not of every failed probe.
        Ok(
            (f.circuit == Circuit::Closed).then(|| Notice::CircuitOpened {
                failures: f.failures,
                next_probe_in: Duration::from_secs(secs.max(0) as u64),
            }),
        )
    }

    /// The cool-down (seconds) to open the circuit for after failure `f`, if it
    /// opens: at the threshold of a closed circuit, or, when the probe failed,
    /// twice the last one (up to `circuit.max_cooldown`).
    fn cooldown_after(&self, f: &store::Failure) -> Option<i32> {
        let base = self.settings.cooldown.as_secs().max(1) as i32;
        let max = self.settings.max_cooldown.as_secs().max(1) as i32;
        match f.circuit {
            Circuit::HalfOpen => {
                Some((f.cooldown_seconds.saturating_mul(2)).clamp(base, max.max(base)))
            }
            Circuit::Closed if f.failures as u32 >= self.settings.failure_threshold => Some(base),
            _ => None,
        }
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
        store::claim_probe(&self.pool, id, hold).await
    }
}
