//! Dead letters: browsing, replaying and purging `hookfleet.dead` (DESIGN §2.4),
//! shared by `hookfleet dlq …` and `/api/v1/dead-letters…`.
//!
//! The queue is read with `basic.get` and manual acks: every message looked at
//! stays unacknowledged on this connection until it is dealt with. A replayed
//! message is acked only after its copy to `hookfleet.deliveries` is confirmed and
//! the action is recorded; a purged one after the record; everything else (not
//! matching, dry run, list) goes back to the queue, in its place, when the
//! connection closes. Nothing is lost if this process dies half way.
use crate::error::BrokerUnavailable;
use anyhow::Context as _;
use hookfleet_broker::{headers as h, names, topology};
use hookfleet_core::metrics;
use hookfleet_store::Pool;
use lapin::options::{BasicGetOptions, ConfirmSelectOptions};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Which dead letters an action applies to. Every given field must match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub endpoint_id: Option<String>,
    pub tenant_id: Option<String>,
    pub event_type: Option<String>,
    pub delivery_id: Option<String>,
    /// Dead-lettered at or after (RFC 3339).
    pub since: Option<String>,
    /// Dead-lettered before (RFC 3339).
    pub until: Option<String>,
    /// Case-insensitive part of the last error.
    pub error: Option<String>,
    /// At most this many dead letters are acted on (list: 100 unless given).
    pub limit: Option<usize>,
}

/// A field of a [`Filter`] that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadFilter {
    pub field: &'static str,
    pub message: String,
}

struct Compiled {
    f: Filter,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    error: Option<String>,
    /// Router receipt at or after (ms): `/recover`'s "failed since".
    received_since_ms: Option<i64>,
}

fn parse_time(
    field: &'static str,
    v: &Option<String>,
) -> Result<Option<OffsetDateTime>, BadFilter> {
    v.as_deref()
        .map(|s| {
            OffsetDateTime::parse(s, &Rfc3339).map_err(|e| BadFilter {
                field,
                message: format!("not an RFC 3339 time ({e}), e.g. 2026-11-28T12:00:00Z"),
            })
        })
        .transpose()
}

impl Filter {
    /// Checks the times and the limit, naming the field that is wrong.
    pub fn validate(&self) -> Result<(), BadFilter> {
        self.clone().compile().map(|_| ())
    }

    /// No field that narrows the selection is given.
    pub fn is_empty(&self) -> bool {
        [
            &self.endpoint_id,
            &self.tenant_id,
            &self.event_type,
            &self.delivery_id,
            &self.since,
            &self.until,
            &self.error,
        ]
        .iter()
        .all(|f| f.is_none())
            && self.limit.is_none()
    }

    fn compile(self) -> Result<Compiled, BadFilter> {
        if self.limit == Some(0) {
            return Err(BadFilter {
                field: "limit",
                message: "must be at least 1".into(),
            });
        }
        Ok(Compiled {
            since: parse_time("since", &self.since)?,
            until: parse_time("until", &self.until)?,
            error: self.error.as_ref().map(|e| e.to_lowercase()),
            received_since_ms: None,
            f: self,
        })
    }
}

impl Compiled {
    fn matches(&self, d: &DeadLetter, received_at_ms: Option<i64>) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        let dead_at = d
            .dead_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        eq(&self.f.endpoint_id, Some(&d.endpoint_id))
            && eq(&self.f.tenant_id, d.tenant_id.as_deref())
            && eq(&self.f.event_type, Some(&d.event_type))
            && eq(&self.f.delivery_id, Some(&d.delivery_id))
            && self.since.is_none_or(|s| dead_at.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| dead_at.is_some_and(|t| t < u))
            && self.error.as_deref().is_none_or(|e| {
                d.last_error
                    .as_deref()
                    .is_some_and(|l| l.to_lowercase().contains(e))
            })
            && self
                .received_since_ms
                .is_none_or(|s| received_at_ms.is_some_and(|r| r >= s))
    }
}

/// One message of `hookfleet.dead`, as its headers describe it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub delivery_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub tenant_id: Option<String>,
    pub event_type: String,
    /// Attempts made before it was dead-lettered.
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When it was dead-lettered (RFC 3339).
    pub dead_at: Option<String>,
    pub payload_bytes: usize,
    /// The event envelope (`dlq show`, or `include_payload`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

fn describe(m: &lapin::message::BasicGetMessage, with_payload: bool) -> DeadLetter {
    let hdrs = m.delivery.properties.headers().as_ref();
    let s = |k: &str| h::get_str(hdrs, k).map(str::to_owned);
    DeadLetter {
        delivery_id: s(h::DELIVERY_ID).unwrap_or_default(),
        event_id: s(h::EVENT_ID).unwrap_or_default(),
        endpoint_id: s(h::ENDPOINT_ID).unwrap_or_default(),
        tenant_id: s(h::TENANT_ID),
        event_type: s(h::EVENT_TYPE).unwrap_or_default(),
        attempts: h::get_i64(hdrs, h::ATTEMPTS)
            .or_else(|| h::get_i64(hdrs, h::ATTEMPT))
            .unwrap_or(0),
        last_error: s(h::LAST_ERROR),
        dead_at: s(h::DEAD_AT),
        payload_bytes: m.delivery.data.len(),
        payload: with_payload
            .then(|| serde_json::from_slice(&m.delivery.data).ok())
            .flatten(),
    }
}

/// What to do with the dead letters that match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    List,
    /// Back to `hookfleet.deliveries` with a fresh attempt budget and the same
    /// `webhook-id`, at most `rate` per second.
    Replay {
        rate: Option<f64>,
    },
    Purge,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Replay { .. } => "replay",
            Action::Purge => "purge",
        }
    }
}

/// A dead letter left in the queue, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub delivery_id: String,
    pub reason: String,
}

/// What an action did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Report {
    pub action: String,
    pub dry_run: bool,
    /// Messages in `hookfleet.dead` when the scan started.
    pub queue_depth: u32,
    pub scanned: usize,
    /// The scan stopped before the end of the queue (limit or `max_scan`).
    pub truncated: bool,
    pub matched: usize,
    pub replayed: usize,
    pub purged: usize,
    /// Removed without sending: the delivery succeeded or was re-sent since.
    pub discarded: usize,
    pub skipped: Vec<Skipped>,
    pub dead_letters: Vec<DeadLetter>,
}

/// One run over `hookfleet.dead`.
pub struct Run<'a> {
    pub amqp_url: &'a str,
    pub pool: &'a Pool,
    pub filter: Filter,
    pub action: Action,
    pub dry_run: bool,
    /// Recorded with every replay and purge ("admin", "tenant:acme", "cli:alice").
    pub actor: String,
    pub include_payload: bool,
    /// Messages looked at, at most.
    pub max_scan: usize,
}

/// Default for [`Run::max_scan`].
pub const MAX_SCAN: usize = 100_000;

impl Run<'_> {
    /// Checks the filter (a [`BadFilter`] inside the error when it does not parse).
    pub async fn execute(self) -> anyhow::Result<Report> {
        let filter = self.filter.clone().compile()?;
        self.execute_compiled(filter).await
    }

    async fn execute_compiled(self, filter: Compiled) -> anyhow::Result<Report> {
        let conn = hookfleet_broker::connect(self.amqp_url, "hookfleet-dlq")
            .await
            .map_err(BrokerUnavailable)?;
        let result = self.scan(&conn, &filter).await;
        // Closing returns every message still unacknowledged to the queue.
        hookfleet_broker::close(&conn, "dlq done").await;
        result
    }

    async fn scan(&self, conn: &lapin::Connection, filter: &Compiled) -> anyhow::Result<Report> {
        let get = conn.create_channel().await.map_err(broker)?;
        let publish = conn.create_channel().await.map_err(broker)?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker)?;
        let depth = topology::inspect(&get, names::DEAD_QUEUE)
            .await
            .context(
                "hookfleet.dead does not exist yet (no hookfleet process has run on this vhost)",
            )
            .map_err(BrokerUnavailable)?
            .message_count();
        let limit = filter.f.limit.unwrap_or(match self.action {
            Action::List => 100,
            _ => usize::MAX,
        });
        let mut report = Report {
            action: self.action.name().into(),
            dry_run: self.dry_run,
            queue_depth: depth,
            ..Default::default()
        };
        let mut pacer = Pacer::new(match self.action {
            Action::Replay { rate } => rate,
            _ => None,
        });
        let to_scan = (depth as usize).min(self.max_scan);
        while report.scanned < to_scan {
            if report.matched >= limit {
                break;
            }
            let Some(msg) = get
                .basic_get(names::DEAD_QUEUE.into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(broker)?
            else {
                break;
            };
            report.scanned += 1;
            let received_at =
                h::get_i64(msg.delivery.properties.headers().as_ref(), h::RECEIVED_AT);
            let dl = describe(&msg, self.include_payload);
            if !filter.matches(&dl, received_at) {
                continue;
            }
            report.matched += 1;
            if self.dry_run || self.action == Action::List {
                report.dead_letters.push(dl);
                continue;
            }
            let ack = || async {
                hookfleet_broker::ack(&msg.delivery.acker)
                    .await
                    .map_err(|e| anyhow::Error::from(BrokerUnavailable(e)))
            };
            match self.action {
                Action::Purge => {
                    record(self.pool, "purge", &dl, &self.actor).await?;
                    ack().await?;
                    metrics::DEAD_LETTERS_PURGED.inc();
                    report.purged += 1;
                }
                Action::Replay { .. } => {
                    match self
                        .replay_one(&publish, &dl, &msg.delivery.data, &mut pacer)
                        .await?
                    {
                        Replayed::Sent => {
                            ack().await?;
                            metrics::DEAD_LETTERS_REPLAYED.inc();
                            report.replayed += 1;
                        }
                        Replayed::Stale => {
                            ack().await?;
                            report.discarded += 1;
                        }
                        Replayed::Skip(reason) => report.skipped.push(Skipped {
                            delivery_id: dl.delivery_id.clone(),
                            reason,
                        }),
                    }
                }
                Action::List => {}
            }
            report.dead_letters.push(dl);
        }
        report.truncated = report.scanned < depth as usize;
        // A barrier: the broker handles a channel's frames in order, so once this
        // round trip returns, every ack sent before it has been taken. Closing the
        // connection right after the last ack could otherwise drop it, and that
        // dead letter would come back to the queue as a duplicate.
        topology::inspect(&get, names::DEAD_QUEUE)
            .await
            .map_err(broker)?;
        Ok(report)
    }

    async fn replay_one(
        &self,
        publish: &lapin::Channel,
        dl: &DeadLetter,
        body: &[u8],
        pacer: &mut Pacer,
    ) -> anyhow::Result<Replayed> {
        if dl.delivery_id.is_empty() || dl.endpoint_id.is_empty() {
            return Ok(Replayed::Skip(
                "no x-delivery-id or x-endpoint-id header".into(),
            ));
        }
        let row = self
            .pool
            .get()
            .await?
            .query_one(
                "SELECT (SELECT status FROM deliveries WHERE id = $1),
                        EXISTS (SELECT 1 FROM endpoints WHERE id = $2)",
                &[&dl.delivery_id, &dl.endpoint_id],
            )
            .await?;
        let (status, endpoint_exists): (Option<String>, bool) = (row.get(0), row.get(1));
        if status.as_deref() == Some("succeeded") {
            // Delivered since (a resend or recover): sending it again would only
            // duplicate. The copy in the queue is dropped. (A `pending` one is
            // replayed: a duplicate is harmless, a loss is not.)
            record(self.pool, "discard", dl, &self.actor).await?;
            return Ok(Replayed::Stale);
        }
        if !endpoint_exists {
            return Ok(Replayed::Skip("its endpoint was deleted".into()));
        }
        pacer.wait().await;
        let props = h::delivery_properties(&h::DeliveryMeta {
            delivery_id: &dl.delivery_id,
            event_id: &dl.event_id,
            endpoint_id: &dl.endpoint_id,
            event_type: &dl.event_type,
            tenant_id: dl.tenant_id.as_deref(),
            // A fresh budget: the retry schedule starts over; numbering goes on.
            attempt: dl.attempts + 1,
            attempt_base: dl.attempts,
        });
        hookfleet_broker::publish_confirmed(
            publish,
            [hookfleet_broker::Outgoing {
                exchange: names::DELIVERIES_EXCHANGE,
                routing_key: &dl.endpoint_id,
                mandatory: false,
                payload: body,
                properties: props,
            }],
        )
        .await
        .map_err(BrokerUnavailable)?;
        mark_pending(self.pool, &dl.delivery_id).await?;
        record(self.pool, "replay", dl, &self.actor).await?;
        Ok(Replayed::Sent)
    }
}

enum Replayed {
    Sent,
    Stale,
    Skip(String),
}

fn broker(e: lapin::Error) -> anyhow::Error {
    BrokerUnavailable(e.into()).into()
}

/// After a confirmed re-send: a `failed` delivery is `pending` again. Only a
/// `failed` one: the worker may have recorded the new attempt already, and its
/// outcome wins.
pub async fn mark_pending(pool: &Pool, delivery_id: &str) -> anyhow::Result<()> {
    pool.get()
        .await?
        .execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = now()
              WHERE id = $1 AND status = 'failed'",
            &[&delivery_id],
        )
        .await
        .context("marking the delivery pending")?;
    Ok(())
}

/// Records an action in `dead_letter_actions`.
pub async fn record(pool: &Pool, action: &str, dl: &DeadLetter, actor: &str) -> anyhow::Result<()> {
    pool.get()
        .await?
        .execute(
            "INSERT INTO dead_letter_actions
               (action, delivery_id, event_id, endpoint_id, tenant_id, event_type, actor)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &action,
                &dl.delivery_id,
                &dl.event_id,
                &dl.endpoint_id,
                &dl.tenant_id,
                &dl.event_type,
                &actor,
            ],
        )
        .await
        .context("recording the dead-letter action")?;
    Ok(())
}

/// Spaces sends `1/rate` seconds apart.
struct Pacer {
    every: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(rate: Option<f64>) -> Self {
        Pacer {
            every: rate
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            next: Instant::now(),
        }
    }

    async fn wait(&mut self) {
        if let Some(every) = self.every {
            let now = Instant::now();
            if self.next > now {
                tokio::time::sleep(self.next - now).await;
            }
            self.next = self.next.max(now) + every;
        }
    }
}

/// Replays the dead letters of one endpoint whose events reached the router at
/// or after `since` (`/recover`'s first pass).
pub async fn replay_endpoint_since(
    amqp_url: &str,
    pool: &Pool,
    endpoint_id: &str,
    since: OffsetDateTime,
    actor: String,
) -> anyhow::Result<Report> {
    let run = Run {
        amqp_url,
        pool,
        filter: Filter {
            endpoint_id: Some(endpoint_id.to_owned()),
            ..Default::default()
        },
        action: Action::Replay { rate: None },
        dry_run: false,
        actor,
        include_payload: false,
        max_scan: MAX_SCAN,
    };
    let mut compiled = run.filter.clone().compile()?;
    compiled.received_since_ms = Some((since.unix_timestamp_nanos() / 1_000_000) as i64);
    run.execute_compiled(compiled).await
}
