//! One broker session of the worker: its channels, the set of endpoint
//! consumers kept in step with the registry, the prober and the dead-letter
//! keeper; on its end, in-flight deliveries finish and their records are
//! flushed while the channels can still ack them.
use crate::consume::Consuming;
use crate::{consume, gate, keeper, ordered, probe, writer, Ctx};
use anyhow::Context as _;
use hookfleet_broker::{names, topology};
use hookfleet_core::metrics;
use hookfleet_store::registry::{RegEndpoint, Snapshot};
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

/// How often the workers on rate- or concurrency-limited endpoints are counted.
const CONSUMER_COUNT_INTERVAL: Duration = Duration::from_secs(5);

/// The channels of one session.
struct Channels {
    admin: Channel,
    /// Passive declares that count the workers on limited endpoints' queues; its
    /// own channel, since a failed passive declare closes the channel.
    stats: Channel,
    /// Confirm mode: retries, dead letters, operational events.
    publish: Channel,
    /// Per-consumer prefetch (global=false): each endpoint gets its own window.
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
        let stats = conn.create_channel().await?;
        let publish = conn.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut consume = Vec::with_capacity(CONSUME_CHANNELS);
        for _ in 0..CONSUME_CHANNELS {
            let ch = conn.create_channel().await?;
            ch.basic_qos(
                ctx.settings.amqp.worker_prefetch,
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

struct ConsumerHandle {
    tag: String,
    /// The channel it consumes on (cancelled there).
    channel: Channel,
    stop: CancellationToken,
    gate: Arc<gate::Gate>,
}

impl ConsumerHandle {
    async fn cancel(&self) {
        self.stop.cancel();
        let _ = self
            .channel
            .basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
}

/// The endpoint consumers of one session, by endpoint id.
struct Consumers {
    ctx: Arc<Ctx>,
    by_endpoint: HashMap<String, ConsumerHandle>,
    next_channel: usize,
    /// `delivery.max_in_flight`, shared by every consumer.
    slots: Arc<Semaphore>,
    session_end: CancellationToken,
    failed: CancellationToken,
}

impl Consumers {
    /// Stops consuming endpoints that are gone or paused (or whose circuit opened).
    async fn stop_stale(&mut self, snap: &Snapshot) {
        let stale: Vec<String> = self
            .by_endpoint
            .keys()
            .filter(|id| !snap.endpoints.get(*id).is_some_and(|e| e.consumable()))
            .cloned()
            .collect();
        for id in stale {
            if let Some(c) = self.by_endpoint.remove(&id) {
                c.cancel().await;
                tracing::info!(endpoint_id = %id, "Stopped consuming an endpoint queue (deleted, paused or circuit open).");
            }
        }
    }

    /// Starts consuming every consumable endpoint not consumed yet.
    async fn start_new(&mut self, ch: &Channels, snap: &Snapshot) -> anyhow::Result<()> {
        for ep in snap.endpoints.values().filter(|e| e.consumable()) {
            if !self.by_endpoint.contains_key(&ep.id) {
                self.start(ch, ep).await?;
            }
        }
        Ok(())
    }

    async fn start(&mut self, ch: &Channels, ep: &RegEndpoint) -> anyhow::Result<()> {
        let qt = self.ctx.settings.amqp.queue_type;
        topology::declare_endpoint(&ch.admin, qt, &ep.id, ep.ordered())
            .await
            .context("declaring an endpoint queue")?;
        let channel = if ep.ordered() {
            ch.ordered.clone()
        } else {
            self.next_channel += 1;
            ch.consume[(self.next_channel - 1) % ch.consume.len()].clone()
        };
        let tag = format!("worker-{}-{}", std::process::id(), ep.id);
        let consumer = channel
            .basic_consume(
                names::endpoint_queue(&ep.id).into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("consuming an endpoint queue")?;
        let stop = self.session_end.child_token();
        let gate = Arc::new(gate::Gate::new());
        let c = Consuming {
            ctx: self.ctx.clone(),
            endpoint_id: ep.id.clone(),
            consumer,
            publish: ch.publish.clone(),
            slots: self.slots.clone(),
            gate: gate.clone(),
            stop: stop.clone(),
            failed: self.failed.clone(),
        };
        if ep.ordered() {
            tokio::spawn(ordered::consume(c));
        } else {
            tokio::spawn(consume::consume(c));
        }
        let handle = ConsumerHandle {
            tag,
            channel,
            stop,
            gate,
        };
        self.by_endpoint.insert(ep.id.clone(), handle);
        Ok(())
    }
}

/// Runs one session until shutdown, a failed consumer or a lost connection.
pub(crate) async fn run(
    ctx: &Arc<Ctx>,
    conn: &Connection,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut ch = Channels::open(ctx, conn).await?;
    let max = ctx.settings.delivery.max_in_flight;
    let session_end = shutdown.child_token();
    let probes = tokio::spawn(probe::run(
        ctx.clone(),
        conn.create_channel().await?,
        ch.publish.clone(),
        session_end.clone(),
    ));
    let failed = CancellationToken::new();
    let keeper = keeper::spawn(
        ctx.pool.clone(),
        conn.create_channel().await?,
        session_end.clone(),
        failed.clone(),
    );
    let mut consumers = Consumers {
        ctx: ctx.clone(),
        by_endpoint: HashMap::new(),
        next_channel: 0,
        slots: Arc::new(Semaphore::new(max)),
        session_end: session_end.clone(),
        failed: failed.clone(),
    };
    let mut changes = ctx.registry.subscribe();
    let mut count_tick = tokio::time::interval(CONSUMER_COUNT_INTERVAL);
    let result = loop {
        let snap = ctx.registry.snapshot();
        consumers.stop_stale(&snap).await;
        let started = consumers.start_new(&ch, &snap).await;
        metrics::CONSUMED_QUEUES.set(consumers.by_endpoint.len() as i64);
        if let Err(e) = started {
            break Err(e);
        }
        tokio::select! {
            _ = session_end.cancelled() => break Ok(()),
            _ = failed.cancelled() => break Err(anyhow::anyhow!("a consumer failed")),
            _ = hookfleet_broker::wait_closed(conn) => break Err(anyhow::anyhow!("connection closed")),
            r = changes.changed() => if r.is_err() { break Ok(()) },
            _ = count_tick.tick() => {
                count_consumers(conn, &mut ch.stats, &snap, &consumers.by_endpoint).await;
            }
        }
    };
    // Stop consuming, let in-flight deliveries finish, then flush their records
    // while the channels are still open to ack them.
    for c in consumers.by_endpoint.values() {
        c.cancel().await;
    }
    session_end.cancel();
    let _ = probes.await;
    let _ = keeper.await;
    drain(ctx, &consumers.slots, max).await;
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

/// For each consumed endpoint with a `rate_limit` or `max_in_flight`: how many
/// workers consume its queue, so each takes its share.
async fn count_consumers(
    conn: &Connection,
    stats: &mut Channel,
    snap: &Snapshot,
    consumers: &HashMap<String, ConsumerHandle>,
) {
    for (id, c) in consumers {
        let Some(ep) = snap.endpoints.get(id) else {
            continue;
        };
        if ep.rate_limit.is_none() && ep.max_in_flight.is_none() {
            continue;
        }
        if ep.ordered() {
            // A single active consumer: the one that delivers takes it all.
            c.gate.set_consumers(1);
            continue;
        }
        if !stats.status().connected() {
            match conn.create_channel().await {
                Ok(ch) => *stats = ch,
                Err(_) => return,
            }
        }
        match topology::inspect(stats, &names::endpoint_queue(id)).await {
            Ok(q) => c.gate.set_consumers(q.consumer_count()),
            Err(e) => {
                tracing::debug!(endpoint_id = %id, error = %e, "Could not count an endpoint's consumers.")
            }
        }
    }
}
