//! The consumer of one endpoint's queue: takes the next message, waits for its
//! admission (the endpoint's gate, then a slot of `delivery.max_in_flight`) and
//! attempts it. [`consume`] is the unordered endpoints' loop; the FIFO one is in
//! [`crate::ordered`].
use crate::attempt::{self, Meta};
use crate::decide::{Mode, Position};
use crate::{gate, requeue, Ctx};
use futures::StreamExt as _;
use hookfleet_core::metrics;
use lapin::message::Delivery;
use lapin::Channel;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// One endpoint queue's consumer and what its deliveries need.
pub(crate) struct Consuming {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) endpoint_id: String,
    pub(crate) consumer: lapin::Consumer,
    pub(crate) publish: Channel,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) gate: Arc<gate::Gate>,
    pub(crate) stop: CancellationToken,
    pub(crate) failed: CancellationToken,
    /// Endpoints with messages lately, for the depth poll (see `crate::depth`).
    pub(crate) busy: crate::depth::Busy,
    /// Told the endpoint's id when the broker ends the consumer (its queue
    /// was deleted), so the session can open it again.
    pub(crate) ended: tokio::sync::mpsc::UnboundedSender<String>,
}

/// The permits a delivery holds while it is attempted: its endpoint's
/// `max_in_flight` share (when limited) and a slot of the worker's.
pub(crate) type Permits = (Option<OwnedSemaphorePermit>, OwnedSemaphorePermit);

impl Consuming {
    /// The next message; `None` once stopped (what the broker already sent is
    /// given back) or when the consumer ended (a failure cancels `failed`, and
    /// the session reconnects; a cancel from the broker, whose queue is gone,
    /// is sent to `ended`).
    pub(crate) async fn next_delivery(&mut self) -> Option<Delivery> {
        let next = tokio::select! {
            _ = self.stop.cancelled() => {
                requeue_buffered(&mut self.consumer).await;
                return None;
            }
            d = self.consumer.next() => d,
        };
        match next {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                if !self.stop.is_cancelled() {
                    tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "Endpoint consumer failed.");
                    self.failed.cancel();
                }
                None
            }
            None => {
                if !self.stop.is_cancelled() {
                    let _ = self.ended.send(self.endpoint_id.clone());
                }
                None
            }
        }
    }

    /// Waits for the endpoint's limits as they are now (the API may change
    /// them; an ordered endpoint is one at a time already) and a slot of the
    /// worker's `delivery.max_in_flight`. `None` when stopped meanwhile: `d`
    /// and what else was buffered go back to the queue.
    /// Counts `d` as held by this worker until the guard drops, and marks
    /// the endpoint busy for the depth poll.
    pub(crate) fn hold(&self) -> gate::Held {
        let (held, woke) = self.gate.hold();
        if woke {
            self.busy.mark(&self.endpoint_id);
        }
        held
    }

    pub(crate) async fn admit(&mut self, d: &Delivery, ordered: bool) -> Option<Permits> {
        let (rate, max) = self
            .ctx
            .registry
            .snapshot()
            .endpoints
            .get(&self.endpoint_id)
            .map_or((None, None), |e| (e.rate_limit, e.max_in_flight));
        let max = if ordered { None } else { max };
        let ep_permit = tokio::select! {
            _ = self.stop.cancelled() => {
                requeue(&d.acker).await;
                requeue_buffered(&mut self.consumer).await;
                return None;
            }
            p = self.gate.admit(rate, max) => p,
        };
        let permit = self.slots.clone().acquire_owned().await.ok()?;
        Some((ep_permit, permit))
    }
}

/// How many times `amqp.worker_prefetch` an unordered endpoint's consumer may
/// hold unacked. A delivery whose POST is over waits for its record's batch
/// (`delivery.batch_wait`) and commit before it is acked; with the broker's
/// window equal to the requests allowed, those waits held the window and
/// capped one endpoint at about 2,100-2,700 deliveries/s (docs/BENCHMARKS.md,
/// session 10). The requests in flight stay capped at `worker_prefetch`.
pub(crate) const WINDOW_PER_REQUEST: u16 = 4;

/// The consumer of an unordered endpoint's queue: up to `amqp.worker_prefetch`
/// requests at once, each in a task of its own, out of a broker window
/// [`WINDOW_PER_REQUEST`] times larger (the rest wait for their record and ack).
pub(crate) async fn consume(mut c: Consuming) {
    let requests = Arc::new(Semaphore::new(usize::from(
        c.ctx.settings.amqp.worker_prefetch.max(1),
    )));
    while let Some(d) = c.next_delivery().await {
        let held = c.hold();
        let request = tokio::select! {
            _ = c.stop.cancelled() => {
                requeue(&d.acker).await;
                requeue_buffered(&mut c.consumer).await;
                return;
            }
            p = requests.clone().acquire_owned() => p,
        };
        let Ok(request) = request else { return };
        let Some(permits) = c.admit(&d, false).await else {
            return;
        };
        let (ctx, publish, gate) = (c.ctx.clone(), c.publish.clone(), c.gate.clone());
        tokio::spawn(async move {
            metrics::IN_FLIGHT.inc();
            let meta = Meta::of(&d);
            let at = Position::new(meta.attempt, meta.base);
            attempt::run(&ctx, &publish, d, &meta, at, Mode::Normal, &gate).await;
            metrics::IN_FLIGHT.dec();
            // The record is with the writer, which acks it once committed.
            drop((permits, held, request));
        });
    }
}

/// After a consumer is stopped (endpoint paused, circuit open, shutdown): the
/// deliveries the broker already sent it go back to the queue at once, without
/// an attempt. Dropped unacknowledged, they would sit on the channel, which stays
/// open for the other consumers, until the connection closes.
pub(crate) async fn requeue_buffered(consumer: &mut lapin::Consumer) {
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(2), consumer.next()).await
    {
        requeue(&d.acker).await;
    }
}
