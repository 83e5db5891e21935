//! The prober of open circuits (docs/ARCHITECTURE.md §10): every second, for
//! each endpoint of this worker's share whose circuit is open and whose
//! cool-down is over, it tries to claim the probe (one replica wins) and
//! delivers one message of its queue; its outcome closes or reopens the
//! circuit. An empty queue closes it. The registry keeps the unhealthy
//! endpoints apart, so a tick looks at those only, not at every endpoint.
use crate::attempt::{self, Meta};
use crate::decide::{Mode, Position};
use crate::{gate, Ctx};
use hookfleet_broker::names;
use hookfleet_core::metrics;
use hookfleet_core::shard::Assignment;
use hookfleet_store::Circuit;
use lapin::Channel;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(
    ctx: Arc<Ctx>,
    ch: Channel,
    publish: Channel,
    share: watch::Receiver<Option<Arc<Assignment>>>,
    stop: CancellationToken,
) {
    // The probe holds the circuit half-open at most this long (then another
    // replica may probe: this one may have died).
    let hold = ctx.settings.delivery.timeout + Duration::from_secs(30);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let Some(share) = share.borrow().clone() else {
            continue;
        };
        for id in due(&ctx, &share) {
            match ctx.health.claim_probe(&id, hold).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(endpoint_id = %id, error = format!("{e:#}"), "Could not claim a probe.");
                    continue;
                }
            }
            if !probe(&ctx, &ch, &publish, &id).await {
                return;
            }
        }
    }
}

/// Active unordered endpoints of this worker's share whose circuit is open
/// and whose probe is due.
fn due(ctx: &Ctx, share: &Assignment) -> Vec<String> {
    let now = OffsetDateTime::now_utc();
    ctx.registry
        .snapshot()
        .unhealthy()
        .filter(|e| {
            e.is_active
                && !e.ordered()
                && e.circuit != Circuit::Closed
                && e.next_probe_at.is_some_and(|t| t <= now)
                && share.owns(hookfleet_core::shard::slot(&e.id))
        })
        .map(|e| e.id.to_string())
        .collect()
}

/// Takes one message of a claimed endpoint's queue and delivers it in a task
/// of its own. `false` when the channel is gone (with the session; the claim
/// expires by itself).
async fn probe(ctx: &Arc<Ctx>, ch: &Channel, publish: &Channel, id: &str) -> bool {
    let got = ch
        .basic_get(
            names::endpoint_queue(id).as_str().into(),
            lapin::options::BasicGetOptions { no_ack: false },
        )
        .await;
    match got {
        Ok(Some(m)) => {
            tracing::info!(endpoint_id = %id, "Probing an endpoint with an open circuit.");
            let (ctx, publish) = (ctx.clone(), publish.clone());
            tokio::spawn(async move {
                metrics::IN_FLIGHT.inc();
                let d = m.delivery;
                let meta = Meta::of(&d);
                let at = Position::new(meta.attempt, meta.base);
                // A probe is neither paced nor limited: its gate is its own.
                let gate = gate::Gate::new();
                let _ = attempt::run(&ctx, &publish, d, &meta, at, Mode::Probe, &gate).await;
                metrics::IN_FLIGHT.dec();
            });
            true
        }
        // Nothing waits: nothing to protect; the next delivery decides.
        Ok(None) => {
            if let Err(e) = ctx.health.close(id).await {
                tracing::warn!(endpoint_id = %id, error = format!("{e:#}"), "Could not close a circuit.");
            }
            true
        }
        Err(e) => {
            tracing::warn!(endpoint_id = %id, error = %e, "Could not take a probe message.");
            false
        }
    }
}
