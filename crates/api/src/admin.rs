//! Endpoint management shared by the CLI and the API: validation (errors name
//! the field), the database write, and the broker side (the endpoint's queue).
use anyhow::{bail, Context as _};
use hookfleet_broker::{headers as h, names, topology};
use hookfleet_core::{endpoint, envelope, Secret, Settings};
use hookfleet_store::endpoints::{self, Endpoint, NewEndpoint};
use hookfleet_store::Pool;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
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
    pub metadata: Option<serde_json::Value>,
    pub rate_limit: Option<i32>,
    pub max_in_flight: Option<i32>,
    /// Delays between attempts, e.g. `["5s", "1m", "1h"]`.
    pub retry_schedule: Option<Vec<String>>,
    /// FIFO: delivered one at a time in publish order.
    pub ordered: bool,
}

/// `ordering`: `parallel` (the default) or `fifo`.
pub fn parse_ordering(v: Option<&str>) -> Result<bool, FieldError> {
    match v {
        None | Some("parallel") => Ok(false),
        Some("fifo") => Ok(true),
        Some(other) => Err(field(
            "ordering",
            format!(
                "must be `parallel` or `fifo`, not `{}`",
                hookfleet_core::text::truncate(other, 40)
            ),
        )),
    }
}

/// Checks the delivery control settings; returns the retry schedule's stored form.
pub fn validate_control(
    rate_limit: Option<i32>,
    max_in_flight: Option<i32>,
    retry_schedule: Option<&[String]>,
) -> Result<Option<String>, FieldError> {
    if let Some(r) = rate_limit {
        endpoint::validate_rate_limit(r).map_err(|e| field("rate_limit", e))?;
    }
    if let Some(m) = max_in_flight {
        endpoint::validate_max_in_flight(m).map_err(|e| field("max_in_flight", e))?;
    }
    retry_schedule
        .map(|d| endpoint::validate_retry_schedule(d).map_err(|e| field("retry_schedule", e)))
        .transpose()
}

/// A configured limit would be passed; answered 409 `limit_reached`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LimitReached(pub String);

/// A validation failure naming the input field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

pub const MAX_DESCRIPTION: usize = 1024;
pub const MAX_METADATA_BYTES: usize = 4096;

/// Headers that describe one connection or its framing, or talk to a proxy
/// (RFC 9110 §7.6.1, §7.8, §10.1.1, §11.7): never a webhook's custom header.
pub fn is_hop_by_hop(lower: &str) -> bool {
    matches!(
        lower,
        "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
            | "transfer-encoding"
            | "host"
            | "content-length"
    ) || lower.starts_with("proxy-")
}

/// Checks the parts of an endpoint a caller can set; custom headers against
/// `api.max_custom_headers` and `api.max_header_value_bytes`.
pub fn validate_parts(
    api: &hookfleet_core::config::ApiSettings,
    url: Option<&str>,
    events: Option<&[String]>,
    description: Option<&str>,
    headers: Option<&BTreeMap<String, String>>,
    metadata: Option<&serde_json::Value>,
) -> Result<(), FieldError> {
    if let Some(u) = url {
        endpoint::validate_url(u).map_err(|e| field("url", e))?;
    }
    if let Some(ev) = events {
        endpoint::validate_event_filter(ev).map_err(|e| field("events", e))?;
        if ev.len() > 100 {
            return Err(field("events", "at most 100 event types"));
        }
    }
    if description.is_some_and(|d| d.len() > MAX_DESCRIPTION) {
        return Err(field(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    if let Some(h) = headers {
        if h.len() > api.max_custom_headers {
            return Err(field(
                "headers",
                format!(
                    "at most {} headers (api.max_custom_headers)",
                    api.max_custom_headers
                ),
            ));
        }
        for (k, v) in h {
            let lower = k.to_ascii_lowercase();
            if axum::http::HeaderName::from_bytes(k.as_bytes()).is_err() || k.len() > 128 {
                return Err(field(
                    "headers",
                    format!("`{k}` is not a valid header name"),
                ));
            }
            if lower.starts_with("webhook-")
                || ["content-type", "user-agent"].contains(&lower.as_str())
            {
                return Err(field(
                    "headers",
                    format!("`{k}` is set by hookfleet and cannot be overridden"),
                ));
            }
            if is_hop_by_hop(&lower) {
                return Err(field(
                    "headers",
                    format!("`{k}` is a hop-by-hop, framing or proxy header: HTTP sets it per connection, a webhook cannot"),
                ));
            }
            if axum::http::HeaderValue::from_str(v).is_err() || v.len() > api.max_header_value_bytes
            {
                return Err(field(
                    "headers",
                    format!(
                        "the value of `{k}` is not a valid header value of at most {} bytes (api.max_header_value_bytes)",
                        api.max_header_value_bytes
                    ),
                ));
            }
        }
    }
    if let Some(m) = metadata {
        if !m.is_object() {
            return Err(field("metadata", "must be a JSON object"));
        }
        if m.to_string().len() > MAX_METADATA_BYTES {
            return Err(field(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
            ));
        }
    }
    Ok(())
}

/// Refuses event types missing from the catalog (`*` is always fine).
pub async fn check_known_types(pool: &Pool, events: &[String]) -> anyhow::Result<()> {
    let named: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| *e != "*")
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT name FROM event_types WHERE name = ANY($1)",
            &[&named],
        )
        .await?;
    let known: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    if let Some(unknown) = named.iter().find(|e| !known.contains(**e)) {
        return Err(field(
            "events",
            format!("unknown event type `{unknown}` (see GET /api/v1/webhooks/events)"),
        )
        .into());
    }
    Ok(())
}

/// Validates, stores, and declares the queue of a new endpoint. Returns the
/// endpoint and its secret (shown once).
pub async fn create_endpoint(
    settings: &Settings,
    pool: &Pool,
    input: EndpointInput,
) -> anyhow::Result<(Endpoint, String)> {
    create_endpoint_with(settings, pool, input, None).await
}

/// [`create_endpoint`], declaring the queue through a shared publisher when given.
pub async fn create_endpoint_with(
    settings: &Settings,
    pool: &Pool,
    input: EndpointInput,
    publisher: Option<&crate::publisher::Publisher>,
) -> anyhow::Result<(Endpoint, String)> {
    validate_parts(
        &settings.api,
        Some(&input.url),
        Some(&input.events),
        Some(&input.description),
        Some(&input.headers),
        input.metadata.as_ref(),
    )?;
    if let Some(t) = &input.tenant_id {
        envelope::validate_tenant_id(t).map_err(|e| field("tenant_id", e))?;
    }
    let retry_schedule = validate_control(
        input.rate_limit,
        input.max_in_flight,
        input.retry_schedule.as_deref(),
    )?;
    let secret = match &input.secret {
        Some(s) => Secret::parse(s).map_err(|e| field("secret", e.to_string()))?,
        None => Secret::generate(),
    };
    check_known_types(pool, &input.events).await?;
    declare_schedule_tiers(settings, publisher, retry_schedule.as_deref()).await?;
    let new = NewEndpoint {
        id: hookfleet_core::ids::endpoint_id(),
        tenant_id: input.tenant_id,
        url: input.url,
        description: input.description,
        event_types: input.events,
        is_active: input.is_active,
        secret: secret.expose().to_owned(),
        headers: input.headers,
        metadata: input.metadata.unwrap_or_else(|| serde_json::json!({})),
        control: endpoints::Control {
            rate_limit: input.rate_limit,
            max_in_flight: input.max_in_flight,
            retry_schedule,
        },
        ordering: if input.ordered {
            hookfleet_core::Ordering::Fifo
        } else {
            hookfleet_core::Ordering::Parallel
        },
    };
    let ep = endpoints::create(
        pool,
        settings.encryption_keys.as_ref(),
        &new,
        settings.api.max_endpoints_per_tenant,
    )
        .await?
        .ok_or_else(|| {
            LimitReached(format!(
                "{} already has {} webhooks, the most api.max_endpoints_per_tenant allows; delete one first",
                new.tenant_id
                    .as_deref()
                    .map_or("the tenant-less scope".to_owned(), |t| format!("tenant `{t}`")),
                settings.api.max_endpoints_per_tenant
            ))
        })?;
    // Routers and workers do this too when they see the endpoint; doing it
    // here means no delivery can be routed before its queue exists, and for a
    // FIFO endpoint that no event published after the answer misses the
    // ordered router.
    if let Err(e) = broker_side(settings, pool, &ep, publisher).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "Could not declare the endpoint queue or bind the ordered router now; routers and workers will."
        );
    }
    Ok((ep, secret.expose().to_owned()))
}

/// Declares the retry tiers a custom schedule (`5s,1m`) waits in, before the
/// schedule is stored: through the shared publisher when given, else on a
/// connection of its own (the CLI). A failure is a `BrokerUnavailable` (503):
/// a schedule is never stored while a tier it needs may be missing.
pub async fn declare_schedule_tiers(
    settings: &Settings,
    publisher: Option<&crate::publisher::Publisher>,
    schedule: Option<&str>,
) -> anyhow::Result<()> {
    let Some(schedule) = schedule else {
        return Ok(());
    };
    if let Some(p) = publisher {
        return p.declare_schedule_tiers(schedule).await;
    }
    let declared = async {
        let conn = hookfleet_broker::connect(&settings.amqp.url, "hookfleet-admin").await?;
        let r = async {
            let ch = conn.create_channel().await?;
            for t in topology::schedule_tiers(schedule, &settings.retry.tiers()) {
                topology::declare_tier(&ch, settings.amqp.queue_type, t).await?;
            }
            anyhow::Ok(())
        }
        .await;
        let _ = conn.close(200, "done".into()).await;
        r
    };
    declared
        .await
        .context("declaring the retry tiers of the schedule")
        .map_err(|e| crate::error::BrokerUnavailable(e).into())
}

/// The broker side of a new endpoint: its queue, and for a FIFO endpoint the
/// ordered router's bindings. Through the shared publisher when given, else
/// on a connection of its own (the CLI).
async fn broker_side(
    settings: &Settings,
    pool: &Pool,
    ep: &Endpoint,
    publisher: Option<&crate::publisher::Publisher>,
) -> anyhow::Result<()> {
    if let Some(p) = publisher {
        p.declare_endpoint(ep).await?;
        if ep.ordered() {
            p.sync_ordered(pool).await?;
        }
        return Ok(());
    }
    let conn = hookfleet_broker::connect(&settings.amqp.url, "hookfleet-admin").await?;
    let ch = conn.create_channel().await?;
    topology::declare(&ch, settings.amqp.queue_type, &settings.retry.tiers()).await?;
    topology::declare_endpoint(&ch, settings.amqp.queue_type, &ep.id, ep.ordered()).await?;
    let synced = if ep.ordered() {
        hookfleet_router::sync_bindings(pool, &ch).await
    } else {
        Ok(())
    };
    let _ = conn.close(200, "done".into()).await;
    synced
}

/// Binds the ordered router's queue to the event types FIFO endpoints
/// subscribe to, now (after a FIFO webhook's types changed; the routers follow
/// a moment later). A failure is logged: the routers' sync follows.
pub async fn sync_ordered(pool: &Pool, publisher: &crate::publisher::Publisher) {
    if let Err(e) = publisher.sync_ordered(pool).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "Could not bind the ordered router's queue now; the routers will."
        );
    }
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
    let passive = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..Default::default()
    };
    // Wait (bounded) for workers to cancel their consumers, so no message is in a
    // worker's hands when the queue goes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let q = match ch
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
        {
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
        let Some(msg) = ch
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await?
        else {
            break;
        };
        let mut headers = msg
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        h::set_str(&mut headers, h::LAST_ERROR, "endpoint deleted");
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
    let _ = conn.close(200, "done".into()).await;
    Ok(moved)
}
