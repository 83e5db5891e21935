//! The long-running roles: `router`, `worker`, `api`, `all`, `outbox-relay`,
//! and `migrate`, which `all` runs first.
use super::shutdown_on_signal;
use anyhow::Context as _;
use hookfleet::Roles;
use hookfleet_core::config::ConfigError;
use hookfleet_core::Settings;
use std::sync::Arc;
use tokio::net::TcpListener;

/// `outbox-relay`'s arguments.
#[derive(clap::Args)]
pub struct OutboxRelay {
    /// The producer's database, holding hookfleet_outbox.
    #[arg(long, env = "HOOKFLEET_OUTBOX_DATABASE_URL")]
    database_url: String,
    /// Rows per transaction.
    #[arg(long, default_value_t = 500)]
    batch: i64,
}

/// `migrate`: applies the migrations, creating the database if missing.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let n = hookfleet_store::migrate::run(&settings.database.url).await?;
    out!("migrations applied: {n}");
    Ok(())
}

/// `all`: migrates, then runs every role (the API when `api.admin_key` is set).
pub async fn all(settings: Arc<Settings>) -> anyhow::Result<()> {
    hookfleet_store::migrate::run(&settings.database.url).await?;
    let api = settings.api.admin_key.is_some();
    if !api {
        tracing::warn!("api.admin_key is not set: running without the REST API.");
    }
    roles(settings, Roles::ALL, api).await
}

/// Runs `roles` (and the API when `api`) until SIGINT or SIGTERM.
pub async fn roles(settings: Arc<Settings>, roles: Roles, api: bool) -> anyhow::Result<()> {
    if api && settings.api.admin_key.is_none() {
        return Err(
            ConfigError::missing("api.admin_key", "the API refuses to start without one").into(),
        );
    }
    let ops = bind_metrics(&settings).await?;
    tracing::info!(metrics = %settings.metrics_listen, "Serving /metrics, /healthz, /readyz.");
    let api = if api {
        Some(
            TcpListener::bind(&settings.api.listen)
                .await
                .with_context(|| format!("binding api.listen {}", settings.api.listen))?,
        )
    } else {
        None
    };
    hookfleet::app::run_with_api(settings, roles, ops, api, shutdown_on_signal()).await
}

async fn bind_metrics(settings: &Settings) -> anyhow::Result<TcpListener> {
    TcpListener::bind(&settings.metrics_listen)
        .await
        .with_context(|| format!("binding metrics.listen {}", settings.metrics_listen))
}

/// `outbox-relay`: publishes a producer's outbox until SIGINT or SIGTERM.
pub async fn outbox_relay(args: OutboxRelay, settings: &Settings) -> anyhow::Result<()> {
    let batch = args.batch.clamp(1, 10_000);
    hookfleet_core::metrics::init(&["outbox-relay"]);
    let ops = bind_metrics(settings).await?;
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
        &args.database_url,
        &settings.amqp.target,
        batch,
        shutdown.clone(),
    )
    .await?;
    shutdown.cancel();
    let _ = ops.await;
    Ok(())
}
