//! Replaying dead letters (the rows the workers' keepers moved from
//! `hookfleet.dead` into PostgreSQL, `hookfleet_store::dead_letters`), shared
//! by `hookfleet dlq replay`, `/api/v1/dead-letters/replay`, `/recover` and the
//! portal.
//!
//! Every batch is an indexed query over the caller's own rows, so one caller
//! never holds, hides or delays another's dead letters, and the cost follows
//! the dead letters that match, not the whole queue.
//!
//! A replay runs in the background as a recorded job (`dead_letter_replays`):
//! it reports its progress there and stops when asked to. It publishes a batch
//! of copies to `hookfleet.deliveries`, waits for every confirm, then removes
//! those rows, marks the deliveries pending and records the actions in one
//! transaction. A replay that dies half way leaves the rest kept, and at worst
//! a duplicate (same `webhook-id`) of the batch it was sending.
use crate::error::{BrokerUnavailable, ServiceError, ServiceResult};
use anyhow::Context as _;
use hookfleet_broker::{headers as h, names};
use hookfleet_core::config::AmqpTarget;
use hookfleet_core::{metrics, trace};
use hookfleet_store::dead_letters::{self as store, Candidate, Filter, Outcome, Replay, Scope};
use hookfleet_store::Pool;
use lapin::options::ConfirmSelectOptions;
use std::time::{Duration, Instant};

pub use hookfleet_store::dead_letters::{BadFilter, DeadLetter, Page};

/// Sends per second a replay may be paced at: from one every 10 s to 100,000.
pub const RATE_MIN: f64 = 0.1;
pub const RATE_MAX: f64 = 100_000.0;
/// Dead letters a replay publishes (and confirms) per batch.
const REPLAY_BATCH: i64 = 500;
/// A running replay with no progress for this long belongs to a process that
/// went away: it is reported `interrupted`.
const STALE_SECS: f64 = 120.0;

/// Checks a replay's `rate`: finite and within [`RATE_MIN`]..=[`RATE_MAX`].
pub fn check_rate(rate: Option<f64>) -> Result<(), BadFilter> {
    match rate {
        Some(r) if !(r.is_finite() && (RATE_MIN..=RATE_MAX).contains(&r)) => Err(BadFilter {
            field: "rate",
            message: format!("must be a number of sends per second from {RATE_MIN} to {RATE_MAX}"),
        }),
        _ => Ok(()),
    }
}

/// What a replay is asked to do.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub filter: Filter,
    /// Sends per second at most; unpaced when `None`.
    pub rate: Option<f64>,
    /// At most this many dead letters are looked at.
    pub limit: Option<i64>,
    /// Recorded with every action ("api:admin", "api:tenant:acme", "cli:alice").
    pub actor: String,
}

/// Starts a replay in the background; returns its record at once.
pub async fn start_replay(
    amqp: &AmqpTarget,
    pool: &Pool,
    scope: Scope<'_>,
    req: ReplayRequest,
) -> ServiceResult<Replay> {
    let (replay, job) = prepare_replay(amqp, pool, scope, req).await?;
    tokio::spawn(job);
    Ok(replay)
}

/// Records a replay and returns it with the future that runs it (the CLI
/// awaits it; the API spawns it). The broker is reached before the replay is
/// recorded, so a down broker is a 503, not a failed job.
pub async fn prepare_replay(
    amqp: &AmqpTarget,
    pool: &Pool,
    scope: Scope<'_>,
    req: ReplayRequest,
) -> ServiceResult<(
    Replay,
    impl std::future::Future<Output = ()> + Send + 'static,
)> {
    req.filter.validate()?;
    check_rate(req.rate)?;
    if let Some(ep) = &req.filter.endpoint_id {
        endpoint_replayable(pool, scope, ep).await?;
    }
    let conn = hookfleet_broker::connect(amqp, "hookfleet-dlq-replay")
        .await
        .map_err(BrokerUnavailable)?;
    let ch = async {
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        anyhow::Ok(ch)
    }
    .await
    .map_err(BrokerUnavailable)?;
    let id = format!("rpl_{}", ulid::Ulid::new().to_string().to_lowercase());
    let replay = store::start_replay(pool, scope, &id, &req.filter, req.rate, &req.actor).await?;
    let tenant = match scope {
        Scope::All => None,
        Scope::Tenant(t) => Some(t.to_owned()),
    };
    let pool = pool.clone();
    let job = async move {
        let scope = Scope::of(tenant.as_deref());
        let result = run_replay(&pool, &ch, scope, &id, &req).await;
        hookfleet_broker::close(&conn, "replay done").await;
        let (status, error) = match result {
            Ok(true) => ("cancelled", None),
            Ok(false) => ("done", None),
            Err(e) => {
                tracing::error!(replay_id = %id, error = format!("{e:#}"), "A dead-letter replay failed; the dead letters not yet replayed are still kept.");
                ("failed", Some(format!("{e:#}")))
            }
        };
        if let Err(e) = store::end_replay(&pool, &id, status, error.as_deref()).await {
            tracing::error!(replay_id = %id, error = format!("{e:#}"), "Could not record the end of a dead-letter replay.");
        }
        tracing::info!(replay_id = %id, status, "Dead-letter replay ended.");
    };
    Ok((replay, job))
}

/// A replay aimed at one endpoint needs the endpoint: without it every copy
/// would come back through `hookfleet.unroutable` as a new dead letter. The
/// answer is a conflict (409) saying so and what to do instead. A replay with
/// a wider filter skips such dead letters and counts them in `skipped`. For a
/// tenant, another tenant's endpoint is as absent as a deleted one.
async fn endpoint_replayable(pool: &Pool, scope: Scope<'_>, id: &str) -> ServiceResult<()> {
    if store::endpoint_exists(pool, scope, id).await? {
        return Ok(());
    }
    let id = hookfleet_core::text::truncate(id, 64);
    Err(ServiceError::Conflict(format!(
        "endpoint `{id}` no longer exists, so its dead letters cannot be replayed \
         (they would only come back as unroutable); purge them instead \
         (POST /api/v1/dead-letters/purge {{\"endpoint_id\": \"{id}\"}}, \
         or hookfleet dlq purge --endpoint {id})"
    )))
}

/// Replays batch after batch; `Ok(true)` when it was cancelled.
async fn run_replay(
    pool: &Pool,
    ch: &lapin::Channel,
    scope: Scope<'_>,
    id: &str,
    req: &ReplayRequest,
) -> anyhow::Result<bool> {
    let mut after = 0i64;
    let mut left = req.limit.unwrap_or(i64::MAX);
    let mut pacer = Pacer::new(req.rate);
    while left > 0 {
        if store::cancelled(pool, id).await? {
            return Ok(true);
        }
        let batch =
            store::candidates(pool, scope, &req.filter, after, REPLAY_BATCH.min(left)).await?;
        let Some(last) = batch.last() else {
            return Ok(false);
        };
        after = last.id;
        left -= batch.len() as i64;
        let (sendable, stale, skipped) = sort(&batch);
        let mut sent: Vec<&Candidate> = Vec::with_capacity(sendable.len());
        if req.rate.is_some() {
            // Paced: one at a time, each recorded as it goes.
            for c in sendable {
                if pacer.wait(pool, id).await? {
                    finish(pool, id, &sent, &stale, skipped, &req.actor).await?;
                    return Ok(true);
                }
                publish(ch, id, [c]).await?;
                sent.push(c);
            }
        } else {
            publish(ch, id, sendable.iter().copied()).await?;
            sent = sendable;
        }
        if finish(pool, id, &sent, &stale, skipped, &req.actor).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Splits a batch: to send, stale (the delivery succeeded since), and how
/// many are left in place (endpoint deleted, or no payload kept).
fn sort(batch: &[Candidate]) -> (Vec<&Candidate>, Vec<&Candidate>, i64) {
    let (mut send, mut stale, mut skipped) = (Vec::new(), Vec::new(), 0);
    for c in batch {
        let dl = &c.dead_letter;
        if c.delivery_status == Some(hookfleet_core::DeliveryStatus::Succeeded) {
            stale.push(c);
        } else if dl.delivery_id.is_empty() || !c.endpoint_exists || c.payload.is_none() {
            skipped += 1;
        } else {
            send.push(c);
        }
    }
    (send, stale, skipped)
}

/// Records a batch's outcome and progress; returns whether to stop.
async fn finish(
    pool: &Pool,
    id: &str,
    sent: &[&Candidate],
    stale: &[&Candidate],
    skipped: i64,
    actor: &str,
) -> anyhow::Result<bool> {
    let done: Vec<(&Candidate, Outcome)> = sent
        .iter()
        .map(|c| (*c, Outcome::Replayed))
        .chain(stale.iter().map(|c| (*c, Outcome::Discarded)))
        .collect();
    store::finish(pool, &done, actor).await?;
    metrics::DEAD_LETTERS_REPLAYED.inc_by(sent.len() as u64);
    store::progress(
        pool,
        id,
        (sent.len() + stale.len()) as i64 + skipped,
        sent.len() as i64,
        stale.len() as i64,
        skipped,
    )
    .await
}

/// A replayed dead letter's `replay` span, a child of the trace it carried
/// into `hookfleet.dead` (none while tracing is off), and the trace headers
/// its copy carries: the span's, or, while tracing is off, the stored ones.
fn hop(c: &Candidate, job: &str) -> (tracing::Span, trace::Headers) {
    let stored = trace::Headers {
        traceparent: c.traceparent.clone(),
        tracestate: c.tracestate.clone(),
    };
    if !trace::enabled() {
        return (tracing::Span::none(), stored);
    }
    let span = tracing::info_span!(
        target: trace::TARGET,
        "replay",
        trace_id = tracing::field::Empty,
        otel.kind = "producer"
    );
    trace::continue_from(&span, &stored);
    let dl = &c.dead_letter;
    trace::attr(&span, "hookfleet.replay.id", job.to_owned());
    trace::attr(&span, "hookfleet.delivery.id", dl.delivery_id.clone());
    trace::attr(&span, "hookfleet.endpoint.id", dl.endpoint_id.clone());
    trace::attr(&span, "hookfleet.event.id", dl.event_id.clone());
    trace::attr(&span, "hookfleet.event.type", dl.event_type.clone());
    if let Some(t) = &dl.tenant_id {
        trace::attr(&span, "hookfleet.tenant.id", t.clone());
    }
    trace::attr(&span, "hookfleet.attempt", dl.attempts + 1);
    let next = trace::headers_of(&span).unwrap_or(stored);
    (span, next)
}

/// Publishes copies to `hookfleet.deliveries` (pipelined) and waits for every
/// confirm: a fresh attempt budget, the same `webhook-id`. `job` is the
/// replay's id.
async fn publish<'a>(
    ch: &lapin::Channel,
    job: &str,
    batch: impl IntoIterator<Item = &'a Candidate>,
) -> anyhow::Result<()> {
    let batch: Vec<&Candidate> = batch.into_iter().collect();
    if batch.is_empty() {
        return Ok(());
    }
    let hops: Vec<(tracing::Span, trace::Headers)> = batch.iter().map(|c| hop(c, job)).collect();
    let out = batch.iter().zip(&hops).map(|(c, (_, next))| {
        let dl = &c.dead_letter;
        hookfleet_broker::Outgoing {
            exchange: names::DELIVERIES_EXCHANGE,
            routing_key: &dl.endpoint_id,
            mandatory: false,
            payload: c.payload.as_deref().unwrap_or_default(),
            properties: h::delivery_properties(&h::DeliveryMeta {
                delivery_id: &dl.delivery_id,
                event_id: &dl.event_id,
                endpoint_id: &dl.endpoint_id,
                event_type: &dl.event_type,
                tenant_id: dl.tenant_id.as_deref(),
                // A fresh budget: the retry schedule starts over; numbering goes on.
                attempt: dl.attempts + 1,
                attempt_base: dl.attempts,
                trace: next.traceparent.is_some().then_some(next),
            }),
        }
    });
    let published = hookfleet_broker::publish_confirmed(ch, out)
        .await
        .context("publishing replayed dead letters");
    if let Err(e) = &published {
        for (span, _) in &hops {
            trace::error(span, format!("{e:#}"));
        }
    }
    published.map_err(|e| BrokerUnavailable(e).into())
}

/// Spaces sends `1/rate` seconds apart; the wait looks at the cancel switch
/// at least every second, so even the slowest replay stops at once.
struct Pacer {
    every: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(rate: Option<f64>) -> Self {
        Pacer {
            // check_rate bounds the rate, so the division is finite and positive.
            every: rate
                .filter(|r| r.is_finite() && *r >= RATE_MIN)
                .and_then(|r| Duration::try_from_secs_f64(1.0 / r).ok()),
            next: Instant::now(),
        }
    }

    /// Waits for the next slot; `Ok(true)` when the replay was cancelled meanwhile.
    async fn wait(&mut self, pool: &Pool, id: &str) -> anyhow::Result<bool> {
        let Some(every) = self.every else {
            return Ok(false);
        };
        loop {
            let now = Instant::now();
            if self.next <= now {
                break;
            }
            tokio::time::sleep((self.next - now).min(Duration::from_secs(1))).await;
            if store::cancelled(pool, id).await? {
                return Ok(true);
            }
        }
        self.next = self.next.max(Instant::now()) + every;
        Ok(false)
    }
}

/// Replays, in this task, the dead letters of one endpoint whose events
/// reached the router at or after `since_ms` (`/recover`'s first pass);
/// returns how many were sent.
pub async fn replay_endpoint_since(
    amqp: &AmqpTarget,
    pool: &Pool,
    scope: Scope<'_>,
    endpoint_id: &str,
    since_ms: i64,
    actor: String,
) -> ServiceResult<i64> {
    let req = ReplayRequest {
        filter: Filter {
            endpoint_id: Some(endpoint_id.to_owned()),
            received_since_ms: Some(since_ms),
            ..Default::default()
        },
        rate: None,
        limit: None,
        actor,
    };
    let (replay, job) = prepare_replay(amqp, pool, scope, req).await?;
    job.await;
    let done = store::get_replay(pool, scope, &replay.id)
        .await?
        .context("the recover replay's record is gone")?;
    if done.status == "failed" {
        return Err(
            anyhow::anyhow!(done.error.unwrap_or_else(|| "the replay failed".into())).into(),
        );
    }
    Ok(done.replayed)
}

/// Marks replays of processes that went away as `interrupted` (a failure is
/// only logged: it changes what a listing reports, nothing else).
pub async fn interrupt_stale(pool: &Pool) {
    if let Err(e) = store::interrupt_stale_replays(pool, STALE_SECS).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "Could not mark interrupted dead-letter replays."
        );
    }
}
