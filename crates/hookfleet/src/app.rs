//! Running roles in one process.
use anyhow::Context as _;
use hookfleet_core::Settings;
use hookfleet_store::Registry;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Which roles this process runs.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub router: bool,
    pub worker: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        router: true,
        worker: true,
    };
    pub const ROUTER: Roles = Roles {
        router: true,
        worker: false,
    };
    pub const WORKER: Roles = Roles {
        router: false,
        worker: true,
    };
    /// No delivery role (the API alone).
    pub const NONE: Roles = Roles {
        router: false,
        worker: false,
    };

    fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.router {
            v.push("router");
        }
        if self.worker {
            v.push("worker");
        }
        v
    }
}

/// Runs `roles` until `shutdown` fires, then stops them gracefully. `ops` is the
/// bound listener for `/metrics`, `/healthz`, `/readyz`.
pub async fn run(
    settings: Arc<Settings>,
    roles: Roles,
    ops: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with_api(settings, roles, ops, None, shutdown).await
}

/// [`run`], plus the REST API on `api` when given (it needs `api.admin_key`).
pub async fn run_with_api(
    settings: Arc<Settings>,
    roles: Roles,
    ops: TcpListener,
    api: Option<TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut metric_roles = roles.names();
    if api.is_some() {
        metric_roles.push("api");
    }
    hookfleet_core::metrics::init(&metric_roles);
    if settings.encryption_keys.is_none() {
        tracing::warn!("secrets.encryption_keys is not set: endpoints' signing secrets are stored in PostgreSQL as they are.");
    }
    let pool = hookfleet_store::pool::connect(&settings.database.url, settings.database.pool_size)?;
    let mut roles_set = JoinSet::new();
    // The API needs no registry: it serves (and answers 503 while Postgres or
    // RabbitMQ is away) from the start.
    if let Some(listener) = api {
        let state = hookfleet_api::state(settings.clone(), pool.clone())?;
        roles_set.spawn(hookfleet_api::serve(state, listener, shutdown.clone()));
    }
    // The registry opens the endpoints' signing secrets with the configured keys.
    // Only routers and workers read it: an API-only process does not hold a
    // copy of every endpoint (issue #16: ~1 KB per endpoint, and a full read
    // every resync).
    let registry = Arc::new(Registry::new(settings.encryption_keys.clone()));
    let delivers = roles.router || roles.worker;
    let mut tasks = JoinSet::new();
    if delivers {
        tasks.spawn(registry.clone().run(
            pool.clone(),
            settings.database.url.clone(),
            settings.resync_interval,
            shutdown.clone(),
        ));
    }
    tasks.spawn(crate::ops::serve(
        ops,
        crate::ops::Ops {
            pool: Some(pool.clone()),
            registry: delivers.then(|| registry.clone()),
            // The API is not listed: it stays ready (and answers 503 for what needs
            // the broker) while RabbitMQ is away.
            roles: roles.names(),
        },
        shutdown.clone(),
    ));
    // Routing from an empty registry would refuse every event type.
    if delivers && registry.wait_loaded(&shutdown).await {
        tracing::info!(
            endpoints = registry.snapshot().endpoints.len(),
            "Endpoint registry loaded."
        );
    }
    if !shutdown.is_cancelled() {
        spawn_roles(
            &settings,
            roles,
            &pool,
            &registry,
            &shutdown,
            &mut roles_set,
            &mut tasks,
        );
    }
    finish(roles_set, tasks, &shutdown).await
}

/// Starts the delivery roles (and, with the router, the retention sweeper).
fn spawn_roles(
    settings: &Arc<Settings>,
    roles: Roles,
    pool: &hookfleet_store::Pool,
    registry: &Arc<Registry>,
    shutdown: &CancellationToken,
    roles_set: &mut JoinSet<anyhow::Result<()>>,
    tasks: &mut JoinSet<()>,
) {
    if roles.router {
        let r = &settings.retention;
        tasks.spawn(hookfleet_store::retention::run(
            pool.clone(),
            r.max_age,
            r.interval,
            r.batch_size as i64,
            shutdown.clone(),
        ));
        roles_set.spawn(hookfleet_router::run(
            settings.clone(),
            pool.clone(),
            registry.clone(),
            shutdown.clone(),
        ));
    }
    if roles.worker {
        roles_set.spawn(hookfleet_worker::run(
            settings.clone(),
            pool.clone(),
            registry.clone(),
            shutdown.clone(),
        ));
    }
}

/// Waits for the roles; the first to fail stops the others. Then stops the
/// background tasks (registry, ops server, sweeper), for at most 10 s.
async fn finish(
    mut roles_set: JoinSet<anyhow::Result<()>>,
    tasks: JoinSet<()>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut result = Ok(());
    while let Some(r) = roles_set.join_next().await {
        match r.context("a role panicked") {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => {
                tracing::error!(error = format!("{e:#}"), "A role failed; stopping.");
                shutdown.cancel();
                result = Err(e);
            }
        }
    }
    shutdown.cancel();
    if tokio::time::timeout(std::time::Duration::from_secs(10), tasks.join_all())
        .await
        .is_err()
    {
        tracing::warn!("Registry or ops server did not stop within 10 s.");
    }
    result
}
