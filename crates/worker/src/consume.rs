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
use std::future::Future as _;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// What every consumer of a session shares, held once behind an `Arc`: an
/// idle endpoint's task then holds little more than its lapin consumer
/// (issue #16: a worker keeps one such task per endpoint it consumes).
pub(crate) struct Shared {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) publish: Channel,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) failed: CancellationToken,
    /// Endpoints with messages lately, for the depth poll (see `crate::depth`).
    pub(crate) busy: crate::depth::Busy,
    /// Told the endpoint's id when the broker ends the consumer (its queue
    /// was deleted), so the session can open it again.
    pub(crate) ended: tokio::sync::mpsc::UnboundedSender<String>,
}

/// One endpoint queue's consumer and what its deliveries need.
pub(crate) struct Consuming {
    pub(crate) shared: Arc<Shared>,
    pub(crate) endpoint_id: Arc<str>,
    pub(crate) consumer: lapin::Consumer,
    pub(crate) gate: Arc<gate::Gate>,
    pub(crate) stop: CancellationToken,
}

/// The permits a delivery holds while it is attempted: its endpoint's
/// `max_in_flight` share (when limited) and a slot of the worker's.
pub(crate) type Permits = (Option<OwnedSemaphorePermit>, OwnedSemaphorePermit);

impl Consuming {
    /// The next message; `None` once stopped (what the broker already sent is
    /// given back) or when the consumer ended (a failure cancels `failed`, and
    /// the session reconnects; a cancel from the broker, whose queue is gone,
    /// is sent to `ended`).
    ///
    /// Boxed, and taken from the consumer inside one poll: a `Delivery` is
    /// ~430 bytes, and an await that returned one would keep room for it in
    /// the task of every endpoint, idle or not.
    pub(crate) async fn next_delivery(&mut self) -> Option<Box<Delivery>> {
        let stopped = {
            let mut stop = std::pin::pin!(self.stop.clone().cancelled_owned());
            std::future::poll_fn(|cx| {
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                self.consumer
                    .poll_next_unpin(cx)
                    .map(|next| Some(self.took(next)))
            })
            .await
        };
        match stopped {
            Some(d) => d,
            None => {
                Box::pin(requeue_buffered(&mut self.consumer)).await;
                None
            }
        }
    }

    /// What the consumer gave, boxed; `None` when it failed or ended.
    fn took(&self, next: Option<lapin::Result<Delivery>>) -> Option<Box<Delivery>> {
        match next {
            Some(Ok(d)) => Some(Box::new(d)),
            Some(Err(e)) => {
                if !self.stop.is_cancelled() {
                    tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "Endpoint consumer failed.");
                    self.shared.failed.cancel();
                }
                None
            }
            None => {
                if !self.stop.is_cancelled() {
                    let _ = self.shared.ended.send(self.endpoint_id.to_string());
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
            self.shared.busy.mark(&self.endpoint_id);
        }
        held
    }

    pub(crate) async fn admit(&mut self, d: &Delivery, ordered: bool) -> Option<Permits> {
        let (rate, max) = self
            .shared
            .ctx
            .registry
            .snapshot()
            .endpoints
            .get(&*self.endpoint_id)
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
        let permit = self.shared.slots.clone().acquire_owned().await.ok()?;
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
///
/// Its future stays small (a unit test holds it to 768 bytes): what a message
/// needs on its way to its task is boxed, since most endpoints are idle most
/// of the time and each costs this task.
pub(crate) async fn consume(mut c: Consuming) {
    let requests = Arc::new(Semaphore::new(usize::from(
        c.shared.ctx.settings.amqp.worker_prefetch.max(1),
    )));
    while let Some(d) = c.next_delivery().await {
        if !Box::pin(dispatch(&mut c, d, &requests)).await {
            return;
        }
    }
}

/// Admits `d` and starts its attempt in a task of its own; `false` when the
/// consumer stopped meanwhile (`d` and what else was buffered went back).
async fn dispatch(c: &mut Consuming, d: Box<Delivery>, requests: &Arc<Semaphore>) -> bool {
    let held = c.hold();
    let request = tokio::select! {
        _ = c.stop.cancelled() => {
            requeue(&d.acker).await;
            requeue_buffered(&mut c.consumer).await;
            return false;
        }
        p = requests.clone().acquire_owned() => p,
    };
    let Ok(request) = request else { return false };
    let Some(permits) = c.admit(&d, false).await else {
        return false;
    };
    let (ctx, publish, gate) = (
        c.shared.ctx.clone(),
        c.shared.publish.clone(),
        c.gate.clone(),
    );
    tokio::spawn(async move {
        metrics::IN_FLIGHT.inc();
        let meta = Meta::of(&d);
        let at = Position::new(meta.attempt, meta.base);
        attempt::run(&ctx, &publish, *d, &meta, at, Mode::Normal, &gate).await;
        metrics::IN_FLIGHT.dec();
        // The record is with the writer, which acks it once committed.
        drop((permits, held, request));
    });
    true
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The most an endpoint consumer's future may hold.
    const IDLE_TASK_BYTES: usize = 768;

    /// The size of what `f` returns: for an `async fn`, its future's.
    fn returned<A, F>(_: fn(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Each endpoint a worker consumes costs one task holding one of these
    /// futures, idle or not: 100,000 endpoints over 4 workers are 50,000
    /// each. Before they were boxed, the message's admission and attempt
    /// made them 3,352 and 8,472 bytes (debug build; 560 and 688 after).
    #[test]
    fn an_endpoint_consumer_task_stays_small() {
        let (parallel, ordered) = (returned(consume), returned(crate::ordered::consume));
        eprintln!(
            "consume: {parallel} bytes, ordered: {ordered} bytes, Consuming: {} bytes",
            std::mem::size_of::<Consuming>()
        );
        assert!(parallel <= IDLE_TASK_BYTES, "consume: {parallel} bytes");
        assert!(
            ordered <= IDLE_TASK_BYTES,
            "ordered::consume: {ordered} bytes"
        );
    }
}
