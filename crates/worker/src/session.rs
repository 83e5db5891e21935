//! One broker session of the worker: its channels, its membership, the set of
//! endpoint consumers kept in step with the registry and with this worker's
//! share of the endpoints (docs/ARCHITECTURE.md §21), the prober and the
//! dead-letter keeper; on its end, in-flight deliveries finish and their
//! records are flushed while the channels can still ack them.
//!
//! Every step costs what changed: a registry change names its endpoints, a
//! membership change names the slots that moved, and only those endpoints are
//! looked at.
use crate::consume::Consuming;
use crate::{consume, depth, gate, keeper, members, ordered, probe, writer, Ctx};
use anyhow::Context as _;
use hookfleet_broker::{names, topology};
use hookfleet_core::metrics;
use hookfleet_core::shard::{self, Assignment};
use hookfleet_store::registry::{Change, RegEndpoint, Snapshot};
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Consumer channels per connection; consumers are spread over them.
const CONSUME_CHANNELS: usize = 4;

/// Consumers started at once (their declares and `basic.consume` pipelined).
const START_BATCH: usize = 256;

/// How long after the broker ended a consumer (its queue was deleted) the
/// worker looks at the endpoint again: an endpoint deleted through the API
/// loses its queue after its row, and by then the registry has dropped it,
/// so only the queue of an endpoint that still exists is declared again.
const REOPEN_AFTER: Duration = Duration::from_secs(2);

/// The channels of one session.
struct Channels {
    admin: Channel,
    /// Passive declares of busy queues (`crate::depth`); its own channel,
    /// since a failed passive declare closes the channel.
    stats: depth::Stats,
    /// Confirm mode: retries, dead letters, operational events.
    publish: Channel,
    /// Per-consumer prefetch (global=false): each endpoint gets its own window,
    /// `worker_prefetch` × [`consume::WINDOW_PER_REQUEST`].
    consume: Vec<Channel>,
    /// Ordered endpoints: one message at a time per consumer (prefetch 1).
    ordered: Channel,
}

impl Channels {
    async fn open(ctx: &Ctx, conn: &Connection) -> anyhow::Result<Channels> {
        let admin = conn.create_channel().await?;
        topology::declare(
            &admin,
            ctx.settings.amqp.queue_type,
            &ctx.settings.retry.tiers(),
        )
        .await
        .context("declaring topology")?;
        *crate::lock(&ctx.tiers) = ctx.settings.retry.tiers().into_iter().collect();
        let stats = depth::Stats::default();
        let publish = conn.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut consume = Vec::with_capacity(CONSUME_CHANNELS);
        for _ in 0..CONSUME_CHANNELS {
            let ch = conn.create_channel().await?;
            ch.basic_qos(
                ctx.settings
                    .amqp
                    .worker_prefetch
                    .saturating_mul(consume::WINDOW_PER_REQUEST),
                BasicQosOptions { global: false },
            )
            .await?;
            consume.push(ch);
        }
        let ordered = conn.create_channel().await?;
        ordered
            .basic_qos(1, BasicQosOptions { global: false })
            .await?;
        Ok(Channels {
            admin,
            stats,
            publish,
            consume,
            ordered,
        })
    }
}

/// A consumer as the session keeps it: one per endpoint this worker consumes,
/// so kept small (its tag is made again from the endpoint's id, and its
/// channel is named by its place in [`Channels`]).
struct ConsumerHandle {
    /// The channel it consumes on (cancelled there): an index of
    /// `Channels::consume`, or [`ORDERED`] for `Channels::ordered`.
    channel: u8,
    stop: CancellationToken,
    gate: Arc<gate::Gate>,
}

/// [`ConsumerHandle::channel`] of a consumer on `Channels::ordered`.
const ORDERED: u8 = u8::MAX;

/// The consumer tag of endpoint `id`'s consumer in this process.
fn consumer_tag(id: &str) -> String {
    format!("worker-{}-{id}", std::process::id())
}

impl ConsumerHandle {
    async fn cancel(&self, id: &str, ch: &Channels) {
        self.stop.cancel();
        let channel = match self.channel {
            ORDERED => &ch.ordered,
            i => &ch.consume[usize::from(i)],
        };
        let _ = channel
            .basic_cancel(
                consumer_tag(id).as_str().into(),
                BasicCancelOptions::default(),
            )
            .await;
    }
}

/// The endpoint consumers of one session, by endpoint id.
struct Consumers {
    ctx: Arc<Ctx>,
    /// Keyed by the registry's own copy of the id.
    by_endpoint: HashMap<Arc<str>, ConsumerHandle>,
    next_channel: usize,
    /// What every consumer shares: `delivery.max_in_flight`'s slots, the
    /// publish channel, where an ended consumer reports.
    shared: Arc<consume::Shared>,
    session_end: CancellationToken,
    /// This worker's share of the slots.
    share: Arc<Assignment>,
    /// Declare the queue of every consumer started: a previous session found
    /// one missing (`Ctx::declare_queues`, read at session start).
    declare_all: bool,
}

impl Consumers {
    /// Whether this worker should consume `ep` now.
    fn wants(&self, ep: &RegEndpoint) -> bool {
        ep.consumable() && self.share.owns(shard::slot(&ep.id))
    }

    /// Brings the consumers of `ids` in line with the snapshot and the share.
    /// The queues are not declared: the API and the CLI declare each before
    /// its endpoint's row exists, so a brand-new endpoint's queue is there
    /// too; one that is missing anyway fails the start, and the next session
    /// declares every queue it starts (`declare_all`).
    async fn reconcile<'a>(
        &mut self,
        ch: &Channels,
        snap: &Snapshot,
        ids: impl Iterator<Item = &'a str>,
    ) -> anyhow::Result<()> {
        self.reconcile_declaring(ch, snap, ids, false).await
    }

    /// [`Self::reconcile`], also declaring the queues of the consumers it
    /// starts if `declare` (an endpoint whose queue the broker reported
    /// deleted); they are declared anyway under `declare_all`.
    async fn reconcile_declaring<'a>(
        &mut self,
        ch: &Channels,
        snap: &Snapshot,
        ids: impl Iterator<Item = &'a str>,
        declare: bool,
    ) -> anyhow::Result<()> {
        let mut start = Vec::new();
        for id in ids {
            match snap.endpoints.get(id) {
                Some(ep) if self.wants(ep) => {
                    if !self.by_endpoint.contains_key(id) {
                        start.push(ep.clone());
                    }
                }
                _ => self.stop(id, ch).await,
            }
        }
        self.start_all(ch, start, declare || self.declare_all).await
    }

    /// Everything may have changed: stops what is not wanted any more, starts
    /// what is wanted in this worker's slots.
    async fn reconcile_all(&mut self, ch: &Channels, snap: &Snapshot) -> anyhow::Result<()> {
        let held: Vec<Arc<str>> = self.by_endpoint.keys().cloned().collect();
        self.reconcile(ch, snap, held.iter().map(|id| &**id))
            .await?;
        // One pass over the slots, so the starts are pipelined across them.
        let share = self.share.clone();
        let ids = share
            .owned
            .keys()
            .flat_map(|slot| snap.in_slot(*slot))
            .map(|id| &**id);
        self.reconcile(ch, snap, ids).await
    }

    /// The membership changed: only the slots that moved are looked at.
    async fn reassign(
        &mut self,
        ch: &Channels,
        snap: &Snapshot,
        share: Arc<Assignment>,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let old = std::mem::replace(&mut self.share, share.clone());
        let moved: Vec<u16> = old
            .owned
            .keys()
            .filter(|s| !share.owns(**s))
            .chain(share.owned.keys().filter(|s| !old.owns(**s)))
            .copied()
            .collect();
        let lost: Vec<Arc<str>> = self
            .by_endpoint
            .keys()
            .filter(|id| !share.owns(shard::slot(id)))
            .cloned()
            .collect();
        for id in &lost {
            self.stop(id, ch).await;
        }
        let ids = moved
            .iter()
            .flat_map(|slot| snap.in_slot(*slot))
            .map(|id| &**id);
        self.reconcile(ch, snap, ids).await?;
        if old.consumers != share.consumers {
            for (id, c) in &self.by_endpoint {
                let ordered = snap.endpoints.get(&**id).is_some_and(|e| e.ordered());
                c.gate.set_consumers(self.consumers_of(ordered));
            }
        }
        tracing::info!(
            stopped = lost.len(),
            consuming = self.by_endpoint.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "Took this worker's new share of the endpoint queues."
        );
        Ok(())
    }

    /// Workers that share an endpoint's limits: a FIFO queue has a single
    /// active consumer, which takes them all.
    fn consumers_of(&self, ordered: bool) -> u32 {
        if ordered {
            1
        } else {
            u32::try_from(self.share.consumers).unwrap_or(u32::MAX)
        }
    }

    /// The broker ended `id`'s consumer: its queue was deleted (by hand, or
    /// by the endpoint's delete before this worker saw it). The consumer is
    /// forgotten, and [`REOPEN_AFTER`] later `reopen` receives the id.
    fn ended(&mut self, id: String, reopen: &tokio::sync::mpsc::UnboundedSender<String>) {
        let Some(c) = self.by_endpoint.remove(id.as_str()) else {
            return;
        };
        c.stop.cancel();
        tracing::warn!(
            endpoint_id = %id,
            "The broker ended the consumer of an endpoint queue: the queue was deleted. If the endpoint still exists, its queue is declared and consumed again in 2 s; deliveries routed to it meanwhile are dead letters with reason queue_missing (replay them)."
        );
        let reopen = reopen.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REOPEN_AFTER).await;
            let _ = reopen.send(id);
        });
    }

    async fn stop(&mut self, id: &str, ch: &Channels) {
        if let Some(c) = self.by_endpoint.remove(id) {
            c.cancel(id, ch).await;
            tracing::debug!(endpoint_id = %id, "Stopped consuming an endpoint queue (deleted, paused, circuit open, or moved to another worker).");
        }
    }

    /// Starts consumers for `eps`, [`START_BATCH`] at a time, declaring
    /// their queues first if `declare`. A failed start (a missing queue's
    /// `basic.consume` closes its channel) ends the session, and the next one
    /// declares every queue it consumes.
    async fn start_all(
        &mut self,
        ch: &Channels,
        eps: Vec<Arc<RegEndpoint>>,
        declare: bool,
    ) -> anyhow::Result<()> {
        for batch in eps.chunks(START_BATCH) {
            let channels: Vec<u8> = batch
                .iter()
                .map(|ep| {
                    if ep.ordered() {
                        ORDERED
                    } else {
                        self.next_channel += 1;
                        ((self.next_channel - 1) % ch.consume.len()) as u8
                    }
                })
                .collect();
            let ctx = &self.ctx;
            let opened = futures::future::join_all(batch.iter().zip(&channels).map(|(ep, i)| {
                let channel = match *i {
                    ORDERED => &ch.ordered,
                    i => &ch.consume[usize::from(i)],
                };
                open(ctx, &ch.admin, channel, ep, declare)
            }))
            .await;
            for ((ep, r), channel) in batch.iter().zip(opened).zip(channels) {
                let consumer = r.inspect_err(|_| {
                    self.ctx
                        .declare_queues
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                })?;
                self.spawn(ep, consumer, channel);
            }
        }
        Ok(())
    }

    fn spawn(&mut self, ep: &RegEndpoint, consumer: lapin::Consumer, channel: u8) {
        let stop = self.session_end.child_token();
        let gate = Arc::new(gate::Gate::new());
        gate.set_consumers(self.consumers_of(ep.ordered()));
        let c = Consuming {
            shared: self.shared.clone(),
            endpoint_id: ep.id.clone(),
            consumer,
            gate: gate.clone(),
            stop: stop.clone(),
        };
        if ep.ordered() {
            tokio::spawn(ordered::consume(c));
        } else {
            tokio::spawn(consume::consume(c));
        }
        let handle = ConsumerHandle {
            channel,
            stop,
            gate,
        };
        self.by_endpoint.insert(ep.id.clone(), handle);
    }
}

/// Declares an endpoint's queue if `declare` (a previous session found one
/// missing) and consumes it on `channel`.
async fn open(
    ctx: &Ctx,
    admin: &Channel,
    channel: &Channel,
    ep: &RegEndpoint,
    declare: bool,
) -> anyhow::Result<lapin::Consumer> {
    if declare {
        topology::declare_endpoint(admin, ctx.settings.amqp.queue_type, &ep.id, ep.ordered())
            .await
            .context("declaring an endpoint queue")?;
    }
    let tag = consumer_tag(&ep.id);
    let consumer = channel
        .basic_consume(
            names::endpoint_queue(&ep.id).into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("consuming an endpoint queue")?;
    Ok(consumer)
}

/// Runs one session until shutdown, a failed consumer or a lost connection.
///
/// Longer than most: it owns every handle of the session (channels, the
/// membership, prober and keeper tasks, the consumers) from start to the
/// ordered teardown, and its one `select!` loop is where registry changes,
/// share changes and depth polls meet; split up, those handles would have to
/// travel through a struct that only this function uses.
pub(crate) async fn run(
    ctx: &Arc<Ctx>,
    conn: &Connection,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut ch = Channels::open(ctx, conn).await?;
    let max = ctx.settings.delivery.max_in_flight;
    let session_end = shutdown.child_token();
    // This worker's share: nothing is consumed before the first heartbeat.
    let (mut shares, membership) = members::spawn(ctx.clone(), session_end.clone());
    let share = tokio::select! {
        _ = session_end.cancelled() => None,
        r = shares.wait_for(Option::is_some) => r.ok().and_then(|s| s.clone()),
    };
    let Some(share) = share else {
        session_end.cancel();
        let _ = membership.await;
        return Ok(());
    };
    let probes = tokio::spawn(probe::run(
        ctx.clone(),
        conn.create_channel().await?,
        ch.publish.clone(),
        shares.clone(),
        session_end.clone(),
    ));
    let failed = CancellationToken::new();
    let keeper = keeper::spawn(
        ctx.pool.clone(),
        conn.create_channel().await?,
        keeper::Source::Dead,
        session_end.clone(),
        failed.clone(),
    );
    let unroutable = keeper::spawn(
        ctx.pool.clone(),
        conn.create_channel().await?,
        keeper::Source::Unroutable,
        session_end.clone(),
        failed.clone(),
    );
    let (ended_tx, mut ended) = tokio::sync::mpsc::unbounded_channel();
    let (reopen_tx, mut reopen) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut consumers = Consumers {
        ctx: ctx.clone(),
        by_endpoint: HashMap::new(),
        next_channel: 0,
        shared: Arc::new(consume::Shared {
            ctx: ctx.clone(),
            publish: ch.publish.clone(),
            slots: Arc::new(Semaphore::new(max)),
            failed: failed.clone(),
            busy: depth::Busy::default(),
            ended: ended_tx,
        }),
        session_end: session_end.clone(),
        share,
        declare_all: ctx
            .declare_queues
            .swap(false, std::sync::atomic::Ordering::Relaxed),
    };
    // Subscribe before reading the snapshot: no change falls in between.
    let mut changes = ctx.registry.changes();
    let started = std::time::Instant::now();
    let mut step = consumers.reconcile_all(&ch, &ctx.registry.snapshot()).await;
    tracing::info!(
        consuming = consumers.by_endpoint.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "Worker consuming its share of the endpoint queues."
    );
    let mut depth_tick = tokio::time::interval(depth::INTERVAL);
    let result = loop {
        metrics::CONSUMED_QUEUES.set(consumers.by_endpoint.len() as i64);
        if let Err(e) = step {
            break Err(e);
        }
        step = tokio::select! {
            _ = session_end.cancelled() => break Ok(()),
            _ = failed.cancelled() => break Err(anyhow::anyhow!("a consumer failed")),
            _ = hookfleet_broker::wait_closed(conn) => break Err(anyhow::anyhow!("connection closed")),
            c = changes.next() => {
                let snap = ctx.registry.snapshot();
                match c {
                    None => break Ok(()),
                    Some(Change::Endpoints { ids, .. }) => consumers.reconcile(&ch, &snap, ids.iter().map(String::as_str)).await,
                    Some(Change::Everything) => consumers.reconcile_all(&ch, &snap).await,
                }
            }
            Some(id) = ended.recv() => {
                consumers.ended(id, &reopen_tx);
                Ok(())
            }
            // Declared again (and consumed) only if still wanted here.
            Some(id) = reopen.recv() => {
                consumers.reconcile_declaring(&ch, &ctx.registry.snapshot(), std::iter::once(id.as_str()), true).await
            }
            r = shares.changed() => {
                let share = shares.borrow_and_update().clone();
                match (r, share) {
                    (Ok(()), Some(share)) => consumers.reassign(&ch, &ctx.registry.snapshot(), share).await,
                    _ => Ok(()),
                }
            }
            _ = depth_tick.tick() => {
                let by = &consumers.by_endpoint;
                let share = &consumers.share;
                depth::poll(conn, &mut ch.stats, &consumers.shared.busy, |id| {
                    by.get(id).map(|c| (c.gate.clone(), share.primary(shard::slot(id))))
                })
                .await;
                Ok(())
            }
        };
    };
    // Stop consuming, let in-flight deliveries finish, then flush their records
    // while the channels are still open to ack them.
    for (id, c) in &consumers.by_endpoint {
        c.cancel(id, &ch).await;
    }
    session_end.cancel();
    let _ = probes.await;
    let _ = keeper.await;
    let _ = unroutable.await;
    let _ = membership.await;
    drain(ctx, &consumers.shared.slots, max).await;
    metrics::CONSUMED_QUEUES.set(0);
    result
}

/// Waits (up to `shutdown_grace`) for the deliveries in flight, then for the
/// writer to record and ack them.
async fn drain(ctx: &Ctx, slots: &Semaphore, max: usize) {
    let grace = ctx.settings.shutdown_grace;
    if tokio::time::timeout(grace, slots.acquire_many(max as u32))
        .await
        .is_err()
    {
        tracing::warn!(
            "Grace period over with deliveries still in flight; the broker will redeliver them."
        );
    }
    let (ftx, frx) = tokio::sync::oneshot::channel();
    let flush = async {
        if ctx.writer.send(writer::Msg::Flush(ftx)).await.is_ok() {
            let _ = frx.await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), flush).await;
}
