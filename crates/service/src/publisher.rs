//! A shared, confirmed publisher for request handlers: one channel in confirm
//! mode, reconnected lazily after the broker goes away. Concurrent requests share
//! it (confirms are per message), which is what lets ingest confirm thousands of
//! events per second.
use anyhow::Context as _;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

pub struct Publisher {
    target: hookfleet_core::config::AmqpTarget,
    queue_type: hookfleet_core::config::QueueType,
    tiers: Vec<Duration>,
    /// The live channel: read without waiting on the hot path.
    live: std::sync::RwLock<Option<Channel>>,
    /// The connection behind `live`; locked while (re)connecting, so one request
    /// reconnects and the others wait for it.
    state: Mutex<Option<Connection>>,
    /// Channels for endpoint-queue declares ([`DECLARE_CHANNELS`]), on the
    /// connection in `state`, with the declares each has been given; one is
    /// replaced after `topology::DECLARES_PER_CHANNEL` of them.
    declare: std::sync::Mutex<Vec<(Channel, usize)>>,
    next_declare: AtomicUsize,
}

impl Publisher {
    pub fn new(settings: &hookfleet_core::Settings) -> Self {
        Self {
            target: settings.amqp.target.clone(),
            queue_type: settings.amqp.queue_type,
            tiers: settings.retry.tiers(),
            live: std::sync::RwLock::new(None),
            state: Mutex::new(None),
            declare: std::sync::Mutex::new(Vec::new()),
            next_declare: AtomicUsize::new(0),
        }
    }

    fn live_channel(&self) -> Option<Channel> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.as_ref().filter(|ch| ch.status().connected()).cloned()
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        if let Some(ch) = self.live_channel() {
            return Ok(ch);
        }
        let mut st = self.state.lock().await;
        // Another request may have reconnected while this one waited for the lock.
        if let Some(ch) = self.live_channel() {
            return Ok(ch);
        }
        *st = None;
        let conn = hookfleet_broker::connect(&self.target, "hookfleet-api").await?;
        let ch = conn.create_channel().await?;
        hookfleet_broker::topology::declare(&ch, self.queue_type, &self.tiers)
            .await
            .context("declaring topology")?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *st = Some(conn);
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Some(ch.clone());
        Ok(ch)
    }

    /// Publishes and waits for the broker's confirm (bounded to 10 s); every
    /// failure is a [`BrokerUnavailable`](crate::BrokerUnavailable).
    pub async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> anyhow::Result<()> {
        let ch = self.channel().await?;
        let res = tokio::time::timeout(Duration::from_secs(10), async {
            let conf = ch
                .basic_publish(
                    exchange.into(),
                    key.into(),
                    BasicPublishOptions::default(),
                    body,
                    props,
                )
                .await?
                .await?;
            anyhow::ensure!(conf.is_ack(), "the broker nacked the publish");
            Ok(())
        })
        .await
        .context("timed out waiting for the publish confirm")
        .and_then(|r| r);
        if res.is_err() {
            *self.live.write().unwrap_or_else(|p| p.into_inner()) = None;
            *self.state.lock().await = None;
        }
        res.map_err(|e| crate::BrokerUnavailable(e).into())
    }

    /// Syncs the ordered router's bindings (see `hookfleet_router::sync_bindings`)
    /// on a channel of its own: a failed bind closes its channel.
    pub async fn sync_ordered(&self, pool: &hookfleet_store::Pool) -> anyhow::Result<()> {
        self.channel().await?;
        let ch = {
            let st = self.state.lock().await;
            let conn = st.as_ref().context("no broker connection")?;
            conn.create_channel().await?
        };
        let r = hookfleet_router::sync_bindings(pool, &ch).await;
        let _ = ch.close(200, "done".into()).await;
        r
    }

    /// Declares the retry tiers a custom schedule waits in, before the schedule
    /// is stored: no process may meet a schedule whose tier does not exist
    /// (issue #14: the routers' depth poller once looked for such a tier).
    pub async fn declare_schedule_tiers(&self, schedule: &str) -> anyhow::Result<()> {
        let declared = async {
            let ch = self.channel().await?;
            for t in hookfleet_broker::topology::schedule_tiers(schedule, &self.tiers) {
                hookfleet_broker::topology::declare_tier(&ch, self.queue_type, t)
                    .await
                    .context("declaring a retry tier")?;
            }
            anyhow::Ok(())
        };
        declared
            .await
            .map_err(|e| crate::BrokerUnavailable(e).into())
    }

    /// Declares an endpoint's queue (after creating the endpoint).
    pub async fn declare_endpoint(
        &self,
        ep: &hookfleet_store::endpoints::Endpoint,
    ) -> anyhow::Result<()> {
        self.declare_queue(&ep.id, ep.ordered()).await
    }

    /// Declares and binds the queue of endpoint `id` (before its row is
    /// stored), on one of [`DECLARE_CHANNELS`] channels.
    pub async fn declare_queue(&self, id: &str, ordered: bool) -> anyhow::Result<()> {
        let declared = async {
            let ch = self.declare_channel().await?;
            hookfleet_broker::topology::declare_endpoint(&ch, self.queue_type, id, ordered)
                .await
                .context("declaring the endpoint queue")
        };
        declared
            .await
            .map_err(|e| crate::BrokerUnavailable(e).into())
    }

    /// Deletes the queue of endpoint `id` if it is empty and unused: the
    /// queue declared for a webhook whose row was then not stored.
    pub async fn delete_unused_queue(&self, id: &str) -> anyhow::Result<()> {
        let ch = self.declare_channel().await?;
        ch.queue_delete(
            hookfleet_broker::names::endpoint_queue(id).as_str().into(),
            lapin::options::QueueDeleteOptions {
                if_unused: true,
                if_empty: true,
                nowait: false,
            },
        )
        .await?;
        Ok(())
    }

    /// A channel for endpoint-queue declares, round-robin over
    /// [`DECLARE_CHANNELS`]; one that closed (a refused declare closes its
    /// channel) is replaced on the same connection.
    async fn declare_channel(&self) -> anyhow::Result<Channel> {
        use hookfleet_broker::topology::{retire, DECLARES_PER_CHANNEL};
        let main = self.channel().await?;
        let i = self.next_declare.fetch_add(1, Ordering::Relaxed) % DECLARE_CHANNELS;
        if let Some((ch, uses)) = lock(&self.declare)
            .get_mut(i)
            .filter(|(c, uses)| c.status().connected() && *uses < DECLARES_PER_CHANNEL)
        {
            *uses += 1;
            return Ok(ch.clone());
        }
        let ch = {
            let st = self.state.lock().await;
            match st.as_ref() {
                Some(conn) => conn.create_channel().await?,
                // Reconnecting meanwhile: the main channel serves this one.
                None => return Ok(main),
            }
        };
        let mut chans = lock(&self.declare);
        if chans.len() <= i {
            chans.push((ch.clone(), 1));
        } else {
            let (old, _) = std::mem::replace(&mut chans[i], (ch.clone(), 1));
            if old.status().connected() {
                retire(old);
            }
        }
        Ok(ch)
    }
}

/// Channels for endpoint-queue declares. RabbitMQ runs one channel's methods
/// one after another, and creating a durable queue waits for its table write:
/// concurrent webhook creations on one channel would queue behind each other
/// (docs/BENCHMARKS.md, session 10: one channel against 16).
const DECLARE_CHANNELS: usize = 8;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
