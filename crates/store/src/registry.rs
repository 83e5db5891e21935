//! The in-memory registry router and workers route from: every endpoint and the
//! event type catalog, swapped as a whole [`Snapshot`] on each reload. Reloads
//! happen on `NOTIFY hookfleet_config` (sent by triggers on `endpoints` and
//! `event_types`) and every `registry.resync_interval`, and after the LISTEN
//! connection is re-established (notifications may have been missed meanwhile).
use crate::endpoints::{self, Endpoint};
use anyhow::Context as _;
use deadpool_postgres::Pool;
use futures::StreamExt as _;
use hookfleet_core::sealing::Keyring;
use hookfleet_core::signing::Secret;
use hookfleet_core::{Circuit, Ordering};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// An endpoint as routing and delivery need it.
#[derive(Debug)]
pub struct RegEndpoint {
    pub id: String,
    pub tenant_id: Option<String>,
    pub url: String,
    pub event_types: HashSet<String>,
    pub wildcard: bool,
    pub is_active: bool,
    /// Signing secrets with their expiry; see [`RegEndpoint::signing_secrets`].
    pub secrets: Vec<(Secret, Option<OffsetDateTime>)>,
    pub headers: Vec<(String, String)>,
    /// Circuit breaker state (`endpoint_health`), shared by every worker.
    pub circuit: Circuit,
    pub next_probe_at: Option<OffsetDateTime>,
    pub consecutive_failures: i32,
    /// Deliveries per second, all workers together.
    pub rate_limit: Option<u32>,
    /// Concurrent deliveries, all workers together.
    pub max_in_flight: Option<u32>,
    /// The endpoint's own retry schedule, overriding its event type's and the default.
    pub retry: Option<hookfleet_core::retry::RetrySchedule>,
    /// FIFO: routed by the ordered router, delivered one at a time in order.
    pub ordering: Ordering,
}

impl RegEndpoint {
    fn from_endpoint(e: Endpoint, keys: Option<&Keyring>) -> Self {
        let secrets = e
            .secrets(keys)
            .iter()
            .filter_map(|s| match Secret::parse(&s.secret) {
                Ok(secret) => Some((secret, s.expires_at)),
                Err(err) => {
                    tracing::error!(endpoint_id = %e.id, error = %err, "Ignoring an unusable stored secret.");
                    None
                }
            })
            .collect();
        let retry = e.retry_schedule.as_deref().and_then(|s| {
            hookfleet_core::retry::RetrySchedule::parse(s)
                .inspect_err(|err| tracing::error!(endpoint_id = %e.id, error = %err, "Ignoring an unusable retry schedule."))
                .ok()
        });
        Self {
            wildcard: e.event_types.iter().any(|t| t == "*"),
            event_types: e.event_types.into_iter().collect(),
            id: e.id,
            tenant_id: e.tenant_id,
            url: e.url,
            is_active: e.is_active,
            secrets,
            headers: e.headers.into_iter().collect(),
            circuit: e.circuit,
            next_probe_at: e.next_probe_at,
            consecutive_failures: e.consecutive_failures,
            rate_limit: e.rate_limit.and_then(|r| u32::try_from(r).ok()),
            max_in_flight: e.max_in_flight.and_then(|m| u32::try_from(m).ok()),
            ordering: e.ordering,
            retry,
        }
    }

    /// Active with a closed circuit: workers consume its queue. An ordered
    /// endpoint is consumed whenever it is active: its single consumer retries
    /// the head of its queue in place, which already holds back a failing
    /// endpoint, and no probe may take a message out of order.
    pub fn consumable(&self) -> bool {
        self.is_active && (self.ordered() || self.circuit == Circuit::Closed)
    }

    /// FIFO: routed by the ordered router, delivered one at a time in order.
    pub fn ordered(&self) -> bool {
        self.ordering == Ordering::Fifo
    }

    /// True when this endpoint subscribes to `event_type`. `*` takes every type
    /// but the operational ones, which are subscribed to by name.
    pub fn subscribes(&self, event_type: &str) -> bool {
        (self.wildcard && !hookfleet_core::operational::is_operational(event_type))
            || self.event_types.contains(event_type)
    }

    /// The secrets that sign now: every one not yet expired.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> impl Iterator<Item = &Secret> {
        self.secrets
            .iter()
            .filter(move |(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(s, _)| s)
    }
}

/// One consistent view of the configuration.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub endpoints: HashMap<String, Arc<RegEndpoint>>,
    /// Active endpoints by tenant (`None` = tenant-less scope), for routing.
    by_tenant: HashMap<Option<String>, Vec<Arc<RegEndpoint>>>,
    /// The event type catalog with compiled schemas.
    pub catalog: Arc<crate::catalog::Catalog>,
}

impl Snapshot {
    /// The snapshot of `all` endpoints, their secrets opened with `keys`.
    pub fn new(
        all: Vec<Endpoint>,
        catalog: Arc<crate::catalog::Catalog>,
        keys: Option<&Keyring>,
    ) -> Self {
        let mut endpoints = HashMap::new();
        let mut by_tenant: HashMap<Option<String>, Vec<Arc<RegEndpoint>>> = HashMap::new();
        for e in all {
            let e = Arc::new(RegEndpoint::from_endpoint(e, keys));
            if e.is_active {
                by_tenant
                    .entry(e.tenant_id.clone())
                    .or_default()
                    .push(e.clone());
            }
            endpoints.insert(e.id.clone(), e);
        }
        Self {
            endpoints,
            by_tenant,
            catalog,
        }
    }

    /// Active endpoints of `tenant` subscribed to `event_type` (docs/ARCHITECTURE.md §20.1
    /// tenancy rule: a tenant's events go only to its endpoints, tenant-less events
    /// only to tenant-less endpoints).
    pub fn matching<'a>(
        &'a self,
        tenant: Option<&str>,
        event_type: &'a str,
    ) -> impl Iterator<Item = &'a Arc<RegEndpoint>> + 'a {
        self.by_tenant
            .get(&tenant.map(str::to_owned))
            .into_iter()
            .flatten()
            .filter(move |e| e.subscribes(event_type))
    }
}

/// The shared, swappable registry.
#[derive(Debug)]
pub struct Registry {
    current: RwLock<Arc<Snapshot>>,
    version: watch::Sender<u64>,
    /// Opens the endpoints' signing secrets (`secrets.encryption_keys`).
    keys: Option<Keyring>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Registry {
    /// An empty registry that opens signing secrets with `keys`.
    pub fn new(keys: Option<Keyring>) -> Self {
        Self {
            current: RwLock::new(Arc::new(Snapshot::default())),
            version: watch::channel(0).0,
            keys,
        }
    }

    /// The current snapshot (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A receiver that changes on every reload; version 0 means never loaded.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Waits for the first load (routing from an empty registry would refuse
    /// every event type); `false` when `shutdown` fired first.
    pub async fn wait_loaded(&self, shutdown: &CancellationToken) -> bool {
        let mut rx = self.subscribe();
        tokio::select! {
            r = rx.wait_for(|v| *v > 0) => r.is_ok(),
            _ = shutdown.cancelled() => false,
        }
    }

    fn install(&self, snap: Snapshot) {
        let active = snap.endpoints.values().filter(|e| e.is_active).count() as i64;
        hookfleet_core::metrics::ENDPOINTS
            .with_label_values(&["active"])
            .set(active);
        hookfleet_core::metrics::ENDPOINTS
            .with_label_values(&["paused"])
            .set(snap.endpoints.len() as i64 - active);
        hookfleet_core::metrics::ENDPOINTS
            .with_label_values(&["circuit_open"])
            .set(
                snap.endpoints
                    .values()
                    .filter(|e| e.is_active && e.circuit != Circuit::Closed)
                    .count() as i64,
            );
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        self.version.send_modify(|v| *v += 1);
    }

    /// Loads everything from Postgres and installs it.
    pub async fn reload(&self, pool: &Pool) -> anyhow::Result<()> {
        let all = endpoints::list(pool, None).await?;
        let catalog = Arc::new(crate::catalog::Catalog::load(pool).await?);
        self.install(Snapshot::new(all, catalog, self.keys.as_ref()));
        Ok(())
    }

    /// Keeps the registry fresh until `shutdown`: reloads on notification, on the
    /// resync timer, and after LISTEN reconnects. Errors are logged and retried.
    pub async fn run(
        self: Arc<Self>,
        pool: Pool,
        db_url: String,
        resync: Duration,
        shutdown: CancellationToken,
    ) {
        let (tx, mut rx) = mpsc::channel::<()>(16);
        tokio::spawn(listen(db_url, tx, shutdown.clone()));
        let mut tick = tokio::time::interval(resync);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                Some(()) = rx.recv() => { while rx.try_recv().is_ok() {} }
            }
            if let Err(e) = self.reload(&pool).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "Could not reload the endpoint registry; retrying."
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = rx.try_recv();
                tick.reset_immediately();
            }
        }
    }
}

/// LISTENs on `hookfleet_config`, sending a wake-up per notification and one after
/// every (re)connection.
async fn listen(db_url: String, tx: mpsc::Sender<()>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        match listen_once(&db_url, &tx, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "LISTEN connection lost; reconnecting."
                );
                tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(backoff) => {} }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn listen_once(
    db_url: &str,
    tx: &mpsc::Sender<()>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (client, mut conn) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(db_url, tokio_postgres::NoTls),
    )
    .await
    .context("timed out connecting for LISTEN")??;
    let (ntx, mut nrx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                    if ntx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute("LISTEN hookfleet_config")
        .await
        .context("LISTEN hookfleet_config")?;
    let _ = tx.try_send(());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => { driver.abort(); return Ok(()) }
            n = nrx.recv() => match n {
                Some(()) => { let _ = tx.try_send(()); }
                None => {
                    let r = driver.await;
                    return match r {
                        Ok(Err(e)) => Err(e.into()),
                        _ => Err(anyhow::anyhow!("LISTEN connection closed")),
                    };
                }
            }
        }
    }
}
