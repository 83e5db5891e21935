//! Dead letters in PostgreSQL (`migrations/V9__dead_letters.sql`): the
//! keeper's batch insert from `hookfleet.dead`, and the indexed reads and
//! deletes behind listing, replay and purge. Every read and delete is scoped:
//! a tenant caller's [`Scope`] adds `tenant_id = <its tenant>` to the query,
//! so no statement here can reach another tenant's rows.
use anyhow::Context as _;
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

pub use hookfleet_core::DeadReason;

/// One message taken from `hookfleet.dead`, as its headers describe it.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub delivery_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub tenant_id: Option<String>,
    pub event_type: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub dead_at: Option<OffsetDateTime>,
    pub received_at_ms: Option<i64>,
    pub body: Vec<u8>,
    /// The W3C trace context it carried: a replay continues that trace.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    /// Why (`x-dead-reason`, or the unroutable keeper's). `EndpointDeleted`
    /// is stored as `queue_missing` when the endpoint still exists.
    pub reason: Option<DeadReason>,
    /// Redelivered by the broker (a keeper died before its ack).
    pub redelivered: bool,
}

/// Stores a batch of dead letters in one statement. A delivery kept as
/// `queue_missing` is no longer pending: it is marked `failed`, as one out of
/// attempts is, and a replay makes it pending again. (`endpoint_deleted` ones
/// were marked `dead` by the endpoint's delete.) The body is kept only
/// when the event is not stored under the dead letter's tenant and id. A
/// message kept before is not kept twice: the same delivery and `x-dead-at`
/// (redelivered after a keeper died before its ack), or, for a message without
/// `x-dead-at` (from `hookfleet.unroutable`), a redelivered one whose delivery
/// already has a dead letter with the same reason.
pub async fn keep(pool: &Pool, batch: &[Kept]) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Kept) -> &str| batch.iter().map(f).collect::<Vec<&str>>();
    let (dids, eids, epids, types) = (
        col(|k| &k.delivery_id),
        col(|k| &k.event_id),
        col(|k| &k.endpoint_id),
        col(|k| &k.event_type),
    );
    let tenants: Vec<Option<&str>> = batch.iter().map(|k| k.tenant_id.as_deref()).collect();
    let attempts: Vec<i64> = batch.iter().map(|k| k.attempts).collect();
    let errors: Vec<Option<&str>> = batch.iter().map(|k| k.last_error.as_deref()).collect();
    let now = OffsetDateTime::now_utc();
    let dead_at: Vec<OffsetDateTime> = batch.iter().map(|k| k.dead_at.unwrap_or(now)).collect();
    let received: Vec<Option<i64>> = batch.iter().map(|k| k.received_at_ms).collect();
    let bodies: Vec<&[u8]> = batch.iter().map(|k| k.body.as_slice()).collect();
    let parents: Vec<Option<&str>> = batch.iter().map(|k| k.traceparent.as_deref()).collect();
    let states: Vec<Option<&str>> = batch.iter().map(|k| k.tracestate.as_deref()).collect();
    let reasons: Vec<Option<&str>> = batch
        .iter()
        .map(|k| k.reason.map(DeadReason::as_str))
        .collect();
    // Only a message without x-dead-at needs the second dedupe (the first is
    // the unique index).
    let again: Vec<bool> = batch
        .iter()
        .map(|k| k.redelivered && k.dead_at.is_none())
        .collect();
    pool.get()
        .await
        .context("connecting to Postgres")?
        .execute(
            "WITH u AS (
               SELECT u.*,
                      CASE WHEN u.rs = 'endpoint_deleted'
                                AND EXISTS (SELECT 1 FROM endpoints WHERE id = u.ep)
                           THEN 'queue_missing' ELSE u.rs END AS reason
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::int8[], $7::text[], $8::timestamptz[], $9::int8[], $10::bytea[],
                             $11::text[], $12::text[], $13::text[], $14::bool[])
                      AS u(d, e, ep, t, ty, a, err, at, r, b, tp, ts, rs, again))
             , kept AS (
             INSERT INTO dead_letters (delivery_id, event_id, endpoint_id, tenant_id, event_type,
                                       attempts, last_error, dead_at, received_at_ms, body,
                                       traceparent, tracestate, reason)
             SELECT u.d, u.e, u.ep, u.t, u.ty, u.a, u.err, u.at, u.r,
                    CASE WHEN EXISTS (SELECT 1 FROM events ev
                                       WHERE ev.scope = coalesce(u.t, '') AND ev.id = u.e)
                         THEN NULL ELSE u.b END,
                    u.tp, u.ts, u.reason
               FROM u
              WHERE NOT (u.again AND u.d <> ''
                         AND EXISTS (SELECT 1 FROM dead_letters x
                                      WHERE x.delivery_id = u.d
                                        AND x.reason IS NOT DISTINCT FROM u.reason))
             ON CONFLICT (delivery_id, dead_at) WHERE delivery_id <> '' DO NOTHING
             RETURNING delivery_id, reason)
             UPDATE deliveries SET status = 'failed'
              WHERE id IN (SELECT delivery_id FROM kept WHERE reason = 'queue_missing')
                AND status = 'pending'",
            &[
                &dids, &eids, &epids, &tenants, &types, &attempts, &errors, &dead_at, &received,
                &bodies, &parents, &states, &reasons, &again,
            ],
        )
        .await
        .context("storing dead letters")?;
    Ok(())
}

/// Whose dead letters a statement may touch.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The admin key or the CLI: every tenant's (a filter may narrow it).
    All,
    /// A tenant key: only this tenant's, whatever the filter says.
    Tenant(&'a str),
}

impl<'a> Scope<'a> {
    /// The scope of a caller: `Some(tenant)` for a tenant, `None` for the
    /// admin key or the CLI.
    pub fn of(tenant: Option<&'a str>) -> Self {
        tenant.map_or(Scope::All, Scope::Tenant)
    }
}

/// Which dead letters an action applies to. Every given field must match.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// Dead-lettered at or after (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Dead-lettered before (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Case-insensitive part of the last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it was dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DeadReason>,
    /// The event reached the router at or after (Unix ms): `/recover`.
    #[serde(skip)]
    pub received_since_ms: Option<i64>,
}

/// A field of a [`Filter`] that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadFilter {
    pub field: &'static str,
    pub message: String,
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
    /// Checks the times, naming the field that is wrong.
    pub fn validate(&self) -> Result<(), BadFilter> {
        parse_time("since", &self.since)?;
        parse_time("until", &self.until)?;
        Ok(())
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
            && self.reason.is_none()
            && self.received_since_ms.is_none()
    }

    /// `WHERE …` (with `d` as the table's alias) and its parameters, starting
    /// at `$1`. The scope comes first and is never optional for a tenant.
    fn sql(
        &self,
        scope: Scope<'_>,
    ) -> Result<(String, Vec<Box<dyn ToSql + Sync + Send>>), BadFilter> {
        let mut conds: Vec<String> = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut add = |cond: &str, p: Box<dyn ToSql + Sync + Send>| {
            params.push(p);
            conds.push(cond.replace('?', &format!("${}", params.len())));
        };
        if let Scope::Tenant(t) = scope {
            add("d.tenant_id = ?", Box::new(t.to_owned()));
        }
        if let Some(v) = &self.tenant_id {
            add("d.tenant_id = ?", Box::new(v.clone()));
        }
        if let Some(v) = &self.endpoint_id {
            add("d.endpoint_id = ?", Box::new(v.clone()));
        }
        if let Some(v) = &self.event_type {
            add("d.event_type = ?", Box::new(v.clone()));
        }
        if let Some(v) = &self.delivery_id {
            add("d.delivery_id = ?", Box::new(v.clone()));
        }
        if let Some(t) = parse_time("since", &self.since)? {
            add("d.dead_at >= ?", Box::new(t));
        }
        if let Some(t) = parse_time("until", &self.until)? {
            add("d.dead_at < ?", Box::new(t));
        }
        if let Some(v) = &self.error {
            // strpos, not LIKE: the text is matched as it is, `%` and `_` included.
            add(
                "strpos(lower(coalesce(d.last_error, '')), lower(?)) > 0",
                Box::new(v.clone()),
            );
        }
        if let Some(r) = self.reason {
            add("d.reason = ?", Box::new(r.as_str()));
        }
        if let Some(ms) = self.received_since_ms {
            add("d.received_at_ms >= ?", Box::new(ms));
        }
        let sql = if conds.is_empty() {
            "TRUE".to_owned()
        } else {
            conds.join(" AND ")
        };
        Ok((sql, params))
    }
}

/// The statement parameters of [`Filter::sql`], as `tokio_postgres` takes them.
fn refs(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as _).collect()
}

/// A dead letter as the API, the portal and the CLI show it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(description = "A delivery that ran out of attempts, kept for replay.")]
pub struct DeadLetter {
    pub delivery_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub tenant_id: Option<String>,
    pub event_type: String,
    /// Attempts made before it was dead-lettered.
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Why it was dead-lettered; null for the rows kept before V15.
    pub reason: Option<DeadReason>,
    /// The W3C `traceparent` it carried: a replay continues that trace.
    pub traceparent: Option<String>,
    /// When it was dead-lettered (RFC 3339).
    #[schema(format = DateTime)]
    pub dead_at: String,
    /// The event envelope (one dead letter's read only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
}

const COLUMNS: &str = "d.id, d.delivery_id, d.event_id, d.endpoint_id, d.tenant_id, d.event_type,
                       d.attempts, d.last_error, d.reason, d.traceparent, d.dead_at";

fn from_row(r: &tokio_postgres::Row) -> DeadLetter {
    let at: OffsetDateTime = r.get("dead_at");
    DeadLetter {
        delivery_id: r.get("delivery_id"),
        event_id: r.get("event_id"),
        endpoint_id: r.get("endpoint_id"),
        tenant_id: r.get("tenant_id"),
        event_type: r.get("event_type"),
        attempts: r.get("attempts"),
        last_error: r.get("last_error"),
        // Only the enum's spellings are written (see `keep`).
        reason: r
            .get::<_, Option<&str>>("reason")
            .and_then(|s| s.parse().ok()),
        traceparent: r.get("traceparent"),
        dead_at: at.format(&Rfc3339).unwrap_or_default(),
        payload: None,
    }
}

/// One page of dead letters, oldest first; `next_cursor` continues after it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = DeadLetterPage, description = "One page of dead letters, oldest first.")]
pub struct Page {
    pub data: Vec<DeadLetter>,
    /// Pass it as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The dead letters that match, oldest first, `limit` a page after `cursor`.
pub async fn list(
    pool: &Pool,
    scope: Scope<'_>,
    filter: &Filter,
    cursor: Option<i64>,
    limit: i64,
) -> anyhow::Result<Page> {
    let (cond, mut params) = filter.sql(scope)?;
    params.push(Box::new(cursor.unwrap_or(0)));
    params.push(Box::new(limit + 1));
    let n = params.len();
    let sql = format!(
        "SELECT {COLUMNS} FROM dead_letters d WHERE {cond} AND d.id > ${} ORDER BY d.id LIMIT ${n}",
        n - 1
    );
    let refs = refs(&params);
    let rows = pool.get().await?.query(&sql, &refs).await?;
    let more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit as usize)];
    Ok(Page {
        data: rows.iter().map(from_row).collect(),
        next_cursor: more
            .then(|| rows.last().map(|r| r.get::<_, i64>("id").to_string()))
            .flatten(),
    })
}

/// How many dead letters match (a dry run).
pub async fn count(pool: &Pool, scope: Scope<'_>, filter: &Filter) -> anyhow::Result<i64> {
    let (cond, params) = filter.sql(scope)?;
    let refs = refs(&params);
    let row = pool
        .get()
        .await?
        .query_one(
            &format!("SELECT count(*) FROM dead_letters d WHERE {cond}"),
            &refs,
        )
        .await?;
    Ok(row.get(0))
}

/// The newest dead letter of a delivery, with its payload.
pub async fn show(
    pool: &Pool,
    scope: Scope<'_>,
    delivery_id: &str,
) -> anyhow::Result<Option<DeadLetter>> {
    let filter = Filter {
        delivery_id: Some(delivery_id.to_owned()),
        ..Default::default()
    };
    let (cond, params) = filter.sql(scope)?;
    let refs = refs(&params);
    let row = pool
        .get()
        .await?
        .query_opt(
            &format!(
                "SELECT {COLUMNS}, coalesce(e.payload::text, convert_from(d.body, 'UTF8')) AS payload
                   FROM dead_letters d
                   LEFT JOIN events e ON e.scope = coalesce(d.tenant_id, '') AND e.id = d.event_id
                  WHERE {cond} ORDER BY d.id DESC LIMIT 1"
            ),
            &refs,
        )
        .await?;
    Ok(row.map(|r| {
        let mut d = from_row(&r);
        let payload: Option<String> = r.get("payload");
        d.payload = payload.and_then(|p| serde_json::from_str(&p).ok());
        d
    }))
}

/// Whether endpoint `id` exists in `scope` (any tenant's for `All`).
pub async fn endpoint_exists(pool: &Pool, scope: Scope<'_>, id: &str) -> anyhow::Result<bool> {
    if id.contains('\0') {
        return Ok(false); // PostgreSQL text cannot hold it: no row can match.
    }
    let tenant = match scope {
        Scope::All => None,
        Scope::Tenant(t) => Some(t),
    };
    let row = pool
        .get()
        .await
        .context("connecting to Postgres")?
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM endpoints
                             WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2))",
            &[&id, &tenant],
        )
        .await?;
    Ok(row.get(0))
}

/// A dead letter a replay looks at: its payload (the stored event, else the
/// kept body), and whether its delivery succeeded since or its endpoint is gone.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: i64,
    pub dead_letter: DeadLetter,
    pub payload: Option<Vec<u8>>,
    /// `None` when the delivery is gone.
    pub delivery_status: Option<hookfleet_core::DeliveryStatus>,
    pub endpoint_exists: bool,
    /// The trace context it carried into `hookfleet.dead`.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// The next `limit` matching dead letters after `after` (by id), for a replay.
pub async fn candidates(
    pool: &Pool,
    scope: Scope<'_>,
    filter: &Filter,
    after: i64,
    limit: i64,
) -> anyhow::Result<Vec<Candidate>> {
    let (cond, mut params) = filter.sql(scope)?;
    params.push(Box::new(after));
    params.push(Box::new(limit));
    let n = params.len();
    let sql = format!(
        "SELECT {COLUMNS},
                coalesce(convert_to(e.payload::text, 'UTF8'), d.body) AS payload,
                (SELECT status FROM deliveries WHERE id = d.delivery_id) AS delivery_status,
                EXISTS (SELECT 1 FROM endpoints WHERE id = d.endpoint_id) AS endpoint_exists,
                d.tracestate
           FROM dead_letters d
           LEFT JOIN events e ON e.scope = coalesce(d.tenant_id, '') AND e.id = d.event_id
          WHERE {cond} AND d.id > ${} ORDER BY d.id LIMIT ${n}",
        n - 1
    );
    let refs = refs(&params);
    let rows = pool.get().await?.query(&sql, &refs).await?;
    Ok(rows
        .iter()
        .map(|r| Candidate {
            id: r.get("id"),
            dead_letter: from_row(r),
            payload: r.get("payload"),
            // The column's CHECK admits only the enum's spellings.
            delivery_status: r
                .get::<_, Option<&str>>("delivery_status")
                .and_then(|s| s.parse().ok()),
            endpoint_exists: r.get("endpoint_exists"),
            traceparent: r.get("traceparent"),
            tracestate: r.get("tracestate"),
        })
        .collect())
}

/// What happened to one dead letter of a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its copy is confirmed on `hookfleet.deliveries`: the row goes, the
    /// delivery is `pending` again (only from `failed`: an outcome the worker
    /// recorded meanwhile wins).
    Replayed,
    /// The delivery succeeded since: sending again would only duplicate.
    Discarded,
}

/// Removes replayed and discarded dead letters, marks the replayed deliveries
/// pending and records every action, in one transaction.
pub async fn finish(
    pool: &Pool,
    done: &[(&Candidate, Outcome)],
    actor: &str,
) -> anyhow::Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = done.iter().map(|(c, _)| c.id).collect();
    let replayed: Vec<&str> = done
        .iter()
        .filter(|(_, o)| *o == Outcome::Replayed)
        .map(|(c, _)| c.dead_letter.delivery_id.as_str())
        .collect();
    let actions: Vec<&str> = done
        .iter()
        .map(|(_, o)| match o {
            Outcome::Replayed => "replay",
            Outcome::Discarded => "discard",
        })
        .collect();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = now()
          WHERE id = ANY($1) AND status = 'failed'",
        &[&replayed],
    )
    .await
    .context("marking replayed deliveries pending")?;
    tx.execute(
        "WITH gone AS (DELETE FROM dead_letters WHERE id = ANY($1)
                       RETURNING id, delivery_id, event_id, endpoint_id, tenant_id, event_type)
         INSERT INTO dead_letter_actions (action, delivery_id, event_id, endpoint_id, tenant_id, event_type, actor)
         SELECT a.action, g.delivery_id, g.event_id, g.endpoint_id, g.tenant_id, g.event_type, $3
           FROM gone g JOIN unnest($1::int8[], $2::text[]) AS a(id, action) ON a.id = g.id",
        &[&ids, &actions, &actor],
    )
    .await
    .context("removing replayed dead letters")?;
    tx.commit().await?;
    Ok(())
}

/// Removes the matching dead letters (at most `limit`) and records each
/// purge; returns how many.
pub async fn purge(
    pool: &Pool,
    scope: Scope<'_>,
    filter: &Filter,
    limit: Option<i64>,
    actor: &str,
) -> anyhow::Result<u64> {
    let (cond, mut params) = filter.sql(scope)?;
    params.push(Box::new(limit.unwrap_or(i64::MAX)));
    params.push(Box::new(actor.to_owned()));
    let n = params.len();
    let sql = format!(
        "WITH gone AS (DELETE FROM dead_letters WHERE id IN
                         (SELECT d.id FROM dead_letters d WHERE {cond} ORDER BY d.id LIMIT ${})
                       RETURNING delivery_id, event_id, endpoint_id, tenant_id, event_type)
         INSERT INTO dead_letter_actions (action, delivery_id, event_id, endpoint_id, tenant_id, event_type, actor)
         SELECT 'purge', delivery_id, event_id, endpoint_id, tenant_id, event_type, ${n} FROM gone",
        n - 1
    );
    let refs = refs(&params);
    Ok(pool.get().await?.execute(&sql, &refs).await?)
}

/// A background replay: its progress, and its cancel switch.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(description = "A replay of dead letters running in the background, and its progress.")]
pub struct Replay {
    pub id: String,
    /// `running`, then `done`, `cancelled`, `failed`, or `interrupted` (its
    /// process stopped).
    #[schema(example = "running")]
    pub status: String,
    /// The filter it was started with.
    #[schema(value_type = Object)]
    pub filter: serde_json::Value,
    /// Sends per second at most; null: unpaced.
    pub rate: Option<f64>,
    /// Who started it: `api:admin` or `api:tenant:<id>`.
    pub actor: String,
    /// Dead letters looked at so far.
    pub matched: i64,
    pub replayed: i64,
    /// Removed without sending: the delivery succeeded since.
    pub discarded: i64,
    /// Left in place: the endpoint was deleted, or no payload is kept.
    pub skipped: i64,
    pub error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
}

const REPLAY_COLUMNS: &str =
    "id, status, filter, rate, actor, matched, replayed, discarded, skipped, error,
                              created_at, updated_at, finished_at";

fn replay_from_row(r: &tokio_postgres::Row) -> Replay {
    let t = |k: &str| {
        r.get::<_, Option<OffsetDateTime>>(k)
            .and_then(|t| t.format(&Rfc3339).ok())
    };
    Replay {
        id: r.get("id"),
        status: r.get("status"),
        filter: r.get("filter"),
        rate: r.get("rate"),
        actor: r.get("actor"),
        matched: r.get("matched"),
        replayed: r.get("replayed"),
        discarded: r.get("discarded"),
        skipped: r.get("skipped"),
        error: r.get("error"),
        created_at: t("created_at").unwrap_or_default(),
        updated_at: t("updated_at").unwrap_or_default(),
        finished_at: t("finished_at"),
    }
}

fn scope_key(scope: Scope<'_>) -> &str {
    match scope {
        Scope::All => "",
        Scope::Tenant(t) => t,
    }
}

/// Records a new running replay.
pub async fn start_replay(
    pool: &Pool,
    scope: Scope<'_>,
    id: &str,
    filter: &Filter,
    rate: Option<f64>,
    actor: &str,
) -> anyhow::Result<Replay> {
    let row = pool
        .get()
        .await?
        .query_one(
            &format!(
                "INSERT INTO dead_letter_replays (id, scope, filter, rate, actor) VALUES ($1, $2, $3, $4, $5)
                 RETURNING {REPLAY_COLUMNS}"
            ),
            &[&id, &scope_key(scope), &serde_json::to_value(filter)?, &rate, &actor],
        )
        .await?;
    Ok(replay_from_row(&row))
}

/// Adds to a replay's counters; returns whether it was asked to stop.
pub async fn progress(
    pool: &Pool,
    id: &str,
    matched: i64,
    replayed: i64,
    discarded: i64,
    skipped: i64,
) -> anyhow::Result<bool> {
    let row = pool
        .get()
        .await?
        .query_one(
            "UPDATE dead_letter_replays
                SET matched = matched + $2, replayed = replayed + $3, discarded = discarded + $4,
                    skipped = skipped + $5, updated_at = now()
              WHERE id = $1 RETURNING cancel",
            &[&id, &matched, &replayed, &discarded, &skipped],
        )
        .await?;
    Ok(row.get(0))
}

/// Ends a replay with `status` (done, cancelled, failed).
pub async fn end_replay(
    pool: &Pool,
    id: &str,
    status: &str,
    error: Option<&str>,
) -> anyhow::Result<()> {
    pool.get()
        .await?
        .execute(
            "UPDATE dead_letter_replays SET status = $2, error = $3, updated_at = now(), finished_at = now()
              WHERE id = $1 AND status = 'running'",
            &[&id, &status, &error],
        )
        .await?;
    Ok(())
}

/// One replay, if the caller may see it.
pub async fn get_replay(pool: &Pool, scope: Scope<'_>, id: &str) -> anyhow::Result<Option<Replay>> {
    let row = pool
        .get()
        .await?
        .query_opt(
            &format!(
                "SELECT {REPLAY_COLUMNS} FROM dead_letter_replays
                  WHERE id = $1 AND ($2 = '' OR scope = $2)"
            ),
            &[&id, &scope_key(scope)],
        )
        .await?;
    Ok(row.as_ref().map(replay_from_row))
}

/// The caller's 100 newest replays.
pub async fn list_replays(pool: &Pool, scope: Scope<'_>) -> anyhow::Result<Vec<Replay>> {
    let rows = pool
        .get()
        .await?
        .query(
            &format!(
                "SELECT {REPLAY_COLUMNS} FROM dead_letter_replays
                  WHERE ($1 = '' OR scope = $1) ORDER BY created_at DESC LIMIT 100"
            ),
            &[&scope_key(scope)],
        )
        .await?;
    Ok(rows.iter().map(replay_from_row).collect())
}

/// Asks a running replay to stop; returns it as it is now.
pub async fn cancel_replay(
    pool: &Pool,
    scope: Scope<'_>,
    id: &str,
) -> anyhow::Result<Option<Replay>> {
    pool.get()
        .await?
        .execute(
            "UPDATE dead_letter_replays SET cancel = true, updated_at = now()
              WHERE id = $1 AND ($2 = '' OR scope = $2) AND status = 'running'",
            &[&id, &scope_key(scope)],
        )
        .await?;
    get_replay(pool, scope, id).await
}

/// Whether a replay was asked to stop.
pub async fn cancelled(pool: &Pool, id: &str) -> anyhow::Result<bool> {
    let row = pool
        .get()
        .await?
        .query_opt(
            "SELECT cancel FROM dead_letter_replays WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.is_none_or(|r| r.get(0)))
}

/// Marks replays whose process went away (no progress for `stale_secs`) as
/// `interrupted`: every dead letter they had not replayed is still kept.
pub async fn interrupt_stale_replays(pool: &Pool, stale_secs: f64) -> anyhow::Result<u64> {
    Ok(pool
        .get()
        .await?
        .execute(
            "UPDATE dead_letter_replays SET status = 'interrupted', finished_at = now()
              WHERE status = 'running' AND updated_at < now() - make_interval(secs => $1)",
            &[&stale_secs],
        )
        .await?)
}

/// After a confirmed re-send from the stored event (`/recover`): a `failed`
/// delivery is `pending` again, and the action is recorded.
pub async fn recovered(pool: &Pool, d: &DeadLetter, actor: &str) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = now()
          WHERE id = $1 AND status = 'failed'",
        &[&d.delivery_id],
    )
    .await?;
    tx.execute(
        "INSERT INTO dead_letter_actions
           (action, delivery_id, event_id, endpoint_id, tenant_id, event_type, actor)
         VALUES ('recover', $1, $2, $3, $4, $5, $6)",
        &[
            &d.delivery_id,
            &d.event_id,
            &d.endpoint_id,
            &d.tenant_id,
            &d.event_type,
            &actor,
        ],
    )
    .await?;
    tx.commit()
        .await
        .context("recording a recovered delivery")?;
    Ok(())
}
