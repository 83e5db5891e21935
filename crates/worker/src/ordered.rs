//! The consumer of an ordered (FIFO) endpoint's queue (docs/ARCHITECTURE.md
//! §17). The queue has a single active consumer and this one takes one message
//! at a time (prefetch 1): each delivery is attempted, and retried in place
//! after each failure with its schedule's delays, until it succeeds or is
//! dead-lettered; only then is it acked and the next one arrives. A message
//! that comes back redelivered (worker restarted, connection lost, hold
//! renewed) carries on from the attempts recorded in PostgreSQL.
use crate::attempt::{self, Meta};
use crate::consume::{requeue_buffered, Consuming};
use crate::decide::{Mode, Position};
use crate::requeue;
use hookfleet_core::metrics;
use hookfleet_core::status::DeliveryStatus;
use lapin::message::Delivery;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// How long an ordered endpoint's head is held unacked while it waits for its
/// next attempt. Longer waits give the message back and take it again (it
/// stays at the head), which restarts the broker's `consumer_timeout` (30 min
/// by default), after which it would close the channel.
const ORDERED_HOLD: Duration = Duration::from_secs(600);

/// Where the head stands before its first attempt here.
enum Start {
    /// Attempt at `at`, once `due`.
    Attempt { at: Position, due: Instant },
    /// Already settled (acked) or given back: take the next message.
    Skip,
}

pub(crate) async fn consume(mut c: Consuming) {
    while let Some(d) = c.next_delivery().await {
        let _held = c.hold();
        let meta = Meta::of(&d);
        // Boxed, as is the attempt: the task of an idle endpoint holds
        // only what waits for the next message (see `consume::consume`).
        match Box::pin(start(&mut c, &d, &meta)).await {
            Start::Skip => continue,
            Start::Attempt { at, due } => {
                if !Box::pin(hold_and_retry(&mut c, *d, &meta, at, due)).await {
                    return;
                }
            }
        }
    }
}

/// Where a message starts: from its headers, or, redelivered, from the
/// delivery's row (its attempts so far and when the next one is due).
async fn start(c: &mut Consuming, d: &Delivery, meta: &Meta) -> Start {
    let mut attempt = meta.attempt;
    let mut due = Instant::now();
    if d.redelivered {
        let id = meta.delivery_id.as_deref().unwrap_or_default();
        match hookfleet_store::deliveries::progress(&c.shared.ctx.pool, id).await {
            // Already done (a duplicate, or acked too late): nothing to send.
            Ok(Some(p)) if p.status == DeliveryStatus::Succeeded => {
                let _ = hookfleet_broker::ack(&d.acker).await;
                return Start::Skip;
            }
            Ok(Some(p)) => {
                attempt = attempt.max(p.attempt_count.max(0) as u32 + 1);
                if let Some(t) = p.next_attempt_at {
                    let wait = (t - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
                    due += Duration::try_from(wait).unwrap_or_default();
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(endpoint_id = %c.endpoint_id, error = format!("{e:#}"), "Could not read a redelivered delivery's progress; holding it.");
                tokio::select! {
                    _ = c.stop.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                requeue(&d.acker).await;
                return Start::Skip;
            }
        }
    }
    Start::Attempt {
        at: Position::new(attempt, meta.base),
        due,
    }
}

/// Attempts the head when due, again after each failure with attempts left,
/// until it is settled or given back. `false` when the consumer stopped.
async fn hold_and_retry(
    c: &mut Consuming,
    mut d: Delivery,
    meta: &Meta,
    mut at: Position,
    mut due: Instant,
) -> bool {
    loop {
        // Wait for the attempt, at most ORDERED_HOLD with the message held.
        let hold_end = Instant::now() + ORDERED_HOLD;
        let wake = due.min(hold_end);
        tokio::select! {
            _ = c.stop.cancelled() => {
                requeue(&d.acker).await;
                requeue_buffered(&mut c.consumer).await;
                return false;
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        if wake < due {
            // Given back; it returns to the head and comes back redelivered.
            requeue(&d.acker).await;
            return true;
        }
        let Some(permits) = c.admit(&d, true).await else {
            return false;
        };
        metrics::IN_FLIGHT.inc();
        let shared = c.shared.clone();
        let retry = Box::pin(attempt::run(
            &shared.ctx,
            &shared.publish,
            d,
            meta,
            at,
            Mode::Ordered,
            &c.gate,
        ))
        .await;
        metrics::IN_FLIGHT.dec();
        drop(permits);
        match retry {
            None => return true,
            Some(r) => {
                d = r.d;
                at = r.next;
                due = Instant::now() + r.delay;
            }
        }
    }
}
