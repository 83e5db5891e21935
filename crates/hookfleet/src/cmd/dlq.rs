//! `hookfleet dlq`: dead letters (list, show, replay, purge).
use super::{actor, pool, print_json};
use hookfleet_store::dead_letters::{self as store, Scope};
use hookfleet_store::Pool;

/// Which dead letters: every flag given must match.
#[derive(clap::Args, Debug, Clone)]
pub struct DlqFilter {
    /// Endpoint id (ep_…).
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    /// Event type, e.g. match.found.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Dead-lettered at or after (RFC 3339, e.g. 2026-11-28T12:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Dead-lettered before (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Part of the last error (case-insensitive), e.g. "HTTP 503" or "timed out".
    #[arg(long)]
    error: Option<String>,
    /// Why it was dead-lettered: attempts_exhausted, gone, foreign,
    /// endpoint_deleted, queue_missing or unroutable.
    #[arg(long)]
    reason: Option<store::DeadReason>,
    /// Act on at most this many (list: 100 unless given).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    limit: Option<i64>,
}

impl DlqFilter {
    /// The store's filter, checked (an error names the flag), and the limit.
    fn split(self) -> anyhow::Result<(store::Filter, Option<i64>)> {
        let filter = store::Filter {
            endpoint_id: self.endpoint,
            tenant_id: self.tenant,
            event_type: self.event_type,
            delivery_id: None,
            since: self.since,
            until: self.until,
            error: self.error,
            reason: self.reason,
            received_since_ms: None,
        };
        filter.validate().map_err(|e| anyhow::anyhow!("--{e}"))?;
        Ok((filter, self.limit))
    }
}

#[derive(clap::Subcommand)]
pub enum DlqCmd {
    /// List dead letters (a table; --json for the whole report).
    List {
        #[command(flatten)]
        filter: DlqFilter,
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter with its payload.
    Show { delivery_id: String },
    /// Send dead letters back to hookfleet.deliveries with a fresh attempt budget
    /// and the same webhook-id.
    Replay {
        #[command(flatten)]
        filter: DlqFilter,
        /// Sends per second at most.
        #[arg(long)]
        rate: Option<f64>,
        /// Say what would be replayed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Recorded as who replayed (default: cli:$USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Remove dead letters for good.
    Purge {
        #[command(flatten)]
        filter: DlqFilter,
        /// Required when no filter is given.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        by: Option<String>,
    },
}

pub async fn run(cmd: DlqCmd, settings: &hookfleet_core::Settings) -> anyhow::Result<()> {
    let pool = pool(settings)?;
    match cmd {
        DlqCmd::List { filter, json } => list(&pool, filter, json).await,
        DlqCmd::Show { delivery_id } => {
            let dl = store::show(&pool, Scope::All, &delivery_id)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!("no dead letter is kept for delivery {delivery_id}")
                })?;
            print_json(&dl)
        }
        DlqCmd::Replay {
            filter,
            rate,
            dry_run,
            by,
        } => replay(&pool, &settings.amqp.target, filter, rate, dry_run, by).await,
        DlqCmd::Purge {
            filter,
            all,
            dry_run,
            by,
        } => purge(&pool, filter, all, dry_run, by).await,
    }
}

async fn list(pool: &Pool, filter: DlqFilter, json: bool) -> anyhow::Result<()> {
    let (filter, limit) = filter.split()?;
    let page = store::list(pool, Scope::All, &filter, None, limit.unwrap_or(100)).await?;
    if json {
        print_json(&page)
    } else {
        print_table(&page);
        Ok(())
    }
}

/// How many dead letters a dry run would act on.
async fn matched(pool: &Pool, filter: &store::Filter, limit: Option<i64>) -> anyhow::Result<i64> {
    let n = store::count(pool, Scope::All, filter).await?;
    Ok(limit.map_or(n, |l| n.min(l)))
}

async fn replay(
    pool: &Pool,
    amqp: &hookfleet_core::config::AmqpTarget,
    filter: DlqFilter,
    rate: Option<f64>,
    dry_run: bool,
    by: Option<String>,
) -> anyhow::Result<()> {
    let (filter, limit) = filter.split()?;
    hookfleet_service::replay::check_rate(rate).map_err(|e| anyhow::anyhow!("--{e}"))?;
    if dry_run {
        let matched = matched(pool, &filter, limit).await?;
        out!(
            "{}",
            serde_json::json!({"dry_run": true, "matched": matched})
        );
        return Ok(());
    }
    let req = hookfleet_service::replay::ReplayRequest {
        filter,
        rate,
        limit,
        actor: actor(by),
    };
    let (replay, job) =
        hookfleet_service::replay::prepare_replay(amqp, pool, Scope::All, req).await?;
    eprintln!("replay {} started", replay.id);
    job.await;
    let done = store::get_replay(pool, Scope::All, &replay.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the replay's record is gone"))?;
    print_json(&done)?;
    if done.status != "done" {
        anyhow::bail!(
            "the replay ended {}: {}",
            done.status,
            done.error.unwrap_or_default()
        );
    }
    Ok(())
}

async fn purge(
    pool: &Pool,
    filter: DlqFilter,
    all: bool,
    dry_run: bool,
    by: Option<String>,
) -> anyhow::Result<()> {
    let (filter, limit) = filter.split()?;
    if !all && filter.is_empty() && limit.is_none() {
        anyhow::bail!("give a filter (--endpoint, --tenant, --type, --since, --until, --error, --reason, --limit), or --all to purge every dead letter");
    }
    let (matched, purged) = if dry_run {
        (matched(pool, &filter, limit).await?, 0)
    } else {
        let n = store::purge(pool, Scope::All, &filter, limit, &actor(by)).await? as i64;
        (n, n)
    };
    out!(
        "{}",
        serde_json::json!({"dry_run": dry_run, "matched": matched, "purged": purged})
    );
    Ok(())
}

fn print_table(page: &store::Page) {
    out!(
        "{:<30} {:<30} {:<12} {:<22} {:>8}  {:<25} {:<18} LAST ERROR",
        "DELIVERY",
        "ENDPOINT",
        "TENANT",
        "TYPE",
        "ATTEMPTS",
        "DEAD AT",
        "REASON"
    );
    for d in &page.data {
        out!(
            "{:<30} {:<30} {:<12} {:<22} {:>8}  {:<25} {:<18} {}",
            d.delivery_id,
            d.endpoint_id,
            d.tenant_id.as_deref().unwrap_or("-"),
            d.event_type,
            d.attempts,
            d.dead_at,
            d.reason.map_or("-", |r| r.as_str()),
            hookfleet_core::text::truncate(d.last_error.as_deref().unwrap_or(""), 60)
        );
    }
    eprintln!(
        "{} shown{}",
        page.data.len(),
        if page.next_cursor.is_some() {
            " (more: raise --limit or narrow the filter)"
        } else {
            ""
        }
    );
}
