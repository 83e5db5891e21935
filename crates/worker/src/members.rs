//! This worker's membership in `worker_members` and its share of the
//! endpoint queues (docs/ARCHITECTURE.md §21): every `worker.heartbeat` it
//! renews its row and reads the live members; when they change it computes
//! which slots it consumes ([`Assignment`]) and hands that to the session.
use crate::Ctx;
use hookfleet_core::metrics;
use hookfleet_core::shard::Assignment;
use hookfleet_store::members;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// This process's member id: readable in logs (`w-<pid>-<ulid>`), unique
/// across restarts and hosts.
pub(crate) fn member_id() -> String {
    format!("w-{}-{}", std::process::id(), ulid::Ulid::new())
}

/// Keeps the membership until `stop`, then leaves. The receiver holds `None`
/// until the first heartbeat succeeded.
pub(crate) fn spawn(
    ctx: Arc<Ctx>,
    stop: CancellationToken,
) -> (
    watch::Receiver<Option<Arc<Assignment>>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(run(ctx, tx, stop));
    (rx, task)
}

async fn run(ctx: Arc<Ctx>, tx: watch::Sender<Option<Arc<Assignment>>>, stop: CancellationToken) {
    let w = &ctx.settings.worker;
    if let Err(e) = members::forget_stale(&ctx.pool).await {
        tracing::debug!(
            error = format!("{e:#}"),
            "Could not delete stale worker rows."
        );
    }
    let mut tick = tokio::time::interval(w.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Vec<String> = Vec::new();
    // The first share waits until two reads of the members agree (at most
    // `member_timeout`): workers started together then see each other before
    // any of them consumes, instead of each taking every endpoint first and
    // dropping most of them a heartbeat later.
    let joined = tokio::time::Instant::now();
    let mut settling: Option<Vec<String>> = None;
    let mut settled = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        match members::heartbeat(
            &ctx.pool,
            &ctx.member,
            w.member_timeout,
            w.heartbeat * 3 / 2,
        )
        .await
        {
            Ok(live)
                if !settled
                    && settling.as_ref() != Some(&live)
                    && joined.elapsed() < w.member_timeout =>
            {
                settling = Some(live);
            }
            Ok(live) if !settled || live != last => {
                settled = true;
                let a = Assignment::compute(&ctx.member, &live, w.consumers_per_endpoint);
                tracing::info!(
                    member = %ctx.member,
                    members = live.len(),
                    slots = a.owned.len(),
                    "Worker membership changed; taking this worker's share of the endpoints."
                );
                metrics::WORKER_MEMBERS.set(live.len() as i64);
                let _ = tx.send(Some(Arc::new(a)));
                last = live;
            }
            Ok(_) => {}
            // Keep consuming what we have: the others cannot read the table
            // either, or they will take over after `member_timeout`.
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "Could not renew this worker's membership; retrying."
            ),
        }
    }
    if let Err(e) = members::leave(&ctx.pool, &ctx.member).await {
        tracing::debug!(
            error = format!("{e:#}"),
            "Could not remove this worker's membership row; it expires."
        );
    }
}
