//! Depths of the shared queues for `hookfleet_queue_messages`: a passive
//! declare of each every [`INTERVAL`] (no management plugin needed). Every
//! router replica polls; the gauges are the same on each, so dashboards take
//! the max. The retry tiers are the default schedule's and the ladder steps the
//! custom schedules in use map to (a step not declared yet is skipped). The
//! endpoint queues are not polled here: each worker reports the busy queues it
//! is primary for (docs/ARCHITECTURE.md §21), so the cost follows the traffic,
//! not the number of endpoints.
use hookfleet_broker::{names, topology};
use hookfleet_core::{metrics, Settings};
use hookfleet_store::Registry;
use lapin::{Channel, Connection};
use std::time::Duration;

pub const INTERVAL: Duration = Duration::from_secs(10);

/// Messages ready in `queue`, or `None` when it is missing (the broker then
/// closes the channel: the caller opens another).
async fn depth(ch: &Channel, queue: &str) -> Option<u32> {
    topology::inspect(ch, queue)
        .await
        .ok()
        .map(|q| q.message_count())
}

/// Polls until the future is dropped (with the router session).
pub async fn poll(conn: &Connection, settings: &Settings, registry: &Registry) {
    let mut shared: Vec<String> = [
        names::ROUTER_QUEUE,
        names::DEAD_QUEUE,
        names::INVALID_QUEUE,
        names::UNROUTABLE,
    ]
    .iter()
    .map(|q| (*q).to_owned())
    .collect();
    let default_tiers = settings.retry.tiers();
    shared.extend(default_tiers.iter().copied().map(names::retry_tier));
    loop {
        // The ladder tiers that custom schedules in use may have declared.
        let snap = registry.snapshot();
        let mut ladder: Vec<String> = snap
            .custom_retry()
            .filter_map(|e| e.retry.as_ref())
            .chain(snap.catalog.retry_schedules())
            .flat_map(|s| s.tiers())
            .map(|d| hookfleet_broker::topology::tier_for(d, &default_tiers))
            .filter(|d| !default_tiers.contains(d))
            .map(names::retry_tier)
            .collect();
        ladder.sort();
        ladder.dedup();
        drop(snap);
        if let Ok(mut ch) = conn.create_channel().await {
            for q in shared.iter().chain(&ladder) {
                match depth(&ch, q).await {
                    Some(n) => metrics::QUEUE_MESSAGES
                        .with_label_values(&[q.as_str()])
                        .set(i64::from(n)),
                    None => match conn.create_channel().await {
                        Ok(c) => ch = c,
                        Err(_) => break,
                    },
                }
            }
            let _ = ch.close(200, "".into()).await;
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
