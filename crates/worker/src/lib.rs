//! The worker: consumes the queue of every active endpoint, POSTs each delivery
//! signed (Standard Webhooks), records the attempt, and acks only after the record
//! is committed (and, on failure, after the retry or dead-letter publish is
//! confirmed).
//!
//! Isolation: each endpoint has its own queue and its own consumer with its own
//! prefetch window (`amqp.worker_prefetch`), so a slow endpoint holds at most that
//! many of this worker's delivery slots; `delivery.max_in_flight` caps the total.
//! The set of consumers follows the endpoint registry: a new endpoint is consumed
//! as soon as its NOTIFY arrives, a paused or deleted one is cancelled.
#![forbid(unsafe_code)]

pub mod gate;
pub mod health;
pub mod http;
pub mod keeper;
pub mod writer;

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use hookfleet_broker::{headers as h, names, topology};
use hookfleet_core::{metrics, operational, Settings};
use hookfleet_store::deliveries::{AttemptRecord, DeliveryState};
use hookfleet_store::{Pool, Registry};
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// Consumer channels per connection; consumers are spread over them.
const CONSUME_CHANNELS: usize = 4;

/// Runs the worker until `shutdown`; reconnects whenever the broker goes away. On
/// shutdown it stops consuming, lets in-flight deliveries finish (bounded by the
/// delivery timeout plus 5 s), writes their records, and returns.
pub async fn run(
    settings: Arc<Settings>,
    pool: Pool,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let client = http::Client::new(&settings.delivery)?;
    let (tx, rx) = mpsc::channel(settings.delivery.batch_size * 4);
    let writer = tokio::spawn(writer::run(
        pool.clone(),
        rx,
        settings.delivery.batch_size,
        settings.delivery.batch_wait,
    ));
    let ctx = Arc::new(Ctx {
        settings: settings.clone(),
        registry: registry.clone(),
        client,
        writer: tx,
        health: health::Health::new(pool.clone(), settings.circuit.clone()),
        pool: pool.clone(),
        tiers: Default::default(),
    });
    hookfleet_broker::supervise(&settings.amqp.url, "worker", &shutdown, |conn| {
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        async move { session(&ctx, &conn, &shutdown).await }
    })
    .await;
    drop(ctx);
    // Delivery tasks still holding the writer finish within the delivery timeout.
    let wait = settings.delivery.timeout + Duration::from_secs(30);
    if tokio::time::timeout(wait, writer).await.is_err() {
        tracing::warn!(
            "The attempt writer did not finish in time; unrecorded deliveries will be redelivered."
        );
    }
    tracing::info!("Worker stopped.");
    Ok(())
}

struct Ctx {
    settings: Arc<Settings>,
    registry: Arc<Registry>,
    client: http::Client,
    writer: mpsc::Sender<writer::Msg>,
    health: health::Health,
    pool: Pool,
    /// Retry tiers declared in this session (the default schedule's, and the
    /// ladder steps custom schedules used so far).
    tiers: std::sync::Mutex<std::collections::HashSet<Duration>>,
}

struct ConsumerHandle {
    tag: String,
    /// The channel it consumes on (cancelled there).
    channel: Channel,
    stop: CancellationToken,
    gate: Arc<gate::Gate>,
}

async fn session(
    ctx: &Arc<Ctx>,
    conn: &Connection,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let admin = conn.create_channel().await?;
    let qt = ctx.settings.amqp.queue_type;
    topology::declare(&admin, qt, &ctx.settings.retry.tiers())
        .await
        .context("declaring topology")?;
    *lock(&ctx.tiers) = ctx.settings.retry.tiers().into_iter().collect();
    // Passive declares that count the workers on limited endpoints' queues; its
    // own channel, since a failed passive declare closes the channel.
    let mut stats = conn.create_channel().await?;
    let publish = conn.create_channel().await?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut channels = Vec::with_capacity(CONSUME_CHANNELS);
    for _ in 0..CONSUME_CHANNELS {
        let ch = conn.create_channel().await?;
        // Per-consumer prefetch (global=false): each endpoint gets its own window.
        ch.basic_qos(
            ctx.settings.amqp.worker_prefetch,
            BasicQosOptions { global: false },
        )
        .await?;
        channels.push(ch);
    }
    // Ordered endpoints: one message at a time per consumer (prefetch 1).
    let ordered_ch = conn.create_channel().await?;
    ordered_ch
        .basic_qos(1, BasicQosOptions { global: false })
        .await?;
    let max = ctx.settings.delivery.max_in_flight;
    let slots = Arc::new(Semaphore::new(max));
    let session_end = shutdown.child_token();
    let probes = tokio::spawn(probe_open_circuits(
        ctx.clone(),
        conn.create_channel().await?,
        publish.clone(),
        session_end.clone(),
    ));
    let failed = CancellationToken::new();
    let keeper = keeper::spawn(
        ctx.pool.clone(),
        conn.create_channel().await?,
        session_end.clone(),
        failed.clone(),
    );
    let mut consumers: HashMap<String, ConsumerHandle> = HashMap::new();
    let mut changes = ctx.registry.subscribe();
    let mut next_channel = 0usize;
    let mut count_tick = tokio::time::interval(CONSUMER_COUNT_INTERVAL);
    let result = loop {
        let snap = ctx.registry.snapshot();
        // Stop consuming endpoints that are gone or paused.
        let stale: Vec<String> = consumers
            .keys()
            .filter(|id| !snap.endpoints.get(*id).is_some_and(|e| e.consumable()))
            .cloned()
            .collect();
        for id in stale {
            if let Some(c) = consumers.remove(&id) {
                c.stop.cancel();
                let _ = c
                    .channel
                    .basic_cancel(c.tag.as_str().into(), BasicCancelOptions::default())
                    .await;
                tracing::info!(endpoint_id = %id, "Stopped consuming an endpoint queue (deleted, paused or circuit open).");
            }
        }
        // Start consuming new active endpoints.
        let mut err = None;
        for ep in snap.endpoints.values().filter(|e| e.consumable()) {
            if consumers.contains_key(&ep.id) {
                continue;
            }
            if let Err(e) = topology::declare_endpoint(&admin, qt, &ep.id, ep.ordered).await {
                err = Some(anyhow::Error::from(e).context("declaring an endpoint queue"));
                break;
            }
            let channel = if ep.ordered {
                ordered_ch.clone()
            } else {
                next_channel += 1;
                channels[(next_channel - 1) % channels.len()].clone()
            };
            let tag = format!("worker-{}-{}", std::process::id(), ep.id);
            let consumer = match channel
                .basic_consume(
                    names::endpoint_queue(&ep.id).into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    err = Some(anyhow::Error::from(e).context("consuming an endpoint queue"));
                    break;
                }
            };
            let stop = session_end.child_token();
            let gate = Arc::new(gate::Gate::new());
            let c = Consuming {
                ctx: ctx.clone(),
                endpoint_id: ep.id.clone(),
                consumer,
                publish: publish.clone(),
                slots: slots.clone(),
                gate: gate.clone(),
                stop: stop.clone(),
                failed: failed.clone(),
            };
            if ep.ordered {
                tokio::spawn(consume_ordered(c));
            } else {
                tokio::spawn(consume(c));
            }
            consumers.insert(
                ep.id.clone(),
                ConsumerHandle {
                    tag,
                    channel,
                    stop,
                    gate,
                },
            );
        }
        metrics::CONSUMED_QUEUES.set(consumers.len() as i64);
        if let Some(e) = err {
            break Err(e);
        }
        tokio::select! {
            _ = session_end.cancelled() => break Ok(()),
            _ = failed.cancelled() => break Err(anyhow::anyhow!("a consumer failed")),
            _ = hookfleet_broker::wait_closed(conn) => break Err(anyhow::anyhow!("connection closed")),
            r = changes.changed() => if r.is_err() { break Ok(()) },
            _ = count_tick.tick() => {
                count_consumers(conn, &mut stats, &snap, &consumers).await;
            }
        }
    };
    // Stop consuming, let in-flight deliveries finish, then flush their records
    // while the channels are still open to ack them.
    for c in consumers.values() {
        c.stop.cancel();
        let _ = c
            .channel
            .basic_cancel(c.tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
    session_end.cancel();
    let _ = probes.await;
    let _ = keeper.await;
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
    metrics::CONSUMED_QUEUES.set(0);
    result
}

/// How long an ordered endpoint's head is held unacked while it waits for its
/// next attempt. Longer waits give the message back and take it again (it
/// stays at the head), which restarts the broker's `consumer_timeout` (30 min
/// by default), after which it would close the channel.
const ORDERED_HOLD: Duration = Duration::from_secs(600);

/// The consumer of an ordered (FIFO) endpoint's queue. The queue has a single
/// active consumer and this one takes one message at a time (prefetch 1): each
/// delivery is attempted, and retried in place after each failure with its
/// schedule's delays, until it succeeds or is dead-lettered; only then is it
/// acked and the next one arrives. A message that comes back redelivered
/// (worker restarted, connection lost, hold renewed) carries on from the
/// attempts recorded in PostgreSQL.
async fn consume_ordered(mut c: Consuming) {
    let ctx = c.ctx.clone();
    let endpoint_id = c.endpoint_id.clone();
    while let Some(mut d) = c.next_delivery().await {
        let hdrs = d.properties.headers().as_ref();
        let attempt = h::get_i64(hdrs, h::ATTEMPT).unwrap_or(1).max(1) as u32;
        let base = h::get_i64(hdrs, h::ATTEMPT_BASE).unwrap_or(0).max(0) as u32;
        let mut at = InPlace { attempt, base };
        let mut due = tokio::time::Instant::now();
        if d.redelivered {
            let id = h::get_str(hdrs, h::DELIVERY_ID)
                .unwrap_or_default()
                .to_owned();
            match hookfleet_store::deliveries::progress(&ctx.pool, &id).await {
                // Already done (a duplicate, or acked too late): nothing to send.
                Ok(Some((status, _, _))) if status == "succeeded" => {
                    let _ = hookfleet_broker::ack(&d.acker).await;
                    continue;
                }
                Ok(Some((_, count, next_at))) => {
                    at.attempt = at.attempt.max(count.max(0) as u32 + 1);
                    if let Some(t) = next_at {
                        let wait = (t - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
                        due += Duration::try_from(wait).unwrap_or_default();
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(endpoint_id = %endpoint_id, error = format!("{e:#}"), "Could not read a redelivered delivery's progress; holding it.");
                    tokio::select! {
                        _ = c.stop.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                    requeue(&d.acker).await;
                    continue;
                }
            }
        }
        loop {
            // Wait for the attempt, at most ORDERED_HOLD with the message held.
            let hold_end = tokio::time::Instant::now() + ORDERED_HOLD;
            let wake = due.min(hold_end);
            tokio::select! {
                _ = c.stop.cancelled() => {
                    requeue(&d.acker).await;
                    requeue_buffered(&mut c.consumer).await;
                    return;
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            if wake < due {
                // Given back; it returns to the head and comes back redelivered.
                requeue(&d.acker).await;
                break;
            }
            let Some(permits) = c.admit(&d, true).await else {
                return;
            };
            metrics::IN_FLIGHT.inc();
            let retry = attempt_delivery(&ctx, &c.publish, d, Some(&c.gate), Some(at)).await;
            metrics::IN_FLIGHT.dec();
            drop(permits);
            match retry {
                None => break,
                Some(r) => {
                    d = r.d;
                    at = r.next;
                    due = tokio::time::Instant::now() + r.delay;
                }
            }
        }
    }
}

/// How often the workers on rate- or concurrency-limited endpoints are counted.
const CONSUMER_COUNT_INTERVAL: Duration = Duration::from_secs(5);

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// For each consumed endpoint with a `rate_limit` or `max_in_flight`: how many
/// workers consume its queue, so each takes its share.
async fn count_consumers(
    conn: &Connection,
    stats: &mut Channel,
    snap: &hookfleet_store::registry::Snapshot,
    consumers: &HashMap<String, ConsumerHandle>,
) {
    for (id, c) in consumers {
        let Some(ep) = snap.endpoints.get(id) else {
            continue;
        };
        if ep.rate_limit.is_none() && ep.max_in_flight.is_none() {
            continue;
        }
        if ep.ordered {
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

/// One endpoint queue's consumer and what its deliveries need.
struct Consuming {
    ctx: Arc<Ctx>,
    endpoint_id: String,
    consumer: lapin::Consumer,
    publish: Channel,
    slots: Arc<Semaphore>,
    gate: Arc<gate::Gate>,
    stop: CancellationToken,
    failed: CancellationToken,
}

impl Consuming {
    /// The next message; `None` once stopped (what the broker already sent is
    /// given back) or when the consumer ended (a failure cancels `failed`, and
    /// the session reconnects).
    async fn next_delivery(&mut self) -> Option<Delivery> {
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
            None => None,
        }
    }

    /// Waits for the endpoint's limits as they are now (the API may change
    /// them; an ordered endpoint is one at a time already) and a slot of the
    /// worker's `delivery.max_in_flight`. `None` when stopped meanwhile: `d`
    /// and what else was buffered go back to the queue.
    async fn admit(
        &mut self,
        d: &Delivery,
        ordered: bool,
    ) -> Option<(
        Option<tokio::sync::OwnedSemaphorePermit>,
        tokio::sync::OwnedSemaphorePermit,
    )> {
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

/// The consumer of an unordered endpoint's queue: up to its prefetch window of
/// deliveries at once, each in a task of its own.
async fn consume(mut c: Consuming) {
    while let Some(d) = c.next_delivery().await {
        let Some(permits) = c.admit(&d, false).await else {
            return;
        };
        let (ctx, publish, gate) = (c.ctx.clone(), c.publish.clone(), c.gate.clone());
        tokio::spawn(async move {
            metrics::IN_FLIGHT.inc();
            deliver(&ctx, &publish, d, Some(&gate)).await;
            metrics::IN_FLIGHT.dec();
            drop(permits);
        });
    }
}

/// After a consumer is stopped (endpoint paused, circuit open, shutdown): the
/// deliveries the broker already sent it go back to the queue at once, without
/// an attempt. Dropped unacknowledged, they would sit on the channel, which stays
/// open for the other consumers, until the connection closes.
async fn requeue_buffered(consumer: &mut lapin::Consumer) {
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(2), consumer.next()).await
    {
        requeue(&d.acker).await;
    }
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// Every second: for each endpoint whose circuit is open and whose cool-down is
/// over, try to claim its probe (one replica wins) and deliver one message of its
/// queue; its outcome closes or reopens the circuit. An empty queue closes it.
async fn probe_open_circuits(
    ctx: Arc<Ctx>,
    ch: Channel,
    publish: Channel,
    stop: CancellationToken,
) {
    // The probe holds the circuit half-open at most this long (then another
    // replica may probe: this one may have died).
    let hold = ctx.settings.delivery.timeout + Duration::from_secs(30);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let now = OffsetDateTime::now_utc();
        let due: Vec<String> = ctx
            .registry
            .snapshot()
            .endpoints
            .values()
            .filter(|e| {
                e.is_active
                    && !e.ordered
                    && e.circuit != hookfleet_store::Circuit::Closed
                    && e.next_probe_at.is_some_and(|t| t <= now)
            })
            .map(|e| e.id.clone())
            .collect();
        for id in due {
            match ctx.health.claim_probe(&id, hold).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(endpoint_id = %id, error = format!("{e:#}"), "Could not claim a probe.");
                    continue;
                }
            }
            let got = ch
                .basic_get(
                    names::endpoint_queue(&id).as_str().into(),
                    lapin::options::BasicGetOptions { no_ack: false },
                )
                .await;
            match got {
                Ok(Some(m)) => {
                    tracing::info!(endpoint_id = %id, "Probing an endpoint with an open circuit.");
                    let (ctx, publish) = (ctx.clone(), publish.clone());
                    tokio::spawn(async move {
                        metrics::IN_FLIGHT.inc();
                        deliver(&ctx, &publish, m.delivery, None).await;
                        metrics::IN_FLIGHT.dec();
                    });
                }
                // Nothing waits: nothing to protect; the next delivery decides.
                Ok(None) => {
                    if let Err(e) = ctx.health.close(&id).await {
                        tracing::warn!(endpoint_id = %id, error = format!("{e:#}"), "Could not close a circuit.");
                    }
                }
                // The channel is gone with the session; the claim expires by itself.
                Err(e) => {
                    tracing::warn!(endpoint_id = %id, error = %e, "Could not take a probe message.");
                    return;
                }
            }
        }
    }
}

/// One attempt of one delivery, from message to recorded outcome. Without a
/// `gate` it is a probe, delivered although the endpoint's circuit is open.
async fn deliver(ctx: &Ctx, publish: &Channel, d: Delivery, gate: Option<&gate::Gate>) {
    let _ = attempt_delivery(ctx, publish, d, gate, None).await;
}

/// Where an ordered endpoint's delivery stands: the attempt number to make
/// and the budget's base (slow-down answers are not counted).
#[derive(Debug, Clone, Copy)]
struct InPlace {
    attempt: u32,
    base: u32,
}

/// An ordered endpoint's failed attempt that will be retried in place, after
/// `delay`: the message stays unacked at the head of its queue.
struct RetryInPlace {
    d: Delivery,
    delay: Duration,
    next: InPlace,
}

/// One attempt of one delivery. With `in_place` (ordered endpoints), the
/// attempt number comes from it instead of the headers, and a failure with
/// attempts left is recorded and handed back to be retried in place, instead
/// of waiting in a retry tier: a retry tier would let the next delivery pass.
async fn attempt_delivery(
    ctx: &Ctx,
    publish: &Channel,
    d: Delivery,
    gate: Option<&gate::Gate>,
    in_place: Option<InPlace>,
) -> Option<RetryInPlace> {
    let probe = gate.is_none();
    let properties = &d.properties;
    let acker = &d.acker;
    let routing_key = &d.routing_key;
    let hdrs = properties.headers().as_ref();
    let endpoint_id = h::get_str(hdrs, h::ENDPOINT_ID)
        .unwrap_or(routing_key.as_str())
        .to_owned();
    let event_id = h::get_str(hdrs, h::EVENT_ID)
        .or(properties.message_id().as_ref().map(|m| m.as_str()))
        .unwrap_or_default()
        .to_owned();
    let Some(delivery_id) = h::get_str(hdrs, h::DELIVERY_ID).map(str::to_owned) else {
        // Not something the router made: keep it where an operator will see it.
        tracing::error!(endpoint_id = %endpoint_id, "A message without x-delivery-id reached an endpoint queue; dead-lettering it.");
        match publish_confirmed(publish, "", names::DEAD_QUEUE, &d.data, properties.clone()).await {
            Ok(()) => {
                let _ = hookfleet_broker::ack(acker).await;
            }
            // Acked only once its copy is safe; until then it stays where it is.
            Err(_) => requeue(acker).await,
        }
        return None;
    };
    let (attempt, base) = match in_place {
        Some(p) => (p.attempt.max(1), p.base.min(p.attempt.max(1) - 1)),
        None => {
            let attempt = h::get_i64(hdrs, h::ATTEMPT).unwrap_or(1).max(1) as u32;
            let base = h::get_i64(hdrs, h::ATTEMPT_BASE)
                .unwrap_or(0)
                .clamp(0, i64::from(attempt) - 1) as u32;
            (attempt, base)
        }
    };
    let snap = ctx.registry.snapshot();
    let Some(ep) = snap
        .endpoints
        .get(&endpoint_id)
        .filter(|e| if probe { e.is_active } else { e.consumable() })
        .cloned()
    else {
        // Paused, deleted or its circuit opened since the message was consumed:
        // put it back to wait (no attempt spent); this consumer is about to be
        // cancelled.
        tokio::time::sleep(Duration::from_millis(500)).await;
        requeue(acker).await;
        return None;
    };

    let now = OffsetDateTime::now_utc();
    let ts = now.unix_timestamp();
    let signature =
        hookfleet_core::signing::signature_header(ep.signing_secrets(now), &event_id, ts, &d.data);
    let mut headers = HeaderMap::new();
    for (k, v) in &ep.headers {
        if let (Ok(k), Some(v)) = (HeaderName::try_from(k.as_str()), header_value(v)) {
            headers.insert(k, v);
        }
    }
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(v) = header_value(&event_id) {
        headers.insert("webhook-id", v);
    }
    headers.insert("webhook-timestamp", HeaderValue::from(ts));
    if let Some(v) = header_value(&signature) {
        headers.insert("webhook-signature", v);
    }
    let body = Bytes::copy_from_slice(&d.data);
    let settings = &ctx.settings;
    let resp = if ep.signing_secrets(now).next().is_none() {
        // Never sent unsigned: a failed attempt, retried like any other.
        http::Response::failed(
            "no usable signing secret (one could not be opened: check secrets.encryption_keys)",
        )
    } else {
        ctx.client
            .post(
                &ep.id,
                &ep.url,
                headers,
                body.clone(),
                settings.delivery.response_excerpt_bytes,
            )
            .await
    };
    let class = metrics::status_class(resp.status);
    metrics::ATTEMPT_DURATION
        .with_label_values(&[class])
        .observe(resp.latency.as_secs_f64());
    let error = match (&resp.error, resp.status) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(s)) if !resp.is_success() => Some(format!("HTTP {s}")),
        _ => None,
    };

    let signal = health::Signal::of(resp.status, resp.is_success());
    if let Some(notice) = ctx.health.record(&ep, signal).await {
        let now_s = hookfleet_core::envelope::now_rfc3339();
        let (event_type, data) = match notice {
            health::Notice::Disabled { reason } => (
                operational::ENDPOINT_DISABLED,
                serde_json::json!({"endpoint_id": ep.id, "url": ep.url, "reason": reason, "disabled_at": now_s}),
            ),
            health::Notice::CircuitOpened {
                failures,
                next_probe_in,
            } => (
                operational::ENDPOINT_CIRCUIT_OPENED,
                serde_json::json!({
                    "endpoint_id": ep.id, "url": ep.url, "consecutive_failures": failures,
                    "next_probe_at": hookfleet_core::envelope::rfc3339(std::time::SystemTime::now() + next_probe_in),
                    "last_error": error,
                }),
            ),
        };
        publish_operational(publish, &snap, &ep, event_type, data).await;
    }
    // 429/502/503/504 ask us to slow down: the endpoint pauses in this worker,
    // and the attempt does not count against the delivery's budget.
    let slow_down = gate::is_slow_down(resp.status);
    if let Some(g) = gate {
        if slow_down {
            let pause = g.slow_down(resp.retry_after);
            tracing::debug!(endpoint_id = %endpoint_id, pause_ms = pause.as_millis() as u64, "Endpoint asked to slow down.");
        } else {
            g.answered();
        }
    }
    // An ordered endpoint's failure with attempts left: retried in place
    // after this delay, from this attempt number.
    let mut retry_in_place: Option<(Duration, InPlace)> = None;
    let (state, next_attempt_at) = if resp.is_success() {
        if let Some(at) = h::get_i64(hdrs, h::RECEIVED_AT) {
            let secs = (hookfleet_core::ids::now_millis() - at).max(0) as f64 / 1000.0;
            metrics::END_TO_END.observe(secs);
        }
        metrics::ATTEMPTS.with_label_values(&["succeeded"]).inc();
        (DeliveryState::Succeeded, None)
    } else {
        'failed: {
            let last_error = error.clone().unwrap_or_default();
            let mut headers = hdrs.cloned().unwrap_or_default();
            h::set_str(
                &mut headers,
                h::LAST_ERROR,
                &hookfleet_core::text::truncate(&last_error, 512),
            );
            // Failed: either a retry tier or, with the budget spent, hookfleet.dead.
            // 410 Gone: the endpoint is being disabled; no retries, straight to the
            // dead letters (replayable if it comes back).
            // The schedule: the endpoint's own, else its event type's, else the default.
            let event_type = h::get_str(hdrs, h::EVENT_TYPE).unwrap_or_default();
            let custom = ep
                .retry
                .as_ref()
                .or_else(|| snap.catalog.retry_schedule(event_type));
            let schedule = custom.unwrap_or(&settings.retry);
            let counted = attempt - base;
            let next = if signal == health::Signal::Gone {
                None
            } else if slow_down {
                // Not counted: the same step of the schedule again (its last one once
                // the budget would be spent), with a fresh attempt number.
                let step = counted
                    .min(schedule.max_attempts().saturating_sub(1))
                    .max(1);
                schedule.next_delay(step, resp.retry_after)
            } else {
                schedule.next_delay(counted, resp.retry_after)
            };
            if let (Some(delay), Some(_)) = (next, in_place) {
                // An ordered endpoint: no retry tier (the next message would pass);
                // recorded below, retried in place after `delay`.
                metrics::ATTEMPTS.with_label_values(&["retried"]).inc();
                retry_in_place = Some((
                    delay,
                    InPlace {
                        attempt: attempt + 1,
                        base: base + u32::from(slow_down),
                    },
                ));
                break 'failed (DeliveryState::Retrying, Some(now + delay));
            }
            let next = match (next, custom) {
                (Some(d), Some(_)) => match ensure_tier(ctx, publish, d).await {
                    Ok(tier) => Some(tier),
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "Could not declare a retry tier; the delivery will be redelivered."
                        );
                        requeue(acker).await;
                        return None;
                    }
                },
                (next, _) => next,
            };
            let (exchange, key) = match next {
                Some(delay) => {
                    h::set_i64(&mut headers, h::ATTEMPT, i64::from(attempt) + 1);
                    if slow_down {
                        h::set_i64(&mut headers, h::ATTEMPT_BASE, i64::from(base) + 1);
                    }
                    (names::retry_tier(delay), endpoint_id.clone())
                }
                None => {
                    h::set_i64(&mut headers, h::ATTEMPTS, i64::from(attempt));
                    h::set_str(
                        &mut headers,
                        h::DEAD_AT,
                        &hookfleet_core::envelope::now_rfc3339(),
                    );
                    (String::new(), names::DEAD_QUEUE.to_owned())
                }
            };
            let props = properties
                .clone()
                .with_headers(headers)
                .with_delivery_mode(2);
            if let Err(e) = publish_confirmed(publish, &exchange, &key, &body, props).await {
                tracing::warn!(
                error = format!("{e:#}"),
                "Could not schedule the retry or dead letter; the delivery will be redelivered."
            );
                requeue(acker).await;
                return None;
            }
            match next {
                Some(delay) => {
                    metrics::RETRIES_SCHEDULED
                        .with_label_values(&[hookfleet_core::retry::tier_name(delay).as_str()])
                        .inc();
                    metrics::ATTEMPTS.with_label_values(&["retried"]).inc();
                    (DeliveryState::Retrying, Some(now + delay))
                }
                None => {
                    metrics::ATTEMPTS.with_label_values(&["dead"]).inc();
                    // Not for an operational event's own delivery: no chains of them.
                    let event_type = h::get_str(hdrs, h::EVENT_TYPE).unwrap_or_default();
                    if signal != health::Signal::Gone && !operational::is_operational(event_type) {
                        let data = serde_json::json!({
                            "delivery_id": delivery_id, "event_id": event_id, "event_type": event_type,
                            "endpoint_id": endpoint_id, "attempts": attempt, "last_error": error,
                        });
                        publish_operational(
                            publish,
                            &snap,
                            &ep,
                            operational::DELIVERY_EXHAUSTED,
                            data,
                        )
                        .await;
                    }
                    (DeliveryState::Failed, None)
                }
            }
        }
    };
    // One line per attempt; never the payload, the URL's query or a secret.
    tracing::info!(
        delivery_id = %delivery_id, event_id = %event_id, endpoint_id = %endpoint_id,
        tenant_id = ep.tenant_id.as_deref().unwrap_or(""), attempt, outcome = state.as_str(),
        status = resp.status, latency_ms = resp.latency.as_millis() as u64,
        error = error.as_deref().map(|e| hookfleet_core::text::truncate(e, 200)),
        "Delivery attempt."
    );
    let record = AttemptRecord {
        delivery_id,
        attempt: attempt as i32,
        state,
        status_code: resp.status.map(i32::from),
        error: error.map(|e| hookfleet_core::text::truncate(&e, 2048)),
        response_excerpt: resp.excerpt,
        latency_ms: resp.latency.as_millis().min(i32::MAX as u128) as i32,
        attempted_at: now,
        next_attempt_at,
    };
    if in_place.is_some() {
        // An ordered endpoint: the next message comes only after this one is
        // acked, so no batch to wait for; recorded now, then acked, or kept
        // (unacked, at the head) for its retry in place.
        if let Err(e) = record_now(ctx, &record).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "Could not record an attempt; the delivery will be redelivered."
            );
            requeue(&d.acker).await;
            return None;
        }
        if let Some((delay, next)) = retry_in_place {
            return Some(RetryInPlace { d, delay, next });
        }
        if let Err(e) = hookfleet_broker::ack(&d.acker).await {
            tracing::debug!(error = %e, "Ack failed; the broker will redeliver.");
        }
        return None;
    }
    // The writer acks after the record is committed.
    let _ = ctx
        .writer
        .send(writer::Msg::Done(writer::Completed {
            record,
            acker: d.acker,
        }))
        .await;
    None
}

/// Records one attempt now, outside the writer's batches (an ordered
/// endpoint's in-place retry, whose message stays unacked): three tries.
async fn record_now(ctx: &Ctx, record: &AttemptRecord) -> anyhow::Result<()> {
    let mut last = None;
    for i in 0..3u64 {
        match hookfleet_store::deliveries::record_attempts(&ctx.pool, std::slice::from_ref(record))
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200 * (i + 1))).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("recording an attempt")))
}

/// Publishes an operational event about `ep` to `hookfleet.events`, like any
/// producer, with a confirm, when another webhook of its tenant subscribes to
/// it. Best effort: three tries, then a logged error (the state change it
/// reports is recorded in PostgreSQL either way).
async fn publish_operational(
    ch: &Channel,
    snap: &hookfleet_store::registry::Snapshot,
    ep: &hookfleet_store::registry::RegEndpoint,
    event_type: &str,
    data: serde_json::Value,
) {
    let tenant_id = ep.tenant_id.as_deref();
    if !snap
        .matching(tenant_id, event_type)
        .any(|other| other.id != ep.id)
    {
        return;
    }
    let (id, body) = operational::envelope(event_type, tenant_id, data);
    for attempt in 1..=3 {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(id.as_str().into());
        match publish_confirmed(ch, names::EVENTS_EXCHANGE, event_type, &body, props).await {
            Ok(()) => {
                tracing::info!(event_id = %id, event_type, "Operational event published.");
                return;
            }
            Err(e) if attempt == 3 => {
                tracing::error!(event_id = %id, event_type, error = format!("{e:#}"), "Could not publish an operational event.");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
        }
    }
}

/// The tier a custom schedule's delay waits in, declared on first use.
async fn ensure_tier(ctx: &Ctx, ch: &Channel, delay: Duration) -> anyhow::Result<Duration> {
    let tier = topology::tier_for(delay, &ctx.settings.retry.tiers());
    if lock(&ctx.tiers).contains(&tier) {
        return Ok(tier);
    }
    topology::declare_tier(ch, ctx.settings.amqp.queue_type, tier)
        .await
        .context("declaring a retry tier")?;
    lock(&ctx.tiers).insert(tier);
    Ok(tier)
}

/// Returns a message to its queue; the broker delivers it again.
async fn requeue(acker: &lapin::Acker) {
    let _ = hookfleet_broker::nack_requeue(acker).await;
}

async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) -> anyhow::Result<()> {
    let msg = hookfleet_broker::Outgoing {
        exchange,
        routing_key: key,
        mandatory: false,
        payload: body,
        properties: props,
    };
    hookfleet_broker::publish_confirmed(ch, [msg]).await
}
