//! The router: consumes `hookfleet.router`, validates each envelope, stores the
//! event and one delivery per matching endpoint, publishes the deliveries with
//! publisher confirms, and acks the event only once every publish is confirmed.
//!
//! Endpoint content filters are evaluated here, on the `data` the catalog
//! check already parsed: an event a filter refuses creates no delivery for
//! that endpoint.
//!
//! Work is done in batches (`router.batch_size`, `router.batch_wait`): one
//! transaction and one burst of pipelined publishes per batch, which is what lets
//! a 2-core machine route thousands of events per second with every one durable.
//! A supervisor reconnects with backoff after the broker goes away and resumes.
#![forbid(unsafe_code)]

mod depth;

use anyhow::Context as _;
use futures::StreamExt as _;
use hookfleet_broker::{confirmed, headers as h, names, topology};
use hookfleet_core::envelope::InvalidEnvelope;
use hookfleet_core::filter::Event;
use hookfleet_core::{metrics, trace, Envelope, Ordering, Settings};
use hookfleet_store::deliveries::{self, NewDelivery, NewEvent};
use hookfleet_store::{Pool, Registry};
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the router until `shutdown`, reconnecting whenever the broker goes away.
pub async fn run(
    settings: Arc<Settings>,
    pool: Pool,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    hookfleet_broker::supervise(&settings.amqp.target, "router", &shutdown, |conn| {
        let (settings, pool, registry, shutdown) = (
            settings.clone(),
            pool.clone(),
            registry.clone(),
            shutdown.clone(),
        );
        async move { session(&settings, &pool, &registry, &conn, &shutdown).await }
    })
    .await;
    tracing::info!("Router stopped.");
    Ok(())
}

async fn session(
    settings: &Arc<Settings>,
    pool: &Pool,
    registry: &Arc<Registry>,
    conn: &Connection,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let ch = conn.create_channel().await?;
    topology::declare(&ch, settings.amqp.queue_type, &settings.retry.tiers())
        .await
        .context("declaring topology")?;
    // No endpoint queue is declared here, at start or when one is created:
    // the API and the CLI declare each before storing its row (issue #16).
    let _ = ch.close(200, "declared".into()).await;
    let session_end = shutdown.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    let pid = std::process::id();
    for i in 0..settings.amqp.router_consumers {
        let (r, consumer) = Router::start(
            settings,
            pool,
            registry,
            conn,
            Ordering::Parallel,
            &format!("router-{pid}-{i}"),
        )
        .await?;
        tasks.spawn(r.consume(consumer, session_end.clone()));
    }
    tracing::info!(
        consumers = tasks.len(),
        "Router consuming hookfleet.router."
    );
    // The ordered router: one consumer per process on a single-active-consumer
    // queue, so one router in the fleet takes the events FIFO endpoints
    // subscribe to, in publish order, and routes them in batches one after the
    // other on one channel (publishes on a channel keep their order).
    let (r, consumer) = Router::start(
        settings,
        pool,
        registry,
        conn,
        Ordering::Fifo,
        &format!("router-ordered-{pid}"),
    )
    .await?;
    tasks.spawn(r.consume(consumer, session_end.clone()));

    tokio::select! {
        _ = hookfleet_broker::wait_closed(conn) => {}
        _ = session_end.cancelled() => {}
        _ = tasks.join_next() => {}
        _ = depth::poll(conn, settings, registry) => {}
        _ = sync_ordered_bindings(conn, pool, registry) => {}
    }
    session_end.cancel();
    if tokio::time::timeout(Duration::from_secs(30), tasks.join_all())
        .await
        .is_err()
    {
        tracing::warn!(
            "Router consumers did not finish within 30 s; their events will be redelivered."
        );
    }
    Ok(())
}

/// Keeps `hookfleet.router.ordered` bound to the event types FIFO endpoints
/// subscribe to: at start and after each registry change that changes what
/// they subscribe to (the API also syncs after it creates or changes a FIFO
/// endpoint, before answering). Runs for the
/// whole session; a failed bind closes its channel, so a failure retries on a
/// new one after 5 s.
async fn sync_ordered_bindings(conn: &Connection, pool: &Pool, registry: &Registry) {
    let mut changes = registry.subscribe();
    // What FIFO endpoints subscribed to at the last sync: most registry
    // reloads (health changes, the periodic resync) leave it as it is, and
    // then there is nothing to bind.
    let mut synced: Option<BTreeSet<String>> = None;
    loop {
        let wanted: BTreeSet<String> = registry
            .snapshot()
            .ordered()
            .flat_map(|e| e.event_types.iter().map(|t| t.to_string()))
            .collect();
        if synced.as_ref() != Some(&wanted) {
            let res = match conn.create_channel().await {
                Ok(ch) => {
                    let r = sync_bindings(pool, &ch).await;
                    let _ = ch.close(200, "done".into()).await;
                    r
                }
                Err(e) => Err(e.into()),
            };
            if let Err(e) = res {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "Could not sync the ordered router's bindings; retrying in 5 s."
                );
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            synced = Some(wanted);
        }
        if changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One synchronisation of the ordered router's bindings over `ch`.
pub async fn sync_bindings(pool: &Pool, ch: &Channel) -> anyhow::Result<()> {
    hookfleet_store::endpoints::sync_ordered_bindings(
        pool,
        topology::ordered_key,
        |bind, unbind| async move {
            topology::bind_ordered(ch, &bind, &unbind)
                .await
                .context("binding hookfleet.router.ordered")
        },
    )
    .await
}

struct Router {
    settings: Arc<Settings>,
    pool: Pool,
    registry: Arc<Registry>,
    publish: Channel,
    /// The endpoints this router serves. `Fifo`: the ordered router, which
    /// routes only to FIFO endpoints (the parallel routers only to the others),
    /// leaves invalid events to the parallel routers, and stores only events
    /// some FIFO endpoint takes.
    ordering: Ordering,
}

/// A valid event of a batch: its message, its envelope, the body stored and
/// delivered, its `data` as parsed by the catalog check (what endpoint
/// filters are evaluated on), and its hop.
type Valid = (Delivery, Envelope, String, serde_json::Value, Hop);

/// A valid event's `route` span (none while tracing is off: then nothing is
/// parsed) and the trace headers its deliveries carry: the span's own, or,
/// while tracing is off, the ones the event came with, unchanged.
struct Hop {
    span: tracing::Span,
    next: trace::Headers,
}

impl Hop {
    fn of(d: &Delivery, env: &Envelope, queue: &'static str) -> Hop {
        let incoming = h::trace_of(d.properties.headers().as_ref());
        if !trace::enabled() {
            return Hop {
                span: tracing::Span::none(),
                next: incoming,
            };
        }
        let span = tracing::info_span!(
            target: trace::TARGET,
            "route",
            trace_id = tracing::field::Empty,
            otel.kind = "consumer"
        );
        trace::continue_from(&span, &incoming);
        trace::attr(&span, "messaging.system", "rabbitmq");
        trace::attr(&span, "messaging.destination.name", queue);
        trace::attr(&span, "hookfleet.event.id", env.id.clone());
        trace::attr(&span, "hookfleet.event.type", env.event_type.clone());
        if let Some(t) = &env.tenant_id {
            trace::attr(&span, "hookfleet.tenant.id", t.clone());
        }
        let next = trace::headers_of(&span).unwrap_or(incoming);
        Hop { span, next }
    }
}

/// What one batch stores: its events, their new deliveries, and the events
/// that came back redelivered (whose unattempted deliveries are sent again).
struct Plan<'a> {
    events: Vec<NewEvent<'a>>,
    deliveries: Vec<NewDelivery<'a>>,
    redelivered: HashSet<deliveries::EventKey<'a>>,
}

impl Router {
    /// A router on channels of its own: a consumer of `hookfleet.router` (or,
    /// for FIFO endpoints, of `hookfleet.router.ordered`) with the router
    /// prefetch, and a publisher in confirm mode.
    async fn start(
        settings: &Arc<Settings>,
        pool: &Pool,
        registry: &Arc<Registry>,
        conn: &Connection,
        ordering: Ordering,
        tag: &str,
    ) -> anyhow::Result<(Router, lapin::Consumer)> {
        let consume_ch = conn.create_channel().await?;
        consume_ch
            .basic_qos(settings.amqp.router_prefetch, BasicQosOptions::default())
            .await?;
        let publish = conn.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let queue = match ordering {
            Ordering::Fifo => names::ORDERED_ROUTER_QUEUE,
            Ordering::Parallel => names::ROUTER_QUEUE,
        };
        let consumer = consume_ch
            .basic_consume(
                queue.into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let r = Router {
            settings: settings.clone(),
            pool: pool.clone(),
            registry: registry.clone(),
            publish,
            ordering,
        };
        Ok((r, consumer))
    }

    /// The ordered router (of FIFO endpoints).
    fn ordered(&self) -> bool {
        self.ordering == Ordering::Fifo
    }

    /// The queue this router consumes.
    fn queue(&self) -> &'static str {
        match self.ordering {
            Ordering::Fifo => names::ORDERED_ROUTER_QUEUE,
            Ordering::Parallel => names::ROUTER_QUEUE,
        }
    }

    async fn consume(self, mut consumer: lapin::Consumer, stop: CancellationToken) {
        let cfg = &self.settings.router;
        // Whether every message before this batch on the channel was settled
        // (acked or nacked); a failed batch leaves the next one to ack each
        // message by itself.
        let mut settled = true;
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => return,
                d = consumer.next() => d,
            };
            let mut batch = match first {
                Some(Ok(d)) => vec![d],
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Router consumer failed.");
                    return;
                }
                None => return,
            };
            let deadline = tokio::time::Instant::now() + cfg.batch_wait;
            while batch.len() < cfg.batch_size {
                match tokio::time::timeout_at(deadline, consumer.next()).await {
                    Ok(Some(Ok(d))) => batch.push(d),
                    _ => break,
                }
            }
            let result = self.process(batch, settled).await;
            settled = result.is_ok();
            if let Err(e) = result {
                // Unacked messages return to the queue when the channel closes, or
                // were nacked with requeue: nothing is lost.
                tracing::warn!(
                    error = format!("{e:#}"),
                    "Router batch failed; its events will be redelivered."
                );
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_millis(500)) => {} }
            }
        }
    }

    /// Handles one batch end to end; returns only after every message of the batch
    /// was acked, or nacked for redelivery on error. `settled`: every message
    /// the channel delivered before this batch was acked or nacked, so a batch
    /// acked whole is acked with one `multiple` ack.
    async fn process(&self, batch: Vec<Delivery>, settled: bool) -> anyhow::Result<()> {
        if !self.ordered() {
            metrics::EVENTS_RECEIVED.inc_by(batch.len() as u64);
        }
        let snap = self.registry.snapshot();
        let (valid, invalid) = self.validate(&snap, batch);
        let quarantine = self.quarantine(&invalid).await;
        let result = self.route(&snap, &valid).await;
        if let Err(e) = &result {
            for (.., hop) in &valid {
                trace::error(&hop.span, format!("{e:#}"));
            }
        }
        let mut confirms_ok = true;
        for c in quarantine {
            confirms_ok &= matches!(confirmed(c).await, Ok(()));
        }
        let invalid = invalid.iter().map(|(d, _)| d);
        let valid = valid.iter().map(|(d, ..)| d);
        let (acks, nacks): (Vec<&Delivery>, Vec<&Delivery>) = match (confirms_ok, &result) {
            (true, Ok(())) => (invalid.chain(valid).collect(), vec![]),
            (true, Err(_)) => (invalid.collect(), valid.collect()),
            (false, Ok(())) => (valid.collect(), invalid.collect()),
            (false, Err(_)) => (vec![], invalid.chain(valid).collect()),
        };
        settle(acks, nacks, settled).await?;
        if !confirms_ok {
            anyhow::bail!("the broker did not confirm a quarantined event");
        }
        result
    }

    /// Parses and validates each envelope against the catalog.
    fn validate(
        &self,
        snap: &hookfleet_store::Snapshot,
        batch: Vec<Delivery>,
    ) -> (Vec<Valid>, Vec<(Delivery, InvalidEnvelope)>) {
        let max = self.settings.delivery.max_payload_bytes;
        let mut valid = Vec::with_capacity(batch.len());
        let mut invalid = Vec::new();
        for d in batch {
            let msg_id = d.properties.message_id().as_ref().map(|s| s.as_str());
            match Envelope::parse(&d.data, d.routing_key.as_str(), msg_id, max)
                .and_then(|env| snap.catalog.check_parsed(env))
            {
                Ok((env, data)) => {
                    let body = String::from_utf8(env.to_body()).unwrap_or_default();
                    let hop = Hop::of(&d, &env, self.queue());
                    valid.push((d, env, body, data, hop));
                }
                Err(e) => invalid.push((d, e)),
            }
        }
        (valid, invalid)
    }

    /// Starts publishing a copy of each invalid event to the quarantine queue
    /// (each is acked only once its copy is confirmed). The parallel routers
    /// got the same copy: the ordered one publishes nothing and only acks.
    async fn quarantine(
        &self,
        invalid: &[(Delivery, InvalidEnvelope)],
    ) -> Vec<lapin::Result<lapin::PublisherConfirm>> {
        let mut quarantined = Vec::with_capacity(invalid.len());
        for (d, reason) in invalid.iter().filter(|_| !self.ordered()) {
            tracing::info!(reason = %reason, routing_key = %d.routing_key, "Moving an invalid event to hookfleet.events.invalid.");
            metrics::EVENTS_INVALID
                .with_label_values(&[reason.metric_label()])
                .inc();
            let mut headers = d.properties.headers().clone().unwrap_or_default();
            h::set_str(
                &mut headers,
                h::INVALID_REASON,
                &hookfleet_core::text::truncate(&reason.to_string(), 1024),
            );
            h::set_str(
                &mut headers,
                "x-original-routing-key",
                d.routing_key.as_str(),
            );
            let props = d
                .properties
                .clone()
                .with_headers(headers)
                .with_delivery_mode(2);
            quarantined.push(hookfleet_broker::Outgoing {
                exchange: "",
                routing_key: names::INVALID_QUEUE,
                mandatory: false,
                payload: &d.data,
                properties: props,
            });
        }
        hookfleet_broker::publish_all(&self.publish, quarantined).await
    }

    /// Stores valid events and their deliveries, then publishes the deliveries and
    /// waits for every confirm.
    async fn route(&self, snap: &hookfleet_store::Snapshot, valid: &[Valid]) -> anyhow::Result<()> {
        if valid.is_empty() {
            return Ok(());
        }
        let plan = self.plan(snap, valid);
        if trace::enabled() {
            fan_out(&plan, valid);
        }
        if plan.events.is_empty() && plan.redelivered.is_empty() {
            return Ok(());
        }
        let to_publish = deliveries::store_routed(
            &self.pool,
            &plan.events,
            &plan.deliveries,
            &plan.redelivered,
            self.ordering,
        )
        .await?;
        let outgoing = outgoing(&to_publish.deliveries, valid);
        let n = outgoing.len();
        hookfleet_broker::publish_confirmed(&self.publish, outgoing).await?;
        metrics::DELIVERIES_PUBLISHED.inc_by(n as u64);
        if !self.ordered() {
            metrics::EVENTS_ROUTED.inc_by(valid.len() as u64);
        }
        Ok(())
    }

    /// One delivery per matching endpoint this router serves, and the events
    /// to store.
    fn plan<'a>(&self, snap: &'a hookfleet_store::Snapshot, valid: &'a [Valid]) -> Plan<'a> {
        let mut plan = Plan {
            events: Vec::with_capacity(valid.len()),
            deliveries: Vec::new(),
            redelivered: HashSet::new(),
        };
        for (d, env, body, data, _) in valid {
            if d.redelivered {
                plan.redelivered
                    .insert((env.tenant_id.as_deref(), env.id.as_str()));
            }
            // An operational event is never delivered to the endpoint it is about.
            let about = hookfleet_core::operational::about_endpoint(&env.event_type, &env.data);
            let before = plan.deliveries.len();
            let event = Event::of(env, data);
            for ep in snap
                .matching(env.tenant_id.as_deref(), &env.event_type)
                .filter(|ep| ep.ordering == self.ordering)
                .filter(|ep| about.as_deref() != Some(&*ep.id))
                // An event its filter refuses makes no delivery for the endpoint.
                .filter(|ep| ep.accepts(&event))
            {
                plan.deliveries.push(NewDelivery {
                    id: hookfleet_core::ids::delivery_id(),
                    event_id: &env.id,
                    endpoint_id: &ep.id,
                    tenant_id: env.tenant_id.as_deref(),
                    event_type: &env.event_type,
                });
            }
            // The parallel routers store every event; the ordered one only those
            // it routes (the same row, inserted once).
            if !self.ordered() || plan.deliveries.len() > before {
                plan.events.push(NewEvent {
                    id: &env.id,
                    tenant_id: env.tenant_id.as_deref(),
                    event_type: &env.event_type,
                    payload: body,
                });
            }
        }
        plan
    }
}

/// Sets each `route` span's fan-out: the deliveries this router makes of it.
fn fan_out(plan: &Plan<'_>, valid: &[Valid]) {
    let mut n: HashMap<deliveries::EventKey<'_>, i64> = HashMap::new();
    for d in &plan.deliveries {
        *n.entry((d.tenant_id, d.event_id)).or_default() += 1;
    }
    for (_, env, _, _, hop) in valid {
        let key = (env.tenant_id.as_deref(), env.id.as_str());
        let count = n.get(&key).copied().unwrap_or(0);
        trace::attr(&hop.span, "hookfleet.fanout", count);
    }
}

/// The delivery messages of what the transaction returned.
fn outgoing<'a>(
    routed: &'a [deliveries::Routed],
    valid: &'a [Valid],
) -> Vec<hookfleet_broker::Outgoing<'a>> {
    // Keyed by tenant and id: two tenants may use the same event id in one
    // batch, and each delivery must carry its own tenant's envelope.
    let by_event: HashMap<deliveries::EventKey<'_>, (&Envelope, &String, &Hop)> = valid
        .iter()
        .map(|(_, e, b, _, hop)| ((e.tenant_id.as_deref(), e.id.as_str()), (e, b, hop)))
        .collect();
    let mut outgoing = Vec::with_capacity(routed.len());
    for r in routed {
        let Some((env, body, hop)) = by_event.get(&(r.tenant_id.as_deref(), r.event_id.as_str()))
        else {
            continue;
        };
        let props = h::delivery_properties(&h::DeliveryMeta {
            delivery_id: &r.delivery_id,
            event_id: &r.event_id,
            endpoint_id: &r.endpoint_id,
            event_type: &env.event_type,
            tenant_id: env.tenant_id.as_deref(),
            attempt: 1,
            attempt_base: 0,
            trace: hop.next.traceparent.is_some().then_some(&hop.next),
        });
        outgoing.push(hookfleet_broker::Outgoing {
            exchange: names::DELIVERIES_EXCHANGE,
            routing_key: &r.endpoint_id,
            mandatory: false,
            payload: body.as_bytes(),
            properties: props,
        });
    }
    outgoing
}

/// Acks and nacks (with requeue) a batch's messages, all at once.
///
/// A batch acked whole, on a channel with nothing unsettled before it
/// (`settled`), is acked with one `multiple` ack of its last message: batches
/// are taken in delivery order from one consumer and settled one after the
/// other, so every unacked delivery tag up to it is this batch's. One frame
/// instead of one per event (issue #20: RabbitMQ's share of a delivery).
async fn settle(acks: Vec<&Delivery>, nacks: Vec<&Delivery>, settled: bool) -> anyhow::Result<()> {
    if settled && nacks.is_empty() {
        if let Some(last) = acks.iter().max_by_key(|d| d.delivery_tag) {
            return hookfleet_broker::ack_multiple(&last.acker)
                .await
                .context("acknowledging events");
        }
    }
    let ack_futs = acks.into_iter().map(|d| hookfleet_broker::ack(&d.acker));
    let nack_futs = nacks
        .into_iter()
        .map(|d| hookfleet_broker::nack_requeue(&d.acker));
    let (a, n) = futures::future::join(
        futures::future::join_all(ack_futs),
        futures::future::join_all(nack_futs),
    )
    .await;
    if let Some(e) = a.into_iter().chain(n).find_map(Result::err) {
        return Err(e.context("acknowledging events"));
    }
    Ok(())
}
