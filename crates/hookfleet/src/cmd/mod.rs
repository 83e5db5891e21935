//! The subcommands, one module each (as mini-redis's `cmd/`): each module holds
//! its clap arguments and a `run` that carries the command out. Adding a command
//! touches its module and one arm of [`run`].
//!
//! - [`serve`]: the long-running roles (`migrate`, `router`, `worker`, `api`,
//!   `all`, `outbox-relay`);
//! - [`tenant`], [`key`], [`event_type`], [`endpoint`], [`secrets`], [`dlq`]:
//!   management, straight against PostgreSQL (and RabbitMQ where it must);
//! - [`emit`], [`listen`], [`verify`]: development tools. `listen` and `verify`
//!   load no configuration: they touch neither the database nor the broker.
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hookfleet_core::Settings;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

mod dlq;
mod emit;
mod endpoint;
mod event_type;
mod key;
mod listen;
mod secrets;
mod serve;
mod tenant;
mod verify;

#[derive(Parser)]
#[command(
    name = "hookfleet",
    version,
    about = "Webhook delivery fleet: RabbitMQ in, signed HTTP POSTs out.",
    after_long_help = crate::exit::HELP
)]
pub struct Cli {
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
    Tenant(tenant::TenantCmd),
    /// Manage the event type catalog.
    #[command(subcommand, name = "event-type")]
    EventType(event_type::EventTypeCmd),
    /// Manage tenants' API keys.
    #[command(subcommand)]
    Key(key::KeyCmd),
    /// Signing secrets at rest (secrets.encryption_keys).
    #[command(subcommand)]
    Secrets(secrets::SecretsCmd),
    /// Manage endpoints (webhooks).
    #[command(subcommand, visible_alias = "webhook")]
    Endpoint(endpoint::EndpointCmd),
    /// Dead letters (hookfleet.dead): list, show, replay, purge.
    #[command(subcommand)]
    Dlq(dlq::DlqCmd),
    /// A local receiver that verifies and prints deliveries (needs no configuration).
    Listen(listen::Listen),
    /// Publish the rows of a producer's transactional outbox (hookfleet_outbox), in
    /// order, with confirms; safe to run as several replicas.
    OutboxRelay(serve::OutboxRelay),
    /// Publish events to hookfleet.events with publisher confirms: one (TYPE
    /// --data) or many (--file, one JSON object per line: {"type", "data",
    /// "tenant_id"}). Prints each event's id.
    Emit(emit::Emit),
    /// Check a captured delivery's signature (body on stdin) and say why it fails:
    /// wrong secret, body changed, timestamp too old. Exits 0 when it verifies
    /// (needs no configuration).
    Verify(verify::Verify),
    /// Print the API's OpenAPI 3.1 document, as `GET /api/v1/openapi.json`
    /// serves it. Without --webhooks it needs no configuration and leaves out
    /// the webhooks (one per event type of the catalog, in the database).
    Openapi {
        /// Add the webhooks of the configured database's catalog.
        #[arg(long)]
        webhooks: bool,
    },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let cmd = match cli.command {
        // No configuration: they touch neither the database nor the broker.
        Command::Listen(args) => {
            crate::logging::init("info", hookfleet_core::config::LogFormat::Text, None);
            return listen::run(args).await;
        }
        Command::Verify(args) => return verify::run(args),
        Command::Openapi { webhooks: false } => return print_json(hookfleet_api::docs::base()),
        cmd => cmd,
    };
    let settings = load(cli.config.as_deref())?;
    let s = &*settings;
    match cmd {
        Command::Migrate => serve::migrate(s).await,
        Command::Router => serve::roles(settings, hookfleet::Roles::ROUTER, false).await,
        Command::Worker => serve::roles(settings, hookfleet::Roles::WORKER, false).await,
        Command::Api => serve::roles(settings, hookfleet::Roles::NONE, true).await,
        Command::All => serve::all(settings).await,
        Command::OutboxRelay(args) => serve::outbox_relay(args, s).await,
        Command::Tenant(cmd) => tenant::run(cmd, s).await,
        Command::EventType(cmd) => event_type::run(cmd, s).await,
        Command::Key(cmd) => key::run(cmd, s).await,
        Command::Secrets(cmd) => secrets::run(cmd, s).await,
        Command::Endpoint(cmd) => endpoint::run(cmd, s).await,
        Command::Dlq(cmd) => dlq::run(cmd, s).await,
        Command::Emit(args) => emit::run(args, s).await,
        Command::Openapi { webhooks: true } => {
            let catalog = hookfleet_store::catalog::Catalog::load(&pool(s)?).await?;
            print_json(&hookfleet_api::docs::document(&catalog))
        }
        // Handled above, before loading the configuration.
        Command::Listen(_) | Command::Verify(_) | Command::Openapi { .. } => Ok(()),
    }
}

/// Loads the configuration and starts logging (and trace export, with
/// `telemetry.otlp_endpoint`) as it says. Its error keeps its
/// type ([`hookfleet_core::config::ConfigError`]): the process exits 78.
fn load(file: Option<&Path>) -> anyhow::Result<Arc<Settings>> {
    let settings = Settings::load(file)?;
    crate::logging::init(
        &settings.log_level,
        settings.log_format,
        Some(&settings.telemetry),
    );
    Ok(Arc::new(settings))
}

/// A small pool for one management command.
fn pool(settings: &Settings) -> anyhow::Result<hookfleet_store::Pool> {
    hookfleet_store::pool::connect(&settings.database.url, 2)
}

/// Prints `v` as pretty JSON.
fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Who a dead-letter action is recorded as: `--by`, else `cli:$USER`.
fn actor(by: Option<String>) -> String {
    by.unwrap_or_else(|| {
        format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        )
    })
}

/// A JSON argument: JSON text, or `@file`.
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

/// The variable `--secret` falls back to.
const SECRET_ENV: &str = "HOOKFLEET_SECRET";

/// A signing secret from the command line, the environment or a file. The last
/// two keep it out of `ps` and the shell history.
#[derive(clap::Args, Debug, Clone)]
struct SecretArg {
    /// The endpoint's signing secret (whsec_…; `endpoint add`: instead of a
    /// generated one). Without it: --secret-file, else the environment variable
    /// HOOKFLEET_SECRET.
    #[arg(long)]
    secret: Option<String>,
    /// A file that holds the signing secret (surrounding whitespace is ignored).
    #[arg(long, value_name = "PATH", conflicts_with = "secret")]
    secret_file: Option<PathBuf>,
}

impl SecretArg {
    /// The secret: `--secret`, else `--secret-file`, else `HOOKFLEET_SECRET`
    /// (read here rather than by clap, so that the variable may be set while
    /// `--secret-file` is given).
    fn resolve(self) -> anyhow::Result<Option<String>> {
        if let Some(secret) = self.secret {
            return Ok(Some(secret));
        }
        let Some(path) = self.secret_file else {
            return Ok(std::env::var(SECRET_ENV)
                .ok()
                .filter(|s| !s.trim().is_empty()));
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("--secret-file {}", path.display()))?;
        let secret = text.trim();
        anyhow::ensure!(
            !secret.is_empty(),
            "--secret-file {}: the file is empty",
            path.display()
        );
        Ok(Some(secret.to_owned()))
    }

    /// [`SecretArg::resolve`], for a command that cannot do without one.
    fn required(self) -> anyhow::Result<String> {
        self.resolve()?.ok_or_else(|| {
            crate::exit::Usage(
                "a signing secret is required: give --secret, HOOKFLEET_SECRET or --secret-file"
                    .into(),
            )
            .into()
        })
    }
}

/// A token cancelled on SIGINT or SIGTERM.
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
