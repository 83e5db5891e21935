//! One attempt of one delivery, from message to recorded outcome: look the
//! endpoint up, sign and POST, [`decide`] what the answer means, then carry the
//! decision out: health and gate, the retry or dead-letter publish (confirmed),
//! the operational events, the record, and the ack (by the writer once the
//! record is committed; at once for an ordered endpoint).
use crate::decide::{decide, Answer, Mode, Pace, Position, Verdict};
use crate::{events, gate, http, requeue, Ctx};
use bytes::Bytes;
use hookfleet_broker::{headers as h, names};
use hookfleet_core::retry::RetrySchedule;
use hookfleet_core::{metrics, operational, text, trace, DeliveryId, EndpointId, EventId};
use hookfleet_store::deliveries::{AttemptRecord, DeliveryState};
use hookfleet_store::registry::{RegEndpoint, Snapshot};
use lapin::message::Delivery;
use lapin::Channel;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tracing::Instrument as _;

/// A delivery message's headers, read once.
#[derive(Debug, Clone)]
pub struct Meta {
    /// `None`: not a message the router or the API made.
    pub delivery_id: Option<DeliveryId>,
    /// `x-event-id`, else the `message_id`.
    pub event_id: EventId,
    /// `x-endpoint-id`, else the routing key.
    pub endpoint_id: EndpointId,
    pub event_type: String,
    /// `x-attempt`, at least 1.
    pub attempt: u32,
    /// `x-attempt-base`, at least 0 ([`Position::new`] keeps it below the attempt).
    pub base: u32,
    /// `x-received-at`: when the router received the event (ms since the epoch).
    pub received_at: Option<i64>,
}

impl Meta {
    pub fn of(d: &Delivery) -> Meta {
        let hdrs = d.properties.headers().as_ref();
        let int = |key, default: i64, min: i64| {
            u32::try_from(h::get_i64(hdrs, key).unwrap_or(default).max(min)).unwrap_or(u32::MAX)
        };
        Meta {
            delivery_id: h::get_str(hdrs, h::DELIVERY_ID).map(DeliveryId::from),
            event_id: h::get_str(hdrs, h::EVENT_ID)
                .or(d.properties.message_id().as_ref().map(|m| m.as_str()))
                .unwrap_or_default()
                .into(),
            endpoint_id: h::get_str(hdrs, h::ENDPOINT_ID)
                .unwrap_or(d.routing_key.as_str())
                .into(),
            event_type: h::get_str(hdrs, h::EVENT_TYPE)
                .unwrap_or_default()
                .to_owned(),
            attempt: int(h::ATTEMPT, 1, 1),
            base: int(h::ATTEMPT_BASE, 0, 0),
            received_at: h::get_i64(hdrs, h::RECEIVED_AT),
        }
    }
}

/// An ordered endpoint's failed attempt that will be retried in place, after
/// `delay`: the message stays unacked at the head of its queue.
pub(crate) struct RetryInPlace {
    pub(crate) d: Delivery,
    pub(crate) delay: Duration,
    pub(crate) next: Position,
}

/// Attempts `d` once, at position `at`. A probe's `gate` is its own (a probe
/// sets no pause). Returns the in-place retry of an ordered endpoint's failure
/// with attempts left; otherwise the message is settled (or given back).
///
/// While tracing is on, the attempt is an `attempt` span, a child of the
/// trace the message carries; every log line of the attempt has its trace id.
pub(crate) async fn run(
    ctx: &Ctx,
    publish: &Channel,
    d: Delivery,
    meta: &Meta,
    at: Position,
    mode: Mode,
    gate: &gate::Gate,
) -> Option<RetryInPlace> {
    if !trace::enabled() || meta.delivery_id.is_none() {
        return attempt(ctx, publish, d, meta, at, mode, gate).await;
    }
    let span = span_of(&d, meta, at);
    attempt(ctx, publish, d, meta, at, mode, gate)
        .instrument(span)
        .await
}

/// The `attempt` span of `d`, continuing the trace its headers carry, with
/// the attributes known before the POST (OpenTelemetry's HTTP client
/// conventions, and hookfleet's own).
fn span_of(d: &Delivery, meta: &Meta, at: Position) -> tracing::Span {
    let span = tracing::info_span!(
        target: trace::TARGET,
        "attempt",
        trace_id = tracing::field::Empty,
        otel.kind = "client"
    );
    let incoming = h::trace_of(d.properties.headers().as_ref());
    trace::continue_from(&span, &incoming);
    trace::attr(&span, "http.request.method", "POST");
    trace::attr(&span, "hookfleet.endpoint.id", meta.endpoint_id.to_string());
    if let Some(id) = &meta.delivery_id {
        trace::attr(&span, "hookfleet.delivery.id", id.to_string());
    }
    trace::attr(&span, "hookfleet.event.id", meta.event_id.to_string());
    trace::attr(&span, "hookfleet.event.type", meta.event_type.clone());
    trace::attr(&span, "hookfleet.attempt", i64::from(at.attempt));
    span
}

/// What the attempt's span learns from the endpoint and the answer.
fn record_span(ep: &RegEndpoint, resp: &http::Response, state: DeliveryState) {
    let span = tracing::Span::current();
    if let Some(t) = &ep.tenant_id {
        trace::attr(&span, "hookfleet.tenant.id", t.clone());
    }
    // The host and port, never the whole URL: its path and query may carry
    // a tenant's token.
    if let Ok(url) = reqwest::Url::parse(&ep.url) {
        if let Some(host) = url.host_str() {
            trace::attr(&span, "server.address", host.to_owned());
        }
        if let Some(port) = url.port_or_known_default() {
            trace::attr(&span, "server.port", i64::from(port));
        }
    }
    if let Some(status) = resp.status {
        trace::attr(&span, "http.response.status_code", i64::from(status));
    }
    trace::attr(&span, "hookfleet.outcome", state.as_str());
    if !resp.is_success() {
        // `error.type`: the status code, else `_OTHER` (the conventions'
        // value for an error without a well-known type); the status
        // description says what it was (the error as the tenant sees it).
        let kind = resp
            .status
            .map_or_else(|| "_OTHER".to_owned(), |s| s.to_string());
        trace::attr(&span, "error.type", kind.clone());
        let why = resp
            .error
            .as_deref()
            .map_or(kind, |e| text::truncate(e, 200));
        trace::error(&span, why);
    }
}

async fn attempt(
    ctx: &Ctx,
    publish: &Channel,
    d: Delivery,
    meta: &Meta,
    at: Position,
    mode: Mode,
    gate: &gate::Gate,
) -> Option<RetryInPlace> {
    let Some(delivery_id) = meta.delivery_id.as_ref() else {
        dead_letter_foreign(publish, &d, meta).await;
        return None;
    };
    let snap = ctx.registry.snapshot();
    let Some(ep) = deliverable(&snap, &meta.endpoint_id, mode) else {
        // Paused, deleted or its circuit opened since the message was consumed:
        // put it back to wait (no attempt spent); this consumer is about to be
        // cancelled.
        tokio::time::sleep(Duration::from_millis(500)).await;
        requeue(&d.acker).await;
        return None;
    };
    let now = OffsetDateTime::now_utc();
    let resp = post(ctx, &ep, &meta.event_id, &d, now).await;
    metrics::ATTEMPT_DURATION
        .with_label_values(&[metrics::status_class(resp.status)])
        .observe(resp.latency.as_secs_f64());
    let error = error_of(&resp);
    let (schedule, custom) = schedule_of(ctx, &snap, &ep, &meta.event_type);
    let answer = Answer {
        status: resp.status,
        success: resp.is_success(),
        retry_after: resp.retry_after,
    };
    let decision = decide(answer, at, schedule, mode);
    if let Some(notice) = ctx.health.record(&ep, decision.health).await {
        events::publish_notice(publish, &snap, &ep, notice, error.as_deref()).await;
    }
    pace(gate, decision.pace, &meta.endpoint_id);
    let step = Step {
        ctx,
        publish,
        snap: &snap,
        ep: &ep,
        meta,
        at,
        error: error.as_deref(),
        now,
    };
    let (state, next_attempt_at) = step.carry_out(&d, decision.verdict, custom).await?;
    if trace::enabled() {
        record_span(&ep, &resp, state);
    }
    // One line per attempt; never the payload, the URL's query or a secret.
    tracing::info!(
        delivery_id = %delivery_id, event_id = %meta.event_id, endpoint_id = %meta.endpoint_id,
        tenant_id = ep.tenant_id.as_deref().unwrap_or(""), attempt = at.attempt, outcome = state.as_str(),
        status = resp.status, latency_ms = resp.latency.as_millis() as u64,
        error = error.as_deref().map(|e| text::truncate(e, 200)),
        "Delivery attempt."
    );
    let record = AttemptRecord {
        delivery_id: delivery_id.clone(),
        attempt: at.attempt as i32,
        state,
        status_code: resp.status.map(i32::from),
        error: error.map(|e| text::truncate(&e, 2048)),
        response_excerpt: resp.excerpt,
        latency_ms: resp.latency.as_millis().min(i32::MAX as u128) as i32,
        attempted_at: now,
        next_attempt_at,
    };
    settle(ctx, d, record, mode, decision.verdict).await
}

/// The endpoint, while it may be delivered to: active for a probe, else
/// consumable (active, and its circuit closed unless it is ordered).
fn deliverable(snap: &Snapshot, id: &EndpointId, mode: Mode) -> Option<Arc<RegEndpoint>> {
    let id = id.as_str();
    let ep = snap.endpoints.get(id)?;
    let ok = match mode {
        Mode::Probe => ep.is_active,
        Mode::Normal | Mode::Ordered => ep.consumable(),
    };
    ok.then(|| ep.clone())
}

/// The error an attempt records: the client's, else a non-2xx status.
fn error_of(resp: &http::Response) -> Option<String> {
    match (&resp.error, resp.status) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(s)) if !resp.is_success() => Some(format!("HTTP {s}")),
        _ => None,
    }
}

/// A message without `x-delivery-id` (not something the router made): kept
/// in `hookfleet.dead`, where an operator will see it.
async fn dead_letter_foreign(publish: &Channel, d: &Delivery, meta: &Meta) {
    tracing::error!(endpoint_id = %meta.endpoint_id, "A message without x-delivery-id reached an endpoint queue; dead-lettering it.");
    let mut headers = d.properties.headers().clone().unwrap_or_default();
    h::set_str(
        &mut headers,
        h::DEAD_REASON,
        hookfleet_core::DeadReason::Foreign.as_str(),
    );
    let props = d.properties.clone().with_headers(headers);
    match crate::publish_confirmed(publish, "", names::DEAD_QUEUE, &d.data, props).await {
        Ok(()) => {
            let _ = hookfleet_broker::ack(&d.acker).await;
        }
        // Acked only once its copy is safe; until then it stays where it is.
        Err(_) => requeue(&d.acker).await,
    }
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// Signs the message's body with every unexpired secret of `ep` and POSTs it
/// with the endpoint's headers, the `webhook-*` ones and the trace's
/// `traceparent` and `tracestate`. Never unsigned: without a usable secret it
/// is a failed attempt, retried like any other.
async fn post(
    ctx: &Ctx,
    ep: &RegEndpoint,
    event_id: &EventId,
    d: &Delivery,
    now: OffsetDateTime,
) -> http::Response {
    let body = d.data.as_slice();
    if ep.signing_secrets(now).next().is_none() {
        return http::Response::failed(
            "no usable signing secret (one could not be opened: check secrets.encryption_keys)",
        );
    }
    let ts = now.unix_timestamp();
    let signature =
        hookfleet_core::signing::signature_header(ep.signing_secrets(now), event_id, ts, body);
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
    if let Some(v) = header_value(event_id) {
        headers.insert("webhook-id", v);
    }
    headers.insert("webhook-timestamp", HeaderValue::from(ts));
    if let Some(v) = header_value(&signature) {
        headers.insert("webhook-signature", v);
    }
    // The receiver continues the trace as a child of this attempt; while
    // tracing is off, of whatever the message carries, passed on unchanged.
    let trace = if trace::enabled() {
        trace::headers_of(&tracing::Span::current())
    } else {
        None
    }
    .unwrap_or_else(|| h::trace_of(d.properties.headers().as_ref()));
    for (name, value) in [
        (trace::TRACEPARENT, &trace.traceparent),
        (trace::TRACESTATE, &trace.tracestate),
    ] {
        if let Some(v) = value.as_deref().and_then(header_value) {
            headers.insert(name, v);
        }
    }
    let excerpt = ctx.settings.delivery.response_excerpt_bytes;
    let body = Bytes::copy_from_slice(body);
    ctx.client
        .post(&ep.id, &ep.url, headers, body, excerpt)
        .await
}

/// The delivery's schedule: the endpoint's own, else its event type's, else
/// the default; `true` when it is not the default (its tiers are declared on
/// first use).
fn schedule_of<'a>(
    ctx: &'a Ctx,
    snap: &'a Snapshot,
    ep: &'a RegEndpoint,
    event_type: &str,
) -> (&'a RetrySchedule, bool) {
    match ep
        .retry
        .as_ref()
        .or_else(|| snap.catalog.retry_schedule(event_type))
    {
        Some(custom) => (custom, true),
        None => (&ctx.settings.retry, false),
    }
}

/// What the endpoint's gate in this worker learns from the answer.
fn pace(gate: &gate::Gate, pace: Pace, endpoint_id: &EndpointId) {
    match pace {
        Pace::Untouched => {}
        Pace::Answered => gate.answered(),
        Pace::SlowDown { retry_after } => {
            let pause = gate.slow_down(retry_after);
            tracing::debug!(endpoint_id = %endpoint_id, pause_ms = pause.as_millis() as u64, "Endpoint asked to slow down.");
        }
    }
}

/// Carrying out one attempt's verdict.
struct Step<'a> {
    ctx: &'a Ctx,
    publish: &'a Channel,
    snap: &'a Snapshot,
    ep: &'a RegEndpoint,
    meta: &'a Meta,
    at: Position,
    error: Option<&'a str>,
    now: OffsetDateTime,
}

impl Step<'_> {
    /// Publishes what the verdict sends on (a retry, a dead letter) and waits
    /// for its confirm; returns the state to record and the next attempt's
    /// time. `None` when the message was given back (nothing is recorded: the
    /// attempt is made again).
    async fn carry_out(
        &self,
        d: &Delivery,
        verdict: Verdict,
        custom: bool,
    ) -> Option<(DeliveryState, Option<OffsetDateTime>)> {
        match verdict {
            Verdict::Succeeded => {
                if let Some(at) = self.meta.received_at {
                    let secs = (hookfleet_core::ids::now_millis() - at).max(0) as f64 / 1000.0;
                    metrics::END_TO_END.observe(secs);
                }
                metrics::ATTEMPTS.with_label_values(&["succeeded"]).inc();
                Some((DeliveryState::Succeeded, None))
            }
            // An ordered endpoint: no retry tier (the next message would pass);
            // recorded, then retried in place after `delay`.
            Verdict::RetryInPlace { delay, .. } => {
                metrics::ATTEMPTS.with_label_values(&["retried"]).inc();
                Some((DeliveryState::Retrying, Some(self.now + delay)))
            }
            Verdict::Retry {
                delay,
                next,
                slow_down,
            } => self.retry(d, delay, next, slow_down, custom).await,
            Verdict::Dead | Verdict::Gone => self.dead(d, verdict == Verdict::Gone).await,
        }
    }

    /// The message as it goes on: its headers plus `x-last-error`.
    fn headers(&self, d: &Delivery) -> lapin::types::FieldTable {
        let mut headers = d.properties.headers().clone().unwrap_or_default();
        let last_error = self.error.unwrap_or_default();
        h::set_str(
            &mut headers,
            h::LAST_ERROR,
            &text::truncate(last_error, 512),
        );
        headers
    }

    /// Publishes `d` on with `headers`; `false` when it was given back.
    async fn send_on(
        &self,
        d: &Delivery,
        exchange: &str,
        key: &str,
        headers: lapin::types::FieldTable,
    ) -> bool {
        let props = d
            .properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        match crate::publish_confirmed(self.publish, exchange, key, &d.data, props).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "Could not schedule the retry or dead letter; the delivery will be redelivered."
                );
                requeue(&d.acker).await;
                false
            }
        }
    }

    /// Through the retry tier of `delay` (a custom schedule's tier is declared
    /// on first use).
    async fn retry(
        &self,
        d: &Delivery,
        delay: Duration,
        next: Position,
        slow_down: bool,
        custom: bool,
    ) -> Option<(DeliveryState, Option<OffsetDateTime>)> {
        let delay = if custom {
            match self.ctx.ensure_tier(self.publish, delay).await {
                Ok(tier) => tier,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "Could not declare a retry tier; the delivery will be redelivered."
                    );
                    requeue(&d.acker).await;
                    return None;
                }
            }
        } else {
            delay
        };
        let mut headers = self.headers(d);
        h::set_i64(&mut headers, h::ATTEMPT, i64::from(next.attempt));
        if slow_down {
            h::set_i64(&mut headers, h::ATTEMPT_BASE, i64::from(next.base));
        }
        if trace::enabled() {
            let tier = hookfleet_core::retry::tier_name(delay);
            trace::attr(&tracing::Span::current(), "hookfleet.retry.tier", tier);
        }
        let exchange = names::retry_tier(delay);
        if !self
            .send_on(d, &exchange, &self.meta.endpoint_id, headers)
            .await
        {
            return None;
        }
        metrics::RETRIES_SCHEDULED
            .with_label_values(&[hookfleet_core::retry::tier_name(delay).as_str()])
            .inc();
        metrics::ATTEMPTS.with_label_values(&["retried"]).inc();
        Some((DeliveryState::Retrying, Some(self.now + delay)))
    }

    /// To `hookfleet.dead`; a spent budget (not a 410, not an operational
    /// event's own delivery: no chains of them) raises `delivery.exhausted`.
    async fn dead(
        &self,
        d: &Delivery,
        gone: bool,
    ) -> Option<(DeliveryState, Option<OffsetDateTime>)> {
        let mut headers = self.headers(d);
        h::set_i64(&mut headers, h::ATTEMPTS, i64::from(self.at.attempt));
        h::set_str(
            &mut headers,
            h::DEAD_AT,
            &hookfleet_core::envelope::now_rfc3339(),
        );
        let reason = if gone {
            hookfleet_core::DeadReason::Gone
        } else {
            hookfleet_core::DeadReason::AttemptsExhausted
        };
        h::set_str(&mut headers, h::DEAD_REASON, reason.as_str());
        if !self.send_on(d, "", names::DEAD_QUEUE, headers).await {
            return None;
        }
        metrics::ATTEMPTS.with_label_values(&["dead"]).inc();
        let meta = self.meta;
        if !gone && !operational::is_operational(&meta.event_type) {
            let data = events::Exhausted {
                delivery_id: meta.delivery_id.as_deref().unwrap_or_default(),
                event_id: &meta.event_id,
                event_type: &meta.event_type,
                endpoint_id: &meta.endpoint_id,
                attempts: self.at.attempt,
                last_error: self.error,
            }
            .data();
            let t = operational::DELIVERY_EXHAUSTED;
            events::publish(self.publish, self.snap, self.ep, t, data).await;
        }
        Some((DeliveryState::Failed, None))
    }
}

/// Records the attempt and acks the message: through the writer's batches,
/// or, for an ordered endpoint, at once (the next message comes only after
/// this one is acked, so no batch to wait for); an ordered failure with
/// attempts left is recorded and kept, unacked, for its retry in place.
async fn settle(
    ctx: &Ctx,
    d: Delivery,
    record: AttemptRecord,
    mode: Mode,
    verdict: Verdict,
) -> Option<RetryInPlace> {
    if mode != Mode::Ordered {
        // The writer acks after the record is committed.
        let done = crate::writer::Completed {
            record,
            acker: d.acker,
        };
        let _ = ctx.writer.send(crate::writer::Msg::Done(done)).await;
        return None;
    }
    if let Err(e) = record_now(ctx, &record).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "Could not record an attempt; the delivery will be redelivered."
        );
        requeue(&d.acker).await;
        return None;
    }
    if let Verdict::RetryInPlace { delay, next } = verdict {
        return Some(RetryInPlace { d, delay, next });
    }
    if let Err(e) = hookfleet_broker::ack(&d.acker).await {
        tracing::debug!(error = %e, "Ack failed; the broker will redeliver.");
    }
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
