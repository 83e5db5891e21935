//! Dead letters as the API and the portal act on them: list, show, purge,
//! replay jobs (started here, run by [`crate::replay`]) and `/recover`. A
//! tenant sees and acts on its own tenant's dead letters only: its scope is
//! part of every query, whatever the filter says.
use crate::deliveries::{publish_again, Again, Origin};
use crate::endpoints::load;
use crate::error::{ServiceError, ServiceResult};
use crate::{replay, Caller, Ctx};
use hookfleet_store::dead_letters::{self as store, DeadReason, Filter, Replay};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub use hookfleet_store::dead_letters::{DeadLetter, Page};

/// Largest page of a dead-letter list.
const MAX_PAGE: i64 = 1000;
/// Default page of a dead-letter list.
const DEFAULT_PAGE: i64 = 100;

/// The list's query: a filter, and a page.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this webhook's.
    pub endpoint_id: Option<String>,
    /// Only this tenant's (a tenant key may give only its own).
    pub tenant_id: Option<String>,
    pub event_type: Option<String>,
    pub delivery_id: Option<String>,
    /// Dead-lettered at or after (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Dead-lettered before (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// A case-insensitive part of the last error.
    pub error: Option<String>,
    /// Why it was dead-lettered (`endpoint_deleted`, `unroutable`, …).
    pub reason: Option<DeadReason>,
    /// Page size: 1 to 1000, 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (only a cursor this API returned).
    pub cursor: Option<String>,
}

impl ListQuery {
    fn split(self) -> ServiceResult<(Filter, Option<i64>, i64)> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ServiceError::invalid(
                "limit",
                format!("must be from 1 to {MAX_PAGE}"),
            ));
        }
        let cursor = self
            .cursor
            .map(|c| {
                c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ServiceError::invalid("cursor", "not a cursor this API returned")
                })
            })
            .transpose()?;
        let f = Filter {
            endpoint_id: self.endpoint_id,
            tenant_id: self.tenant_id,
            event_type: self.event_type,
            delivery_id: self.delivery_id,
            since: self.since,
            until: self.until,
            error: self.error,
            reason: self.reason,
            received_since_ms: None,
        };
        f.validate()?;
        Ok((f, cursor, limit))
    }
}

/// The dead letters that match, oldest first, in cursor pages.
pub async fn list(ctx: Ctx<'_>, caller: &Caller, q: ListQuery) -> ServiceResult<Page> {
    let (f, cursor, limit) = q.split()?;
    let scope = caller.dead_letter_scope(&f)?;
    Ok(store::list(ctx.pool, scope, &f, cursor, limit).await?)
}

/// One dead letter with its payload.
pub async fn show(ctx: Ctx<'_>, caller: &Caller, delivery_id: &str) -> ServiceResult<DeadLetter> {
    let scope = caller.dead_letter_scope(&Filter::default())?;
    store::show(ctx.pool, scope, delivery_id)
        .await?
        .ok_or(ServiceError::NotFound("dead letter"))
}

/// What replay and purge act on: a filter, plus how to act.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DeadLetterAction, description = "Which dead letters (every given filter must match) and how to act.")]
pub struct ActionBody {
    /// Only this webhook's.
    pub endpoint_id: Option<String>,
    /// Only this tenant's (a tenant key may give only its own).
    pub tenant_id: Option<String>,
    pub event_type: Option<String>,
    pub delivery_id: Option<String>,
    /// Dead-lettered at or after (RFC 3339).
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// Dead-lettered before (RFC 3339).
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// A case-insensitive part of the last error.
    pub error: Option<String>,
    /// Why it was dead-lettered (`endpoint_deleted`, `unroutable`, …).
    pub reason: Option<DeadReason>,
    /// At most this many dead letters are acted on.
    #[schema(minimum = 1)]
    pub limit: Option<i64>,
    /// Replay: sends per second at most (0.1 to 100000); unpaced when absent.
    #[schema(minimum = 0.1, maximum = 100000)]
    pub rate: Option<f64>,
    /// Say what would be done; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Purge: required when no filter is given.
    #[serde(default)]
    pub all: bool,
}

impl ActionBody {
    fn filter(&self) -> ServiceResult<Filter> {
        if self.limit.is_some_and(|l| l < 1) {
            return Err(ServiceError::invalid("limit", "must be at least 1"));
        }
        let f = Filter {
            endpoint_id: self.endpoint_id.clone(),
            tenant_id: self.tenant_id.clone(),
            event_type: self.event_type.clone(),
            delivery_id: self.delivery_id.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            error: self.error.clone(),
            reason: self.reason,
            received_since_ms: None,
        };
        f.validate()?;
        Ok(f)
    }
}

/// What a dry run or a purge did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = DeadLetterCount, description = "What a dry run or a purge did.")]
pub struct Counted {
    pub dry_run: bool,
    /// Dead letters that match (at most `limit`).
    pub matched: i64,
    /// Removed (0 in a dry run).
    pub purged: i64,
}

async fn dry_run(
    ctx: Ctx<'_>,
    scope: store::Scope<'_>,
    f: &Filter,
    limit: Option<i64>,
) -> ServiceResult<Counted> {
    let n = store::count(ctx.pool, scope, f).await?;
    Ok(Counted {
        dry_run: true,
        matched: limit.map_or(n, |l| n.min(l)),
        purged: 0,
    })
}

/// What a replay request did.
#[derive(Debug)]
pub enum Replayed {
    /// A dry run: how many would be replayed.
    DryRun(Counted),
    /// The job started; its record.
    Started(Box<Replay>),
}

/// Starts a replay in the background (or counts, for a dry run).
pub async fn replay(ctx: Ctx<'_>, caller: &Caller, body: ActionBody) -> ServiceResult<Replayed> {
    let f = body.filter()?;
    replay::check_rate(body.rate)?;
    let scope = caller.dead_letter_scope(&f)?;
    if body.dry_run {
        return Ok(Replayed::DryRun(dry_run(ctx, scope, &f, body.limit).await?));
    }
    let req = replay::ReplayRequest {
        filter: f,
        rate: body.rate,
        limit: body.limit,
        actor: caller.actor(),
    };
    let r = replay::start_replay(&ctx.settings.amqp.target, ctx.pool, scope, req).await?;
    Ok(Replayed::Started(Box::new(r)))
}

/// The caller's 100 newest replays.
pub async fn replays(ctx: Ctx<'_>, caller: &Caller) -> ServiceResult<Vec<Replay>> {
    replay::interrupt_stale(ctx.pool).await;
    let scope = caller.dead_letter_scope(&Filter::default())?;
    Ok(store::list_replays(ctx.pool, scope).await?)
}

/// A replay's progress.
pub async fn replay_status(ctx: Ctx<'_>, caller: &Caller, id: &str) -> ServiceResult<Replay> {
    replay::interrupt_stale(ctx.pool).await;
    let scope = caller.dead_letter_scope(&Filter::default())?;
    store::get_replay(ctx.pool, scope, id)
        .await?
        .ok_or(ServiceError::NotFound("replay"))
}

/// Stops a running replay after the send in progress (what it sent stays
/// sent; the rest stays kept).
pub async fn cancel_replay(ctx: Ctx<'_>, caller: &Caller, id: &str) -> ServiceResult<Replay> {
    let scope = caller.dead_letter_scope(&Filter::default())?;
    store::cancel_replay(ctx.pool, scope, id)
        .await?
        .ok_or(ServiceError::NotFound("replay"))
}

/// Removes the dead letters that match (or counts them, for a dry run).
pub async fn purge(ctx: Ctx<'_>, caller: &Caller, body: ActionBody) -> ServiceResult<Counted> {
    let f = body.filter()?;
    if !body.all && f.is_empty() {
        return Err(ServiceError::invalid(
            "all",
            "give a filter, or \"all\": true to purge every dead letter",
        ));
    }
    let scope = caller.dead_letter_scope(&f)?;
    if body.dry_run {
        return dry_run(ctx, scope, &f, body.limit).await;
    }
    let n = store::purge(ctx.pool, scope, &f, body.limit, &caller.actor()).await? as i64;
    hookfleet_core::metrics::DEAD_LETTERS_PURGED.inc_by(n as u64);
    Ok(Counted {
        dry_run: false,
        matched: n,
        purged: n,
    })
}

/// Since when a recover re-sends the failed deliveries.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Recover)]
pub struct RecoverBody {
    /// RFC 3339: deliveries whose event reached hookfleet at or after this time.
    #[schema(format = DateTime, example = "2026-11-28T12:00:00Z")]
    pub since: String,
}

/// What a recover sent back.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recovered {
    pub endpoint_id: String,
    pub since: String,
    /// Dead letters of the endpoint sent back.
    pub replayed_from_dead_letters: i64,
    /// Failed deliveries with no dead letter kept (purged, say), re-sent from
    /// the stored event.
    pub resent: usize,
}

/// Largest number of stored failed deliveries one `/recover` re-sends.
const RECOVER_MAX: i64 = 10_000;

/// Re-sends every failed delivery of a webhook since a time, with a fresh
/// attempt budget and the same `webhook-id`: first its kept dead letters (those
/// deliveries become `pending`), then failed deliveries with no dead letter
/// kept, from the stored event.
pub async fn recover(
    ctx: Ctx<'_>,
    caller: &Caller,
    webhook_id: &str,
    body: RecoverBody,
) -> ServiceResult<Recovered> {
    let ep = load(ctx.pool, caller, webhook_id).await?;
    let since = OffsetDateTime::parse(&body.since, &Rfc3339)
        .map_err(|e| ServiceError::invalid("since", format!("not an RFC 3339 time ({e})")))?;
    let publisher = ctx.publisher.ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!("recover needs the shared publisher"))
    })?;
    let scope = store::Scope::of(caller.scope());
    let actor = caller.actor();
    let since_ms = (since.unix_timestamp_nanos() / 1_000_000) as i64;
    let replayed = replay::replay_endpoint_since(
        &ctx.settings.amqp.target,
        ctx.pool,
        scope,
        &ep.id,
        since_ms,
        actor.clone(),
    )
    .await?;
    let failed =
        hookfleet_store::history::failed_without_dead_letter(ctx.pool, &ep.id, since, RECOVER_MAX)
            .await?;
    if !failed.is_empty() {
        publisher.declare_endpoint(&ep).await?;
    }
    for d in &failed {
        let again = Again {
            delivery_id: &d.id,
            event_id: &d.event_id,
            event_type: &d.event_type,
            attempts: d.attempt_count,
            payload: &d.payload,
        };
        publish_again(publisher, &ep, &again, Origin::Recover).await?;
        let dl = DeadLetter {
            delivery_id: d.id.clone(),
            event_id: d.event_id.clone(),
            endpoint_id: ep.id.clone(),
            tenant_id: ep.tenant_id.clone(),
            event_type: d.event_type.clone(),
            attempts: i64::from(d.attempt_count),
            last_error: None,
            reason: None,
            traceparent: None,
            dead_at: String::new(),
            payload: None,
        };
        store::recovered(ctx.pool, &dl, &actor).await?;
        hookfleet_core::metrics::DEAD_LETTERS_REPLAYED.inc();
    }
    Ok(Recovered {
        endpoint_id: webhook_id.to_owned(),
        since: body.since,
        replayed_from_dead_letters: replayed,
        resent: failed.len(),
    })
}
