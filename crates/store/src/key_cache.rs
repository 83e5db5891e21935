//! Tenant API keys in memory: an API process's copy of every live key
//! (`api_keys` rows with `revoked_at IS NULL`, by the SHA-256 of the key), so
//! a request's key costs a hash and a map lookup, not a PostgreSQL round trip
//! (docs/ARCHITECTURE.md §11).
//!
//! The copy is kept true by `NOTIFY hookfleet_keys`, which V12's trigger sends
//! with the hash of every key inserted, updated or deleted (a deleted tenant's
//! keys go by cascade and are notified too), on a LISTEN connection of its own:
//! - on each (re)connection: LISTEN, then load every live key, then apply what
//!   was notified meanwhile; only then is the copy used;
//! - on each notification: drop the hash at once, re-read its row (a new key
//!   comes back in), and acknowledge on `hookfleet_keys_ack`, which
//!   [`revoke`] waits for: a revocation returns once every API process's copy
//!   has dropped the key;
//! - when the connection drops, or does not answer a ping within
//!   [`PING_TIMEOUT`], the copy is cleared and not used until it is loaded
//!   again; lookups go to PostgreSQL meanwhile, at most [`FALLBACK_QUERIES`]
//!   at a time.
//!
//! A key missing from the copy may be one another process created a moment
//! ago, its notification still on the way. Such a lookup asks for a *sync*: a
//! `SELECT 1` on the LISTEN connection, which PostgreSQL answers only after
//! sending every notification committed before it. Every lookup waiting shares
//! the next sync, and syncs run one at a time at most every [`SYNC_SPACING`].
//! So a client spraying random keys costs PostgreSQL at most ~1,000 `SELECT 1`
//! a second whatever its rate, never a query per key, and the copy holds only
//! live keys: there are no negative entries for it to grow (a random key never
//! repeats, so caching misses would only fill memory).
use crate::tenants::ApiKey;
use anyhow::Context as _;
use deadpool_postgres::Pool;
use futures::StreamExt as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// The channel V12's trigger notifies, with a key hash (`*` after a TRUNCATE).
pub const CHANNEL: &str = "hookfleet_keys";
/// The channel copies acknowledge on, with the hash they applied.
pub const ACK_CHANNEL: &str = "hookfleet_keys_ack";
/// The `application_name` of a copy's LISTEN connection: how [`revoke`] finds
/// whose acknowledgement to wait for.
pub const APP_NAME: &str = "hookfleet key cache";
/// Lookups that go to PostgreSQL at once while the copy is not in use.
pub const FALLBACK_QUERIES: usize = 4;
/// The least time between two syncs.
pub const SYNC_SPACING: Duration = Duration::from_millis(1);
/// How long a lookup waits for a sync before asking PostgreSQL itself.
const SYNC_WAIT: Duration = Duration::from_secs(2);
/// A LISTEN connection idle this long is pinged.
const PING_EVERY: Duration = Duration::from_secs(10);
/// A query on the LISTEN connection (ping, sync, load) must answer within this.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`revoke`] waits for the copies' acknowledgements.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// SHA-256 of a key.
type Hash = [u8; 32];

fn hash(key: &str) -> Hash {
    Sha256::digest(key.as_bytes()).into()
}

fn to_hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Hash> {
    if s.len() != 64 {
        return None;
    }
    let mut h = [0u8; 32];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(h)
}

#[derive(Default)]
struct Copy {
    /// Loaded and kept by a LISTEN connection that is up: the only state in
    /// which `keys` is used.
    live: bool,
    keys: HashMap<Hash, ApiKey>,
}

/// The API process's copy of the live keys; see the module doc.
pub struct KeyCache {
    copy: RwLock<Copy>,
    /// Syncs asked for; `synced` is the last one answered (u64::MAX while the
    /// copy is not in use, so that nobody waits for a sync).
    asked: AtomicU64,
    synced: watch::Sender<u64>,
    wake: Notify,
    fallback: Semaphore,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            copy: RwLock::default(),
            asked: AtomicU64::new(0),
            synced: watch::Sender::new(u64::MAX),
            wake: Notify::new(),
            fallback: Semaphore::new(FALLBACK_QUERIES),
        }
    }
}

enum Cached {
    Hit(ApiKey),
    Miss,
    NotInUse,
}

impl KeyCache {
    /// Whether the copy is in use (loaded, and its LISTEN connection up).
    pub fn is_live(&self) -> bool {
        self.read().live
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Copy> {
        self.copy.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Copy> {
        self.copy.write().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, h: &Hash) -> Cached {
        let c = self.read();
        match (c.live, c.keys.get(h)) {
            (false, _) => Cached::NotInUse,
            (true, Some(k)) => Cached::Hit(k.clone()),
            (true, None) => Cached::Miss,
        }
    }

    /// The live key `key` (a tenant's `hfk_…`), if there is one: from the copy,
    /// or from PostgreSQL while the copy is not in use.
    pub async fn lookup(&self, pool: &Pool, key: &str) -> anyhow::Result<Option<ApiKey>> {
        let h = hash(key);
        match self.cached(&h) {
            Cached::Hit(k) => return Ok(Some(k)),
            Cached::Miss => {
                if self.sync().await {
                    match self.cached(&h) {
                        Cached::Hit(k) => return Ok(Some(k)),
                        Cached::Miss => return Ok(None),
                        Cached::NotInUse => {}
                    }
                }
            }
            Cached::NotInUse => {}
        }
        let _permit = self
            .fallback
            .acquire()
            .await
            .context("key lookups closed")?;
        crate::tenants::live_api_key(pool, &to_hex(&h)).await
    }

    /// Waits until everything notified before now is applied; `false` when the
    /// copy is not in use or the sync took too long.
    pub async fn sync(&self) -> bool {
        let mut synced = self.synced.subscribe();
        let ask = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        let r = tokio::time::timeout(SYNC_WAIT, synced.wait_for(|s| *s >= ask)).await;
        matches!(r, Ok(Ok(_))) && self.is_live()
    }

    /// Stops using the copy (its LISTEN connection is gone) and lets every
    /// waiting lookup go to PostgreSQL.
    fn go_dark(&self) {
        let mut c = self.write();
        c.live = false;
        c.keys = HashMap::new();
        drop(c);
        self.synced.send_replace(u64::MAX);
    }

    /// Keeps the copy until `shutdown`, reconnecting after 200 ms to 5 s.
    pub async fn run(self: Arc<Self>, db_url: String, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            let r = self.listen_once(&db_url, &shutdown).await;
            let was_live = self.is_live();
            self.go_dark();
            match r {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "API key cache: LISTEN connection lost; keys are looked up in PostgreSQL until it is back."
                    );
                    if was_live {
                        backoff = Duration::from_millis(200);
                    }
                    tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(backoff) => {} }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One LISTEN connection, from connect to loss (`Err`) or shutdown (`Ok`).
    async fn listen_once(&self, db_url: &str, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let (client, mut conn) = connect(db_url).await?;
        let (ntx, mut nrx) = mpsc::unbounded_channel::<String>();
        let driver = tokio::spawn(async move {
            let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(msg) = stream.next().await {
                if let tokio_postgres::AsyncMessage::Notification(n) = msg? {
                    if n.channel() == CHANNEL && ntx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
            }
            Ok::<(), tokio_postgres::Error>(())
        });
        let r = self.serve(&client, &mut nrx, shutdown).await;
        driver.abort();
        r
    }

    /// LISTEN, load, then apply notifications and answer syncs.
    async fn serve(
        &self,
        client: &tokio_postgres::Client,
        nrx: &mut mpsc::UnboundedReceiver<String>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        bounded("LISTEN", client.batch_execute(&format!("LISTEN {CHANNEL}"))).await?;
        // Named only now that it listens: a revocation that sees the name can
        // count on this connection's acknowledgement (see `revoke`).
        let set_name = format!("SET application_name = '{APP_NAME}'");
        bounded("naming the connection", client.batch_execute(&set_name)).await?;
        // Every lookup that asked before the load is answered by it.
        let asked = self.asked.load(Ordering::SeqCst);
        let keys = bounded("loading the keys", load_all(client)).await?;
        let n = keys.len();
        self.write().keys = keys;
        self.apply_pending(client, nrx).await?;
        self.write().live = true;
        self.synced.send_replace(asked);
        tracing::info!(keys = n, "API key cache loaded; listening for changes.");
        loop {
            let wait = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                p = nrx.recv() => match p {
                    Some(p) => { self.apply(client, vec![p], nrx).await?; continue }
                    None => anyhow::bail!("LISTEN connection closed"),
                },
                _ = self.wake.notified() => false,
                _ = tokio::time::sleep(PING_EVERY) => true,
            };
            // A sync (or a ping): after this round trip, every notification
            // committed before it is in `nrx`.
            let ask = self.asked.load(Ordering::SeqCst);
            bounded("a sync", client.simple_query("SELECT 1")).await?;
            self.apply_pending(client, nrx).await?;
            if !wait {
                self.synced.send_replace(ask);
                tokio::time::sleep(SYNC_SPACING).await;
            }
        }
    }

    async fn apply_pending(
        &self,
        client: &tokio_postgres::Client,
        nrx: &mut mpsc::UnboundedReceiver<String>,
    ) -> anyhow::Result<()> {
        self.apply(client, Vec::new(), nrx).await
    }

    /// Applies `first` and every notification already received: drops the
    /// hashes, re-reads their rows, then acknowledges them.
    async fn apply(
        &self,
        client: &tokio_postgres::Client,
        mut payloads: Vec<String>,
        nrx: &mut mpsc::UnboundedReceiver<String>,
    ) -> anyhow::Result<()> {
        while let Ok(p) = nrx.try_recv() {
            payloads.push(p);
        }
        if payloads.is_empty() {
            return Ok(());
        }
        if payloads.iter().any(|p| p == "*") {
            // A TRUNCATE: nothing names the keys, so reload them all.
            let keys = bounded("reloading the keys", load_all(client)).await?;
            self.write().keys = keys;
        } else {
            let hashes: Vec<Hash> = payloads.iter().filter_map(|p| from_hex(p)).collect();
            {
                let mut c = self.write();
                for h in &hashes {
                    c.keys.remove(h);
                }
            }
            let back = bounded("re-reading keys", load(client, &payloads)).await?;
            let mut c = self.write();
            c.keys.extend(back);
        }
        let ack = "SELECT pg_notify($1, p) FROM unnest($2::text[]) p";
        bounded(
            "acknowledging",
            client.execute(ack, &[&ACK_CHANNEL, &payloads]),
        )
        .await?;
        Ok(())
    }
}

/// `f`, a query on the LISTEN connection, failing after [`PING_TIMEOUT`]: a
/// connection that does not answer is as good as lost.
async fn bounded<T, E>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    anyhow::Error: From<E>,
{
    match tokio::time::timeout(PING_TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => anyhow::bail!("{what}: no answer within {PING_TIMEOUT:?}"),
    }
}

/// A connection of its own (LISTEN needs one: the pool's drop notifications).
async fn connect(
    db_url: &str,
) -> anyhow::Result<(
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
)> {
    let mut cfg: tokio_postgres::Config = db_url.parse().context("parsing database.url")?;
    // A timeout of the driver's own is a `tokio_postgres::Error`, which callers
    // tell apart as an outage (503), not a bug.
    cfg.connect_timeout(PING_TIMEOUT);
    cfg.keepalives_idle(Duration::from_secs(30));
    cfg.connect(tokio_postgres::NoTls)
        .await
        .context("connecting to Postgres")
}

fn rows_to_keys(rows: Vec<tokio_postgres::Row>) -> HashMap<Hash, ApiKey> {
    rows.into_iter()
        .filter_map(|r| {
            let h = from_hex(r.get::<_, &str>(0))?;
            Some((
                h,
                ApiKey {
                    id: r.get(1),
                    tenant_id: r.get(2),
                },
            ))
        })
        .collect()
}

/// Every live key.
async fn load_all(client: &tokio_postgres::Client) -> anyhow::Result<HashMap<Hash, ApiKey>> {
    let rows = client
        .query(
            "SELECT key_hash, id, tenant_id FROM api_keys WHERE revoked_at IS NULL",
            &[],
        )
        .await
        .context("loading the API keys")?;
    Ok(rows_to_keys(rows))
}

/// The live keys among `hashes`.
async fn load(
    client: &tokio_postgres::Client,
    hashes: &[String],
) -> anyhow::Result<HashMap<Hash, ApiKey>> {
    let rows = client
        .query(
            "SELECT key_hash, id, tenant_id FROM api_keys \
              WHERE key_hash = ANY($1) AND revoked_at IS NULL",
            &[&hashes],
        )
        .await
        .context("re-reading API keys")?;
    Ok(rows_to_keys(rows))
}

/// Revokes the key `key_id`, and in the same statement ends the portal
/// sessions opened with it; `false` when there was no live key with that id.
///
/// Returns once every API process's key cache that was listening when the
/// revocation committed has dropped the key (its acknowledgement on
/// [`ACK_CHANNEL`]), so the very next request with the key gets a 401
/// whichever process answers it. A cache whose connection drops meanwhile
/// stops being used anyway; one that does not answer within 2 s is logged and
/// not waited for longer.
pub async fn revoke(db_url: &str, key_id: &str) -> anyhow::Result<bool> {
    let (client, mut conn) = connect(db_url).await?;
    let (atx, mut arx) = mpsc::unbounded_channel::<(i32, String)>();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(msg)) = stream.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = msg {
                let _ = atx.send((n.process_id(), n.payload().to_owned()));
            }
        }
    });
    let r = revoke_on(&client, &mut arx, key_id).await;
    driver.abort();
    r
}

async fn revoke_on(
    client: &tokio_postgres::Client,
    acks: &mut mpsc::UnboundedReceiver<(i32, String)>,
    key_id: &str,
) -> anyhow::Result<bool> {
    // Listening before the revocation commits: no acknowledgement is missed.
    client
        .batch_execute(&format!("LISTEN {ACK_CHANNEL}"))
        .await
        .context("LISTEN for acknowledgements")?;
    let Some(h) = crate::tenants::revoke_api_key(client, key_id).await? else {
        return Ok(false);
    };
    // Read after the commit: a cache named by now listened before it named
    // itself, so it listened before the commit or loaded after it. It is only
    // waited for when it listened first, which a LISTEN committed between our
    // commit and this read makes uncertain; such a cache loads after the
    // revocation anyway, and is waited for at most ACK_WAIT.
    let mut waiting = caches(client).await?;
    let deadline = tokio::time::Instant::now() + ACK_WAIT;
    while !waiting.is_empty() {
        tokio::select! {
            a = acks.recv() => match a {
                Some((pid, p)) if p == h => { waiting.retain(|w| *w != pid); }
                Some(_) => {}
                None => anyhow::bail!("connection to Postgres lost while waiting for the key caches"),
            },
            // A cache whose connection dropped stopped using its copy.
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let now = caches(client).await?;
                waiting.retain(|w| now.contains(w));
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(
                    key_id,
                    caches = waiting.len(),
                    "Revoked, but some API processes' key caches did not acknowledge within 2 s."
                );
                break;
            }
        }
    }
    Ok(true)
}

/// The backends of the key caches listening on this database.
async fn caches(client: &tokio_postgres::Client) -> anyhow::Result<Vec<i32>> {
    Ok(client
        .query(
            "SELECT pid FROM pg_stat_activity \
              WHERE application_name = $1 AND datname = current_database()",
            &[&APP_NAME],
        )
        .await
        .context("listing the key caches")?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let h = hash("hfk_x");
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert_eq!(from_hex("*"), None);
        assert_eq!(from_hex(&"zz".repeat(32)), None);
        assert_eq!(from_hex(&"é".repeat(32)), None);
    }
}
