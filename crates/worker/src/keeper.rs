//! The dead-letter keeper: moves what arrives on `hookfleet.dead` into the
//! `dead_letters` table (`hookfleet_store::dead_letters`), so the queue stays
//! short and every dead-letter action is an indexed query. Each worker session
//! runs one; with several workers they compete on the queue.
//!
//! At-least-once: a batch is acked (one `multiple` ack) only after its insert
//! is committed. A failed insert is retried with backoff while the messages
//! stay unacked; a worker that dies leaves them to the others.
use futures::StreamExt as _;
use hookfleet_broker::{headers as h, names};
use hookfleet_store::dead_letters::Kept;
use hookfleet_store::Pool;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::Channel;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Dead letters stored per transaction, and the consumer's prefetch.
const BATCH: usize = 500;
/// How long a batch waits for more after its first message.
const BATCH_WAIT: Duration = Duration::from_millis(50);

fn describe(d: &Delivery) -> Kept {
    let hdrs = d.properties.headers().as_ref();
    let s = |k: &str| h::get_str(hdrs, k).map(str::to_owned);
    Kept {
        delivery_id: s(h::DELIVERY_ID).unwrap_or_default(),
        event_id: s(h::EVENT_ID)
            .or_else(|| d.properties.message_id().as_ref().map(|m| m.to_string()))
            .unwrap_or_default(),
        endpoint_id: s(h::ENDPOINT_ID).unwrap_or_else(|| d.routing_key.to_string()),
        tenant_id: s(h::TENANT_ID),
        event_type: s(h::EVENT_TYPE).unwrap_or_default(),
        attempts: h::get_i64(hdrs, h::ATTEMPTS)
            .or_else(|| h::get_i64(hdrs, h::ATTEMPT))
            .unwrap_or(0),
        last_error: s(h::LAST_ERROR),
        dead_at: h::get_str(hdrs, h::DEAD_AT).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
        received_at_ms: h::get_i64(hdrs, h::RECEIVED_AT),
        body: d.data.clone(),
        traceparent: s(h::TRACEPARENT),
        tracestate: s(h::TRACESTATE),
    }
}

/// Runs the keeper in a task of its own; if it fails, it cancels `failed`,
/// which ends the worker session (and its supervisor reconnects).
pub fn spawn(
    pool: Pool,
    ch: Channel,
    stop: CancellationToken,
    failed: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = run(pool, ch, stop).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "The dead-letter keeper stopped; the session restarts."
            );
            failed.cancel();
        }
    })
}

/// Keeps dead letters until `stop` or until the channel fails (the session
/// then reconnects).
pub async fn run(pool: Pool, ch: Channel, stop: CancellationToken) -> anyhow::Result<()> {
    ch.basic_qos(BATCH as u16, BasicQosOptions { global: false })
        .await?;
    let tag = format!("keeper-{}", std::process::id());
    let mut consumer = ch
        .basic_consume(
            names::DEAD_QUEUE.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = consumer.next() => match m {
                Some(m) => m?,
                None => return Ok(()),
            },
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(m)) => batch.push(m?),
                Ok(None) | Err(_) => break,
            }
        }
        let kept: Vec<Kept> = batch.iter().map(describe).collect();
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = hookfleet_store::dead_letters::keep(&pool, &kept).await {
            tracing::warn!(
                error = format!("{e:#}"),
                count = kept.len(),
                "Could not store dead letters; retrying."
            );
            tokio::select! {
                // Unacked, they go back to the queue with the channel.
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        // One ack for the whole batch: this consumer takes messages in order on
        // its own channel, so every earlier tag is in this batch or acked.
        let last = batch.last().map(|d| d.acker.clone());
        if let Some(acker) = last {
            tokio::time::timeout(
                hookfleet_broker::connection::ACK_TIMEOUT,
                acker.ack(BasicAckOptions { multiple: true }),
            )
            .await
            .map_err(|_| anyhow::anyhow!("acking kept dead letters timed out"))??;
        }
        hookfleet_core::metrics::DEAD_LETTERS_KEPT.inc_by(kept.len() as u64);
        tracing::debug!(count = kept.len(), "Dead letters kept.");
    }
}
