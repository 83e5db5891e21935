//! Idempotent declaration of every exchange and queue (docs/ARCHITECTURE.md §20). Every
//! process declares what it uses at each (re)connection; declaring an existing
//! entity with the same arguments is a no-op.
use crate::names::*;
use hookfleet_core::config::QueueType;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};
use std::time::Duration;

fn arg(t: &mut FieldTable, k: &str, v: AMQPValue) {
    t.insert(ShortString::from(k), v);
}

/// Arguments of an endpoint queue (one per endpoint: there may be thousands).
fn queue_args(qt: QueueType) -> FieldTable {
    let mut t = FieldTable::default();
    if qt == QueueType::Quorum {
        // Replicated, durable queues; https://www.rabbitmq.com/docs/quorum-queues
        arg(
            &mut t,
            "x-queue-type",
            AMQPValue::LongString("quorum".into()),
        );
    }
    t
}

/// Arguments of the few shared queues (router, retry tiers, dead, invalid,
/// unroutable). Classic ones are version 2 (RabbitMQ 3.10+; 4.x has only v2 and
/// ignores the argument): the router queue takes every event, and v2 took a
/// producer from 17,000 to 24,800 confirmed events/s on this machine class.
/// Endpoint queues stay at the broker's default: on 3.x each v2 queue keeps its
/// own index file open, and a thousand of them ran RabbitMQ out of file
/// descriptors (emfile, queues crashing) at its default limit of 1024; even
/// idle, each reserves two handles of the node's file handle cache, so 10,000
/// of them wedged a node with a 20,000 limit (docs/SCALING.md §3). A shared
/// queue that already exists without the argument fails the declare
/// (PRECONDITION_FAILED, inequivalent arg): delete it (empty) first.
/// https://www.rabbitmq.com/docs/classic-queues
fn shared_queue_args(qt: QueueType) -> FieldTable {
    let mut t = queue_args(qt);
    if qt == QueueType::Classic {
        arg(&mut t, "x-queue-version", AMQPValue::ShortShortInt(2));
    }
    t
}

const DURABLE_EX: ExchangeDeclareOptions = ExchangeDeclareOptions {
    passive: false,
    durable: true,
    auto_delete: false,
    internal: false,
    nowait: false,
};
const DURABLE_Q: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

async fn queue(ch: &Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    ch.queue_declare(name.into(), DURABLE_Q, args)
        .await
        .map(|_| ())
}

async fn bind(ch: &Channel, q: &str, ex: &str, key: &str) -> lapin::Result<()> {
    ch.queue_bind(
        q.into(),
        ex.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
}

/// Declares the fixed topology and one retry tier per distinct delay.
pub async fn declare(ch: &Channel, qt: QueueType, tiers: &[Duration]) -> lapin::Result<()> {
    ch.exchange_declare(
        EVENTS_EXCHANGE.into(),
        ExchangeKind::Topic,
        DURABLE_EX,
        FieldTable::default(),
    )
    .await?;
    queue(ch, ROUTER_QUEUE, shared_queue_args(qt)).await?;
    bind(ch, ROUTER_QUEUE, EVENTS_EXCHANGE, "#").await?;
    declare_ordered_router(ch, qt).await?;

    // A delivery whose endpoint queue does not exist is kept, never dropped:
    // https://www.rabbitmq.com/docs/ae
    ch.exchange_declare(
        UNROUTABLE.into(),
        ExchangeKind::Fanout,
        DURABLE_EX,
        FieldTable::default(),
    )
    .await?;
    queue(ch, UNROUTABLE, shared_queue_args(qt)).await?;
    bind(ch, UNROUTABLE, UNROUTABLE, "").await?;
    let mut ae = FieldTable::default();
    arg(
        &mut ae,
        "alternate-exchange",
        AMQPValue::LongString(UNROUTABLE.into()),
    );
    ch.exchange_declare(
        DELIVERIES_EXCHANGE.into(),
        ExchangeKind::Direct,
        DURABLE_EX,
        ae,
    )
    .await?;

    queue(ch, DEAD_QUEUE, shared_queue_args(qt)).await?;
    queue(ch, INVALID_QUEUE, shared_queue_args(qt)).await?;

    for d in tiers {
        declare_tier(ch, qt, *d).await?;
    }
    Ok(())
}

/// The retry tiers an endpoint's or event type's own schedule may use, beside
/// the default schedule's: a delay is rounded up to the first tier at or above
/// it, so a tenant's schedule cannot create a queue per delay it likes.
pub const LADDER: [u64; 23] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 18000, 21600,
    28800, 36000, 43200, 57600, 86400,
];

/// The tier a delay of a custom schedule waits in: the default schedule's tier
/// when it has this very delay, else the first [`LADDER`] step at or above it.
pub fn tier_for(delay: Duration, default_tiers: &[Duration]) -> Duration {
    if default_tiers.contains(&delay) {
        return delay;
    }
    let secs = delay.as_secs_f64();
    LADDER
        .iter()
        .map(|s| Duration::from_secs(*s))
        .find(|t| t.as_secs_f64() >= secs)
        .unwrap_or(Duration::from_secs(86_400))
}

/// The tiers a custom schedule (`5s,1m,1h`) waits in: [`tier_for`] of each
/// delay, without repeats. A schedule that does not parse needs none (it is
/// refused before it is stored).
pub fn schedule_tiers(schedule: &str, default_tiers: &[Duration]) -> Vec<Duration> {
    let Ok(s) = hookfleet_core::retry::RetrySchedule::parse(schedule) else {
        return Vec::new();
    };
    let mut tiers: Vec<Duration> = s
        .tiers()
        .into_iter()
        .map(|d| tier_for(d, default_tiers))
        .collect();
    tiers.sort();
    tiers.dedup();
    tiers
}

/// Declares one retry tier: `hookfleet.retry.<delay>`, a fanout exchange and a
/// queue whose messages expire after `d` back into the deliveries exchange.
pub async fn declare_tier(ch: &Channel, qt: QueueType, d: Duration) -> lapin::Result<()> {
    let name = retry_tier(d);

    let mut args = shared_queue_args(qt);
    // Queue-level TTL, never per-message: RabbitMQ only expires messages at the
    // head of a queue, so mixed per-message TTLs would block each other.
    // https://www.rabbitmq.com/docs/ttl#per-message-ttl-caveats
    arg(
        &mut args,
        "x-message-ttl",
        AMQPValue::LongLongInt(d.as_millis() as i64),
    );
    // Expired messages go back to the deliveries exchange with their original
    // routing key (the endpoint id): https://www.rabbitmq.com/docs/dlx
    arg(
        &mut args,
        "x-dead-letter-exchange",
        AMQPValue::LongString(DELIVERIES_EXCHANGE.into()),
    );
    if qt == QueueType::Quorum {
        // At-least-once dead-lettering needs reject-publish overflow (3.10+).
        arg(
            &mut args,
            "x-dead-letter-strategy",
            AMQPValue::LongString("at-least-once".into()),
        );
        arg(
            &mut args,
            "x-overflow",
            AMQPValue::LongString("reject-publish".into()),
        );
    }
    ch.exchange_declare(
        name.as_str().into(),
        ExchangeKind::Fanout,
        DURABLE_EX,
        FieldTable::default(),
    )
    .await?;
    queue(ch, &name, args).await?;
    bind(ch, &name, &name, "").await
}

/// Declares `hookfleet.endpoint.<id>` and binds it to the deliveries exchange.
/// The queue of an ordered (FIFO) endpoint has a single active consumer
/// (https://www.rabbitmq.com/docs/consumers#single-active-consumer): every
/// worker subscribes, one at a time receives. A queue's arguments cannot
/// change, so every declare site must pass the endpoint's `ordered`.
pub async fn declare_endpoint(
    ch: &Channel,
    qt: QueueType,
    endpoint_id: &str,
    ordered: bool,
) -> lapin::Result<()> {
    let q = endpoint_queue(endpoint_id);
    let mut args = queue_args(qt);
    if ordered {
        arg(
            &mut args,
            "x-single-active-consumer",
            AMQPValue::Boolean(true),
        );
    }
    queue(ch, &q, args).await?;
    bind(ch, &q, DELIVERIES_EXCHANGE, endpoint_id).await
}

/// Declares `hookfleet.router.ordered`: the queue of the ordered router, with a
/// single active consumer so one router at a time takes events in publish
/// order. It is bound to `hookfleet.events` only with the event types FIFO
/// endpoints subscribe to ([`bind_ordered`]), so without FIFO endpoints it
/// receives nothing.
pub async fn declare_ordered_router(ch: &Channel, qt: QueueType) -> lapin::Result<()> {
    let mut args = shared_queue_args(qt);
    arg(
        &mut args,
        "x-single-active-consumer",
        AMQPValue::Boolean(true),
    );
    queue(ch, ORDERED_ROUTER_QUEUE, args).await
}

/// The binding key of a subscribed event type: `*` (every type) is `#`.
pub fn ordered_key(event_type: &str) -> &str {
    if event_type == "*" {
        "#"
    } else {
        event_type
    }
}

/// Binds `hookfleet.router.ordered` with `bind` and unbinds `unbind` (binding
/// keys, see [`ordered_key`]). Both are idempotent.
pub async fn bind_ordered(
    ch: &Channel,
    bind_keys: &[String],
    unbind: &[String],
) -> lapin::Result<()> {
    for k in bind_keys {
        bind(ch, ORDERED_ROUTER_QUEUE, EVENTS_EXCHANGE, k).await?;
    }
    for k in unbind {
        ch.queue_unbind(
            ORDERED_ROUTER_QUEUE.into(),
            EVENTS_EXCHANGE.into(),
            k.as_str().into(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}

/// A passive declare: the queue's message and consumer counts, without
/// creating it. A missing queue is an error, and the broker then closes the
/// channel (use one the caller can lose). Its reply also tells that every frame
/// sent earlier on `ch` (acks included) has been taken.
pub async fn inspect(ch: &Channel, queue: &str) -> lapin::Result<lapin::Queue> {
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), passive, FieldTable::default())
        .await
}

/// Queue declares (passive ones too) and binds a long-lived channel answers
/// before it is replaced. lapin keeps every queue and binding declared on a
/// channel, for its topology recovery, until the channel closes: on a channel
/// that declares one queue per endpoint for as long as its process runs,
/// ~570 bytes per endpoint ever created (issue #16). The API's 8 declare
/// channels then hold at most 2,000 queues' worth (~1 MB), whatever the
/// number of endpoints, for one channel opened per 250 webhooks created.
pub const DECLARES_PER_CHANNEL: usize = 250;

/// How long a replaced channel stays open for what is still in flight on it
/// (a declare answers in milliseconds).
pub const RETIRE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Closes a replaced channel after [`RETIRE_AFTER`], which drops what lapin
/// remembered of it.
pub fn retire(ch: Channel) {
    tokio::spawn(async move {
        tokio::time::sleep(RETIRE_AFTER).await;
        let _ = ch.close(200, "replaced".into()).await;
    });
}
