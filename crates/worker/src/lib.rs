//! The worker: consumes the queues of its share of the active endpoints
//! (each endpoint is consumed by `worker.consumers_per_endpoint` workers,
//! chosen by rendezvous hashing over the live workers, docs/ARCHITECTURE.md
//! §21), POSTs each delivery
//! signed (Standard Webhooks), records the attempt, and acks only after the record
//! is committed (and, on failure, after the retry or dead-letter publish is
//! confirmed).
//!
//! Isolation: each endpoint has its own queue and its own consumer with its own
//! prefetch window (`amqp.worker_prefetch`), so a slow endpoint holds at most that
//! many of this worker's delivery slots; `delivery.max_in_flight` caps the total.
//! The set of consumers follows the endpoint registry and the membership: a new
//! endpoint is consumed as soon as its NOTIFY arrives, a paused or deleted one
//! is cancelled, and when a worker joins or leaves only the slots that move
//! change hands.
//!
//! Layout, in the order one delivery passes through it:
//! - [`session`]: one broker session: its channels, and the set of endpoint
//!   consumers kept in step with the registry and this worker's share.
//! - `members`: this worker's heartbeat in `worker_members` and its share.
//! - `depth`: the deliverable backlog, polled for busy queues only.
//! - [`consume`]: an endpoint's consumer: next message, admission, one task
//!   per delivery.
//! - [`gate`]: admission to one endpoint (rate limit, concurrency share,
//!   slow-down pause).
//! - [`ordered`]: the consumer of a FIFO endpoint: one message at a time,
//!   retried in place.
//! - [`probe`]: the prober of open circuits.
//! - [`attempt`]: one attempt: sign, POST, then carry out the decision
//!   (publish the retry or dead letter, record, ack).
//! - [`decide`]: the pure decision an answer leads to, with its rule table.
//! - [`health`]: the circuit breaker and auto-disable (state in `store::health`).
//! - [`events`]: the operational events an attempt raises.
//! - [`http`]: the HTTP client and its address policy.
//! - [`writer`]: batches of attempt records, committed then acked.
//! - [`keeper`]: keeps what reaches `hookfleet.dead` in PostgreSQL.
#![forbid(unsafe_code)]

pub mod attempt;
pub mod consume;
pub mod decide;
mod depth;
pub mod events;
pub mod gate;
pub mod health;
pub mod http;
pub mod keeper;
mod members;
pub mod ordered;
pub mod probe;
pub mod session;
pub mod writer;

use anyhow::Context as _;
use hookfleet_broker::topology;
use hookfleet_core::Settings;
use hookfleet_store::{Pool, Registry};
use lapin::{BasicProperties, Channel};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
        member: members::member_id(),
        declare_queues: Default::default(),
    });
    hookfleet_broker::supervise(&settings.amqp.target, "worker", &shutdown, |conn| {
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        async move { session::run(&ctx, &conn, &shutdown).await }
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

/// What every part of the worker shares.
pub(crate) struct Ctx {
    settings: Arc<Settings>,
    registry: Arc<Registry>,
    client: http::Client,
    writer: mpsc::Sender<writer::Msg>,
    health: health::Health,
    pool: Pool,
    /// Retry tiers declared in this session (the default schedule's, and the
    /// ladder steps custom schedules used so far).
    tiers: std::sync::Mutex<std::collections::HashSet<Duration>>,
    /// This worker's id in `worker_members`.
    member: String,
    /// Whether the next session declares every queue it starts consuming
    /// (set when a session failed to start a consumer: a queue may be
    /// missing); otherwise only those a registry change names.
    declare_queues: std::sync::atomic::AtomicBool,
}

impl Ctx {
    /// The tier a custom schedule's delay waits in, declared on first use.
    async fn ensure_tier(&self, ch: &Channel, delay: Duration) -> anyhow::Result<Duration> {
        let tier = topology::tier_for(delay, &self.settings.retry.tiers());
        if lock(&self.tiers).contains(&tier) {
            return Ok(tier);
        }
        topology::declare_tier(ch, self.settings.amqp.queue_type, tier)
            .await
            .context("declaring a retry tier")?;
        lock(&self.tiers).insert(tier);
        Ok(tier)
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Returns a message to its queue; the broker delivers it again.
async fn requeue(acker: &lapin::Acker) {
    let _ = hookfleet_broker::nack_requeue(acker).await;
}

/// Publishes one message and waits for its confirm.
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
