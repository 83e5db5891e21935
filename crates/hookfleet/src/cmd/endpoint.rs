//! `hookfleet endpoint` (alias `webhook`): register, change, list, pause,
//! resume, delete endpoints and rotate their signing secrets.
use super::{pool, print_json, SecretArg};
use anyhow::Context as _;
use hookfleet_core::Settings;
use hookfleet_service::endpoints::{self as admin, EndpointInput};
use hookfleet_service::Caller;
use hookfleet_store::{endpoints, Pool};

#[derive(clap::Subcommand)]
pub enum EndpointCmd {
    /// Register an endpoint; prints it with its signing secret (shown once).
    #[command(visible_alias = "create")]
    Add(Add),
    /// Change an endpoint: what is given is set, the rest stays.
    Update(Update),
    /// List endpoints.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Pause delivery: queued deliveries wait.
    Disable {
        id: String,
        #[arg(long, default_value = "disabled by operator")]
        reason: String,
    },
    /// Resume delivery.
    Enable { id: String },
    /// Delete; undelivered messages move to hookfleet.dead.
    Delete { id: String },
    /// Rotate the signing secret: prints the new one; the old ones keep signing
    /// for --grace (e.g. 24h, at most 7d), so receivers can switch over.
    RotateSecret {
        id: String,
        #[arg(long, default_value = "24h")]
        grace: String,
    },
}

#[derive(clap::Args)]
pub struct Add {
    #[arg(long)]
    url: String,
    /// Event types, comma separated, or * for all.
    #[arg(long, default_value = "*", value_delimiter = ',')]
    events: Vec<String>,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long, default_value = "")]
    description: String,
    #[command(flatten)]
    secret: SecretArg,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
    /// Deliveries per second, all workers together.
    #[arg(long)]
    rate_limit: Option<i32>,
    /// Concurrent deliveries, all workers together.
    #[arg(long)]
    max_in_flight: Option<i32>,
    /// Delays between attempts, comma separated (e.g. 5s,1m,1h); at most 29.
    #[arg(long, value_delimiter = ',')]
    retry_schedule: Option<Vec<String>>,
    /// `fifo`: delivered one at a time in publish order (fixed for the
    /// endpoint's life); `parallel` (default).
    #[arg(long, default_value = "parallel")]
    ordering: hookfleet_core::Ordering,
    /// Deliver only events that pass this filter (JSON, docs/ARCHITECTURE.md
    /// §22), e.g. '{"path": "data.region", "eq": "eu"}'.
    #[arg(long)]
    filter: Option<String>,
}

#[derive(clap::Args)]
pub struct Update {
    id: String,
    #[arg(long)]
    url: Option<String>,
    /// Event types, comma separated, or * for all.
    #[arg(long, value_delimiter = ',')]
    events: Option<Vec<String>>,
    #[arg(long)]
    description: Option<String>,
    /// A new content filter (JSON, docs/ARCHITECTURE.md §22).
    #[arg(long, conflicts_with = "clear_filter")]
    filter: Option<String>,
    /// Remove the content filter: every event of the subscribed types is delivered.
    #[arg(long)]
    clear_filter: bool,
}

/// `--filter`'s JSON, checked (syntax, size, rules) with errors naming where.
fn filter_arg(text: &str) -> anyhow::Result<serde_json::Value> {
    hookfleet_core::filter::Filter::parse(text).context("--filter")?;
    serde_json::from_str(text).context("--filter")
}

pub async fn run(cmd: EndpointCmd, settings: &Settings) -> anyhow::Result<()> {
    let pool = pool(settings)?;
    match cmd {
        EndpointCmd::Add(add) => create(settings, &pool, add).await,
        EndpointCmd::Update(u) => update(settings, &pool, u).await,
        EndpointCmd::List { tenant } => {
            print_json(&endpoints::list(&pool, tenant.as_deref().map(Some)).await?)
        }
        EndpointCmd::Disable { id, reason } => {
            anyhow::ensure!(
                endpoints::set_active(&pool, &id, false, Some(&reason)).await?,
                "no endpoint with id {id}"
            );
            out!("{id} paused");
            Ok(())
        }
        EndpointCmd::Enable { id } => {
            anyhow::ensure!(
                endpoints::set_active(&pool, &id, true, None).await?,
                "no endpoint with id {id}"
            );
            out!("{id} active");
            Ok(())
        }
        EndpointCmd::Delete { id } => {
            let moved = admin::delete_endpoint(settings, &pool, &id).await?;
            out!("{id} deleted; {moved} undelivered message(s) moved to hookfleet.dead");
            Ok(())
        }
        EndpointCmd::RotateSecret { id, grace } => {
            rotate_secret(settings, &pool, &id, &grace).await
        }
    }
}

async fn create(settings: &Settings, pool: &Pool, add: Add) -> anyhow::Result<()> {
    let input = EndpointInput {
        url: add.url,
        events: add.events,
        tenant_id: add.tenant,
        description: add.description,
        secret: add.secret.resolve()?,
        is_active: !add.paused,
        rate_limit: add.rate_limit,
        max_in_flight: add.max_in_flight,
        retry_schedule: add.retry_schedule,
        ordering: add.ordering,
        filter: add.filter.as_deref().map(filter_arg).transpose()?,
        ..Default::default()
    };
    let (ep, secret) = admin::create_endpoint(settings, pool, input).await?;
    let mut v = serde_json::to_value(&ep)?;
    v["secret"] = serde_json::Value::String(secret);
    print_json(&v)
}

async fn update(settings: &Settings, pool: &Pool, u: Update) -> anyhow::Result<()> {
    let filter = match (u.filter.as_deref(), u.clear_filter) {
        (Some(f), _) => Some(Some(filter_arg(f)?)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let ep = endpoints::get(pool, &u.id)
        .await?
        .with_context(|| format!("no endpoint with id {}", u.id))?;
    // The operation behind PATCH /api/v1/webhooks/{id}, as the endpoint's own
    // tenant: the CLI may change any tenant's endpoint.
    let caller = ep.tenant_id.map_or(Caller::Admin, Caller::Tenant);
    let change = admin::UpdateWebhook {
        url: u.url,
        events: u.events,
        description: u.description,
        filter,
        ..Default::default()
    };
    let w = admin::update(
        hookfleet_service::Ctx::standalone(settings, pool),
        &caller,
        &u.id,
        change,
    )
    .await?;
    print_json(&w)
}

async fn rotate_secret(
    settings: &Settings,
    pool: &Pool,
    id: &str,
    grace: &str,
) -> anyhow::Result<()> {
    let grace = humantime::parse_duration(grace)
        .ok()
        .filter(|g| *g <= hookfleet_core::bounds::ROTATION_GRACE_MAX)
        .with_context(|| format!("--grace `{grace}`: a duration of at most 7d, such as 24h"))?;
    let ep = endpoints::get(pool, id)
        .await?
        .with_context(|| format!("no endpoint with id {id}"))?;
    // The operation behind POST /api/v1/webhooks/{id}/secret/rotate, as the
    // endpoint's own tenant: the CLI may rotate any tenant's endpoint.
    let caller = ep.tenant_id.map_or(Caller::Admin, Caller::Tenant);
    let expires = time::OffsetDateTime::now_utc() + grace;
    let out = admin::rotate_secret(
        pool,
        settings.encryption_keys.as_ref(),
        &caller,
        id,
        Some(grace.as_secs() as i64),
    )
    .await?;
    let new = out.key;
    out!(
        "{}",
        serde_json::json!({
            "id": id,
            "secret": new,
            "previous_expire_at": expires.format(&time::format_description::well_known::Rfc3339)?,
        })
    );
    Ok(())
}
