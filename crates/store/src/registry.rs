//! The in-memory registry router and workers route from: every endpoint and the
//! event type catalog, as an immutable [`Snapshot`] that is replaced on each
//! change (persistent maps: a new snapshot shares all but what changed).
//!
//! Changes arrive as `NOTIFY hookfleet_config` payloads that name what changed
//! (docs/ARCHITECTURE.md §21): `endpoint:<id>` reads that one row, `event_types`
//! reloads the catalog. Everything is read again every
//! `registry.resync_interval` and after the LISTEN connection is re-established
//! (notifications may have been missed meanwhile). Subscribers learn what
//! changed from [`Registry::changes`].
use crate::endpoints::{self, Endpoint};
use anyhow::Context as _;
use deadpool_postgres::Pool;
use futures::StreamExt as _;
use hookfleet_core::filter::Filter;
use hookfleet_core::sealing::Keyring;
use hookfleet_core::signing::Secret;
use hookfleet_core::{Circuit, Ordering};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// An endpoint as routing and delivery need it.
///
/// Kept compact: a registry holds one per endpoint in every process (issue
/// #16). Its id and tenant are shared with the snapshot's indexes, and its
/// event types are a sorted slice.
#[derive(Debug)]
pub struct RegEndpoint {
    pub id: Arc<str>,
    pub tenant_id: Option<Arc<str>>,
    pub url: Box<str>,
    /// Sorted, without duplicates (see [`RegEndpoint::subscribes`]).
    pub event_types: Box<[Box<str>]>,
    pub wildcard: bool,
    pub is_active: bool,
    /// Signing secrets with their expiry; see [`RegEndpoint::signing_secrets`].
    pub secrets: Box<[(Secret, Option<OffsetDateTime>)]>,
    pub headers: Box<[(String, String)]>,
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
    /// The content filter, compiled; `None`: every event of its types. See
    /// [`RegEndpoint::accepts`].
    pub filter: Option<Filter>,
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
        // Validated when it was set; one that no longer compiles (a limit
        // lowered since) lets nothing through rather than everything.
        let filter = e.filter.as_ref().map(|f| {
            Filter::compile(f).unwrap_or_else(|err| {
                tracing::error!(endpoint_id = %e.id, error = %err, "The endpoint's filter does not compile; no event passes it until it is set again.");
                Filter::nothing()
            })
        });
        let mut event_types: Vec<Box<str>> = e.event_types.into_iter().map(Into::into).collect();
        event_types.sort_unstable();
        event_types.dedup();
        Self {
            filter,
            wildcard: event_types.iter().any(|t| &**t == "*"),
            event_types: event_types.into(),
            id: e.id.into(),
            tenant_id: e.tenant_id.map(Into::into),
            url: e.url.into(),
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
            || self
                .event_types
                .binary_search_by(|t| (**t).cmp(event_type))
                .is_ok()
    }

    /// True when `ev` passes this endpoint's filter (or it has none).
    pub fn accepts(&self, ev: &hookfleet_core::filter::Event<'_>) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(ev))
    }

    /// The secrets that sign now: every one not yet expired.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> impl Iterator<Item = &Secret> {
        self.secrets
            .iter()
            .filter(move |(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(s, _)| s)
    }
}

/// Counts by state, kept as endpoints come and go (for `hookfleet_endpoints`).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    active: i64,
    paused: i64,
    circuit_open: i64,
}

/// An endpoint's tenant scope (`None` = tenant-less) and id.
type ScopedId = (Option<Arc<str>>, Arc<str>);

/// One consistent view of the configuration. Cloning is cheap (persistent
/// maps share their structure).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub endpoints: imbl::HashMap<Arc<str>, Arc<RegEndpoint>>,
    /// Active endpoints by tenant scope (`None` = tenant-less) and id, for
    /// routing: one tree for every tenant, read by range (a tree per tenant
    /// cost a B-tree node, ~2.6 KB, for every tenant with one endpoint).
    active: imbl::OrdMap<ScopedId, Arc<RegEndpoint>>,
    /// Every endpoint by its [`hookfleet_core::shard::slot`], for workers.
    by_slot: imbl::HashMap<u16, imbl::OrdSet<Arc<str>>>,
    /// Active parallel endpoints whose circuit is not closed: the prober's list.
    unhealthy: imbl::OrdSet<Arc<str>>,
    /// FIFO endpoints (active or not): the ordered router's bindings.
    ordered: imbl::OrdSet<Arc<str>>,
    /// Endpoints with a retry schedule of their own (their tiers' depths).
    custom_retry: imbl::OrdSet<Arc<str>>,
    counts: Counts,
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
        let mut snap = Self {
            catalog,
            ..Self::default()
        };
        for e in all {
            snap.insert(Arc::new(RegEndpoint::from_endpoint(e, keys)));
        }
        snap
    }

    fn count(&mut self, e: &RegEndpoint, sign: i64) {
        if e.is_active {
            self.counts.active += sign;
            if e.circuit != Circuit::Closed {
                self.counts.circuit_open += sign;
            }
        } else {
            self.counts.paused += sign;
        }
    }

    /// Adds or replaces one endpoint, in every index.
    fn insert(&mut self, e: Arc<RegEndpoint>) {
        self.remove(&e.id);
        self.count(&e, 1);
        if e.is_active {
            self.active
                .insert((e.tenant_id.clone(), e.id.clone()), e.clone());
            if !e.ordered() && e.circuit != Circuit::Closed {
                self.unhealthy.insert(e.id.clone());
            }
        }
        if e.ordered() {
            self.ordered.insert(e.id.clone());
        }
        if e.retry.is_some() {
            self.custom_retry.insert(e.id.clone());
        }
        self.by_slot
            .entry(hookfleet_core::shard::slot(&e.id))
            .or_default()
            .insert(e.id.clone());
        self.endpoints.insert(e.id.clone(), e);
    }

    /// Removes one endpoint from every index.
    fn remove(&mut self, id: &str) -> Option<Arc<RegEndpoint>> {
        let old = self.endpoints.remove(id)?;
        self.count(&old, -1);
        if old.is_active {
            self.active.remove(&(old.tenant_id.clone(), old.id.clone()));
        }
        let slot = hookfleet_core::shard::slot(id);
        if let Some(s) = self.by_slot.get_mut(&slot) {
            s.remove(id);
        }
        self.unhealthy.remove(id);
        self.ordered.remove(id);
        self.custom_retry.remove(id);
        Some(old)
    }

    /// Active endpoints of `tenant` subscribed to `event_type` (docs/ARCHITECTURE.md §20.1
    /// tenancy rule: a tenant's events go only to its endpoints, tenant-less events
    /// only to tenant-less endpoints).
    pub fn matching<'a>(
        &'a self,
        tenant: Option<&str>,
        event_type: &'a str,
    ) -> impl Iterator<Item = &'a Arc<RegEndpoint>> + 'a {
        // The lowest id: one shared empty string, not an allocation per event.
        static LOWEST: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
        let scope: Option<Arc<str>> = tenant.map(Into::into);
        self.active
            .range((scope.clone(), LOWEST.clone())..)
            .take_while(move |((t, _), _)| *t == scope)
            .map(|(_, e)| e)
            .filter(move |e| e.subscribes(event_type))
    }

    /// The ids of the endpoints in `slot` (any state).
    pub fn in_slot(&self, slot: u16) -> impl Iterator<Item = &Arc<str>> + '_ {
        self.by_slot.get(&slot).into_iter().flat_map(|s| s.iter())
    }

    /// Active parallel endpoints whose circuit is open or half-open.
    pub fn unhealthy(&self) -> impl Iterator<Item = &Arc<RegEndpoint>> + '_ {
        self.unhealthy
            .iter()
            .filter_map(|id| self.endpoints.get(&**id))
    }

    /// Endpoints with a retry schedule of their own.
    pub fn custom_retry(&self) -> impl Iterator<Item = &Arc<RegEndpoint>> + '_ {
        self.custom_retry
            .iter()
            .filter_map(|id| self.endpoints.get(&**id))
    }

    /// FIFO endpoints, active or not.
    pub fn ordered(&self) -> impl Iterator<Item = &Arc<RegEndpoint>> + '_ {
        self.ordered
            .iter()
            .filter_map(|id| self.endpoints.get(&**id))
    }
}

/// What changed in one update of the registry.
#[derive(Debug, Clone)]
pub enum Change {
    /// These endpoints were created, changed or deleted (look each up in the
    /// new snapshot: absent means deleted).
    Endpoints {
        ids: Arc<[String]>,
        /// Those of `ids` this registry did not hold before.
        created: Arc<[String]>,
    },
    /// Anything may have changed: the whole table was read again, or this
    /// subscriber fell behind. Reconcile with the snapshot.
    Everything,
}

/// Updates a subscriber may fall behind by before it gets [`Change::Everything`].
const CHANGE_BACKLOG: usize = 4096;

/// Endpoint ids read in one query when many changed at once.
const APPLY_BATCH: usize = 1000;

/// The shared, swappable registry.
#[derive(Debug)]
pub struct Registry {
    current: RwLock<Arc<Snapshot>>,
    version: watch::Sender<u64>,
    changes: broadcast::Sender<Change>,
    /// Opens the endpoints' signing secrets (`secrets.encryption_keys`).
    keys: Option<Keyring>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(None)
    }
}

/// A subscription to the registry's changes; see [`Registry::changes`].
pub struct Changes(broadcast::Receiver<Change>);

impl Changes {
    /// The next change; [`Change::Everything`] when this subscriber fell
    /// behind; `None` when the registry is gone.
    pub async fn next(&mut self) -> Option<Change> {
        match self.0.recv().await {
            Ok(c) => Some(c),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Everything),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Registry {
    /// An empty registry that opens signing secrets with `keys`.
    pub fn new(keys: Option<Keyring>) -> Self {
        Self {
            current: RwLock::new(Arc::new(Snapshot::default())),
            version: watch::channel(0).0,
            changes: broadcast::channel(CHANGE_BACKLOG).0,
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

    /// A receiver that changes on every update; version 0 means never loaded.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// What changes from now on. Take it before reading the snapshot, so no
    /// change falls between the two.
    pub fn changes(&self) -> Changes {
        Changes(self.changes.subscribe())
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

    fn install(&self, snap: Snapshot, change: Option<Change>) {
        let c = snap.counts;
        let g = &hookfleet_core::metrics::ENDPOINTS;
        g.with_label_values(&["active"]).set(c.active);
        g.with_label_values(&["paused"]).set(c.paused);
        g.with_label_values(&["circuit_open"]).set(c.circuit_open);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        self.version.send_modify(|v| *v += 1);
        if let Some(change) = change {
            let _ = self.changes.send(change);
        }
    }

    /// Loads everything from Postgres and installs it.
    pub async fn reload(&self, pool: &Pool) -> anyhow::Result<()> {
        let mut snap = Snapshot {
            catalog: Arc::new(crate::catalog::Catalog::load(pool).await?),
            ..Snapshot::default()
        };
        endpoints::for_each(pool, |e| {
            snap.insert(Arc::new(RegEndpoint::from_endpoint(e, self.keys.as_ref())))
        })
        .await?;
        self.install(snap, Some(Change::Everything));
        Ok(())
    }

    /// Reloads the event type catalog only.
    pub async fn reload_catalog(&self, pool: &Pool) -> anyhow::Result<()> {
        let catalog = Arc::new(crate::catalog::Catalog::load(pool).await?);
        let mut snap = Snapshot::clone(&self.snapshot());
        snap.catalog = catalog;
        self.install(snap, None);
        Ok(())
    }

    /// Reads the endpoints of `ids` again and installs them: what exists is
    /// added or replaced, what does not is removed. Costs what changed, not
    /// the size of the table.
    pub async fn apply(&self, pool: &Pool, ids: Vec<String>) -> anyhow::Result<()> {
        let before = self.snapshot();
        let mut snap = Snapshot::clone(&before);
        let mut created = Vec::new();
        for chunk in ids.chunks(APPLY_BATCH) {
            let rows = endpoints::get_many(pool, chunk).await?;
            for id in chunk {
                snap.remove(id);
            }
            for e in rows {
                let ep = RegEndpoint::from_endpoint(e, self.keys.as_ref());
                if !before.endpoints.contains_key(&*ep.id) {
                    created.push(ep.id.to_string());
                }
                snap.insert(Arc::new(ep));
            }
        }
        hookfleet_core::metrics::REGISTRY_UPDATES
            .with_label_values(&["endpoint"])
            .inc_by(ids.len() as u64);
        self.install(
            snap,
            Some(Change::Endpoints {
                ids: ids.into(),
                created: created.into(),
            }),
        );
        Ok(())
    }

    /// Keeps the registry fresh until `shutdown`: applies what notifications
    /// name, reloads everything on the resync timer and after LISTEN
    /// reconnects. Errors are logged and retried with a full reload.
    pub async fn run(
        self: Arc<Self>,
        pool: Pool,
        db_url: String,
        resync: Duration,
        shutdown: CancellationToken,
    ) {
        let (tx, mut rx) = mpsc::channel::<Note>(CHANGE_BACKLOG);
        tokio::spawn(listen(db_url, tx, shutdown.clone()));
        let mut tick = tokio::time::interval(resync);
        let mut full = true;
        loop {
            let mut work = Work::default();
            if full {
                work.full = true;
                full = false;
            } else {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => work.full = true,
                    Some(n) = rx.recv() => work.add(n),
                }
            }
            // Everything that arrived meanwhile goes into the same update.
            while let Ok(n) = rx.try_recv() {
                work.add(n);
            }
            if let Err(e) = self.update(&pool, work).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "Could not update the endpoint registry; reloading it."
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                full = true;
            }
        }
    }

    async fn update(&self, pool: &Pool, work: Work) -> anyhow::Result<()> {
        if work.full {
            hookfleet_core::metrics::REGISTRY_UPDATES
                .with_label_values(&["full"])
                .inc();
            return self.reload(pool).await;
        }
        if work.catalog {
            self.reload_catalog(pool).await?;
        }
        if !work.endpoints.is_empty() {
            self.apply(pool, work.endpoints.into_iter().collect())
                .await?;
        }
        Ok(())
    }
}

/// What the notifications received so far ask for.
#[derive(Default)]
struct Work {
    full: bool,
    catalog: bool,
    endpoints: HashSet<String>,
}

impl Work {
    fn add(&mut self, note: Note) {
        match note {
            Note::Connected => self.full = true,
            Note::Payload(p) => match p.strip_prefix("endpoint:") {
                Some(id) => {
                    self.endpoints.insert(id.to_owned());
                }
                None if p == "event_types" => self.catalog = true,
                // Older triggers' payloads (`endpoints`, `endpoint_health`)
                // name no row: read everything.
                None => self.full = true,
            },
        }
    }
}

/// What the LISTEN connection hands the registry.
#[derive(Debug)]
enum Note {
    /// (Re)connected: notifications may have been missed.
    Connected,
    Payload(String),
}

/// LISTENs on `hookfleet_config`, sending a wake-up per notification and one after
/// every (re)connection.
async fn listen(db_url: String, tx: mpsc::Sender<Note>, shutdown: CancellationToken) {
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
    tx: &mpsc::Sender<Note>,
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
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if ntx.send(n.payload().to_owned()).is_err() {
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
    if tx.send(Note::Connected).await.is_err() {
        return Ok(());
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => { driver.abort(); return Ok(()) }
            n = nrx.recv() => match n {
                // Waits when the registry is behind: the LISTEN connection's
                // buffer holds the rest meanwhile.
                Some(p) => if tx.send(Note::Payload(p)).await.is_err() { return Ok(()) },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: &str, tenant: Option<&str>, types: &[&str]) -> Endpoint {
        Endpoint {
            id: id.into(),
            tenant_id: tenant.map(Into::into),
            url: "http://127.0.0.1:9/".into(),
            description: String::new(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            is_active: true,
            sealed_secrets: Vec::new(),
            headers: Default::default(),
            metadata: serde_json::Value::Null,
            rate_limit: None,
            max_in_flight: None,
            retry_schedule: None,
            disabled_reason: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            circuit: Circuit::Closed,
            next_probe_at: None,
            consecutive_failures: 0,
            ordering: Ordering::Parallel,
            filter: None,
        }
    }

    /// The compact entry (sorted event types, ids shared with the indexes)
    /// routes as before: by tenant, by type, `*` for all but operational types.
    #[test]
    fn matching_keeps_tenants_apart_and_reads_the_sorted_types() {
        let snap = Snapshot::new(
            vec![
                endpoint(
                    "ep_a",
                    Some("t1"),
                    &["z.last", "a.first", "m.mid", "a.first"],
                ),
                endpoint("ep_b", Some("t1"), &["*"]),
                endpoint("ep_c", Some("t2"), &["m.mid"]),
                endpoint("ep_d", None, &["m.mid"]),
                endpoint("ep_e", Some("t10"), &["m.mid"]),
            ],
            Arc::default(),
            None,
        );
        let ids = |tenant, ty| -> Vec<String> {
            snap.matching(tenant, ty)
                .map(|e| e.id.to_string())
                .collect()
        };
        assert_eq!(snap.endpoints["ep_a"].event_types.len(), 3);
        assert_eq!(ids(Some("t1"), "m.mid"), ["ep_a", "ep_b"]);
        assert_eq!(ids(Some("t1"), "a.first"), ["ep_a", "ep_b"]);
        assert_eq!(ids(Some("t1"), "z.last"), ["ep_a", "ep_b"]);
        assert_eq!(ids(Some("t1"), "b.other"), ["ep_b"]);
        assert_eq!(ids(Some("t1"), "endpoint.disabled"), Vec::<String>::new());
        assert_eq!(ids(Some("t2"), "m.mid"), ["ep_c"]);
        assert_eq!(ids(Some("t10"), "m.mid"), ["ep_e"]);
        assert_eq!(ids(None, "m.mid"), ["ep_d"]);
        assert_eq!(ids(Some("t3"), "m.mid"), Vec::<String>::new());
        let slot = hookfleet_core::shard::slot("ep_c");
        assert!(snap.in_slot(slot).any(|id| &**id == "ep_c"));
    }
}
