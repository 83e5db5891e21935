//! Endpoint management shared by the CLI (and the API to come): validation,
//! the database write, and the broker side (the endpoint's queue).
use anyhow::{bail, Context as _};
use hookfleet_broker::{headers as h, names, topology};
use hookfleet_core::{endpoint, envelope, Secret, Settings};
use hookfleet_store::endpoints::{self, Endpoint, NewEndpoint};
use hookfleet_store::Pool;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use std::collections::BTreeMap;
use std::time::Duration;

/// Input for a new endpoint, before validation.
#[derive(Debug, Default, Clone)]
pub struct EndpointInput {
    pub url: String,
    pub events: Vec<String>,
    pub tenant_id: Option<String>,
    pub description: String,
    pub secret: Option<String>,
    pub is_active: bool,
    pub headers: BTreeMap<String, String>,
}

/// Validates, stores, and declares the queue of a new endpoint. Returns the
/// endpoint and its secret (shown once).
pub async fn create_endpoint(settings: &Settings, pool: &Pool, input: EndpointInput) -> anyhow::Result<(Endpoint, String)> {
    endpoint::validate_url(&input.url).map_err(|e| anyhow::anyhow!("url: {e}"))?;
    endpoint::validate_event_filter(&input.events).map_err(|e| anyhow::anyhow!("events: {e}"))?;
    if let Some(t) = &input.tenant_id {
        envelope::validate_tenant_id(t).map_err(|e| anyhow::anyhow!("tenant: {e}"))?;
    }
    if input.description.len() > 1024 {
        bail!("description: must be at most 1024 characters");
    }
    let secret = match &input.secret {
        Some(s) => Secret::parse(s).map_err(|e| anyhow::anyhow!("secret: {e}"))?,
        None => Secret::generate(),
    };
    let new = NewEndpoint {
        id: hookfleet_core::ids::endpoint_id(),
        tenant_id: input.tenant_id,
        url: input.url,
        description: input.description,
        event_types: input.events,
        is_active: input.is_active,
        secret: secret.expose().to_owned(),
        headers: input.headers,
    };
    let ep = endpoints::create(pool, &new).await?;
    // Routers and workers declare it too when they see the endpoint; doing it here
    // means no delivery can be routed before its queue exists.
    if let Err(e) = declare_queue(settings, &ep.id).await {
        tracing::warn!(error = format!("{e:#}"), "Could not declare the endpoint queue now; router and workers will.");
    }
    Ok((ep, secret.expose().to_owned()))
}

async fn declare_queue(settings: &Settings, id: &str) -> anyhow::Result<()> {
    let conn = hookfleet_broker::connect(&settings.amqp.url, "hookfleet-admin").await?;
    let ch = conn.create_channel().await?;
    topology::declare(&ch, settings.amqp.queue_type, &settings.retry.tiers()).await?;
    topology::declare_endpoint(&ch, settings.amqp.queue_type, id).await?;
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

/// Deletes an endpoint: the row goes (workers stop consuming on the NOTIFY), what
/// is left in its queue moves to `hookfleet.dead`, and the queue is removed.
/// Returns how many messages were dead-lettered.
pub async fn delete_endpoint(settings: &Settings, pool: &Pool, id: &str) -> anyhow::Result<u64> {
    if !endpoints::delete(pool, id).await? {
        bail!("no endpoint with id {id}");
    }
    let conn = hookfleet_broker::connect(&settings.amqp.url, "hookfleet-admin").await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let queue = names::endpoint_queue(id);
    let passive = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
    // Wait (bounded) for workers to cancel their consumers, so no message is in a
    // worker's hands when the queue goes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let q = match ch.queue_declare(queue.as_str().into(), passive, FieldTable::default()).await {
            Ok(q) => q,
            Err(_) => return Ok(0), // no queue: nothing to move
        };
        if q.consumer_count() == 0 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut moved = 0;
    loop {
        let Some(msg) = ch.basic_get(queue.as_str().into(), BasicGetOptions::default()).await? else { break };
        let mut headers = msg.delivery.properties.headers().clone().unwrap_or_default();
        h::set_str(&mut headers, h::LAST_ERROR, "endpoint deleted");
        h::set_str(&mut headers, "x-dead-at", &envelope::now_rfc3339());
        let props = msg.delivery.properties.clone().with_headers(headers).with_delivery_mode(2);
        let conf = ch
            .basic_publish("".into(), names::DEAD_QUEUE.into(), BasicPublishOptions::default(), &msg.delivery.data, props)
            .await?
            .await?;
        if conf.is_nack() {
            bail!("the broker refused a dead-letter publish; the queue {queue} is kept");
        }
        msg.delivery.acker.ack(BasicAckOptions::default()).await?;
        moved += 1;
    }
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions { if_unused: false, if_empty: true, nowait: false })
        .await
        .with_context(|| format!("deleting queue {queue}"))?;
    let _ = conn.close(200, "done".into()).await;
    Ok(moved)
}
