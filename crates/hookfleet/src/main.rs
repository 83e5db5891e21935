//! `hookfleet`: one binary, a subcommand per role. Parse the command line, load
//! the configuration, initialise tracing, and hand over to the library.
#![forbid(unsafe_code)]

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hookfleet::admin::{self, EndpointInput};
use hookfleet::Roles;
use hookfleet_core::config::LogFormat;
use hookfleet_core::Settings;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Prints a line to stdout; a closed pipe (`| head`) is not an error worth a panic.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "hookfleet",
    version,
    about = "Webhook delivery fleet: RabbitMQ in, signed HTTP POSTs out."
)]
struct Cli {
    /// Configuration file (default: ./hookfleet.toml when present). Environment
    /// variables HOOKFLEET__SECTION__KEY override it.
    #[arg(long, global = true, env = "HOOKFLEET_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply database migrations (creates the database if missing).
    Migrate,
    /// Route events from hookfleet.router to endpoint queues.
    Router,
    /// Deliver from endpoint queues to endpoints.
    Worker,
    /// The management REST API and HTTP ingest on api.listen (needs api.admin_key).
    Api,
    /// Migrate, then run router, worker and (when api.admin_key is set) the API in one process.
    All,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Manage the event type catalog.
    #[command(subcommand, name = "event-type")]
    EventType(EventTypeCmd),
    /// Manage tenants' API keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Signing secrets at rest (secrets.encryption_keys).
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Manage endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Dead letters (hookfleet.dead): list, show, replay, purge.
    #[command(subcommand)]
    Dlq(DlqCmd),
    /// A local receiver that verifies and prints deliveries.
    Listen {
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// The endpoint's signing secret (whsec_…), to verify signatures.
        #[arg(long)]
        secret: Option<String>,
        /// Answer 500 to the first N requests.
        #[arg(long, default_value_t = 0)]
        fail: u64,
        /// Answer this status to every request.
        #[arg(long)]
        status: Option<u16>,
    },
    /// Publish the rows of a producer's transactional outbox (hookfleet_outbox), in
    /// order, with confirms; safe to run as several replicas.
    OutboxRelay {
        /// The producer's database, holding hookfleet_outbox.
        #[arg(long, env = "HOOKFLEET_OUTBOX_DATABASE_URL")]
        database_url: String,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
    /// Publish events to hookfleet.events with publisher confirms: one (TYPE
    /// --data) or many (--file, one JSON object per line: {"type", "data",
    /// "tenant_id"}). Prints each event's id.
    Emit {
        /// Event type, e.g. match.found; with --file, the type of lines that name none.
        #[arg(required_unless_present = "file")]
        event_type: Option<String>,
        /// The event's data: a JSON object.
        #[arg(long, required_unless_present = "file", conflicts_with = "file")]
        data: Option<String>,
        /// A JSON Lines file of events (`-` for stdin).
        #[arg(long)]
        file: Option<PathBuf>,
        /// The tenant of the event (with --file: of lines that name none).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Check a captured delivery's signature (body on stdin) and say why it fails:
    /// wrong secret, body changed, timestamp too old. Exits 0 when it verifies.
    Verify {
        /// The endpoint's signing secret (whsec_…).
        #[arg(long)]
        secret: String,
        /// The webhook-id header.
        #[arg(long)]
        id: String,
        /// The webhook-timestamp header.
        #[arg(long)]
        timestamp: String,
        /// The webhook-signature header (all of it: `v1,… v1,…`).
        #[arg(long)]
        signature: String,
        /// Accepted clock difference, in seconds (Standard Webhooks: 300).
        #[arg(long, default_value_t = 300)]
        tolerance: i64,
        /// The body, if not on stdin.
        #[arg(long)]
        body: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TenantCmd {
    /// Create a tenant.
    Create { id: String },
    /// Print a link that signs the tenant in to the portal (/portal). Needs
    /// api.admin_key (links are signed with it); the address is api.public_url,
    /// else http://<api.listen>.
    PortalLink {
        id: String,
        /// How long the link works (1m to 7d); default api.portal_link_ttl.
        #[arg(long)]
        ttl: Option<humantime::Duration>,
    },
}

#[derive(Subcommand)]
enum EventTypeCmd {
    /// List the catalog.
    List,
    /// Add an event type.
    Add {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// JSON Schema of `data` (JSON text, or @file).
        #[arg(long)]
        schema: Option<String>,
        /// An example `data` (JSON text, or @file); must match the schema.
        #[arg(long)]
        example: Option<String>,
        /// Its own retry schedule: delays between attempts, comma separated (e.g. 5s,1m,1h).
        #[arg(long, value_delimiter = ',')]
        retry_schedule: Option<Vec<String>>,
    },
    /// Deprecate an event type: events of it are refused from now on.
    Deprecate { name: String },
}

fn json_arg(flag: &str, v: Option<String>) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(v) = v else { return Ok(None) };
    let text = match v.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("{flag}: reading {path}"))?
        }
        None => v,
    };
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("{flag} is not valid JSON"))?,
    ))
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Issue an API key for a tenant; the key is printed once.
    Create { tenant: String },
    /// Revoke an API key by its id (key_…).
    Revoke { key_id: String },
}

/// Which dead letters: every flag given must match.
#[derive(clap::Args, Debug, Clone)]
struct DlqFilter {
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
    /// Act on at most this many (list: 100 unless given).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    limit: Option<i64>,
}

impl DlqFilter {
    fn split(self) -> (hookfleet_store::dead_letters::Filter, Option<i64>) {
        (
            hookfleet_store::dead_letters::Filter {
                endpoint_id: self.endpoint,
                tenant_id: self.tenant,
                event_type: self.event_type,
                delivery_id: None,
                since: self.since,
                until: self.until,
                error: self.error,
                received_since_ms: None,
            },
            self.limit,
        )
    }
}

#[derive(Subcommand)]
enum DlqCmd {
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

#[derive(Subcommand)]
enum EndpointCmd {
    /// Register an endpoint; prints it with its signing secret (shown once).
    Add {
        #[arg(long)]
        url: String,
        /// Event types, comma separated, or * for all.
        #[arg(long, default_value = "*", value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Use this secret (whsec_…) instead of generating one.
        #[arg(long)]
        secret: Option<String>,
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
        #[arg(long, value_parser = ["parallel", "fifo"], default_value = "parallel")]
        ordering: String,
    },
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

#[derive(Subcommand)]
enum SecretsCmd {
    /// Rewrite every endpoint's signing secrets under the first key of
    /// secrets.encryption_keys (the last step of a key rotation; also seals
    /// secrets stored before encryption was turned on). Prints the counts.
    Reseal,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("hookfleet: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    hookfleet_core::sealing::install(settings.encryption_keys.clone());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hookfleet: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookfleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Libraries that log what they send at debug or trace level: the database
/// client logs statement parameters (signing secrets among them), the broker
/// client message frames. Whatever `RUST_LOG` or `log.level` ask, nothing
/// below `info` from them reaches a log.
const CAPPED_AT_INFO: &[&str] = &[
    "tokio_postgres",
    "postgres_protocol",
    "postgres_types",
    "deadpool",
    "deadpool_postgres",
    "lapin",
    "amq_protocol",
    "amq_protocol_types",
    "refinery",
    "refinery_core",
];

/// The cap of [`CAPPED_AT_INFO`], applied on top of the level filter (a
/// directive of `RUST_LOG` cannot lift it).
fn library_cap() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    CAPPED_AT_INFO
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, lib| {
            t.with_target(*lib, LevelFilter::INFO)
        })
}

fn init_tracing(settings: &Settings) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Json => b.json().finish().with(library_cap()).init(),
        LogFormat::Text => b.finish().with(library_cap()).init(),
    }
}

fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Shutting down: finishing in-flight work.");
        t.cancel();
    });
    token
}

async fn run_roles(settings: Arc<Settings>, roles: Roles, api: bool) -> anyhow::Result<()> {
    if api && settings.api.admin_key.is_none() {
        anyhow::bail!("api.admin_key (env HOOKFLEET__API__ADMIN_KEY) must be set: the API refuses to start without one");
    }
    let ops = tokio::net::TcpListener::bind(&settings.metrics_listen)
        .await
        .with_context(|| format!("binding metrics.listen {}", settings.metrics_listen))?;
    tracing::info!(metrics = %settings.metrics_listen, "Serving /metrics, /healthz, /readyz.");
    let api = if api {
        Some(
            tokio::net::TcpListener::bind(&settings.api.listen)
                .await
                .with_context(|| format!("binding api.listen {}", settings.api.listen))?,
        )
    } else {
        None
    };
    hookfleet::app::run_with_api(settings, roles, ops, api, shutdown_on_signal()).await
}

async fn dispatch(cmd: Command, settings: Arc<Settings>) -> anyhow::Result<()> {
    match cmd {
        Command::Migrate => {
            let n = hookfleet_store::migrate::run(&settings.database.url).await?;
            out!("migrations applied: {n}");
        }
        Command::Router => run_roles(settings, Roles::ROUTER, false).await?,
        Command::Worker => run_roles(settings, Roles::WORKER, false).await?,
        Command::Api => run_roles(settings, Roles::NONE, true).await?,
        Command::All => {
            hookfleet_store::migrate::run(&settings.database.url).await?;
            let api = settings.api.admin_key.is_some();
            if !api {
                tracing::warn!("api.admin_key is not set: running without the REST API.");
            }
            run_roles(settings, Roles::ALL, api).await?
        }
        Command::Tenant(TenantCmd::PortalLink { id, ttl }) => {
            let admin_key = settings.api.admin_key.as_ref().ok_or_else(|| {
                anyhow::anyhow!("api.admin_key (env HOOKFLEET__API__ADMIN_KEY) must be set: portal links are signed with it, and the API that serves the portal checks them with it")
            })?;
            let ttl = ttl
                .map_or(settings.api.portal_link_ttl, Into::into)
                .as_secs() as i64;
            anyhow::ensure!(
                (60..=7 * 86_400).contains(&ttl),
                "--ttl must be from 1m to 7d"
            );
            let base = settings
                .api
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", settings.api.listen));
            let pool = hookfleet_store::pool::connect(&settings.database.url, 2)?;
            let signer = hookfleet_api::portal::token::Signer::new(admin_key.expose());
            let link =
                hookfleet_api::tenants::issue_portal_link(&pool, &signer, &id, None, ttl, &base)
                    .await?;
            out!("{}", serde_json::to_string_pretty(&link)?);
        }
        Command::Tenant(TenantCmd::Create { id }) => {
            let pool = hookfleet_store::pool::connect(&settings.database.url, 2)?;
            let t = hookfleet_api::tenants::create_tenant(&pool, &id).await?;
            out!("{}", serde_json::to_string_pretty(&t)?);
        }
        Command::EventType(cmd) => {
            let pool = hookfleet_store::pool::connect(&settings.database.url, 2)?;
            let ctx = hookfleet_api::service::Ctx {
                settings: &settings,
                pool: &pool,
                publisher: None,
            };
            match cmd {
                EventTypeCmd::List => {
                    let c = pool.get().await?;
                    for r in c
                        .query(
                            "SELECT name, deprecated, description FROM event_types ORDER BY name",
                            &[],
                        )
                        .await?
                    {
                        let (name, deprecated, desc): (String, bool, String) =
                            (r.get(0), r.get(1), r.get(2));
                        out!(
                            "{name}{}  {desc}",
                            if deprecated { " (deprecated)" } else { "" }
                        );
                    }
                }
                EventTypeCmd::Add {
                    name,
                    description,
                    schema,
                    example,
                    retry_schedule,
                } => {
                    let b = hookfleet_api::events::NewEventType {
                        name,
                        description,
                        schema: json_arg("--schema", schema)?,
                        example: json_arg("--example", example)?,
                        retry_schedule,
                    };
                    let t = hookfleet_api::events::add_event_type(ctx, b).await?;
                    out!("{}", serde_json::to_string_pretty(&t)?);
                }
                EventTypeCmd::Deprecate { name } => {
                    let p = hookfleet_api::events::EventTypePatch {
                        deprecated: Some(true),
                        ..Default::default()
                    };
                    hookfleet_api::events::update_event_type(ctx, &name, p).await?;
                    out!("{name} deprecated");
                }
            }
        }
        Command::Secrets(SecretsCmd::Reseal) => {
            let Some(keys) = &settings.encryption_keys else {
                anyhow::bail!("secrets.encryption_keys is not set (HOOKFLEET__SECRETS__ENCRYPTION_KEYS): nothing to seal with");
            };
            let pool = hookfleet_store::pool::connect(&settings.database.url, 2)?;
            let r = hookfleet_store::endpoints::reseal_all(&pool).await?;
            out!(
                "{} secret(s) resealed under key `{}`, {} already under it, {} could not be opened",
                r.resealed,
                keys.current(),
                r.current,
                r.failed
            );
            if r.failed > 0 {
                anyhow::bail!("{} secret(s) are sealed with a key secrets.encryption_keys does not list; add it back, then reseal again", r.failed);
            }
        }
        Command::Key(cmd) => {
            let pool = hookfleet_store::pool::connect(&settings.database.url, 2)?;
            match cmd {
                KeyCmd::Create { tenant } => {
                    let k = hookfleet_api::tenants::create_api_key(&pool, &tenant).await?;
                    out!("{}", serde_json::to_string_pretty(&k)?);
                }
                KeyCmd::Revoke { key_id } => {
                    hookfleet_api::tenants::revoke_api_key(&pool, &key_id).await?;
                    out!("{key_id} revoked");
                }
            }
        }
        Command::Endpoint(cmd) => endpoint(cmd, &settings).await?,
        Command::Dlq(cmd) => dlq(cmd, &settings).await?,
        Command::Listen {
            port,
            secret,
            fail,
            status,
        } => {
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("binding 127.0.0.1:{port}"))?;
            eprintln!("listening on http://127.0.0.1:{port}/");
            hookfleet::listen::serve(
                l,
                hookfleet::listen::ListenOptions {
                    secret,
                    fail,
                    status,
                },
                shutdown_on_signal(),
            )
            .await?;
        }
        Command::OutboxRelay {
            database_url,
            batch,
        } => {
            let batch = batch.clamp(1, 10_000);
            hookfleet_core::metrics::init(&["outbox-relay"]);
            let ops = tokio::net::TcpListener::bind(&settings.metrics_listen)
                .await
                .with_context(|| format!("binding metrics.listen {}", settings.metrics_listen))?;
            let shutdown = shutdown_on_signal();
            let ops = tokio::spawn(hookfleet::ops::serve(
                ops,
                hookfleet::ops::Ops {
                    roles: vec!["outbox-relay"],
                    ..Default::default()
                },
                shutdown.clone(),
            ));
            hookfleet_emit::outbox::relay(
                &database_url,
                &settings.amqp.url,
                batch,
                shutdown.clone(),
            )
            .await?;
            shutdown.cancel();
            let _ = ops.await;
        }
        Command::Emit {
            event_type,
            data,
            file,
            tenant,
        } => {
            let events = match (file, data) {
                (Some(path), _) => {
                    let text = if path.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
                    } else {
                        std::fs::read_to_string(&path)
                            .with_context(|| format!("--file {}", path.display()))?
                    };
                    hookfleet::emit::from_lines(&text, event_type.as_deref(), tenant.as_deref())?
                }
                (None, Some(data)) => {
                    let data: serde_json::Value =
                        serde_json::from_str(&data).context("--data is not valid JSON")?;
                    let event_type = event_type.context("TYPE is required with --data")?;
                    vec![hookfleet::emit::envelope(
                        &event_type,
                        data,
                        tenant.as_deref(),
                    )?]
                }
                (None, None) => anyhow::bail!("give TYPE --data '{{…}}', or --file"),
            };
            for chunk in events.chunks(1000) {
                hookfleet::emit::publish(&settings.amqp.url, chunk).await?;
                for ev in chunk {
                    out!("{}", ev.2);
                }
            }
        }
        Command::Verify {
            secret,
            id,
            timestamp,
            signature,
            tolerance,
            body,
        } => {
            use std::io::Read as _;
            let mut bytes = Vec::new();
            match body {
                Some(p) => {
                    bytes = std::fs::read(&p).with_context(|| format!("--body {}", p.display()))?
                }
                None => {
                    std::io::stdin()
                        .read_to_end(&mut bytes)
                        .context("reading the body from stdin")?;
                }
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let c = hookfleet::verify::Captured {
                id: &id,
                timestamp: &timestamp,
                signature: &signature,
                body: &bytes,
            };
            match hookfleet::verify::check(&secret, &c, now, tolerance) {
                Ok(v) => out!(
                    "signature OK: entry {} of {} matches; signed {} s ago (tolerance {tolerance} s)",
                    v.matched,
                    v.entries,
                    v.age_secs
                ),
                Err(e) => anyhow::bail!("signature FAILED: {e}"),
            }
        }
    }
    Ok(())
}

async fn dlq(cmd: DlqCmd, settings: &Settings) -> anyhow::Result<()> {
    use hookfleet_store::dead_letters::{self as store, Scope};
    let pool = hookfleet_store::pool::connect(&settings.database.url, 2)?;
    let actor = |by: Option<String>| {
        by.unwrap_or_else(|| {
            format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            )
        })
    };
    let checked = |f: &store::Filter| f.validate().map_err(|e| anyhow::anyhow!("--{e}"));
    match cmd {
        DlqCmd::List { filter, json } => {
            let (filter, limit) = filter.split();
            checked(&filter)?;
            let page = store::list(&pool, Scope::All, &filter, None, limit.unwrap_or(100)).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print_dead_letters(&page);
            }
        }
        DlqCmd::Show { delivery_id } => {
            let dl = store::show(&pool, Scope::All, &delivery_id)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!("no dead letter is kept for delivery {delivery_id}")
                })?;
            out!("{}", serde_json::to_string_pretty(&dl)?);
        }
        DlqCmd::Replay {
            filter,
            rate,
            dry_run,
            by,
        } => {
            let (filter, limit) = filter.split();
            checked(&filter)?;
            hookfleet_api::dlq::check_rate(rate).map_err(|e| anyhow::anyhow!("--{e}"))?;
            if dry_run {
                let n = store::count(&pool, Scope::All, &filter).await?;
                let matched = limit.map_or(n, |l| n.min(l));
                out!(
                    "{}",
                    serde_json::json!({"dry_run": true, "matched": matched})
                );
                return Ok(());
            }
            let req = hookfleet_api::dlq::ReplayRequest {
                filter,
                rate,
                limit,
                actor: actor(by),
            };
            let (replay, job) =
                hookfleet_api::dlq::prepare_replay(&settings.amqp.url, &pool, Scope::All, req)
                    .await?;
            eprintln!("replay {} started", replay.id);
            job.await;
            let done = store::get_replay(&pool, Scope::All, &replay.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the replay's record is gone"))?;
            out!("{}", serde_json::to_string_pretty(&done)?);
            if done.status != "done" {
                anyhow::bail!(
                    "the replay ended {}: {}",
                    done.status,
                    done.error.unwrap_or_default()
                );
            }
        }
        DlqCmd::Purge {
            filter,
            all,
            dry_run,
            by,
        } => {
            let (filter, limit) = filter.split();
            if !all && filter.is_empty() && limit.is_none() {
                anyhow::bail!("give a filter (--endpoint, --tenant, --type, --since, --until, --error, --limit), or --all to purge every dead letter");
            }
            checked(&filter)?;
            let (matched, purged) = if dry_run {
                let n = store::count(&pool, Scope::All, &filter).await?;
                (limit.map_or(n, |l| n.min(l)), 0)
            } else {
                let n = store::purge(&pool, Scope::All, &filter, limit, &actor(by)).await? as i64;
                (n, n)
            };
            out!(
                "{}",
                serde_json::json!({"dry_run": dry_run, "matched": matched, "purged": purged})
            );
        }
    }
    Ok(())
}

fn print_dead_letters(page: &hookfleet_store::dead_letters::Page) {
    out!(
        "{:<30} {:<30} {:<12} {:<22} {:>8}  {:<25} LAST ERROR",
        "DELIVERY",
        "ENDPOINT",
        "TENANT",
        "TYPE",
        "ATTEMPTS",
        "DEAD AT"
    );
    for d in &page.data {
        out!(
            "{:<30} {:<30} {:<12} {:<22} {:>8}  {:<25} {}",
            d.delivery_id,
            d.endpoint_id,
            d.tenant_id.as_deref().unwrap_or("-"),
            d.event_type,
            d.attempts,
            d.dead_at,
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

async fn endpoint(cmd: EndpointCmd, settings: &Settings) -> anyhow::Result<()> {
    let pool = hookfleet_store::pool::connect(&settings.database.url, 2)?;
    match cmd {
        EndpointCmd::Add {
            url,
            events,
            tenant,
            description,
            secret,
            paused,
            rate_limit,
            max_in_flight,
            retry_schedule,
            ordering,
        } => {
            let input = EndpointInput {
                url,
                events,
                tenant_id: tenant,
                description,
                secret,
                is_active: !paused,
                rate_limit,
                max_in_flight,
                retry_schedule,
                ordered: ordering == "fifo",
                ..Default::default()
            };
            let (ep, secret) = admin::create_endpoint(settings, &pool, input).await?;
            let mut v = serde_json::to_value(&ep)?;
            v["secret"] = serde_json::Value::String(secret);
            out!("{}", serde_json::to_string_pretty(&v)?);
        }
        EndpointCmd::List { tenant } => {
            let list = hookfleet_store::endpoints::list(&pool, tenant.as_deref().map(Some)).await?;
            out!("{}", serde_json::to_string_pretty(&list)?);
        }
        EndpointCmd::Disable { id, reason } => {
            anyhow::ensure!(
                hookfleet_store::endpoints::set_active(&pool, &id, false, Some(&reason)).await?,
                "no endpoint with id {id}"
            );
            out!("{id} paused");
        }
        EndpointCmd::Enable { id } => {
            anyhow::ensure!(
                hookfleet_store::endpoints::set_active(&pool, &id, true, None).await?,
                "no endpoint with id {id}"
            );
            out!("{id} active");
        }
        EndpointCmd::Delete { id } => {
            let moved = admin::delete_endpoint(settings, &pool, &id).await?;
            out!("{id} deleted; {moved} undelivered message(s) moved to hookfleet.dead");
        }
        EndpointCmd::RotateSecret { id, grace } => {
            let grace = humantime::parse_duration(&grace)
                .ok()
                .filter(|g| *g <= std::time::Duration::from_secs(7 * 86_400))
                .with_context(|| {
                    format!("--grace `{grace}`: a duration of at most 7d, such as 24h")
                })?;
            let ep = hookfleet_store::endpoints::get(&pool, &id)
                .await?
                .with_context(|| format!("no endpoint with id {id}"))?;
            let new = hookfleet_core::Secret::generate();
            let expires = time::OffsetDateTime::now_utc() + grace;
            // The same store call as POST /api/v1/webhooks/{id}/secret/rotate.
            hookfleet_store::endpoints::rotate_secret(
                &pool,
                &id,
                ep.tenant_id.as_deref(),
                new.expose(),
                expires,
            )
            .await?;
            out!(
                "{}",
                serde_json::json!({
                    "id": id,
                    "secret": new.expose(),
                    "previous_expire_at": expires.format(&time::format_description::well_known::Rfc3339)?,
                })
            );
        }
    }
    Ok(())
}
