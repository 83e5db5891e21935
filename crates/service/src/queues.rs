//! The broker side of endpoint administration: an endpoint's queue and the
//! ordered router's bindings, the retry tiers a custom schedule waits in, and
//! moving what is left in a deleted endpoint's queue to `hookfleet.dead`.
//! Through the API's shared publisher when there is one, else on a connection
//! of its own (the CLI).
use crate::error::{BrokerUnavailable, ServiceResult};
use crate::{Ctx, Publisher};
use anyhow::{bail, Context as _};
use hookfleet_broker::{headers as h, names, topology};
use hookfleet_core::{envelope, Settings};
use hookfleet_store::endpoints::Endpoint;
use hookfleet_store::Pool;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use std::time::Duration;

/// Runs `f` on a channel of a connection of its own (the CLI's path; the API
/// goes through its shared publisher), and closes that connection whatever
/// `f` returns.
async fn on_admin_channel<T>(
    settings: &Settings,
    f: impl AsyncFnOnce(&lapin::Channel) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let conn = hookfleet_broker::connect(&settings.amqp.target, "hookfleet-admin").await?;
    let r = async { f(&conn.create_channel().await?).await }.await;
    let _ = conn.close(200, "done".into()).await;
    r
}

/// Declares the retry tiers a custom schedule (`5s,1m`) waits in, before the
/// schedule is stored. A failure is an outage: a schedule is never stored
/// while a tier it needs may be missing.
pub async fn declare_schedule_tiers(ctx: Ctx<'_>, schedule: Option<&str>) -> ServiceResult<()> {
    let Some(schedule) = schedule else {
        return Ok(());
    };
    if let Some(p) = ctx.publisher {
        return Ok(p.declare_schedule_tiers(schedule).await?);
    }
    let settings = ctx.settings;
    on_admin_channel(settings, async |ch| {
        for t in topology::schedule_tiers(schedule, &settings.retry.tiers()) {
            topology::declare_tier(ch, settings.amqp.queue_type, t).await?;
        }
        Ok(())
    })
    .await
    .context("declaring the retry tiers of the schedule")
    .map_err(|e| BrokerUnavailable(e).into())
}

/// Declares and binds the queue of a new endpoint, before its row is stored:
/// every process that learns of an endpoint (through its row) can then count
/// on its queue, so no router or worker declares it again (issue #16: each
/// redundant declare + bind is broker work per webhook created). A failure is
/// an outage, as for the retry tiers: nothing is stored.
pub async fn declare_queue(ctx: Ctx<'_>, id: &str, ordered: bool) -> ServiceResult<()> {
    if let Some(p) = ctx.publisher {
        return Ok(p.declare_queue(id, ordered).await?);
    }
    let settings = ctx.settings;
    on_admin_channel(settings, async |ch| {
        topology::declare(ch, settings.amqp.queue_type, &settings.retry.tiers()).await?;
        topology::declare_endpoint(ch, settings.amqp.queue_type, id, ordered).await?;
        Ok(())
    })
    .await
    .context("declaring the endpoint queue")
    .map_err(|e| BrokerUnavailable(e).into())
}

/// Deletes the queue [`declare_queue`] made for an endpoint whose row was
/// then not stored (its tenant at its limit, a database error), if it is
/// still empty and unconsumed: ids are never reused, so it would stay forever.
/// Best effort: a failure is logged.
pub async fn forget_queue(ctx: Ctx<'_>, id: &str) {
    let deleted = async {
        if let Some(p) = ctx.publisher {
            return p.delete_unused_queue(id).await;
        }
        on_admin_channel(ctx.settings, async |ch| {
            ch.queue_delete(
                names::endpoint_queue(id).as_str().into(),
                QueueDeleteOptions {
                    if_unused: true,
                    if_empty: true,
                    nowait: false,
                },
            )
            .await?;
            Ok(())
        })
        .await
    };
    if let Err(e) = deleted.await {
        tracing::warn!(
            endpoint_id = %id,
            error = format!("{e:#}"),
            "Could not delete the queue of a webhook that was not stored."
        );
    }
}

/// For a new FIFO endpoint, once its row is stored: binds the ordered
/// router's queue to its event types now, so no event published after the
/// answer misses the ordered router. A failure is logged: the routers' own
/// sync follows.
pub async fn bind_ordered(ctx: Ctx<'_>, ep: &Endpoint) {
    if !ep.ordered() {
        return;
    }
    let synced = async {
        if let Some(p) = ctx.publisher {
            return p.sync_ordered(ctx.pool).await;
        }
        on_admin_channel(ctx.settings, async |ch| {
            hookfleet_router::sync_bindings(ctx.pool, ch).await
        })
        .await
    };
    if let Err(e) = synced.await {
        tracing::warn!(
            error = format!("{e:#}"),
            "Could not bind the ordered router's queue now; the routers will."
        );
    }
}

/// Binds the ordered router's queue to the event types FIFO endpoints
/// subscribe to, now (after a FIFO webhook's types changed; the routers follow
/// a moment later). A failure is logged: the routers' sync follows.
pub async fn sync_ordered(pool: &Pool, publisher: &Publisher) {
    if let Err(e) = publisher.sync_ordered(pool).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "Could not bind the ordered router's queue now; the routers will."
        );
    }
}

/// Moves what is left in a deleted endpoint's queue to `hookfleet.dead` and
/// removes the queue; returns how many messages moved.
pub async fn drain_deleted(settings: &Settings, id: &str) -> anyhow::Result<u64> {
    on_admin_channel(settings, async |ch| move_to_dead(ch, id).await).await
}

async fn move_to_dead(ch: &lapin::Channel, id: &str) -> anyhow::Result<u64> {
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let queue = names::endpoint_queue(id);
    if !wait_unconsumed(ch, &queue).await {
        return Ok(0); // no queue: nothing to move
    }
    let mut moved = 0;
    while let Some(msg) = ch
        .basic_get(queue.as_str().into(), BasicGetOptions::default())
        .await?
    {
        let mut headers = msg
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        h::set_str(&mut headers, h::LAST_ERROR, "endpoint deleted");
        h::set_str(
            &mut headers,
            h::DEAD_REASON,
            hookfleet_core::DeadReason::EndpointDeleted.as_str(),
        );
        h::set_str(&mut headers, "x-dead-at", &envelope::now_rfc3339());
        let props = msg
            .delivery
            .properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        let conf = ch
            .basic_publish(
                "".into(),
                names::DEAD_QUEUE.into(),
                BasicPublishOptions::default(),
                &msg.delivery.data,
                props,
            )
            .await?
            .await?;
        if conf.is_nack() {
            bail!("the broker refused a dead-letter publish; the queue {queue} is kept");
        }
        hookfleet_broker::ack(&msg.delivery.acker).await?;
        moved += 1;
    }
    ch.queue_delete(
        queue.as_str().into(),
        QueueDeleteOptions {
            if_unused: false,
            if_empty: true,
            nowait: false,
        },
    )
    .await
    .with_context(|| format!("deleting queue {queue}"))?;
    Ok(moved)
}

/// Waits (bounded) for workers to cancel their consumers of `queue`, so no
/// message is in a worker's hands when the queue goes; `false` when there is
/// no such queue.
async fn wait_unconsumed(ch: &lapin::Channel, queue: &str) -> bool {
    let passive = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let Ok(q) = ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
        else {
            return false;
        };
        if q.consumer_count() == 0 || tokio::time::Instant::now() > deadline {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
