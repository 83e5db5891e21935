//! The dead-letter keepers: move what arrives on `hookfleet.dead` into the
//! `dead_letters` table (`hookfleet_store::dead_letters`), so the queue stays
//! short and every dead-letter action is an indexed query. Each worker session
//! runs one; with several workers they compete on the queue.
//!
//! A second keeper per session does the same for `hookfleet.unroutable`, where
//! the deliveries exchange's alternate exchange parks a delivery whose
//! endpoint queue is gone (a retry that expired after its endpoint was
//! deleted). Those become dead letters with a reason: `endpoint_deleted`
//! (`queue_missing` when the endpoint still exists), or `unroutable` for a
//! message without hookfleet's headers. So nothing waits there unseen, and the
//! operator lists, purges or replays them like any dead letter.
//!
//! At-least-once: a batch is acked (one `multiple` ack) only after its insert
//! is committed. A failed insert is retried with backoff while the messages
//! stay unacked; a worker that dies leaves them to the others.
use futures::StreamExt as _;
use hookfleet_broker::{headers as h, names};
use hookfleet_core::DeadReason;
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

/// Which queue a keeper empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `hookfleet.dead`: dead-lettered on purpose, `x-dead-reason` says why.
    Dead,
    /// `hookfleet.unroutable`: parked by the alternate exchange.
    Unroutable,
}

impl Source {
    fn queue(self) -> &'static str {
        match self {
            Source::Dead => names::DEAD_QUEUE,
            Source::Unroutable => names::UNROUTABLE,
        }
    }
}

fn describe(d: &Delivery, source: Source) -> Kept {
    let hdrs = d.properties.headers().as_ref();
    let s = |k: &str| h::get_str(hdrs, k).map(str::to_owned);
    let delivery_id = s(h::DELIVERY_ID).unwrap_or_default();
    let reason = match source {
        // A value this version does not know is kept as no reason.
        Source::Dead => h::get_str(hdrs, h::DEAD_REASON).and_then(|r| r.parse().ok()),
        Source::Unroutable if delivery_id.is_empty() => Some(DeadReason::Unroutable),
        // The insert makes it `queue_missing` if the endpoint still exists.
        Source::Unroutable => Some(DeadReason::EndpointDeleted),
    };
    let last_error = match source {
        Source::Dead => s(h::LAST_ERROR),
        Source::Unroutable => Some(match s(h::LAST_ERROR) {
            Some(e) => format!("no endpoint queue (after: {e})"),
            None => "no endpoint queue".to_owned(),
        }),
    };
    Kept {
        reason,
        redelivered: d.redelivered,
        delivery_id,
        event_id: s(h::EVENT_ID)
            .or_else(|| d.properties.message_id().as_ref().map(|m| m.to_string()))
            .unwrap_or_default(),
        endpoint_id: s(h::ENDPOINT_ID).unwrap_or_else(|| d.routing_key.to_string()),
        tenant_id: s(h::TENANT_ID),
        event_type: s(h::EVENT_TYPE).unwrap_or_default(),
        attempts: match source {
            Source::Dead => h::get_i64(hdrs, h::ATTEMPTS).or_else(|| h::get_i64(hdrs, h::ATTEMPT)),
            // A parked retry's x-attempt is the attempt it was going to make.
            Source::Unroutable => h::get_i64(hdrs, h::ATTEMPT).map(|a| (a - 1).max(0)),
        }
        .unwrap_or(0),
        last_error,
        dead_at: h::get_str(hdrs, h::DEAD_AT).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
        received_at_ms: h::get_i64(hdrs, h::RECEIVED_AT),
        body: d.data.clone(),
        traceparent: s(h::TRACEPARENT),
        tracestate: s(h::TRACESTATE),
    }
}

/// Runs a keeper of `source` in a task of its own; if it fails, it cancels
/// `failed`, which ends the worker session (and its supervisor reconnects).
pub fn spawn(
    pool: Pool,
    ch: Channel,
    source: Source,
    stop: CancellationToken,
    failed: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = run(pool, ch, source, stop).await {
            tracing::warn!(
                error = format!("{e:#}"),
                queue = source.queue(),
                "A dead-letter keeper stopped; the session restarts."
            );
            failed.cancel();
        }
    })
}

/// Keeps dead letters until `stop` or until the channel fails (the session
/// then reconnects).
pub async fn run(
    pool: Pool,
    ch: Channel,
    source: Source,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    ch.basic_qos(BATCH as u16, BasicQosOptions { global: false })
        .await?;
    let tag = format!("keeper-{}-{}", source.queue(), std::process::id());
    let mut consumer = ch
        .basic_consume(
            source.queue().into(),
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
        let kept: Vec<Kept> = batch.iter().map(|d| describe(d, source)).collect();
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
        if source == Source::Unroutable {
            // Rare, and the operator should hear of it: a retry outlived its
            // endpoint, or a queue went missing.
            tracing::warn!(
                count = kept.len(),
                endpoint_id = %kept[0].endpoint_id,
                "Unroutable deliveries kept as dead letters (see GET /api/v1/dead-letters?reason=…)."
            );
        } else {
            tracing::debug!(count = kept.len(), "Dead letters kept.");
        }
    }
}
