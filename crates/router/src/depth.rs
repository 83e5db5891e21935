//! Queue depths for `hookfleet_queue_messages` and
//! `hookfleet_endpoint_queue_messages_max`: a passive declare of each queue every
//! [`INTERVAL`] (no management plugin needed). Every router replica polls; the
//! gauges are the same on each, so dashboards take the max.
use hookfleet_broker::names;
use hookfleet_core::{metrics, Settings};
use hookfleet_store::Registry;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use std::time::Duration;

pub const INTERVAL: Duration = Duration::from_secs(10);

const PASSIVE: QueueDeclareOptions = QueueDeclareOptions {
    passive: true,
    durable: false,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// Messages ready in `queue`, or `None` when it is missing (the broker then
/// closes the channel: the caller opens another).
async fn depth(ch: &Channel, queue: &str) -> Option<u32> {
    ch.queue_declare(queue.into(), PASSIVE, FieldTable::default())
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
    shared.extend(settings.retry.tiers().into_iter().map(names::retry_tier));
    loop {
        if let Ok(mut ch) = conn.create_channel().await {
            for q in &shared {
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
            let mut busiest = 0u32;
            let ids: Vec<String> = registry.snapshot().endpoints.keys().cloned().collect();
            for id in ids {
                match depth(&ch, &names::endpoint_queue(&id)).await {
                    Some(n) => busiest = busiest.max(n),
                    None => match conn.create_channel().await {
                        Ok(c) => ch = c,
                        Err(_) => break,
                    },
                }
            }
            metrics::ENDPOINT_QUEUE_MAX.set(i64::from(busiest));
            let _ = ch.close(200, "".into()).await;
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
